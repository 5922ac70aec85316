"""Finance's bank-statement pages: the list with the upload, a statement's entries, one credit with its
manual match and ignore. Finance imports and matches; Supervisors (who get the escalated matching
tasks) may read them."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import FINANCE, SUPERVISOR, role_required, roles_allow
from billing import bank_statements
from billing.bank_forms import EntryFilterForm, EntryIgnoreForm, EntryMatchForm, InvoiceSearchForm, StatementUploadForm
from billing.models import BankEntry, BankStatement, Invoice

PAGE_SIZE = 25


def _statements_page(request: HttpRequest):  # noqa: ANN202 - a Page
    statements = BankStatement.objects.select_related("uploaded_by")
    return Paginator(statements, PAGE_SIZE).get_page(request.GET.get("page"))


@role_required(FINANCE, SUPERVISOR)
@require_GET
def statement_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "billing/bank_statement_list.html",
        {"page": _statements_page(request), "form": StatementUploadForm(), "queued": _queued_total()},
    )


def _queued_total() -> int:
    return BankEntry.objects.filter(status=BankEntry.Status.QUEUED, is_credit=True).count()


@role_required(FINANCE)
@require_http_methods(["GET", "POST"])
def statement_upload(request: HttpRequest) -> HttpResponse:
    """Import a camt file; a refusal is shown at the file field and nothing is booked."""
    form = StatementUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            statement = bank_statements.statement_import(data=upload.read(), file_name=upload.name, user=request.user)
        except bank_statements.StatementRefused as exc:
            form.add_error("file", str(exc))
        else:
            text = ngettext(
                "Statement %(id)s imported: %(credits)s credit, %(matched)s matched, %(queued)s to match by hand.",
                "Statement %(id)s imported: %(credits)s credits, %(matched)s matched, %(queued)s to match by hand.",
                statement.credits_count,
            ) % {
                "id": statement.statement_id,
                "credits": statement.credits_count,
                "matched": statement.matched_count,
                "queued": statement.queued_count,
            }
            messages.success(request, text)
            return redirect("billing:bank-statement-detail", pk=statement.pk)
    return render(
        request,
        "billing/bank_statement_list.html",
        {"page": _statements_page(request), "form": form, "queued": _queued_total(), "upload_open": True},
        status=400 if form.errors else 200,
    )


def _queue_tasks(entries: list[BankEntry]) -> dict[int, int]:
    """The open matching task of each queued entry (entry id → task id), one query."""
    from django.contrib.contenttypes.models import ContentType

    from workflows.models import Task

    ids = [entry.pk for entry in entries if entry.status == BankEntry.Status.QUEUED]
    if not ids:
        return {}
    tasks = Task.objects.filter(
        process__content_type=ContentType.objects.get_for_model(BankEntry),
        process__object_id__in=ids,
        state__in=[Task.State.OPEN, Task.State.CLAIMED],
    ).values_list("process__object_id", "pk")
    return {int(object_id): pk for object_id, pk in tasks}


@role_required(FINANCE, SUPERVISOR)
@require_GET
def statement_detail(request: HttpRequest, pk: int) -> HttpResponse:
    statement = get_object_or_404(BankStatement.objects.select_related("uploaded_by"), pk=pk)
    form = EntryFilterForm(request.GET or None)
    entries = statement.entries.select_related("invoice")
    status = form.cleaned_data.get("status") if form.is_bound and form.is_valid() else ""
    if status:
        entries = entries.filter(status=status)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    tasks = _queue_tasks(rows)
    for row in rows:
        row.task_id = tasks.get(row.pk)
    counts = dict(statement.entries.order_by().values("status").annotate(n=Count("pk")).values_list("status", "n"))
    return render(
        request,
        "billing/bank_statement_detail.html",
        {"statement": statement, "form": form, "page": page, "rows": rows, "counts": counts, "status": status},
    )


def _entry_context(
    request: HttpRequest, entry: BankEntry, *, match_form=None, ignore_form=None, find: str = ""
) -> dict:  # noqa: ANN001
    results: list[Invoice] = []
    if find:
        query = Q(customer__name__icontains=find)
        found = bank_statements.invoice_find(find)
        if found is not None:
            query |= Q(pk=found.pk)
        results = list(
            Invoice.objects.exclude(state=Invoice.State.DRAFT)
            .filter(query)
            .select_related("customer")
            .order_by("-issue_date", "-pk")[:20]
        )
    queued = entry.status == BankEntry.Status.QUEUED and entry.is_credit
    return {
        "entry": entry,
        "statement": entry.statement,
        "may_match": roles_allow(request.user, (FINANCE,)),
        "queued": queued,
        "suggestions": bank_statements.entry_suggestions(entry) if queued else [],
        "match_form": match_form or EntryMatchForm(),
        "ignore_form": ignore_form or EntryIgnoreForm(),
        "search_form": InvoiceSearchForm(initial={"find": find}),
        "find": find,
        "results": results,
        "task_id": _queue_tasks([entry]).get(entry.pk),
        "payments": list(entry.payments.select_related("invoice")),
        "credits": list(entry.customer_credits.select_related("customer")),
    }


def _entry(pk: int) -> BankEntry:
    return get_object_or_404(BankEntry.objects.select_related("statement", "invoice__customer", "matched_by"), pk=pk)


@role_required(FINANCE, SUPERVISOR)
@require_GET
def entry_detail(request: HttpRequest, pk: int) -> HttpResponse:
    entry = _entry(pk)
    find = (request.GET.get("find") or "").replace("\x00", "").strip()[:100]
    return render(request, "billing/bank_entry_detail.html", _entry_context(request, entry, find=find))


@role_required(FINANCE)
@require_POST
def entry_match(request: HttpRequest, pk: int) -> HttpResponse:
    entry = _entry(pk)
    form = EntryMatchForm(request.POST)
    if form.is_valid():
        invoice = form.cleaned_data["invoice_number"]
        try:
            bank_statements.entry_match_manual(entry=entry, invoice=invoice, user=request.user)
        except bank_statements.EntryRefused as exc:
            form.add_error("invoice_number", str(exc))
        else:
            messages.success(
                request,
                _("The credit is booked to invoice %(number)s.") % {"number": invoice.display_number},
            )
            return redirect("billing:bankentry-detail", pk=pk)
    return render(
        request, "billing/bank_entry_detail.html", _entry_context(request, entry, match_form=form), status=400
    )


@role_required(FINANCE)
@require_POST
def entry_ignore(request: HttpRequest, pk: int) -> HttpResponse:
    entry = _entry(pk)
    form = EntryIgnoreForm(request.POST)
    if form.is_valid():
        try:
            bank_statements.entry_ignore(entry=entry, reason=form.cleaned_data["reason"], user=request.user)
        except bank_statements.EntryRefused as exc:
            form.add_error("reason", str(exc))
        else:
            messages.success(request, _("The credit is marked as not an invoice payment."))
            return redirect("billing:bankentry-detail", pk=pk)
    return render(
        request, "billing/bank_entry_detail.html", _entry_context(request, entry, ignore_form=form), status=400
    )
