"""CPMS adapters: one class per protocol, all speaking the interface in ``base``."""

from __future__ import annotations

from .apds import ApdsAdapter
from .base import (
    CarParkRecord,
    CpmsAdapter,
    CpmsError,
    CpmsMalformed,
    CpmsNotSupported,
    CpmsRejected,
    CpmsUnavailable,
    CredentialEntry,
    GroupRecord,
    HealthResult,
    OccupancyRecord,
    PushResult,
    Records,
    RefusedRecord,
    TariffRecord,
    collect,
)
from .datex2 import Datex2Adapter
from .parkapi import ParkApiAdapter

ADAPTERS: dict[str, type[CpmsAdapter]] = {
    ApdsAdapter.kind: ApdsAdapter,
    Datex2Adapter.kind: Datex2Adapter,
    ParkApiAdapter.kind: ParkApiAdapter,
}

__all__ = [
    "ADAPTERS",
    "ApdsAdapter",
    "CarParkRecord",
    "CpmsAdapter",
    "CpmsError",
    "CpmsMalformed",
    "CpmsNotSupported",
    "CpmsRejected",
    "CpmsUnavailable",
    "CredentialEntry",
    "Datex2Adapter",
    "GroupRecord",
    "HealthResult",
    "OccupancyRecord",
    "ParkApiAdapter",
    "PushResult",
    "Records",
    "RefusedRecord",
    "TariffRecord",
    "collect",
]
