"""One place that sends the product's emails.

Each email is three templates: ``emails/<name>_subject.txt``, ``emails/<name>_body.txt`` and
``emails/<name>_body.html`` (the HTML part is optional). Call from ``transaction.on_commit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string


def send_email(
    *,
    template: str,
    to: Sequence[str],
    context: dict[str, Any] | None = None,
    attachments: Iterable[tuple[str, bytes, str]] = (),
) -> int:
    """Render ``emails/<template>_*`` with ``context`` and send it; returns the number sent (0 or 1)."""
    recipients = [address for address in to if address]
    if not recipients:
        return 0
    ctx = {"site_url": settings.SITE_URL, **(context or {})}
    subject = " ".join(render_to_string(f"emails/{template}_subject.txt", ctx).split())
    body = render_to_string(f"emails/{template}_body.txt", ctx)
    message = EmailMultiAlternatives(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    with contextlib.suppress(TemplateDoesNotExist):
        message.attach_alternative(render_to_string(f"emails/{template}_body.html", ctx), "text/html")
    for filename, content, mimetype in attachments:
        message.attach(filename, content, mimetype)
    return message.send()
