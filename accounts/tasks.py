"""Background jobs of the accounts app."""

from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "worker-heartbeat"


@shared_task
def worker_heartbeat() -> None:
    """Beat asks a worker to stamp the cache every 30 s; /health reads how old the stamp is."""
    cache.set(HEARTBEAT_KEY, timezone.now().isoformat(), timeout=None)


@worker_ready.connect
def _stamp_heartbeat_on_start(**kwargs: Any) -> None:
    # So /health turns green as soon as a worker is up, not only after beat's first tick.
    worker_heartbeat()
