"""Emails in development: one .eml per message under var/mail/, a one-line summary in the terminal,
the Outbox page for administrators (404 outside development), and the demo API token on its page."""

from __future__ import annotations

import io
from email import message_from_bytes, policy

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.test.utils import override_settings

from accounts import roles
from parkinghq.outbox import OutboxBackend

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n" + b"x" * 40_000


@pytest.fixture
def outbox(tmp_path):
    folder = tmp_path / "mail"
    with override_settings(
        DEVELOPMENT=True, OUTBOX_DIR=folder, EMAIL_BACKEND="parkinghq.outbox.OutboxBackend", SECRET_KEY="k" * 50
    ):
        yield folder


def _send(subject: str, to: str, *, pdf: bool = False) -> str:
    stream = io.StringIO()
    message = EmailMessage(subject, f"Hello,\nyour invoice for {subject}.\n", to=[to])
    if pdf:
        message.attach("INV2026-000001.pdf", PDF, "application/pdf")
    assert OutboxBackend(stream=stream).send_messages([message]) == 1
    return stream.getvalue()


def test_each_email_is_a_file_and_one_line_in_the_terminal(outbox):
    line = _send("Rechnung Dezember", "kunde@example.com", pdf=True)
    (eml,) = outbox.glob("*.eml")
    size_kb = round(eml.stat().st_size / 1024)
    assert size_kb > 50  # the PDF is in the file, base64-encoded…
    assert line == f"mail → kunde@example.com: Rechnung Dezember ({size_kb} KB)\n"  # …not in the terminal
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Rechnung Dezember"
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "INV2026-000001.pdf"
    assert attachment.get_payload(decode=True) == PDF
    _send("Second", "b@example.com")
    assert len(list(outbox.glob("*.eml"))) == 2


def test_the_development_settings_write_mail_to_files(outbox):
    from django.conf import settings

    from parkinghq.settings import dev

    assert dev.EMAIL_BACKEND == "parkinghq.outbox.OutboxBackend"
    assert dev.OUTBOX_DIR == dev.VAR_DIR / "mail"
    assert dev.DEVELOPMENT is True
    assert settings.EMAIL_BACKEND == "parkinghq.outbox.OutboxBackend"
    mail.send_mail("Via Django", "Body", None, ["x@example.com"])
    assert len(list(outbox.glob("*.eml"))) == 1


def test_administrators_read_the_outbox_newest_first_and_download_attachments(client, make_user, login, outbox):
    _send("Older message", "first@example.com")
    _send("Invoice with PDF", "kunde@example.com", pdf=True)
    login(client, make_user("root", roles.ADMINISTRATOR))

    page = client.get("/outbox/").content.decode()
    assert page.index("Invoice with PDF") < page.index("Older message")
    assert "kunde@example.com" in page
    assert str(outbox) not in page  # file names only, never the server's folder

    name = sorted(p.name for p in outbox.glob("*.eml"))[-1]
    detail = client.get(f"/outbox/{name}/")
    assert detail.status_code == 200
    body = detail.content.decode()
    assert "your invoice for Invoice with PDF." in body
    assert "INV2026-000001.pdf" in body
    assert "kunde@example.com" in body

    download = client.get(f"/outbox/{name}/?attachment=0")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == 'attachment; filename="INV2026-000001.pdf"'
    assert download.content == PDF
    assert client.get(f"/outbox/{name}/?attachment=1").status_code == 404
    assert client.get("/outbox/..%2F..%2Fsettings.py/").status_code == 404
    assert client.get("/outbox/20260101T000000000000-deadbeef.eml/").status_code == 404


def test_an_empty_outbox_says_so(client, make_user, login, outbox):
    login(client, make_user("root", roles.ADMINISTRATOR))
    assert "No emails sent yet." in client.get("/outbox/").content.decode()


def test_the_outbox_is_for_administrators_only(client, make_user, login, outbox):
    login(client, make_user("fin", roles.FINANCE))
    assert client.get("/outbox/").status_code == 403
    client.logout()
    assert client.get("/outbox/").status_code == 302  # to the login


def test_the_outbox_is_not_there_outside_development(client, make_user, login, tmp_path):
    login(client, make_user("root", roles.ADMINISTRATOR))
    with override_settings(OUTBOX_DIR=tmp_path):  # DEVELOPMENT stays False, as in production
        assert client.get("/outbox/").status_code == 404


def test_the_demo_api_token_is_on_the_api_clients_page_in_development_only(client, make_user, login, outbox):
    from carparks.api.authentication import api_client_create
    from parkinghq.dev_token import demo_api_token, demo_api_token_adopt

    client_obj, _ = api_client_create(name="Demo shop", scopes=["carparks:read"])
    token = demo_api_token_adopt(client_obj)
    assert token and token.startswith("phq_")
    other, other_token = api_client_create(name="Another shop", scopes=["carparks:read"])
    login(client, make_user("root", roles.ADMINISTRATOR, is_staff=True, is_superuser=True))

    page = client.get("/django-admin/carparks/apiclient/").content.decode()
    assert token in page
    assert other_token not in page
    # The token works with the REST API.
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/carparks/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200

    with override_settings(DEVELOPMENT=False):
        assert demo_api_token() is None
        assert token not in client.get("/django-admin/carparks/apiclient/").content.decode()


def test_the_favicon(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301
    assert answer["Location"].endswith("/favicon.svg")
    assert 'rel="icon"' in client.get("/accounts/login/").content.decode()


def test_the_exports_page_names_the_file_not_the_servers_folder(client, make_user, login):
    from datetime import date

    from billing.models import AccountingExport

    AccountingExport.objects.create(
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        format=AccountingExport.Format.DATEV,
        sequence=1,
        delivered_to="/app/var/accounting-export/EXTF_Buchungsstapel_202611_01.csv",
    )
    login(client, make_user("fin", roles.FINANCE))
    page = client.get("/billing/exports/").content.decode()
    assert "EXTF_Buchungsstapel_202611_01.csv" in page
    assert "/app/var" not in page
    assert "accounting-export/" not in page
