"""Development: SQLite and an embedded broker unless DATABASE_URL / REDIS_URL say otherwise."""

from parkinghq.env import envbool, envint, envstr

from .base import *  # noqa: F403

DEBUG = envbool("DEBUG", True)
DEVELOPMENT = True
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

# Ports from one place (scripts/run_all.py sets the same): the portal on PORT, the CPMS simulator on
# CPMS_SIM_PORT (PORT+10), localstripe on STRIPE_SIM_PORT (PORT+420); links in emails follow PORT.
PORT = envint("PORT", 8000)
CPMS_SIM_PORT = envint("CPMS_SIM_PORT", PORT + 10)
STRIPE_SIM_PORT = envint("STRIPE_SIM_PORT", PORT + 420)
SITE_URL = envstr("SITE_URL", f"http://127.0.0.1:{PORT}")
CPMS_SIMULATOR_URL = envstr("CPMS_SIMULATOR_URL", f"http://127.0.0.1:{CPMS_SIM_PORT}")
# Card payments go to the localstripe server that `make run` starts (Procfile.dev), never to Stripe.
STRIPE_API_BASE = envstr("STRIPE_API_BASE", f"http://127.0.0.1:{STRIPE_SIM_PORT}")

# Emails: one .eml per message under var/mail/ and a one-line summary in the terminal; administrators
# read them on the Outbox page (/outbox/).
OUTBOX_DIR = VAR_DIR / "mail"  # noqa: F405
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "parkinghq.outbox.OutboxBackend")
