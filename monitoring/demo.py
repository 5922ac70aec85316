"""Demo data of monitoring: default alert rules, statement subscriptions for the demo users, and a
month of finished processes (``monitoring.demo_history``) so the dashboard has a past to show.

Idempotent: rules are matched by name and subscriptions by (user, frequency); running it twice
changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts import roles
from monitoring.models import AlertRule, StatementSubscription

Kind = AlertRule.Kind
DEFAULT_RULES = [
    # (name, kind, role, threshold, notify role)
    ("Back-office agents: more than 5 overdue tasks", Kind.OVERDUE_TASKS, roles.AGENT, "5", roles.SUPERVISOR),
    ("Supervisors: more than 3 overdue tasks", Kind.OVERDUE_TASKS, roles.SUPERVISOR, "3", roles.ADMINISTRATOR),
    ("A process has an incident", Kind.INCIDENTS, "", "0", roles.WORKFLOW_ADMIN),
    ("A CPMS sync failed", Kind.CPMS_SYNC_FAILED, "", "0", roles.ADMINISTRATOR),
    ("Card payment failures above 20 % today", Kind.CARD_FAILURE_RATE, "", "20", roles.FINANCE),
    ("No invoicing run by the 3rd of the month", Kind.NO_INVOICING_RUN, "", "3", roles.FINANCE),
    ("Unusual number of started processes", Kind.VOLUME_ANOMALY, "", "3.5", roles.SUPERVISOR),
    ("Unusual step durations", Kind.DURATION_ANOMALY, "", "3.5", roles.WORKFLOW_ADMIN),
]
DEMO_SUBSCRIPTIONS = {
    "admin": ["daily", "weekly", "monthly"],
    "supervisor": ["daily", "weekly"],
    "wfadmin": ["weekly"],
    "finance": ["weekly", "monthly"],
}


@transaction.atomic
def load(stdout: Any) -> None:
    rules = 0
    for name, kind, role, threshold, notify in DEFAULT_RULES:
        _, created = AlertRule.objects.get_or_create(
            name=name,
            defaults={"kind": kind, "role": role, "threshold": Decimal(threshold), "notify_role": notify},
        )
        rules += int(created)
    users = get_user_model().objects.in_bulk(list(DEMO_SUBSCRIPTIONS), field_name="username")
    subscriptions = 0
    for username, frequencies in DEMO_SUBSCRIPTIONS.items():
        user = users.get(username)
        if user is None:
            continue
        for frequency in frequencies:
            subscriptions += int(StatementSubscription.objects.get_or_create(user=user, frequency=frequency)[1])
    from monitoring import demo_history

    history = demo_history.load()
    stdout.write(
        f"monitoring: {rules} new alert rules, {subscriptions} new statement subscriptions, "
        f"{history} finished processes of demo history over the past 30 days\n"
    )
