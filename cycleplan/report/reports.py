"""The reports users ask for, assembled from figures: one function per kind of result.

Each returns a :class:`cycleplan.report.page.Report`; :func:`cycleplan.report.page.write_page` writes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cycleplan.render import duration
from cycleplan.report.page import Headline, Report, standard_facts

if TYPE_CHECKING:
    from cycleplan.model import Plan


def plan_report(plan: Plan) -> Report:
    """The plan's Gantt chart under its makespan, speedup and bounds."""
    from cycleplan.report.plan_figures import gantt

    scenario = plan.scenario
    headlines = [
        Headline("planned speedup", f"{plan.speedup:.2f}x", f"{plan.algorithm} plan"),
        Headline("makespan", duration(plan.makespan_min), f"sequential {duration(plan.sequential_min)}"),
        Headline("lower bound", duration(plan.lower_bound_min), "no plan can beat this"),
        Headline("cycles", f"{plan.wall_cycles:g} wall", f"from {plan.template_cycles} template cycles"),
    ]
    if scenario.claim is not None:
        headlines.append(
            Headline(
                "guide's claim",
                f"{scenario.claim.speedup:.2f}x",
                f"{duration(scenario.claim.sequential_min)} -> {duration(scenario.claim.parallel_min)}",
            )
        )
    notes = [f"Critical path: {' -> '.join(plan.critical_path)}."]
    if scenario.description:
        notes.insert(0, scenario.description)
    return Report(
        title=f"Plan: {scenario.name or 'scenario'}",
        headlines=headlines,
        facts=standard_facts(scenario.name),
        figures=[gantt(plan)],
        notes=notes,
    )
