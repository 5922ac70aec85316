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
from django_fsm import FSMField

PLATE_STRIP = re.compile(r"[\s\-._·]+")


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
        CAR = "car", "Car"
        MOTORCYCLE = "motorcycle", "Motorcycle"
        VAN = "van", "Van"
        EV = "ev", "Electric vehicle"

    class Validity(models.TextChoices):
        ALL_DAY = "all_day", "All day"
        WEEKDAYS = "weekdays", "Weekdays"
        NIGHTS = "nights", "Nights"

    carpark = models.ForeignKey(CarPark, on_delete=models.PROTECT, related_name="products")
    name = models.CharField(max_length=200)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, help_text="Gross monthly price.")
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("19.00"))
    vehicle_class = models.CharField(max_length=20, choices=VehicleClass.choices, default=VehicleClass.CAR)
    validity = models.CharField(max_length=20, choices=Validity.choices, default=Validity.ALL_DAY)
    quota = models.PositiveIntegerField(help_text="How many contracts may be active or approved at once.")
    deposit = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    notice_period_days = models.PositiveIntegerField(default=30)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["carpark__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.carpark})"


class Customer(models.Model):
    class Kind(models.TextChoices):
        PRIVATE = "private", "Private"
        CORPORATE = "corporate", "Corporate"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PRIVATE)
    name = models.CharField(max_length=200, help_text="Person's full name or company name.")
    email = models.EmailField()
    phone = models.CharField(max_length=50, blank=True)
    street = models.CharField(max_length=200, blank=True)
    postcode = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, default="DE")
    company_number = models.CharField(max_length=50, blank=True)
    vat_id = models.CharField(max_length=50, blank=True)
    billing_contact = models.CharField(max_length=200, blank=True)
    billing_email = models.EmailField(blank=True)
    cost_centres = models.JSONField(default=list, blank=True)
    authorised_contacts = models.JSONField(default=list, blank=True)
    stripe_customer_id = models.CharField(max_length=100, blank=True)
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
        APPLIED = "applied", "Applied"
        WAITLISTED = "waitlisted", "Waitlisted"
        OFFERED = "offered", "Offered"
        APPROVED = "approved", "Approved"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        TERMINATED = "terminated", "Terminated"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    # States that hold a place of the product's quota.
    QUOTA_STATES = (State.OFFERED, State.APPROVED, State.ACTIVE, State.SUSPENDED)

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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["product", "state"])]

    def __str__(self) -> str:
        return f"Contract {self.pk} – {self.customer}"

    @property
    def carpark(self) -> CarPark:
        return self.product.carpark

    @property
    def workflow_carpark_id(self) -> int:
        return self.product.carpark_id


class Credential(models.Model):
    class Kind(models.TextChoices):
        PLATE = "plate", "Licence plate"
        RFID = "rfid", "RFID card"
        QR = "qr", "QR code"

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="credentials")
    carpark = models.ForeignKey(CarPark, on_delete=models.PROTECT, related_name="credentials")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PLATE)
    identifier = models.CharField(max_length=100)
    valid_from = models.DateField()
    valid_until = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    cpms_synced_at = models.DateTimeField(null=True, blank=True)

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
