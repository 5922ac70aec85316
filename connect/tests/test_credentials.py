"""Credential push, revocation and whitelist reconciliation against the simulator."""

from __future__ import annotations

import pytest
import requests

from carparks.models import CarPark, Contract, Credential
from connect import services
from connect.models import ProductRightMapping, SyncRun
from connect.tasks import push_credentials_task

from .conftest import make_contract

pytestmark = pytest.mark.django_db


@pytest.fixture
def carpark(sim, connection) -> CarPark:
    services.sync_static(connection=connection)
    return CarPark.objects.get(cpms_reference="SIM-0001")


def published(sim, place_id: str) -> list[dict]:
    """The RightSpecifications the simulator publishes for a place (the CPMS chooses ids and versions)."""
    body = requests.get(f"{sim.url}/rights/specs", params={"place": place_id}, timeout=5).json()
    return [spec for spec in body["data"] if place_id in [ref["id"] for ref in spec["hierarchyElements"]]]


def published_ids(sim, place_id: str) -> list[str]:
    return [spec["id"] for spec in published(sim, place_id)]


def terminate(contract: Contract) -> Contract:
    # Until carparks.services.contract_terminate is on main: the state change it makes.
    Contract.objects.filter(pk=contract.pk).update(state=Contract.State.TERMINATED)
    contract.credentials.update(is_active=False)
    return Contract.objects.get(pk=contract.pk)


def test_a_pushed_credential_is_in_the_whitelist_and_gone_after_termination(sim, carpark):
    contract = make_contract(carpark, plates=("M-AB 123",))
    credential = contract.credentials.get()

    run = services.credentials_push(contract=contract)

    right_id = f"phq-credential-{credential.pk}"
    assert run.status == "succeeded" and run.created == 1
    assert sim.rights() == [right_id]
    right = sim.right(right_id)
    assert right["rightHolder"]["credentials"] == [
        {"type": "licensePlate", "identifier": {"id": "MAB123", "className": "LicensePlate"}}
    ]
    assert [right["rightSpecification"]["id"]] == published_ids(sim, "SIM-0001"), "the place's only published one"
    credential.refresh_from_db()
    assert credential.cpms_synced_at is not None

    contract = terminate(contract)
    revoked = services.credentials_revoke(contract=contract)

    assert revoked.status == "succeeded" and revoked.updated == 1
    assert sim.rights() == []


def test_pushing_the_same_credential_twice_leaves_one_entry(sim, carpark):
    contract = make_contract(carpark, plates=("B-XY 42",))

    first = services.credentials_push(contract=contract)
    second = services.credentials_push(contract=contract)

    assert (first.created, second.created, second.updated, second.unchanged) == (1, 0, 0, 1)
    assert len(sim.rights()) == 1


def test_the_same_idempotency_key_pushes_once(sim, carpark):
    contract = make_contract(carpark)

    first = services.credentials_push(contract=contract, key="process-7:push:1")
    again = services.credentials_push(contract=contract, key="process-7:push:1")

    assert first.pk == again.pk and again.attempts == 1
    assert SyncRun.objects.filter(kind="push").count() == 1


def test_a_changed_vehicle_replaces_the_old_plate(sim, carpark):
    contract = make_contract(carpark, plates=("M-AB 123",))
    services.credentials_push(contract=contract)
    old = contract.credentials.get()
    old.is_active = False
    old.save()
    new = Credential.objects.create(
        contract=contract, carpark=carpark, kind="plate", identifier="M-CD 456", valid_from=old.valid_from
    )

    run = services.credentials_push(contract=contract)

    assert sim.rights() == [f"phq-credential-{new.pk}"]
    assert {item["outcome"] for item in run.details["credentials"]} == {"created", "deleted"}


def test_push_fails_over_to_an_incident_when_the_cpms_stays_down(sim, carpark):
    contract = make_contract(carpark)
    sim.faults("error")

    result = push_credentials_task.apply(args=[contract.pk])

    run = SyncRun.objects.get(kind="push")
    assert result.failed()
    assert (run.status, run.incident, run.attempts) == ("failed", True, 4)
    assert contract.credentials.get().cpms_synced_at is None


def test_reconciliation_finds_a_missing_and_an_extra_credential(sim, connection, carpark):
    pushed = make_contract(carpark, plates=("M-AB 123",))
    services.credentials_push(contract=pushed)
    never_pushed = make_contract(carpark, plates=("HH-NO 1",))
    stranger = {
        "id": "cpms-local-77",
        "version": 1,
        "rightHolder": {"credentials": [{"type": "licensePlate", "identifier": {"id": "BOX999", "className": "X"}}]},
        "rightSpecification": {key: published(sim, "SIM-0001")[0][key] for key in ("id", "version")},
    }

    assert requests.put(f"{sim.url}/rights/assigned/cpms-local-77", json=stranger, timeout=5).status_code == 201

    run = services.reconcile(connection=connection, start_review=False)

    assert run.status == "succeeded"
    assert run.details["missing"] == 1 and run.details["extra"] == 1
    [difference] = run.details["differences"]
    assert difference["carpark_id"] == carpark.pk
    assert difference["missing"] == [
        {"kind": "plate", "identifier": "HHNO1", "credential_id": never_pushed.credentials.get().pk}
    ]
    assert difference["extra"] == [{"kind": "plate", "identifier": "BOX999", "right_id": "cpms-local-77"}]
    assert run.unchanged == 4 and run.failed == 1


def test_reconciliation_of_an_agreeing_whitelist_reports_no_difference(sim, connection, carpark):
    services.credentials_push(contract=make_contract(carpark))

    run = services.reconcile(connection=connection)

    assert run.details["differences"] == [] and run.failed == 0
    assert "review_processes" not in run.details


def test_a_contract_moved_to_another_carpark_is_revoked_at_the_old_one(sim, carpark):
    contract = make_contract(carpark, plates=("M-AB 123",))
    services.credentials_push(contract=contract)
    old = contract.credentials.get()
    other = CarPark.objects.get(cpms_reference="SIM-0002")
    product = contract.product.__class__.objects.create(carpark=other, name="Season", monthly_price="80.00", quota=5)
    premium = published(sim, "SIM-0002")[-1]  # SIM-0002 publishes two: the product is mapped to one
    ProductRightMapping.objects.create(
        connection=carpark.cpms_link.connection,
        product=product,
        right_specification_id=premium["id"],
        right_specification_version=premium["version"],
    )
    Contract.objects.filter(pk=contract.pk).update(product=product)
    Credential.objects.filter(pk=old.pk).update(is_active=False)
    new = Credential.objects.create(
        contract=contract, carpark=other, kind="plate", identifier="M-AB 123", valid_from=old.valid_from
    )

    run = services.credentials_push(contract=Contract.objects.get(pk=contract.pk))

    assert sim.rights() == [f"phq-credential-{new.pk}"]
    assert run.carpark == other
    assert sim.right(f"phq-credential-{new.pk}")["rightSpecification"]["id"] == premium["id"]


def test_revoking_clears_the_synced_stamp(sim, carpark):
    contract = make_contract(carpark)
    services.credentials_push(contract=contract)
    assert contract.credentials.get().cpms_synced_at is not None

    services.credentials_revoke(contract=contract)

    assert contract.credentials.get().cpms_synced_at is None
