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
