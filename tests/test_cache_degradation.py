"""Without Redis the cache behaves as empty instead of raising: pages, the API and /health answer,
a warning says so (once, not per call), and Redis is used again once it is back."""

from __future__ import annotations

import logging
import pickle
import socket
import time

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory

from carparks.api.authentication import api_client_create
from carparks.api.views import ApiView
from carparks.models import ApiClient, Contract
from carparks.tests.factories import ProductFactory
from parkinghq import cache as degrading
from parkinghq.cache import DegradingRedisCache, cache_available
from tests.faults.harness import PrivateRedis


def closed_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_cache(url: str) -> DegradingRedisCache:
    return DegradingRedisCache(url, {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}})


@pytest.fixture
def redis_down():
    """The default cache pointed at a port where no Redis listens (connections are refused)."""
    url = f"redis://127.0.0.1:{closed_local_port()}/0"
    caches = {"default": {"BACKEND": "parkinghq.cache.DegradingRedisCache", "LOCATION": url}}
    with override_settings(CACHES=caches):
        yield


def warnings_of(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == logging.WARNING]


def test_every_operation_answers_as_a_miss_and_one_warning_says_why(caplog):
    down = redis_cache(f"redis://127.0.0.1:{closed_local_port()}/0")
    with caplog.at_level(logging.WARNING, logger="parkinghq.cache"):
        assert down.get("k") is None
        assert down.get("k", "fallback") == "fallback"
        assert down.set("k", 1) is None
        assert down.add("k", 1) is False
        assert down.get_or_set("k", 7) == 7
        assert down.get_many(["a", "b"]) == {}
        assert down.has_key("k") is False
        assert down.delete("k") is False
        assert down.touch("k") is False
        with pytest.raises(ValueError):
            down.incr("k")
        down.set_many({"a": 1})
        down.delete_many(["a"])
        assert down.clear() is False
        assert cache_available(down) is False
    (warning,) = warnings_of(caplog, "parkinghq.cache")
    assert "unreachable (ConnectionError" in warning and "serving without cache" in warning


def test_errors_that_are_not_about_reaching_redis_still_raise():
    up = redis_cache(cache._cache._servers[0])  # the suite's Redis
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        up.set("degrade:unpicklable", lambda: None)


def test_it_uses_redis_again_once_it_is_back(caplog, monkeypatch):
    monkeypatch.setattr(degrading, "RETRY_SECONDS", 0.2)
    redis = PrivateRedis()
    try:
        backend = redis_cache(redis.url)
        backend.set("k", "before")
        assert backend.get("k") == "before"
        redis.stop()
        with caplog.at_level(logging.WARNING, logger="parkinghq.cache"):
            assert backend.get("k", "missed") == "missed"
            assert not cache_available(backend)
            redis.start()  # an empty Redis on the same port (it keeps nothing on disk)
            assert backend.get("k", "missed") == "missed"  # still backing off: Redis is not asked yet
            time.sleep(0.3)
            backend.set("k", "after")
            assert backend.get("k") == "after"
            assert cache_available(backend)
        assert any("reachable again" in message for message in warnings_of(caplog, "parkinghq.cache"))
    finally:
        redis.close()


@pytest.mark.django_db
def test_the_api_lets_reads_and_applications_through_with_a_warning(redis_down, caplog):
    _, token = api_client_create(name="shop", scopes=list(ApiClient.Scope.values))
    shop = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    product = ProductFactory()
    application = {"product": product.pk, "customer": {"name": "E M", "email": "em@example.com"}}
    application["vehicles"] = [{"plate": "M-EM 1"}]
    with caplog.at_level(logging.WARNING):
        assert shop.get("/api/v1/carparks/").status_code == 200
        assert shop.post("/api/v1/applications/", application, format="json").status_code == 201
    assert Contract.objects.count() == 1
    assert any("API rate limit not enforced" in m for m in warnings_of(caplog, "carparks.api.throttling"))


class _Charge(ApiView):
    """A stand-in for an API call that would move money."""

    money_at_stake = True
    required_scopes = {"GET": ApiClient.Scope.CONTRACTS_READ, "POST": ApiClient.Scope.CONTRACTS_WRITE}

    def get(self, request):
        return Response({"charged": False})

    def post(self, request):
        return Response({"charged": True})


@pytest.mark.django_db
def test_a_write_that_moves_money_is_refused_with_503_while_the_limit_cannot_be_counted(redis_down):
    _, token = api_client_create(name="shop", scopes=list(ApiClient.Scope.values))
    factory = APIRequestFactory()
    view = _Charge.as_view()
    refused = view(factory.post("/charge/", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"))
    assert refused.status_code == 503
    assert refused["Retry-After"] == "30"
    assert "not made" in refused.data["detail"]
    # Reading is still fine, and so is the write once Redis answers again.
    assert view(factory.get("/charge/", HTTP_AUTHORIZATION=f"Bearer {token}")).status_code == 200
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        accepted = view(factory.post("/charge/", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"))
    assert accepted.status_code == 200


@pytest.mark.django_db
def test_health_names_the_unreachable_cache(redis_down, client):
    body = client.get("/health").json()
    assert "worker" in body["failing"]
    assert body["worker"] == "down: cache unavailable"


@pytest.mark.django_db
def test_monitoring_login_and_basket_answer(redis_down, settings, client, make_user):
    from accounts import roles

    settings.MONITORING_CACHE = True
    make_user("finance", roles.FINANCE, roles.AGENT, password="a-long-password-1")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "finance", "password": "a-long-password-1"})
    assert response.status_code == 302
    assert client.get("/monitoring/").status_code == 200
    assert client.get("/basket/").status_code == 200
