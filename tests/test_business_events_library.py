"""Library workflows start from their business events: installed from the library they come out published
and bound, and the event with a realistic payload starts them and they run on it (real system steps)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from billing import services as billing_services
from billing.models import Invoice
from billing.tests.factories import ContractFactory
from carparks.models import CarPark, Case, Contract, Customer
from carparks.tests.factories import CarParkFactory, CorporateFactory, CustomerFactory
from workflows import authoring
from workflows.models import BusinessEvent, Process, StartBinding, WorkflowVersion
from workflows.services import definition_install
from workflows.starting import event_emit
from workflows.sync import sync_definitions
from workflows.testing import run_pending_system_steps

pytestmark = pytest.mark.django_db


def contract(*, customer: Customer | None = None, state: str = Contract.State.ACTIVE) -> Contract:
    return ContractFactory(customer=customer or CustomerFactory(), state=state, monthly_price=Decimal("95.00"))


def contract_payload(item: Contract) -> dict[str, Any]:
    carpark = item.product.carpark
    return {
        "contract_id": item.pk,
        "customer_id": item.customer_id,
        "customer_name": item.customer.name,
        "customer_kind": item.customer.kind,
        "product_id": item.product_id,
        "product": item.product.name,
        "carpark_id": carpark.pk,
        "carpark": carpark.name,
    }


def case(kind: str) -> tuple[Case, dict[str, Any]]:
    about = contract()
    item = Case.objects.create(
        customer=about.customer,
        contract=about,
        kind=kind,
        subject=f"{kind} by phone",
        channel=Case.Channel.PHONE,
        sla_due_at=timezone.now() + timedelta(days=1),
    )
    payload = {
        "case_id": item.pk,
        "kind": kind,
        "priority": item.priority,
        "channel": item.channel,
        "subject": item.subject,
        "customer_id": item.customer_id,
        "customer_name": item.customer.name,
        "customer_kind": item.customer.kind,
        "contract_id": about.pk,
        "invoice_id": None,
        "carpark_id": about.product.carpark_id,
    }
    return item, payload


def carpark_added() -> tuple[CarPark, dict[str, Any]]:
    carpark = CarParkFactory(name="Garage am Markt", city="Ulm", capacity=240)
    return carpark, {
        "carpark_id": carpark.pk,
        "carpark": carpark.name,
        "city": carpark.city,
        "capacity": carpark.capacity,
        "source": "portal",
        "connection_id": None,
    }


def period_due() -> tuple[Any, dict[str, Any]]:
    contract()
    run = billing_services.invoicing_run_create(period_start=date(2026, 3, 1))
    return run, {"run_id": run.pk, "period_start": "2026-03-01", "period_end": "2026-03-31"}


def change_requested() -> tuple[Contract, dict[str, Any]]:
    item = contract()
    return item, {
        **contract_payload(item),
        "kind": "plate",
        "effective_date": "2026-04-01",
        "details": "New car: M-NE 1 instead of M-AL 1",
        "channel": "portal",
    }


def corporate_application() -> tuple[Contract, dict[str, Any]]:
    item = contract(customer=CorporateFactory(), state=Contract.State.APPLIED)
    return item, {
        **contract_payload(item),
        "channel": "api",
        "start_date": "2026-04-01",
        "monthly_price": 95.0,
        "plates": ["M-CO 1", "M-CO 2"],
        "vehicle_count": 2,
    }


@dataclass(frozen=True)
class Start:
    slug: str
    event: str
    make: Any
    first_step: str  # where the process waits after its first system steps ran


CASES = [
    Start("carpark-onboarding", "carpark.added", carpark_added, "connect_cpms"),
    Start("access-card-replacement", "case.opened", lambda: case(Case.Kind.CARD_REPLACEMENT), "verify"),
    Start("complaint-refund", "case.opened", lambda: case(Case.Kind.COMPLAINT), "triage"),
    Start("customer-callback", "case.opened", lambda: case(Case.Kind.CALLBACK), "call_back"),
    Start("monthly-invoicing-review", "invoicing.period_due", period_due, "review"),
    Start("contract-change", "contract.change_requested", change_requested, "review_change"),
    Start("corporate-season-contract", "application.received", corporate_application, "review"),
]


@pytest.mark.parametrize("item", CASES, ids=lambda c: c.slug)
def test_it_installs_published_and_bound_and_its_event_starts_it(item):
    installed = authoring.library_install(slug=item.slug)

    assert installed.valid, installed.problems
    version = installed.version
    assert version.state == WorkflowVersion.State.PUBLISHED
    binding = StartBinding.objects.get(version=version)
    assert binding.event == item.event

    obj, payload = item.make()
    event = event_emit(name=item.event, payload=payload, business_object=obj, event_id=f"test:{item.slug}")

    assert event.state == BusinessEvent.State.STARTED, event.error
    process = event.process
    assert (process.definition.key, process.version_id, process.business_object) == (
        version.definition.key,
        version.pk,
        obj,
    )
    assert {k: process.variables[k] for k in payload} == payload
    run_pending_system_steps()
    process.refresh_from_db()
    assert not process.incident_open, process.incident_error
    assert process.tasks.get(state="open").step_id == item.first_step


def test_an_event_another_library_workflow_takes_does_not_start_it():
    authoring.library_install(slug="complaint-refund")
    obj, payload = case(Case.Kind.CALLBACK)

    event = event_emit(name="case.opened", payload=payload, business_object=obj)

    assert event.state == BusinessEvent.State.UNMATCHED and not Process.objects.exists()


def test_the_corporate_contract_takes_corporate_applications_and_the_built_in_stays_for_private_ones():
    sync_definitions()
    assert authoring.library_install(slug="corporate-season-contract").version.state == "published"
    corporate, corporate_payload = corporate_application()
    private = contract(state=Contract.State.APPLIED)
    private_payload = {**contract_payload(private), "channel": "portal", "vehicle_count": 1}

    started = {
        kind: event_emit(name="application.received", payload=payload, business_object=obj).process
        for kind, obj, payload in [
            ("corporate", corporate, corporate_payload),
            ("private", private, private_payload),
        ]
    }

    assert started["corporate"].definition.key == "corporate-season-contract"
    assert started["private"].definition.key == "season-contract"


def test_the_corporate_contract_runs_without_a_vehicle_count(make_user):
    from workflows.services import task_complete

    authoring.library_install(slug="corporate-season-contract")
    obj, payload = corporate_application()
    payload.pop("vehicle_count")
    process = event_emit(name="application.received", payload=payload, business_object=obj).process
    agent = make_user("agent", roles.AGENT, carparks=[obj.product.carpark])

    task_complete(task=process.tasks.get(), user=agent, outcome="approve", inputs={"company_checked": True})
    run_pending_system_steps()

    process.refresh_from_db()
    assert not process.tasks.filter(step_id="supervisor_approval").exists()  # no fleet: no supervisor
    assert process.current_step != "fleet_size" and not process.incident_error.startswith("step 'fleet_size'")
    assert Contract.objects.get(pk=obj.pk).state != Contract.State.APPLIED  # approved on the way


def test_dunning_from_the_library_wins_over_the_built_in_failed_payment_by_its_priority():
    sync_definitions()
    installed = authoring.library_install(slug="dunning-failed-payment")
    assert installed.valid and installed.version.state == "published"
    bound = dict(StartBinding.objects.filter(event="payment.failed").values_list("definition__key", "priority"))
    # (the SEPA and bank-transfer workflows are bound to payment.failed too, for their own methods)
    assert bound == {
        "failed-payment": 0, "dunning-failed-payment": 1, "overdue-transfer": 0, "returned-direct-debit": 0
    }  # fmt: skip
    customer = CustomerFactory()
    ContractFactory(customer=customer)
    billing_services.invoicing_run_execute(
        run=billing_services.invoicing_run_create(period_start=date(2026, 3, 1)), deliver=False
    )
    invoice = Invoice.objects.get(customer=customer)

    process = billing_services.dunning_start(invoice=invoice)

    assert process.definition.key == "dunning-failed-payment" and process.business_object == invoice
    assert BusinessEvent.objects.get(name="payment.failed").process == process


def test_the_library_page_says_installed_and_published_or_why_it_stayed_a_draft(client, make_user, login):
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))

    response = client.post(reverse("workflows:library-install", kwargs={"slug": "customer-callback"}))
    text = [str(m) for m in get_messages(response.wsgi_request)]
    assert response.status_code == 302
    name = authoring.library_item("customer-callback").name
    assert text == [
        f'{name} is installed and published (version 1) — it now starts on case.opened when event.kind == "callback".'
    ]
    assert response["Location"] == reverse("workflows:definition-detail", kwargs={"key": "customer-callback"})

    # Another workflow already takes complaints the same way: the library one stays a draft, and says so.
    definition_install(
        spec={
            "key": "our-complaints",
            "name": "Our complaints",
            "steps": [
                {
                    "id": "start",
                    "type": "start",
                    "event": "case.opened",
                    "condition": 'event.kind == "complaint"',
                    "next": "end",
                },
                {"id": "end", "type": "end"},
            ],
        }
    )
    response = client.post(reverse("workflows:library-install", kwargs={"slug": "complaint-refund"}))
    text = [str(m) for m in get_messages(response.wsgi_request)]
    assert response["Location"] == reverse("workflows:editor", kwargs={"key": "complaint-refund"})
    assert "installed as a draft (version 1), not published:" in text[-1]
    assert "'Our complaints' (our-complaints) already starts on 'case.opened'" in text[-1]
    draft = WorkflowVersion.objects.get(definition__key="complaint-refund")
    assert draft.state == WorkflowVersion.State.DRAFT
    assert not StartBinding.objects.filter(definition__key="complaint-refund").exists()
