"""Login (password, then TOTP for two-factor roles), my account, and the administration pages."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm, PasswordResetForm
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import selectors, services
from accounts.forms import AuditFilterForm, LanguageForm, TokenForm, UserCreateForm, UserFilterForm, UserForm
from accounts.lockout import account_locked_until, lockout_clear
from accounts.middleware import preferred_language, remember_language
from accounts.roles import ADMINISTRATOR, role_required
from accounts.throttling import password_reset_allowed
from accounts.two_factor import (
    device_qr_svg,
    device_secret,
    needs_two_factor,
    pending_device,
    second_factor_login,
    second_step_url,
)
from parkinghq.http import safe_next
from parkinghq.list_search import search_data

User = get_user_model()


# --- Login ------------------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Password step. Users of two-factor roles go on to the TOTP step (or enrol a device first)."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        user = form.get_user()
        if needs_two_factor(user):
            return HttpResponseRedirect(second_step_url(user, self.get_success_url()))
        return response


THROTTLED = gettext_lazy("Too many wrong codes in a row. Wait a little (the wait doubles each time) and try again.")
NOT_VALID = gettext_lazy("That code is not valid. Check the code and your phone's clock, then try again.")


def _check_token(devices: list[TOTPDevice], token: str) -> tuple[TOTPDevice | None, Any]:
    """The device that accepts ``token``, or None and why not. Failures throttle the device."""
    allowed = [device for device in devices if device.verify_is_allowed()[0]]
    if not allowed:
        return None, THROTTLED
    for device in allowed:
        if device.verify_token(token):
            return device, ""
    return None, NOT_VALID


@role_required()
def otp_verify(request: HttpRequest) -> HttpResponse:
    """Second login step: a TOTP code from one of the user's confirmed devices."""
    user = request.user
    next_url = safe_next(request)
    if not needs_two_factor(user) or user.is_verified():
        return redirect(next_url)
    if not user_has_device(user, confirmed=True):
        return redirect(second_step_url(user, next_url))
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device, error = _check_token(
            list(TOTPDevice.objects.filter(user=user, confirmed=True)), form.cleaned_data["token"]
        )
        if device is not None:
            second_factor_login(request, device)
            return redirect(next_url)
        form.add_error("token", error)
    return render(request, "accounts/otp_verify.html", {"form": form, "next": next_url})


@role_required()
def otp_enrol(request: HttpRequest) -> HttpResponse:
    """Add a TOTP authenticator: scan the QR code (or type the secret), confirm with a code."""
    user = request.user
    next_url = safe_next(request, "accounts:profile")
    if user_has_device(user, confirmed=True) and not user.is_verified():
        # Someone with only the password must not be able to add a second factor of their own.
        return redirect(second_step_url(user, next_url))
    device = pending_device(user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        accepted, error = _check_token([device], form.cleaned_data["token"])
        if accepted is not None:
            with transaction.atomic():
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                services.audit_record(
                    actor=user, action="user.2fa-enrol", target=user, old=None, new={"device": device.name}
                )
            second_factor_login(request, device)
            messages.success(
                request, _("Your authenticator app is set up. You will be asked for a code at each login.")
            )
            return redirect(next_url)
        form.add_error("token", error)
    context = {
        "form": form,
        "next": next_url,
        "qr_svg": device_qr_svg(device),
        "secret": device_secret(device),
        "required": needs_two_factor(user) and not user.is_verified(),
    }
    return render(request, "accounts/otp_enrol.html", context)


# --- Password reset (Django's views, portal templates, namespaced URLs) ------------------------


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset_form.html"
    email_template_name = "emails/password_reset_body.txt"
    subject_template_name = "emails/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password-reset-done")

    def form_valid(self, form: Any) -> HttpResponse:
        # Over the rate: no email, but the very same answer, so the page reveals nothing.
        if not password_reset_allowed(self.request, form.cleaned_data["email"]):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password-reset-complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.audit_record(actor=form.user, action="user.password-reset", target=form.user)
        # Whoever can read the account's email may lift a lock on it (see accounts.lockout).
        lockout_clear(form.user.get_username())
        return response


# --- My account -------------------------------------------------------------------------------


@role_required()
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    password_form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST" and password_form.is_valid():
        services.user_set_password(actor=user, user=user, password=password_form.cleaned_data["new_password1"])
        update_session_auth_hash(request, user)
        messages.success(request, _("Your password has been changed."))
        return redirect("accounts:profile")
    context = {
        "password_form": password_form,
        "language_form": LanguageForm(initial={"language": preferred_language(user)}),
        "devices": TOTPDevice.objects.filter(user=user, confirmed=True).order_by("created_at"),
        "roles": services.user_roles_of(user),
        "carparks": _carparks_of(user),
        "needs_two_factor": needs_two_factor(user),
    }
    return render(request, "accounts/profile.html", context)


@role_required()
@require_POST
def device_remove(request: HttpRequest, pk: int) -> HttpResponse:
    device = get_object_or_404(TOTPDevice, pk=pk, user=request.user, confirmed=True)
    with transaction.atomic():
        device.delete()
        services.audit_record(
            actor=request.user, action="user.2fa-remove", target=request.user, old={"device": device.name}, new=None
        )
    messages.info(request, _("Removed “%(device)s”.") % {"device": device.name})
    return redirect("accounts:profile")


@role_required()
@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """The user's language (profile page and the top bar's menu): kept, and used from this answer on."""
    back = safe_next(request, "accounts:profile")
    form = LanguageForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the listed languages."))
        return redirect(back)
    chosen = form.cleaned_data["language"]
    services.user_set_language(actor=request.user, user=request.user, language=chosen)
    remember_language(request, chosen)
    translation.activate(chosen or translation.get_language_from_request(request))
    messages.success(request, _("Language saved."))
    return redirect(back)


def _carparks_of(user: Any) -> list[Any]:
    from carparks.models import CarPark

    return list(CarPark.objects.filter(pk__in=services.user_carpark_ids_of(user)))


# --- Administration ---------------------------------------------------------------------------


@role_required(ADMINISTRATOR)
def user_list(request: HttpRequest) -> HttpResponse:
    form = UserFilterForm(search_data(request.GET, "user_search"))
    filters = dict(form.cleaned_data) if form.is_valid() else {}
    filters["q"] = filters.pop("user_search", "")
    users = selectors.user_list(**{k: v for k, v in filters.items() if v})
    page = Paginator(users, 25).get_page(request.GET.get("page"))
    return render(request, "accounts/user_list.html", {"form": form, "page": page, "users": page.object_list})


def _send_invite(request: HttpRequest, user: Any) -> None:
    """Email a new user the standard set-password link (Django's password-reset token)."""
    reset = PasswordResetForm({"email": user.email})
    if reset.is_valid():
        transaction.on_commit(
            lambda: reset.save(
                request=request,
                use_https=request.is_secure(),
                subject_template_name="emails/account_invite_subject.txt",
                email_template_name="emails/account_invite_body.txt",
            )
        )


@role_required(ADMINISTRATOR)
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        invite = not data["password1"]
        with transaction.atomic():
            user = services.user_create(
                actor=request.user,
                username=data["username"],
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                password=data["password1"] or secrets.token_urlsafe(32),
                roles=data["roles"],
                carparks=data["carparks"],
            )
            if invite:
                _send_invite(request, user)
        if invite:
            text = _("User %(username)s created. A link to set the password went to %(email)s.")
        else:
            text = _("User %(username)s created.")
        messages.success(request, text % {"username": user.username, "email": user.email})
        return redirect("accounts:user-edit", pk=user.pk)
    return render(request, "accounts/user_form.html", {"form": form, "creating": True})


@role_required(ADMINISTRATOR)
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    initial = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "roles": services.user_roles_of(user),
        "carparks": services.user_carpark_ids_of(user),
    }
    form = UserForm(request.POST or None, initial=initial, user=user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if user == request.user and ADMINISTRATOR not in data["roles"]:
            form.add_error("roles", _("You cannot take the Administrator role away from yourself."))
        else:
            with transaction.atomic():
                services.user_update(
                    actor=request.user,
                    user=user,
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    email=data["email"],
                )
                services.user_set_roles(actor=request.user, user=user, roles=data["roles"])
                services.user_set_carparks(actor=request.user, user=user, carparks=data["carparks"])
            messages.success(request, _("Saved %(username)s.") % {"username": user.username})
            return redirect("accounts:user-edit", pk=user.pk)
    context = {
        "form": form,
        "subject": user,
        "creating": False,
        "has_two_factor": user_has_device(user, confirmed=True),
        "locked_until": account_locked_until(user.get_username()),
        "history": selectors.audit_entries(target=user)[:20],
    }
    return render(request, "accounts/user_form.html", context)


@role_required(ADMINISTRATOR)
@require_POST
def user_set_active(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    active = request.POST.get("active") == "1"
    if user == request.user and not active:
        messages.error(request, _("You cannot deactivate yourself."))
    else:
        services.user_set_active(actor=request.user, user=user, active=active)
        text = _("%(username)s reactivated.") if active else _("%(username)s deactivated.")
        messages.success(request, text % {"username": user.username})
    return redirect("accounts:user-edit", pk=user.pk)


@role_required(ADMINISTRATOR)
@require_POST
def user_reset_two_factor(request: HttpRequest, pk: int) -> HttpResponse:
    """For a lost phone: remove the user's devices; they enrol a new one at their next login."""
    user = get_object_or_404(User, pk=pk)
    with transaction.atomic():
        names = list(TOTPDevice.objects.filter(user=user).values_list("name", flat=True))
        TOTPDevice.objects.filter(user=user).delete()
        services.audit_record(actor=request.user, action="user.2fa-reset", target=user, old=names, new=[])
    messages.success(
        request,
        _("Two-factor devices of %(username)s removed; they enrol a new one at next login.")
        % {"username": user.username},
    )
    return redirect("accounts:user-edit", pk=user.pk)


@role_required(ADMINISTRATOR)
@require_POST
def user_unlock(request: HttpRequest, pk: int) -> HttpResponse:
    """Lift a login lock (someone locked the account by guessing its password), before it ends."""
    user = get_object_or_404(User, pk=pk)
    services.user_login_unlock(actor=request.user, user=user)
    messages.success(request, _("%(username)s can log in again.") % {"username": user.username})
    return redirect("accounts:user-edit", pk=user.pk)


@role_required(ADMINISTRATOR)
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(search_data(request.GET, "audit_search"))
    filters = dict(form.cleaned_data) if form.is_valid() else {}
    filters["q"] = filters.pop("audit_search", "")
    entries = selectors.audit_entries(**{k: v for k, v in filters.items() if v})
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "accounts/audit_list.html", {"form": form, "page": page, "entries": page.object_list})
