"""Every periodic job of the product, in one place (read by Celery beat via settings)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {
    "accounts-worker-heartbeat": {
        "task": "accounts.tasks.worker_heartbeat",
        "schedule": 30.0,
    },
}

# Keep a reference so linters do not flag the import; apps add crontab entries here.
__all__ = ["BEAT_SCHEDULE", "crontab"]
