"""API v1: a customer's payment option (card, SEPA Direct Debit, bank transfer), read and changed through
the same service as the portal (``billing.payment_setup.customer_payment_option_set``).

Switching to SEPA Direct Debit without an accepted mandate emails the customer the mandate link and keeps
the current option until the customer accepts it (``outcome`` ``mandate_requested``). A customer the client
may not see answers 404.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.payment_options import PaymentOption
from carparks.access import customers_for_client
from carparks.api.views import ERROR, FIELD_ERRORS, ApiView
from carparks.models import ApiClient, Customer


class MandateSerializer(serializers.Serializer):
    reference = serializers.CharField()
    accepted_at = serializers.DateTimeField()
    iban_last4 = serializers.CharField()


class PaymentOptionSerializer(serializers.Serializer):
    customer = serializers.IntegerField()
    payment_option = serializers.ChoiceField(choices=PaymentOption.choices)
    options_offered = serializers.ListField(child=serializers.ChoiceField(choices=PaymentOption.choices))
    sepa_mandate = MandateSerializer(allow_null=True, help_text="The SEPA mandate debits are collected under.")
    outcome = serializers.ChoiceField(
        choices=["changed", "unchanged", "mandate_requested"], required=False, help_text="After a change only."
    )
    message = serializers.CharField(required=False)


class PaymentOptionChangeSerializer(serializers.Serializer):
    payment_option = serializers.ChoiceField(choices=PaymentOption.choices)


def _state(customer: Customer) -> dict[str, Any]:
    from billing.payment_setup import chargeable_method, options_offered

    method = chargeable_method(customer.pk, PaymentOption.SEPA_DEBIT)
    return {
        "customer": customer.pk,
        "payment_option": customer.payment_option,
        "options_offered": options_offered(customer),
        "sepa_mandate": {
            "reference": method.mandate_reference,
            "accepted_at": method.mandate_accepted_at,
            "iban_last4": method.last4,
        }
        if method
        else None,
    }


class CustomerPaymentOption(ApiView):
    required_scopes = {"GET": ApiClient.Scope.CONTRACTS_READ, "PUT": ApiClient.Scope.CONTRACTS_WRITE}

    def _customer(self, pk: int) -> Customer:
        return get_object_or_404(customers_for_client(self.client()), pk=pk)

    @extend_schema(
        summary="A customer's payment option and SEPA mandate",
        responses={200: PaymentOptionSerializer, 404: ERROR, 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(PaymentOptionSerializer(_state(self._customer(pk))).data)

    @extend_schema(
        summary="Change a customer's payment option",
        description="The option must be offered by the products of the customer's contracts. SEPA Direct Debit "
        "without an accepted mandate: the mandate link is emailed and the current option stays until the "
        "customer accepts it (outcome mandate_requested).",
        request=PaymentOptionChangeSerializer,
        responses={200: PaymentOptionSerializer, 400: FIELD_ERRORS, 404: ERROR, 401: ERROR, 403: ERROR},
    )
    def put(self, request: Request, pk: int) -> Response:
        from billing.payment_setup import customer_payment_option_set

        customer = self._customer(pk)
        form = PaymentOptionChangeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            change = customer_payment_option_set(
                customer=customer, option=form.validated_data["payment_option"], user=None
            )
        except ValidationError as exc:
            raise serializers.ValidationError({"payment_option": exc.messages}) from None
        customer.refresh_from_db()
        data = _state(customer) | {"outcome": change.outcome, "message": change.message}
        return Response(PaymentOptionSerializer(data).data)
