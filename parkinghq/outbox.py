"""Emails in development: one ``.eml`` file per message under ``settings.OUTBOX_DIR`` (``var/mail/``),
a one-line summary in the terminal instead of the whole message, and the **Outbox** page where
administrators read them (headers, text body, attachments as downloads).

Only ``parkinghq.settings.dev`` sets ``OUTBOX_DIR`` and ``DEVELOPMENT``; elsewhere the page answers 404.
"""

from __future__ import annotations

import re
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.roles import ADMINISTRATOR, role_required

# Names the backend writes: <UTC timestamp>-<8 hex>.eml; nothing else is ever opened from the folder.
NAME = re.compile(r"^\d{8}T\d{6}\d{6}-[0-9a-f]{8}\.eml$")
LIST_LIMIT = 200


def outbox_dir() -> Path | None:
    folder = getattr(settings, "OUTBOX_DIR", None)
    if not getattr(settings, "DEVELOPMENT", False) or not folder:
        return None
    return Path(folder)


class OutboxBackend(BaseEmailBackend):
    """Writes each message to its own ``.eml`` file and prints ``mail → to: subject (N KB)``."""

    def __init__(self, *args: Any, stream: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = stream or sys.stdout

    def send_messages(self, email_messages: Any) -> int:
        folder = Path(getattr(settings, "OUTBOX_DIR", None) or Path(settings.VAR_DIR) / "mail")
        folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            data = message.message().as_bytes(linesep="\n")
            name = f"{timezone.now().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.eml"
            (folder / name).write_bytes(data)
            size_kb = max(1, round(len(data) / 1024))
            self.stream.write(f"mail → {', '.join(message.recipients())}: {message.subject} ({size_kb} KB)\n")
            self.stream.flush()
            sent += 1
        return sent


@dataclass
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int


@dataclass
class OutboxMessage:
    name: str
    sent_at: datetime | None
    sender: str
    to: str
    subject: str
    size: int
    message: EmailMessage | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(key, str(value)) for key, value in self.message.items()] if self.message else []

    @property
    def text(self) -> str:
        if not self.message:
            return ""
        body = self.message.get_body(preferencelist=("plain", "html"))
        return body.get_content() if body is not None else ""

    def parts(self) -> list[Any]:
        return list(self.message.iter_attachments()) if self.message else []

    @property
    def attachments(self) -> list[Attachment]:
        return [
            Attachment(
                index=index,
                filename=part.get_filename() or f"attachment-{index + 1}",
                content_type=part.get_content_type(),
                size=len(part.get_payload(decode=True) or b""),
            )
            for index, part in enumerate(self.parts())
        ]


def _read(path: Path, *, full: bool) -> OutboxMessage:
    data = path.read_bytes()
    message = message_from_bytes(data, policy=policy.default)
    try:
        sent_at = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        sent_at = None
    return OutboxMessage(
        name=path.name,
        sent_at=sent_at,
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        size=len(data),
        message=message if full else None,
    )


def _folder_or_404() -> Path:
    folder = outbox_dir()
    if folder is None:
        raise Http404("The Outbox exists in development only.")
    return folder


@role_required(ADMINISTRATOR)
def outbox_list(request: HttpRequest) -> HttpResponse:
    """The messages the portal sent, newest first."""
    folder = _folder_or_404()
    found = folder.glob("*.eml") if folder.is_dir() else []
    names = sorted((p.name for p in found if NAME.match(p.name)), reverse=True)
    messages = [_read(folder / name, full=False) for name in names[:LIST_LIMIT]]
    return render(request, "portal/outbox.html", {"messages_sent": messages, "total": len(names), "limit": LIST_LIMIT})


@role_required(ADMINISTRATOR)
def outbox_message(request: HttpRequest, name: str) -> HttpResponse:
    """One message: its headers and text body; ``?attachment=N`` downloads its N-th attachment."""
    folder = _folder_or_404()
    path = folder / name
    if not NAME.match(name) or not path.is_file():
        raise Http404("No such message in the Outbox.")
    message = _read(path, full=True)
    index = request.GET.get("attachment")
    if index is not None:
        parts = message.parts()
        if not index.isdigit() or int(index) >= len(parts):
            raise Http404("No such attachment.")
        part = parts[int(index)]
        filename = (part.get_filename() or f"attachment-{int(index) + 1}").replace('"', "")
        response = HttpResponse(part.get_payload(decode=True) or b"", content_type=part.get_content_type())
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    return render(request, "portal/outbox_message.html", {"mail": message})
