"""Backtest: how far can a prediction calibrated on one's own history be trusted?

Leave-one-out over stored runs of one kind (imported Claude Code sessions, executed runs of one agent):
for each run, calibrate from all the others (:func:`cycleplan.workflows.calibration.calibrate`, with the
held-out run's own scenario as the prior at weight 0, so that only its structure is kept), predict the
held-out run from its own structure (its tasks, turns, subagents and models; not its durations, calls or
tokens), and place what actually happened in the predicted distribution:

- per run, its cost, cache reads, output tokens and makespan (agent time: what imports count as the
  agents' work, without the time they waited on a person) against the predicted P10/P50/P90, and the
  percentile of the actual value among the replications;
- per turn (cycle), its agent time against the predicted P10-P90 of that very cycle's work minutes.

``coverage`` is the share of held-out actuals inside P10-P90, per quantity and over all turns; a
calibrated prediction covers about 80%. Runs whose timelines repeat another's are counted once. Nothing
is written; the store is only read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from cycleplan.core.metrics import MS_PER_MIN, metrics
from cycleplan.core.model import Event, Frozen, Plan
from cycleplan.workflows.bands import percentile_of
from cycleplan.workflows.calibration import CalibrationError, calibrate, distinct_runs

QUANTITIES = ("cost_usd", "cache_read_tokens", "output_tokens", "makespan_min")
"""What each held-out run is judged on, as :class:`cycleplan.core.metrics.TraceMetrics` names it."""

Progress = Callable[[int, int], None]
"""Called with (held-out runs done, runs in all)."""


class BacktestError(Exception):
    """The runs cannot be backtested (too few, of different kinds, unknown, without cycles)."""


class Band(Frozen):
    """An actual value and the predicted distribution it is held against."""

    actual: float
    p10: float
    p50: float
    p90: float
    percentile: float = Field(description="Where the actual falls among the replications (0-100).")

    @property
    def inside(self) -> bool:
        return self.p10 <= self.actual <= self.p90


class TurnBand(Frozen):
    """One turn's actual agent minutes against the predicted minutes of that cycle."""

    task: str
    role: str
    cycle: int
    actual_min: float
    p10_min: float
    p50_min: float
    p90_min: float

    @property
    def inside(self) -> bool:
        return self.p10_min <= self.actual_min <= self.p90_min

    @property
    def ratio(self) -> float:
        """P90 / P10: how wide the band is."""
        return self.p90_min / self.p10_min if self.p10_min > 0 else float("inf")


class HeldOut(Frozen):
    """One run predicted from the others."""

    run_id: str
    source: str
    calibrated_from: list[str]
    quantities: dict[str, Band]
    turns: list[TurnBand]
    notes: list[str] = Field(default_factory=list)


class Backtest(Frozen):
    """Every held-out run, and how often the predictions covered what happened."""

    kind: str
    replications: int
    seed: int
    runs: list[HeldOut]
    coverage: dict[str, float] = Field(
        description="Share of held-out actuals inside P10-P90: per quantity, and turn_duration over turns."
    )
    median_error: dict[str, float] = Field(description="Median of |P50 - actual| / actual per quantity.")
    turn_ratio_median: float = Field(description="Median over turns of the predicted P90 / P10.")
    notes: list[str] = Field(default_factory=list)


def _kind(record: Any) -> str:
    imported = (record.summary or {}).get("imported")
    if isinstance(imported, dict) and imported.get("kind"):
        return f"imported {imported['kind']}"
    return f"executed {record.agent}"


def _band(samples: Sequence[float], actual: float) -> Band:
    values = np.asarray(samples, dtype=float)
    p10, p50, p90 = (float(x) for x in np.percentile(values, [10, 50, 90]))
    return Band(actual=actual, p10=p10, p50=p50, p90=p90, percentile=percentile_of(values, actual))


def _turns(trace: Sequence[Event], roles: dict[str, str]) -> dict[tuple[str, int], float]:
    """Each completed cycle's agent minutes (its attempts' work together)."""
    minutes: dict[tuple[str, int], float] = {}
    for event in trace:
        if event.action != "cycle_completed" or event.metadata.get("interrupted"):
            continue
        key = (event.target_id, int(event.metadata.get("cycle") or 0))
        minutes[key] = minutes.get(key, 0.0) + float(event.metadata.get("duration_ms") or 0) / MS_PER_MIN
    return {key: value for key, value in minutes.items() if key[0] in roles}


def backtest(
    store: str | Path,
    run_ids: Sequence[str],
    *,
    replications: int = 1000,
    seed: int = 0,
    progress: Progress | None = None,
) -> Backtest:
    """Predict each of ``run_ids`` (ids, or any reference :meth:`~cycleplan.store.runs.RunStore.resolve`
    takes) from the others (leave one out); raises :class:`BacktestError`."""
    from cycleplan.executor.summary import scenario_trace
    from cycleplan.sim import SimulationError, cycle_minutes, simulate
    from cycleplan.store.runs import RunStore, StoreError

    if len(set(run_ids)) < 2:
        raise BacktestError(
            "give at least two runs: each is predicted from the others (see `cycleplan runs`)"
        )
    if not Path(store).exists():
        raise BacktestError(f"{store}: no run store here (pass --store PATH)")
    traces: list[tuple[str, list[Event]]] = []
    plans: dict[str, Plan] = {}
    sources: dict[str, str] = {}
    kinds: dict[str, str] = {}
    try:
        with RunStore(store, read_only=True) as runs:
            run_ids = list(dict.fromkeys(runs.resolve(ref) for ref in run_ids))
            if len(run_ids) < 2:
                raise BacktestError(f"the runs given are all run {run_ids[0]}: give at least two runs")
            for run_id in run_ids:
                record = runs.run(run_id)
                scale = float(record.options.get("time_scale", 1.0))
                traces.append((run_id, scenario_trace(runs.trace(run_id), scale)))
                plans[run_id] = Plan.model_validate_json(record.plan_json)
                sources[run_id] = record.source
                kinds[run_id] = _kind(record)
    except StoreError as exc:
        raise BacktestError(str(exc)) from None
    if len(set(kinds.values())) > 1:
        listed = "; ".join(f"{run} is {kind}" for run, kind in kinds.items())
        raise BacktestError(
            f"the runs are of different kinds ({listed}): backtest runs of one kind at a time"
        )
    for run_id, trace in traces:
        if not any(event.action == "cycle_completed" for event in trace):
            raise BacktestError(f"run {run_id} holds no completed cycle: nothing to predict or learn from")
    kept, notes = distinct_runs(traces)
    if len(kept) < 2:
        raise BacktestError("fewer than two distinct runs remain: " + "; ".join(notes))

    held: list[HeldOut] = []
    for position, (run_id, held_trace) in enumerate(kept):
        others = [(other, events) for other, events in kept if other != run_id]
        plan = plans[run_id]
        try:
            calibration = calibrate(others, plan.scenario, prior_weight=0.0)
        except CalibrationError as exc:
            raise BacktestError(f"run {run_id}: {exc}") from None
        scenario = calibration.scenario
        run_notes = list(calibration.notes)
        for role in plan.scenario.role_names():
            if role not in calibration.roles:
                run_notes.append(f"role '{role}': no other run has it, so it is predicted from its defaults")
        try:
            prediction = simulate(plan, scenario, replications=replications, seed=seed, engine="auto")
            per_cycle = cycle_minutes(plan, scenario, replications=replications, seed=seed)
        except SimulationError as exc:
            raise BacktestError(f"run {run_id}: its plan cannot be simulated: {exc}") from None
        actual = metrics(held_trace)
        quantities = {
            name: _band(prediction.replications.values[name], float(getattr(actual, name)))
            for name in QUANTITIES
        }
        roles = {task.id: task.role for task in plan.scenario.all_tasks()}
        turns = []
        for (task, cycle), minutes in sorted(_turns(held_trace, roles).items()):
            predicted = per_cycle[task][:, cycle - 1]
            predicted = predicted[~np.isnan(predicted)]
            if not len(predicted):
                continue
            p10, p50, p90 = (float(x) for x in np.percentile(predicted, [10, 50, 90]))
            turns.append(
                TurnBand(
                    task=task,
                    role=roles[task],
                    cycle=cycle,
                    actual_min=minutes,
                    p10_min=p10,
                    p50_min=p50,
                    p90_min=p90,
                )
            )
        held.append(
            HeldOut(
                run_id=run_id,
                source=sources[run_id],
                calibrated_from=[other for other, _ in others],
                quantities=quantities,
                turns=turns,
                notes=run_notes,
            )
        )
        if progress is not None:
            progress(position + 1, len(kept))

    coverage = {name: float(np.mean([run.quantities[name].inside for run in held])) for name in QUANTITIES}
    every_turn = [turn for run in held for turn in run.turns]
    coverage["turn_duration"] = float(np.mean([turn.inside for turn in every_turn])) if every_turn else 0.0
    errors = {
        name: float(
            np.median(
                [
                    abs(run.quantities[name].p50 - run.quantities[name].actual) / run.quantities[name].actual
                    for run in held
                    if run.quantities[name].actual > 0
                ]
                or [np.nan]
            )
        )
        for name in QUANTITIES
    }
    return Backtest(
        kind=next(iter(kinds.values())),
        replications=replications,
        seed=seed,
        runs=held,
        coverage=coverage,
        median_error=errors,
        turn_ratio_median=float(np.median([turn.ratio for turn in every_turn])) if every_turn else 0.0,
        notes=notes,
    )


def backtest_json(result: Backtest) -> dict[str, Any]:
    """What ``cycleplan backtest --json`` prints: ``runs`` with, per held-out run, ``run_id`` and an
    ``{actual, p10, p50, p90, percentile}`` object per quantity (and its ``turns``); ``coverage``; the
    median errors; and the median turn band width."""
    return {
        "kind": result.kind,
        "replications": result.replications,
        "seed": result.seed,
        "runs": [
            {
                "run_id": run.run_id,
                "source": run.source,
                "calibrated_from": run.calibrated_from,
                **{name: band.model_dump() for name, band in run.quantities.items()},
                "turns": [
                    {**turn.model_dump(), "inside": turn.inside, "ratio": turn.ratio} for turn in run.turns
                ],
                "notes": run.notes,
            }
            for run in result.runs
        ],
        "coverage": result.coverage,
        "median_error": result.median_error,
        "turn_ratio_median": result.turn_ratio_median,
        "notes": result.notes,
    }
