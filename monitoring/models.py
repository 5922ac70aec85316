"""Monitoring's own data: pre-aggregated daily figures, alert rules and their events, statements.

Everything here is derived from the engine's append-only history (``workflows.ProcessEvent``) and
from the billing and connect tables; nothing in another app is ever written from here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from accounts import roles


class AggregatedDay(models.Model):
    """Marks a calendar day (in the portal's time zone) whose DailyStepStat rows are complete."""

    day = models.DateField(unique=True)
    events = models.PositiveIntegerField(default=0, help_text="History events of the day that were read.")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day} ({self.events} events)"


class DailyStepStat(models.Model):
    """Figures of one day for one step of one workflow version in one car park.

    ``step_id == ""`` holds the process-level counts (started, completed, cancelled). Durations are
    sums in milliseconds so that averages over any range of days stay exact.
    """

    day = models.DateField()
    definition = models.ForeignKey("workflows.WorkflowDefinition", on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.CASCADE, related_name="+")
    step_id = models.CharField(max_length=100, blank=True)
    carpark_id = models.IntegerField(default=0, help_text="The process's car park; 0 when it has none.")
    started = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    entered = models.PositiveIntegerField(default=0)
    reentered = models.PositiveIntegerField(default=0, help_text="Entries into a step the process had entered before.")
    left = models.PositiveIntegerField(default=0)
    duration_ms_sum = models.BigIntegerField(default=0)
    duration_ms_max = models.BigIntegerField(default=0)
    tasks_created = models.PositiveIntegerField(default=0)
    tasks_completed = models.PositiveIntegerField(default=0)
    escalations = models.PositiveIntegerField(default=0)
    incidents = models.PositiveIntegerField(default=0)
    sla_due = models.PositiveIntegerField(default=0, help_text="Completed tasks that had a due time.")
    sla_met = models.PositiveIntegerField(default=0, help_text="… of which completed by their due time.")
    wait_ms_sum = models.BigIntegerField(default=0, help_text="Task created → first claimed (or completed).")
    work_ms_sum = models.BigIntegerField(default=0, help_text="Task first claimed → completed.")

    class Meta:
        ordering = ["day", "definition_id", "step_id"]
        constraints = [
            models.UniqueConstraint(fields=["day", "version", "step_id", "carpark_id"], name="mon_daily_step_unique")
        ]
        indexes = [
            models.Index(fields=["day", "definition"], name="mon_daily_day_def"),
            models.Index(fields=["definition", "day"], name="mon_daily_def_day"),
            models.Index(fields=["version", "day"], name="mon_daily_version_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.version_id}:{self.step_id or '(process)'}"


class DailyWorkflowStat(models.Model):
    """The same figures summed over the steps: one row per day, workflow and car park.

    The dashboard and the statements read only per-workflow and per-day totals; this roll-up keeps
    a year of them to a few tens of thousands of rows however many steps and versions there are.
    """

    day = models.DateField()
    definition = models.ForeignKey("workflows.WorkflowDefinition", on_delete=models.CASCADE, related_name="+")
    carpark_id = models.IntegerField(default=0, help_text="The process's car park; 0 when it has none.")
    started = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    entered = models.PositiveIntegerField(default=0)
    reentered = models.PositiveIntegerField(default=0)
    left = models.PositiveIntegerField(default=0)
    duration_ms_sum = models.BigIntegerField(default=0)
    duration_ms_max = models.BigIntegerField(default=0)
    tasks_created = models.PositiveIntegerField(default=0)
    tasks_completed = models.PositiveIntegerField(default=0)
    escalations = models.PositiveIntegerField(default=0)
    incidents = models.PositiveIntegerField(default=0)
    sla_due = models.PositiveIntegerField(default=0)
    sla_met = models.PositiveIntegerField(default=0)
    wait_ms_sum = models.BigIntegerField(default=0)
    work_ms_sum = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["day", "definition_id"]
        constraints = [
            models.UniqueConstraint(fields=["day", "definition", "carpark_id"], name="mon_daily_workflow_unique")
        ]
        indexes = [models.Index(fields=["definition", "day"], name="mon_dailywf_def_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.definition_id}"


class AlertRule(models.Model):
    """A condition an administrator wants to hear about, evaluated by the beat every few minutes."""

    class Kind(models.TextChoices):
        OVERDUE_TASKS = "overdue_tasks", _("Overdue tasks of a role above N")
        INCIDENTS = "incidents", _("Open incidents above N")
        CPMS_SYNC_FAILED = "cpms_sync_failed", _("A CPMS sync failed")
        CARD_FAILURE_RATE = "card_failure_rate", _("Card payment failure rate today above X %")
        NO_INVOICING_RUN = "no_invoicing_run", _("No invoicing run this month by day N")
        VOLUME_ANOMALY = "volume_anomaly", _("Unusual number of started processes (anomaly)")
        DURATION_ANOMALY = "duration_anomaly", _("Unusual step durations (anomaly)")

    HELP = {
        Kind.OVERDUE_TASKS: _("Threshold N: fires when more than N active tasks of the role are past their due time."),
        Kind.INCIDENTS: _("Threshold N (usually 0): fires when more than N processes have an open incident."),
        Kind.CPMS_SYNC_FAILED: _("Fires per CPMS connection whose latest sync run failed; clears when one succeeds."),
        Kind.CARD_FAILURE_RATE: _("Threshold X: fires when more than X % of today's card charges failed."),
        Kind.NO_INVOICING_RUN: _("Threshold N: fires after day N of the month while no invoicing run has finished."),
        Kind.VOLUME_ANOMALY: _(
            "Threshold: robust z-score (default 3.5) of yesterday's started processes per "
            "workflow against the previous 28 days."
        ),
        Kind.DURATION_ANOMALY: _(
            "Threshold: robust z-score (default 3.5) of yesterday's average step duration against the previous 28 days."
        ),
    }

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    role = models.CharField(
        max_length=150, blank=True, choices=[(r, r) for r in roles.ALL_ROLES], help_text=_("For overdue tasks.")
    )
    threshold = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    notify_role = models.CharField(
        max_length=150,
        default=roles.ADMINISTRATOR,
        choices=[(r, r) for r in roles.ALL_ROLES],
        help_text=_("Everyone with this role is notified."),
    )
    send_email = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertEvent(models.Model):
    """One occurrence of a rule's condition: opened once, kept while it holds, cleared when it stops."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    key = models.CharField(max_length=200, help_text="Which condition of the rule (a role, a connection, …).")
    message = models.TextField()
    value = models.FloatField(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notified_to = models.JSONField(default=list, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "key"], condition=Q(cleared_at__isnull=True), name="mon_alert_one_open_per_condition"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule.name}: {self.text}"

    @property
    def text(self) -> str:
        """The alert's sentence in the active language (``message`` stores its code and facts)."""
        from monitoring.alert_messages import alert_text

        return alert_text(self.message)

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class StatementSubscription(models.Model):
    class Frequency(models.TextChoices):
        DAILY = "daily", _("Daily")
        WEEKLY = "weekly", _("Weekly")
        MONTHLY = "monthly", _("Monthly")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="statement_subscriptions")
    frequency = models.CharField(max_length=10, choices=Frequency.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user_id", "frequency"]
        constraints = [models.UniqueConstraint(fields=["user", "frequency"], name="mon_subscription_unique")]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_frequency_display()}"


class Statement(models.Model):
    """A statement built for one period (inclusive dates), its figures, PDF and who received it."""

    Frequency = StatementSubscription.Frequency

    frequency = models.CharField(max_length=10, choices=Frequency.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    figures = models.JSONField(default=dict)
    pdf = models.BinaryField(editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    build_ms = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    # Who built it on demand (empty: the scheduled build).
    built_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-period_start", "frequency"]
        constraints = [
            models.UniqueConstraint(fields=["frequency", "period_start"], name="mon_statement_unique_period")
        ]

    def __str__(self) -> str:
        return f"{self.title} {self.period_label}"

    @property
    def title(self) -> str:
        """'Weekly statement' in the active language (a whole phrase: German inflects the adjective)."""
        titles = {
            self.Frequency.DAILY: _("Daily statement"),
            self.Frequency.WEEKLY: _("Weekly statement"),
            self.Frequency.MONTHLY: _("Monthly statement"),
        }
        return str(titles.get(self.frequency, self.get_frequency_display()))

    @property
    def period_label(self) -> str:
        if self.period_start == self.period_end:
            return date_format(self.period_start, "SHORT_DATE_FORMAT")
        start, end = (
            date_format(self.period_start, "SHORT_DATE_FORMAT"),
            date_format(self.period_end, "SHORT_DATE_FORMAT"),
        )
        return f"{start} – {end}"

    @property
    def filename(self) -> str:
        return f"parkinghq-{self.frequency}-statement-{self.period_start:%Y-%m-%d}.pdf"


class StatementBuild(models.Model):
    """A statement build asked for on demand: it runs as a job, and its page polls the progress."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    frequency = models.CharField(max_length=10, choices=StatementSubscription.Frequency.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    steps_total = models.PositiveSmallIntegerField(default=0)
    steps_done = models.PositiveSmallIntegerField(default=0)
    step_label = models.CharField(max_length=200, blank=True, help_text="What the build is doing now.")
    error = models.TextField(blank=True)
    statement = models.ForeignKey(Statement, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_frequency_display()} {self.period_start:%Y-%m-%d}: {self.get_state_display()}"
