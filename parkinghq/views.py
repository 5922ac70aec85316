"""The portal shell: the start page and error pages in the portal's look."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.roles import role_required


@role_required()
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/home.html")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", status=500)
