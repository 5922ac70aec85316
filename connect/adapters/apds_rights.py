"""APDS 4 rights: the RightSpecifications a CPMS publishes and the credential whitelist as assigned rights.

Split from :mod:`connect.adapters.apds` (places, occupancy, rates): the adapter class mixes this in.
Following ``apiv4/apds4.yaml`` of the APDS sandbox:

- ``GET /rights/specs`` (``RightSpecificationList``, paginated, ``place`` filter): the rights the
  operator sells. A ``RightSpecification`` is a ``VersionedIdentity`` (``id``, ``version``) with a
  ``description`` (MultilingualString), a ``type`` (RightSpecificationTypeEnum), the ``credentials``
  types it accepts and ``hierarchyElements`` (VersionedReferences to the places it applies to).
  The ids are the CPMS's: we never invent one, a product is mapped to one on the connection's
  mapping page.
- ``GET/PUT/DELETE /rights/assigned/{id}`` (``AssignedRight``, a ``VersionedIdentity`` with
  ``rightSpecification`` — a VersionedReference —, ``rightHolder.credentials[]`` of
  ``CredentialAssigned`` {``type`` CredentialTypeEnum, ``identifier`` Reference {id, className}},
  ``issuanceTime`` and ``expiry``). Each change of an assigned right is a new version: the push
  reads the right first (absent → version 1; present and different → stored version + 1;
  identical → nothing is sent) and reads it back after the PUT to check the CPMS holds what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

# APDS CredentialTypeEnum → our kind: every value the standard names, never a plate by default.
from ..normalise import KIND_BY_TYPE as KIND_BY_TYPE
from ..normalise import kind_for_credential_type
from .base import (
    CpmsMalformed,
    CpmsNotSupported,
    CpmsRejected,
    CredentialEntry,
    PushResult,
    Records,
    clean_id,
    clean_int,
    clean_text,
    collect,
    parse_datetime,
)

# Our Credential.Kind → APDS CredentialTypeEnum and the identifier's className.
CREDENTIAL_TYPES = {"plate": ("licensePlate", "LicensePlate"), "rfid": ("rfid", "RfidCard"), "qr": ("qrCode", "QrCode")}
MAX_SPEC_PAGES = 200
MAX_VERSION = 2_000_000_000


class CpmsReadBackMismatch(CpmsRejected):
    """After a PUT the CPMS holds the assigned right differently from what was sent (not retried:
    sending the same body again would give the same result; a person has to look)."""


@dataclass(frozen=True)
class RightSpecificationRecord:
    """A RightSpecification as the CPMS publishes it: what a product is mapped to."""

    id: str
    version: int
    name: str = ""
    names: dict[str, str] = field(default_factory=dict)
    place_ids: tuple[str, ...] = ()
    type: str = ""
    credential_types: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id} v{self.version})" if self.name else f"{self.id} v{self.version}"


class ApdsRightsMixin:
    """RightSpecification and credential operations of :class:`connect.adapters.apds.ApdsAdapter`."""

    # --- published RightSpecifications -------------------------------------------------------
    def list_right_specifications(self, place_id: str = "") -> Records:
        """The RightSpecifications the CPMS publishes (for one place when given), one refused per bad item.

        A CPMS that does not offer ``/rights/specs`` (HTTP 404) raises :class:`CpmsNotSupported`.
        """
        params: dict[str, Any] = {"place": place_id} if place_id else {}
        items = self._spec_items(params)
        records = collect(items, self._right_specification, lambda item: item.get("id"))
        if place_id:
            # The place filter is optional for a server; keep only the specifications for this place.
            records[:] = [spec for spec in records if place_id in spec.place_ids]
        return records

    def _spec_items(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_SPEC_PAGES + 1):
            response = self.request("GET", "rights/specs", params={**params, "page": page})  # type: ignore[attr-defined]
            what = f"GET {self.url('rights/specs')}"  # type: ignore[attr-defined]
            if response.status_code == 404 and page == 1:
                raise CpmsNotSupported(f"The CPMS does not publish RightSpecifications ({what} answered HTTP 404).")
            if response.status_code != 200:
                raise CpmsRejected(f"{what} answered HTTP {response.status_code}: {_message(response)}")
            try:
                body = response.json()
            except ValueError:
                raise CpmsMalformed(f"{what} did not answer with JSON") from None
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise CpmsMalformed(f"{what}: expected a RightSpecificationList with 'meta' and 'data'")
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            total = clean_int(meta.get("total", 0), f"{what} meta.total", maximum=10_000_000)
            offset = clean_int(meta.get("offset", 0), f"{what} meta.offset", maximum=10_000_000)
            items.extend(item if isinstance(item, dict) else {"id": "?"} for item in body["data"])
            if not body["data"] or offset + len(body["data"]) >= total:
                return items
        raise CpmsMalformed(f"GET rights/specs: more than {MAX_SPEC_PAGES} pages")

    def _right_specification(self, item: dict[str, Any]) -> RightSpecificationRecord:
        spec_id = clean_id(item.get("id"), "RightSpecification id")
        what = f"RightSpecification {spec_id}"
        if item.get("version") is None:
            raise CpmsMalformed(f"{what} has no version (VersionedIdentity requires one)")
        version = clean_int(item.get("version"), f"{what} version", minimum=1, maximum=MAX_VERSION)
        elements = item.get("hierarchyElements") or []
        if not isinstance(elements, list):
            raise CpmsMalformed(f"{what}: hierarchyElements is not a list")
        places = tuple(
            clean_id((ref or {}).get("id") if isinstance(ref, dict) else None, f"{what} hierarchyElement id")
            for ref in elements
        )
        credentials = item.get("credentials") or []
        names = _names(item.get("description"), what)
        return RightSpecificationRecord(
            id=spec_id,
            version=version,
            name=_pick(names, self.languages),  # type: ignore[attr-defined]
            names=names,
            place_ids=places,
            type=clean_text(item.get("type"), f"{what} type", max_length=40),
            credential_types=tuple(str(c) for c in credentials) if isinstance(credentials, list) else (),
        )

    # --- assigned rights ---------------------------------------------------------------------
    def assigned_right(self, entry: CredentialEntry, *, version: int = 1) -> dict[str, Any]:
        """The AssignedRight body for one credential (``version``: the right's version being written)."""
        apds_type, class_name = CREDENTIAL_TYPES[entry.kind]
        body: dict[str, Any] = {
            "id": entry.right_id,
            "version": version,
            "rightHolder": {
                "credentials": [{"type": apds_type, "identifier": {"id": entry.identifier, "className": class_name}}]
            },
            "rightSpecification": {
                "id": entry.right_specification_id,
                "version": entry.right_specification_version,
                "className": "RightSpecification",
            },
            "issueMethod": "electronic",
        }
        if entry.valid_from:
            body["issuanceTime"] = _stamp(datetime.combine(entry.valid_from, time.min, tzinfo=UTC))
        if entry.valid_until:
            body["expiry"] = _stamp(datetime.combine(entry.valid_until, time.max, tzinfo=UTC))
        return body

    def assigned_right_get(self, right_id: str) -> dict[str, Any] | None:
        """The assigned right as the CPMS holds it now, or None when it has none with this id."""
        path = f"rights/assigned/{right_id}"
        response = self.request("GET", path)  # type: ignore[attr-defined]
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise CpmsRejected(f"GET {path} answered HTTP {response.status_code}: {_message(response)}")
        try:
            body = response.json()
        except ValueError:
            raise CpmsMalformed(f"GET {path} did not answer with JSON") from None
        if not isinstance(body, dict):
            raise CpmsMalformed(f"GET {path} did not answer with an AssignedRight object")
        return body

    def push_credential(self, entry: CredentialEntry) -> PushResult:
        """Write one assigned right with the next version, unless the CPMS already holds exactly it.

        Read first (absent → version 1, ``created``; different → stored version + 1, ``updated``;
        identical → ``unchanged``, no PUT), then PUT, then read back and compare credential,
        RightSpecification reference and validity: what differs fails the push.
        """
        if not entry.right_specification_id:
            raise CpmsRejected(f"assigned right {entry.right_id}: no RightSpecification to refer to")
        wanted = self.assigned_right(entry)
        current = self.assigned_right_get(entry.right_id)
        if current is not None:
            if not right_differences(current, wanted):
                return PushResult(entry.right_id, "unchanged")
            wanted["version"] = _version(current, entry.right_id) + 1
        path = f"rights/assigned/{entry.right_id}"
        response = self.request("PUT", path, json=wanted)  # type: ignore[attr-defined]
        if response.status_code not in (200, 201):
            raise CpmsRejected(f"PUT {path} answered HTTP {response.status_code}: {_message(response)}")
        held = self.assigned_right_get(entry.right_id)
        if held is None:
            raise CpmsReadBackMismatch(
                f"assigned right {entry.right_id} is not in the CPMS after PUT answered HTTP {response.status_code}"
            )
        differences = right_differences(held, wanted)
        if differences:
            raise CpmsReadBackMismatch(
                f"the CPMS holds assigned right {entry.right_id} differently from what was sent: "
                + "; ".join(differences)
            )
        return PushResult(entry.right_id, "created" if current is None else "updated")

    def revoke_credential(self, right_id: str) -> PushResult:
        response = self.request("DELETE", f"rights/assigned/{right_id}")  # type: ignore[attr-defined]
        if response.status_code == 404:
            return PushResult(right_id, "absent")
        if response.status_code != 200:
            raise CpmsRejected(
                f"DELETE rights/assigned/{right_id} answered HTTP {response.status_code}: {_message(response)}"
            )
        return PushResult(right_id, "deleted")

    def list_credentials(self, place_id: str) -> list[CredentialEntry]:
        entries = []
        for right in self._list("rights/assigned", {"place": place_id}):  # type: ignore[attr-defined]
            right_id = clean_id(right.get("id"), "assigned right id")
            holder = right.get("rightHolder")
            credentials = holder.get("credentials") if isinstance(holder, dict) else None
            if not isinstance(credentials, list):
                raise CpmsMalformed(f"assigned right {right_id}: rightHolder.credentials is not a list")
            expiry = parse_datetime(right.get("expiry"), f"assigned right {right_id} expiry")
            issued = parse_datetime(right.get("issuanceTime"), f"assigned right {right_id} issuanceTime")
            spec = right.get("rightSpecification") if isinstance(right.get("rightSpecification"), dict) else {}
            for credential in credentials:
                identifier = (credential or {}).get("identifier") or {}
                entries.append(
                    CredentialEntry(
                        right_id=right_id,
                        place_id=place_id,
                        kind=kind_for_credential_type(credential.get("type")),
                        identifier=clean_text(
                            identifier.get("id"), f"assigned right {right_id} credential", required=True
                        ),
                        valid_from=issued.date() if issued else None,
                        valid_until=expiry.date() if expiry else None,
                        right_specification_id=str(spec.get("id") or ""),
                        right_specification_version=_int_or(spec.get("version"), 1),
                    )
                )
        return entries


def right_differences(held: dict[str, Any], sent: dict[str, Any]) -> list[str]:
    """What of the credential, RightSpecification reference and validity differs, in words."""
    differences = []
    held_credentials, sent_credentials = _credentials(held), _credentials(sent)
    if held_credentials != sent_credentials:
        differences.append(f"credentials {_show(held_credentials)} instead of {_show(sent_credentials)}")
    held_spec, sent_spec = _spec_reference(held), _spec_reference(sent)
    if held_spec != sent_spec:
        differences.append(f"rightSpecification {_show_spec(held_spec)} instead of {_show_spec(sent_spec)}")
    for name in ("issuanceTime", "expiry"):
        held_time, sent_time = _instant(held.get(name)), _instant(sent.get(name))
        if held_time != sent_time:
            differences.append(f"{name} {held.get(name) or 'none'} instead of {sent.get(name) or 'none'}")
    return differences


def _credentials(right: dict[str, Any]) -> list[tuple[str, str]]:
    holder = right.get("rightHolder")
    credentials = holder.get("credentials") if isinstance(holder, dict) else None
    if not isinstance(credentials, list):
        return []
    found = []
    for credential in credentials:
        if not isinstance(credential, dict):
            continue
        identifier = credential.get("identifier") if isinstance(credential.get("identifier"), dict) else {}
        # Identifiers compare without case: a CPMS that stores an RFID UID in lower case holds the same card.
        found.append((str(credential.get("type") or ""), str(identifier.get("id") or "").strip().upper()))
    return sorted(found)


def _spec_reference(right: dict[str, Any]) -> tuple[str, int | None]:
    spec = right.get("rightSpecification")
    if not isinstance(spec, dict):
        return ("", None)
    return (str(spec.get("id") or ""), _int_or(spec.get("version"), None))


def _instant(value: Any) -> datetime | None:
    try:
        return parse_datetime(value, "time")
    except CpmsMalformed:
        return None


def _version(right: dict[str, Any], right_id: str) -> int:
    if right.get("version") is None:
        raise CpmsMalformed(f"assigned right {right_id} in the CPMS has no version (VersionedIdentity requires one)")
    return clean_int(right.get("version"), f"assigned right {right_id} version", minimum=1, maximum=MAX_VERSION)


def _int_or(value: Any, default: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _show(credentials: list[tuple[str, str]]) -> str:
    return ", ".join(f"{kind} {identifier}" for kind, identifier in credentials) or "none"


def _show_spec(spec: tuple[str, int | None]) -> str:
    return f"{spec[0] or 'none'} v{spec[1]}" if spec[0] else "none"


def _names(value: Any, what: str) -> dict[str, str]:
    """A MultilingualString as {language: text}; a plain string counts as language-less ("")."""
    if value in (None, []):
        return {}
    if isinstance(value, str):
        return {"": clean_text(value, f"{what} description")}
    if not isinstance(value, list):
        raise CpmsMalformed(f"{what}: description is not a MultilingualString")
    names = {}
    for item in value:
        if isinstance(item, dict) and item.get("string"):
            names.setdefault(str(item.get("language") or ""), clean_text(item["string"], f"{what} description"))
    return names


def _pick(names: dict[str, str], languages: tuple[str, ...]) -> str:
    for language in languages:
        if names.get(language):
            return names[language]
    return next(iter(names.values()), "")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(response: Any) -> str:
    try:
        body = response.json()
        return str(body.get("message", "") if isinstance(body, dict) else body)[:200]
    except ValueError:
        return response.text[:200]
