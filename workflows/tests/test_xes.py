"""The XES event log (IEEE 1849-2016) of processes run through the engine, read back by PM4Py.

The standard's XSD is not vendored (its licence does not clearly allow it); the structure the schema
prescribes is checked by hand in ``test_the_log_has_the_structure_the_standard_prescribes``.
"""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from lxml import etree

from accounts import roles
from workflows import services
from workflows.models import Process, Task
from workflows.testing import install_definition
from workflows.xes import xes_stream

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
FIX = 'Fix "A & B" <claim>'
SPEC = {
    "key": "xes-claim",
    "name": "Claim review",
    "category": "tests",
    "steps": [
        {"id": "start", "type": "start", "name": "Claim received", "next": "review"},
        {
            "id": "review",
            "type": "user",
            "name": "Review claim",
            "role": roles.AGENT,
            "outcomes": {"approve": "approved", "reject": "rejected", "rework": "fix"},
        },
        {"id": "fix", "type": "user", "name": FIX, "role": roles.CARE, "outcomes": {"done": "review"}},
        {"id": "approved", "type": "end", "name": "Approved", "result": "approved"},
        {"id": "rejected", "type": "end", "name": "Rejected", "result": "rejected"},
    ],
}
APPROVED = ("Claim received", "Review claim", "Approved")
REJECTED = ("Claim received", "Review claim", "Rejected")
LOOPED = ("Claim received", "Review claim", FIX, "Review claim", "Approved")
ATTRIBUTE_TYPES = {"string", "date", "int", "float", "boolean", "id", "list"}
XS_NAME = re.compile(r"^[A-Za-z_:][\w.:-]*$")
XS_NCNAME = re.compile(r"^[A-Za-z_][\w.-]*$")
XS_DATETIME_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")


def at(day: str, hour: int = 9, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=BERLIN)


@pytest.fixture
def people(make_user):
    return {
        "agent": make_user("agent", roles.AGENT),
        "carer": make_user("carer", roles.CARE),
        "supervisor": make_user("supervisor", roles.SUPERVISOR),
        "finance": make_user("finance", roles.FINANCE),
    }


@pytest.fixture
def run(people):
    install_definition(SPEC)

    def go(start: datetime, *outcomes: str) -> Process:
        with time_machine.travel(start, tick=False):
            process = services.process_start(definition_key="xes-claim")
        now = start
        for outcome in outcomes:
            now += timedelta(minutes=10)
            task = Task.objects.get(process=process, state__in=Task.ACTIVE_STATES)
            who = people["carer"] if task.step_id == "fix" else people["agent"]
            with time_machine.travel(now, tick=False):
                services.task_complete(task=task, user=who, outcome=outcome)
        process.refresh_from_db()
        return process

    return go


def export(start: datetime, end: datetime, **kwargs) -> bytes:
    return b"".join(xes_stream("xes-claim", start, end, **kwargs))


def story(run) -> list[Process]:
    """3 approved, 2 rejected, 1 sent to rework once, on 2 March 2026."""
    processes = [run(at("2026-03-02", 8 + n), "approve") for n in range(3)]
    processes += [run(at("2026-03-02", 12 + n), "reject") for n in range(2)]
    processes.append(run(at("2026-03-02", 15), "rework", "done", "approve"))
    return processes


def events(log: bytes) -> list[dict[str, str]]:
    root = etree.fromstring(log)
    return [
        {"case": trace.find("string[@key='concept:name']").get("value")} | {a.get("key"): a.get("value") for a in event}
        for trace in root.iter("trace")
        for event in trace.iter("event")
    ]


def test_pm4py_reads_the_log_and_finds_exactly_the_variants_of_the_story(run, tmp_path):
    import pm4py

    story(run)
    path = tmp_path / "claims.xes"
    path.write_bytes(export(at("2026-03-02", 0), at("2026-03-03", 0), batch=4))  # two batches

    log = pm4py.read_xes(str(path))
    assert log["case:concept:name"].nunique() == 6
    assert set(log["lifecycle:transition"]) == {"start", "complete"}
    completed = log[log["lifecycle:transition"] == "complete"]
    variants = {tuple(k): v for k, v in pm4py.get_variants(completed).items()}
    assert variants == {APPROVED: 3, REJECTED: 2, LOOPED: 1}
    # every step exit has its entry
    assert (log["lifecycle:transition"] == "start").sum() == len(completed) == 3 * 3 + 2 * 3 + 5


def test_events_carry_step_name_id_time_role_and_who_completed(run, people):
    process = run(at("2026-03-02", 9), "rework", "done", "approve")
    log = export(at("2026-03-02", 0), at("2026-03-03", 0), user=people["supervisor"])
    got = [
        (e["concept:name"], e["phq:step"], e["lifecycle:transition"], e["time:timestamp"])
        + (e.get("org:role"), e.get("org:resource"))
        for e in events(log)
    ]
    assert got == [
        ("Claim received", "start", "start", "2026-03-02T09:00:00.000+01:00", None, None),
        ("Claim received", "start", "complete", "2026-03-02T09:00:00.000+01:00", None, None),
        ("Review claim", "review", "start", "2026-03-02T09:00:00.000+01:00", roles.AGENT, None),
        ("Review claim", "review", "complete", "2026-03-02T09:10:00.000+01:00", roles.AGENT, "agent"),
        (FIX, "fix", "start", "2026-03-02T09:10:00.000+01:00", roles.CARE, None),
        (FIX, "fix", "complete", "2026-03-02T09:20:00.000+01:00", roles.CARE, "carer"),
        ("Review claim", "review", "start", "2026-03-02T09:20:00.000+01:00", roles.AGENT, None),
        ("Review claim", "review", "complete", "2026-03-02T09:30:00.000+01:00", roles.AGENT, "agent"),
        ("Approved", "approved", "start", "2026-03-02T09:30:00.000+01:00", None, None),
        ("Approved", "approved", "complete", "2026-03-02T09:30:00.000+01:00", None, None),
    ]
    trace = etree.fromstring(log).find("trace")
    attrs = {a.get("key"): (a.tag, a.get("value")) for a in trace if a.tag != "event"}
    assert attrs["concept:name"] == ("string", str(process.pk))
    assert attrs["phq:version"] == ("int", "1")
    assert attrs["phq:result"] == ("string", "approved")
    assert attrs["phq:state"] == ("string", "completed")
    assert attrs["phq:ended_at"] == ("date", "2026-03-02T09:30:00.000+01:00")


def test_a_user_without_the_right_sees_roles_where_people_were(run, people):
    story(run)
    period = (at("2026-03-02", 0), at("2026-03-03", 0))
    named = {e.get("org:resource") for e in events(export(*period, user=people["supervisor"]))} - {None}
    assert named == {"agent", "carer"}
    assert {e.get("org:resource") for e in events(export(*period))} - {None} == {"agent", "carer"}  # command line
    finance_log = export(*period, user=people["finance"])
    assert {e.get("org:resource") for e in events(finance_log)} - {None} == {roles.AGENT, roles.CARE}
    assert b'"agent"' not in finance_log and b'"carer"' not in finance_log


def test_only_processes_started_in_the_period_are_in_the_log(run):
    before = run(at("2026-03-01", 23, 59), "approve")  # finished inside the period, started before it
    inside = run(at("2026-03-02", 0), "reject")
    last = run(at("2026-03-02", 23, 59), "approve")
    run(at("2026-03-03", 0), "approve")  # the end is excluded
    log = etree.fromstring(export(at("2026-03-02", 0), at("2026-03-03", 0)))
    cases = [t.find("string[@key='concept:name']").get("value") for t in log.iter("trace")]
    assert cases == [str(inside.pk), str(last.pk)]
    assert str(before.pk) not in cases
    assert etree.fromstring(export(at("2026-04-01", 0), at("2026-04-02", 0))).find("trace") is None


def test_the_log_has_the_structure_the_standard_prescribes(run):
    processes = story(run)
    Process.objects.filter(pk=processes[0].pk).update(title="Ünïcode <&> \"quoted\" 'single'\x01 end")
    root = etree.fromstring(export(at("2026-03-02", 0), at("2026-03-03", 0)))

    assert root.tag == "log" and root.nsmap == {}  # the schema has no target namespace
    assert root.get("xes.version") == "1849-2016"
    # log: extension*, global*, classifier*, attribute*, trace*, event* (in that order)
    order = ["extension", "global", "classifier", "attribute", "trace", "event"]
    ranks = [order.index("attribute" if c.tag in ATTRIBUTE_TYPES else c.tag) for c in root]
    assert ranks == sorted(ranks)
    extensions = {e.get("prefix"): (e.get("name"), e.get("uri")) for e in root.findall("extension")}
    assert extensions == {
        "concept": ("Concept", "http://www.xes-standard.org/concept.xesext"),
        "lifecycle": ("Lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
        "org": ("Organizational", "http://www.xes-standard.org/org.xesext"),
        "time": ("Time", "http://www.xes-standard.org/time.xesext"),
    }
    scopes = {g.get("scope"): {a.get("key"): a.tag for a in g} for g in root.findall("global")}
    assert scopes == {
        "trace": {"concept:name": "string"},
        "event": {"concept:name": "string", "lifecycle:transition": "string", "time:timestamp": "date"},
    }
    classifiers = {c.get("name"): c.get("keys") for c in root.findall("classifier")}
    assert classifiers == {"Activity": "concept:name", "Activity_classifier": "concept:name lifecycle:transition"}
    for name, keys in classifiers.items():
        assert XS_NCNAME.match(name)
        assert set(keys.split()) <= set(scopes["event"]), "a classifier's keys are declared global event attributes"
    assert {a.get("key"): a.get("value") for a in root if a.tag in ATTRIBUTE_TYPES}["concept:name"] == "Claim review"

    for element in root.iter(*ATTRIBUTE_TYPES):
        assert XS_NAME.match(element.get("key")), element.get("key")
        assert element.get("value") is not None
        if element.tag == "date":
            assert XS_DATETIME_WITH_OFFSET.match(element.get("value")), element.get("value")
        if element.tag == "int":
            int(element.get("value"))
    for trace in root.iter("trace"):
        ranks = [0 if a.tag in ATTRIBUTE_TYPES else 1 for a in trace]  # attributes, then events
        assert ranks == sorted(ranks) and set(ranks) == {0, 1}
        keys = [a.get("key") for a in trace if a.tag in ATTRIBUTE_TYPES]
        assert len(keys) == len(set(keys)), "every key once per element"
        for event in trace.iter("event"):
            keys = [a.get("key") for a in event]
            assert set(scopes["event"]) <= set(keys) and len(keys) == len(set(keys))
            assert all(a.tag in ATTRIBUTE_TYPES for a in event)
            assert event.find("string[@key='lifecycle:transition']").get("value") in ("start", "complete")
    titles = [t.find("string[@key='phq:title']").get("value") for t in root.iter("trace")]
    assert "Ünïcode <&> \"quoted\" 'single' end" in titles  # escaped, and the control character dropped


def test_processes_are_read_in_batches_with_their_events(run):
    story(run)
    with CaptureQueriesContext(connection) as ctx:
        export(at("2026-03-02", 0), at("2026-03-03", 0), batch=2)
    processes = [q["sql"] for q in ctx.captured_queries if 'FROM "workflows_process"' in q["sql"]]
    histories = [q["sql"] for q in ctx.captured_queries if 'FROM "workflows_processevent"' in q["sql"]]
    assert len(processes) == 4 and all("LIMIT 2" in sql for sql in processes)  # 3 pages + the empty one
    assert len(histories) == 3
    assert len(ctx.captured_queries) <= 7 + 4  # + definition, its versions (names, numbers), content types


def test_the_command_writes_a_file_stdout_and_gzip(run, tmp_path):
    story(run)
    target = tmp_path / "claims.xes"
    out = io.StringIO()
    call_command(
        "history_export_xes", "xes-claim", str(target), "--from", "2026-03-02", "--to", "2026-03-02", stdout=out
    )
    assert "Wrote" in out.getvalue()
    assert len(etree.fromstring(target.read_bytes()).findall("trace")) == 6
    assert not list(tmp_path.glob(".*part")), "no partial file is left"

    stdout = io.StringIO()
    call_command("history_export_xes", "xes-claim", "-", "--from", "2026-03-02", "--to", "2026-03-02", stdout=stdout)
    assert stdout.getvalue().encode() == target.read_bytes()

    zipped = tmp_path / "claims.xes.gz"
    call_command("history_export_xes", "xes-claim", str(zipped), "--from", "2026-03-02", "--to", "2026-03-02")
    assert gzip.decompress(zipped.read_bytes()) == target.read_bytes()

    call_command("history_export_xes", "xes-claim", str(target), "--from", "2026-03-03", "--to", "2026-03-04")
    assert etree.fromstring(target.read_bytes()).find("trace") is None  # the next days: none started


def test_the_command_refuses_an_unknown_key_and_bad_dates(run, tmp_path):
    target = tmp_path / "x.xes"
    with pytest.raises(CommandError, match="No workflow has the key “nope”"):
        call_command("history_export_xes", "nope", str(target), "--from", "2026-03-02", "--to", "2026-03-02")
    with pytest.raises(CommandError, match="--from “2026-02-30” is not a date: use YYYY-MM-DD"):
        call_command("history_export_xes", "xes-claim", str(target), "--from", "2026-02-30", "--to", "2026-03-02")
    with pytest.raises(CommandError, match="--to 2026-03-01 is before --from 2026-03-02"):
        call_command("history_export_xes", "xes-claim", str(target), "--from", "2026-03-02", "--to", "2026-03-01")
    assert not target.exists()


def test_the_command_exits_with_status_1_on_bad_input():
    result = subprocess.run(
        [sys.executable, "manage.py", "history_export_xes", "xes-claim", "-", "--from", "yesterday", "--to", "x"],
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--from “yesterday” is not a date: use YYYY-MM-DD." in result.stderr
