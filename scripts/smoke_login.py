"""Log in to a running portal with a username and password over HTTP; exit 1 if it fails."""

from __future__ import annotations

import http.cookiejar
import re
import sys
import urllib.parse
import urllib.request


def main(base: str, username: str, password: str) -> int:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not token:
        print("smoke: no CSRF token on the login page")
        return 1
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token.group(1), "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=data, headers={"Referer": f"{base}/accounts/login/"}
    )
    response = opener.open(request)
    final = response.geturl()
    if "/accounts/login/" in final:
        print(f"smoke: login as {username} failed (still on {final})")
        return 1
    print(f"smoke: logged in as {username}, landed on {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
