"""The demo API client's token in development: the same on every fresh database (derived from the
development SECRET_KEY), so the API clients page can show it. Production never has one: a client's
token is shown once, when it is created (``manage.py api_client_create`` or the API clients page)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.conf import settings

DEMO_CLIENT_NAME = "Demo shop"


def demo_api_token() -> str | None:
    """The demo client's token, in development only (``settings.DEVELOPMENT``); None elsewhere."""
    if not getattr(settings, "DEVELOPMENT", False):
        return None
    digest = hmac.new(settings.SECRET_KEY.encode(), b"parkinghq demo shop api token", hashlib.sha256).digest()
    secret = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return f"phq_{digest[:4].hex()}_{secret}"


def demo_api_token_adopt(client) -> str | None:  # noqa: ANN001 - a carparks.models.ApiClient
    """Give the freshly created demo client the development token (nothing outside development)."""
    from carparks.api.authentication import token_hash

    token = demo_api_token()
    if token is None:
        return None
    client.token_prefix = token.split("_")[1]
    client.token_hash = token_hash(token)
    client.save(update_fields=["token_prefix", "token_hash"])
    return token


def demo_api_token_shown(client) -> str | None:  # noqa: ANN001
    """The token to show next to ``client`` on its page: only the demo client's, only in development."""
    token = demo_api_token()
    if token is None or client.name != DEMO_CLIENT_NAME:
        return None
    from carparks.api.authentication import token_hash

    return token if hmac.compare_digest(client.token_hash, token_hash(token)) else None
