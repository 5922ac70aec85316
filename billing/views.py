"""Finance pages (invoices, payments, credit notes, exceptions, exports, invoicing runs), the
customer's card page (signed link, no login) and the Stripe webhook (signature-checked)."""

from __future__ import annotations

import logging

import stripe
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import FINANCE, role_required
from billing import exports, providers, selectors, services
from billing.forms import RefundForm
from billing.models import (
    AccountingExport,
    BillingException,
    CreditNote,
    Invoice,
    InvoicingRun,
    Payment,
)
from billing.payment_options import PROVIDER_COLLECTED, PaymentOption
from billing.payment_setup import chargeable_method
from billing.stripe_api import stripe_js_url
from carparks.models import Customer
from parkinghq.list_search import search_term
from parkinghq.posted import posted_text

logger = logging.getLogger(__name__)
PAGE_SIZE = 25


def _page(request: HttpRequest, queryset):  # noqa: ANN001, ANN202
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _get_invoice(pk: int) -> Invoice:
    return get_object_or_404(Invoice.objects.select_related("customer"), pk=pk)


# --- invoices ------------------------------------------------------------------------------------


@role_required(FINANCE)
@require_GET
def invoice_list(request: HttpRequest) -> HttpResponse:
    invoices = Invoice.objects.select_related("customer").order_by("-period_start", "-number", "-pk")
    state = request.GET.get("state", "")
    if state in Invoice.State.values:
        invoices = invoices.filter(state=state)
    query = search_term(request.GET, "invoice_search")
    if query:
        invoices = invoices.filter(Q(customer__name__icontains=query) | Q(customer__email__icontains=query))
        if "-" in query and query.rsplit("-", 1)[1].isdigit():
            series, number = query.rsplit("-", 1)
            invoices = Invoice.objects.filter(series__iexact=series, number=int(number)).select_related("customer")
    return render(
        request,
        "billing/invoice_list.html",
        {
            "page": _page(request, invoices),
            "states": Invoice.State.choices,
            "state": state,
            "q": query,
            "open_exceptions": selectors.open_exceptions().count(),
            "last_run": InvoicingRun.objects.first(),
            "today": timezone.localdate(),
        },
    )


@role_required(FINANCE)
@require_GET
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _invoice_page(request, _get_invoice(pk))


def _invoice_page(request: HttpRequest, invoice: Invoice, refund_form: RefundForm | None = None) -> HttpResponse:
    payments = list(invoice.payments.select_related("payment_method", "created_by").prefetch_related("credit_notes"))
    credit_notes = list(invoice.credit_notes.select_related("refund").order_by("pk"))
    refundable = selectors.invoice_refundable(invoice)
    return render(
        request,
        "billing/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": invoice.lines.select_related("contract__product__carpark", "vehicle"),
            "payments": payments,
            "refunds": [p for p in payments if p.kind == Payment.Kind.REFUND],
            "refundable": refundable,
            "refund_form": refund_form or (RefundForm(initial={"amount": refundable}) if refundable > 0 else None),
            "events": invoice.events.select_related("actor"),
            "credit_notes": credit_notes,
            "credit_note": next((note for note in credit_notes if not note.is_partial), None),
            "exceptions": invoice.billingexception_set.all(),
            "payment_method": selectors.default_payment_method(invoice.customer_id),
            # what the Charge button would charge: a live method of the invoice's own payment option
            "chargeable": (
                chargeable_method(invoice.customer_id, invoice.payment_option)
                if invoice.payment_option in PROVIDER_COLLECTED
                else None
            ),
            "card_link": services.card_setup_link(customer=invoice.customer),
            "processes": selectors.processes_about(invoice),
        },
    )


@role_required(FINANCE)
@require_GET
def invoice_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    from billing.documents import invoice_documents_render

    invoice = _get_invoice(pk)
    if invoice.state == Invoice.State.DRAFT:
        raise Http404("A draft has no PDF.")
    invoice = invoice_documents_render(invoice=invoice)
    return FileResponse(invoice.pdf.open("rb"), content_type="application/pdf", filename=f"{invoice}.pdf")


@role_required(FINANCE)
@require_GET
def invoice_xml(request: HttpRequest, pk: int) -> HttpResponse:
    from billing.documents import invoice_documents_render

    invoice = _get_invoice(pk)
    if invoice.state == Invoice.State.DRAFT:
        raise Http404("A draft has no e-invoice.")
    invoice = invoice_documents_render(invoice=invoice)
    response = HttpResponse(invoice.facturx_xml, content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{invoice}-factur-x.xml"'
    return response


@role_required(FINANCE)
@require_POST
def invoice_charge(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_invoice(pk)
    try:
        result = services.invoice_charge(invoice=invoice, user=request.user)
    except stripe.StripeError as exc:
        messages.error(
            request,
            _("Stripe did not answer as expected: %(error)s. Try again later.") % {"error": exc.user_message or exc},
        )
        return redirect("billing:invoice-detail", pk=pk)
    except services.ChargeOutcomeUnknown:
        messages.warning(
            request,
            _(
                "Stripe's answer to the charge was lost; the attempt is kept as pending. Try again later: the same "
                "charge is asked for again, never a second one."
            ),
        )
        return redirect("billing:invoice-detail", pk=pk)
    level, text = _charge_message(invoice, result.status)
    getattr(messages, level)(request, text)
    return redirect("billing:invoice-detail", pk=pk)


def _charge_message(invoice: Invoice, status: str) -> tuple[str, str]:
    """Finance's message for every result of ``services.invoice_charge``; an unknown one is never an error."""
    texts = {
        "succeeded": ("success", _("The card was charged; the invoice is paid.")),
        "failed": ("error", _("The card was declined. The failed-payment process has started.")),
        "pending": ("info", _("The payment is processing; Stripe will tell us the outcome.")),
        "processing": (
            "info",
            _(
                "The SEPA direct debit is under way: the bank answers within a few business days, and the invoice "
                "is marked paid once it confirms. No second debit is sent meanwhile."
            ),
        ),
        "returned": (
            "warning",
            _("The direct debit was returned by the customer's bank; the invoice is open again."),
        ),
        "no_payment_method": ("warning", _("The customer has no saved card. Send them the card link.")),
        "not_payable": ("warning", _("This invoice cannot be charged in its current state.")),
        services.AWAITS_TRANSFER: (
            "info",
            _(
                "This invoice is paid by bank transfer: nothing is charged. It is marked paid when the "
                "customer's transfer arrives."
            ),
        ),
    }
    if invoice.payment_option == PaymentOption.SEPA_DEBIT:
        texts |= {
            "succeeded": ("success", _("The direct debit was collected; the invoice is paid.")),
            "failed": (
                "error",
                _("The direct debit failed; the invoice is open. The returned-debit process has started."),
            ),
            "no_payment_method": (
                "warning",
                _("The customer has no SEPA account with an accepted mandate; nothing was debited."),
            ),
        }
    fallback = ("info", _("The charge ended with “%(status)s”; see the payments below.") % {"status": status})
    return texts.get(status, fallback)


@role_required(FINANCE)
@require_POST
def invoice_transfer(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_invoice(pk)
    try:
        reference = posted_text(request, "reference", label=_("The bank reference"))
        services.invoice_record_transfer(invoice=invoice, reference=reference, user=request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    except services.BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Invoice %(invoice)s is recorded as paid by bank transfer.") % {"invoice": invoice})
    return redirect("billing:invoice-detail", pk=pk)


@role_required(FINANCE)
@require_POST
def invoice_send(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_invoice(pk)
    if invoice.state == Invoice.State.DRAFT:
        messages.error(request, _("A draft cannot be sent."))
    else:
        key = f"invoice-resend:{invoice.pk}:{timezone.now():%Y%m%d%H%M%S}"
        services.invoice_send(invoice=invoice, key=key if invoice.emailed_at else None)
        messages.success(
            request,
            _("Invoice %(invoice)s was emailed to %(email)s.")
            % {"invoice": invoice, "email": invoice.customer.invoice_email},
        )
    return redirect("billing:invoice-detail", pk=pk)


@role_required(FINANCE)
@require_POST
def card_link_send(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_invoice(pk)
    services.card_link_send(
        customer=invoice.customer, key=f"card-link:manual:{invoice.pk}:{timezone.now():%Y%m%d%H%M%S}"
    )
    messages.success(request, _("The card link was emailed to %(email)s.") % {"email": invoice.customer.invoice_email})
    return redirect("billing:invoice-detail", pk=pk)


@role_required(FINANCE)
@require_POST
def credit_note_create(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_invoice(pk)
    try:
        reason = posted_text(request, "reason", label=_("The reason"))
        note = services.credit_note_issue(invoice=invoice, reason=reason, user=request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    except services.BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, _("Credit note %(note)s reverses invoice %(invoice)s.") % {"note": note, "invoice": invoice}
        )
    return redirect("billing:invoice-detail", pk=pk)


@role_required(FINANCE)
@require_POST
def invoice_refund(request: HttpRequest, pk: int) -> HttpResponse:
    """Refund (part of) the invoice: errors are shown at the form's fields, success redirects."""
    invoice = _get_invoice(pk)
    form = RefundForm(request.POST)
    if not form.is_valid():
        return _invoice_page(request, invoice, form)
    key = form.cleaned_data["key"]
    try:
        refund = services.refund_issue(
            invoice=invoice,
            amount=form.cleaned_data["amount"],
            reason=form.cleaned_data["reason"],
            user=request.user,
            key=f"refund-form:{invoice.pk}:{key}" if key else "",
        )
    except services.RefundError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _invoice_page(request, invoice, form)
    except services.BillingError as exc:
        form.add_error(None, str(exc))
        return _invoice_page(request, invoice, form)
    _refund_message(request, services.refund_send(refund=refund))
    return redirect("billing:invoice-detail", pk=pk)


def _refund_message(request: HttpRequest, refund: Payment) -> None:
    note = refund.credit_notes.first()
    paper = " " + _("Credit note %(note)s is issued.") % {"note": note} if note else ""
    amount = {"amount": refund.amount, "currency": refund.currency}
    if refund.status == Payment.Status.SUCCEEDED:
        if refund.stripe_refund_id:
            text = _("Refunded %(amount)s %(currency)s to the customer's card.") % amount
        else:
            text = _("Refunded %(amount)s %(currency)s (pay it back by bank transfer).") % amount
        messages.success(request, f"{text}{paper}")
    elif refund.status == Payment.Status.FAILED:
        retry = _("Refund the same amount again to retry.")
        messages.error(request, f"{refund.failure_message}.{paper} {retry}")
    elif refund.stripe_refund_id:
        text = _("The refund of %(amount)s %(currency)s is pending at Stripe.") % amount
        messages.info(request, f"{text}{paper}")
    else:
        text = _("Stripe could not be reached: the refund of %(amount)s %(currency)s is recorded as pending.") % amount
        again = _("Send it again from the list of refunds.")
        messages.warning(request, f"{text}{paper} {again}")


@role_required(FINANCE)
@require_POST
def refund_send(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a pending refund Stripe has not answered yet (once: the ledger row's idempotency key)."""
    refund = get_object_or_404(Payment, pk=pk, kind=Payment.Kind.REFUND)
    _refund_message(request, services.refund_send(refund=refund))
    return redirect("billing:invoice-detail", pk=refund.invoice_id)


@role_required(FINANCE)
@require_POST
def refund_create(request: HttpRequest, pk: int) -> HttpResponse:
    """The older per-payment form: the same refund path as the invoice's Refund form."""
    payment = get_object_or_404(Payment, pk=pk)
    form = RefundForm(request.POST)
    if form.is_valid():
        try:
            refund = services.refund_create(
                payment=payment,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                user=request.user,
            )
        except services.BillingError as exc:
            messages.error(request, str(exc))
        else:
            _refund_message(request, refund)
    else:
        messages.error(request, " ".join(error for errors in form.errors.values() for error in errors))
    return redirect("billing:invoice-detail", pk=payment.invoice_id)


# --- payments, credit notes, exceptions ----------------------------------------------------------


@role_required(FINANCE)
@require_GET
def payment_list(request: HttpRequest) -> HttpResponse:
    payments = Payment.objects.select_related("invoice__customer", "payment_method").order_by("-created_at", "-pk")
    status = request.GET.get("status", "")
    if status in Payment.Status.values:
        payments = payments.filter(status=status)
    return render(
        request,
        "billing/payment_list.html",
        {"page": _page(request, payments), "statuses": Payment.Status.choices, "status": status},
    )


@role_required(FINANCE)
@require_GET
def credit_note_list(request: HttpRequest) -> HttpResponse:
    notes = CreditNote.objects.select_related("invoice__customer").order_by("-issue_date", "-number")
    return render(request, "billing/credit_note_list.html", {"page": _page(request, notes)})


@role_required(FINANCE)
@require_GET
def credit_note_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    from billing.documents import credit_note_documents_render

    note = credit_note_documents_render(credit_note=get_object_or_404(CreditNote, pk=pk))
    return FileResponse(note.pdf.open("rb"), content_type="application/pdf", filename=f"{note}.pdf")


@role_required(FINANCE)
@require_GET
def exception_list(request: HttpRequest) -> HttpResponse:
    show = request.GET.get("show", "open")
    items = BillingException.objects.select_related("customer", "contract", "invoice", "resolved_by")
    if show != "all":
        items = items.filter(resolved_at__isnull=True)
    return render(
        request, "billing/exception_list.html", {"page": _page(request, items.order_by("-created_at")), "show": show}
    )


@role_required(FINANCE)
@require_POST
def exception_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(BillingException, pk=pk)
    try:
        resolution = posted_text(request, "resolution", label=_("The resolution"))
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect("billing:exception-list")
    services.billing_exception_resolve(exception=item, user=request.user, resolution=resolution)
    messages.success(request, _("Marked as resolved."))
    return redirect("billing:exception-list")


# Invoicing runs (preview, confirmation, cancellation): billing/finance_views.py


# --- accounting exports --------------------------------------------------------------------------


@role_required(FINANCE)
@require_GET
def export_list(request: HttpRequest) -> HttpResponse:
    items = AccountingExport.objects.select_related("created_by").order_by("-period_start", "-created_at")
    return render(
        request,
        "billing/export_list.html",
        {"page": _page(request, items), "formats": AccountingExport.Format.choices, "today": timezone.localdate()},
    )


@role_required(FINANCE)
@require_POST
def export_create(request: HttpRequest) -> HttpResponse:
    from datetime import date

    try:
        period = date.fromisoformat(f"{request.POST.get('period', '')}-01")
    except ValueError:
        messages.error(request, _("Choose the month to export."))
        return redirect("billing:export-list")
    fmt = request.POST.get("format", "")
    if fmt not in AccountingExport.Format.values:
        messages.error(request, _("Choose an export format."))
        return redirect("billing:export-list")
    try:
        export = exports.accounting_export_create(period_start=period, format=fmt, user=request.user)
    except exports.DatevExportError as error:
        messages.error(request, str(error))
        return redirect("billing:export-list")
    if export is None:
        messages.info(
            request,
            _("Nothing new to export for %(month)s: every document was exported already.")
            % {"month": f"{period:%m/%Y}"},
        )
    else:
        changed = (
            " "
            + _("%(count)s texts had to be changed for DATEV; they are listed with the export.")
            % {"count": len(export.changed_values)}
            if export.changed_values
            else ""
        )
        text = _(
            "Exported %(invoices)s invoices and %(credit_notes)s credit notes (%(gross)s € gross) to %(file)s."
        ) % {
            "invoices": export.invoice_count,
            "credit_notes": export.credit_note_count,
            "gross": export.gross_total,
            "file": export.filename,
        }
        messages.success(request, f"{text}{changed}")
    return redirect("billing:export-list")


@role_required(FINANCE)
@require_GET
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    export = get_object_or_404(AccountingExport, pk=pk)
    if not export.file:
        raise Http404("This export has no file.")
    return FileResponse(export.file.open("rb"), content_type="text/csv", as_attachment=True, filename=export.filename)


# --- the customer's card page (signed link, no login) --------------------------------------------


def _stripe_origin() -> str:
    url = stripe_js_url()
    return url.split("/js.stripe.com")[0] if settings.STRIPE_API_BASE else "https://js.stripe.com"


@require_GET
def card_setup(request: HttpRequest, token: str) -> HttpResponse:
    try:
        customer = services.card_setup_customer(token=token)
    except (services.BillingError, Customer.DoesNotExist) as exc:
        return render(request, "billing/card_setup_invalid.html", {"error": str(exc)}, status=400)
    try:
        intent = services.setup_intent_create(customer=customer, token=token)
    except stripe.StripeError:
        logger.exception("could not create a SetupIntent for customer %s", customer.pk)
        return render(
            request,
            "billing/card_setup_invalid.html",
            {"error": _("Our payment provider is not reachable right now. Please try again in a few minutes.")},
            status=503,
        )
    response = render(
        request,
        "billing/card_setup.html",
        {
            "customer": customer,
            "client_secret": intent.client_secret,
            "setup_intent_id": intent.id,
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "stripe_js": stripe_js_url(),
            "return_url": request.build_absolute_uri(reverse("billing:card-setup-return", args=[token])),
            "operator": settings.BILLING_OPERATOR,
        },
    )
    # Stripe.js (and its card fields) come from Stripe; this page alone may load them.
    origin = _stripe_origin()
    response._csp_update = {"script-src": [origin], "frame-src": [origin], "connect-src": [origin]}
    return response


@require_GET
def card_setup_return(request: HttpRequest, token: str) -> HttpResponse:
    try:
        customer = services.card_setup_customer(token=token)
        setup_intent_id = request.GET.get("setup_intent", "")
        if not setup_intent_id.startswith("seti_"):
            raise services.BillingError(_("The card setup did not finish. Please open the link again."))
        method = services.payment_method_save(customer=customer, setup_intent_id=setup_intent_id)
    except (services.BillingError, Customer.DoesNotExist) as exc:
        return render(request, "billing/card_setup_invalid.html", {"error": str(exc)}, status=400)
    except stripe.StripeError:
        return render(
            request,
            "billing/card_setup_invalid.html",
            {"error": _("We could not confirm the card with our payment provider. Please try again.")},
            status=400,
        )
    return render(request, "billing/card_setup_done.html", {"method": method, "operator": settings.BILLING_OPERATOR})


# --- Stripe webhook ------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify the signature on the raw body, then process the event once."""
    provider = providers.provider_named("stripe")
    try:
        event = provider.event_parse(request.body, request.headers.get("Stripe-Signature", ""))
    except providers.EventInvalid:
        return HttpResponseBadRequest("invalid payload or signature")
    try:
        result = provider.event_process(event)
    except services.BillingError as exc:
        # Nothing was stored (the event is rolled back); Stripe retries a 5xx answer later.
        logger.warning("Stripe event %s not processed: %s", event.id, exc)
        return HttpResponse(str(exc), status=503, content_type="text/plain")
    return HttpResponse(result, content_type="text/plain")
