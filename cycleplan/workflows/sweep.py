"""What-if at scale: one scenario planned and simulated under many configurations, compared fairly.

A configuration is a lane count (for one role, or for every role) and a planning algorithm. Each one is
planned and simulated on its own, from the same seed, so every configuration meets the same draws
(common random numbers): differences between configurations are paired replication by replication, and
their confidence intervals show the configurations' difference rather than the noise of independent
samples. :func:`sweep` returns the summaries per configuration, the time/cost Pareto front and a
recommendation in words: the smallest lane count whose P50 makespan is within a given share of the best.

Configurations run in parallel through :mod:`cycleplan.workflows.fanout`: in this process (one
worker), on a local process pool (all cores by default), or on a Dask cluster (``dask`` extra, imported
only then). Each configuration's result depends
only on the scenario, the configuration and the seed, so every backend gives the same numbers (the
planners are deterministic unless given a wall-clock limit). This module never imports the CLI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from cycleplan.core.model import Frozen, Scenario
from cycleplan.core.wording import counted, duration
from cycleplan.sim.layout import SimulationError
from cycleplan.sim.stats import Summary, confidence_interval
from cycleplan.workflows.fanout import DaskRunner, FanoutError, Runner, open_dask, runner_for

MAX_CONFIGURATIONS = 1_000
DEFAULT_WITHIN_PERCENT = 10.0


class SweepError(FanoutError):
    """A sweep that cannot run as asked (``field`` names the option to fix)."""


class Difference(Frozen):
    """A configuration's makespan against another's on the same draws (minutes; positive: slower)."""

    against: str
    """The other configuration's label."""
    mean_min: float
    ci95_low_min: float
    ci95_high_min: float
    slower_share: float = Field(description="Share of replications in which this configuration is slower.")


class ConfigurationResult(Frozen):
    """One configuration: what it is, its plan, and its predicted distributions."""

    label: str
    lanes: int
    """The lane count swept (of ``role``, or of every role)."""
    algorithm: str
    total_lanes: int
    plan_makespan_min: float
    engine: str
    makespan_min: Summary
    speedup: Summary
    cost_usd: Summary
    utilization: Summary
    versus_best: Difference | None
    """Against the configuration with the smallest P50 makespan (None for that one)."""
    versus_fewer: Difference | None
    """Against the same algorithm with the next smaller lane count (None for the smallest)."""
    pareto: bool
    """On the time/cost Pareto front: no other configuration is at least as fast (P50 makespan), as cheap
    (P50 cost) and as small (lanes in all), and better in one of them."""
    runtime_s: float


class SweepResult(Frozen):
    """Every configuration of a sweep, the time/cost Pareto front and the recommendation."""

    scenario: str
    role: str | None
    """The role whose lanes vary; None: every role gets the lane count."""
    replications: int
    seed: int
    dispatch: str
    engine: str
    within_percent: float
    configurations: list[ConfigurationResult]
    best: int
    """Index of the configuration with the smallest P50 makespan."""
    recommended: int
    """Index of the smallest lane count whose P50 makespan is within ``within_percent`` of the best."""
    pareto: list[int]
    """Indices on the time/cost Pareto front (see :attr:`ConfigurationResult.pareto`), by P50 makespan."""
    recommendation: str
    backend: str
    """serial, local (a process pool) or dask."""
    workers: int
    runtime_s: float = Field(description="Wall-clock seconds (the only non-reproducible field).")

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)


@dataclass(frozen=True)
class Job:
    """One configuration to plan and simulate; everything a worker needs, picklable."""

    scenario: Scenario
    lanes: int
    role: str | None
    algorithm: str
    replications: int
    seed: int
    dispatch: str
    engine: str


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back: summaries, and the arrays that pairing needs."""

    lanes: int
    algorithm: str
    total_lanes: int
    plan_makespan_min: float
    engine: str
    summaries: dict[str, Summary]
    makespan_min: list[float]
    runtime_s: float


def configure(scenario: Scenario, lanes: int, role: str | None) -> Scenario:
    """``scenario`` with ``lanes`` lanes for ``role`` (or for every role when ``role`` is None)."""
    roles = [role] if role is not None else scenario.role_names()
    return scenario.with_lanes(dict.fromkeys(roles, lanes))


def run_job(job: Job) -> Outcome:
    """Plan and simulate one configuration (the unit of work every backend runs)."""
    from cycleplan.planner import plan
    from cycleplan.sim.simulation import simulate

    began = time.perf_counter()
    planned = plan(configure(job.scenario, job.lanes, job.role), algorithm=job.algorithm)
    prediction = simulate(
        planned, replications=job.replications, seed=job.seed, dispatch=job.dispatch, engine=job.engine
    )
    return Outcome(
        lanes=job.lanes,
        algorithm=job.algorithm,
        total_lanes=len(planned.lanes),
        plan_makespan_min=planned.makespan_min,
        engine=prediction.config.engine,
        summaries={
            name: prediction.summaries[name]
            for name in ("makespan_min", "speedup", "cost_usd", "utilization")
        },
        makespan_min=prediction.replications.values["makespan_min"],
        runtime_s=time.perf_counter() - began,
    )


def dask_runner(client: Any) -> DaskRunner:
    """Jobs on a Dask cluster through ``client`` (a :class:`distributed.Client`), results in job order."""
    return DaskRunner(client)


def parse_lanes(text: str) -> list[int]:
    """``1..8``, ``1,2,4,8`` or ``3`` into sorted distinct lane counts."""
    counts: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, dots, high = part.partition("..")
        try:
            if dots:
                first, last = int(low), int(high)
                if first > last:
                    raise SweepError("lanes", f"{part}: the range runs backwards; write {last}..{first}")
                counts.update(range(first, last + 1))
            else:
                counts.add(int(part))
        except ValueError:
            raise SweepError(
                "lanes", f"{part or text!r}: write a range like 1..8 or a list like 1,2,4"
            ) from None
    if not counts or min(counts) < 1 or max(counts) > 1000:
        raise SweepError("lanes", "lane counts must be whole numbers from 1 to 1000")
    return sorted(counts)


def sweep(
    scenario: Scenario,
    lanes: Sequence[int],
    *,
    role: str | None = None,
    algorithms: Sequence[str] = ("improve",),
    replications: int = 1000,
    seed: int = 0,
    dispatch: str = "plan",
    engine: str = "auto",
    within_percent: float = DEFAULT_WITHIN_PERCENT,
    workers: int | None = None,
    runner: Runner | None = None,
    backend: str | None = None,
) -> SweepResult:
    """Plan and simulate ``scenario`` for every lane count and algorithm, on common random numbers.

    ``workers``: processes of the local pool (default: every core; 1 runs in this process). ``runner``
    replaces the pool (:mod:`cycleplan.workflows.fanout`), e.g. :func:`dask_runner`; ``backend`` then
    names it in the result.
    """
    from cycleplan.planner import ALGORITHMS

    began = time.perf_counter()
    if role is not None and role not in scenario.role_names():
        raise SweepError(
            "role", f"no role '{role}' in this scenario; roles: {', '.join(scenario.role_names())}"
        )
    for algorithm in algorithms:
        if algorithm not in ALGORITHMS:
            raise SweepError(
                "algorithms", f"unknown algorithm '{algorithm}'; choose from {', '.join(ALGORITHMS)}"
            )
    if not algorithms:
        raise SweepError("algorithms", "name at least one algorithm")
    if not 0 <= within_percent <= 1000 or math.isnan(within_percent):
        raise SweepError("within", f"must be a percentage from 0 to 1000, got {within_percent:g}")
    if not lanes:
        raise SweepError("lanes", "name at least one lane count")
    jobs = [
        Job(scenario, count, role, algorithm, replications, seed, dispatch, engine)
        for algorithm in dict.fromkeys(algorithms)
        for count in sorted(set(lanes))
    ]
    if len(jobs) > MAX_CONFIGURATIONS:
        raise SweepError("lanes", f"{len(jobs)} configurations; at most {MAX_CONFIGURATIONS}")
    # Fail on bad settings here, once, rather than in every worker.
    from cycleplan.sim.simulation import _check

    _check(replications, seed, dispatch, engine)
    owned = runner is None
    if runner is None:
        runner = runner_for(workers, len(jobs), preload=("cycleplan.planner", "cycleplan.sim.simulation"))
        backend, used_workers = runner.backend, runner.workers
    else:
        used_workers = workers or 0
    try:
        outcomes = runner.map(run_job, jobs)
    finally:
        if owned:
            runner.close()
    return summarize_sweep(
        scenario,
        outcomes,
        role=role,
        replications=replications,
        seed=seed,
        dispatch=dispatch,
        engine=engine,
        within_percent=within_percent,
        backend=backend or "custom",
        workers=used_workers,
        runtime_s=time.perf_counter() - began,
    )


def _label(outcome: Outcome, several_algorithms: bool) -> str:
    lanes = counted(outcome.lanes, "lane")
    return f"{lanes}, {outcome.algorithm}" if several_algorithms else lanes


def _difference(values: list[float], other: list[float], against: str) -> Difference:
    paired = np.asarray(values) - np.asarray(other)
    low, high = confidence_interval(paired)
    return Difference(
        against=against,
        mean_min=float(paired.mean()),
        ci95_low_min=low,
        ci95_high_min=high,
        slower_share=float((paired > 0).mean()),
    )


def pareto_front(points: Sequence[tuple[float, ...]]) -> list[int]:
    """Indices of the points no other point dominates (every coordinate at most, one strictly less),
    ordered by their coordinates."""
    front = [
        index
        for index, point in enumerate(points)
        if not any(
            all(theirs <= ours for theirs, ours in zip(other, point, strict=True)) and other != point
            for other in points
        )
    ]
    return sorted(front, key=lambda index: (*points[index], index))


def summarize_sweep(
    scenario: Scenario,
    outcomes: Sequence[Outcome],
    *,
    role: str | None,
    replications: int,
    seed: int,
    dispatch: str,
    engine: str,
    within_percent: float,
    backend: str,
    workers: int,
    runtime_s: float,
) -> SweepResult:
    """Pair, rank and describe the configurations' outcomes (in the order they were given)."""

    several = len({outcome.algorithm for outcome in outcomes}) > 1
    labels = [_label(outcome, several) for outcome in outcomes]
    p50 = [outcome.summaries["makespan_min"].p50 for outcome in outcomes]
    cost = [outcome.summaries["cost_usd"].p50 for outcome in outcomes]
    best = min(range(len(outcomes)), key=lambda index: (p50[index], outcomes[index].lanes, index))
    # Cost alone rarely depends on lanes (each task's tokens are its own): the lanes held break the ties.
    front = pareto_front(
        [(p50[index], cost[index], float(outcomes[index].total_lanes)) for index in range(len(outcomes))]
    )
    limit = p50[best] * (1 + within_percent / 100)
    recommended = min(
        (index for index in range(len(outcomes)) if p50[index] <= limit + 1e-9),
        key=lambda index: (outcomes[index].lanes, p50[index], index),
    )
    configurations = []
    for index, outcome in enumerate(outcomes):
        fewer = [
            other
            for other in range(len(outcomes))
            if outcomes[other].algorithm == outcome.algorithm and outcomes[other].lanes < outcome.lanes
        ]
        previous = max(fewer, key=lambda other: outcomes[other].lanes) if fewer else None
        configurations.append(
            ConfigurationResult(
                label=labels[index],
                lanes=outcome.lanes,
                algorithm=outcome.algorithm,
                total_lanes=outcome.total_lanes,
                plan_makespan_min=outcome.plan_makespan_min,
                engine=outcome.engine,
                makespan_min=outcome.summaries["makespan_min"],
                speedup=outcome.summaries["speedup"],
                cost_usd=outcome.summaries["cost_usd"],
                utilization=outcome.summaries["utilization"],
                versus_best=None
                if index == best
                else _difference(outcome.makespan_min, outcomes[best].makespan_min, labels[best]),
                versus_fewer=None
                if previous is None
                else _difference(outcome.makespan_min, outcomes[previous].makespan_min, labels[previous]),
                pareto=index in front,
                runtime_s=outcome.runtime_s,
            )
        )
    chosen = outcomes[recommended]
    lanes = (
        f"{counted(chosen.lanes, 'lane')} per role" if role is None else counted(chosen.lanes, f"{role} lane")
    )
    words = (
        f"Run {lanes} ({chosen.algorithm} plan, {counted(chosen.total_lanes, 'lane')} in all): P50 makespan "
        f"{duration(p50[recommended])}, P50 cost ${cost[recommended]:,.2f}"
    )
    if recommended == best:
        words += "; no configuration tried is faster at the P50."
    else:
        gap = 100 * (p50[recommended] / p50[best] - 1) if p50[best] > 0 else 0.0
        saving = configurations[recommended].versus_best
        assert saving is not None
        words += (
            f", {gap:.1f}% slower than the fastest ({configurations[best].label}: "
            f"{duration(p50[best])} at ${cost[best]:,.2f}), within the {within_percent:g}% asked. "
            f"On the same draws the fastest saves {saving.mean_min:,.1f} min on average "
            f"(95% CI {saving.ci95_low_min:,.1f} to {saving.ci95_high_min:,.1f})"
            f" and is faster in {saving.slower_share:.0%} of replications."
        )
    return SweepResult(
        scenario=scenario.name,
        role=role,
        replications=replications,
        seed=seed,
        dispatch=dispatch,
        engine=engine,
        within_percent=within_percent,
        configurations=configurations,
        best=best,
        recommended=recommended,
        pareto=front,
        recommendation=words,
        backend=backend,
        workers=workers,
        runtime_s=runtime_s,
    )


__all__ = [
    "ConfigurationResult",
    "Difference",
    "Job",
    "Outcome",
    "SimulationError",
    "SweepError",
    "SweepResult",
    "dask_runner",
    "open_dask",
    "pareto_front",
    "parse_lanes",
    "run_job",
    "sweep",
]
