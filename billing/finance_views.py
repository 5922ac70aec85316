"""Finance's invoicing runs (preview, confirmation, cancellation) and the dunning overview.

A run Finance starts is a preview until someone confirms it; nothing is emailed or charged before.
The dunning overview lists every open dunning for Finance, Supervisors and Administrators (all car
parks: Finance by role, Supervisors and Administrators see every car park anyway).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import FINANCE, SUPERVISOR, role_required
from billing import selectors, services
from billing.finance_forms import DunningFilterForm, RunConfirmForm, RunPeriodForm
from billing.models import InvoicingRun
from parkinghq.csv_cells import csv_writer
from parkinghq.list_search import search_data

PAGE_SIZE = 25
EXPORT_BATCH = 500


# --- invoicing runs ------------------------------------------------------------------------------


@role_required(FINANCE)
@require_http_methods(["GET", "POST"])
def run_create(request: HttpRequest) -> HttpResponse:
    """Ask for a run: the month is checked at its field, then a preview is worked out (nothing billed)."""
    form = RunPeriodForm(request.POST or None, initial={"period": f"{timezone.localdate():%Y-%m}"})
    if request.method == "POST" and form.is_valid():
        try:
            run = services.invoicing_run_preview_create(period_start=form.cleaned_data["period"], user=request.user)
        except services.BillingError as exc:
            form.add_error("period", str(exc))
        else:
            messages.info(request, _("Check the preview, then confirm the run. Nothing is billed before you do."))
            return redirect("billing:run-detail", pk=run.pk)
    return render(
        request,
        "billing/run_create.html",
        {"form": form, "runs": InvoicingRun.objects.select_related("started_by")[:10]},
        status=400 if form.errors else 200,
    )


def _run_context(run: InvoicingRun, confirm_form: RunConfirmForm | None = None) -> dict[str, Any]:
    may_confirm, refusal = run.state == InvoicingRun.State.PREVIEW, ""
    if may_confirm:
        try:
            services.invoicing_run_period_check(period_start=run.period_start)
        except services.BillingError as exc:
            may_confirm, refusal = False, str(exc)
    preview = run.preview or {}
    try:
        preview_at = datetime.fromisoformat(preview["computed_at"])
    except (KeyError, TypeError, ValueError):
        preview_at = None
    return {
        "run": run,
        "preview": preview,
        "preview_at": preview_at,
        "confirm_form": confirm_form or RunConfirmForm(),
        "may_confirm": may_confirm,
        "confirm_refusal": refusal,
        "cancellable": services.invoicing_run_cancellable(run),
    }


@role_required(FINANCE)
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(InvoicingRun.objects.select_related("started_by", "confirmed_by"), pk=pk)
    if request.htmx:
        return render(request, "billing/_run_progress.html", {"run": run})
    return render(request, "billing/run_detail.html", _run_context(run))


@role_required(FINANCE)
@require_POST
def run_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(InvoicingRun, pk=pk)
    form = RunConfirmForm(request.POST)
    if not form.is_valid():
        return render(request, "billing/run_detail.html", _run_context(run, form), status=400)
    try:
        services.invoicing_run_confirm(run=run, user=request.user)
    except services.BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("The invoicing run for %(month)s is confirmed and queued.") % {"month": f"{run.period_start:%m/%Y}"},
        )
    return redirect("billing:run-detail", pk=pk)


@role_required(FINANCE)
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(InvoicingRun, pk=pk)
    try:
        run = services.invoicing_run_cancel(run=run, user=request.user)
    except services.BillingError as exc:
        messages.error(request, str(exc))
    else:
        deleted = run.preview.get("drafts_deleted", 0)
        text = _("The invoicing run for %(month)s is cancelled.") % {"month": f"{run.period_start:%m/%Y}"}
        if deleted:
            text += " " + ngettext(
                "Its %(count)s draft invoice was deleted.", "Its %(count)s draft invoices were deleted.", deleted
            ) % {"count": deleted}
        messages.success(request, text)
    return redirect("billing:run-detail", pk=pk)


@role_required(FINANCE)
@require_POST
def run_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(InvoicingRun, pk=pk)
    try:
        services.invoicing_run_preview_refresh(run=run)
    except services.BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, _("The preview is up to date."))
    return redirect("billing:run-detail", pk=pk)


# --- the dunning overview ------------------------------------------------------------------------


def _dunning_filtered(request: HttpRequest) -> tuple[DunningFilterForm, Any]:
    base = selectors.open_dunnings()
    form = DunningFilterForm(search_data(request.GET, "dunning_search"), levels=selectors.dunning_levels(base))
    if form.is_bound:
        form.is_valid()  # errors show at their fields; the valid filters still apply
    filters = form.filters() if form.is_bound else selectors.DunningFilters()
    return form, selectors.open_dunnings(filters=filters)


@role_required(FINANCE, SUPERVISOR)
@require_GET
def dunning_list(request: HttpRequest) -> HttpResponse:
    form, dunnings = _dunning_filtered(request)
    page = Paginator(dunnings, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = selectors.dunning_rows(list(page.object_list))
    filtered = any(request.GET.get(key) for key in ("dunning_search", "q", "level", "age", "amount_min"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "billing/dunning_list.html",
        {"form": form, "page": page, "rows": rows, "filtered": filtered, "export_query": query.urlencode()},
    )


EXPORT_COLUMNS = [
    "Invoice",
    "Customer",
    "Customer email",
    "Amount",
    "Currency",
    "Due date",
    "First failure",
    "Age (days)",
    "Days overdue",
    "Level",
    "Reminders sent",
    "Current step",
    "Next due",
    "Next",
    "Process",
]


class _Echo:
    def write(self, value: str) -> str:
        return value


def _export_lines(dunnings: Any):  # noqa: ANN202 - a generator of CSV lines
    writer = csv_writer(_Echo())
    yield "\ufeff" + writer.writerow(EXPORT_COLUMNS)
    ids = list(dunnings.values_list("pk", flat=True))
    order = {pk: index for index, pk in enumerate(ids)}
    for offset in range(0, len(ids), EXPORT_BATCH):
        batch = sorted(
            dunnings.filter(pk__in=ids[offset : offset + EXPORT_BATCH]), key=lambda invoice: order[invoice.pk]
        )
        for row in selectors.dunning_rows(batch):
            invoice = row.invoice
            yield writer.writerow(
                (
                    invoice.display_number,
                    invoice.customer.name,
                    invoice.customer.invoice_email,
                    invoice.gross_total,
                    invoice.currency,
                    invoice.due_date.isoformat() if invoice.due_date else "",
                    timezone.localtime(invoice.first_failure_at).strftime("%Y-%m-%d %H:%M")
                    if invoice.first_failure_at
                    else "",
                    row.age_days,
                    row.overdue_days if row.overdue_days is not None else "",
                    row.level,
                    row.reminders if row.reminders is not None else "",
                    row.step_name,
                    timezone.localtime(row.next_at).strftime("%Y-%m-%d %H:%M") if row.next_at else "",
                    row.next_what,
                    row.process.pk if row.process else "",
                )
            )


@role_required(FINANCE, SUPERVISOR)
@require_GET
def dunning_export(request: HttpRequest) -> HttpResponse:
    """The filtered rows (all pages) as CSV, safe to open in a spreadsheet."""
    _, dunnings = _dunning_filtered(request)
    response = StreamingHttpResponse(_export_lines(dunnings), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="dunning-{timezone.localdate():%Y-%m-%d}.csv"'
    return response
