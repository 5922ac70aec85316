"""The system steps of bench/scaleout.py, registered in the bench and in every Celery worker it starts
(``celery worker --include=bench.scaleout_tasks``)."""

from __future__ import annotations

from workflows.registry import SystemTaskContext, system_task


@system_task("bench.scaleout_activate", reads=["contract_id"], writes=["credential_id"])
def activate(ctx: SystemTaskContext) -> dict:
    return {"credential_id": f"C-{ctx.variables.get('contract_id')}"}


@system_task("bench.scaleout_notify", reads=["credential_id"], writes=["notified"])
def notify(ctx: SystemTaskContext) -> dict:
    return {"notified": bool(ctx.variables.get("credential_id"))}
