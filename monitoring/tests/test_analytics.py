"""Daily aggregation and process analytics against history written by the engine."""

from __future__ import annotations

from datetime import date
from statistics import median

import pytest
import time_machine

from monitoring import selectors
from monitoring.aggregation import aggregate_day, aggregate_pending, summed
from monitoring.models import AggregatedDay, DailyStepStat, DailyWorkflowStat
from workflows.models import ProcessEvent

from .conftest import at

pytestmark = pytest.mark.django_db


def build_history(story, carparks):
    """Two days: normal runs, one with rework, one that escalates and stays open, one rejected."""
    a, b = carparks
    story.full(at("2026-03-02", 9), a, wait=10, work=20)
    story.full(at("2026-03-02", 10), b, wait=30, work=50)
    story.full(at("2026-03-02", 11), a, wait=5, work=15, rework=True)
    rejected = story.start(at("2026-03-03", 8), b)
    story.claim(rejected, at("2026-03-03", 8, 45))
    story.complete(rejected, at("2026-03-03", 9, 15), "reject")
    late = story.start(at("2026-03-03", 9), a)
    story.tick(at("2026-03-03", 12, 5))  # due 11:00 + 1 h → escalated to the supervisor
    return late


def history_figures(version, day_from, day_to):
    """Per step, straight from ProcessEvent: entries and mean duration of the step_left events."""
    from monitoring.aggregation import day_bounds

    start, _ = day_bounds(day_from)
    _, end = day_bounds(day_to)
    events = ProcessEvent.objects.filter(process__version=version, at__gte=start, at__lt=end)
    figures = {}
    for step in [s["id"] for s in version.spec["steps"]]:
        entered = events.filter(kind="step_entered", step_id=step).count()
        durations = list(events.filter(kind="step_left", step_id=step).values_list("duration_ms", flat=True))
        figures[step] = {"entered": entered, "avg_ms": round(sum(durations) / len(durations)) if durations else None}
    return figures


def test_it_puts_history_figures_on_every_bpmn_element(story, carparks, version):
    build_history(story, carparks)
    with time_machine.travel(at("2026-03-04", 10), tick=False):
        data = selectors.heatmap(version, date(2026, 3, 2), date(2026, 3, 3))
    expected = history_figures(version, date(2026, 3, 2), date(2026, 3, 3))
    got = {step: {"entered": e["entered"], "avg_ms": e["avg_ms"]} for step, e in data["elements"].items()}
    assert got == expected
    # The story itself: review entered 3 + 1 (rework) + 2 = 6 times; check 3 times; the 20/50/15+15 min work.
    assert data["elements"]["review"]["entered"] == 6
    assert data["elements"]["check"]["entered"] == 3
    assert data["elements"]["done"]["entered"] == 3
    assert data["elements"]["rejected"]["entered"] == 1


def test_stored_days_give_the_same_figures_as_the_live_history(story, carparks, version):
    build_history(story, carparks)
    with time_machine.travel(at("2026-03-04", 10), tick=False):
        live = summed(("day", "step_id", "carpark_id"), date(2026, 3, 2), date(2026, 3, 3))
        live_totals = summed(("day", "definition_id"), date(2026, 3, 2), date(2026, 3, 3))
        assert aggregate_day(date(2026, 3, 2)) > 0
        assert aggregate_day(date(2026, 3, 3)) > 0
        rows_once = sorted(DailyStepStat.objects.values_list("day", "step_id", "carpark_id", "entered", "left"))
        aggregate_day(date(2026, 3, 2))  # idempotent: the day is replaced, not added twice
        rows_twice = sorted(DailyStepStat.objects.values_list("day", "step_id", "carpark_id", "entered", "left"))
        stored = summed(("day", "step_id", "carpark_id"), date(2026, 3, 2), date(2026, 3, 3))
        stored_totals = summed(("day", "definition_id"), date(2026, 3, 2), date(2026, 3, 3))
    assert rows_once == rows_twice
    assert stored_totals == live_totals  # the per-workflow roll-up holds the same sums
    assert DailyWorkflowStat.objects.filter(day=date(2026, 3, 2)).count() == 2  # one per car park
    assert AggregatedDay.objects.count() == 2
    assert stored == live


def test_the_beat_job_fills_missing_days_once(story, carparks):
    build_history(story, carparks)
    with time_machine.travel(at("2026-03-05", 1), tick=False):
        done = aggregate_pending(lookback_days=1)
    assert date(2026, 3, 2) in done and date(2026, 3, 3) in done
    assert set(AggregatedDay.objects.values_list("day", flat=True)) >= {date(2026, 3, 2), date(2026, 3, 3)}


def test_step_analytics_report_percentiles_waiting_working_rework_and_escalation(story, carparks, version):
    build_history(story, carparks)
    with time_machine.travel(at("2026-03-04", 10), tick=False):
        rows = {r["step"]: r for r in selectors.step_analytics([version], date(2026, 3, 2), date(2026, 3, 3))}
        summary = selectors.process_summary([version], date(2026, 3, 2), date(2026, 3, 3))
    review = rows["review"]
    durations = sorted(
        ProcessEvent.objects.filter(kind="step_left", step_id="review").values_list("duration_ms", flat=True)
    )
    assert review["p50_ms"] == pytest.approx(median(durations))
    assert review["max_ms"] == max(durations)
    # Review tasks completed: 30, 80, 20, 20 (rework), 75 min after creation; waits 10, 30, 5, 5, 45 min.
    assert review["tasks_completed"] == 5
    assert review["wait_avg_ms"] == pytest.approx((10 + 30 + 5 + 5 + 45) / 5 * 60_000)
    assert review["work_avg_ms"] == pytest.approx((20 + 50 + 15 + 15 + 30) / 5 * 60_000)
    assert review["reentered"] == 1
    assert review["escalations"] == 1
    assert review["escalation_rate"] == pytest.approx(100 * 1 / 6, abs=0.1)
    assert summary["reworked_processes"] == 1
    assert summary["started"] == 5 and summary["completed"] == 4


def test_stored_sums_are_cached_until_a_day_is_aggregated(
    story, carparks, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("monitoring.aggregation.STORED_CACHE_SECONDS", 60)
    story.full(at("2026-03-02", 9), carparks[0])
    with time_machine.travel(at("2026-03-05", 10), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            aggregate_day(date(2026, 3, 2))
        first = summed(("definition_id",), date(2026, 3, 2), date(2026, 3, 3))
        assert next(iter(first.values()))["started"] == 1
        story.full(at("2026-03-03", 9), carparks[1])
        # 3 March is not stored: it is computed live, so the new process counts at once.
        assert next(iter(summed(("definition_id",), date(2026, 3, 2), date(2026, 3, 3)).values()))["started"] == 2
        story.full(at("2026-03-02", 15), carparks[1])  # a late event for a stored day ...
        assert next(iter(summed(("definition_id",), date(2026, 3, 2), date(2026, 3, 3)).values()))["started"] == 2
        with django_capture_on_commit_callbacks(execute=True):
            aggregate_day(date(2026, 3, 2))  # ... shows once the day is aggregated again
        assert next(iter(summed(("definition_id",), date(2026, 3, 2), date(2026, 3, 3)).values()))["started"] == 3
