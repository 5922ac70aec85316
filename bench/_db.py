"""The throw-away database a benchmark works in, next to DATABASE_URL's."""

from __future__ import annotations

from urllib.parse import urlparse, urlunparse


def bench_database(url: str, suffix: str = "_bench") -> tuple[str, str, str]:
    """(URL of ``<name><suffix>``, URL of the ``postgres`` maintenance database, ``<name><suffix>``)
    for DATABASE_URL ``url``."""
    parsed = urlparse(url)
    name = (parsed.path.lstrip("/") or "postgres") + suffix
    return urlunparse(parsed._replace(path=f"/{name}")), urlunparse(parsed._replace(path="/postgres")), name
