"""Request and response guards that Django's own middleware does not provide."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

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
