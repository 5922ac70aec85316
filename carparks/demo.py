"""Demo data of the car-park domain: 10 car parks with products, 200 customers (private and
corporate), contracts in every lifecycle state with their history and credentials, waitlists,
offers, cases, car-park responsibilities for the demo users and a demo API client.

Idempotent (nothing happens when the demo car parks exist) and fast: rows are bulk-created; only
the contracts and cases that should show up in the task basket start their processes.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from carparks.models import (
    ApiClient,
    CarPark,
    Case,
    CaseEvent,
    Contract,
    ContractEvent,
    Credential,
    Customer,
    Product,
    Vehicle,
)

CARPARKS = [
    ("Hauptbahnhof Süd", "muc-hbf", "Munich", "Bayerstraße 10", "80335", 48.1402, 11.5600, 850),
    ("Marienplatz Tiefgarage", "muc-marien", "Munich", "Rindermarkt 16", "80331", 48.1366, 11.5740, 420),
    ("Messe Riem P3", "muc-messe", "Munich", "Am Messesee 2", "81829", 48.1358, 11.6900, 900),
    ("Alexanderplatz", "ber-alex", "Berlin", "Karl-Liebknecht-Str. 9", "10178", 52.5219, 13.4132, 610),
    ("Potsdamer Platz Arkaden", "ber-potsdam", "Berlin", "Alte Potsdamer Str. 7", "10785", 52.5096, 13.3760, 540),
    ("Hafencity Überseequartier", "ham-hafen", "Hamburg", "Überseeboulevard 5", "20457", 53.5413, 9.9987, 480),
    ("Dom/Römer", "fra-roemer", "Frankfurt", "Domstraße 1", "60311", 50.1106, 8.6842, 350),
    ("Königsallee", "dus-koe", "Düsseldorf", "Königsallee 60", "40212", 51.2240, 6.7790, 300),
    ("Schlossplatz", "str-schloss", "Stuttgart", "Schlossplatz 4", "70173", 48.7784, 9.1800, 260),
    ("Neumarkt", "cgn-neumarkt", "Cologne", "Neumarkt 18", "50667", 50.9355, 6.9470, 150),
]
PRODUCTS = [
    ("Season ticket 24/7", Product.Validity.ALL_DAY, Product.VehicleClass.CAR, Decimal("129.00"), 0.10),
    ("Commuter weekdays", Product.Validity.WEEKDAYS, Product.VehicleClass.CAR, Decimal("89.00"), 0.08),
    ("Residents nights", Product.Validity.NIGHTS, Product.VehicleClass.CAR, Decimal("59.00"), 0.04),
    ("EV charging bay", Product.Validity.ALL_DAY, Product.VehicleClass.EV, Decimal("159.00"), 0.02),
]
FIRST = ["Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannes", "Ida", "Jonas", "Katrin", "Lukas"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Koch"]
COMPANIES = ["Logistik", "Consulting", "Software", "Bau", "Pharma", "Versicherung", "Medien", "Energie"]
CITY_PLATES = {"Munich": "M", "Berlin": "B", "Hamburg": "HH", "Frankfurt": "F", "Düsseldorf": "D", "Stuttgart": "S"}
CASE_SUBJECTS = {
    Case.Kind.COMPLAINT: ["Barrier did not open", "Charged twice this month", "Dirty stairwell", "Rude staff"],
    Case.Kind.REFUND: ["Refund for closed weeks", "Deposit not returned", "Double debit"],
    Case.Kind.CARD_REPLACEMENT: ["Card lost", "Card broken", "Card stolen"],
    Case.Kind.CALLBACK: ["Please call me back about my contract", "Call back about the invoice"],
    Case.Kind.QUESTION: ["Invoice address", "Can I park a van?", "Opening hours at Christmas"],
}
DEMO_ROLES_CARPARKS = {"agent": 5, "care": 10, "manager": 3, "finance": 10}


def load(stdout: Any) -> None:
    if CarPark.objects.filter(code=CARPARKS[0][1]).exists():
        stdout.write("carparks.demo: demo car parks already there\n")
        return
    rng = random.Random(20261125)  # noqa: S311 - demo data, reproducible
    with transaction.atomic():
        carparks, products = _carparks_and_products(rng)
        _price_history(products)
        customers = _customers(rng)
        _customer_billing_and_review(customers)
        contracts = _contracts(rng, products, customers)
        _payment_options(products, customers)
        cases = _cases(rng, customers, contracts)
        _responsibilities(carparks)
        token = _api_client()
        started = _processes(contracts, cases)
        started += _corporate_places(carparks[0], customers)
    stdout.write(
        f"carparks.demo: {len(carparks)} car parks, {len(products)} products, {len(customers)} customers, "
        f"{len(contracts)} contracts, {len(cases)} cases, {started} processes started\n"
    )
    if token:
        stdout.write(f"carparks.demo: API token of 'Demo shop' (all scopes and car parks, shown once): {token}\n")


def _carparks_and_products(rng: random.Random) -> tuple[list[CarPark], list[Product]]:
    now = timezone.now()
    carparks = CarPark.objects.bulk_create(
        [
            CarPark(
                name=name,
                code=code,
                city=city,
                street=street,
                postcode=postcode,
                latitude=Decimal(str(lat)),
                longitude=Decimal(str(lon)),
                capacity=capacity,
                operator="ParkingHQ Demo GmbH",
                opening_hours="Mo-Su 00:00-24:00" if capacity > 400 else "Mo-Sa 06:00-23:00",
                cpms_reference=f"CPMS-{code.upper()}",
                occupancy=int(capacity * rng.uniform(0.35, 0.95)),
                occupancy_updated_at=now,
            )
            for name, code, city, street, postcode, lat, lon, capacity in CARPARKS
        ]
    )
    products = []
    for index, carpark in enumerate(carparks):
        offered = PRODUCTS if index % 3 == 0 else PRODUCTS[:3] if index % 3 == 1 else PRODUCTS[:2]
        for name, validity, vehicle_class, price, share in offered:
            products.append(
                Product(
                    carpark=carpark,
                    name=name,
                    validity=validity,
                    vehicle_class=vehicle_class,
                    monthly_price=price,
                    quota=max(3, int(carpark.capacity * share / 4)),
                    deposit=Decimal("50.00") if vehicle_class == Product.VehicleClass.EV else Decimal("25.00"),
                    notice_period_days=30 if validity == Product.Validity.ALL_DAY else 14,
                )
            )
    # The smallest products are full with a queue: the waitlist has something to show.
    products = Product.objects.bulk_create(products)
    return carparks, products


def _price_history(products: list[Product]) -> int:
    """Every product's price list; every third product's price rises on the 15th of next month."""
    from carparks.models import ProductPrice
    from carparks.services import first_of_next_month

    change_on = first_of_next_month().replace(day=15)
    rows = []
    for index, product in enumerate(products):
        if index % 3 == 0:
            rows.append(
                ProductPrice(
                    product=product,
                    monthly_price=product.monthly_price,
                    valid_from=date(2000, 1, 1),
                    valid_until=change_on - timedelta(days=1),
                )
            )
            rise = (product.monthly_price * Decimal("1.06")).quantize(Decimal("1"))
            rows.append(ProductPrice(product=product, monthly_price=rise, valid_from=change_on))
        else:
            rows.append(ProductPrice(product=product, monthly_price=product.monthly_price, valid_from=date(2000, 1, 1)))
    ProductPrice.objects.bulk_create(rows)
    return len(rows)


def _customers(rng: random.Random) -> list[Customer]:
    customers = []
    for i in range(200):
        if i % 7 == 3:
            company = f"{rng.choice(LAST)} {rng.choice(COMPANIES)} {'GmbH' if i % 2 else 'AG'}"
            customers.append(
                Customer(
                    kind=Customer.Kind.CORPORATE,
                    name=f"{company} {i}",
                    email=f"fleet{i}@company{i}.example",
                    company_number=f"HRB {10000 + i}",
                    vat_id=f"DE{300000000 + i}",
                    billing_contact=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    billing_email=f"invoices{i}@company{i}.example",
                    cost_centres=["CC-100", "CC-200", "CC-300"],
                    authorised_contacts=[
                        {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "email": f"ops{i}@x.example"}
                    ],
                    city=rng.choice(list(CITY_PLATES)),
                    street=f"Industriestraße {i}",
                    postcode=f"{80000 + i}",
                )
            )
        else:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            customers.append(
                Customer(
                    kind=Customer.Kind.PRIVATE,
                    name=f"{first} {last}",
                    email=f"{first.lower()}.{last.lower().replace('ü', 'ue')}{i}@example.com",
                    phone=f"+49 151 {1000000 + i}",
                    city=rng.choice(list(CITY_PLATES)),
                    street=f"Gartenweg {i % 90 + 1}",
                    postcode=f"{10000 + i * 37 % 89999}",
                )
            )
    return Customer.objects.bulk_create(customers)


def _payment_options(products: list[Product], customers: list[Customer]) -> None:
    """Season and commuter tickets also offer bank transfer on invoice (companies pay that way), the others card
    and SEPA Direct Debit; companies whose products all offer it pay by bank transfer, every fourth private
    customer by SEPA Direct Debit (billing.demo gives them a mandate)."""
    from billing.payment_options import PaymentOption

    everything = [option.value for option in PaymentOption]
    by_transfer = [p.pk for p in products if p.name in ("Season ticket 24/7", "Commuter weekdays")]
    Product.objects.filter(pk__in=by_transfer).update(payment_options=everything)
    companies = [c.pk for c in customers if c.kind == Customer.Kind.CORPORATE]
    held_elsewhere = Contract.objects.filter(customer_id__in=companies).exclude(product_id__in=by_transfer)
    Customer.objects.filter(pk__in=companies).exclude(pk__in=held_elsewhere.values("customer_id")).update(
        payment_option=PaymentOption.BANK_TRANSFER
    )
    private = [c.pk for c in customers if c.kind == Customer.Kind.PRIVATE]
    Customer.objects.filter(pk__in=private[::4]).update(payment_option=PaymentOption.SEPA_DEBIT)


def _customer_billing_and_review(customers: list[Customer]) -> int:
    """Two companies bill to their own address with their own cost centres (one in English); a third
    applied again through the web shop under the first one's company number and waits for review as a
    possible duplicate (its page shows "May be the same company as …")."""
    corporate = [c for c in customers if c.kind == Customer.Kind.CORPORATE][:3]
    if len(corporate) < 3:
        return 0
    first, second, branch = corporate
    first.billing_contact, first.billing_email = "Kreditorenbuchhaltung", f"rechnung@{first.email.split('@')[1]}"
    first.billing_street, first.billing_postcode, first.billing_city, first.billing_country = (
        "Postfach 10 20 30",
        "80001",
        "München",
        "DE",
    )
    first.cost_centres, first.language = ["Vertrieb", "Service", "Geschäftsführung"], "de"
    second.billing_contact, second.billing_email = "Accounts payable", f"ap@{second.email.split('@')[1]}"
    second.billing_street, second.billing_postcode, second.billing_city, second.billing_country = (
        "PO Box 4711",
        "10117",
        "Berlin",
        "DE",
    )
    second.cost_centres, second.language = ["FLEET-01", "FLEET-02", "POOL"], "en"
    branch.name = f"{first.name.rsplit(' ', 1)[0]} Niederlassung Nord"
    branch.company_number, branch.possible_duplicate_of = first.company_number, first
    fields = [
        "name",
        "company_number",
        "possible_duplicate_of",
        "billing_contact",
        "billing_email",
        "billing_street",
        "billing_postcode",
        "billing_city",
        "billing_country",
        "cost_centres",
        "language",
    ]
    Customer.objects.bulk_update([first, second, branch], fields)
    return 3


def _plate(rng: random.Random, city: str, n: int) -> str:
    letters = "".join(rng.choice("ABCDEFGHKLMNPRSTUVWXYZ") for _ in range(2))
    return f"{CITY_PLATES.get(city, 'K')}{letters}{n}"


# (state, count-per-product weights): every state appears; active dominates.
def _contracts(rng: random.Random, products: list[Product], customers: list[Customer]) -> list[Contract]:
    today = timezone.localdate()
    now = timezone.now()
    vehicles: list[Vehicle] = []
    plan: list[tuple[Contract, list[int], list[str]]] = []
    plate_no = 100
    fleet_owner = next(c for c in customers if c.kind == Customer.Kind.CORPORATE)
    customer_cycle = iter(rng.sample(customers, len(customers)) * 3)
    waitlist_no: dict[int, int] = {}
    fleet_done = False

    def new_vehicles(customer: Customer, count: int) -> list[int]:
        nonlocal plate_no
        indexes = []
        for _ in range(count):
            plate_no += 1
            vehicles.append(
                Vehicle(
                    customer=customer,
                    plate=_plate(rng, customer.city, plate_no),
                    country="D",
                    cost_centre=rng.choice(customer.cost_centres) if customer.cost_centres else "",
                )
            )
            indexes.append(len(vehicles) - 1)
        return indexes

    for p_index, product in enumerate(products):
        # Small products are full and have a queue; large ones keep free places.
        full = product.quota <= 6
        holding = product.quota if full else max(1, int(product.quota * rng.uniform(0.5, 0.8)))
        states: list[str] = []
        states += [Contract.State.ACTIVE] * max(holding - 4, 0)
        states += [Contract.State.SUSPENDED, Contract.State.APPROVED, Contract.State.APPLIED][: min(3, holding)]
        if holding >= 4:
            states += [Contract.State.OFFERED if full else Contract.State.APPLIED]
        if full:
            states += [Contract.State.WAITLISTED] * rng.randint(2, 5)
        states += [Contract.State.TERMINATED] * rng.randint(0, 2)
        if p_index % 4 == 0:
            states += [Contract.State.REJECTED, Contract.State.CANCELLED]
        for state in states:
            if state == Contract.State.ACTIVE and not fleet_done:
                # One corporate account runs 20 vehicles on one contract.
                customer, count, fleet_done = fleet_owner, 20, True
            else:
                customer = next(customer_cycle)
                count = rng.randint(2, 4) if customer.kind == Customer.Kind.CORPORATE else 1
            started = today - timedelta(days=rng.randint(40, 700))
            contract = Contract(
                customer=customer,
                product=product,
                state=state,
                start_date=started if state not in ("applied", "waitlisted", "offered") else today,
                deposit=product.deposit,
                monthly_price=product.monthly_price,
                cost_centre="FLEET" if count == 20 else "",
            )
            path = _history(state)
            if state == Contract.State.TERMINATED:
                contract.end_date = today - timedelta(days=rng.randint(1, 30))
            if state == Contract.State.WAITLISTED:
                waitlist_no[product.pk] = waitlist_no.get(product.pk, 0) + 1
                contract.waitlist_position = waitlist_no[product.pk]
            if state == Contract.State.OFFERED:
                contract.offer_expires_at = now + timedelta(days=rng.randint(1, 6))
            plan.append((contract, new_vehicles(customer, count), path))
    vehicles = Vehicle.objects.bulk_create(vehicles)
    contracts = Contract.objects.bulk_create([c for c, _, _ in plan])
    through = Contract.vehicles.through
    links, events, credentials = [], [], []
    for contract, vehicle_indexes, path in plan:
        for index in vehicle_indexes:
            links.append(through(contract_id=contract.pk, vehicle_id=vehicles[index].pk))
        for from_state, to_state in zip(["", *path], path, strict=False):
            events.append(
                ContractEvent(contract=contract, from_state=from_state, to_state=to_state, note="Demo history.")
            )
        if contract.state in (Contract.State.ACTIVE, Contract.State.SUSPENDED, Contract.State.TERMINATED):
            for index in vehicle_indexes:
                credentials.append(
                    Credential(
                        contract=contract,
                        carpark_id=contract.product.carpark_id,
                        kind=Credential.Kind.PLATE,
                        identifier=vehicles[index].plate,
                        valid_from=contract.start_date,
                        valid_until=contract.end_date,
                        is_active=contract.state == Contract.State.ACTIVE,
                    )
                )
            if rng.random() < 0.3:
                credentials.append(
                    Credential(
                        contract=contract,
                        carpark_id=contract.product.carpark_id,
                        kind=Credential.Kind.RFID,
                        identifier=f"{rng.randrange(10**9, 10**10)}",
                        valid_from=contract.start_date,
                        is_active=contract.state == Contract.State.ACTIVE,
                    )
                )
    through.objects.bulk_create(links)
    ContractEvent.objects.bulk_create(events)
    Credential.objects.bulk_create(credentials)
    return contracts


def _history(state: str) -> list[str]:
    paths = {
        "applied": ["applied"],
        "waitlisted": ["applied", "waitlisted"],
        "offered": ["applied", "waitlisted", "offered"],
        "approved": ["applied", "approved"],
        "active": ["applied", "approved", "active"],
        "suspended": ["applied", "approved", "active", "suspended"],
        "terminated": ["applied", "approved", "active", "terminated"],
        "rejected": ["applied", "rejected"],
        "cancelled": ["applied", "waitlisted", "cancelled"],
    }
    return paths[state]


def _cases(rng: random.Random, customers: list[Customer], contracts: list[Contract]) -> list[Case]:
    now = timezone.now()
    running = [c for c in contracts if c.state == Contract.State.ACTIVE]
    cases = []
    for i in range(40):
        kind = rng.choice(list(Case.Kind.values))
        contract = rng.choice(running) if kind == Case.Kind.CARD_REPLACEMENT or i % 2 else None
        customer = contract.customer if contract else rng.choice(customers)
        state = [Case.State.OPEN, Case.State.IN_PROGRESS, Case.State.RESOLVED, Case.State.CLOSED][i % 4]
        priority = rng.choice(list(Case.Priority.values))
        created = now - timedelta(hours=rng.randint(1, 96))
        cases.append(
            Case(
                customer=customer,
                contract=contract,
                kind=kind,
                priority=priority,
                state=state,
                channel=rng.choice(list(Case.Channel.values)),
                subject=rng.choice(CASE_SUBJECTS[kind]),
                description="Demo case.",
                invoice_id=rng.randint(1000, 9999) if kind == Case.Kind.REFUND else None,
                sla_due_at=created + timedelta(hours=rng.choice([4, 24, 72, 120])),
                resolution="Answered the customer." if state in ("resolved", "closed") else "",
                resolved_at=now if state in ("resolved", "closed") else None,
            )
        )
    cases = Case.objects.bulk_create(cases)
    CaseEvent.objects.bulk_create(
        [CaseEvent(case=case, from_state="", to_state=case.state, note="Demo case.") for case in cases]
    )
    return cases


def _responsibilities(carparks: list[CarPark]) -> None:
    from django.contrib.auth import get_user_model
    from guardian.shortcuts import assign_perm

    users = {u.username: u for u in get_user_model().objects.filter(username__in=DEMO_ROLES_CARPARKS)}
    for username, count in DEMO_ROLES_CARPARKS.items():
        if username in users:
            assign_perm(
                "carparks.responsible_carpark",
                users[username],
                CarPark.objects.filter(pk__in=[c.pk for c in carparks[:count]]),
            )


def _api_client() -> str | None:
    from carparks.api.authentication import api_client_create

    if ApiClient.objects.filter(name="Demo shop").exists():
        return None
    # The demo shop sells every demo car park's season tickets: granted all of them.
    client, token = api_client_create(
        name="Demo shop", scopes=list(ApiClient.Scope.values), carparks=CarPark.objects.all()
    )
    from parkinghq.dev_token import demo_api_token_adopt

    # Development: a token that stays the same, shown on the API clients page (elsewhere: only printed here).
    return demo_api_token_adopt(client) or token


def _corporate_places(carpark: CarPark, customers: list[Customer]) -> int:
    """A company pool (2 vehicles per place) with a corporate contract of 3 places and 6 vehicles, and a
    pending places review: two more vehicles asked for beyond the places (through the services, so the
    review process starts as it would). Returns the processes started."""
    from carparks import services

    company = [c for c in customers if c.kind == Customer.Kind.CORPORATE][-1]
    pool = Product.objects.create(
        carpark=carpark,
        name="Company pool",
        monthly_price=Decimal("249.00"),
        quota=30,
        audience=Product.Audience.CORPORATE,
        vehicles_per_place=2,
        notice_period_days=90,
        payment_options=["card", "sepa_debit", "bank_transfer"],
    )
    plates = [f"M-QJ {n}" for n in range(1, 7)]  # Q and J are in no other demo plate
    contract = services.contract_apply(
        customer=company, product=pool, vehicles=plates, places=3, channel="phone", note="Demo: company pool."
    )
    # Agreed at the counter: the review the application started is closed (approving waits for it otherwise).
    services.contract_processes_close(contract=contract, reason="Demo: agreed with the company at the counter.")
    contract = services.contract_activate(contract=services.contract_approve(contract=contract))
    changed = services.contract_add_vehicles(contract=contract, vehicles=["M-QJ 7", "M-QJ 8"], channel="email")
    return int(changed.change_request is not None)


def _processes(contracts: list[Contract], cases: list[Case]) -> int:
    """Emit the events that open applications, offers and cases would have (their processes fill the basket)."""
    from carparks.services import _application_emit, _case_payload, _emit, _offer_emit

    started = 0
    for contract in contracts:
        if contract.state == Contract.State.APPLIED:
            started += _application_emit(contract, channel="portal").process_id is not None
        elif contract.state == Contract.State.OFFERED:
            started += _offer_emit(contract).process_id is not None
    for case in cases:
        if case.state in Case.OPEN_STATES:
            event = _emit("case.opened", case, _case_payload(case), event_id=f"case.opened:{case.pk}")
            started += event.process_id is not None
    return started
