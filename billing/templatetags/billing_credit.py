"""The customer page's credit balance (``{% customer_credit_card customer %}``): over-payments by bank transfer
and what was used of them (``CustomerCredit``), kept in billing."""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Sum

from billing.models import ZERO, CustomerCredit

register = template.Library()

ROWS = 20


@register.inclusion_tag("billing/_customer_credit.html")
def customer_credit_card(customer: Any) -> dict[str, Any]:
    credits = CustomerCredit.objects.filter(customer=customer)
    total = credits.aggregate(total=Sum("amount"))["total"] or ZERO
    rows = list(credits.select_related("invoice", "bank_entry__statement")[: ROWS + 1])
    return {"balance": total, "rows": rows[:ROWS], "more": len(rows) > ROWS, "customer": customer}
