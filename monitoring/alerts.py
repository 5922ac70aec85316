"""Alert rules: what each kind checks, and the evaluation that opens, keeps and clears AlertEvents.

A rule yields the conditions that hold now, each under a key (a role, a CPMS connection, a
workflow). ``alerts_evaluate`` opens one AlertEvent per new key and notifies once (in-app list and
email), refreshes events whose condition still holds without notifying again, and clears events
whose condition stopped. The database settles concurrent evaluations: only one open event per
(rule, key) may exist (partial unique constraint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from accounts import roles
from accounts.middleware import preferred_language
from monitoring import anomalies
from monitoring.aggregation import summed
from monitoring.alert_messages import alert_message
from monitoring.models import AlertEvent, AlertRule
from monitoring.selectors import _model, percent
from parkinghq.emails import send_email
from workflows.models import Process, Task, WorkflowDefinition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    key: str
    message: str
    value: float | None = None


def _overdue_tasks(rule: AlertRule, now: Any) -> list[Condition]:
    tasks = Task.objects.filter(state__in=Task.ACTIVE_STATES, due_at__lt=now)
    if rule.role:
        tasks = tasks.filter(role=rule.role)
    count = tasks.count()
    limit = int(rule.threshold)
    if count <= limit:
        return []
    return [
        Condition(
            key=f"role:{rule.role or '*'}",
            message=alert_message("overdue_tasks", count=count, role=rule.role, limit=limit),
            value=count,
        )
    ]


def _incidents(rule: AlertRule, now: Any) -> list[Condition]:
    open_incidents = Process.objects.filter(incident_open=True).exclude(state=Process.State.CANCELLED)
    count = open_incidents.count()
    limit = int(rule.threshold)
    if count <= limit:
        return []
    steps = [
        [r["definition__name"], r["incident_step"], r["n"]]
        for r in open_incidents.values("definition__name", "incident_step").annotate(n=Count("id")).order_by("-n")[:3]
    ]
    return [
        Condition(
            key="incidents",
            message=alert_message("incidents", count=count, limit=limit, steps=steps),
            value=count,
        )
    ]


def _cpms_sync_failed(rule: AlertRule, now: Any) -> list[Condition]:
    sync_run = _model("connect.SyncRun")
    if sync_run is None:
        return []
    conditions = []
    # A partly succeeded run is finished too: below the connection's refusal threshold it clears the alert,
    # above it (an incident) it raises one.
    finished = sync_run.objects.filter(status__in=["succeeded", "partly", "failed"]).exclude(kind="test")
    pairs = finished.values_list("connection_id", "kind").order_by().distinct()
    for connection_id, kind in sorted(pairs):
        last = finished.filter(connection_id=connection_id, kind=kind).select_related("connection")
        last = last.order_by("-started_at", "-id").first()
        if last is None or not (last.status == "failed" or (last.status == "partly" and last.incident)):
            continue
        when = (last.finished_at or last.started_at).isoformat()
        facts = {"kind": last.kind, "connection": last.connection.name, "when": when}
        if last.status == "partly":
            details = last.details if isinstance(last.details, dict) else {}
            refused = details.get("refused_total", len(last.refused or []))
            message = alert_message(
                "cpms_sync_refused",
                **facts,
                refused=refused,
                percent=details.get("refused_percent", "?"),
                limit=str(last.connection.refused_alert_percent),
            )
        else:
            error = str((last.errors or [""])[-1])
            texts = last.details.get("texts") if isinstance(last.details, dict) else None
            entry = texts.get(error) if isinstance(texts, dict) else None  # a sentence of the portal's own
            message = alert_message("cpms_sync_failed", **facts, error=error, error_entry=entry)
        conditions.append(Condition(key=f"connection:{connection_id}:{kind}", message=message, value=1))
    return conditions


def _card_failure_rate(rule: AlertRule, now: Any) -> list[Condition]:
    payment = _model("billing.Payment")
    if payment is None:
        return []
    today = timezone.localdate(now)
    from monitoring.aggregation import day_bounds

    start, end = day_bounds(today)
    counts = payment.objects.filter(kind="charge", created_at__gte=start, created_at__lt=end).aggregate(
        failed=Count("id", filter=Q(status="failed")), succeeded=Count("id", filter=Q(status="succeeded"))
    )
    finished = counts["failed"] + counts["succeeded"]
    rate = percent(counts["failed"], finished)
    if rate is None or rate <= float(rule.threshold):
        return []
    return [
        Condition(
            key=f"day:{today.isoformat()}",
            message=alert_message(
                "card_failure_rate",
                failed=counts["failed"],
                finished=finished,
                rate=float(rate),
                limit=float(rule.threshold),
            ),
            value=rate,
        )
    ]


def _no_invoicing_run(rule: AlertRule, now: Any) -> list[Condition]:
    run = _model("billing.InvoicingRun")
    if run is None:
        return []
    today = timezone.localdate(now)
    if today.day <= int(rule.threshold):
        return []
    month_start = today.replace(day=1)
    done = (
        run.objects.filter(state="done", period_start__gte=month_start).exists()
        or run.objects.filter(state="done", created_at__date__gte=month_start).exists()
    )
    if done:
        return []
    return [
        Condition(
            key=f"month:{today:%Y-%m}",
            message=alert_message("no_invoicing_run", month=f"{today:%Y-%m}", day=int(rule.threshold)),
            value=0,
        )
    ]


def _series(field: str, day: date, definition_id: int) -> tuple[float | None, list[float]]:
    """Yesterday's value of a daily figure and the baseline days before it (per workflow)."""
    first = day - timedelta(days=anomalies.BASELINE_DAYS)
    rows = summed(("day",), first, day, definition_ids={definition_id})
    values = []
    for n in range(anomalies.BASELINE_DAYS + 1):
        d = first + timedelta(days=n)
        f = rows.get((d,), {})
        if field == "started":
            values.append(float(f.get("started", 0)))
        else:
            left = f.get("left", 0)
            values.append(f["duration_ms_sum"] / left if left else None)
    value = values[-1]
    baseline = [v for v in values[:-1] if v is not None]
    return value, baseline


def _anomalies(field: str) -> Callable[[AlertRule, Any], list[Condition]]:
    def check(rule: AlertRule, now: Any) -> list[Condition]:
        day = timezone.localdate(now) - timedelta(days=1)
        threshold = float(rule.threshold) or anomalies.DEFAULT_THRESHOLD
        conditions = []
        first = day - timedelta(days=anomalies.BASELINE_DAYS)
        active = summed(("definition_id",), first, day)
        for definition in WorkflowDefinition.objects.filter(pk__in=[k[0] for k in active]):
            value, baseline = _series(field, day, definition.pk)
            if value is None:
                continue
            if field == "started":
                found = anomalies.detect(value, baseline, threshold=threshold, min_spread=1.0)
            else:
                seconds = [v / 1000 for v in baseline]
                found = anomalies.detect(value / 1000, seconds, threshold=threshold, min_spread=1.0)
            if found is None:
                continue
            conditions.append(
                Condition(
                    key=f"{field}:{definition.key}:{day.isoformat()}",
                    message=alert_message(
                        "anomaly",
                        field=field,
                        workflow=definition.name,
                        day=day.isoformat(),
                        value=found.value,
                        median=found.median,
                        spread=found.spread,
                        days=anomalies.BASELINE_DAYS,
                        z=found.z,
                        threshold=found.threshold,
                    ),
                    value=round(found.z, 2),
                )
            )
        return conditions

    return check


CHECKS: dict[str, Callable[[AlertRule, Any], list[Condition]]] = {
    AlertRule.Kind.OVERDUE_TASKS: _overdue_tasks,
    AlertRule.Kind.INCIDENTS: _incidents,
    AlertRule.Kind.CPMS_SYNC_FAILED: _cpms_sync_failed,
    AlertRule.Kind.CARD_FAILURE_RATE: _card_failure_rate,
    AlertRule.Kind.NO_INVOICING_RUN: _no_invoicing_run,
    AlertRule.Kind.VOLUME_ANOMALY: _anomalies("started"),
    AlertRule.Kind.DURATION_ANOMALY: _anomalies("duration"),
}


def rule_conditions(rule: AlertRule, now: Any = None) -> list[Condition]:
    return CHECKS[rule.kind](rule, now or timezone.now())


def _in_app(users: list[Any], event: AlertEvent) -> None:
    """A notification in each person's portal inbox (the notifications app), when it is installed."""
    try:
        from notifications.models import Notification
        from notifications.services import notification_send
    except ImportError:  # the alert list page is the in-app view then
        return
    notification_send(
        users=users,
        kind=Notification.Kind.INFO,
        title=lambda: (gettext("Alert: %(name)s") % {"name": event.rule.name})[:200],
        body=lambda: event.text,  # each person's notification in their own language
        url=reverse("monitoring:alerts"),
    )


def _notify(event: AlertEvent) -> None:
    """Tell everyone with the rule's notify role (and the administrators): in-app, and by email after commit."""
    rule = event.rule
    users = list(roles.users_with_role(rule.notify_role))
    if rule.notify_role != roles.ADMINISTRATOR:
        users += [u for u in roles.users_with_role(roles.ADMINISTRATOR) if u not in users]
    addresses = sorted({u.email for u in users if u.email})
    AlertEvent.objects.filter(pk=event.pk).update(notified_at=timezone.now(), notified_to=addresses)
    _in_app(users, event)
    if rule.send_email and addresses:
        context = {"event": event, "rule": rule}
        by_language: dict[str, set[str]] = {}
        for user in users:
            if user.email:
                by_language.setdefault(preferred_language(user) or settings.LANGUAGE_CODE, set()).add(user.email)

        def deliver() -> None:
            for language, emails in sorted(by_language.items()):  # each person reads it in their language
                with translation.override(language):
                    send_email(template="monitoring_alert", to=sorted(emails), context=context)

        transaction.on_commit(deliver, robust=True)


def rule_evaluate(rule: AlertRule, now: Any = None) -> dict[str, int]:
    """Evaluate one rule: open (and notify) new conditions, refresh held ones, clear the ones gone."""
    now = now or timezone.now()
    try:
        conditions = {c.key: c for c in rule_conditions(rule, now)}
    except Exception:
        log.exception("alert rule %s could not be evaluated", rule.pk)
        return {"opened": 0, "held": 0, "cleared": 0}
    stats = {"opened": 0, "held": 0, "cleared": 0}
    with transaction.atomic():
        open_events = {e.key: e for e in AlertEvent.objects.select_for_update().filter(rule=rule, cleared_at=None)}
        for key, condition in conditions.items():
            event = open_events.get(key)
            if event is not None:
                event.message, event.value, event.last_seen_at = condition.message, condition.value, now
                event.save(update_fields=["message", "value", "last_seen_at"])
                stats["held"] += 1
                continue
            try:
                with transaction.atomic():
                    event = AlertEvent.objects.create(
                        rule=rule,
                        key=key,
                        message=condition.message,
                        value=condition.value,
                        opened_at=now,
                        last_seen_at=now,
                    )
            except IntegrityError:  # another evaluation opened it at the same moment
                continue
            _notify(event)
            stats["opened"] += 1
        gone = [e.pk for key, e in open_events.items() if key not in conditions]
        if gone:
            stats["cleared"] = AlertEvent.objects.filter(pk__in=gone, cleared_at=None).update(cleared_at=now)
        AlertRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now)
    return stats


def alerts_evaluate(now: Any = None) -> dict[str, int]:
    """Evaluate every active rule (the beat calls this every few minutes)."""
    total = {"opened": 0, "held": 0, "cleared": 0}
    for rule in AlertRule.objects.filter(is_active=True):
        for name, value in rule_evaluate(rule, now).items():
            total[name] += value
    # Events of rules that were switched off clear at once.
    AlertEvent.objects.filter(cleared_at=None, rule__is_active=False).update(cleared_at=now or timezone.now())
    return total


def alert_acknowledge(*, event: AlertEvent, user: Any) -> AlertEvent:
    if event.acknowledged_at is None:
        event.acknowledged_at, event.acknowledged_by = timezone.now(), user
        event.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return event
