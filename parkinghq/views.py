"""The portal shell: the start page and error pages in the portal's look."""

import logging

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import redirect, render

from accounts.roles import ADMINISTRATOR, FINANCE, SUPERVISOR, WORKFLOW_ADMIN, has_role, role_required
from parkinghq.http import safe_url

logger = logging.getLogger(__name__)

PLAIN_500 = (
    "<!doctype html><title>Server error</title><h1>Something went wrong</h1>"
    "<p>The error has been logged. Please try again in a moment.</p>"
)


@role_required()
def home(request: HttpRequest) -> HttpResponse:
    """The start page: the user's work today (their queue, their claimed tasks, what is overdue or due
    today, the next tasks), what needs an owner's eye (incidents, billing exceptions), then the sections."""
    from workflows.basket_selectors import work_summary

    user = request.user
    context: dict = {"work": work_summary(user)}
    if has_role(user, ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR):
        from workflows.models import Process
        from workflows.process_views import visible_processes

        context["incidents"] = visible_processes(user).filter(state=Process.State.RUNNING, incident_open=True).count()
    if has_role(user, FINANCE):
        from billing.selectors import open_exceptions

        context["billing_exceptions"] = open_exceptions().count()
    return render(request, "portal/home.html", context)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # The portal look needs the session and the database; when they are what failed, stay plain.
    try:
        return render(request, "500.html", status=500)
    except Exception:
        logger.exception("rendering the 500 page failed")
        return HttpResponseServerError(PLAIN_500)


def django_admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The Django admin has no login of its own: the portal's (lockout, two factors) is the only one."""
    from django.contrib import admin

    target = safe_url(request, request.GET.get("next", ""), "admin:index")
    if request.user.is_authenticated:
        if admin.site.has_permission(request):
            return redirect(target)
        raise PermissionDenied  # logged in, but not staff: no loop back to the login page
    return redirect_to_login(target)


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on their own: send them to the portal's icon (no 404 in the logs)."""
    from django.http import HttpResponsePermanentRedirect
    from django.templatetags.static import static

    return HttpResponsePermanentRedirect(static("favicon.svg"))
