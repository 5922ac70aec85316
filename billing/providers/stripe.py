"""Stripe as a :class:`~billing.providers.PaymentProvider`: card and SEPA Direct Debit.

Every method delegates to the code that has always done the work (``billing.services``, ``billing.sepa``,
``billing.stripe_api``), so routing a call through the interface changes no behaviour: the same idempotency
keys, the same lost-answer handling, the same webhook processing.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings

from billing.providers import EventInvalid, ProviderEvent, ProviderResult

#: Stripe's event types by what they mean to the ledger.
EVENT_KINDS = {
    "payment_intent.succeeded": "payment.succeeded",
    "payment_intent.processing": "payment.processing",
    "payment_intent.payment_failed": "payment.failed",
    "charge.dispute.created": "dispute.opened",
    "charge.dispute.funds_withdrawn": "dispute.opened",
    "charge.dispute.closed": "dispute.closed",
    "charge.dispute.funds_reinstated": "dispute.closed",
    "refund.created": "refund.updated",
    "refund.updated": "refund.updated",
    "refund.failed": "refund.updated",
    "charge.refunded": "refund.updated",
    "setup_intent.succeeded": "setup.succeeded",
}


def _result(intent: Any) -> ProviderResult:
    from billing.services import _charge_id

    error = getattr(intent, "last_payment_error", None)
    return ProviderResult(
        status=intent.status if intent.status in ("succeeded", "processing") else _pending_or_failed(intent),
        payment_id=intent.id,
        charge_id=_charge_id(intent),
        failure_code=(getattr(error, "code", "") or "") if error else "",
        failure_message=(getattr(error, "message", "") or "") if error else "",
        raw=intent,
    )


def _pending_or_failed(intent: Any) -> str:
    if intent.status in ("requires_capture", "requires_confirmation", "requires_action"):
        return "pending"
    return "failed"


class Provider:
    name = "stripe"
    options = ("card", "sepa_debit")

    def customer_ensure(self, customer: Any) -> str:
        from billing.services import stripe_customer_ensure

        return stripe_customer_ensure(customer=customer)

    def setup_start(self, customer: Any, kind: str) -> str:
        if kind == "sepa_debit":
            from billing.sepa import sepa_mandate_link

            return sepa_mandate_link(customer=customer)
        from billing.services import card_setup_link

        return card_setup_link(customer=customer)

    def method_from_setup(self, customer: Any, setup_id: str) -> Any:
        from billing.services import payment_method_save

        return payment_method_save(customer=customer, setup_intent_id=setup_id)

    def charge(self, invoice: Any, payment: Any, method: Any) -> ProviderResult:
        """A PaymentIntent with the row's idempotency key (``payment.payment_method`` is ``method``)."""
        from billing.services import _charge_intent_create

        if payment.payment_method_id != method.pk:
            raise ValueError("the ledger row names another payment method")
        intent = _charge_intent_create(invoice, payment)
        if intent is None:  # declined without a PaymentIntent: the row holds Stripe's reason
            return ProviderResult("failed", failure_code=payment.failure_code, failure_message=payment.failure_message)
        return _result(intent)

    def charge_lookup(self, payment: Any) -> ProviderResult | None:
        from billing.services import _charge_intent_known

        intent = _charge_intent_known(payment)
        return None if intent is None else _result(intent)

    def refund(self, refund: Any) -> Any:
        from billing.services import refund_send

        return refund_send(refund=refund)

    def event_parse(self, payload: bytes, signature: str) -> ProviderEvent:
        try:
            event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
        except (ValueError, stripe.SignatureVerificationError) as exc:
            raise EventInvalid("invalid payload or signature") from exc
        data = event.data.object.to_dict() if hasattr(event.data.object, "to_dict") else dict(event.data.object)
        return ProviderEvent(
            id=event.id, type=event.type, kind=EVENT_KINDS.get(event.type, "other"), data=data, raw=event
        )

    def event_process(self, event: ProviderEvent) -> str:
        from billing.services import stripe_event_process

        return stripe_event_process(event=event.raw)
