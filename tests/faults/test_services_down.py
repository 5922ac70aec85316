"""The portal and its workers survive a stopped broker and a restarted database."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import apply_and_approve, states
from .harness import wait_for

pytestmark = pytest.mark.slow

# A Finance user who also works the agents' basket (neither role needs a second factor), an API
# client with every scope, and a product to apply for; prints the token and the product id.
SEED_PORTAL = """
from decimal import Decimal
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from carparks.api.authentication import api_client_create
from carparks.models import ApiClient, CarPark, Product
call_command("workflow_sync", verbosity=0)
user = User.objects.create_user("fault-finance", password="fault-password-42")
user.groups.add(Group.objects.get(name="Finance"), Group.objects.get(name="Back-office agent"))
carpark, _ = CarPark.objects.get_or_create(code="fault-cp", defaults={"name": "Fault Car Park", "capacity": 50})
product, _ = Product.objects.get_or_create(
    carpark=carpark, name="Fault season", defaults={"monthly_price": Decimal("80"), "quota": 50})
_, token = api_client_create(name="fault-shop", scopes=list(ApiClient.Scope.values))
print(token, product.pk)
"""


def _portal_answers(stack, token: str, product_id: int, n: int) -> dict[str, int]:
    """Status codes of the API (a read and an application), the login form, a wrong and a right
    password, and then the monitoring dashboard and the basket as the logged-in user."""
    base = stack.base_url
    api = {"Authorization": f"Bearer {token}"}
    application = {
        "product": product_id,
        "customer": {"name": f"Redis Down {n}", "email": f"redis-down-{n}@example.com"},
        "vehicles": [{"plate": f"R-DN {n}"}],
    }
    codes = {
        "api read": requests.get(f"{base}/api/v1/carparks/", headers=api, timeout=10).status_code,
        "api write": requests.post(
            f"{base}/api/v1/applications/", json=application, headers=api, timeout=30
        ).status_code,
    }
    browser = requests.Session()
    form = browser.get(f"{base}/accounts/login/", timeout=10)
    codes["login form"] = form.status_code
    csrf = browser.cookies["csrftoken"]
    credentials = {"csrfmiddlewaretoken": csrf, "username": "fault-finance"}
    wrong = browser.post(f"{base}/accounts/login/", data={**credentials, "password": "not-it"}, timeout=10)
    codes["wrong password"] = wrong.status_code
    login = browser.post(
        f"{base}/accounts/login/", data={**credentials, "password": "fault-password-42"}, allow_redirects=False,
        timeout=10,
    )  # fmt: skip
    codes["login"] = login.status_code
    codes["monitoring"] = browser.get(f"{base}/monitoring/", allow_redirects=False, timeout=30).status_code
    codes["basket"] = browser.get(f"{base}/basket/", allow_redirects=False, timeout=30).status_code
    return codes


PORTAL_UP = {
    "api read": 200,
    "api write": 201,
    "login form": 200,
    "wrong password": 200,
    "login": 302,
    "monitoring": 200,
    "basket": 200,
}


def test_api_monitoring_basket_and_login_answer_while_redis_is_down_and_use_it_again_after(stack):
    token, product_id = stack.shell(SEED_PORTAL).split()[-2:]
    stack.start_web()
    try:
        assert _portal_answers(stack, token, int(product_id), 1) == PORTAL_UP
        stack.redis.stop()
        # Caches miss and the API's rate limit is not counted (a warning says so), nothing answers 500.
        assert _portal_answers(stack, token, int(product_id), 2) == PORTAL_UP
        assert _portal_answers(stack, token, int(product_id), 3) == PORTAL_UP
        assert "Redis cache at 127.0.0.1" in stack.web.log()
        assert "API rate limit not enforced" in stack.web.log()

        stack.redis.start()
        # Each web process tries Redis again a few seconds after its last failure and uses it from then on.
        time.sleep(6)
        assert _portal_answers(stack, token, int(product_id), 4) == PORTAL_UP
        assert "reachable again" in stack.web.log()
        assert stack.shell(
            "import redis; from django.conf import settings\n"
            "print(any(k.startswith(b':1:throttle_api_client_') for k in redis.from_url(settings.REDIS_URL).keys()))"
        ).split()[-1] == "True"  # fmt: skip
    finally:
        stack.web.stop()
        print(stack.web.log()[-6000:])


def _settled(stack, contract_id: int, process_id: int) -> bool:
    return states(stack, contract_id, process_id) == ("active", "completed")


def test_it_keeps_serving_while_redis_is_down_and_resumes_system_steps_after(stack):
    stack.start_web()
    stack.worker.start()
    try:
        stack.redis.stop()
        # The portal still answers: sessions and data live in PostgreSQL.
        assert stack.get("/accounts/login/") == 200
        assert stack.get("/health") == 503
        # Work done meanwhile is not lost: approving queues system steps the broker cannot take now.
        contract_id, process_id = apply_and_approve(stack)
        time.sleep(2)
        assert states(stack, contract_id, process_id) == ("applied", "running")

        stack.redis.start()
        # The beat tick re-sends system jobs whose message was lost; the worker reconnects and runs them.
        stack.shell(
            "from datetime import timedelta\n"
            "from django.utils import timezone\n"
            "from workflows.engine import recover_jobs\n"
            "print(recover_jobs(timezone.now() + timedelta(minutes=10)))"
        )
        wait_for(lambda: _settled(stack, contract_id, process_id), timeout=60, what="the process to finish")
    finally:
        stack.worker.stop()
        stack.web.stop()
        print(stack.worker.log()[-6000:])


def test_it_reconnects_web_and_worker_after_a_postgresql_restart(stack):
    stack.start_web()
    stack.worker.start()
    try:
        assert stack.get("/accounts/login/") == 200
        # The worker holds a database connection from a step it ran before the restart.
        contract_id, process_id = apply_and_approve(stack)
        wait_for(lambda: _settled(stack, contract_id, process_id), timeout=60, what="the worker before the restart")
        stack.pg.restart()
        # Web: the next request opens a fresh connection (health checks on, no stale pooled ones).
        wait_for(lambda: stack.get("/accounts/login/") == 200, timeout=30, what="the portal after the restart")
        # Worker: it was connected before the restart and must still run system steps after it.
        contract_id, process_id = apply_and_approve(stack)
        wait_for(lambda: _settled(stack, contract_id, process_id), timeout=60, what="the worker to run the steps")
    finally:
        stack.worker.stop()
        stack.web.stop()
        print(stack.worker.log()[-6000:])
