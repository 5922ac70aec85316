"""Every portal route × every role, opened on real objects of two car parks.

One dataset is seeded per module: car parks A and B, each with products, a price, private and company
customers, contracts (under review and active) with vehicles and credentials, a case, a CPMS link with a
sync run, and the review process with its open task; besides them invoices, a payment, a refund, a credit
note, an invoicing run, an accounting export, a billing exception, workflow definitions and versions, a
business event, an alert, a statement, a notification and an absence. Every URL keyword of a route is
filled from ``OBJECTS`` with an object of car park A; a route without an entry fails the sweep, so a new
view cannot dodge it.

``POLICY`` is the single declaration of who may use what: each route falls under its most specific
entry. A role it names must get an answer that is not an error (200, a redirect that is not to the
login, or 405 where the route takes POST only); every other role must get exactly 403 — a 404 is not
accepted, since it would hide a role check that never ran. Objects outside the user's car parks answer
404, asserted separately: a user holding an allowed role but responsible only for car park B opens
the car-park objects of A (404) and the same pages of B (allowed).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.test.utils import override_settings
from django.urls import URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts import roles
from tests.test_access import OUR_APPS, PATHS, PUBLIC, _module_of

A, W, S, G, F, C, M = (
    roles.ADMINISTRATOR,
    roles.WORKFLOW_ADMIN,
    roles.SUPERVISOR,
    roles.AGENT,
    roles.FINANCE,
    roles.CARE,
    roles.MANAGER,
)
EVERYONE = {A, W, S, G, F, C, M}
VIEWERS = {A, S, G, F, C, M}  # every back-office role but workflow admins: car parks, customers, contracts

# Route templates (keywords as <name>) → the roles that may use them; the longest matching prefix wins.
POLICY: dict[str, set[str]] = {
    "/": EVERYONE,
    "/accounts/profile/": EVERYONE,
    "/accounts/profile/language/": EVERYONE,  # each saves their own language only
    "/accounts/two-factor/": EVERYONE,
    "/accounts/audit/": {A},
    "/accounts/users/": {A},
    "/basket/": EVERYONE,  # each sees only the tasks of their roles and car parks
    "/basket/absences/<pk>/delete/": {A, W, S, G},  # the seeded absence is the Back-office agent's own
    # The seeded task is a Back-office agent's review in car park A: who may work on it claims, completes,
    # delegates and escalates it; supervisors (workflow admins too) see it, reassign, release and take it over.
    "/basket/tasks/<pk>/": {A, W, S, G},
    "/basket/tasks/<pk>/claim/": {A, S, G},
    "/basket/tasks/<pk>/complete/": {A, S, G},
    "/basket/tasks/<pk>/delegate/": {A, S, G},
    "/basket/tasks/<pk>/escalate/": {A, S, G},
    "/basket/tasks/<pk>/reassign/": {A, W, S},
    "/basket/tasks/<pk>/release/": {A, W, S},  # an unclaimed task: only supervisors release it
    "/basket/tasks/<pk>/take-over/": {A, W, S},
    "/notifications/": EVERYONE,
    "/outbox/": {A},  # development only: the emails the portal sent (parkinghq.outbox)
    "/billing/": {A, F},
    "/billing/dunning/": {A, F, S},  # the dunning overview
    "/billing/bank-statements/": {A, F, S},  # bank statements: Supervisors read (they get escalated matching tasks)
    "/billing/bank-statements/upload/": {A, F},
    "/billing/bank-entries/<pk>/": {A, F, S},
    "/billing/bank-entries/<pk>/match/": {A, F},
    "/billing/bank-entries/<pk>/ignore/": {A, F},
    # a customer's payment option and paper SEPA mandate: Finance, Customer care, Supervisors (billing/sepa_views.py)
    "/billing/customers/<pk>/payment-option/": {A, S, F, C},
    "/billing/customers/<pk>/sepa-mandate/": {A, S, F, C},
    "/billing/mandates/<pk>/": VIEWERS,  # a saved mandate's text, for whoever sees the customer
    "/carparks/": VIEWERS,
    "/carparks/cases/": {A, S, G, C},
    "/carparks/new/": {A, M},  # add a car park
    "/carparks/<pk>/edit/": {A, M},  # edit a car park (managers of it)
    "/carparks/<carpark_pk>/products/new/": {A, M},
    "/carparks/products/<pk>/edit/": {A, M},
    "/carparks/products/<pk>/prices/": {A, M, F},  # a new price, or withdraw a planned one
    "/carparks/products/<pk>/quota/": {A, S, M},
    "/carparks/customers/<customer_pk>/cases/": {A, S, G, C},
    "/carparks/customers/<customer_pk>/applications/": {A, S, G, C},  # applications taken by staff
    "/carparks/customers/new/": {A, S, G, C},  # create and edit customers
    "/carparks/customers/<pk>/edit/": {A, S, G, C},
    "/carparks/customers/<pk>/not-a-duplicate/": {A, S, G, C},
    "/carparks/customers/<pk>/merge/": {A, S},
    # Applications are decided by the back office; running contracts are managed also by Customer care and
    # Finance; a waitlist offer is accepted for the customer by those who act for customers.
    "/carparks/contracts/<pk>/approve/": {A, S, G},
    "/carparks/contracts/<pk>/reject/": {A, S, G},
    "/carparks/contracts/<pk>/activate/": {A, S, G},
    "/carparks/contracts/<pk>/accept_offer/": {A, S, G, C},
    "/carparks/contracts/<pk>/suspend/": {A, S, G, C, F},
    "/carparks/contracts/<pk>/reactivate/": {A, S, G, C, F},
    "/carparks/contracts/<pk>/cancel/": {A, S, G, C, F},
    "/carparks/contracts/<pk>/terminate/": {A, S, G, C, F},
    "/carparks/contracts/<pk>/card/": {A, S, G, C},
    "/carparks/contracts/<pk>/plate/": {A, S, G, C},
    "/carparks/contracts/<pk>/stage/": {A, S, G, C},
    "/carparks/contracts/<pk>/vehicles/": {A, S, G, C},
    "/connect/": {A, S, M},
    "/connect/new/": {A},
    "/connect/<pk>/edit/": {A},
    "/connect/<pk>/rights/": {A},  # the product → RightSpecification mapping
    "/connect/<pk>/sync/": {A, S},
    "/connect/carparks/<pk>/cpms/": VIEWERS,  # the CPMS panel of the car-park page
    "/connect/carparks/<pk>/cpms/refresh/": {A, S, M},
    "/monitoring/": {A, W, S, F, M},
    "/monitoring/analytics/event-log/": {A, W, S, F, M},  # the XES download; names people for A, W, S only
    "/connect/<pk>/progress/": {A, S},  # the live progress of syncs: the roles that start them
    "/connect/runs/<pk>/progress/": {A, S},
    "/monitoring/alerts/": {A, W, S, F},
    "/monitoring/alerts/evaluate/": {A, W},
    "/monitoring/alerts/rules/": {A, W},
    "/monitoring/statements/": {A, W, S, F},
    "/monitoring/statements/build/": {A, W, S, F},
    "/monitoring/statements/preview/": {A, W, S, F},
    "/workflows/definitions/": {A, W, S},
    "/workflows/events/": {A, W, S},
    "/workflows/events/<pk>/": {A, W},
    "/monitoring/statements/builds/": {A, W, S, F},  # a build's page and its progress poll
    "/workflows/events/replay-all/": {A, W},
    "/workflows/definitions/<key>/edit/": {A, W},
    "/workflows/definitions/<key>/migrate/": {A, W},
    "/workflows/definitions/expression/": {A, W},
    "/workflows/definitions/import/": {A, W},
    "/workflows/definitions/new/": {A, W},
    "/workflows/library/": {A, W},
    "/workflows/processes/": EVERYONE,  # filtered to the car parks a user is responsible for
    "/workflows/processes/<pk>/retry/": {A, W},
    "/workflows/start/": EVERYONE,  # lists only what the user may start
    "/workflows/start/<key>/": {A, W, C},  # the seeded by-hand workflow names Customer care as its starters
}

# Roles that see every car park, per kind of object (the others see the car parks they are responsible for).
CARPARKS_SEE_ALL = frozenset({A, S, F})  # carparks.access: Administrators, Supervisors, Finance by its role
PRODUCTS_SEE_ALL = CARPARKS_SEE_ALL
EDIT_SEE_ALL = frozenset({A})  # only Administrators edit every car park
CPMS_SEE_ALL = frozenset({A, S})
PROCESSES_SEE_ALL = frozenset({A, W, S})


@dataclass(frozen=True)
class Obj:
    """How to fill a route's keywords from the seeded objects of one car park (``cp``) and the rest (``w``).

    ``see_all`` marks a route whose object belongs to a car park: the roles named see every car park,
    every other allowed role only its own (another car park's object answers 404). ``None``: the object
    belongs to no car park, or only roles that see them all may open it.
    """

    kwargs: Callable[[Any, Any], dict[str, Any]]
    see_all: frozenset[str] | None = None
    choices: tuple[tuple[str, str], ...] = ()  # a keyword that is no object (an action): each value is swept


def _pk(name: str, key: str = "pk", *, of_carpark: bool = True) -> Callable[[Any, Any], dict[str, Any]]:
    return lambda w, cp: {key: getattr(cp if of_carpark else w, name).pk}


def _global(name: str) -> Callable[[Any, Any], dict[str, Any]]:
    return _pk(name, of_carpark=False)


def _outbox_message(w: Any, cp: Any) -> dict[str, Any]:
    """A message in the development Outbox (the sweep's settings turn it on), written as the backend does."""
    from django.core.mail import EmailMessage

    from parkinghq.outbox import OutboxBackend

    folder = Path(settings.OUTBOX_DIR)
    before = set(folder.glob("*.eml"))
    with open(os.devnull, "w") as quiet:
        OutboxBackend(stream=quiet).send_messages([EmailMessage("Sweep", "Body", to=["a@example.com"])])
    return {"name": (set(folder.glob("*.eml")) - before).pop().name}


def _definition(w: Any, cp: Any) -> dict[str, Any]:
    return {"key": w.version.definition.key}


def _version(w: Any, cp: Any) -> dict[str, Any]:
    return {"key": w.version.definition.key, "number": w.version.number}


OBJECTS: dict[str, Obj] = {
    # accounts
    "accounts:device-remove": Obj(_global("device")),  # the administrator's own authenticator
    "accounts:user-edit": Obj(_global("colleague")),
    "accounts:user-set-active": Obj(_global("colleague")),
    "accounts:user-reset-two-factor": Obj(_global("colleague")),
    "accounts:user-unlock": Obj(_global("colleague")),
    # basket (a task's page answers 403 to whoever holds no right on it, car park included: docs/basket.md)
    "workflows:absence-delete": Obj(_global("absence")),
    "workflows:task-detail": Obj(_pk("task")),
    "workflows:task-claim": Obj(_pk("task")),
    "workflows:task-complete": Obj(_pk("task")),
    "workflows:task-delegate": Obj(_pk("task")),
    "workflows:task-escalate": Obj(_pk("task")),
    "workflows:task-reassign": Obj(_pk("task")),
    "workflows:task-release": Obj(_pk("task")),
    "workflows:task-take-over": Obj(_pk("task")),
    # billing (Finance works on every customer, whichever car park)
    "billing:credit-note-pdf": Obj(_global("credit_note")),
    "billing:exception-resolve": Obj(_global("billing_exception")),
    "billing:export-download": Obj(_global("export")),
    "billing:invoice-detail": Obj(_global("invoice")),
    "billing:card-link-send": Obj(_global("invoice")),
    "billing:invoice-charge": Obj(_global("invoice")),
    "billing:credit-note-create": Obj(_global("invoice")),
    "billing:invoice-pdf": Obj(_global("invoice")),
    "billing:invoice-refund": Obj(_global("invoice")),
    "billing:invoice-send": Obj(_global("invoice")),
    "billing:invoice-transfer": Obj(_global("invoice")),
    "billing:invoice-xml": Obj(_global("invoice")),
    "billing:refund-create": Obj(_global("payment")),
    "billing:refund-send": Obj(_global("refund")),
    "billing:run-detail": Obj(_global("run")),
    "billing:run-cancel": Obj(_global("run")),
    "billing:run-confirm": Obj(_global("run")),
    "billing:run-refresh": Obj(_global("run")),
    "billing:bank-statement-detail": Obj(_global("bank_statement")),
    "billing:bankentry-detail": Obj(_global("bank_entry")),
    "billing:bankentry-match": Obj(_global("bank_entry")),
    "billing:bankentry-ignore": Obj(_global("bank_entry")),
    "billing:payment-option-change": Obj(_pk("customer"), CARPARKS_SEE_ALL),
    "billing:sepa-mandate-offline": Obj(_pk("customer"), CARPARKS_SEE_ALL),
    "billing:sepa-mandate-detail": Obj(_pk("sepa_method"), CARPARKS_SEE_ALL),
    # car parks, products, customers, contracts, cases
    "carparks:carpark-detail": Obj(_pk("carpark"), CARPARKS_SEE_ALL),
    "carparks:carpark-edit": Obj(_pk("carpark"), EDIT_SEE_ALL),
    "carparks:product-create": Obj(_pk("carpark", "carpark_pk"), EDIT_SEE_ALL),
    "carparks:product-detail": Obj(_pk("product"), PRODUCTS_SEE_ALL),
    "carparks:product-edit": Obj(_pk("product"), EDIT_SEE_ALL),
    "carparks:product-price-new": Obj(_pk("product"), PRODUCTS_SEE_ALL),
    "carparks:product-price-withdraw": Obj(
        lambda w, cp: {"pk": cp.product.pk, "price_pk": cp.price.pk}, PRODUCTS_SEE_ALL
    ),
    "carparks:product-quota": Obj(_pk("product"), CARPARKS_SEE_ALL),
    "carparks:customer-detail": Obj(_pk("customer"), CARPARKS_SEE_ALL),
    "carparks:customer-edit": Obj(_pk("company"), CARPARKS_SEE_ALL),
    "carparks:customer-merge": Obj(_pk("customer")),  # Supervisors and Administrators: every car park
    "carparks:customer-not-duplicate": Obj(_pk("customer"), CARPARKS_SEE_ALL),
    "carparks:case-create": Obj(_pk("customer", "customer_pk"), CARPARKS_SEE_ALL),
    "carparks:application-create": Obj(_pk("company", "customer_pk"), CARPARKS_SEE_ALL),
    "carparks:contract-detail": Obj(_pk("contract"), CARPARKS_SEE_ALL),
    "carparks:contract-action": Obj(
        _pk("contract"),
        CARPARKS_SEE_ALL,
        choices=tuple(
            ("action", a) for a in ("approve", "reject", "activate", "accept_offer", "suspend", "reactivate", "cancel")
        ),
    ),
    "carparks:contract-card": Obj(_pk("contract"), CARPARKS_SEE_ALL),
    "carparks:contract-plate": Obj(_pk("contract"), CARPARKS_SEE_ALL),
    "carparks:contract-stage": Obj(_pk("contract"), CARPARKS_SEE_ALL),
    "carparks:contract-terminate": Obj(_pk("contract"), CARPARKS_SEE_ALL),
    "carparks:contract-vehicles-add": Obj(_pk("contract"), CARPARKS_SEE_ALL),
    "carparks:case-detail": Obj(_pk("case"), CARPARKS_SEE_ALL),
    "carparks:case-action": Obj(_pk("case"), CARPARKS_SEE_ALL, choices=(("action", "note"),)),
    # connect
    "connect:connection-detail": Obj(_pk("connection"), CPMS_SEE_ALL),
    "connect:connection-edit": Obj(_pk("connection")),  # Administrators only
    "connect:connection-right-mappings": Obj(_pk("connection")),  # Administrators only
    "connect:connection-test": Obj(_pk("connection"), CPMS_SEE_ALL),
    "connect:connection-sync": Obj(_pk("connection"), choices=(("kind", "static"),)),  # see-all roles only
    "connect:run-detail": Obj(_pk("sync_run"), CPMS_SEE_ALL),
    "connect:carpark-cpms": Obj(_pk("carpark"), CPMS_SEE_ALL),
    "connect:carpark-cpms-refresh": Obj(_pk("carpark"), CPMS_SEE_ALL),
    # monitoring
    "monitoring:alert-acknowledge": Obj(_global("alert")),
    "monitoring:rule-edit": Obj(_global("rule")),
    "monitoring:rule-delete": Obj(_global("rule")),
    "monitoring:heatmap": Obj(_pk("version", "version_id", of_carpark=False)),
    "connect:run-progress": Obj(_pk("sync_run")),  # see-all roles only
    "connect:connection-progress": Obj(_pk("connection")),  # see-all roles only
    "monitoring:heatmap-data": Obj(_pk("version", "version_id", of_carpark=False)),
    "monitoring:heatmap-xml": Obj(_pk("version", "version_id", of_carpark=False)),
    "monitoring:statement-detail": Obj(_global("statement")),
    "monitoring:statement-pdf": Obj(_global("statement")),
    # notifications (a person's own)
    "notifications:open": Obj(_global("notification")),
    # workflows
    "workflows:definition-detail": Obj(_definition),
    "workflows:version-compare": Obj(_definition),
    "workflows:editor": Obj(_definition),
    "workflows:editor-check": Obj(_definition),
    "monitoring:statement-build-detail": Obj(_global("statement_build")),
    "monitoring:statement-build-progress": Obj(_global("statement_build")),
    "workflows:draft-discard": Obj(_definition),
    "workflows:editor-publish": Obj(_definition),
    "workflows:editor-save": Obj(_definition),
    "workflows:editor-validate": Obj(_definition),
    "workflows:definition-export": Obj(_definition),
    "workflows:migrate": Obj(_definition),
    "workflows:migrate-result": Obj(_definition),
    "workflows:version-view": Obj(_version),
    "workflows:version-export": Obj(_version),
    "workflows:library-install": Obj(lambda w, cp: {"slug": w.library_slug}),
    "workflows:event-dismiss": Obj(_global("business_event")),
    "workflows:event-replay": Obj(_global("business_event")),
    "workflows:process-detail": Obj(_pk("process"), PROCESSES_SEE_ALL),
    "workflows:process-action": Obj(_pk("process"), choices=(("action", "retry"),)),  # see-all roles only
    "workflows:start-form": Obj(lambda w, cp: {"key": w.by_hand.definition.key}),
    # the development Outbox
    "outbox-message": Obj(_outbox_message),
}


# --- the routes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # "carparks:contract-detail"
    template: str  # "/carparks/contracts/<pk>/"
    keywords: tuple[str, ...]


def back_office_routes() -> list[Route]:
    """The back-office routes of the URL conf, the same pages as ``tests.test_access.PATHS``."""
    routes: list[Route] = []

    def walk(patterns: Any, prefix: str, namespace: str, keywords: tuple[str, ...], ours: bool) -> None:
        for entry in patterns:
            if not isinstance(entry.pattern, RoutePattern):
                continue  # regex patterns only come from third-party URL confs (admin, DRF routers)
            template = prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", str(entry.pattern))
            found = (*keywords, *entry.pattern.converters)
            if isinstance(entry, URLResolver):
                inner = ":".join(part for part in (namespace, entry.namespace) if part)
                walk(entry.url_patterns, template, inner, found, _module_of(entry).split(".")[0] in OUR_APPS)
            elif ours and not PUBLIC.match(template):
                assert entry.name, f"{template} has no URL name; the sweep finds its objects by name"
                routes.append(Route(f"{namespace}:{entry.name}" if namespace else entry.name, template, found))

    walk(get_resolver().url_patterns, "/", "", (), True)
    return sorted(routes, key=lambda route: route.template)


ROUTES = back_office_routes()


@dataclass(frozen=True)
class Page:
    """A route as the sweep opens it: keywords that name no object (an action) filled in from ``choices``."""

    route: Route
    template: str  # "/carparks/contracts/<pk>/approve/"
    literal: tuple[tuple[str, str], ...] = ()


def sweep_pages() -> list[Page]:
    pages = []
    for route in ROUTES:
        choices = OBJECTS[route.name].choices if route.name in OBJECTS else ()
        if not choices:
            pages.append(Page(route, route.template))
        for keyword, value in choices:
            pages.append(Page(route, route.template.replace(f"<{keyword}>", value), ((keyword, value),)))
    return pages


PAGES = sweep_pages()


def allowed_roles(page: Page) -> set[str]:
    prefix = max((p for p in POLICY if page.template.startswith(p)), key=len)
    return POLICY[prefix]


def url_for(page: Page, world: Any, carpark: Any) -> str:
    """The page's path with the objects of ``carpark`` (A or B) and the dataset's other objects."""
    kwargs = {**OBJECTS[page.route.name].kwargs(world, carpark), **dict(page.literal)} if page.route.keywords else {}
    return reverse(page.route.name, kwargs=kwargs)


def test_the_sweep_covers_every_back_office_page():
    assert len(ROUTES) == len(PATHS), "the sweep and tests/test_access.py must see the same pages"
    assert len({route.name for route in ROUTES}) == len(ROUTES)


def test_every_object_route_names_the_seeded_object_it_opens():
    missing = [f"{r.name} ({r.template})" for r in ROUTES if r.keywords and r.name not in OBJECTS]
    assert not missing, "routes with no seeded object in OBJECTS (add one, and its POLICY):\n" + "\n".join(missing)
    stale = sorted(set(OBJECTS) - {route.name for route in ROUTES})
    assert not stale, f"OBJECTS entries for routes that no longer exist: {stale}"


def test_the_policy_names_only_routed_sections():
    unused = [prefix for prefix in POLICY if not any(page.template.startswith(prefix) for page in PAGES)]
    assert not unused, f"policy entries that match no routed page: {unused}"


# --- the seeded dataset -------------------------------------------------------------------------------

DEFINITIONS = [
    *sorted((Path(settings.BASE_DIR) / "carparks" / "definitions").glob("*.json")),
    *sorted((Path(settings.BASE_DIR) / "billing" / "definitions").glob("*.json")),
]
BY_HAND = {
    "key": "sweep-callback",
    "name": "Call a customer back",
    "steps": [
        {"id": "start", "type": "start", "next": "call", "starters": [roles.CARE],
         "inputs": [{"name": "topic", "type": "text", "required": True}]},
        {"id": "call", "type": "user", "name": "Call back", "role": roles.CARE, "outcomes": {"done": "end"}},
        {"id": "end", "type": "end"},
    ],
}  # fmt: skip


def _person(username: str, *role_names: str, carparks: Any = ()) -> Any:
    from carparks.tests.factories import UserFactory

    user = UserFactory(username=username, roles=list(role_names))
    for carpark in carparks:
        assign_perm(roles.RESPONSIBLE_PERMISSION, user, carpark)
    return user


def _carpark_objects(label: str) -> SimpleNamespace:
    """One car park with everything the object routes of a car park open."""
    from billing.tests.factories import ContractFactory, VehicleFactory
    from carparks import services
    from carparks.models import Case, Credential, ProductPrice
    from carparks.tests.factories import CarParkFactory, CorporateFactory, CustomerFactory, ProductFactory
    from connect.models import CarParkLink, CpmsConnection, SyncRun
    from workflows.models import Process, Task

    carpark = CarParkFactory(name=f"Car park {label}", code=f"sweep-{label.lower()}")
    product = ProductFactory(carpark=carpark, quota=20)
    price = ProductPrice.objects.create(
        product=product,
        monthly_price=Decimal("109.00"),
        valid_from=(timezone.localdate().replace(day=1) + timedelta(days=62)).replace(day=1),
    )
    customer = CustomerFactory(name=f"Erika {label}")
    company = CorporateFactory(name=f"Company {label} GmbH")
    # An application under review (the season-contract process with its open review task) ...
    contract = services.contract_apply(customer=customer, product=product, vehicles=[f"M-{label} 100"])
    process = Process.objects.get(object_id=contract.pk, definition__key="season-contract")
    task = process.tasks.get(state=Task.State.OPEN)
    # ... and a running contract with its vehicle and credential.
    active = ContractFactory(customer=company, product=product)
    vehicle = VehicleFactory(customer=company, plate=f"M-{label} 200")
    active.vehicles.add(vehicle)
    Credential.objects.create(
        contract=active,
        carpark=carpark,
        kind=Credential.Kind.PLATE,
        identifier=vehicle.plate,
        valid_from=date(2026, 1, 1),
    )
    case = services.case_open(
        customer=customer, contract=contract, kind=Case.Kind.QUESTION, subject=f"Where is the entrance of {label}?"
    )
    connection = CpmsConnection.objects.create(
        name=f"CPMS {label}", code=f"cpms-{label.lower()}", base_url="http://127.0.0.1:9/"
    )
    CarParkLink.objects.create(connection=connection, carpark=carpark, external_id=f"lot-{label}")
    sync_run = SyncRun.objects.create(
        connection=connection, carpark=carpark, kind=SyncRun.Kind.OCCUPANCY, status=SyncRun.Status.SUCCEEDED,
        started_at=process.started_at,
    )  # fmt: skip
    assert task.scope_carpark_id == carpark.pk and process.scope_carpark_id == carpark.pk
    from billing.models import PaymentMethod

    sepa_method = PaymentMethod.objects.create(
        customer=customer, kind="sepa_debit", stripe_customer_id=f"cus_sweep_{label}",
        stripe_payment_method_id=f"pm_sweep_{label}", last4="3000", country="DE",
        mandate_reference=f"PHQ-SWEEP-{label}", mandate_text="Mandate", mandate_accepted_at=timezone.now(),
    )  # fmt: skip
    return SimpleNamespace(
        carpark=carpark, product=product, price=price, customer=customer, company=company, contract=contract,
        active=active, process=process, task=task, case=case, connection=connection, sync_run=sync_run,
        sepa_method=sepa_method,
    )  # fmt: skip


def _seed() -> SimpleNamespace:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from billing import exports
    from billing import services as billing
    from billing.models import AccountingExport, BankEntry, BankStatement, BillingException, Invoice
    from monitoring.models import AlertEvent, AlertRule, StatementBuild
    from monitoring.statements import statement_build
    from notifications.models import Notification
    from workflows import authoring
    from workflows.models import BusinessEvent, WorkflowVersion
    from workflows.services import definition_install

    for path in DEFINITIONS:
        definition_install(spec=json.loads(path.read_text()))
    by_hand = definition_install(spec=BY_HAND)
    a, b = _carpark_objects("A"), _carpark_objects("B")

    users_a = {
        role: _person(f"sweep-{role.lower().replace(' ', '-')}", role, carparks=[a.carpark]) for role in EVERYONE
    }
    users_b = {
        role: _person(f"sweep-b-{role.lower().replace(' ', '-')}", role, carparks=[b.carpark]) for role in EVERYONE
    }
    admin = users_a[A]
    device = TOTPDevice.objects.create(user=admin, name="Sweep authenticator", confirmed=True)

    # Billing: November is invoiced for the running contracts of both car parks.
    period = date(2026, 11, 1)
    run = billing.invoicing_run_execute(run=billing.invoicing_run_create(period_start=period), deliver=False)
    invoice = Invoice.objects.get(lines__contract=a.active)
    payment = billing.invoice_record_transfer(invoice=invoice, reference="SWEEP-1")
    refund = billing.refund_issue(invoice=invoice, amount=Decimal("10.00"), reason="Closed for a day")
    credit_note = billing.credit_note_issue(invoice=Invoice.objects.get(lines__contract=b.active), reason="Moved out")
    billing_exception = BillingException.objects.order_by("pk").first() or billing.billing_exception_raise(
        kind="missing_payment_method", key="sweep", message="No card", customer_id=a.company.pk
    )
    export = exports.accounting_export_create(period_start=timezone.localdate(), format=AccountingExport.Format.DATEV)
    assert export is not None and export.file
    bank_statement = BankStatement.objects.create(
        kind="camt053",
        message_id="SWEEP",
        statement_id="SWEEP-1",
        account_iban="DE02120300000000202051",
        file_sha256="0" * 64,
        credits_count=1,
        credits_total=Decimal("5.00"),
        queued_count=1,
    )
    bank_entry = BankEntry.objects.create(statement=bank_statement, position=1, is_credit=True, amount=Decimal("5.00"))

    rule = AlertRule.objects.create(name="Incidents", kind=AlertRule.Kind.INCIDENTS)
    statement = statement_build(frequency="weekly", day_from=date(2026, 11, 2), day_to=date(2026, 11, 8))

    return SimpleNamespace(
        a=a,
        b=b,
        users_a=users_a,
        users_b=users_b,
        device=device,
        colleague=users_b[G],
        absence=_absence(users_a[G], users_a[C]),
        notification=Notification.objects.create(user=admin, title="Sweep", url="/"),
        invoice=invoice,
        payment=payment,
        refund=refund,
        credit_note=credit_note,
        billing_exception=billing_exception,
        export=export,
        bank_statement=bank_statement,
        bank_entry=bank_entry,
        run=run,
        rule=rule,
        alert=AlertEvent.objects.create(rule=rule, key="incidents", message="1 process with an open incident"),
        statement=statement,
        statement_build=StatementBuild.objects.create(
            frequency="weekly", period_start=date(2026, 11, 2), period_end=date(2026, 11, 8), statement=statement
        ),
        version=WorkflowVersion.objects.get(definition__key="season-contract", state=WorkflowVersion.State.PUBLISHED),
        by_hand=by_hand,
        library_slug=authoring.library_items()[0].slug,
        business_event=BusinessEvent.objects.get(name="application.received", object_id=a.contract.pk),
    )


def _absence(user: Any, substitute: Any) -> Any:
    from workflows.basket_services import absence_create

    return absence_create(user=user, substitute=substitute, starts_on=date(2027, 1, 4), ends_on=date(2027, 1, 8))


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The dataset, seeded once for the module inside a transaction that is rolled back at its end
    (each test runs in a savepoint within it, as pytest-django's ``django_db`` tests always do)."""
    tmp = tmp_path_factory.mktemp("sweep")
    files = override_settings(
        MEDIA_ROOT=tmp / "media",
        ACCOUNTING_EXPORT_DIR=tmp / "accounting-export",
        DEVELOPMENT=True,  # the development-only pages (the Outbox) are swept too
        OUTBOX_DIR=tmp / "outbox",
    )
    with django_db_blocker.unblock(), files:
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield _seed()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


# --- the sweep ------------------------------------------------------------------------------------


def _allowed_answer(response: Any) -> bool:
    if response.status_code in (200, 405):
        return True
    if response.status_code == 302:
        location = response["Location"]
        return not location.startswith(("/accounts/login/", "/accounts/two-factor/"))
    return False


def _refusal(client: Any, path: str) -> tuple[str, int]:
    """How ``path`` answers a user who may not use it. A POST-only page (405 to GET) is posted to,
    empty: where the role check is the object's (a task's right), it comes with the POST, and a
    refused POST changes nothing."""
    status = client.get(path).status_code
    if status == 405:
        return "POST", client.post(path).status_code
    return "GET", status


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_no_page_leaks_to_a_role_that_should_not_see_it(client, login, world, role):
    login(client, world.users_a[role])
    problems = []
    for page in PAGES:
        path = url_for(page, world, world.a)
        if role in allowed_roles(page):
            response = client.get(path)
            if not _allowed_answer(response):
                where = f" to {response['Location']}" if response.status_code == 302 else ""
                problems.append(
                    f"GET {path} ({page.template}) → {response.status_code}{where} though {role} may use it"
                )
        else:
            method, status = _refusal(client, path)
            if status != 403:
                problems.append(f"{method} {path} ({page.template}) → {status} for {role}, who may not use it")
    assert not problems, "\n".join(problems)


SCOPED = [page for page in PAGES if page.route.name in OBJECTS and OBJECTS[page.route.name].see_all is not None]


def test_the_scoped_routes_are_checked_with_some_role():
    unchecked = [p.template for p in SCOPED if not allowed_roles(p) - OBJECTS[p.route.name].see_all]
    assert not unchecked, f"scoped routes that every allowed role sees in every car park: {unchecked}"


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(EVERYONE - {A}))
def test_an_object_of_another_car_park_answers_404(client, login, world, role):
    """A user responsible only for car park B opens the car-park objects of A: 404 (not 403, not
    the page); the same page of B's object answers, so the 404 is the car park's, not the role's."""
    login(client, world.users_b[role])
    problems, checked = [], 0
    for page in SCOPED:
        if role not in allowed_roles(page) or role in OBJECTS[page.route.name].see_all:
            continue
        checked += 1
        path_a, path_b = url_for(page, world, world.a), url_for(page, world, world.b)
        method, status = _refusal(client, path_a)
        if status != 404:
            problems.append(f"{method} {path_a} ({page.template}) → {status} for {role} of car park B (404 expected)")
        own = client.get(path_b)
        if not _allowed_answer(own):
            problems.append(f"GET {path_b} ({page.template}) → {own.status_code} for {role} of car park B, its own")
    assert not problems, "\n".join(problems)
    if role in (G, C, M, F):
        assert checked, f"no car-park route was checked for {role}"


@pytest.mark.django_db
def test_a_task_of_another_car_park_answers_403(client, login, world):
    """Tasks are the exception: who holds no right on a task gets 403, car park included (docs/basket.md)."""
    login(client, world.users_b[G])
    assert client.get(reverse("workflows:task-detail", kwargs={"pk": world.a.task.pk})).status_code == 403
    for name in ("workflows:task-claim", "workflows:task-complete", "workflows:task-escalate"):
        assert client.post(reverse(name, kwargs={"pk": world.a.task.pk})).status_code == 403, name
    assert client.get(reverse("workflows:task-detail", kwargs={"pk": world.b.task.pk})).status_code == 200
