"""Daily, weekly and monthly statements: figures of a closed period, an HTML email and a PDF.

``statement_build`` stores the figures and the PDF (one Statement per frequency and period, built
again when asked twice); ``statement_send`` mails it to the subscribers once; ``statements_send_due``
is what the beat runs every morning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext_noop

from accounts import roles
from accounts.middleware import preferred_language
from monitoring.aggregation import aggregate_day
from monitoring.models import AggregatedDay, Statement, StatementSubscription
from monitoring.selectors import Scope, billing_figures, cpms_figures, per_workflow, totals
from parkinghq.emails import send_email

Frequency = StatementSubscription.Frequency
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one INFO line per layout step otherwise
SUBSCRIBER_ROLES = (roles.ADMINISTRATOR, roles.SUPERVISOR, roles.WORKFLOW_ADMIN, roles.FINANCE)


def period_for(frequency: str, today: date) -> tuple[date, date]:
    """The last closed period before ``today``: yesterday, last Monday–Sunday, or last month."""
    if frequency == Frequency.DAILY:
        day = today - timedelta(days=1)
        return day, day
    if frequency == Frequency.WEEKLY:
        end = today - timedelta(days=today.weekday() + 1)
        return end - timedelta(days=6), end
    if frequency == Frequency.MONTHLY:
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    raise ValueError(f"unknown frequency {frequency!r}")


def _plain(value: Any) -> Any:
    """Figures are stored as JSON: dates as ISO strings, decimals as strings with two places."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return value


# The steps of a build besides aggregating the days not stored yet (see ``statement_build_steps``).
# Their labels are stored in English and shown in the reader's language.
STEP_AGGREGATE = gettext_noop("Adding up the period's days")
STEP_WORKFLOWS = gettext_noop("Collecting the workflow figures")
STEP_BILLING = gettext_noop("Collecting the billing figures")
STEP_CPMS = gettext_noop("Collecting the CPMS figures")
STEP_PDF = gettext_noop("Rendering the PDF")
STEP_STORE = gettext_noop("Storing the statement")
FIXED_STEPS = (STEP_WORKFLOWS, STEP_BILLING, STEP_CPMS, STEP_PDF, STEP_STORE)
Step = Callable[[str], None]


def _no_step(label: str) -> None:
    pass


def _days_to_aggregate(day_from: date, day_to: date) -> list[date]:
    """The closed days of the period whose figures are not stored yet."""
    today = timezone.localdate()
    stored = set(AggregatedDay.objects.filter(day__gte=day_from, day__lte=day_to).values_list("day", flat=True))
    days, day = [], day_from
    while day <= day_to and day < today:
        if day not in stored:
            days.append(day)
        day += timedelta(days=1)
    return days


def statement_build_steps(day_from: date, day_to: date) -> int:
    """How many steps building the period's statement takes: one per day to add up, then the fixed ones."""
    return len(_days_to_aggregate(day_from, day_to)) + len(FIXED_STEPS)


def statement_figures(day_from: date, day_to: date, *, step: Step = _no_step) -> dict[str, Any]:
    """Everything a statement reports for the period (closed days are aggregated first if needed).

    ``step(label)`` is called as each step begins (a build job reports its progress with it).
    """
    for day in _days_to_aggregate(day_from, day_to):
        step(STEP_AGGREGATE)
        aggregate_day(day)
    scope = Scope(day_from=day_from, day_to=day_to)
    step(STEP_WORKFLOWS)
    workflows = per_workflow(scope)
    fields = (
        "definition",
        "key",
        "started",
        "completed",
        "cancelled",
        "tasks_created",
        "tasks_completed",
        "sla_due",
        "sla_met",
        "sla_percent",
        "escalations",
        "escalation_rate",
        "incidents",
        "reentered",
    )
    rows = [{k: r[k] for k in fields} for r in workflows if any(r[k] for k in ("started", "completed", "entered"))]
    step(STEP_BILLING)
    billing = billing_figures(day_from, day_to)
    step(STEP_CPMS)
    cpms = cpms_figures(day_from, day_to)
    return _plain(
        {
            "period_start": day_from,
            "period_end": day_to,
            "workflows": rows,
            "totals": totals(workflows),
            "billing": billing,
            "cpms": cpms,
        }
    )


@lru_cache(maxsize=1)
def _pdf_renderer() -> Any:
    """One FontConfiguration per process; fonts are the system's local ones (no network)."""
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


def _local_only(url: str, *args: Any, **kwargs: Any) -> dict:
    from weasyprint import default_url_fetcher

    if not url.startswith(("file:", "data:")):
        raise ValueError(f"statements load no remote resources ({url})")
    return default_url_fetcher(url, *args, **kwargs)


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML

    font_config = _pdf_renderer()
    return HTML(string=html, base_url=str(settings.BASE_DIR), url_fetcher=_local_only).write_pdf(
        font_config=font_config
    )


def statement_context(statement: Statement) -> dict[str, Any]:
    return {
        "statement": statement,
        "f": statement.figures,
        "title": statement.title,
        "generated_at": timezone.localtime(statement.created_at),
    }


def statement_build(*, frequency: str, day_from: date, day_to: date, step: Step = _no_step) -> Statement:
    """Compute the figures of the period and render the PDF; stores (or refreshes) the Statement.

    ``step(label)`` is called as each step begins (``statement_build_steps`` counts them).
    """
    started = time.monotonic()
    figures = statement_figures(day_from, day_to, step=step)
    statement = Statement.objects.filter(frequency=frequency, period_start=day_from).first() or Statement(
        frequency=frequency, period_start=day_from
    )
    statement.period_end = day_to
    statement.figures = figures
    statement.created_at = timezone.now()
    step(STEP_PDF)
    with translation.override(settings.LANGUAGE_CODE):  # the archived PDF is in the portal's language
        statement.pdf = render_pdf(render_to_string("monitoring/statement_pdf.html", statement_context(statement)))
    step(STEP_STORE)
    statement.build_ms = int((time.monotonic() - started) * 1000)
    statement.save()
    return statement


def statement_pdf(statement: Statement, language: str) -> bytes:
    """The statement's PDF in ``language``: the stored one for the portal's language, else rendered now."""
    if language == settings.LANGUAGE_CODE and statement.pdf:
        return bytes(statement.pdf)
    with translation.override(language):
        return render_pdf(render_to_string("monitoring/statement_pdf.html", statement_context(statement)))


def subscribers(frequency: str) -> list[Any]:
    subs = StatementSubscription.objects.filter(frequency=frequency, user__is_active=True).select_related("user")
    return [s.user for s in subs if s.user.email and roles.has_role(s.user, *SUBSCRIBER_ROLES)]


def statement_send(statement: Statement) -> int:
    """Email the statement (HTML with the PDF attached) to its subscribers, once. Returns how many."""
    with transaction.atomic():
        locked = Statement.objects.select_for_update().get(pk=statement.pk)
        if locked.sent_at is not None:
            return 0
        users = subscribers(locked.frequency)
        addresses = sorted({u.email for u in users})
        locked.sent_at = timezone.now()
        locked.recipients = addresses
        locked.save(update_fields=["sent_at", "recipients"])
        languages = {u.email: preferred_language(u) or settings.LANGUAGE_CODE for u in users}

        def deliver() -> None:
            pdfs: dict[str, bytes] = {}
            for address in addresses:  # one email each (in the person's language): recipients never see each other
                language = languages[address]
                if language not in pdfs:
                    pdfs[language] = statement_pdf(locked, language)
                with translation.override(language):
                    send_email(
                        template="monitoring_statement",
                        to=[address],
                        context=statement_context(locked),
                        attachments=[(locked.filename, pdfs[language], "application/pdf")],
                    )

        transaction.on_commit(deliver)
    statement.sent_at, statement.recipients = locked.sent_at, locked.recipients
    return len(addresses)


def statements_due(today: date) -> list[str]:
    due = [Frequency.DAILY]
    if today.weekday() == 0:
        due.append(Frequency.WEEKLY)
    if today.day == 1:
        due.append(Frequency.MONTHLY)
    return due


def statements_send_due(today: date | None = None) -> list[Statement]:
    """Build and send the statements whose period closed (idempotent: a sent one is not sent again)."""
    today = today or timezone.localdate()
    done = []
    for frequency in statements_due(today):
        day_from, day_to = period_for(frequency, today)
        existing = Statement.objects.filter(frequency=frequency, period_start=day_from, sent_at__isnull=False).first()
        if existing:
            continue
        statement = statement_build(frequency=frequency, day_from=day_from, day_to=day_to)
        statement_send(statement)
        done.append(statement)
    return done
