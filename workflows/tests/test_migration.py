"""Migrating running processes from one version to another: step mapping, the plan, the batch (its
own transaction per process, audited), the portal pages and ``manage.py process_migrate``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from accounts import roles
from accounts.models import AuditEntry
from workflows import migration, services
from workflows.errors import MigrationNotPossible
from workflows.models import Process, ProcessEvent, Task, WorkflowDefinition
from workflows.testing import install_definition

pytestmark = pytest.mark.django_db

KEY = "test-migration"
AT_CHECK = 20  # of the 50 processes, these are at 'check'; the other 30 at 'review'


def spec(version: int) -> dict:
    """v1: start → review → check → end. v2 renames 'review' to 'review_application' (new name and
    instructions) and ends on its own end step, so a process that finishes shows it took v2's path."""
    review = "review" if version == 1 else "review_application"
    end = "end" if version == 1 else "approved"
    return {
        "key": KEY,
        "name": "Test migration",
        "steps": [
            {"id": "start", "type": "start", "next": review},
            {
                "id": review,
                "type": "user",
                "name": "Review application" if version == 1 else "Review the application",
                "instructions": "Read it." if version == 1 else "Read it and check the ID.",
                "role": roles.AGENT,
                "outcomes": {"done": "check"},
            },
            {"id": "check", "type": "user", "name": "Check documents", "role": roles.AGENT, "outcomes": {"ok": end}},
            {"id": end, "type": "end", "result": f"done in v{version}"},
        ],
    }


@pytest.fixture
def agent(make_user):
    return make_user("agent", roles.AGENT)


@pytest.fixture
def fifty(agent):
    """50 running processes of version 1 (30 at review, 20 at check), then version 2 published."""
    v1 = install_definition(spec(1))
    processes = [services.process_start(definition_key=KEY) for _ in range(50)]
    for process in processes[:AT_CHECK]:
        task = Task.objects.select_related("process").get(process=process, state=Task.State.OPEN)
        services.task_complete(task=task, user=agent, outcome="done")
    v2 = install_definition(spec(2))
    return v1, v2


def where() -> dict[tuple[int, str], int]:
    """(version number, current step) → how many processes."""
    rows = Process.objects.values_list("version__number", "current_step")
    counts: dict[tuple[int, str], int] = {}
    for row in rows:
        counts[row] = counts.get(row, 0) + 1
    return counts


def open_tasks() -> list[tuple[int, str, str]]:
    return sorted(Task.objects.filter(state=Task.State.OPEN).values_list("pk", "step_id", "name"))


# -- the service -------------------------------------------------------------------------------
def test_it_moves_a_process_to_a_mapped_step_with_its_open_task(fifty):
    v1, v2 = fifty
    process = Process.objects.filter(current_step="review").first()
    task = Task.objects.get(process=process, state=Task.State.OPEN)

    services.process_migrate(process=process, to_version=v2, step_map={"review": "review_application"})

    process.refresh_from_db()
    assert (process.version_id, process.current_step) == (v2.pk, "review_application")
    moved = Task.objects.get(process=process, state=Task.State.OPEN)
    assert moved.pk == task.pk
    assert (moved.step_id, moved.name, moved.instructions) == (
        "review_application",
        "Review the application",
        "Read it and check the ID.",
    )
    event = process.events.get(kind=ProcessEvent.Kind.PROCESS_MIGRATED)
    assert event.step_id == "review_application"
    assert event.data == {
        "from": 1,
        "to": 2,
        "from_step": "review",
        "to_step": "review_application",
        "step_map": {"review": "review_application"},
    }


def test_it_refuses_a_mapping_to_a_step_of_another_type(fifty):
    v1, v2 = fifty
    process = Process.objects.filter(current_step="review").first()
    with pytest.raises(MigrationNotPossible, match="'review' is a user step here but 'approved' is an end step"):
        services.process_migrate(process=process, to_version=v2, step_map={"review": "approved"})
    definition = WorkflowDefinition.objects.get(key=KEY)
    with pytest.raises(migration.StepMapInvalid) as refused:
        migration.processes_migrate(definition=definition, from_number=1, to_number=2, step_map={"review": "approved"})
    assert "'review' (Review application) cannot be mapped to 'approved'" in str(refused.value)
    assert "is an end step in version 2" in refused.value.problems["review"]
    assert where() == {(1, "review"): 30, (1, "check"): AT_CHECK}
    assert not AuditEntry.objects.filter(action="workflow.processes_migrated").exists()


def test_it_plans_per_step_with_the_automatic_mapping_and_the_candidates(fifty):
    definition = WorkflowDefinition.objects.get(key=KEY)
    rows = {r.step_id: r for r in migration.migration_plan(definition=definition, from_number=1, to_number=2)}
    assert list(rows) == ["review", "check"]
    assert (rows["review"].name, rows["review"].count, rows["review"].automatic) == ("Review application", 30, None)
    assert rows["review"].reason == "Version 2 has no step 'review'."
    assert [(c.id, c.name) for c in rows["review"].candidates] == [
        ("review_application", "Review the application"),
        ("check", "Check documents"),
    ]
    assert rows["check"].count == AT_CHECK
    assert (rows["check"].automatic.id, rows["check"].automatic.name) == ("check", "Check documents")

    only = migration.migration_plan(definition=definition, from_number=1, to_number=2, step_ids=["check"])
    assert [r.step_id for r in only] == ["check"]
    with pytest.raises(MigrationNotPossible, match="Test migration has no version 7"):
        migration.migration_plan(definition=definition, from_number=1, to_number=7)
    install_definition(spec(1) | {"name": "Test migration (draft)"}, publish=False)
    with pytest.raises(MigrationNotPossible, match="Version 3 is a draft"):
        migration.migration_plan(definition=definition, from_number=1, to_number=3)


def test_it_goes_on_with_the_others_when_one_process_fails_and_reports_it(fifty):
    definition = WorkflowDefinition.objects.get(key=KEY)
    blocked = Process.objects.filter(current_step="check").order_by("pk").first()
    with connection.cursor() as cursor:  # the database refuses to change this one row
        cursor.execute(
            "CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'process row is locked for maintenance'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER refuse_one BEFORE UPDATE ON {Process._meta.db_table} FOR EACH ROW "
            f"WHEN (OLD.id = {blocked.pk}) EXECUTE FUNCTION pg_temp.refuse()"
        )

    report = migration.processes_migrate(
        definition=definition, from_number=1, to_number=2, step_map={"review": "review_application"}
    )

    assert [i.process_id for i in report.failed] == [blocked.pk]
    assert "locked for maintenance" in report.failed[0].error
    assert report.counts()["migrated"] == 49
    assert where() == {(2, "review_application"): 30, (2, "check"): AT_CHECK - 1, (1, "check"): 1}
    entry = AuditEntry.objects.get(action="workflow.processes_migrated")
    assert entry.new["failed"] == 1 and entry.new["migrated"] == 49


# -- the portal --------------------------------------------------------------------------------
def test_it_migrates_fifty_processes_from_the_portal_after_a_preview_that_changes_nothing(
    fifty, client, login, make_user, agent
):
    v1, v2 = fifty
    admin = login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    detail = client.get(reverse("workflows:definition-detail", kwargs={"key": KEY})).content.decode()
    url = reverse("workflows:migrate", kwargs={"key": KEY})
    assert f'href="{url}"' in detail and "Migrate running processes" in detail

    page = client.get(url).content.decode()  # defaults: from v1 (retired, with processes) to v2 (published)
    assert "v1 (retired) · 50 processes" in page
    assert "Review application" in page and "Version 2 has no step &#x27;review&#x27;." in page
    assert "Maps automatically to Check documents" in page
    assert '<option value="review_application">Review the application (review_application)</option>' in page

    form = {"from": "1", "to": "2", "map-check": "check"}
    unanswered = client.post(url, form | {"map-review": "", "action": "preview"})
    assert unanswered.status_code == 400
    assert "Choose the step of the new version for the 30 processes at &#x27;Review application&#x27;" in (
        unanswered.content.decode()
    )

    before = (where(), open_tasks())
    form["map-review"] = "review_application"
    preview = client.post(url, form | {"action": "preview"})
    text = preview.content.decode()
    assert preview.status_code == 200
    assert "Nothing has changed yet." in text
    assert "50 processes will move to version 2 (20 automatically, 30 by your mapping)" in text
    assert "0 will stay on version 1" in text
    assert "Review application → Review the application" in text
    unconfirmed = client.post(url, form | {"action": "migrate"})
    assert "Tick the box to confirm the migration." in unconfirmed.content.decode()
    assert (where(), open_tasks()) == before
    assert not ProcessEvent.objects.filter(kind=ProcessEvent.Kind.PROCESS_MIGRATED).exists()
    assert not AuditEntry.objects.filter(action="workflow.processes_migrated").exists()

    done = client.post(url, form | {"action": "migrate", "confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == reverse("workflows:migrate-result", kwargs={"key": KEY})
    result = client.get(done["Location"]).content.decode()
    assert "50 processes moved to version 2." in result
    assert '<dt class="col-8">Moved to version 2</dt><dd class="col-4">50</dd>' in result

    assert where() == {(2, "review_application"): 30, (2, "check"): AT_CHECK}
    tasks = open_tasks()
    assert [pk for pk, _, _ in tasks] == [pk for pk, _, _ in before[1]]  # the same tasks, none recreated
    assert {(step, name) for _, step, name in tasks} == {
        ("review_application", "Review the application"),
        ("check", "Check documents"),
    }
    migrated = ProcessEvent.objects.filter(kind=ProcessEvent.Kind.PROCESS_MIGRATED)
    assert migrated.count() == 50
    assert all(e.actor_id == admin.pk and e.data["step_map"] == {"review": "review_application"} for e in migrated)
    entry = AuditEntry.objects.get(action="workflow.processes_migrated")
    assert entry.actor_id == admin.pk and entry.target_repr == "Test migration"
    assert entry.old == {"version": 1}
    assert entry.new["step_map"] == {"review": "review_application"}
    assert (entry.new["migrated"], entry.new["not_migrated"], entry.new["failed"]) == (50, 0, 0)

    # The moved task is worked on as usual and the process follows version 2's path.
    task = Task.objects.select_related("process").filter(step_id="review_application").first()
    history = client.get(reverse("workflows:process-detail", args=[task.process_id])).content.decode()
    moved = '<span title="review">Review application</span> → <span title="review_application">Review the application'
    assert f"v1 → v2 ({moved}</span>)" in history  # the steps by name, also the old version's
    services.task_complete(task=task, user=agent, outcome="done")
    process = Process.objects.get(pk=task.process_id)
    assert (process.version_id, process.current_step) == (v2.pk, "check")
    check = Task.objects.select_related("process").get(process=process, state=Task.State.OPEN)
    services.task_complete(task=check, user=agent, outcome="ok")
    process.refresh_from_db()
    assert (process.state, process.current_step, process.result) == ("completed", "approved", "done in v2")


def test_it_shows_a_mapping_to_a_step_of_another_type_as_an_error(fifty, client, login, make_user):
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    url = reverse("workflows:migrate", kwargs={"key": KEY})
    response = client.post(url, {"from": "1", "to": "2", "map-review": "approved", "action": "preview"})
    assert response.status_code == 400
    assert "cannot be mapped to &#x27;approved&#x27;" in response.content.decode()
    assert "is an end step in version 2" in response.content.decode()
    assert where() == {(1, "review"): 30, (1, "check"): AT_CHECK}


def test_it_leaves_the_processes_of_a_step_where_they_are_and_filters_by_step(fifty, client, login, make_user):
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    url = reverse("workflows:migrate", kwargs={"key": KEY})
    filtered = client.get(url, {"from": "1", "to": "2", "step": "check"}).content.decode()
    assert 'data-step="check"' in filtered and 'data-step="review"' not in filtered

    form = {"from": "1", "to": "2", "map-review": ":leave", "map-check": "check", "confirm": "yes"}
    response = client.post(url, form | {"action": "migrate"})
    assert response.status_code == 302
    assert where() == {(1, "review"): 30, (2, "check"): AT_CHECK}
    nothing = client.post(url, {"from": "1", "to": "2", "map-review": ":leave", "action": "preview"})
    assert "Nothing to migrate: every step is left where it is." in nothing.content.decode()


def test_it_forbids_the_migration_page_to_an_agent_and_a_supervisor(fifty, client, login, make_user, agent):
    url = reverse("workflows:migrate", kwargs={"key": KEY})
    for user in (agent, make_user("sup", roles.SUPERVISOR)):
        login(client, user)
        assert client.get(url).status_code == 403
        form = {"from": "1", "to": "2", "map-review": "review_application", "action": "migrate", "confirm": "yes"}
        assert client.post(url, form).status_code == 403
        assert client.get(reverse("workflows:migrate-result", kwargs={"key": KEY})).status_code == 403
    assert where() == {(1, "review"): 30, (1, "check"): AT_CHECK}


def test_it_says_when_nothing_runs(client, login, make_user):
    install_definition(spec(1))
    install_definition(spec(2))
    login(client, make_user("admin", roles.ADMINISTRATOR))
    page = client.get(reverse("workflows:migrate", kwargs={"key": KEY})).content.decode()
    assert "No process of Test migration is running or suspended: there is nothing to migrate." in page


# -- the command -------------------------------------------------------------------------------
def migrate_command(*args: str) -> str:
    out = StringIO()
    call_command("process_migrate", KEY, *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_the_plan_on_a_dry_run_and_changes_nothing(fifty):
    before = (where(), open_tasks())
    out = migrate_command("--from", "1", "--to", "2", "--map", "review=review_application", "--dry-run")
    assert "Plan (dry run, nothing changed): Test migration (test-migration) version 1 → version 2" in out
    assert "Review application [review]: 30 process(es) → Review the application [review_application] (mapped)" in out
    assert "Check documents [check]: 20 process(es) → Check documents [check] (automatic)" in out
    first = Process.objects.order_by("pk").first()
    assert f"#{first.pk} at check: would move to check" in out
    assert "Total: 50 process(es); would move 50 (20 automatic, 30 mapped); not possible 0; failed 0." in out
    assert (where(), open_tasks()) == before
    assert not AuditEntry.objects.filter(action="workflow.processes_migrated").exists()

    with pytest.raises(CommandError, match="30 processes would stay on version 1"):
        migrate_command("--from", "1", "--to", "2", "--dry-run")
    assert (where(), open_tasks()) == before


def test_the_command_migrates_with_a_map(fifty):
    out = migrate_command("--from", "1", "--to", "2", "--map", "review=review_application")
    assert "Total: 50 process(es); migrated 50 (20 automatic, 30 mapped); not possible 0; failed 0." in out
    assert where() == {(2, "review_application"): 30, (2, "check"): AT_CHECK}
    assert AuditEntry.objects.filter(action="workflow.processes_migrated").count() == 1


def test_the_command_reports_an_unmapped_missing_step_and_exits_non_zero(fifty):
    out = StringIO()
    with pytest.raises(CommandError, match="30 processes were not migrated on version 1") as failed:
        call_command("process_migrate", KEY, "--from", "1", "--to", "2", stdout=out)
    assert failed.value.returncode != 0
    assert "Review application [review]: 30 process(es) stay: Version 2 has no step 'review'" in out.getvalue()
    assert "stays: Version 2 has no step 'review' (Review application) and it is not mapped." in out.getvalue()
    assert where() == {(1, "review"): 30, (2, "check"): AT_CHECK}

    only = migrate_command("--from", "1", "--to", "2", "--step", "review", "--map", "review=review_application")
    assert "migrated 30" in only
    assert where() == {(2, "review_application"): 30, (2, "check"): AT_CHECK}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--from", "1", "--to", "2"], "no workflow 'nope'"),
        ([KEY, "--from", "1", "--to", "9"], "Test migration has no version 9"),
        ([KEY, "--from", "1", "--to", "2", "--map", "review"], "write it as old_step=new_step"),
        ([KEY, "--from", "1", "--to", "2", "--map", "review=nope"], "Version 2 has no step 'nope'"),
        ([KEY, "--from", "1", "--to", "2", "--map", "gone=check"], "Version 1 has no step 'gone' to map"),
        ([KEY, "--from", "1", "--to", "2", "--map", "review=approved"], "is an end step in version 2"),
    ],
)
def test_the_command_refuses_bad_input_clearly(fifty, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("process_migrate", *args, stdout=StringIO())
    assert where() == {(1, "review"): 30, (1, "check"): AT_CHECK}
