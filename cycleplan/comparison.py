"""A run held against its prediction: where each actual number falls in the predicted distribution.

    >>> from cycleplan.comparison import compare_run
    >>> comparison = compare_run(".cycleplan/runs.db", "20250114-093012-3f9a1c")
    >>> comparison.makespan_min.percentile, comparison.verdict

What this module owns:

- :func:`compare`: per task, the predicted P10/P50/P90 start, finish and duration against the actual; for
  the run, the actual makespan, speedup, tokens, cost and utilization, each with its percentile in the
  predicted distribution; per role, tokens and cost; and a verdict in words naming the largest source
  of error. Both sides are measured by :func:`cycleplan.metrics.metrics`.
- :func:`compare_run`: the same for a run of the run store (executed, or imported with a synthesised
  plan), simulating the run's own plan and scenario when no prediction is given.
- :func:`percentile_of` and :func:`crps`, and :func:`fidelity` over many runs (interval coverage, mean
  errors, CRPS), which is how the simulator is checked against emulated runs.

Percentiles of the actual are the share of replications at or below it (mid-rank for ties), 0-100.
The prediction keeps no per-task samples, only P10/P50/P90, so a task's percentile is read off a split
normal through those three (exact at P10, P50 and P90). Distances from the band are ranked by the
same split-normal score for every quantity: (actual - P50) over (P90 - P50) / z(0.9) above the median,
over (P50 - P10) / z(0.9) below it, so a score of +-1.28 sits on the band's edge.

**Speedup.** A run's one-lane baseline is never observed, so the actual speedup is the run's own work
summed as one lane would run it in plan order, over its makespan: every cycle attempt's work and
handoff, failed attempts included, race losers left out, with no waiting
(:func:`cycleplan.executor.summary.sequential_min`, what ``execute`` prints). The predicted speedup is
the simulator's one-lane baseline on the same draws over the makespan; it is the same sum whenever a
lone lane is not held by rate limits, so the two are compared like for like.

This module reads the run store and may run the simulator; it writes nothing and draws nothing
(:func:`cycleplan.report.reports.comparison_report` draws a comparison).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from cycleplan.draws import Z90
from cycleplan.metrics import MS_PER_MIN, TraceMetrics, metrics
from cycleplan.model import Event, Frozen, Plan
from cycleplan.sim.prediction import Percentiles, Prediction

SPEEDUP_DEFINITION = (
    "speedup = one-lane baseline / makespan. A run's one-lane baseline is not observed: it is the run's "
    "own work summed as one lane would run it in plan order (every cycle attempt's work and handoff, "
    "failed attempts included, race losers left out, no waiting). The predicted speedup uses the "
    "simulator's one-lane baseline on the same draws, the same sum whenever a lone lane is not held by "
    "rate limits."
)
"""How the actual speedup is defined, shown by ``compare --help``, its JSON and its report."""

HEADLINE = ("makespan_min", "speedup", "tokens_total", "cost_usd", "utilization")
"""The run's numbers placed in the predicted distribution, in the order they are shown."""

LABELS = {
    "makespan_min": ("makespan", "min"),
    "speedup": ("speedup", "x"),
    "tokens_total": ("tokens", "tokens"),
    "cost_usd": ("cost", "usd"),
    "utilization": ("utilization", "share"),
    "sequential_min": ("one-lane baseline", "min"),
    "failed_cycles": ("failed attempts", "count"),
    "input_tokens": ("uncached input tokens", "tokens"),
    "cache_write_tokens": ("cache writes", "tokens"),
    "cache_read_tokens": ("cache reads", "tokens"),
    "output_tokens": ("output tokens", "tokens"),
}
"""Each run-level quantity's name in words and its unit."""

TOKEN_KINDS = ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens")

_KIND_KNOB = {
    "input_tokens": "tokens.fresh_input (or, with caching off, the history re-sent each cycle)",
    "cache_write_tokens": "calls.growth with an agent loop, else tokens.history_growth (history written "
    "to the cache each cycle)",
    "cache_read_tokens": "calls.per_cycle or calls.growth with an agent loop (every call re-reads the "
    "context), else tokens.history_growth or tokens.context_tokens (re-read every cycle)",
    "output_tokens": "calls.output with an agent loop, else tokens.output",
}
"""The part of a role's token model each kind of token depends on most (a cycle as one request, or as
an agent loop of calls: see ``Role.calls``)."""

_WAIT_WORDS = {
    "rate_limit": "rate-limit waits",
    "sync": "waits for events and handoffs",
    "lane": "time ready tasks waited for a lane",
    "dependency": "lane time idle on dependencies",
}
_CAUSES = ("rate_limit", "sync")
"""Waits that can make a run longer (lane and dependency waits are its effect, not its cause)."""

_FLOOR = {"min": 0.1, "x": 0.01, "tokens": 10.0, "usd": 1e-4, "share": 0.01, "count": 0.5}
"""The smallest spread a band is given, in its unit, so that a band of zero width (a fixed model, a task
that always starts at 0) does not turn a small difference into a large one. A band is also never
narrower than 1% of its median, and :func:`compare` gives minutes at least 1% of the predicted median
makespan (the executor's own overhead is of that order)."""


class ComparisonError(Exception):
    """The comparison cannot be made (unknown run, no events, a prediction of other tasks)."""


class Placement(Frozen):
    """Where one actual number falls in its predicted distribution."""

    actual: float
    p10: float
    p50: float
    p90: float
    percentile: float = Field(
        description="Share of replications at or below the actual (mid-rank for ties), 0-100; for tasks, "
        "read off a split normal through P10, P50 and P90."
    )
    score: float = Field(
        description="Signed distance from P50 in split-normal units: +-1.28 is the edge of the P10-P90 band."
    )
    inside: bool = Field(
        description="P10 <= actual <= P90; a band narrower than its smallest spread (a fixed model) is "
        "widened to it first, so that the executor's overhead does not count as a miss."
    )
    mean: float | None = Field(default=None, description="The predicted mean, where samples are kept.")


class TaskComparison(Frozen):
    """One task: predicted P10/P50/P90 start, finish and duration against the actual (minutes since the
    run's start; start is when its first cycle began, after any wait before it)."""

    task: str
    role: str
    lane: str = Field(description="The lane the plan puts it on.")
    actual_lane: str | None
    status: str = Field(description="complete, failed, cancelled, or not run.")
    ran_share: float = Field(description="Share of replications in which the task worked.")
    start: Placement | None
    finish: Placement | None
    duration: Placement | None


class Deviation(Frozen):
    """One detail held against its band, for ranking the sources of error."""

    what: str = Field(description="e.g. task.frontend.duration, tokens_by_role.backend, waits_min.sync.")
    subject: str = Field(description="Who or what, in words (a task, a role, a kind of wait).")
    unit: str
    placement: Placement


class CumulativeActual(Frozen):
    """The actual run's tokens and dollars spent by each minute, one step per cycle attempt."""

    minutes: list[float]
    tokens: list[float]
    cost_usd: list[float]


class Comparison(Frozen):
    """An actual run against its prediction. ``prediction`` and ``cumulative`` are kept for the report
    and left out of the JSON."""

    run_id: str
    scenario: str
    status: str
    agent: str
    time_scale: float
    prediction_source: str = Field(description="simulated (the run's own plan), or the file given.")
    replications: int
    seed: int
    speedup_definition: str = SPEEDUP_DEFINITION
    makespan_min: Placement
    speedup: Placement
    tokens_total: Placement
    cost_usd: Placement
    utilization: Placement
    sequential_min: Placement
    failed_cycles: Placement
    tokens_by_kind: dict[str, Placement]
    tokens_by_role: dict[str, Placement]
    cost_by_role: dict[str, Placement]
    waits_min: dict[str, Placement]
    tasks: list[TaskComparison]
    deviations: list[Deviation] = Field(description="Every detail, furthest from its band first.")
    inside: bool = Field(description="Makespan, speedup, tokens, cost and utilization all inside P10-P90.")
    verdict: str
    makespan_crps_min: float = Field(description="CRPS of the predicted makespan against the actual.")
    prediction: Prediction = Field(exclude=True)
    cumulative: CumulativeActual = Field(exclude=True)

    def placement(self, name: str) -> Placement:
        """A run-level placement by name (one of :data:`HEADLINE`, ``sequential_min``, ``failed_cycles``)."""
        value = getattr(self, name)
        if not isinstance(value, Placement):
            raise KeyError(name)
        return value


# --------------------------------------------------------------------------------------------------
# Scores


FloatArray = npt.NDArray[np.float64]


def percentile_of(samples: Sequence[float] | FloatArray, actual: float) -> float:
    """The share of ``samples`` at or below ``actual``, counting ties half (mid-rank), in percent."""
    ordered = np.sort(np.asarray(samples, dtype=float))
    if ordered.size == 0:
        raise ValueError("no samples to place the actual in")
    below = int(np.searchsorted(ordered, actual, side="left"))
    at_or_below = int(np.searchsorted(ordered, actual, side="right"))
    return 100.0 * (below + at_or_below) / (2 * ordered.size)


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
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def place(
    samples: Sequence[float] | FloatArray, actual: float, unit: str, floor: float | None = None
) -> Placement:
    """Place ``actual`` in the distribution of ``samples`` (P10/P50/P90 as the simulator's summaries);
    ``floor`` overrides the unit's smallest spread."""
    data = np.asarray(samples, dtype=float)
    p10, p50, p90 = (float(x) for x in np.percentile(data, [10, 50, 90]))
    score = _score(actual, p10, p50, p90, _FLOOR.get(unit, 0.0) if floor is None else floor)
    return Placement(
        actual=actual,
        p10=p10,
        p50=p50,
        p90=p90,
        percentile=percentile_of(data, actual),
        score=score,
        inside=abs(score) <= Z90,
        mean=float(data.mean()),
    )


def place_in_band(band: Percentiles, actual: float, unit: str, floor: float | None = None) -> Placement:
    """Place ``actual`` against three predicted percentiles (no samples): its percentile is read off the
    split normal through them."""
    score = _score(actual, band.p10, band.p50, band.p90, _FLOOR.get(unit, 0.0) if floor is None else floor)
    return Placement(
        actual=actual,
        p10=band.p10,
        p50=band.p50,
        p90=band.p90,
        percentile=100.0 * _normal_cdf(score),
        score=score,
        inside=abs(score) <= Z90,
    )


# --------------------------------------------------------------------------------------------------
# What the actual trace says beyond metrics()


def first_cycle_starts(trace: Sequence[Event]) -> dict[str, float]:
    """When each task's first cycle began (minutes since the run's start): the end of its first recorded
    attempt less that attempt's work, which is after any wait for events, handoff or rate limit before
    it, as the simulator's per-task start is."""
    if not trace:
        return {}
    origin = trace[0].timestamp
    starts: dict[str, float] = {}
    for event in trace:
        if event.action == "cycle_completed" and event.target_id not in starts:
            work = float(event.metadata.get("duration_ms") or 0.0)
            starts[event.target_id] = max(event.timestamp - work - origin, 0.0) / MS_PER_MIN
    return starts


def cumulative_actual(trace: Sequence[Event]) -> CumulativeActual:
    """Tokens and dollars spent by each minute: a step at the end of every cycle attempt."""
    minutes = [0.0]
    tokens = [0.0]
    cost = [0.0]
    if not trace:
        return CumulativeActual(minutes=minutes, tokens=tokens, cost_usd=cost)
    origin = trace[0].timestamp
    attempts = sorted(
        (event for event in trace if event.action == "cycle_completed"), key=lambda event: event.timestamp
    )
    for event in attempts:
        meta = event.metadata
        count = sum(
            int(meta.get(field) or 0)
            for field in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            )
        )
        minutes.append((event.timestamp - origin) / MS_PER_MIN)
        tokens.append(tokens[-1] + count)
        cost.append(cost[-1] + float(meta.get("cost_usd") or 0.0))
    return CumulativeActual(minutes=minutes, tokens=tokens, cost_usd=cost)


# --------------------------------------------------------------------------------------------------
# The comparison


def compare(
    plan: Plan,
    trace: Sequence[Event],
    prediction: Prediction,
    *,
    run_id: str = "",
    status: str = "",
    agent: str = "",
    time_scale: float = 1.0,
    prediction_source: str = "simulated",
) -> Comparison:
    """Hold ``trace`` (on the scenario's clock) against ``prediction`` of ``plan``.

    Raises :class:`ComparisonError` when the trace is empty or the prediction is of other tasks.
    """
    from cycleplan.executor.summary import sequential_min

    if not trace or trace[0].action != "run_started":
        raise ComparisonError(f"run {run_id or '(unnamed)'} has no events yet: nothing to compare")
    planned = [task.id for task in plan.scenario.all_tasks()]
    if prediction.tasks and set(prediction.tasks) != set(planned):
        ran = sorted(set(planned) - set(prediction.tasks))
        predicted = sorted(set(prediction.tasks) - set(planned))
        parts = []
        if ran:
            parts.append(f"the run has {_names(ran)} that the prediction lacks")
        if predicted:
            parts.append(f"the prediction has {_names(predicted)} that the run lacks")
        raise ComparisonError(
            f"the prediction is of other tasks ({'; '.join(parts)}): predict the run's own plan, or leave "
            "out --prediction to simulate it"
        )
    measured = metrics(trace)
    values = prediction.replications.values
    baseline = sequential_min(trace)
    actual: dict[str, float] = {
        "makespan_min": measured.makespan_min,
        "speedup": baseline / measured.makespan_min if measured.makespan_min > 0 else 0.0,
        "tokens_total": float(measured.tokens_total),
        "cost_usd": measured.cost_usd,
        "utilization": measured.utilization,
        "sequential_min": baseline,
        "failed_cycles": float(measured.failed_cycles),
        **{kind: float(getattr(measured, kind)) for kind in TOKEN_KINDS},
    }
    minute = max(_FLOOR["min"], 0.01 * prediction.summaries["makespan_min"].p50)
    run_level = {
        name: place(values[name], actual[name], LABELS[name][1], minute if LABELS[name][1] == "min" else None)
        for name in actual
    }
    roles = sorted(set(prediction.replications.tokens_by_role) | set(measured.tokens_by_role))
    zeros = [0.0] * prediction.config.replications
    tokens_by_role = {
        role: place(
            prediction.replications.tokens_by_role.get(role, zeros),
            float(measured.tokens_by_role.get(role, 0)),
            "tokens",
        )
        for role in roles
    }
    cost_by_role = {
        role: place(
            prediction.replications.cost_by_role.get(role, zeros),
            measured.cost_by_role.get(role, 0.0),
            "usd",
        )
        for role in roles
    }
    waits = {
        cause: place(samples, measured.waits_min.get(cause, 0.0), "min", minute)
        for cause, samples in prediction.replications.waits_min.items()
    }
    tasks = _tasks(plan, measured, first_cycle_starts(trace), prediction, minute)
    deviations = _deviations(run_level, tokens_by_role, cost_by_role, waits, tasks)
    inside = all(run_level[name].inside for name in HEADLINE)
    verdict = _verdict(run_level, tokens_by_role, cost_by_role, waits, tasks, measured, deviations)
    return Comparison(
        run_id=run_id,
        scenario=plan.scenario.name,
        status=status,
        agent=agent,
        time_scale=time_scale,
        prediction_source=prediction_source,
        replications=prediction.config.replications,
        seed=prediction.config.seed,
        makespan_min=run_level["makespan_min"],
        speedup=run_level["speedup"],
        tokens_total=run_level["tokens_total"],
        cost_usd=run_level["cost_usd"],
        utilization=run_level["utilization"],
        sequential_min=run_level["sequential_min"],
        failed_cycles=run_level["failed_cycles"],
        tokens_by_kind={kind: run_level[kind] for kind in TOKEN_KINDS},
        tokens_by_role=tokens_by_role,
        cost_by_role=cost_by_role,
        waits_min=waits,
        tasks=tasks,
        deviations=deviations,
        inside=inside,
        verdict=verdict,
        makespan_crps_min=crps(values["makespan_min"], measured.makespan_min),
        prediction=prediction,
        cumulative=cumulative_actual(trace),
    )


def _names(names: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    return f"task{'s' if len(names) > 1 else ''} {listed}"


def _tasks(
    plan: Plan,
    measured: TraceMetrics,
    starts: Mapping[str, float],
    prediction: Prediction,
    minute: float,
) -> list[TaskComparison]:
    planned_lane = {row.task: lane.lane for lane, row in plan.planned_tasks()}
    rows: list[TaskComparison] = []
    for task in plan.scenario.all_tasks():
        predicted = prediction.tasks.get(task.id)
        span = measured.tasks.get(task.id)
        start = starts.get(task.id) if span is not None else None

        def placed(band: Percentiles | None, value: float | None) -> Placement | None:
            if band is None or value is None:
                return None
            return place_in_band(band, value, "min", minute)

        finish = span.finish_min if span is not None and start is not None else None
        rows.append(
            TaskComparison(
                task=task.id,
                role=task.role,
                lane=predicted.lane if predicted is not None else planned_lane.get(task.id, ""),
                actual_lane=span.lane if span is not None else None,
                status=span.status if span is not None else "not run",
                ran_share=predicted.ran if predicted is not None else 0.0,
                start=placed(predicted.start if predicted else None, start),
                finish=placed(predicted.finish if predicted else None, finish),
                duration=placed(
                    predicted.duration if predicted else None,
                    None if finish is None or start is None else finish - start,
                ),
            )
        )
    return rows


def _deviations(
    run_level: Mapping[str, Placement],
    tokens_by_role: Mapping[str, Placement],
    cost_by_role: Mapping[str, Placement],
    waits: Mapping[str, Placement],
    tasks: Sequence[TaskComparison],
) -> list[Deviation]:
    found: list[Deviation] = []
    for row in tasks:
        for part in ("start", "finish", "duration"):
            placement = getattr(row, part)
            if placement is not None:
                found.append(
                    Deviation(
                        what=f"task.{row.task}.{part}", subject=row.task, unit="min", placement=placement
                    )
                )
    for role, placement in tokens_by_role.items():
        found.append(
            Deviation(what=f"tokens_by_role.{role}", subject=role, unit="tokens", placement=placement)
        )
    for role, placement in cost_by_role.items():
        found.append(Deviation(what=f"cost_by_role.{role}", subject=role, unit="usd", placement=placement))
    for cause, placement in waits.items():
        found.append(Deviation(what=f"waits_min.{cause}", subject=cause, unit="min", placement=placement))
    for name in ("failed_cycles", *TOKEN_KINDS):
        found.append(
            Deviation(what=name, subject=LABELS[name][0], unit=LABELS[name][1], placement=run_level[name])
        )
    return sorted(found, key=lambda deviation: (-abs(deviation.placement.score), deviation.what))


# --------------------------------------------------------------------------------------------------
# The verdict


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
    """``P97``; one decimal when rounding would land on the band's edge."""
    value = placement.percentile
    text = f"P{value:.0f}"
    if round(value) in (10, 90) and not placement.inside:
        text = f"P{value:.1f}"
    return text


def position(placement: Placement) -> str:
    """``above P90 (P97)``, ``below P10 (P3)`` or ``at P45``."""
    if placement.inside:
        return f"at {percentile_text(placement)}"
    side = "above P90" if placement.actual > placement.p90 else "below P10"
    return f"{side} ({percentile_text(placement)})"


def _band_and_actual(placement: Placement, unit: str) -> str:
    """``P90 38 min, actual 71 min``: the band's near edge and the actual."""
    edge = ("P90", placement.p90) if placement.actual > placement.p50 else ("P10", placement.p10)
    return f"{edge[0]} {show(edge[1], unit)}, actual {show(placement.actual, unit)}"


def _ratio(placement: Placement, unit: str) -> str:
    """``1.8x the predicted median``, or the two values when the median is zero."""
    if placement.p50 > 0:
        ratio = placement.actual / placement.p50
        return f"{ratio:.2f}x" if 0.95 <= ratio <= 1.05 else f"{ratio:.1f}x"
    return f"{show(placement.actual, unit)} against {show(placement.p50, unit)}"


def _pick(candidates: Iterable[Deviation], direction: float) -> Deviation | None:
    """The candidate furthest out in ``direction`` (+1 above the median, -1 below), if any is on that side."""
    best = max(candidates, key=lambda deviation: deviation.placement.score * direction, default=None)
    if best is None or best.placement.score * direction <= 0:
        return None
    return best


def _detail(deviation: Deviation) -> str:
    """One detail in words: ``frontend took 1.8x its predicted median (P90 38 min, actual 71 min)``."""
    placement = deviation.placement
    what = deviation.what
    unit = deviation.unit
    band = _band_and_actual(placement, unit)
    later = "later" if placement.actual > placement.p50 else "earlier"
    if what.endswith(".duration"):
        return f"{deviation.subject} took {_ratio(placement, unit)} its predicted median ({band})"
    if what.endswith(".start"):
        return f"{deviation.subject} started {later} than predicted ({band})"
    if what.endswith(".finish"):
        return f"{deviation.subject} finished {later} than predicted ({band})"
    if what.startswith("tokens_by_role."):
        return f"{deviation.subject} used {_ratio(placement, unit)} its predicted median of tokens ({band})"
    if what.startswith("cost_by_role."):
        return f"{deviation.subject} cost {_ratio(placement, unit)} its predicted median ({band})"
    subject = deviation.subject
    if what.startswith("waits_min."):
        subject = _WAIT_WORDS.get(subject, f"{subject} waits")
    if placement.p50 == 0:
        return f"{subject} came to {show(placement.actual, unit)} where the predicted median is 0 ({band})"
    return f"{subject} came to {_ratio(placement, unit)} the predicted median ({band})"


def _failures(failed: Placement, direction: float) -> str:
    """``failed attempts came to ...: failure.probability_per_cycle is likely underestimated``, when the
    run failed more often than predicted and that is the side being explained; else nothing."""
    if failed.inside or direction <= 0 or failed.actual <= failed.p90:
        return ""
    retried = Deviation(what="failed_cycles", subject="failed attempts", unit="count", placement=failed)
    return f"{_detail(retried)}: failure.probability_per_cycle is likely underestimated"


def _lengthened(
    direction: float,
    tasks: Sequence[TaskComparison],
    waits: Mapping[str, Placement],
    failed: Placement,
    critical: Sequence[str],
    work: Placement | None = None,
) -> str:
    """Why the run took longer (``direction`` +1) or shorter (-1) than predicted: the task on the run's
    critical path, or the wait, furthest out that way; when no task is outside its own band but the
    run's whole work (``work``, its one-lane baseline) is, the work across the board; and failures,
    when there were more than predicted."""
    on_path = [row for row in tasks if row.task in critical and row.duration is not None]
    rows = on_path or [row for row in tasks if row.duration is not None]
    candidates = [
        Deviation(what=f"task.{row.task}.duration", subject=row.task, unit="min", placement=row.duration)
        for row in rows
        if row.duration is not None
    ]
    candidates += [
        Deviation(what=f"waits_min.{cause}", subject=cause, unit="min", placement=waits[cause])
        for cause in _CAUSES
        if cause in waits
    ]
    chosen = _pick(candidates, direction)
    parts = []
    if chosen is None:
        parts.append("no task or wait stands out from its prediction")
    elif (
        chosen.what.startswith("task.")
        and chosen.placement.inside
        and work is not None
        and not work.inside
        and direction * work.score > 0
    ):
        side = "longer" if direction > 0 else "shorter"
        parts.append(
            f"the run's whole work (one-lane baseline) {position(work)}: no single task is outside its band, "
            f"but together they ran {side}, so cycles took {side} than the model's durations across the "
            "board (cycleplan calibrate RUN fits them)"
        )
    elif chosen.what.startswith("task.") and chosen.placement.inside:
        parts.append("no single task is outside its band; the furthest: " + _detail(chosen))
    elif chosen.what.startswith("task."):
        where = "on" if chosen.subject in critical else "off"
        parts.append(f"{_detail(chosen)}, {where} the run's critical path")
    else:
        parts.append(_detail(chosen))
    failures = _failures(failed, direction)
    if failures:
        parts.append(failures)
    return "; ".join(parts)


def _verdict(
    run_level: Mapping[str, Placement],
    tokens_by_role: Mapping[str, Placement],
    cost_by_role: Mapping[str, Placement],
    waits: Mapping[str, Placement],
    tasks: Sequence[TaskComparison],
    measured: TraceMetrics,
    deviations: Sequence[Deviation],
) -> str:
    """The largest source of error in plain words (see :func:`compare`)."""
    outside = [name for name in HEADLINE if not run_level[name].inside]
    if not outside:
        listed = ", ".join(f"{LABELS[name][0]} {percentile_text(run_level[name])}" for name in HEADLINE)
        text = f"Inside the prediction: {listed}, all between P10 and P90."
        furthest = next((d for d in deviations if not d.placement.inside), None)
        if furthest is not None:
            text += f" The detail furthest out: {_detail(furthest)}."
        return text

    worst = max(outside, key=lambda name: abs(run_level[name].score))
    placement = run_level[worst]
    direction = 1.0 if placement.score > 0 else -1.0
    failed = run_level["failed_cycles"]
    critical = measured.critical
    if worst == "makespan_min" or worst == "utilization":
        makespan = run_level["makespan_min"]
        longer = direction if worst == "makespan_min" else -direction
        cause = _lengthened(longer, tasks, waits, failed, critical, run_level["sequential_min"])
        if worst == "utilization":
            cause = f"makespan {position(makespan)}; {cause}"
    elif worst == "speedup":
        makespan, baseline = run_level["makespan_min"], run_level["sequential_min"]
        if -direction * makespan.score >= direction * baseline.score:
            cause = f"makespan {position(makespan)}: " + _lengthened(
                -direction, tasks, waits, failed, critical
            )
        else:
            work = [
                Deviation(
                    what=f"task.{row.task}.duration", subject=row.task, unit="min", placement=row.duration
                )
                for row in tasks
                if row.duration is not None
            ]
            chosen = _pick(work, direction)
            cause = f"the run's own work (one-lane baseline) {position(baseline)}"
            if chosen is not None:
                cause += f": {_detail(chosen)}"
    elif worst == "tokens_total":
        cause = _tokens_cause(direction, tokens_by_role, run_level, failed)
    else:
        cause = _cost_cause(direction, cost_by_role, run_level, failed)
    text = f"{LABELS[worst][0].capitalize()} {position(placement)}: {cause}."
    others = [name for name in outside if name != worst]
    if others:
        text += (
            " Also outside P10-P90: "
            + ", ".join(f"{LABELS[name][0]} ({percentile_text(run_level[name])})" for name in others)
            + "."
        )
    return text


def _tokens_cause(
    direction: float,
    tokens_by_role: Mapping[str, Placement],
    run_level: Mapping[str, Placement],
    failed: Placement,
) -> str:
    """Why the run used more (``direction`` +1) or fewer tokens than predicted: the role furthest out
    that way, then failures (every failed attempt is sent and billed again) or else the kind of token
    furthest out, with the part of the role's token model it depends on."""
    roles = [
        Deviation(what=f"tokens_by_role.{role}", subject=role, unit="tokens", placement=placement)
        for role, placement in tokens_by_role.items()
    ]
    role = _pick(roles, direction)
    parts = []
    if role is not None:
        parts.append(_detail(role))
    failures = _failures(failed, direction)
    if failures:
        parts.append(failures + " (every failed attempt is sent and billed again)")
    else:
        parts.append(_kind_hint(direction, run_level, role.subject if role is not None else None))
    return "; ".join(part for part in parts if part) or "no role or kind of token stands out"


def _kind_hint(direction: float, run_level: Mapping[str, Placement], role: str | None) -> str:
    """``cache reads are the kind furthest out (P99): frontend's tokens.history_growth ... underestimated``
    (nothing when no kind is out that way)."""
    kinds = [
        Deviation(what=kind, subject=LABELS[kind][0], unit="tokens", placement=run_level[kind])
        for kind in TOKEN_KINDS
    ]
    kind = _pick(kinds, direction)
    if kind is None:
        return ""
    estimate = "underestimated" if direction > 0 else "overestimated"
    whose = f"{role}'s " if role is not None else ""
    return (
        f"{kind.subject} are the kind furthest out ({percentile_text(kind.placement)}): "
        f"{whose}{_KIND_KNOB[kind.what]} {estimate}"
    )


def _cost_cause(
    direction: float,
    cost_by_role: Mapping[str, Placement],
    run_level: Mapping[str, Placement],
    failed: Placement,
) -> str:
    """Why the run cost more (``direction`` +1) or less than predicted: the role furthest out that way,
    then why its tokens differ, or, when the tokens were inside their band, the price per token."""
    tokens = run_level["tokens_total"]
    roles = [
        Deviation(what=f"cost_by_role.{role}", subject=role, unit="usd", placement=placement)
        for role, placement in cost_by_role.items()
    ]
    role = _pick(roles, direction)
    parts = [_detail(role) if role is not None else "no role stands out"]
    if tokens.inside:
        parts.append(
            f"tokens were inside their band ({percentile_text(tokens)}), so the price per token differs: "
            "check the roles' models and the price table"
        )
    else:
        failures = _failures(failed, direction)
        subject = role.subject if role is not None else None
        parts.append(
            failures + " (every failed attempt is sent and billed again)"
            if failures
            else _kind_hint(direction, run_level, subject)
        )
    return "; ".join(part for part in parts if part)


# --------------------------------------------------------------------------------------------------
# Runs of the store


def compare_run(
    store: str | Path,
    run_id: str,
    prediction: Prediction | None = None,
    *,
    replications: int = 1000,
    seed: int = 0,
    prediction_source: str | None = None,
) -> Comparison:
    """Compare run ``run_id`` of the run store at ``store`` with ``prediction``, or, without one, with
    a simulation of the run's own plan and scenario (``replications`` from ``seed``).

    Raises :class:`ComparisonError` for a missing store, an unknown run, a run without events or a
    prediction of other tasks.
    """
    from cycleplan.executor.store import RunStore, StoreError
    from cycleplan.executor.summary import scenario_trace

    if not Path(store).exists():
        raise ComparisonError(f"{store}: no run store here (pass --store PATH)")
    try:
        with RunStore(store) as runs:
            record = runs.run(run_id)
            raw = runs.trace(run_id)
    except StoreError as exc:
        raise ComparisonError(str(exc)) from None
    plan = Plan.model_validate_json(record.plan_json)
    time_scale = float(record.options.get("time_scale", 1.0))
    trace = scenario_trace(raw, time_scale)
    if prediction is None:
        from cycleplan.sim import SimulationError, simulate

        try:
            prediction = simulate(plan, replications=replications, seed=seed, engine="auto")
        except SimulationError as exc:
            raise ComparisonError(f"run {run_id}: its plan cannot be simulated: {exc}") from None
        source = "simulated"
    else:
        source = prediction_source or "given"
    return compare(
        plan,
        trace,
        prediction,
        run_id=run_id,
        status=record.status,
        agent=record.agent,
        time_scale=time_scale,
        prediction_source=source,
    )


# --------------------------------------------------------------------------------------------------
# Many runs: how well the prediction is calibrated


class Fidelity(Frozen):
    """How a prediction did over many runs of its plan."""

    runs: int
    coverage: float = Field(
        description="Share of runs whose makespan fell inside the predicted P10-P90 (strictly: no band is "
        "widened here)."
    )
    coverage_by_quantity: dict[str, float] = Field(
        description="The same share for each of makespan, speedup, tokens and cost."
    )
    makespan_error: float = Field(description="Mean actual makespan over the predicted mean, less 1.")
    speedup_error: float = Field(description="Mean actual speedup over the predicted mean, less 1.")
    mean_actual_speedup: float
    mean_predicted_speedup: float
    crps_min: float = Field(description="Mean CRPS of the predicted makespan (minutes).")
    crps_relative: float = Field(description="crps_min over the predicted mean makespan.")


def fidelity(comparisons: Sequence[Comparison]) -> Fidelity:
    """Interval coverage, mean errors and CRPS of predictions over the runs they predict.

    Each comparison carries its own prediction; the predicted means are averaged over the comparisons,
    so runs of different scenarios can be pooled."""
    if not comparisons:
        raise ValueError("no runs to score")
    count = len(comparisons)

    def share(name: str) -> float:
        placements = [c.placement(name) for c in comparisons]
        return sum(1 for p in placements if p.p10 <= p.actual <= p.p90) / count

    def mean(values: Iterable[float]) -> float:
        return float(np.mean(list(values)))

    predicted_makespan = mean(c.prediction.summaries["makespan_min"].mean for c in comparisons)
    predicted_speedup = mean(c.prediction.summaries["speedup"].mean for c in comparisons)
    actual_speedup = mean(c.speedup.actual for c in comparisons)
    crps_min = mean(c.makespan_crps_min for c in comparisons)
    return Fidelity(
        runs=count,
        coverage=share("makespan_min"),
        coverage_by_quantity={
            name: share(name) for name in ("makespan_min", "speedup", "tokens_total", "cost_usd")
        },
        makespan_error=mean(c.makespan_min.actual for c in comparisons) / predicted_makespan - 1.0,
        speedup_error=actual_speedup / predicted_speedup - 1.0,
        mean_actual_speedup=actual_speedup,
        mean_predicted_speedup=predicted_speedup,
        crps_min=crps_min,
        crps_relative=crps_min / predicted_makespan if predicted_makespan > 0 else 0.0,
    )


# --------------------------------------------------------------------------------------------------
# Text


def render_comparison(comparison: Comparison) -> str:
    """What ``cycleplan compare`` prints: the run's numbers in the predicted bands, each task against its
    band, and the verdict."""
    c = comparison
    source = (
        f"{c.replications:,} simulated replications of its own plan (seed {c.seed})"
        if c.prediction_source == "simulated"
        else f"{c.prediction_source} ({c.replications:,} replications, seed {c.seed})"
    )
    scale = f", time scale {c.time_scale:g}" if c.time_scale != 1.0 else ""
    out = [
        f"run {c.run_id} ({c.agent}, {c.status}{scale}) of {c.scenario or 'scenario'} against {source}",
        "",
    ]
    rows = [["", "actual", "P10", "P50", "P90", "percentile"]]
    for name in (*HEADLINE, "sequential_min"):
        label, unit = LABELS[name]
        p = c.placement(name)
        rows.append(
            [label, show(p.actual, unit), show(p.p10, unit), show(p.p50, unit), show(p.p90, unit), _mark(p)]
        )
    for role, p in c.tokens_by_role.items():
        rows.append(
            [f"  tokens {role}", *(show(x, "tokens") for x in (p.actual, p.p10, p.p50, p.p90)), _mark(p)]
        )
    for role, p in c.cost_by_role.items():
        rows.append([f"  cost {role}", *(show(x, "usd") for x in (p.actual, p.p10, p.p50, p.p90)), _mark(p)])
    out += _table(rows)
    out += ["", "tasks: actual against predicted P10-P90, minutes since the run's start (! outside the band)"]
    task_rows = [["task", "lane", "status", "start", "finish", "duration"]]
    for row in c.tasks:
        task_rows.append(
            [
                row.task,
                row.actual_lane or row.lane,
                row.status,
                *(_cell(getattr(row, part)) for part in ("start", "finish", "duration")),
            ]
        )
    out += _table(task_rows)
    out += [
        "",
        f"verdict   {c.verdict}",
        f"CRPS      makespan {c.makespan_crps_min:.2f} min",
        f"note      {SPEEDUP_DEFINITION}",
    ]
    return "\n".join(out)


def _mark(placement: Placement) -> str:
    return percentile_text(placement) + ("" if placement.inside else " !")


def _cell(placement: Placement | None) -> str:
    if placement is None:
        return "-"
    flag = "" if placement.inside else " !"
    return f"{_minutes(placement.actual)} [{_minutes(placement.p10)}-{_minutes(placement.p90)}]{flag}"


def _minutes(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def summary_json(comparison: Comparison) -> dict[str, Any]:
    """What ``compare --json`` prints: everything but the prediction's arrays and the actual's curve."""
    return comparison.model_dump(mode="json")
