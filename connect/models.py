"""Connections to car-park management systems (CPMS), per-car-park links and sync history."""

from __future__ import annotations

import os
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from carparks.models import CarPark

from . import crypto
from .adapters import ADAPTERS, CpmsAdapter, CpmsRejected

ENV_REFERENCE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


class CpmsConnection(models.Model):
    class Kind(models.TextChoices):
        APDS = "apds", _("APDS 4 (HTTP + JSON, push and pull)")
        DATEX2 = "datex2", _("DATEX II v2 XML (pull)")
        PARKAPI = "parkapi", _("ParkAPI JSON (pull)")

    class Status(models.TextChoices):
        UNKNOWN = "unknown", _("Not checked yet")
        OK = "ok", _("Working")
        FAILING = "failing", _("Failing")

    name = models.CharField(max_length=200)
    code = models.SlugField(
        max_length=30,
        unique=True,
        help_text=_("Short code; car parks imported from this CPMS get codes starting with it."),
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.APDS)
    base_url = models.URLField(
        max_length=500, help_text=_("Where the CPMS answers, for example https://cpms.example/v4.")
    )
    secret_encrypted = models.TextField(blank=True, editable=False)
    secret_reference = models.CharField(
        max_length=100, blank=True, help_text=_("Instead of storing the secret: env:VARIABLE_NAME read at run time.")
    )
    options = models.JSONField(default=dict, blank=True, help_text=_("Adapter options, for example paths of feeds."))
    timeout_seconds = models.FloatField(
        default=10.0, help_text=_("How long a whole answer may take, in seconds (a total deadline, not per read).")
    )
    refused_alert_percent = models.PositiveSmallIntegerField(
        default=10,
        help_text=_(
            "A sync that refuses more than this share of the feed's records raises an incident (0: any refusal)."
        ),
    )
    is_active = models.BooleanField(default=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNKNOWN)
    status_message = models.CharField(max_length=500, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.secret_reference and not ENV_REFERENCE.match(self.secret_reference):
            raise ValidationError({"secret_reference": _("Write the reference as env:VARIABLE_NAME.")})

    # --- secrets ----------------------------------------------------------------------------
    def set_secret(self, value: str) -> None:
        """Store a secret: ``env:VAR`` is kept as a reference, anything else is encrypted."""
        value = (value or "").strip()
        if ENV_REFERENCE.match(value):
            self.secret_reference, self.secret_encrypted = value, ""
        elif value:
            self.secret_reference, self.secret_encrypted = "", crypto.encrypt(value)
        else:
            self.secret_reference, self.secret_encrypted = "", ""

    def get_secret(self) -> str:
        if self.secret_reference:
            match = ENV_REFERENCE.match(self.secret_reference)
            if not match:
                raise CpmsRejected(f"secret reference {self.secret_reference!r} is not env:VARIABLE_NAME")
            value = os.environ.get(match.group(1))
            if value is None:
                raise CpmsRejected(f"environment variable {match.group(1)} named by the secret reference is not set")
            return value
        if self.secret_encrypted:
            try:
                return crypto.decrypt(self.secret_encrypted)
            except crypto.SecretUnreadable as exc:
                raise CpmsRejected(str(exc)) from None
        return ""

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_reference or self.secret_encrypted)

    @property
    def masked_secret(self) -> str:
        """What pages show: the reference itself (it is not the secret) or a masked value."""
        if self.secret_reference:
            return self.secret_reference
        if self.secret_encrypted:
            try:
                return crypto.mask(crypto.decrypt(self.secret_encrypted))
            except crypto.SecretUnreadable:
                return "unreadable — enter it again"
        return ""

    # --- the adapter ------------------------------------------------------------------------
    @property
    def adapter_class(self) -> type[CpmsAdapter]:
        return ADAPTERS[self.kind]

    def adapter(self) -> CpmsAdapter:
        return self.adapter_class(
            base_url=self.base_url,
            secret=self.get_secret(),
            timeout=float(self.timeout_seconds),
            options=self.options or {},
        )

    @property
    def supports_push(self) -> bool:
        return self.adapter_class.supports_push

    def last_run(self, kind: str) -> SyncRun | None:
        return self.runs.filter(kind=kind).order_by("-started_at").first()


class CarParkLink(models.Model):
    """Which CPMS a car park lives in, under which id, and what the CPMS last said about it."""

    connection = models.ForeignKey(CpmsConnection, on_delete=models.PROTECT, related_name="links")
    carpark = models.OneToOneField(CarPark, on_delete=models.CASCADE, related_name="cpms_link")
    external_id = models.CharField(
        max_length=100, help_text=_("The car park's id in the CPMS (copied to cpms_reference).")
    )
    cpms_status = models.CharField(max_length=30, blank=True, help_text=_("Last state the CPMS reported."))
    occupancy_observed_at = models.DateTimeField(null=True, blank=True)
    tariffs = models.JSONField(
        default=list, blank=True, help_text=_("Rate tables with their validity, as the CPMS sent them.")
    )
    names = models.JSONField(default=dict, blank=True, help_text=_("The car park's name per language code."))
    opening_times = models.JSONField(default=list, blank=True, help_text=_("Opening times as the CPMS published them."))
    forecast = models.JSONField(
        default=list, blank=True, help_text=_("Expected (forecast) occupancy rows, kept apart from the counted one.")
    )
    last_static_sync_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["carpark__name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="connect_link_unique_external_id")
        ]

    def __str__(self) -> str:
        return f"{self.carpark} ↔ {self.connection} ({self.external_id})"


class CpmsGroup(models.Model):
    """A grouping the CPMS publishes above its car parks: an APDS campus or a DATEX II group of sites.

    A group is never a car park of its own (that would count its spaces twice): it lists the linked
    car parks it holds and, where the feed says so, its own capacity and occupancy.
    """

    class Kind(models.TextChoices):
        CAMPUS = "campus", _("Campus")
        GROUP = "group", _("Group of sites")

    connection = models.ForeignKey(CpmsConnection, on_delete=models.CASCADE, related_name="groups")
    external_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GROUP)
    name = models.CharField(max_length=200, blank=True)
    names = models.JSONField(default=dict, blank=True)
    capacity = models.PositiveIntegerField(null=True, blank=True)
    occupancy = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=30, blank=True)
    links = models.ManyToManyField(CarParkLink, blank=True, related_name="groups")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="connect_group_unique_external_id")
        ]

    def __str__(self) -> str:
        return self.name or self.external_id


class ProductRightMapping(models.Model):
    """Which RightSpecification the CPMS publishes for a product: credential pushes refer to it."""

    connection = models.ForeignKey(CpmsConnection, on_delete=models.CASCADE, related_name="right_mappings")
    product = models.ForeignKey("carparks.Product", on_delete=models.CASCADE, related_name="+")
    right_specification_id = models.CharField(max_length=100)
    right_specification_version = models.PositiveIntegerField(default=1)
    right_specification_name = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product__name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "product"], name="connect_right_mapping_one_per_product")
        ]

    def __str__(self) -> str:
        return f"{self.product} → {self.right_specification_id} v{self.right_specification_version}"


class SyncRun(models.Model):
    class Kind(models.TextChoices):
        STATIC = "static", _("Car-park data")
        OCCUPANCY = "occupancy", _("Occupancy")
        PUSH = "push", _("Credential push")
        REVOKE = "revoke", _("Credential revocation")
        RECONCILE = "reconcile", _("Reconciliation")
        TEST = "test", _("Connection test")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        RETRYING = "retrying", _("Failed, will retry")
        SUCCEEDED = "succeeded", _("Succeeded")
        PARTLY = "partly", _("Partly succeeded")
        FAILED = "failed", _("Failed")

    connection = models.ForeignKey(CpmsConnection, on_delete=models.CASCADE, related_name="runs")
    carpark = models.ForeignKey(CarPark, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    key = models.CharField(
        max_length=200, blank=True, db_index=True, help_text=_("Celery task id or idempotency key: one run per job.")
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Records to handle, once known (live progress).")
    )
    progress_done = models.PositiveIntegerField(default=0, help_text=_("Records handled so far (live progress)."))
    errors = models.JSONField(default=list, blank=True, help_text=_("Readable error messages, newest last."))
    refused = models.JSONField(
        default=list, blank=True, help_text=_("Records of the feed that were not stored: [{id, reason}].")
    )
    details = models.JSONField(default=dict, blank=True)
    incident = models.BooleanField(default=False, db_index=True)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["connection", "kind", "-started_at"])]

    def __str__(self) -> str:
        return gettext("%(kind)s of %(connection)s at %(when)s") % {
            "kind": self.get_kind_display(),
            "connection": self.connection,
            "when": f"{self.started_at:%Y-%m-%d %H:%M}",
        }

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.PARTLY, self.Status.FAILED)
