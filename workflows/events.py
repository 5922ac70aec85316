"""The catalogue of business events: what the apps emit, and what a workflow's start may bind to.

Apps never name a workflow. They emit an event from this catalogue (``workflows.starting.event_emit``)
with a payload that must validate against the event's JSON Schema; a workflow's message start event
names the event and may add a CEL condition on ``event.<field>``. Each event has a version: a change
that removes or retypes a field is a new version, so conditions written against the old payload keep
their meaning.

``docs/workflow-engine.md`` shows this catalogue; ``python manage.py events_catalogue`` writes that
section from here and a test checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.utils.translation import gettext
from jsonschema import Draft202012Validator

from workflows.errors import WorkflowError


class UnknownEvent(WorkflowError):
    """The event name is not in the catalogue."""


class EventPayloadInvalid(WorkflowError):
    """The payload does not match the event's schema; ``errors`` lists every problem by field."""

    def __init__(self, name: str, errors: list[str]):
        self.name = name
        self.errors = list(errors)
        super().__init__(f"Event '{name}' was not emitted, its payload is invalid: " + "; ".join(self.errors))


def _int(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "description": description}


def _opt_int(description: str) -> dict[str, Any]:
    return {"type": ["integer", "null"], "minimum": 1, "description": description}


def _str(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": 2000, "description": description, **extra}


def _enum(description: str, *values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), "description": description}


def _money(description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "description": description}


def _date(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": description}


def _datetime(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "date-time", "description": description}


CUSTOMER_KINDS = ("private", "corporate")
CHANNELS = ("portal", "api", "email", "phone", "counter", "waitlist", "cpms", "schedule", "stripe")


@dataclass(frozen=True)
class EventType:
    name: str
    title: str
    description: str
    business_object: str  # app_label.Model the event is about
    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    version: int = 1
    examples: tuple[dict[str, Any], ...] = field(default=())

    @property
    def schema(self) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://parkinghq.example/events/{self.name}/v{self.version}",
            "title": self.title,
            "type": "object",
            "properties": self.properties,
            "required": list(self.required),
            "additionalProperties": True,
        }

    def fields(self) -> list[dict[str, Any]]:
        """The payload fields as the editor and the docs show them."""
        rows = []
        for name, prop in self.properties.items():
            kind = prop.get("type")
            kind = "/".join(kind) if isinstance(kind, list) else kind
            if prop.get("format"):
                kind = prop["format"]
            if kind == "array":
                kind = f"list of {prop.get('items', {}).get('type', 'value')}"
            rows.append(
                {
                    "name": name,
                    "type": kind,
                    "required": name in self.required,
                    "description": prop.get("description", ""),
                    "values": list(prop.get("enum", [])),
                }
            )
        return rows


_CONTRACT = {
    "contract_id": _int("The season contract."),
    "customer_id": _int("The customer."),
    "customer_name": _str("The customer's name."),
    "customer_kind": _enum("Private person or company.", *CUSTOMER_KINDS),
    "product_id": _int("The season product."),
    "product": _str("The product's name."),
    "carpark_id": _int("The car park of the product."),
    "carpark": _str("The car park's name."),
}

CATALOGUE: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType(
            name="application.received",
            title="Application received",
            description="A season-parking application was submitted (web shop, app, counter, phone) "
            "or a waitlisted applicant accepted an offered place, and a place is free for it.",
            business_object="carparks.Contract",
            properties={
                **_CONTRACT,
                "channel": _enum("Where the application came from.", *CHANNELS),
                "start_date": _date("The contract's first day."),
                "deposit": _money("The deposit in EUR."),
                "monthly_price": _money("The monthly price in EUR."),
                "plates": {"type": "array", "items": {"type": "string"}, "description": "The vehicles' plates."},
                "vehicle_count": {"type": "integer", "minimum": 0, "description": "How many vehicles."},
                "places": _int("The places the contract holds (a corporate contract may hold several)."),
            },
            required=("contract_id", "customer_id", "customer_kind", "product_id", "carpark_id", "channel"),
        ),
        EventType(
            name="contract.change_requested",
            title="Contract change requested",
            description="The customer or an employee asked to change a running contract.",
            business_object="carparks.Contract",
            properties={
                **_CONTRACT,
                "kind": _enum("What changes.", "plate", "vehicle", "product", "carpark"),
                "effective_date": _date("The day the change takes effect."),
                "details": _str("What was asked, in words."),
                "channel": _enum("Where the request came from.", *CHANNELS),
                "needs_review": {
                    "type": "boolean",
                    "description": "True when the change waits for a review (vehicles beyond the contract's places); "
                    "false when it was made at once.",
                },
                "places_requested": _opt_int("The places the contract would hold (when it needs review)."),
                "change_request_id": _opt_int("The change request waiting for review."),
                "plates": {"type": "array", "items": {"type": "string"}, "description": "The plates to add."},
            },
            required=("contract_id", "customer_id", "kind"),
        ),
        EventType(
            name="termination.requested",
            title="Termination requested",
            description="Notice was given on a running contract; it ends on ``end_date``.",
            business_object="carparks.Contract",
            properties={
                **_CONTRACT,
                "end_date": _date("The contract's last day."),
                "terminate_at": _datetime("The moment the contract ends (midnight after end_date, car park's time)."),
                "reason": _str("Why, as given."),
                "deposit": _money("The deposit to pay back in EUR."),
            },
            required=("contract_id", "end_date", "terminate_at"),
        ),
        EventType(
            name="waitlist.place_freed",
            title="Waitlist place freed",
            description="A place became free and was offered to the next applicant on the waitlist.",
            business_object="carparks.Contract",
            properties={
                **_CONTRACT,
                "offer_expires_at": _datetime("When the offer lapses if not accepted."),
            },
            required=("contract_id", "product_id", "offer_expires_at"),
        ),
        EventType(
            name="case.opened",
            title="Case opened",
            description="A customer-care case was opened (complaint, refund, card replacement, call-back, question).",
            business_object="carparks.Case",
            properties={
                "case_id": _int("The case."),
                "kind": _enum(
                    "What the case is about.", "complaint", "refund", "card_replacement", "callback", "question"
                ),
                "priority": _enum("Its priority (sets the SLA).", "low", "normal", "high", "urgent"),
                "channel": _enum("Where the customer reached us.", *CHANNELS),
                "subject": _str("The case's subject."),
                "customer_id": _int("The customer."),
                "customer_name": _str("The customer's name."),
                "customer_kind": _enum("Private person or company.", *CUSTOMER_KINDS),
                "contract_id": _opt_int("The contract it is about, if any."),
                "invoice_id": _opt_int("The invoice it is about, if any."),
                "carpark_id": _opt_int("The car park of the contract, if any."),
            },
            required=("case_id", "kind", "priority", "channel", "customer_id"),
        ),
        EventType(
            name="carpark.added",
            title="Car park added",
            description="A car park was added, by a person in the portal or by the CPMS sync.",
            business_object="carparks.CarPark",
            properties={
                "carpark_id": _int("The car park."),
                "carpark": _str("Its name."),
                "city": _str("Its city."),
                "capacity": {"type": "integer", "minimum": 0, "description": "Its number of spaces."},
                "source": _enum("Who added it.", "portal", "cpms_sync", "api"),
                "connection_id": _opt_int("The CPMS connection that reported it, for the sync."),
            },
            required=("carpark_id", "source"),
        ),
        EventType(
            name="cpms.connection_failing",
            title="CPMS connection failing",
            description="A CPMS connection failed its last attempts (sync or credential push).",
            business_object="connect.CpmsConnection",
            properties={
                "connection_id": _int("The connection."),
                "connection": _str("Its name."),
                "operation": _str("What failed (static sync, occupancy sync, credential push …)."),
                "error": _str("The last error."),
                "failures": {"type": "integer", "minimum": 1, "description": "Failed runs in a row."},
            },
            required=("connection_id", "error"),
        ),
        EventType(
            name="cpms.reconciliation_differs",
            title="CPMS credentials differ",
            description="Reconciliation found credentials that the CPMS and the portal do not agree on.",
            business_object="carparks.CarPark",
            properties={
                "carpark_id": _int("The car park."),
                "connection_id": _int("The CPMS connection."),
                "sync_run_id": _int("The reconciliation run."),
                "missing": {"type": "array", "description": "Credentials the CPMS lacks."},
                "extra": {"type": "array", "description": "Credentials only the CPMS has."},
                "missing_count": {"type": "integer", "minimum": 0, "description": "How many are missing."},
                "extra_count": {"type": "integer", "minimum": 0, "description": "How many are extra."},
            },
            required=("carpark_id", "connection_id", "sync_run_id", "missing_count", "extra_count"),
        ),
        EventType(
            name="payment.failed",
            title="Payment failed",
            description="Collecting an invoice failed (a declined card, a returned direct debit).",
            business_object="billing.Invoice",
            properties={
                "invoice_id": _int("The invoice."),
                "invoice_number": _str("Its number."),
                "customer_id": _int("The customer."),
                "amount": _str("The amount due in EUR, as a decimal string.", pattern=r"^-?\d+(\.\d+)?$"),
                "method": _enum("How it was collected.", "card", "sepa_debit", "bank_transfer"),
                "failure": _str("Why it failed, as the provider said."),
            },
            required=("invoice_id", "customer_id", "amount"),
        ),
        EventType(
            name="refund.requested",
            title="Refund requested",
            description="A refund of a payment was asked for (by the customer through care, or by Finance).",
            business_object="billing.Payment",
            properties={
                "payment_id": _int("The payment to refund."),
                "invoice_id": _opt_int("Its invoice."),
                "customer_id": _int("The customer."),
                "amount": _str("The amount in EUR, as a decimal string.", pattern=r"^\d+(\.\d+)?$"),
                "reason": _str("Why."),
            },
            required=("payment_id", "customer_id", "amount"),
        ),
        EventType(
            name="invoicing.period_due",
            title="Invoicing period due",
            description="A monthly invoicing period is due (sent by the schedule on the first of the month).",
            business_object="billing.InvoicingRun",
            properties={
                "run_id": _int("The invoicing run for the period."),
                "period_start": _date("The first day of the period."),
                "period_end": _date("The last day of the period."),
            },
            required=("run_id", "period_start"),
        ),
        EventType(
            name="billing.exception_raised",
            title="Billing exception raised",
            description="Billing met something Finance must look at (a charge that failed without dunning, "
            "a customer without payment method, an amount that does not add up).",
            business_object="billing.BillingException",
            properties={
                "exception_id": _int("The exception."),
                "kind": _str("Its kind."),
                "message": _str("What happened."),
                "customer_id": _opt_int("The customer, if any."),
                "invoice_id": _opt_int("The invoice, if any."),
            },
            required=("exception_id", "kind"),
        ),
        EventType(
            name="bank_credit.unmatched",
            title="Bank credit not matched",
            description="A credit of an imported bank statement (camt.053/054) matched no open invoice by "
            "reference, by a reference with a typo, or by amount and payer: Finance matches it by hand.",
            business_object="billing.BankEntry",
            properties={
                "entry_id": _int("The statement entry (the credit)."),
                "statement_id": _int("The imported statement."),
                "amount": _str("The amount credited, as a decimal string.", pattern=r"^\d+(\.\d+)?$"),
                "currency": _str("Its currency."),
                "booking_date": {"type": ["string", "null"], "description": "The booking date (ISO), if given."},
                "debtor_name": _str("Who paid, as the bank reports it."),
                "debtor_iban": _str("The payer's IBAN, if given."),
                "remittance": _str("The reference the payer gave (structured, else unstructured)."),
            },
            required=("entry_id", "statement_id", "amount"),
        ),
        EventType(
            name="customer.created",
            title="Customer created",
            description="A customer was created (web shop, API or an employee).",
            business_object="carparks.Customer",
            properties={
                "customer_id": _int("The customer."),
                "customer_name": _str("The name."),
                "customer_kind": _enum("Private person or company.", *CUSTOMER_KINDS),
                "channel": _enum("Where it was created.", *CHANNELS),
            },
            required=("customer_id", "customer_kind"),
        ),
    )
}


def event_type(name: str) -> EventType:
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(sorted(CATALOGUE))
        raise UnknownEvent(
            gettext("'%(event)s' is not a business event (known: %(events)s).") % {"event": name, "events": known}
        ) from None


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(event_type(name).schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def payload_validate(name: str, payload: Any) -> None:
    """Raise EventPayloadInvalid naming every field that does not match the event's schema."""
    errors = []
    for error in sorted(_validator(name).iter_errors(payload), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "payload"
        errors.append(f"{where}: {error.message}")
    if errors:
        raise EventPayloadInvalid(name, errors)


def catalogue_for_editor() -> list[dict[str, Any]]:
    return [
        {"name": e.name, "title": e.title, "description": e.description, "version": e.version, "fields": e.fields()}
        for e in CATALOGUE.values()
    ]


def catalogue_markdown() -> str:
    """The catalogue as the Markdown section of docs/workflow-engine.md."""
    lines = [
        "| event | version | about | payload (required in **bold**) |",
        "| --- | --- | --- | --- |",
    ]
    for event in CATALOGUE.values():
        fields = []
        for item in event.fields():
            label = f"**{item['name']}**" if item["required"] else item["name"]
            kind = item["type"] + (f": {' / '.join(item['values'])}" if item["values"] else "")
            fields.append(f"{label} ({kind})")
        lines.append(
            f"| `{event.name}` | {event.version} | {event.title}: {event.description.replace('``', '`')} "
            f"(`{event.business_object}`) | {', '.join(fields)} |"
        )
    return "\n".join(lines) + "\n"
