"""The reports users ask for, assembled from figures: one function per kind of result.

Each returns a :class:`cycleplan.present.report.page.Report`; :func:`cycleplan.present.report.page.write_page`
writes it. A page's figures share one role -> colour map, made here once per page and handed to each figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cycleplan.core.wording import SEQUENTIAL_BASELINE, counted, duration
from cycleplan.present.report.labels import CLAIM_LABEL, claim_detail, cycles_detail, template_note
from cycleplan.present.report.page import Headline, Report, standard_facts
from cycleplan.present.report.palette import RoleColours, role_colours

if TYPE_CHECKING:
    from cycleplan.core.model import Claim, Plan
    from cycleplan.sim.prediction import Prediction
    from cycleplan.workflows.backtest import Backtest
    from cycleplan.workflows.comparison import Comparison
    from cycleplan.workflows.optimize import OptimizeResult
    from cycleplan.workflows.sweep import SweepResult


def _claim_headline(claim: Claim) -> Headline:
    """The scenario's claim, named as the scenario's, with the source it cites."""
    return Headline(
        CLAIM_LABEL,
        f"{claim.speedup:.2f}x",
        claim_detail(duration(claim.sequential_min), duration(claim.parallel_min), claim.source),
    )


def plan_colours(plan: Plan) -> RoleColours:
    """The page's role colours, in the order the plan's lanes first run each role."""
    return role_colours(dict.fromkeys(planned.role for _, planned in plan.planned_tasks()))


def plan_report(plan: Plan) -> Report:
    """The plan's Gantt chart under its makespan, speedup and bounds."""
    from cycleplan.present.report.plan_figures import gantt

    scenario = plan.scenario
    headlines = [
        Headline("planned speedup", f"{plan.speedup:.2f}x", f"{plan.algorithm} plan"),
        Headline(
            "makespan", duration(plan.makespan_min), f"{SEQUENTIAL_BASELINE} {duration(plan.sequential_min)}"
        ),
        Headline("lower bound", duration(plan.lower_bound_min), "no plan can beat this"),
        Headline("cycles", f"{plan.wall_cycles:g} wall", cycles_detail(plan)),
    ]
    if scenario.claim is not None:
        headlines.append(_claim_headline(scenario.claim))
    notes = [f"Critical path: {' -> '.join(plan.critical_path)}."]
    if scenario.description:
        notes.insert(0, scenario.description)
    if (note := template_note(plan)) is not None:
        notes.append(note)
    return Report(
        title=f"Plan: {scenario.name or 'scenario'}",
        headlines=headlines,
        facts=standard_facts(scenario.name),
        figures=[gantt(plan, plan_colours(plan))],
        notes=notes,
    )


def _band(prediction: Prediction, name: str, fmt: str) -> tuple[str, str]:
    summary = prediction.summaries[name]
    return fmt.format(summary.p50), f"P10-P90 {fmt.format(summary.p10)} - {fmt.format(summary.p90)}"


def prediction_report(prediction: Prediction, plan: Plan | None = None) -> Report:
    """The prediction's few numbers with their bands, then distributions, costs, utilization, waits,
    criticality and the median replication (and the plan's Gantt chart when given)."""
    from cycleplan.core.metrics import metrics, wait_spans
    from cycleplan.present.report import prediction_figures as figures
    from cycleplan.present.report.plan_figures import gantt

    config = prediction.config
    claim = prediction.claim
    speedup, speedup_band = _band(prediction, "speedup", "{:.2f}x")
    makespan = prediction.summaries["makespan_min"]
    cost, cost_band = _band(prediction, "cost_usd", "${:,.2f}")
    utilization, utilization_band = _band(prediction, "utilization", "{:.0%}")
    makespan_band = f"P10-P90 {duration(makespan.p10)} - {duration(makespan.p90)}"
    # One replication has one value, not a band: no P50 in the labels and no P10-P90 under them.
    single = config.replications == 1
    of = "" if single else " (P50)"
    headlines = [
        Headline(f"speedup{of}", speedup, "" if single else speedup_band),
        Headline(f"makespan{of}", duration(makespan.p50), "" if single else makespan_band),
        Headline(f"cost per run{of}", cost, "" if single else cost_band),
        Headline(f"utilization{of}", utilization, "" if single else utilization_band),
    ]
    if claim is not None:
        headlines.append(_claim_headline(claim))
    colours = plan_colours(plan) if plan is not None else role_colours(())
    colours.add(role for role in prediction.lanes.values() if role is not None)
    measured = metrics(prediction.trace)
    samples = prediction.replications.values
    shown = [
        figures.distribution(
            samples["speedup"],
            prediction.summaries["speedup"],
            "speedup",
            "x",
            claim.speedup if claim else None,
        ),
        figures.distribution(
            samples["makespan_min"], makespan, "makespan", "min", claim.parallel_min if claim else None
        ),
        figures.tokens_and_cost_by_role(prediction, colours),
        figures.utilization_by_lane(prediction, colours),
        figures.time_lost(prediction),
        figures.criticality(prediction),
        figures.trace_gantt(
            measured.tasks,
            prediction.lanes,
            f"The median replication (#{prediction.median_replication})",
            colours,
            wait_spans(prediction.trace),
            measured.critical,
        ),
    ]
    if plan is not None:
        shown.insert(0, gantt(plan, colours))
    facts = standard_facts(config.scenario, config.seed)
    facts["replications"] = f"{config.replications:,}"
    facts["dispatch"] = config.dispatch + (" (ideal)" if config.ideal else "")
    facts["plan"] = config.algorithm
    notes = [
        f"The plan's own arithmetic (nominal durations) gives {duration(prediction.plan_makespan_min)} and "
        f"{prediction.plan_speedup:.2f}x; "
        + (
            "the numbers above come from one replication"
            if single
            else f"the bands above come from {config.replications:,} replications"
        )
        + (
            " of the ideal model: nominal durations, no failures, overheads or rate limits."
            if config.ideal
            else " with random cycle durations, tokens and failures drawn from the scenario's model."
        )
    ]
    if plan is not None and (note := template_note(plan)) is not None:
        notes.append(note)
    return Report(
        title=f"Prediction: {config.scenario or 'scenario'}",
        headlines=headlines,
        facts=facts,
        figures=shown,
        notes=notes,
    )


def sweep_report(result: SweepResult) -> Report:
    """A sweep's recommendation in words and numbers, then speedup against lanes and the Pareto front."""
    from cycleplan.present.report.sweep_figures import pareto, speedup_by_lanes

    chosen = result.configurations[result.recommended]
    best = result.configurations[result.best]
    headlines = [
        Headline("recommended", chosen.label, f"{chosen.total_lanes} lanes in all, {chosen.algorithm} plan"),
        Headline(
            "makespan (P50)",
            duration(chosen.makespan_min.p50),
            f"P10-P90 {duration(chosen.makespan_min.p10)} - {duration(chosen.makespan_min.p90)}",
        ),
        Headline("speedup (P50)", f"{chosen.speedup.p50:.2f}x", f"fastest tried: {best.speedup.p50:.2f}x"),
        Headline(
            "cost per run (P50)", f"${chosen.cost_usd.p50:,.2f}", f"utilization {chosen.utilization.p50:.0%}"
        ),
    ]
    facts = standard_facts(result.scenario, result.seed)
    facts["replications"] = f"{result.replications:,} per configuration"
    facts["configurations"] = str(len(result.configurations))
    facts["lanes of"] = result.role if result.role is not None else "every role"
    facts["dispatch"] = result.dispatch
    notes = [
        result.recommendation,
        "Every configuration meets the same random draws (common random numbers), so differences between "
        "them are paired replication by replication rather than the noise of separate samples.",
    ]
    return Report(
        title=f"Sweep: {result.scenario or 'scenario'}",
        headlines=headlines,
        facts=facts,
        figures=[speedup_by_lanes(result), pareto(result)],
        notes=notes,
    )


def optimize_report(result: OptimizeResult) -> Report:
    """An optimization's choice with its bands, the runner-up, the Pareto front and how the choice moves
    with the budget (or the deadline)."""
    from cycleplan.present.report.optimize_figures import choice_by_limit, pareto

    chosen = result.chosen
    versus = result.versus_runner_up
    headlines = [
        # The label is long (a lane count and a model per role): the card gives the agents, its detail
        # the configuration.
        Headline(
            "chosen",
            counted(sum(chosen.lanes.values()), "agent"),
            f"{chosen.label} ({result.configurations:,} configurations searched)",
        ),
        Headline(
            "makespan (P90)",
            duration(chosen.makespan_min.p90),
            f"P10 {duration(chosen.makespan_min.p10)}, P50 {duration(chosen.makespan_min.p50)}",
        ),
        Headline(
            "cost per run (mean)",
            f"${chosen.cost_usd.mean:,.2f}",
            f"P10-P90 ${chosen.cost_usd.p10:,.2f} - ${chosen.cost_usd.p90:,.2f}",
        ),
    ]
    if result.runner_up is not None and versus is not None:
        unit = " min of P90 makespan" if result.objective == "makespan" else " dollars of mean cost"
        headlines.append(
            Headline(
                "runner-up",
                "distinguishable" if versus.distinguishable else "a statistical tie",
                f"{result.runner_up.label}: difference {versus.difference:+,.2f}{unit} (95% CI "
                f"{versus.ci95_low:+,.2f} to {versus.ci95_high:+,.2f}{unit})",
            )
        )
    facts = standard_facts(result.scenario, result.seed)
    facts["objective"] = "P90 makespan" if result.objective == "makespan" else "mean cost"
    if result.budget_usd is not None:
        facts["budget"] = f"${result.budget_usd:,.2f} (risk {result.risk:g})"
    if result.deadline_min is not None:
        facts["deadline"] = f"{duration(result.deadline_min)} (risk {result.risk:g})"
    facts["search"] = result.search
    facts["replications"] = (
        f"{result.replications_used:,} of an exhaustive {result.replications_exhaustive:,} "
        f"({result.replications_used / result.replications_exhaustive:.1%})"
    )
    notes = [
        result.summary,
        "Every configuration meets the same random draws (common random numbers); the search gives more "
        "replications only to the configurations still in contention, so a point on the front that was "
        "dropped early rests on few replications (hover to see how many).",
    ]
    figures = [pareto(result)]
    if result.by_limit:
        figures.append(choice_by_limit(result))
    return Report(
        title=f"Optimize: {result.scenario or 'scenario'}",
        headlines=headlines,
        facts=facts,
        figures=figures,
        notes=notes,
    )


def comparison_report(comparison: Comparison) -> Report:
    """An actual run against its prediction: the run's numbers with their percentiles, the verdict, the
    actual Gantt over each task's predicted band, each number on its predicted distribution, and
    cumulative tokens and cost against their bands."""
    from cycleplan.core.metrics import TaskSpan
    from cycleplan.present.report import compare_figures as figures
    from cycleplan.workflows.bands import HEADLINE, LABELS, percentile_text, show
    from cycleplan.workflows.comparison import SPEEDUP_DEFINITION

    prediction = comparison.prediction
    headlines = []
    for name in HEADLINE:
        label, unit = LABELS[name]
        placed = comparison.placement(name)
        where = {True: "inside", False: "outside", None: "not judged against"}[placed.inside]
        if not placed.recorded:
            headlines.append(Headline(f"{label} (actual)", "not recorded", "the run did not record it"))
            continue
        headlines.append(
            Headline(
                f"{label} (actual)",
                show(placed.actual, unit),
                f"{percentile_text(placed)} of the prediction, {where} P10-P90 "
                f"{show(placed.p10, unit)} - {show(placed.p90, unit)}",
            )
        )
    spans = {
        row.task: TaskSpan(
            lane=row.actual_lane or row.lane,
            start_min=row.start.actual,
            finish_min=row.finish.actual,
            status=row.status,
            role=row.role,
        )
        for row in comparison.tasks
        if row.start is not None and row.finish is not None
    }
    bands = [
        figures.TaskBand(
            task=row.task,
            lane=row.lane,
            start=figures.Percentiles(predicted.start.p10, predicted.start.p50, predicted.start.p90),
            finish=figures.Percentiles(predicted.finish.p10, predicted.finish.p50, predicted.finish.p90),
        )
        for row in comparison.tasks
        if (predicted := prediction.tasks.get(row.task)) is not None
        and predicted.start is not None
        and predicted.finish is not None
    ]
    shown = [figures.gantt_over_bands(spans, bands, comparison.wait_spans)]
    for name, unit in (
        ("makespan_min", "min"),
        ("speedup", "x"),
        ("tokens_total", "tokens"),
        ("cost_usd", "usd"),
    ):
        placed = comparison.placement(name)
        shown.append(
            figures.actual_on_distribution(
                prediction.replications.values[name],
                placed.actual,
                figures.Percentiles(placed.p10, placed.p50, placed.p90),
                LABELS[name][0],
                unit,
                placed.percentile,
            )
        )
    curves = prediction.cumulative
    if curves is not None:
        actual = comparison.cumulative
        for values, low, middle, high, name, unit in (
            (actual.tokens, curves.tokens_p10, curves.tokens_p50, curves.tokens_p90, "tokens", "tokens"),
            (actual.cost_usd, curves.cost_p10, curves.cost_p50, curves.cost_p90, "cost", "usd"),
        ):
            band = figures.CumulativeBand(curves.grid_min, low, middle, high)
            shown.append(figures.cumulative_against_band(band, actual.minutes, values, name, unit))
    history = comparison.forecasts
    if history is not None and history.points:
        points = history.points
        for judged, name, unit, part in (
            (history.finish, "finish time", "min", "finish"),
            (history.cost, "total cost", "usd", "cost"),
        ):
            fan = figures.ForecastFan(
                at_min=[point.at_min for point in points],
                p10=[getattr(point, f"{part}_p10") for point in points],
                p50=[getattr(point, f"{part}_p50") for point in points],
                p90=[getattr(point, f"{part}_p90") for point in points],
                actual=None if judged is None else judged.actual,
                held_from_min=None if judged is None else judged.held_from_min,
                end_min=None if history.finish is None else history.finish.actual,
            )
            shown.append(figures.forecast_fan(fan, name, unit))
    facts = standard_facts(comparison.scenario, comparison.seed)
    facts["run"] = comparison.run_id
    facts["status"] = comparison.status
    facts["agent"] = comparison.agent
    if comparison.time_scale != 1.0:
        facts["time scale"] = f"{comparison.time_scale:g}"
    facts["prediction"] = f"{comparison.prediction_source}, {comparison.replications:,} replications"
    notes = [
        f"Verdict: {comparison.verdict.headline}",
        *(
            f"- {finding.text}"
            for finding in comparison.verdict.findings
            if not comparison.verdict.headline.startswith(finding.text)
        ),
        f"Makespan CRPS {comparison.makespan_crps_min:.2f} min (0 for a prediction that put all its weight "
        "on the actual). Percentiles are the share of replications at or below the actual; a task's is read "
        "off its predicted P10, P50 and P90. A task's start is when its first cycle began.",
        SPEEDUP_DEFINITION,
    ]
    if comparison.forecasts is not None:
        notes.append("Live forecasts: " + " ".join(comparison.forecasts.sentences()))
    return Report(
        title=f"Run against prediction: {comparison.scenario or 'scenario'}",
        headlines=headlines,
        facts=facts,
        figures=shown,
        notes=notes,
    )


def backtest_report(result: Backtest) -> Report:
    """How often predictions calibrated on the other runs covered each run: coverage first, then each
    quantity's bands and each turn's."""
    from cycleplan.present.report.backtest_figures import BandRow, bands, spans_decades
    from cycleplan.workflows.backtest import QUANTITIES

    labels = {
        "cost_usd": ("cost", "US dollars"),
        "cache_read_tokens": ("cache reads", "tokens"),
        "output_tokens": ("output tokens", "tokens"),
        "makespan_min": ("agent time", "minutes"),
    }
    headlines = [
        Headline(
            f"{labels[name][0]} inside P10-P90",
            f"{result.coverage[name]:.0%}",
            f"median |P50 - actual| {result.median_error[name]:.0%}",
        )
        for name in QUANTITIES
    ]
    headlines.append(
        Headline(
            "turns inside P10-P90",
            f"{result.coverage['turn_duration']:.0%}",
            f"median band P90/P10 {result.turn_ratio_median:.1f}",
        )
    )
    figures = []
    for name in QUANTITIES:
        rows = [
            BandRow(run.run_id, band.actual, band.p10, band.p50, band.p90)
            for run in result.runs
            for band in [run.quantities[name]]
        ]
        # Agent time is read on minutes as they come, unless the runs range from seconds to hours.
        log = name != "makespan_min" or spans_decades(rows)
        figures.append(
            bands(
                rows,
                f"{labels[name][0]}: each run against the prediction from the others",
                labels[name][1],
                log=log,
            )
        )
    turns = [
        BandRow(
            f"{run.run_id[-6:]} {turn.task[:24]} #{turn.cycle}",
            turn.actual_min,
            turn.p10_min,
            turn.p50_min,
            turn.p90_min,
        )
        for run in result.runs
        for turn in run.turns
    ]
    if turns:
        figures.append(bands(turns, "each turn's agent time against its predicted band", "minutes", log=True))
    notes = [
        f"Leave-one-out over {len(result.runs)} {result.kind} runs: each run predicted from its own "
        "structure (tasks, turns, subagents, models) with the roles calibrated on the other runs. A "
        "calibrated prediction puts about 80% of actuals inside P10-P90.",
        *result.notes,
    ]
    return Report(
        title=f"Backtest of {len(result.runs)} runs",
        headlines=headlines,
        facts=standard_facts(result.kind, result.seed),
        figures=figures,
        notes=notes,
    )
