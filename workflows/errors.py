"""Errors the engine raises. Every message is meant to be shown to a person as it is."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of every engine error."""


class DefinitionNotFound(WorkflowError):
    """No (published) workflow definition with that key."""


class DefinitionInvalid(WorkflowError):
    """A definition failed validation; ``errors`` lists every problem, each naming its step."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


class VersionImmutable(WorkflowError):
    """A published or retired version's content cannot be changed."""


class ExpressionError(WorkflowError):
    """A condition is not a safe, valid expression, or failed to evaluate."""


class TaskNotAvailable(WorkflowError):
    """The task is no longer open/claimed for this user (completed, escalated, claimed by someone else...)."""


class TaskPermissionDenied(WorkflowError):
    """The user may not work on this task (role or car-park responsibility missing)."""


class InvalidOutcome(WorkflowError):
    """The outcome is not one of the task's outcomes."""


class InvalidInputs(WorkflowError):
    """Task inputs failed validation; ``field_errors`` maps input name to message."""

    def __init__(self, field_errors: dict[str, str]):
        self.field_errors = dict(field_errors)
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in self.field_errors.items()))


class ProcessNotRunning(WorkflowError):
    """The process is completed, cancelled or suspended."""


class MessageNotExpected(WorkflowError):
    """The process does not wait for that message now."""


class EscalationNotPossible(WorkflowError):
    """The task is already at its last escalation level."""


class NoIncident(WorkflowError):
    """incident_retry on a process that holds no incident."""


class MigrationNotPossible(WorkflowError):
    """process_migrate: the target version lacks the current step or is not of this workflow."""
