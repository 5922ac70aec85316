"""The business-event catalogue: valid schemas, real business objects, and the docs generated from it."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from jsonschema import Draft202012Validator

from workflows.events import CATALOGUE, EventPayloadInvalid, UnknownEvent, catalogue_markdown, payload_validate
from workflows.management.commands.events_catalogue import BEGIN, END, doc_path, with_catalogue

NAMED_IN_THE_PRODUCT = {
    "application.received",
    "contract.change_requested",
    "termination.requested",
    "waitlist.place_freed",
    "case.opened",
    "carpark.added",
    "cpms.connection_failing",
    "payment.failed",
    "refund.requested",
    "invoicing.period_due",
    "customer.created",
}


def test_it_has_every_event_the_apps_need():
    assert set(CATALOGUE) >= NAMED_IN_THE_PRODUCT


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_it_gives_each_event_a_valid_schema_about_a_real_model(name):
    event = CATALOGUE[name]
    Draft202012Validator.check_schema(event.schema)
    assert apps.get_model(event.business_object)
    assert set(event.required) <= set(event.properties)
    assert event.version >= 1
    # the id of the business object is always part of what a condition and the process see
    assert any(field.endswith("_id") for field in event.required)


def test_it_refuses_a_payload_naming_each_bad_field():
    with pytest.raises(EventPayloadInvalid) as caught:
        payload_validate("case.opened", {"case_id": "7", "kind": "parking", "priority": "normal", "channel": "email"})
    message = str(caught.value)
    assert "case_id: '7' is not of type 'integer'" in message
    assert "kind: 'parking' is not one of" in message
    assert "'customer_id' is a required property" in message


def test_it_accepts_optional_fields_left_out_and_extra_facts():
    payload_validate(
        "case.opened",
        {"case_id": 3, "kind": "card_replacement", "priority": "high", "channel": "phone", "customer_id": 9,
         "contract_id": None, "ticket_system_ref": "T-1"},
    )  # fmt: skip


def test_it_refuses_an_unknown_event():
    with pytest.raises(UnknownEvent, match="'parking.happened' is not a business event"):
        payload_validate("parking.happened", {})


def test_the_docs_show_the_catalogue_of_the_code():
    call_command("events_catalogue", "--check")
    text = doc_path().read_text()
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", section, re.M))
    assert documented == set(CATALOGUE)
    assert section.strip() == catalogue_markdown().strip()


def test_the_check_fails_when_the_docs_drift(tmp_path, settings):
    (tmp_path / "docs").mkdir()
    stale = doc_path().read_text().replace("| `case.opened` | 1 |", "| `case.opened` | 0 |")
    (tmp_path / "docs" / "workflow-engine.md").write_text(stale)
    settings.BASE_DIR = tmp_path
    with pytest.raises(CommandError, match="out of date"):
        call_command("events_catalogue", "--check")
    call_command("events_catalogue")
    assert with_catalogue(stale) == (tmp_path / "docs" / "workflow-engine.md").read_text()
