"""The portal and its workers survive a stopped broker and a restarted database."""

from __future__ import annotations

import time

import pytest

from .conftest import apply_and_approve, states
from .harness import wait_for

pytestmark = pytest.mark.slow


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
