"""Rate limit per API client (the rate comes from settings.CARPARKS_API_RATE, e.g. "600/minute")."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from carparks.models import ApiClient


class ApiClientRateThrottle(SimpleRateThrottle):
    scope = "api_client"

    def get_rate(self) -> str:
        return getattr(settings, "CARPARKS_API_RATE", "600/minute")

    def get_cache_key(self, request: Request, view: Any) -> str:
        ident = f"client-{request.auth.pk}" if isinstance(request.auth, ApiClient) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
