"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) keyed from settings.

``FIELD_ENCRYPTION_KEY`` is a Fernet key (``Fernet.generate_key()``); when it is empty the key
is derived from ``SECRET_KEY`` so development needs no setup. Rotating either key makes stored
secrets unreadable: re-enter them on the connection page.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """The stored secret cannot be decrypted with the current key."""


def _fernet() -> Fernet:
    key = getattr(settings, "FIELD_ENCRYPTION_KEY", "") or ""
    if key:
        try:
            return Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64 bytes)") from None
    digest = hashlib.sha256(b"parkinghq.connect.secrets:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("the stored secret cannot be decrypted with the current key; enter it again") from None


def mask(secret: str) -> str:
    """Enough to recognise a secret, never enough to use it."""
    if not secret:
        return ""
    if len(secret) <= 8:
        return "•" * 8
    return "•" * 8 + secret[-4:]
