"""Fixtures for the engine's tests: role users and a season-contract-shaped definition."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth.models import Group

from accounts import roles
from workflows.registry import PermanentError, SystemTaskContext, system_task

CALLS: dict[str, list[str]] = {}
FAILURES: dict[str, int] = {}


@system_task("tests.activate_credential", reads=["contract_id"], writes=["credential_active"])
def activate_credential(ctx: SystemTaskContext) -> dict:
    """Test stand-in: records the idempotency key it was called with."""
    CALLS.setdefault("activate_credential", []).append(ctx.idempotency_key)
    return {"credential_active": True}


@system_task("tests.flaky", writes=["flaky_done"])
def flaky(ctx: SystemTaskContext) -> dict:
    """Fails while FAILURES['flaky'] > 0 (counting down), then succeeds."""
    CALLS.setdefault("flaky", []).append(ctx.idempotency_key)
    if FAILURES.get("flaky", 0) > 0:
        FAILURES["flaky"] -= 1
        raise ConnectionError("the CPMS did not answer")
    return {"flaky_done": True}


@system_task("tests.refuse")
def refuse(ctx: SystemTaskContext) -> dict:
    raise PermanentError("the card was declined")


SEASON = {
    "key": "test-season",
    "name": "Test season contract",
    "category": "contracts",
    "variables": ["deposit"],
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review application",
            "role": roles.AGENT,
            "scope": "carpark",
            "due_in": "P2D",
            "escalation": [{"after": "PT0S", "to": roles.SUPERVISOR}, {"after": "P1D", "to": roles.ADMINISTRATOR}],
            "inputs": [
                {"name": "note", "type": "text"},
                {"name": "deposit_ok", "type": "bool", "required": True},
            ],
            "outcomes": {"approve": "check", "reject": "rejected"},
        },
        {
            "id": "check",
            "type": "decision",
            "branches": [{"when": "deposit > 0", "next": "activate"}],
            "default": "activate",
        },
        {
            "id": "activate",
            "type": "system",
            "task": "tests.activate_credential",
            "retry": {"max_attempts": 3, "backoff": "PT0S"},
            "next": "confirm",
        },
        {
            "id": "confirm",
            "type": "user",
            "name": "Confirm payment setup",
            "role": roles.AGENT,
            "outcomes": {"done": "approved"},
        },
        {"id": "approved", "type": "end", "result": "approved"},
        {"id": "rejected", "type": "end", "result": "rejected"},
    ],
}


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()
    FAILURES.clear()
    yield


@pytest.fixture
def season_spec():
    return copy.deepcopy(SEASON)


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, *role_names: str):
        user = django_user_model.objects.create_user(username, password="x", first_name=username.title())
        for name in role_names:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        return user

    return make


@pytest.fixture
def agent(make_user):
    return make_user("agent", roles.AGENT)


@pytest.fixture
def supervisor(make_user):
    return make_user("supervisor", roles.SUPERVISOR)


@pytest.fixture
def admin_user(make_user):
    return make_user("admin", roles.ADMINISTRATOR)
