"""Reading ISO 20022 bank statements: camt.053 (account statement) and camt.054 (debit/credit notification).

``camt_parse(data)`` turns the bytes Finance uploads into a ``CamtStatement`` of plain values; it touches
no database, so the import (``billing.bank_statements``) and the benchmark share it.

Safety: the file is read with defusedxml — a document type declaration, an entity or an external
reference is refused before anything is resolved — and files larger than ``MAX_FILE_BYTES`` are refused
before parsing. Bank statements never carry a DTD.

What is read (every message version from .001.02 to .001.13; .02 and .08 are tested against the
ISO 20022 schemas in ``billing/tests/schemas/camt/``):

- one statement (``Stmt``) or notification (``Ntfctn``) per file, for one account with an IBAN; a file
  with several is refused with a message saying so;
- booked entries only (``Sts`` ``BOOK``, the .02 code or the .08 ``Sts/Cd``): pending and information-only
  entries are not money on the account yet and are left out (counted in ``entries_not_booked``);
- an entry with several transactions (batch booking, ``NtryDtls/TxDtls`` × n) becomes one ``CamtEntry``
  per transaction, each with its own amount (``TxDtls/Amt`` (.08) or ``TxDtls/AmtDtls/TxAmt/Amt``), which
  must add up to the entry's amount; an entry with no or one transaction keeps the entry's amount;
- ``position`` is entry number × 10000 + transaction number (0 when the entry has no transaction
  details), so it is stable for a given file.

The counterparty: for a credit ``debtor_name``/``debtor_iban`` are the payer (``RltdPties/Dbtr``, the .02
``Dbtr/Nm`` or the .08 ``Dbtr/Pty/Nm``, and ``DbtrAcct``), ``ultimate_debtor_name`` the party it paid for
(``UltmtDbtr``); for a debit they are the payee (``Cdtr``, ``CdtrAcct``, ``UltmtCdtr``), so a list of
entries always shows who the money came from or went to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

#: Larger files are refused before parsing (a day's statement of a busy account is well under 5 MB).
MAX_FILE_BYTES = 20 * 1024 * 1024
#: Transactions one entry may hold (the position leaves four digits for them).
MAX_TRANSACTIONS_PER_ENTRY = 9999

_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(053|054)\.001\.(\d\d)$")
_ROOTS = {"053": ("BkToCstmrStmt", "Stmt"), "054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn")}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CENT = Decimal("0.01")
# The dates a refusal may name: marked for translation here, translated only when a date is refused
# (``_date_error``), so reading a file of 10,000 entries looks no message up.
_CREATION_TIME = gettext_noop("creation time")
_STATEMENT_PERIOD = gettext_noop("statement period")
_BOOKING_DATE = gettext_noop("booking date")
_VALUE_DATE = gettext_noop("value date")


class CamtError(ValueError):
    """A file that cannot be imported; ``str(e)`` is the reason for Finance, in the active language."""


@dataclass(frozen=True)
class CamtEntry:
    """One booked transaction (an entry, or one transaction of a batch entry)."""

    position: int
    is_credit: bool
    amount: Decimal
    currency: str
    booking_date: date | None
    value_date: date | None
    account_servicer_reference: str
    end_to_end_id: str
    debtor_name: str
    debtor_iban: str
    remittance_unstructured: str
    remittance_structured: str
    #: ``RvslInd``: the entry takes back an earlier one (a returned transfer or direct debit).
    is_reversal: bool = False
    #: ``UltmtDbtr`` of a credit (``UltmtCdtr`` of a debit): whom the payment was made for.
    ultimate_debtor_name: str = ""


@dataclass(frozen=True)
class CamtStatement:
    kind: str  # "camt053" | "camt054" (BankStatement.Kind values)
    message_id: str
    statement_id: str
    account_iban: str
    currency: str
    created_on: datetime | None
    from_date: date | None
    to_date: date | None
    entries: list[CamtEntry]
    #: The ISO 20022 message version, e.g. "camt.053.001.02".
    version: str = ""
    #: Entries left out because the bank has not booked them (``Sts`` ``PDNG`` or ``INFO``).
    entries_not_booked: int = 0


class _Reader:
    """Namespace-qualified look-ups for one document."""

    def __init__(self, ns: str) -> None:
        self.prefix = "{" + ns + "}"
        self._paths: dict[str, tuple[str, ...]] = {}

    def _q(self, path: str) -> tuple[str, ...]:
        qualified = self._paths.get(path)
        if qualified is None:
            qualified = self._paths[path] = tuple(self.prefix + part for part in path.split("/"))
        return qualified

    def find(self, el: Element | None, path: str) -> Element | None:
        # Child by child: a single qualified tag takes ElementTree's fast path, a path would not.
        for tag in self._q(path):
            if el is None:
                return None
            el = el.find(tag)
        return el

    def findall(self, el: Element | None, path: str) -> list[Element]:
        if el is None:
            return []
        *parents, last = self._q(path)
        for tag in parents:
            el = el.find(tag)
            if el is None:
                return []
        return el.findall(last)

    def text(self, el: Element | None, path: str) -> str:
        found = self.find(el, path)
        return (found.text or "").strip() if found is not None else ""

    def first_text(self, el: Element | None, *paths: str) -> str:
        for path in paths:
            value = self.text(el, path)
            if value:
                return value
        return ""


def camt_parse(data: bytes) -> CamtStatement:
    """Read one camt.053 or camt.054 file; raises ``CamtError`` with a reason Finance can act on."""
    if not data or not data.strip():
        raise CamtError(gettext("The file is empty."))
    if len(data) > MAX_FILE_BYTES:
        raise CamtError(
            gettext("The file is larger than %(limit)d MB; upload the statement of a shorter period.")
            % {"limit": MAX_FILE_BYTES // (1024 * 1024)}
        )
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CamtError(
            gettext("The file declares a document type or entities, which bank statements never do; it was not read.")
        ) from exc
    except ParseError as exc:
        line, column = exc.position
        raise CamtError(
            gettext(
                "The file is not readable XML (line %(line)d, column %(column)d). Upload the file as the bank sent it."
            )
            % {"line": line, "column": column + 1}
        ) from exc

    ns, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    match = _NAMESPACE.match(ns)
    if local != "Document" or not match:
        raise CamtError(
            gettext(
                "The file is not a camt.053 or camt.054 bank statement: its root element is %(element)s in the "
                "namespace %(namespace)s."
            )
            % {"element": local, "namespace": ns or gettext("(none)")}
        )
    message, version = match.groups()
    r = _Reader(ns)
    message_el_name, statement_el_name = _ROOTS[message]
    message_el = r.find(root, message_el_name)
    if message_el is None:
        raise CamtError(
            gettext("The file has no %(element)s element; it is not a complete camt.%(message)s message.")
            % {"element": message_el_name, "message": message}
        )
    statements = r.findall(message_el, statement_el_name)
    if not statements:
        raise CamtError(gettext("The file holds no statement."))
    if len(statements) > 1:
        raise CamtError(
            gettext(
                "The file holds %(count)d statements (accounts or periods); upload one statement per file, as the "
                "bank's download offers it."
            )
            % {"count": len(statements)}
        )
    stmt = statements[0]
    statement_id = r.text(stmt, "Id")
    if not statement_id:
        raise CamtError(gettext("The statement has no identification (Id)."))
    account_iban = r.text(stmt, "Acct/Id/IBAN").replace(" ", "").upper()
    if not account_iban:
        raise CamtError(gettext("The statement's account is not identified by an IBAN."))

    created_text = r.text(stmt, "CreDtTm") or r.text(message_el, "GrpHdr/CreDtTm")
    from_text = r.first_text(stmt, "FrToDt/FrDtTm")
    to_text = r.first_text(stmt, "FrToDt/ToDtTm")

    entries: list[CamtEntry] = []
    not_booked = 0
    for index, ntry in enumerate(r.findall(stmt, "Ntry"), start=1):
        status = r.first_text(ntry, "Sts/Cd", "Sts/Prtry", "Sts")
        if status and status != "BOOK":
            not_booked += 1
            continue
        entries.extend(_entry_transactions(r, ntry, index))

    currency = r.text(stmt, "Acct/Ccy")
    if not currency:
        balance_amount = r.find(stmt, "Bal/Amt")
        if balance_amount is not None:
            currency = balance_amount.get("Ccy", "")
        elif entries:
            currency = entries[0].currency
    return CamtStatement(
        kind=f"camt{message}",
        message_id=r.text(message_el, "GrpHdr/MsgId"),
        statement_id=statement_id,
        account_iban=account_iban,
        currency=currency.upper(),
        created_on=_datetime(created_text, _CREATION_TIME),
        from_date=_date(from_text, _STATEMENT_PERIOD),
        to_date=_date(to_text, _STATEMENT_PERIOD),
        entries=entries,
        version=f"camt.{message}.001.{version}",
        entries_not_booked=not_booked,
    )


def _entry_transactions(r: _Reader, ntry: Element, index: int) -> list[CamtEntry]:
    amount, currency = _amount(r.find(ntry, "Amt"), index)
    indicator = r.text(ntry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise CamtError(
            gettext("Entry %(entry)d has no credit/debit indicator (CdtDbtInd CRDT or DBIT).") % {"entry": index}
        )
    is_credit = indicator == "CRDT"
    is_reversal = r.text(ntry, "RvslInd").lower() in ("true", "1")
    booking_date = _date(r.first_text(ntry, "BookgDt/Dt", "BookgDt/DtTm"), _BOOKING_DATE, index)
    value_date = _date(r.first_text(ntry, "ValDt/Dt", "ValDt/DtTm"), _VALUE_DATE, index)
    entry_reference = r.text(ntry, "AcctSvcrRef")
    transactions = [tx for details in r.findall(ntry, "NtryDtls") for tx in r.findall(details, "TxDtls")]
    if len(transactions) > MAX_TRANSACTIONS_PER_ENTRY:
        raise CamtError(
            gettext("Entry %(entry)d holds more than %(limit)d transactions.")
            % {"entry": index, "limit": MAX_TRANSACTIONS_PER_ENTRY}
        )
    common = {
        "booking_date": booking_date,
        "value_date": value_date,
        "is_reversal": is_reversal,
    }
    if not transactions:
        return [
            CamtEntry(
                position=index * 10000,
                is_credit=is_credit,
                amount=amount,
                currency=currency,
                account_servicer_reference=entry_reference,
                end_to_end_id="",
                debtor_name="",
                debtor_iban="",
                remittance_unstructured=r.text(ntry, "AddtlNtryInf"),
                remittance_structured="",
                **common,
            )
        ]

    result: list[CamtEntry] = []
    signed_total = Decimal("0")
    for tx_index, tx in enumerate(transactions, start=1):
        amount_el = r.find(tx, "Amt")
        if amount_el is None:
            amount_el = r.find(tx, "AmtDtls/TxAmt/Amt")
        if amount_el is None:
            if len(transactions) > 1:
                raise CamtError(
                    gettext(
                        "Entry %(entry)d books %(count)d transactions together but transaction %(tx)d has no "
                        "amount; the file cannot be split into payments."
                    )
                    % {"entry": index, "count": len(transactions), "tx": tx_index}
                )
            tx_amount, tx_currency = amount, currency
        else:
            tx_amount, tx_currency = _amount(amount_el, index)
        tx_indicator = r.text(tx, "CdtDbtInd") or indicator
        tx_credit = tx_indicator == "CRDT"
        signed_total += tx_amount if tx_credit == is_credit else -tx_amount
        # The payer of a credit, the payee of a debit.
        party, account, ultimate = ("Dbtr", "DbtrAcct", "UltmtDbtr") if tx_credit else ("Cdtr", "CdtrAcct", "UltmtCdtr")
        parties = r.find(tx, "RltdPties")
        remittance = r.find(tx, "RmtInf")
        unstructured = [el.text.strip() for el in r.findall(remittance, "Ustrd") if el.text and el.text.strip()]
        structured_refs = [ref for strd in r.findall(remittance, "Strd") if (ref := r.text(strd, "CdtrRefInf/Ref"))]
        unstructured += [
            el.text.strip()
            for strd in r.findall(remittance, "Strd")
            for el in r.findall(strd, "AddtlRmtInf")
            if el.text and el.text.strip()
        ]
        end_to_end = r.text(tx, "Refs/EndToEndId")
        if end_to_end.upper() == "NOTPROVIDED":
            end_to_end = ""
        result.append(
            CamtEntry(
                position=index * 10000 + tx_index,
                is_credit=tx_credit,
                amount=tx_amount,
                currency=tx_currency,
                account_servicer_reference=r.text(tx, "Refs/AcctSvcrRef") or entry_reference,
                end_to_end_id=end_to_end,
                debtor_name=r.first_text(parties, f"{party}/Pty/Nm", f"{party}/Nm"),
                debtor_iban=r.text(parties, f"{account}/Id/IBAN").replace(" ", "").upper(),
                remittance_unstructured=" ".join(unstructured),
                remittance_structured=structured_refs[0] if structured_refs else "",
                ultimate_debtor_name=r.first_text(parties, f"{ultimate}/Pty/Nm", f"{ultimate}/Nm"),
                **common,
            )
        )
    if len(transactions) > 1 and signed_total != amount:
        raise CamtError(
            gettext(
                "Entry %(entry)d books %(amount)s, but its %(count)d transactions add up to %(total)s; the file is "
                "inconsistent."
            )
            % {"entry": index, "amount": amount, "count": len(transactions), "total": signed_total}
        )
    return result


def _amount(el: Element | None, index: int) -> tuple[Decimal, str]:
    if el is None or not (el.text or "").strip():
        raise CamtError(gettext("Entry %(entry)d has no amount.") % {"entry": index})
    currency = (el.get("Ccy") or "").strip().upper()
    if not _CURRENCY.match(currency):
        raise CamtError(gettext("Entry %(entry)d has no valid currency (Ccy).") % {"entry": index})
    try:
        value = Decimal(el.text.strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0 or value != value.quantize(_CENT):
        raise CamtError(
            gettext("Entry %(entry)d has an amount that is not a valid sum of money: %(value)s.")
            % {"entry": index, "value": el.text.strip()[:40]}
        )
    return value.quantize(_CENT), currency


def _date(text: str, what: str, index: int | None = None) -> date | None:
    if not text:
        return None
    try:
        if "T" in text:
            return _parse_datetime(text).date()
        return date.fromisoformat(text[:10])
    except ValueError:
        raise _date_error(text, what, index) from None


def _datetime(text: str, what: str) -> datetime | None:
    if not text:
        return None
    try:
        value = _parse_datetime(text)
    except ValueError:
        raise _date_error(text, what, None) from None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def _parse_datetime(text: str) -> datetime:
    # Python 3.11 reads "Z" and offsets; ISO 20022 allows fractions of any length, Python up to six digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip())
    return datetime.fromisoformat(text)


def _date_error(text: str, what: str, index: int | None) -> CamtError:
    """The refusal of a date; ``what`` names it untranslated (one of the ``gettext_noop`` names above)."""
    what = gettext(what)
    if index is None:
        return CamtError(gettext("The %(what)s is not a date: %(value)s.") % {"what": what, "value": text[:40]})
    return CamtError(
        gettext("Entry %(entry)d: the %(what)s is not a date: %(value)s.")
        % {"entry": index, "what": what, "value": text[:40]}
    )
