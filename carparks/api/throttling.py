"""Rate limit per API client (the rate comes from settings.CARPARKS_API_RATE, e.g. "600/minute").

The counts live in the cache (Redis). While Redis is unreachable the limit cannot be counted:
reads and the API's writes are let through (fail open, with a warning in the log at most once a
minute), because none of them moves money: applications and offers go through an agent's review
and are repeatable with ``Idempotency-Key``, terminations and plate changes are refused by the
contract's state when repeated. A view that would move money sets ``money_at_stake = True``; its
writes are then refused with 503 and ``Retry-After`` until the limit can be counted again.
"""

import logging
import time
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from carparks.models import ApiClient
from parkinghq.cache import WARN_EVERY_SECONDS, cache_available
from parkinghq.http import client_ip

logger = logging.getLogger(__name__)
_warned_at: float | None = None


class RateLimitUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The rate limit cannot be checked right now; this change was not made. Retry shortly."
    default_code = "rate_limit_unavailable"
    wait = 30  # DRF's exception handler sends it as Retry-After


class ApiClientRateThrottle(SimpleRateThrottle):
    scope = "api_client"

    def get_rate(self) -> str:
        return getattr(settings, "CARPARKS_API_RATE", "600/minute")

    def get_cache_key(self, request: Request, view: Any) -> str:
        ident = f"client-{request.auth.pk}" if isinstance(request.auth, ApiClient) else client_ip(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: Any) -> bool:
        allowed = super().allow_request(request, view)
        if cache_available(self.cache):
            return allowed
        if request.method not in SAFE_METHODS and getattr(view, "money_at_stake", False):
            raise RateLimitUnavailable()
        _warn_unlimited(request)
        return True


def _warn_unlimited(request: Request) -> None:
    global _warned_at
    now = time.monotonic()
    if _warned_at is None or now - _warned_at >= WARN_EVERY_SECONDS:
        _warned_at = now
        logger.warning(
            "API rate limit not enforced (cache unreachable): letting %s %s through", request.method, request.path
        )
