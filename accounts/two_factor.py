"""Two-factor login (TOTP, django-otp) for the roles that need it, and the middleware that enforces it.

After the password step a user holding Administrator, Workflow admin or Supervisor must verify a
TOTP code (or, without a confirmed device, enrol one first) before any other portal page opens.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import segno
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import rotate_token
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.roles import TWO_FACTOR_ROLES, user_roles

# Pages an unverified two-factor user may still open: the second step itself and ways out.
ALLOWED_URL_NAMES = [
    "accounts:otp-verify",
    "accounts:otp-enrol",
    "accounts:logout",
    "accounts:login",
    "health",
]
ALLOWED_PREFIXES = ["/static/", "/accounts/reset/", "/accounts/password-reset/"]


def needs_two_factor(user: Any) -> bool:
    return bool(user_roles(user) & TWO_FACTOR_ROLES)


def is_two_factor_pending(user: Any) -> bool:
    """Logged in with a password, in a two-factor role, and not yet verified with a device."""
    return (
        getattr(user, "is_authenticated", False)
        and needs_two_factor(user)
        and not (hasattr(user, "is_verified") and user.is_verified())
    )


def second_step_url(user: Any, next_url: str = "") -> str:
    name = "accounts:otp-verify" if user_has_device(user, confirmed=True) else "accounts:otp-enrol"
    url = reverse(name)
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


class TwoFactorMiddleware:
    """Keeps users of two-factor roles who have not verified a TOTP code out of every portal page.

    Must come after ``django_otp.middleware.OTPMiddleware`` (which adds ``user.is_verified``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._allowed: tuple[str, ...] | None = None

    def allowed_paths(self) -> tuple[str, ...]:
        if self._allowed is None:
            self._allowed = tuple(reverse(name) for name in ALLOWED_URL_NAMES)
        return self._allowed

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_two_factor_pending(request.user) and not self._is_allowed(request.path_info):
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": "Two-factor verification required."}, status=403)
            if request.headers.get("HX-Request"):
                # Background htmx requests (badges, polls) must not drag the page anywhere.
                return HttpResponse("Two-factor verification required.", status=403)
            return redirect(second_step_url(request.user, request.get_full_path()))
        return self.get_response(request)

    def _is_allowed(self, path: str) -> bool:
        return path in self.allowed_paths() or path.startswith(tuple(ALLOWED_PREFIXES))


def second_factor_login(request: HttpRequest, device: Any) -> None:
    """Mark the session verified with ``device``, under a new session id and CSRF token.

    The session id from before the code was known to whoever had only the password (or had planted
    the cookie); once the session is worth more, it gets an id nobody has seen, as ``login`` does
    for the password step.
    """
    otp_login(request, device)
    request.session.cycle_key()
    rotate_token(request)


def pending_device(user: Any) -> TOTPDevice:
    """The user's unconfirmed TOTP device (created once, so the QR code stays the same on reload)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def device_secret(device: TOTPDevice) -> str:
    """The base32 secret, in groups of four, for typing into an authenticator app by hand."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def device_qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL as an inline SVG QR code (no image request, nothing external)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=5, border=2, svgclass="otp-qr", lineclass=None)
