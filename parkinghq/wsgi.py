"""WSGI entry point (gunicorn parkinghq.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.dev")
application = get_wsgi_application()
