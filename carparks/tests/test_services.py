"""Contract lifecycle, quota, waitlist, credentials and plates through the services."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections
from django.utils import timezone

from accounts.roles import AGENT, CARE, SUPERVISOR
from carparks import services
from carparks.models import Contract, ContractEvent, Credential, normalise_plate
from carparks.selectors import contracts_active_in_period, product_waitlist
from carparks.tests.factories import CorporateFactory, CustomerFactory, ProductFactory, UserFactory, approve_directly

pytestmark = pytest.mark.django_db


def apply(product, plate="M AB 123", customer=None, **kwargs):
    return services.contract_apply(customer=customer or CustomerFactory(), product=product, vehicles=[plate], **kwargs)


def running(product, plate="M AB 123", **kwargs):
    contract = apply(product, plate, **kwargs)
    contract = approve_directly(contract)
    return services.contract_activate(contract=contract)


class TestPlates:
    @pytest.mark.parametrize(
        "raw", ["m-ab 123", "M AB-123", " mab123 ", "M.AB.123", "M–AB 123".replace("–", "-"), "m_ab\t123"]
    )
    def test_it_normalises_case_spaces_and_dashes(self, raw):
        assert normalise_plate(raw) == "MAB123"

    def test_it_refuses_what_cannot_be_a_plate(self):
        with pytest.raises(services.CarparkError) as exc:
            services.plate_validate("M/AB!123", field="new_plate")
        assert exc.value.field == "new_plate"
        with pytest.raises(services.CarparkError):
            services.plate_validate("   ")

    def test_it_stores_one_vehicle_for_two_spellings(self):
        customer = CustomerFactory()
        product = ProductFactory(quota=5)
        apply(product, "m-ab 123", customer=customer)
        apply(product, "M AB123", customer=customer)
        assert list(customer.vehicles.values_list("plate", flat=True)) == ["MAB123"]


class TestLifecycle:
    def test_it_walks_the_happy_path_and_writes_history(self):
        product = ProductFactory(quota=2)
        contract = apply(product)
        assert contract.state == Contract.State.APPLIED
        contract = approve_directly(contract)
        contract = services.contract_activate(contract=contract)
        contract = services.contract_suspend(contract=contract, reason="Unpaid invoice")
        assert not contract.credentials.filter(is_active=True).exists()
        contract = services.contract_reactivate(contract=contract)
        assert contract.credentials.filter(is_active=True, identifier="MAB123").count() == 1
        contract = services.contract_terminate(contract=contract)
        assert contract.state == Contract.State.TERMINATED
        assert list(contract.events.values_list("to_state", flat=True)) == [
            "applied",
            "approved",
            "active",
            "suspended",
            "active",
            "terminated",
        ]
        assert not contract.credentials.filter(is_active=True).exists()

    @pytest.mark.parametrize(
        ("steps", "forbidden"),
        [
            ([], "activate"),
            ([], "suspend"),
            ([], "terminate"),
            (["approve"], "approve"),
            (["approve", "activate"], "reject"),
            (["approve", "activate"], "cancel"),
            (["approve", "activate", "terminate"], "reactivate"),
            (["reject"], "approve"),
            (["cancel"], "approve"),
        ],
    )
    def test_it_refuses_forbidden_transitions(self, steps, forbidden):
        contract = apply(ProductFactory(quota=3))
        services.contract_processes_close(contract=contract)  # the steps are taken by hand, not by its review
        for step in steps:
            contract = getattr(services, f"contract_{step}")(contract=contract)
        before = contract.state
        events = ContractEvent.objects.count()
        with pytest.raises(services.TransitionError):
            getattr(services, f"contract_{forbidden}")(contract=contract)
        assert Contract.objects.get(pk=contract.pk).state == before
        assert ContractEvent.objects.count() == events

    def test_the_state_field_cannot_be_set_directly(self):
        contract = apply(ProductFactory())
        with pytest.raises(AttributeError):
            contract.state = Contract.State.ACTIVE

    def test_it_refuses_a_user_without_the_role_or_responsibility(self):
        contract = apply(ProductFactory())
        with pytest.raises(PermissionDenied):
            services.contract_approve(contract=contract, user=UserFactory(roles=[CARE]))
        with pytest.raises(PermissionDenied):  # an agent not responsible for this car park
            services.contract_approve(contract=contract, user=UserFactory(roles=[AGENT]))
        supervisor = UserFactory(roles=[SUPERVISOR])
        contract = approve_directly(contract, user=supervisor)
        assert contract.events.last().actor == supervisor

    def test_an_agent_responsible_for_the_car_park_may_approve(self):
        from guardian.shortcuts import assign_perm

        contract = apply(ProductFactory())
        agent = UserFactory(roles=[AGENT])
        assign_perm("carparks.responsible_carpark", agent, contract.product.carpark)
        assert approve_directly(contract, user=agent).state == Contract.State.APPROVED

    def test_activation_needs_a_vehicle(self):
        contract = approve_directly(apply(ProductFactory()))
        contract.vehicles.clear()
        with pytest.raises(services.TransitionError, match="no vehicle"):
            services.contract_activate(contract=contract)

    def test_a_plate_opens_one_contract_per_car_park(self):
        product = ProductFactory(quota=5)
        first = apply(product, "B XY 1")
        second = approve_directly(apply(product, "b-xy-1"))  # applied before the first ran
        services.contract_activate(contract=approve_directly(first))
        with pytest.raises(services.CarparkError, match="BXY1"):
            services.contract_activate(contract=second)
        assert Contract.objects.get(pk=second.pk).state == Contract.State.APPROVED


class TestQuota:
    def test_applications_beyond_the_quota_are_waitlisted_in_order(self):
        product = ProductFactory(quota=1)
        first = apply(product, "A1")
        second = apply(product, "A2")
        third = apply(product, "A3")
        assert first.state == Contract.State.APPLIED
        assert [c.pk for c in product_waitlist(product)] == [second.pk, third.pk]

    def test_a_newcomer_does_not_jump_the_queue(self):
        product = ProductFactory(quota=1)
        first = apply(product, "A1")
        waiting = apply(product, "A2")
        services.contract_cancel(contract=first)
        assert Contract.objects.get(pk=waiting.pk).state == Contract.State.OFFERED
        newcomer = apply(product, "A3")
        assert newcomer.state == Contract.State.WAITLISTED

    def test_a_quota_rise_offers_the_new_places(self):
        product = ProductFactory(quota=1)
        apply(product, "A1")
        waiting = [apply(product, f"W{i}") for i in range(3)]
        services.product_set_quota(product=product, quota=3)
        states = [Contract.objects.get(pk=c.pk).state for c in waiting]
        assert states == ["offered", "offered", "waitlisted"]


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_applications_for_the_last_three_places_never_oversell():
    product = ProductFactory(quota=10)
    for i in range(7):
        running(product, f"OLD{i}")
    customers = [CustomerFactory() for _ in range(20)]
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def submit(index: int) -> None:
        try:
            barrier.wait()
            services.contract_apply(customer=customers[index], product=product, vehicles=[f"NEW{index}"])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    new = Contract.objects.filter(product=product, customer__in=customers)
    assert new.filter(state=Contract.State.APPLIED).count() == 3
    assert new.filter(state=Contract.State.WAITLISTED).count() == 17
    assert Contract.objects.filter(product=product, state__in=Contract.QUOTA_STATES).count() == 10
    positions = list(new.filter(state="waitlisted").values_list("waitlist_position", flat=True))
    assert len(set(positions)) == 17


class TestWaitlist:
    def test_termination_offers_the_place_and_an_expired_offer_moves_on(self):
        product = ProductFactory(quota=1)
        holder = running(product, "HOLD1")
        first = apply(product, "WAIT1")
        second = apply(product, "WAIT2")
        with time_machine.travel(timezone.now(), tick=False) as traveller:
            services.contract_terminate(contract=holder)
            first.refresh_from_db(fields=["offer_expires_at", "waitlist_position"])
            assert Contract.objects.get(pk=first.pk).state == Contract.State.OFFERED
            assert Contract.objects.get(pk=second.pk).state == Contract.State.WAITLISTED
            expires = Contract.objects.get(pk=first.pk).offer_expires_at
            assert expires == timezone.now() + services.offer_valid_for()

            assert services.offers_expire_due() == 0  # not yet
            traveller.shift(services.offer_valid_for() + timedelta(minutes=1))
            assert services.offers_expire_due() == 1
        first = Contract.objects.get(pk=first.pk)
        assert first.state == Contract.State.CANCELLED
        assert first.events.last().note == "Offer expired."
        assert Contract.objects.get(pk=second.pk).state == Contract.State.OFFERED

    def test_an_accepted_offer_goes_to_review_and_cannot_expire(self):
        product = ProductFactory(quota=1)
        holder = running(product, "HOLD1")
        waiting = apply(product, "WAIT1")
        services.contract_terminate(contract=holder)
        contract = services.contract_offer_accept(contract=Contract.objects.get(pk=waiting.pk))
        assert contract.state == Contract.State.APPLIED
        assert contract.offer_expires_at is None
        with time_machine.travel(timezone.now() + timedelta(days=30)):
            assert services.offers_expire_due() == 0
        assert Contract.objects.get(pk=waiting.pk).state == Contract.State.APPLIED

    def test_a_late_acceptance_is_refused(self):
        product = ProductFactory(quota=1)
        holder = running(product, "HOLD1")
        waiting = apply(product, "WAIT1")
        services.contract_terminate(contract=holder)
        with time_machine.travel(timezone.now() + timedelta(days=8)), pytest.raises(services.TransitionError):
            services.contract_offer_accept(contract=Contract.objects.get(pk=waiting.pk))

    def test_a_rejection_frees_the_place_for_the_next_in_line(self):
        product = ProductFactory(quota=1)
        applied = apply(product, "A1")
        waiting = apply(product, "A2")
        services.contract_processes_close(contract=applied)  # rejected without its review
        services.contract_reject(contract=applied, reason="No documents")
        assert Contract.objects.get(pk=waiting.pk).state == Contract.State.OFFERED


class TestCorporate:
    def test_a_corporate_account_runs_twenty_vehicles_on_one_contract(self):
        company = CorporateFactory()
        product = ProductFactory(quota=1, vehicles_per_place=20)
        fleet = [{"plate": f"M-FL {i:03d}", "cost_centre": f"CC{i % 3}"} for i in range(20)]
        contract = services.contract_apply(customer=company, product=product, vehicles=fleet, cost_centre="FLEET")
        contract = services.contract_activate(contract=approve_directly(contract))
        assert contract.vehicles.count() == 20
        assert company.vehicles.count() == 20
        identifiers = set(contract.credentials.filter(is_active=True).values_list("identifier", flat=True))
        assert identifiers == {f"MFL{i:03d}" for i in range(20)}
        assert Contract.objects.filter(product=product, state__in=Contract.QUOTA_STATES).count() == 1

    def test_a_fleet_vehicle_added_later_gets_its_credential(self):
        company = CorporateFactory()
        contract = running(ProductFactory(vehicles_per_place=2), "M FL 1", customer=company)
        services.contract_add_vehicles(contract=contract, vehicles=["M FL 2"])
        assert set(contract.credentials.values_list("identifier", flat=True)) == {"MFL1", "MFL2"}


class TestPlateChange:
    def test_a_running_contract_changes_plate_and_credential(self):
        contract = running(ProductFactory(), "M AB 1")
        services.contract_change_plate(contract=contract, old_plate="m-ab-1", new_plate="M CD 2")
        active = list(contract.credentials.filter(is_active=True).values_list("identifier", flat=True))
        assert active == ["MCD2"]
        assert Credential.objects.get(identifier="MAB1").valid_until == timezone.localdate()
        assert list(contract.vehicles.values_list("plate", flat=True)) == ["MCD2"]

    def test_an_unknown_old_plate_names_the_field(self):
        contract = running(ProductFactory(), "M AB 1")
        with pytest.raises(services.CarparkError) as exc:
            services.contract_change_plate(contract=contract, old_plate="X 1", new_plate="M CD 2")
        assert exc.value.field == "old_plate"


class TestTermination:
    def test_customers_must_respect_the_notice_period(self):
        contract = running(ProductFactory(notice_period_days=30))
        with pytest.raises(services.CarparkError) as exc:
            services.contract_request_termination(contract=contract, end_date=timezone.localdate())
        assert exc.value.field == "end_date"
        contract = services.contract_request_termination(contract=contract)
        assert contract.end_date == timezone.localdate() + timedelta(days=30)

    def test_contracts_past_their_end_date_are_ended(self):
        contract = running(ProductFactory(), end_date=timezone.localdate() + timedelta(days=3))
        assert services.contracts_end_due() == 0
        with time_machine.travel(timezone.now() + timedelta(days=5)):
            assert services.contracts_end_due() == 1
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.TERMINATED


class TestSelectors:
    def test_contracts_active_in_period(self):
        today = timezone.localdate()
        product = ProductFactory()
        ran = running(product, "P1")
        ended = services.contract_terminate(contract=running(product, "P2"), end_date=today)
        future = running(product, "P3", start_date=today + timedelta(days=40))
        apply(product, "P4")
        found = set(contracts_active_in_period(today, today + timedelta(days=10)).values_list("pk", flat=True))
        assert found == {ran.pk, ended.pk}
        later = contracts_active_in_period(today + timedelta(days=35), today + timedelta(days=60))
        assert set(later.values_list("pk", flat=True)) == {ran.pk, future.pk}


class TestCases:
    def test_it_opens_a_case_with_an_sla_and_resolves_it(self):
        contract = running(ProductFactory())
        with time_machine.travel(timezone.now(), tick=False):
            case = services.case_open(
                customer=contract.customer,
                contract=contract,
                kind="complaint",
                subject="Barrier stuck",
                priority="urgent",
            )
            assert case.sla_due_at == timezone.now() + timedelta(hours=4)
        case = services.case_resolve(case=case, resolution="Fixed the barrier.")
        assert case.state == "resolved"
        assert services.case_resolve(case=case).resolution == "Fixed the barrier."  # idempotent
        assert list(case.events.values_list("to_state", flat=True)) == ["open", "resolved"]

    def test_a_case_cannot_name_another_customers_contract(self):
        contract = running(ProductFactory())
        with pytest.raises(services.CarparkError) as exc:
            services.case_open(customer=CustomerFactory(), contract=contract, kind="question", subject="?")
        assert exc.value.field == "contract"

    def test_a_card_replacement_issues_a_new_card_once_per_key(self):
        contract = running(ProductFactory())
        first = services.credential_issue_card(contract=contract, issue_key="k1")
        again = services.credential_issue_card(contract=contract, issue_key="k1")
        assert first.pk == again.pk
        second = services.credential_issue_card(contract=contract, issue_key="k2")
        cards = contract.credentials.filter(kind="rfid")
        assert list(cards.filter(is_active=True).values_list("pk", flat=True)) == [second.pk]
        assert cards.count() == 2


def test_the_waitlist_lists_open_offers_first_then_the_queue_in_order():
    product = ProductFactory(quota=1)
    holder = apply(product, "H1")
    queue = [apply(product, f"Q{i}") for i in range(3)]
    services.contract_cancel(contract=holder)
    assert [c.pk for c in product_waitlist(product)] == [q.pk for q in queue]
    assert product_waitlist(product)[0].state == Contract.State.OFFERED


class TestStagedChanges:
    def test_a_staged_product_and_vehicle_change_takes_effect_on_its_day(self):
        product = ProductFactory(quota=1)
        better = ProductFactory(carpark=product.carpark, quota=2, monthly_price=150)
        contract = running(product, "M AB 1")
        waiting = apply(product, "W1")
        day = timezone.localdate() + timedelta(days=10)
        services.contract_stage_change(contract=contract, next_product=better, next_plate="M XY 2", on=day)
        assert services.contracts_apply_staged_changes() == 0  # not due yet
        with time_machine.travel(timezone.now() + timedelta(days=11)):
            assert services.contracts_apply_staged_changes() == 1
        contract = Contract.objects.get(pk=contract.pk)
        assert (contract.product, contract.monthly_price, contract.next_change_on) == (better, 150, None)
        assert list(contract.credentials.filter(is_active=True).values_list("identifier", flat=True)) == ["MXY2"]
        assert Contract.objects.get(pk=waiting.pk).state == Contract.State.OFFERED  # the old place moved on

    def test_a_move_to_a_full_product_waits(self):
        product = ProductFactory(quota=2)
        full = ProductFactory(carpark=product.carpark, quota=1)
        running(full, "F1")
        contract = running(product, "M AB 1")
        services.contract_stage_change(contract=contract, next_product=full, on=timezone.localdate() + timedelta(1))
        with time_machine.travel(timezone.now() + timedelta(days=2)):
            assert services.contracts_apply_staged_changes() == 0
        contract = Contract.objects.get(pk=contract.pk)
        assert contract.product == product
        assert contract.next_product == full
        assert "no free place" in contract.events.last().note


def test_old_idempotency_keys_are_purged():
    from carparks.api.authentication import api_client_create
    from carparks.models import IdempotencyRecord

    client, _ = api_client_create(name="c", scopes=[])
    IdempotencyRecord.objects.create(client=client, key="k", method="POST", path="/", request_hash="x")
    assert services.idempotency_records_purge() == 0
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert services.idempotency_records_purge() == 1


def test_the_customer_is_emailed_after_commit(mailoutbox, django_capture_on_commit_callbacks):
    product = ProductFactory(quota=1)
    with django_capture_on_commit_callbacks(execute=True):
        contract = approve_directly(apply(product, customer=CustomerFactory(email="eve@example.com", language="en")))
        waiting = apply(product, "W1", customer=CustomerFactory(email="wait@example.com", language="en"))
    assert [m.to for m in mailoutbox] == [["eve@example.com"], ["wait@example.com"]]
    assert f"contract {contract.pk} is approved" in mailoutbox[0].subject
    assert "number 1 on the waitlist" in mailoutbox[1].body
    assert waiting.state == Contract.State.WAITLISTED
