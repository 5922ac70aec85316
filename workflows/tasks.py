"""Celery tasks of the engine: run a system step, and the beat tick that fires timers."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workflows.tasks.run_system_step", acks_late=True, ignore_result=True)
def run_system_step(job_id: int) -> str:
    """Execute one queued system job (a re-delivered message for a taken job does nothing)."""
    from workflows.engine import execute_job

    return execute_job(int(job_id))


@shared_task(name="workflows.tasks.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Fire due timers (escalations, waits, message timeouts, retries) and recover lost jobs."""
    from workflows.engine import fire_due_timers, recover_jobs

    return {"timers": fire_due_timers(), "jobs": recover_jobs()}
