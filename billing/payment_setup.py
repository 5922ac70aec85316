"""Which payment option a customer uses, and the saved method a charge of each option takes.

Staff (the customer page), the API and the customer (by accepting a SEPA mandate) change the option here,
and only here. Switching to SEPA Direct Debit needs a signed mandate: until the customer has accepted one,
the mandate link is emailed and the customer stays on the option they had, so no invoice is left without a
way to collect it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from billing.models import PaymentMethod
from billing.payment_options import PaymentOption
from carparks.models import Contract, Customer

# Contracts whose products decide which options the customer may use.
LIVE_CONTRACT_STATES = (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED)


def chargeable_method(customer_id: int, kind: str) -> PaymentMethod | None:
    """The customer's saved method of ``kind`` that may be charged: live, and for SEPA with an accepted
    mandate; the default first, then the newest."""
    methods = PaymentMethod.objects.filter(customer_id=customer_id, kind=kind, detached_at__isnull=True).order_by(
        "-is_default", "-created_at", "-pk"
    )
    return next((method for method in methods if method.is_chargeable), None)


def options_offered(customer: Customer) -> list[str]:
    """The options every product of the customer's live contracts offers (all options without one)."""
    offered = [choice.value for choice in PaymentOption]
    for options in (
        Contract.objects.filter(customer=customer, state__in=LIVE_CONTRACT_STATES)
        .values_list("product__payment_options", flat=True)
        .distinct()
    ):
        offered = [option for option in offered if option in (options or [])]
    return offered


@dataclass(frozen=True)
class OptionChange:
    option: str  # the option the customer uses now
    requested: str  # the option asked for
    outcome: str  # "changed", "unchanged" or "mandate_requested"
    message: str  # for the person who asked, translated


def _check_offered(customer: Customer, option: str) -> None:
    if option not in PaymentOption.values:
        raise ValidationError(gettext("Choose one of the payment options."), code="invalid")
    if option not in options_offered(customer):
        raise ValidationError(
            gettext("The products of this customer's contracts do not offer %(option)s.")
            % {"option": PaymentOption(option).label},
            code="not_offered",
        )


def payment_option_apply(*, customer: Customer, option: str, user: Any, why: str) -> bool:
    """Set the option (audited) when it differs and the customer's products offer it; returns whether it
    changed. Used once a precondition holds (a mandate was just accepted)."""
    from accounts.services import audit_record

    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.payment_option == option or option not in options_offered(locked):
            return False
        old = locked.payment_option
        Customer.objects.filter(pk=customer.pk).update(payment_option=option)
        customer.payment_option = option
        if option in (PaymentOption.CARD, PaymentOption.SEPA_DEBIT):
            method = chargeable_method(customer.pk, option)
            if method is not None and not method.is_default:
                PaymentMethod.objects.filter(customer=customer, is_default=True).update(is_default=False)
                PaymentMethod.objects.filter(pk=method.pk).update(is_default=True)
        audit_record(
            actor=user,
            action="billing.payment_option_changed",
            target=customer,
            old={"payment_option": old},
            new={"payment_option": option, "why": why},
        )
    return True


def customer_payment_option_set(*, customer: Customer, option: str, user: Any) -> OptionChange:
    """Change how the customer pays. The option must be offered by the products of the customer's live
    contracts. SEPA Direct Debit without a chargeable mandate: the mandate link is emailed (in the customer's
    language) and the customer keeps the current option until they accept it."""
    from billing.sepa import sepa_mandate_link_send

    _check_offered(customer, option)
    customer.refresh_from_db(fields=["payment_option"])
    if customer.payment_option == option:
        return OptionChange(option, option, "unchanged", gettext("The payment option is unchanged."))
    if option == PaymentOption.SEPA_DEBIT and chargeable_method(customer.pk, option) is None:
        from django.utils import timezone

        from accounts.services import audit_record

        if not customer.invoice_email:
            raise ValidationError(
                gettext("The customer has no invoice email address to send the mandate link to; add one first."),
                code="no_email",
            )
        sent_key = f"sepa-mandate-link:{customer.pk}:{timezone.now():%Y%m%d%H%M%S%f}"
        transaction.on_commit(lambda: sepa_mandate_link_send(customer=customer, key=sent_key))
        audit_record(
            actor=user,
            action="billing.sepa_mandate_requested",
            target=customer,
            old={"payment_option": customer.payment_option},
            new={"requested": option},
        )
        return OptionChange(
            customer.payment_option,
            option,
            "mandate_requested",
            gettext(
                "The SEPA mandate link was emailed to %(email)s. Invoices are collected by %(current)s until the "
                "customer accepts the mandate."
            )
            % {"email": customer.invoice_email, "current": PaymentOption(customer.payment_option).label},
        )
    payment_option_apply(customer=customer, option=option, user=user, why="changed by staff")
    return OptionChange(
        option,
        option,
        "changed",
        gettext("The payment option is now %(option)s.") % {"option": PaymentOption(option).label},
    )
