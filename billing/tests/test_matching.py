"""Matching bank credits to open invoices: the 200-credit statement, each rule, and what is left queued."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from stdnum import iso11649

from billing.camt import CamtEntry, camt_parse
from billing.matching import Match, OpenInvoice, match_entries, name_key
from billing.tests.camt_factory import rf_reference, scenario_200

D = Decimal


def inv(id: int, number: int, amount: str = "119.00", name: str = "Max Mustermann", **kw) -> OpenInvoice:  # noqa: A002
    defaults = {
        "payment_reference": rf_reference(f"2026{number:06d}"),
        "currency": "EUR",
    }
    defaults.update(kw)
    return OpenInvoice(id=id, number=f"INV2026-{number:06d}", amount_open=D(amount), customer_name=name, **defaults)


def credit(text: str = "", amount: str = "119.00", *, position: int = 10001, **kw) -> CamtEntry:
    values = {
        "position": position,
        "is_credit": True,
        "amount": D(amount),
        "currency": "EUR",
        "booking_date": None,
        "value_date": None,
        "account_servicer_reference": "",
        "end_to_end_id": "",
        "debtor_name": "",
        "debtor_iban": "",
        "remittance_unstructured": text,
        "remittance_structured": "",
    }
    values.update(kw)
    return CamtEntry(**values)


def one(entry: CamtEntry, invoices: list[OpenInvoice]) -> tuple[int | None, str]:
    (match,) = match_entries([entry], invoices)
    assert match.position == entry.position
    return match.invoice_id, match.rule


INVOICES = [inv(1, 133), inv(2, 134, "59.50", "Parkhaus Müller GmbH"), inv(3, 135, "89.25", "Erika Musterfrau")]


# --- the done check: 200 credits ------------------------------------------------------------------


def test_the_200_credit_statement_matches_the_right_invoices_and_queues_the_rest():
    scenario = scenario_200()
    statement = camt_parse(scenario.data())
    matches = match_entries(statement.entries, scenario.invoices)

    assert [m.position for m in matches] == [e.position for e in statement.entries]
    assert [(m.invoice_id, m.rule) for m in matches] == scenario.expected
    by_kind = {kind: [matches[i] for i in indexes] for kind, indexes in scenario.groups.items()}
    assert {kind: len(found) for kind, found in by_kind.items()} == {
        "exact": 120,
        "creditor_reference": 20,
        "fuzzy": 30,
        "partial": 2,
        "amount_name": 27,
        "unknown": 1,
    }
    assert {m.rule for m in by_kind["fuzzy"]} == {"fuzzy_reference"}
    assert {m.rule for m in by_kind["amount_name"]} == {"amount_name"}
    # Both part payments name the same invoice; what is still open is the booking's business.
    assert len({m.invoice_id for m in by_kind["partial"]}) == 1
    assert by_kind["unknown"] == [Match(statement.entries[-1].position, None, "")]


def test_the_200_credit_statement_in_version_08_matches_the_same():
    scenario = scenario_200()
    statement = camt_parse(scenario.data(version="08"))
    assert [(m.invoice_id, m.rule) for m in match_entries(statement.entries, scenario.invoices)] == scenario.expected


# --- rule 1: the invoice number or RF reference -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "INV2026-000133",
        "inv2026-000133",
        "INV2026000133",
        "INV 2026 000133",
        "Inv. 2026-000133",
        "Rechnung INV2026-000133 Dezember",
        "RgNr.INV2026-000133",
        "Rechnung INV2026-000 133 Parken",  # split over two remittance lines
        "INV2026-000133 119.00 EUR",
    ],
)
def test_an_invoice_number_as_people_write_it(text):
    assert one(credit(text), INVOICES) == (1, "reference")


def test_the_number_in_the_structured_reference():
    assert one(credit(remittance_structured="INV2026-000134"), INVOICES) == (2, "reference")


def test_a_longer_number_is_not_the_invoice_itself():
    # Seven digits after the year: not INV2026-000133 exactly; one digit too many is a typing error.
    assert one(credit("INV2026-0001339", "5.00"), INVOICES) == (1, "fuzzy_reference")


@pytest.mark.parametrize(
    ("structured", "text"),
    [
        (rf_reference("2026000134"), ""),
        ("", f"Ref {rf_reference('2026000134')}"),
        ("", " ".join(rf_reference("2026000134")[i : i + 4] for i in range(0, 16, 4))),  # groups of four
        ("", f"{rf_reference('2026000134')}Danke"),  # run together with the next word
        (rf_reference("2026000134").lower(), ""),
    ],
)
def test_the_rf_creditor_reference(structured, text):
    assert one(credit(text, remittance_structured=structured), INVOICES) == (2, "creditor_reference")


@pytest.mark.parametrize("where", ["structured", "text"])
def test_the_rf_reference_made_of_the_invoice_number_as_printed_in_groups_of_four(where):
    # Invoices for bank transfer carry RF + check digits + series and number, printed "RF.. INV2 0260 0013 4".
    reference = rf_reference("INV2026000134")
    invoices = [inv(1, 133), inv(2, 134, payment_reference=reference)]
    printed = iso11649.format(reference)
    assert " " in printed
    entry = credit(remittance_structured=printed) if where == "structured" else credit(f"Zahlung {printed} Danke")
    assert one(entry, invoices) == (2, "creditor_reference")


def test_an_rf_reference_with_wrong_check_digits_is_not_taken():
    invoices = [inv(1, 133, payment_reference="RF00ABC")]  # an invalid reference on file
    assert one(credit(remittance_structured="RF00ABC", amount="1.00"), invoices) == (None, "")


def test_several_entries_may_pay_one_invoice():
    entries = [credit("INV2026-000133", "50.00", position=1), credit("INV2026-000133", "69.00", position=2)]
    assert match_entries(entries, INVOICES) == [Match(1, 1, "reference"), Match(2, 1, "reference")]


def test_a_credit_naming_two_open_invoices_is_queued():
    assert one(credit("INV2026-000133 und INV2026-000134", "178.50"), INVOICES) == (None, "")


def test_a_reference_to_an_invoice_not_open_is_ignored_and_the_open_one_taken():
    # INV2026-000099 is paid (not in the list): the text's other number decides.
    assert one(credit("INV2026-000099 INV2026-000135", "89.25"), INVOICES) == (3, "reference")


def test_the_currency_must_agree():
    assert one(credit("INV2026-000133", currency="CHF"), INVOICES) == (None, "")


# --- what is never matched -------------------------------------------------------------------------


def test_debits_are_not_matched():
    assert one(credit("INV2026-000133", is_credit=False), INVOICES) == (None, "")


def test_a_reversal_is_not_a_payment():
    assert one(credit("Erstattung INV2026-000133 RETOURE", is_reversal=True), INVOICES) == (None, "")


def test_no_invoices_no_matches():
    assert match_entries([credit("INV2026-000133")], []) == [Match(10001, None, "")]


# --- rule 2: one typing error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "INV2026-00133",  # a digit missing
        "INV2026-0001333",  # a digit too many
        "INV2026-OOO133".replace("OOO", "O00"),  # letter O for a zero
        "INV2026-000l33",  # letter l for a one
        "IVN2026-000133",  # letters swapped
        "NV2026-000133",  # a letter missing
        "Rechnung INV2026-00133 119.00",  # followed by the amount
    ],
)
def test_a_reference_with_one_typing_error(text):
    assert one(credit(text, debtor_name="Someone Else"), INVOICES) == (1, "fuzzy_reference")


def test_a_typo_close_to_two_invoices_is_decided_by_the_amount():
    invoices = [inv(1, 133, "119.00"), inv(2, 134, "59.50")]
    # "INV2026-00013" + one digit: both 000133 and 000134 are one edit away.
    assert one(credit("INV2026-00013", "59.50"), invoices) == (2, "fuzzy_reference")
    assert one(credit("INV2026-00013", "10.00"), invoices) == (None, "")


def test_a_typo_close_to_two_invoices_of_the_same_amount_is_queued():
    invoices = [inv(1, 133, "119.00"), inv(2, 134, "119.00")]
    assert one(credit("INV2026-00013"), invoices) == (None, "")


def test_a_well_formed_number_is_taken_for_its_neighbour_only_with_the_same_amount():
    # INV2026-000143 may be an invoice already paid: its neighbour 000133 only when the amount agrees.
    assert one(credit("INV2026-000143", "119.00"), INVOICES) == (1, "fuzzy_reference")
    assert one(credit("INV2026-000143", "50.00"), INVOICES) == (None, "")


def test_two_typing_errors_are_too_many():
    assert one(credit("INV2026-00313", debtor_name="Someone Else"), INVOICES) == (None, "")


# --- rule 3: amount and name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payer", "customer"),
    [
        ("MUSTERMANN, MAX", "Max Mustermann"),
        ("Mueller Parkhaus GmbH", "Parkhaus Müller GmbH"),
        ("PARKHAUS MUELLER", "Parkhaus Müller GmbH"),
        ("Dr. Jörg Weiß", "Jörg Weiss"),
        ("Schäfer & Koch GmbH & Co. KG", "Schaefer + Koch GmbH & Co KG"),
    ],
)
def test_amount_and_the_payers_name(payer, customer):
    invoices = [inv(1, 133, "42.00", customer), inv(2, 134, "42.00", "Someone Else"), inv(3, 135, "43.00", customer)]
    assert one(credit("Parken Dezember", "42.00", debtor_name=payer), invoices) == (1, "amount_name")


def test_the_ultimate_debtors_name_counts_too():
    entry = credit("Parken", "89.25", debtor_name="Hausverwaltung Nord GmbH", ultimate_debtor_name="MUSTERFRAU, ERIKA")
    assert one(entry, INVOICES) == (3, "amount_name")


def test_the_amount_alone_is_not_enough():
    assert one(credit("Parken", "89.25", debtor_name="Unbekannt"), INVOICES) == (None, "")


def test_the_name_alone_is_not_enough():
    assert one(credit("Parken", "89.00", debtor_name="Erika Musterfrau"), INVOICES) == (None, "")


def test_two_open_invoices_of_the_customer_with_the_same_amount_are_queued():
    invoices = [inv(1, 133, "119.00", "Max Mustermann"), inv(2, 134, "119.00", "Max Mustermann")]
    assert one(credit("Parken", debtor_name="Max Mustermann"), invoices) == (None, "")


def test_names_normalised():
    assert name_key("Müller-Lüdenscheidt GmbH & Co. KG") == name_key("Mueller-Luedenscheidt")
    assert name_key("Mustermann, Max") == name_key("Max Mustermann") == "max mustermann"
    assert name_key("Groß e.V.") == "gross"
    assert name_key("Zoë Ørsted") == "oersted zoe"
    assert name_key("") == ""


# --- fast: indexed, not every credit against every invoice -----------------------------------------


@pytest.mark.slow
def test_matching_is_linear_not_entries_times_invoices():
    invoices = [inv(i, i, f"{50 + i % 97}.00", f"Kunde {i}") for i in range(1, 50_001)]
    entries = []
    for k in range(5_000):
        number = 1 + (k * 7919) % 50_000
        text = (f"INV2026-{number:06d}", f"INV2026-{number:06d}"[:-2] + f"{number % 10}", "Parken")[k % 3]
        entries.append(credit(text, f"{50 + number % 97}.00", position=k, debtor_name=f"Kunde {number}"))
    started = time.perf_counter()
    matches = match_entries(entries, invoices)
    elapsed = time.perf_counter() - started
    assert sum(1 for m in matches if m.invoice_id) > 3_000
    # 5,000 × 50,000 comparisons would take minutes; the indexes take about a second.
    assert elapsed < 20, elapsed
