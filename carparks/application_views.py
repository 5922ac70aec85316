"""The staff's "New application" page: a season application taken by phone, at the counter, by email or
from a letter, for an existing customer.

It goes through ``services.contract_apply`` like the REST API, so it validates alike and emits the same
``application.received`` (the same review starts); a product beyond its quota puts the application on
the waitlist. The car park must be one the user is responsible for (Administrators and Supervisors see
all); another customer or car park answers 404, a product of another car park is refused at its field.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from accounts.roles import ADMINISTRATOR, AGENT, CARE, SUPERVISOR, role_required
from carparks import services
from carparks.access import customers_for_user, get_for_user
from carparks.application_forms import ApplicationForm
from carparks.models import Contract, Customer

APPLICATION_ROLES = (AGENT, CARE, SUPERVISOR, ADMINISTRATOR)


def _waitlist_rank(contract: Contract) -> int:
    return (
        Contract.objects.filter(
            product_id=contract.product_id,
            state=Contract.State.WAITLISTED,
            waitlist_position__lt=contract.waitlist_position,
        ).count()
        + 1
    )


@role_required(*APPLICATION_ROLES)
def application_create(request: HttpRequest, customer_pk: int) -> HttpResponse:
    customers = customers_for_user(request.user, Customer.objects.filter(merged_into__isnull=True))
    customer = get_for_user(customers, customer_pk)
    form = ApplicationForm(
        request.POST or None,
        customer=customer,
        user=request.user,
        initial={"carpark": request.GET.get("carpark", "")},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        channel = data["channel"]
        try:
            contract = services.contract_apply(
                customer=customer,
                product=data["product"],
                vehicles=data["vehicles"],
                start_date=data["start_date"],
                places=data.get("places") or 1,
                cost_centre=data.get("cost_centre") or "",
                channel=channel,
                user=request.user,
                note=f"Application taken by {request.user} ({dict(form.fields['channel'].choices)[channel]}).",
            )
        except services.CarparkError as exc:
            form.add_service_error(exc)
        else:
            if contract.state == Contract.State.WAITLISTED:
                messages.warning(
                    request,
                    _("No place free: application %(number)s is number %(rank)s on the waitlist of %(product)s.")
                    % {"number": contract.pk, "rank": _waitlist_rank(contract), "product": contract.product.name},
                )
            else:
                messages.success(
                    request, _("Application %(number)s taken: it waits for review.") % {"number": contract.pk}
                )
            return redirect("carparks:contract-detail", pk=contract.pk)
    # Choosing the car park reloads the product list (htmx swaps in the product field of this page).
    form.fields["carpark"].widget.attrs.update(
        {
            "hx-get": request.path,
            "hx-trigger": "change",
            "hx-target": "#product-field",
            "hx-select": "#product-field",
            "hx-swap": "outerHTML",
        }
    )
    return render(request, "carparks/application_form.html", {"customer": customer, "form": form})
