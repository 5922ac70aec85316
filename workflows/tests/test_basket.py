"""The task basket: who sees what, the tabs, filters and search, the task page's actions,
"Can't decide", delegation and reassignment rights, absences and the constant query count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from notifications.models import Notification, NotificationPreference
from workflows.models import Absence, Process, Task
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = pytest.mark.django_db

BASKET = reverse("workflows:basket")


def task_url(task: Task, action: str = "") -> str:
    return reverse(f"workflows:task-{action or 'detail'}", args=[task.pk])


@pytest.fixture
def world(db):
    install()
    a, b = CarParkFactory(name="Altstadt"), CarParkFactory(name="Bahnhof")
    return {
        "a": a,
        "b": b,
        "agent_a": person("agent_a", roles.AGENT, carparks=[a]),
        "agent_a2": person("agent_a2", roles.AGENT, carparks=[a]),
        "agent_b": person("agent_b", roles.AGENT, carparks=[b]),
        "finance": person("finance", roles.FINANCE, carparks=[a, b]),
        "supervisor": person("supervisor", roles.SUPERVISOR),
        "admin": person("admin", roles.ADMINISTRATOR),
        "task_a": start_review(a, customer_name="Erika Mustermann", plate="M-AB 123"),
        "task_b": start_review(b, customer_name="Hans Meier"),
    }


def shown(client, **params) -> set[int]:
    response = client.get(BASKET, params)
    assert response.status_code == 200
    return {task.pk for task in response.context["tasks"]}


# -- visibility ----------------------------------------------------------------------------------
def test_it_shows_an_agent_only_the_tasks_of_their_car_parks(client, login, world):
    login(client, world["agent_a"])
    assert shown(client) == {world["task_a"].pk}
    assert client.get(task_url(world["task_b"])).status_code == 403
    assert client.post(task_url(world["task_b"], "claim")).status_code == 403
    login(client, world["agent_b"])
    assert shown(client) == {world["task_b"].pk}


def test_it_shows_nothing_to_a_user_without_the_role(client, login, world):
    login(client, world["finance"])  # responsible for both car parks, but not a back-office agent
    assert shown(client) == set()
    assert client.get(task_url(world["task_a"])).status_code == 403
    login(client, person("nobody"))
    assert client.get(BASKET).status_code == 403


def test_it_shows_a_supervisor_the_team_and_an_administrator_everything(client, login, world):
    world["agent_a"].refresh_from_db()
    client.force_login(world["agent_a"])
    client.post(task_url(world["task_a"], "claim"))
    login(client, world["supervisor"])
    assert shown(client) == set()  # no task for the Supervisor role yet
    response = client.get(BASKET, {"tab": "team"})
    assert {t.pk for t in response.context["tasks"]} == {world["task_a"].pk, world["task_b"].pk}
    assert response.context["counts"]["team"] == 2
    assert "agent_a".title() in response.content.decode()
    login(client, world["admin"])
    assert shown(client) == {world["task_b"].pk}  # task_a is claimed: not in the queue any more
    assert client.get(BASKET, {"tab": "team"}).status_code == 200


def test_it_keeps_the_team_tab_from_agents(client, login, world):
    login(client, world["agent_a"])
    response = client.get(BASKET, {"tab": "team"})
    assert response.context["tab"] == "queue"
    assert "Team <span" not in response.content.decode()


# -- tabs, filters, search, sort -----------------------------------------------------------------
def test_it_moves_a_claimed_task_to_my_tasks_and_a_completed_one_to_done(client, login, world):
    login(client, world["agent_a"])
    task = world["task_a"]
    response = client.post(task_url(task, "claim"))
    assert response.status_code == 302 and response["Location"] == task_url(task)
    assert shown(client) == set()
    assert shown(client, tab="mine") == {task.pk}
    response = client.post(task_url(task, "complete"), {"outcome": "approve", "deposit_ok": "on", "amount": "25"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert shown(client, tab="mine") == set()
    assert shown(client, tab="done") == {task.pk}
    process = Process.objects.get(pk=task.process_id)
    assert process.state == Process.State.COMPLETED
    assert process.variables["amount"] == 25 and process.variables["deposit_ok"] is True


def test_it_filters_by_car_park_overdue_escalated_priority_and_step(client, login, world):
    login(client, world["admin"])
    a, b = world["task_a"], world["task_b"]
    assert shown(client, carpark=world["a"].pk) == {a.pk}
    assert shown(client, priority=Task.Priority.HIGH) == {a.pk, b.pk}
    assert shown(client, priority=Task.Priority.LOW) == set()
    assert shown(client, workflow="basket-review", step="review") == {a.pk, b.pk}
    assert shown(client, carpark=world["b"].pk, step="review") == {b.pk}
    assert shown(client, overdue="on") == set()
    Task.objects.filter(pk=b.pk).update(due_at=timezone.now() - dt.timedelta(hours=1), escalation_level=1)
    assert shown(client, overdue="on") == {b.pk}
    assert shown(client, escalated="on") == {b.pk}


def test_it_finds_tasks_by_customer_contract_and_plate(client, login, world):
    login(client, world["admin"])
    a, b = world["task_a"], world["task_b"]
    assert shown(client, task_search="mustermann") == {a.pk}
    assert shown(client, task_search="m ab-123") == {a.pk}
    assert shown(client, task_search=str(b.process.object_id)) == {b.pk}
    assert shown(client, task_search=b.process.business_object.customer.email) == {b.pk}
    assert shown(client, task_search="nobody at all") == set()


def test_it_finds_the_same_when_searching_from_the_objects_side(client, login, world, monkeypatch):
    from workflows import basket_selectors

    monkeypatch.setattr(basket_selectors, "SEARCH_SCAN_LIMIT", 1)  # more candidates than that: objects first
    login(client, world["admin"])
    a, b = world["task_a"], world["task_b"]
    assert shown(client, task_search="mustermann") == {a.pk}
    assert shown(client, task_search="M-AB 123") == {a.pk}
    assert shown(client, task_search=f"C-{b.process.object_id}") == {b.pk}
    assert shown(client, task_search="nobody at all") == set()


def test_it_sorts_by_priority_and_age(client, login, world):
    login(client, world["admin"])
    a, b = world["task_a"], world["task_b"]
    Task.objects.filter(pk=b.pk).update(priority=Task.Priority.URGENT)
    Task.objects.filter(pk=a.pk).update(created_at=timezone.now() - dt.timedelta(days=3))
    order = [t.pk for t in client.get(BASKET, {"sort": "priority"}).context["tasks"]]
    assert order == [b.pk, a.pk]
    order = [t.pk for t in client.get(BASKET, {"sort": "age"}).context["tasks"]]
    assert order == [a.pk, b.pk]


def test_it_answers_htmx_with_the_results_only(client, login, world):
    login(client, world["admin"])
    response = client.get(BASKET, {"carpark": world["a"].pk}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="basket-results")
    body = response.content.decode()
    assert "<html" not in body and "<table" in body and 'id="basket-filters"' not in body
    response = client.get(BASKET, {"tab": "mine"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="basket-body")
    assert 'id="basket-filters"' in response.content.decode() and "<html" not in response.content.decode()


def test_it_paginates(client, login, world):
    for _ in range(26):
        start_review(world["a"])
    login(client, world["agent_a"])
    response = client.get(BASKET)
    assert len(response.context["tasks"]) == 25
    assert "Page 1 of 2" in response.content.decode()
    assert len(client.get(BASKET, {"page": 2}).context["tasks"]) == 2


def test_the_navigation_badge_counts_queue_and_mine(client, login, world):
    login(client, world["finance"])
    assert client.get(reverse("workflows:basket-count")).content == b""  # nothing waiting: the badge hides
    login(client, world["agent_a"])
    start_review(world["a"])
    response = client.get(reverse("workflows:basket-count"))
    assert response.content.decode().endswith("Open tasks: </span>2</span>")
    client.post(task_url(world["task_a"], "claim"))
    assert client.get(reverse("workflows:basket-count")).content.decode().endswith("</span>2</span>")
    page = client.get(reverse("portal-home")).content.decode()
    assert 'hx-get="/basket/count/"' in page and 'hx-trigger="load, every 30s"' in page
    assert 'hx-select="#basket-count"' in page


def test_the_basket_page_makes_the_same_number_of_queries_for_5_and_50_tasks(client, login, world):
    user = world["admin"]
    login(client, user)
    for _ in range(3):
        start_review(world["a"])
    Task.objects.filter(pk=world["task_a"].pk).update(state=Task.State.CLAIMED, assignee=user)
    Task.objects.filter(pk=world["task_b"].pk).update(escalation_level=1)
    done = start_review(world["a"])
    Task.objects.filter(pk=done.pk).update(state=Task.State.COMPLETED, completed_by=user, completed_at=timezone.now())
    client.get(BASKET, {"task_search": "mustermann"})  # warm caches (content types, compiled graphs)

    def queries(**params) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(BASKET, params).status_code == 200
        return len(ctx.captured_queries)

    variants = {
        "queue": {},
        "search": {"task_search": "mustermann"},
        "filtered": {"carpark": world["b"].pk, "sort": "priority", "escalated": "on"},
        "mine": {"tab": "mine"},
        "team": {"tab": "team"},
        "done": {"tab": "done"},
    }
    small = {name: queries(**params) for name, params in variants.items()}
    for _ in range(45):
        task = start_review(world["b"], plate="B-XY 1")
    Task.objects.filter(process__scope_carpark_id=world["b"].pk).update(escalation_level=1)
    Task.objects.filter(pk=task.pk).update(state=Task.State.CLAIMED, assignee=user)
    for _ in range(30):
        done = start_review(world["a"])
        Task.objects.filter(pk=done.pk).update(
            state=Task.State.COMPLETED, completed_by=user, completed_at=timezone.now()
        )
    assert Task.objects.filter(state__in=Task.ACTIVE_STATES).count() == 50
    large = {name: queries(**params) for name, params in variants.items()}
    assert large == small
    assert max(large.values()) <= 12


# -- the task page -------------------------------------------------------------------------------
def test_the_task_page_shows_instructions_summary_timeline_and_the_generated_form(client, login, world):
    login(client, world["agent_a"])
    task = world["task_a"]
    body = client.get(task_url(task)).content.decode()
    assert "Check the application and the deposit." in body
    assert "Erika Mustermann" in body and "Altstadt" in body and "MAB123" in body  # customer, car park, plate
    contract = task.process.business_object
    for url in (
        reverse("carparks:contract-detail", args=[contract.pk]),
        reverse("carparks:customer-detail", args=[contract.customer_id]),
        reverse("carparks:carpark-detail", args=[world["a"].pk]),
    ):
        assert f'href="{url}"' in body
    assert "Task created" in body and "Process started" in body  # timeline
    # the date is typed in the language's format (a text field, not the browser's locale-bound picker)
    for field in (
        'name="note"',
        'name="amount"',
        'placeholder="yyyy-mm-dd"',
        '<select name="channel"',
        'type="checkbox"',
    ):
        assert field in body
    assert 'type="file"' in body and 'value="approve"' in body and 'value="reject"' in body
    assert "csrfmiddlewaretoken" in body


def test_it_refuses_invalid_inputs_and_keeps_what_was_entered(client, login, world):
    login(client, world["agent_a"])
    task = world["task_a"]
    client.post(task_url(task, "claim"))
    response = client.post(task_url(task, "complete"), {"outcome": "approve", "amount": "lots", "note": "hm"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a number." in body and "This field is required." in body and "hm</textarea>" in body
    task.refresh_from_db()
    assert task.state == Task.State.CLAIMED


def test_it_saves_a_draft(client, login, world):
    login(client, world["agent_a"])
    task = world["task_a"]
    client.post(task_url(task, "claim"))
    client.post(task_url(task, "complete"), {"action": "save", "note": "call back", "channel": "phone"})
    task.refresh_from_db()
    assert task.inputs["note"] == "call back" and task.inputs["channel"] == "phone"
    assert "call back</textarea>" in client.get(task_url(task)).content.decode()


def test_cant_decide_escalates_with_a_reason_and_keeps_every_input(
    client, login, world, django_capture_on_commit_callbacks
):
    login(client, world["agent_a"])
    task = world["task_a"]
    client.post(task_url(task, "claim"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            task_url(task, "escalate"),
            {"reason": "Deposit paid twice?", "note": "customer says paid", "amount": "50", "paid_on": "2026-11-20"},
        )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.state == Task.State.ESCALATED
    new = Task.objects.get(escalated_from=task)
    assert new.role == roles.SUPERVISOR and new.escalation_level == 1
    assert new.inputs["note"] == "customer says paid" and new.inputs["amount"] == "50"
    assert new.inputs["paid_on"] == "2026-11-20"
    # The supervisor is told, in the portal and by email, and finds the entries in the form.
    supervisor = world["supervisor"]
    assert Notification.objects.filter(user=supervisor, kind=Notification.Kind.ESCALATION).count() == 1
    assert [m.to for m in mail.outbox] == [[supervisor.email]]
    assert "Deposit paid twice?" in mail.outbox[0].body
    login(client, supervisor)
    body = client.get(task_url(new)).content.decode()
    assert "customer says paid</textarea>" in body and 'value="50"' in body and "Deposit paid twice?" in body
    assert task.pk not in shown(client) and new.pk in shown(client)
    assert "Escalated" in client.get(BASKET).content.decode()


def test_cant_decide_needs_a_reason(client, login, world):
    login(client, world["agent_a"])
    task = world["task_a"]
    response = client.post(task_url(task, "escalate"), {"reason": "", "note": "x"})
    assert response.status_code == 400
    task.refresh_from_db()
    assert task.state == Task.State.OPEN


def test_actions_need_the_csrf_token(world, login):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    login(client, world["agent_a"])
    task = world["task_a"]
    assert client.post(task_url(task, "claim")).status_code == 403
    task.refresh_from_db()
    assert task.state == Task.State.OPEN


def test_release_puts_the_task_back_in_the_queue(client, login, world):
    login(client, world["agent_a"])
    task = world["task_a"]
    client.post(task_url(task, "claim"))
    login(client, world["agent_a2"])
    assert client.post(task_url(task, "release")).status_code == 403
    login(client, world["agent_a"])
    client.post(task_url(task, "release"))
    task.refresh_from_db()
    assert task.state == Task.State.OPEN and task.assignee is None


# -- delegation, reassignment, take over, absence -------------------------------------------------
def test_an_agent_delegates_to_a_colleague_with_the_role(client, login, world, django_capture_on_commit_callbacks):
    login(client, world["agent_a"])
    task = world["task_a"]
    client.post(task_url(task, "claim"))
    page = client.get(task_url(task)).content.decode()
    assert "Agent_A2" in page and "Agent_B" not in page  # only colleagues responsible for the car park
    with django_capture_on_commit_callbacks(execute=True):
        client.post(task_url(task, "delegate"), {"to_user": world["agent_a2"].pk})
    task.refresh_from_db()
    assert task.assignee == world["agent_a2"]
    notification = Notification.objects.get(user=world["agent_a2"])
    assert notification.kind == Notification.Kind.ASSIGNMENT and notification.url == task_url(task)
    assert [m.to for m in mail.outbox] == [[world["agent_a2"].email]]
    # Delegating to someone without responsibility for the car park is refused.
    login(client, world["agent_a2"])
    client.post(task_url(task, "delegate"), {"to_user": world["agent_b"].pk})
    task.refresh_from_db()
    assert task.assignee == world["agent_a2"]


def test_delegate_and_reassign_are_refused_without_the_right(client, login, world):
    task = world["task_a"]
    login(client, world["agent_a"])
    client.post(task_url(task, "claim"))
    # A colleague may not delegate someone else's task, nor reassign at all.
    login(client, world["agent_a2"])
    assert client.post(task_url(task, "delegate"), {"to_user": world["agent_a2"].pk}).status_code == 403
    assert client.post(task_url(task, "reassign"), {"to_user": world["agent_a2"].pk}).status_code == 403
    assert client.post(task_url(task, "take-over")).status_code == 403
    # Someone who cannot see the task at all gets 403 too.
    login(client, world["agent_b"])
    assert client.post(task_url(task, "delegate"), {"to_user": world["agent_b"].pk}).status_code == 403
    login(client, world["finance"])
    assert client.post(task_url(task, "reassign"), {"to_user": world["finance"].pk}).status_code == 403
    # GET is not allowed on actions.
    login(client, world["agent_a"])
    assert client.get(task_url(task, "delegate")).status_code == 405
    task.refresh_from_db()
    assert task.assignee == world["agent_a"]


def test_a_supervisor_reassigns_and_takes_over(client, login, world):
    task = world["task_a"]
    login(client, world["agent_a"])
    client.post(task_url(task, "claim"))
    login(client, world["supervisor"])
    client.post(task_url(task, "reassign"), {"to_user": world["agent_a2"].pk})
    task.refresh_from_db()
    assert task.assignee == world["agent_a2"]
    client.post(task_url(task, "take-over"))
    task.refresh_from_db()
    assert task.assignee == world["supervisor"]
    response = client.post(task_url(task, "complete"), {"outcome": "reject", "deposit_ok": "on"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.state == Task.State.COMPLETED and task.completed_by == world["supervisor"]


def test_a_task_routed_to_someone_away_goes_to_their_substitute(client, login, world):
    task = world["task_a"]
    today = timezone.localdate()
    Absence.objects.create(
        user=world["agent_a2"], substitute=world["agent_a"], starts_on=today, ends_on=today + dt.timedelta(days=3)
    )
    login(client, world["supervisor"])
    response = client.post(task_url(task, "reassign"), {"to_user": world["agent_a2"].pk}, follow=True)
    task.refresh_from_db()
    assert task.assignee == world["agent_a"]
    assert "is away" in response.content.decode()
    # After the absence the colleague gets it again.
    Absence.objects.update(starts_on=today - dt.timedelta(days=5), ends_on=today - dt.timedelta(days=1))
    client.post(task_url(task, "reassign"), {"to_user": world["agent_a2"].pk})
    task.refresh_from_db()
    assert task.assignee == world["agent_a2"]


def test_a_user_sets_and_cancels_an_absence(client, login, world):
    login(client, world["agent_a"])
    url = reverse("workflows:absence-list")
    today = timezone.localdate()
    response = client.post(
        url, {"substitute": world["agent_a2"].pk, "starts_on": today, "ends_on": today - dt.timedelta(days=1)}
    )
    assert response.status_code == 400 and not Absence.objects.exists()
    response = client.post(
        url, {"substitute": world["agent_a2"].pk, "starts_on": today, "ends_on": today + dt.timedelta(days=7)}
    )
    assert response.status_code == 302
    absence = Absence.objects.get(user=world["agent_a"])
    assert absence.substitute == world["agent_a2"]
    login(client, world["agent_b"])
    assert client.post(reverse("workflows:absence-delete", args=[absence.pk])).status_code == 403
    login(client, world["agent_a"])
    client.post(reverse("workflows:absence-delete", args=[absence.pk]))
    assert not Absence.objects.exists()


def test_email_preferences_are_respected(client, login, world, django_capture_on_commit_callbacks):
    NotificationPreference.objects.create(user=world["agent_a2"], email_assignment=False)
    login(client, world["supervisor"])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(task_url(world["task_a"], "reassign"), {"to_user": world["agent_a2"].pk})
    assert Notification.objects.filter(user=world["agent_a2"]).count() == 1
    assert mail.outbox == []


def test_the_claim_statements_right_check_agrees_with_can_work_on(world):
    """task_claim_by_id checks the right in SQL (work_condition); it must say what can_work_on says
    for every person and task: scoped and unscoped tasks, every role, inactive users."""
    from workflows.services import can_work_on, work_condition

    unscoped = start_review(world["a"])
    Task.objects.filter(pk=unscoped.pk).update(scope_carpark_id=None)
    finance_task = start_review(world["b"])
    Task.objects.filter(pk=finance_task.pk).update(role=roles.FINANCE)
    tasks = list(Task.objects.filter(pk__in=[world["task_a"].pk, world["task_b"].pk, unscoped.pk, finance_task.pk]))
    inactive = person("gone", roles.AGENT, carparks=[world["a"]])
    inactive.is_active = False
    inactive.save()
    people = [world[name] for name in ("agent_a", "agent_b", "finance", "supervisor", "admin")] + [
        person("wfadmin", roles.WORKFLOW_ADMIN),
        person("wfagent", roles.WORKFLOW_ADMIN, roles.AGENT),
        inactive,
    ]
    checked = 0
    for user in people:
        condition, params = work_condition(user)
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT "id" FROM "workflows_task" WHERE "id" = ANY(%s) AND {condition}',  # noqa: S608
                [[t.pk for t in tasks], *params],
            )
            in_sql = {row[0] for row in cursor.fetchall()}
        in_python = {t.pk for t in tasks if can_work_on(user, t)}
        assert in_sql == in_python, user.username
        checked += len(in_python)
    assert checked > 5  # the matrix is not empty


def test_claiming_by_id_says_why_it_could_not(client, login, world):
    from workflows.errors import TaskNotAvailable, TaskPermissionDenied
    from workflows.services import task_claim_by_id

    task = task_claim_by_id(task_id=world["task_a"].pk, user=world["agent_a"])
    assert task.state == Task.State.CLAIMED and task.assignee_id == world["agent_a"].pk
    assert task.process.version_id == Process.objects.get(pk=task.process_id).version_id
    with pytest.raises(TaskNotAvailable, match="already claimed by Agent_A"):
        task_claim_by_id(task_id=world["task_a"].pk, user=world["agent_a2"])
    with pytest.raises(TaskPermissionDenied):
        task_claim_by_id(task_id=world["task_b"].pk, user=world["agent_a"])
    with pytest.raises(Task.DoesNotExist):
        task_claim_by_id(task_id=10**9, user=world["agent_a"])
    login(client, world["agent_a"])
    assert client.post(reverse("workflows:task-claim", args=[10**9])).status_code == 404
