"""Development: SQLite and an embedded broker unless DATABASE_URL / REDIS_URL say otherwise."""

from parkinghq.env import envbool

from .base import *  # noqa: F403

DEBUG = envbool("DEBUG", True)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
