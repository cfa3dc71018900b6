"""``compare``: hold a run against its prediction, task by task and in total, and name the largest error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cycleplan.cli.common import (
    STORE_PATH,
    PlotlyJsOption,
    SeedOption,
    StoreOption,
    command_app,
    detail,
    fail,
    plotly_js_mode,
    read_prediction,
    report_option,
    show_result,
    write_report,
)

if TYPE_CHECKING:
    from cycleplan.present.terminal import Verbosity, View

app = command_app()


@app.command("compare")
def compare_command(
    run: Annotated[
        str,
        typer.Argument(
            help="The run: its id, a unique beginning of it, or latest (see `cycleplan runs`).", metavar="RUN"
        ),
    ],
    prediction: Annotated[
        Path | None,
        typer.Option(
            "--prediction",
            "-p",
            metavar="FILE",
            help="A prediction written by `simulate -o`; default: simulate the run's own plan and scenario.",
            show_default=False,
        ),
    ] = None,
    replications: Annotated[
        int,
        typer.Option(
            "--replications", "-n", help="Replications to simulate without --prediction.", metavar="N"
        ),
    ] = 1000,
    seed: SeedOption = 0,
    store: StoreOption = STORE_PATH,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the comparison as JSON: makespan_min, speedup, tokens_total, cost_usd, utilization "
            "(each with actual, p10, p50, p90, percentile), tasks, roles, verdict.",
        ),
    ] = False,
    report: Annotated[
        Path | None,
        report_option("Write an interactive HTML report (the actual run drawn over the predicted bands)."),
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
) -> None:
    """Hold a run against its prediction: where its makespan, speedup, tokens and cost fall, and why.

    Per task: predicted P10/P50/P90 start, finish and duration against the actual. For the run: the
    actual makespan, speedup, tokens, cost and utilization, each with its percentile in the predicted
    distribution (the share of replications at or below it). Ends with a verdict naming the largest
    source of error. Without --prediction the run's own plan and scenario are simulated. Works on
    executed and imported runs alike.

    The actual speedup is the run's sequential baseline over its makespan: its own work summed as one lane
    would run it in plan order (every cycle attempt's work and handoff, failed attempts included, race
    losers left out, no waiting); the predicted speedup is the simulator's sequential baseline on the
    same draws over the makespan, the same sum unless a lone lane is held by rate limits.

    \b
    Examples:
      cycleplan compare latest
      cycleplan compare 20250114-093012-3f9a1c --prediction prediction.json --json
      cycleplan compare 20250114-093012-3f9a1c -n 2000 --report compare.html
    """
    import time

    from cycleplan.workflows.comparison import ComparisonError, compare_run, summary_json

    if replications < 1:
        fail(f"--replications {replications}: must be at least 1")
    if seed < 0:
        fail(f"--seed {seed}: must be zero or positive")
    plotly_mode = plotly_js_mode(plotly_js)
    given = None if prediction is None else read_prediction(prediction)
    began = time.perf_counter()
    try:
        comparison = compare_run(
            store,
            run,
            given,
            replications=replications,
            seed=seed,
            prediction_source=None if prediction is None else str(prediction),
        )
    except ComparisonError as exc:
        fail(str(exc))
    detail(f"compared in {time.perf_counter() - began:.2f} s")
    if report is not None:
        from cycleplan.present.report.reports import comparison_report

        write_report(report, comparison_report(comparison), plotly_mode)

    def view(verbosity: Verbosity) -> View:
        from cycleplan.present.render_runs import comparison_view

        return comparison_view(comparison, verbosity)

    show_result(as_json, lambda: summary_json(comparison), view, report)
