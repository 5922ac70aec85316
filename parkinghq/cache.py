"""Django's Redis cache, degrading to "no cache" while Redis is unreachable.

Redis holds only caches and queued jobs (docs/operations.md), so a stopped Redis must not take
pages or the API down with it. Every call that cannot reach Redis (connection refused, timeout)
behaves as a miss: reads return the default, writes store nothing, ``add`` adds nothing and
``incr`` finds no key. One warning is logged when Redis is lost, then at most once a minute while
it stays away, and one line when it is back.

After a failure the process does not ask Redis again for ``RETRY_SECONDS``: with a host that drops
packets each attempt would cost the connect timeout, and a page makes several cache calls. Callers
that must know whether a value was really read or stored (the API rate limit, ``/health``) ask
``cache_available()``.

Errors that are not about reaching Redis (a value that cannot be pickled, a wrong key) still raise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import BaseCache, cache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# How long a process serves without Redis before trying it again.
RETRY_SECONDS = 5.0
# While Redis stays away, the warning is repeated at most this often (per process).
WARN_EVERY_SECONDS = 60.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)

T = TypeVar("T")


class _Outage:
    """Per-process state of one Redis cache: since when it is unreachable, when to try again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.warned_at = 0.0

    def skip(self) -> bool:
        return self.down_since is not None and time.monotonic() < self.retry_at

    def failed(self, location: str, exc: Exception) -> None:
        now = time.monotonic()
        with self.lock:
            first = self.down_since is None
            if first:
                self.down_since = now
            self.retry_at = now + RETRY_SECONDS
            if first or now - self.warned_at >= WARN_EVERY_SECONDS:
                self.warned_at = now
                logger.warning(
                    "Redis cache at %s unreachable (%s: %s) for %.0f s: serving without cache "
                    "and without API rate limits; retrying every %.0f s",
                    location,
                    type(exc).__name__,
                    exc,
                    now - self.down_since,
                    RETRY_SECONDS,
                )

    def succeeded(self, location: str) -> None:
        if self.down_since is None:
            return
        with self.lock:
            if self.down_since is not None:
                logger.warning(
                    "Redis cache at %s reachable again after %.0f s", location, time.monotonic() - self.down_since
                )
                self.down_since = None


class DegradingRedisCacheClient(RedisCacheClient):
    """Each operation falls back to what a miss (or a failed write) returns when Redis is unreachable."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self.outage = _Outage()
        # Where, never with credentials: enough for an operator to recognise the instance.
        self._where = ", ".join(server.split("://", 1)[-1].rsplit("@", 1)[-1] for server in servers)

    def _guard(self, call: Callable[[], T], fallback: Callable[[], T]) -> T:
        if self.outage.skip():
            return fallback()
        try:
            result = call()
        except UNREACHABLE as exc:
            self.outage.failed(self._where, exc)
            return fallback()
        self.outage.succeeded(self._where)
        return result

    def add(self, key: str, value: Any, timeout: int | None) -> bool:
        return self._guard(lambda: super(DegradingRedisCacheClient, self).add(key, value, timeout), lambda: False)

    def get(self, key: str, default: Any) -> Any:
        return self._guard(lambda: super(DegradingRedisCacheClient, self).get(key, default), lambda: default)

    def set(self, key: str, value: Any, timeout: int | None) -> None:
        self._guard(lambda: super(DegradingRedisCacheClient, self).set(key, value, timeout), lambda: None)

    def touch(self, key: str, timeout: int | None) -> bool:
        return self._guard(lambda: super(DegradingRedisCacheClient, self).touch(key, timeout), lambda: False)

    def delete(self, key: str) -> bool:
        return self._guard(lambda: super(DegradingRedisCacheClient, self).delete(key), lambda: False)

    def get_many(self, keys: Any) -> dict[str, Any]:
        return self._guard(lambda: super(DegradingRedisCacheClient, self).get_many(keys), dict)

    def has_key(self, key: str) -> bool:
        return self._guard(lambda: super(DegradingRedisCacheClient, self).has_key(key), lambda: False)

    def incr(self, key: str, delta: int) -> int:
        def missing() -> int:
            raise ValueError(f"Key '{key}' not found (Redis unreachable).")

        return self._guard(lambda: super(DegradingRedisCacheClient, self).incr(key, delta), missing)

    def set_many(self, data: dict[str, Any], timeout: int | None) -> None:
        self._guard(lambda: super(DegradingRedisCacheClient, self).set_many(data, timeout), lambda: None)

    def delete_many(self, keys: Any) -> None:
        self._guard(lambda: super(DegradingRedisCacheClient, self).delete_many(keys), lambda: None)

    def clear(self) -> bool:
        return self._guard(lambda: super(DegradingRedisCacheClient, self).clear(), lambda: False)


class DegradingRedisCache(RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` that degrades instead of raising (see module doc)."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = DegradingRedisCacheClient

    @property
    def available(self) -> bool:
        """False while the process is serving without Redis (after a failed call, until the next retry)."""
        return not self._cache.outage.skip()


def cache_available(backend: BaseCache | None = None) -> bool:
    """Whether the last call to ``backend`` (default: the default cache) reached it.

    Caches other than the degrading Redis one raise on failure instead, so they always count as available.
    """
    backend = cache if backend is None else backend
    return bool(getattr(backend, "available", True))
