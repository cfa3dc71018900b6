"""The planner: a Scenario in, a Plan out, through one entry point and interchangeable algorithms.

    >>> from cycleplan.planner import plan
    >>> plan(scenario)                                   # improve, within a small budget
    >>> plan(scenario, algorithm="list", rule="lft")     # one pass of a priority rule
    >>> plan(scenario, algorithm="cpsat", time_limit_s=10)

Each algorithm is a module with ``schedule(problem, rule, **options) -> Schedule``; :func:`plan` turns its
answer into a :class:`cycleplan.core.model.Plan` with the critical path, lower bounds and the sequential
baseline. Options (``schedules``, ``time_limit_s``, ``seed``) go to the algorithms that take them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cycleplan.core.model import Plan, Scenario
from cycleplan.planner import cpsat, improve, list_schedule, sequential
from cycleplan.planner.build import build_plan
from cycleplan.planner.priority import RULES
from cycleplan.planner.problem import Problem, Schedule

Algorithm = Callable[..., Schedule]
"""``schedule(problem, rule=None, **options) -> Schedule``; the options each takes are in :data:`OPTIONS`."""

ALGORITHMS: dict[str, Algorithm] = {
    "improve": improve.schedule,
    "list": list_schedule.schedule,
    "sequential": sequential.schedule,
    "cpsat": cpsat.schedule,
}

DESCRIPTIONS = {
    "improve": "genetic search over activity lists with forward-backward improvement (default; "
    "never worse than list)",
    "list": "serial schedule generation with a priority rule (one pass, fast)",
    "sequential": "one lane, every task after the other: the baseline speedups are measured against",
    "cpsat": "exact: OR-Tools CP-SAT proves the shortest plan or returns the best found in the time limit "
    "(needs pip install cycleplan[optimal])",
}

OPTIONS: dict[str, frozenset[str]] = {
    "improve": frozenset({"schedules", "time_limit_s", "seed"}),
    "list": frozenset(),
    "sequential": frozenset(),
    "cpsat": frozenset({"time_limit_s", "workers"}),
}
"""Keyword options each algorithm takes."""

DEFAULT_ALGORITHM = "improve"

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "DESCRIPTIONS", "OPTIONS", "RULES", "plan"]


def plan(
    scenario: Scenario, algorithm: str = DEFAULT_ALGORITHM, rule: str | None = None, **options: Any
) -> Plan:
    """Plan ``scenario`` with ``algorithm`` (one of :data:`ALGORITHMS`) and priority ``rule``.

    ``options`` are the algorithm's keyword options (:data:`OPTIONS`): one the algorithm does not take is
    an error; one left at None is not passed (the algorithm's default applies).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm '{algorithm}'; choose one of {', '.join(ALGORITHMS)}")
    if rule is not None and rule not in RULES:
        raise ValueError(f"unknown priority rule '{rule}'; choose one of {', '.join(RULES)}")
    given = {name: value for name, value in options.items() if value is not None}
    unknown = sorted(set(given) - OPTIONS[algorithm])
    if unknown:
        takes = ", ".join(sorted(OPTIONS[algorithm])) or "no options"
        raise ValueError(f"algorithm '{algorithm}' does not take {', '.join(unknown)}; it takes {takes}")
    problem = Problem.from_scenario(scenario)
    schedule = ALGORITHMS[algorithm](problem, rule, **given)
    used_rule = None if algorithm == "sequential" else (rule or list_schedule.DEFAULT_RULE)
    return build_plan(problem, schedule, algorithm, used_rule)
