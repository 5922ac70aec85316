"""Take screenshots of a running portal with headless Chromium (Playwright driving /usr/bin/chromium).

    .venv/bin/python scripts/screenshot.py http://127.0.0.1:8000 docs/screenshot.png [--user agent] [--path /basket/]

Logs in as the given demo user (password demo-season-pass). For a two-factor user without a device it enrols one
from the secret shown on the enrolment page, so run it against demo data only.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from django_otp.oath import totp
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from parkinghq.browser_login import log_in  # noqa: E402  (the repository's root is on the path now)

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("output")
    parser.add_argument("--user", default="agent")
    parser.add_argument("--password", default="demo-season-pass")
    parser.add_argument(
        "--path", action="append", help="page(s) to shoot; with several, output gets -1, -2, … suffixes"
    )
    parser.add_argument("--width", type=int, default=1360)
    parser.add_argument("--height", type=int, default=820)
    parser.add_argument("--full-page", action="store_true")
    parser.add_argument("--locale", default="de-DE", help="the browser's language (de-DE: the portal in German)")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        context = browser.new_context(viewport={"width": args.width, "height": args.height}, locale=args.locale)
        page = context.new_page()
        log_in(page, args.base, args.user, args.password)  # by the fields' names: labels are in German
        page.wait_for_load_state()
        if "/two-factor/enrol/" in page.url:
            secret = page.get_by_test_id("otp-secret").inner_text().replace(" ", "")
            key = base64.b32decode(secret + "=" * (-len(secret) % 8))
            page.locator("input[name=token]").fill(f"{totp(key):06d}")
            page.locator("form:has(input[name=token]) button[type=submit]").click()
            page.wait_for_load_state()
        elif "/two-factor/" in page.url:
            print("this user has an authenticator already; use a fresh demo database", file=sys.stderr)
            return 1
        paths = args.path or ["/"]
        for index, path in enumerate(paths, start=1):
            output = args.output if len(paths) == 1 else args.output.replace(".png", f"-{index}.png")
            page.goto(f"{args.base}{path}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=output, full_page=args.full_page)
            print(f"saved {output} ({path})")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
