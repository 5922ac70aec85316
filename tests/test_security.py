"""Security headers and cookies on every portal page, no caching of logged-in pages, safe redirects."""

import pytest
from django.test import Client
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


# --- No copies of logged-in pages in browser or proxy caches ------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/profile/", "/basket/", "/notifications/"])
def test_pages_for_a_logged_in_user_are_never_stored(client, make_user, login, path):
    login(client, make_user("agent", "Back-office agent"))
    response = client.get(path)
    assert response.status_code == 200
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private"} <= directives


@pytest.mark.django_db
def test_a_half_logged_in_user_and_an_api_token_get_no_store_too(client, make_user):
    make_user("admin", "Administrator", password="s3cret-pass-12")
    client.post(reverse("accounts:login"), {"username": "admin", "password": "s3cret-pass-12"})
    assert "no-store" in client.get(reverse("accounts:otp-enrol"))["Cache-Control"]
    response = Client().get("/api/v1/carparks/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_anonymous_answers_keep_their_caching(client, make_user, login):
    static = client.get("/static/vendor/bootstrap/css/bootstrap.min.css")
    assert static.status_code == 200
    assert "no-store" not in static.get("Cache-Control", "")
    # The health check keeps its own never-cache answer, unchanged.
    assert client.get("/health")["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    # A page anyone may open is stored as usual for visitors, and not once someone is logged in.
    reset = reverse("accounts:password-reset")
    assert "Cache-Control" not in client.get(reset)
    login(client, make_user("agent", "Back-office agent"))
    assert "no-store" in client.get(reset)["Cache-Control"]


# --- Redirects after a form never leave the portal ----------------------------------------------


@pytest.fixture
def open_alert(db):
    from monitoring.models import AlertEvent, AlertRule

    rule = AlertRule.objects.create(name="Incidents", kind=AlertRule.Kind.INCIDENTS)
    return AlertEvent.objects.create(rule=rule, key="incidents", message="2 processes with an open incident")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", " https://evil.example"],
)
def test_acknowledging_an_alert_never_redirects_off_site(client, make_user, login, open_alert, target):
    login(client, make_user("supervisor", "Supervisor"))
    response = client.post(reverse("monitoring:alert-acknowledge", args=[open_alert.pk]), {"next": target})
    assert response.status_code == 302
    assert response["Location"] == reverse("monitoring:alerts")
    open_alert.refresh_from_db()
    assert open_alert.acknowledged_at is not None


@pytest.mark.django_db
def test_acknowledging_an_alert_goes_back_to_a_local_page(client, make_user, login, open_alert):
    login(client, make_user("supervisor", "Supervisor"))
    response = client.post(reverse("monitoring:alert-acknowledge", args=[open_alert.pk]), {"next": "/monitoring/"})
    assert response["Location"] == "/monitoring/"


def test_over_https_a_next_to_plain_http_on_the_same_host_is_refused(rf):
    from parkinghq.http import safe_url

    request = rf.get("/", secure=True, HTTP_HOST="localhost")
    assert safe_url(request, "http://localhost/basket/") == reverse("portal-home")
    assert safe_url(request, "https://localhost/basket/") == "https://localhost/basket/"
    assert safe_url(request, "/basket/") == "/basket/"


@pytest.mark.django_db
def test_the_second_login_step_never_redirects_off_site(client, make_user):
    make_user("admin", "Administrator", password="s3cret-pass-12")
    client.post(reverse("accounts:login"), {"username": "admin", "password": "s3cret-pass-12"})
    response = client.get(reverse("accounts:otp-enrol"), {"next": "https://evil.example/"})
    assert b"evil.example" not in response.content
