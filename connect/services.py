"""Connect's writes: syncing car parks and occupancy, pushing credentials, reconciling whitelists.

Every operation is recorded as a :class:`SyncRun`. The CPMS is asked first and its answer is
parsed and validated completely (the adapters raise on anything they cannot read); only then
are the changes written, in one transaction. A timeout, a 5xx or a malformed body therefore
leaves stored data exactly as it was: the run records the error and the caller retries.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from time import monotonic as _monotonic
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.text import slugify
from django.utils.translation import gettext

from carparks.models import CarPark, Contract, Credential

from .adapters import (
    CarParkRecord,
    CpmsError,
    CpmsNotSupported,
    CpmsRejected,
    CredentialEntry,
    GroupRecord,
    HealthResult,
    OccupancyRecord,
    TariffRecord,
)
from .models import CarParkLink, CpmsConnection, CpmsGroup, ProductRightMapping, SyncRun
from .normalise import comparison_keys
from .signals import sync_incident
from .sync_messages import sync_message

logger = logging.getLogger(__name__)

# The business events connect emits (workflows.events); the workflows bound to them decide what happens.
CONNECTION_FAILING = "cpms.connection_failing"
RECONCILIATION_DIFFERS = "cpms.reconciliation_differs"
STATIC_FIELDS = (
    "name",
    "capacity",
    "street",
    "postcode",
    "city",
    "country",
    "latitude",
    "longitude",
    "time_zone",
    "operator",
    "opening_hours",
)
# Fields a feed may leave empty without blanking what we already know.
OPTIONAL_FIELDS = set(STATIC_FIELDS) - {"name", "capacity"}
# What a link keeps as the CPMS last said it: replaced on every import.
LINK_FIELDS = ("names", "opening_times", "tariffs")


# Occupancy runs every five minutes: keep a month of the successful ones, every failure forever.
ROUTINE_RUN_RETENTION = timedelta(days=30)


class CarParkNotLinked(CpmsRejected):
    """The car park has no CPMS connection, so there is nowhere to push to."""


# --- run bookkeeping --------------------------------------------------------------------------
# A run with the same key in one of these states is done: a retried or repeated job returns it unchanged.
FINISHED_OK = (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTLY)
# The refused records a run lists (the rest are counted in details["refused_not_listed"]).
REFUSED_KEPT = 1000
# A run still "running" this long after it started belongs to a worker that died (killed, out of memory).
ABANDONED_AFTER = timedelta(hours=1)


class SyncCrashed(CpmsError):
    """Asking or storing failed with an error that is not the CPMS's (a bug, a database failure).

    Not retried: the same answer would crash the same way. The run is failed with the reason and
    the traceback is logged for the developers.
    """


def sync_run_begin(
    *, connection: CpmsConnection, kind: str, key: str = "", carpark: CarPark | None = None, user: Any = None
) -> SyncRun:
    """Start (or, for a retried job with the same key, resume) a run and count the attempt.

    A run with the same key that already succeeded (fully or partly) is returned unchanged.
    """
    now = timezone.now()
    run = None
    if key:
        run = SyncRun.objects.filter(connection=connection, kind=kind, key=key).first()
    if run is None:
        run = SyncRun(connection=connection, kind=kind, key=key, carpark=carpark, started_at=now, triggered_by=user)
    elif run.status in FINISHED_OK:
        return run
    _abandoned_runs_close(connection, kind, now=now, keep=run.pk)
    run.status = SyncRun.Status.RUNNING
    run.attempts += 1
    run.finished_at = None
    # A retried attempt counts its records again from the start.
    run.progress_total, run.progress_done = None, 0
    run.save()
    return run


# --- live progress ---------------------------------------------------------------------------
# A run's page polls these counts: written every PROGRESS_EVERY records or PROGRESS_SECONDS, never per record.
PROGRESS_EVERY = 200
PROGRESS_SECONDS = 0.5


class SyncProgress:
    """Counts a run's records as they are handled and writes the counts to the run now and then.

    The writes go through a connection of their own in autocommit, so a poller sees them while the
    run's own transaction (storing a feed happens in one) is still open. They skip a run whose row is
    locked instead of waiting for it (``SKIP LOCKED``): a progress write never blocks a sync, and a
    skipped one is made good by the next. Counts are also kept on the run object, so the run's final
    save keeps them.
    """

    def __init__(self, run: SyncRun, *, every: int | None = None, seconds: float | None = None):
        self.run = run
        self.every = PROGRESS_EVERY if every is None else every
        self.seconds = PROGRESS_SECONDS if seconds is None else seconds
        self.done = self.created = self.updated = self.failed = 0
        self.total: int | None = None
        self.writes = 0
        self._written_done = 0
        self._written_at = _monotonic()
        self._connection: Any = None

    def start(self, total: int, *, failed: int = 0) -> SyncProgress:
        """The number of records is known: write it at once (the page shows 0 of ``total``)."""
        self.total, self.failed = total, failed
        self._write()
        return self

    def step(self, count: int = 1, *, created: int = 0, updated: int = 0, failed: int = 0) -> None:
        self.done += count
        self.created += created
        self.updated += updated
        self.failed += failed
        self.run.progress_done = self.done  # the run's final save keeps it
        if self.done - self._written_done >= self.every or _monotonic() - self._written_at >= self.seconds:
            self._write()

    def close(self) -> None:
        """Close the connection of the writes; the run's own final save stores the last counts."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _write(self) -> None:
        run = self.run
        run.progress_total, run.progress_done = self.total, self.done
        self._written_done, self._written_at = self.done, _monotonic()
        if run.pk is None:
            return
        counts = {
            "progress_total": self.total,
            "progress_done": self.done,
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
        }
        try:
            if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
                # No second writer beside an open transaction there (SQLite): only outside one.
                if not transaction.get_connection().in_atomic_block:
                    SyncRun.objects.filter(pk=run.pk).update(**counts)
                    self.writes += 1
                return
            if self._connection is None:
                self._connection = connections.create_connection(DEFAULT_DB_ALIAS)
            table = self._connection.ops.quote_name(SyncRun._meta.db_table)
            with self._connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET {', '.join(f'{name} = %s' for name in counts)} "  # noqa: S608 - our names
                    f"WHERE id IN (SELECT id FROM {table} WHERE id = %s FOR UPDATE SKIP LOCKED)",
                    [*counts.values(), run.pk],
                )
            self.writes += 1
        except DatabaseError:
            # Progress is a courtesy to the person watching: the sync goes on without it.
            logger.warning("CPMS %s of %s: writing its progress failed", run.kind, run.connection_id, exc_info=True)
            self.close()


def _abandoned_runs_close(connection: CpmsConnection, kind: str, *, now: Any, keep: int | None) -> None:
    """Fail the runs of this connection and kind a dead worker left "running", so none stays so forever."""
    stale = SyncRun.objects.filter(
        connection=connection, kind=kind, status=SyncRun.Status.RUNNING, started_at__lt=now - ABANDONED_AFTER
    ).exclude(pk=keep)
    for run in stale:
        text, entry = sync_message("abandoned", after=str(ABANDONED_AFTER))
        sync_run_failed(run=run, error=text, final=True, error_entry=entry)


def sync_run_failed(
    *, run: SyncRun, error: Exception | str, final: bool, error_entry: dict[str, Any] | None = None
) -> SyncRun:
    """Record a failed attempt; the last one (or one not worth retrying) becomes an incident.

    ``error_entry`` is the code and facts of an ``error`` the portal wrote itself (connect.sync_messages),
    so the run page shows it in the reader's language.
    """
    message = str(error) or error.__class__.__name__
    retryable = getattr(error, "retryable", False)
    final = final or not retryable
    text, entry = sync_message("attempt", attempt=run.attempts, error=error_entry or message)
    run.errors = [*run.errors, text][-50:]
    _texts_keep(run, {text: entry})
    run.status = SyncRun.Status.FAILED if final else SyncRun.Status.RETRYING
    run.incident = final
    if final:
        run.finished_at = timezone.now()
    run.save(update_fields=["errors", "details", "status", "incident", "finished_at"])
    _connection_status(run.connection, ok=False, message=message)
    if final:
        logger.error("CPMS %s of %s failed for good: %s", run.kind, run.connection, message)
        _connection_failing_emit(run, message)
        transaction.on_commit(lambda: sync_incident.send(sender=SyncRun, run=run))
    return run


def _texts_keep(run: SyncRun, texts: dict[str, Any]) -> None:
    """Remember the code and facts of the portal's own sentences in ``run.errors`` (``details[\"texts\"]``)."""
    details = dict(run.details) if isinstance(run.details, dict) else {}
    kept = {**(details.get("texts") or {}), **texts}
    details["texts"] = {text: entry for text, entry in kept.items() if text in run.errors}
    run.details = details


def _connection_failing_emit(run: SyncRun, message: str) -> None:
    """``cpms.connection_failing`` for a run that failed for good (once per run)."""
    from workflows.starting import event_emit

    # Failures since the last healthy run: succeeded, or partly succeeded below the refusal threshold.
    since = (
        SyncRun.objects.filter(connection_id=run.connection_id, status__in=FINISHED_OK, incident=False)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    failed = SyncRun.objects.filter(
        connection_id=run.connection_id,
        status__in=[SyncRun.Status.FAILED, SyncRun.Status.PARTLY],
        incident=True,
    )
    if since is not None:
        failed = failed.filter(started_at__gt=since)
    connection = run.connection
    event_emit(
        name=CONNECTION_FAILING,
        payload={
            "connection_id": connection.pk,
            "connection": connection.name[:2000],
            "operation": run.get_kind_display(),
            "error": message[:2000],
            "failures": max(failed.count(), 1),
            "sync_run_id": run.pk,
        },
        business_object=connection,
        event_id=f"{CONNECTION_FAILING}:{run.pk}",
    )


def _run_succeeded(
    run: SyncRun,
    *,
    created: int = 0,
    updated: int = 0,
    unchanged: int = 0,
    failed: int = 0,
    errors: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    refused: Iterable[dict[str, str]] = (),
    records_total: int = 0,
) -> SyncRun:
    """Finish a run that stored its answer: succeeded, or partly succeeded when records were refused.

    Refused records fail nothing else: they are listed on the run (the first ``REFUSED_KEPT``) and
    counted in ``failed``. The run is an incident only when their share of the feed's records
    (``records_total``) is above the connection's ``refused_alert_percent``.
    """
    refused = list(refused)
    run.created, run.updated, run.unchanged, run.failed = created, updated, unchanged, failed + len(refused)
    if errors:
        run.errors = [*run.errors, *errors][-200:]
    if details is not None:
        run.details = details
    run.refused = refused[:REFUSED_KEPT]
    run.finished_at = timezone.now()
    if not refused:
        run.status, run.incident = SyncRun.Status.SUCCEEDED, False
        run.save()
        with translation.override("en"):  # stored in English; connect.sync_messages.status_text translates it
            _connection_status(run.connection, ok=True, message=f"{run.get_kind_display()} succeeded")
        return run
    limit = run.connection.refused_alert_percent
    share = 100 * len(refused) / max(records_total, len(refused))
    run.details = {
        **(run.details or {}),
        "refused_total": len(refused),
        "refused_percent": round(share, 1),
        "refused_not_listed": max(len(refused) - REFUSED_KEPT, 0),
    }
    run.status, run.incident = SyncRun.Status.PARTLY, share > limit
    run.save()
    _connection_status(run.connection, ok=not run.incident, message=_partly_message(run, share, limit))
    return run


def _partly_message(run: SyncRun, share: float, limit: int) -> str:
    """Stored in English; connect.sync_messages.status_text shows it in the reader's language."""
    from connect.sync_messages import partly_text

    with translation.override("en"):
        return partly_text(kind=run.kind, count=run.details["refused_total"], share=share, limit=limit)


def _partly_alert(run: SyncRun) -> None:
    """A partly succeeded run above the refusal threshold raises the incident a failed run raises."""
    message = _partly_message(run, run.details["refused_percent"], run.connection.refused_alert_percent)
    logger.error("CPMS %s of %s refused too many records: %s", run.kind, run.connection, message)
    _connection_failing_emit(run, message)
    transaction.on_commit(lambda: sync_incident.send(sender=SyncRun, run=run))


def _refused_of(records: Any) -> list[dict[str, str]]:
    """The records an adapter refused, as a run lists them."""
    return [{"id": item.external_id, "reason": item.reason} for item in getattr(records, "refused", ())]


def _with_refused(result: dict[str, Any], refused: list[dict[str, str]], total: int) -> dict[str, Any]:
    """Add what the adapter refused to what storing refused; ``total`` is every record the feed had."""
    return {**result, "refused": [*refused, *result.get("refused", [])], "records_total": total}


def _connection_status(connection: CpmsConnection, *, ok: bool, message: str) -> None:
    CpmsConnection.objects.filter(pk=connection.pk).update(
        status=CpmsConnection.Status.OK if ok else CpmsConnection.Status.FAILING,
        status_message=message[:500],
        last_checked_at=timezone.now(),
    )


def _ask(run: SyncRun, final: bool, question: Any) -> Any:
    """Call the CPMS; on failure record the attempt and re-raise for the caller's retry policy.

    An error that is not a CpmsError (a bug in an adapter meeting an odd document) fails the run for
    good with a readable reason and is raised as :class:`SyncCrashed`, so no run stays "running" and
    callers that handle CpmsError show it instead of answering 500.
    """
    try:
        return question()
    except CpmsError as exc:
        sync_run_failed(run=run, error=exc, final=final)
        raise
    except Exception as exc:
        what = getattr(question, "__name__", "the request")
        logger.exception("CPMS %s of %s: %s crashed", run.kind, run.connection, what)
        crashed = SyncCrashed(f"Reading the CPMS answer failed unexpectedly in {what}: {_describe(exc)}")
        sync_run_failed(run=run, error=crashed, final=True)
        raise crashed from exc


def _write(run: SyncRun, final: bool, apply: Any) -> SyncRun:
    """Store a validated answer in one transaction, one writer per connection at a time.

    The row lock on the connection serialises two syncs of the same CPMS (a beat job and a
    "sync now"), so the second one sees the first one's car parks instead of creating them again.
    If storing fails, nothing of it stays and the run says why.
    """
    try:
        with transaction.atomic():
            CpmsConnection.objects.select_for_update().filter(pk=run.connection_id).first()
            run = _run_succeeded(run, **apply())
    except Exception as exc:
        logger.exception("CPMS %s of %s: storing the answer failed", run.kind, run.connection)
        crashed = SyncCrashed(f"Storing the answer failed: {_describe(exc)}")
        sync_run_failed(run=run, error=crashed, final=final)
        raise crashed from exc
    if run.incident:
        _partly_alert(run)
    return run


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or "no message"
    return f"{exc.__class__.__name__}: {text if len(text) <= 300 else text[:299] + '…'}"


# --- connection settings -----------------------------------------------------------------------
@transaction.atomic
def connection_save(
    *, connection: CpmsConnection, secret: str = "", clear_secret: bool = False, user: Any = None
) -> CpmsConnection:
    """Save a connection's settings; a new secret replaces the stored one, an empty one keeps it."""
    if clear_secret:
        connection.set_secret("")
    elif secret:
        connection.set_secret(secret)
    connection.full_clean()
    connection.save()
    logger.info("CPMS connection %s saved by %s", connection.code, getattr(user, "username", "system"))
    return connection


# --- connection test ---------------------------------------------------------------------------
def connection_test(*, connection: CpmsConnection, user: Any = None) -> tuple[SyncRun, HealthResult]:
    """Ask the CPMS whether it answers, record the result and update the connection's status."""
    run = sync_run_begin(connection=connection, kind=SyncRun.Kind.TEST, user=user)
    try:
        result = connection.adapter().health_check()
    except CpmsError as exc:
        result = HealthResult(ok=False, message=str(exc))
    except Exception as exc:  # noqa: BLE001 - "Test connection" answers with a result, never with a 500
        logger.exception("CPMS connection test of %s failed unexpectedly", connection)
        result = HealthResult(
            ok=False,
            message=(
                gettext("The test failed unexpectedly: %(error)s") % {"error": f"{exc.__class__.__name__}: {exc}"}
            )[:500],
        )
    details = {"ok": result.ok, "message": result.message, "latency_ms": result.latency_ms, **result.details}
    if result.ok:
        _run_succeeded(run, details=details)
    else:
        # A failed test is an answer for the person who asked, not an incident.
        run.details = details
        run.errors = [*run.errors, result.message]
        run.status = SyncRun.Status.FAILED
        run.finished_at = timezone.now()
        run.save(update_fields=["details", "errors", "status", "finished_at"])
        _connection_status(connection, ok=False, message=result.message)
    return run, result


# --- static data -------------------------------------------------------------------------------
def sync_static(*, connection: CpmsConnection, key: str = "", user: Any = None, final: bool = True) -> SyncRun:
    """Import the CPMS's car parks: create the new ones, update the changed ones, idempotently."""
    run = sync_run_begin(connection=connection, kind=SyncRun.Kind.STATIC, key=key, user=user)
    if run.status in FINISHED_OK:
        return run
    adapter = _ask(run, final, connection.adapter)
    records: list[CarParkRecord] = _ask(run, final, adapter.pull_carparks)
    tariffs: list[TariffRecord] = _ask(run, final, adapter.pull_tariffs) if adapter.supports_tariffs else []
    groups = list(getattr(records, "groups", ()))
    # Refused rate tables are listed with the places; the share that alerts counts both.
    refused = [*_refused_of(records), *_refused_of(tariffs)]
    total = len(records) + len(tariffs) + len(refused)
    not_offered = dict(getattr(adapter, "not_offered", {}) or {})
    progress = SyncProgress(run).start(len(records), failed=len(refused))

    def apply() -> dict[str, Any]:
        result = _with_refused(_apply_static(connection, records, tariffs, groups, progress), refused, total)
        if not_offered:
            # Optional endpoints the CPMS does not implement (APDS rates, right specifications): not an error.
            result["details"] = {**result.get("details", {}), "not_offered": not_offered}
        return result

    try:
        return _write(run, final, apply)
    finally:
        progress.close()


def _record_values(record: CarParkRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in STATIC_FIELDS}
    if not values["opening_hours"] and record.opening_times:
        # The structured times stay on the link; the car park's one-line text is written only when the feed gave times.
        values["opening_hours"] = opening_hours_summary(record.opening_times)
    return values


def _link_values(record: CarParkRecord, tariffs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the link keeps of a record as the CPMS said it (replaced on every import)."""
    return {
        "names": {str(code): str(name) for code, name in record.names.items() if name},
        "opening_times": _jsonable(list(record.opening_times)),
        "tariffs": tariffs,
    }


def _tariff_entry(tariff: TariffRecord) -> dict[str, Any]:
    """One rate table as a link stores it; its validity keeps a 2025 and a 2026 table apart."""
    return {
        "id": tariff.external_id,
        "name": tariff.name,
        "currency": tariff.currency,
        "lines": _jsonable(list(tariff.lines)),
        "valid_from": _iso(tariff.valid_from),
        "valid_until": _iso(tariff.valid_until),
    }


def _apply_static(
    connection: CpmsConnection,
    records: list[CarParkRecord],
    tariffs: list[TariffRecord],
    groups: list[GroupRecord] = (),
    progress: SyncProgress | None = None,
) -> dict[str, Any]:
    progress = progress or SyncProgress(SyncRun())
    now = timezone.now()
    links = {link.external_id: link for link in connection.links.select_related("carpark")}
    tariffs_by_place: dict[str, list[dict[str, Any]]] = {}
    for tariff in tariffs:
        for place_id in tariff.place_ids:
            tariffs_by_place.setdefault(place_id, []).append(_tariff_entry(tariff))
    refused: list[dict[str, str]] = []
    group_ids = {group.external_id for group in groups}
    carpark_records = []
    for record in records:
        if record.external_id in group_ids:
            # A campus or group of sites counts its members' spaces: as a car park it would count them twice.
            refused.append(
                {"id": record.external_id, "reason": "It is a group of car parks in the feed, so not imported as one."}
            )
            progress.step(failed=1)
        else:
            carpark_records.append(record)
    records = carpark_records
    # Car parks that already carry the CPMS id (entered by hand or by the demo) are adopted, not duplicated.
    unlinked = {
        carpark.cpms_reference: carpark
        for carpark in CarPark.objects.filter(
            cpms_reference__in=[r.external_id for r in records if r.external_id not in links], cpms_link__isnull=True
        )
    }
    taken_codes = set(CarPark.objects.filter(code__startswith=slugify(connection.code)).values_list("code", flat=True))
    updated, unchanged = 0, 0
    new_records: list[tuple[str, CarParkRecord, dict[str, Any]]] = []
    changed_carparks: list[CarPark] = []
    changed_fields: set[str] = set()
    changed_links: list[CarParkLink] = []
    seen_links: list[int] = []
    new_links: list[CarParkLink] = []
    for record in records:
        values = _record_values(record)
        link = links.get(record.external_id)
        carpark = link.carpark if link else unlinked.get(record.external_id)
        link_values = _link_values(record, tariffs_by_place.get(record.external_id, []))
        if carpark is None:
            new_records.append((_new_code(connection, record.external_id, taken_codes), record, values))
            continue
        diff = {
            name: value
            for name, value in values.items()
            if not (name in OPTIONAL_FIELDS and value in ("", None)) and getattr(carpark, name) != value
        }
        if carpark.cpms_reference != record.external_id:
            diff["cpms_reference"] = record.external_id
        if diff:
            for name, value in diff.items():
                setattr(carpark, name, value)
            carpark.updated_at = now
            changed_fields.update(diff)
            changed_carparks.append(carpark)
        if link is None:
            new_links.append(
                CarParkLink(
                    connection=connection,
                    carpark=carpark,
                    external_id=record.external_id,
                    last_static_sync_at=now,
                    **link_values,
                )
            )
        else:
            seen_links.append(link.pk)
            link_diff = {name: value for name, value in link_values.items() if getattr(link, name) != value}
            if link_diff:
                for name, value in link_diff.items():
                    setattr(link, name, value)
                changed_links.append(link)
                diff = diff or link_diff
        if diff or link is None:
            updated += 1
            progress.step(updated=1)
        else:
            unchanged += 1
            progress.step()
    created, not_created = _carparks_create(connection, new_records, tariffs_by_place, now, new_links, progress)
    refused.extend(not_created)
    if changed_carparks:
        CarPark.objects.bulk_update(changed_carparks, sorted(changed_fields | {"updated_at"}), batch_size=500)
    if changed_links:
        CarParkLink.objects.bulk_update(changed_links, list(LINK_FIELDS), batch_size=500)
    # One statement stamps every link seen; per-row updates only where something changed.
    CarParkLink.objects.filter(pk__in=seen_links).update(last_static_sync_at=now)
    if new_links:
        CarParkLink.objects.bulk_create(new_links, batch_size=500)
    link_ids = {external_id: link.pk for external_id, link in links.items()}
    link_ids.update({link.external_id: link.pk for link in new_links})
    group_count = _groups_store(connection, records, groups, link_ids)
    seen = {record.external_id for record in records}
    gone = sorted(external_id for external_id in links if external_id not in seen)
    details: dict[str, Any] = {"records": len(records), "tariffs": len(tariffs), "groups": group_count}
    errors = []
    if gone:
        details["missing_from_feed"] = gone[:200]
        text, entry = sync_message("missing_from_feed", count=len(gone), ids=", ".join(gone[:10]))
        errors.append(text)
        details["texts"] = {text: entry}
    return {
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "refused": refused,
        "details": details,
        "errors": errors,
    }


def _groups_store(
    connection: CpmsConnection, records: list[CarParkRecord], groups: list[GroupRecord], link_ids: dict[str, int]
) -> int:
    """Keep the feed's groups (campus, group of sites) as CpmsGroup rows with their member links.

    Members are the group's own list plus every car park naming it as its parent; a parent the feed
    names without describing it is kept as a plain group. Groups no longer in the feed are deleted.
    """
    described = {group.external_id: group for group in groups}
    members: dict[str, set[str]] = {group.external_id: set(group.member_ids) for group in groups}
    for record in records:
        if record.parent_id:
            members.setdefault(record.parent_id, set()).add(record.external_id)
    existing = {group.external_id: group for group in connection.groups.all()}
    kinds = set(CpmsGroup.Kind.values)
    for external_id, member_ids in members.items():
        record = described.get(external_id)
        values = {
            "kind": record.kind if record and record.kind in kinds else CpmsGroup.Kind.GROUP,
            "name": (record.name if record else "")[:200],
            "names": dict(record.names) if record else {},
            "capacity": record.capacity if record else None,
        }
        group = existing.get(external_id)
        if group is None:
            group = CpmsGroup.objects.create(connection=connection, external_id=external_id, **values)
        elif any(getattr(group, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(group, name, value)
            group.save()
        group.links.set(sorted(link_ids[m] for m in member_ids if m in link_ids))
    CpmsGroup.objects.filter(connection=connection).exclude(external_id__in=list(members)).delete()
    return len(members)


WEEKDAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# "Mo", "mon", "Monday" (any case) all name the same day.
_DAY_ALIASES = {
    alias: day for day, name in zip(WEEKDAYS, _DAY_NAMES, strict=True) for alias in (day.lower(), name[:3], name)
}


def opening_hours_summary(rows: Iterable[dict[str, Any]]) -> str:
    """A one-line text of structured opening times, e.g. "Mo–Fr 06:00–22:00; Sa 08:00–20:00" (≤ 200 chars).

    Rows are {"days": [...], "from": "HH:MM", "to": "HH:MM"} (``opens``/``closes`` and ``closed`` understood too);
    a row this does not understand is left out of the text (the link keeps every row).
    """
    parts = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        days = _days_text(row.get("days") or row.get("day") or [])
        if row.get("closed"):
            hours = "closed"
        else:
            opens = _clock(row.get("from") or row.get("opens") or row.get("start"))
            closes = _clock(row.get("to") or row.get("closes") or row.get("end"))
            if not (opens and closes):
                continue
            around_the_clock = opens == closes == "00:00" or (opens, closes) == ("00:00", "24:00")
            hours = "24 hours" if around_the_clock else f"{opens}–{closes}"
        parts.append(f"{days} {hours}".strip())
    text = "; ".join(parts)
    return text if len(text) <= 200 else text[:199] + "…"


def _days_text(days: Any) -> str:
    if isinstance(days, str):
        days = [days]
    named = [_DAY_ALIASES.get(str(day).strip().lower(), str(day).strip()) for day in days]
    indexes = [WEEKDAYS.index(day) for day in named if day in WEEKDAYS]
    if len(indexes) == len(named) == 7:
        return "daily"
    if len(indexes) == len(named) > 2 and indexes == list(range(indexes[0], indexes[0] + len(indexes))):
        return f"{named[0]}–{named[-1]}"
    return ", ".join(named)


def _clock(value: Any) -> str:
    if isinstance(value, time):
        return value.strftime("%H:%M")
    text = str(value or "").strip()
    return text[:5] if len(text) >= 5 and text[2] == ":" else text


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, (datetime, date, time)) else (value or None)


def _jsonable(value: Any) -> Any:
    """Dates and times as ISO strings, tuples as lists: what a JSON field stores."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if hasattr(value, "as_tuple"):  # Decimal
        return float(value)
    return value


def _carparks_create(
    connection: CpmsConnection,
    new_records: list[tuple[str, CarParkRecord, dict[str, Any]]],
    tariffs_by_place: dict[str, list[dict[str, Any]]],
    now: Any,
    new_links: list[CarParkLink],
    progress: SyncProgress | None = None,
) -> tuple[int, list[dict[str, str]]]:
    """Add the car parks the feed has and we do not, each through ``carpark_create`` (which emits
    ``carpark.added`` with source ``cpms_sync`` in this transaction); a place it refuses is reported.

    ``carpark_create`` writes in a savepoint, so a place the database refuses (a value too long for
    its column) is rolled back alone and refused like any other; the rest of the import goes on.
    """
    from carparks.services import CarparkError, carpark_create

    progress = progress or SyncProgress(SyncRun())
    created, refused = 0, []
    for code, record, values in new_records:
        try:
            carpark = carpark_create(
                code=code,
                cpms_reference=record.external_id,
                source="cpms_sync",
                connection_id=connection.pk,
                **{k: v for k, v in values.items() if v not in ("", None)},
            )
        except (CarparkError, ValueError, DatabaseError) as exc:
            refused.append({"id": record.external_id, "reason": f"Not imported: {exc}"[:500]})
            progress.step(failed=1)
            continue
        new_links.append(
            CarParkLink(
                connection=connection,
                carpark=carpark,
                external_id=record.external_id,
                last_static_sync_at=now,
                **_link_values(record, tariffs_by_place.get(record.external_id, [])),
            )
        )
        created += 1
        progress.step(created=1)
    return created, refused


def _new_code(connection: CpmsConnection, external_id: str, taken: set[str]) -> str:
    base = slugify(f"{connection.code}-{external_id}")[:46] or slugify(connection.code)
    code, number = base, 1
    while code in taken:
        number += 1
        code = f"{base}-{number}"
    taken.add(code)
    return code


# --- occupancy ---------------------------------------------------------------------------------
def sync_occupancy(*, connection: CpmsConnection, key: str = "", user: Any = None, final: bool = True) -> SyncRun:
    """Copy how full each linked car park is; places we do not know are refused, not created."""
    run = sync_run_begin(connection=connection, kind=SyncRun.Kind.OCCUPANCY, key=key, user=user)
    if run.status in FINISHED_OK:
        return run
    adapter = _ask(run, final, connection.adapter)
    records: list[OccupancyRecord] = _ask(run, final, adapter.pull_occupancy)
    refused = _refused_of(records)
    groups = list(getattr(records, "groups", ()))
    total = len(records) + len(refused)
    progress = SyncProgress(run).start(len(records), failed=len(refused))
    try:
        return _write(
            run,
            final,
            lambda: _with_refused(_apply_occupancy(connection, records, groups, progress), refused, total),
        )
    finally:
        progress.close()


def _apply_occupancy(
    connection: CpmsConnection,
    records: list[OccupancyRecord],
    groups: list[GroupRecord] = (),
    progress: SyncProgress | None = None,
) -> dict[str, Any]:
    progress = progress or SyncProgress(SyncRun())
    now = timezone.now()
    links = {link.external_id: link for link in connection.links.select_related("carpark")}
    changed_carparks: list[CarPark] = []
    seen_carparks: list[int] = []
    link_groups: dict[tuple[str, Any], list[int]] = {}
    forecast_changed: list[CarParkLink] = []
    updated = unchanged = 0
    refused: list[dict[str, str]] = []
    for record in records:
        link = links.get(record.external_id)
        if link is None:
            refused.append(
                {"id": record.external_id, "reason": "Not linked to a car park here; run the car-park import first."}
            )
            progress.step(failed=1)
            continue
        carpark = link.carpark
        occupied = _occupied(record, carpark)
        status = record.status[:30]
        forecast = _jsonable(list(record.forecast))
        new_forecast = forecast != link.forecast
        if new_forecast:
            # Expected rows are kept apart and replaced as a whole: they never become the current occupancy.
            link.forecast = forecast
            forecast_changed.append(link)
        if occupied is None:
            # No count (a site reported closed, a lot without live data): the last occupancy stays, the status changes.
            observed = link.occupancy_observed_at
        else:
            seen_carparks.append(carpark.pk)
            observed = record.observed_at or now
        if (occupied is None or carpark.occupancy == occupied) and link.cpms_status == status and not new_forecast:
            unchanged += 1
            progress.step()
        else:
            updated += 1
            progress.step(updated=1)
        if occupied is not None and carpark.occupancy != occupied:
            carpark.occupancy = occupied
            changed_carparks.append(carpark)
        if (link.cpms_status, link.occupancy_observed_at) != (status, observed):
            link_groups.setdefault((status, observed), []).append(link.pk)
    # Feeds stamp a whole document at once, so links fall into few (status, time) groups:
    # a handful of UPDATE statements instead of one per car park.
    CarPark.objects.bulk_update(changed_carparks, ["occupancy"], batch_size=1000)
    CarPark.objects.filter(pk__in=seen_carparks).update(occupancy_updated_at=now)
    if len(link_groups) <= 50:
        for (status, observed), pks in link_groups.items():
            CarParkLink.objects.filter(pk__in=pks).update(cpms_status=status, occupancy_observed_at=observed)
    else:
        by_pk = {pk: key for key, pks in link_groups.items() for pk in pks}
        changed = [link for link in links.values() if link.pk in by_pk]
        for link in changed:
            link.cpms_status, link.occupancy_observed_at = by_pk[link.pk]
        CarParkLink.objects.bulk_update(changed, ["cpms_status", "occupancy_observed_at"], batch_size=1000)
    if forecast_changed:
        CarParkLink.objects.bulk_update(forecast_changed, ["forecast"], batch_size=1000)
    details: dict[str, Any] = {"records": len(records)}
    if groups:
        details["groups"] = _group_occupancy_store(connection, groups)
    return {"updated": updated, "unchanged": unchanged, "refused": refused, "details": details}


def _group_occupancy_store(connection: CpmsConnection, groups: list[GroupRecord]) -> int:
    """A group's own occupancy and status, when the feed gives them; groups not imported yet are skipped."""
    stored = {group.external_id: group for group in connection.groups.all()}
    changed = []
    for record in groups:
        group = stored.get(record.external_id)
        if group is None:
            continue
        occupancy = group.occupancy if record.occupied is None else max(record.occupied, 0)
        if (group.occupancy, group.status) != (occupancy, record.status):
            group.occupancy, group.status = occupancy, record.status[:30]
            changed.append(group)
    CpmsGroup.objects.bulk_update(changed, ["occupancy", "status"])
    return sum(1 for record in groups if record.external_id in stored)


def _occupied(record: OccupancyRecord, carpark: CarPark) -> int | None:
    """Occupied spaces from a count, from vacant spaces, or from a percentage of the car park's capacity."""
    if record.occupied is not None:
        return max(record.occupied, 0)
    capacity = record.capacity if record.capacity is not None else carpark.capacity
    if record.vacant is not None and capacity:
        return max(capacity - record.vacant, 0)
    if record.percent is not None:
        capacity = carpark.capacity or record.capacity
        if capacity:
            return max(math.floor(capacity * record.percent / 100 + 0.5), 0)
    return None


# --- credentials -------------------------------------------------------------------------------
def sync_runs_prune(*, now: Any = None) -> int:
    """Delete successful occupancy and test runs older than the retention; failures and incidents stay.

    A partly succeeded run below the refusal threshold is routine too (a feed with one lasting bad record
    would otherwise keep every five-minute run forever); one that raised an incident stays.
    """
    cutoff = (now or timezone.now()) - ROUTINE_RUN_RETENTION
    deleted, _ = SyncRun.objects.filter(
        kind__in=[SyncRun.Kind.OCCUPANCY, SyncRun.Kind.TEST],
        status__in=FINISHED_OK,
        incident=False,
        started_at__lt=cutoff,
    ).delete()
    return deleted


def right_id_for(credential: Credential) -> str:
    """The assigned right's id in the CPMS: stable, so a re-push updates instead of duplicating."""
    return f"phq-credential-{credential.pk}"


def credential_validity(credential: Credential) -> tuple[date, date | None]:
    """The days the credential opens the barrier: from its first day until its own end or, when earlier,
    the contract's end (given notice, the contract ends before the credential row says so)."""
    until = credential.valid_until
    end = credential.contract.end_date
    if end is not None and (until is None or end < until):
        until = end
    return credential.valid_from, until


def credential_entry(credential: Credential, link: CarParkLink) -> CredentialEntry:
    """The assigned right as the CPMS gets it: the CPMS enforces the validity, so both ends are sent.

    It refers to the RightSpecification the contract's product is mapped to on the connection's
    mapping page; without a mapping the id stays empty and the push resolves it (:func:`_specs_resolve`).
    """
    valid_from, valid_until = credential_validity(credential)
    mapping = right_mapping_for(link.connection_id, credential.contract.product_id)
    return CredentialEntry(
        right_id=right_id_for(credential),
        place_id=link.external_id,
        kind=credential.kind,
        identifier=credential.identifier,
        valid_from=valid_from,
        valid_until=valid_until,
        right_specification_id=mapping.right_specification_id if mapping else "",
        right_specification_version=mapping.right_specification_version if mapping else 1,
    )


def right_mapping_for(connection_id: int, product_id: int) -> ProductRightMapping | None:
    return ProductRightMapping.objects.filter(connection_id=connection_id, product_id=product_id).first()


def _specs_resolve(adapter: Any, contract: Contract, link: CarParkLink, entries: list[CredentialEntry]) -> list[Any]:
    """Entries without a mapped RightSpecification get the place's only published one; with none or
    several the push fails and says which product to map (we never invent an id)."""
    if all(entry.right_specification_id for entry in entries):
        return entries
    product = contract.product
    hint = (
        f"Map product “{product.name}” ({product.carpark.code}) to a RightSpecification on the connection's "
        "mapping page"
    )
    try:
        specs = adapter.list_right_specifications(place_id=link.external_id)
    except CpmsNotSupported as exc:
        raise CpmsNotSupported(f"{exc} Credentials of “{product.name}” cannot refer to a RightSpecification.") from None
    if len(specs) != 1:
        published = ", ".join(spec.id for spec in specs[:10]) or "none"
        raise CpmsRejected(
            f"{hint}: the CPMS publishes {len(specs)} RightSpecifications for place {link.external_id} ({published})."
        )
    spec = specs[0]
    return [
        entry
        if entry.right_specification_id
        else replace(entry, right_specification_id=spec.id, right_specification_version=spec.version)
        for entry in entries
    ]


def whitelisted_credentials(*, carparks: Iterable[CarPark] | None = None) -> Any:
    """Credentials the CPMS whitelist should hold: active rows of active contracts whose validity has
    not ended (neither the credential's nor the contract's).

    A future-dated credential (a contract or a plate change starting later) is included: it is sent
    with its first day, so it opens the barrier on that day without another push. An expired one is
    not, so a push revokes it and reconciliation reports it as extra in the CPMS.
    """
    today = timezone.localdate()
    queryset = Credential.objects.filter(is_active=True, contract__state=Contract.State.ACTIVE)
    queryset = queryset.filter(Q(valid_until__isnull=True) | Q(valid_until__gte=today))
    queryset = queryset.filter(Q(contract__end_date__isnull=True) | Q(contract__end_date__gte=today))
    if carparks is not None:
        queryset = queryset.filter(carpark__in=list(carparks))
    return queryset.select_related("contract")


def _link_for(carpark: CarPark) -> CarParkLink:
    try:
        return CarParkLink.objects.select_related("connection").get(carpark=carpark)
    except CarParkLink.DoesNotExist:
        raise CarParkNotLinked(f"car park {carpark} is not connected to a CPMS") from None


def credentials_push(*, contract: Contract, key: str = "", user: Any = None, final: bool = True) -> SyncRun:
    """Make the CPMS whitelist match this contract: push its valid credentials, revoke the rest.

    Idempotent: every credential is an assigned right with a stable id written with PUT, so
    pushing twice leaves one entry, and revoking an absent right counts as done. Credentials the
    contract left behind at another connected car park (a product change) are revoked there.
    """
    carpark = contract.carpark
    earlier = CarPark.objects.filter(
        credentials__contract=contract, credentials__cpms_synced_at__isnull=False, cpms_link__isnull=False
    ).exclude(pk=carpark.pk)
    for other in earlier.distinct().order_by("pk"):
        _push_at(contract, other, key=f"{key}:{other.pk}" if key else "", user=user, final=final)
    return _push_at(contract, carpark, key=key, user=user, final=final)


def _push_at(contract: Contract, carpark: CarPark, *, key: str, user: Any, final: bool) -> SyncRun:
    link = _link_for(carpark)
    run = sync_run_begin(connection=link.connection, kind=SyncRun.Kind.PUSH, key=key, carpark=carpark, user=user)
    if run.status == SyncRun.Status.SUCCEEDED:
        return run
    credentials = list(contract.credentials.filter(carpark=carpark).order_by("pk"))
    valid_ids = set(whitelisted_credentials(carparks=[carpark]).filter(contract=contract).values_list("pk", flat=True))
    adapter = _ask(run, final, link.connection.adapter)
    if not adapter.supports_push:
        sync_run_failed(run=run, error=CpmsNotSupported(f"{adapter.label} cannot receive credentials"), final=True)
        raise CpmsNotSupported(f"{adapter.label} cannot receive credentials")
    outcomes: list[tuple[Credential, str]] = []
    progress = SyncProgress(run)

    def push_all() -> None:
        entries = _specs_resolve(
            adapter, contract, link, [credential_entry(c, link) for c in credentials if c.pk in valid_ids]
        )
        by_right = {entry.right_id: entry for entry in entries}
        progress.start(len(credentials))
        for credential in credentials:
            if credential.pk in valid_ids:
                outcome = adapter.push_credential(by_right[right_id_for(credential)]).outcome
            else:
                outcome = adapter.revoke_credential(right_id_for(credential)).outcome
            outcomes.append((credential, outcome))
            progress.step(created=outcome == "created", updated=outcome in ("updated", "deleted"))

    try:
        _ask(run, final, push_all)
    finally:
        progress.close()
    with transaction.atomic():
        pushed = [credential.pk for credential, outcome in outcomes if outcome in ("created", "updated")]
        Credential.objects.filter(pk__in=pushed).update(cpms_synced_at=timezone.now())
        # Already held as sent: in the whitelist, since whenever it was first pushed.
        Credential.objects.filter(
            pk__in=[c.pk for c, o in outcomes if o == "unchanged"], cpms_synced_at__isnull=True
        ).update(cpms_synced_at=timezone.now())
        # cpms_synced_at means "in the CPMS whitelist since": a revoked credential is no longer there.
        Credential.objects.filter(pk__in=[c.pk for c, o in outcomes if o in ("deleted", "absent")]).update(
            cpms_synced_at=None
        )
        return _run_succeeded(
            run,
            created=sum(1 for _, outcome in outcomes if outcome == "created"),
            updated=sum(1 for _, outcome in outcomes if outcome in ("updated", "deleted")),
            unchanged=sum(1 for _, outcome in outcomes if outcome in ("absent", "unchanged")),
            details={
                "contract_id": contract.pk,
                "credentials": [
                    {"id": c.pk, "identifier": c.identifier, "kind": c.kind, "outcome": outcome}
                    for c, outcome in outcomes
                ],
            },
        )


def credentials_revoke(*, contract: Contract, key: str = "", user: Any = None, final: bool = True) -> SyncRun:
    """Remove every credential of the contract from the CPMS whitelist (termination)."""
    carpark = contract.carpark
    link = _link_for(carpark)
    run = sync_run_begin(connection=link.connection, kind=SyncRun.Kind.REVOKE, key=key, carpark=carpark, user=user)
    if run.status == SyncRun.Status.SUCCEEDED:
        return run
    credentials = list(contract.credentials.filter(carpark=carpark).order_by("pk"))
    adapter = _ask(run, final, link.connection.adapter)
    outcomes: list[tuple[Credential, str]] = []
    progress = SyncProgress(run)

    def revoke_all() -> None:
        progress.start(len(credentials))
        for credential in credentials:
            outcome = adapter.revoke_credential(right_id_for(credential)).outcome
            outcomes.append((credential, outcome))
            progress.step(updated=outcome == "deleted")

    try:
        _ask(run, final, revoke_all)
    finally:
        progress.close()
    with transaction.atomic():
        Credential.objects.filter(pk__in=[c.pk for c, _ in outcomes]).update(cpms_synced_at=None)
        return _run_succeeded(
            run,
            updated=sum(1 for _, outcome in outcomes if outcome == "deleted"),
            unchanged=sum(1 for _, outcome in outcomes if outcome == "absent"),
            details={
                "contract_id": contract.pk,
                "credentials": [
                    {"id": c.pk, "identifier": c.identifier, "kind": c.kind, "outcome": outcome}
                    for c, outcome in outcomes
                ],
            },
        )


# --- RightSpecification mappings (the connection's mapping page) --------------------------------
def right_specifications_published(*, connection: CpmsConnection) -> tuple[list[Any], str]:
    """The RightSpecifications the CPMS publishes now, read live, or a message why none can be chosen."""
    try:
        adapter = connection.adapter()
        if not adapter.supports_push or not hasattr(adapter, "list_right_specifications"):
            return [], f"{adapter.label} connections do not receive credentials, so there is nothing to map."
        specs = adapter.list_right_specifications()
    except CpmsNotSupported as exc:
        return [], f"{exc} Without published RightSpecifications no product can be mapped."
    except CpmsError as exc:
        return [], f"The CPMS's RightSpecifications could not be read: {exc}"
    return specs, ""


@transaction.atomic
def right_mappings_save(*, connection: CpmsConnection, chosen: dict[Any, Any], user: Any = None) -> int:
    """Store which published RightSpecification each product's credentials refer to (None: unmapped).

    Audited as ``connect.right_mappings_changed`` with each changed product's old and new reference.
    Returns how many products changed.
    """
    from accounts.services import audit_record

    existing = {mapping.product_id: mapping for mapping in connection.right_mappings.select_for_update()}
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for product, spec in chosen.items():
        mapping = existing.get(product.pk)
        before = _mapping_text(mapping.right_specification_id, mapping.right_specification_version) if mapping else None
        after = _mapping_text(spec.id, spec.version) if spec else None
        if spec is None and mapping is not None:
            mapping.delete()
        elif spec is not None:
            ProductRightMapping.objects.update_or_create(
                connection=connection,
                product=product,
                defaults={
                    "right_specification_id": spec.id,
                    "right_specification_version": spec.version,
                    "right_specification_name": spec.name[:200],
                },
            )
        if before != after:
            label = f"{product.name} ({product.carpark.code}) #{product.pk}"
            old[label], new[label] = before, after
    if new:
        audit_record(actor=user, action="connect.right_mappings_changed", target=connection, old=old, new=new)
        logger.info("RightSpecification mappings of %s changed: %s", connection.code, new)
    return len(new)


def _mapping_text(spec_id: str, version: int) -> str:
    return f"{spec_id} v{version}"


# --- reconciliation ------------------------------------------------------------------------------
def reconcile(
    *,
    connection: CpmsConnection,
    carparks: Iterable[CarPark] | None = None,
    key: str = "",
    user: Any = None,
    final: bool = True,
    start_review: bool = True,
) -> SyncRun:
    """Compare the CPMS whitelist with our valid credentials, car park by car park.

    Missing = valid here but not in the CPMS; extra = in the CPMS but not valid here. When a
    car park differs, ``cpms.reconciliation_differs`` is emitted for it (with ``start_review``); the
    workflow bound to it asks its manager to look.
    """
    run = sync_run_begin(connection=connection, kind=SyncRun.Kind.RECONCILE, key=key, user=user)
    if run.status == SyncRun.Status.SUCCEEDED:
        return run
    links = list(connection.links.select_related("carpark").order_by("external_id"))
    if carparks is not None:
        wanted = {carpark.pk for carpark in carparks}
        links = [link for link in links if link.carpark_id in wanted]
    adapter = _ask(run, final, connection.adapter)
    remote: dict[int, list[CredentialEntry]] = {}
    progress = SyncProgress(run)

    def read_all() -> None:
        # One request per car park: the part of a reconciliation that takes time.
        progress.start(len(links))
        for link in links:
            remote[link.carpark_id] = adapter.list_credentials(link.external_id)
            progress.step()

    try:
        _ask(run, final, read_all)
    finally:
        progress.close()
    local: dict[int, list[Credential]] = {}
    for credential in whitelisted_credentials(carparks=[link.carpark for link in links]).order_by("identifier"):
        local.setdefault(credential.carpark_id, []).append(credential)
    differences = []
    for link in links:
        # Compared in canonical form (plates per the car park's country, RFID UIDs in hex or decimal,
        # kinds as APDS names them); the differences show each side's own spelling.
        our_rows, their_rows = local.get(link.carpark_id, []), remote.get(link.carpark_id, [])
        our_keys, their_keys = comparison_keys(
            [(c.kind, c.identifier) for c in our_rows],
            [(e.kind, e.identifier) for e in their_rows],
            country=link.carpark.country,
        )
        ours, theirs = dict(zip(our_keys, our_rows, strict=True)), dict(zip(their_keys, their_rows, strict=True))
        missing = [
            {"kind": ours[key].kind, "identifier": ours[key].identifier, "credential_id": ours[key].pk}
            for key in sorted(ours.keys() - theirs.keys())
        ]
        extra = [
            {"kind": theirs[key].kind, "identifier": theirs[key].identifier, "right_id": theirs[key].right_id}
            for key in sorted(theirs.keys() - ours.keys())
        ]
        if missing or extra:
            differences.append(
                {
                    "carpark_id": link.carpark_id,
                    "carpark": link.carpark.name,
                    "code": link.carpark.code,
                    "missing": missing,
                    "extra": extra,
                }
            )
    with transaction.atomic():
        run = _run_succeeded(
            run,
            unchanged=len(links) - len(differences),
            failed=len(differences),
            details={
                "carparks_compared": len(links),
                "differences": differences,
                "missing": sum(len(d["missing"]) for d in differences),
                "extra": sum(len(d["extra"]) for d in differences),
            },
        )
    if differences and start_review:
        _differences_emit(run, differences)
    return run


def _review_running(carpark: CarPark) -> bool:
    """Whether a process an earlier ``cpms.reconciliation_differs`` of this car park started still runs."""
    from django.contrib.contenttypes.models import ContentType

    from workflows.models import BusinessEvent, Process

    return BusinessEvent.objects.filter(
        name=RECONCILIATION_DIFFERS,
        content_type=ContentType.objects.get_for_model(CarPark),
        object_id=carpark.pk,
        process__state__in=[Process.State.RUNNING, Process.State.SUSPENDED],
    ).exists()


def _differences_emit(run: SyncRun, differences: list[dict[str, Any]]) -> None:
    """Emit ``cpms.reconciliation_differs`` per car park that differs (once per run and car park).

    Not while the review an earlier difference of the car park started is still open. The run records
    the processes started and, for every car park without one, why.
    """
    from workflows.models import BusinessEvent
    from workflows.starting import event_emit

    started, problems = [], []
    carparks = CarPark.objects.in_bulk([d["carpark_id"] for d in differences])
    for difference in differences:
        carpark = carparks[difference["carpark_id"]]
        if _review_running(carpark):
            problems.append(sync_message("review_open", carpark=str(carpark)))
            continue
        event = event_emit(
            name=RECONCILIATION_DIFFERS,
            payload={
                "sync_run_id": run.pk,
                "connection_id": run.connection_id,
                "carpark_id": carpark.pk,
                "missing": difference["missing"],
                "extra": difference["extra"],
                "missing_count": len(difference["missing"]),
                "extra_count": len(difference["extra"]),
            },
            business_object=carpark,
            event_id=f"{RECONCILIATION_DIFFERS}:{run.pk}:{carpark.pk}",
        )
        if event.state == BusinessEvent.State.STARTED:
            started.append(event.process_id)
        elif event.state == BusinessEvent.State.UNMATCHED:
            problems.append(sync_message("review_unmatched", carpark=str(carpark), event=event.name))
        else:
            problems.append(sync_message("review_failed", carpark=str(carpark), error=event.error))
    run.details = {**run.details, "review_processes": started}
    run.errors = [*run.errors, *(text for text, _entry in problems)]
    _texts_keep(run, dict(problems))
    run.save(update_fields=["details", "errors"])
