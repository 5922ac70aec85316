"""Celery jobs of connect: thin wrappers that load, call a service and let Celery retry.

A timeout, a 5xx or a malformed answer is retried with exponential backoff; the run keeps
one row across attempts (keyed by the Celery task id, which survives retries) and the last
failed attempt marks it failed with ``incident=True``. Refusals (4xx, a pull-only feed asked to
push) are not retried.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.db import transaction

from carparks.models import Contract

from . import services
from .adapters import ADAPTERS, CpmsMalformed, CpmsUnavailable
from .models import CpmsConnection

RETRY_OPTIONS: dict[str, Any] = {
    "bind": True,
    "autoretry_for": (CpmsUnavailable, CpmsMalformed),
    "retry_backoff": 30,
    "retry_backoff_max": 900,
    "retry_jitter": True,
    "max_retries": 3,
}


def _final(task: Task) -> bool:
    return task.request.retries >= task.max_retries


def _key(task: Task) -> str:
    return task.request.id or ""


@shared_task(**RETRY_OPTIONS)
def sync_static_task(self: Task, connection_id: int) -> int:
    connection = CpmsConnection.objects.get(pk=connection_id)
    return services.sync_static(connection=connection, key=_key(self), final=_final(self)).pk


@shared_task(**RETRY_OPTIONS)
def sync_occupancy_task(self: Task, connection_id: int) -> int:
    connection = CpmsConnection.objects.get(pk=connection_id)
    return services.sync_occupancy(connection=connection, key=_key(self), final=_final(self)).pk


@shared_task(**RETRY_OPTIONS)
def reconcile_task(self: Task, connection_id: int) -> int:
    connection = CpmsConnection.objects.get(pk=connection_id)
    return services.reconcile(connection=connection, key=_key(self), final=_final(self)).pk


@shared_task(**RETRY_OPTIONS)
def push_credentials_task(self: Task, contract_id: int) -> int:
    contract = Contract.objects.select_related("product__carpark").get(pk=contract_id)
    return services.credentials_push(contract=contract, key=_key(self), final=_final(self)).pk


@shared_task(**RETRY_OPTIONS)
def revoke_credentials_task(self: Task, contract_id: int) -> int:
    contract = Contract.objects.select_related("product__carpark").get(pk=contract_id)
    return services.credentials_revoke(contract=contract, key=_key(self), final=_final(self)).pk


def _fan_out(task: Task, *, linked_only: bool) -> int:
    connections = CpmsConnection.objects.filter(is_active=True)
    if linked_only:
        connections = connections.filter(links__isnull=False).distinct()
    ids = list(connections.values_list("pk", flat=True))
    for connection_id in ids:
        transaction.on_commit(lambda connection_id=connection_id: task.delay(connection_id))
    return len(ids)


@shared_task
def sync_static_all() -> int:
    """Beat, nightly: import car parks from every active connection (and prune old routine runs)."""
    services.sync_runs_prune()
    return _fan_out(sync_static_task, linked_only=False)


@shared_task
def sync_occupancy_all() -> int:
    """Beat, every five minutes: occupancy of every connection that has linked car parks."""
    return _fan_out(sync_occupancy_task, linked_only=True)


@shared_task
def reconcile_all() -> int:
    """Beat, nightly: compare every push-capable CPMS whitelist with our valid credentials."""
    kinds = [kind for kind, adapter in ADAPTERS.items() if adapter.supports_push]
    connections = CpmsConnection.objects.filter(is_active=True, kind__in=kinds, links__isnull=False)
    ids = list(connections.distinct().values_list("pk", flat=True))
    for connection_id in ids:
        transaction.on_commit(lambda connection_id=connection_id: reconcile_task.delay(connection_id))
    return len(ids)
