"""The editor never loses work, in headless Chromium against the real server: half a workflow saves and comes
back with its errors marked, problems are checked as you draw, leaving with unsaved changes asks first,
the draft autosaves, a label selects its element, ids are editable, and an outcome flow edits as an outcome."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts import roles
from conftest import verify_two_factor
from workflows.bpmn import definition_to_bpmn
from workflows.models import WorkflowDefinition
from workflows.services import definition_install

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEY = "permit"
SELECT = "(id) => window.phqModeler.get('selection').select(window.phqModeler.get('elementRegistry').get(id))"
SELECTED = "() => window.phqModeler.get('selection').get().map(e => e.id)"


def spec() -> dict:
    return {
        "key": KEY,
        "name": "Parking permit",
        "steps": [
            {"id": "start", "type": "start", "name": "Request received", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }


def outcome_spec() -> dict:
    return {
        "key": KEY,
        "name": "Parking permit",
        "steps": [
            {"id": "start", "type": "start", "next": "review"},
            {
                "id": "review",
                "type": "user",
                "name": "Review permit",
                "role": roles.AGENT,
                "due_in": "P1D",
                "outcomes": {"approve": "granted", "reject": "refused"},
            },
            {"id": "granted", "type": "end", "result": "granted"},
            {"id": "refused", "type": "end", "result": "refused"},
        ],
    }


def open_editor(live_server, page, make_user, definition: dict) -> list[str]:
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    definition_install(spec=definition)
    client = Client()
    user = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    client.force_login(user)
    verify_two_factor(client, user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}{reverse('workflows:editor', kwargs={'key': definition['key']})}")
    page.wait_for_selector("body[data-editor-ready=true]")
    return errors


def click_element(page, element_id: str) -> None:
    page.click(f".djs-element[data-element-id='{element_id}'] .djs-hit", force=True)


def test_half_a_workflow_saves_and_comes_back_with_its_errors_marked(live_server, page, make_user, settings):
    settings.WORKFLOW_EDITOR_LINT_MS = 200
    console = open_editor(live_server, page, make_user, spec())

    # draw: remove the end, append a user task to the start (no role, no outgoing flow)
    click_element(page, "done")
    page.click(".djs-context-pad .entry[data-action='delete']")
    click_element(page, "start")
    page.click(".djs-context-pad .entry[data-action='append.user-task']")
    task = page.evaluate(
        "() => window.phqModeler.get('elementRegistry').get('start').outgoing.map(f => f.target)"
        ".filter(t => t.type === 'bpmn:UserTask').map(t => t.id)[0]"
    )
    assert task
    assert page.evaluate("() => document.body.dataset.dirty") == "true"
    # checked as you draw, before any button: the task's errors are marked
    page.wait_for_selector(f".djs-element.phq-error[data-element-id='{task}']")
    assert page.locator(f"#editor-problems li[data-element-id='{task}'][data-severity=error]").count() == 2

    page.click("#btn-save")
    page.wait_for_selector("#editor-status:has-text('Draft saved (v2)')")
    assert "2 problems to fix before publishing" in page.locator("#editor-status").inner_text()
    assert "cannot be imported" not in page.locator("#editor-status").inner_text()
    assert page.evaluate("() => document.body.dataset.dirty") == "false"
    draft = WorkflowDefinition.objects.get(key=KEY).versions.get(number=2)
    assert f'id="{task}"' in draft.bpmn_xml and draft.spec["steps"] == []

    page.reload()
    page.wait_for_selector("body[data-editor-ready=true]")
    assert page.locator(f".djs-element.phq-error[data-element-id='{task}']").count() == 1
    assert page.locator(".djs-overlay-container .phq-badge-error").count() == 1
    items = page.locator(f"#editor-problems li[data-element-id='{task}']")
    texts = " ".join(items.all_inner_texts())
    assert "outgoing sequence flow" in texts and "role" in texts and "due time" in texts and "no name" in texts
    assert "Draft v2 saved with 2 errors, 2 warnings" in page.locator("#editor-status").inner_text()

    # a problem in the list selects its element
    items.first.click()
    assert page.evaluate(SELECTED) == [task]
    assert page.locator("#properties [name=element-id]").input_value() == task

    # fixing it by choosing a role leaves one error after the live check
    page.locator("#properties [name=role]").select_option(roles.AGENT)
    page.wait_for_function(
        f"() => document.querySelectorAll(\"#editor-problems li[data-element-id='{task}'][data-severity=error]\")"
        ".length === 1"
    )
    assert not console


def test_leaving_with_unsaved_changes_asks_and_the_draft_autosaves(live_server, page, make_user, settings):
    settings.WORKFLOW_EDITOR_AUTOSAVE_MS = 60_000
    open_editor(live_server, page, make_user, spec())
    dialogs: list[str] = []

    def dismiss(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.evaluate(SELECT, "start")
    page.locator("#properties [name=name]").fill("Permit requested")
    page.locator("#properties [name=name]").press("Tab")
    editor_url = page.url
    page.click(".breadcrumb a:has-text('Workflows')")
    page.wait_for_function("() => true")
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    assert page.url == editor_url  # staying keeps the work

    page.click("#btn-save")
    page.wait_for_selector("#editor-status:has-text('Draft saved (v2)')")
    page.click(".breadcrumb a:has-text('Workflows')")
    page.wait_for_url(f"**{reverse('workflows:definition-list')}")
    assert dialogs == ["beforeunload"]  # saved: no question


def test_the_draft_autosaves_after_a_pause(live_server, page, make_user, settings):
    settings.WORKFLOW_EDITOR_AUTOSAVE_MS = 1500
    open_editor(live_server, page, make_user, spec())
    page.evaluate(SELECT, "start")
    page.locator("#properties [name=name]").fill("Permit requested")
    page.locator("#properties [name=name]").press("Tab")
    assert page.evaluate("() => document.body.dataset.dirty") == "true"
    page.wait_for_selector("#editor-status:has-text('Autosaved')", timeout=10_000)
    assert page.evaluate("() => document.body.dataset.dirty") == "false"
    draft = WorkflowDefinition.objects.get(key=KEY).versions.get(number=2)
    assert 'name="Permit requested"' in draft.bpmn_xml


def test_a_label_selects_its_element_and_ids_are_editable(live_server, page, make_user):
    console = open_editor(live_server, page, make_user, spec())
    click_element(page, "start_label")
    assert page.evaluate(SELECTED) == ["start"]
    assert "Start" in page.locator("#properties h2").inner_text()

    control = page.locator("#properties [name=element-id]")
    assert control.input_value() == "start"
    assert control.get_attribute("maxlength") == "100"
    for bad, reason in (("two words", "no spaces"), ("done", "unique"), ("1st", "Start with a letter")):
        control.fill(bad)
        control.press("Tab")
        assert "is-invalid" in control.get_attribute("class")
        assert reason in page.locator("#id-feedback").inner_text()
        assert page.evaluate("() => window.phqModeler.get('elementRegistry').get('start') !== undefined")
    control.fill("request_received")
    control.press("Tab")
    assert (
        page.evaluate("() => window.phqModeler.get('elementRegistry').get('request_received').businessObject.id")
        == "request_received"
    )
    assert page.locator("#properties [name=element-id]").input_value() == "request_received"
    assert not console


def test_an_outcome_flow_is_edited_as_an_outcome(live_server, page, make_user):
    console = open_editor(live_server, page, make_user, outcome_spec())
    assert "review__outcome" in definition_to_bpmn(outcome_spec())
    flow = page.evaluate(
        "() => window.phqModeler.get('elementRegistry').get('review__outcome').outgoing"
        ".filter(f => f.target.id === 'granted')[0].id"
    )
    page.evaluate(SELECT, flow)
    outcome = page.locator("#properties [name=outcome]")
    assert outcome.input_value() == "approve"
    assert page.locator("#properties [name=condition]").count() == 0
    outcome.fill("grant")
    outcome.press("Tab")
    body, name = page.evaluate(
        f"() => {{ const bo = window.phqModeler.get('elementRegistry').get('{flow}').businessObject;"
        " return [bo.conditionExpression.body, bo.name]; }"
    )
    assert (body, name) == ('outcome == "grant"', "grant")
    page.click("#btn-validate")
    page.wait_for_selector("#editor-status:not([hidden])")
    problems = page.locator("#editor-problems").inner_text()
    assert page.locator("#editor-status").inner_text().startswith("Valid: can be published"), problems
    assert not console
