"""Errors the engine raises. Every message is meant to be shown to a person as it is."""

from __future__ import annotations

from typing import NamedTuple


class WorkflowError(Exception):
    """Base class of every engine error."""


class DefinitionNotFound(WorkflowError):
    """No (published) workflow definition with that key."""


class StepProblem(NamedTuple):
    """One validation problem: the step (diagram element) it is about, that step's name, and the message
    without the step (``element_id`` and ``element_name`` are empty for a problem of the whole definition)."""

    element_id: str
    element_name: str
    message: str

    def text(self) -> str:
        """The problem as a person reads it: ``“Check the request” (verify): a user task needs a 'role'``."""
        if not self.element_id:
            return self.message
        hint = f" ({self.element_id})" if self.element_name and self.element_name != self.element_id else ""
        return f"“{self.element_name or self.element_id}”{hint}: {self.message}"


class DefinitionInvalid(WorkflowError):
    """A definition failed validation; ``errors`` lists every problem as a person reads it, each naming its
    step by its name, and ``problems`` the same problems as :class:`StepProblem` (the step's id apart, so
    the editor marks the element without parsing the text)."""

    def __init__(self, errors: list[str], problems: list[StepProblem] | None = None):
        self.errors = list(errors)
        self.problems = list(problems) if problems is not None else [StepProblem("", "", e) for e in self.errors]
        super().__init__("; ".join(self.errors))

    @classmethod
    def of(cls, problems: list[StepProblem]) -> DefinitionInvalid:
        return cls([p.text() for p in problems], problems)


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
