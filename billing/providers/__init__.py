"""Payment providers behind one narrow interface: who collects card and SEPA Direct Debit payments.

The ledger (``Payment``), the invoice states, dunning and the accounting export are the product's own;
a provider only saves a customer's instrument, moves money and reports what happened. Which provider
collects an option is configuration: ``settings.BILLING_PROVIDERS`` maps each provider-collected option
(``PROVIDER_COLLECTED``: card, sepa_debit) to a module name under ``billing.providers`` (``stripe`` today).
A bank transfer has no provider: the customer pays, the bank statement import books it.

Adding a provider (see docs/billing.md, "Payment providers") is one more module here with a class named
``Provider`` that implements :class:`PaymentProvider`, and its name in ``BILLING_PROVIDERS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from django.conf import settings
from django.utils.translation import gettext

from billing.payment_options import PROVIDER_COLLECTED, PaymentOption

if TYPE_CHECKING:
    from billing.models import Invoice, Payment, PaymentMethod
    from carparks.models import Customer


class ProviderError(Exception):
    """A provider cannot be chosen or cannot do what was asked; the message says why."""


class EventInvalid(ProviderError):
    """A webhook whose payload or signature the provider does not accept (answer 400, store nothing)."""


@dataclass(frozen=True)
class ProviderResult:
    """A charge as the provider answered it.

    ``status`` is one of ``succeeded``, ``processing`` (a direct debit: the bank answers in days),
    ``pending`` (waits for the customer or a capture), ``failed``; ``None`` from ``charge_lookup`` means
    the provider made no payment for the ledger row.
    """

    status: str
    payment_id: str = ""  # the provider's payment (Stripe: the PaymentIntent)
    charge_id: str = ""
    failure_code: str = ""
    failure_message: str = ""
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook, normalised: ``kind`` is one of ``payment.succeeded``, ``payment.processing``,
    ``payment.failed``, ``dispute.opened``, ``dispute.closed``, ``refund.updated``, ``setup.succeeded`` or
    ``other``; ``type`` is the provider's own name, ``data`` the object it concerns."""

    id: str
    type: str
    kind: str
    data: dict[str, Any]
    raw: Any = field(default=None, compare=False, repr=False)


@runtime_checkable
class PaymentProvider(Protocol):
    """What the product asks of a payment provider (every call idempotent for the same ledger row)."""

    name: str
    options: tuple[str, ...]  # the PaymentOption values it can collect

    def customer_ensure(self, customer: Customer) -> str:
        """The provider's id of the customer, created once."""

    def setup_start(self, customer: Customer, kind: str) -> str:
        """Where the customer saves an instrument of ``kind`` (card, sepa_debit): the signed page's URL,
        which collects the card or the IBAN and the mandate acceptance."""

    def method_from_setup(self, customer: Customer, setup_id: str) -> PaymentMethod:
        """Save the instrument a finished setup (Stripe: a SetupIntent) produced, once."""

    def charge(self, invoice: Invoice, payment: Payment, method: PaymentMethod) -> ProviderResult:
        """Collect ``payment.amount`` off-session from ``method``, with the ledger row's idempotency key."""

    def charge_lookup(self, payment: Payment) -> ProviderResult | None:
        """The payment the provider already made for the ledger row (after a lost answer), else None."""

    def refund(self, refund: Payment) -> Payment:
        """Send a pending refund row once and record the answer."""

    def event_parse(self, payload: bytes, signature: str) -> ProviderEvent:
        """Verify and normalise a webhook; raises :class:`EventInvalid`."""

    def event_process(self, event: ProviderEvent) -> str:
        """Apply a verified event to the ledger once; returns what happened, for the log."""


def _configured() -> dict[str, str]:
    return dict(getattr(settings, "BILLING_PROVIDERS", {}) or {})


@cache
def _load(name: str) -> PaymentProvider:
    try:
        module = importlib.import_module(f"billing.providers.{name}")
    except ModuleNotFoundError as exc:
        raise ProviderError(f"There is no payment provider module billing.providers.{name}.") from exc
    provider = module.Provider()
    if not isinstance(provider, PaymentProvider):
        raise ProviderError(f"billing.providers.{name}.Provider does not implement PaymentProvider.")
    return provider


def provider_named(name: str) -> PaymentProvider:
    """A provider by its module name (its webhook URL names it: Stripe's events go to Stripe's module)."""
    return _load(name)


def provider_for(option: str) -> PaymentProvider:
    """The provider that collects ``option`` (settings.BILLING_PROVIDERS); a bank transfer has none."""
    if option not in PROVIDER_COLLECTED:
        label = PaymentOption(option).label if option in PaymentOption.values else repr(option)
        raise ProviderError(gettext("%(option)s is not collected by a payment provider.") % {"option": label})
    name = _configured().get(option)
    if not name:
        raise ProviderError(
            gettext("No payment provider is configured for %(option)s (settings.BILLING_PROVIDERS).")
            % {"option": option}
        )
    provider = _load(name)
    if option not in provider.options:
        raise ProviderError(
            gettext("Payment provider %(provider)s cannot collect %(option)s.") % {"provider": name, "option": option}
        )
    return provider
