"""Plain-text rendering of results for the terminal: tables a person reads, not JSON.

Functions from models to strings; they compute nothing the models do not already hold.
"""

from __future__ import annotations

from cycleplan.model import Plan


def duration(minutes: float) -> str:
    """``195 min (3h 15m)``; short spans stay in minutes."""
    if minutes < 60:
        return f"{minutes:g} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{minutes:g} min ({hours}h {rest:02d}m)"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def render_plan(plan: Plan) -> str:
    scenario = plan.scenario
    title = scenario.name or "scenario"
    rule = f", rule {plan.rule}" if plan.rule else ""
    out = [f"{title}: {plan.algorithm} plan{rule}", ""]
    rows: list[list[str]] = []
    for lane in plan.lanes:
        if not lane.tasks:
            rows.append([lane.lane, "(idle)", "", "", "", ""])
        for index, task in enumerate(lane.tasks):
            wait = f"{task.wait_min:g}" if task.wait_min > 0 else ""
            rows.append(
                [
                    lane.lane if index == 0 else "",
                    task.task,
                    str(task.cycles),
                    f"{task.start_min:g}-{task.finish_min:g}",
                    f"{task.start_cycle:g}-{task.finish_cycle:g}",
                    wait,
                ]
            )
    out += _table(["lane", "task", "cycles", "minutes", "wall cycles", "wait min"], rows, {2})
    out.append("")
    critical = " -> ".join(plan.critical_path)
    bound_name = max(plan.lower_bounds, key=lambda k: plan.lower_bounds[k]) if plan.lower_bounds else "-"
    out += [
        f"makespan       {duration(plan.makespan_min)}",
        f"sequential     {duration(plan.sequential_min)}",
        f"speedup        {plan.speedup:.2f}x",
        f"lower bound    {duration(plan.lower_bound_min)}  ({bound_name})",
        f"cycles         {plan.cycle_map}",
        f"critical path  {critical}",
    ]
    if scenario.claim is not None:
        claim = scenario.claim
        out.append(
            f"guide's claim  {duration(claim.sequential_min)} -> {duration(claim.parallel_min)} = "
            f"{claim.speedup:.2f}x" + (f"  ({claim.source})" if claim.source else "")
        )
    return "\n".join(out)
