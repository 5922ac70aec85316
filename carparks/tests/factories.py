"""factory_boy factories for the car-park domain."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from carparks.models import CarPark, Customer, Product


class CarParkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CarPark

    name = factory.Sequence(lambda n: f"Car park {n}")
    code = factory.Sequence(lambda n: f"cp-{n}")
    city = "Munich"
    capacity = 100


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    carpark = factory.SubFactory(CarParkFactory)
    name = factory.Sequence(lambda n: f"Season ticket {n}")
    monthly_price = Decimal("99.00")
    quota = 10
    deposit = Decimal("25.00")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class CorporateFactory(CustomerFactory):
    kind = Customer.Kind.CORPORATE
    name = factory.Sequence(lambda n: f"Company {n} GmbH")
    company_number = factory.Sequence(lambda n: f"HRB {1000 + n}")
    billing_contact = "Accounts payable"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.Sequence(lambda n: f"user{n}@parkinghq.example")
    last_login = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in extracted or []:
            self.groups.add(Group.objects.get_or_create(name=role)[0])

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "demo")
        self.save()


def approve_directly(contract, **kwargs):
    """Approve an application without its review, for tests that need an approved (or running) contract.

    Approving while the review task waits in the basket is refused (the review decides), so the review the
    application started is closed first, as when a person ends an application by hand.
    """
    from carparks import services

    services.contract_processes_close(contract=contract, reason="Approved directly in a test.")
    return services.contract_approve(contract=contract, **kwargs)


def january_invoice(customer, *contracts, **fields):
    """An invoice of ``customer`` for January 2026 with one 119.00 line per contract (fields such as
    ``number`` go to the invoice), for tests of who sees which invoices."""
    from datetime import date
    from decimal import Decimal

    from billing.models import Invoice, InvoiceLine

    start, end = date(2026, 1, 1), date(2026, 1, 31)
    invoice = Invoice.objects.create(customer=customer, period_start=start, period_end=end, **fields)
    for contract in contracts:
        InvoiceLine.objects.create(
            invoice=invoice,
            contract=contract,
            description=f"Parking contract {contract.pk}",
            period_start=start,
            service_start=start,
            service_end=end,
            days=31,
            days_in_period=31,
            monthly_price=Decimal("119.00"),
            vat_rate=Decimal("19.00"),
            net=Decimal("100.00"),
            vat=Decimal("19.00"),
            gross=Decimal("119.00"),
        )
    return invoice
