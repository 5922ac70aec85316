"""Starting a workflow by hand: the Start process page and start form, who may start, the menu link,
and ``manage.py process_start`` with a business object and start-form values."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from accounts import roles
from carparks.models import Contract
from carparks.tests.factories import CustomerFactory, ProductFactory
from workflows.models import Process
from workflows.testing import install_definition

pytestmark = pytest.mark.django_db

START = reverse("workflows:start-list")


def goodwill_spec(starters: list[str] | None = None) -> dict:
    return {
        "key": "goodwill",
        "name": "Goodwill gesture",
        "description": "Credit a customer after a bad experience.",
        "steps": [
            {
                "id": "start",
                "type": "start",
                "next": "approve",
                "starters": starters if starters is not None else [roles.AGENT],
                "inputs": [
                    {"name": "reason", "label": "Reason", "type": "text", "required": True},
                    {"name": "amount", "label": "Amount (EUR)", "type": "number", "required": True},
                    {"name": "visit_on", "label": "Visit day", "type": "date"},
                    {"name": "channel", "label": "Channel", "type": "choice", "choices": ["phone", "email"]},
                    {"name": "urgent", "label": "Urgent", "type": "bool"},
                ],
            },
            {"id": "approve", "type": "user", "name": "Approve", "role": roles.SUPERVISOR, "outcomes": {"ok": "end"}},
            {"id": "end", "type": "end"},
        ],
    }


def on_event_spec() -> dict:
    return {
        "key": "on-case",
        "name": "Case handling",
        "steps": [
            {"id": "start", "type": "start", "event": "case.opened", "next": "handle"},
            {"id": "handle", "type": "user", "name": "Handle", "role": roles.AGENT, "outcomes": {"done": "end"}},
            {"id": "end", "type": "end"},
        ],
    }


def form_url(key: str = "goodwill") -> str:
    return reverse("workflows:start-form", args=[key])


def test_the_start_form_shows_each_field_and_keeps_values_with_the_errors(client, login, make_user):
    install_definition(goodwill_spec())
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    page = client.get(form_url()).content.decode()
    assert 'type="text" id="start-reason" name="reason"' in page
    assert 'type="number" step="any" id="start-amount"' in page
    assert 'type="date" id="start-visit_on"' in page
    assert '<select class="form-select" id="start-channel" name="channel">' in page
    assert 'type="checkbox" id="start-urgent" name="urgent"' in page
    assert page.count("(required)") == 2

    response = client.post(form_url(), {"reason": "", "amount": "lots", "visit_on": "soon", "channel": "fax"})
    assert response.status_code == 200
    errors = {f["name"]: f["error"] for f in response.context["fields"]}
    assert errors == {
        "reason": "Reason is required.",
        "amount": "Amount (EUR) must be a number.",
        "visit_on": "Visit day must be a date (YYYY-MM-DD).",
        "channel": "Channel must be one of the choices.",
        "urgent": "",
    }
    page = response.content.decode()
    assert 'value="lots"' in page and 'value="soon"' in page
    assert "The process was not started" in page
    assert not Process.objects.exists()


def test_a_starter_role_starts_the_process_with_its_values(client, login, make_user):
    install_definition(goodwill_spec())
    agent = login(client, make_user("agent", roles.AGENT))
    assert [r["version"].definition.key for r in client.get(START).context["rows"]] == ["goodwill"]

    response = client.post(
        form_url(), {"reason": "Barrier closed on him", "amount": "12.50", "visit_on": "2026-03-01", "urgent": "on"}
    )
    process = Process.objects.get()
    assert process.variables == {"reason": "Barrier closed on him", "amount": 12.5, "visit_on": "2026-03-01",
                                 "urgent": True}  # fmt: skip
    assert process.started_by == agent and process.current_step == "approve"
    # an agent sees only the processes of their car parks: back to the list with the message
    assert response.status_code == 302 and response["Location"] == START
    assert f"Process #{process.pk} of Goodwill gesture started." in client.get(START).content.decode()

    login(client, make_user("boss", roles.WORKFLOW_ADMIN))
    response = client.post(form_url(), {"reason": "Again", "amount": "3"})
    second = Process.objects.latest("pk")
    assert response["Location"] == reverse("workflows:process-detail", args=[second.pk])


def test_a_role_not_among_the_starters_is_refused(client, login, make_user):
    install_definition(goodwill_spec())
    login(client, make_user("finance", roles.FINANCE))
    assert client.get(START).context["rows"] == []
    assert "no workflow you may start by hand" in client.get(START).content.decode()
    assert client.get(form_url()).status_code == 403
    assert client.post(form_url(), {"reason": "x", "amount": "1"}).status_code == 403
    assert not Process.objects.exists()


def test_a_workflow_bound_to_an_event_is_not_started_by_hand(client, login, make_user):
    install_definition(on_event_spec())
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    assert client.get(START).context["rows"] == []
    response = client.post(form_url("on-case"), {})
    assert response.status_code == 404
    assert "starts on the business event <code>case.opened</code>" in response.content.decode()
    assert not Process.objects.exists()


def test_the_menu_links_start_process_only_for_those_who_may_start_something(client, login, make_user):
    def menu(user) -> set[str]:
        login(client, user)
        return {entry[1] for entry in client.get(START).context["portal_navigation"]}

    agent, finance = make_user("agent", roles.AGENT), make_user("finance", roles.FINANCE)
    admin = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    assert "workflows:start-list" not in menu(admin)  # nothing is started by hand yet
    install_definition(goodwill_spec())
    assert "workflows:start-list" in menu(agent)
    assert "workflows:start-list" in menu(admin)
    assert "workflows:start-list" not in menu(finance)
    assert "workflows:event-list" in menu(admin) and "workflows:event-list" not in menu(agent)


# -- the command ---------------------------------------------------------------------------------------
def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("process_start", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def contract():
    product = ProductFactory()
    return Contract.objects.create(
        customer=CustomerFactory(), product=product, start_date=date(2026, 1, 1), monthly_price=Decimal("80")
    )


def test_the_command_attaches_the_object_and_sets_the_variables(contract, make_user):
    install_definition(goodwill_spec())
    make_user("clerk", roles.AGENT)
    out, _ = run(
        "goodwill", "--object", f"carparks.contract:{contract.pk}", "--var", "reason=Broken barrier",
        "--var", "amount=20", "--var", "urgent=true", "--var", "ticket=T-17", "--user", "clerk",
    )  # fmt: skip
    process = Process.objects.get()
    assert f"Started process #{process.pk} (goodwill) about contract #{contract.pk}" in out
    assert process.business_object == contract
    assert process.variables == {"reason": "Broken barrier", "amount": 20, "urgent": True, "ticket": "T-17"}
    assert process.started_by.username == "clerk"


def test_the_command_rejects_a_missing_required_value_and_a_missing_object(contract):
    install_definition(goodwill_spec())
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="'Goodwill gesture' was not started: the start form has errors"):
        call_command("process_start", "goodwill", "--var", "amount=many", stdout=out, stderr=err)
    assert "--var reason: Reason is required." in err.getvalue()
    assert "--var amount: Amount (EUR) must be a number." in err.getvalue()
    with pytest.raises(CommandError, match="there is no contract with id 999999"):
        run("goodwill", "--object", "carparks.contract:999999", "--var", "reason=x", "--var", "amount=1")
    with pytest.raises(CommandError, match="there is no model 'carparks.nothing'"):
        run("goodwill", "--object", "carparks.nothing:1")
    with pytest.raises(CommandError, match="write it as app_label.model:id"):
        run("goodwill", "--object", f"contract{contract.pk}")
    assert not Process.objects.exists()


def test_the_command_refuses_a_workflow_bound_to_an_event():
    install_definition(on_event_spec())
    with pytest.raises(CommandError, match="starts on the business event 'case.opened', not by hand: emit"):
        run("on-case")
    assert not Process.objects.exists()
