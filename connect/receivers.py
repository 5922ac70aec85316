"""Keep the CPMS whitelist in step with contracts: carparks says credentials changed, we push.

``carparks.signals.credentials_changed`` is sent after the change committed (activation, plate
change, new card, suspension, termination). The push job makes the CPMS match the contract —
valid credentials pushed, the rest revoked — and is idempotent, so a process step doing the
same (``connect.push_credentials``) does no harm.
"""

from __future__ import annotations

import logging
from typing import Any

from .adapters import ADAPTERS
from .models import CarParkLink

logger = logging.getLogger(__name__)
PUSH_KINDS = [kind for kind, adapter in ADAPTERS.items() if adapter.supports_push]


def push_changed_credentials(sender: Any, contract: Any, **kwargs: Any) -> None:
    carpark_id = contract.product.carpark_id
    if not CarParkLink.objects.filter(
        carpark_id=carpark_id, connection__is_active=True, connection__kind__in=PUSH_KINDS
    ).exists():
        return
    from .tasks import push_credentials_task

    try:
        push_credentials_task.delay(contract.pk)
    except Exception:  # the nightly reconciliation finds what a lost message left behind
        logger.exception("could not queue the CPMS push for contract %s", contract.pk)


def close_runs_of_failed_step(sender: Any, process: Any, **kwargs: Any) -> None:
    """The engine gave up on a connect step: its run is no longer 'retrying' but failed, an incident.

    System steps key their runs with the engine's idempotency key ``<process>:<step>:<seq>``.
    """
    from django.db.models import Q
    from django.utils import timezone

    from .models import SyncRun

    prefix = f"{process.pk}:{process.current_step}:"
    SyncRun.objects.filter(Q(key__startswith=prefix), status=SyncRun.Status.RETRYING).update(
        status=SyncRun.Status.FAILED, incident=True, finished_at=timezone.now()
    )
