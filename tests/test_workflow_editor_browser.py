"""The workflow editor in headless Chromium: insert a user task between two steps, set its role, save; see the
validation error of a decision without a default marked on the diagram; fix it; publish; a process of the new
version gives the new task to the role's basket."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import NoReverseMatch, reverse

from accounts import roles
from tests.browser import editor_open, session_cookie
from workflows.authoring import draft_save_bpmn
from workflows.bpmn import definition_to_bpmn
from workflows.models import Task, WorkflowDefinition, WorkflowVersion
from workflows.services import definition_install, process_start

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def permit_spec(*, with_default: bool) -> dict:
    decide = {
        "id": "decide",
        "type": "decision",
        "name": "Large amount?",
        "branches": [{"when": "amount > 100", "next": "manager_ok"}],
    }
    if with_default:
        decide["default"] = "done"
    else:
        decide["branches"].append({"when": "amount <= 100", "next": "done"})
    return {
        "key": "parking-permit",
        "name": "Parking permit",
        "variables": ["amount"],
        "steps": [
            {"id": "start", "type": "start", "next": "review"},
            {"id": "review", "type": "user", "name": "Review permit", "role": roles.AGENT, "next": "decide"},
            decide,
            {"id": "manager_ok", "type": "user", "name": "Manager approval", "role": roles.SUPERVISOR, "next": "done"},
            {"id": "done", "type": "end", "result": "granted"},
        ],
    }


def test_it_edits_validates_publishes_and_runs_a_new_version(live_server, page, make_user):
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    admin = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    agent = make_user("agent1", roles.AGENT)
    definition_install(spec=permit_spec(with_default=True))  # v1, published
    # v2: someone's draft, imported from a file whose decision has no default flow
    draft = draft_save_bpmn(xml=definition_to_bpmn(permit_spec(with_default=False)), user=admin).version
    assert draft.number == 2 and draft.state == WorkflowVersion.State.DRAFT

    problems_in_console = editor_open(page, live_server, admin, "parking-permit")
    # the draft's problem is listed on opening and its gateway is marked
    assert page.locator(".djs-element.phq-error[data-element-id=decide]").count() == 1

    # insert a user task on the flow start → review: pick it from the palette, drop it onto the flow
    flow_box = page.evaluate(
        """() => {
          const registry = window.phqModeler.get('elementRegistry');
          const flow = registry.filter(e => e.type === 'bpmn:SequenceFlow' && e.source.id === 'start')[0];
          const box = registry.getGraphics(flow).getBoundingClientRect();
          return {x: box.x + box.width / 2, y: box.y + box.height / 2};
        }"""
    )
    page.click(".djs-palette .entry[data-action='create.user-task']")
    page.mouse.move(flow_box["x"] - 5, flow_box["y"] + 3)
    page.mouse.move(flow_box["x"], flow_box["y"])
    page.mouse.click(flow_box["x"], flow_box["y"])
    new_id = page.evaluate(
        """() => {
          const registry = window.phqModeler.get('elementRegistry');
          const start = registry.get('start');
          const task = start.outgoing[0].target;
          return task.type === 'bpmn:UserTask' && task.outgoing[0].target.id === 'review' ? task.id : null;
        }"""
    )
    assert new_id, "the user task was not inserted between start and review"
    page.evaluate(
        f"() => window.phqModeler.get('selection').select(window.phqModeler.get('elementRegistry').get('{new_id}'))"
    )
    page.get_by_label("Name").fill("Check documents")
    page.get_by_label("Name").press("Tab")
    page.get_by_label("Role").select_option(roles.AGENT)

    page.click("#btn-save")
    page.wait_for_selector("#editor-status:has-text('Draft saved (v2)')")
    problem = page.locator("#editor-problems li[data-element-id=decide]")
    assert "default" in problem.inner_text()
    assert page.locator(".djs-element.phq-error[data-element-id=decide]").count() == 1
    draft.refresh_from_db()
    assert any(s["id"] == new_id and s["role"] == roles.AGENT for s in draft.spec["steps"])

    # fix it: make the flow to "done" the decision's default
    page.evaluate(
        """() => {
          const registry = window.phqModeler.get('elementRegistry');
          const flow = registry.filter(e => e.type === 'bpmn:SequenceFlow' && e.source.id === 'decide'
                                            && e.target.id === 'done')[0];
          window.phqModeler.get('selection').select(flow);
        }"""
    )
    page.get_by_label("Default flow (taken when no condition holds)").check()
    page.click("#btn-validate")
    page.wait_for_selector("#editor-status:has-text('Valid: can be published')")
    assert page.locator(".phq-error").count() == 0

    page.click("#btn-publish")
    page.wait_for_url(f"**{reverse('workflows:definition-detail', kwargs={'key': 'parking-permit'})}")
    assert "version 2 is published" in page.locator(".alert-success").inner_text()
    assert problems_in_console == []

    published = WorkflowDefinition.objects.get(key="parking-permit").published_version()
    assert published.number == 2
    process = process_start(definition_key="parking-permit", variables={"amount": 10})
    assert process.version_id == published.pk
    task = Task.objects.get(process=process, state=Task.State.OPEN)
    assert (task.step_id, task.name, task.role) == (new_id, "Check documents", roles.AGENT)

    try:
        basket = reverse("workflows:basket")
    except NoReverseMatch:
        return  # the basket page is not there yet: the Task row above is what it would show
    page.context.clear_cookies()
    page.context.add_cookies([session_cookie(agent, live_server)])
    page.goto(f"{live_server.url}{basket}")
    assert "Check documents" in page.content()


SELECT = "(id) => window.phqModeler.get('selection').select(window.phqModeler.get('elementRegistry').get(id))"


def open_editor(live_server, page, make_user, spec: dict) -> list[str]:
    """Install ``spec`` (published) and open its editor as a workflow admin; returns the list that
    collects the page's script errors."""
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    definition_install(spec=spec)
    return editor_open(page, live_server, make_user("wfadmin", roles.WORKFLOW_ADMIN), spec["key"])


def test_an_interrupting_timer_on_a_user_task_is_shown_as_a_path_not_as_the_due_time(live_server, page, make_user):
    spec = permit_spec(with_default=True)
    review = next(s for s in spec["steps"] if s["id"] == "review")
    review.update(due_in="PT4H", timeout={"after": "P2D", "next": "done"})
    problems_in_console = open_editor(live_server, page, make_user, spec)

    page.evaluate(SELECT, "review")  # its due time comes from the non-interrupting due timer, not the path
    assert page.locator("#properties [name=due_in]").input_value() == "PT4H"
    page.evaluate(SELECT, "review__timeout")
    assert "Interrupting: when this time has passed" in page.locator("#properties").inner_text()
    assert page.locator("#properties [name=duration]").input_value() == "P2D"

    page.click("#btn-validate")
    page.wait_for_selector("#editor-status:has-text('Valid: can be published')")
    assert not problems_in_console


def test_a_task_gets_a_closing_time_and_path_from_its_properties(live_server, page, make_user):
    problems_in_console = open_editor(live_server, page, make_user, permit_spec(with_default=True))
    page.evaluate(SELECT, "review")
    page.get_by_label("Close if not done after").fill("P2D")
    page.get_by_label("Close if not done after").press("Tab")
    page.get_by_label("…then continue at").select_option("done")
    attached = page.evaluate(
        "() => window.phqModeler.get('elementRegistry').get('review').attachers"
        ".map(a => [a.businessObject.cancelActivity, a.outgoing.map(f => f.target.id)])"
    )
    assert attached == [[True, ["done"]]]

    page.click("#btn-save")
    page.wait_for_selector("#editor-status:has-text('Draft saved (v2)')")
    draft = WorkflowDefinition.objects.get(key="parking-permit").versions.get(number=2)
    review = next(s for s in draft.spec["steps"] if s["id"] == "review")
    assert review["timeout"] == {"after": "P2D", "next": "done"}

    # clearing the time takes the timer and its path away again
    page.evaluate(SELECT, "review")
    page.get_by_label("Close if not done after").fill("")
    page.get_by_label("Close if not done after").press("Tab")
    assert page.evaluate("() => window.phqModeler.get('elementRegistry').get('review').attachers.length") == 0
    with page.expect_response(lambda r: r.url.endswith("/edit/save/")) as saved:
        page.click("#btn-save")
    assert saved.value.ok
    draft.refresh_from_db()
    assert "timeout" not in next(s for s in draft.spec["steps"] if s["id"] == "review")
    assert not problems_in_console
