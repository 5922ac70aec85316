"""The start event's properties in the workflow editor (headless Chromium): bind the workflow to a business
event with a condition and a priority, save, reopen and see the same; then switch it to a start by hand
with a start form and a role that may start it."""

from __future__ import annotations

import pytest

from accounts import roles
from tests.test_workflow_editor_browser import SELECT, open_editor
from workflows.models import WorkflowDefinition

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CONDITION = 'event.kind == "card_replacement"'
SPEC = {
    "key": "card-replacement",
    "name": "Card replacement",
    "steps": [
        {"id": "start", "type": "start", "next": "send_card"},
        {"id": "send_card", "type": "user", "name": "Send a new card", "role": roles.CARE, "next": "done"},
        {"id": "done", "type": "end", "result": "sent"},
    ],
}


def saved_start(page) -> dict:
    with page.expect_response(lambda r: r.url.endswith("/edit/save/")) as saved:
        page.click("#btn-save")
    assert saved.value.ok and saved.value.json()["ok"], saved.value.json()
    draft = WorkflowDefinition.objects.get(key=SPEC["key"]).versions.get(number=2)
    return next(s for s in draft.spec["steps"] if s["id"] == "start")


def test_the_start_event_binds_to_a_business_event_or_is_started_by_hand(live_server, page, make_user):
    problems_in_console = open_editor(live_server, page, make_user, SPEC)
    page.evaluate(SELECT, "start")
    starts_on = page.get_by_label("Starts on")
    assert starts_on.input_value() == ""  # by hand, as installed
    assert page.get_by_label(roles.ADMINISTRATOR + " (always)").is_checked()
    assert page.get_by_label(roles.ADMINISTRATOR + " (always)").is_disabled()

    starts_on.select_option(label="Case opened")
    assert "customer-care case was opened" in page.locator("#start-event-description").inner_text()
    kind = page.locator("#start-event-fields tr[data-field=kind]")
    assert "card_replacement" in kind.inner_text() and "required" in kind.inner_text()
    assert "condition beats none" in page.locator("#properties").inner_text()

    condition = page.get_by_label("Condition (optional)")
    condition.fill('event.colour == "red"')  # checked live against the event's payload
    page.wait_for_selector("#condition-feedback.text-danger:has-text('event.colour')")
    condition.fill(CONDITION)
    page.wait_for_selector("#condition-feedback:has-text('Valid condition.')")
    condition.press("Tab")
    page.get_by_label("Priority").fill("5")
    page.get_by_label("Priority").press("Tab")
    assert page.evaluate(
        "() => window.phqModeler.get('elementRegistry').get('start').businessObject.eventDefinitions"
        ".map(d => [d.$type, d.messageRef.name])"
    ) == [["bpmn:MessageEventDefinition", "case.opened"]]

    start = saved_start(page)
    assert (start["event"], start["condition"], start["priority"]) == ("case.opened", CONDITION, 5)
    assert "inputs" not in start and "starters" not in start

    # reopened, the editor shows what was saved
    page.reload()
    page.wait_for_selector("body[data-editor-ready=true]")
    page.evaluate(SELECT, "start")
    assert page.get_by_label("Starts on").input_value() == "case.opened"
    assert page.get_by_label("Condition (optional)").input_value() == CONDITION
    assert page.get_by_label("Priority").input_value() == "5"

    # by hand: the message start goes, a start form and a starter role come
    page.get_by_label("Starts on").select_option(label="By hand (Start process page)")
    assert (
        page.evaluate(
            "() => (window.phqModeler.get('elementRegistry').get('start').businessObject.eventDefinitions || []).length"
        )
        == 0
    )
    assert page.locator("#start-event-fields").count() == 0
    page.get_by_label("Start form fields").fill("card_number | Card number | text | required")
    page.get_by_label("Start form fields").press("Tab")
    page.get_by_label(roles.CARE).check()

    start = saved_start(page)
    assert "event" not in start and "condition" not in start
    assert start["inputs"] == [{"name": "card_number", "label": "Card number", "type": "text", "required": True}]
    assert start["starters"] == [roles.CARE]
    assert not problems_in_console
