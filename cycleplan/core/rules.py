"""The coordination rules of running a plan, decided once: the planner, both simulator engines and the
executor take them from here.

**What a waiting task holds.** A task takes what it needs when it starts: its lane (the agent running
it), the units of the shared resources it ``requires`` and, under ``max_parallel``, one of the run's
parallel slots. It keeps all of them until it ends (completes, fails or is cancelled). Waiting does not
give anything back:

- **on an event** (a ``waits`` entry before a later cycle): the agent is mid-task, its session open and
  its resources in use, waiting for another agent's word, as the ONE platform's ``watchFor`` does;
- **on its subagents** (fork-join): the parent is blocked, not finished;
- **on a rate limit**: the call is paused, the work is not.

This is the resource-constrained scheduling rule (an activity holds its renewable resources from start
to finish) that the planner's schedules, lower bounds and critical paths are built on, so a plan is a
schedule the executor can follow as it is. Releasing at a wait would let a later task slip into the gap
and run the plan in an order nobody predicted.

**What starts together, and in which order.** The plan is run as *units* (:func:`dispatch_units`): a
task, or the members of a race group, which start together (each on its own lane, once all of them can)
so that the race is a race. Each lane runs its tasks in the plan's order. Units take shared capacity
(resources, ``max_parallel``) all at once, in the order of their priority (:attr:`DispatchUnit.priority`:
when the plan has them take their lanes, then their place in the scenario): a unit does not take units of
a capacity that a unit of higher priority, not yet started, also needs, even when they are free, as the
plan assumed when it placed them.

**How a refused request comes back.** A request the organisation's rate limits cannot cover is refused
(429) with the time after which they could; nothing is queued. The client waits that long stretched by a
uniform jitter of up to :data:`RETRY_JITTER` (:func:`retry_wait`), so that agents told the same time do
not all come back at once, and tries again: whoever comes back first once the buckets hold enough is
served. The executor's API backend retries so, and the simulator refuses and retries its requests the
same way, so the waits it predicts include the gaps the jitter leaves and the order of service is the
race it is, not a queue.

:data:`WHILE_WAITING` states the holding rule as data; each part that schedules tasks reads it and
refuses to run under a rule it does not implement (:func:`require_holding`), so the rule can only change
for all of them at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cycleplan.core.model import Plan, Scenario


@dataclass(frozen=True, slots=True)
class Holding:
    """What a waiting task keeps."""

    lane: bool
    resources: bool
    parallel_slot: bool


HOLDS_EVERYTHING = Holding(lane=True, resources=True, parallel_slot=True)

WHILE_WAITING: dict[str, Holding] = {
    "event": HOLDS_EVERYTHING,
    "subagents": HOLDS_EVERYTHING,
    "rate_limit": HOLDS_EVERYTHING,
}
"""What a task keeps while it waits, by what it waits on (``event``, ``subagents``, ``rate_limit``)."""

RETRY_JITTER = 0.2
"""A refused request waits its retry-after times ``1 + RETRY_JITTER * u``, ``u`` uniform in [0, 1)."""

PARALLEL = "max_parallel"
"""The name under which ``max_parallel`` is counted among the capacities."""


def holds_while_waiting(cause: str) -> Holding:
    """What a task waiting on ``cause`` keeps (a KeyError for a cause the rule does not name)."""
    return WHILE_WAITING[cause]


def retry_wait(asked: float, uniform: float) -> float:
    """How long a request refused with retry-after ``asked`` waits before it tries again, for a uniform
    draw ``uniform`` in [0, 1) (any unit of time: the wait is in the unit of ``asked``)."""
    return asked * (1.0 + RETRY_JITTER * uniform)


def require_holding(part: str) -> None:
    """Stop ``part`` (a planner or engine written for the hold-everything rule) if the rule says
    otherwise: a part that implements only this rule must not predict under another."""
    for cause, holding in WHILE_WAITING.items():
        if holding != HOLDS_EVERYTHING:
            raise NotImplementedError(f"{part} holds everything while a task waits on {cause}")


@dataclass(frozen=True, slots=True)
class DispatchUnit:
    """What starts as one: a task, or the members of a race group (one lane each)."""

    name: str
    members: tuple[str, ...]
    """Task ids, in the scenario's order."""
    priority: tuple[float, int]
    """When the plan has the unit take its lanes (minutes), then its place among the units."""


def scenario_units(scenario: Scenario) -> list[list[str]]:
    """The scenario's tasks grouped into units (subagents left out: their parents start them), each
    at the place of its first member, in the scenario's order."""
    groups: dict[str, list[str]] = {}
    order: list[list[str]] = []
    for task in scenario.all_tasks():
        if task.spawned_by is not None:
            continue
        if task.race is None:
            order.append([task.id])
        elif task.race in groups:
            groups[task.race].append(task.id)
        else:
            groups[task.race] = [task.id]
            order.append(groups[task.race])
    return order


def dispatch_units(plan: Plan) -> list[DispatchUnit]:
    """The plan's units with their priorities, in the scenario's order."""
    rows = {row.task: row for _, row in plan.planned_tasks()}
    races = {task.id: task.race for task in plan.scenario.all_tasks()}
    units = []
    for ordinal, members in enumerate(scenario_units(plan.scenario)):
        placed = [rows[task] for task in members if task in rows]
        start = min(
            (row.start_min if row.lane_start_min is None else row.lane_start_min for row in placed),
            default=0.0,
        )
        race = races[members[0]]
        name = race if race is not None and len(members) > 1 else members[0]
        units.append(DispatchUnit(name, tuple(members), (start, ordinal)))
    return units


def blocked_by_earlier(
    demand: Mapping[str, int],
    priority: tuple[float, int],
    pending: Mapping[tuple[float, int], Mapping[str, int]],
) -> bool:
    """Whether a unit of ``priority`` asking for ``demand`` must leave it to a unit of higher priority
    that has not started yet and needs one of the same capacities (``pending``: priority -> demand)."""
    return any(
        other < priority and any(name in other_demand for name in demand)
        for other, other_demand in pending.items()
    )
