"""Tests: PostgreSQL and Redis (defaults to 127.0.0.1), fast hashing, locmem email."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")

from .base import *  # noqa: E402,F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
CELERY_TASK_ALWAYS_EAGER = False
AXES_ENABLED = True
# Static files come from the finders (no collectstatic before tests), also for live_server.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# System steps are run by workflows.testing.run_pending_system_steps (or a test's own worker),
# not sent to the broker on every commit.
WORKFLOWS_DISPATCH = envbool("WORKFLOWS_DISPATCH", False)  # noqa: F405
# Cached monitoring figures would outlive a test's database (ids repeat across runs); the fault
# tests' private stack turns them on to run as in production.
MONITORING_CACHE = envbool("MONITORING_CACHE", False)  # noqa: F405
