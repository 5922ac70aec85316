"""Credential validity in the CPMS: what the simulator received and holds over HTTP, not our own rows.

The CPMS opens the barrier only within a right's ``issuanceTime`` … ``expiry``, so both ends must
arrive; a credential whose validity ended must leave the whitelist, and one that starts later is
sent ahead of time with its first day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from carparks.models import CarPark, Contract, Credential
from connect import services

from .conftest import make_contract

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")


def on(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=BERLIN)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(on("2026-03-15"), tick=True) as traveller:
        yield traveller


@pytest.fixture
def carpark(sim, connection, clock) -> CarPark:
    services.sync_static(connection=connection)
    return CarPark.objects.get(cpms_reference="SIM-0001")


def right_id(credential: Credential) -> str:
    return f"phq-credential-{credential.pk}"


def card(contract: Contract, identifier: str, *, valid_from: date, valid_until: date | None = None) -> Credential:
    return Credential.objects.create(
        contract=contract,
        carpark=contract.carpark,
        kind=Credential.Kind.RFID,
        identifier=identifier,
        valid_from=valid_from,
        valid_until=valid_until,
    )


def test_the_push_sends_each_credentials_first_and_last_day(sim, carpark):
    contract = make_contract(carpark, plates=("M-AB 123",))  # the plate row is open-ended
    Contract.objects.filter(pk=contract.pk).update(end_date=date(2026, 6, 30))
    contract = Contract.objects.get(pk=contract.pk)
    plate = contract.credentials.get()
    rfid = card(contract, "0004711", valid_from=date(2026, 3, 1), valid_until=date(2026, 4, 30))
    open_ended = make_contract(carpark, plates=("B-OP 1",))

    services.credentials_push(contract=contract)
    services.credentials_push(contract=open_ended)

    held = sim.right(right_id(plate))
    assert held["issuanceTime"] == "2026-01-01T00:00:00Z"
    assert held["expiry"] == "2026-06-30T23:59:59Z", "the contract's end is the plate's last day in the CPMS"
    held = sim.right(right_id(rfid))
    assert (held["issuanceTime"], held["expiry"]) == ("2026-03-01T00:00:00Z", "2026-04-30T23:59:59Z")
    held = sim.right(right_id(open_ended.credentials.get()))
    assert held["issuanceTime"] == "2026-01-01T00:00:00Z" and "expiry" not in held


def test_a_credential_whose_validity_ended_leaves_the_cpms_on_the_next_push(sim, carpark, clock):
    contract = make_contract(carpark, plates=("M-AB 123",))
    plate = contract.credentials.get()
    expiring = card(contract, "0004711", valid_from=date(2026, 3, 1), valid_until=date(2026, 3, 20))
    services.credentials_push(contract=contract)
    assert sim.rights() == sorted([right_id(plate), right_id(expiring)])

    clock.move_to(on("2026-03-20", 23))  # the card's last day: still there
    services.credentials_push(contract=contract)
    assert right_id(expiring) in sim.rights()

    clock.move_to(on("2026-03-21", 0))
    run = services.credentials_push(contract=contract)

    assert sim.rights() == [right_id(plate)]
    outcomes = {item["identifier"]: item["outcome"] for item in run.details["credentials"]}
    assert outcomes == {"0004711": "deleted", "MAB123": "unchanged"}, "the plate's right is held as sent already"
    expiring.refresh_from_db()
    assert expiring.cpms_synced_at is None


def test_a_contract_past_its_end_date_has_nothing_left_in_the_cpms(sim, carpark, clock):
    contract = make_contract(carpark, plates=("M-AB 123", "M-CD 456"))
    Contract.objects.filter(pk=contract.pk).update(end_date=date(2026, 3, 31))
    services.credentials_push(contract=Contract.objects.get(pk=contract.pk))
    assert len(sim.rights()) == 2

    clock.move_to(on("2026-04-01", 1))  # ended, not yet terminated by the nightly job
    services.credentials_push(contract=Contract.objects.get(pk=contract.pk))

    assert sim.rights() == []


def test_a_future_dated_credential_is_sent_with_its_first_day(sim, carpark):
    contract = make_contract(carpark, plates=())
    starting = Credential.objects.create(
        contract=contract, carpark=carpark, kind="plate", identifier="HH-NEU 7", valid_from=date(2026, 4, 1)
    )

    run = services.credentials_push(contract=contract)

    assert run.created == 1 and sim.rights() == [right_id(starting)]
    held = sim.right(right_id(starting))
    assert held["issuanceTime"] == "2026-04-01T00:00:00Z"
    assert held["rightHolder"]["credentials"][0]["identifier"]["id"] == "HHNEU7"


def test_reconciliation_reports_an_expired_credential_still_in_the_cpms(sim, connection, carpark, clock):
    contract = make_contract(carpark, plates=("M-AB 123",))
    expiring = card(contract, "0004711", valid_from=date(2026, 3, 1), valid_until=date(2026, 3, 20))
    starting = Credential.objects.create(
        contract=contract, carpark=carpark, kind="plate", identifier="HH-NEU 7", valid_from=date(2026, 4, 1)
    )
    services.credentials_push(contract=contract)
    assert len(sim.rights()) == 3

    clock.move_to(on("2026-03-21"))  # the card expired and no push followed (a lost message)
    run = services.reconcile(connection=connection, carparks=[carpark], start_review=False)

    [difference] = run.details["differences"]
    assert difference["extra"] == [{"kind": "rfid", "identifier": "0004711", "right_id": right_id(expiring)}]
    assert difference["missing"] == [], f"{starting.identifier} is in the CPMS ahead of its first day, as it should"
