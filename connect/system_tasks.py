"""Connect's system tasks: CPMS work a workflow's system step may name.

Each call records a SyncRun keyed by the step's idempotency key, so the engine re-running a
step resumes the same run; a push re-sent with the same key pushes nothing twice (and the CPMS
side is idempotent anyway: assigned rights are written with PUT under stable ids). Transient
CPMS failures raise for the engine to retry; refusals raise PermanentError.
"""

from __future__ import annotations

from typing import Any

from carparks.models import CarPark, Contract
from workflows.registry import PermanentError, SystemTaskContext, system_task

from . import services
from .adapters import CpmsError
from .models import CpmsConnection, SyncRun


def _connections(ctx: SystemTaskContext) -> list[CpmsConnection]:
    connection_id = ctx.variables.get("connection_id")
    if connection_id:
        try:
            return [CpmsConnection.objects.get(pk=connection_id)]
        except CpmsConnection.DoesNotExist:
            raise PermanentError(f"CPMS connection {connection_id} does not exist") from None
    target = _target(ctx)
    if isinstance(target, CarPark):
        link = getattr(target, "cpms_link", None)
        if link is None:
            raise PermanentError(f"car park {target} is not connected to a CPMS")
        return [link.connection]
    return list(CpmsConnection.objects.filter(is_active=True).order_by("pk"))


def _target(ctx: SystemTaskContext) -> Any:
    return getattr(ctx.process, "business_object", None) if ctx.process is not None else None


def _contract(ctx: SystemTaskContext) -> Contract:
    target = _target(ctx)
    if isinstance(target, Contract):
        return target
    contract_id = ctx.variables.get("contract_id")
    if contract_id:
        try:
            return Contract.objects.select_related("product__carpark").get(pk=contract_id)
        except Contract.DoesNotExist:
            raise PermanentError(f"contract {contract_id} does not exist") from None
    raise PermanentError("this step needs a contract: the process is not about one and has no contract_id")


def _run(call: Any) -> SyncRun:
    try:
        return call()
    except CpmsError as exc:
        if exc.retryable:
            raise
        raise PermanentError(str(exc)) from exc


@system_task(
    "connect.sync_static",
    reads=["connection_id"],
    writes=["cpms_carparks_created", "cpms_carparks_updated", "cpms_sync_run_ids"],
    description="Import car parks (static data and tariffs) from the CPMS.",
)
def sync_static(ctx: SystemTaskContext) -> dict[str, Any]:
    runs = [
        _run(lambda c=c: services.sync_static(connection=c, key=f"{ctx.idempotency_key}:{c.pk}", final=False))
        for c in _connections(ctx)
    ]
    return {
        "cpms_carparks_created": sum(r.created for r in runs),
        "cpms_carparks_updated": sum(r.updated for r in runs),
        "cpms_sync_run_ids": [r.pk for r in runs],
    }


@system_task(
    "connect.sync_occupancy",
    reads=["connection_id"],
    writes=["cpms_occupancy_updated", "cpms_sync_run_ids"],
    description="Copy the current occupancy of every linked car park from the CPMS.",
)
def sync_occupancy(ctx: SystemTaskContext) -> dict[str, Any]:
    runs = [
        _run(lambda c=c: services.sync_occupancy(connection=c, key=f"{ctx.idempotency_key}:{c.pk}", final=False))
        for c in _connections(ctx)
    ]
    return {"cpms_occupancy_updated": sum(r.updated for r in runs), "cpms_sync_run_ids": [r.pk for r in runs]}


@system_task(
    "connect.push_credentials",
    reads=["contract_id"],
    writes=["credentials_pushed", "credentials_revoked", "cpms_sync_run_id"],
    description="Push the contract's valid credentials to its car park's CPMS (and revoke the others).",
)
def push_credentials(ctx: SystemTaskContext) -> dict[str, Any]:
    contract = _contract(ctx)
    run = _run(lambda: services.credentials_push(contract=contract, key=ctx.idempotency_key, final=False))
    outcomes = [item["outcome"] for item in run.details.get("credentials", [])]
    return {
        "credentials_pushed": sum(1 for o in outcomes if o in ("created", "updated")),
        "credentials_revoked": sum(1 for o in outcomes if o in ("deleted", "absent")),
        "cpms_sync_run_id": run.pk,
    }


@system_task(
    "connect.revoke_credentials",
    reads=["contract_id"],
    writes=["credentials_revoked", "cpms_sync_run_id"],
    description="Remove all of the contract's credentials from its car park's CPMS whitelist.",
)
def revoke_credentials(ctx: SystemTaskContext) -> dict[str, Any]:
    contract = _contract(ctx)
    run = _run(lambda: services.credentials_revoke(contract=contract, key=ctx.idempotency_key, final=False))
    return {"credentials_revoked": run.updated + run.unchanged, "cpms_sync_run_id": run.pk}


@system_task(
    "connect.reconcile",
    reads=["connection_id"],
    writes=["cpms_missing", "cpms_extra", "cpms_sync_run_ids"],
    description="Compare the CPMS whitelist with valid credentials; open a review where they differ.",
)
def reconcile(ctx: SystemTaskContext) -> dict[str, Any]:
    target = _target(ctx)
    # Re-checking one car park (a review process does that) reports; it does not open another review.
    carparks = [target] if isinstance(target, CarPark) else None
    runs = []
    for connection in _connections(ctx):
        if not connection.supports_push:
            continue
        runs.append(
            _run(
                lambda c=connection: services.reconcile(
                    connection=c,
                    carparks=carparks,
                    key=f"{ctx.idempotency_key}:{c.pk}",
                    final=False,
                    start_review=carparks is None,
                )
            )
        )
    return {
        "cpms_missing": sum(r.details.get("missing", 0) for r in runs),
        "cpms_extra": sum(r.details.get("extra", 0) for r in runs),
        "cpms_sync_run_ids": [r.pk for r in runs],
    }
