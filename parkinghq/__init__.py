"""ParkingHQ Business Workflow: project package (settings, urls, Celery app, portal shell)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
