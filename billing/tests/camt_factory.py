"""Writing camt.053 bank statements for tests and the benchmark.

``camt053_write(bookings, ...)`` writes a statement that is valid against the ISO 20022 schema
(``billing/tests/schemas/camt/``; ``test_camt.py`` checks it): version .001.02 (``Dbtr/Nm``,
``AmtDtls/TxAmt``, ``Sts`` as a code) or .001.08 (``Dbtr/Pty/Nm``, ``TxDtls/Amt``, ``Sts/Cd``), one entry
per booking, each with one transaction. ``camt054_write(bookings, ...)`` writes the same entries as a
camt.054 debit/credit notification (no balances), equally schema-valid.

``scenario_200()`` is the statement of the issue's "done" check: 220 open invoices and 200 credits —
exact references in the ways people write them, RF creditor references, references with typing errors,
two part payments of one invoice, payments with no reference but the right amount and the payer's name,
and one credit nothing fits — with the invoice each credit must be matched to (by construction, not by
running the matcher).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

from stdnum.iso7064 import mod_97_10

from billing.matching import OpenInvoice

OPERATOR_IBAN = "DE02120300000000202051"
PAYER_IBANS = (
    "DE89370400440532013000",
    "DE02500105170137075030",
    "DE75512108001245126199",
    "AT611904300234573201",
    "NL91ABNA0417164300",
)


@dataclass(frozen=True)
class Booking:
    amount: Decimal
    is_credit: bool = True
    #: RmtInf/Ustrd lines (each at most 140 characters).
    remittance: Sequence[str] = ()
    #: RmtInf/Strd/CdtrRefInf/Ref (an RF creditor reference).
    structured_reference: str = ""
    name: str = ""  # the payer of a credit, the payee of a debit
    iban: str = ""
    ultimate_name: str = ""
    end_to_end_id: str = ""
    reversal: bool = False
    booking_date: date | None = None
    #: The entry's currency, when it is not the statement's (a bank may book a payment in another currency).
    currency: str = ""


def rf_reference(body: str) -> str:
    """An ISO 11649 creditor reference for ``body`` (check digits computed): ``RF`` + 2 digits + body."""
    body = body.upper()
    return f"RF{mod_97_10.calc_check_digits(body + 'RF')}{body}"


def _x(value: str) -> str:
    return escape(value)


def _party(tag: str, name: str, version: str) -> str:
    if version == "02":
        return f"<{tag}><Nm>{_x(name)}</Nm></{tag}>"
    return f"<{tag}><Pty><Nm>{_x(name)}</Nm></Pty></{tag}>"


def _entry(index: int, b: Booking, version: str, booked_on: date, currency: str) -> str:
    currency = b.currency or currency
    indicator = "CRDT" if b.is_credit else "DBIT"
    amount = f"{b.amount:.2f}"
    day = (b.booking_date or booked_on).isoformat()
    status = "<Sts>BOOK</Sts>" if version == "02" else "<Sts><Cd>BOOK</Cd></Sts>"
    family = ("RCDT" if b.is_credit else "ICDT", "ESCT")
    parts = [
        "<Ntry>",
        f"<Amt Ccy={quoteattr(currency)}>{amount}</Amt>",
        f"<CdtDbtInd>{indicator}</CdtDbtInd>",
        "<RvslInd>true</RvslInd>" if b.reversal else "",
        status,
        f"<BookgDt><Dt>{day}</Dt></BookgDt>",
        f"<ValDt><Dt>{day}</Dt></ValDt>",
        f"<AcctSvcrRef>{index:013d}</AcctSvcrRef>",
        f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family[0]}</Cd><SubFmlyCd>{family[1]}</SubFmlyCd></Fmly></Domn></BkTxCd>",
        "<NtryDtls><TxDtls>",
        f"<Refs><EndToEndId>{_x(b.end_to_end_id or 'NOTPROVIDED')}</EndToEndId></Refs>",
    ]
    if version == "02":
        parts.append(f"<AmtDtls><TxAmt><Amt Ccy={quoteattr(currency)}>{amount}</Amt></TxAmt></AmtDtls>")
    else:
        parts.append(f"<Amt Ccy={quoteattr(currency)}>{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>")
    party, account, ultimate = ("Dbtr", "DbtrAcct", "UltmtDbtr") if b.is_credit else ("Cdtr", "CdtrAcct", "UltmtCdtr")
    if b.name or b.iban or b.ultimate_name:
        parties = ["<RltdPties>"]
        if b.name:
            parties.append(_party(party, b.name, version))
        if b.iban:
            parties.append(f"<{account}><Id><IBAN>{_x(b.iban)}</IBAN></Id></{account}>")
        if b.ultimate_name:
            parties.append(_party(ultimate, b.ultimate_name, version))
        parties.append("</RltdPties>")
        parts.append("".join(parties))
    if b.remittance or b.structured_reference:
        rmt = ["<RmtInf>"]
        rmt += [f"<Ustrd>{_x(line)}</Ustrd>" for line in b.remittance]
        if b.structured_reference:
            rmt.append(
                "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>ISO</Issr></Tp>"
                f"<Ref>{_x(b.structured_reference)}</Ref></CdtrRefInf></Strd>"
            )
        rmt.append("</RmtInf>")
        parts.append("".join(rmt))
    parts.append("</TxDtls></NtryDtls></Ntry>")
    return "".join(parts)


def camt053_write(
    bookings: Sequence[Booking],
    *,
    version: str = "02",
    iban: str = OPERATOR_IBAN,
    currency: str = "EUR",
    statement_id: str = "STMT-2026-12-01",
    message_id: str = "MSG-2026-12-01",
    booked_on: date = date(2026, 12, 1),
    created_at: datetime = datetime(2026, 12, 2, 6, 0, 0),
    opening_balance: Decimal = Decimal("0.00"),
) -> bytes:
    """A camt.053.001.``version`` statement (UTF-8 bytes) with one entry per booking."""
    if version not in ("02", "08"):
        raise ValueError("version is '02' or '08'")
    closing = opening_balance + sum(((b.amount if b.is_credit else -b.amount) for b in bookings), Decimal("0.00"))

    def balance(code: str, amount: Decimal, day: date) -> str:
        indicator = "CRDT" if amount >= 0 else "DBIT"
        return (
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f"<Amt Ccy={quoteattr(currency)}>{abs(amount):.2f}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>"
            f"<Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>"
        )

    stamp = created_at.isoformat(timespec="seconds")
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>{_x(message_id)}</MsgId><CreDtTm>{stamp}</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{_x(statement_id)}</Id><CreDtTm>{stamp}</CreDtTm>"
        f"<FrToDt><FrDtTm>{booked_on.isoformat()}T00:00:00</FrDtTm><ToDtTm>{booked_on.isoformat()}T23:59:59</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{_x(iban)}</IBAN></Id><Ccy>{_x(currency)}</Ccy></Acct>"
        + balance("PRCD", opening_balance, booked_on)
        + balance("CLBD", closing, booked_on)
    )
    body = "\n".join(_entry(i, b, version, booked_on, currency) for i, b in enumerate(bookings, start=1))
    return (head + "\n" + body + "\n</Stmt></BkToCstmrStmt></Document>\n").encode("utf-8")


def camt054_write(
    bookings: Sequence[Booking],
    *,
    version: str = "02",
    iban: str = OPERATOR_IBAN,
    currency: str = "EUR",
    statement_id: str = "NTFCTN-2026-12-01",
    message_id: str = "MSG-NTFCTN-2026-12-01",
    booked_on: date = date(2026, 12, 1),
    created_at: datetime = datetime(2026, 12, 1, 18, 0, 0),
) -> bytes:
    """A camt.054.001.``version`` debit/credit notification (UTF-8 bytes) with one entry per booking, written
    as ``camt053_write`` writes them; ``statement_id`` is the notification's ``Id``."""
    if version not in ("02", "08"):
        raise ValueError("version is '02' or '08'")
    stamp = created_at.isoformat(timespec="seconds")
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.{version}">'
        f"<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>{_x(message_id)}</MsgId><CreDtTm>{stamp}</CreDtTm></GrpHdr>"
        f"<Ntfctn><Id>{_x(statement_id)}</Id><CreDtTm>{stamp}</CreDtTm>"
        f"<FrToDt><FrDtTm>{booked_on.isoformat()}T00:00:00</FrDtTm><ToDtTm>{booked_on.isoformat()}T23:59:59</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{_x(iban)}</IBAN></Id><Ccy>{_x(currency)}</Ccy></Acct>"
    )
    body = "\n".join(_entry(i, b, version, booked_on, currency) for i, b in enumerate(bookings, start=1))
    return (head + "\n" + body + "\n</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n").encode("utf-8")


# --- the 200-credit statement ----------------------------------------------------------------------

_FIRST = ("Max", "Erika", "Jürgen", "Anna", "Björn", "Zoë", "Klaus", "Petra", "Özlem", "Luca", "Sophie")
_LAST = ("Müller", "Schmidt", "Groß", "Weiß", "Becker", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter")
_AMOUNTS = tuple(Decimal(v) for v in ("59.50", "89.25", "119.00", "149.00", "29.90", "238.00", "75.00"))


@dataclass
class Scenario:
    invoices: list[OpenInvoice]
    bookings: list[Booking]
    #: For each booking (in order): the id of the invoice it pays and the rule, or (None, "") when queued.
    expected: list[tuple[int | None, str]]
    groups: dict[str, list[int]] = field(default_factory=dict)  # kind → booking indexes

    def data(self, **kwargs) -> bytes:
        return camt053_write(self.bookings, **kwargs)


def _bank_name(name: str) -> str:
    """How a bank may write a person's name: upper case, surname first, umlauts spelled out."""
    first, last = name.split(" ", 1)
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "AE", "Ö": "OE", "Ü": "UE", "ë": "e"})
    return f"{last}, {first}".translate(table).upper()


def _one_edit(a: str) -> set[str]:
    """Every string one edit from ``a`` (independent of billing.matching: brute force over single edits)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    edits = {a[:i] + a[i + 1 :] for i in range(len(a))}
    edits |= {a[:i] + c + a[i + 1 :] for i in range(len(a)) for c in alphabet}
    edits |= {a[:i] + c + a[i:] for i in range(len(a) + 1) for c in alphabet}
    edits |= {a[:i] + a[i + 1] + a[i] + a[i + 2 :] for i in range(len(a) - 1)}
    return edits


def scenario_200(*, year: int = 2026, first_number: int = 101) -> Scenario:
    """220 open invoices (ids 1..220, numbers INV{year}-000101...) and 200 credits paying them."""
    invoices: list[OpenInvoice] = []
    for i in range(220):
        number = first_number + i
        name = f"{_FIRST[i % len(_FIRST)]} {_LAST[(i // len(_FIRST)) % len(_LAST)]}"
        if i >= 110:  # a second customer of each name would make amount+name ambiguous: vary them
            name = f"{_FIRST[i % len(_FIRST)]} {_LAST[(i // len(_FIRST)) % len(_LAST)]}-{_LAST[i % len(_LAST)]}"
        invoices.append(
            OpenInvoice(
                id=i + 1,
                number=f"INV{year}-{number:06d}",
                payment_reference=rf_reference(f"INV{year}{number:06d}"),  # as invoices carry it
                amount_open=_AMOUNTS[i % len(_AMOUNTS)],
                currency="EUR",
                customer_name=name,
            )
        )
    bookings: list[Booking] = []
    expected: list[tuple[int | None, str]] = []
    groups: dict[str, list[int]] = {}

    def add(kind: str, booking: Booking, invoice_id: int | None, rule: str) -> None:
        groups.setdefault(kind, []).append(len(bookings))
        bookings.append(booking)
        expected.append((invoice_id, rule))

    def payer(inv: OpenInvoice, k: int) -> dict:
        return {"name": inv.customer_name, "iban": PAYER_IBANS[k % len(PAYER_IBANS)]}

    # 120 exact invoice numbers, written in the ways people write them.
    for k, inv in enumerate(invoices[:120]):
        compact = inv.number.replace("-", "")
        head, tail = inv.number[:10], inv.number[10:]
        forms = (
            [inv.number],
            [compact.lower()],
            [f"{inv.number[:3]} {inv.number[3:7]} {inv.number[8:]}"],
            [f"Rechnung {inv.number} Parken Dezember"],
            [f"Rechnung {head}", f"{tail} Stellplatz 12"],  # broken across two lines
            [f"RgNr.{inv.number}"],
        )
        add(
            "exact",
            Booking(amount=inv.amount_open, remittance=forms[k % len(forms)], **payer(inv, k)),
            inv.id,
            "reference",
        )

    # 20 RF creditor references: in the structured field, or quoted in groups of four in the text.
    for k, inv in enumerate(invoices[120:140]):
        if k % 2 == 0:
            booking = Booking(amount=inv.amount_open, structured_reference=inv.payment_reference, **payer(inv, k))
        else:
            ref = inv.payment_reference
            grouped = " ".join(ref[i : i + 4] for i in range(0, len(ref), 4))
            booking = Booking(amount=inv.amount_open, remittance=[f"Ref. {grouped} Danke"], **payer(inv, k))
        add("creditor_reference", booking, inv.id, "creditor_reference")

    # 30 references with one typing error each.
    def typo(number: str, k: int) -> str:
        prefix, yr, digits = number[:3], number[3:7], number[8:]
        variants = (
            f"{prefix}{yr}-{digits[:2]}{digits[3:]}",  # a digit left out
            f"{prefix}{yr}-{digits}{digits[-1]}",  # a digit typed twice
            f"{prefix}{yr}-{digits.replace('0', 'O', 1)}",  # the letter O for a zero
            f"{prefix}{yr[:2]}{yr[3]}{yr[2]}-{digits}",  # two year digits swapped
            f"{prefix[0]}{prefix[2]}{prefix[1]}{yr}-{digits}",  # two letters swapped
            f"{prefix[1:]}{yr}-{digits}",  # a letter left out
        )
        return variants[k % len(variants)]

    for k, inv in enumerate(invoices[140:170]):
        reference = typo(inv.number, k)
        token = reference.replace("-", "").upper()
        edits = _one_edit(token)
        close = [other for other in invoices if other.number.replace("-", "") in edits]
        # One invoice that close, or several of which only the intended one has the amount paid.
        assert inv in close and [o for o in close if o.amount_open == inv.amount_open] == [inv], (reference, close)
        # Paid by someone else (a property manager), so only the reference can tell.
        booking = Booking(amount=inv.amount_open, remittance=[f"Rechnung {reference}"], name="Hausverwaltung Nord GmbH")
        add("fuzzy", booking, inv.id, "fuzzy_reference")

    # Two part payments of one invoice, both quoting its number.
    part = invoices[170]
    first = (part.amount_open * Decimal("0.4")).quantize(Decimal("0.01"))
    for k, amount in enumerate((first, part.amount_open - first)):
        add(
            "partial",
            Booking(amount=amount, remittance=[f"Teilzahlung {part.number}"], **payer(part, k)),
            part.id,
            "reference",
        )

    # 27 with no reference: the amount and the payer's name (as the bank writes it) identify the invoice.
    for k, inv in enumerate(invoices[171:198]):
        booking = Booking(
            amount=inv.amount_open,
            remittance=["Parken Dezember"],
            name=_bank_name(inv.customer_name),
            iban=PAYER_IBANS[k % len(PAYER_IBANS)],
        )
        add("amount_name", booking, inv.id, "amount_name")

    # One credit nothing fits.
    add(
        "unknown",
        Booking(amount=Decimal("17.42"), remittance=["Spende Kaffeekasse"], name="Unbekannt Irgendwer"),
        None,
        "",
    )
    assert len(bookings) == 200
    return Scenario(invoices=invoices, bookings=bookings, expected=expected, groups=groups)
