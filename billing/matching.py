"""Which open invoice a bank credit pays: a pure function over plain values (no database).

``match_entries(entries, invoices)`` gives one ``Match`` per entry, in the entries' order. Only credits
are matched; a debit, a reversal and a credit nothing fits come back with ``invoice_id=None`` and
``rule=""`` (queued for Finance). The rules, first hit wins:

1. **reference / creditor_reference** — an open invoice's number (``INV2026-000133``, also
   ``INV 2026 000133``, ``inv2026000133``, or split over two remittance lines) or its RF creditor
   reference (ISO 11649, e.g. ``RF18 5390 0754 7034``, check digits verified) appears in the structured or
   unstructured remittance. If the text names several *open* invoices the entry is queued: one credit
   cannot be split between invoices automatically. Several entries may name the same invoice (part
   payments); how much of it is paid is the booking's business, not the matcher's.
2. **fuzzy_reference** — a reference one typing error (a character wrong, missing, extra, or two
   neighbours swapped) away from exactly one open invoice's number. When several open invoices are that
   close, the one whose open amount equals the credit decides; and a reference that is itself a well-formed
   invoice number of a known series (it may be an invoice already paid, or last year's) is only taken for its
   neighbour when the amount agrees.
3. **amount_name** — the amount equals the open amount of exactly one open invoice whose customer's name,
   normalised (case, umlauts, punctuation, legal forms such as GmbH, word order), equals the payer's or the
   ultimate payer's name.

Everything is indexed once (dicts keyed by normalised number, RF reference, and currency + amount + name).
The typo rule looks up the reference's one-edit neighbourhood — every string over the invoice numbers'
characters one edit away, a few hundred for a 13-character number — in the number index, so it needs no
index of its own and costs the same for 100 or 100,000 open invoices. Matching is linear in entries plus
invoices, never their product.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from stdnum import iso11649

from billing.camt import CamtEntry

REFERENCE = "reference"
CREDITOR_REFERENCE = "creditor_reference"
FUZZY_REFERENCE = "fuzzy_reference"
AMOUNT_NAME = "amount_name"
QUEUED = ""

# Invoice numbers are series + "-" + six digits, the series a prefix and the year (INV2026-000133).
_NUMBER = re.compile(r"^([A-Z]+)(\d{4})-?(\d{6})$")
_SEP = r"[\s\-_/.:#]*"
_RF = re.compile(r"RF\d\d[A-Z0-9]{1,21}")
_SPACE = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[^A-Z0-9]")
# Candidates for the typo rule: a few letters, then digits (with separators, or letters typed for digits).
_LOOSE = re.compile(r"([A-Za-z]{1,5})[\s\-_/.:#]*([0-9][0-9OoIl\-_/.]{6,16}[0-9OoIl])")

_LEGAL_FORMS = frozenset(
    {"gmbh", "mbh", "ag", "kg", "kgaa", "ohg", "gbr", "ug", "ev", "eg", "se", "co", "ltd", "llc", "inc", "plc"}
    | {"sarl", "bv", "haftungsbeschraenkt", "dr", "prof", "herr", "frau"}
)
_DROPPED = re.compile(r"[.'`´]")
_WORD_BREAK = re.compile(r"[^a-z0-9]+")
_TRANSLITERATE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa"})


@dataclass(frozen=True)
class OpenInvoice:
    id: int
    number: str
    payment_reference: str
    amount_open: Decimal
    currency: str
    customer_name: str


@dataclass(frozen=True)
class Match:
    position: int
    invoice_id: int | None
    rule: str  # BankEntry.Rule value, "" when queued


def number_key(value: str) -> str:
    """An invoice number without separators, upper case: ``inv 2026-000133`` → ``INV2026000133``."""
    return _NON_ALNUM.sub("", value.upper())


def reference_key(value: str) -> str:
    """An RF creditor reference without spaces, upper case."""
    return _NON_ALNUM.sub("", value.upper())


def name_key(value: str) -> str:
    """A person's or company's name for comparison: ``Müller-Parkhaus GmbH`` → ``muellerparkhaus``...

    Lower case, umlauts spelled out, accents dropped, punctuation removed, legal forms and titles dropped,
    the words sorted (banks write "Mustermann, Max" for "Max Mustermann").
    """
    text = value.lower().translate(_TRANSLITERATE)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _DROPPED.sub("", text)  # "e.V." → "ev", "O'Neil" → "oneil"
    words = [w for w in _WORD_BREAK.split(text) if w and w not in _LEGAL_FORMS]
    return " ".join(sorted(words))


def _one_edit_away(token: str, alphabet: str, lengths: frozenset[int]) -> Iterable[str]:
    """Every string over ``alphabet`` one edit from ``token`` (a character replaced, left out, added, or two
    neighbours swapped: optimal-string-alignment distance 1) whose length is one of ``lengths``."""
    n = len(token)
    if n - 1 in lengths:  # a character too many
        for i in range(n):
            yield token[:i] + token[i + 1 :]
    if n + 1 in lengths:  # a character missing
        for i in range(n + 1):
            head, tail = token[:i], token[i:]
            for c in alphabet:
                yield head + c + tail
    if n in lengths:  # a character wrong, or two swapped
        for i in range(n):
            head, tail = token[:i], token[i + 1 :]
            for c in alphabet:
                yield head + c + tail
            if i + 1 < n:
                yield head + token[i + 1] + token[i] + token[i + 2 :]


class _Index:
    def __init__(self, invoices: Sequence[OpenInvoice]) -> None:
        self.invoices = {inv.id: inv for inv in invoices}
        self.by_number: dict[str, int] = {}
        self.by_reference: dict[str, int] = {}
        self.by_amount_name: dict[tuple[str, Decimal, str], list[int]] = defaultdict(list)
        prefixes: set[str] = set()
        names: dict[str, str] = {}  # a customer has many invoices
        for inv in invoices:
            key = number_key(inv.number)
            if key:
                self.by_number[key] = inv.id
            parsed = _NUMBER.match(inv.number.upper())
            if parsed:
                prefixes.add(parsed.group(1))
            if inv.payment_reference:
                self.by_reference[reference_key(inv.payment_reference)] = inv.id
            name = names.get(inv.customer_name)
            if name is None:
                name = names[inv.customer_name] = name_key(inv.customer_name)
            if name and inv.amount_open > 0:
                self.by_amount_name[(inv.currency.upper(), inv.amount_open, name)].append(inv.id)
        self.prefixes = prefixes or {"INV"}
        alternatives = "|".join(sorted(map(re.escape, self.prefixes), key=len, reverse=True))
        self.number_pattern = re.compile(rf"({alternatives}){_SEP}(\d{{4}}){_SEP}(\d{{6}})(?!\d)", re.IGNORECASE)
        # The characters invoice numbers are made of: a typo's neighbours are looked up over these only.
        self.alphabet = "".join(sorted({c for key in self.by_number for c in key}))
        self.lengths = frozenset(len(key) for key in self.by_number)

    # --- rule 1 ----------------------------------------------------------------------------------

    def exact(self, texts: Sequence[str]) -> tuple[set[int], str]:
        """Open invoices named exactly in the texts, and the rule (RF reference wins the label)."""
        found: set[int] = set()
        rule = REFERENCE
        for text in texts:
            upper = text.upper()
            compact = _SPACE.sub("", upper)
            for candidate in (upper, compact):
                for m in self.number_pattern.finditer(candidate):
                    invoice_id = self.by_number.get(m.group(1).upper() + m.group(2) + m.group(3))
                    if invoice_id is not None:
                        found.add(invoice_id)
            if self.by_reference:
                whole = reference_key(text)
                if whole in self.by_reference and iso11649.is_valid(whole):
                    found.add(self.by_reference[whole])
                    rule = CREDITOR_REFERENCE
                    continue
                for m in _RF.finditer(compact):
                    token = m.group(0)
                    # In text run together the reference may be followed by more letters or digits: the
                    # longest prefix that is a known and valid reference is the one.
                    for end in range(len(token), 4, -1):
                        invoice_id = self.by_reference.get(token[:end])
                        if invoice_id is not None and iso11649.is_valid(token[:end]):
                            found.add(invoice_id)
                            rule = CREDITOR_REFERENCE
                            break
        return found, rule

    # --- rule 2 ----------------------------------------------------------------------------------

    def fuzzy(self, texts: Sequence[str], amount: Decimal, currency: str) -> int | None:
        chosen: set[int] = set()
        for text in texts:
            for candidate in (text, _SPACE.sub("", text)):
                for m in _LOOSE.finditer(candidate):
                    letters = m.group(1).upper()
                    digits = _NON_ALNUM.sub("", m.group(2).upper())
                    # Run together with what follows ("…00133" + "119.00"), the number is a prefix.
                    runs = [digits] if len(digits) <= 11 else [digits[:n] for n in (9, 10, 11)]
                    # The letters may be glued to a word before ("RechnungINV…"): try the last 2 to 5.
                    for size in range(min(len(letters), 5), 1, -1):
                        hits = {self._fuzzy_token(letters[-size:] + run, amount, currency) for run in runs} - {None}
                        if hits:
                            chosen.update(hits)
                            break
        return chosen.pop() if len(chosen) == 1 else None

    def _fuzzy_token(self, token: str, amount: Decimal, currency: str) -> int | None:
        close = {
            invoice_id
            for candidate in _one_edit_away(token, self.alphabet, self.lengths)
            if (invoice_id := self.by_number.get(candidate)) is not None
            and self.invoices[invoice_id].currency.upper() == currency
        }
        if not close:
            return None
        parsed = _NUMBER.match(token)
        well_formed = parsed is not None and parsed.group(1) in self.prefixes
        if len(close) == 1 and not well_formed:
            return close.pop()
        # Several neighbours, or a well-formed number that may be another (paid) invoice: the amount decides.
        same_amount = [i for i in close if self.invoices[i].amount_open == amount]
        return same_amount[0] if len(same_amount) == 1 else None

    # --- rule 3 ----------------------------------------------------------------------------------

    def amount_name(self, entry: CamtEntry) -> int | None:
        hits: set[int] = set()
        for name in (entry.debtor_name, entry.ultimate_debtor_name):
            key = name_key(name) if name else ""
            if key:
                hits.update(self.by_amount_name.get((entry.currency.upper(), entry.amount, key), ()))
        return hits.pop() if len(hits) == 1 else None


def match_entries(entries: Sequence[CamtEntry], invoices: Sequence[OpenInvoice]) -> list[Match]:
    """One ``Match`` per entry, in order; see the module docstring for the rules."""
    index = _Index(invoices)
    result: list[Match] = []
    for entry in entries:
        result.append(_match_one(index, entry))
    return result


def _match_one(index: _Index, entry: CamtEntry) -> Match:
    if not entry.is_credit or entry.is_reversal or entry.amount <= 0:
        return Match(entry.position, None, QUEUED)
    currency = entry.currency.upper()
    texts = [t for t in (entry.remittance_structured, entry.remittance_unstructured) if t]
    if texts:
        found, rule = index.exact(texts)
        found = {i for i in found if index.invoices[i].currency.upper() == currency}
        if len(found) == 1:
            return Match(entry.position, found.pop(), rule)
        if len(found) > 1:
            return Match(entry.position, None, QUEUED)
        invoice_id = index.fuzzy(texts, entry.amount, currency)
        if invoice_id is not None:
            return Match(entry.position, invoice_id, FUZZY_REFERENCE)
    invoice_id = index.amount_name(entry)
    if invoice_id is not None:
        return Match(entry.position, invoice_id, AMOUNT_NAME)
    return Match(entry.position, None, QUEUED)
