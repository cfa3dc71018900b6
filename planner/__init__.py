"""The planner: a Scenario in, a Plan out, through one entry point and interchangeable algorithms.

    >>> from cycleplan.planner import plan
    >>> plan(scenario, algorithm="list", rule="lft")

Each algorithm is a module with ``schedule(problem, rule) -> Schedule``; :func:`plan` turns its answer
into a :class:`cycleplan.model.Plan` with the critical path, lower bounds and the sequential baseline.
"""

from __future__ import annotations

from collections.abc import Callable

from cycleplan.planner import list_schedule, sequential
from cycleplan.planner.build import build_plan
from cycleplan.planner.priority import RULES
from cycleplan.planner.problem import Problem, Schedule

from cycleplan.model import Plan, Scenario

ALGORITHMS: dict[str, Callable[[Problem, str | None], Schedule]] = {
    "list": list_schedule.schedule,
    "sequential": sequential.schedule,
}

DESCRIPTIONS = {
    "list": "serial schedule generation with a priority rule (one pass, fast)",
    "sequential": "one lane, every task after the other: the baseline speedups are measured against",
}

__all__ = ["ALGORITHMS", "DESCRIPTIONS", "RULES", "plan"]


def plan(scenario: Scenario, algorithm: str = "list", rule: str | None = None) -> Plan:
    """Plan ``scenario`` with ``algorithm`` (one of :data:`ALGORITHMS`) and priority ``rule``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm '{algorithm}'; choose one of {', '.join(ALGORITHMS)}")
    if rule is not None and rule not in RULES:
        raise ValueError(f"unknown priority rule '{rule}'; choose one of {', '.join(RULES)}")
    problem = Problem.from_scenario(scenario)
    schedule = ALGORITHMS[algorithm](problem, rule)
    used_rule = None if algorithm == "sequential" else (rule or list_schedule.DEFAULT_RULE)
    return build_plan(problem, schedule, algorithm, used_rule)
