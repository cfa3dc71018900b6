"""A fast serial schedule generator on plain arrays, for problems without sync points or races.

:class:`Timeline` handles everything a scenario can say (waits that stretch a task, races, lanes chosen
one by one) and pays for it in speed. Most problems that search algorithms work on hard, PSPLIB's among
them, have none of that: every activity is one task of fixed length that needs one lane of its role and
some units of capacity resources. :func:`compact` turns such a problem into arrays, and
:meth:`Compact.serial` places an activity list at earliest feasible starts against a piecewise-constant
availability profile, forwards or backwards (for forward-backward improvement). Lanes are a cumulative
resource here; :func:`to_placements` gives each activity a concrete lane afterwards (a role's tasks never
overlap more than its lanes, so lanes can always be assigned, first free lane first).

Knows the Problem; knows no search strategy.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from cycleplan.planner.problem import EPS, Durations, Lane, Placement, Problem
from cycleplan.rules import require_holding

require_holding(__name__)  # a waiting task keeps its lane, resources and slot (cycleplan.rules)


@dataclass(frozen=True)
class Compact:
    """A problem of plain activities: lengths, finish-to-start links and capacity demands."""

    duration: list[float]
    predecessors: list[list[int]]
    successors: list[list[int]]
    demand: list[list[tuple[int, int]]]
    """(resource number, units) that each activity holds, binding resources only."""
    capacity: list[int]
    role: list[str]

    @property
    def size(self) -> int:
        return len(self.duration)

    def serial(self, order: Sequence[int], backward: bool = False) -> tuple[list[float], float]:
        """Place ``order`` (which lists predecessors first; successors first when ``backward``) at
        earliest feasible starts. Returns each activity's start and the makespan; a backward schedule
        is returned in reversed time (its starts are distances from the end).

        Availability is kept as breakpoints in time, each with what every resource has free until the
        next one. Written for speed (search algorithms spend their time here): locals instead of
        attribute look-ups, an infinite last breakpoint instead of bound checks.
        """
        links = self.successors if backward else self.predecessors
        duration = self.duration
        demand = self.demand
        start = [0.0] * len(duration)
        finish = [0.0] * len(duration)
        times = [0.0, math.inf]
        avail = [list(self.capacity), list(self.capacity)]
        locate = bisect_right
        insert_at = bisect_left
        eps = EPS
        makespan = 0.0
        for job in order:
            at = 0.0
            for pred in links[job]:
                if finish[pred] > at:
                    at = finish[pred]
            length = duration[job]
            needs = demand[job]
            if needs:
                position = locate(times, at + eps) - 1
                end = at + length - eps
                while times[position] < end:
                    free = avail[position]
                    for resource, units in needs:
                        if free[resource] < units:
                            # Conflict: the next candidate start is where this segment ends.
                            position += 1
                            at = times[position]
                            end = at + length - eps
                            break
                    else:
                        position += 1
                # Breakpoints at the start and the end, then take the units in between.
                bounds = []
                for point in (at, at + length):
                    index = insert_at(times, point - eps)
                    if times[index] > point + eps:
                        times.insert(index, point)
                        avail.insert(index, avail[index - 1][:])
                    bounds.append(index)
                first, last = bounds
                for index in range(first, last):
                    free = avail[index]
                    for resource, units in needs:
                        free[resource] -= units
            start[job] = at
            done = at + length
            finish[job] = done
            if done > makespan:
                makespan = done
        return start, makespan


def compact(problem: Problem, durations: Durations) -> Compact | None:
    """The arrays of ``problem``, or None when it has sync points or races (use the Timeline)."""
    activities = problem.activities
    if any(activity.is_race or activity.members[0].waits for activity in activities):
        return None
    duration = [problem.nominal_length(activity, durations) for activity in activities]
    successors: list[list[int]] = [[] for _ in activities]
    for activity in activities:
        for pred in activity.after:
            successors[pred].append(activity.index)

    # Every resource as (capacity, demand per activity): role lanes, then max_parallel and the others.
    resources: list[tuple[int, list[int]]] = []
    for role, lanes in problem.lanes.items():
        resources.append((lanes, [int(activity.members[0].role == role) for activity in activities]))
    for name, capacity in problem.capacities.items():
        demands = [problem.demand(activity).get(name, 0) for activity in activities]
        resources.append((capacity, demands))
    # A resource that could hold every activity at once never binds; leaving it out is faster.
    binding = [(capacity, demands) for capacity, demands in resources if sum(demands) > capacity]
    demand = [
        [(number, demands[index]) for number, (_, demands) in enumerate(binding) if demands[index] > 0]
        for index in range(len(activities))
    ]
    return Compact(
        duration=duration,
        predecessors=[list(activity.after) for activity in activities],
        successors=successors,
        demand=demand,
        capacity=[capacity for capacity, _ in binding],
        role=[activity.members[0].role for activity in activities],
    )


def assign_lanes(problem: Problem, spans: Sequence[tuple[int, float, float]]) -> dict[int, tuple[Lane, ...]]:
    """Lanes for activities given as (index, lane start, end), first free lane first.

    Works whenever no role ever has more members running than lanes: taken in start order, an activity
    finds its lanes free (the interval-graph colouring argument).
    """
    lane_free_at: dict[Lane, float] = {}
    chosen: dict[int, tuple[Lane, ...]] = {}
    for index, start, end in sorted(spans, key=lambda span: (span[1], span[0])):
        lanes: list[Lane] = []
        for task in problem.activities[index].members:
            lane = next(
                (
                    (task.role, number)
                    for number in range(1, problem.lanes[task.role] + 1)
                    if (task.role, number) not in lanes
                    and lane_free_at.get((task.role, number), 0.0) <= start + EPS
                ),
                None,
            )
            if lane is None:
                raise AssertionError(
                    f"more {task.role} tasks at {start} than lanes"
                )  # the profile forbids it
            lanes.append(lane)
        for lane in lanes:
            lane_free_at[lane] = end
        chosen[index] = tuple(lanes)
    return chosen


def to_placements(problem: Problem, arrays: Compact, start: Sequence[float]) -> dict[int, Placement]:
    """Placements of a schedule given by its starts, each activity on the first free lane of its role."""
    spans = [(index, start[index], start[index] + arrays.duration[index]) for index in range(arrays.size)]
    lanes = assign_lanes(problem, spans)
    return {
        index: Placement(index, at, end, lanes[index], {problem.activities[index].members[0].id: at})
        for index, at, end in spans
    }
