"""``simulate()``: the simulator's one entry point and its fixed lifecycle.

Replications run in batches. For each batch: draw every task's randomness (common random numbers from
(seed, replication, task, cycle, attempt), :mod:`cycleplan.core.draws`) and work out each task's program
(:mod:`.programs`); run the plan on its lanes with the chosen engine (SimPy's, or the max-plus recursion
of :mod:`.fast` where the model is static, handing it back the replications it cannot take); measure the
records (:mod:`.records`); run the one-lane sequential baseline on the same draws. Then summarise the
per-replication arrays, count how often each task had zero slack, take each task's start and finish
percentiles and the cumulative tokens and cost curves, and re-run the median replication to keep its
trace. The same seed gives the same Prediction (up to ``runtime_s``), with either engine; a different
lane count leaves every draw as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cycleplan import __version__
from cycleplan.core.draws import BLOCK, TaskDraws, draw_task
from cycleplan.core.metrics import WAIT_CAUSES, TraceMetrics, metrics, run_header
from cycleplan.core.model import Event, Plan, Scenario
from cycleplan.sim import fast
from cycleplan.sim.curves import CumulativeSketch
from cycleplan.sim.engine import Run
from cycleplan.sim.layout import Layout, SimulationError, build_layout
from cycleplan.sim.memory import DEFAULT_MAX_MEMORY, MAX_TRACE_EVENTS, MemoryPlan, memory_plan
from cycleplan.sim.prediction import (
    SCALARS,
    Percentiles,
    Prediction,
    PredictionConfig,
    Replications,
    TaskPrediction,
)
from cycleplan.sim.programs import Programs, TaskShape, task_shapes
from cycleplan.sim.records import Measures, Records, attempts_in, measure, trace
from cycleplan.sim.shape import DISPATCH_MODES, Batch, Shape
from cycleplan.sim.stats import Summary, summarize

MAX_REPLICATIONS = 1_000_000
ENGINES = ("simpy", "fast", "auto")
"""``simpy``: the reference engine; ``fast``: the max-plus recursion (static models only); ``auto``: fast
when the model allows it."""

Progress = Callable[[int, int], None]
"""Called with (replications done, replications in all) as the simulation goes."""

FloatArray = npt.NDArray[np.float64]


def _check(replications: int, seed: int, dispatch: str, engine: str = "simpy") -> None:
    if not 1 <= replications <= MAX_REPLICATIONS:
        raise SimulationError("replications", f"must be from 1 to {MAX_REPLICATIONS:,}, got {replications}")
    if seed < 0:
        raise SimulationError("seed", f"must be zero or positive, got {seed}")
    if dispatch not in DISPATCH_MODES:
        raise SimulationError("dispatch", f"must be one of {', '.join(DISPATCH_MODES)}, got '{dispatch}'")
    if engine not in ENGINES:
        raise SimulationError("engine", f"must be one of {', '.join(ENGINES)}, got '{engine}'")


class Simulator:
    """Everything that runs replications of one plan under one configuration."""

    def __init__(self, layout: Layout, seed: int, dispatch: str, ideal: bool) -> None:
        self.layout = layout
        self.seed = seed
        self.dispatch = dispatch
        self.ideal = ideal
        scenario = layout.plan.scenario
        limits = None if ideal else scenario.rate_limits
        probe = Shape(layout, layout.parallel, [], dispatch=dispatch, ideal=ideal, rate_limits=limits)
        per_slot = probe.rate_limits is not None
        self.shapes: list[TaskShape] = task_shapes(layout, ideal=ideal, per_slot=per_slot)
        self.rate_limits = limits
        self.parallel = Shape(
            layout, layout.parallel, self.shapes, dispatch=dispatch, ideal=ideal, rate_limits=limits
        )
        self.group_id = scenario.name or "run"
        self.header = run_header(layout.parallel.lanes, layout.tasks.values())
        order = {task: position for position, task in enumerate(layout.tasks)}
        index = self.parallel.index
        self.races = [
            (unit.index, [index[task] for task in sorted(unit.members + unit.skipped, key=order.__getitem__)])
            for unit in layout.parallel.units
            if len(unit.members) + len(unit.skipped) > 1
        ]
        self.sequential_shapes: dict[tuple[int, ...], Shape] = {}

    def static_reason(self) -> str | None:
        """Why the fast engine cannot run this configuration (None: it can)."""
        return fast.static_reason(self.parallel)

    def programs(self, first: int, count: int, *, keep: bool = True) -> Programs:
        return Programs(self.shapes, self.seed, first, count, ideal=self.ideal, keep=keep)

    def sequential_shape(self, chosen: tuple[int, ...]) -> Shape:
        """The one-lane baseline's shape when each race is run by its ``chosen`` member."""
        found = self.sequential_shapes.get(chosen)
        if found is None:
            names = self.parallel.names
            picks = {unit: names[member] for (unit, _), member in zip(self.races, chosen, strict=True)}
            spec = self.layout.sequential(picks)
            found = Shape(
                self.layout,
                spec,
                self.shapes,
                dispatch="plan",
                ideal=self.ideal,
                rate_limits=self.rate_limits,
            )
            self.sequential_shapes[chosen] = found
        return found

    def chosen(self, programs: Programs) -> npt.NDArray[np.int64]:
        """``[replication, race]``: the member each race's baseline runs (the fastest alone; the first
        in task order on a tie)."""
        columns = []
        for _, members in self.races:
            lengths = np.stack([programs.timings[member].length_min for member in members])
            columns.append(np.asarray(members, dtype=np.int64)[np.argmin(lengths, axis=0)])
        if not columns:
            return np.zeros((programs.count, 0), dtype=np.int64)
        return np.stack(columns, axis=1)

    def run_batch(
        self, programs: Programs, engine: str, *, with_baseline: bool = True
    ) -> tuple[Records, FloatArray, int]:
        """The parallel records and the sequential makespans of a batch (zeros without ``with_baseline``);
        also how many replications the fast engine handed to SimPy."""
        count = programs.count
        sequential = np.zeros(count)
        chosen = self.chosen(programs)
        handed = 0
        if engine == "fast":
            records, fallback = fast.run(self.parallel, programs)
            for key in {tuple(row) for row in chosen.tolist()} if with_baseline else ():
                rows = (
                    np.flatnonzero((chosen == np.asarray(key, dtype=np.int64)).all(axis=1)) if key else None
                )
                shape = self.sequential_shape(key)
                if fast.static_reason(shape) is not None:
                    # A baseline that cannot keep its order (a racer it does not run publishes an event
                    # another task waits for): SimPy runs it and cancels what stalls.
                    for column in range(count) if rows is None else rows.tolist():
                        sequential[column] = self.baseline_by_simpy(programs, chosen, column)
                    continue
                baseline, also = fast.run(shape, programs)
                if rows is None:
                    sequential[:] = baseline.makespan
                    fallback |= also
                else:
                    sequential[rows] = baseline.makespan[rows]
                    fallback[rows] |= also[rows]
            handed_back = np.flatnonzero(fallback)
            if handed_back.size:
                # SimPy runs only the replications handed back, on their own numbers.
                few = programs.timings_of(handed_back)
                batch = Batch(self.parallel, few)
                for position, column in enumerate(handed_back.tolist()):
                    records.put(column, Run(self.parallel, batch, position).run())
                    if with_baseline:
                        sequential[column] = self.baseline_by_simpy(few, chosen[handed_back], position)
            handed = int(fallback.sum())
        else:
            batch = Batch(self.parallel, programs)
            records = Records.from_rows(
                self.parallel, [Run(self.parallel, batch, row).run() for row in range(count)]
            )
            for column in range(count) if with_baseline else ():
                sequential[column] = self.baseline_by_simpy(programs, chosen, column)
        return records, sequential, handed

    def values(self, first: int, count: int, engine: str, names: tuple[str, ...]) -> dict[str, FloatArray]:
        """The per-replication ``names`` (of :data:`SCALARS`, not ``sequential_min`` or ``speedup``) of
        replications ``first`` to ``first + count - 1``: the same numbers ``simulate`` gives them, without
        the baseline, the task times or the curves. Lets a search add replications to a configuration
        round by round on the same draws."""
        parts: dict[str, list[FloatArray]] = {name: [] for name in names}
        for start in range(first, first + count, 4 * BLOCK):
            size = min(4 * BLOCK, first + count - start)
            programs = self.programs(start, size)
            records, _, _ = self.run_batch(programs, engine, with_baseline=False)
            measured = measure(self.parallel, programs, records, max(float(records.makespan.max()), 1.0))
            for name in names:
                parts[name].append(np.asarray(measured.values[name], dtype=float))
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    def baseline_by_simpy(self, programs: Programs, chosen: npt.NDArray[np.int64], column: int) -> float:
        """Replication ``column``'s one-lane baseline makespan, run by the SimPy engine."""
        shape = self.sequential_shape(tuple(chosen[column].tolist()))
        batch = shape.cache.get("batch")
        if not isinstance(batch, Batch) or batch.source is not programs:
            batch = shape.cache["batch"] = Batch(shape, programs)
        return Run(shape, batch, column).run().makespan

    def trace_of(self, replication: int, max_events: int | None = None) -> tuple[Programs, list[Event], bool]:
        """Replication ``replication`` run again by the SimPy engine, its trace, and whether the trace
        holds its cycles: it does not when that would make more than ``max_events`` events."""
        programs = self.programs(replication, 1)
        batch = Batch(self.parallel, programs)
        records = Records.from_rows(self.parallel, [Run(self.parallel, batch, 0).run()])
        cycles = True
        if max_events is not None:
            others = 2 + 3 * len(self.parallel.names) + len(records.events)
            cycles = others + attempts_in(self.parallel, programs, records, 0) <= max_events
        header = {
            **self.header,
            "scenario": self.group_id,
            "replication": replication,
            "seed": self.seed,
            "dispatch": self.dispatch,
            "ideal": self.ideal,
        }
        events = trace(self.parallel, programs, records, 0, header, self.group_id, cycles=cycles)
        return programs, events, cycles


@dataclass(frozen=True)
class ReplicationRun:
    """One replication, in full: its draws, its trace, what the trace measures, and its baseline."""

    replication: int
    draws: dict[str, TaskDraws]
    trace: list[Event]
    metrics: TraceMetrics
    sequential_min: float


def run_replication(
    plan: Plan, replication: int, seed: int = 0, *, dispatch: str = "plan", ideal: bool = False
) -> ReplicationRun:
    """Run replication ``replication`` of ``simulate(plan, seed=seed, ...)`` alone, keeping everything."""
    _check(1, seed, dispatch)
    if replication < 0:
        raise SimulationError("replication", f"must be zero or positive, got {replication}")
    simulator = Simulator(build_layout(plan), seed, dispatch, ideal)
    programs, events, _ = simulator.trace_of(replication)
    chosen = simulator.chosen(programs)
    sequential = simulator.baseline_by_simpy(programs, chosen, 0)
    draws = {
        task_id: draw_task(
            task, simulator.layout.roles[task_id], seed, replication, ideal=ideal, key=shape.key
        )
        for (task_id, task), shape in zip(simulator.layout.tasks.items(), simulator.shapes, strict=True)
    }
    return ReplicationRun(replication, draws, events, metrics(events), sequential)


def cycle_minutes(
    plan: Plan, scenario: Scenario | None = None, replications: int = 1000, seed: int = 0
) -> dict[str, FloatArray]:
    """Each task's predicted work minutes per cycle, ``[replication, cycle]``: its attempts' minutes
    (failed ones included; subagents and waits not), on the same draws as ``simulate(plan, scenario,
    replications, seed)`` (NaN where a cycle never runs)."""
    _check(replications, seed, "plan")
    if scenario is not None:
        plan = plan.model_copy(update={"scenario": scenario})
    simulator = Simulator(build_layout(plan), seed, "plan", ideal=False)
    found: dict[str, list[FloatArray]] = {task: [] for task in simulator.layout.tasks}
    for first in range(0, replications, 4 * BLOCK):
        programs = simulator.programs(first, min(4 * BLOCK, replications - first))
        for shape, program in zip(simulator.shapes, programs.tasks, strict=True):
            count = program.duration_min.shape[0]
            by_cycle = program.duration_min.reshape(count, shape.cycles, shape.attempts).sum(axis=2)
            ran = program.ran.reshape(count, shape.cycles, shape.attempts).any(axis=2)
            found[shape.task.id].append(np.where(ran, by_cycle, np.nan))
    return {task: np.concatenate(parts) for task, parts in found.items()}


def resolve_engine(simulator: Simulator, engine: str) -> str:
    """The engine to use: ``fast`` for ``auto`` when the model allows it; raises for ``fast`` when not."""
    if engine == "simpy":
        return engine
    reason = simulator.static_reason()
    if engine == "fast" and reason is not None:
        raise SimulationError(
            "engine", f"the fast engine cannot run this model: {reason}; use --engine simpy"
        )
    return "fast" if reason is None else "simpy"


def simulate(
    plan: Plan,
    scenario: Scenario | None = None,
    replications: int = 1000,
    seed: int = 0,
    *,
    dispatch: str = "plan",
    ideal: bool = False,
    engine: str = "simpy",
    progress: Progress | None = None,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
) -> Prediction:
    """Predict ``plan``: ``replications`` runs with common random numbers from ``seed``.

    ``scenario`` replaces the plan's own stochastic model (roles, prices, rate limits) when given, e.g.
    a calibrated one; it must hold the same tasks. ``dispatch`` is ``plan`` (lanes keep the plan's
    order) or ``dynamic`` (a free lane takes the ready unit planned earliest). ``ideal`` runs every cycle
    at its nominal duration with median tokens, no failures, no sync costs and no rate limits.
    ``engine`` is ``simpy``, ``fast`` (the max-plus recursion, for plan dispatch without rate limits;
    the same numbers, much sooner) or ``auto`` (fast when the model allows). ``max_memory`` bounds the
    estimated peak memory in bytes (None: no bound): replications run in batches small enough for it
    (:mod:`.memory`), and :class:`~cycleplan.sim.memory.MemoryLimitError` says how many would fit when
    they cannot. Raises :class:`SimulationError` (naming the field) for settings that cannot be
    simulated.
    """
    _check(replications, seed, dispatch, engine)
    began = time.perf_counter()
    if scenario is not None:
        if {task.id for task in scenario.all_tasks()} != {task.id for task in plan.scenario.all_tasks()}:
            raise SimulationError(
                "tasks", "the scenario's tasks differ from the plan's; plan the scenario again"
            )
        plan = plan.model_copy(update={"scenario": scenario})
    layout = build_layout(plan)
    simulator = Simulator(layout, seed, dispatch, ideal)
    used = resolve_engine(simulator, engine)

    memory = memory_plan(simulator, replications, used, max_memory)
    collected = _Collector(simulator, replications, plan.makespan_min)
    step = 4 * BLOCK if used == "fast" else BLOCK
    handed = 0
    if ideal:
        # Ideal runs draw nothing: every replication is the first one again.
        programs = simulator.programs(0, 1, keep=memory.keep)
        records, sequential, handed = simulator.run_batch(programs, used)
        collected.sketch.stretch_to(float(records.makespan.max()))
        measured = measure(simulator.parallel, programs, records, collected.sketch.step_min)
        collected.add(0, measured, sequential, repeat=replications)
        if progress is not None:
            progress(replications, replications)
    else:
        for first in range(0, replications, step):
            count = min(step, replications - first)
            handed += _run_batch(simulator, collected, used, first, count, memory, progress, replications)

    makespans = collected.values["makespan_min"]
    median = int(np.argsort(makespans, kind="stable")[(replications - 1) // 2])
    _, median_trace, trace_cycles = simulator.trace_of(0 if ideal else median, MAX_TRACE_EVENTS)
    arrays = collected.replications()
    return Prediction(
        config=PredictionConfig(
            scenario=plan.scenario.name,
            algorithm=plan.algorithm,
            rule=plan.rule,
            seed=seed,
            replications=replications,
            dispatch=dispatch,
            ideal=ideal,
            version=__version__,
            prices_as_of=layout.prices_as_of,
            runtime_s=time.perf_counter() - began,
            engine=used,
            engine_fallbacks=handed * (replications if ideal else 1),
            trace_cycles=trace_cycles,
        ),
        claim=plan.scenario.claim,
        plan_makespan_min=plan.makespan_min,
        plan_sequential_min=plan.sequential_min,
        plan_speedup=plan.speedup,
        lanes=dict(layout.parallel.lanes),
        replications=arrays,
        summaries=_summaries(arrays),
        criticality={
            task: float(collected.critical[position]) / replications
            for position, task in enumerate(simulator.parallel.names)
        },
        median_replication=median,
        trace=median_trace,
        tasks=collected.task_predictions(plan),
        cumulative=collected.sketch.result(),
    )


def _run_batch(
    simulator: Simulator,
    collected: _Collector,
    engine: str,
    first: int,
    count: int,
    memory: MemoryPlan,
    progress: Progress | None,
    replications: int,
) -> int:
    """Run replications ``first`` to ``first + count - 1`` into ``collected``, in batches of
    ``memory.batch``; returns how many the fast engine handed to SimPy.

    The cumulative sketch takes the replications' curves as one batch, on the grid it has once stretched
    to their longest, whatever batches they ran in: a smaller batch measured on a grid that a later one
    stretched is measured again (it happens only when a replication outlasts twice the plan's makespan).
    """
    sketch = collected.sketch
    handed = 0
    parts: list[tuple[int, int, float, FloatArray, FloatArray]] = []
    longest = 0.0
    for start in range(first, first + count, memory.batch):
        size = min(memory.batch, first + count - start)
        programs = simulator.programs(start, size, keep=memory.keep)
        records, sequential, handed_here = simulator.run_batch(programs, engine)
        handed += handed_here
        longest = max(longest, float(records.makespan.max()))
        step_min = sketch.step_for(longest)
        measured = measure(simulator.parallel, programs, records, step_min)
        collected.add(start, measured, sequential, with_curves=False)
        parts.append((start, size, step_min, measured.tokens_curve, measured.cost_curve))
        del programs, records, measured
        if progress is not None:
            progress(start + size, replications)
    step_min = sketch.step_for(longest)
    for position, (start, size, measured_at, _, _) in enumerate(parts):
        if measured_at != step_min:
            programs = simulator.programs(start, size, keep=memory.keep)
            records, _, _ = simulator.run_batch(programs, engine)
            again = measure(simulator.parallel, programs, records, step_min)
            parts[position] = (start, size, step_min, again.tokens_curve, again.cost_curve)
    sketch.stretch_to(longest)
    sketch.add_values(
        np.concatenate([part[3] for part in parts]), np.concatenate([part[4] for part in parts])
    )
    return handed


class _Collector:
    """The per-replication arrays, criticality counts, task times and cumulative sketch, batch by batch."""

    def __init__(self, simulator: Simulator, replications: int, scale_min: float) -> None:
        layout = simulator.layout
        self.simulator = simulator
        self.count = replications
        self.roles = sorted({task.role for task in layout.tasks.values()})
        lane_roles = {role for role in layout.parallel.lanes.values() if role is not None}
        self.lane_roles = [role for role in self.roles if role in lane_roles]
        self.values = {name: np.zeros(replications) for name in SCALARS}
        self.by_lane = {lane: np.zeros(replications) for lane in layout.parallel.lanes}
        self.by_role = {role: np.zeros(replications) for role in self.lane_roles}
        self.waits = {cause: np.zeros(replications) for cause in WAIT_CAUSES}
        self.tokens_by_role = {role: np.zeros(replications) for role in self.roles}
        self.cost_by_role = {role: np.zeros(replications) for role in self.roles}
        tasks = len(layout.tasks)
        self.critical = np.zeros(tasks, dtype=np.int64)
        self.first_start = np.full((tasks, replications), np.nan)
        self.finish = np.full((tasks, replications), np.nan)
        self.sketch = CumulativeSketch(scale_min)

    def add(
        self,
        first: int,
        measured: Measures,
        sequential: FloatArray,
        repeat: int = 1,
        with_curves: bool = True,
    ) -> None:
        """A batch of replications from ``first`` on (``repeat``: its one replication stands for that
        many); ``with_curves``: its cumulative curves go to the sketch as one batch (measured on the
        sketch's grid, stretched to the batch's longest replication)."""
        count = sequential.shape[0] * repeat
        window = slice(first, first + count)

        def fill(target: FloatArray, values: FloatArray) -> None:
            target[window] = np.tile(values, repeat) if repeat > 1 else values

        makespan = measured.values["makespan_min"]
        for name, values in measured.values.items():
            fill(self.values[name], values)
        fill(self.values["sequential_min"], sequential)
        fill(
            self.values["speedup"],
            np.where(makespan > 0, sequential / np.where(makespan > 0, makespan, 1), 1.0),
        )
        for lane, values in measured.utilization_by_lane.items():
            fill(self.by_lane[lane], values)
        for role in self.lane_roles:
            fill(self.by_role[role], measured.utilization_by_role[role])
        for cause, values in measured.waits_min.items():
            fill(self.waits[cause], values)
        for role in self.roles:
            fill(self.tokens_by_role[role], measured.tokens_by_role[role])
            fill(self.cost_by_role[role], measured.cost_by_role[role])
        self.critical += measured.critical.sum(axis=1) * repeat
        self.first_start[:, window] = np.tile(measured.first_start, repeat)
        self.finish[:, window] = np.tile(measured.finish, repeat)
        if with_curves:
            for start in range(0, repeat, 4 * BLOCK):
                copies = min(4 * BLOCK, repeat - start)
                self.sketch.add_values(
                    np.tile(measured.tokens_curve, (copies, 1)), np.tile(measured.cost_curve, (copies, 1))
                )

    def replications(self) -> Replications:
        return Replications(
            values={name: values.tolist() for name, values in self.values.items()},
            utilization_by_lane={lane: values.tolist() for lane, values in self.by_lane.items()},
            utilization_by_role={role: values.tolist() for role, values in self.by_role.items()},
            waits_min={cause: values.tolist() for cause, values in self.waits.items()},
            tokens_by_role={role: values.tolist() for role, values in self.tokens_by_role.items()},
            cost_by_role={role: values.tolist() for role, values in self.cost_by_role.items()},
        )

    def task_predictions(self, plan: Plan) -> dict[str, TaskPrediction]:
        planned_lane = {row.task: lane.lane for lane, row in plan.planned_tasks()}
        return {
            task: _task_prediction(planned_lane[task], self.first_start[position], self.finish[position])
            for position, task in enumerate(self.simulator.parallel.names)
        }


def _percentiles(values: FloatArray) -> Percentiles:
    p10, p50, p90 = (float(x) for x in np.percentile(values, [10, 50, 90]))
    return Percentiles(p10=p10, p50=p50, p90=p90)


def _task_prediction(lane: str, first_start: FloatArray, finish: FloatArray) -> TaskPrediction:
    """Percentiles over the replications in which the task worked (its first cycle started)."""
    ran = ~np.isnan(first_start)
    if not ran.any():
        return TaskPrediction(lane=lane, ran=0.0, start=None, finish=None, duration=None)
    return TaskPrediction(
        lane=lane,
        ran=float(ran.mean()),
        start=_percentiles(first_start[ran]),
        finish=_percentiles(finish[ran]),
        duration=_percentiles(finish[ran] - first_start[ran]),
    )


def _summaries(arrays: Replications) -> dict[str, Summary]:
    summaries = {name: summarize(values) for name, values in arrays.values.items()}
    for group in ("waits_min", "utilization_by_role", "utilization_by_lane"):
        for key, values in getattr(arrays, group).items():
            summaries[f"{group}.{key}"] = summarize(values)
    return summaries
