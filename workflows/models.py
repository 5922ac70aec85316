"""The engine's data: definitions and their versions, processes, tasks, history, timers and jobs.

Lifecycles are django-fsm fields with protected state; hot paths (claiming a task, taking a job)
use one conditional UPDATE whose WHERE clause is the transition's source state, so the database
settles races. A process advances under a row lock on its Process row.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin as _ConcurrentTransitionMixin
from django_fsm import FSMField, transition

from workflows.errors import VersionImmutable


class ConcurrentTransitionMixin(_ConcurrentTransitionMixin):
    """django-fsm's guard against concurrent transitions, with the model's state fields found once
    per class instead of by scanning every field on every instance (the engine builds many)."""

    @property
    def state_fields(self):  # type: ignore[no-untyped-def]
        cls = type(self)
        fields = cls.__dict__.get("_fsm_state_fields")
        if fields is None:
            fields = tuple(super().state_fields)
            cls._fsm_state_fields = fields
        return fields


class WorkflowDefinition(models.Model):
    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def published_version(self) -> WorkflowVersion | None:
        return self.versions.filter(state=WorkflowVersion.State.PUBLISHED).order_by("-number").first()


class WorkflowVersion(ConcurrentTransitionMixin, models.Model):
    """One version of a definition: draft → published → retired. Published content never changes."""

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        RETIRED = "retired", _("Retired")

    FROZEN_FIELDS = ("spec", "graph", "bpmn_xml", "checksum", "number", "definition_id")

    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    state = FSMField(default=State.DRAFT, choices=State.choices, protected=True, db_index=True)
    spec = models.JSONField(help_text="The definition in the compact format, as installed.")
    graph = models.JSONField(help_text="The compiled graph the engine runs.")
    bpmn_xml = models.TextField(blank=True, help_text="The BPMN 2.0 XML the editor saved, if any.")
    checksum = models.CharField(max_length=64, db_index=True)
    comment = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [models.UniqueConstraint(fields=["definition", "number"], name="workflow_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.definition.key} v{self.number} ({self.get_state_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        loaded_state = getattr(self, "_loaded_state", None)
        if self.pk and loaded_state in (self.State.PUBLISHED, self.State.RETIRED):
            changed = [name for name, value in getattr(self, "_loaded", {}).items() if getattr(self, name) != value]
            if changed:
                raise VersionImmutable(
                    f"{self.definition.key} version {self.number} is {loaded_state} and cannot be changed "
                    f"({', '.join(changed)}); create a new version instead"
                )
        super().save(*args, **kwargs)
        self._loaded = {name: getattr(self, name) for name in self.FROZEN_FIELDS}
        self._loaded_state = self.state
        from workflows.compiler import forget_version

        forget_version(self.pk)

    @classmethod
    def from_db(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        instance = super().from_db(db, field_names, values)
        instance._loaded = {name: getattr(instance, name) for name in cls.FROZEN_FIELDS if name in instance.__dict__}
        instance._loaded_state = instance.__dict__.get("state")
        return instance

    @transition(field=state, source=State.DRAFT, target=State.PUBLISHED)
    def publish(self) -> None:
        self.published_at = timezone.now()

    @transition(field=state, source=State.PUBLISHED, target=State.RETIRED)
    def retire(self) -> None:
        self.retired_at = timezone.now()

    @property
    def is_editable(self) -> bool:
        return self.state == self.State.DRAFT


class Process(ConcurrentTransitionMixin, models.Model):
    """One run of a workflow version about one business object."""

    class State(models.TextChoices):
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        CANCELLED = "cancelled", _("Cancelled")
        SUSPENDED = "suspended", _("Suspended")

    # Indexed by wf_process_def_state (definition, state).
    definition = models.ForeignKey(
        WorkflowDefinition, on_delete=models.PROTECT, related_name="processes", db_index=False
    )
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="processes")
    state = FSMField(default=State.RUNNING, choices=State.choices, protected=True)
    # Not indexed: a step change then updates the row in place (a HOT update, no index entries).
    current_step = models.CharField(max_length=100, blank=True)
    step_seq = models.PositiveIntegerField(default=0, help_text="Counts step entries; tokens timers and jobs.")
    step_entered_at = models.DateTimeField(null=True, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    content_type = models.ForeignKey(  # indexed by wf_process_object (content_type, object_id)
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    business_object = GenericForeignKey("content_type", "object_id")
    title = models.CharField(max_length=200, blank=True)
    scope_carpark_id = models.IntegerField(null=True, blank=True, db_index=True)
    waiting_for = models.CharField(max_length=100, blank=True, help_text="The message a wait step expects.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    parent_step_seq = models.PositiveIntegerField(null=True, blank=True)
    result = models.CharField(max_length=100, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="started_processes"
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    incident_open = models.BooleanField(default=False, db_index=True)
    incident_step = models.CharField(max_length=100, blank=True)
    incident_error = models.TextField(blank=True)
    incident_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["content_type", "object_id"], name="wf_process_object"),
            models.Index(fields=["definition", "state"], name="wf_process_def_state"),
            models.Index(fields=["state"], name="wf_process_state"),
        ]

    def __str__(self) -> str:
        return f"{self.definition.name} #{self.pk}" + (f" – {self.title}" if self.title else "")

    @transition(field=state, source=State.RUNNING, target=State.COMPLETED)
    def complete(self, result: str = "") -> None:
        self.result = result
        self.ended_at = timezone.now()

    @transition(field=state, source=[State.RUNNING, State.SUSPENDED], target=State.CANCELLED)
    def cancel(self) -> None:
        self.ended_at = timezone.now()
        self.waiting_for = ""

    @transition(field=state, source=State.RUNNING, target=State.SUSPENDED)
    def suspend(self) -> None:
        pass

    @transition(field=state, source=State.SUSPENDED, target=State.RUNNING)
    def resume(self) -> None:
        pass

    @property
    def is_finished(self) -> bool:
        return self.state in (self.State.COMPLETED, self.State.CANCELLED)

    @property
    def graph(self):  # type: ignore[no-untyped-def]
        from workflows.compiler import graph_for_version

        return graph_for_version(self.version_id)

    @property
    def current_step_spec(self) -> dict[str, Any] | None:
        return self.graph.steps.get(self.current_step) if self.current_step else None

    @property
    def current_step_label(self) -> str:
        """The name of the step the process is at, as a person reads it ("" when it is at none)."""
        if not self.current_step:
            return ""
        from workflows.compiler import step_label

        return step_label(self.current_step, (self.current_step_spec or {}).get("name"))

    @property
    def duration(self):  # type: ignore[no-untyped-def]
        return (self.ended_at or timezone.now()) - self.started_at


class Task(ConcurrentTransitionMixin, models.Model):
    """A work item for a role: open → claimed → completed, or escalated / cancelled."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        CLAIMED = "claimed", _("Claimed")
        COMPLETED = "completed", _("Completed")
        ESCALATED = "escalated", _("Escalated")
        CANCELLED = "cancelled", _("Cancelled")

    class Priority(models.IntegerChoices):
        LOW = 1, _("Low")
        NORMAL = 2, _("Normal")
        HIGH = 3, _("High")
        URGENT = 4, _("Urgent")

    ACTIVE_STATES = (State.OPEN, State.CLAIMED)

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="tasks")
    step_id = models.CharField(max_length=100)
    step_seq = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    role = models.CharField(max_length=150)
    scope_carpark_id = models.IntegerField(null=True, blank=True, db_index=True)
    state = FSMField(default=State.OPEN, choices=State.choices, protected=True)  # wf_task_state_role
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_tasks"
    )
    due_at = models.DateTimeField(null=True, blank=True)  # wf_task_active_due (open and claimed tasks)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="escalated_to"
    )
    outcome = models.CharField(max_length=100, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    comment = models.TextField(blank=True)
    # Who kept the entries in ``inputs`` when handing the task on (escalate, delegate, release):
    # {"by": user id, "by_name": name, "action": "escalate" | "delegate" | "release", "at": ISO time,
    # "comment": the comment typed so far}. Empty when nobody handed entries on.
    draft = models.JSONField(default=dict, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "created_at", "id"]
        indexes = [
            models.Index(fields=["state", "role"], name="wf_task_state_role"),
            # The basket reads active tasks (a small share of all) by role and car park, by
            # assignee and by due time, and a user's completed tasks newest first.
            models.Index(
                fields=["role", "scope_carpark_id", "due_at"],
                name="wf_task_active_role_scope",
                condition=models.Q(state__in=["open", "claimed"]),
            ),
            models.Index(
                fields=["assignee", "due_at"],
                name="wf_task_active_assignee",
                condition=models.Q(state__in=["open", "claimed"]),
            ),
            models.Index(
                fields=["due_at", "id"], name="wf_task_active_due", condition=models.Q(state__in=["open", "claimed"])
            ),
            models.Index(
                fields=["completed_by", "-completed_at"],
                name="wf_task_done_by",
                condition=models.Q(state="completed"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    # Declared transitions (the services run them as conditional UPDATEs with these sources).
    @transition(field=state, source=State.OPEN, target=State.CLAIMED)
    def claim(self) -> None:
        pass

    @transition(field=state, source=State.CLAIMED, target=State.OPEN)
    def release(self) -> None:
        pass

    @transition(field=state, source=[State.OPEN, State.CLAIMED], target=State.COMPLETED)
    def complete(self) -> None:
        pass

    @transition(field=state, source=[State.OPEN, State.CLAIMED], target=State.ESCALATED)
    def escalate(self) -> None:
        pass

    @transition(field=state, source=[State.OPEN, State.CLAIMED], target=State.CANCELLED)
    def cancel(self) -> None:
        pass

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def is_overdue(self) -> bool:
        return bool(self.due_at and self.is_active and self.due_at < timezone.now())

    @property
    def step(self) -> dict[str, Any]:
        """The step's compiled spec: inputs, outcomes, instructions, escalation."""
        from workflows.compiler import graph_for_version

        return graph_for_version(self.process.version_id).step(self.step_id)

    @property
    def input_fields(self) -> list[dict[str, Any]]:
        return self.step.get("inputs", [])

    @property
    def outcome_names(self) -> list[str]:
        return list(self.step.get("outcomes", {}))


class ProcessEvent(models.Model):
    """Append-only history of a process."""

    class Kind(models.TextChoices):
        PROCESS_STARTED = "process_started", _("Process started")
        PROCESS_COMPLETED = "process_completed", _("Process completed")
        PROCESS_CANCELLED = "process_cancelled", _("Process cancelled")
        PROCESS_SUSPENDED = "process_suspended", _("Process suspended")
        PROCESS_RESUMED = "process_resumed", _("Process resumed")
        PROCESS_MIGRATED = "process_migrated", _("Process migrated")
        STEP_ENTERED = "step_entered", _("Step entered")
        STEP_LEFT = "step_left", _("Step left")
        DECISION = "decision", _("Decision taken")
        TASK_CREATED = "task_created", _("Task created")
        TASK_CLAIMED = "task_claimed", _("Task claimed")
        TASK_RELEASED = "task_released", _("Task released")
        TASK_DELEGATED = "task_delegated", _("Task delegated")
        TASK_ESCALATED = "task_escalated", _("Task escalated")
        TASK_COMPLETED = "task_completed", _("Task completed")
        TASK_CANCELLED = "task_cancelled", _("Task cancelled")
        SYSTEM_QUEUED = "system_queued", _("System step queued")
        SYSTEM_ATTEMPT = "system_attempt", _("System step attempt")
        INCIDENT_OPENED = "incident_opened", _("Incident opened")
        INCIDENT_RETRIED = "incident_retried", _("Incident retried")
        MESSAGE_RECEIVED = "message_received", _("Message received")
        TIMER_FIRED = "timer_fired", _("Timer fired")
        VARIABLES_CHANGED = "variables_changed", _("Variables changed")
        SUBPROCESS_STARTED = "subprocess_started", _("Sub-process started")

    # Indexed by wf_event_process_at (process, at) and mon_event_kind_at (kind, at).
    # No foreign-key constraints in the database on this append-only table (as in other engines'
    # history tables): only the engine writes it, always about rows of the same transaction, and
    # the constraints' checks were ~50 extra queries per process. Deletes still cascade (Django).
    process = models.ForeignKey(
        Process, on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=40, choices=Kind.choices)
    step_id = models.CharField(max_length=100, blank=True)
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="events", db_constraint=False
    )
    actor = models.ForeignKey(  # not indexed: nothing looks events up by actor
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)
    duration_ms = models.BigIntegerField(null=True, blank=True, help_text="For step_left, task_completed, attempts.")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["process", "at"], name="wf_event_process_at")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.step_id}".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("process history is append-only")
        super().save(*args, **kwargs)


class Timer(models.Model):
    """A due time in the database, fired by the beat tick (SELECT … FOR UPDATE SKIP LOCKED)."""

    class Kind(models.TextChoices):
        ESCALATION = "escalation", _("Escalation")
        WAIT = "wait", _("Wait")
        MESSAGE_TIMEOUT = "message_timeout", _("Message timeout")
        TASK_TIMEOUT = "task_timeout", _("Task timeout")
        RETRY = "retry", _("System-step retry")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        FIRED = "fired", _("Fired")
        CANCELLED = "cancelled", _("Cancelled")

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="timers")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="timers")
    job = models.ForeignKey("SystemJob", null=True, blank=True, on_delete=models.CASCADE, related_name="timers")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    step_id = models.CharField(max_length=100)
    step_seq = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["state", "due_at"], name="wf_timer_state_due")]

    def __str__(self) -> str:
        return gettext("%(kind)s timer #%(number)s due %(when)s") % {
            "kind": self.get_kind_display(),
            "number": self.pk,
            "when": f"{self.due_at:%Y-%m-%d %H:%M}",
        }


class SystemJob(models.Model):
    """One execution of a system step (with its attempts), keyed for idempotency."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed (incident)")
        CANCELLED = "cancelled", _("Cancelled")

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="jobs")
    step_id = models.CharField(max_length=100)
    step_seq = models.PositiveIntegerField(default=0)
    task_name = models.CharField(max_length=150)
    idempotency_key = models.CharField(max_length=200)  # unique: wf_job_idempotency_key
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    backoff_seconds = models.FloatField(default=30)
    timeout_seconds = models.FloatField(default=300)
    run_after = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="wf_job_idempotency_key")]
        indexes = [models.Index(fields=["state"], name="wf_job_state")]

    def __str__(self) -> str:
        return f"{self.task_name} for process #{self.process_id} ({self.state})"


class Absence(models.Model):
    """A person away for a period: tasks routed to them (delegated, reassigned) go to the substitute."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="absences")
    substitute = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="substitutions")
    starts_on = models.DateField()
    ends_on = models.DateField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_on", "id"]
        indexes = [models.Index(fields=["user", "ends_on"], name="wf_absence_user_end")]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")), name="wf_absence_period"),
            models.CheckConstraint(condition=~models.Q(user=models.F("substitute")), name="wf_absence_not_self"),
        ]

    def __str__(self) -> str:
        return gettext("%(person)s away %(start)s–%(end)s, substitute %(substitute)s") % {
            "person": self.user,
            "start": self.starts_on,
            "end": self.ends_on,
            "substitute": self.substitute,
        }

    def covers(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


class BusinessEvent(models.Model):
    """A business event an app emitted (see workflows.events), and what it started.

    ``event_id`` is the emitter's idempotency key: emitting the same id twice records and starts
    once (a unique constraint, so two concurrent emitters are settled by the database). An event
    that matched no workflow, or whose matching failed, stays here for an admin to replay.
    """

    class State(models.TextChoices):
        STARTED = "started", _("Process started")
        UNMATCHED = "unmatched", _("No workflow matched")
        INCIDENT = "incident", _("Incident")
        DISMISSED = "dismissed", _("Dismissed")

    event_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=100, db_index=True)
    schema_version = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField(default=dict, blank=True)
    content_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    business_object = GenericForeignKey("content_type", "object_id")
    state = models.CharField(max_length=12, choices=State.choices, db_index=True)
    process = models.OneToOneField(
        Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="start_event"
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    emitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    emitted_at = models.DateTimeField(default=timezone.now, db_index=True)
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-emitted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"

    @property
    def needs_attention(self) -> bool:
        return self.state in (self.State.UNMATCHED, self.State.INCIDENT)


class StartBinding(models.Model):
    """A published version's message start: the event that starts it, its condition and priority.

    Only published versions have rows (publishing writes them, retiring deletes them), so the
    bindings in force are one indexed look-up. The unique constraint is the database's word on a
    tie: two workflows that would always match together cannot both be published.
    """

    version = models.OneToOneField(WorkflowVersion, on_delete=models.CASCADE, related_name="start_binding")
    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=100)
    condition = models.CharField(max_length=1000, blank=True)
    priority = models.SmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "condition", "priority"], name="wf_start_binding_no_tie")
        ]
        indexes = [models.Index(fields=["event"], name="wf_start_binding_event")]

    def __str__(self) -> str:
        return f"{self.event} → {self.definition_id}"


class ProcessEventArchive(models.Model):
    """History of processes that finished before a retention date, moved out of ``ProcessEvent``.

    ``manage.py history_archive --before DATE`` moves the events of completed and cancelled
    processes here in short batches (see ``workflows.archive``): same columns, same ids, so a row is
    in exactly one of the two tables and readers that need an archived process's history (the
    process page, the XES export, monitoring's daily figures) read both. The live table then holds
    the running processes and the recent past only, and its time-range reads stay small.
    """

    Kind = ProcessEvent.Kind

    id = models.BigIntegerField(primary_key=True)  # the id the event had in ProcessEvent
    process = models.ForeignKey(
        Process, on_delete=models.CASCADE, related_name="archived_events", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=40, choices=ProcessEvent.Kind.choices)
    step_id = models.CharField(max_length=100, blank=True)
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    at = models.DateTimeField(db_index=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["process", "at"], name="wf_eventarch_process_at")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.step_id}".strip()
