"""Settings shared by every environment, read from environment variables (see .env.example)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import dj_database_url

from parkinghq.env import ConfigError, envbool, envint, envlist, envstr
from parkinghq.schedules import BEAT_SCHEDULE

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(envstr("PARKINGHQ_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = envstr("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000")
# Development conveniences (the Outbox page, the demo API client's token on its page): only dev.py turns them on.
DEVELOPMENT = False
# Folder the development mail backend writes one .eml per message to (parkinghq.outbox); None: no Outbox.
OUTBOX_DIR: Path | None = None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "guardian",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "accounts",
    "workflows",
    "carparks",
    "billing",
    "connect",
    "monitoring",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "parkinghq.middleware.PermissionsPolicyMiddleware",
    "parkinghq.middleware.RejectNulBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "parkinghq.middleware.NoStoreForAuthenticatedMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.two_factor.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "parkinghq.urls"
WSGI_APPLICATION = "parkinghq.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "parkinghq.context_processors.portal",
            ],
            # parkinghq is not an app, so its template tags are registered by name.
            "libraries": {
                "portal": "parkinghq.templatetags.portal",
                "progress": "parkinghq.templatetags.progress",
                "files": "parkinghq.templatetags.files",
                "navigation": "parkinghq.templatetags.navigation",
            },
        },
    },
]

# Database: SQLite file by default; DATABASE_URL selects PostgreSQL (psycopg 3 with Django's pool).
DATABASE_URL = envstr("DATABASE_URL", "")
if DATABASE_URL:
    if not DATABASE_URL.startswith(("postgres://", "postgresql://", "sqlite://")):
        raise ConfigError(f"DATABASE_URL must be a postgres:// or sqlite:// URL, got {DATABASE_URL!r}")
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)
    if _db["ENGINE"] == "django.db.backends.postgresql" and envbool("DATABASE_POOL", False):
        _db.setdefault("OPTIONS", {})["pool"] = True
    if _db["ENGINE"] == "django.db.backends.postgresql" and envbool("DATABASE_PREPARED_STATEMENTS", True):
        # Parameters bound by the server, and statements run 5 times on a connection kept prepared:
        # the engine's few hot statements skip parsing and planning (about a third of the server's
        # CPU per process in bench/engine.py). Turn off behind a transaction-mode pooler.
        _db.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    DATABASES = {"default": _db}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": Path(envstr("SQLITE_PATH", str(VAR_DIR / "db.sqlite3"))),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Broker and cache: Redis when REDIS_URL is set, otherwise an embedded filesystem broker.
REDIS_URL = envstr("REDIS_URL", "")
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://")):
        raise ConfigError(f"REDIS_URL must be a redis:// URL, got {REDIS_URL!r}")
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
    # Without Redis the cache behaves as empty (a logged warning, no 500s): see parkinghq/cache.py.
    # Short timeouts so an unreachable Redis costs a request at most about a second.
    CACHES = {
        "default": {
            "BACKEND": "parkinghq.cache.DegradingRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    # kombu's filesystem transport neither creates its folders nor defaults control_folder to
    # anything but ./control, so every folder is spelled out and created here.
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
# The engine sends a system step to Celery after commit (off in tests: see settings.test).
WORKFLOWS_DISPATCH = envbool("WORKFLOWS_DISPATCH", True)
# Monitoring caches today's figures for 30 s and sums of stored days until the next aggregation.
MONITORING_CACHE = envbool("MONITORING_CACHE", True)
# Who gets a user task escalated with "can't decide" when its step has no escalation chain.
WORKFLOWS_DEFAULT_ESCALATION_ROLE = envstr("WORKFLOWS_DEFAULT_ESCALATION_ROLE", "Supervisor")

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # ASVS 4 level 2 (2.1.1): at least 12 characters.
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Object permissions (car-park responsibility) are for staff only: no guardian "AnonymousUser" row.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = True

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "portal-home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Proxies (IPs or CIDR ranges) whose X-Forwarded-For is believed; from anyone else the header is
# ignored and the connection's address is the client (parkinghq.http.client_ip).
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ConfigError(f"TRUSTED_PROXIES must list IP addresses or CIDR ranges, got {_proxy!r}") from None

# Lockout after repeated failed logins (django-axes, stored in the database; accounts.lockout):
# an account locks after AXES_FAILURE_LIMIT failures from any address, an address after
# LOGIN_IP_FAILURE_LIMIT failures for any accounts, each for AXES_COOLOFF_MINUTES after the
# failure that locked it. Attempts while locked are not counted, so the lock never grows longer.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5)
LOGIN_IP_FAILURE_LIMIT = envint("LOGIN_IP_FAILURE_LIMIT", 30)
AXES_COOLOFF_TIME = envint("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HANDLER = "accounts.lockout.LoginLockoutHandler"
AXES_CLIENT_IP_CALLABLE = "parkinghq.http.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
# Password-reset requests answered with an email, per address asked for and per client address.
PASSWORD_RESET_RATE = envstr("PASSWORD_RESET_RATE", "5/hour")
PASSWORD_RESET_IP_RATE = envstr("PASSWORD_RESET_IP_RATE", "20/hour")
for _name in ("PASSWORD_RESET_RATE", "PASSWORD_RESET_IP_RATE"):
    if not re.fullmatch(r"[1-9][0-9]*/(minute|hour|day)", globals()[_name]):
        raise ConfigError(f"{_name} must look like 5/hour (per minute, hour or day), got {globals()[_name]!r}")

# The portal speaks German and English: a user's own choice (Profile), else the browser's, else English.
LANGUAGE_CODE = "en"
LANGUAGES = [("de", "Deutsch"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# One date format per language (d.m.Y in German, ISO in English); numbers are grouped only where a
# template asks for it (|money, |intcomma), never in ids.
FORMAT_MODULE_PATH = ["parkinghq.formats"]
TIME_ZONE = envstr("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Third-party front-end code comes from npm (package.json); served from node_modules by prefix.
_NODE = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", _NODE / "bootstrap" / "dist"),
    ("vendor/bootstrap-icons", _NODE / "bootstrap-icons" / "font"),
    ("vendor/htmx", _NODE / "htmx.org" / "dist"),
    ("vendor/bpmn-js", _NODE / "bpmn-js" / "dist"),
    ("vendor/chart.js", _NODE / "chart.js" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "ParkingHQ Business Workflow <workflow@parkinghq.example>")

# Content-Security-Policy (django-csp 4): everything is served from our own origin.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "script-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600)  # one working day
# htmx sends the token from the page (hx-headers in base.html), so scripts never need the cookie.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"

# Two-factor login (django-otp TOTP); the issuer is the name authenticator apps show.
OTP_TOTP_ISSUER = envstr("OTP_TOTP_ISSUER", "ParkingHQ Workflow")
OTP_TOTP_THROTTLE_FACTOR = 1

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ParkingHQ Business Workflow API",
    "DESCRIPTION": "Season parking, contracts, cases and processes for eCommerce, App and Web modules.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files (no CDN is reachable, and the CSP allows only 'self').
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "CustomerKindEnum": "carparks.models.Customer.Kind",
        "CaseKindEnum": "carparks.models.Case.Kind",
        "CredentialKindEnum": "carparks.models.Credential.Kind",
        "ContractStateEnum": "carparks.models.Contract.State",
        "CaseStateEnum": "carparks.models.Case.State",
        "CustomerLanguageEnum": "carparks.api.serializers.CUSTOMER_LANGUAGES",
        "PaymentOptionEnum": "billing.payment_options.PaymentOption",
    },
}
# Requests per API client (carparks.api.throttling).
CARPARKS_API_RATE = envstr("CARPARKS_API_RATE", "600/minute")
# How long a waitlist offer stays open.
CARPARKS_OFFER_VALID_DAYS = envint("CARPARKS_OFFER_VALID_DAYS", 7)

# Stripe (localstripe in development and tests).
STRIPE_SECRET_KEY = envstr("STRIPE_SECRET_KEY", "sk_test_parkinghq_local")
STRIPE_PUBLISHABLE_KEY = envstr("STRIPE_PUBLISHABLE_KEY", "pk_test_parkinghq_local")
STRIPE_API_BASE = envstr("STRIPE_API_BASE", "")
STRIPE_WEBHOOK_SECRET = envstr("STRIPE_WEBHOOK_SECRET", "whsec_parkinghq_local")

# Billing: the operator's letterhead, payment terms, DATEV and where accounting exports are delivered.
BILLING_OPERATOR = {
    "name": envstr("BILLING_OPERATOR_NAME", "ParkingHQ Parking GmbH"),
    "street": envstr("BILLING_OPERATOR_STREET", "Parkstraße 1"),
    "postcode": envstr("BILLING_OPERATOR_POSTCODE", "80331"),
    "city": envstr("BILLING_OPERATOR_CITY", "München"),
    "country": envstr("BILLING_OPERATOR_COUNTRY", "DE"),
    "vat_id": envstr("BILLING_OPERATOR_VAT_ID", "DE123456789"),
    "email": envstr("BILLING_OPERATOR_EMAIL", "billing@parkinghq.example"),
    "phone": envstr("BILLING_OPERATOR_PHONE", "+49 89 123456-0"),
    "iban": envstr("BILLING_OPERATOR_IBAN", "DE02120300000000202051"),
    "bic": envstr("BILLING_OPERATOR_BIC", "BYLADEM1001"),
    # SEPA Creditor Identifier, printed with every direct debit pre-notification and mandate.
    "sepa_creditor_id": envstr("BILLING_OPERATOR_SEPA_CREDITOR_ID", "DE98ZZZ09999999999"),
    "register": envstr("BILLING_OPERATOR_REGISTER", "Amtsgericht München HRB 000000"),
}
BILLING_FONT_DIR = envstr("BILLING_FONT_DIR", "/usr/share/fonts/truetype/dejavu")
BILLING_PAYMENT_TERMS_DAYS = envint("BILLING_PAYMENT_TERMS_DAYS", 14)
# Which payment provider (a module under billing/providers/) collects each provider-collected option.
BILLING_PROVIDERS = {
    "card": envstr("BILLING_PROVIDER_CARD", "stripe"),
    "sepa_debit": envstr("BILLING_PROVIDER_SEPA_DEBIT", "stripe"),
}
BILLING_CARD_LINK_MAX_AGE_DAYS = envint("BILLING_CARD_LINK_MAX_AGE_DAYS", 14)
# Finance may bill the next month from this many days before it starts (earlier months always).
BILLING_RUN_EARLY_DAYS = envint("BILLING_RUN_EARLY_DAYS", 5)
ACCOUNTING_EXPORT_DIR = Path(envstr("ACCOUNTING_EXPORT_DIR", str(VAR_DIR / "accounting-export")))
DATEV_CONSULTANT_NUMBER = envint("DATEV_CONSULTANT_NUMBER", 1001)
DATEV_CLIENT_NUMBER = envint("DATEV_CLIENT_NUMBER", 1)
DATEV_FISCAL_YEAR_START_MONTH = envint("DATEV_FISCAL_YEAR_START_MONTH", 1)
DATEV_ACCOUNT_LENGTH = envint("DATEV_ACCOUNT_LENGTH", 4)
# Debtor accounts are range start + customer id; an export stops with an error before an account would leave
# the range (SKR03/SKR04 number debtors 10000-69999 and creditors from 70000 on).
# DATEV_DEBTOR_ACCOUNT, the former name of the start, is still read.
DATEV_DEBTOR_RANGE = (
    envint("DATEV_DEBTOR_RANGE_START", envint("DATEV_DEBTOR_ACCOUNT", 10000)),
    envint("DATEV_DEBTOR_RANGE_END", 69999),
)
# Revenue account per VAT rate (SKR03: 8400 at 19 %, 8300 at 7 %, 8100 tax-free).
DATEV_REVENUE_ACCOUNTS = {"19.00": 8400, "7.00": 8300, "0.00": 8100}
# Payment bookings: card and SEPA Direct Debit money arrives through the payment provider (its clearing
# account, SKR03 1360 Geldtransit), bank transfers on the bank account (SKR03 1200).
DATEV_BANK_ACCOUNT = envint("DATEV_BANK_ACCOUNT", 1200)
DATEV_PROVIDER_CLEARING_ACCOUNT = envint("DATEV_PROVIDER_CLEARING_ACCOUNT", 1360)

# The bundled CPMS simulator (Connect).
CPMS_SIMULATOR_URL = envstr("CPMS_SIMULATOR_URL", "http://127.0.0.1:8010")
# Largest answer a CPMS may send (bytes; a connection's option max_response_bytes overrides it).
CONNECT_MAX_RESPONSE_BYTES = envint("CONNECT_MAX_RESPONSE_BYTES", 20_000_000)
# Key for secrets stored at rest (Fernet); derived from SECRET_KEY when not set.
FIELD_ENCRYPTION_KEY = envstr("FIELD_ENCRYPTION_KEY", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
