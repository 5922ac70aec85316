"""System tasks the car-park processes name (season-contract, contract-termination, waitlist-offer,
customer-case). Each is idempotent: a step that already happened is not done twice."""

from __future__ import annotations

from datetime import date
from typing import Any

from carparks import services
from carparks.models import Case, Contract
from workflows.registry import PermanentError, SystemTaskContext, system_task


def _contract(ctx: SystemTaskContext) -> Contract:
    obj = ctx.business_object
    if isinstance(obj, Contract):
        return Contract.objects.select_related("product__carpark", "customer").get(pk=obj.pk)
    contract_id = ctx.variables.get("contract_id")
    if not contract_id:
        raise PermanentError("the process is not about a contract and has no contract_id variable")
    try:
        return Contract.objects.select_related("product__carpark", "customer").get(pk=contract_id)
    except Contract.DoesNotExist:
        raise PermanentError(f"contract {contract_id} does not exist") from None


def _case(ctx: SystemTaskContext) -> Case:
    obj = ctx.business_object
    if isinstance(obj, Case):
        return Case.objects.get(pk=obj.pk)
    try:
        return Case.objects.get(pk=ctx.variables.get("case_id"))
    except (Case.DoesNotExist, ValueError, TypeError):
        raise PermanentError(f"case {ctx.variables.get('case_id')!r} does not exist") from None


def _refuse(exc: services.CarparkError) -> PermanentError:
    return PermanentError(str(exc))


def cpms_linked(carpark_id: int) -> bool:
    """Whether connect can push credentials to this car park's CPMS (the processes skip the push otherwise)."""
    try:
        from connect.models import CarParkLink
        from connect.receivers import PUSH_KINDS
    except ImportError:
        return False
    return CarParkLink.objects.filter(
        carpark_id=carpark_id, connection__is_active=True, connection__kind__in=PUSH_KINDS
    ).exists()


@system_task(
    "carparks.contract_approve",
    reads=["contract_id", "note"],
    writes=["contract_state"],
    description="Approve the season contract after its review (fixes the agreed price).",
)
def contract_approve(ctx: SystemTaskContext) -> dict[str, Any]:
    contract = _contract(ctx)
    if contract.state == Contract.State.APPLIED:
        try:
            contract = services.contract_approve(
                contract=contract, note=f"Approved in process {ctx.process.pk}. {ctx.variables.get('note') or ''}"
            )
        except services.CarparkError as exc:
            raise _refuse(exc) from exc
    elif contract.state not in (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED):
        raise PermanentError(f"contract {contract.pk} is {contract.state} and cannot be approved")
    return {"contract_state": contract.state}


@system_task(
    "carparks.contract_activate",
    reads=["contract_id"],
    writes=["contract_state", "credentials", "cpms_linked"],
    description="Activate the contract and issue one licence-plate credential per vehicle.",
)
def contract_activate(ctx: SystemTaskContext) -> dict[str, Any]:
    contract = _contract(ctx)
    if contract.state == Contract.State.APPROVED:
        try:
            contract = services.contract_activate(contract=contract, note=f"Activated in process {ctx.process.pk}.")
        except services.CarparkError as exc:
            raise _refuse(exc) from exc
    elif contract.state not in (Contract.State.ACTIVE, Contract.State.SUSPENDED):
        raise PermanentError(f"contract {contract.pk} is {contract.state} and cannot be activated")
    identifiers = list(contract.credentials.filter(is_active=True).values_list("identifier", flat=True))
    return {
        "contract_state": contract.state,
        "credentials": identifiers,
        "cpms_linked": cpms_linked(contract.product.carpark_id),
    }


@system_task(
    "carparks.contract_reject",
    reads=["contract_id", "note", "reason"],
    writes=["contract_state"],
    description="Reject the application; its place goes to the next in line.",
)
def contract_reject(ctx: SystemTaskContext) -> dict[str, Any]:
    contract = _contract(ctx)
    if contract.state in (Contract.State.APPLIED, Contract.State.WAITLISTED):
        reason = ctx.variables.get("reason") or ctx.variables.get("note") or "Rejected after review."
        contract = services.contract_reject(contract=contract, reason=str(reason))
    elif contract.state not in Contract.FINAL_STATES:
        raise PermanentError(f"contract {contract.pk} is {contract.state} and cannot be rejected")
    return {"contract_state": contract.state}


@system_task(
    "carparks.contract_terminate",
    reads=["contract_id", "end_date", "reason"],
    writes=["contract_state", "cpms_linked"],
    description="End the contract on its end date: credentials stop, the place is offered to the waitlist.",
)
def contract_terminate(ctx: SystemTaskContext) -> dict[str, Any]:
    contract = _contract(ctx)
    if contract.state in (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED):
        end = ctx.variables.get("end_date")
        contract = services.contract_terminate(
            contract=contract,
            end_date=date.fromisoformat(end) if end else None,
            reason=str(ctx.variables.get("reason") or ""),
        )
    return {"contract_state": contract.state, "cpms_linked": cpms_linked(contract.product.carpark_id)}


@system_task(
    "carparks.offer_expire",
    reads=["contract_id"],
    writes=["contract_state", "offer_expired"],
    description="Let an unanswered waitlist offer lapse and offer the place to the next in line.",
)
def offer_expire(ctx: SystemTaskContext) -> dict[str, Any]:
    contract = services.contract_offer_expire(contract=_contract(ctx), force=True)
    return {"contract_state": contract.state, "offer_expired": contract.state == Contract.State.CANCELLED}


@system_task(
    "carparks.card_replace",
    reads=["case_id", "contract_id"],
    writes=["card_number", "contract_id", "cpms_linked"],
    description="Issue a replacement RFID card for the case's contract (the old card stops working).",
)
def card_replace(ctx: SystemTaskContext) -> dict[str, Any]:
    case = _case(ctx)
    if case.contract_id is None:
        raise PermanentError(f"case {case.pk} names no contract")
    try:
        card = services.credential_issue_card(contract=case.contract, issue_key=ctx.idempotency_key)
    except services.CarparkError as exc:
        raise _refuse(exc) from exc
    return {
        "card_number": card.identifier,
        "contract_id": case.contract_id,
        "cpms_linked": cpms_linked(case.contract.product.carpark_id),
    }


@system_task(
    "carparks.case_resolve",
    reads=["case_id", "resolution", "note"],
    writes=["case_state"],
    description="Mark the customer-care case resolved and tell the customer.",
)
def case_resolve(ctx: SystemTaskContext) -> dict[str, Any]:
    case = _case(ctx)
    resolution = ctx.variables.get("resolution") or ctx.variables.get("note") or ""
    if ctx.variables.get("card_number"):
        resolution = f"{resolution}\nNew card: {ctx.variables['card_number']}".strip()
    case = services.case_resolve(case=case, resolution=str(resolution))
    return {"case_state": case.state}


def _change_request(ctx: SystemTaskContext) -> Any:
    from carparks.models import ContractChangeRequest

    try:
        return ContractChangeRequest.objects.get(pk=ctx.variables.get("change_request_id"))
    except (ContractChangeRequest.DoesNotExist, ValueError, TypeError):
        raise PermanentError(f"change request {ctx.variables.get('change_request_id')!r} does not exist") from None


@system_task(
    "carparks.change_request_approve",
    reads=["change_request_id", "note"],
    writes=["change_request_state", "places"],
    description="Carry out a reviewed places change: the contract holds the places asked for and gets the vehicles.",
)
def change_request_approve(ctx: SystemTaskContext) -> dict[str, Any]:
    note = f"Approved in process {ctx.process.pk}. {ctx.variables.get('note') or ''}".strip()
    try:
        request = services.contract_change_request_approve(request=_change_request(ctx), note=note)
    except services.CarparkError as exc:
        raise _refuse(exc) from exc
    return {"change_request_state": request.state, "places": request.contract.places}


@system_task(
    "carparks.change_request_reject",
    reads=["change_request_id", "note", "reason"],
    writes=["change_request_state"],
    description="Drop a places change after its review; the contract stays as it is.",
)
def change_request_reject(ctx: SystemTaskContext) -> dict[str, Any]:
    reason = ctx.variables.get("reason") or ctx.variables.get("note") or "Rejected after review."
    request = services.contract_change_request_reject(request=_change_request(ctx), reason=str(reason))
    return {"change_request_state": request.state}
