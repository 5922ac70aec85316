"""APDS 4 rights: the credential whitelist as assigned rights (push, revoke, read back).

Split from :mod:`connect.adapters.apds` (places, occupancy, rates): the adapter class mixes this in.
``rightHolder.credentials[]`` carry ``type`` (CredentialTypeEnum: licensePlate, rfid, qrCode) and
``identifier`` {id, className}; an AssignedRight refers to a RightSpecification by id and version.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from .base import (
    CpmsMalformed,
    CpmsRejected,
    CredentialEntry,
    PushResult,
    clean_id,
    clean_text,
    parse_datetime,
)

# Our Credential.Kind → APDS CredentialTypeEnum and the identifier's className.
CREDENTIAL_TYPES = {"plate": ("licensePlate", "LicensePlate"), "rfid": ("rfid", "RfidCard"), "qr": ("qrCode", "QrCode")}
KIND_BY_TYPE = {apds: kind for kind, (apds, _) in CREDENTIAL_TYPES.items()}
KIND_BY_TYPE.update({"vehicleplate": "plate", "barcode": "qr"})


def right_specification_id(place_id: str) -> str:
    """The season-parking RightSpecification a place's assigned rights refer to."""
    return f"{place_id}-season"


class ApdsRightsMixin:
    """Credential operations of :class:`connect.adapters.apds.ApdsAdapter`."""

    # --- credentials ----------------------------------------------------------------------
    def assigned_right(self, entry: CredentialEntry) -> dict[str, Any]:
        apds_type, class_name = CREDENTIAL_TYPES[entry.kind]
        body: dict[str, Any] = {
            "id": entry.right_id,
            "version": 1,
            "rightHolder": {
                "credentials": [{"type": apds_type, "identifier": {"id": entry.identifier, "className": class_name}}]
            },
            "rightSpecification": {"id": right_specification_id(entry.place_id), "version": 1},
            "issueMethod": "electronic",
        }
        if entry.valid_from:
            body["issuanceTime"] = datetime.combine(entry.valid_from, time.min, tzinfo=UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        if entry.valid_until:
            body["expiry"] = datetime.combine(entry.valid_until, time.max, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return body

    def push_credential(self, entry: CredentialEntry) -> PushResult:
        response = self.request("PUT", f"rights/assigned/{entry.right_id}", json=self.assigned_right(entry))
        if response.status_code not in (200, 201):
            raise CpmsRejected(
                f"PUT rights/assigned/{entry.right_id} answered HTTP {response.status_code}: {_message(response)}"
            )
        return PushResult(entry.right_id, "created" if response.status_code == 201 else "updated")

    def revoke_credential(self, right_id: str) -> PushResult:
        response = self.request("DELETE", f"rights/assigned/{right_id}")
        if response.status_code == 404:
            return PushResult(right_id, "absent")
        if response.status_code != 200:
            raise CpmsRejected(
                f"DELETE rights/assigned/{right_id} answered HTTP {response.status_code}: {_message(response)}"
            )
        return PushResult(right_id, "deleted")

    def list_credentials(self, place_id: str) -> list[CredentialEntry]:
        entries = []
        for right in self._list("rights/assigned", {"place": place_id}):
            right_id = clean_id(right.get("id"), "assigned right id")
            holder = right.get("rightHolder")
            credentials = holder.get("credentials") if isinstance(holder, dict) else None
            if not isinstance(credentials, list):
                raise CpmsMalformed(f"assigned right {right_id}: rightHolder.credentials is not a list")
            expiry = parse_datetime(right.get("expiry"), f"assigned right {right_id} expiry")
            issued = parse_datetime(right.get("issuanceTime"), f"assigned right {right_id} issuanceTime")
            for credential in credentials:
                identifier = (credential or {}).get("identifier") or {}
                entries.append(
                    CredentialEntry(
                        right_id=right_id,
                        place_id=place_id,
                        kind=KIND_BY_TYPE.get(str(credential.get("type", "licensePlate")), "plate"),
                        identifier=clean_text(
                            identifier.get("id"), f"assigned right {right_id} credential", required=True
                        ),
                        valid_from=issued.date() if issued else None,
                        valid_until=expiry.date() if expiry else None,
                    )
                )
        return entries


def _message(response: Any) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]
