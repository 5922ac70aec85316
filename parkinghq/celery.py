"""The Celery application. Periodic schedules live in ``parkinghq.schedules``, nowhere else."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.dev")

app = Celery("parkinghq")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
