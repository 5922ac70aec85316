"""One place that sends the product's emails.

Each email is three templates: ``emails/<name>_subject.txt``, ``emails/<name>_body.txt`` and
``emails/<name>_body.html`` (the HTML part is optional). Call from ``transaction.on_commit``.

The ``.txt`` templates are plain text: they are rendered without HTML escaping, so a customer called
``<b>Tom & Jerry</b>`` is greeted as such and not as ``&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;``. The HTML
part is escaped as every HTML template is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context, TemplateDoesNotExist
from django.template.loader import get_template, render_to_string


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
    subject = " ".join(render_text(f"emails/{template}_subject.txt", ctx).split())
    body = render_text(f"emails/{template}_body.txt", ctx)
    message = EmailMultiAlternatives(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    with contextlib.suppress(TemplateDoesNotExist):
        message.attach_alternative(render_to_string(f"emails/{template}_body.html", ctx), "text/html")
    for filename, content, mimetype in attachments:
        message.attach(filename, content, mimetype)
    return message.send()


def render_text(template_name: str, context: dict[str, Any]) -> str:
    """A plain-text template rendered without HTML escaping (the project's template engine otherwise)."""
    return get_template(template_name).template.render(Context(context, autoescape=False))
