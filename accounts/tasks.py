"""Background jobs of the accounts app."""

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone


@shared_task
def worker_heartbeat() -> None:
    """Beat asks a worker to stamp the cache; /health reads how old the stamp is."""
    cache.set("worker-heartbeat", timezone.now().isoformat(), timeout=None)
