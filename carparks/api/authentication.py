"""Per-client API tokens: ``Authorization: Bearer phq_<prefix>_<secret>``, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from carparks.models import ApiClient

TOKEN_PREFIX = "phq_"


def token_hash(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def token_new() -> tuple[str, str, str]:
    """A fresh token with its prefix and hash (only the last two are stored)."""
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return token, prefix, token_hash(token)


def api_client_create(
    *, name: str, scopes: list[str], carparks: Iterable[Any] = (), actor: Any = None
) -> tuple[ApiClient, str]:
    """Create a client and return it with its token; the token is not stored and cannot be shown again.

    ``carparks`` are granted: the client sees their contracts, cases and invoices besides its own.
    """
    from django.db import transaction

    from accounts.services import audit_record

    unknown = set(scopes) - set(ApiClient.Scope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    token, prefix, digest = token_new()
    with transaction.atomic():
        client = ApiClient.objects.create(name=name, token_prefix=prefix, token_hash=digest, scopes=scopes)
        client.carparks.set(carparks)
        granted = sorted(client.carparks.values_list("pk", flat=True))
        audit_record(
            actor=actor, action="api_client.created", target=client, new={"scopes": scopes, "carparks": granted}
        )
    return client, token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiClient] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, token = header.partition(" ")
        if keyword.lower() not in ("bearer", "token"):
            return None
        token = token.strip()
        if not token.startswith(TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed("Invalid API token.")
        client = ApiClient.objects.filter(token_hash=token_hash(token), is_active=True).first()
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid API token.")
        now = timezone.now()
        if client.last_used_at is None or (now - client.last_used_at).total_seconds() > 60:
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        return client, client

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "carparks.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Per-client API token (phq_…)."}
