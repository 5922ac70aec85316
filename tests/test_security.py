"""Security headers and cookies on every portal page."""

import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_it_sends_security_headers_and_a_strict_content_security_policy(client):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


@pytest.mark.django_db
def test_it_keeps_session_and_csrf_cookies_away_from_scripts(client, make_user):
    make_user("agent", "Back-office agent", password="s3cret-pass")
    response = client.post(reverse("accounts:login"), {"username": "agent", "password": "s3cret-pass"})
    session = response.cookies["sessionid"]
    assert session["httponly"]
    assert session["samesite"] == "Lax"
    page = client.get(reverse("accounts:login"))
    assert client.cookies["csrftoken"]["httponly"] or page.cookies["csrftoken"]["httponly"]
