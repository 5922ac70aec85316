"""The throw-away database a benchmark works in, next to DATABASE_URL's."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse, urlunparse

T = TypeVar("T")


def bench_database(url: str, suffix: str = "_bench") -> tuple[str, str, str]:
    """(URL of ``<name><suffix>``, URL of the ``postgres`` maintenance database, ``<name><suffix>``)
    for DATABASE_URL ``url``."""
    parsed = urlparse(url)
    name = (parsed.path.lstrip("/") or "postgres") + suffix
    return urlunparse(parsed._replace(path=f"/{name}")), urlunparse(parsed._replace(path="/postgres")), name


def on_scratch_database(url: str, suffix: str, work: Callable[[], T]) -> T:
    """Create ``<name><suffix>`` next to DATABASE_URL ``url``, point Django at it, migrate, run ``work``,
    and drop the database again whatever happens."""
    import psycopg

    bench_url, admin_url, bench_name = bench_database(url, suffix)
    admin = admin_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_name}"')
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parkinghq.settings.test")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return work()
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')
