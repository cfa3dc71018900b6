"""Plain-text rendering of results for the terminal: tables a person reads, not JSON.

Functions from models to strings; they compute nothing the models do not already hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cycleplan.model import Claim, Plan

if TYPE_CHECKING:
    from cycleplan.sim.prediction import Prediction
    from cycleplan.sim.stats import Summary


def duration(minutes: float) -> str:
    """``195 min (3h 15m)``; short spans stay in minutes."""
    shown = f"{minutes:g}" if minutes == round(minutes, 1) else f"{minutes:.1f}"
    if minutes < 60:
        return f"{shown} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{shown} min ({hours}h {rest:02d}m)"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _claim_line(claim: Claim) -> str:
    """The scenario's claim, said to be the scenario's, with the source it cites."""
    source = f", from {claim.source}" if claim.source else ""
    return (
        f"claim          {duration(claim.sequential_min)} -> {duration(claim.parallel_min)} = "
        f"{claim.speedup:.2f}x  (the scenario's{source})"
    )


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
        f"lower bound    {duration(plan.lower_bound_min)}  ({bound_name})"
        + ("  optimal: the plan meets it or was proven shortest" if plan.proven_optimal else ""),
        f"cycles         {plan.cycle_map}",
        f"critical path  {critical}",
    ]
    if scenario.claim is not None:
        claim = scenario.claim
        out.append(_claim_line(claim))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Prediction


def _tokens(count: float) -> str:
    """``1.23M``, ``450k``, ``8.1k``, ``812``."""
    if count >= 1e6:
        return f"{count / 1e6:.2f}M"
    if count >= 1e4:
        return f"{count / 1e3:.0f}k"
    if count >= 1e3:
        return f"{count / 1e3:.1f}k"
    return f"{count:.0f}"


def _minutes(value: float) -> str:
    return f"{value:.0f} min" if value >= 10 else f"{value:.1f} min"


def _band(summary: Summary, show: Callable[[float], str]) -> list[str]:
    return [
        show(summary.p50),
        f"{show(summary.p10)} - {show(summary.p90)}",
        f"{show(summary.mean)} ({show(summary.ci95_low)} - {show(summary.ci95_high)})",
    ]


def render_prediction(prediction: Prediction, critical_shown: int = 6) -> str:
    """A readable summary: the bands of speedup, makespan, tokens, cost and utilization, the scenario's
    claim beside them, the tokens read and what they cost, the most critical tasks and where the time
    goes."""
    config = prediction.config
    s = prediction.summaries
    count = config.replications
    mode = "ideal (nominal durations, no failures, overheads or rate limits)" if config.ideal else "realistic"
    rule = f" {config.rule}" if config.rule else ""
    plural = "s" if count != 1 else ""
    out = [
        f"{config.scenario or 'scenario'}: {count:,} replication{plural}, seed {config.seed}, "
        f"{config.dispatch} dispatch of the {config.algorithm}{rule} plan, {mode} model",
        "",
    ]
    rows = [
        ["speedup", *_band(s["speedup"], lambda x: f"{x:.2f}x")],
        ["makespan", *_band(s["makespan_min"], _minutes)],
        ["sequential", *_band(s["sequential_min"], _minutes)],
        ["tokens", *_band(s["tokens_total"], _tokens)],
        ["cost", *_band(s["cost_usd"], lambda x: f"${x:,.2f}")],
        ["utilization", *_band(s["utilization"], lambda x: f"{x:.0%}")],
    ]
    out += _table(["", "P50", "P10 - P90", "mean (95% CI of the mean)"], rows, set())
    out += [
        "",
        f"plan           {duration(prediction.plan_sequential_min)} -> "
        f"{duration(prediction.plan_makespan_min)} = {prediction.plan_speedup:.2f}x at nominal durations",
    ]
    claim = prediction.claim
    if claim is not None:
        speedups = prediction.replications.values["speedup"]
        reached = sum(1 for x in speedups if x >= claim.speedup - 1e-9) / len(speedups)
        out += [
            _claim_line(claim),
            f"predicted      {s['speedup'].p50:.2f}x [{s['speedup'].p10:.2f}x - {s['speedup'].p90:.2f}x]; "
            f"the claim is reached in {reached:.0%} of replications",
        ]
    out.append("")

    def mean_tokens(name: str) -> str:
        return _tokens(s[name].mean)

    out += [
        f"tokens read    {mean_tokens('tokens_read')} per run (mean): "
        f"{mean_tokens('input_tokens')} uncached, "
        f"{mean_tokens('cache_write_tokens')} cache writes (1.25x, 2x to the 1-hour cache), "
        f"{mean_tokens('cache_read_tokens')} "
        f"cache reads (0.1x); output {mean_tokens('output_tokens')}",
        f"context        {mean_tokens('context_tokens')} tokens loaded at task starts: each agent loads its "
        "own (parallel agents share none)",
        f"cost           ${s['cost_usd'].mean:,.2f} per run (mean; prices as of {config.prices_as_of}), "
        f"of which ${s['waste_cost_usd'].mean:,.2f} wasted on failed, cancelled or losing work",
        "",
    ]

    critical = sorted(prediction.criticality.items(), key=lambda item: (-item[1], item[0]))
    shown = [f"{task} {share:.0%}" for task, share in critical[:critical_shown] if share > 0]
    out += [
        "most critical  " + (", ".join(shown) if shown else "(none)"),
        "               share of replications in which the task had zero slack",
        "",
    ]

    waits = [
        ["work", s["work_min"].mean, f"lane-minutes of cycles, {s['waste_min'].mean:,.1f} of them wasted"],
        ["dependency", s["waits_min.dependency"].mean, "lanes idle until their next task's dependencies end"],
        ["sync", s["waits_min.sync"].mean, "lanes held waiting for events and taking handoffs in"],
        ["lane", s["waits_min.lane"].mean, "tasks ready but waiting for a lane (or a shared resource)"],
        ["rate limit", s["waits_min.rate_limit"].mean, "lanes held by the organisation's rate limits"],
    ]
    if "blocked_min" in s and s["blocked_min"].mean > 0:
        waits.append(["subagents", s["blocked_min"].mean, "lanes blocked on subagents their task spawned"])
    out.append("where the time goes (mean per run, minutes summed over lanes; lane: over tasks)")
    out += [f"  {name:<12} {minutes:>9,.1f}  {meaning}" for name, minutes, meaning in waits]
    by_role = prediction.replications.utilization_by_role
    if by_role:
        roles = ", ".join(f"{role} {s[f'utilization_by_role.{role}'].mean:.0%}" for role in by_role)
        out.append(f"  utilization  {roles}")
    failures = s["failures"].mean
    cancellations = s["cancellations"].mean
    if failures or cancellations or s["failed_cycles"].mean:
        incomplete = 1 - s["completed"].mean
        out.append(
            f"failures       {s['failed_cycles'].mean:.2f} failed cycles, {failures:.2f} failed tasks and "
            f"{cancellations:.2f} cancellations per run; {incomplete:.0%} of runs did not finish every task"
        )
    return "\n".join(out)
