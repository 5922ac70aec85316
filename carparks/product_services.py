"""Season products and their prices: create, edit, deactivate, and prices with validity periods.

A product's price is a list of ``ProductPrice`` rows that never overlap: a new price starts on a
date (today or later) and the price open on that date ends the day before, so invoices of a past
period keep the price that was valid then. ``Product.monthly_price`` is the price valid today; the
daily beat task ``carparks.prices_roll`` moves it on when a planned price starts.

A planned price (one starting after the date asked for) is never replaced silently: setting a price
that would overlap it is refused, naming it; ``product_price_withdraw`` takes a planned price back
first. Each write is one transaction, audited in ``accounts``' audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from billing.payment_options import PaymentOption, default_product_options
from carparks.models import CarPark, Product, ProductPrice
from carparks.services import CarparkError, _lock_product, product_set_quota

MAX_PRICE = Decimal("99999999.99")
NAME_MAX = 200
# The fields an error names, in the reader's language (the services pass the English key).
FIELD_LABELS = {
    "name": pgettext_lazy("product field", "name"),
    "audience": pgettext_lazy("product field", "audience"),
    "validity": pgettext_lazy("product field", "validity"),
    "vehicle class": pgettext_lazy("product field", "vehicle class"),
    "deposit": pgettext_lazy("product field", "deposit"),
    "VAT rate": pgettext_lazy("product field", "VAT rate"),
    "monthly price": pgettext_lazy("product field", "monthly price"),
    "CPMS reference": pgettext_lazy("product field", "CPMS reference"),
}


def _label(label: str) -> str:
    return str(FIELD_LABELS.get(label, label))


@dataclass(frozen=True)
class PricePeriod:
    """One price of a product: ``monthly_price`` from ``valid_from`` until ``valid_until`` (inclusive, or open)."""

    valid_from: date
    valid_until: date | None
    monthly_price: Decimal


def _audit(user: Any, action: str, target: Any, old: Any = None, new: Any = None) -> None:
    from accounts.services import audit_record

    audit_record(actor=user, action=action, target=target, old=old, new=new)


def _text(value: Any, *, field: str, label: str, max_length: int, required: bool = False) -> str:
    text = str(value or "").strip()
    if "\x00" in text:
        raise CarparkError(_("The %(field)s cannot contain a null character.") % {"field": _label(label)}, field=field)
    if len(text) > max_length:
        raise CarparkError(
            _("The %(field)s has at most %(max)s characters (it has %(length)s).")
            % {"field": _label(label), "max": max_length, "length": len(text)},
            field=field,
        )
    if required and not text:
        raise CarparkError(_("Give the %(field)s.") % {"field": _label(label)}, field=field)
    return text


def _amount(value: Any, *, field: str, label: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise CarparkError(
            _("The %(field)s must be an amount such as 89.00.") % {"field": _label(label)}, field=field
        ) from None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        raise CarparkError(
            _("The %(field)s lies between 0.00 and %(max)s.") % {"field": _label(label), "max": MAX_PRICE}, field=field
        )
    if amount != amount.quantize(Decimal("0.01")):
        raise CarparkError(_("The %(field)s has at most two decimal places.") % {"field": _label(label)}, field=field)
    return amount.quantize(Decimal("0.01"))


def _choice(value: str, choices: Any, *, field: str, label: str) -> str:
    if value not in choices.values:
        raise CarparkError(
            _("%(value)s is not a %(field)s.") % {"value": repr(value), "field": _label(label)}, field=field
        )
    return value


def _product_values(values: dict[str, Any]) -> dict[str, Any]:
    """Checked values of the product's own fields (price and quota have their own services)."""
    checked: dict[str, Any] = {}
    if "name" in values:
        checked["name"] = _text(values["name"], field="name", label="name", max_length=NAME_MAX, required=True)
    if "audience" in values:
        checked["audience"] = _choice(values["audience"], Product.Audience, field="audience", label="audience")
    if "validity" in values:
        checked["validity"] = _choice(values["validity"], Product.Validity, field="validity", label="validity")
    if "vehicle_class" in values:
        checked["vehicle_class"] = _choice(
            values["vehicle_class"], Product.VehicleClass, field="vehicle_class", label="vehicle class"
        )
    if "is_addon" in values:
        checked["is_addon"] = bool(values["is_addon"])
    if "deposit" in values:
        checked["deposit"] = _amount(values["deposit"], field="deposit", label="deposit")
    if "vat_rate" in values:
        rate = _amount(values["vat_rate"], field="vat_rate", label="VAT rate")
        if rate > 100:
            raise CarparkError("The VAT rate lies between 0 and 100 %.", field="vat_rate")
        checked["vat_rate"] = rate
    if "notice_period_days" in values:
        days = int(values["notice_period_days"])
        if not 0 <= days <= 3650:
            raise CarparkError("The notice period lies between 0 and 3650 days.", field="notice_period_days")
        checked["notice_period_days"] = days
    if "vehicles_per_place" in values:
        ratio = int(values["vehicles_per_place"])
        if not 1 <= ratio <= 100:
            raise CarparkError("Vehicles per place lie between 1 and 100.", field="vehicles_per_place")
        checked["vehicles_per_place"] = ratio
    if "is_active" in values:
        checked["is_active"] = bool(values["is_active"])
    if "payment_options" in values:
        checked["payment_options"] = product_payment_options_check(values["payment_options"])
    unknown = set(values) - set(checked)
    if unknown:
        raise CarparkError(f"Unknown product field {sorted(unknown)[0]!r}.", field=None)
    return checked


def product_payment_options_check(value: Any) -> list[str]:
    """The payment options a product offers, checked: at least one, each a ``PaymentOption``, no repeats;
    returned in the order of ``PaymentOption`` (so the stored list compares equal however it was given)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise CarparkError(_('Give the payment options as a list, for example ["card"].'), field="payment_options")
    given = [str(option) for option in value]
    unknown = [option for option in given if option not in PaymentOption.values]
    if unknown:
        raise CarparkError(
            _("%(option)r is not a payment option (one of %(options)s).")
            % {"option": unknown[0], "options": ", ".join(PaymentOption.values)},
            field="payment_options",
        )
    if not given:
        raise CarparkError(_("Choose at least one payment option the product offers."), field="payment_options")
    return [option for option in PaymentOption.values if option in given]


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, Decimal) else value for key, value in values.items()}


def product_create(
    *,
    carpark: CarPark,
    name: str,
    monthly_price: Decimal | str,
    quota: int,
    audience: str = Product.Audience.ANY,
    validity: str = Product.Validity.ALL_DAY,
    vehicle_class: str = Product.VehicleClass.CAR,
    is_addon: bool = False,
    deposit: Decimal | str = Decimal("0.00"),
    vat_rate: Decimal | str = Decimal("19.00"),
    notice_period_days: int = 30,
    vehicles_per_place: int = 1,
    payment_options: Iterable[str] | None = None,
    user: Any = None,
) -> Product:
    """Add a season product to a car park with its first price, valid from today (audited).

    ``payment_options`` defaults to card and SEPA Direct Debit (``default_product_options``)."""
    values = _product_values(
        {
            "payment_options": default_product_options() if payment_options is None else payment_options,
            "name": name,
            "audience": audience,
            "validity": validity,
            "vehicle_class": vehicle_class,
            "is_addon": is_addon,
            "deposit": deposit,
            "vat_rate": vat_rate,
            "notice_period_days": notice_period_days,
            "vehicles_per_place": vehicles_per_place,
        }
    )
    price = _amount(monthly_price, field="monthly_price", label="monthly price")
    if quota is None or int(quota) < 0:
        raise CarparkError("The quota cannot be negative.", field="quota")
    with transaction.atomic():
        carpark = CarPark.objects.select_for_update().get(pk=carpark.pk)
        if Product.objects.filter(carpark=carpark, name__iexact=values["name"]).exists():
            raise CarparkError(
                _("%(carpark)s already has a product called %(name)s.")
                % {"carpark": carpark.name, "name": repr(values["name"])},
                field="name",
            )
        product = Product.objects.create(carpark=carpark, monthly_price=price, quota=int(quota), **values)
        ProductPrice.objects.create(
            product=product, monthly_price=price, valid_from=timezone.localdate(), created_by=_user(user)
        )
        _audit(user, "carparks.product_created", product, new=_json({**values, "monthly_price": price, "quota": quota}))
    return product


def _user(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def product_update(*, product: Product, user: Any = None, quota: int | None = None, **values: Any) -> Product:
    """Change a product's fields (not its price: see ``product_price_set``); audited.

    ``quota`` goes through ``product_set_quota`` (never below the places held; a rise offers places
    to the waitlist). ``is_active=False`` deactivates the product: it is no longer sold, contracts
    keep running.
    """
    checked = _product_values(values)
    with transaction.atomic():
        product = _lock_product(product.pk)
        renamed = "name" in checked and checked["name"].lower() != product.name.lower()
        if renamed and Product.objects.filter(carpark_id=product.carpark_id, name__iexact=checked["name"]).exists():
            raise CarparkError(
                _("This car park already has a product called %(name)s.") % {"name": repr(checked["name"])},
                field="name",
            )
        old = {key: getattr(product, key) for key in checked}
        changed = {key: value for key, value in checked.items() if old[key] != value}
        if changed:
            for key, value in changed.items():
                setattr(product, key, value)
            product.save(update_fields=list(changed))
            _audit(
                user,
                "carparks.product_updated",
                product,
                old=_json({key: old[key] for key in changed}),
                new=_json(changed),
            )
        if quota is not None and int(quota) != product.quota:
            before = product.quota
            product = product_set_quota(product=product, quota=int(quota), user=user)
            _audit(user, "carparks.product_quota_set", product, old={"quota": before}, new={"quota": product.quota})
    return product


# --- prices -------------------------------------------------------------------------------------


def prices_of(product_ids: Iterable[int]) -> dict[int, list[PricePeriod]]:
    """The price periods of each product, oldest first (one query). Products without a price row are
    left out: their ``Product.monthly_price`` is their price on every day."""
    result: dict[int, list[PricePeriod]] = {}
    rows = ProductPrice.objects.filter(product_id__in=list(product_ids)).order_by("product_id", "valid_from")
    for product_id, valid_from, valid_until, price in rows.values_list(
        "product_id", "valid_from", "valid_until", "monthly_price"
    ):
        result.setdefault(product_id, []).append(PricePeriod(valid_from, valid_until, price))
    return result


def price_in(periods: list[PricePeriod], day: date, fallback: Decimal) -> Decimal:
    """The price of ``periods`` valid on ``day``; before the first period, the first price; without
    periods, ``fallback``."""
    if not periods:
        return fallback
    for period in periods:
        if period.valid_from <= day and (period.valid_until is None or day <= period.valid_until):
            return period.monthly_price
    if day < periods[0].valid_from:
        return periods[0].monthly_price
    # A gap cannot arise through product_price_set; a hand edit leaves one: the last price before it.
    before = [p for p in periods if p.valid_from <= day]
    return before[-1].monthly_price


def price_on(product: Product, day: date) -> Decimal:
    """The product's gross monthly price valid on ``day`` (``Product.monthly_price`` when it has no price rows)."""
    return price_in(prices_of([product.pk]).get(product.pk, []), day, product.monthly_price)


def product_price_set(
    *, product: Product, monthly_price: Decimal | str, valid_from: date, user: Any = None
) -> ProductPrice:
    """A new gross monthly price from ``valid_from`` (today or later); the price open then ends the day before.

    Refused (at ``valid_from``) when a price starts on or after that date already: a planned price
    is withdrawn first (``product_price_withdraw``), never overwritten. Starting today, it becomes
    ``Product.monthly_price`` at once. Audited.
    """
    price = _amount(monthly_price, field="monthly_price", label="monthly price")
    today = timezone.localdate()
    if not isinstance(valid_from, date):
        raise CarparkError("Give the first day of the new price.", field="valid_from")
    if valid_from < today:
        raise CarparkError(
            f"A new price cannot start in the past: choose {today:%Y-%m-%d} or later.", field="valid_from"
        )
    with transaction.atomic():
        product = _lock_product(product.pk)
        prices = list(ProductPrice.objects.filter(product=product).order_by("valid_from"))
        if not prices:
            # A product created without a price row: its current price becomes its history.
            prices = [
                ProductPrice.objects.create(
                    product=product, monthly_price=product.monthly_price, valid_from=min(today, date(2000, 1, 1))
                )
            ]
        later = [p for p in prices if p.valid_from >= valid_from]
        if later:
            first = later[0]
            raise CarparkError(
                f"A price of {first.monthly_price} from {first.valid_from:%Y-%m-%d} is already planned and would "
                f"overlap; withdraw it first or choose a day after it.",
                field="valid_from",
            )
        open_price = next(
            (p for p in prices if p.valid_from < valid_from and (p.valid_until is None or p.valid_until >= valid_from)),
            None,
        )
        old = None
        if open_price is not None:
            old = {"price_id": open_price.pk, "valid_until": str(open_price.valid_until or "")}
            open_price.valid_until = valid_from - timedelta(days=1)
            open_price.save(update_fields=["valid_until"])
        new = ProductPrice.objects.create(
            product=product, monthly_price=price, valid_from=valid_from, created_by=_user(user)
        )
        if valid_from == today and product.monthly_price != price:
            product.monthly_price = price
            product.save(update_fields=["monthly_price"])
        _audit(
            user,
            "carparks.product_price_set",
            product,
            old=old,
            new={"monthly_price": str(price), "valid_from": valid_from.isoformat()},
        )
    return new


def product_price_withdraw(*, price: ProductPrice, user: Any = None) -> Product:
    """Take back a planned price (one that has not started): the price before it is open again. Audited."""
    today = timezone.localdate()
    with transaction.atomic():
        product = _lock_product(price.product_id)
        price = ProductPrice.objects.select_for_update().get(pk=price.pk)
        if price.valid_from <= today:
            raise CarparkError(
                f"The price from {price.valid_from:%Y-%m-%d} has started; set a new price instead.", field="price"
            )
        previous = ProductPrice.objects.filter(product=product, valid_from__lt=price.valid_from).order_by("-valid_from")
        before = previous.first()
        if before is not None and before.valid_until == price.valid_from - timedelta(days=1):
            following = ProductPrice.objects.filter(product=product, valid_from__gt=price.valid_from).order_by(
                "valid_from"
            )
            after = following.first()
            before.valid_until = after.valid_from - timedelta(days=1) if after else None
            before.save(update_fields=["valid_until"])
        _audit(
            user,
            "carparks.product_price_withdrawn",
            product,
            old={"monthly_price": str(price.monthly_price), "valid_from": price.valid_from.isoformat()},
        )
        price.delete()
    return product


def prices_roll(*, today: date | None = None) -> int:
    """Set each product's ``monthly_price`` to its price valid today; returns how many changed (idempotent)."""
    today = today or timezone.localdate()
    changed = 0
    current = ProductPrice.objects.filter(valid_from__lte=today).exclude(valid_until__lt=today)
    for product_id, price in current.values_list("product_id", "monthly_price"):
        with transaction.atomic():
            changed += Product.objects.filter(pk=product_id).exclude(monthly_price=price).update(monthly_price=price)
    return changed


# --- the car park's CPMS link -------------------------------------------------------------------


def carpark_cpms_link_set(*, carpark: CarPark, connection: Any, external_id: str = "", user: Any = None) -> Any:
    """Connect the car park to a CPMS connection under ``external_id`` (default: its CPMS reference),
    or disconnect it (``connection=None``). Audited; returns the link or ``None``."""
    from connect.models import CarParkLink

    link = CarParkLink.objects.filter(carpark=carpark).select_related("connection").first()
    old = {"connection": link.connection.name, "external_id": link.external_id} if link else None
    with transaction.atomic():
        if connection is None:
            if link is None:
                return None
            link.delete()
            _audit(user, "carparks.carpark_cpms_unlinked", carpark, old=old)
            return None
        external_id = _text(
            external_id or carpark.cpms_reference, field="cpms_reference", label="CPMS reference", max_length=100
        )
        if not external_id:
            raise CarparkError("Give the car park's id in the CPMS (CPMS reference).", field="cpms_reference")
        taken = CarParkLink.objects.filter(connection=connection, external_id=external_id).exclude(carpark=carpark)
        if taken.exists():
            raise CarparkError(
                f"{connection.name} already links {external_id!r} to {taken.first().carpark.name}.",
                field="cpms_reference",
            )
        if link and link.connection_id == connection.pk and link.external_id == external_id:
            return link
        if link is None:
            link = CarParkLink(carpark=carpark)
        link.connection = connection
        link.external_id = external_id
        link.save()
        _audit(
            user,
            "carparks.carpark_cpms_linked",
            carpark,
            old=old,
            new={"connection": connection.name, "external_id": external_id},
        )
    return link
