"""``sweep``: plan and simulate a scenario across lane counts and planners, and recommend one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cycleplan.cli.common import (
    PlotlyJsOption,
    command_app,
    emit_json,
    fail,
    load_scenario_file,
    plotly_js_mode,
    report_option,
    say,
    write_report,
)

app = command_app()


@app.command("sweep")
def sweep_command(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False, metavar="FILE")],
    lanes: Annotated[
        str,
        typer.Option(
            "--lanes",
            "-l",
            help="Lane counts to try: a range 1..8, a list 1,2,4 or both.",
            metavar="N..M",
        ),
    ] = "1..8",
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            "-r",
            help="The role whose lanes vary (default: every role gets the count).",
            metavar="ROLE",
        ),
    ] = None,
    algorithms: Annotated[
        str,
        typer.Option(
            "--algorithms", "-a", help="Planning algorithms to compare, comma-separated.", metavar="A,B"
        ),
    ] = "improve",
    replications: Annotated[
        int, typer.Option("--replications", "-n", help="Replications per configuration.", metavar="N")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of every random draw.", metavar="S")] = 0,
    within: Annotated[
        float,
        typer.Option(
            "--within",
            help="Recommend the fewest lanes whose P50 makespan is within this many percent of the best.",
            metavar="X",
        ),
    ] = 10.0,
    engine: Annotated[
        str,
        typer.Option("--engine", "-e", help="simpy, fast or auto (fast when the model allows).", metavar="E"),
    ] = "auto",
    dispatch: Annotated[
        str, typer.Option("--dispatch", "-d", help="plan or dynamic (see simulate).", metavar="plan|dynamic")
    ] = "plan",
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", help="Local worker processes (default: every core).", metavar="N"),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Run on Dask: a scheduler address (tcp://host:8786) or 'local' for a LocalCluster "
            "(needs pip install 'cycleplan[dask]').",
            metavar="ADDRESS",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the configurations and their summaries as JSON.")
    ] = False,
    report: Annotated[
        Path | None,
        report_option("Write an interactive HTML report."),
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
) -> None:
    """Compare lane counts (and planners): speedup, makespan, cost, utilization, and a recommendation.

    Plans and simulates the scenario once per configuration, every configuration on the same random
    draws, so the differences between them are paired rather than noise. Prints each configuration's
    bands, marks the time/cost Pareto front, and recommends the fewest lanes whose P50 makespan is within
    --within percent of the best. Configurations run on every local core, or on Dask. The same seed gives
    the same numbers on any backend.

    \b
    Examples:
      cycleplan sweep scenarios/full-feature.yaml --lanes 1..4 --role backend
      cycleplan sweep scenarios/three-features.yaml --lanes 1..6 --algorithms list,improve --json
      cycleplan sweep scenarios/payment.yaml --lanes 1..8 --report sweep.html --dask local
    """
    from cycleplan.sim import DISPATCH_MODES, ENGINES, SimulationError
    from cycleplan.sim.sweep import SweepError, dask_runner, open_dask, parse_lanes, render_sweep, sweep

    if replications < 1:
        fail(f"--replications {replications}: must be at least 1")
    if seed < 0:
        fail(f"--seed {seed}: must be zero or positive")
    if engine not in ENGINES:
        fail(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if dispatch not in DISPATCH_MODES:
        fail(f"--dispatch {dispatch}: choose one of {', '.join(DISPATCH_MODES)}")
    if workers is not None and workers < 1:
        fail(f"--workers {workers}: must be at least 1")
    plotly_mode = plotly_js_mode(plotly_js)
    try:
        counts = parse_lanes(lanes)
    except SweepError as exc:
        fail(f"--lanes {lanes}: {str(exc).removeprefix('lanes: ')}")
    scenario = load_scenario_file(file)
    chosen = [name.strip() for name in algorithms.split(",") if name.strip()]
    close = None
    try:
        runner = None
        backend = None
        if dask is not None:
            client, close = open_dask(dask, workers)
            runner, backend = dask_runner(client), "dask"
        result = sweep(
            scenario,
            counts,
            role=role,
            algorithms=chosen,
            replications=replications,
            seed=seed,
            dispatch=dispatch,
            engine=engine,
            within_percent=within,
            workers=workers,
            runner=runner,
            backend=backend,
        )
    except SweepError as exc:
        option = {"within": "--within", "dask": "--dask", "role": "--role", "algorithms": "--algorithms"}
        fail(f"{option.get(exc.field, '--' + exc.field)}: {str(exc).split(': ', 1)[1]}")
    except SimulationError as exc:
        if exc.field == "engine":
            fail(f"--engine {engine}: {str(exc).removeprefix('engine: ')}")
        fail(f"{file}: {exc}")
    finally:
        if close is not None:
            close()
    if report is not None:
        from cycleplan.report.reports import sweep_report

        write_report(report, sweep_report(result), plotly_mode)
    if as_json:
        data = result.model_dump(mode="json", exclude={"runtime_s", "backend", "workers"})
        for configuration in data["configurations"]:
            configuration.pop("runtime_s")
        emit_json(data)
        return
    say(render_sweep(result))
    if report is not None:
        say(f"\nwrote {report}")
