"""``backtest``: how far a prediction calibrated on one's own runs can be trusted, run by run."""

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
    level,
    plotly_js_mode,
    report_option,
    show_result,
    write_report,
)

if TYPE_CHECKING:
    from cycleplan.present.terminal import Verbosity, View

app = command_app()


@app.command("backtest")
def backtest_command(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Two or more runs of one kind: ids, unique beginnings of ids, latest (see cycleplan runs).",
            metavar="RUN",
            show_default=False,
        ),
    ],
    replications: Annotated[
        int, typer.Option("--replications", "-n", help="Replications per prediction.", metavar="N")
    ] = 1000,
    seed: SeedOption = 0,
    store: StoreOption = STORE_PATH,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON: runs (per held-out run: run_id, and cost_usd, cache_read_tokens, "
            "output_tokens, makespan_min each as {actual, p10, p50, p90, percentile}, and its turns), "
            "coverage (share "
            "inside P10-P90 per quantity and turn_duration), median_error, turn_ratio_median.",
        ),
    ] = False,
    report: Annotated[
        Path | None, report_option("Write an interactive HTML report (every actual over its band).")
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
) -> None:
    """Predict each run from the others (leave one out): how far can I trust a calibrated prediction?

    For each run: calibrate every role from all the other runs, predict the run from its own structure
    (its tasks, turns, subagents and models; not its durations, calls or tokens), and place its actual
    cost, cache reads, output tokens and agent time, and each turn's agent time, in the prediction. A
    prediction that knows what it does not know puts about 80% of actuals inside P10-P90; much less
    means overconfident, all of them with very wide bands means it has little to go on.

    Runs must be of one kind (imported Claude Code sessions, or runs executed with one agent); runs
    whose timelines are identical (snapshots of one run) count once.

    \b
    Examples:
      cycleplan import claude-code ~/.claude/projects/-home-me-app/SESSION.jsonl   # once per session
      cycleplan backtest RUN1 RUN2 RUN3 RUN4 RUN5
      cycleplan backtest RUN1 RUN2 RUN3 --json -n 2000 --report backtest.html
    """
    import time

    from cycleplan.workflows.backtest import BacktestError, backtest, backtest_json

    if not 1 <= replications <= 100_000:
        fail(f"--replications {replications}: choose from 1 to 100,000")
    if seed < 0:
        fail(f"--seed {seed}: must be zero or positive")
    plotly_mode = plotly_js_mode(plotly_js)
    began = time.perf_counter()
    try:
        if as_json:
            result = backtest(store, runs, replications=replications, seed=seed)
        else:
            from cycleplan.present.terminal import progress

            with progress("predicting each run from the others", len(set(runs)), level()) as advance:
                result = backtest(store, runs, replications=replications, seed=seed, progress=advance)
    except BacktestError as exc:
        fail(str(exc))
    detail(f"backtested in {time.perf_counter() - began:.2f} s")
    if report is not None:
        from cycleplan.present.report.reports import backtest_report

        write_report(report, backtest_report(result), plotly_mode)

    def view(verbosity: Verbosity) -> View:
        from cycleplan.present.render_runs import backtest_view

        return backtest_view(result, verbosity)

    show_result(as_json, lambda: backtest_json(result), view, report)
