"""Fixtures for monitoring tests: a small workflow with a rework loop, and history made by the engine.

History is produced by the real engine services with the clock moved by ``time_machine``, so every
figure the tests check comes from events the engine itself wrote.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from accounts import roles
from carparks.models import CarPark
from workflows import services
from workflows.models import Process, Task
from workflows.testing import fire_due_timers, install_definition

BERLIN = ZoneInfo("Europe/Berlin")

SPEC = {
    "key": "mon-review",
    "name": "Monitoring review",
    "category": "tests",
    "steps": [
        {"id": "start", "type": "start", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review application",
            "role": roles.AGENT,
            "scope": "carpark",
            "due_in": "PT2H",
            "escalation": [{"after": "PT1H", "to": roles.SUPERVISOR}],
            "outcomes": {"approve": "check", "rework": "review", "reject": "rejected"},
        },
        {
            "id": "check",
            "type": "user",
            "name": "Final check",
            "role": roles.SUPERVISOR,
            "outcomes": {"ok": "done"},
        },
        {"id": "done", "type": "end", "result": "approved"},
        {"id": "rejected", "type": "end", "result": "rejected"},
    ],
}


def at(day: str, hour: int = 9, minute: int = 0) -> datetime:
    """An aware datetime in the portal's time zone ('2026-03-02', 9, 30)."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=BERLIN)


@pytest.fixture(autouse=True)
def _no_live_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test databases reuse ids across runs; a cached 'today' from another run must never leak in."""
    from django.conf import settings

    assert settings.MONITORING_CACHE is False  # parkinghq/settings/test.py


@pytest.fixture
def spec() -> dict:
    return copy.deepcopy(SPEC)


@pytest.fixture
def version(spec: dict) -> Any:
    return install_definition(spec)


@pytest.fixture
def carparks(db: Any) -> list[CarPark]:
    return [
        CarPark.objects.create(name="Altstadt", code="altstadt"),
        CarPark.objects.create(name="Hauptbahnhof", code="hbf"),
    ]


@pytest.fixture
def staff(make_user: Callable[..., Any], carparks: list[CarPark]) -> dict[str, Any]:
    return {
        "agent": make_user("agent", roles.AGENT, carparks=carparks, email="agent@example.com"),
        "supervisor": make_user("supervisor", roles.SUPERVISOR, email="supervisor@example.com"),
        "admin": make_user("admin", roles.ADMINISTRATOR, email="admin@example.com"),
        "finance": make_user("finance", roles.FINANCE, email="finance@example.com"),
        "manager": make_user("manager", roles.MANAGER, carparks=carparks[:1], email="manager@example.com"),
    }


class Story:
    """Drives one process through the engine at given moments."""

    def __init__(self, staff: dict[str, Any]):
        self.staff = staff

    def start(self, when: datetime, carpark: CarPark) -> Process:
        with time_machine.travel(when, tick=False):
            return services.process_start(definition_key="mon-review", business_object=carpark)

    def task(self, process: Process) -> Task:
        return Task.objects.get(process=process, state__in=Task.ACTIVE_STATES)

    def claim(self, process: Process, when: datetime, who: str = "agent") -> None:
        with time_machine.travel(when, tick=False):
            services.task_claim(task=self.task(process), user=self.staff[who])

    def complete(self, process: Process, when: datetime, outcome: str, who: str = "agent") -> None:
        with time_machine.travel(when, tick=False):
            services.task_complete(task=self.task(process), user=self.staff[who], outcome=outcome)

    def tick(self, when: datetime) -> None:
        with time_machine.travel(when, tick=False):
            fire_due_timers()

    def full(
        self, start: datetime, carpark: CarPark, *, wait: int = 10, work: int = 20, rework: bool = False
    ) -> Process:
        """start → review (claimed after ``wait`` min, done after ``work`` more) [→ review again] → check → done."""
        process = self.start(start, carpark)
        now = start
        for outcome in (["rework"] if rework else []) + ["approve"]:
            now += timedelta(minutes=wait)
            self.claim(process, now)
            now += timedelta(minutes=work)
            self.complete(process, now, outcome)
        now += timedelta(minutes=5)
        self.complete(process, now, "ok", who="supervisor")
        return process


@pytest.fixture
def story(staff: dict[str, Any], version: Any) -> Story:
    return Story(staff)


def minutes(n: float) -> int:
    return int(n * 60_000)


__all__ = ["SPEC", "Story", "at", "minutes", "timedelta"]
