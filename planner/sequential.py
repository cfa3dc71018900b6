"""``sequential``: the one-lane baseline, every task after the other in dependency order.

This is what speedups are measured against. A race group is run by its fastest member alone (one agent
does not race itself); the other members are listed as never run. Subagents run on the one lane too, one
after the other, while their parent waits (``inline`` durations).
"""

from __future__ import annotations

from dataclasses import replace

from cycleplan.core.model import Task
from cycleplan.planner.problem import (
    Durations,
    Placement,
    Problem,
    Schedule,
    cycle_durations,
    nominal_durations,
    topological_order,
)

LANE = ("sequential", 1)


def _fastest(problem: Problem, durations: Durations) -> dict[int, Task]:
    """The member each race group's one lane runs: its fastest in nominal minutes (first one on ties)."""
    return {
        activity.index: min(activity.members, key=lambda task: sum(durations(task)))
        for activity in problem.activities
        if activity.is_race
    }


def _run(problem: Problem, durations: Durations, runners: dict[int, Task]) -> dict[int, Placement]:
    clock = 0.0
    emitted: dict[str, float] = {}
    placed: dict[int, Placement] = {}
    for activity in topological_order(problem, lambda a: (a.index,)):
        alone = activity
        if activity.index in runners:
            alone = replace(activity, members=(runners[activity.index],))
        end, first_cycle, emits = problem.finish_times(alone, clock, durations, emitted)
        emitted.update(emits)
        placed[activity.index] = Placement(
            activity.index, clock, end, tuple(LANE for _ in activity.members), first_cycle
        )
        clock = end
    return placed


def schedule(problem: Problem, rule: str | None = None) -> Schedule:
    del rule  # one order only
    durations = nominal_durations(problem.scenario, inline=True)
    # The member to run is chosen once, by nominal minutes, and runs alone in both views.
    runners = _fastest(problem, durations)
    skipped = {
        task.id
        for index, runner in runners.items()
        for task in problem.activities[index].members
        if task is not runner
    }
    return Schedule(
        minutes=_run(problem, durations, runners),
        cycles=_run(problem, cycle_durations(problem.scenario, inline=True), runners),
        lanes=[LANE],
        skipped=frozenset(skipped),
    )


def makespan(problem: Problem, durations: Durations) -> float:
    """The sequential baseline's length under ``durations`` (inline ones, where subagents run)."""
    placed = _run(problem, durations, _fastest(problem, durations))
    return max((p.end for p in placed.values()), default=0.0)
