"""Request and response shapes of the API (validation errors name the field at fault)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.payment_options import PaymentOption
from carparks import services
from carparks.access import contracts_for_client, customers_for_client
from carparks.models import CarPark, Case, Contract, Credential, Customer, Product


class ProductSerializer(serializers.ModelSerializer):
    places_free = serializers.SerializerMethodField()
    waitlist_length = serializers.SerializerMethodField()
    payment_options = serializers.ListField(
        child=serializers.ChoiceField(choices=PaymentOption.choices),
        read_only=True,
        help_text="How customers of this product may pay: card, sepa_debit, bank_transfer.",
    )

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "monthly_price",
            "vat_rate",
            "vehicle_class",
            "validity",
            "deposit",
            "notice_period_days",
            "quota",
            "places_free",
            "waitlist_length",
            "payment_options",
        ]

    def get_places_free(self, product: Product) -> int:
        taken = getattr(product, "places_taken", None)
        if taken is None:
            from carparks.selectors import product_places_taken

            taken = product_places_taken(product)
        return max(product.quota - taken, 0)

    def get_waitlist_length(self, product: Product) -> int:
        waitlisted = getattr(product, "waitlisted", None)
        if waitlisted is None:
            waitlisted = product.contracts.filter(state=Contract.State.WAITLISTED).count()
        return waitlisted


class CarParkSerializer(serializers.ModelSerializer):
    products = serializers.SerializerMethodField()

    class Meta:
        model = CarPark
        fields = [
            "id",
            "code",
            "name",
            "operator",
            "street",
            "postcode",
            "city",
            "country",
            "latitude",
            "longitude",
            "time_zone",
            "capacity",
            "opening_hours",
            "occupancy",
            "occupancy_updated_at",
            "products",
        ]

    @staticmethod
    def _products(carpark: CarPark) -> list[Product]:
        return [p for p in carpark.products.all() if p.is_active]

    @extend_schema_field(ProductSerializer(many=True))
    def get_products(self, carpark: CarPark) -> list[dict[str, Any]]:
        return ProductSerializer(self._products(carpark), many=True).data


# The languages a customer is written to in (API values and labels stay English).
CUSTOMER_LANGUAGES = [("de", "German"), ("en", "English")]


class CustomerInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Customer.Kind.choices, default=Customer.Kind.PRIVATE)
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField()
    phone = serializers.CharField(max_length=50, required=False, allow_blank=True)
    street = serializers.CharField(max_length=200, required=False, allow_blank=True)
    postcode = serializers.CharField(max_length=20, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    country = serializers.RegexField(r"^[A-Z]{2}$", required=False, help_text="ISO 3166 alpha-2, e.g. DE.")
    company_number = serializers.CharField(max_length=50, required=False, allow_blank=True)
    vat_id = serializers.CharField(max_length=50, required=False, allow_blank=True)
    billing_contact = serializers.CharField(max_length=200, required=False, allow_blank=True)
    billing_email = serializers.EmailField(required=False, allow_blank=True)
    language = serializers.ChoiceField(
        choices=CUSTOMER_LANGUAGES,
        required=False,
        help_text="The language of the customer's emails, invoices and credit notes (default de).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("kind") == Customer.Kind.CORPORATE and not attrs.get("company_number"):
            raise serializers.ValidationError({"company_number": ["A corporate customer needs a company number."]})
        return attrs


class VehicleInputSerializer(serializers.Serializer):
    plate = serializers.CharField(max_length=30, help_text="Spaces, dashes and case do not matter.")
    country = serializers.RegexField(r"^[A-Za-z]{1,3}$", default="D", help_text="International vehicle code.")
    description = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    cost_centre = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")

    def validate_plate(self, value: str) -> str:
        try:
            return services.plate_validate(value)
        except services.CarparkError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ApplicationSerializer(serializers.Serializer):
    START_CHOICES = [
        ("immediately", "Immediately"),
        ("next_month", "From the first of next month"),
        ("date", "On start_date"),
    ]

    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.filter(is_active=True, carpark__is_active=True), help_text="The product id."
    )
    customer = CustomerInputSerializer()
    vehicles = VehicleInputSerializer(many=True, allow_empty=False, max_length=100)
    start = serializers.ChoiceField(choices=START_CHOICES, default="immediately")
    start_date = serializers.DateField(required=False, help_text="Needed when start is 'date'.")
    end_date = serializers.DateField(required=False, help_text="Leave out for an open-ended contract.")
    cost_centre = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = timezone.localdate()
        if attrs["start"] == "date":
            if not attrs.get("start_date"):
                raise serializers.ValidationError({"start_date": ["Give the start date when start is 'date'."]})
        elif attrs["start"] == "next_month":
            attrs["start_date"] = services.first_of_next_month(today)
        else:
            attrs["start_date"] = today
        if attrs["start_date"] < today:
            raise serializers.ValidationError({"start_date": ["The start date cannot be in the past."]})
        if attrs.get("end_date") and attrs["end_date"] < attrs["start_date"]:
            raise serializers.ValidationError({"end_date": ["The end date must not be before the start date."]})
        plates = [(v["plate"], v["country"].upper()) for v in attrs["vehicles"]]
        if len(set(plates)) != len(plates):
            raise serializers.ValidationError({"vehicles": ["A plate is listed twice."]})
        return attrs


class ApplicationResultSerializer(serializers.Serializer):
    contract_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Contract.State.choices)
    waitlist_position = serializers.IntegerField(allow_null=True)
    process_id = serializers.IntegerField(allow_null=True)


class VehicleSerializer(serializers.Serializer):
    plate = serializers.CharField()
    country = serializers.CharField()


class CredentialSerializer(serializers.ModelSerializer):
    class Meta:
        model = Credential
        fields = ["kind", "identifier", "valid_from", "valid_until", "is_active"]


class ContractEventSerializer(serializers.Serializer):
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class ContractSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="state")
    product = serializers.SerializerMethodField()
    carpark = serializers.SerializerMethodField()
    vehicles = VehicleSerializer(many=True)
    credentials = CredentialSerializer(many=True)
    waitlist_position = serializers.SerializerMethodField()
    history = ContractEventSerializer(many=True, source="events")
    customer_language = serializers.ChoiceField(
        choices=CUSTOMER_LANGUAGES,
        source="customer.language",
        read_only=True,
        help_text="The language the customer is written to in.",
    )

    class Meta:
        model = Contract
        fields = [
            "id",
            "status",
            "customer_id",
            "customer_language",
            "product",
            "carpark",
            "start_date",
            "end_date",
            "monthly_price",
            "deposit",
            "vehicles",
            "credentials",
            "waitlist_position",
            "offer_expires_at",
            "history",
        ]

    @extend_schema_field({"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}})
    def get_product(self, contract: Contract) -> dict[str, Any]:
        return {"id": contract.product_id, "name": contract.product.name}

    @extend_schema_field({"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}})
    def get_carpark(self, contract: Contract) -> dict[str, Any]:
        return {"id": contract.product.carpark_id, "name": contract.product.carpark.name}

    def get_waitlist_position(self, contract: Contract) -> int | None:
        """The contract's current place in the queue (1 = next in line)."""
        if contract.state != Contract.State.WAITLISTED:
            return None
        ahead = Contract.objects.filter(
            product_id=contract.product_id,
            state=Contract.State.WAITLISTED,
            waitlist_position__lt=contract.waitlist_position,
        ).count()
        return ahead + 1


class PlateChangeSerializer(serializers.Serializer):
    old_plate = serializers.CharField(max_length=30)
    new_plate = serializers.CharField(max_length=30)
    country = serializers.RegexField(r"^[A-Za-z]{1,3}$", default="D")

    def validate_new_plate(self, value: str) -> str:
        try:
            return services.plate_validate(value, field="new_plate")
        except services.CarparkError as exc:
            raise serializers.ValidationError(str(exc)) from None


class TerminationSerializer(serializers.Serializer):
    end_date = serializers.DateField(required=False, help_text="Leave out for the earliest date the notice allows.")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CaseCreateSerializer(serializers.Serializer):
    """A case for a contract or customer of the calling client (``context["client"]``): ids of anyone
    else's are answered like ids that do not exist, at the field."""

    contract = serializers.PrimaryKeyRelatedField(queryset=Contract.objects.none(), required=False)
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.none(), required=False)
    kind = serializers.ChoiceField(choices=Case.Kind.choices)
    subject = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    invoice_id = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    priority = serializers.ChoiceField(choices=Case.Priority.choices, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        client = self.context.get("client")
        if client is not None:
            self.fields["contract"].queryset = contracts_for_client(client)
            self.fields["customer"].queryset = customers_for_client(client)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        contract, customer = attrs.get("contract"), attrs.get("customer")
        if contract is None and customer is None:
            raise serializers.ValidationError({"customer": ["Name the customer or the contract."]})
        if contract is not None and customer is not None and contract.customer_id != customer.pk:
            raise serializers.ValidationError({"contract": ["The contract belongs to another customer."]})
        if attrs["kind"] == Case.Kind.CARD_REPLACEMENT and contract is None:
            raise serializers.ValidationError({"contract": ["A card replacement needs the contract."]})
        attrs["customer"] = customer or contract.customer
        if attrs.get("invoice_id") is not None and not self._invoice_of(attrs["customer"], attrs["invoice_id"]):
            # A refund case names the invoice Finance refunds: it must be this customer's, and the client's.
            raise serializers.ValidationError({"invoice_id": ["No such invoice of this customer."]})
        return attrs

    def _invoice_of(self, customer: Customer, invoice_id: int) -> bool:
        from django.apps import apps

        if not apps.is_installed("billing"):
            return True
        from billing.selectors import invoices_for_client

        client = self.context.get("client")
        invoices = apps.get_model("billing", "Invoice").objects.filter(pk=invoice_id, customer=customer)
        return (invoices_for_client(client, invoices) if client is not None else invoices).exists()


class CaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Case
        fields = [
            "id",
            "kind",
            "priority",
            "state",
            "subject",
            "description",
            "customer",
            "contract",
            "invoice_id",
            "sla_due_at",
            "resolution",
            "created_at",
        ]


class ProcessTaskSerializer(serializers.Serializer):
    name = serializers.CharField()
    role = serializers.CharField()
    state = serializers.CharField()
    due_at = serializers.DateTimeField(allow_null=True)


class ProcessSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    definition = serializers.CharField(help_text="The definition key, e.g. season-contract.")
    version = serializers.IntegerField()
    state = serializers.CharField()
    current_step = serializers.CharField()
    result = serializers.CharField()
    incident = serializers.BooleanField()
    business_object = serializers.DictField(allow_null=True)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    open_tasks = ProcessTaskSerializer(many=True)
