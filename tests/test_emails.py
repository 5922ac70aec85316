"""Plain-text emails show names as typed; only HTML parts escape them.

Django escapes every template it renders for HTML, so a customer called ``<b>Tom & Jerry</b>`` read
``&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;`` in the text emails."""

from __future__ import annotations

import copy

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from carparks import services
from carparks.tests.factories import CustomerFactory, ProductFactory
from parkinghq.emails import send_email

pytestmark = pytest.mark.django_db

NAME = "<b>Tom & Jerry</b>"
ESCAPED = "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;"


@pytest.fixture
def probe_templates(settings, tmp_path):
    """An email with a text and an HTML part, both naming the customer."""
    folder = tmp_path / "emails"
    folder.mkdir()
    (folder / "probe_subject.txt").write_text("For {{ name }}")
    (folder / "probe_body.txt").write_text("Dear {{ name }},\nsee {{ site_url }}.\n")
    (folder / "probe_body.html").write_text("<p>Dear {{ name }},</p>")
    templates = copy.deepcopy(django_settings.TEMPLATES)
    templates[0]["DIRS"] = [tmp_path, *templates[0]["DIRS"]]
    settings.TEMPLATES = templates


def test_the_text_part_is_verbatim_and_the_html_part_escaped(probe_templates, mailoutbox):
    assert send_email(template="probe", to=["tom@example.com"], context={"name": NAME}) == 1
    message = mailoutbox[0]
    assert message.subject == f"For {NAME}"
    assert message.body.startswith(f"Dear {NAME},\n") and "&lt;" not in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and html == f"<p>Dear {ESCAPED},</p>"


def test_a_customer_email_names_the_customer_as_typed(mailoutbox, django_capture_on_commit_callbacks):
    full = ProductFactory(quota=0)  # the application is waitlisted at once, and the customer told
    with django_capture_on_commit_callbacks(execute=True):
        customer = CustomerFactory(name=NAME, email="tom@example.com", language="en")
        services.contract_apply(customer=customer, product=full, vehicles=["M AB 123"])
    assert f"Dear {NAME}," in mailoutbox[0].body
    assert "&amp;" not in mailoutbox[0].body


def test_the_password_reset_email_names_the_user_as_typed(client, make_user, mailoutbox):
    make_user("tom", email="tom@example.com", first_name="<b>Tom", last_name="& Jerry</b>")
    client.post(reverse("accounts:password-reset"), {"email": "tom@example.com"})
    assert f"Hello {NAME}," in mailoutbox[0].body
    assert "&amp;" not in mailoutbox[0].body and "&#x27;" not in mailoutbox[0].body
