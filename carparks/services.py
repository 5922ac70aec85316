"""Every write to car parks, contracts, credentials, waitlists and cases goes through here.

Each service is one transaction. Services that take or free a place of a product's quota lock
the product row first and the contract row second (always in that order, so two services never
deadlock); the FSM transition on the model runs under those locks and a ContractEvent is written
in the same transaction. Emails and signals leave only through ``transaction.on_commit``.

Contract lifecycle::

    applied ──► approved ──► active ◄──► suspended
       │  ▲                     │            │
       ▼  │ (offer accepted)    └──► terminated ◄┘
    waitlisted ──► offered ──► cancelled (offer expired / withdrawn)
       └──► rejected

An application that finds a free place keeps it while it is reviewed (``applied`` is a quota
state); an application beyond the quota, or behind people already waiting, is waitlisted. When a
place comes free (termination, rejection, cancellation, quota rise) the next in line gets an offer
that expires after ``CARPARKS_OFFER_VALID_DAYS``; an expired offer moves on to the next.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone, translation
from django.utils.text import slugify
from django.utils.translation import gettext, gettext_noop, ngettext
from django.utils.translation import gettext as _
from django_fsm import can_proceed, has_transition_perm

from accounts.roles import MANAGER, RESPONSIBLE_PERMISSION, user_roles
from carparks import signals
from carparks.models import (
    ApiClient,
    CarPark,
    Case,
    CaseEvent,
    Contract,
    ContractChangeRequest,
    ContractEvent,
    Credential,
    Customer,
    Product,
    Vehicle,
    normalise_plate,
    places_held,
)

logger = logging.getLogger(__name__)

PLATE_PATTERN = re.compile(r"^[A-Z0-9ÄÖÜ]{1,12}$")  # see plate_validate
CASE_SLA = {
    Case.Priority.URGENT: timedelta(hours=4),
    Case.Priority.HIGH: timedelta(days=1),
    Case.Priority.NORMAL: timedelta(days=3),
    Case.Priority.LOW: timedelta(days=5),
}
CASE_DEFAULT_PRIORITY = {
    Case.Kind.COMPLAINT: Case.Priority.NORMAL,
    Case.Kind.REFUND: Case.Priority.NORMAL,
    Case.Kind.CARD_REPLACEMENT: Case.Priority.HIGH,
    Case.Kind.CALLBACK: Case.Priority.NORMAL,
    Case.Kind.QUESTION: Case.Priority.LOW,
}


class CarparkError(Exception):
    """A request the car-park domain refuses; the message is fit to show a person.

    ``field`` names the input at fault where there is one (the API reports it under that name).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TransitionError(CarparkError):
    """The contract or case is not in a state that allows the change."""


def offer_valid_for() -> timedelta:
    return timedelta(days=getattr(settings, "CARPARKS_OFFER_VALID_DAYS", 7))


# --- plates and vehicles ------------------------------------------------------------------------


# Typographic dashes and spaces (copied from an email or a document) count as separators too.
PLATE_SEPARATORS = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212\u00a0\u202f\u2009", "-"))
PLATE_MAX_LENGTH = 12
COUNTRY_PATTERN = re.compile(r"^[A-Z]{1,3}$")
# The national formats checked when a plate's country is stated (after normalisation: no separators).
PLATE_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "D": (
        re.compile(r"^[A-ZÄÖÜ]{1,3}[A-Z]{1,2}[1-9][0-9]{0,3}[EH]?$"),
        "a German plate is 1–3 letters for the district, 1–2 letters and 1–4 digits (e.g. M-AB 1234)",
    ),
    "A": (
        re.compile(r"^[A-Z]{1,2}(?=[A-Z]*[0-9])[A-Z0-9]{2,6}$"),
        "an Austrian plate is 1–2 letters for the district and 2–6 letters and digits (e.g. W-12345 X)",
    ),
    "CH": (
        re.compile(r"^[A-Z]{2}[0-9]{1,6}$"),
        "a Swiss plate is 2 letters for the canton and 1–6 digits (e.g. ZH 123456)",
    ),
    "F": (
        re.compile(r"^(?:[A-Z]{2}[0-9]{3}[A-Z]{2}|[0-9]{1,4}[A-Z]{1,3}[0-9]{2}[0-9AB]?)$"),
        "a French plate is 2 letters, 3 digits and 2 letters (e.g. AB-123-CD)",
    ),
}


def plate_validate(plate: str, *, field: str = "plate", country: str = "") -> str:
    """The normalised plate, or a CarparkError naming ``field`` that says why it cannot be a plate.

    Spaces, dashes, dots and case do not matter ('m ab1234', 'M-AB 1234' → 'MAB1234'). With
    ``country`` (an international vehicle code) the plate is also checked against that country's
    format where :data:`PLATE_FORMATS` knows it.
    """
    raw = str(plate or "")
    if "\x00" in raw:
        raise CarparkError("A plate cannot contain a NUL character.", field=field)
    shown = raw.strip()[:30]
    normalised = normalise_plate(raw.translate(PLATE_SEPARATORS))
    if not normalised:
        raise CarparkError("Enter a plate.", field=field)
    wrong = sorted({ch for ch in normalised if not PLATE_PATTERN.match(ch)})
    if wrong:
        listed = " ".join(repr(ch) for ch in wrong[:5])
        raise CarparkError(
            f"{shown!r} is not a licence plate: {listed} cannot be on a plate "
            "(use letters and digits; spaces and dashes are ignored).",
            field=field,
        )
    if len(normalised) > PLATE_MAX_LENGTH:
        raise CarparkError(
            f"{shown!r} is not a licence plate: it has {len(normalised)} letters and digits, "
            f"a plate at most {PLATE_MAX_LENGTH}.",
            field=field,
        )
    country = (country or "").strip().upper()
    if country:
        if not COUNTRY_PATTERN.match(country):
            raise CarparkError(
                f"{country[:10]!r} is not a country code: use the international vehicle code (D, A, CH, F …).",
                field=field,
            )
        known = PLATE_FORMATS.get(country)
        if known is not None and not known[0].match(normalised):
            raise CarparkError(
                _("%(plate)s is not a plate of %(country)s: %(hint)s.")
                % {"plate": repr(shown), "country": country, "hint": known[1]},
                field=field,
            )
    return normalised


def plates_parse(text: str, *, field: str = "vehicles", default_country: str = "D") -> list[PlateInput]:
    """The vehicles of a text with one plate per line, optionally followed by a comma and its country
    ('W-12345 X, A'); a line without one is a plate of ``default_country`` and only checked for what
    any plate must be. Each error names its line; a plate listed twice is refused."""
    items: list[PlateInput] = []
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(str(text or "").splitlines(), start=1):
        if not line.strip():
            continue
        plate, _, country = line.partition(",") if "," in line else line.partition(";")
        try:
            normalised = plate_validate(plate, field=field, country=country.strip())
        except CarparkError as exc:
            raise CarparkError(
                gettext("Line %(number)s: %(error)s") % {"number": number, "error": exc}, field=field
            ) from None
        stated = (country.strip() or default_country).upper()
        if (normalised, stated) in seen:
            raise CarparkError(
                f"Line {number}: {normalised} is listed twice (also on line {seen[normalised, stated]}).", field=field
            )
        seen[normalised, stated] = number
        items.append(PlateInput(plate=normalised, country=stated))
    if not items:
        raise CarparkError("Enter at least one plate, one per line.", field=field)
    return items


@dataclass(frozen=True)
class PlateInput:
    plate: str
    country: str = "D"
    description: str = ""
    cost_centre: str = ""


def _vehicle_for(customer: Customer, item: PlateInput | dict | str | Vehicle, *, field: str = "vehicles") -> Vehicle:
    if isinstance(item, Vehicle):
        if item.customer_id != customer.pk:
            raise CarparkError(_("Vehicle %(vehicle)s belongs to another customer.") % {"vehicle": item}, field=field)
        return item
    if isinstance(item, str):
        item = PlateInput(plate=item)
    elif isinstance(item, dict):
        item = PlateInput(**item)
    plate = plate_validate(item.plate, field=field)
    vehicle, created = Vehicle.objects.get_or_create(
        customer=customer,
        plate=plate,
        country=(item.country or "D").upper(),
        defaults={"description": item.description, "cost_centre": item.cost_centre},
    )
    return vehicle


# --- engine hand-off ----------------------------------------------------------------------------


def _emit(name: str, obj: Any, payload: dict[str, Any], *, event_id: str, user: Any = None) -> Any:
    """Emit business event ``name`` about ``obj`` in the current transaction (so both exist or neither).

    The workflow bound to the event (if any) starts in the same transaction; ``event_id`` is derived
    from the business change, so a retried call records and starts once. A payload that does not
    match the event's schema raises ``workflows.events.EventPayloadInvalid`` and the caller's
    transaction rolls back.
    """
    from workflows.starting import event_emit

    return event_emit(name=name, payload=payload, business_object=obj, event_id=event_id, user=_actor(user))


def _started(event: Any) -> bool:
    return event is not None and event.process_id is not None


def _message_send(name: str, obj: Any, payload: dict | None = None) -> int:
    try:
        from workflows.services import message_send
    except ImportError:
        return 0
    return message_send(name=name, business_object=obj, payload=payload or {})


def _actor(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) else None


def _email(template: str, customer: Customer, context: dict) -> None:
    """Email the customer after commit, in the customer's own language (``Customer.language``)."""
    from parkinghq.emails import send_email

    to, language = customer.email, customer.language or settings.LANGUAGE_CODE

    def send() -> None:
        with translation.override(language):
            send_email(template=template, to=[to], context=context)

    transaction.on_commit(send)


# --- locking and transitions --------------------------------------------------------------------


def _lock_product(product_id: int) -> Product:
    return Product.objects.select_for_update().select_related("carpark").get(pk=product_id)


def _lock_contract(contract_id: int) -> Contract:
    return (
        Contract.objects.select_for_update(of=("self",))
        .select_related("product__carpark", "customer")
        .get(pk=contract_id)
    )


TRANSITION_LABELS = {
    "waitlist": gettext_noop("waitlisted"),
    "offer": gettext_noop("offered a place"),
    "accept_offer": gettext_noop("accepted"),
    "approve": gettext_noop("approved"),
    "reject": gettext_noop("rejected"),
    "activate": gettext_noop("activated"),
    "suspend": gettext_noop("suspended"),
    "reactivate": gettext_noop("reactivated"),
    "terminate": gettext_noop("terminated"),
    "cancel": gettext_noop("cancelled"),
}


def _state_in_prose(obj: Any) -> str:
    """A contract's or case's state inside a sentence: lower case in English, as labelled in German."""
    label = str(obj.get_state_display())
    return label if (translation.get_language() or "en").startswith("de") else label.lower()


def _transition(
    obj: Contract | Case,
    name: str,
    *,
    user: Any = None,
    note: str = "",
    update_fields: Sequence[str] = (),
) -> None:
    """Run FSM transition ``name`` on a locked object, save it and write its history row."""
    method = getattr(obj, name)
    label = TRANSITION_LABELS.get(name, name)
    kind = "Contract" if isinstance(obj, Contract) else "Case"
    if not can_proceed(method, check_conditions=False):
        raise TransitionError(
            (
                _("Contract %(number)s is %(state)s and cannot be %(done)s.")
                if kind == "Contract"
                else _("Case %(number)s is %(state)s and cannot be %(done)s.")
            )
            % {"number": obj.pk, "state": _state_in_prose(obj), "done": _(label)}
        )
    # The permission alone (django-fsm's has_transition_perm also checks the conditions): someone who may
    # take the step but not now is told why below, not that they may not.
    if user is not None and not method._django_fsm.has_transition_perm(obj, obj.state, user):
        raise PermissionDenied(f"You may not mark {kind.lower()} {obj.pk} as {label}.")
    if not can_proceed(method):
        raise TransitionError(_condition_message(obj, name))
    from_state = obj.state
    method()
    obj.save(update_fields=["state", "updated_at", *update_fields])
    if isinstance(obj, Contract):
        ContractEvent.objects.create(
            contract=obj, from_state=from_state, to_state=obj.state, actor=_actor(user), note=note
        )
        contract, to_state = obj, obj.state
        transaction.on_commit(
            lambda: signals.contract_state_changed.send(
                sender=Contract, contract=contract, from_state=from_state, to_state=to_state
            )
        )
    else:
        CaseEvent.objects.create(case=obj, from_state=from_state, to_state=obj.state, actor=_actor(user), note=note)


def _condition_message(obj: Contract | Case, name: str) -> str:
    if isinstance(obj, Contract):
        if name == "offer":
            return f"{obj.product} has no free place to offer."
        if name in ("approve", "reject") and obj.review_task_open():
            return (
                f"Contract {obj.pk} waits for its review task in the basket: {name} it there, where the review decides."
            )
        if name == "approve":
            return f"{obj.product} is no longer sold."
        if name == "activate":
            return f"Contract {obj.pk} has no vehicle; add one before activating it."
    return f"{obj} cannot change now."


def _contract_note(contract: Contract, note: str, user: Any = None) -> ContractEvent:
    return ContractEvent.objects.create(
        contract=contract, from_state=contract.state, to_state=contract.state, actor=_actor(user), note=note
    )


# --- customers ----------------------------------------------------------------------------------


def customer_create(
    *,
    kind: str = Customer.Kind.PRIVATE,
    name: str,
    email: str,
    user: Any = None,
    channel: str = "portal",
    **fields: Any,
) -> Customer:
    """A new customer; emits ``customer.created``."""
    allowed = {f.name for f in Customer._meta.get_fields() if getattr(f, "concrete", False)} - {"id", "created_at"}
    unknown = set(fields) - allowed
    if unknown:
        raise CarparkError(f"Unknown customer fields: {', '.join(sorted(unknown))}.")
    if kind == Customer.Kind.CORPORATE and not fields.get("company_number"):
        raise CarparkError("A corporate customer needs a company number.", field="company_number")
    with transaction.atomic():
        customer = Customer.objects.create(kind=kind, name=name, email=email, **fields)
        _emit(
            "customer.created",
            customer,
            {
                "customer_id": customer.pk,
                "customer_name": customer.name,
                "customer_kind": customer.kind,
                "channel": channel,
            },
            event_id=f"customer.created:{customer.pk}",
            user=user,
        )
    return customer


def customer_find_or_create(
    *, kind: str, name: str, email: str, user: Any = None, channel: str = "portal", **fields: Any
) -> Customer:
    """The existing customer (a company by company number, a person by email and name) or a new one."""
    with transaction.atomic():
        existing = None
        if kind == Customer.Kind.CORPORATE and fields.get("company_number"):
            existing = Customer.objects.filter(kind=kind, company_number=fields["company_number"]).first()
        elif kind == Customer.Kind.PRIVATE:
            existing = Customer.objects.filter(kind=kind, email__iexact=email, name__iexact=name).first()
        if existing is not None:
            return existing
        return customer_create(kind=kind, name=name, email=email, user=user, channel=channel, **fields)


# --- car parks ----------------------------------------------------------------------------------

CARPARK_SOURCES = ("portal", "cpms_sync", "api")


def _carpark_code(name: str) -> str:
    base = slugify(name)[:40] or "carpark"
    taken = set(CarPark.objects.filter(code__startswith=base).values_list("code", flat=True))
    code, n = base, 2
    while code in taken:
        code, n = f"{base}-{n}", n + 1
    return code


def carpark_create(
    *,
    name: str,
    street: str = "",
    postcode: str = "",
    city: str = "",
    country: str = "DE",
    capacity: int = 0,
    time_zone: str = "Europe/Berlin",
    latitude: Decimal | float | None = None,
    longitude: Decimal | float | None = None,
    code: str = "",
    operator: str = "",
    opening_hours: str = "",
    cpms_reference: str = "",
    user: Any = None,
    source: str = "portal",
    connection_id: int | None = None,
) -> CarPark:
    """Add a car park and emit ``carpark.added`` (the onboarding workflow, when one is bound, starts).

    ``source`` says who added it: a person in the portal, the CPMS sync (give its ``connection_id``)
    or the API. A Car-park manager who adds one becomes responsible for it, so they see it. Without
    ``code`` one is made from the name.
    """
    name = (name or "").strip()
    if not name:
        raise CarparkError("Give the car park a name.", field="name")
    if source not in CARPARK_SOURCES:
        raise CarparkError(f"Unknown source {source!r}.", field="source")
    if capacity is None or int(capacity) < 0:
        raise CarparkError("The capacity cannot be negative.", field="capacity")
    try:
        ZoneInfo(time_zone)
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        raise CarparkError(
            f"{time_zone!r} is not a time zone (for example Europe/Berlin).", field="time_zone"
        ) from None
    if latitude is not None and not -90 <= float(latitude) <= 90:
        raise CarparkError("The latitude lies between -90 and 90.", field="latitude")
    if longitude is not None and not -180 <= float(longitude) <= 180:
        raise CarparkError("The longitude lies between -180 and 180.", field="longitude")
    with transaction.atomic():
        code = code.strip() or _carpark_code(name)
        if CarPark.objects.filter(code=code).exists():
            raise CarparkError(
                gettext("The code %(code)s is already used by another car park.") % {"code": repr(code)}, field="code"
            )
        carpark = CarPark.objects.create(
            name=name,
            code=code,
            street=street.strip(),
            postcode=postcode.strip(),
            city=city.strip(),
            country=(country or "DE").upper(),
            capacity=int(capacity),
            time_zone=time_zone,
            latitude=latitude,
            longitude=longitude,
            operator=operator,
            opening_hours=opening_hours,
            cpms_reference=cpms_reference,
        )
        if user is not None and MANAGER in user_roles(user):
            from guardian.shortcuts import assign_perm

            assign_perm(RESPONSIBLE_PERMISSION, user, carpark)
            user.__dict__.pop("_portal_carparks", None)
        _emit(
            "carpark.added",
            carpark,
            {
                "carpark_id": carpark.pk,
                "carpark": carpark.name,
                "city": carpark.city,
                "capacity": carpark.capacity,
                "source": source,
                "connection_id": connection_id,
            },
            event_id=f"carpark.added:{carpark.pk}",
            user=user,
        )
    return carpark


CARPARK_EDIT_FIELDS = (
    "name", "street", "postcode", "city", "capacity", "time_zone", "latitude", "longitude", "opening_hours",
    "cpms_reference",
)  # fmt: skip


def carpark_update(*, carpark: CarPark, user: Any = None, **values: Any) -> CarPark:
    """Change a car park's address, coordinates, capacity, opening hours, time zone or CPMS reference (audited)."""
    from accounts.services import audit_record

    unknown = set(values) - set(CARPARK_EDIT_FIELDS)
    if unknown:
        raise CarparkError(f"Unknown car-park field {sorted(unknown)[0]!r}.")
    if "name" in values:
        values["name"] = (values["name"] or "").strip()
        if not values["name"]:
            raise CarparkError("Give the car park a name.", field="name")
    for text in ("street", "postcode", "city", "opening_hours", "cpms_reference"):
        if text in values:
            values[text] = (values[text] or "").strip()
    if "capacity" in values and (values["capacity"] is None or int(values["capacity"]) < 0):
        raise CarparkError("The capacity cannot be negative.", field="capacity")
    if "time_zone" in values:
        try:
            ZoneInfo(values["time_zone"])
        except (ValueError, KeyError, ZoneInfoNotFoundError):
            raise CarparkError(
                f"{values['time_zone']!r} is not a time zone (for example Europe/Berlin).", field="time_zone"
            ) from None
    if values.get("latitude") is not None and not -90 <= float(values["latitude"]) <= 90:
        raise CarparkError("The latitude lies between -90 and 90.", field="latitude")
    if values.get("longitude") is not None and not -180 <= float(values["longitude"]) <= 180:
        raise CarparkError("The longitude lies between -180 and 180.", field="longitude")
    with transaction.atomic():
        carpark = CarPark.objects.select_for_update().get(pk=carpark.pk)
        changed = {key: value for key, value in values.items() if getattr(carpark, key) != value}
        if not changed:
            return carpark
        old = {key: str(getattr(carpark, key)) for key in changed}
        for key, value in changed.items():
            setattr(carpark, key, value)
        carpark.save(update_fields=[*changed, "updated_at"])
        audit_record(
            actor=user,
            action="carparks.carpark_updated",
            target=carpark,
            old=old,
            new={key: str(value) for key, value in changed.items()},
        )
    return carpark


# --- contracts ----------------------------------------------------------------------------------


def first_of_next_month(today: date | None = None) -> date:
    today = today or timezone.localdate()
    return (today.replace(day=1) + timedelta(days=32)).replace(day=1)


def _places_taken(product_id: int, *, exclude_id: int | None = None) -> int:
    """The places of the product's quota held (a contract holds ``Contract.places`` of them)."""
    qs = Contract.objects.filter(product_id=product_id, state__in=Contract.QUOTA_STATES)
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return places_held(qs)


RUNNING_STATES = (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED)


def _vehicle_limit_check(product: Product, places: int, count: int, *, field: str = "vehicles") -> None:
    limit = places * product.vehicles_per_place
    if count > limit:
        per = "vehicle" if product.vehicles_per_place == 1 else "vehicles"
        held = "1 place" if places == 1 else f"{places} places"
        raise CarparkError(
            f"{count} vehicles are more than the {limit} allowed: {held} × {product.vehicles_per_place} {per} "
            f"per place of {product.name}.",
            field=field,
        )


def _plates_free_check(customer: Customer, vehicles: Iterable[Vehicle], *, field: str = "vehicles") -> None:
    """Refuse a plate that is on a running contract of another customer (naming the plate)."""
    by_plate = {(v.plate, v.country): v for v in vehicles}
    if not by_plate:
        return
    taken = (
        Vehicle.objects.filter(plate__in=[p for p, _ in by_plate], contracts__state__in=RUNNING_STATES)
        .exclude(customer=customer)
        .values_list("plate", "country")
        .distinct()
    )
    clash = sorted(key for key in taken if key in by_plate)
    if clash:
        plates = ", ".join(f"{plate} ({country})" for plate, country in clash)
        one = len(clash) == 1
        raise CarparkError(
            f"Plate {plates} {'is' if one else 'are'} already on a running contract of another customer.",
            field=field,
        )


def _plates_listed_once(items: Sequence[Vehicle], *, field: str = "vehicles") -> None:
    seen: set[tuple[str, str]] = set()
    for vehicle in items:
        key = (vehicle.plate, vehicle.country)
        if key in seen:
            raise CarparkError(_("Plate %(plate)s is listed twice.") % {"plate": vehicle.plate}, field=field)
        seen.add(key)


def contract_apply(
    *,
    customer: Customer,
    product: Product,
    vehicles: Iterable[PlateInput | dict | str | Vehicle],
    start_date: date | None = None,
    end_date: date | None = None,
    cost_centre: str = "",
    user: Any = None,
    note: str = "",
    channel: str = "portal",
    places: int = 1,
    api_client: ApiClient | None = None,
) -> Contract:
    """A new season application: takes a free place (and emits ``application.received``) or joins the waitlist.

    The API and the staff's application page both come here, so they validate alike: the start date is
    not in the past, the product is offered to the customer's kind, no plate is listed twice or on a
    running contract of another customer, and vehicles ≤ ``places`` × the product's vehicles per place.
    A corporate contract may hold several places (private ones hold one); each counts against the quota.
    """
    today = timezone.localdate()
    start_date = start_date or today
    if start_date < today:
        raise CarparkError("The start date cannot be in the past.", field="start_date")
    if end_date is not None and end_date < start_date:
        raise CarparkError("The end date must not be before the start date.", field="end_date")
    if isinstance(places, bool) or not isinstance(places, int) or places < 1:
        raise CarparkError("A contract holds at least 1 place.", field="places")
    if places > 1 and customer.kind != Customer.Kind.CORPORATE:
        raise CarparkError("A private customer's contract holds 1 place.", field="places")
    if places > 32767:
        raise CarparkError("That is more places than a contract can hold.", field="places")
    with transaction.atomic():
        product = _lock_product(product.pk)
        if not product.is_active or not product.carpark.is_active:
            raise CarparkError(_("%(product)s is not sold at the moment.") % {"product": product}, field="product")
        if product.audience not in (Product.Audience.ANY, customer.kind):
            raise CarparkError(
                f"{product.name} is sold to {product.get_audience_display().lower()} only.", field="product"
            )
        chosen = [_vehicle_for(customer, item) for item in vehicles]
        if not chosen:
            raise CarparkError("Name at least one vehicle.", field="vehicles")
        _plates_listed_once(chosen)
        _vehicle_limit_check(product, places, len(chosen))
        _plates_free_check(customer, chosen)
        contract = Contract.objects.create(
            customer=customer,
            product=product,
            start_date=start_date,
            end_date=end_date,
            deposit=product.deposit,
            monthly_price=product.monthly_price,
            cost_centre=cost_centre,
            places=places,
            api_client=api_client,  # an API client owns what it applied for (carparks.access)
        )
        contract.vehicles.set({v.pk: v for v in chosen}.values())
        ContractEvent.objects.create(
            contract=contract, from_state="", to_state=contract.state, actor=_actor(user), note=note or "Applied."
        )
        queue_exists = Contract.objects.filter(product=product, state=Contract.State.WAITLISTED).exists()
        if queue_exists or _places_taken(product.pk, exclude_id=contract.pk) + places > product.quota:
            last = Contract.objects.filter(product=product).aggregate(m=Max("waitlist_position"))["m"] or 0
            contract.waitlist_position = last + 1
            position = Contract.objects.filter(product=product, state=Contract.State.WAITLISTED).count() + 1
            _transition(
                contract,
                "waitlist",
                note=f"No place free: number {position} on the waitlist.",
                update_fields=["waitlist_position"],
            )
            _email("contract_waitlisted", customer, {"contract": contract, "position": position})
        else:
            _application_emit(contract, channel=channel, user=user)
    return contract


def _application_emit(contract: Contract, *, channel: str, user: Any = None) -> Any:
    """Emit ``application.received``: the contract holds a place and waits for its review.

    An application straight from the customer and one taken up from the waitlist are two events.
    """
    suffix = ":offer" if channel == "waitlist" else ""
    return _emit(
        "application.received",
        contract,
        _application_payload(contract, channel=channel),
        event_id=f"application.received:{contract.pk}{suffix}",
        user=user,
    )


def _contract_payload(contract: Contract) -> dict[str, Any]:
    """The fields every contract event carries (see ``workflows.events``)."""
    return {
        "contract_id": contract.pk,
        "customer_id": contract.customer_id,
        "customer_name": contract.customer.name,
        "customer_kind": contract.customer.kind,
        "product_id": contract.product_id,
        "product": contract.product.name,
        "carpark_id": contract.product.carpark_id,
        "carpark": contract.product.carpark.name,
    }


def _application_payload(contract: Contract, *, channel: str) -> dict[str, Any]:
    plates = [v.plate for v in contract.vehicles.all()]
    return {
        **_contract_payload(contract),
        "channel": channel,
        "start_date": contract.start_date.isoformat(),
        "deposit": float(contract.deposit),
        "monthly_price": float(contract.monthly_price),
        "plates": plates,
        "vehicle_count": len(plates),
        "places": contract.places,
    }


def contract_approve(*, contract: Contract, user: Any = None, note: str = "") -> Contract:
    with transaction.atomic():
        _lock_product(contract.product_id)
        contract = _lock_contract(contract.pk)
        if _places_taken(contract.product_id, exclude_id=contract.pk) + contract.places > contract.product.quota:
            # Cannot happen through these services (an applied contract holds its place); guards hand edits.
            raise CarparkError(_("%(product)s is sold out.") % {"product": contract.product}, field="product")
        contract.monthly_price = contract.product.monthly_price
        _transition(contract, "approve", user=user, note=note or "Approved.", update_fields=["monthly_price"])
        _email("contract_approved", contract.customer, {"contract": contract})
    return contract


def contract_reject(*, contract: Contract, user: Any = None, reason: str = "") -> Contract:
    with transaction.atomic():
        product = _lock_product(contract.product_id)
        contract = _lock_contract(contract.pk)
        contract.waitlist_position = None
        _transition(contract, "reject", user=user, note=reason or "Rejected.", update_fields=["waitlist_position"])
        _email("contract_rejected", contract.customer, {"contract": contract, "reason": reason})
        waitlist_advance(product=product)
    return contract


def contract_activate(*, contract: Contract, user: Any = None, note: str = "") -> Contract:
    """Start the contract and issue one licence-plate credential per vehicle."""
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        _transition(contract, "activate", user=user, note=note or "Activated.")
        _issue_plate_credentials(contract, contract.vehicles.all())
    return contract


def _issue_plate_credentials(
    contract: Contract, vehicles: Iterable[Vehicle], *, valid_from: date | None = None
) -> None:
    existing = set(
        contract.credentials.filter(kind=Credential.Kind.PLATE, is_active=True).values_list("identifier", flat=True)
    )
    for vehicle in vehicles:
        if vehicle.plate in existing:
            continue
        try:
            with transaction.atomic():
                Credential.objects.create(
                    contract=contract,
                    carpark_id=contract.product.carpark_id,
                    kind=Credential.Kind.PLATE,
                    identifier=vehicle.plate,
                    valid_from=valid_from or contract.start_date,
                    valid_until=contract.end_date,
                )
        except IntegrityError:
            raise CarparkError(
                f"Plate {vehicle.plate} already opens the barrier at {contract.product.carpark} for another contract.",
                field="plate",
            ) from None
    transaction.on_commit(lambda: signals.credentials_changed.send(sender=Contract, contract=contract))


def _deactivate_credentials(contract: Contract, *, until: date, qs: Any = None) -> int:
    qs = contract.credentials.filter(is_active=True) if qs is None else qs
    changed = qs.update(is_active=False, valid_until=until)
    if changed:
        transaction.on_commit(lambda: signals.credentials_changed.send(sender=Contract, contract=contract))
    return changed


def contract_suspend(*, contract: Contract, user: Any = None, reason: str = "") -> Contract:
    """Block parking (the credentials stop working) but keep the place."""
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        _transition(contract, "suspend", user=user, note=reason or "Suspended.")
        contract.credentials.filter(is_active=True).update(is_active=False)
        transaction.on_commit(lambda: signals.credentials_changed.send(sender=Contract, contract=contract))
    return contract


def contract_reactivate(*, contract: Contract, user: Any = None, reason: str = "") -> Contract:
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        _transition(contract, "reactivate", user=user, note=reason or "Reactivated.")
        card = contract.credentials.filter(kind=Credential.Kind.RFID).order_by("-created_at", "-pk").first()
        if (
            card is not None
            and not card.is_active
            and (card.valid_until is None or card.valid_until >= timezone.localdate())
        ):
            try:
                with transaction.atomic():
                    Credential.objects.filter(pk=card.pk).update(is_active=True)
            except IntegrityError:
                raise CarparkError(
                    f"Card {card.identifier} is now used by another contract; issue a new card."
                ) from None
        _issue_plate_credentials(contract, contract.vehicles.all(), valid_from=timezone.localdate())
    return contract


def contract_terminate(
    *, contract: Contract, user: Any = None, end_date: date | None = None, reason: str = ""
) -> Contract:
    """End the contract now: credentials stop, the place goes to the next in line."""
    with transaction.atomic():
        product = _lock_product(contract.product_id)
        contract = _lock_contract(contract.pk)
        end = end_date or contract.end_date or timezone.localdate()
        if contract.end_date is None or end < contract.end_date:
            contract.end_date = end
        _transition(
            contract,
            "terminate",
            user=user,
            note=reason or f"Terminated as of {contract.end_date:%Y-%m-%d}.",
            update_fields=["end_date"],
        )
        _deactivate_credentials(contract, until=contract.end_date)
        _email("contract_terminated", contract.customer, {"contract": contract})
        waitlist_advance(product=product)
    return contract


def contract_cancel(*, contract: Contract, user: Any = None, reason: str = "") -> Contract:
    """Withdraw an application or an offer before the contract starts."""
    with transaction.atomic():
        product = _lock_product(contract.product_id)
        contract = _lock_contract(contract.pk)
        contract.waitlist_position = None
        contract.offer_expires_at = None
        _transition(
            contract,
            "cancel",
            user=user,
            note=reason or "Cancelled.",
            update_fields=["waitlist_position", "offer_expires_at"],
        )
        waitlist_advance(product=product)
    return contract


def contract_processes_close(*, contract: Contract, user: Any = None, reason: str = "") -> int:
    """Cancel the review and offer processes still running about a contract that a person ended by hand
    (cancelled or rejected from the contract page), so no task waits for a decision already taken."""
    try:
        from django.contrib.contenttypes.models import ContentType

        from workflows.errors import WorkflowError
        from workflows.models import Process
        from workflows.services import process_cancel
    except ImportError:
        return 0
    # The review and offer processes are those the contract's application and offer events started.
    running = Process.objects.filter(
        content_type=ContentType.objects.get_for_model(Contract),
        object_id=contract.pk,
        state=Process.State.RUNNING,
        start_event__name__in=["application.received", "waitlist.place_freed"],
    )
    closed = 0
    for process in running:
        try:
            process_cancel(
                process=process, user=_actor(user), reason=reason or f"Contract {contract.pk} ended by hand."
            )
        except WorkflowError:
            continue  # finished meanwhile
        closed += 1
    return closed


def earliest_end_date(contract: Contract, today: date | None = None) -> date:
    return (today or timezone.localdate()) + timedelta(days=contract.product.notice_period_days)


def contract_request_termination(
    *,
    contract: Contract,
    user: Any = None,
    end_date: date | None = None,
    reason: str = "",
    enforce_notice: bool = True,
) -> Contract:
    """Give notice: record the end date and emit ``termination.requested``; the process it starts ends the
    contract on that date.

    Customers (the API) must respect the product's notice period; staff may waive it.
    """
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        if contract.state not in (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED):
            raise TransitionError(
                _("Contract %(number)s is %(state)s; only running contracts can be terminated.")
                % {"number": contract.pk, "state": _state_in_prose(contract)}
            )
        if user is not None and not has_transition_perm(contract.terminate, user):
            raise PermissionDenied(f"You may not terminate contract {contract.pk}.")
        earliest = earliest_end_date(contract) if enforce_notice else timezone.localdate()
        end_date = end_date or earliest
        if end_date < earliest:
            raise CarparkError(
                f"The notice period is {contract.product.notice_period_days} days: "
                f"the earliest end date is {earliest:%Y-%m-%d}.",
                field="end_date",
            )
        contract.end_date = end_date
        contract.save(update_fields=["end_date", "updated_at"])
        _contract_note(contract, f"Termination requested for {end_date:%Y-%m-%d}. {reason}".strip(), user)
        zone = ZoneInfo(contract.product.carpark.time_zone)
        terminate_at = datetime.combine(end_date + timedelta(days=1), time.min, tzinfo=zone)
        event = _emit(
            "termination.requested",
            contract,
            {
                **_contract_payload(contract),
                "end_date": end_date.isoformat(),
                "terminate_at": terminate_at.isoformat(),
                "reason": reason,
                "deposit": float(contract.deposit),
            },
            event_id=f"termination.requested:{contract.pk}:{end_date.isoformat()}",
            user=user,
        )
    if not _started(event) and end_date <= timezone.localdate():
        # The event started no process, so nothing waits for the date; it has come, so end it now.
        contract = contract_terminate(contract=contract, end_date=end_date, reason=reason)
    return contract


def contracts_end_due(*, today: date | None = None) -> int:
    """Terminate running contracts whose end date has passed (the safety net under the processes)."""
    today = today or timezone.localdate()
    due = Contract.objects.filter(
        state__in=[Contract.State.ACTIVE, Contract.State.SUSPENDED], end_date__lt=today
    ).values_list("pk", flat=True)
    done = 0
    for pk in list(due):
        try:
            contract_terminate(contract=Contract.objects.get(pk=pk), reason="End date reached.")
            done += 1
        except TransitionError:
            continue  # ended meanwhile
    return done


def contract_change_plate(
    *,
    contract: Contract,
    old_plate: str,
    new_plate: str,
    country: str = "D",
    user: Any = None,
    channel: str = "portal",
) -> Contract:
    """Swap one vehicle of the contract for another; a running contract's credential follows at once."""
    old = normalise_plate(old_plate)
    new = plate_validate(new_plate, field="new_plate")
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        if contract.is_final:
            raise TransitionError(
                _("Contract %(number)s is %(state)s.") % {"number": contract.pk, "state": _state_in_prose(contract)}
            )
        if user is not None and not has_transition_perm(contract.terminate, user) and contract.state != "applied":
            raise PermissionDenied(f"You may not change contract {contract.pk}.")
        current = contract.vehicles.filter(plate=old).first()
        if current is None:
            raise CarparkError(
                _("Plate %(plate)s is not on contract %(number)s.") % {"plate": old, "number": contract.pk},
                field="old_plate",
            )
        if new == old and current.country == country.upper():
            raise CarparkError("The new plate is the same as the old one.", field="new_plate")
        vehicle = _vehicle_for(contract.customer, PlateInput(plate=new, country=country), field="new_plate")
        contract.vehicles.remove(current)
        contract.vehicles.add(vehicle)
        today = timezone.localdate()
        if contract.state == Contract.State.ACTIVE:
            _deactivate_credentials(
                contract,
                until=today,
                qs=contract.credentials.filter(is_active=True, kind=Credential.Kind.PLATE, identifier=old),
            )
            _issue_plate_credentials(contract, [vehicle], valid_from=today)
        note = _contract_note(contract, f"Plate changed from {old} to {new}.", user)
        _change_requested(contract, note, kind="plate", effective_date=today, channel=channel, user=user)
    return contract


def _change_requested(
    contract: Contract,
    note: ContractEvent,
    *,
    kind: str,
    effective_date: date,
    channel: str,
    user: Any,
    review: ContractChangeRequest | None = None,
) -> None:
    """Emit ``contract.change_requested`` for the change ``note`` records (one event per change).

    A change made at once carries ``needs_review`` false; a change ``review`` stages until someone
    decides carries ``needs_review`` true with the places it asks for (the places review starts on it).
    """
    extra: dict[str, Any] = {"needs_review": review is not None}
    if review is not None:
        extra |= {
            "places_requested": review.places_requested,
            "change_request_id": review.pk,
            "plates": [item["plate"] for item in review.plates],
        }
    _emit(
        "contract.change_requested",
        contract,
        {
            **_contract_payload(contract),
            "kind": kind,
            "effective_date": effective_date.isoformat(),
            "details": note.note,
            "channel": channel,
            **extra,
        },
        event_id=f"contract.change_requested:{contract.pk}:{note.pk}",
        user=user,
    )


def contract_add_vehicles(
    *, contract: Contract, vehicles: Iterable[PlateInput | dict | str], user: Any = None, channel: str = "portal"
) -> Contract:
    """Add vehicles (a corporate fleet) to a contract; a running contract gets their credentials.

    Within the contract's places × the product's vehicles per place they are added at once. Beyond
    that nothing is added: a change request for the places needed is recorded and
    ``contract.change_requested`` is emitted with ``needs_review`` (the places review decides; see
    :func:`contract_change_request_approve`). The returned contract's ``change_request`` says which.
    """
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        if contract.is_final:
            raise TransitionError(
                _("Contract %(number)s is %(state)s.") % {"number": contract.pk, "state": _state_in_prose(contract)}
            )
        added = [_vehicle_for(contract.customer, item) for item in vehicles]
        if not added:
            raise CarparkError("Enter at least one plate.", field="plates")
        _plates_listed_once(added, field="plates")
        current = set(contract.vehicles.values_list("pk", flat=True))
        added = [v for v in added if v.pk not in current]
        _plates_free_check(contract.customer, added, field="plates")
        contract.change_request = None
        total = len(current) + len(added)
        ratio = max(contract.product.vehicles_per_place, 1)
        if total > contract.places * ratio:
            return _vehicles_review_request(contract, added, total=total, ratio=ratio, channel=channel, user=user)
        contract.vehicles.add(*added)
        if contract.state == Contract.State.ACTIVE:
            _issue_plate_credentials(contract, added, valid_from=timezone.localdate())
        note = _contract_note(contract, "Vehicles added: " + ", ".join(v.plate for v in added), user)
        _change_requested(
            contract, note, kind="vehicle", effective_date=timezone.localdate(), channel=channel, user=user
        )
    return contract


def _vehicles_review_request(
    contract: Contract, added: list[Vehicle], *, total: int, ratio: int, channel: str, user: Any
) -> Contract:
    places = -(-total // ratio)  # the places ``total`` vehicles need
    request = ContractChangeRequest.objects.create(
        contract=contract,
        kind="vehicle",
        places_requested=places,
        plates=[{"plate": v.plate, "country": v.country} for v in added],
        channel=channel,
        requested_by=_actor(user),
    )
    note = _contract_note(
        contract,
        f"Change requested: add {', '.join(v.plate for v in added)}; {total} vehicles need {places} places "
        f"(the contract holds {contract.places}). Waits for review.",
        user,
    )
    _change_requested(
        contract, note, kind="vehicle", effective_date=timezone.localdate(), channel=channel, user=user, review=request
    )
    contract.change_request = request
    return contract


def _lock_change_request(request_id: int) -> ContractChangeRequest:
    return ContractChangeRequest.objects.select_for_update().get(pk=request_id)


def contract_change_request_approve(
    *, request: ContractChangeRequest, user: Any = None, note: str = ""
) -> ContractChangeRequest:
    """Carry out a reviewed change request: the contract holds the places asked for and gets the vehicles
    (with their credentials when it runs). Idempotent: a decided request stays as it is. Refused when
    the product's quota has no room for the extra places."""
    contract_id = ContractChangeRequest.objects.values_list("contract_id", flat=True).get(pk=request.pk)
    with transaction.atomic():
        product = _lock_product(_product_id(contract_id))
        contract = _lock_contract(contract_id)
        request = _lock_change_request(request.pk)
        if request.state != ContractChangeRequest.State.PENDING:
            return request
        if contract.is_final:
            raise TransitionError(
                _("Contract %(number)s is %(state)s.") % {"number": contract.pk, "state": _state_in_prose(contract)}
            )
        places = max(contract.places, request.places_requested)
        if contract.holds_place and _places_taken(product.pk, exclude_id=contract.pk) + places > product.quota:
            free = max(product.quota - _places_taken(product.pk, exclude_id=contract.pk), 0)
            raise CarparkError(
                f"{product.name} has {free} places free for this contract; it would need {places}.", field="places"
            )
        vehicles = [_vehicle_for(contract.customer, dict(item)) for item in request.plates]
        _plates_free_check(contract.customer, vehicles, field="plates")
        contract.places = places
        contract.save(update_fields=["places", "updated_at"])
        contract.vehicles.add(*vehicles)
        if contract.state == Contract.State.ACTIVE:
            _issue_plate_credentials(contract, vehicles, valid_from=timezone.localdate())
        request.state = ContractChangeRequest.State.APPROVED
        request.decided_by = _actor(user)
        request.decided_at = timezone.now()
        request.note = note
        request.save(update_fields=["state", "decided_by", "decided_at", "note"])
        _contract_note(
            contract,
            f"Change request {request.pk} approved: {places} places, vehicles added: {request.plate_list}. "
            f"{note}".strip(),
            user,
        )
    return request


def contract_change_request_reject(
    *, request: ContractChangeRequest, user: Any = None, reason: str = ""
) -> ContractChangeRequest:
    """Drop a change request after its review (nothing on the contract changes). Idempotent."""
    with transaction.atomic():
        request = _lock_change_request(request.pk)
        if request.state != ContractChangeRequest.State.PENDING:
            return request
        request.state = ContractChangeRequest.State.REJECTED
        request.decided_by = _actor(user)
        request.decided_at = timezone.now()
        request.note = reason
        request.save(update_fields=["state", "decided_by", "decided_at", "note"])
        _contract_note(
            request.contract,
            f"Change request {request.pk} rejected: {request.plate_list} not added. {reason}".strip(),
            user,
        )
    return request


def contract_stage_change(
    *,
    contract: Contract,
    next_product: Product | None = None,
    next_plate: str = "",
    country: str = "D",
    on: date | None = None,
    user: Any = None,
    channel: str = "portal",
) -> Contract:
    """Stage a product and/or vehicle change that takes effect on ``on`` (default: the first of next month)."""
    on = on or first_of_next_month()
    if on <= timezone.localdate():
        raise CarparkError("A staged change takes effect on a future day.", field="on")
    if next_product is None and not next_plate:
        raise CarparkError("Choose the next product or the next vehicle.", field="next_product")
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        if contract.state not in (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED):
            raise TransitionError(
                _("Contract %(number)s is %(state)s.") % {"number": contract.pk, "state": _state_in_prose(contract)}
            )
        if user is not None and not has_transition_perm(contract.terminate, user):
            raise PermissionDenied(f"You may not change contract {contract.pk}.")
        if next_product is not None and (not next_product.is_active or next_product.pk == contract.product_id):
            raise CarparkError("Choose another product that is sold.", field="next_product")
        contract.next_product = next_product
        contract.next_vehicle = (
            _vehicle_for(contract.customer, PlateInput(plate=next_plate, country=country), field="next_plate")
            if next_plate
            else None
        )
        contract.next_change_on = on
        contract.save(update_fields=["next_product", "next_vehicle", "next_change_on", "updated_at"])
        parts = [
            f"product {next_product.name}" if next_product else "",
            f"vehicle {contract.next_vehicle}" if next_plate else "",
        ]
        note = _contract_note(
            contract, f"Change staged for {on:%Y-%m-%d}: " + " and ".join(p for p in parts if p) + ".", user
        )
        if next_product is None:
            kind = "vehicle"
        elif next_product.carpark_id != contract.product.carpark_id:
            kind = "carpark"
        else:
            kind = "product"
        _change_requested(contract, note, kind=kind, effective_date=on, channel=channel, user=user)
    return contract


def contract_apply_staged_change(*, contract: Contract) -> Contract:
    """Carry out a due staged change. A next product without a free place stays staged (noted in the history)."""
    current = Contract.objects.values("product_id", "next_product_id").get(pk=contract.pk)
    with transaction.atomic():
        # Lock order as everywhere: products (by id), then the contract.
        product_ids = sorted({current["product_id"], current["next_product_id"]} - {None})
        locked = {pk: _lock_product(pk) for pk in product_ids}
        contract = _lock_contract(contract.pk)
        today = timezone.localdate()
        if contract.next_change_on is None or contract.next_change_on > today:
            return contract
        if contract.state not in (Contract.State.APPROVED, Contract.State.ACTIVE, Contract.State.SUSPENDED):
            return contract
        if contract.next_product_id not in (None, current["next_product_id"]):
            return contract  # staged again meanwhile; the next run takes it
        notes = []
        old_product = contract.product
        target = locked.get(contract.next_product_id) if contract.next_product_id else None
        if target is not None:
            if _places_taken(target.pk) + contract.places > target.quota:
                _contract_note(contract, f"Staged move to {target.name} waits: no free place.")
                return contract
            contract.product = target
            contract.monthly_price = target.monthly_price
            notes.append(f"product {old_product.name} → {target.name}")
        if contract.next_vehicle_id is not None:
            old = [v.plate for v in contract.vehicles.all()]
            contract.vehicles.set([contract.next_vehicle])
            notes.append(f"vehicle {', '.join(old)} → {contract.next_vehicle.plate}")
        contract.next_product = None
        contract.next_vehicle = None
        contract.next_change_on = None
        contract.save(
            update_fields=["product", "monthly_price", "next_product", "next_vehicle", "next_change_on", "updated_at"]
        )
        if contract.state == Contract.State.ACTIVE:
            # Credentials follow the (possibly other) car park and the vehicles.
            _deactivate_credentials(contract, until=today)
            _issue_plate_credentials(contract, contract.vehicles.all(), valid_from=today)
        _contract_note(contract, "Staged change carried out: " + "; ".join(notes) + ".")
        if target is not None:
            waitlist_advance(product=locked[old_product.pk])
    return contract


def contracts_apply_staged_changes(*, today: date | None = None) -> int:
    """Carry out every staged change that is due (daily beat task)."""
    today = today or timezone.localdate()
    due = Contract.objects.filter(next_change_on__lte=today).values_list("pk", flat=True)
    done = 0
    for pk in list(due):
        contract = contract_apply_staged_change(contract=Contract.objects.get(pk=pk))
        done += contract.next_change_on is None
    return done


def credential_issue_card(
    *, contract: Contract, user: Any = None, identifier: str = "", issue_key: str = "", replace: bool = True
) -> Credential:
    """Issue an RFID card for a running contract (replacing its current cards); idempotent per ``issue_key``."""
    with transaction.atomic():
        contract = _lock_contract(contract.pk)
        if issue_key:
            done = contract.credentials.filter(issue_key=issue_key).first()
            if done is not None:
                return done
        if contract.state not in (Contract.State.APPROVED, Contract.State.ACTIVE):
            raise TransitionError(
                _("Contract %(number)s is %(state)s.") % {"number": contract.pk, "state": _state_in_prose(contract)}
            )
        today = timezone.localdate()
        if replace:
            _deactivate_credentials(
                contract, until=today, qs=contract.credentials.filter(is_active=True, kind=Credential.Kind.RFID)
            )
        identifier = identifier or f"{secrets.randbelow(10**10):010d}"
        try:
            with transaction.atomic():
                card = Credential.objects.create(
                    contract=contract,
                    carpark_id=contract.product.carpark_id,
                    kind=Credential.Kind.RFID,
                    identifier=identifier,
                    valid_from=today,
                    valid_until=contract.end_date,
                    issue_key=issue_key,
                )
        except IntegrityError:
            raise CarparkError(
                _("Card %(card)s is already in use at this car park.") % {"card": identifier}, field="identifier"
            ) from None
        _contract_note(contract, f"RFID card {identifier} issued.", user)
        transaction.on_commit(lambda: signals.credentials_changed.send(sender=Contract, contract=contract))
    return card


# --- waitlist -----------------------------------------------------------------------------------


def waitlist_advance(*, product: Product) -> list[Contract]:
    """Offer every free place of ``product`` to the next in line. Call with the product row locked."""
    offered: list[Contract] = []
    free = product.quota - _places_taken(product.pk)
    if free <= 0:
        return offered
    queue = Contract.objects.filter(product=product, state=Contract.State.WAITLISTED).order_by(
        "waitlist_position", "created_at", "pk"
    )
    # First in line first: a contract needing more places than are free waits, and so do those behind it.
    for pk, places in list(queue.values_list("pk", "places")[:free]):
        if places > free:
            break
        offered.append(_offer(pk))
        free -= places
    return offered


def _offer(contract_id: int) -> Contract:
    contract = _lock_contract(contract_id)
    contract.offer_expires_at = timezone.now() + offer_valid_for()
    _transition(
        contract,
        "offer",
        note=f"Place offered until {timezone.localtime(contract.offer_expires_at):%Y-%m-%d %H:%M}.",
        update_fields=["offer_expires_at"],
    )
    _email("contract_offered", contract.customer, {"contract": contract})
    _offer_emit(contract)
    return contract


def _offer_emit(contract: Contract) -> Any:
    """Emit ``waitlist.place_freed`` for the contract's current offer (one event per offer made)."""
    offers = ContractEvent.objects.filter(contract=contract, to_state=Contract.State.OFFERED).exclude(
        from_state=Contract.State.OFFERED
    )
    return _emit(
        "waitlist.place_freed",
        contract,
        {**_contract_payload(contract), "offer_expires_at": contract.offer_expires_at.isoformat()},
        event_id=f"waitlist.place_freed:{contract.pk}:{max(offers.count(), 1)}",
    )


def product_set_quota(*, product: Product, quota: int, user: Any = None) -> Product:
    """Change how many contracts a product may hold; a rise offers the new places to the waitlist."""
    if quota < 0:
        raise CarparkError("The quota cannot be negative.", field="quota")
    with transaction.atomic():
        product = _lock_product(product.pk)
        held = _places_taken(product.pk)
        if quota < held:
            raise CarparkError(
                ngettext(
                    "%(count)s place is held; the quota cannot be below %(count)s.",
                    "%(count)s places are held; the quota cannot be below %(count)s.",
                    held,
                )
                % {"count": held},
                field="quota",
            )
        product.quota = quota
        product.save(update_fields=["quota"])
        waitlist_advance(product=product)
    return product


def contract_offer_accept(*, contract: Contract, user: Any = None) -> Contract:
    """The customer takes the offered place: the application goes to review (``application.received``)."""
    with transaction.atomic():
        _lock_product(contract.product_id)
        contract = _lock_contract(contract.pk)
        if (
            contract.state == Contract.State.OFFERED
            and contract.offer_expires_at
            and contract.offer_expires_at <= (timezone.now())
        ):
            raise TransitionError(_("The offer for contract %(number)s has expired.") % {"number": contract.pk})
        contract.waitlist_position = None
        contract.offer_expires_at = None
        _transition(
            contract,
            "accept_offer",
            user=user,
            note="Offer accepted.",
            update_fields=["waitlist_position", "offer_expires_at"],
        )
        _message_send("offer.accepted", contract, {"contract_id": contract.pk})
        _application_emit(contract, channel="waitlist", user=user)
    return contract


def contract_offer_expire(*, contract: Contract, force: bool = False) -> Contract:
    """Let an unanswered offer lapse and offer the place to the next in line.

    Idempotent: a contract no longer offered, or (unless ``force``) whose offer has not run out,
    is left as it is.
    """
    with transaction.atomic():
        product = _lock_product(contract.product_id)
        contract = _lock_contract(contract.pk)
        if contract.state != Contract.State.OFFERED:
            return contract
        if not force and contract.offer_expires_at and contract.offer_expires_at > timezone.now():
            return contract
        contract.waitlist_position = None
        _transition(contract, "cancel", note="Offer expired.", update_fields=["waitlist_position"])
        waitlist_advance(product=product)
    return contract


def offers_expire_due() -> int:
    """Expire every offer past its expiry (the safety net under the offer processes)."""
    due = Contract.objects.filter(state=Contract.State.OFFERED, offer_expires_at__lte=timezone.now())
    count = 0
    for pk in list(due.values_list("pk", flat=True)):
        if contract_offer_expire(contract=Contract(pk=pk, product_id=_product_id(pk))).state == "cancelled":
            count += 1
    return count


def _product_id(contract_id: int) -> int:
    return Contract.objects.values_list("product_id", flat=True).get(pk=contract_id)


# --- cases --------------------------------------------------------------------------------------


def case_open(
    *,
    customer: Customer,
    kind: str,
    subject: str,
    description: str = "",
    contract: Contract | None = None,
    invoice_id: int | None = None,
    priority: str | None = None,
    channel: str = Case.Channel.PORTAL,
    user: Any = None,
    api_client: ApiClient | None = None,
) -> Case:
    """Open a customer-care case; its SLA follows from the priority. Emits ``case.opened``."""
    if kind not in Case.Kind.values:
        raise CarparkError(f"Unknown case kind {kind!r}.", field="kind")
    priority = priority or CASE_DEFAULT_PRIORITY[kind]
    if priority not in Case.Priority.values:
        raise CarparkError(f"Unknown priority {priority!r}.", field="priority")
    if contract is not None and contract.customer_id != customer.pk:
        raise CarparkError("The contract belongs to another customer.", field="contract")
    if kind == Case.Kind.CARD_REPLACEMENT and contract is None:
        raise CarparkError("A card replacement needs the contract the card belongs to.", field="contract")
    with transaction.atomic():
        case = Case.objects.create(
            customer=customer,
            contract=contract,
            invoice_id=invoice_id,
            kind=kind,
            priority=priority,
            channel=channel,
            subject=subject,
            description=description,
            sla_due_at=timezone.now() + CASE_SLA[priority],
            api_client=api_client,
        )
        CaseEvent.objects.create(case=case, to_state=case.state, actor=_actor(user), note="Opened.")
        _emit("case.opened", case, _case_payload(case), event_id=f"case.opened:{case.pk}", user=user)
        case_tasks_follow_sla(case)
    return case


def _case_tasks(case: Case) -> Any:
    """The open and claimed tasks of the processes about ``case`` (None without the engine)."""
    try:
        from workflows.models import Task
    except ImportError:
        return None
    from django.contrib.contenttypes.models import ContentType

    return Task.objects.filter(
        process__content_type=ContentType.objects.get_for_model(Case),
        process__object_id=case.pk,
        state__in=Task.ACTIVE_STATES,
    )


def case_tasks_follow_sla(case: Case) -> int:
    """The case's open tasks are due when the case is (its SLA); call when the SLA is set or changes."""
    tasks = _case_tasks(case)
    return tasks.update(due_at=case.sla_due_at) if tasks is not None else 0


def _case_payload(case: Case) -> dict[str, Any]:
    contract = case.contract
    return {
        "case_id": case.pk,
        "kind": case.kind,
        "priority": case.priority,
        "channel": case.channel,
        "subject": case.subject,
        "customer_id": case.customer_id,
        "customer_name": case.customer.name,
        "customer_kind": case.customer.kind,
        "contract_id": contract.pk if contract else None,
        "invoice_id": case.invoice_id,
        "carpark_id": contract.product.carpark_id if contract else None,
    }


def _lock_case(case_id: int) -> Case:
    return Case.objects.select_for_update(of=("self",)).select_related("customer", "contract").get(pk=case_id)


def case_assign(*, case: Case, assignee: Any, user: Any = None) -> Case:
    """Assign the case and claim its open basket task for ``assignee`` (one piece of work), in one
    transaction: the case row is locked, so of two assignments at once one wins and the other is told
    who has the case."""
    with transaction.atomic():
        case = _lock_case(case.pk)
        _claim_case_tasks(case, assignee)
        case.assignee = assignee
        case.save(update_fields=["assignee", "updated_at"])
        if case.state == Case.State.OPEN:
            _transition(case, "start", user=user, note=f"Assigned to {assignee}.")
        else:
            CaseEvent.objects.create(case=case, actor=_actor(user), note=f"Assigned to {assignee}.")
    return case


def _claim_case_tasks(case: Case, assignee: Any) -> None:
    """Claim the case's open tasks for ``assignee``; refuse when someone else holds one."""
    tasks = _case_tasks(case)
    if tasks is None:
        return
    from workflows.errors import WorkflowError
    from workflows.services import task_claim

    for task in tasks.select_related("assignee").order_by("pk"):
        if task.assignee_id == assignee.pk:
            continue
        if task.assignee_id is not None:
            raise CarparkError(
                _("Case %(case)s is already being handled by %(name)s.")
                % {"case": case.pk, "name": task.assignee.get_full_name() or task.assignee.username}
            )
        try:
            task_claim(task=task, user=assignee)
        except WorkflowError as exc:
            raise CarparkError(
                _("Case %(case)s cannot be assigned to %(name)s: %(reason)s")
                % {"case": case.pk, "name": assignee.get_full_name() or assignee.username, "reason": exc}
            ) from exc


def case_follow_task(*, case_id: int, assignee: Any, user: Any = None) -> None:
    """The case follows its task: claimed → assigned to the claimer, released → nobody (in the
    caller's transaction)."""
    case = _lock_case(case_id)
    if case.assignee_id == (assignee.pk if assignee else None) or case.state not in Case.OPEN_STATES:
        return
    case.assignee = assignee
    case.save(update_fields=["assignee", "updated_at"])
    note = f"Assigned to {assignee} with its task." if assignee else "Unassigned: its task went back to the queue."
    if assignee and case.state == Case.State.OPEN:
        _transition(case, "start", user=user, note=note)
    else:
        CaseEvent.objects.create(case=case, actor=_actor(user), note=note)


def case_add_note(*, case: Case, note: str, user: Any = None) -> CaseEvent:
    if not note.strip():
        raise CarparkError("Write a note.", field="note")
    with transaction.atomic():
        case = _lock_case(case.pk)
        event = CaseEvent.objects.create(case=case, actor=_actor(user), note=note.strip())
        if case.state == Case.State.OPEN:
            _transition(case, "start", user=user)
    return event


def case_resolve(*, case: Case, resolution: str = "", user: Any = None) -> Case:
    """Mark the case resolved (idempotent: a resolved or closed case stays as it is)."""
    with transaction.atomic():
        case = _lock_case(case.pk)
        if case.state in (Case.State.RESOLVED, Case.State.CLOSED):
            return case
        case.resolution = resolution or case.resolution
        case.resolved_at = timezone.now()
        _transition(
            case, "resolve", user=user, note=resolution or "Resolved.", update_fields=["resolution", "resolved_at"]
        )
        _email("case_resolved", case.customer, {"case": case})
    return case


def case_reopen(*, case: Case, user: Any = None, note: str = "") -> Case:
    with transaction.atomic():
        case = _lock_case(case.pk)
        case.resolved_at = None
        _transition(case, "reopen", user=user, note=note or "Reopened.", update_fields=["resolved_at"])
    return case


def case_close(*, case: Case, user: Any = None, note: str = "") -> Case:
    with transaction.atomic():
        case = _lock_case(case.pk)
        _transition(case, "close", user=user, note=note or "Closed.")
    return case


# --- API housekeeping ---------------------------------------------------------------------------


def idempotency_records_purge(*, older_than: timedelta = timedelta(days=7)) -> int:
    """Forget idempotency keys after a week (clients retry within minutes, not weeks)."""
    from carparks.models import IdempotencyRecord

    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
