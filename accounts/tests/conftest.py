"""The password-reset throttle counts in the cache (Redis), which outlives a test; start each
accounts test with no counts."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _no_throttle_counts():
    cache.clear()
