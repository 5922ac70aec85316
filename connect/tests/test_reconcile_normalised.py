"""Reconciliation compares credentials in canonical form: no false differences, real ones still found.

The CPMS's own spellings are written straight into the simulator's whitelist over HTTP (an APDS
``PUT /rights/assigned/{id}``), as a CPMS that keeps plates "F-RM 2026" and UIDs "04a2b3c4" would
hold them; reconciliation then reads them back through the APDS adapter and compares them with our
credentials in PostgreSQL.
"""

from __future__ import annotations

from datetime import date

import pytest
import requests

from carparks.models import CarPark, Credential
from connect import services
from connect.models import CarParkLink
from connect.normalise import (
    KIND_BY_TYPE,
    comparison_keys,
    credential_key,
    kind_for_credential_type,
    plate_key,
    uid_readings,
    vehicle_country,
)

from .conftest import make_contract

PLACE = "SIM-0001"
# APDS 4 CredentialTypeEnum as apiv4/apds4.yaml lists it (components/schemas/CredentialTypeEnum).
APDS_CREDENTIAL_TYPES = [
    "barcode",
    "bluetooth",
    "eticket",
    "hangtag",
    "licensePlate",
    "permit",
    "qrCode",
    "rfid",
    "ticket",
    "electronicID",
    "ticketcoupon",
    "vehicleplate",
]


@pytest.fixture
def carpark(sim, connection) -> CarPark:
    carpark = CarPark.objects.create(name="Sim Garage", code="sim-garage", country="DE", cpms_reference=PLACE)
    CarParkLink.objects.create(connection=connection, carpark=carpark, external_id=PLACE)
    return carpark


def right_specification(sim, place_id: str) -> dict:
    """The RightSpecification the simulated CPMS publishes for the place (its id, not one we make up)."""
    specs = requests.get(f"{sim.url}/rights/specs", timeout=5).json()["data"]
    spec = next(s for s in specs if any(ref["id"] == place_id for ref in s["hierarchyElements"]))
    return {"id": spec["id"], "version": spec["version"]}


def cpms_holds(sim, right_id: str, credential_type: str, identifier: str) -> None:
    """Write an assigned right into the CPMS whitelist in the CPMS's own spelling."""
    body = {
        "id": right_id,
        "version": 1,
        "rightSpecification": right_specification(sim, PLACE),
        "rightHolder": {
            "credentials": [
                {"type": credential_type, "identifier": {"id": identifier, "className": "Credential"}},
            ]
        },
        "issueMethod": "electronic",
        "issuanceTime": "2026-01-01T00:00:00Z",
    }
    response = requests.put(f"{sim.url}/rights/assigned/{right_id}", json=body, timeout=5)
    assert response.status_code in (200, 201), response.text


def rfid(contract, identifier: str) -> Credential:
    return Credential.objects.create(
        contract=contract, carpark=contract.carpark, kind="rfid", identifier=identifier, valid_from=date(2026, 1, 1)
    )


# --- against the simulator and PostgreSQL ------------------------------------------------------
@pytest.mark.django_db
def test_the_cpms_spellings_of_our_credentials_are_no_difference(sim, connection, carpark):
    contract = make_contract(carpark, plates=("F-RM 2026", "M-AB 123", "MÜ-XY 7"))
    rfid(contract, "04:A2:B3:C4")
    rfid(contract, "0A1B2C3D")
    rfid(contract, "DEADBEEF")
    Credential.objects.create(
        contract=contract, carpark=carpark, kind="qr", identifier="PHQ-Qr-77", valid_from=date(2026, 1, 1)
    )
    assert sorted(contract.credentials.filter(kind="plate").values_list("identifier", flat=True)) == [
        "FRM2026",
        "MAB123",
        "MÜXY7",
    ]
    cpms_holds(sim, "cpms-1", "licensePlate", "F-RM 2026")
    cpms_holds(sim, "cpms-2", "vehicleplate", "m ab\u2013123")  # lower case, an en dash
    cpms_holds(sim, "cpms-3", "licensePlate", "MU XY 7")  # an ANPR whitelist without umlauts
    cpms_holds(sim, "cpms-4", "rfid", "04a2b3c4")
    cpms_holds(sim, "cpms-5", "rfid", str(int("0A1B2C3D", 16)))  # the same UID in decimal
    cpms_holds(sim, "cpms-6", "rfid", "de:ad:be:ef")
    cpms_holds(sim, "cpms-7", "qrCode", "PHQ-Qr-77")

    run = services.reconcile(connection=connection, start_review=False)

    assert run.status == "succeeded"
    assert run.details["differences"] == []
    assert (run.details["missing"], run.details["extra"], run.failed, run.unchanged) == (0, 0, 0, 1)


@pytest.mark.django_db
def test_real_differences_are_still_reported_in_each_sides_spelling(sim, connection, carpark):
    contract = make_contract(carpark, plates=("F-RM 2026", "HH-XY 99"))
    card = rfid(contract, "04:A2:B3:C4")
    qr = Credential.objects.create(
        contract=contract, carpark=carpark, kind="qr", identifier="PHQ-Qr-77", valid_from=date(2026, 1, 1)
    )
    cpms_holds(sim, "cpms-1", "licensePlate", "F-RM 2026")  # the same: no difference
    cpms_holds(sim, "cpms-2", "licensePlate", "F-RM 2027")  # another car
    cpms_holds(sim, "cpms-3", "hangtag", "HH-XY 99")  # a hangtag, not the plate HH-XY 99
    cpms_holds(sim, "cpms-4", "rfid", str(int("C4B3A204", 16)))  # our UID's bytes reversed: another card
    cpms_holds(sim, "cpms-5", "qrCode", "PHQ-QR-77")  # a QR code's text is case-sensitive

    run = services.reconcile(connection=connection, start_review=False)

    [difference] = run.details["differences"]
    hh = contract.credentials.get(identifier="HHXY99")
    assert difference["missing"] == [
        {"kind": "plate", "identifier": "HHXY99", "credential_id": hh.pk},
        {"kind": "qr", "identifier": "PHQ-Qr-77", "credential_id": qr.pk},
        {"kind": "rfid", "identifier": "04:A2:B3:C4", "credential_id": card.pk},
    ]
    assert difference["extra"] == [
        {"kind": "hangtag", "identifier": "HH-XY 99", "right_id": "cpms-3"},
        {"kind": "plate", "identifier": "F-RM 2027", "right_id": "cpms-2"},
        {"kind": "qr", "identifier": "PHQ-QR-77", "right_id": "cpms-5"},
        {"kind": "rfid", "identifier": "3300106756", "right_id": "cpms-4"},
    ]
    assert (run.details["missing"], run.details["extra"], run.failed) == (3, 4, 1)


@pytest.mark.django_db
def test_a_credential_type_the_standard_does_not_name_is_its_own_kind(sim, connection, carpark):
    make_contract(carpark, plates=("F-RM 2026",))
    cpms_holds(sim, "cpms-1", "licensePlate", "F-RM 2026")
    cpms_holds(sim, "cpms-2", "parkingDisc", "F-RM 2026")  # a vendor extension, not in CredentialTypeEnum

    run = services.reconcile(connection=connection, start_review=False)

    [difference] = run.details["differences"]
    assert difference["missing"] == []
    assert difference["extra"] == [{"kind": "unknown:parkingDisc", "identifier": "F-RM 2026", "right_id": "cpms-2"}]


# --- the normaliser on its own ----------------------------------------------------------------
def test_every_credential_type_of_apds_4_has_a_kind_and_only_plates_are_plates():
    assert sorted(KIND_BY_TYPE) == sorted(APDS_CREDENTIAL_TYPES)
    kinds = {credential_type: kind_for_credential_type(credential_type) for credential_type in APDS_CREDENTIAL_TYPES}
    assert {t for t, kind in kinds.items() if kind == "plate"} == {"licensePlate", "vehicleplate"}
    assert (kinds["rfid"], kinds["qrCode"], kinds["barcode"]) == ("rfid", "qr", "qr")
    assert kinds["hangtag"] == "hangtag" and kinds["permit"] == "permit"
    assert kind_for_credential_type(None) == "unknown"
    assert kind_for_credential_type("") == "unknown"
    assert kind_for_credential_type("licenseplate") == "unknown:licenseplate"  # enum values are exact


@pytest.mark.parametrize(
    ("spellings", "country"),
    [
        (["F-RM 2026", "FRM2026", "f rm 2026", "F\u2013RM\u00a02026", "F\u2011RM\u202f2026", "ＦＲＭ２０２６"], "DE"),
        (["F-RM 2026", "frm2026"], ""),  # no country known: the default rules (Germany's)
        (["MÜ-AB 12", "MU AB 12", "mü ab 12"], "DE"),
        (["W-12345 X", "W 12345X", "w.12345.x"], "AT"),
        (["AB-123-CD", "ab 123 cd", "AB123CD"], "FR"),
        (["12-ABC-3", "12ABC3"], "NL"),
        (["ZH 123456", "ZH123456", "zh·123456"], "CH"),
    ],
)
def test_plate_spellings_of_one_plate_have_one_key(spellings, country):
    assert len({plate_key(spelling, country) for spelling in spellings}) == 1


def test_different_plates_keep_different_keys():
    assert plate_key("F-RM 2026", "DE") != plate_key("F-RM 2062", "DE")
    assert plate_key("F-RM 2026", "DE") != plate_key("F-MR 2026", "DE")
    # Only German and Austrian plates drop the umlaut dots; elsewhere Ü stays a letter of its own.
    assert plate_key("MÜ 1", "CH") != plate_key("MU 1", "CH")
    assert (vehicle_country("DE"), vehicle_country("at"), vehicle_country(""), vehicle_country("NL")) == (
        "D",
        "A",
        "D",
        "NL",
    )


def test_rfid_uids_in_hex_any_case_with_or_without_separators_and_in_decimal():
    for spelling in ("04:A2:B3:C4", "04a2b3c4", "04 A2 B3 C4", "04-a2-b3-c4", "0x04A2B3C4"):
        assert uid_readings(spelling) == ("4A2B3C4",), spelling
    # Digits only: hex or decimal; both readings, hex first.
    assert uid_readings("77771716") == ("77771716", "4A2B3C4")
    # Byte pairs with separators are always hex.
    assert uid_readings("12:34:56:78") == ("12345678",)
    assert uid_readings("not-a-uid") == ("NOTAUID",)


def test_comparison_keys_meet_on_a_shared_reading_only():
    ours = [("rfid", "04:A2:B3:C4"), ("plate", "FRM2026")]
    theirs = [
        ("rfid", "77771716"),  # the decimal of our card
        ("hangtag", "FRM2026"),  # same text, other kind
        ("rfid", str(int("C4B3A204", 16))),  # our card's bytes reversed
    ]

    our_keys, their_keys = comparison_keys(ours, theirs, country="DE")

    assert their_keys[0] == our_keys[0]
    assert their_keys[1] not in our_keys
    assert their_keys[2] not in our_keys
    # Our own spelling may be the ambiguous one: "77771716" typed here meets the CPMS's hex 0x77771716.
    assert comparison_keys([("rfid", "77771716")], [("rfid", "0x77771716")])[1] == [("rfid", "77771716")]
    assert credential_key("qr", " Abc ") == ("qr", "Abc")
    assert credential_key("permit", "ab 12") == ("permit", "AB12")
