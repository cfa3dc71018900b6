"""``sweep``: plan and simulate a scenario across lane counts and planners, and recommend one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cycleplan.cli.common import (
    LANES_METAVAR,
    DaskOption,
    FanoutEngineOption,
    PlotlyJsOption,
    SeedOption,
    WorkersOption,
    check_fanout,
    command_app,
    deprecated,
    detail,
    emit_json,
    fail,
    lanes_role,
    level,
    load_scenario_file,
    note,
    plotly_js_mode,
    report_option,
    show,
    simulation_failed,
    write_report,
)

if TYPE_CHECKING:
    from cycleplan.core.model import Scenario

app = command_app()


@app.command("sweep")
def sweep_command(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False, metavar="FILE")],
    lanes: Annotated[
        list[str] | None,
        typer.Option(
            "--lanes",
            "-l",
            help="The lane counts to try, of ROLE (ROLE=N) or of every role (N), N a range 1..8, a list "
            "1,2,4 or both. [default: 1..8]",
            metavar=LANES_METAVAR,
            show_default=False,
        ),
    ] = None,
    algorithms: Annotated[
        list[str] | None,
        typer.Option(
            "--algorithm",
            help="A planning algorithm to compare (see plan); repeat, or list them: list,improve. "
            "[default: improve]",
            metavar="NAME",
            show_default=False,
        ),
    ] = None,
    replications: Annotated[
        int, typer.Option("--replications", "-n", help="Replications per configuration.", metavar="N")
    ] = 1000,
    seed: SeedOption = 0,
    within: Annotated[
        float,
        typer.Option(
            "--within",
            help="Recommend the fewest lanes whose P50 makespan is within this many percent of the best.",
            metavar="X",
        ),
    ] = 10.0,
    engine: FanoutEngineOption = "auto",
    dispatch: Annotated[
        str,
        typer.Option(
            "--dispatch",
            "-d",
            help="How lanes pick their next task: plan or dynamic (see simulate).",
            metavar="plan|dynamic",
        ),
    ] = "plan",
    workers: WorkersOption = None,
    dask: DaskOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the configurations and their summaries as JSON.")
    ] = False,
    report: Annotated[
        Path | None,
        report_option("Write an interactive HTML report."),
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
    role: Annotated[
        str | None,
        typer.Option("--role", "-r", hidden=True, help="Deprecated: --lanes ROLE=N..M.", metavar="ROLE"),
    ] = None,
    old_algorithms: Annotated[
        str | None,
        typer.Option("--algorithms", hidden=True, help="Deprecated: --algorithm.", metavar="A,B"),
    ] = None,
) -> None:
    """Compare lane counts (and planners): speedup, makespan, cost, utilization, and a recommendation.

    Plans and simulates the scenario once per configuration, every configuration on the same random
    draws, so the differences between them are paired rather than noise. Prints each configuration's
    bands, marks the time/cost Pareto front, and recommends the fewest lanes whose P50 makespan is within
    --within percent of the best. Configurations run on every local core, or on Dask. The same seed gives
    the same numbers on any backend.

    \b
    Examples:
      cycleplan sweep scenarios/full-feature.yaml --lanes backend=1..4
      cycleplan sweep scenarios/three-features.yaml --lanes 1..6 --algorithm list --algorithm improve --json
      cycleplan sweep scenarios/payment.yaml --lanes 1..8 --report sweep.html --dask local
    """
    from cycleplan.sim import DISPATCH_MODES, SimulationError
    from cycleplan.workflows.fanout import FanoutError
    from cycleplan.workflows.sweep import dask_runner, open_dask, sweep

    if replications < 1:
        fail(f"--replications {replications}: must be at least 1")
    check_fanout(seed, engine, workers)
    if dispatch not in DISPATCH_MODES:
        fail(f"--dispatch {dispatch}: choose one of {', '.join(DISPATCH_MODES)}")
    plotly_mode = plotly_js_mode(plotly_js)
    scenario = load_scenario_file(file)
    role, counts = _lanes_to_try(scenario, lanes or ["1..8"], role)
    if old_algorithms is not None:
        deprecated(f"--algorithms {old_algorithms}", f"--algorithm {old_algorithms}")
    listed = [*(algorithms or []), *([old_algorithms] if old_algorithms is not None else [])] or ["improve"]
    chosen = [name.strip() for names in listed for name in names.split(",") if name.strip()]
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
    except FanoutError as exc:
        option = {"within": "--within", "dask": "--dask", "role": "--lanes", "algorithms": "--algorithm"}
        fail(f"{option.get(exc.field, '--' + exc.field)}: {str(exc).split(': ', 1)[1]}")
    except SimulationError as exc:
        simulation_failed(exc, engine, file)
    finally:
        if close is not None:
            close()
    if report is not None:
        from cycleplan.present.report.reports import sweep_report

        write_report(report, sweep_report(result), plotly_mode)
    detail(f"swept on {result.backend} in {result.runtime_s:.2f} s")
    if as_json:
        data = result.model_dump(mode="json", exclude={"runtime_s", "backend", "workers"})
        for configuration in data["configurations"]:
            configuration.pop("runtime_s")
        emit_json(data)
        return
    from cycleplan.present.render import sweep_view

    show(sweep_view(result, level()))
    if report is not None:
        note(f"wrote {report}")


def _lanes_to_try(scenario: Scenario, specs: list[str], role: str | None) -> tuple[str | None, list[int]]:
    """The role whose lanes vary (None: every role) and the lane counts to try, from ``--lanes``; the
    deprecated ``--role ROLE --lanes N..M`` still names the role, with a word on what to write."""
    from cycleplan.workflows.sweep import SweepError, parse_lanes

    if len(specs) > 1:
        fail(
            f"--lanes {' --lanes '.join(specs)}: a sweep varies the lanes of one role, or of every role; "
            "give --lanes once, e.g. --lanes backend=1..4"
        )
    spec = specs[0]
    named, counts = lanes_role(scenario, spec)
    if role is not None:
        if named is not None:
            fail(f"--role {role} --lanes {spec}: the role is named twice; write --lanes {spec}")
        deprecated(f"--role {role} --lanes {spec}", f"--lanes {role}={spec}")
        if role not in scenario.role_names():
            fail(
                f"--role {role}: no role '{role}' in this scenario; roles: {', '.join(scenario.role_names())}"
            )
        named = role
    try:
        return named, parse_lanes(counts)
    except SweepError as exc:
        fail(f"--lanes {spec}: {str(exc).removeprefix('lanes: ')}")
