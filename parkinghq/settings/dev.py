"""Development: SQLite and an embedded broker unless DATABASE_URL / REDIS_URL say otherwise."""

from parkinghq.env import envbool, envstr

from .base import *  # noqa: F403

DEBUG = envbool("DEBUG", True)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

# Card payments go to the localstripe server that `make run` starts (Procfile.dev), never to Stripe.
STRIPE_API_BASE = envstr("STRIPE_API_BASE", "http://127.0.0.1:8420")
