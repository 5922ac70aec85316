"""The notification list, its unread badge (polled by htmx), marking read and email preferences."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import role_required
from notifications.models import Notification, NotificationPreference
from notifications.selectors import notifications_for, preferences_for, unread_count
from notifications.services import notifications_mark_read, preferences_update
from parkinghq.http import is_safe_redirect


class PreferencesForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ["email_assignment", "email_escalation", "email_overdue"]


@role_required()
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(notifications_for(request.user), 25).get_page(request.GET.get("page"))
    return render(request, "notifications/list.html", {"page": page, "unread": unread_count(request.user)})


@role_required()
@require_GET
def unread_badge(request: HttpRequest) -> HttpResponse:
    # The navigation takes only #notifications-count from the answer (hx-select), as for the basket.
    html = render_to_string("notifications/_unread.html", {"unread": unread_count(request.user)}, request)
    return HttpResponse(html.strip())


@role_required()
@require_POST
def mark_read(request: HttpRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("id") if i.isdigit()] or None
    count = notifications_mark_read(user=request.user, ids=ids)
    messages.success(
        request,
        ngettext("%(count)s notification marked read.", "%(count)s notifications marked read.", count)
        % {"count": count},
    )
    return redirect("notifications:list")


@role_required()
@require_POST
def open_notification(request: HttpRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(Notification, pk=pk, user=request.user)
    notifications_mark_read(user=request.user, ids=[notification.pk])
    if is_safe_redirect(request, notification.url):
        return redirect(notification.url)
    return redirect("notifications:list")


@role_required()
def preferences(request: HttpRequest) -> HttpResponse:
    form = PreferencesForm(request.POST or None, instance=preferences_for(request.user))
    if request.method == "POST" and form.is_valid():
        preferences_update(user=request.user, **form.cleaned_data)
        messages.success(request, _("Your notification preferences are saved."))
        return redirect("notifications:preferences")
    return render(request, "notifications/preferences.html", {"form": form})
