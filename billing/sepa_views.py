"""SEPA Direct Debit pages: the customer's mandate page (signed link, public), and on the customer page the
payment option change, the paper mandate form and a saved mandate's text (staff).

Who may: every role that sees the customer sees the payment card; Finance, Customer care, Supervisors and
Administrators change the option and record a paper mandate (customer edits in billing matters).
"""

from __future__ import annotations

import logging

import stripe
from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.roles import ADMINISTRATOR, AGENT, CARE, FINANCE, MANAGER, SUPERVISOR, role_required
from billing import payment_setup, sepa
from billing.iban import IbanField
from billing.models import PaymentMethod
from billing.payment_options import PaymentOption
from carparks.access import customers_for_user, get_for_user

logger = logging.getLogger(__name__)

VIEW_ROLES = (ADMINISTRATOR, SUPERVISOR, AGENT, CARE, FINANCE, MANAGER)
PAYMENT_EDIT_ROLES = (ADMINISTRATOR, SUPERVISOR, FINANCE, CARE)


class MandateForm(forms.Form):
    account_holder = forms.CharField(label=gettext_lazy("Account holder"), max_length=140)
    iban = IbanField()
    accept = forms.BooleanField(
        label=gettext_lazy("I accept the SEPA Direct Debit mandate above."),
        error_messages={"required": gettext_lazy("Accept the mandate to save the account.")},
    )


class OfflineMandateForm(forms.Form):
    account_holder = forms.CharField(label=gettext_lazy("Account holder"), max_length=140)
    iban = IbanField()
    signed_on = forms.DateField(
        label=gettext_lazy("Signed on"),
        help_text=gettext_lazy("The date of the customer's signature on the paper mandate."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_signed_on(self):  # noqa: ANN201
        value = self.cleaned_data["signed_on"]
        if value > timezone.localdate():
            raise ValidationError(_("The signature date cannot be in the future."))
        return value


class PaymentOptionForm(forms.Form):
    payment_option = forms.ChoiceField(label=gettext_lazy("Payment option"), choices=PaymentOption.choices)


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


@require_http_methods(["GET", "POST"])
def sepa_mandate(request: HttpRequest, token: str) -> HttpResponse:
    """Public: the customer reads the mandate, enters account holder and IBAN, and accepts."""
    try:
        customer = sepa.sepa_mandate_customer(token=token)
    except sepa.SepaError as exc:
        return render(
            request, "billing/card_setup_invalid.html", {"error": str(exc), "operator": settings.BILLING_OPERATOR},
            status=400,
        )  # fmt: skip
    with translation.override(customer.language or settings.LANGUAGE_CODE):
        reference = sepa.mandate_reference_for(customer=customer, token=token)
        form = MandateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                method = sepa.sepa_mandate_accept(
                    customer=customer,
                    token=token,
                    account_holder=form.cleaned_data["account_holder"],
                    iban=form.cleaned_data["iban"],
                    ip_address=_client_ip(request),
                    user_agent=request.headers.get("User-Agent", ""),
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            except sepa.SepaError as exc:
                form.add_error("iban", str(exc))
            except stripe.StripeError:
                logger.exception("SEPA mandate of customer %s: Stripe refused or was not reachable", customer.pk)
                form.add_error(
                    None, _("Our payment provider is not reachable right now. Please try again in a few minutes.")
                )
            else:
                return render(
                    request,
                    "billing/sepa_mandate_done.html",
                    {"method": method, "customer": customer, "operator": settings.BILLING_OPERATOR},
                )
        status = 400 if request.method == "POST" else 200
        return render(
            request,
            "billing/sepa_mandate.html",
            {
                "customer": customer,
                "form": form,
                "reference": reference,
                "mandate_text": sepa.mandate_text(customer=customer, reference=reference),
                "operator": settings.BILLING_OPERATOR,
            },
            status=status,
        )


@role_required(*PAYMENT_EDIT_ROLES)
@require_POST
def payment_option_change(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_for_user(customers_for_user(request.user), pk)
    form = PaymentOptionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the payment options."))
        return redirect("carparks:customer-detail", pk=customer.pk)
    try:
        change = payment_setup.customer_payment_option_set(
            customer=customer, option=form.cleaned_data["payment_option"], user=request.user
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        (messages.info if change.outcome == "mandate_requested" else messages.success)(request, change.message)
    return redirect("carparks:customer-detail", pk=customer.pk)


@role_required(*PAYMENT_EDIT_ROLES)
@require_http_methods(["GET", "POST"])
def sepa_mandate_offline(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_for_user(customers_for_user(request.user), pk)
    form = OfflineMandateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            method = sepa.sepa_mandate_record_offline(
                customer=customer,
                account_holder=form.cleaned_data["account_holder"],
                iban=form.cleaned_data["iban"],
                signed_on=form.cleaned_data["signed_on"],
                user=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except sepa.SepaError as exc:
            form.add_error("iban", str(exc))
        except stripe.StripeError:
            logger.exception("paper SEPA mandate of customer %s: Stripe refused or was not reachable", customer.pk)
            form.add_error(
                None, _("Our payment provider is not reachable right now. Please try again in a few minutes.")
            )
        else:
            messages.success(
                request,
                _("The paper mandate %(reference)s is saved; invoices are collected by SEPA Direct Debit.")
                % {"reference": method.mandate_reference},
            )
            return redirect("carparks:customer-detail", pk=customer.pk)
    return render(
        request,
        "billing/sepa_mandate_offline.html",
        {"customer": customer, "form": form},
        status=400 if request.method == "POST" else 200,
    )


@role_required(*VIEW_ROLES)
def sepa_mandate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The text of a saved mandate, as the customer accepted it, with how and when."""
    method = get_object_or_404(PaymentMethod, pk=pk, kind=PaymentMethod.Kind.SEPA_DEBIT)
    customer = get_for_user(customers_for_user(request.user), method.customer_id)
    return render(request, "billing/sepa_mandate_detail.html", {"customer": customer, "method": method})
