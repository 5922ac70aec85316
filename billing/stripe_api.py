"""The one place that builds the Stripe client (localstripe in development and tests)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from stripe import StripeClient, new_default_http_client

# A lost connection, a timeout, a 409 or a 5xx is retried by the client with the same idempotency key
# (our own key, or one the client makes up per request), so Stripe answers with what it already did.
NETWORK_RETRIES = 2
# Per try; with two retries and their back-off a call ends well inside a system step's two minutes.
TIMEOUT_SECONDS = 30


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> StripeClient:
    kwargs = {"base_addresses": {"api": api_base}} if api_base else {}
    return StripeClient(
        api_key,
        max_network_retries=NETWORK_RETRIES,
        http_client=new_default_http_client(timeout=TIMEOUT_SECONDS),
        **kwargs,
    )


def stripe_client() -> StripeClient:
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def stripe_js_url() -> str:
    """Stripe.js: from Stripe, or the copy localstripe serves when the API base points at it."""
    if settings.STRIPE_API_BASE:
        return settings.STRIPE_API_BASE.rstrip("/") + "/js.stripe.com/v3/"
    return "https://js.stripe.com/v3/"


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def localstripe_in_use() -> bool:
    """Whether the API base points at localstripe (development and tests), as for :func:`stripe_js_url`.

    localstripe 1.15 refuses parameters it does not model with a 400: ``mandate_data`` on a SetupIntent
    and ``mandate`` on a PaymentIntent. Those are left out there (docs/billing.md, SEPA Direct Debit).
    """
    return bool(settings.STRIPE_API_BASE)
