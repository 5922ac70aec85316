"""Invoices, credit notes, payment methods, the payment ledger, Stripe events and accounting exports.

Our ledger (``Invoice``, ``CreditNote``, ``Payment``) is the truth; Stripe only moves the money.
Every issued document carries a gap-free number from a ``NumberSeries`` row that is locked
while numbers are allocated, and an issued invoice is never deleted: a ``CreditNote`` reverses it.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, transition

from billing.payment_options import PaymentOption

ZERO = Decimal("0.00")


class NumberSeries(models.Model):
    """One gap-free counter, e.g. ``RE2026`` for invoices issued in 2026."""

    key = models.CharField(max_length=20, unique=True)
    next_number = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name_plural = "number series"

    def __str__(self) -> str:
        return f"{self.key} (next {self.next_number})"


class InvoicingRun(models.Model):
    """One invoicing run for a period, with its progress (shown to Finance while it runs)."""

    class State(models.TextChoices):
        PREVIEW = "preview", _("Preview (not confirmed)")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    period_start = models.DateField()
    period_end = models.DateField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    contracts_total = models.PositiveIntegerField(default=0)
    contracts_done = models.PositiveIntegerField(default=0)
    invoices_created = models.PositiveIntegerField(default=0)
    lines_created = models.PositiveIntegerField(default=0)
    exceptions_created = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    preview = models.JSONField(
        default=dict, blank=True, help_text="What the run will do: invoices, total, customers charged by card."
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return gettext("Invoicing run %(month)s (%(state)s)") % {
            "month": f"{self.period_start:%Y-%m}",
            "state": self.get_state_display(),
        }

    @property
    def percent(self) -> int:
        if not self.contracts_total:
            return 100 if self.state == self.State.DONE else 0
        return int(100 * self.contracts_done / self.contracts_total)


class Invoice(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ISSUED = "issued", _("Issued")
        OPEN = "open", _("Open (payment failed)")
        PAID = "paid", _("Paid")
        DISPUTED = "disputed", _("Disputed (chargeback)")
        VOID = "void", _("Void (credited)")

    customer = models.ForeignKey("carparks.Customer", on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateField()
    period_end = models.DateField()
    state = FSMField(default=State.DRAFT, choices=State.choices, protected=True, db_index=True)
    series = models.CharField(max_length=20, blank=True)
    number = models.PositiveIntegerField(null=True, blank=True)
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3, default="EUR")
    net_total = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    vat_total = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    gross_total = models.DecimalField(max_digits=12, decimal_places=2, default=ZERO)
    vat_breakdown = models.JSONField(default=list, blank=True, help_text="[{rate, net, vat, gross}] per VAT rate.")
    billing_address = models.JSONField(default=dict, blank=True, help_text="The customer's address when issued.")
    pdf = models.FileField(upload_to="billing/invoices/%Y/%m/", blank=True)
    facturx_xml = models.TextField(blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    payment_option = models.CharField(
        max_length=20,
        choices=PaymentOption.choices,
        default=PaymentOption.CARD,
        help_text="How this invoice is collected: the customer's option when it was issued.",
    )
    payment_reference = models.CharField(
        max_length=35,
        blank=True,
        db_index=True,
        help_text="The structured reference a bank transfer quotes (ISO 11649 RF creditor reference).",
    )
    amount_paid = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=ZERO,
        help_text="Received so far (card, direct debit, transfers) less money taken back; the open amount is "
        "gross_total - amount_paid.",
    )
    run = models.ForeignKey(InvoicingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_start", "-number", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["series", "number"], condition=Q(number__isnull=False), name="invoice_unique_number"
            ),
            models.CheckConstraint(
                condition=Q(state="draft") | Q(number__isnull=False), name="invoice_issued_has_number"
            ),
        ]
        indexes = [models.Index(fields=["customer", "period_start"])]

    def __str__(self) -> str:
        return self.display_number

    @property
    def display_number(self) -> str:
        if self.number is None:
            return f"Draft {self.pk}"
        return f"{self.series}-{self.number:06d}"

    @property
    def amount_open(self) -> Decimal:
        return max(self.gross_total - self.amount_paid, ZERO)

    @property
    def is_payable(self) -> bool:
        return self.state in (self.State.ISSUED, self.State.OPEN)

    @property
    def workflow_carpark_id(self) -> int | None:
        line = self.lines.select_related("contract__product").first()
        return line.contract.product.carpark_id if line else None

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:  # noqa: ANN001
        # The protected FSM field refuses assignment; let the reload set it afresh.
        if fields is None or "state" in fields:
            self.__dict__.pop("state", None)
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)

    def delete(self, *args, **kwargs):  # noqa: ANN201
        if self.state != self.State.DRAFT:
            raise models.ProtectedError("An issued invoice is never deleted; issue a credit note.", {self})
        return super().delete(*args, **kwargs)

    @transition(field=state, source=State.DRAFT, target=State.ISSUED)
    def issue(self) -> None:
        pass

    @transition(field=state, source=State.ISSUED, target=State.OPEN)
    def mark_open(self) -> None:
        pass

    @transition(field=state, source=[State.ISSUED, State.OPEN], target=State.PAID)
    def mark_paid(self) -> None:
        pass

    @transition(field=state, source=[State.ISSUED, State.OPEN, State.PAID, State.DISPUTED], target=State.VOID)
    def void(self) -> None:
        pass

    @transition(field=state, source=[State.PAID, State.ISSUED, State.OPEN], target=State.DISPUTED)
    def mark_disputed(self) -> None:
        """The customer's bank disputes the card payment (a chargeback); Finance follows it up."""

    @transition(field=state, source=State.DISPUTED, target=State.PAID)
    def dispute_won(self) -> None:
        """The dispute closed in our favour (or an inquiry closed without a chargeback)."""

    @transition(field=state, source=[State.PAID, State.DISPUTED], target=State.OPEN)
    def reopen(self) -> None:
        """The money came back (a returned direct debit): the invoice is to be collected again."""


class InvoiceEvent(models.Model):
    """Append-only history of an invoice's lifecycle."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=10)
    to_state = models.CharField(max_length=10)
    note = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.from_state} → {self.to_state}"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    contract = models.ForeignKey("carparks.Contract", on_delete=models.PROTECT, related_name="invoice_lines")
    vehicle = models.ForeignKey(
        "carparks.Vehicle", null=True, blank=True, on_delete=models.SET_NULL, related_name="invoice_lines"
    )
    cost_centre = models.CharField(max_length=50, blank=True)
    description = models.CharField(max_length=300)
    period_start = models.DateField(help_text="First day of the billing period (not of the days billed).")
    service_start = models.DateField()
    service_end = models.DateField()
    days = models.PositiveSmallIntegerField()
    days_in_period = models.PositiveSmallIntegerField()
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, help_text="Gross monthly price billed.")
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    net = models.DecimalField(max_digits=12, decimal_places=2)
    vat = models.DecimalField(max_digits=12, decimal_places=2)
    gross = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["pk"]
        constraints = [
            # One line per contract, month and price segment (a price change mid-month gives two lines).
            models.UniqueConstraint(
                fields=["contract", "period_start", "service_start"], name="invoiceline_one_per_contract_period"
            )
        ]

    def __str__(self) -> str:
        return self.description


class CreditNote(models.Model):
    """Reverses an issued invoice in full; the invoice becomes void but is kept."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    is_partial = models.BooleanField(
        default=False, help_text="Credits part of the invoice (a partial refund); a full one voids the invoice."
    )
    refund = models.ForeignKey(
        "Payment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="credit_notes",
        help_text="The refund that paid this credit note back, if any.",
    )
    series = models.CharField(max_length=20)
    number = models.PositiveIntegerField()
    issue_date = models.DateField()
    reason = models.TextField()
    net_total = models.DecimalField(max_digits=12, decimal_places=2)
    vat_total = models.DecimalField(max_digits=12, decimal_places=2)
    gross_total = models.DecimalField(max_digits=12, decimal_places=2)
    vat_breakdown = models.JSONField(default=list, blank=True)
    pdf = models.FileField(upload_to="billing/credit-notes/%Y/%m/", blank=True)
    facturx_xml = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-issue_date", "-number"]
        constraints = [models.UniqueConstraint(fields=["series", "number"], name="creditnote_unique_number")]

    def __str__(self) -> str:
        return self.display_number

    @property
    def display_number(self) -> str:
        return f"{self.series}-{self.number:06d}"

    @property
    def customer(self):  # noqa: ANN201 - the invoice's customer
        return self.invoice.customer


class PaymentMethod(models.Model):
    """A card or SEPA Direct Debit account saved at Stripe through a SetupIntent; we keep its ids and what to show.

    For ``sepa_debit`` the mandate is kept as SEPA requires (reference, date, the text the customer
    accepted and how they accepted it); a SEPA method without ``mandate_accepted_at`` is never charged.
    """

    class Kind(models.TextChoices):
        CARD = PaymentOption.CARD.value, PaymentOption.CARD.label
        SEPA_DEBIT = PaymentOption.SEPA_DEBIT.value, PaymentOption.SEPA_DEBIT.label

    customer = models.ForeignKey("carparks.Customer", on_delete=models.CASCADE, related_name="payment_methods")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CARD)
    stripe_customer_id = models.CharField(max_length=100)
    stripe_payment_method_id = models.CharField(max_length=100, unique=True)
    stripe_setup_intent_id = models.CharField(max_length=100, blank=True)
    brand = models.CharField(max_length=30, blank=True)
    last4 = models.CharField(max_length=4, blank=True, help_text="Last four digits of the card or the IBAN.")
    bank_code = models.CharField(max_length=20, blank=True, help_text="SEPA: the bank code within the IBAN.")
    country = models.CharField(max_length=2, blank=True, help_text="SEPA: the IBAN's country.")
    mandate_reference = models.CharField(max_length=35, blank=True, help_text="SEPA: the mandate reference.")
    stripe_mandate_id = models.CharField(max_length=100, blank=True)
    mandate_text = models.TextField(blank=True, help_text="SEPA: the mandate text the customer accepted.")
    mandate_accepted_at = models.DateTimeField(null=True, blank=True, help_text="SEPA: when the mandate was signed.")
    mandate_acceptance = models.JSONField(
        default=dict,
        blank=True,
        help_text="SEPA: how it was accepted ({type: online|offline, ip_address, user_agent}).",
    )
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    is_default = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    detached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-is_default", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(is_default=True, detached_at__isnull=True),
                name="paymentmethod_one_default_per_customer",
            )
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.SEPA_DEBIT:
            return f"SEPA {self.country} •••• {self.last4}"
        return f"{self.brand or gettext('card')} •••• {self.last4}"

    @property
    def is_chargeable(self) -> bool:
        """Live, and for SEPA with a signed mandate: only then may a charge be sent."""
        if self.detached_at is not None:
            return False
        return self.kind != self.Kind.SEPA_DEBIT or self.mandate_accepted_at is not None


class Payment(models.Model):
    """One row of the payment ledger: a charge attempt or a refund for an invoice."""

    class Kind(models.TextChoices):
        CHARGE = "charge", _("Charge")
        REFUND = "refund", _("Refund")
        CHARGEBACK = "chargeback", _("Chargeback (funds withdrawn by a dispute)")
        REVERSAL = "reversal", _("Chargeback reversal (funds reinstated)")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSING = "processing", _("Processing (direct debit under way)")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        #: A charge whose money the customer's bank took back after it succeeded (a returned direct debit): kept
        #: in the ledger, but no longer the invoice's live charge, so the reopened invoice can be collected again.
        RETURNED = "returned", _("Returned (taken back by the bank)")

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CHARGE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2, help_text="Always positive; kind gives the sign.")
    currency = models.CharField(max_length=3, default="EUR")
    attempt = models.PositiveSmallIntegerField(default=1)
    idempotency_key = models.CharField(max_length=100, unique=True)
    job_key = models.CharField(max_length=200, blank=True, db_index=True, help_text="The system step that made it.")
    method = models.CharField(
        max_length=20, choices=PaymentOption.choices, default=PaymentOption.CARD, help_text="How the money moved."
    )
    payment_method = models.ForeignKey(PaymentMethod, null=True, blank=True, on_delete=models.SET_NULL)
    bank_entry = models.ForeignKey(
        "BankEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payments",
        help_text="The bank statement credit a transfer was booked from.",
    )
    stripe_payment_intent_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_charge_id = models.CharField(max_length=100, blank=True)
    stripe_refund_id = models.CharField(max_length=100, blank=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # The ledger's guard against charging twice: at most one live charge per invoice. A returned
            # charge (Status.RETURNED) and a failed one are not live: the invoice may be collected again.
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(kind="charge", status__in=["pending", "processing", "succeeded"], bank_entry__isnull=True),
                name="payment_one_live_charge_per_invoice",
            ),
            models.UniqueConstraint(
                fields=["invoice", "kind", "attempt"],
                condition=Q(kind="charge"),
                name="payment_unique_charge_attempt",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} ({self.get_status_display()})"

    @property
    def signed_amount(self) -> Decimal:
        return -self.amount if self.kind in (self.Kind.REFUND, self.Kind.CHARGEBACK) else self.amount


class StripeEvent(models.Model):
    """A webhook event we processed; its id is stored so each event is processed once."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    result = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class Dispute(models.Model):
    """A chargeback of one of our card payments, as Stripe reported it (``charge.dispute.*``)."""

    stripe_dispute_id = models.CharField(max_length=100, unique=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="disputes")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    reason = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=40, help_text="Stripe's status: needs_response, under_review, won, lost…")
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return gettext("Dispute %(id)s (%(status)s)") % {"id": self.stripe_dispute_id, "status": self.status}


class AccountingExport(models.Model):
    class Format(models.TextChoices):
        DATEV = "datev", _("DATEV Buchungsstapel (EXTF)")
        JOURNAL = "journal", _("Journal CSV")

    period_start = models.DateField()
    period_end = models.DateField()
    format = models.CharField(max_length=10, choices=Format.choices)
    sequence = models.PositiveSmallIntegerField(
        default=1, help_text="Second and later files of a period hold only late documents."
    )
    file = models.FileField(upload_to="billing/exports/", blank=True)
    delivered_to = models.CharField(max_length=500, blank=True)
    invoice_count = models.PositiveIntegerField(default=0)
    credit_note_count = models.PositiveIntegerField(default=0)
    net_total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    vat_total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    gross_total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    changed_values = models.JSONField(
        default=list,
        blank=True,
        help_text="Texts the file could not hold as they are (characters outside Windows-1252 transliterated, "
        "text cut to the field's length): [{document, field, original, written, reasons}].",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_start", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["format", "period_start", "sequence"], name="export_unique_file_per_period")
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} {self.period_start:%Y-%m} #{self.sequence}"

    @property
    def filename(self) -> str:
        stem = "EXTF_Buchungsstapel" if self.format == self.Format.DATEV else "Journal"
        return f"{stem}_{self.period_start:%Y%m}_{self.sequence:02d}.csv"


class ExportedDocument(models.Model):
    """Which invoice or credit note went into which export: each at most once per format."""

    export = models.ForeignKey(AccountingExport, on_delete=models.PROTECT, related_name="documents")
    format = models.CharField(max_length=10, choices=AccountingExport.Format.choices)
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="exports")
    credit_note = models.ForeignKey(CreditNote, null=True, blank=True, on_delete=models.PROTECT, related_name="exports")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["format", "invoice"], name="exported_invoice_once_per_format"),
            models.UniqueConstraint(fields=["format", "credit_note"], name="exported_creditnote_once_per_format"),
            models.CheckConstraint(
                condition=Q(invoice__isnull=False, credit_note__isnull=True)
                | Q(invoice__isnull=True, credit_note__isnull=False),
                name="exported_document_is_one_thing",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.export} ← {self.invoice_id or self.credit_note_id}"


class BillingException(models.Model):
    """Something Finance must look at (shown on the Finance pages; a Finance task once the engine runs)."""

    class Kind(models.TextChoices):
        MISSING_PAYMENT_METHOD = "missing_payment_method", _("Missing payment method")
        ZERO_AMOUNT = "zero_amount", _("Zero amount")
        PRICE_CHANGED = "price_changed", _("Price changed")
        CHARGE_FAILED = "charge_failed", _("Charge failed")
        UNMATCHED_PAYMENT = "unmatched_payment", _("Stripe payment not in the ledger")
        DISPUTE = "dispute", _("Card payment disputed")
        RECONCILIATION = "reconciliation", _("Stripe and ledger differ")

    kind = models.CharField(max_length=30, choices=Kind.choices)
    dedupe_key = models.CharField(max_length=200, unique=True, help_text="Keeps reruns from repeating an exception.")
    message = models.TextField()
    customer = models.ForeignKey("carparks.Customer", null=True, blank=True, on_delete=models.CASCADE)
    contract = models.ForeignKey("carparks.Contract", null=True, blank=True, on_delete=models.CASCADE)
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.CASCADE)
    run = models.ForeignKey(InvoicingRun, null=True, blank=True, on_delete=models.SET_NULL)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["resolved_at", "-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message}"

    @property
    def workflow_carpark_id(self) -> int | None:
        if self.contract_id:
            return self.contract.product.carpark_id
        return None


class SentEmail(models.Model):
    """An email sent for one idempotency key (a re-run job does not email twice)."""

    key = models.CharField(max_length=200, unique=True)
    template = models.CharField(max_length=100)
    to = models.CharField(max_length=300)
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.CASCADE, related_name="emails")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"{self.template} to {self.to}"


class BankStatement(models.Model):
    """A bank statement Finance uploaded (ISO 20022 camt.053, or camt.054 credit notifications).

    A file is imported once: the SHA-256 of its bytes, and the account's statement id, are unique, so
    the same statement uploaded again is refused and books nothing.
    """

    class Kind(models.TextChoices):
        CAMT053 = "camt053", _("Statement (camt.053)")
        CAMT054 = "camt054", _("Credit notification (camt.054)")

    kind = models.CharField(max_length=10, choices=Kind.choices)
    message_id = models.CharField(max_length=35, help_text="GrpHdr/MsgId.")
    statement_id = models.CharField(max_length=35, help_text="Stmt/Id (camt.053) or Ntfctn/Id (camt.054).")
    account_iban = models.CharField(max_length=34)
    currency = models.CharField(max_length=3, default="EUR")
    created_on = models.DateTimeField(null=True, blank=True, help_text="When the bank created the file.")
    from_date = models.DateField(null=True, blank=True)
    to_date = models.DateField(null=True, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, unique=True)
    entries_count = models.PositiveIntegerField(default=0)
    credits_count = models.PositiveIntegerField(default=0)
    credits_total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    matched_count = models.PositiveIntegerField(default=0)
    queued_count = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account_iban", "kind", "statement_id"], name="bankstatement_unique_statement"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.statement_id}"


class BankEntry(models.Model):
    """One booked entry of a bank statement; credits are matched to invoices, debits only recorded."""

    class Status(models.TextChoices):
        MATCHED = "matched", _("Matched")
        PARTIAL = "partial", _("Matched, part of the amount")
        OVERPAID = "overpaid", _("Matched, more than the amount (credit balance)")
        QUEUED = "queued", _("To match by hand")
        MANUAL = "manual", _("Matched by hand")
        IGNORED = "ignored", _("Not an invoice payment")

    class Rule(models.TextChoices):
        REFERENCE = "reference", _("Invoice number in the reference")
        CREDITOR_REFERENCE = "creditor_reference", _("RF creditor reference")
        FUZZY_REFERENCE = "fuzzy_reference", _("Invoice number with a typo")
        AMOUNT_NAME = "amount_name", _("Amount and payer's name")
        MANUAL = "manual", _("By hand")

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="entries")
    position = models.PositiveIntegerField(help_text="Order within the statement (entry, then transaction).")
    is_credit = models.BooleanField(help_text="CdtDbtInd CRDT.")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    booking_date = models.DateField(null=True, blank=True)
    value_date = models.DateField(null=True, blank=True)
    account_servicer_reference = models.CharField(max_length=35, blank=True, help_text="AcctSvcrRef.")
    end_to_end_id = models.CharField(max_length=35, blank=True)
    debtor_name = models.CharField(max_length=140, blank=True)
    debtor_iban = models.CharField(max_length=34, blank=True)
    remittance_unstructured = models.TextField(blank=True, help_text="RmtInf/Ustrd, joined.")
    remittance_structured = models.CharField(max_length=35, blank=True, help_text="RmtInf/Strd/CdtrRefInf/Ref.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    rule = models.CharField(max_length=20, choices=Rule.choices, blank=True)
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_entries")
    matched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    matched_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["statement", "position"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "position"], name="bankentry_unique_position"),
        ]
        indexes = [
            # A credit reported in two files (camt.054, then camt.053) is found by the bank's reference.
            models.Index(fields=["account_servicer_reference"], name="bankentry_servicer_ref"),
        ]

    def __str__(self) -> str:
        sign = "" if self.is_credit else "-"
        return f"{sign}{self.amount} {self.currency} {self.debtor_name}".strip()

    def task_summary(self) -> list[dict]:
        """The credit and the invoices it may pay, for its matching task in the basket."""
        from billing.bank_statements import entry_task_summary

        return entry_task_summary(self)


class CustomerCredit(models.Model):
    """The customer's credit balance ledger: over-payments in (+), credit used on an invoice or paid out (-)."""

    customer = models.ForeignKey("carparks.Customer", on_delete=models.PROTECT, related_name="credits")
    amount = models.DecimalField(max_digits=12, decimal_places=2, help_text="Signed: + credit, - used.")
    currency = models.CharField(max_length=3, default="EUR")
    reason = models.CharField(max_length=300)
    bank_entry = models.ForeignKey(
        BankEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="customer_credits"
    )
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}: {self.reason}"
