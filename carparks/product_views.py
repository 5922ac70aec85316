"""Pages to edit a car park and to keep its season products and their prices.

Car-park managers edit the car parks they are responsible for; Administrators every one; a car park
the user may not edit answers 404. Finance sets prices of every product (by role, as for billing).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.roles import ADMINISTRATOR, FINANCE, MANAGER, has_role, responsible_carpark_ids, role_required
from billing.payment_options import PaymentOption
from carparks import product_services, selectors, services
from carparks.access import carparks_for_user, get_for_user
from carparks.models import CarPark, Product, ProductPrice
from carparks.product_forms import CarParkEditForm, PriceForm, ProductForm
from carparks.views import VIEW_ROLES

EDIT_ROLES = (ADMINISTRATOR, MANAGER)
PRICE_ROLES = (ADMINISTRATOR, MANAGER, FINANCE)
PRODUCT_FIELDS = (
    "name", "audience", "validity", "vehicle_class", "is_addon", "deposit", "vat_rate", "notice_period_days",
    "vehicles_per_place", "payment_options",
)  # fmt: skip


def editable_carparks(user: Any) -> QuerySet[CarPark]:
    """Car parks ``user`` may edit: all for Administrators, else those the Car-park manager is responsible for."""
    if has_role(user, ADMINISTRATOR):
        return CarPark.objects.all()
    if not has_role(user, MANAGER):
        return CarPark.objects.none()
    ids = responsible_carpark_ids(user)
    return CarPark.objects.all() if ids is None else CarPark.objects.filter(pk__in=ids)


def may_edit(user: Any, carpark_id: int) -> bool:
    return editable_carparks(user).filter(pk=carpark_id).exists()


def may_price(user: Any, carpark_id: int) -> bool:
    return has_role(user, FINANCE) or may_edit(user, carpark_id)


def _visible_products(user: Any) -> QuerySet[Product]:
    products = Product.objects.select_related("carpark")
    if has_role(user, FINANCE):
        return products
    return products.filter(carpark__in=carparks_for_user(user))


def _field_error(form: Any, exc: services.CarparkError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, str(exc))


@role_required(*EDIT_ROLES)
def carpark_edit(request: HttpRequest, pk: int) -> HttpResponse:
    carpark = get_for_user(editable_carparks(request.user), pk)
    link = getattr(carpark, "cpms_link", None) if _has_link_model() else None
    may_link = has_role(request.user, ADMINISTRATOR) and _has_link_model()
    initial = {field: getattr(carpark, field) for field in services.CARPARK_EDIT_FIELDS}
    initial["connection"] = link.connection_id if link else None
    form = CarParkEditForm(request.POST or None, initial=initial, may_link=may_link)
    if request.method == "POST" and form.is_valid():
        values = {key: value for key, value in form.cleaned_data.items() if key in services.CARPARK_EDIT_FIELDS}
        try:
            carpark = services.carpark_update(carpark=carpark, user=request.user, **values)
            if may_link:
                product_services.carpark_cpms_link_set(
                    carpark=carpark, connection=form.cleaned_data["connection"], user=request.user
                )
        except services.CarparkError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, _("Car park %(name)s was saved.") % {"name": carpark.name})
            return redirect("carparks:carpark-detail", pk=carpark.pk)
    return render(
        request, "carparks/carpark_edit.html", {"form": form, "carpark": carpark, "link": link, "may_link": may_link}
    )


def _has_link_model() -> bool:
    try:
        from connect.models import CarParkLink  # noqa: F401
    except ImportError:
        return False
    return True


@role_required(*EDIT_ROLES)
def product_create(request: HttpRequest, carpark_pk: int) -> HttpResponse:
    carpark = get_for_user(editable_carparks(request.user), carpark_pk)
    form = ProductForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            product = product_services.product_create(
                carpark=carpark,
                monthly_price=data["monthly_price"],
                quota=data["quota"],
                user=request.user,
                **{field: data[field] for field in PRODUCT_FIELDS},
            )
        except services.CarparkError as exc:
            _field_error(form, exc)
        else:
            messages.success(
                request,
                _("Product %(name)s was added at %(price)s a month.")
                % {"name": product.name, "price": number_format(product.monthly_price, 2)},
            )
            return redirect("carparks:product-detail", pk=product.pk)
    return render(request, "carparks/product_form.html", {"form": form, "carpark": carpark, "product": None})


@role_required(*VIEW_ROLES)
def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_for_user(selectors.products_with_availability(_visible_products(request.user)), pk)
    return _product_page(request, product, PriceForm(initial={"valid_from": _next_first()}))


def _next_first() -> Any:
    return services.first_of_next_month()


def _product_page(request: HttpRequest, product: Product, price_form: PriceForm) -> HttpResponse:
    today = timezone.localdate()
    prices = list(product.prices.select_related("created_by").order_by("-valid_from"))
    return render(
        request,
        "carparks/product_detail.html",
        {
            "product": product,
            "carpark": product.carpark,
            "prices": prices,
            "current_price_id": next(
                (p.pk for p in prices if p.valid_from <= today and (p.valid_until is None or p.valid_until >= today)),
                None,
            ),
            "today": today,
            "price_today": product_services.price_on(product, today),
            "price_form": price_form,
            "payment_options": [
                PaymentOption(value).label for value in PaymentOption.values if value in (product.payment_options or [])
            ],
            "may_edit": may_edit(request.user, product.carpark_id),
            "may_price": has_role(request.user, *PRICE_ROLES) and may_price(request.user, product.carpark_id),
        },
    )


@role_required(*EDIT_ROLES)
def product_edit(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_for_user(Product.objects.filter(carpark__in=editable_carparks(request.user)), pk)
    initial = {field: getattr(product, field) for field in (*PRODUCT_FIELDS, "quota", "is_active")}
    form = ProductForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            product = product_services.product_update(
                product=product,
                user=request.user,
                quota=data["quota"],
                is_active=data["is_active"],
                **{field: data[field] for field in PRODUCT_FIELDS},
            )
        except services.CarparkError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, _("Product %(name)s was saved.") % {"name": product.name})
            return redirect("carparks:product-detail", pk=product.pk)
    return render(request, "carparks/product_form.html", {"form": form, "carpark": product.carpark, "product": product})


@role_required(*PRICE_ROLES)
def product_price_new(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_for_user(selectors.products_with_availability(_visible_products(request.user)), pk)
    if not may_price(request.user, product.carpark_id):
        raise Http404
    form = PriceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            price = product_services.product_price_set(
                product=product,
                monthly_price=form.cleaned_data["monthly_price"],
                valid_from=form.cleaned_data["valid_from"],
                user=request.user,
            )
        except services.CarparkError as exc:
            _field_error(form, exc)
        else:
            messages.success(
                request,
                _("%(name)s costs %(price)s a month from %(date)s.")
                % {
                    "name": product.name,
                    "price": number_format(price.monthly_price, 2),
                    "date": date_format(price.valid_from, "SHORT_DATE_FORMAT"),
                },
            )
            return redirect("carparks:product-detail", pk=product.pk)
    if request.method != "POST":
        return redirect("carparks:product-detail", pk=product.pk)
    return _product_page(request, product, form)


@role_required(*PRICE_ROLES)
@require_POST
def product_price_withdraw(request: HttpRequest, pk: int, price_pk: int) -> HttpResponse:
    product = get_for_user(_visible_products(request.user), pk)
    if not may_price(request.user, product.carpark_id):
        raise Http404
    price = get_for_user(ProductPrice.objects.filter(product=product), price_pk)
    try:
        product_services.product_price_withdraw(price=price, user=request.user)
    except services.CarparkError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("The price %(price)s from %(date)s was withdrawn.")
            % {
                "price": number_format(price.monthly_price, 2),
                "date": date_format(price.valid_from, "SHORT_DATE_FORMAT"),
            },
        )
    return redirect("carparks:product-detail", pk=product.pk)
