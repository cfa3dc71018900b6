"""A value in its predicted band: where an actual number falls among predicted ones, and how it reads.

The vocabulary every comparison of an actual run with a prediction speaks
(:mod:`cycleplan.workflows.comparison`, :mod:`cycleplan.workflows.verdict`, the reports): the run-level
quantities compared and their units (:data:`LABELS`), a value placed in its band (:class:`Placement`: its
percentile, its split-normal score and whether it is inside), a task's placements (:class:`TaskComparison`), a
detail ranked by its distance (:class:`Deviation`), and how values and positions read in words (:func:`show`,
:func:`position`).

Percentiles of the actual are the share of replications at or below it (mid-rank for ties), 0-100. A
task keeps no samples, only P10/P50/P90, so its percentile is read off a split normal through those
three (exact at P10, P50 and P90). Distances from the band are ranked by the same split-normal score for
every quantity: (actual - P50) over (P90 - P50) / z(0.9) above the median, over (P50 - P10) / z(0.9)
below it, so a score of +-1.28 sits on the band's edge. This module computes nothing from runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from pydantic import Field

from cycleplan.core.model import Z90, Frozen
from cycleplan.sim.prediction import Percentiles

HEADLINE = ("makespan_min", "speedup", "tokens_total", "cost_usd", "utilization")
"""The run's numbers placed in the predicted distribution, in the order they are shown."""

LABELS = {
    "makespan_min": ("makespan", "min"),
    "speedup": ("speedup", "x"),
    "tokens_total": ("tokens", "tokens"),
    "cost_usd": ("cost", "usd"),
    "utilization": ("utilization", "share"),
    "sequential_min": ("sequential baseline", "min"),
    "failed_cycles": ("failed attempts", "count"),
    "input_tokens": ("uncached input tokens", "tokens"),
    "cache_write_tokens": ("cache writes", "tokens"),
    "cache_read_tokens": ("cache reads", "tokens"),
    "output_tokens": ("output tokens", "tokens"),
}
"""Each run-level quantity's name in words and its unit."""

TOKEN_KINDS = ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens")


FLOOR = {"min": 0.1, "x": 0.01, "tokens": 10.0, "usd": 1e-4, "share": 0.01, "count": 0.5}
"""The smallest spread a band is given, in its unit, so that a band of zero width (a fixed model, a task
that always starts at 0) does not turn a small difference into a large one. A band is also never
narrower than 1% of its median, and :func:`compare` gives minutes at least 1% of the predicted median
makespan (the executor's own overhead is of that order)."""


INSIDE = (10.0, 90.0)
"""A value is inside its band when its percentile is from P10 to P90, both included: the one definition
the text, the JSON and the report use."""


class Placement(Frozen):
    """Where one actual number falls in its predicted distribution."""

    actual: float
    p10: float
    p50: float
    p90: float
    percentile: float = Field(
        description="Share of replications at or below the actual (mid-rank for ties), 0-100; read off a "
        "split normal through P10, P50 and P90 for tasks, and for bands narrower than their unit's "
        "smallest spread (a fixed model), widened to it first so that an executor's overhead is no miss."
    )
    score: float = Field(
        description="Signed distance from P50 in split-normal units: +-1.28 is the edge of the P10-P90 band."
    )
    inside: bool | None = Field(
        description="The percentile is from 10 to 90, both included; None when the quantity is not judged "
        "(the run did not finish, or did not record it)."
    )
    recorded: bool = Field(default=True, description="False: the run did not record this quantity.")
    mean: float | None = Field(default=None, description="The predicted mean, where samples are kept.")

    @property
    def outside(self) -> bool:
        """Judged and outside its band."""
        return self.inside is False

    def unjudged(self, recorded: bool = True) -> Placement:
        """The same placement, not judged (``recorded``: whether the run recorded it at all)."""
        return self.model_copy(update={"inside": None, "recorded": recorded})


def is_inside(percentile: float) -> bool:
    """:data:`INSIDE`: from P10 to P90, both included."""
    return INSIDE[0] <= percentile <= INSIDE[1]


class TaskComparison(Frozen):
    """One task: predicted P10/P50/P90 start, finish and duration against the actual (minutes since the
    run's start; start is when its first cycle began, after any wait before it)."""

    task: str
    role: str
    lane: str = Field(description="The lane the plan puts it on.")
    actual_lane: str | None
    status: str = Field(
        description="complete, failed, cancelled, partly run (started, not ended), or not run."
    )
    ran_share: float = Field(description="Share of replications in which the task worked.")
    start: Placement | None
    finish: Placement | None
    duration: Placement | None

    @property
    def outside(self) -> dict[str, bool]:
        """Per placed quantity (start, finish, duration): whether it is outside its band."""
        return {
            part: placement.outside
            for part in ("start", "finish", "duration")
            if (placement := getattr(self, part)) is not None
        }


class Deviation(Frozen):
    """One detail held against its band, for ranking the sources of error."""

    what: str = Field(description="e.g. task.frontend.duration, tokens_by_role.backend, waits_min.sync.")
    subject: str = Field(description="Who or what, in words (a task, a role, a kind of wait).")
    unit: str
    placement: Placement


FloatArray = npt.NDArray[np.float64]


def percentile_of(samples: Sequence[float] | FloatArray, actual: float) -> float:
    """The share of ``samples`` at or below ``actual``, counting ties half (mid-rank), in percent."""
    from scipy.stats import percentileofscore

    data = np.asarray(samples, dtype=float)
    if data.size == 0:
        raise ValueError("no samples to place the actual in")
    return float(percentileofscore(data, actual, kind="mean"))


def crps(samples: Sequence[float] | FloatArray, actual: float) -> float:
    """The continuous ranked probability score of the empirical distribution of ``samples`` against
    ``actual``: E|X - y| - E|X - X'| / 2, in the samples' unit (0 is perfect; lower is better).

    E|X - X'| over all ordered pairs is 2/n^2 * sum((2i - n - 1) x_(i)) on the sorted samples, so the
    whole score costs one sort."""
    ordered = np.sort(np.asarray(samples, dtype=float))
    count = ordered.size
    if count == 0:
        raise ValueError("no samples to score")
    spread = float(np.abs(ordered - actual).mean())
    weights = 2.0 * np.arange(1, count + 1) - count - 1
    pairs = 2.0 * float(np.dot(weights, ordered)) / count**2
    return spread - 0.5 * pairs


def _score(actual: float, p10: float, p50: float, p90: float, floor: float) -> float:
    """Split-normal distance of ``actual`` from P50 (see the module docstring); ``floor`` is the
    smallest spread the band is given."""
    half = (p90 - p50) if actual >= p50 else (p50 - p10)
    spread = max(half / Z90, abs(p50) * 0.01, floor, 1e-12)
    return (actual - p50) / spread


def _normal_cdf(z: float) -> float:
    return NormalDist().cdf(z)


def place(
    samples: Sequence[float] | FloatArray, actual: float, unit: str, floor: float | None = None
) -> Placement:
    """Place ``actual`` in the distribution of ``samples`` (P10/P50/P90 as the simulator's summaries);
    ``floor`` overrides the unit's smallest spread."""
    data = np.asarray(samples, dtype=float)
    p10, p50, p90 = (float(x) for x in np.percentile(data, [10, 50, 90]))
    smallest = FLOOR.get(unit, 0.0) if floor is None else floor
    score = _score(actual, p10, p50, p90, smallest)
    if max(p90 - p50, p50 - p10) / Z90 < max(abs(p50) * 0.01, smallest):
        # A band narrower than its smallest spread: read off the widened split normal, as tasks are.
        percentile = 100.0 * _normal_cdf(score)
    else:
        percentile = percentile_of(data, actual)
    return Placement(
        actual=actual,
        p10=p10,
        p50=p50,
        p90=p90,
        percentile=percentile,
        score=score,
        inside=is_inside(percentile),
        mean=float(data.mean()),
    )


def place_in_band(band: Percentiles, actual: float, unit: str, floor: float | None = None) -> Placement:
    """Place ``actual`` against three predicted percentiles (no samples): its percentile is read off the
    split normal through them."""
    score = _score(actual, band.p10, band.p50, band.p90, FLOOR.get(unit, 0.0) if floor is None else floor)
    percentile = 100.0 * _normal_cdf(score)
    return Placement(
        actual=actual,
        p10=band.p10,
        p50=band.p50,
        p90=band.p90,
        percentile=percentile,
        score=score,
        inside=is_inside(percentile),
    )


def show(value: float, unit: str) -> str:
    """A value in its unit, short: ``38 min``, ``2.31x``, ``450k``, ``$1.23``, ``41%``."""
    if unit == "min":
        return f"{value:.0f} min" if abs(value) >= 10 else f"{value:.1f} min"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "tokens":
        if abs(value) >= 1e6:
            return f"{value / 1e6:.2f}M"
        if abs(value) >= 1e4:
            return f"{value / 1e3:.0f}k"
        if abs(value) >= 1e3:
            return f"{value / 1e3:.1f}k"
        return f"{value:.0f}"
    if unit == "usd":
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"
    if unit == "share":
        return f"{value:.0%}"
    return f"{value:g}"


def percentile_text(placement: Placement) -> str:
    """``P97``; to a tenth, rounded away from the band, when rounding would land on or inside its edge
    (``P9.9`` is outside, ``P10`` never is)."""
    value = placement.percentile
    if placement.outside:
        if value < INSIDE[0] and round(value) >= INSIDE[0]:
            return f"P{math.floor(value * 10) / 10:.1f}"
        if value > INSIDE[1] and round(value) <= INSIDE[1]:
            return f"P{math.ceil(value * 10) / 10:.1f}"
    return f"P{value:.0f}"


def position(placement: Placement) -> str:
    """``above P90 (P97)``, ``below P10 (P3)``, ``at P45``, or ``not judged``."""
    if placement.inside is None:
        return "not judged" if placement.recorded else "not recorded"
    if placement.inside:
        return f"at {percentile_text(placement)}"
    side = "above P90" if placement.percentile > INSIDE[1] else "below P10"
    return f"{side} ({percentile_text(placement)})"
