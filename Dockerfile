# ParkingHQ Business Workflow: one image for web (gunicorn), worker and beat (see docker-compose.yml).

# Front-end packages from the npm registry, exactly as package-lock.json pins them.
FROM node:20-slim AS frontend
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=parkinghq.settings.production \
    PARKINGHQ_VAR_DIR=/app/var
# Pango for WeasyPrint (invoice PDFs); fonts so PDFs render the same everywhere; gettext compiles the translations.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core gettext \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first (cached while only code changes), pinned by constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN pip install -c constraints.txt .
COPY --from=frontend /app/node_modules ./node_modules
COPY . .
RUN DJANGO_SETTINGS_MODULE=parkinghq.settings.dev python manage.py compilemessages --ignore=node_modules -v 0
RUN useradd --system --home /app parkinghq \
    && mkdir -p /app/var/media /app/staticfiles \
    && chown -R parkinghq /app/var /app/staticfiles
USER parkinghq
EXPOSE 8000
CMD ["gunicorn", "parkinghq.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
