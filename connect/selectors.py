"""Reads of connect that are more than a filter: what a user may see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from accounts.roles import ADMINISTRATOR, SUPERVISOR, responsible_carpark_ids, user_roles

from .models import CarParkLink, CpmsConnection, SyncRun

STORED = (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTLY)


def carpark_scope(user: Any) -> set[int] | None:
    """Car parks whose CPMS data the user may see; None = all (administrators, supervisors)."""
    if user_roles(user) & {ADMINISTRATOR, SUPERVISOR}:
        return None
    return responsible_carpark_ids(user) or set()


def connections_for(user: Any) -> QuerySet[CpmsConnection]:
    scope = carpark_scope(user)
    connections = CpmsConnection.objects.all()
    if scope is not None:
        connections = connections.filter(links__carpark_id__in=scope).distinct()
    return connections.annotate(
        carpark_count=Count("links", distinct=True),
        # A partly succeeded sync stored every valid record: it counts as the last sync.
        last_static=Max("runs__finished_at", filter=Q(runs__kind="static", runs__status__in=STORED)),
        last_occupancy=Max("runs__finished_at", filter=Q(runs__kind="occupancy", runs__status__in=STORED)),
        recent_incidents=Count(
            "runs",
            filter=Q(runs__incident=True, runs__started_at__gte=timezone.now() - timedelta(days=7)),
            distinct=True,
        ),
    ).order_by("name")


def links_for(user: Any, connection: CpmsConnection) -> QuerySet[CarParkLink]:
    links = connection.links.select_related("carpark").order_by("carpark__name")
    scope = carpark_scope(user)
    return links if scope is None else links.filter(carpark_id__in=scope)


def runs_for(user: Any, connection: CpmsConnection) -> QuerySet[SyncRun]:
    runs = connection.runs.select_related("carpark", "triggered_by").order_by("-started_at", "-pk")
    scope = carpark_scope(user)
    if scope is None:
        return runs
    return runs.filter(Q(carpark__isnull=True) | Q(carpark_id__in=scope))


def differences_for(user: Any, run: SyncRun) -> list[dict[str, Any]]:
    differences = run.details.get("differences", []) if isinstance(run.details, dict) else []
    scope = carpark_scope(user)
    return differences if scope is None else [d for d in differences if d.get("carpark_id") in scope]
