"""The scheduling problem behind a scenario, and the schedule-generation step every algorithm shares.

A scenario's tasks become *activities*: one per task, except that the members of a race group form one
activity (they start together, the first to finish wins and the others are cancelled). Each activity
needs one lane of each member's role, a unit of the global ``max_parallel`` cap per member, and the units
of extra resources its members require, for as long as it holds its lanes. A task that waits for an event
holds its lane while it waits, so its length depends on when it starts; :meth:`Problem.finish_times`
computes it from per-cycle durations and the emit times known so far.

:class:`Timeline` places activities one by one at their earliest feasible start (the serial schedule
generation scheme), either choosing lanes or keeping lanes given by an earlier schedule. Algorithms
differ only in the order they hand activities over. Knows the model; knows nothing of priority rules,
Plans or output.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cycleplan.core.model import Scenario, Task
from cycleplan.core.rules import PARALLEL, scenario_units

EPS = 1e-9

Durations = Callable[[Task], Sequence[float]]
"""Minutes of each cycle of a task (nominal for planning, 1.0 for wall cycles, draws for simulation)."""


def _with_subagents(scenario: Scenario, own: Durations, inline: bool) -> Durations:
    """``own`` durations with each spawning cycle lengthened by the time its parent is blocked: the
    longest of its subagents (each on a lane of its own), or all of them one after the other
    (``inline``: one agent doing everything, as in the sequential baseline)."""
    spawned = scenario.subagents()
    if not spawned:
        return own
    known: dict[str, list[float]] = {}

    def durations(task: Task) -> list[float]:
        found = known.get(task.id)
        if found is None:
            found = list(own(task))
            for cycle, children in spawned.get(task.id, {}).items():
                lengths = [sum(own(child)) for child in children]
                found[cycle - 1] += sum(lengths) if inline else max(lengths)
            known[task.id] = found
        return found

    return durations


def nominal_durations(scenario: Scenario, *, inline: bool = False) -> Durations:
    """Each cycle at its role's nominal duration times the task's multiplier; a cycle that spawns
    subagents also holds its lane while they run (``inline``: one after the other)."""

    def own(task: Task) -> list[float]:
        minutes = scenario.role(task.role).nominal_cycle_min * task.duration_multiplier
        return [minutes] * task.cycles

    return _with_subagents(scenario, own, inline)


def unit_durations(task: Task) -> list[float]:
    """Every cycle one unit long: times come out in wall cycles (a task's own cycles, subagents aside)."""
    return [1.0] * task.cycles


def cycle_durations(scenario: Scenario, *, inline: bool = False) -> Durations:
    """:func:`unit_durations` with spawning cycles lengthened by their subagents' cycles, as
    :func:`nominal_durations` does in minutes."""
    return _with_subagents(scenario, unit_durations, inline)


@dataclass(frozen=True)
class Activity:
    """What is placed as one: a task, or a race group's members."""

    index: int
    name: str
    members: tuple[Task, ...]
    predecessors: tuple[int, ...]
    """Activities that must finish (``after``) or emit (``waits``) before this one can be placed."""
    after: tuple[int, ...]
    """Finish-to-start predecessors only."""

    @property
    def is_race(self) -> bool:
        return len(self.members) > 1


@dataclass
class Problem:
    """Activities, lanes per role and capacities of one scenario."""

    scenario: Scenario
    activities: list[Activity]
    activity_of: dict[str, int]
    emitter: dict[str, tuple[str, int]]
    """Event name -> (task id, cycle after which it is emitted)."""
    lanes: dict[str, int]
    capacities: dict[str, int]
    """Capacity resources: ``max_parallel`` (when set) and each extra resource."""

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> Problem:
        # Subagents are not placed: each runs on a lane of its own from the moment its parent spawns
        # it, and their time is in their parent's (see nominal_durations).
        tasks = [task for task in scenario.all_tasks() if task.spawned_by is None]
        by_id = {task.id: task for task in tasks}
        # The units the executor and the simulator start, in the same order (cycleplan.core.rules).
        order = [[by_id[member] for member in unit] for unit in scenario_units(scenario)]
        activity_of = {task.id: index for index, members in enumerate(order) for task in members}
        emitter = {event: (task.id, cycle) for task in tasks for event, cycle in task.emits.items()}
        activities = []
        for index, members in enumerate(order):
            after = sorted({activity_of[dep] for task in members for dep in task.after} - {index})
            synced = {activity_of[emitter[event][0]] for task in members for event in task.waits} - {index}
            name = members[0].race if len(members) > 1 and members[0].race else members[0].id
            activities.append(
                Activity(index, name, tuple(members), tuple(sorted(set(after) | synced)), tuple(after))
            )
        capacities = {f"resource:{name}": spec.capacity for name, spec in scenario.resources.items()}
        if scenario.max_parallel is not None:
            capacities[PARALLEL] = scenario.max_parallel
        only_subagents = {task.role for task in scenario.all_tasks()} - {task.role for task in tasks}
        lanes = {
            role: scenario.role(role).lanes for role in scenario.role_names() if role not in only_subagents
        }
        _refuse_race_loops(activities)
        return cls(scenario, activities, activity_of, emitter, lanes, capacities)

    def demand(self, activity: Activity) -> dict[str, int]:
        """Units of each capacity resource the activity holds while it runs."""
        demand: dict[str, int] = {}
        for task in activity.members:
            for resource, units in task.requires.items():
                key = f"resource:{resource}"
                demand[key] = demand.get(key, 0) + units
        if PARALLEL in self.capacities:
            demand[PARALLEL] = len(activity.members)
        return demand

    def finish_times(
        self,
        activity: Activity,
        start: float,
        durations: Durations,
        emitted: dict[str, float],
    ) -> tuple[float, dict[str, float], dict[str, float]]:
        """When the activity ends if it takes its lanes at ``start``.

        Returns the end (the race winner's finish for a race), each member's first-cycle start, and the
        emit times of the events its members publish before the end.
        """
        ends: dict[str, float] = {}
        first_cycle: dict[str, float] = {}
        emits: dict[str, float] = {}
        for task in activity.members:
            waits_before: dict[int, list[str]] = {}
            for event, cycle in task.waits.items():
                waits_before.setdefault(cycle, []).append(event)
            emits_after: dict[int, list[str]] = {}
            for event, cycle in task.emits.items():
                emits_after.setdefault(cycle, []).append(event)
            clock = start
            for number, minutes in enumerate(durations(task), start=1):
                for event in waits_before.get(number, ()):
                    clock = max(clock, emitted[event])
                if number == 1:
                    first_cycle[task.id] = clock
                clock += minutes
                for event in emits_after.get(number, ()):
                    emits[event] = clock
            ends[task.id] = clock
        end = min(ends.values())
        return end, first_cycle, {event: at for event, at in emits.items() if at <= end + EPS}

    def nominal_length(self, activity: Activity, durations: Durations) -> float:
        """Minutes the activity takes when nothing makes it wait."""
        return min(sum(durations(task)) for task in activity.members)


class RaceLoopError(ValueError):
    """A race group whose members depend on each other through other tasks: they cannot start together."""


def _refuse_race_loops(activities: list[Activity]) -> None:
    """Raise :class:`RaceLoopError` when merging race members into one activity closes a loop.

    The scenario's own checks see loops between tasks; a race member that depends on another member of
    its group through other tasks (``b after x``, ``x after a``, ``a`` and ``b`` racing) is a loop only
    once the group is one activity.
    """
    remaining = {a.index: len(a.predecessors) for a in activities}
    successors: dict[int, list[int]] = {a.index: [] for a in activities}
    for activity in activities:
        for pred in activity.predecessors:
            successors[pred].append(activity.index)
    ready = [index for index, count in remaining.items() if count == 0]
    while ready:
        for succ in successors[ready.pop()]:
            remaining[succ] -= 1
            if remaining[succ] == 0:
                ready.append(succ)
    stuck = [activities[index] for index, count in remaining.items() if count > 0]
    races = [activity for activity in stuck if activity.is_race]
    if races:
        race = races[0]
        members = ", ".join(task.id for task in race.members)
        raise RaceLoopError(
            f"race group '{race.name}' ({members}): one member depends on another through other tasks "
            "or events, but race members start together; take the dependency out or the task out of the race"
        )


@dataclass(frozen=True)
class Placement:
    """Where and when an activity was placed."""

    activity: int
    start: float
    """When its lanes are taken."""
    end: float
    lanes: tuple[tuple[str, int], ...]
    """(role, lane number) per member, in member order."""
    first_cycle: dict[str, float]
    """When each member's first cycle starts (later than ``start`` when it waits for an event first)."""


Lane = tuple[str, int]
"""A lane's key: (role, number from 1). The sequential baseline's single lane is ("sequential", 1)."""


@dataclass(frozen=True)
class Schedule:
    """An algorithm's answer: every activity placed, in minutes and again in wall cycles."""

    minutes: dict[int, Placement]
    cycles: dict[int, Placement]
    lanes: list[Lane]
    """Every lane, in display order (idle ones too)."""
    skipped: frozenset[str] = frozenset()
    """Race members that never ran (the sequential baseline runs only a race's fastest member)."""
    proven_optimal: bool | None = None
    """Whether the algorithm proved that no schedule is shorter (None: it does not know)."""


def role_lanes(problem: Problem) -> list[Lane]:
    """Every lane of every role, role by role."""
    return [(role, number) for role, count in problem.lanes.items() for number in range(1, count + 1)]


@dataclass
class Timeline:
    """Lanes and capacities over time, filled by placing activities at their earliest feasible start."""

    problem: Problem
    durations: Durations
    busy: dict[tuple[str, int], list[tuple[float, float]]] = field(default_factory=dict)
    usage: dict[str, tuple[list[float], list[int]]] = field(default_factory=dict)
    """Per capacity resource: breakpoints in time and the units in use from each until the next."""
    emitted: dict[str, float] = field(default_factory=dict)
    placed: dict[int, Placement] = field(default_factory=dict)
    lane_end: dict[tuple[str, int], float] = field(default_factory=dict)
    ends: list[float] = field(default_factory=list)
    """The end of every span on every lane, sorted: the candidate starts that lanes give."""
    unsorted: set[tuple[str, int]] = field(default_factory=set)
    """Lanes whose span ends are out of order (spans shorter than EPS next to others)."""
    fixed: dict[int, tuple[float, dict[str, float]] | None] = field(default_factory=dict)
    """Per activity: its length and emit offsets when no member waits (the same at every start), else
    None. Filled as activities are placed."""

    def ready(self, activity: Activity) -> bool:
        return all(pred in self.placed for pred in activity.predecessors)

    def earliest_start(self, activity: Activity) -> float:
        return max((self.placed[pred].end for pred in activity.after), default=0.0)

    def place(self, activity: Activity, lanes: Sequence[tuple[str, int]] | None = None) -> Placement:
        """Put ``activity`` at its earliest feasible start; with ``lanes`` given, only on those lanes and
        not before anything already on them (lane order is kept).

        The candidate starts are ``earliest`` and every span end and capacity breakpoint after it, tried
        in increasing order. A candidate that fails tells how long the failure lasts (a lane busy until a
        span's end, a resource short until its next breakpoint; a later start never finishes earlier),
        and the candidates before then are skipped: a placement tries a few candidates, not one per
        activity placed before it.
        """
        problem = self.problem
        earliest = self.earliest_start(activity)
        if lanes is not None:
            earliest = max([earliest, *(self.lane_end.get(lane, 0.0) for lane in lanes)])
        demand = problem.demand(activity)
        start: float | None = earliest
        while start is not None:
            end, first_cycle, emits = self._finish(activity, start)
            chosen = self._lanes_free(activity, start, end, lanes)
            if chosen is not None:
                short_until = self._capacity_short(demand, start, end)
                if short_until is None:
                    return self._commit(activity, start, end, chosen, first_cycle, emits, demand)
                blocked_until = short_until
            else:
                blocked_until = self._lanes_busy_until(activity, start, end, lanes)
            start = self._next_candidate(start, blocked_until)
        raise AssertionError(f"no feasible start for {activity.name}")  # the last candidate always fits

    def _next_candidate(self, after: float, blocked_until: float) -> float | None:
        """The first candidate start later than ``after`` not known to fail: a span end or breakpoint
        with ``candidate + EPS >= blocked_until`` (the test :meth:`_busy_until` and
        :meth:`_capacity_short` make against a span's end or a breakpoint, so none is skipped that
        could fit)."""
        found: float | None = None

        def usable(point: float) -> bool:
            return point > after and point + EPS >= blocked_until

        for points in (self.ends, *(times for times, _ in self.usage.values())):
            index = bisect.bisect_left(points, True, key=usable)
            if index < len(points) and (found is None or points[index] < found):
                found = points[index]
        return found

    def _finish(self, activity: Activity, start: float) -> tuple[float, dict[str, float], dict[str, float]]:
        """:meth:`Problem.finish_times` at ``start``, without replaying cycles when nothing waits."""
        if activity.index not in self.fixed:
            if any(task.waits for task in activity.members):
                self.fixed[activity.index] = None
            else:
                end, _, emits = self.problem.finish_times(activity, 0.0, self.durations, {})
                self.fixed[activity.index] = (end, emits)
        known = self.fixed[activity.index]
        if known is None:
            return self.problem.finish_times(activity, start, self.durations, self.emitted)
        length, offsets = known
        return (
            start + length,
            {task.id: start for task in activity.members},
            {event: start + offset for event, offset in offsets.items()},
        )

    def _lane_options(
        self, activity: Activity, fixed: Sequence[tuple[str, int]] | None
    ) -> list[list[tuple[str, int]]]:
        """The lanes each member may take, in the order they are tried."""
        return [
            [fixed[position]]
            if fixed is not None
            else [(task.role, number) for number in range(1, self.problem.lanes[task.role] + 1)]
            for position, task in enumerate(activity.members)
        ]

    def _lanes_free(
        self, activity: Activity, start: float, end: float, fixed: Sequence[tuple[str, int]] | None
    ) -> list[tuple[str, int]] | None:
        chosen: list[tuple[str, int]] = []
        for options in self._lane_options(activity, fixed):
            free = (
                lane for lane in options if lane not in chosen and self._busy_until(lane, start, end) is None
            )
            lane = next(free, None)
            if lane is None:
                return None
            chosen.append(lane)
        return chosen

    def _lanes_busy_until(
        self, activity: Activity, start: float, end: float, fixed: Sequence[tuple[str, int]] | None
    ) -> float:
        """A time that no start after ``start`` finds lanes for every member before: for some member,
        every lane it may take stays busy until then (``start`` itself when that cannot be told)."""
        until = start
        for options in self._lane_options(activity, fixed):
            member_until = math.inf
            for lane in options:
                busy = self._busy_until(lane, start, end)
                if busy is None or lane in self.unsorted:
                    member_until = start
                    break
                member_until = min(member_until, busy)
            until = max(until, member_until)
        return until

    def _busy_until(self, lane: tuple[str, int], start: float, end: float) -> float | None:
        """None when the lane is free from ``start`` to ``end``, else the end of the span in the way.

        A lane's spans are sorted and never overlap, so only the last span that starts before ``end`` can
        reach into the interval. A later start (with its end no earlier) finds that span, or a later one
        ending no earlier, in the way until ``start + EPS`` reaches its end, as long as the lane's span
        ends are in order too (``unsorted`` holds lanes where spans shorter than EPS broke that order).
        """
        spans = self.busy.get(lane, [])
        before = bisect.bisect_left(spans, (end - EPS, -math.inf))
        if before == 0 or spans[before - 1][1] <= start + EPS:
            return None
        return spans[before - 1][1]

    def _capacity_short(self, demand: dict[str, int], start: float, end: float) -> float | None:
        """None when every resource has room from ``start`` to ``end``; else the breakpoint that ends a
        stretch without room (no later start with ``start + EPS`` below it has room; ``start`` itself when
        the stretch never ends)."""
        for resource, units in demand.items():
            if resource not in self.usage:
                continue
            times, used = self.usage[resource]
            room = self.problem.capacities[resource] - units
            index = bisect.bisect_right(times, start + EPS) - 1
            while index < len(times) and times[index] < end - EPS:
                if used[index] > room:
                    return times[index + 1] if index + 1 < len(times) else start
                index += 1
        return None

    def _take(self, resource: str, units: int, start: float, end: float) -> None:
        times, used = self.usage.setdefault(resource, ([0.0], [0]))
        bounds = []
        for point in (start, end):
            index = bisect.bisect_left(times, point - EPS)
            if index == len(times) or times[index] > point + EPS:
                times.insert(index, point)
                used.insert(index, used[index - 1])
            bounds.append(index)
        for index in range(bounds[0], bounds[1]):
            used[index] += units

    def _commit(
        self,
        activity: Activity,
        start: float,
        end: float,
        lanes: list[tuple[str, int]],
        first_cycle: dict[str, float],
        emits: dict[str, float],
        demand: dict[str, int],
    ) -> Placement:
        for lane in lanes:
            spans = self.busy.setdefault(lane, [])
            index = bisect.bisect_left(spans, (start, end))
            spans.insert(index, (start, end))
            neighbours = spans[max(index - 1, 0) : index + 2]
            if any(one[1] > other[1] for one, other in itertools.pairwise(neighbours)):
                self.unsorted.add(lane)
            bisect.insort(self.ends, end)
            self.lane_end[lane] = max(self.lane_end.get(lane, 0.0), end)
        for resource, units in demand.items():
            self._take(resource, units, start, end)
        self.emitted.update(emits)
        placement = Placement(activity.index, start, end, tuple(lanes), first_cycle)
        self.placed[activity.index] = placement
        return placement

    @property
    def makespan(self) -> float:
        return max((p.end for p in self.placed.values()), default=0.0)


def topological_order(problem: Problem, priority: Callable[[Activity], tuple[float, ...]]) -> list[Activity]:
    """Activities in an order that respects every predecessor, best ``priority`` (smallest) first."""
    remaining = {activity.index: len(activity.predecessors) for activity in problem.activities}
    successors: dict[int, list[int]] = {activity.index: [] for activity in problem.activities}
    for activity in problem.activities:
        for pred in activity.predecessors:
            successors[pred].append(activity.index)
    # A heap of (priority, arrival): the best priority first, the earliest to become ready on ties.
    arrival = itertools.count()
    ready = [(priority(a), next(arrival), a.index) for a in problem.activities if remaining[a.index] == 0]
    heapq.heapify(ready)
    order: list[Activity] = []
    while ready:
        _, _, index = heapq.heappop(ready)
        chosen = problem.activities[index]
        order.append(chosen)
        for succ in successors[index]:
            remaining[succ] -= 1
            if remaining[succ] == 0:
                heapq.heappush(ready, (priority(problem.activities[succ]), next(arrival), succ))
    return order
