"""Car parks, season products, customers, vehicles, credentials and contracts.

Vocabulary follows the APDS information model where it has a word for the thing:
a CarPark is a Place, a Product a RightSpecification (permitParking), a Contract an
AssignedRight, and a Credential the identifier that opens the barrier.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, transition

from billing.payment_options import PaymentOption, default_product_options

PLATE_STRIP = re.compile(r"[\s\-._·]+")
# The business event whose process reviews an application (approves or rejects it).
REVIEW_EVENT = "application.received"


def normalise_plate(plate: str) -> str:
    """Upper case, no spaces, dashes or dots: 'm-ab 123' and 'M AB-123' are the same plate."""
    return PLATE_STRIP.sub("", plate or "").upper()


class CarPark(models.Model):
    name = models.CharField(max_length=200)
    code = models.SlugField(max_length=50, unique=True, help_text="Short code used in URLs and reports.")
    operator = models.CharField(max_length=200, blank=True)
    street = models.CharField(max_length=200, blank=True)
    postcode = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, default="DE")
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="Europe/Berlin")
    capacity = models.PositiveIntegerField(default=0)
    opening_hours = models.CharField(max_length=200, blank=True, help_text="For example 'Mo-Su 00:00-24:00'.")
    cpms_reference = models.CharField(max_length=100, blank=True, db_index=True)
    is_active = models.BooleanField(default=True)
    occupancy = models.PositiveIntegerField(null=True, blank=True)
    occupancy_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("responsible_carpark", "Is responsible for this car park")]

    def __str__(self) -> str:
        return self.name

    @property
    def workflow_carpark_id(self) -> int:
        return self.pk


class Product(models.Model):
    class VehicleClass(models.TextChoices):
        CAR = "car", _("Car")
        MOTORCYCLE = "motorcycle", _("Motorcycle")
        VAN = "van", _("Van")
        EV = "ev", _("Electric vehicle")

    class Validity(models.TextChoices):
        ALL_DAY = "all_day", _("All day")
        WEEKDAYS = "weekdays", _("Weekdays")
        NIGHTS = "nights", _("Nights")
        WEEKENDS = "weekends", _("Weekends")

    class Audience(models.TextChoices):
        ANY = "any", _("Private and corporate")
        PRIVATE = "private", _("Private customers")
        CORPORATE = "corporate", _("Corporate customers")

    carpark = models.ForeignKey(CarPark, on_delete=models.PROTECT, related_name="products")
    name = models.CharField(max_length=200)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, help_text="Gross monthly price.")
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("19.00"))
    vehicle_class = models.CharField(max_length=20, choices=VehicleClass.choices, default=VehicleClass.CAR)
    validity = models.CharField(max_length=20, choices=Validity.choices, default=Validity.ALL_DAY)
    quota = models.PositiveIntegerField(help_text="How many contracts may be active or approved at once.")
    deposit = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    notice_period_days = models.PositiveIntegerField(default=30)
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.ANY)
    vehicles_per_place = models.PositiveSmallIntegerField(
        default=1, help_text="How many vehicles a contract may register per place it holds (a pool ratio)."
    )
    is_addon = models.BooleanField(default=False, help_text="An add-on to a season product (e.g. e-charging).")
    is_active = models.BooleanField(default=True)
    payment_options = models.JSONField(
        default=default_product_options,
        blank=True,
        help_text="The payment options (billing.payment_options.PaymentOption values) this product offers.",
    )

    class Meta:
        ordering = ["carpark__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.carpark})"

    @property
    def places_free(self) -> int:
        """Free places of the quota (uses the ``places_taken`` annotation of the selectors when present)."""
        taken = getattr(self, "places_taken", None)
        if taken is None:
            taken = places_held(self.contracts.filter(state__in=Contract.QUOTA_STATES))
        return max(self.quota - taken, 0)


class ProductPrice(models.Model):
    """A product's gross monthly price from ``valid_from`` (until ``valid_until``, inclusive, or open).

    Prices are never edited in place: a new price starts on a date and the old one ends the day
    before, so invoices of a past period keep the price that was valid then.
    """

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="prices")
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2)
    valid_from = models.DateField()
    valid_until = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product", "valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["product", "valid_from"], name="product_price_one_per_start"),
            models.CheckConstraint(
                condition=models.Q(valid_until__isnull=True) | models.Q(valid_until__gte=models.F("valid_from")),
                name="product_price_valid_range",
            ),
        ]

    def __str__(self) -> str:
        values = {"price": self.monthly_price, "start": f"{self.valid_from:%Y-%m-%d}"}
        if self.valid_until:
            return gettext("%(price)s from %(start)s until %(end)s") % {**values, "end": f"{self.valid_until:%Y-%m-%d}"}
        return gettext("%(price)s from %(start)s") % values


class Customer(models.Model):
    class Kind(models.TextChoices):
        PRIVATE = "private", _("Private")
        CORPORATE = "corporate", _("Corporate")

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PRIVATE)
    name = models.CharField(max_length=200, help_text="Person's full name or company name.")
    email = models.EmailField()
    phone = models.CharField(max_length=50, blank=True)
    street = models.CharField(max_length=200, blank=True)
    postcode = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, default="DE")
    language = models.CharField(
        max_length=10,
        choices=settings.LANGUAGES,
        default="de",
        help_text="The language of the customer's emails, invoices and credit notes.",
    )
    company_number = models.CharField(max_length=50, blank=True)
    vat_id = models.CharField(max_length=50, blank=True)
    billing_contact = models.CharField(max_length=200, blank=True)
    billing_email = models.EmailField(blank=True)
    cost_centres = models.JSONField(default=list, blank=True)
    billing_street = models.CharField(max_length=200, blank=True, help_text="Empty: the customer's address.")
    billing_postcode = models.CharField(max_length=20, blank=True)
    billing_city = models.CharField(max_length=100, blank=True)
    billing_country = models.CharField(max_length=2, blank=True)
    possible_duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="An existing customer this one may be (same company number or email): a point for review.",
    )
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from")
    authorised_contacts = models.JSONField(default=list, blank=True)
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    payment_option = models.CharField(
        max_length=20,
        choices=PaymentOption.choices,
        default=PaymentOption.CARD,
        help_text="How the customer pays their invoices.",
    )
    api_client = models.ForeignKey(
        "ApiClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
        help_text="The API client that created this customer: it may read and change what belongs to it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["email"])]

    def __str__(self) -> str:
        return self.name

    @property
    def invoice_email(self) -> str:
        return self.billing_email or self.email


class Vehicle(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="vehicles")
    plate = models.CharField(max_length=20, help_text="Normalised: upper case, no spaces or dashes.")
    country = models.CharField(max_length=2, default="D")
    description = models.CharField(max_length=100, blank=True)
    cost_centre = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["plate"]
        constraints = [models.UniqueConstraint(fields=["customer", "plate", "country"], name="vehicle_unique_plate")]
        indexes = [models.Index(fields=["plate"])]

    def __str__(self) -> str:
        return f"{self.plate} ({self.country})"

    def save(self, *args, **kwargs) -> None:
        self.plate = normalise_plate(self.plate)
        super().save(*args, **kwargs)


class Contract(models.Model):
    class State(models.TextChoices):
        APPLIED = "applied", _("Applied")
        WAITLISTED = "waitlisted", _("Waitlisted")
        OFFERED = "offered", _("Offered")
        APPROVED = "approved", _("Approved")
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        TERMINATED = "terminated", _("Terminated")
        REJECTED = "rejected", _("Rejected")
        CANCELLED = "cancelled", _("Cancelled")

    # States that hold a place of the product's quota. An application that got a place keeps it
    # while it is reviewed; applications beyond the quota are waitlisted instead.
    QUOTA_STATES = (State.APPLIED, State.OFFERED, State.APPROVED, State.ACTIVE, State.SUSPENDED)
    FINAL_STATES = (State.TERMINATED, State.REJECTED, State.CANCELLED)

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="contracts")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="contracts")
    vehicles = models.ManyToManyField(Vehicle, related_name="contracts", blank=True)
    state = FSMField(default=State.APPLIED, choices=State.choices, protected=True, db_index=True)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True, help_text="Empty for open-ended contracts.")
    deposit = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, help_text="Price agreed at approval.")
    next_product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Staged change."
    )
    next_vehicle = models.ForeignKey(Vehicle, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    next_change_on = models.DateField(null=True, blank=True)
    waitlist_position = models.PositiveIntegerField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    cost_centre = models.CharField(max_length=50, blank=True)
    places = models.PositiveSmallIntegerField(
        default=1, help_text="Places the contract holds; vehicles ≤ places × the product's vehicles per place."
    )
    api_client = models.ForeignKey(
        "ApiClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contracts",
        help_text="The API client that applied for this contract: it may read and change it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["product", "state"])]

    def __str__(self) -> str:
        return gettext("Contract %(number)s – %(customer)s") % {"number": self.pk, "customer": self.customer}

    @property
    def carpark(self) -> CarPark:
        return self.product.carpark

    @property
    def workflow_carpark_id(self) -> int:
        return self.product.carpark_id

    @property
    def holds_place(self) -> bool:
        return self.state in self.QUOTA_STATES

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    # Lifecycle. Only carparks.services calls these (under a row lock, writing a ContractEvent);
    # the methods change the state and nothing else.

    @transition(field=state, source=State.APPLIED, target=State.WAITLISTED)
    def waitlist(self) -> None:
        """Beyond the quota: queue the application."""

    @transition(
        field=state, source=State.WAITLISTED, target=State.OFFERED, conditions=[lambda c: c.product_has_free_place()]
    )
    def offer(self) -> None:
        """A place came free: offer it to this waitlisted application."""

    @transition(
        field=state, source=State.OFFERED, target=State.APPLIED, permission=lambda c, user: _may_accept_offer(c, user)
    )
    def accept_offer(self) -> None:
        """The customer took the offered place; the application goes to review."""

    # While the application's review task waits in the basket, the decision is the reviewer's: a person
    # who approved or rejected by hand would leave the review to end in an incident. The process's own
    # approve or reject step runs once its task is completed, so it passes.
    @transition(
        field=state,
        source=State.APPLIED,
        target=State.APPROVED,
        conditions=[lambda c: c.product.is_active, lambda c: not c.review_task_open()],
        permission=lambda c, user: _may_review(c, user),
    )
    def approve(self) -> None:
        """The back office accepted the application."""

    @transition(
        field=state,
        source=[State.APPLIED, State.WAITLISTED],
        target=State.REJECTED,
        conditions=[lambda c: not c.review_task_open()],
        permission=lambda c, user: _may_review(c, user),
    )
    def reject(self) -> None:
        """The back office refused the application."""

    @transition(
        field=state,
        source=State.APPROVED,
        target=State.ACTIVE,
        conditions=[lambda c: c.vehicles.exists()],
        permission=lambda c, user: _may_review(c, user),
    )
    def activate(self) -> None:
        """The contract starts: credentials are issued."""

    @transition(
        field=state, source=State.ACTIVE, target=State.SUSPENDED, permission=lambda c, user: _may_manage(c, user)
    )
    def suspend(self) -> None:
        """Parking is blocked (for example unpaid invoices); the place is kept."""

    @transition(
        field=state, source=State.SUSPENDED, target=State.ACTIVE, permission=lambda c, user: _may_manage(c, user)
    )
    def reactivate(self) -> None:
        """Lift a suspension."""

    @transition(
        field=state,
        source=[State.APPROVED, State.ACTIVE, State.SUSPENDED],
        target=State.TERMINATED,
        permission=lambda c, user: _may_manage(c, user),
    )
    def terminate(self) -> None:
        """The contract ends; its place goes to the next in line."""

    @transition(
        field=state,
        source=[State.APPLIED, State.WAITLISTED, State.OFFERED, State.APPROVED],
        target=State.CANCELLED,
        permission=lambda c, user: _may_manage(c, user),
    )
    def cancel(self) -> None:
        """Withdrawn before it started, or an offer that expired."""

    def review_task_open(self) -> bool:
        """Whether a person's task of the application's review waits in the basket (open or claimed) in a
        process that has not ended: the process the ``application.received`` event started, whichever
        workflow that is. Completed and escalated tasks do not count (an escalation opens a new task)."""
        if self.pk is None or self.state not in (self.State.APPLIED, self.State.WAITLISTED):
            return False  # only an application is reviewed (and only these states approve or reject)
        try:
            from workflows.models import Process, Task
        except ImportError:
            return False
        from django.contrib.contenttypes.models import ContentType

        return Task.objects.filter(
            state__in=Task.ACTIVE_STATES,
            process__state__in=[Process.State.RUNNING, Process.State.SUSPENDED],
            process__content_type=ContentType.objects.get_for_model(Contract),
            process__object_id=self.pk,
            process__start_event__name=REVIEW_EVENT,
        ).exists()

    def product_has_free_place(self) -> bool:
        """Whether the product's quota still has room for this contract's places."""
        taken = places_held(Contract.objects.filter(product_id=self.product_id, state__in=self.QUOTA_STATES))
        return taken + (self.places or 1) <= self.product.quota


def places_held(contracts: models.QuerySet) -> int:
    """The places ``contracts`` hold together (a corporate contract may hold several)."""
    return contracts.aggregate(n=models.Sum("places"))["n"] or 0


def _may_review(contract: Contract, user: object) -> bool:
    from accounts.roles import has_role
    from carparks.access import CONTRACT_REVIEW_ROLES, may_see_carpark

    return has_role(user, *CONTRACT_REVIEW_ROLES) and may_see_carpark(user, contract.product.carpark_id)


def _may_accept_offer(contract: Contract, user: object) -> bool:
    from accounts.roles import has_role
    from carparks.access import OFFER_ACCEPT_ROLES, may_see_carpark

    return has_role(user, *OFFER_ACCEPT_ROLES) and may_see_carpark(user, contract.product.carpark_id)


def _may_manage(contract: Contract, user: object) -> bool:
    from accounts.roles import has_role
    from carparks.access import CONTRACT_MANAGE_ROLES, may_see_carpark

    return has_role(user, *CONTRACT_MANAGE_ROLES) and may_see_carpark(user, contract.product.carpark_id)


class Credential(models.Model):
    class Kind(models.TextChoices):
        PLATE = "plate", _("Licence plate")
        RFID = "rfid", _("RFID card")
        QR = "qr", _("QR code")

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="credentials")
    carpark = models.ForeignKey(CarPark, on_delete=models.PROTECT, related_name="credentials")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PLATE)
    identifier = models.CharField(max_length=100)
    valid_from = models.DateField()
    valid_until = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    cpms_synced_at = models.DateTimeField(null=True, blank=True)
    # The idempotency key of the system step that issued it, so a re-run issues nothing twice.
    issue_key = models.CharField(max_length=200, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, null=True)

    class Meta:
        ordering = ["identifier"]
        constraints = [
            models.UniqueConstraint(
                fields=["carpark", "kind", "identifier"],
                condition=Q(is_active=True),
                name="credential_unique_active_identifier_per_carpark",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.identifier}"

    def save(self, *args, **kwargs) -> None:
        if self.kind == self.Kind.PLATE:
            self.identifier = normalise_plate(self.identifier)
        super().save(*args, **kwargs)


class ContractEvent(models.Model):
    """Append-only history of a contract's lifecycle."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.contract_id}: {self.from_state} → {self.to_state}"


class Case(models.Model):
    """A customer-care case: a complaint, refund request, card replacement or question."""

    class Kind(models.TextChoices):
        COMPLAINT = "complaint", _("Complaint")
        REFUND = "refund", _("Refund request")
        CARD_REPLACEMENT = "card_replacement", _("Card replacement")
        CALLBACK = "callback", _("Call-back request")
        QUESTION = "question", _("Question")

    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        IN_PROGRESS = "in_progress", _("In progress")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")

    class Channel(models.TextChoices):
        PORTAL = "portal", _("Back office")
        API = "api", _("App / Web")
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Phone")

    OPEN_STATES = (State.OPEN, State.IN_PROGRESS)

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="cases")
    contract = models.ForeignKey(Contract, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases")
    # Billing owns invoices; cases only keep the id so carparks does not depend on billing.
    invoice_id = models.PositiveBigIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.PORTAL)
    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    state = FSMField(default=State.OPEN, choices=State.choices, protected=True, db_index=True)
    sla_due_at = models.DateTimeField(db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="carparks_cases"
    )
    resolution = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    api_client = models.ForeignKey(
        "ApiClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cases",
        help_text="The API client that opened this case: it may read it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sla_due_at", "pk"]

    def __str__(self) -> str:
        return gettext("Case %(number)s: %(subject)s") % {"number": self.pk, "subject": self.subject}

    @property
    def workflow_carpark_id(self) -> int | None:
        return self.contract.product.carpark_id if self.contract_id else None

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @transition(field=state, source=State.OPEN, target=State.IN_PROGRESS)
    def start(self) -> None:
        """Someone works on it."""

    @transition(field=state, source=[State.OPEN, State.IN_PROGRESS], target=State.RESOLVED)
    def resolve(self) -> None:
        """Answered or fixed."""

    @transition(field=state, source=State.RESOLVED, target=State.IN_PROGRESS)
    def reopen(self) -> None:
        """The customer came back."""

    @transition(field=state, source=[State.OPEN, State.IN_PROGRESS, State.RESOLVED], target=State.CLOSED)
    def close(self) -> None:
        """Done for good."""


class CaseEvent(models.Model):
    """Append-only history of a case: state changes and notes."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.pk}: {self.from_state} → {self.to_state}"


class ApiClient(models.Model):
    """An integration (eCommerce shop, app, web module) calling the REST API with its own token.

    Only a SHA-256 hash of the token is stored; the token itself is shown once, when created. A client
    sees and changes only what it created (``api_client`` on customers, contracts and cases) and what
    belongs to the car parks it is granted (``carparks``); everything else answers 404
    (:mod:`carparks.access`).
    """

    class Scope(models.TextChoices):
        CARPARKS_READ = "carparks:read", _("Read car parks, products and availability")
        CONTRACTS_READ = "contracts:read", _("Read contracts")
        CONTRACTS_WRITE = "contracts:write", _("Apply for and change contracts")
        CASES_WRITE = "cases:write", _("Open customer-care cases")
        PROCESSES_READ = "processes:read", _("Read processes and their state")

    name = models.CharField(max_length=200, unique=True)
    token_prefix = models.CharField(max_length=12, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    carparks = models.ManyToManyField(
        CarPark,
        blank=True,
        related_name="api_clients",
        help_text="Car parks whose contracts, cases and invoices this client may read and change, "
        "whoever created them (a shop selling that car park's season tickets).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # DRF treats request.user as authenticated when this is true.
    is_authenticated = True

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


class IdempotencyRecord(models.Model):
    """The first response to a creating POST with an ``Idempotency-Key``; replays get it again."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_unique_key_per_client")]

    def __str__(self) -> str:
        return f"{self.client_id}: {self.key}"


class ContractChangeRequest(models.Model):
    """A change to a contract that waits for a review before it is made: vehicles beyond the places the
    contract holds (``places_requested`` is what the contract would then hold; ``plates`` the vehicles
    to add, ``[{"plate": …, "country": …}]``). Approving raises the places and adds the vehicles."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="change_requests")
    kind = models.CharField(max_length=20, default="vehicle")
    places_requested = models.PositiveSmallIntegerField()
    plates = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    channel = models.CharField(max_length=20, default="portal")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return gettext("Change request %(number)s on contract %(contract)s") % {
            "number": self.pk,
            "contract": self.contract_id,
        }

    @property
    def plate_list(self) -> str:
        return ", ".join(str(item.get("plate", "")) for item in self.plates or [])
