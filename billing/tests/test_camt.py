"""camt.053/054 parsing: fixtures written from the ISO 20022 schemas, and every way a file is refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import translation
from lxml import etree

from billing import camt
from billing.camt import CamtError, camt_parse
from billing.tests.camt_factory import Booking, camt053_write, camt054_write, rf_reference, scenario_200

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas" / "camt"
DATA = HERE / "data" / "camt"
FIXTURES = {
    "camt053_v02_dk.xml": "camt.053.001.02",
    "camt053_v08_prefixed_bom_crlf.xml": "camt.053.001.08",
    "camt054_v02.xml": "camt.054.001.02",
    "camt054_v08.xml": "camt.054.001.08",
}

_schemas: dict[str, etree.XMLSchema] = {}


def schema(version: str) -> etree.XMLSchema:
    if version not in _schemas:
        _schemas[version] = etree.XMLSchema(etree.parse(str(SCHEMAS / f"{version}.xsd")))
    return _schemas[version]


def assert_valid(data: bytes, version: str) -> None:
    xsd = schema(version)
    document = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    assert xsd.validate(document), xsd.error_log


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --- the fixtures are what the schema allows -------------------------------------------------------


def test_every_fixture_is_listed():
    assert sorted(p.name for p in DATA.glob("*.xml")) == sorted(FIXTURES)


@pytest.mark.parametrize(("name", "version"), sorted(FIXTURES.items()))
def test_fixture_is_valid_against_the_iso_schema(name, version):
    assert_valid(read(name), version)
    assert camt_parse(read(name)).version == version


@pytest.mark.parametrize("version", ["02", "08"])
def test_factory_writes_schema_valid_statements(version):
    bookings = [
        Booking(amount=Decimal("119.00"), remittance=["INV2026-000133", "Parken & Laden <Dez>"], name="Müller GmbH"),
        Booking(amount=Decimal("5.00"), structured_reference=rf_reference("2026000134"), iban="DE89370400440532013000"),
        Booking(amount=Decimal("12.90"), is_credit=False, name="Bank", ultimate_name="Gebühren"),
        Booking(amount=Decimal("1.00"), reversal=True, ultimate_name="Erika Musterfrau"),
    ]
    data = camt053_write(bookings, version=version)
    assert_valid(data, f"camt.053.001.{version}")
    statement = camt_parse(data)
    assert [(e.amount, e.is_credit, e.is_reversal) for e in statement.entries] == [
        (Decimal("119.00"), True, False),
        (Decimal("5.00"), True, False),
        (Decimal("12.90"), False, False),
        (Decimal("1.00"), True, True),
    ]
    assert statement.entries[0].remittance_unstructured == "INV2026-000133 Parken & Laden <Dez>"
    assert statement.entries[0].debtor_name == "Müller GmbH"
    assert statement.entries[2].debtor_name == "Bank"
    assert statement.entries[2].ultimate_debtor_name == "Gebühren"


@pytest.mark.parametrize("version", ["02", "08"])
def test_factory_writes_schema_valid_notifications_and_entries_in_another_currency(version):
    bookings = [
        Booking(amount=Decimal("60.00"), remittance=["INV2026-000133"], name="Karl Lang", iban="AT611904300234573201"),
        Booking(amount=Decimal("5.00"), currency="CHF", name="Zürcher AG"),
    ]
    for write, kind in ((camt054_write, "054"), (camt053_write, "053")):
        data = write(bookings, version=version, statement_id="N-1")
        assert_valid(data, f"camt.{kind}.001.{version}")
        statement = camt_parse(data)
        assert (statement.kind, statement.statement_id, statement.currency) == (f"camt{kind}", "N-1", "EUR")
        assert [(e.amount, e.currency, e.debtor_name) for e in statement.entries] == [
            (Decimal("60.00"), "EUR", "Karl Lang"),
            (Decimal("5.00"), "CHF", "Zürcher AG"),
        ]


def test_the_200_credit_statement_is_schema_valid():
    data = scenario_200().data()
    assert_valid(data, "camt.053.001.02")
    statement = camt_parse(data)
    assert len(statement.entries) == 200
    assert all(e.is_credit for e in statement.entries)


# --- what the parser reads -------------------------------------------------------------------------


def test_camt053_v02_as_german_banks_deliver_it():
    s = camt_parse(read("camt053_v02_dk.xml"))
    assert (s.kind, s.version) == ("camt053", "camt.053.001.02")
    assert s.message_id == "C53-20261201-0001"
    assert s.statement_id == "2026-12-01-0001-EUR"
    assert s.account_iban == "DE02120300000000202051"
    assert s.currency == "EUR"
    assert s.created_on == datetime(2026, 12, 2, 5, 4, 11, tzinfo=UTC)
    assert (s.from_date, s.to_date) == (date(2026, 12, 1), date(2026, 12, 1))
    assert s.entries_not_booked == 0
    assert [e.position for e in s.entries] == [10001, 20001, 30001, 30002, 30003, 40000, 50001]

    first = s.entries[0]
    assert first.is_credit and not first.is_reversal
    assert (first.amount, first.currency) == (Decimal("119.00"), "EUR")
    assert (first.booking_date, first.value_date) == (date(2026, 12, 1), date(2026, 12, 1))
    assert first.account_servicer_reference == "2026120100001"
    assert first.end_to_end_id == "E2E-2026-0001"
    assert (first.debtor_name, first.debtor_iban) == ("Mustermann, Max", "DE89370400440532013000")
    assert first.ultimate_debtor_name == "Max Mustermann"
    # Two Ustrd lines, joined; the invoice number broken across them stays findable by the matcher.
    assert first.remittance_unstructured == "Rechnung INV2026-000 133 Parken Dezember 2026"
    assert first.remittance_structured == ""

    rf = s.entries[1]
    assert rf.remittance_structured == "RF92INV2026000134"
    assert rf.end_to_end_id == ""  # NOTPROVIDED
    assert rf.booking_date == date(2026, 12, 1)  # BookgDt/DtTm
    assert rf.debtor_name == "Parkhaus Müller GmbH"

    batch = s.entries[2:5]
    assert [(e.amount, e.debtor_name, e.remittance_unstructured) for e in batch] == [
        (Decimal("100.00"), "Erika Musterfrau", "INV2026-000135"),
        (Decimal("150.00"), "Stadtwerke Beispielstadt AG", "inv 2026 000136"),
        (Decimal("50.00"), "J. de Vries", "INV2026000137 parking"),
    ]
    assert {e.account_servicer_reference for e in batch} == {"2026120100003"}

    fees = s.entries[5]
    assert not fees.is_credit and fees.amount == Decimal("12.90")
    assert fees.value_date == date(2026, 11, 30)
    assert fees.remittance_unstructured == "Kontoführungsgebühren November"

    returned = s.entries[6]
    assert returned.is_credit and returned.is_reversal and returned.amount == Decimal("45.00")


def test_camt053_v08_with_prefix_bom_and_crlf():
    data = read("camt053_v08_prefixed_bom_crlf.xml")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data and b"<camt:Document" in data
    s = camt_parse(data)
    assert (s.kind, s.version, s.statement_id) == ("camt053", "camt.053.001.08", "DE02120300000000202051-2026-12-03")
    assert s.created_on == datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
    first = s.entries[0]
    assert first.booking_date == date(2026, 12, 3)  # BookgDt/DtTm in UTC
    assert first.account_servicer_reference == "8815-0001-TX"  # the transaction's own reference wins
    assert (first.debtor_name, first.ultimate_debtor_name) == ("Müller-Lüdenscheidt KG", "Erika Müller")  # Dbtr/Pty/Nm
    assert first.remittance_structured == "RF27INV2026000140"
    assert first.remittance_unstructured == "Stellplatz 17 Dezember Kundennr. 4711 Danke"
    # A batch with the amounts in TxDtls/Amt.
    assert [(e.position, e.amount, e.remittance_unstructured) for e in s.entries[1:3]] == [
        (20001, Decimal("100.00"), "INV2026-000141"),
        (20002, Decimal("150.00"), "INV2026-000142"),
    ]
    payout = s.entries[3]
    assert not payout.is_credit and payout.debtor_name == "Klaus Beispiel"  # the payee of a debit
    assert payout.debtor_iban == "DE44500105175407324931"
    recalled = s.entries[4]
    assert not recalled.is_credit and recalled.is_reversal and recalled.amount == Decimal("30.00")


def test_the_same_statement_reads_the_same_with_or_without_bom_crlf_and_prefix():
    data = read("camt053_v08_prefixed_bom_crlf.xml")
    plain = data[3:].replace(b"\r\n", b"\n").replace(b"camt:", b"").replace(b"xmlns:camt=", b"xmlns=")
    assert camt_parse(plain) == camt_parse(data)


def test_camt054_notifications_keep_only_booked_entries():
    v02 = camt_parse(read("camt054_v02.xml"))
    assert (v02.kind, v02.statement_id, v02.entries_not_booked) == ("camt054", "C54-20261202-0007-1", 1)
    assert [(e.amount, e.debtor_name) for e in v02.entries] == [(Decimal("89.25"), "Garage Dupont SARL")]
    assert (v02.from_date, v02.to_date) == (None, None)

    v08 = camt_parse(read("camt054_v08.xml"))
    assert (v08.kind, v08.version, v08.entries_not_booked) == ("camt054", "camt.054.001.08", 1)
    assert v08.currency == "EUR"  # no Acct/Ccy: the entries' currency
    assert v08.created_on == datetime(2026, 12, 4, 7, 30, tzinfo=UTC)  # from GrpHdr
    (entry,) = v08.entries
    assert entry.booking_date == date(2026, 12, 4)  # nine fraction digits
    assert (entry.debtor_name, entry.ultimate_debtor_name) == ("Hausverwaltung Beispiel GmbH", "Jörg Weiß")


# --- refused, with a reason ------------------------------------------------------------------------

V02 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def statement(entries: str, *, stmt_count: int = 1, acct: str = "<IBAN>DE02120300000000202051</IBAN>") -> bytes:
    stmt = (
        "<Stmt><Id>S1</Id><CreDtTm>2026-12-01T10:00:00</CreDtTm>"
        f"<Acct><Id>{acct}</Id></Acct>"
        '<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        "<Dt><Dt>2026-12-01</Dt></Dt></Bal>"
        f"{entries}</Stmt>"
    )
    return (
        f'<?xml version="1.0"?><Document xmlns="{V02}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>M</MsgId><CreDtTm>2026-12-01T10:00:00</CreDtTm></GrpHdr>"
        f"{stmt * stmt_count}</BkToCstmrStmt></Document>"
    ).encode()


def entry(amount: str = '<Amt Ccy="EUR">10.00</Amt>', details: str = "") -> str:
    return (
        f"<Ntry>{amount}<CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>"
        f"{details}</Ntry>"
    )


def tx(amount: str = "") -> str:
    amt = f'<AmtDtls><TxAmt><Amt Ccy="EUR">{amount}</Amt></TxAmt></AmtDtls>' if amount else ""
    return f"<TxDtls>{amt}<RmtInf><Ustrd>x</Ustrd></RmtInf></TxDtls>"


def refused(data: bytes) -> str:
    with pytest.raises(CamtError) as info:
        camt_parse(data)
    return str(info.value)


def test_the_helpers_build_a_valid_statement():
    data = statement(entry(details=f"<NtryDtls>{tx('4.00')}{tx('6.00')}</NtryDtls>"))
    assert_valid(data, "camt.053.001.02")
    assert [e.amount for e in camt_parse(data).entries] == [Decimal("4.00"), Decimal("6.00")]


@pytest.mark.parametrize(
    "data", [b"", b"   \n", b"%PDF-1.7 binary", b"IBAN;Betrag\nDE02;10,00\n", b"<Document><Unclosed>"]
)
def test_not_xml_is_refused(data):
    message = refused(data)
    assert "empty" in message or "not readable XML" in message


def test_a_document_type_declaration_is_refused_even_without_entities():
    data = statement(entry()).replace(b"<Document", b"<!DOCTYPE Document []>\n<Document", 1)
    assert "document type" in refused(data)


def test_entity_expansion_is_refused():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<Document xmlns="' + V02.encode() + b'"><BkToCstmrStmt>&c;</BkToCstmrStmt></Document>'
    )
    assert "entities" in refused(bomb)


def test_an_external_entity_is_not_resolved():
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Document xmlns="' + V02.encode() + b'"><BkToCstmrStmt>&x;</BkToCstmrStmt></Document>'
    )
    message = refused(xxe)
    assert "root:" not in message and "document type or entities" in message


@pytest.mark.parametrize(
    ("namespace", "root"),
    [
        ("urn:iso:std:iso:20022:tech:xsd:pain.001.001.09", "Document"),
        ("urn:iso:std:iso:20022:tech:xsd:camt.052.001.08", "Document"),
        ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.02", "Statement"),
        ("", "Document"),
    ],
)
def test_xml_that_is_not_camt053_or_054_names_what_it_is(namespace, root):
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    message = refused(f"<{root}{xmlns}><X/></{root}>".encode())
    assert "not a camt.053 or camt.054" in message
    assert (namespace or "(none)") in message and root in message


def test_two_statements_in_one_file_are_refused():
    data = statement(entry(), stmt_count=2)
    assert_valid(data, "camt.053.001.02")  # the schema allows it; the import takes one account at a time
    assert "2 statements" in refused(data)


def test_a_message_without_statement_is_refused():
    data = f'<Document xmlns="{V02}"><BkToCstmrStmt><GrpHdr><MsgId>M</MsgId></GrpHdr></BkToCstmrStmt></Document>'
    assert "no statement" in refused(data.encode())


def test_an_account_without_iban_is_refused():
    data = statement(entry(), acct="<Othr><Id>0000202051</Id></Othr>")
    assert_valid(data, "camt.053.001.02")
    assert "IBAN" in refused(data)


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("", "has no amount"),
        ('<Amt Ccy="EUR"></Amt>', "has no amount"),
        ('<Amt Ccy="EUR">12,50</Amt>', "not a valid sum of money"),
        ('<Amt Ccy="EUR">-5.00</Amt>', "not a valid sum of money"),
        ('<Amt Ccy="EUR">1.005</Amt>', "not a valid sum of money"),
        ('<Amt Ccy="EUR">NaN</Amt>', "not a valid sum of money"),
        ("<Amt>5.00</Amt>", "no valid currency"),
        ('<Amt Ccy="euro">5.00</Amt>', "no valid currency"),
    ],
)
def test_an_entry_without_a_proper_amount_is_refused(amount, reason):
    message = refused(statement(entry(amount=amount)))
    assert reason in message and "Entry 1" in message


def test_a_batch_whose_transactions_have_no_amounts_is_refused():
    message = refused(statement(entry(details=f"<NtryDtls>{tx()}{tx()}</NtryDtls>")))
    assert "cannot be split" in message


def test_a_single_transaction_without_its_own_amount_takes_the_entry_amount():
    (only,) = camt_parse(statement(entry(details=f"<NtryDtls>{tx()}</NtryDtls>"))).entries
    assert only.amount == Decimal("10.00") and only.position == 10001


def test_a_batch_that_does_not_add_up_is_refused():
    message = refused(statement(entry(details=f"<NtryDtls>{tx('4.00')}{tx('5.00')}</NtryDtls>")))
    assert "add up to 9.00" in message


def test_a_bad_date_is_refused():
    data = statement(entry(details="")).replace(
        b"<Sts>BOOK</Sts>", b"<Sts>BOOK</Sts><BookgDt><Dt>2026-13-45</Dt></BookgDt>"
    )
    assert "not a date" in refused(data)


def test_a_file_over_the_size_limit_is_refused_before_parsing(monkeypatch):
    data = statement(entry())
    monkeypatch.setattr(camt, "MAX_FILE_BYTES", len(data) - 1)
    assert "larger than" in refused(data)
    monkeypatch.setattr(camt, "MAX_FILE_BYTES", len(data))
    assert camt_parse(data).entries


def test_the_reason_is_in_the_readers_language():
    with translation.override("de"):
        message = refused(statement(entry(), stmt_count=2))
    assert "Kontoauszüge" in message


def test_reading_translates_no_message_until_something_is_refused(monkeypatch):
    """A day's statement may hold 10,000 credits: reading one looks up no translation per entry (nor at all);
    a message is translated when a file is refused, in the reader's language, as before."""
    looked_up: list[str] = []
    translate = camt.gettext
    monkeypatch.setattr(camt, "gettext", lambda message: looked_up.append(message) or translate(message))
    data = camt053_write([Booking(amount=Decimal("1.00"), name=f"Payer {n}") for n in range(50)])
    assert len(camt_parse(data).entries) == 50
    assert looked_up == []

    bad_booking = data.replace(b"<BookgDt><Dt>2026-12-01</Dt>", b"<BookgDt><Dt>2026-12-41</Dt>", 1)
    bad_creation = data.replace(
        b"<CreDtTm>2026-12-02T06:00:00</CreDtTm><FrToDt>", b"<CreDtTm>02.12.2026</CreDtTm><FrToDt>"
    )
    with translation.override("de"):
        assert refused(bad_booking) == "Buchung 1: Die Angabe „Buchungsdatum“ ist kein gültiges Datum: 2026-12-41."
        assert refused(bad_creation) == "Die Angabe „Erstellungszeitpunkt“ ist kein gültiges Datum: 02.12.2026."
    with translation.override("en"):
        assert refused(bad_booking) == "Entry 1: the booking date is not a date: 2026-12-41."
        assert refused(bad_creation) == "The creation time is not a date: 02.12.2026."
