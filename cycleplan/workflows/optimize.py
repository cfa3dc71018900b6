"""How many agents, and which model for which role: the best configuration under a budget or a deadline.

A configuration is a lane count and a model per role; the search space is the product of the lane
counts and the models each role may use (:attr:`cycleplan.core.model.Role.models`). The objective is
the P90 makespan (``makespan``) or the mean cost (``cost``), subject to P(cost > budget) <= risk and
P(makespan > deadline) <= risk for whichever of the two are given.

The search is successive halving on common random numbers. Every configuration meets the same draws
(replication ``i`` of every configuration comes from the same seed), and a configuration that survives a
round gets more replications on top of those it has: rounds of 10, 30, 90 and 200 replications in all.
After each round but the last a configuration is dropped when

- it breaks a constraint with confidence: the Clopper-Pearson 95% lower bound (scipy's beta) of
  P(cost > budget) or P(makespan > deadline) is above ``risk``; or
- it is clearly worse on the objective: of those left, the third with the best estimates go on, and so
  does any other whose optimistic bound (the 10% order-statistic bound of the P90, or the mean less
  1.28 standard errors) is below the pessimistic bound of the best (a statistical tie), up to 40% of them.

The survivors of the last round have 200 replications each, the very draws an exhaustive search gives
them, so the choice equals the exhaustive choice whenever the exhaustive best survives. The best and the
runner-up are then compared by a paired bootstrap over their common replications (95% interval of the
difference of the objective; distinguishable when it excludes 0). ``exhaustive=True`` runs every
configuration at 200 replications instead (for benchmarks and tests).

Each configuration is simulated on the plan of its lane counts, made once from the roles' own models
(:func:`configured_plan`): its models change the draws (durations, tokens, failures, prices), not the
lanes' order. Configurations run in batches through :mod:`cycleplan.workflows.fanout` (this process, a
local pool, or Dask); each worker keeps its plans and the simulators of the configurations it has seen
(:data:`_SIMULATORS`), so that a later round sets up only what another worker ran before. The fast
engine runs where the model allows (``engine="auto"``). This module never imports the CLI or the
presentation.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from cycleplan.core.model import Frozen, Plan, Scenario
from cycleplan.core.prices import model_base
from cycleplan.core.wording import duration
from cycleplan.sim.stats import Summary, summarize
from cycleplan.workflows.fanout import FanoutError, Runner, runner_for

if TYPE_CHECKING:
    from cycleplan.sim.simulation import Simulator

FloatArray = npt.NDArray[np.float64]
Objective = Literal["makespan", "cost"]

ROUNDS = (10, 30, 90, 200)
"""Replications a configuration has after each round of the search."""
MAX_CONFIGURATIONS = 100_000
KEEP_SHARE = 1 / 3
"""The share of the configurations left that goes on to the next round on its estimate alone."""
MAX_KEEP_SHARE = 0.4
"""At most this share goes on, statistical ties included."""
Z_RANK = 1.2815515655446004
"""The optimistic and pessimistic bounds of an estimate are this many standard errors (or the order
statistics this many binomial standard deviations) from it: one-sided 90%."""
CONFIDENCE = 0.95
"""Of the Clopper-Pearson bound that drops a configuration as infeasible, and of the bootstrap interval."""
BOOTSTRAP_RESAMPLES = 2000
EXIT_INFEASIBLE = 1
"""The CLI's exit status when no configuration keeps the constraints (documented there)."""


class OptimizeError(FanoutError):
    """An optimization that cannot run as asked, or finds no feasible configuration (``field`` names
    the option to change; ``infeasible`` when nothing keeps the constraints)."""


# --------------------------------------------------------------------------------------------------
# The result


class ConfigurationEstimate(Frozen):
    """One configuration and what its replications predict."""

    label: str
    lanes: dict[str, int]
    """Lanes per role (every role of the scenario)."""
    models: dict[str, str]
    """Model per role (every role of the scenario)."""
    replications: int
    """Replications it got before the search dropped it (or all of them)."""
    makespan_min: Summary
    cost_usd: Summary
    p_over_budget: float | None
    """Share of its replications that cost more than the budget (None: no budget)."""
    p_late: float | None
    """Share of its replications whose makespan passed the deadline (None: no deadline)."""
    feasible: bool
    """Both shares at most the risk."""

    def chances(self, digits: int = 1) -> str:
        """Its chances of breaking the limits given, in words: ``P(over budget) 2.5%, P(late) 0.0%``."""
        said = []
        if self.p_over_budget is not None:
            said.append(f"P(over budget) {self.p_over_budget:.{digits}%}")
        if self.p_late is not None:
            said.append(f"P(late) {self.p_late:.{digits}%}")
        return ", ".join(said)


class Comparison(Frozen):
    """The runner-up against the chosen configuration on their common replications (paired bootstrap)."""

    metric: str
    """``makespan_p90_min`` or ``cost_mean_usd``."""
    difference: float
    """Runner-up minus chosen (positive: the chosen one is better)."""
    ci95_low: float
    ci95_high: float
    distinguishable: bool
    """The 95% interval excludes 0."""
    replications: int


class ChoiceAt(Frozen):
    """The configuration the estimates choose at another budget (or deadline)."""

    limit: float
    """The budget in USD (``makespan`` objective) or the deadline in minutes (``cost`` objective)."""
    label: str | None
    """None: nothing keeps this limit."""
    makespan_p90_min: float | None
    cost_mean_usd: float | None


class Round(Frozen):
    """One round of the search."""

    replications: int
    """Replications each configuration of the round has at its end."""
    configurations: int
    infeasible: int
    """Dropped as breaking a constraint with confidence."""
    kept: int


class OptimizeResult(Frozen):
    """The chosen configuration, its prediction, the runner-up, the Pareto front and how the choice moves."""

    scenario: str
    objective: Objective
    budget_usd: float | None
    deadline_min: float | None
    risk: float
    seed: int
    search: Literal["successive halving", "exhaustive"]
    configurations: int
    """The size of the search space."""
    chosen: ConfigurationEstimate
    runner_up: ConfigurationEstimate | None
    versus_runner_up: Comparison | None
    pareto: list[ConfigurationEstimate]
    """The configurations no other beats on both P90 makespan and mean cost (estimates from the
    replications each got), by P90 makespan."""
    by_limit: list[ChoiceAt]
    """The choice at other budgets (``makespan``) or deadlines (``cost``), from the same estimates."""
    rounds: list[Round]
    replications_used: int
    replications_exhaustive: int
    """What an exhaustive search at 200 replications would run."""
    engine: str
    chosen_yaml: str
    """The chosen configuration as a scenario: lanes and model per role set, no role listing others."""
    backend: str
    workers: int
    runtime_s: float = Field(description="Wall-clock seconds (the only non-reproducible field).")

    @property
    def summary(self) -> str:
        """The choice in one sentence."""
        chosen = self.chosen
        return (
            f"{chosen.label}: P90 makespan {duration(chosen.makespan_min.p90)}, P90 cost "
            f"${chosen.cost_usd.p90:,.2f}"
        )


# --------------------------------------------------------------------------------------------------
# The space


@dataclass(frozen=True)
class Space:
    """The configurations to search: per role, the lane counts and the models to try."""

    roles: tuple[str, ...]
    lanes: tuple[tuple[int, ...], ...]
    models: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return math.prod(len(counts) for counts in self.lanes) * math.prod(len(m) for m in self.models)

    def configurations(self) -> list[tuple[tuple[int, ...], tuple[str, ...]]]:
        return [
            (lanes, models)
            for lanes in itertools.product(*self.lanes)
            for models in itertools.product(*self.models)
        ]

    def label(self, lanes: Sequence[int], models: Sequence[str]) -> str:
        """``backend 2x claude-opus-4-6, frontend 1x claude-sonnet-4-5`` for the roles that vary, or the
        scenario as written."""
        parts = []
        for index, role in enumerate(self.roles):
            if len(self.lanes[index]) > 1 or len(self.models[index]) > 1:
                parts.append(f"{role} {lanes[index]}x {_short(models[index])}")
        return ", ".join(parts) or "as written"


def _short(model: str) -> str:
    return model.removeprefix("claude-")


def search_space(
    scenario: Scenario,
    lanes: Mapping[str, Sequence[int]] | None = None,
    models: Mapping[str, Sequence[str]] | None = None,
) -> Space:
    """The space: every role at its lanes as written unless ``lanes`` names counts for it, and on every
    model it may use (its own and its ``models``) unless ``models`` names some of those."""
    lanes = lanes or {}
    models = models or {}
    roles = scenario.role_names()
    for name in [*lanes, *models]:
        if name not in roles:
            raise OptimizeError("role", f"no role '{name}' in this scenario; roles: {', '.join(roles)}")
    chosen_models = []
    for name in roles:
        choices = scenario.role(name).model_choices()
        # A dated id (claude-haiku-4-5-20251001) asks for the model its base names, as the role lists it.
        listed = {model_base(model): model for model in choices}
        asked = list(
            dict.fromkeys(listed.get(model_base(model), model) for model in models.get(name, choices))
        )
        unknown = [model for model in asked if model not in choices]
        if unknown:
            raise OptimizeError(
                "models",
                f"{name}={','.join(asked)}: '{unknown[0]}' is not among the models role {name} may use "
                f"({', '.join(choices)}); list it under the role's 'models:' in the scenario",
            )
        if not asked:
            raise OptimizeError("models", f"{name}: name at least one model")
        chosen_models.append(tuple(asked))
    space = Space(
        roles=tuple(roles),
        lanes=tuple(tuple(sorted(set(lanes.get(name, [scenario.role(name).lanes])))) for name in roles),
        models=tuple(chosen_models),
    )
    if len(space) > MAX_CONFIGURATIONS:
        raise OptimizeError("lanes", f"{len(space):,} configurations; at most {MAX_CONFIGURATIONS:,}")
    return space


# --------------------------------------------------------------------------------------------------
# The work a worker does


@dataclass(frozen=True)
class Batch:
    """Some configurations, each to be given replications ``first`` to ``first + count - 1``; picklable."""

    scenario: Scenario
    key: str
    """A digest of the scenario, seed and engine, so that a worker's cached simulators are this
    search's own."""
    roles: tuple[str, ...]
    configurations: tuple[tuple[tuple[int, ...], tuple[str, ...]], ...]
    first: int
    count: int
    seed: int
    engine: str


@dataclass(frozen=True)
class BatchOutcome:
    makespan_min: list[FloatArray]
    cost_usd: list[FloatArray]
    engines: list[str]


_SIMULATORS: OrderedDict[tuple[str, tuple[tuple[int, ...], tuple[str, ...]]], tuple[Simulator, str]] = (
    OrderedDict()
)
"""A worker's planned simulators (and engines) of the configurations it has run, newest last."""
MAX_CACHED = 4096


_PLANS: dict[tuple[str, tuple[int, ...]], Plan] = {}
"""A worker's plans, one per lane counts of a scenario (a space has few lane counts, many models)."""


def configured_plan(scenario: Scenario, lanes: Mapping[str, int], models: Mapping[str, str]) -> Plan:
    """The plan a configuration is predicted on: ``scenario`` planned with ``lanes`` and its roles' own
    models, carrying the scenario configured with ``models`` too, so that the simulation draws each
    role's durations, tokens and failures from its chosen model. The lane order is planned once per lane
    counts: the planner orders work by nominal durations, and planning each of thousands of model
    choices anew would cost more than simulating them."""
    return _configured_plan(
        scenario,
        "",
        tuple(lanes.get(name, scenario.role(name).lanes) for name in scenario.role_names()),
        models,
    )


def _configured_plan(scenario: Scenario, key: str, lanes: tuple[int, ...], models: Mapping[str, str]) -> Plan:
    from cycleplan.planner import plan

    roles = scenario.role_names()
    by_role = dict(zip(roles, lanes, strict=True))
    planned = _PLANS.get((key, lanes)) if key else None
    if planned is None:
        planned = plan(scenario.configured(by_role, {}))
        if key:
            _PLANS[(key, lanes)] = planned
    return planned.model_copy(update={"scenario": scenario.configured(by_role, dict(models))})


def _simulator(batch: Batch, configuration: tuple[tuple[int, ...], tuple[str, ...]]) -> tuple[Simulator, str]:
    from cycleplan.sim.layout import build_layout
    from cycleplan.sim.simulation import Simulator, resolve_engine

    key = (batch.key, configuration)
    found = _SIMULATORS.get(key)
    if found is not None:
        _SIMULATORS.move_to_end(key)
        return found
    lanes, models = configuration
    planned = _configured_plan(batch.scenario, batch.key, lanes, dict(zip(batch.roles, models, strict=True)))
    simulator = Simulator(build_layout(planned), batch.seed, "plan", ideal=False)
    found = (simulator, resolve_engine(simulator, batch.engine))
    _SIMULATORS[key] = found
    if len(_SIMULATORS) > MAX_CACHED:
        _SIMULATORS.popitem(last=False)
    return found


def run_batch(batch: Batch) -> BatchOutcome:
    """Replications ``first`` on of every configuration of ``batch`` (the unit every runner runs)."""
    makespans, costs, engines = [], [], []
    for configuration in batch.configurations:
        simulator, engine = _simulator(batch, configuration)
        values = simulator.values(batch.first, batch.count, engine, ("makespan_min", "cost_usd"))
        makespans.append(values["makespan_min"])
        costs.append(values["cost_usd"])
        engines.append(engine)
    return BatchOutcome(makespans, costs, engines)


# --------------------------------------------------------------------------------------------------
# Statistics


def clopper_pearson_low(breaks: int, of: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided lower confidence bound of a probability seen ``breaks`` times in ``of`` trials."""
    from scipy.stats import beta

    if breaks == 0:
        return 0.0
    return float(beta.ppf(1 - confidence, breaks, of - breaks + 1))


def _p90_bounds(values: FloatArray) -> tuple[float, float, float]:
    """The P90, and its optimistic and pessimistic bounds from the order statistics (distribution-free:
    the number of replications below the true P90 is binomial)."""
    ordered = np.sort(values)
    n = ordered.size
    spread = Z_RANK * math.sqrt(n * 0.9 * 0.1)
    low = ordered[max(0, math.floor(0.9 * n - spread) - 1)]
    high = ordered[min(n - 1, math.ceil(0.9 * n + spread) - 1)]
    return float(np.percentile(ordered, 90)), float(low), float(high)


def _mean_bounds(values: FloatArray) -> tuple[float, float, float]:
    mean = float(values.mean())
    half = Z_RANK * float(values.std(ddof=1)) / math.sqrt(values.size) if values.size > 1 else 0.0
    return mean, mean - half, mean + half


def paired_bootstrap(
    chosen: FloatArray, other: FloatArray, statistic: Callable[[FloatArray], FloatArray], seed: int
) -> tuple[float, float, float]:
    """The difference ``statistic(other) - statistic(chosen)`` on common replications, and its 95%
    percentile interval from resampling the replications (both arrays with the same indices)."""
    rng = np.random.default_rng([seed, 20])
    rows = rng.integers(0, chosen.size, size=(BOOTSTRAP_RESAMPLES, chosen.size))
    differences = statistic(other[rows]) - statistic(chosen[rows])
    low, high = np.percentile(differences, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    point = float(statistic(other[None, :])[0] - statistic(chosen[None, :])[0])
    return point, float(low), float(high)


def _p90_rows(values: FloatArray) -> FloatArray:
    found: FloatArray = np.percentile(values, 90, axis=1)
    return found


def _mean_rows(values: FloatArray) -> FloatArray:
    found: FloatArray = values.mean(axis=1)
    return found


# --------------------------------------------------------------------------------------------------
# The search


@dataclass
class _Candidate:
    index: int
    lanes: tuple[int, ...]
    models: tuple[str, ...]
    makespan: FloatArray
    cost: FloatArray
    engine: str = ""
    stats: tuple[int, float, float] | None = None
    """(replications, P90 makespan, mean cost) when last worked out."""


class _Search:
    def __init__(
        self, objective: Objective, budget_usd: float | None, deadline_min: float | None, risk: float
    ) -> None:
        self.objective = objective
        self.budget_usd = budget_usd
        self.deadline_min = deadline_min
        self.risk = risk

    def breaks(self, candidate: _Candidate) -> list[int]:
        """How many replications break each constraint given."""
        found = []
        if self.budget_usd is not None:
            found.append(int((candidate.cost > self.budget_usd).sum()))
        if self.deadline_min is not None:
            found.append(int((candidate.makespan > self.deadline_min).sum()))
        return found

    def surely_infeasible_all(self, candidates: list[_Candidate]) -> list[bool]:
        """:meth:`surely_infeasible` of each, with one call of the beta quantile for them all."""
        counts = np.asarray([self.breaks(each) for each in candidates], dtype=float)
        if counts.size == 0 or counts.ndim < 2 or counts.shape[1] == 0:
            return [False] * len(candidates)
        from scipy.stats import beta

        trials = np.asarray([each.makespan.size for each in candidates], dtype=float)[:, None]
        with np.errstate(invalid="ignore"):
            low = np.where(
                counts > 0, beta.ppf(1 - CONFIDENCE, np.maximum(counts, 1), trials - counts + 1), 0.0
            )
        refused: npt.NDArray[np.bool_] = np.asarray((low > self.risk).any(axis=1))
        return [bool(each) for each in refused]

    def feasible(self, candidate: _Candidate) -> bool:
        n = candidate.makespan.size
        return all(count / n <= self.risk for count in self.breaks(candidate))

    def bounds(self, candidate: _Candidate) -> tuple[float, float, float]:
        if self.objective == "makespan":
            return _p90_bounds(candidate.makespan)
        return _mean_bounds(candidate.cost)

    def keep(self, candidates: list[_Candidate]) -> tuple[list[_Candidate], int]:
        """Those that go on to the next round, and how many were dropped as infeasible."""
        refused = self.surely_infeasible_all(candidates)
        possible = [each for each, no in zip(candidates, refused, strict=True) if not no]
        dropped = len(candidates) - len(possible)
        if len(possible) <= 2:
            return possible, dropped
        bounds = {each.index: self.bounds(each) for each in possible}
        # Feasible-looking ones first, each group by its estimate.
        ranked = sorted(
            possible,
            key=lambda each: (
                not self.feasible(each),
                bounds[each.index][0],
                self.secondary_value(each),
                each.index,
            ),
        )
        share = max(2, math.ceil(len(ranked) * KEEP_SHARE))
        cap = max(share, math.ceil(len(ranked) * MAX_KEEP_SHARE))
        leader = bounds[ranked[0].index][2]
        kept = ranked[:share]
        for each in ranked[share:]:
            if len(kept) >= cap:
                break
            if bounds[each.index][1] <= leader:
                kept.append(each)
        return kept, dropped

    @staticmethod
    def p90(candidate: _Candidate) -> float:
        """P90 makespan from the replications it has (kept until it gets more)."""
        if candidate.stats is None or candidate.stats[0] != candidate.makespan.size:
            candidate.stats = (
                candidate.makespan.size,
                float(np.percentile(candidate.makespan, 90)),
                float(candidate.cost.mean()),
            )
        return candidate.stats[1]

    @staticmethod
    def mean_cost(candidate: _Candidate) -> float:
        _Search.p90(candidate)
        assert candidate.stats is not None
        return candidate.stats[2]

    def objective_value(self, candidate: _Candidate) -> float:
        return self.p90(candidate) if self.objective == "makespan" else self.mean_cost(candidate)

    def secondary_value(self, candidate: _Candidate) -> float:
        """The other measure, which breaks ties of the objective (roles off the critical path change the
        cost but not the makespan)."""
        return self.mean_cost(candidate) if self.objective == "makespan" else self.p90(candidate)

    def best(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """The feasible ones, best first (ties of the objective broken by the other measure, then by
        the lanes held: a lane no task uses changes nothing but what one holds)."""
        feasible = [each for each in candidates if self.feasible(each)]
        return sorted(
            feasible,
            key=lambda each: (
                self.objective_value(each),
                self.secondary_value(each),
                sum(each.lanes),
                each.index,
            ),
        )


def _batches(
    scenario: Scenario,
    key: str,
    space: Space,
    candidates: list[_Candidate],
    first: int,
    count: int,
    seed: int,
    engine: str,
    parts: int,
) -> list[Batch]:
    size = max(1, math.ceil(len(candidates) / parts))
    return [
        Batch(
            scenario,
            key,
            space.roles,
            tuple((each.lanes, each.models) for each in candidates[start : start + size]),
            first,
            count,
            seed,
            engine,
        )
        for start in range(0, len(candidates), size)
    ]


Progress = Callable[[int, int], None]
"""Called with (replications done, replications planned so far) as the search goes."""


def optimize(
    scenario: Scenario,
    *,
    lanes: Mapping[str, Sequence[int]] | None = None,
    models: Mapping[str, Sequence[str]] | None = None,
    budget_usd: float | None = None,
    deadline_min: float | None = None,
    risk: float = 0.1,
    objective: Objective | None = None,
    seed: int = 0,
    engine: str = "auto",
    exhaustive: bool = False,
    rounds: Sequence[int] = ROUNDS,
    workers: int | None = None,
    runner: Runner | None = None,
    progress: Progress | None = None,
) -> OptimizeResult:
    """The configuration (lanes and model per role) that minimises the objective under the constraints.

    ``objective``: ``makespan`` (P90) or ``cost`` (mean); by default ``cost`` when only a deadline is
    given, else ``makespan``. ``lanes`` and ``models`` narrow or widen the space per role (see
    :func:`search_space`). ``runner`` (:mod:`cycleplan.workflows.fanout`) runs the batches; default: a
    local pool of ``workers`` processes (every core; 1 runs here). Raises :class:`OptimizeError`.
    """
    from cycleplan.sim.simulation import _check

    began = time.perf_counter()
    if budget_usd is not None and not (budget_usd > 0 and math.isfinite(budget_usd)):
        raise OptimizeError("budget", f"must be a positive amount of dollars, got {budget_usd:g}")
    if deadline_min is not None and not (deadline_min > 0 and math.isfinite(deadline_min)):
        raise OptimizeError("deadline", f"must be a positive duration, got {deadline_min:g} min")
    if not 0 <= risk < 1 or math.isnan(risk):
        raise OptimizeError("risk", f"must be a probability from 0 to below 1, got {risk:g}")
    if objective is None:
        objective = "cost" if deadline_min is not None and budget_usd is None else "makespan"
    if objective not in ("makespan", "cost"):
        raise OptimizeError("objective", f"choose makespan or cost, got '{objective}'")
    rounds = tuple(rounds)
    if not rounds or any(b <= a for a, b in itertools.pairwise(rounds)) or rounds[0] < 2:
        raise OptimizeError("rounds", "replications per round must rise from at least 2")
    _check(rounds[-1], seed, "plan", engine)
    space = search_space(scenario, lanes, models)
    owned = runner is None
    if runner is None:
        runner = runner_for(workers, len(space), preload=("cycleplan.planner", "cycleplan.sim.simulation"))
    try:
        return _search(
            scenario,
            space,
            runner,
            _Search(objective, budget_usd, deadline_min, risk),
            seed=seed,
            engine=engine,
            exhaustive=exhaustive,
            rounds=rounds,
            progress=progress,
            began=began,
        )
    finally:
        if owned:
            runner.close()


def _search(
    scenario: Scenario,
    space: Space,
    runner: Runner,
    search: _Search,
    *,
    seed: int,
    engine: str,
    exhaustive: bool,
    rounds: tuple[int, ...],
    progress: Progress | None,
    began: float,
) -> OptimizeResult:
    """The rounds of the search on ``runner``, and the result."""
    objective, budget_usd, deadline_min, risk = (
        search.objective,
        search.budget_usd,
        search.deadline_min,
        search.risk,
    )
    # Everything a worker's cached simulator depends on: the scenario, the seed and the engine.
    key = hashlib.sha256(f"{scenario.model_dump_json()}\n{seed}\n{engine}".encode()).hexdigest()[:16]
    candidates = [
        _Candidate(index, lanes_, models_, np.zeros(0), np.zeros(0))
        for index, (lanes_, models_) in enumerate(space.configurations())
    ]
    steps = (rounds[-1],) if exhaustive else rounds
    parts = max(1, runner.workers) * 4
    done = 0
    planned = 0
    history: list[Round] = []
    alive = candidates
    have = 0
    for number, target in enumerate(steps):
        add = target - have
        planned = done + add * len(alive)
        batches = _batches(scenario, key, space, alive, have, add, seed, engine, parts)
        outcomes: list[BatchOutcome] = []
        # Progress per slice of batches: a runner returns when all it was given are done.
        slices = max(1, min(len(batches), 10 if progress is not None else 1))
        step = math.ceil(len(batches) / slices)
        for start in range(0, len(batches), step):
            outcomes += runner.map(run_batch, batches[start : start + step])
            done += add * sum(len(batch.configurations) for batch in batches[start : start + step])
            if progress is not None:
                progress(done, planned)
        results = [
            (m, c, e)
            for outcome in outcomes
            for m, c, e in zip(outcome.makespan_min, outcome.cost_usd, outcome.engines, strict=True)
        ]
        for candidate, (makespan, cost, used) in zip(alive, results, strict=True):
            candidate.makespan = np.concatenate([candidate.makespan, makespan])
            candidate.cost = np.concatenate([candidate.cost, cost])
            candidate.engine = used
        have = target
        if number < len(steps) - 1:
            kept, dropped = search.keep(alive)
        else:
            kept, dropped = alive, 0
        history.append(
            Round(replications=target, configurations=len(alive), infeasible=dropped, kept=len(kept))
        )
        alive = kept
        if not alive:
            break

    ranked = search.best(alive)
    estimates = _Estimates(candidates, space, search)
    if not ranked:
        closest = min(
            candidates,
            key=lambda each: (
                max(count / max(each.makespan.size, 1) for count in search.breaks(each)),
                each.index,
            ),
        )
        raise OptimizeError(
            "infeasible",
            "no configuration keeps "
            + _constraints(budget_usd, deadline_min, risk)
            + f"; the closest is {estimates[closest.index].label} ("
            + _breaking(estimates[closest.index])
            + "): raise the budget or the deadline, accept more risk, or widen --lanes and --models",
        )
    chosen = ranked[0]
    # The runner-up predicts something else: one that differs only by a lane no task uses is the same.
    runner_up = next((each for each in ranked[1:] if not _same_draws(each, chosen)), None)
    comparison = None
    if runner_up is not None:
        n = min(chosen.makespan.size, runner_up.makespan.size)
        metric, values = (
            ("makespan_p90_min", (chosen.makespan[:n], runner_up.makespan[:n], _p90_rows))
            if objective == "makespan"
            else ("cost_mean_usd", (chosen.cost[:n], runner_up.cost[:n], _mean_rows))
        )
        point, low, high = paired_bootstrap(values[0], values[1], values[2], seed)
        comparison = Comparison(
            metric=metric,
            difference=point,
            ci95_low=low,
            ci95_high=high,
            distinguishable=low > 0 or high < 0,
            replications=n,
        )
    front = pareto_2d(
        [(search.p90(each), search.mean_cost(each)) for each in candidates],
        [float(sum(each.lanes)) for each in candidates],
    )
    chosen_scenario = scenario.configured(
        dict(zip(space.roles, chosen.lanes, strict=True)), dict(zip(space.roles, chosen.models, strict=True))
    )
    return OptimizeResult(
        scenario=scenario.name,
        objective=objective,
        budget_usd=budget_usd,
        deadline_min=deadline_min,
        risk=risk,
        seed=seed,
        search="exhaustive" if exhaustive else "successive halving",
        configurations=len(space),
        chosen=estimates[chosen.index],
        runner_up=None if runner_up is None else estimates[runner_up.index],
        versus_runner_up=comparison,
        pareto=[estimates[index] for index in front],
        by_limit=_by_limit(candidates, estimates, search),
        rounds=history,
        replications_used=sum(each.makespan.size for each in candidates),
        replications_exhaustive=len(space) * rounds[-1],
        engine=chosen.engine,
        chosen_yaml=chosen_yaml(chosen_scenario, estimates[chosen.index].label),
        backend=runner.backend,
        workers=runner.workers,
        runtime_s=time.perf_counter() - began,
    )


class _Estimates:
    """Each candidate's :class:`ConfigurationEstimate`, made when first asked for (a space may hold tens
    of thousands; the result shows a few dozen)."""

    def __init__(self, candidates: list[_Candidate], space: Space, search: _Search) -> None:
        self.candidates = candidates
        self.space = space
        self.search = search
        self.made: dict[int, ConfigurationEstimate] = {}

    def __getitem__(self, index: int) -> ConfigurationEstimate:
        found = self.made.get(index)
        if found is None:
            found = self.made[index] = _estimate(self.candidates[index], self.space, self.search)
        return found


def _same_draws(one: _Candidate, other: _Candidate) -> bool:
    """Whether two configurations predicted the same on every replication they share."""
    n = min(one.makespan.size, other.makespan.size)
    return bool(
        np.array_equal(one.makespan[:n], other.makespan[:n]) and np.array_equal(one.cost[:n], other.cost[:n])
    )


def pareto_2d(points: Sequence[tuple[float, float]], ties: Sequence[float] | None = None) -> list[int]:
    """Indices of the points no other point dominates (both coordinates at most, one strictly less),
    ordered by their coordinates, in O(n log n) (:func:`cycleplan.workflows.sweep.pareto_front` compares
    every pair). Of points equal in both coordinates only the one with the least ``ties`` (then the
    first) is kept: lanes no task uses change neither."""
    tie = ties if ties is not None else [0.0] * len(points)
    order = sorted(range(len(points)), key=lambda index: (*points[index], tie[index], index))
    front: list[int] = []
    lowest = math.inf
    for index in order:
        if points[index][1] < lowest:
            front.append(index)
            lowest = points[index][1]
    return front


def _estimate(candidate: _Candidate, space: Space, search: _Search) -> ConfigurationEstimate:
    n = candidate.makespan.size
    over = None if search.budget_usd is None else float((candidate.cost > search.budget_usd).mean())
    late = None if search.deadline_min is None else float((candidate.makespan > search.deadline_min).mean())
    return ConfigurationEstimate(
        label=space.label(candidate.lanes, candidate.models),
        lanes=dict(zip(space.roles, candidate.lanes, strict=True)),
        models=dict(zip(space.roles, candidate.models, strict=True)),
        replications=n,
        makespan_min=summarize(candidate.makespan),
        cost_usd=summarize(candidate.cost),
        p_over_budget=over,
        p_late=late,
        feasible=search.feasible(candidate),
    )


def _constraints(budget_usd: float | None, deadline_min: float | None, risk: float) -> str:
    said = []
    if budget_usd is not None:
        said.append(f"P(cost > ${budget_usd:,.2f}) <= {risk:g}")
    if deadline_min is not None:
        said.append(f"P(makespan > {duration(deadline_min)}) <= {risk:g}")
    return " and ".join(said)


def _breaking(estimate: ConfigurationEstimate) -> str:
    return f"{estimate.chances(digits=0)} over {estimate.replications} replications"


def _by_limit(candidates: list[_Candidate], estimates: _Estimates, search: _Search) -> list[ChoiceAt]:
    """The choice at budgets (or deadlines) across the range the configurations span, from the
    replications each got."""
    on_budget = search.objective == "makespan"
    if (on_budget and search.budget_usd is None) or (not on_budget and search.deadline_min is None):
        return []
    spans = [
        float(np.percentile(each.cost if on_budget else each.makespan, 100 * (1 - search.risk)))
        for each in candidates
    ]
    limits = sorted({*np.linspace(min(spans), max(spans), 7).tolist()})
    found = []
    for limit in limits:
        moved = _Search(
            search.objective,
            limit if on_budget else search.budget_usd,
            search.deadline_min if on_budget else limit,
            search.risk,
        )
        best = moved.best(candidates)
        estimate = estimates[best[0].index] if best else None
        found.append(
            ChoiceAt(
                limit=limit,
                label=None if estimate is None else estimate.label,
                makespan_p90_min=None if estimate is None else estimate.makespan_min.p90,
                cost_mean_usd=None if estimate is None else estimate.cost_usd.mean,
            )
        )
    return found


HEADER = "# Chosen by cycleplan optimize: "


def chosen_yaml(scenario: Scenario, label: str) -> str:
    """``scenario`` (already configured) as YAML that ``execute`` runs and ``validate`` accepts."""
    from cycleplan.workflows.rewriting import new_text

    data = scenario.model_dump(mode="json", exclude_defaults=True)
    return f"{HEADER}{label}.\n" + new_text(data)


__all__ = [
    "ROUNDS",
    "ChoiceAt",
    "Comparison",
    "ConfigurationEstimate",
    "OptimizeError",
    "OptimizeResult",
    "Round",
    "Space",
    "clopper_pearson_low",
    "configured_plan",
    "optimize",
    "paired_bootstrap",
    "run_batch",
    "search_space",
]
