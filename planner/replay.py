"""Timing a fixed plan again: the same lanes and lane order, other cycle durations.

A Plan is shown twice, in expected minutes and in wall cycles (every cycle one unit long). An algorithm
places activities in minutes; :func:`retime` then replays that plan the way the executor would run it:
each lane runs its tasks in planned order; an activity takes its lanes once they are free, its
dependencies have finished and every capacity allows it, and never before an activity planned to start
earlier; a waiting cycle starts when its event is emitted; a race ends when its first member finishes.
Keeping the start order this strictly is what makes the replay deadlock-free: anything still running
when the next activity is due was also running beside it in the original plan.

Also here: :func:`emit_times`, when each event of a placed schedule is emitted. Knows the Problem; knows
no algorithm.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from cycleplan.core.model import Task
from cycleplan.planner.problem import EPS, Durations, Lane, Placement, Problem


def emit_times(problem: Problem, placements: dict[int, Placement], durations: Durations) -> dict[str, float]:
    """When each event is emitted in ``placements`` (each member's cycles run as soon as they may)."""
    found: dict[str, float] = {}
    expanded: set[str] = set()

    def emitter_of(event: str) -> tuple[Task, int, float]:
        task_id, emit_cycle = problem.emitter[event]
        index = problem.activity_of[task_id]
        task = next(task for task in problem.activities[index].members if task.id == task_id)
        return task, emit_cycle, placements[index].start

    # Depth first on an explicit stack (a chain of thousands of events would overflow Python's): an
    # event is timed once every event its emitter waits for up to its emitting cycle is.
    for root, (task_id, _) in problem.emitter.items():
        if problem.activity_of[task_id] not in placements:
            continue
        stack = [root]
        while stack:
            event = stack[-1]
            if event in found:
                stack.pop()
                continue
            task, emit_cycle, start = emitter_of(event)
            missing = [
                waited
                for waited, before in task.waits.items()
                if before <= emit_cycle and waited not in found
            ]
            if missing:
                if event in expanded:  # back to it, and what it waits for is still untimed: a loop
                    raise AssertionError(f"events wait for each other in a loop through '{event}'")
                expanded.add(event)
                stack.extend(missing)
                continue
            clock = start
            for number, minutes in enumerate(durations(task), start=1):
                for waited, before in task.waits.items():
                    if before == number:
                        # Events only wait on events emitted earlier in the loop-free sync graph.
                        clock = max(clock, found[waited])
                clock += minutes
                if number == emit_cycle:
                    break
            found[event] = clock
            stack.pop()
    return found


@dataclass
class _Replay:
    problem: Problem
    durations: Durations
    heap: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    """(time, sequence, activity, member position, cycle number that ends)."""
    sequence: itertools.count[int] = field(default_factory=itertools.count)
    emitted: dict[str, float] = field(default_factory=dict)
    blocked: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    """Event -> (activity, member, cycle about to start) waiting for it."""
    lane_free: dict[Lane, bool] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    start: dict[int, float] = field(default_factory=dict)
    end: dict[int, float] = field(default_factory=dict)
    first_cycle: dict[int, dict[str, float]] = field(default_factory=dict)
    lanes: dict[int, tuple[Lane, ...]] = field(default_factory=dict)

    def begin(self, index: int, lanes: tuple[Lane, ...], now: float) -> None:
        activity = self.problem.activities[index]
        self.start[index] = now
        self.lanes[index] = lanes
        self.first_cycle[index] = {}
        for lane in lanes:
            self.lane_free[lane] = False
        for resource, units in self.problem.demand(activity).items():
            self.usage[resource] = self.usage.get(resource, 0) + units
        for member in range(len(activity.members)):
            self.advance(index, member, 1, now)

    def advance(self, index: int, member: int, cycle: int, now: float) -> None:
        """Start ``cycle`` of a member now, unless it waits for an event not yet emitted."""
        if index in self.end:
            return  # the race is over
        task = self.problem.activities[index].members[member]
        for event, before in task.waits.items():
            if before == cycle and event not in self.emitted:
                self.blocked.setdefault(event, []).append((index, member, cycle))
                return
        if cycle == 1:
            self.first_cycle[index][task.id] = now
        minutes = self.durations(task)[cycle - 1]
        heapq.heappush(self.heap, (now + minutes, next(self.sequence), index, member, cycle))

    def cycle_done(self, index: int, member: int, cycle: int, now: float) -> None:
        if index in self.end:
            return
        activity = self.problem.activities[index]
        task = activity.members[member]
        for event, after in task.emits.items():
            if after == cycle:
                self.emitted[event] = now
                for waiter in self.blocked.pop(event, []):
                    self.advance(*waiter, now)
        if cycle < task.cycles:
            self.advance(index, member, cycle + 1, now)
            return
        self.end[index] = now
        for other in activity.members:
            self.first_cycle[index].setdefault(other.id, now)  # a loser that never started a cycle
        for lane in self.lanes[index]:
            self.lane_free[lane] = True
        for resource, units in self.problem.demand(activity).items():
            self.usage[resource] -= units

    def can_begin(self, index: int, lanes: tuple[Lane, ...]) -> bool:
        activity = self.problem.activities[index]
        if not all(self.lane_free.get(lane, True) for lane in lanes):
            return False
        if not all(pred in self.end for pred in activity.after):
            return False
        capacities = self.problem.capacities
        return all(
            self.usage.get(resource, 0) + units <= capacities[resource]
            for resource, units in self.problem.demand(activity).items()
        )


def retime(problem: Problem, placements: dict[int, Placement], durations: Durations) -> dict[int, Placement]:
    """The plan ``placements`` run again with other cycle durations, keeping lanes and start order."""
    order = sorted(placements.values(), key=lambda p: (p.start, p.end, p.activity))
    replay = _Replay(problem, durations)
    now = 0.0
    position = 0
    while True:
        while position < len(order) and replay.can_begin(order[position].activity, order[position].lanes):
            replay.begin(order[position].activity, order[position].lanes, now)
            position += 1
        if not replay.heap:
            break
        now = replay.heap[0][0]
        # Everything that happens at this instant happens before the next activity may begin.
        while replay.heap and replay.heap[0][0] <= now + EPS:
            _, _, index, member, cycle = heapq.heappop(replay.heap)
            replay.cycle_done(index, member, cycle, now)
    if position < len(order):
        stuck = problem.activities[order[position].activity].name
        raise AssertionError(f"replay stopped before {stuck} could start")  # see the module docstring
    return {
        index: Placement(
            index, replay.start[index], replay.end[index], replay.lanes[index], replay.first_cycle[index]
        )
        for index in replay.start
    }
