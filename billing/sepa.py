"""SEPA Direct Debit through Stripe: the mandate (online by the customer's link, or on paper recorded by
staff), the PaymentIntent parameters of a debit, and a returned debit (a chargeback) reopening its invoice.

A SEPA method is saved only with its mandate: the reference, the text the customer accepted, when and
how. ``PaymentMethod.is_chargeable`` is false without ``mandate_accepted_at``, and the charge code picks
only chargeable methods (:func:`billing.payment_setup.chargeable_method`).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from billing.iban import iban_normalise
from billing.models import BillingException, Dispute, Invoice, Payment, PaymentMethod
from billing.payment_options import PaymentOption
from billing.stripe_api import localstripe_in_use, stripe_client
from carparks.models import Customer

SEPA_MANDATE_SALT = "billing.sepa-mandate"
MANDATE_REFERENCE_PREFIX = "PHQ"


class SepaError(Exception):
    """A mandate that cannot be recorded as given (shown to the person who gave it)."""


# --- the customer's link -------------------------------------------------------------------------


def sepa_mandate_token(*, customer: Customer) -> str:
    return signing.dumps({"customer": customer.pk}, salt=SEPA_MANDATE_SALT)


def sepa_mandate_customer(*, token: str) -> Customer:
    """The customer of a mandate link (the same signed-token mechanism and lifetime as the card link)."""
    try:
        data = signing.loads(token, salt=SEPA_MANDATE_SALT, max_age=settings.BILLING_CARD_LINK_MAX_AGE_DAYS * 86400)
    except signing.BadSignature as exc:
        raise SepaError(gettext("This link is invalid or has expired. Ask us for a new one.")) from exc
    customer = Customer.objects.filter(pk=data.get("customer")).first()
    if customer is None:
        raise SepaError(gettext("This link is invalid or has expired. Ask us for a new one."))
    return customer


def sepa_mandate_link(*, customer: Customer) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("billing:sepa-mandate", args=[sepa_mandate_token(customer=customer)])


def sepa_mandate_link_send(*, customer: Customer, key: str) -> bool:
    """Email the mandate link in the customer's language, once per ``key``."""
    from billing.services import _email_once

    return _email_once(
        key=key,
        template="billing_sepa_mandate_link",
        to=customer.invoice_email,
        context={
            "customer": customer,
            "mandate_link": sepa_mandate_link(customer=customer),
            "operator": settings.BILLING_OPERATOR,
        },
        language=customer.language,
    )


# --- the mandate ----------------------------------------------------------------------------------


def mandate_reference_for(*, customer: Customer, token: str) -> str:
    """The reference of the mandate a link offers: the same on every view of the link (it is in the text the
    customer reads and accepts), a new one once a mandate was saved, at most 35 characters (SEPA)."""
    saved = PaymentMethod.objects.filter(customer=customer, kind=PaymentMethod.Kind.SEPA_DEBIT).count()
    digest = hashlib.sha256(token.encode()).hexdigest()[:8].upper()
    return f"{MANDATE_REFERENCE_PREFIX}-{customer.pk}-{saved + 1}-{digest}"[:35]


def mandate_text(*, customer: Customer, reference: str, language: str | None = None) -> str:
    """The SEPA Core mandate wording in the customer's language, with the creditor's name, identifier and the
    mandate reference (kept with the method as the text that was accepted)."""
    operator = settings.BILLING_OPERATOR
    with translation.override(language or customer.language or settings.LANGUAGE_CODE):
        parts = [
            gettext("SEPA Direct Debit Mandate"),
            gettext("Creditor: %(name)s, %(street)s, %(postcode)s %(city)s")
            % {k: operator.get(k, "") for k in ("name", "street", "postcode", "city")},
            gettext("Creditor identifier: %(creditor_id)s") % {"creditor_id": operator.get("sepa_creditor_id", "")},
            gettext("Mandate reference: %(reference)s") % {"reference": reference},
            gettext(
                "By accepting this mandate, you authorise (A) %(name)s and Stripe, its payment service provider, "
                "to send instructions to your bank to debit your account and (B) your bank to debit your account "
                "in accordance with those instructions. As part of your rights, you are entitled to a refund "
                "from your bank under the terms and conditions of your agreement with your bank. A refund must "
                "be claimed within eight weeks starting from the date on which your account was debited. Your "
                "rights are explained in a statement that you can obtain from your bank."
            )
            % {"name": operator.get("name", "")},
            gettext(
                "We will tell you the amount and the date of each debit at least one day in advance with the invoice."
            ),
        ]
    return "\n\n".join(parts)


def _setup_intent_confirm(*, customer: Customer, iban: str, holder: str, reference: str, acceptance: dict) -> Any:
    """Create the SEPA PaymentMethod and a SetupIntent for it, confirmed with the customer's acceptance."""
    from billing.services import stripe_customer_ensure

    client = stripe_client()
    stripe_id = stripe_customer_ensure(customer=customer)
    key = f"sepa-{customer.pk}-{reference}-{hashlib.sha256(iban.encode()).hexdigest()[:12]}"
    method = client.v1.payment_methods.create(
        params={
            "type": "sepa_debit",
            "sepa_debit": {"iban": iban},
            "billing_details": {"name": holder, "email": customer.invoice_email or ""},
            "metadata": {"customer_id": str(customer.pk), "mandate_reference": reference},
        },
        options={"idempotency_key": f"{key}-pm"},
    )
    intent = client.v1.setup_intents.create(
        params={
            "customer": stripe_id,
            "usage": "off_session",
            "payment_method_types": ["sepa_debit"],
            "metadata": {"customer_id": str(customer.pk), "kind": "sepa_debit", "mandate_reference": reference},
        },
        options={"idempotency_key": f"{key}-seti"},
    )
    params: dict[str, Any] = {"payment_method": method.id}
    if not localstripe_in_use():
        params["mandate_data"] = mandate_data(acceptance)
    intent = client.v1.setup_intents.confirm(intent.id, params=params, options={"idempotency_key": f"{key}-confirm"})
    if intent.status != "succeeded":
        raise SepaError(gettext("The bank account was not accepted by our payment provider; check it and try again."))
    remote = client.v1.payment_methods.retrieve(method.id)
    if not getattr(remote, "customer", None):
        remote = client.v1.payment_methods.attach(method.id, params={"customer": stripe_id})
    return intent, remote, stripe_id


def mandate_data(acceptance: dict) -> dict:
    """Stripe's ``mandate_data`` for a SetupIntent confirmation: how the customer accepted the mandate."""
    if acceptance.get("type") == "offline":
        return {"customer_acceptance": {"type": "offline", "accepted_at": int(acceptance["accepted_at"])}}
    return {
        "customer_acceptance": {
            "type": "online",
            "accepted_at": int(acceptance["accepted_at"]),
            "online": {"ip_address": acceptance["ip_address"], "user_agent": acceptance["user_agent"]},
        }
    }


def _mandate_store(
    *,
    customer: Customer,
    iban: str,
    holder: str,
    reference: str,
    text: str,
    accepted_at: datetime,
    acceptance: dict,
) -> PaymentMethod:
    """Confirm the mandate's SetupIntent at the provider, then save the account as the default method."""
    from billing.services import _exceptions_resolve

    intent, remote, stripe_id = _setup_intent_confirm(
        customer=customer, iban=iban, holder=holder, reference=reference, acceptance=acceptance
    )
    sepa = remote.sepa_debit
    mandate = getattr(intent, "mandate", None)
    mandate_id = mandate if isinstance(mandate, str) else getattr(mandate, "id", "") or ""
    with transaction.atomic():
        Customer.objects.select_for_update().get(pk=customer.pk)
        existing = PaymentMethod.objects.filter(stripe_payment_method_id=remote.id).first()
        if existing:
            return existing
        PaymentMethod.objects.filter(customer=customer, is_default=True).update(is_default=False)
        saved = PaymentMethod.objects.create(
            customer=customer,
            kind=PaymentMethod.Kind.SEPA_DEBIT,
            stripe_customer_id=stripe_id,
            stripe_payment_method_id=remote.id,
            stripe_setup_intent_id=intent.id,
            last4=str(sepa.last4 or "")[:4],
            bank_code=str(getattr(sepa, "bank_code", "") or "")[:20],
            country=str(getattr(sepa, "country", "") or "")[:2],
            mandate_reference=reference,
            stripe_mandate_id=mandate_id,
            mandate_text=text,
            mandate_accepted_at=accepted_at,
            mandate_acceptance=acceptance,
            is_default=True,
        )
        _exceptions_resolve(
            BillingException.objects.filter(customer=customer, kind=BillingException.Kind.MISSING_PAYMENT_METHOD),
            resolution=f"SEPA mandate {reference} saved.",
        )
    return saved


def sepa_mandate_accept(
    *, customer: Customer, token: str, account_holder: str, iban: str, ip_address: str, user_agent: str
) -> PaymentMethod:
    """The customer accepted the mandate on the link's page: save the account with its mandate at Stripe and
    here, make it the default, and collect the customer's invoices by direct debit from now on (when their
    products offer it)."""
    from billing.payment_setup import payment_option_apply

    iban = iban_normalise(iban)
    holder = " ".join(str(account_holder or "").split())
    if not holder:
        raise ValidationError(gettext("Enter the name of the account holder."))
    reference = mandate_reference_for(customer=customer, token=token)
    text = mandate_text(customer=customer, reference=reference)
    accepted_at = timezone.now()
    acceptance = {
        "type": "online",
        "ip_address": ip_address or "",
        "user_agent": (user_agent or "")[:500],
        "accepted_at": int(accepted_at.timestamp()),
        "account_holder": holder,
    }
    method = _mandate_store(
        customer=customer,
        iban=iban,
        holder=holder,
        reference=reference,
        text=text,
        accepted_at=accepted_at,
        acceptance=acceptance,
    )
    payment_option_apply(customer=customer, option=PaymentOption.SEPA_DEBIT, user=None, why="mandate accepted")
    return method


def sepa_mandate_record_offline(
    *, customer: Customer, account_holder: str, iban: str, signed_on: date, user: Any
) -> PaymentMethod:
    """Staff record a mandate the customer signed on paper (the signature date is the acceptance date)."""
    from accounts.services import audit_record
    from billing.payment_setup import payment_option_apply

    iban = iban_normalise(iban)
    holder = " ".join(str(account_holder or "").split())
    if not holder:
        raise ValidationError(gettext("Enter the name of the account holder."))
    if signed_on is None or signed_on > timezone.localdate():
        raise ValidationError(gettext("Enter the date the customer signed the mandate (not in the future)."))
    token = f"offline-{customer.pk}-{timezone.now().isoformat()}"
    reference = mandate_reference_for(customer=customer, token=token)
    text = mandate_text(customer=customer, reference=reference)
    accepted_at = timezone.make_aware(datetime.combine(signed_on, time(12, 0)))
    acceptance = {
        "type": "offline",
        "accepted_at": int(accepted_at.timestamp()),
        "signed_on": signed_on.isoformat(),
        "recorded_by": user.get_username() if user is not None else "",
        "account_holder": holder,
    }
    method = _mandate_store(
        customer=customer,
        iban=iban,
        holder=holder,
        reference=reference,
        text=text,
        accepted_at=accepted_at,
        acceptance=acceptance,
    )
    audit_record(
        actor=user,
        action="billing.sepa_mandate_recorded",
        target=customer,
        new={"mandate_reference": reference, "signed_on": signed_on.isoformat(), "iban_last4": method.last4},
    )
    payment_option_apply(customer=customer, option=PaymentOption.SEPA_DEBIT, user=user, why="paper mandate recorded")
    return method


# --- debits ---------------------------------------------------------------------------------------


def debit_params(method: PaymentMethod) -> dict[str, Any]:
    """What a direct debit's PaymentIntent adds to an off-session charge: the method type and its mandate."""
    params: dict[str, Any] = {"payment_method_types": ["sepa_debit"]}
    if method.stripe_mandate_id and not localstripe_in_use():
        params["mandate"] = method.stripe_mandate_id
    return params


def prenotification(invoice: Invoice) -> dict[str, Any] | None:
    """What the invoice email and PDF tell a direct-debit customer in advance: amount, debit date, account,
    mandate reference and creditor identifier. None when the invoice is not collected by direct debit."""
    from billing.payment_setup import chargeable_method

    if invoice.payment_option != PaymentOption.SEPA_DEBIT:
        return None
    method = chargeable_method(invoice.customer_id, PaymentOption.SEPA_DEBIT)
    if method is None:
        return None
    return {
        "amount": invoice.gross_total,
        "currency": invoice.currency,
        "debit_date": invoice.due_date or invoice.issue_date,
        "last4": method.last4,
        "mandate_reference": method.mandate_reference,
        "creditor_id": settings.BILLING_OPERATOR.get("sepa_creditor_id", ""),
    }


# --- returned debits (chargebacks) ----------------------------------------------------------------


def sepa_chargeback(*, invoice: Invoice, dispute: Dispute) -> None:
    """A direct debit came back after it succeeded (Stripe reports it as a dispute, up to eight weeks later;
    it cannot be contested): the charge is returned (no longer the invoice's live charge, so the invoice can
    be debited again), the invoice is open again, the money taken back is booked once, and
    ``payment.failed`` (method sepa_debit) starts the returned-debit workflow. Caller holds the invoice lock."""
    from billing.services import _invoice_event

    charge = dispute.payment
    if charge.status == Payment.Status.SUCCEEDED:
        charge.status = Payment.Status.RETURNED
        charge.save(update_fields=["status", "updated_at"])
    _, booked = Payment.objects.get_or_create(
        # The key _dispute_funds uses for the same withdrawal: whichever sees it first books it, once.
        idempotency_key=f"stripe-dispute-{dispute.stripe_dispute_id}-withdrawn",
        defaults={
            "invoice": invoice,
            "kind": Payment.Kind.CHARGEBACK,
            "status": Payment.Status.SUCCEEDED,
            "method": PaymentOption.SEPA_DEBIT,
            "amount": dispute.amount,
            "currency": dispute.currency,
            "stripe_payment_intent_id": charge.stripe_payment_intent_id,
            "stripe_charge_id": charge.stripe_charge_id,
            "reason": f"Dispute {dispute.stripe_dispute_id}: direct debit returned ({dispute.reason or 'no reason'})",
        },
    )
    if booked:
        invoice.amount_paid = max(invoice.amount_paid - dispute.amount, Decimal("0.00"))
        invoice.save(update_fields=["amount_paid"])
    if invoice.state in (Invoice.State.PAID, Invoice.State.DISPUTED):
        from_state = invoice.state
        invoice.reopen()
        invoice.paid_at = None
        invoice.save(update_fields=["state", "paid_at"])
        _invoice_event(
            invoice,
            from_state,
            note=f"Direct debit returned by the bank ({dispute.reason or 'no reason given'}, "
            f"{dispute.stripe_dispute_id})",
        ).save()
    returned_debit_emit(invoice=invoice, dispute=dispute)


def returned_debit_emit(*, invoice: Invoice, dispute: Dispute) -> Any:
    """``payment.failed`` with method sepa_debit for a returned debit, once per dispute."""
    from billing.services import PAYMENT_FAILED
    from workflows.starting import event_emit

    reason = dispute.reason or "returned"
    return event_emit(
        name=PAYMENT_FAILED,
        payload={
            "invoice_id": invoice.pk,
            "invoice_number": invoice.display_number,
            "customer_id": invoice.customer_id,
            "amount": str(dispute.amount),
            "method": PaymentOption.SEPA_DEBIT.value,
            "failure": f"Direct debit returned by the bank: {reason}",
            "failure_code": reason,
            "payment_id": dispute.payment_id,
            "dispute_id": dispute.stripe_dispute_id,
        },
        business_object=invoice,
        event_id=f"{PAYMENT_FAILED}:{invoice.pk}:dispute:{dispute.stripe_dispute_id}",
    )


# --- the returned-debit workflow's steps ----------------------------------------------------------


def returned_debit_notice_send(*, invoice: Invoice, reason: str, key: str) -> bool:
    """Tell the customer their direct debit came back (with the bank's reason) and what happens next."""
    from billing.services import _email_once

    return _email_once(
        key=key,
        template="billing_returned_debit",
        to=invoice.customer.invoice_email,
        context={
            "invoice": invoice,
            "customer": invoice.customer,
            "reason": reason,
            "mandate_link": sepa_mandate_link(customer=invoice.customer),
            "operator": settings.BILLING_OPERATOR,
        },
        invoice=invoice,
        language=invoice.customer.language,
    )


def invoice_switch_to_transfer(*, invoice: Invoice, key: str) -> bool:
    """Collect an unpaid direct-debit invoice by bank transfer instead: the customer's option becomes bank
    transfer, the invoice gets its transfer reference, its PDF the transfer details, and it is emailed again
    (once per ``key``). The amounts do not change. Returns whether the email was sent now."""
    from billing.bank_transfer import invoice_payment_fields
    from billing.documents import invoice_documents_render
    from billing.payment_setup import payment_option_apply
    from billing.services import invoice_send

    customer = invoice.customer
    payment_option_apply(
        customer=customer, option=PaymentOption.BANK_TRANSFER, user=None, why=f"direct debit of {invoice} returned"
    )
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
        if not locked.is_payable:
            return False
        if locked.payment_option != PaymentOption.BANK_TRANSFER:
            locked.customer.payment_option = PaymentOption.BANK_TRANSFER
            locked.save(update_fields=invoice_payment_fields(locked, locked.customer))
    locked = invoice_documents_render(invoice=locked, force=True)
    return invoice_send(invoice=locked, key=f"invoice-transfer:{key}")
