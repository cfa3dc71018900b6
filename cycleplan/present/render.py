"""What ``plan``, ``simulate`` and ``sweep`` print: views of a Plan, a Prediction and a SweepResult.

Functions from results to rich renderables (tables and label-value lines), shown by
:mod:`cycleplan.present.terminal`; they compute nothing the results do not already hold. Each takes the
command's :class:`~cycleplan.present.terminal.Verbosity`: quiet leaves out legends, verbose adds detail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from cycleplan.core.model import Claim, Plan
from cycleplan.core.wording import SEQUENTIAL_BASELINE, counted, duration, minutes
from cycleplan.present.terminal import CHOSEN, Verbosity, facts, heading, legend, styled, table

if TYPE_CHECKING:
    from cycleplan.sim.prediction import Prediction
    from cycleplan.sim.stats import Summary
    from cycleplan.workflows.sweep import SweepResult

BLANK = Text("")


def plan_view(plan: Plan, verbosity: Verbosity = Verbosity.NORMAL) -> RenderableType:
    """Every lane's tasks with their times, then makespan, sequential baseline, speedup, bounds, the
    cycle map, the critical path and the scenario's claim."""
    scenario = plan.scenario
    rule = f", rule {plan.rule}" if plan.rule else ""
    lanes = table(["lane", "task", "cycles", "minutes", "wall cycles", "wait min"], right={2})
    for lane in plan.lanes:
        if not lane.tasks:
            lanes.add_row(lane.lane, "(idle)")
        for index, task in enumerate(lane.tasks):
            lanes.add_row(
                lane.lane if index == 0 else "",
                task.task,
                str(task.cycles),
                f"{_plan_minutes(task.start_min)}-{_plan_minutes(task.finish_min)}",
                f"{task.start_cycle:g}-{task.finish_cycle:g}",
                _plan_minutes(task.wait_min) if task.wait_min > 0 else "",
            )
    bound_name = max(plan.lower_bounds, key=lambda k: plan.lower_bounds[k]) if plan.lower_bounds else "-"
    optimal = "  optimal: the plan meets it or was proven shortest" if plan.proven_optimal else ""
    rows: list[tuple[str, RenderableType]] = [
        ("makespan", duration(plan.makespan_min)),
        (SEQUENTIAL_BASELINE, duration(plan.sequential_min)),
        ("speedup", f"{plan.speedup:.2f}x"),
        ("lower bound", f"{duration(plan.lower_bound_min)}  ({bound_name}){optimal}"),
    ]
    if verbosity is Verbosity.VERBOSE and plan.lower_bounds:
        rows.append(
            ("lower bounds", ", ".join(f"{name} {duration(m)}" for name, m in plan.lower_bounds.items()))
        )
    rows += [("cycles", plan.cycle_map), ("critical path", " -> ".join(plan.critical_path))]
    if scenario.claim is not None:
        rows.append(("claim", _claim(plan)))
    return Group(
        heading(f"{scenario.name or 'scenario'}: {plan.algorithm} plan{rule}"),
        BLANK,
        lanes,
        BLANK,
        facts(rows),
    )


def _plan_minutes(value: float) -> str:
    """Planned minutes as the plan's other numbers read: whole minutes whole (120), others to a tenth
    (41.4), never six digits from a median of a fitted distribution (41.3836)."""
    return f"{round(value, 1):g}"


def _claim(plan: Plan) -> str:
    claim = plan.scenario.claim
    assert claim is not None
    return _claim_text(claim)


def _claim_text(claim: Claim) -> str:
    """The scenario's claim, said to be the scenario's, with the source it cites."""
    source = f", from {claim.source}" if claim.source else ""
    return (
        f"{duration(claim.sequential_min)} -> {duration(claim.parallel_min)} = {claim.speedup:.2f}x"
        f"  (the scenario's{source})"
    )


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


def _band(summary: Summary, show: Callable[[float], str]) -> list[str]:
    return [
        show(summary.p50),
        f"{show(summary.p10)} - {show(summary.p90)}",
        f"{show(summary.mean)} ({show(summary.ci95_low)} - {show(summary.ci95_high)})",
    ]


def prediction_view(
    prediction: Prediction, verbosity: Verbosity = Verbosity.NORMAL, critical_shown: int = 6
) -> RenderableType:
    """The bands of speedup, makespan, tokens, cost and utilization (one value each for a single
    replication), the scenario's claim beside them, the tokens read and what they cost, the most critical
    tasks and where the time goes."""
    config = prediction.config
    s = prediction.summaries
    single = config.replications == 1
    mode = "ideal (nominal durations, no failures, overheads or rate limits)" if config.ideal else "realistic"
    rule = f" {config.rule}" if config.rule else ""
    quantities: list[tuple[str, Summary, Callable[[float], str]]] = [
        ("speedup", s["speedup"], lambda x: f"{x:.2f}x"),
        ("makespan", s["makespan_min"], minutes),
        (SEQUENTIAL_BASELINE, s["sequential_min"], minutes),
        ("tokens", s["tokens_total"], _tokens),
        ("cost", s["cost_usd"], lambda x: f"${x:,.2f}"),
        ("utilization", s["utilization"], lambda x: f"{x:.0%}"),
    ]
    if single:
        bands = table(["", "value"], right={1})
        for name, summary, show in quantities:
            bands.add_row(name, show(summary.p50))
    else:
        bands = table(["", "P50", "P10 - P90", "mean (95% CI of the mean)"], right={1, 2})
        for name, summary, show in quantities:
            bands.add_row(name, *_band(summary, show))
    parts: list[RenderableType] = [
        heading(
            f"{config.scenario or 'scenario'}: {counted(config.replications, 'replication')}, "
            f"seed {config.seed}, {config.dispatch} dispatch of the {config.algorithm}{rule} plan, "
            f"{mode} model"
        ),
        BLANK,
        bands,
        BLANK,
        facts(_claim_rows(prediction)),
        BLANK,
        facts(_token_rows(prediction)),
        BLANK,
        *_critical(prediction, verbosity, critical_shown),
        BLANK,
        *_time(prediction, verbosity),
    ]
    if verbosity is Verbosity.VERBOSE:
        fallbacks = (
            f", {counted(config.engine_fallbacks, 'replication')} handed to simpy"
            if config.engine_fallbacks
            else ""
        )
        parts += [BLANK, facts([("engine", f"{config.engine}{fallbacks}; {config.runtime_s:.2f} s")])]
    return Group(*parts)


def _claim_rows(prediction: Prediction) -> list[tuple[str, RenderableType]]:
    s = prediction.summaries
    rows: list[tuple[str, RenderableType]] = [
        (
            "plan",
            f"{duration(prediction.plan_sequential_min)} -> {duration(prediction.plan_makespan_min)} = "
            f"{prediction.plan_speedup:.2f}x at nominal durations",
        )
    ]
    claim = prediction.claim
    if claim is None:
        return rows
    speedups = prediction.replications.values["speedup"]
    reached = sum(1 for x in speedups if x >= claim.speedup - 1e-9)
    rows.append(
        (
            "claim",
            _claim_text(claim),
        )
    )
    speedup = s["speedup"]
    if len(speedups) == 1:
        rows.append(
            ("predicted", f"{speedup.p50:.2f}x; the claim is {'reached' if reached else 'not reached'}")
        )
    else:
        rows.append(
            (
                "predicted",
                f"{speedup.p50:.2f}x [{speedup.p10:.2f}x - {speedup.p90:.2f}x]; the claim is reached in "
                f"{reached / len(speedups):.0%} of replications",
            )
        )
    return rows


def _token_rows(prediction: Prediction) -> list[tuple[str, RenderableType]]:
    s = prediction.summaries
    per_run = "per run" if prediction.config.replications == 1 else "per run (mean)"

    def mean_tokens(name: str) -> str:
        return _tokens(s[name].mean)

    return [
        (
            "tokens read",
            f"{mean_tokens('tokens_read')} {per_run}: {mean_tokens('input_tokens')} uncached, "
            f"{mean_tokens('cache_write_tokens')} cache writes (1.25x, 2x to the 1-hour cache), "
            f"{mean_tokens('cache_read_tokens')} cache reads (0.1x); output {mean_tokens('output_tokens')}",
        ),
        (
            "context",
            f"{mean_tokens('context_tokens')} tokens loaded at task starts: each agent loads its own "
            "(parallel agents share none)",
        ),
        (
            "cost",
            f"${s['cost_usd'].mean:,.2f} {per_run.removesuffix(' (mean)')} "
            f"({'mean; ' if per_run.endswith('(mean)') else ''}prices as of "
            f"{prediction.config.prices_as_of}), of which ${s['waste_cost_usd'].mean:,.2f} wasted on "
            "failed, cancelled or losing work",
        ),
    ]


def _critical(prediction: Prediction, verbosity: Verbosity, shown: int) -> list[RenderableType]:
    critical = sorted(prediction.criticality.items(), key=lambda item: (-item[1], item[0]))
    if verbosity is not Verbosity.VERBOSE:
        critical = critical[:shown]
    names = [f"{task} {share:.0%}" for task, share in critical if share > 0]
    value: RenderableType = ", ".join(names) if names else "(none)"
    if verbosity is not Verbosity.QUIET:
        value = Group(value, legend("share of replications in which the task had zero slack"))
    return [facts([("most critical", value)])]


def _time(prediction: Prediction, verbosity: Verbosity) -> list[RenderableType]:
    s = prediction.summaries
    waits: list[tuple[str, float, str]] = [
        ("work", s["work_min"].mean, f"lane-minutes of cycles, {s['waste_min'].mean:,.1f} of them wasted"),
        ("dependency", s["waits_min.dependency"].mean, "lanes idle until their next task's dependencies end"),
        ("sync", s["waits_min.sync"].mean, "lanes held waiting for events and taking handoffs in"),
        ("lane", s["waits_min.lane"].mean, "tasks ready but waiting for a lane (or a shared resource)"),
        ("rate limit", s["waits_min.rate_limit"].mean, "lanes held by the organisation's rate limits"),
    ]
    if "blocked_min" in s and s["blocked_min"].mean > 0:
        waits.append(("subagents", s["blocked_min"].mean, "lanes blocked on subagents their task spawned"))
    per_run = "minutes of the run" if prediction.config.replications == 1 else "mean minutes per run"
    rows: list[tuple[str, RenderableType]] = []
    for name, waited, meaning in waits:
        value = Text(f"{waited:>9,.1f}")
        if verbosity is not Verbosity.QUIET:
            value.append("  ").append(legend(meaning))
        rows.append((name, value))
    by_role = prediction.replications.utilization_by_role
    if by_role:
        rows.append(
            ("utilization", ", ".join(f"{r} {s[f'utilization_by_role.{r}'].mean:.0%}" for r in by_role))
        )
    title = f"where the time goes ({per_run}, minutes summed over lanes; lane: over tasks)"
    out: list[RenderableType] = [heading(title), facts(rows, indent=2)]
    failures, cancellations = s["failures"].mean, s["cancellations"].mean
    if failures or cancellations or s["failed_cycles"].mean:
        incomplete = 1 - s["completed"].mean
        out.append(
            facts(
                [
                    (
                        "failures",
                        f"{s['failed_cycles'].mean:.2f} failed cycles, {failures:.2f} failed tasks and "
                        f"{cancellations:.2f} cancellations per run; {incomplete:.0%} of runs did not "
                        "finish every task",
                    )
                ]
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# Sweep


def sweep_view(result: SweepResult, verbosity: Verbosity = Verbosity.NORMAL) -> RenderableType:
    """Every configuration's bands, the recommended one marked, and the recommendation in words."""
    verbose = verbosity is Verbosity.VERBOSE
    header = ["", "lanes", "speedup P50 [P10-P90]", "makespan P50", "cost P50", "util.", "vs one lane fewer"]
    rows = table([*header, "seconds"] if verbose else header, right=range(1, len(header) + 1))
    for index, configuration in enumerate(result.configurations):
        fewer = configuration.versus_fewer
        speedup = configuration.speedup
        marks = ("*" if index == result.recommended else "") + ("p" if configuration.pareto else "")
        cells: list[str | Text] = [
            styled(
                f"{configuration.label} {marks}".rstrip(), CHOSEN if index == result.recommended else None
            ),
            str(configuration.total_lanes),
            f"{speedup.p50:.2f}x [{speedup.p10:.2f}-{speedup.p90:.2f}]",
            f"{configuration.makespan_min.p50:,.1f} min",
            f"${configuration.cost_usd.p50:,.2f}",
            f"{configuration.utilization.p50:.0%}",
            "-"
            if fewer is None
            else f"{fewer.mean_min:+,.1f} min ({fewer.ci95_low_min:+,.1f} to {fewer.ci95_high_min:+,.1f})",
        ]
        if verbose:
            cells.append(f"{configuration.runtime_s:.2f}")
        rows.add_row(*cells)
    lanes_of = f"{result.role} lanes" if result.role is not None else "lanes per role"
    best = result.configurations[result.best]
    parts: list[RenderableType] = [
        heading(
            f"{result.scenario or 'scenario'}: {counted(len(result.configurations), 'configuration')} of "
            f"{lanes_of}, {counted(result.replications, 'replication')} each on common random numbers "
            f"(seed {result.seed}), {result.dispatch} dispatch"
        ),
        BLANK,
        rows,
        BLANK,
    ]
    if verbosity is not Verbosity.QUIET:
        parts.append(
            legend(
                "* recommended  p on the time/cost Pareto front; vs one lane fewer: mean paired "
                "difference in makespan (95% CI)"
            )
        )
    parts.append(facts([("fastest", f"{best.label}: {duration(best.makespan_min.p50)} at the P50")]))
    if verbose:
        workers = f", {counted(result.workers, 'worker')}" if result.workers else ""
        parts.append(facts([("ran on", f"{result.backend}{workers} in {result.runtime_s:.2f} s")]))
    parts += [BLANK, Text(result.recommendation)]
    return Group(*parts)
