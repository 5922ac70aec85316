"""Writes and checks of customers beyond creating one: duplicates, edits, review marks and merges.

``customer_create`` stays in :mod:`carparks.services` (it emits ``customer.created``); this module adds

- ``customer_duplicates_find``: customers a new one may be (same email, same company number, or a
  similar name at the same postcode), computed portably (no database extension);
- ``company_number_owner``: the customer a company number already belongs to;
- ``customer_update``: an edit, audited with the fields it changed;
- ``customer_find_or_flag``: what an API application uses; a company number (or an email under
  another name) matching an existing customer never attaches to it: a new customer is created with
  ``possible_duplicate_of`` set, a point for an agent to review;
- ``customer_duplicate_dismiss``: "mark as different" on such a review point, audited;
- ``customers_merge_preview`` / ``customers_merge``: move everything of one customer to another.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from django.db import transaction
from django.db.models import Q, Value
from django.db.models.functions import Replace, Upper
from django.utils.translation import gettext as _

from carparks.models import Customer, Vehicle
from carparks.services import CarparkError, customer_create

# Legal forms left out when names are compared ("Müller GmbH" and "Mueller" are alike).
LEGAL_FORMS = {
    "gmbh",
    "ag",
    "kg",
    "ohg",
    "ug",
    "ev",
    "eg",
    "se",
    "co",
    "mbh",
    "haftungsbeschrankt",
    "ltd",
    "limited",
    "llc",
    "inc",
    "plc",
    "sa",
    "sarl",
    "bv",
    "nv",
}
NAME_SIMILARITY = 0.85
_NON_WORD = re.compile(r"[^a-z0-9]+")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})

# Fields an edit may change (kind included; ids, links and Stripe ids are not edited here).
EDITABLE_FIELDS = (
    "kind",
    "name",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
    "country",
    "company_number",
    "vat_id",
    "billing_contact",
    "billing_email",
    "billing_street",
    "billing_postcode",
    "billing_city",
    "billing_country",
    "cost_centres",
    "language",
)


def name_key(name: str) -> str:
    """A name reduced for comparison: lower case, umlauts spelled out, accents, punctuation and legal
    forms dropped, whitespace collapsed."""
    text = (name or "").lower().translate(_UMLAUTS)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = [w for w in _NON_WORD.split(text) if w and w not in LEGAL_FORMS]
    return " ".join(words)


def names_similar(a: str, b: str) -> bool:
    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return False
    if ka == kb or sorted(ka.split()) == sorted(kb.split()):  # "Ada Lovelace" / "Lovelace, Ada"
        return True
    return SequenceMatcher(None, ka, kb).ratio() >= NAME_SIMILARITY


def company_number_key(number: str) -> str:
    """Upper case without spaces, dots or dashes: 'HRB 12 345' and 'hrb12345' are one number."""
    return re.sub(r"[\s.\-/]+", "", number or "").upper()


def postcode_key(postcode: str) -> str:
    return company_number_key(postcode)


def _active_customers() -> Any:
    return Customer.objects.filter(merged_into__isnull=True)


def _normalised(field_name: str) -> Any:
    """A database expression of ``field_name`` upper-cased without spaces, dots, dashes or slashes."""
    expr: Any = Upper(field_name)
    for char in (" ", ".", "-", "/"):
        expr = Replace(expr, Value(char), Value(""))
    return expr


def company_number_owner(company_number: str, *, exclude_id: int | None = None) -> Customer | None:
    """The (not merged) customer ``company_number`` already belongs to, compared without spaces and case."""
    key = company_number_key(company_number)
    if not key:
        return None
    qs = _active_customers().exclude(company_number="").annotate(number_key=_normalised("company_number"))
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    return qs.filter(number_key=key).order_by("pk").first()


@dataclass
class Duplicate:
    customer: Customer
    reasons: list[str] = field(default_factory=list)


def customer_duplicates_find(
    *,
    name: str = "",
    email: str = "",
    company_number: str = "",
    postcode: str = "",
    exclude_id: int | None = None,
    limit: int = 10,
) -> list[Duplicate]:
    """Customers that may be the same as the one described: same email (any case), same company
    number (spaces and case ignored), or a similar name at the same postcode. Merged customers are
    never offered."""
    found: dict[int, Duplicate] = {}

    def add(customer: Customer, reason: str) -> None:
        entry = found.setdefault(customer.pk, Duplicate(customer))
        if reason not in entry.reasons:
            entry.reasons.append(reason)

    qs = _active_customers()
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    email = (email or "").strip()
    if email:
        for customer in qs.filter(Q(email__iexact=email) | Q(billing_email__iexact=email)).order_by("pk")[:limit]:
            add(customer, "same email")
    owner = company_number_owner(company_number, exclude_id=exclude_id) if company_number else None
    if owner is not None:
        add(owner, "same company number")
    code = postcode_key(postcode)
    if code and name_key(name):
        same_postcode = qs.annotate(postcode_key=_normalised("postcode")).filter(postcode_key=code)
        for customer in same_postcode.order_by("pk")[:500]:
            if names_similar(customer.name, name):
                add(customer, "similar name and same postcode")
    return list(found.values())[:limit]


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise CarparkError(f"Unknown customer fields: {', '.join(sorted(unknown))}.")
    cleaned = dict(fields)
    if "cost_centres" in cleaned:
        cleaned["cost_centres"] = [str(c).strip() for c in cleaned["cost_centres"] or [] if str(c).strip()]
    for name in ("country", "billing_country"):
        if cleaned.get(name):
            cleaned[name] = cleaned[name].strip().upper()
    return cleaned


def customer_update(*, customer: Customer, user: Any = None, **fields: Any) -> Customer:
    """Change a customer's details; audited as ``customer.changed`` with the old and new value of each
    changed field. A company number that belongs to another customer is refused (at that field)."""
    from accounts.services import audit_record

    fields = _clean_fields(fields)
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.merged_into_id:
            raise CarparkError(
                _("%(name)s was merged into another customer; edit that one instead.") % {"name": locked.name}
            )
        kind = fields.get("kind", locked.kind)
        number = fields.get("company_number", locked.company_number)
        if kind == Customer.Kind.CORPORATE and not (number or "").strip():
            raise CarparkError("A corporate customer needs a company number.", field="company_number")
        if company_number_key(number) != company_number_key(locked.company_number):
            owner = company_number_owner(number, exclude_id=locked.pk)
            if owner is not None:
                raise CarparkError(
                    f"Company number {number} already belongs to {owner.name} (customer {owner.pk}).",
                    field="company_number",
                )
        old, new = {}, {}
        for name, value in fields.items():
            if getattr(locked, name) != value:
                old[name], new[name] = getattr(locked, name), value
                setattr(locked, name, value)
        if new:
            locked.full_clean(exclude=["possible_duplicate_of", "merged_into"])
            locked.save(update_fields=list(new))
            audit_record(actor=user, action="customer.changed", target=locked, old=old, new=new)
    return locked


def customer_find_or_flag(
    *, kind: str, name: str, email: str, user: Any = None, channel: str = "api", **fields: Any
) -> Customer:
    """The customer an application from outside belongs to, never guessed.

    A private customer with the same email and the same name (case and spacing ignored) is that
    customer. Anything less certain creates a new customer with ``possible_duplicate_of`` set: a
    company number that belongs to an existing customer (a company number alone never attaches an
    application to a company) or an email of a customer with another name.
    """
    match: Customer | None = None
    with transaction.atomic():
        if kind == Customer.Kind.PRIVATE:
            same_email = list(_active_customers().filter(kind=kind, email__iexact=email.strip()).order_by("pk")[:20])
            for customer in same_email:
                if " ".join(customer.name.lower().split()) == " ".join(name.lower().split()):
                    return customer
            match = same_email[0] if same_email else None
        elif fields.get("company_number"):
            match = company_number_owner(fields["company_number"])
        if match is None and email:
            match = _active_customers().filter(email__iexact=email.strip()).order_by("pk").first()
        return customer_create(
            kind=kind, name=name, email=email, user=user, channel=channel, possible_duplicate_of=match, **fields
        )


def customer_duplicate_dismiss(*, customer: Customer, user: Any = None) -> Customer:
    """ "Mark as different": clear the possible-duplicate link; audited."""
    from accounts.services import audit_record

    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        other = locked.possible_duplicate_of
        if other is None:
            raise CarparkError(_("%(name)s is not marked as a possible duplicate.") % {"name": locked.name})
        locked.possible_duplicate_of = None
        locked.save(update_fields=["possible_duplicate_of"])
        audit_record(
            actor=user,
            action="customer.duplicate_dismissed",
            target=locked,
            old={"possible_duplicate_of": other.pk, "name": other.name},
            new={"possible_duplicate_of": None},
        )
    return locked


# --- merging --------------------------------------------------------------------------------------


def _reverse_relations() -> list[Any]:
    """Every foreign key (of any installed app) that points at Customer, except Customer's own links
    and vehicles (moved apart, de-duplicated)."""
    relations = []
    for rel in Customer._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)):
            continue
        if rel.related_model in (Customer, Vehicle):
            continue
        relations.append(rel)
    return relations


def _label(rel: Any) -> str:
    return str(rel.related_model._meta.verbose_name_plural)


def _generic_references(customer: Customer) -> dict[str, Any]:
    """Querysets of the engine's rows whose business object is ``customer`` (processes, business events)."""
    try:
        from django.contrib.contenttypes.models import ContentType

        from workflows.models import BusinessEvent, Process
    except ImportError:  # pragma: no cover - the engine is always installed in this project
        return {}
    ct = ContentType.objects.get_for_model(Customer)
    return {
        "processes": Process.objects.filter(content_type=ct, object_id=customer.pk),
        "business events": BusinessEvent.objects.filter(content_type=ct, object_id=customer.pk),
    }


def _vehicle_plan(keep: Customer, other: Customer) -> tuple[list[Vehicle], list[tuple[Vehicle, Vehicle]]]:
    """Vehicles of ``other`` to move, and pairs (other's, keep's) of the same plate and country to join."""
    kept = {(v.plate, v.country): v for v in keep.vehicles.all()}
    move, join = [], []
    for vehicle in other.vehicles.all():
        twin = kept.get((vehicle.plate, vehicle.country))
        if twin is None:
            move.append(vehicle)
        else:
            join.append((vehicle, twin))
    return move, join


def _stripe_conflict(keep: Customer, other: Customer) -> str:
    a, b = keep.stripe_customer_id, other.stripe_customer_id
    if a and b and a != b:
        return (
            f"Both customers have their own Stripe customer ({a} and {b}); their cards and payments would be "
            "charged under the wrong one. Detach the cards of one of them first (Billing), then merge."
        )
    return ""


def customers_merge_preview(*, keep: Customer, other: Customer) -> dict[str, Any]:
    """What merging ``other`` into ``keep`` would move (counts by kind) and whether it is refused."""
    counts: dict[str, int] = {}
    move, join = _vehicle_plan(keep, other)
    counts["vehicles"] = len(move)
    if join:
        counts["vehicles joined with the same plate"] = len(join)
    for rel in _reverse_relations():
        n = rel.related_model._default_manager.filter(**{rel.field.name: other}).count()
        if n:
            counts[_label(rel)] = n
    for label, qs in _generic_references(other).items():
        n = qs.count()
        if n:
            counts[label] = n
    refused = ""
    if keep.pk == other.pk:
        refused = "Choose two different customers."
    elif keep.merged_into_id or other.merged_into_id:
        refused = "One of these customers was already merged into another."
    else:
        refused = _stripe_conflict(keep, other)
    return {"keep": keep, "other": other, "counts": counts, "refused": refused}


def customers_merge(*, keep: Customer, other: Customer, user: Any = None) -> dict[str, int]:
    """Move everything of ``other`` to ``keep``: vehicles (one of the same plate and country kept,
    its contracts moved to it), contracts, cases, invoices, payment methods and every other row that
    points at the customer, processes and business events about it. ``other`` stays (for history)
    with ``merged_into`` set and no longer appears in lists or search. Audited as ``customer.merged``
    with the counts.

    Refused when both have a different Stripe customer: cards saved under one Stripe customer cannot
    be charged as the other, so one side's cards must be detached first (nothing is guessed).
    """
    from accounts.services import audit_record

    if keep.pk == other.pk:
        raise CarparkError("Choose two different customers.", field="other")
    with transaction.atomic():
        first, second = sorted([keep.pk, other.pk])
        locked = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[first, second])}
        if len(locked) != 2:
            raise CarparkError("One of these customers no longer exists.", field="other")
        keep, other = locked[keep.pk], locked[other.pk]
        if keep.merged_into_id or other.merged_into_id:
            raise CarparkError("One of these customers was already merged into another.", field="other")
        conflict = _stripe_conflict(keep, other)
        if conflict:
            raise CarparkError(conflict, field="other")

        counts: dict[str, int] = {}
        move, join = _vehicle_plan(keep, other)
        through = Vehicle.contracts.through  # Contract.vehicles
        for duplicate, twin in join:
            on_twin = set(through.objects.filter(vehicle=twin).values_list("contract_id", flat=True))
            through.objects.filter(vehicle=duplicate, contract_id__in=on_twin).delete()
            through.objects.filter(vehicle=duplicate).update(vehicle=twin)
            for rel in Vehicle._meta.get_fields(include_hidden=True):
                if rel.auto_created and not rel.concrete and rel.one_to_many and rel.related_model is not through:
                    rel.related_model._default_manager.filter(**{rel.field.name: duplicate}).update(
                        **{rel.field.name: twin}
                    )
            if not twin.cost_centre and duplicate.cost_centre:
                twin.cost_centre = duplicate.cost_centre
                twin.save(update_fields=["cost_centre"])
            duplicate.delete()
        counts["vehicles"] = Vehicle.objects.filter(pk__in=[v.pk for v in move]).update(customer=keep)
        if join:
            counts["vehicles joined with the same plate"] = len(join)

        for rel in _reverse_relations():
            model = rel.related_model
            if (
                model._meta.label == "billing.PaymentMethod"
                and model.objects.filter(customer=keep, is_default=True, detached_at__isnull=True).exists()
            ):
                model.objects.filter(customer=other).update(is_default=False)
            n = model._default_manager.filter(**{rel.field.name: other}).update(**{rel.field.name: keep})
            if n:
                counts[_label(rel)] = n
        for label, qs in _generic_references(other).items():
            n = qs.update(object_id=keep.pk)
            if n:
                counts[label] = n

        # Links between customers: whoever pointed at ``other`` now points at ``keep``.
        Customer.objects.filter(merged_into=other).update(merged_into=keep)
        Customer.objects.filter(possible_duplicate_of=other).exclude(pk=keep.pk).update(possible_duplicate_of=keep)
        if keep.possible_duplicate_of_id == other.pk:
            keep.possible_duplicate_of = None
        if not keep.stripe_customer_id and other.stripe_customer_id:
            keep.stripe_customer_id = other.stripe_customer_id
        keep.cost_centres = list(dict.fromkeys([*(keep.cost_centres or []), *(other.cost_centres or [])]))
        contacts = list(keep.authorised_contacts or [])
        contacts += [c for c in other.authorised_contacts or [] if c not in contacts]
        keep.authorised_contacts = contacts
        keep.save(update_fields=["possible_duplicate_of", "stripe_customer_id", "cost_centres", "authorised_contacts"])
        other.merged_into = keep
        other.possible_duplicate_of = None
        other.save(update_fields=["merged_into", "possible_duplicate_of"])
        audit_record(
            actor=user,
            action="customer.merged",
            target=keep,
            old={"merged": other.pk, "name": other.name, "email": other.email},
            new={"kept": keep.pk, "moved": counts},
        )
    return counts
