"""Priority rules for list scheduling, from a relaxed (unlimited-lane) forward and backward pass.

Each rule maps an activity to a sort key, smallest first; ties go to the activity written first. The
forward pass also gives the critical-path lower bound. Knows the Problem; places nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cycleplan.planner.problem import Activity, Durations, Problem, topological_order

RULES: dict[str, str] = {
    "lft": "latest finish time first (default; the classic serial rule)",
    "lst": "latest start time first",
    "est": "earliest start time first",
    "mts": "most total successors first",
    "grpw": "greatest rank positional weight first (own length + direct successors')",
    "spt": "shortest task first",
    "lpt": "longest task first",
}


@dataclass(frozen=True)
class Passes:
    """Earliest and latest times of every activity with unlimited lanes and no resources."""

    earliest_start: dict[int, float]
    earliest_finish: dict[int, float]
    latest_finish: dict[int, float]
    length: dict[int, float]

    @property
    def critical_path_min(self) -> float:
        return max(self.earliest_finish.values(), default=0.0)


def _cycles_before(durations: Durations, activity: Activity, task_id: str, cycles: int) -> float:
    task = next(task for task in activity.members if task.id == task_id)
    return sum(list(durations(task))[:cycles])


def passes(problem: Problem, durations: Durations) -> Passes:
    order = topological_order(problem, lambda a: (a.index,))
    start: dict[int, float] = {}
    finish: dict[int, float] = {}
    emitted: dict[str, float] = {}
    length = {a.index: problem.nominal_length(a, durations) for a in problem.activities}
    for activity in order:
        start[activity.index] = max((finish[p] for p in activity.after), default=0.0)
        end, _, emits = problem.finish_times(activity, start[activity.index], durations, emitted)
        finish[activity.index] = end
        emitted.update(emits)

    horizon = max(finish.values(), default=0.0)
    latest = {a.index: horizon for a in problem.activities}
    for activity in reversed(order):
        latest_start = latest[activity.index] - length[activity.index]
        for pred in activity.after:
            latest[pred] = min(latest[pred], latest_start)
        for task in activity.members:
            for event, cycle in task.waits.items():
                emitter_id, emit_cycle = problem.emitter[event]
                pred = problem.activity_of[emitter_id]
                source = problem.activities[pred]
                slack_in = _cycles_before(durations, activity, task.id, cycle - 1)
                lead = length[pred] - _cycles_before(durations, source, emitter_id, emit_cycle)
                latest[pred] = min(latest[pred], latest_start + slack_in + lead)
    return Passes(start, finish, latest, length)


def rule_key(problem: Problem, durations: Durations, rule: str) -> Callable[[Activity], tuple[float, ...]]:
    """The sort key of ``rule`` (one of :data:`RULES`)."""
    if rule not in RULES:
        raise ValueError(f"unknown priority rule '{rule}'; choose one of {', '.join(RULES)}")
    info = passes(problem, durations)
    successors: dict[int, set[int]] = {a.index: set() for a in problem.activities}
    for activity in problem.activities:
        for pred in activity.predecessors:
            successors[pred].add(activity.index)
    total: dict[int, int] = {}
    if rule == "mts":
        # Each activity's successors, direct or not, as a bit set in an int: n²/8 bytes at worst, where
        # sets of indexes took tens of times that on long chains.
        for activity in reversed(topological_order(problem, lambda a: (a.index,))):
            found = 0
            for succ in successors[activity.index]:
                found |= total[succ] | (1 << succ)
            total[activity.index] = found

    keys: dict[str, Callable[[Activity], float]] = {
        "lft": lambda a: info.latest_finish[a.index],
        "lst": lambda a: info.latest_finish[a.index] - info.length[a.index],
        "est": lambda a: info.earliest_start[a.index],
        "mts": lambda a: -total[a.index].bit_count(),
        "grpw": lambda a: -(info.length[a.index] + sum(info.length[s] for s in successors[a.index])),
        "spt": lambda a: info.length[a.index],
        "lpt": lambda a: -info.length[a.index],
    }
    key = keys[rule]
    return lambda a: (round(key(a), 9), float(a.index))
