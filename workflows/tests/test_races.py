"""Races settled by PostgreSQL, with real threads."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from workflows import services
from workflows.errors import TaskNotAvailable
from workflows.models import ProcessEvent, Task, Timer
from workflows.testing import fire_due_timers, install_definition


def run_in_threads(*targets):
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def wrap(index, target):
        try:
            barrier.wait()
            results[index] = ("ok", target())
        except Exception as exc:  # collected and asserted by the test
            results[index] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_threads_completing_the_same_task_give_one_transition_and_one_clear_error(season_spec, agent):
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season")
    task_id = process.tasks.get().pk

    def complete():
        task = Task.objects.get(pk=task_id)
        return services.task_complete(task=task, user=agent, outcome="approve", inputs={"deposit_ok": True}).pk

    for _ in range(3):  # a few rounds to make the overlap likely each time
        results = run_in_threads(complete, complete)
        oks = [r for r in results if r[0] == "ok"]
        errors = [r[1] for r in results if r[0] == "error"]
        assert len(oks) == 1, results
        assert len(errors) == 1 and isinstance(errors[0], TaskNotAvailable)
        assert "already completed" in str(errors[0])
        assert ProcessEvent.objects.filter(process=process, kind="task_completed").count() == 1
        assert ProcessEvent.objects.filter(process=process, step_id="check", kind="step_entered").count() == 1
        if _ < 2:  # next round on a fresh process
            process = services.process_start(definition_key="test-season")
            task_id = process.tasks.get().pk


@pytest.mark.django_db(transaction=True)
def test_two_workers_firing_the_same_timer_give_one_firing(season_spec, time_machine):
    time_machine.move_to("2026-02-02 08:00Z", tick=False)
    install_definition(season_spec)
    process = services.process_start(definition_key="test-season")
    timer = Timer.objects.get(process=process)
    time_machine.move_to("2026-02-04 08:00:01Z", tick=False)

    results = run_in_threads(fire_due_timers, fire_due_timers, fire_due_timers)
    assert sorted(r[1] for r in results) == [0, 0, 1], results
    timer.refresh_from_db()
    assert timer.state == "fired"
    assert ProcessEvent.objects.filter(process=process, kind="task_escalated").count() == 1
    assert Task.objects.filter(process=process, state="open").count() == 1
