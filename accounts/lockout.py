"""Login lockout: per account, and per client address, on django-axes' attempts in the database.

An account locks after ``AXES_FAILURE_LIMIT`` failed logins from any address (so spreading the
guesses over addresses, or sitting behind the same proxy as everybody else, changes nothing), and a
client address locks after ``LOGIN_IP_FAILURE_LIMIT`` failures for any accounts (one address
spraying many usernames). Addresses come from ``parkinghq.http.client_ip`` (trusted proxies only).

Locking by account lets anybody who knows a username lock its owner out. The portal keeps that
harm small, as OWASP's authentication cheat sheet suggests:

- the lock lasts exactly ``AXES_COOLOFF_TIME`` after the failure that caused it: attempts while
  locked are neither checked nor counted (``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT`` off),
  so nobody can stretch it, and the page tells the owner the time it ends;
- the right password (and code) is refused while locked too, or the lock would protect nothing;
- the owner lifts the lock at once by setting a new password through the emailed reset link, and an
  administrator can lift it on the user's page (audited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def _lock_end(attempts: Any, limit: int) -> datetime | None:
    """When ``attempts`` (one account's or one address's, within the cool-off window) stop adding
    up to ``limit`` failures, or None if they do not reach it now. Each attempt row carries the
    time of its latest failure and leaves the window one cool-off after it."""
    cool_off = get_cool_off()
    rows = list(attempts.order_by("attempt_time").values_list("attempt_time", "failures_since_start"))
    remaining = sum(failures for _, failures in rows)
    if remaining < limit:
        return None
    for attempt_time, failures in rows:
        remaining -= failures
        if remaining < limit:
            return attempt_time + cool_off
    return None  # pragma: no cover - the loop always ends below the limit


def _recent(**lookup: Any) -> Any:
    return AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - get_cool_off(), **lookup)


def account_locked_until(username: str) -> datetime | None:
    """The end of the account's lock, or None when it is not locked."""
    return _lock_end(_recent(username=username), settings.AXES_FAILURE_LIMIT)


def address_locked_until(ip_address: str) -> datetime | None:
    """The end of the client address's lock, or None when it is not locked."""
    return _lock_end(_recent(ip_address=ip_address), settings.LOGIN_IP_FAILURE_LIMIT)


def lockout_clear(username: str) -> int:
    """Forget the account's failed logins (its lock, if any). Failures counted against the client
    addresses they came from stay, so this never helps a sprayer."""
    count, _ = AccessAttempt.objects.filter(username=username).delete()
    return count


class LoginLockoutHandler(AxesDatabaseHandler):
    """Axes' database handler with two limits instead of one.

    With ``AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]`` axes hands us the attempts of the
    account and those of the address; axes compares one number with ``AXES_FAILURE_LIMIT``, so the
    address's count is turned into "at the limit" once it reaches ``LOGIN_IP_FAILURE_LIMIT``.
    """

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        by_username, by_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if by_address >= settings.LOGIN_IP_FAILURE_LIMIT:
            return max(by_username, get_failure_limit(request, credentials))
        return by_username

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """After a successful login only the account's own failures are forgotten: axes would also
        clear every failure from the address, letting a sprayer reset the per-address count by
        logging in to an account of their own now and then."""
        return lockout_clear(get_client_username(request, credentials))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The 429 page of a refused login: which lock applies and the time it ends."""
    username = get_client_username(request, credentials) or ""
    account_until = account_locked_until(username) if username else None
    address_until = address_locked_until(getattr(request, "axes_ip_address", "") or "")
    ends = [moment for moment in (account_until, address_until) if moment is not None]
    context = {
        "username": username,
        "account_locked": account_until is not None,
        "address_locked": address_until is not None,
        "locked_until": max(ends) if ends else timezone.now() + get_cool_off(),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_timedelta": get_cool_off(),
    }
    return render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=settings.AXES_HTTP_RESPONSE_CODE)
