"""Request and response guards that Django's own middleware does not provide."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.cache import patch_cache_control

# The portal needs no camera, microphone, location, payment or USB access; say so to the browser.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"


class PermissionsPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


class RejectNulBytesMiddleware:
    """Answer 400 to a query string carrying NUL characters.

    PostgreSQL cannot store or compare text holding NUL, so such a value would fail deep in a
    query with a 500; forms already refuse it (Django's ProhibitNullCharactersValidator), raw
    query parameters of list pages and the API would not.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
            return HttpResponseBadRequest(
                "Request parameters must not contain NUL characters.", content_type="text/plain"
            )
        return self.get_response(request)


class NoStoreForAuthenticatedMiddleware:
    """``Cache-Control: no-store, private`` on every answer to a logged-in user or an API token.

    Pages behind the login show customers, plates and invoices; neither the browser's back/forward
    cache on a shared counter PC nor a proxy may keep a copy. Anonymous answers (static files, the
    health check, the login page) keep whatever caching they had. Without a session cookie or an
    Authorization header the request is anonymous and the session is not even looked at.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self._is_authenticated(request):
            patch_cache_control(response, no_store=True, private=True)
        return response

    @staticmethod
    def _is_authenticated(request: HttpRequest) -> bool:
        if "HTTP_AUTHORIZATION" in request.META:
            return True
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return False
        try:
            return bool(request.user.is_authenticated)
        except Exception:  # the session store is down: a cookie holder may well be logged in
            return True
