"""Management commands and the definition sync / demo loader."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from workflows import demo
from workflows.models import Process, WorkflowDefinition
from workflows.sync import definition_files
from workflows.testing import install_definition

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_workflow_sync_installs_every_shipped_definition_once():
    files = definition_files()
    assert files, "some app ships definitions"
    first = run("workflow_sync")
    assert f"{len(files)} definitions, {len(files)} new versions." in first
    assert f"{len(files)} definitions, 0 new versions." in run("workflow_sync")
    assert WorkflowDefinition.objects.count() == len(files)
    out = io.StringIO()
    demo.load(out)
    assert "0 new versions" in out.getvalue()


def test_process_start_show_list_and_timers_fire(season_spec):
    install_definition(season_spec)
    out = run("process_start", "test-season", "--var", "deposit=5", "--var", 'note="hi"')
    process = Process.objects.get()
    assert f"Started process #{process.pk}" in out
    assert process.variables == {"deposit": 5, "note": "hi"}
    shown = run("process_show", str(process.pk))
    assert "Current step: review" in shown
    assert "task_created" in shown and "Open task" in shown
    listing = run("workflow_list")
    assert "test-season" in listing and "v1" in listing
    assert "0 timers fired" in run("timers_fire")
    with pytest.raises(CommandError, match="no published workflow"):
        run("process_start", "missing")
    with pytest.raises(CommandError, match="no process"):
        run("process_show", "999999")


def test_the_beat_tick_fires_due_timers(season_spec, time_machine):
    from parkinghq.schedules import BEAT_SCHEDULE
    from workflows.tasks import tick

    assert BEAT_SCHEDULE["workflows-tick"]["task"] == tick.name
    time_machine.move_to("2026-07-01 08:00Z", tick=False)
    install_definition(season_spec)
    process = services_start()
    time_machine.move_to("2026-07-03 08:00:01Z", tick=False)
    assert tick() == {"timers": 1, "jobs": 0}
    assert tick() == {"timers": 0, "jobs": 0}
    assert process.tasks.filter(state="escalated").count() == 1


def services_start():
    from workflows.services import process_start

    return process_start(definition_key="test-season", variables={"deposit": 1})
