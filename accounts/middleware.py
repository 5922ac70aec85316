"""The portal's language for a signed-in user: their own choice wins over the browser's.

The choice lives in the ``Preference`` row; at login (and when the user changes it) it is copied into the
session, so no page pays a query for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ObjectDoesNotExist
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import translation

SESSION_KEY = "phq_language"


def preferred_language(user: Any) -> str:
    """The language the user chose in their profile, or '' (the browser decides)."""
    try:
        return user.preference.language
    except ObjectDoesNotExist:
        return ""


def remember_language(request: HttpRequest, language: str) -> None:
    """Use ``language`` ('' = the browser's) for the rest of this session."""
    if language in dict(settings.LANGUAGES):
        request.session[SESSION_KEY] = language
    else:
        request.session.pop(SESSION_KEY, None)


@receiver(user_logged_in, dispatch_uid="accounts.language_at_login")
def _language_at_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        remember_language(request, preferred_language(user))


class UserLanguageMiddleware:
    """After LocaleMiddleware (browser's language) and authentication: activate the user's own language."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = ""
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            language = request.session.get(SESSION_KEY, "")
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = self.get_response(request)
        if language:
            response.headers["Content-Language"] = language
        return response
