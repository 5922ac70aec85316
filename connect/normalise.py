"""Comparison forms of credentials, so reconciliation reports real differences only.

A CPMS writes the same credential its own way: "F-RM 2026" where we store "FRM2026", an RFID UID
as "04:A2:B3:C4", "04a2b3c4" or the decimal 77771716. Reconciliation compares canonical forms and
shows the original spellings. Kinds come from the standard's names (APDS 4 CredentialTypeEnum):
a hangtag is never taken for a plate, even with the same text.

Pure functions, no Django: the APDS adapter imports :func:`kind_for_credential_type` too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# --- kinds -------------------------------------------------------------------------------------
# APDS 4 CredentialTypeEnum (apds-sandbox apiv4/apds4.yaml, components/schemas/CredentialTypeEnum,
# package right_specification.enums) → our kind. Our Credential.Kind values are plate, rfid and qr;
# every other type the standard names is its own kind, compared only with itself.
KIND_BY_TYPE: dict[str, str] = {
    "licensePlate": "plate",  # "fixed plate … used to identify a specific vehicle"
    "vehicleplate": "plate",  # "a fixed identifier (registration plate) visible and fixed to a vehicle"
    "rfid": "rfid",
    "qrCode": "qr",
    # "barcode or QR digital print pattern, held on any physical media": the scanner reads the same text.
    "barcode": "qr",
    "bluetooth": "bluetooth",
    "eticket": "eticket",
    "hangtag": "hangtag",
    "permit": "permit",
    "ticket": "ticket",
    "electronicID": "electronicID",
    "ticketcoupon": "ticketcoupon",
}
# A credential without a type (the standard requires one) or with one the standard does not name.
UNKNOWN_KIND = "unknown"


def kind_for_credential_type(credential_type: object) -> str:
    """Our kind for an APDS CredentialTypeEnum value; an unnamed or missing type is never a plate."""
    if not isinstance(credential_type, str) or not credential_type.strip():
        return UNKNOWN_KIND
    name = credential_type.strip()
    return KIND_BY_TYPE.get(name) or f"{UNKNOWN_KIND}:{name[:40]}"


# --- plates ------------------------------------------------------------------------------------
# Separators people and systems put into plates, with their typographic look-alikes: spaces of every
# width (incl. no-break), hyphens, dashes, minus, dots, middle dots, bullets, underscores.
_PLATE_SEPARATORS = re.compile(r"[\s\-\u00ad\u2010-\u2015\u2212\u2043\ufe58\ufe63\uff0d._\u00b7\u2022\u2219\u30fb]+")
# Car-park countries are ISO 3166 codes ("DE"); plates use international vehicle codes ("D").
_VEHICLE_CODE = {"DE": "D", "AT": "A", "FR": "F", "IT": "I", "ES": "E", "BE": "B", "LU": "L", "PT": "P"}
# German (and Austrian) plates are read and written in A–Z by many ANPR cameras and CPMS whitelists:
# "MÜ-AB 1" is stored as "MU-AB 1". No German district differs from another only by its umlaut.
_UMLAUTS_AS_BASE_LETTERS = str.maketrans({"Ä": "A", "Ö": "O", "Ü": "U"})
_FOLD_UMLAUTS = {"D", "A"}
DEFAULT_COUNTRY = "D"


def vehicle_country(country: str) -> str:
    """The international vehicle code for an ISO 3166 country ("DE" → "D"); empty → the default."""
    code = (country or "").strip().upper()
    return _VEHICLE_CODE.get(code, code) or DEFAULT_COUNTRY


def plate_key(plate: str, country: str = "") -> str:
    """A plate's comparison form in its country: "F-RM 2026", "f rm 2026" and "FRM2026" are one.

    Compatibility forms (full-width letters, ligatures) are folded first (NFKC), then separators and
    their look-alikes are dropped and the rest is upper case. German and Austrian plates also lose
    the umlaut dots (see ``_UMLAUTS_AS_BASE_LETTERS``). Other countries keep their letters as written.
    """
    text = _PLATE_SEPARATORS.sub("", unicodedata.normalize("NFKC", plate or "")).upper()
    if vehicle_country(country) in _FOLD_UMLAUTS:
        text = text.translate(_UMLAUTS_AS_BASE_LETTERS)
    return text


# --- RFID UIDs and other electronic ids -------------------------------------------------------
_BYTE_SEPARATORS = re.compile(r"[\s:\-.]+")
_HEX = re.compile(r"^[0-9A-F]+$")


def uid_readings(uid: str) -> tuple[str, ...]:
    """The UID values an identifier can mean, each as upper-case hex without leading zeros.

    - "04:A2:B3:C4", "04 a2 b3 c4", "04a2b3c4", "0x04A2B3C4" → hex ("4A2B3C4").
    - Digits only ("77771716") are ambiguous: hex or decimal. Both readings are returned, hex first;
      reconciliation matches the reading the other side shares.
    - Decimal means the UID's bytes as written, most significant first (big-endian: 04 A2 B3 C4 is
      0x04A2B3C4 = 77771716). Readers that print the bytes reversed (little-endian) are not matched:
      taking both orders would make two different cards equal.
    - Anything else (not a number) is compared as upper-case text without separators.
    """
    text = unicodedata.normalize("NFKC", uid or "").strip()
    separated = bool(_BYTE_SEPARATORS.search(text))
    compact = _BYTE_SEPARATORS.sub("", text).upper()
    if compact.startswith("0X") and _HEX.match(compact[2:]):
        return (_hex(int(compact[2:], 16)),)
    if not compact or not _HEX.match(compact):
        return (compact,)
    readings = [_hex(int(compact, 16))]
    if compact.isdigit() and not separated:
        readings.append(_hex(int(compact, 10)))
    return tuple(dict.fromkeys(readings))


def _hex(value: int) -> str:
    return f"{value:X}"


# --- any credential ----------------------------------------------------------------------------
Key = tuple[str, str]
_ELECTRONIC_KINDS = {"rfid", "bluetooth", "electronicID"}
# Payloads compared exactly (trimmed only): a QR code's text is case-sensitive.
_EXACT_KINDS = {"qr", "eticket"}


def credential_readings(kind: str, identifier: str, country: str = "") -> tuple[Key, ...]:
    """The comparison keys a credential can have, its primary one first (see :func:`uid_readings`)."""
    if kind == "plate":
        return ((kind, plate_key(identifier, country)),)
    if kind in _ELECTRONIC_KINDS:
        return tuple((kind, reading) for reading in uid_readings(identifier))
    text = unicodedata.normalize("NFKC", identifier or "").strip()
    if kind in _EXACT_KINDS:
        return ((kind, text),)
    # Printed identifiers (hangtag, permit, ticket, …) read by people: case and spaces do not matter.
    return ((kind, re.sub(r"\s+", "", text).upper()),)


def credential_key(kind: str, identifier: str, country: str = "") -> Key:
    """The primary comparison key of one credential."""
    return credential_readings(kind, identifier, country)[0]


def comparison_keys(
    ours: Sequence[tuple[str, str]], theirs: Sequence[tuple[str, str]], *, country: str = ""
) -> tuple[list[Key], list[Key]]:
    """Keys for our and the CPMS's credentials ((kind, identifier) pairs) such that the same credential
    gets the same key on both sides.

    Ours get their primary key. One of theirs gets the key of ours it shares a reading with (so the
    decimal "77771716" meets our "04A2B3C4"), else its own primary key.
    """
    our_readings = [credential_readings(kind, identifier, country) for kind, identifier in ours]
    our_keys = [readings[0] for readings in our_readings]
    owner: dict[Key, Key] = {}
    for primary, readings in zip(our_keys, our_readings, strict=True):
        for reading in readings:
            owner.setdefault(reading, primary)
    their_keys = []
    for kind, identifier in theirs:
        readings = credential_readings(kind, identifier, country)
        their_keys.append(next((owner[reading] for reading in readings if reading in owner), readings[0]))
    return our_keys, their_keys
