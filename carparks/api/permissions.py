"""Scopes: each view names the scope a token needs per HTTP method."""

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from carparks.models import ApiClient


class HasScope(BasePermission):
    message = "This API token lacks the scope this call needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return False
        scopes = getattr(view, "required_scopes", {})
        needed = scopes.get(request.method, scopes.get("*"))
        if needed is None:
            return True
        self.message = f"This API token lacks the scope {str(needed)!r}."
        return client.has_scope(needed)
