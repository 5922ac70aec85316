"""The customer page's Payment card (``{% customer_payment_card customer %}``), kept in billing."""

from __future__ import annotations

from typing import Any

from django import template

from accounts.roles import has_role
from billing.models import PaymentMethod
from billing.payment_options import PaymentOption

register = template.Library()


@register.inclusion_tag("billing/_customer_payment.html", takes_context=True)
def customer_payment_card(context: template.Context, customer: Any) -> dict[str, Any]:
    from billing.sepa_views import PAYMENT_EDIT_ROLES

    request = context.get("request")
    user = getattr(request, "user", None)
    return {
        "customer": customer,
        "option_label": PaymentOption(customer.payment_option).label,
        "methods": list(PaymentMethod.objects.filter(customer=customer, detached_at__isnull=True)[:20]),
        "choices": PaymentOption.choices,
        "may_change": user is not None and has_role(user, *PAYMENT_EDIT_ROLES),
        "csrf_token": context.get("csrf_token"),
    }
