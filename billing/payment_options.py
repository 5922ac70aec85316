"""The ways a customer can pay: the one list the models, forms, API and workflows share.

A product offers some of them (``carparks.Product.payment_options``), a customer uses one
(``carparks.Customer.payment_option``), and each invoice records the one it was issued for
(``Invoice.payment_option``). How an option is collected and what happens when collection fails
are workflow steps: ``payment.failed`` carries the option as ``method``, so the failed-payment flow of
a returned direct debit is a different workflow (bound by a condition on ``event.method``) from the
one for a declined card. This module imports no models, so ``carparks`` can use it.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class PaymentOption(models.TextChoices):
    CARD = "card", _("Card")
    SEPA_DEBIT = "sepa_debit", _("SEPA Direct Debit")
    BANK_TRANSFER = "bank_transfer", _("Bank transfer on invoice")


#: Options collected by the payment provider from a saved instrument (a ``billing.PaymentMethod``).
PROVIDER_COLLECTED = (PaymentOption.CARD, PaymentOption.SEPA_DEBIT)


def default_product_options() -> list[str]:
    """What a new product offers until staff choose: card and SEPA Direct Debit."""
    return [PaymentOption.CARD.value, PaymentOption.SEPA_DEBIT.value]
