"""``/health``: is the database, the broker and a Celery worker (fed by beat) alive?

200 with every part "ok", or 503 naming the parts that are down. No login: load balancers and
``scripts/smoke_run.sh`` call it. It reveals states, never URLs or credentials.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

from accounts.tasks import HEARTBEAT_KEY
from parkinghq.cache import cache_available

# Beat queues a heartbeat every 30 s (parkinghq/schedules.py); older than this and no worker runs it.
HEARTBEAT_MAX_AGE = timedelta(seconds=120)


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        return f"down: {type(exc).__name__}"
    return "ok"


def check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if url.startswith("filesystem://"):
        # The embedded broker is a folder: it is up when its folders exist and are writable.
        for key in ("data_folder_in", "data_folder_out", "control_folder"):
            folder = options.get(key)
            if not folder or not os.access(folder, os.W_OK | os.X_OK):
                return f"down: broker folder {key} is missing or not writable"
        return "ok"
    try:
        with Connection(url, connect_timeout=2, transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:
        return f"down: {type(exc).__name__}"
    return "ok"


def check_worker() -> str:
    try:
        stamp = cache.get(HEARTBEAT_KEY)
    except Exception as exc:
        return f"down: cache unavailable ({type(exc).__name__})"
    if not cache_available(cache):  # the Redis cache answers a miss while unreachable
        return "down: cache unavailable"
    if not stamp:
        return "down: no heartbeat from a worker yet"
    age = timezone.now() - datetime.fromisoformat(stamp)
    if age > HEARTBEAT_MAX_AGE:
        return f"down: last heartbeat {int(age.total_seconds())} s ago"
    return "ok"


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    parts = {"database": check_database(), "broker": check_broker(), "worker": check_worker()}
    failing = [name for name, state in parts.items() if state != "ok"]
    body = {"status": "ok" if not failing else "down", "failing": failing, **parts}
    return JsonResponse(body, status=200 if not failing else 503)
