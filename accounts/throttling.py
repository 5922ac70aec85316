"""Password-reset requests per email address and per client address (fixed windows in the cache).

Each request counts, whether or not an account has that address, and the page answers the same
either way, so the throttle tells nobody which addresses exist. Without the cache (Redis down) the
request is let through with a logged warning: a reset link is no worse than before, and a person
who forgot their password is not stuck.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from parkinghq.http import client_ip

logger = logging.getLogger(__name__)

PERIODS = {"minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"5/hour"`` → (5, 3600): how many requests per how many seconds."""
    count, period = rate.split("/")
    return int(count), PERIODS[period]


def _count(key: str, period: int) -> int:
    """Add one to the key's window (opened by its first request) and return the new count."""
    cache.add(key, 0, timeout=period)
    try:
        return cache.incr(key)
    except ValueError:  # the window closed between add and incr
        cache.set(key, 1, timeout=period)
        return 1


def password_reset_allowed(request: HttpRequest, email: str) -> bool:
    """Count one password-reset request for ``email`` from the request's client address; False when
    either is over its rate (``PASSWORD_RESET_RATE``, ``PASSWORD_RESET_IP_RATE``)."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    checks = [
        (f"password-reset:email:{digest}", parse_rate(settings.PASSWORD_RESET_RATE)),
        (f"password-reset:ip:{client_ip(request)}", parse_rate(settings.PASSWORD_RESET_IP_RATE)),
    ]
    try:
        counts = [(_count(key, period), limit) for key, (limit, period) in checks]
    except Exception:
        logger.warning("password-reset throttle skipped: the cache is not reachable", exc_info=True)
        return True
    allowed = all(count <= limit for count, limit in counts)
    if not allowed:
        logger.warning("password-reset request throttled (client %s)", client_ip(request))
    return allowed
