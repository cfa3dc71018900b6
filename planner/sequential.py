"""``sequential``: the one-lane baseline, every task after the other in dependency order.

This is what speedups are measured against. A race group is run by its fastest member alone (one agent
does not race itself); the other members are listed as never run.
"""

from __future__ import annotations

from cycleplan.planner.problem import (
    Durations,
    Placement,
    Problem,
    Schedule,
    nominal_durations,
    topological_order,
    unit_durations,
)

LANE = ("sequential", 1)


def _run(problem: Problem, durations: Durations) -> dict[int, Placement]:
    clock = 0.0
    emitted: dict[str, float] = {}
    placed: dict[int, Placement] = {}
    for activity in topological_order(problem, lambda a: (a.index,)):
        end, first_cycle, emits = problem.finish_times(activity, clock, durations, emitted)
        emitted.update(emits)
        placed[activity.index] = Placement(
            activity.index, clock, end, tuple(LANE for _ in activity.members), first_cycle
        )
        clock = end
    return placed


def schedule(problem: Problem, rule: str | None = None) -> Schedule:
    del rule  # one order only
    durations = nominal_durations(problem.scenario)
    skipped: set[str] = set()
    for activity in problem.activities:
        if activity.is_race:
            fastest = min(activity.members, key=lambda task: sum(durations(task)))
            skipped.update(task.id for task in activity.members if task is not fastest)
    return Schedule(
        minutes=_run(problem, durations),
        cycles=_run(problem, unit_durations),
        lanes=[LANE],
        skipped=frozenset(skipped),
    )


def makespan(problem: Problem, durations: Durations) -> float:
    """The sequential baseline's length under ``durations``."""
    placed = _run(problem, durations)
    return max((p.end for p in placed.values()), default=0.0)
