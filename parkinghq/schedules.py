"""Every periodic job of the product, in one place (read by Celery beat via settings)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {
    "accounts-worker-heartbeat": {
        "task": "accounts.tasks.worker_heartbeat",
        "schedule": 30.0,
    },
    # Safety nets under the waitlist-offer and contract-termination processes (idempotent).
    "carparks-offers-expire-due": {
        "task": "carparks.tasks.offers_expire_due",
        "schedule": 300.0,
    },
    "carparks-contracts-end-due": {
        "task": "carparks.tasks.contracts_end_due",
        "schedule": crontab(minute=15, hour=0),
    },
    # Fires due workflow timers (escalations, waits, message timeouts, retries); takes rows with
    # SELECT … FOR UPDATE SKIP LOCKED, so running it twice at once never fires a timer twice.
    "workflows-tick": {
        "task": "workflows.tasks.tick",
        "schedule": 10.0,
    },
}

# Keep a reference so linters do not flag the import; apps add crontab entries here.
__all__ = ["BEAT_SCHEDULE", "crontab"]
