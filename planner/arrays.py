"""A fast serial schedule generator on plain arrays, for problems without sync points or races.

:class:`Timeline` handles everything a scenario can say (waits that stretch a task, races, lanes kept
from an earlier schedule) and pays for it in speed. Most problems that search algorithms work on hard,
PSPLIB's among them, have none of that: every activity is one task of fixed length that needs one lane
of its role and some units of capacity resources. :func:`compact` turns such a problem into arrays, and
:meth:`Compact.serial` places an activity list at earliest feasible starts, forwards or backwards (for
forward-backward improvement), by the Timeline's own rule: an activity takes the first lane of its role
that is free from its start to its end and keeps it (a lane is one agent, which a task holds until it
ends), and capacity resources are a piecewise-constant availability profile. Placed forwards, an
activity list gives the same starts and lanes here as on the Timeline; :func:`to_placements` gives the
placements.

Only roles whose tasks could outnumber their lanes are tracked lane by lane while placing; the others
always have a free lane, so their lanes are chosen afterwards, in the list's order, by the same rule.

Knows the Problem; knows no search strategy.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from cycleplan.core.rules import require_holding
from cycleplan.planner.problem import EPS, Durations, Lane, Placement, Problem

require_holding(__name__)  # a waiting task keeps its lane, resources and slot (cycleplan.core.rules)


@dataclass(frozen=True)
class Compact:
    """A problem of plain activities: lengths, finish-to-start links, lanes and capacity demands."""

    duration: list[float]
    predecessors: list[list[int]]
    successors: list[list[int]]
    demand: list[list[tuple[int, int]]]
    """(resource number, units) that each activity holds, binding capacity resources only."""
    capacity: list[int]
    role: list[str]
    lanes: list[range]
    """The lane numbers (over every tracked role, each role's lanes in order) each activity may take;
    empty for an activity of a role that is not tracked (it always finds a lane free)."""
    lane_count: int
    """Lanes of every tracked role together."""
    first_lane: dict[str, int]
    """Where each tracked role's lanes begin among :attr:`lane_count`."""

    @property
    def size(self) -> int:
        return len(self.duration)

    def serial(self, order: Sequence[int], backward: bool = False) -> tuple[list[float], float, list[int]]:
        """Place ``order`` (which lists predecessors first; successors first when ``backward``) at
        earliest feasible starts. Returns each activity's start, the makespan, and the tracked lane each
        activity took (its number among :attr:`lane_count`; -1 for a role not tracked); a backward
        schedule is returned in reversed time (its starts are distances from the end).

        An activity's start is the earliest, from its predecessors' last finish on, at which the profile
        has room and a lane of its role is free (tried first lane first), both until its end. Each failure
        tells how long it lasts (the profile segment short of room, the span in the way on the lane that
        frees first) and the start moves there, until both hold at once. The comparisons are the
        Timeline's, tolerance EPS included.

        Lanes are kept as the sorted starts and ends of their spans; availability as breakpoints in time,
        each with what every resource has free until the next one. Written for speed (search algorithms
        spend their time here): locals instead of attribute look-ups, an infinite last breakpoint instead
        of bound checks, the profile's walk inline.
        """
        links = self.successors if backward else self.predecessors
        duration = self.duration
        demand = self.demand
        lanes = self.lanes
        start = [0.0] * len(duration)
        finish = [0.0] * len(duration)
        taken = [-1] * len(duration)
        tracked = self.lane_count
        span_starts: list[list[float]] = [[] for _ in range(tracked)] if tracked else []
        span_ends: list[list[float]] = [[] for _ in range(tracked)] if tracked else []
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
            options = lanes[job]
            if options:
                # The first lane free until the end; else the start moves to when the first lane frees
                # up, and the profile is looked at again from there.
                if needs:
                    at = _room_from(times, avail, needs, at, length)
                while True:
                    end = at + length - eps
                    lane = -1
                    frees_at = math.inf
                    for number in options:
                        ends = span_ends[number]
                        before = insert_at(span_starts[number], end)
                        if before == 0 or ends[before - 1] <= at + eps:
                            lane = number
                            break
                        if ends[before - 1] < frees_at:
                            frees_at = ends[before - 1]
                    if lane >= 0:
                        break
                    at = frees_at
                    if needs:
                        at = _room_from(times, avail, needs, at, length)
                index = insert_at(span_starts[lane], at)
                span_starts[lane].insert(index, at)
                span_ends[lane].insert(index, at + length)
                taken[job] = lane
            if needs:
                if not options:
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
            done = at + length
            start[job] = at
            finish[job] = done
            if done > makespan:
                makespan = done
        return start, makespan, taken


def _room_from(
    times: list[float], avail: list[list[int]], needs: list[tuple[int, int]], at: float, length: float
) -> float:
    """The earliest start from ``at`` on at which the profile has room for ``needs`` for ``length``
    (the walk :meth:`Compact.serial` makes inline, made again after a lane moved the start)."""
    position = bisect_right(times, at + EPS) - 1
    end = at + length - EPS
    while times[position] < end:
        free = avail[position]
        for resource, units in needs:
            if free[resource] < units:
                position += 1
                at = times[position]
                end = at + length - EPS
                break
        else:
            position += 1
    return at


def compact(problem: Problem, durations: Durations) -> Compact | None:
    """The arrays of ``problem``, or None when it has sync points or races (use the Timeline), or an
    activity shorter than EPS (the Timeline's tolerance for spans out of order)."""
    activities = problem.activities
    if any(activity.is_race or activity.members[0].waits for activity in activities):
        return None
    duration = [problem.nominal_length(activity, durations) for activity in activities]
    if any(length <= EPS for length in duration):
        return None
    successors: list[list[int]] = [[] for _ in activities]
    for activity in activities:
        for pred in activity.after:
            successors[pred].append(activity.index)
    role = [activity.members[0].role for activity in activities]

    # A role with at least a lane per task never makes one wait: its lanes are not tracked.
    tasks_of: dict[str, int] = {}
    for name in role:
        tasks_of[name] = tasks_of.get(name, 0) + 1
    first_lane: dict[str, int] = {}
    lane_count = 0
    for name, lanes in problem.lanes.items():
        if tasks_of.get(name, 0) > lanes:
            first_lane[name] = lane_count
            lane_count += lanes
    lanes_of = [
        range(first_lane[name], first_lane[name] + problem.lanes[name]) if name in first_lane else range(0)
        for name in role
    ]

    # Every capacity resource as (capacity, demand per activity): max_parallel and the others.
    resources: list[tuple[int, list[int]]] = []
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
        role=role,
        lanes=lanes_of,
        lane_count=lane_count,
        first_lane=first_lane,
    )


def assign_lanes(problem: Problem, spans: Sequence[tuple[int, float, float]]) -> dict[int, tuple[Lane, ...]]:
    """Lanes for a schedule given by its times alone, as (index, lane start, end), first free lane first
    (for the exact algorithm, whose model counts a role's lanes as a cumulative resource).

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


def to_placements(problem: Problem, arrays: Compact, order: Sequence[int]) -> dict[int, Placement]:
    """The placements of ``order`` placed forwards: the starts and lanes :meth:`Compact.serial` gives, and
    for the roles it does not track, the first lane free from start to end, in the list's order (as the
    Timeline chooses)."""
    start, _, taken = arrays.serial(order)
    spans: dict[Lane, tuple[list[float], list[float]]] = {}
    placements: dict[int, Placement] = {}
    for index in order:
        role = arrays.role[index]
        at, end = start[index], start[index] + arrays.duration[index]
        if taken[index] >= 0:
            lane = (role, taken[index] - arrays.first_lane[role] + 1)
        else:
            free = (
                (role, number)
                for number in range(1, problem.lanes[role] + 1)
                if _free(spans.get((role, number), ([], [])), at, end)
            )
            found = next(free, None)
            if found is None:  # a role is left untracked only when it has a lane per task
                raise AssertionError(f"no {role} lane free at {at}")
            lane = found
        starts, ends = spans.setdefault(lane, ([], []))
        position = bisect_left(starts, at)
        starts.insert(position, at)
        ends.insert(position, end)
        placements[index] = Placement(index, at, end, (lane,), {problem.activities[index].members[0].id: at})
    return placements


def _free(spans: tuple[list[float], list[float]], start: float, end: float) -> bool:
    """Whether a lane with these sorted span starts and ends is free from ``start`` to ``end`` (the
    Timeline's test: only the last span that starts before ``end`` can reach into the interval)."""
    starts, ends = spans
    before = bisect_left(starts, end - EPS)
    return before == 0 or ends[before - 1] <= start + EPS
