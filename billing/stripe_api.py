"""The one place that builds the Stripe client (localstripe in development and tests)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from stripe import StripeClient


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> StripeClient:
    kwargs = {"base_addresses": {"api": api_base}} if api_base else {}
    return StripeClient(api_key, max_network_retries=0, **kwargs)


def stripe_client() -> StripeClient:
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def stripe_js_url() -> str:
    """Stripe.js: from Stripe, or the copy localstripe serves when the API base points at it."""
    if settings.STRIPE_API_BASE:
        return settings.STRIPE_API_BASE.rstrip("/") + "/js.stripe.com/v3/"
    return "https://js.stripe.com/v3/"


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())
