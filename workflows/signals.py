"""Signals the engine sends, always after the transaction that caused them has committed.

Every signal's sender is the model class (``Task`` or ``Process``) and carries the object as a
keyword argument:

- ``task_created(sender=Task, task=task)`` — a new user task (not sent for escalated copies).
- ``task_assigned(sender=Task, task=task, user=user, by=actor)`` — claimed by (``by`` is ``user``) or
  delegated to ``user`` by ``by``.
- ``task_escalated(sender=Task, task=new_task, previous=old_task, reason=str)`` — the new task
  carries the new role and ``escalation_level + 1``.
- ``task_completed(sender=Task, task=task)``.
- ``task_timed_out(sender=Task, task=task, next_step=name)`` — the step's timeout cancelled the task;
  the process went on to the step named ``next_step``.
- ``process_finished(sender=Process, process=process)`` — completed or cancelled (see ``state``).
- ``incident_opened(sender=Process, process=process)`` — retries exhausted or a step failed.
"""

from django.dispatch import Signal

task_created = Signal()
task_assigned = Signal()
task_escalated = Signal()
task_completed = Signal()
task_timed_out = Signal()
process_finished = Signal()
incident_opened = Signal()
