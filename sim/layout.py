"""What a simulation runs, worked out once from the Plan and shared by every replication.

Units (a task, or a race group's members, which start together), their dependencies, the events tasks
wait for and publish, the subagents tasks spawn (no units: their parent starts them), the lanes and
their queues in the plan's order, each unit's priority (its planned
start), capacities (``max_parallel`` and shared resources), prices and the rate limits. The grouping of
tasks into units is the planner's own (:class:`cycleplan.planner.problem.Problem`), so the simulator and
the planner read a scenario the same way. Nothing here draws random numbers or keeps a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cycleplan.core.model import ModelPrice, Plan, PlannedTask, Role, Scenario, Task
from cycleplan.core.prices import PRICES_AS_OF, resolve
from cycleplan.core.rules import PARALLEL
from cycleplan.planner.problem import Problem, topological_order

SEQUENTIAL_LANE = "sequential"


class SimulationError(ValueError):
    """The plan cannot be simulated as it stands; ``field`` names the scenario field to fix."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self) -> tuple[type[SimulationError], tuple[str, str]]:
        # Rebuilt from both arguments, so that it crosses process boundaries (sweep's workers) whole.
        return (type(self), (self.field, self.message))


@dataclass(frozen=True)
class Unit:
    """What starts as one: a task, or every member of a race group."""

    index: int
    name: str
    members: tuple[str, ...]
    after: tuple[int, ...]
    """Units that must finish first."""
    emitters: tuple[int, ...]
    """Units whose events the members wait for."""
    priority: tuple[float, int]
    """Planned start, then position: smaller goes first when lanes or resources are contended."""
    skipped: tuple[str, ...] = ()
    """Race members that never run: the plan put them on a lane another member holds (a one-lane plan
    runs a race by one member alone)."""


@dataclass(frozen=True)
class Spec:
    """One run's shape: the units, the lanes (lane -> role, None for any role) and the lanes' queues."""

    units: tuple[Unit, ...]
    lanes: dict[str, str | None]
    queues: dict[str, tuple[str, ...]]
    lane_of: dict[str, str]
    """The lane each task is planned on."""
    capacities: dict[str, int]
    inline: bool = False
    """Subagents run on their parent's lane, one after the other (the one-lane baseline), instead of
    each on its own lane at once."""
    subagent_lanes: frozenset[str] = frozenset()
    """Lanes that only subagents take (``backend-1-sub1``): no unit is dispatched to them."""


@dataclass
class Layout:
    """Everything static about simulating ``plan``."""

    plan: Plan
    tasks: dict[str, Task]
    roles: dict[str, Role]
    """Each task's role (by task id)."""
    prices: dict[str, ModelPrice]
    """Each task's price (by task id)."""
    cycle_prices: dict[str, tuple[ModelPrice, ...]]
    """Each cycle's price, for tasks with ``cycle_models`` (by task id)."""
    unit_of: dict[str, int]
    emitter: dict[str, tuple[str, int]]
    waits_before: dict[str, dict[int, tuple[str, ...]]]
    emits_after: dict[str, dict[int, tuple[str, ...]]]
    waiters: dict[str, tuple[str, ...]]
    """Event -> tasks that wait for it."""
    spawns: dict[str, dict[int, tuple[str, ...]]]
    """Task -> cycle (from 1) -> the subagents it spawns at that cycle's start."""
    dependents: dict[int, tuple[int, ...]]
    """Unit -> units that list it in ``after``."""
    demand: dict[str, dict[str, int]]
    """Task -> capacity units it holds while it runs."""
    parallel: Spec
    sequential_order: tuple[int, ...]
    by_priority: tuple[int, ...] = field(default=())

    @property
    def prices_as_of(self) -> str:
        return PRICES_AS_OF

    def sequential(self, chosen: dict[int, str]) -> Spec:
        """The one-lane baseline: units in dependency order, each race run by its ``chosen`` member."""
        units = tuple(
            Unit(
                unit.index,
                unit.name,
                (chosen.get(unit.index, unit.members[0]),),
                unit.after,
                (),
                unit.priority,
            )
            for unit in self.parallel.units
        )
        queue = tuple(units[index].members[0] for index in self.sequential_order)
        subagents = [child for cycles in self.spawns.values() for group in cycles.values() for child in group]
        return Spec(
            units=units,
            lanes={SEQUENTIAL_LANE: None},
            queues={SEQUENTIAL_LANE: queue},
            lane_of=dict.fromkeys([*queue, *subagents], SEQUENTIAL_LANE),
            capacities={},
            inline=True,
        )


def _lane_start(row: PlannedTask) -> float:
    """When the plan has the task take its lane (before its first cycle when it waits first)."""
    return row.start_min if row.lane_start_min is None else row.lane_start_min


def _price(model: str, role: Role, scenario: Scenario, field: str) -> ModelPrice:
    """``model``'s prices as ``role`` pays them (its cache writes at its cache's lifetime)."""
    price = resolve(model, scenario.prices)
    if price is None:
        raise SimulationError(
            field,
            f"no price known for model '{model}' (table as of {PRICES_AS_OF}); add it under 'prices:', "
            f"e.g. prices: {{{model}: {{input_per_mtok: 3, output_per_mtok: 15}}}}",
        )
    return price.for_ttl(role.tokens.cache_ttl)


def build_layout(plan: Plan) -> Layout:
    """Work out the units, lanes, queues and prices of ``plan``; raises :class:`SimulationError`."""
    scenario = plan.scenario
    problem = Problem.from_scenario(scenario)
    tasks = {task.id: task for task in scenario.all_tasks()}
    roles = {task_id: scenario.role(task.role) for task_id, task in tasks.items()}

    prices: dict[str, ModelPrice] = {}
    cycle_prices: dict[str, tuple[ModelPrice, ...]] = {}
    for task_id, task in tasks.items():
        role = roles[task_id]
        prices[task_id] = _price(role.model, role, scenario, f"roles.{task.role}.model")
        if task.cycle_models:
            cycle_prices[task_id] = tuple(
                _price(task.model_of(role, cycle), role, scenario, f"tasks.{task_id}.cycle_models.{cycle}")
                for cycle in range(1, task.cycles + 1)
            )

    planned = {row.task: (lane.lane, row) for lane, row in plan.planned_tasks()}
    missing = sorted(set(tasks) - set(planned))
    if missing:
        raise SimulationError("lanes", f"the plan places no lane for task(s) {', '.join(missing)}")

    units = []
    skipped_tasks: set[str] = set()
    for activity in problem.activities:
        start = min(_lane_start(planned[task.id][1]) for task in activity.members)
        members: list[str] = []
        skipped: list[str] = []
        taken: set[str] = set()
        ranked = sorted(
            activity.members,
            key=lambda task: (planned[task.id][1].start_min, -planned[task.id][1].finish_min),
        )
        for task in ranked:
            lane_name = planned[task.id][0]
            (skipped if lane_name in taken else members).append(task.id)
            taken.add(lane_name)
        kept = tuple(task.id for task in activity.members if task.id in members)
        skipped_tasks.update(skipped)
        emitters = sorted(
            {
                problem.activity_of[problem.emitter[event][0]]
                for task in activity.members
                for event in task.waits
            }
            - {activity.index}
        )
        units.append(
            Unit(
                index=activity.index,
                name=activity.name,
                members=kept,
                after=activity.after,
                emitters=tuple(emitters),
                priority=(start, activity.index),
                skipped=tuple(skipped),
            )
        )

    waits_before: dict[str, dict[int, tuple[str, ...]]] = {}
    emits_after: dict[str, dict[int, tuple[str, ...]]] = {}
    waiters: dict[str, list[str]] = {}
    demand: dict[str, dict[str, int]] = {}
    for task_id, task in tasks.items():
        before: dict[int, list[str]] = {}
        for event, cycle in task.waits.items():
            before.setdefault(cycle, []).append(event)
            waiters.setdefault(event, []).append(task_id)
        waits_before[task_id] = {cycle: tuple(events) for cycle, events in before.items()}
        after: dict[int, list[str]] = {}
        for event, cycle in task.emits.items():
            after.setdefault(cycle, []).append(event)
        emits_after[task_id] = {cycle: tuple(events) for cycle, events in after.items()}
        needs = {f"resource:{name}": units_needed for name, units_needed in task.requires.items()}
        if PARALLEL in problem.capacities:
            needs[PARALLEL] = 1
        demand[task_id] = needs

    dependents: dict[int, list[int]] = {unit.index: [] for unit in units}
    for unit in units:
        for before_unit in unit.after:
            dependents[before_unit].append(unit.index)

    lanes = {lane.lane: lane.role for lane in plan.lanes}
    spawns: dict[str, dict[int, tuple[str, ...]]] = {
        parent: {cycle: tuple(child.id for child in children) for cycle, children in cycles.items()}
        for parent, cycles in scenario.subagents().items()
    }
    # A subagent is no unit: its parent starts it, so no lane queue holds it.
    queues = {
        lane.lane: tuple(
            row.task
            for row in lane.tasks
            if row.task not in skipped_tasks and tasks[row.task].spawned_by is None
        )
        for lane in plan.lanes
    }
    parallel = Spec(
        units=tuple(units),
        lanes=lanes,
        queues=queues,
        lane_of={task: lane for task, (lane, _) in planned.items()},
        capacities=dict(problem.capacities),
        subagent_lanes=frozenset(
            name for name in lanes if any(name.startswith(f"{other}-sub") for other in lanes if other != name)
        ),
    )
    order = tuple(activity.index for activity in topological_order(problem, lambda a: (a.index,)))
    return Layout(
        plan=plan,
        tasks=tasks,
        roles=roles,
        prices=prices,
        cycle_prices=cycle_prices,
        unit_of=dict(problem.activity_of),
        emitter=dict(problem.emitter),
        waits_before=waits_before,
        emits_after=emits_after,
        waiters={event: tuple(names) for event, names in waiters.items()},
        spawns=spawns,
        dependents={index: tuple(names) for index, names in dependents.items()},
        demand=demand,
        parallel=parallel,
        sequential_order=order,
        by_priority=tuple(unit.index for unit in sorted(units, key=lambda unit: unit.priority)),
    )
