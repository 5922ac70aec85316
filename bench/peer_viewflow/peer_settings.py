"""Settings of the stand-alone viewflow peer project (bench/peer_viewflow): just enough Django for a flow.

The database comes from PEER_DATABASE_URL (set by run.py to its throw-away database).
"""

import os
from urllib.parse import unquote, urlparse

_url = urlparse(os.environ["PEER_DATABASE_URL"])

SECRET_KEY = "viewflow-peer-bench"  # noqa: S105 -- a throw-away database, no requests served
DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Berlin"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "viewflow",
    "viewflow.workflow",
    "season_peer",
]
MIDDLEWARE: list[str] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": _url.port or "",
    }
}
