"""Production: secrets are required, HTTPS everywhere; refuses to start when something is missing."""

from parkinghq.env import ConfigError, envint, envstr

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = envstr("SECRET_KEY", required=True)
if SECRET_KEY.startswith("dev-only") or len(SECRET_KEY) < 50:
    raise ConfigError("SECRET_KEY must be a random value of at least 50 characters in production")
if not envstr("DATABASE_URL"):
    raise ConfigError("DATABASE_URL must be set in production (PostgreSQL)")
if not envstr("REDIS_URL"):
    raise ConfigError("REDIS_URL must be set in production (broker and cache)")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS")  # noqa: F405
if not ALLOWED_HOSTS:
    raise ConfigError("ALLOWED_HOSTS must list the portal's host names in production")
# The development and .env.example values are public: with them anyone could call Stripe as the
# operator or sign a webhook that marks invoices paid.
PUBLIC_STRIPE_PLACEHOLDERS = {"sk_test_parkinghq_local", "whsec_parkinghq_local"}
STRIPE_SECRET_KEY = envstr("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = envstr("STRIPE_WEBHOOK_SECRET")
for _name, _value in (("STRIPE_SECRET_KEY", STRIPE_SECRET_KEY), ("STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_SECRET)):
    if not _value.strip() or _value in PUBLIC_STRIPE_PLACEHOLDERS:
        raise ConfigError(
            f"{_name} must be set to the account's own secret in production, not empty or the public placeholder"
        )

SECURE_SSL_REDIRECT = True
# Load balancers and container health checks probe /health over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# __Host- cookies are only accepted over HTTPS, for this exact host and path /.
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
