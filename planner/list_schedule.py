"""``list``: serial schedule generation with a priority rule (latest finish time by default).

One pass: repeatedly take the eligible activity of best priority and place it at its earliest feasible
start on any free lane of its role. Fast and predictable; the baseline every better algorithm must beat.
"""

from __future__ import annotations

from cycleplan.core.rules import require_holding
from cycleplan.planner.priority import rule_key
from cycleplan.planner.problem import (
    Problem,
    Schedule,
    Timeline,
    cycle_durations,
    nominal_durations,
    role_lanes,
    topological_order,
)
from cycleplan.planner.replay import retime

require_holding(__name__)  # a waiting task keeps its lane, resources and slot (cycleplan.core.rules)

DEFAULT_RULE = "lft"


def schedule(problem: Problem, rule: str | None = None) -> Schedule:
    durations = nominal_durations(problem.scenario)
    key = rule_key(problem, durations, rule or DEFAULT_RULE)
    timeline = Timeline(problem, durations)
    for activity in topological_order(problem, key):
        timeline.place(activity)
    return Schedule(
        minutes=timeline.placed,
        cycles=retime(problem, timeline.placed, cycle_durations(problem.scenario)),
        lanes=role_lanes(problem),
    )
