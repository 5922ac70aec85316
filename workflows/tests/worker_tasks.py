"""A system task for the real-worker test; the test's worker imports this module with --include."""

import os

from workflows.registry import SystemTaskContext, system_task


@system_task("tests.worker_pid", writes=["worker_pid"], description="Report which OS process ran the step.")
def worker_pid(ctx: SystemTaskContext) -> dict:
    return {"worker_pid": os.getpid(), "worker_key": ctx.idempotency_key}
