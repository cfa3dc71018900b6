"""A run held against its prediction: where each actual number falls in the predicted distribution.

    >>> from cycleplan.workflows.comparison import compare_run
    >>> comparison = compare_run(".cycleplan/runs.db", "20250114-093012-3f9a1c")
    >>> comparison.makespan_min.percentile, comparison.verdict

What this module owns:

- :func:`compare`: per task, the predicted P10/P50/P90 start, finish and duration against the actual; for
  the run, the actual makespan, speedup, tokens, cost and utilization, each with its percentile in the
  predicted distribution; per role, tokens and cost; and a verdict in words naming the largest source
  of error. Both sides are measured by :func:`cycleplan.core.metrics.metrics`.
- :func:`compare_run`: the same for a run of the run store (executed, or imported with a synthesised
  plan), simulating the run's own plan and scenario when no prediction is given.
- :func:`percentile_of` and :func:`crps`, and :func:`fidelity` over many runs (interval coverage, mean
  errors, CRPS), which is how the simulator is checked against emulated runs.

Percentiles of the actual are the share of replications at or below it (mid-rank for ties), 0-100.
The prediction keeps no per-task samples, only P10/P50/P90, so a task's percentile is read off a split
normal through those three (exact at P10, P50 and P90). Distances from the band are ranked by the
same split-normal score for every quantity: (actual - P50) over (P90 - P50) / z(0.9) above the median,
over (P50 - P10) / z(0.9) below it, so a score of +-1.28 sits on the band's edge.

**Speedup.** A run's sequential baseline is never observed, so the actual speedup is the run's own
work summed as one lane would run it in plan order, over its makespan: every cycle attempt's work and
handoff, failed attempts included, race losers left out, with no waiting
(:func:`cycleplan.executor.summary.sequential_min`, what ``execute`` prints). The predicted speedup is
the simulator's sequential baseline on the same draws over the makespan; it is the same sum whenever a
lone lane is not held by rate limits, so the two are compared like for like.

This module reads the run store and may run the simulator; it writes nothing and draws nothing
(:func:`cycleplan.present.report.reports.comparison_report` draws a comparison).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from cycleplan.core.metrics import MS_PER_MIN, USAGE_FIELDS, TraceMetrics, WaitSpan, metrics, wait_spans
from cycleplan.core.model import Event, Frozen, Plan
from cycleplan.sim.prediction import Percentiles, Prediction
from cycleplan.workflows.bands import (
    FLOOR,
    HEADLINE,
    LABELS,
    TOKEN_KINDS,
    Deviation,
    Placement,
    TaskComparison,
    crps,
    place,
    place_in_band,
)
from cycleplan.workflows.forecast_track import ForecastTrack, track
from cycleplan.workflows.verdict import CostByKind, RunState, Verdict, build_verdict

SPEEDUP_DEFINITION = (
    "speedup = sequential baseline / makespan. A run's sequential baseline is not observed: it is the "
    "run's own work summed as one lane would run it in plan order (every cycle attempt's work and "
    "handoff, failed attempts included, race losers left out, no waiting). The predicted speedup uses "
    "the simulator's sequential baseline on the same draws, the same sum whenever a lone lane is not "
    "held by rate limits."
)
"""How the actual speedup is defined, shown by ``compare --help``, its JSON and its report."""


class ComparisonError(Exception):
    """The comparison cannot be made (unknown run, no events, a prediction of other tasks)."""


class CumulativeActual(Frozen):
    """The actual run's tokens and dollars spent by each minute, one step per cycle attempt."""

    minutes: list[float]
    tokens: list[float]
    cost_usd: list[float]


class Comparison(Frozen):
    """An actual run against its prediction. ``prediction``, ``cumulative`` and ``wait_spans`` are kept
    for the report and left out of the JSON."""

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
    inside: bool = Field(
        description="The run finished and its makespan, speedup, tokens, cost and utilization (those it "
        "recorded) are all inside P10-P90."
    )
    verdict: Verdict
    makespan_crps_min: float = Field(description="CRPS of the predicted makespan against the actual.")
    forecasts: ForecastTrack | None = Field(
        default=None,
        description="The live forecasts the run recorded and, once it finished, from when they held the "
        "actual finish and cost (None: it recorded none).",
    )
    prediction: Prediction = Field(exclude=True)
    cumulative: CumulativeActual = Field(exclude=True)
    wait_spans: list[WaitSpan] = Field(
        default_factory=list,
        exclude=True,
        description="Where the actual run's tasks held their lanes without working.",
    )

    def placement(self, name: str) -> Placement:
        """A run-level placement by name (one of :data:`HEADLINE`, ``sequential_min``, ``failed_cycles``)."""
        value = getattr(self, name)
        if not isinstance(value, Placement):
            raise KeyError(name)
        return value


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
    minute = max(FLOOR["min"], 0.01 * prediction.summaries["makespan_min"].p50)
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
    tasks = _tasks(plan, trace, measured, first_cycle_starts(trace), prediction, minute)
    state = run_state(trace, measured, status)
    costs = _cost_by_kind(trace, plan, run_level) if state.tokens_recorded else None
    if not state.tokens_recorded:
        for name in ("tokens_total", "cost_usd", *TOKEN_KINDS):
            run_level[name] = run_level[name].unjudged(recorded=False)
        tokens_by_role = {role: p.unjudged(recorded=False) for role, p in tokens_by_role.items()}
        cost_by_role = {role: p.unjudged(recorded=False) for role, p in cost_by_role.items()}
    if not state.complete:
        # A part of a run is not a run: none of its totals is judged against a whole run's prediction.
        run_level = {name: p.unjudged(p.recorded) for name, p in run_level.items()}
        tokens_by_role = {role: p.unjudged(p.recorded) for role, p in tokens_by_role.items()}
        cost_by_role = {role: p.unjudged(p.recorded) for role, p in cost_by_role.items()}
        waits = {cause: p.unjudged() for cause, p in waits.items()}
    deviations = _deviations(run_level, tokens_by_role, cost_by_role, waits, tasks)
    inside = state.complete and all(run_level[name].inside is not False for name in HEADLINE)
    verdict = build_verdict(
        run_id, run_level, tokens_by_role, cost_by_role, waits, tasks, measured.critical, state, costs
    )
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
        forecasts=track(
            trace,
            actual_finish_min=measured.makespan_min if state.complete else None,
            actual_cost_usd=measured.cost_usd if state.complete and state.tokens_recorded else None,
        ),
        prediction=prediction,
        cumulative=cumulative_actual(trace),
        wait_spans=wait_spans(trace),
    )


def run_state(trace: Sequence[Event], measured: TraceMetrics, status: str = "") -> RunState:
    """How far the run got: finished (every task complete, race losers aside, and the run not stopped,
    running or failed), how many tasks finished, ran part way or never started, and whether it recorded
    tokens at all."""
    header_tasks = trace[0].metadata.get("tasks", {}) if trace else {}
    started = {event.target_id for event in trace if event.action == "task_started"}
    ended = {
        event.target_id: event
        for event in trace
        if event.action in ("task_complete", "task_failed", "task_cancelled")
    }
    finished = sum(1 for event in ended.values() if event.action == "task_complete")
    losers = sum(
        1
        for event in ended.values()
        if event.action == "task_cancelled" and event.metadata.get("reason") == "race_lost"
    )
    total = len(header_tasks) or len(started | set(ended))
    not_run = sum(1 for task in header_tasks if task not in started and task not in ended)
    cycles = [event for event in trace if event.action == "cycle_completed"]
    return RunState(
        status=status or ("complete" if measured.completed else "incomplete"),
        complete=measured.completed
        and status not in ("interrupted", "running", "failed", "timeout", "cancelled"),
        finished=finished + losers,
        partly=max(total - finished - losers - not_run, 0),
        not_run=not_run,
        total=total,
        tokens_recorded=any(name in event.metadata for event in cycles for name in USAGE_FIELDS),
    )


def _cost_by_kind(trace: Sequence[Event], plan: Plan, run_level: Mapping[str, Placement]) -> CostByKind:
    """What each kind of token cost the run (its tokens at the prices of the model each cycle ran on),
    and what the predicted median of that kind would have cost at what the run paid per token of it."""
    from cycleplan.core.prices import resolve

    scenario = plan.scenario
    tasks = {task.id: task for task in scenario.all_tasks()}
    paid = dict.fromkeys(TOKEN_KINDS, 0.0)
    for event in trace:
        if event.action != "cycle_completed":
            continue
        meta = event.metadata
        task = tasks.get(event.target_id)
        role = scenario.role(task.role) if task is not None else None
        model = str(meta.get("model") or (role.model if role is not None else ""))
        price = resolve(model, scenario.prices)
        if price is None:
            continue
        if role is not None:
            price = price.for_ttl(role.tokens.cache_ttl)
        hour = float(meta.get("cache_creation_1h_input_tokens") or 0)
        written = float(meta.get("cache_creation_input_tokens") or 0)
        paid["input_tokens"] += float(meta.get("input_tokens") or 0) * price.input_per_mtok / 1e6
        paid["cache_write_tokens"] += (
            (written - hour) * price.cache_write + hour * price.cache_write_1h
        ) / 1e6
        paid["cache_read_tokens"] += float(meta.get("cache_read_input_tokens") or 0) * price.cache_read / 1e6
        paid["output_tokens"] += float(meta.get("output_tokens") or 0) * price.output_per_mtok / 1e6
    predicted = {}
    for kind in TOKEN_KINDS:
        placed = run_level[kind]
        per_token = paid[kind] / placed.actual if placed.actual > 0 else 0.0
        predicted[kind] = placed.p50 * per_token
    return CostByKind(actual_usd=paid, predicted_usd=predicted)


def _names(names: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    return f"task{'s' if len(names) > 1 else ''} {listed}"


def _tasks(
    plan: Plan,
    trace: Sequence[Event],
    measured: TraceMetrics,
    starts: Mapping[str, float],
    prediction: Prediction,
    minute: float,
) -> list[TaskComparison]:
    planned_lane = {row.task: lane.lane for lane, row in plan.planned_tasks()}
    started = {event.target_id: event.actor_id for event in trace if event.action == "task_started"}
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
                actual_lane=span.lane if span is not None else started.get(task.id),
                status=span.status if span is not None else "partly run" if task.id in started else "not run",
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
    a simulation of the run's own plan and scenario (``replications`` from ``seed``). ``run_id`` may be
    any reference :meth:`~cycleplan.store.runs.RunStore.resolve` takes (``latest``, a prefix).

    Raises :class:`ComparisonError` for a missing store, an unknown run, a run without events or a
    prediction of other tasks.
    """
    from cycleplan.executor.summary import scenario_trace
    from cycleplan.store.runs import RunStore, StoreError

    if not Path(store).exists():
        raise ComparisonError(f"{store}: no run store here (pass --store PATH)")
    try:
        with RunStore(store, read_only=True) as runs:
            run_id = runs.resolve(run_id)
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


def summary_json(comparison: Comparison) -> dict[str, Any]:
    """What ``compare --json`` prints: everything but the prediction's arrays and the actual's curve, the
    verdict as data (``headline``, ``notice``, ``findings``) and each task's ``outside`` per quantity."""
    data = comparison.model_dump(mode="json")
    for row, task in zip(data["tasks"], comparison.tasks, strict=True):
        row["outside"] = task.outside
    return data
