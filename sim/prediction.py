"""The simulator's result: per-replication arrays, their summaries, criticality, per-task percentiles,
cumulative tokens and cost over time, and one trace.

A :class:`Prediction` carries its configuration (seed, replications, dispatch, ideal, engine, version,
runtime) so that it can be reproduced, and saves to JSON and loads back without loss. Everything in it
but ``config.runtime_s`` is a function of the plan and the configuration. Only the per-replication arrays
grow with the number of replications: per-task percentiles and the cumulative curves have a fixed size.
Importing this module does not import SimPy.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cycleplan.core.model import Claim, Event, Frozen
from cycleplan.sim.stats import Summary

SCALARS = (
    "makespan_min",
    "sequential_min",
    "speedup",
    "cost_usd",
    "tokens_total",
    "tokens_read",
    "input_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "output_tokens",
    "context_tokens",
    "utilization",
    "work_min",
    "failures",
    "failed_cycles",
    "cancellations",
    "waste_min",
    "waste_tokens",
    "waste_cost_usd",
    "blocked_min",
    "completed",
)
"""The per-replication quantities with one value each, in :attr:`Replications.values`."""


class PredictionConfig(Frozen):
    """How the prediction was made."""

    scenario: str
    algorithm: str
    rule: str | None
    seed: int
    replications: int
    dispatch: str
    ideal: bool
    version: str
    prices_as_of: str
    runtime_s: float = Field(
        description="Wall-clock seconds the simulation took (the only non-reproducible field)."
    )
    engine: str = Field(default="simpy", description="simpy, or fast (the max-plus recursion).")
    engine_fallbacks: int = Field(
        default=0,
        description="Replications the fast engine handed to the SimPy engine because they left its static "
        "model (a task ran out of retries, or a race ended in an exact tie).",
    )
    trace_cycles: bool = Field(
        default=True,
        description="The median trace holds every cycle attempt; False when that would make it longer "
        "than cycleplan.sim.memory.MAX_TRACE_EVENTS events: it holds its tasks' starts, published events "
        "and ends only (enough for a Gantt chart, not to measure tokens or work from).",
    )


class Replications(Frozen):
    """Per-replication values, one list entry per replication, in replication order."""

    values: dict[str, list[float]]
    """Each of :data:`SCALARS`; ``completed`` is 1.0 when every task finished."""
    utilization_by_lane: dict[str, list[float]]
    utilization_by_role: dict[str, list[float]]
    waits_min: dict[str, list[float]]
    """dependency, sync, lane, rate_limit (see :data:`cycleplan.core.metrics.WAIT_CAUSES`)."""
    tokens_by_role: dict[str, list[float]]
    cost_by_role: dict[str, list[float]]


class Percentiles(Frozen):
    """P10, P50 and P90 of one quantity over the replications."""

    p10: float
    p50: float
    p90: float


class TaskPrediction(Frozen):
    """One task's predicted times, in minutes since the run's start, over the replications in which it
    worked (``ran`` of them): ``start`` is when its first cycle began (after any wait before it), ``finish``
    when it ended (completed, failed or cancelled), ``duration`` the difference, per replication."""

    lane: str
    """The lane the plan puts it on."""
    ran: float
    """Share of replications in which the task worked at least one cycle."""
    start: Percentiles | None
    """None when the task never worked (e.g. a race member the plan never runs)."""
    finish: Percentiles | None
    duration: Percentiles | None


class Cumulative(Frozen):
    """Tokens and dollars spent by each minute of the run: P10/P50/P90 curves over the replications.

    ``grid_min`` runs from 0 to the first point at or after the longest replication's end, so the last
    point holds the distribution of the totals. A replication's value at a point counts every cycle attempt
    completed (or interrupted) by then. The values come from a fixed-size histogram per point, so memory
    and size do not grow with the replications: each is within ``tokens_resolution`` tokens (and
    ``cost_resolution`` dollars) of the exact percentile, and exact when every replication agrees.
    """

    grid_min: list[float]
    tokens_p10: list[float]
    tokens_p50: list[float]
    tokens_p90: list[float]
    cost_p10: list[float]
    cost_p50: list[float]
    cost_p90: list[float]
    tokens_resolution: float
    cost_resolution: float


class Prediction(Frozen):
    """What the simulator predicts for a plan: distributions, not single numbers."""

    config: PredictionConfig
    claim: Claim | None
    plan_makespan_min: float
    plan_sequential_min: float
    plan_speedup: float
    lanes: dict[str, str | None]
    replications: Replications
    summaries: dict[str, Summary]
    """Every scalar by name, plus ``waits_min.<cause>``, ``utilization_by_role.<role>`` and
    ``utilization_by_lane.<lane>``."""
    criticality: dict[str, float]
    """Task -> share of replications in which it had zero slack."""
    median_replication: int
    """The replication whose makespan is the median (the lower middle one for an even count)."""
    trace: list[Event]
    """The median replication's events, in the ONE platform's schema (without its cycle attempts when
    ``config.trace_cycles`` is False)."""
    tasks: dict[str, TaskPrediction] = Field(default_factory=dict)
    """Each task's predicted start, finish and duration (task id -> percentiles)."""
    cumulative: Cumulative | None = None
    """Cumulative tokens and cost over time (None in predictions saved before it existed)."""

    def summary(self, name: str) -> Summary:
        return self.summaries[name]

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)

    def save(self, path: str | Path) -> None:
        """Write as JSON (via a temporary file, so a crash never leaves half a file)."""
        target = Path(path)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(self.to_json() + "\n", encoding="utf-8")
        temporary.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> Prediction:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
