"""State changes a page hides are refused on the server too, tried by POSTing directly.

An application's review task owns its decision: while the task waits in the basket, approving or rejecting
the contract by hand is refused (an FSM condition on the transition), whoever asks; the review's own step
approves once its task is completed. Accepting a waitlist offer is taken only by those who act for
customers. Each refusal leaves the contract as it was.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

import workflows.services as wf
from accounts.roles import ADMINISTRATOR, AGENT, CARE, FINANCE, MANAGER, SUPERVISOR, WORKFLOW_ADMIN
from carparks import services
from carparks.models import Contract, ContractEvent
from carparks.tests.factories import CustomerFactory, ProductFactory
from carparks.tests.test_views import login
from workflows.models import Process, Task
from workflows.testing import run_pending_system_steps

pytestmark = pytest.mark.django_db


def review_of(contract: Contract) -> Process:
    from django.contrib.contenttypes.models import ContentType

    return Process.objects.get(
        content_type=ContentType.objects.get_for_model(Contract),
        object_id=contract.pk,
        start_event__name="application.received",
    )


def applied(product=None) -> Contract:
    contract = services.contract_apply(
        customer=CustomerFactory(), product=product or ProductFactory(), vehicles=["M RG 1"]
    )
    assert review_of(contract).tasks.filter(state__in=Task.ACTIVE_STATES).exists()
    return contract


def action(contract: Contract, name: str) -> str:
    return reverse("carparks:contract-action", args=[contract.pk, name])


def shown(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


class TestTheReviewTaskOwnsTheDecision:
    @pytest.mark.parametrize("name", ["approve", "reject"])
    def test_a_direct_post_is_refused_with_the_reason_while_the_task_is_open(self, client, name):
        contract = applied()
        login(client, AGENT, carparks=[contract.product.carpark])
        events = ContractEvent.objects.filter(contract=contract).count()
        response = client.post(action(contract, name), {"reason": "by hand"})
        assert response.status_code == 302
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.APPLIED
        assert ContractEvent.objects.filter(contract=contract).count() == events
        (message,) = shown(response)
        assert "waits for its review task in the basket" in message
        process = review_of(contract)
        assert process.state == Process.State.RUNNING and not process.incident_open
        page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
        assert "waits for its review task in the basket" in page
        assert action(contract, "approve") not in page and action(contract, "reject") not in page

    def test_a_supervisor_and_an_administrator_are_refused_too(self, client):
        contract = applied()
        for role in (SUPERVISOR, ADMINISTRATOR):
            login(client, role)
            client.post(action(contract, "approve"))
            assert Contract.objects.get(pk=contract.pk).state == Contract.State.APPLIED

    def test_the_service_refuses_whoever_calls_it(self):
        contract = applied()
        with pytest.raises(services.TransitionError, match="review task"):
            services.contract_approve(contract=contract)
        with pytest.raises(services.TransitionError, match="review task"):
            services.contract_reject(contract=contract, reason="no")
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.APPLIED

    def test_a_claimed_task_holds_the_decision_as_well(self, client):
        contract = applied()
        reviewer = login(client, AGENT, carparks=[contract.product.carpark])
        wf.task_claim(task=review_of(contract).tasks.get(state=Task.State.OPEN), user=reviewer)
        client.post(action(contract, "approve"))
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.APPLIED

    def test_completing_the_task_in_the_basket_approves_and_activates(self, client):
        contract = applied()
        login(client, AGENT, carparks=[contract.product.carpark])
        client.post(action(contract, "approve"))  # refused, as above; the review is untouched
        task = review_of(contract).tasks.get(state=Task.State.OPEN)
        response = client.post(reverse("workflows:task-complete", args=[task.pk]), {"outcome": "approve"})
        assert response.status_code in (200, 302)
        run_pending_system_steps()
        contract = Contract.objects.get(pk=contract.pk)
        assert contract.state == Contract.State.ACTIVE
        process = review_of(contract)
        assert (process.state, process.result, process.incident_open) == (Process.State.COMPLETED, "approved", False)

    def test_rejecting_in_the_basket_rejects_without_an_incident(self, client):
        contract = applied()
        login(client, AGENT, carparks=[contract.product.carpark])
        task = review_of(contract).tasks.get(state=Task.State.OPEN)
        client.post(reverse("workflows:task-complete", args=[task.pk]), {"outcome": "reject", "note": "No ID"})
        run_pending_system_steps()
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.REJECTED
        process = review_of(contract)
        assert (process.state, process.result, process.incident_open) == (Process.State.COMPLETED, "rejected", False)

    def test_once_the_review_is_closed_the_page_decides_again(self, client):
        contract = applied()
        services.contract_processes_close(contract=contract, reason="Decided at the counter")
        login(client, AGENT, carparks=[contract.product.carpark])
        page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
        assert action(contract, "approve") in page
        client.post(action(contract, "approve"))
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.APPROVED


def offered(product=None) -> Contract:
    """A waitlisted application that was offered the place a rejection freed."""
    product = product or ProductFactory(quota=1)
    first = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M WL 1"])
    waiting = services.contract_apply(customer=CustomerFactory(), product=product, vehicles=["M WL 2"])
    services.contract_processes_close(contract=first)
    services.contract_reject(contract=first, reason="No documents")
    waiting = Contract.objects.get(pk=waiting.pk)
    assert waiting.state == Contract.State.OFFERED and waiting.offer_expires_at > timezone.now() + timedelta(days=1)
    return waiting


class TestAcceptingAnOffer:
    @pytest.mark.parametrize("role", [FINANCE, MANAGER, WORKFLOW_ADMIN])
    def test_a_role_that_does_not_act_for_customers_gets_403(self, client, role):
        contract = offered()
        login(client, role, carparks=[contract.product.carpark])
        response = client.post(action(contract, "accept_offer"))
        assert response.status_code == 403
        contract = Contract.objects.get(pk=contract.pk)
        assert contract.state == Contract.State.OFFERED and contract.offer_expires_at is not None

    def test_finance_is_not_offered_the_button(self, client):
        contract = offered()
        login(client, FINANCE)
        page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
        assert action(contract, "accept_offer") not in page

    def test_the_service_refuses_those_roles_as_well(self):
        from django.core.exceptions import PermissionDenied

        from carparks.tests.factories import UserFactory

        contract = offered()
        with pytest.raises(PermissionDenied):
            services.contract_offer_accept(contract=contract, user=UserFactory(roles=[FINANCE]))
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.OFFERED

    def test_an_offer_in_a_car_park_of_someone_else_is_404(self, client):
        contract = offered()
        login(client, CARE, carparks=[ProductFactory().carpark])
        assert client.post(action(contract, "accept_offer")).status_code == 404
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.OFFERED

    @pytest.mark.parametrize("role", [AGENT, CARE])
    def test_agents_and_customer_care_of_the_car_park_accept_it(self, client, role):
        contract = offered()
        login(client, role, carparks=[contract.product.carpark])
        page = client.get(reverse("carparks:contract-detail", args=[contract.pk])).content.decode()
        assert action(contract, "accept_offer") in page
        client.post(action(contract, "accept_offer"))
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.APPLIED


class TestOtherActionsByRole:
    @pytest.mark.parametrize(("name", "role"), [("approve", CARE), ("approve", FINANCE), ("cancel", MANAGER)])
    def test_a_role_that_never_takes_the_step_gets_403(self, client, name, role):
        contract = applied()
        services.contract_processes_close(contract=contract)
        login(client, role, carparks=[contract.product.carpark])
        assert client.post(action(contract, name)).status_code == 403
        assert Contract.objects.get(pk=contract.pk).state == Contract.State.APPLIED

    def test_a_car_park_manager_cannot_give_notice(self, client):
        contract = applied()
        services.contract_processes_close(contract=contract)
        contract = services.contract_activate(contract=services.contract_approve(contract=contract))
        login(client, MANAGER, carparks=[contract.product.carpark])
        url = reverse("carparks:contract-terminate", args=[contract.pk])
        assert client.post(url, {"end_date": "2099-01-31", "reason": "x"}).status_code == 403
        contract = Contract.objects.get(pk=contract.pk)
        assert contract.state == Contract.State.ACTIVE and contract.end_date is None
