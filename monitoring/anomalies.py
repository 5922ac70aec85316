"""Anomaly detection on daily series: a robust z-score against a trailing baseline.

The baseline is the previous 28 days. Its centre is the median and its spread the median absolute
deviation (MAD) scaled by 1.4826, so that it estimates the standard deviation of normal data while
one bad day in the baseline cannot move it. ``z = (value − median) / spread``; |z| above the
threshold (3.5 by default, the usual cut-off for the modified z-score) is an anomaly.

When most baseline days are equal the MAD is 0; the spread then falls back to the mean absolute
deviation (× 1.2533) and never goes below ``min_spread`` (1 for counts), so a flat series of zeros
followed by a single event is not a "spike of infinite size".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

BASELINE_DAYS = 28
DEFAULT_THRESHOLD = 3.5
MIN_BASELINE_DAYS = 21


@dataclass(frozen=True)
class Anomaly:
    value: float
    median: float
    spread: float
    z: float
    threshold: float

    @property
    def direction(self) -> str:
        return "above" if self.z > 0 else "below"


def robust_z(value: float, baseline: Sequence[float], *, min_spread: float = 1.0) -> tuple[float, float, float]:
    """(z, median, spread) of ``value`` against ``baseline``."""
    centre = median(baseline)
    deviations = [abs(x - centre) for x in baseline]
    spread = 1.4826 * median(deviations)
    if spread == 0:
        spread = 1.2533 * (sum(deviations) / len(deviations))
    spread = max(spread, min_spread)
    return (value - centre) / spread, centre, spread


def detect(
    value: float,
    baseline: Sequence[float],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_spread: float = 1.0,
    min_days: int = MIN_BASELINE_DAYS,
) -> Anomaly | None:
    """The anomaly ``value`` is against ``baseline``, or None when it is normal (or the baseline too short)."""
    if len(baseline) < min_days:
        return None
    z, centre, spread = robust_z(value, baseline, min_spread=min_spread)
    if abs(z) <= threshold:
        return None
    return Anomaly(value=value, median=centre, spread=spread, z=z, threshold=threshold)


def scan(series: Sequence[float], **kwargs: float) -> list[int]:
    """Indexes of the series whose value is an anomaly against the ``BASELINE_DAYS`` before it."""
    found = []
    for index in range(len(series)):
        baseline = series[max(0, index - BASELINE_DAYS) : index]
        if detect(series[index], baseline, **kwargs) is not None:  # type: ignore[arg-type]
            found.append(index)
    return found


def explain(anomaly: Anomaly, *, what: str, when: str, unit: str = "") -> str:
    """One sentence a person understands: what, how much, against what, and why it counts."""
    suffix = f" {unit}" if unit else ""
    return (
        f"{what} on {when} was {_fmt(anomaly.value)}{suffix}, {anomaly.direction} the usual "
        f"{_fmt(anomaly.median)}{suffix} (median of the previous {BASELINE_DAYS} days, typical spread "
        f"±{_fmt(anomaly.spread)}{suffix}): a robust z-score of {anomaly.z:+.1f}, beyond the threshold of "
        f"±{anomaly.threshold:g}."
    )


def _fmt(number: float) -> str:
    return f"{number:,.0f}" if abs(number) >= 100 or float(number).is_integer() else f"{number:,.1f}"
