"""Locust users for ``bench/loadtest.py`` (issue 10): back-office agents working their baskets and
API clients submitting season applications.

The setup (users, token, products) comes from the JSON file named by ``LOADTEST_CONFIG``, written by
bench/loadtest.py. Every response is checked: a page that is not what a user expects is a failure.
A claim that loses the race to a colleague is not a failure (the portal answers it correctly, with a
message and a redirect to the basket); those are counted under "claim (taken by a colleague)".
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import uuid

from locust import HttpUser, between, task

CONFIG = json.loads(open(os.environ["LOADTEST_CONFIG"]).read())  # noqa: SIM115
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
REVIEW_ROW = re.compile(r'<tr data-task="(\d+)">\s*<td><a [^>]*>Review application</a>')
OUTCOMES = re.compile(r'name="outcome" value="([^"]+)"')
_usernames = itertools.cycle(CONFIG["staff"])
_serial = itertools.count(1)


def _csrf(text: str) -> str:
    match = CSRF.search(text)
    if not match:
        raise ValueError("no CSRF token on the page")
    return match.group(1)


class StaffUser(HttpUser):
    """A back-office agent: log in once, then basket → task → claim → complete, with think time."""

    fixed_count = CONFIG["staff_users"]
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.username = next(_usernames)
        with self.client.get("/accounts/login/", name="login page", catch_response=True) as page:
            if page.status_code != 200 or "csrfmiddlewaretoken" not in page.text:
                page.failure(f"login page: {page.status_code}")
                self.stop()
                return
        with self.client.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": CONFIG["password"],
                "csrfmiddlewaretoken": _csrf(page.text),
            },
            headers={"Referer": f"{self.host}/accounts/login/"},
            allow_redirects=False,
            name="login (POST)",
            catch_response=True,
        ) as response:
            if response.status_code != 302 or "/accounts/" in response.headers.get("Location", ""):
                response.failure(f"login refused: {response.status_code} {response.headers.get('Location')}")

    @task
    def work_a_task(self) -> None:
        page_no = random.randint(1, 3)
        with self.client.get(f"/basket/?page={page_no}", name="basket (queue)", catch_response=True) as basket:
            if basket.status_code != 200:
                basket.failure(f"basket: {basket.status_code}")
                return
        self.client.get("/basket/count/", name="basket badge (htmx)")
        candidates = REVIEW_ROW.findall(basket.text)
        if not candidates:
            return
        pk = random.choice(candidates)
        self.wait()
        with self.client.get(f"/basket/tasks/{pk}/", name="task page", catch_response=True) as page:
            if page.status_code != 200:
                page.failure(f"task page: {page.status_code}")
                return
        with self.client.post(
            f"/basket/tasks/{pk}/claim/",
            data={"csrfmiddlewaretoken": _csrf(page.text)},
            allow_redirects=False,
            name="claim (POST)",
            catch_response=True,
        ) as claim:
            if claim.status_code != 302:
                claim.failure(f"claim: {claim.status_code}")
                return
            taken = not claim.headers.get("Location", "").rstrip("/").endswith(f"/tasks/{pk}")
        if taken:
            # Someone else was quicker; the portal said so and sent us back to the basket.
            self.environment.events.request.fire(
                request_type="INFO",
                name="claim (taken by a colleague)",
                response_time=0,
                response_length=0,
                exception=None,
                context={},
            )
            return
        with self.client.get(f"/basket/tasks/{pk}/", name="task page (claimed)", catch_response=True) as page:
            outcomes = OUTCOMES.findall(page.text) if page.status_code == 200 else []
            if "approve" not in outcomes:
                page.failure(f"claimed task page: {page.status_code}, outcomes {outcomes}")
                return
        self.wait()
        outcome = "approve" if random.random() < 0.8 else "reject"
        with self.client.post(
            f"/basket/tasks/{pk}/complete/",
            data={
                "csrfmiddlewaretoken": _csrf(page.text),
                "note": f"Checked by {self.username} (load test).",
                "comment": "",
                "outcome": outcome,
            },
            allow_redirects=False,
            name="complete (POST)",
            catch_response=True,
        ) as done:
            if done.status_code != 302:
                done.failure(f"complete: {done.status_code}")


class ApiClientUser(HttpUser):
    """A partner system: submits season applications with an Idempotency-Key, sometimes replays one."""

    fixed_count = CONFIG["api_users"]
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {CONFIG['token']}"
        self.last: tuple[str, dict, int] | None = None

    @task(5)
    def apply(self) -> None:
        n = next(_serial)
        tag = uuid.uuid4().hex[:8]
        body = {
            "product": random.choice(CONFIG["products"]),
            "customer": {"name": f"Load Test {tag}", "email": f"load-{tag}@example.test"},
            "vehicles": [{"plate": f"LT{os.getpid() % 100}{tag[:4].upper()}{n % 10}"[:12], "country": "D"}],
        }
        key = str(uuid.uuid4())
        with self.client.post(
            "/api/v1/applications/",
            json=body,
            headers={"Idempotency-Key": key},
            name="API: submit application",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {response.text[:300]}")
                return
            self.last = (key, body, response.json()["contract_id"])

    @task(1)
    def replay(self) -> None:
        if self.last is None:
            return
        key, body, contract_id = self.last
        with self.client.post(
            "/api/v1/applications/",
            json=body,
            headers={"Idempotency-Key": key},
            name="API: replay (same Idempotency-Key)",
            catch_response=True,
        ) as response:
            if response.status_code != 201 or response.json().get("contract_id") != contract_id:
                response.failure(f"replay gave {response.status_code}: {response.text[:300]}")

    @task(1)
    def status(self) -> None:
        if self.last is None:
            return
        with self.client.get(
            f"/api/v1/contracts/{self.last[2]}/", name="API: contract status", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:300]}")
