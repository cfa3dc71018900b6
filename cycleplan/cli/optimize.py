"""``optimize``: how many agents, and which model for which role, under a budget or a deadline."""

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
    detail,
    emit_json,
    fail,
    lanes_role,
    level,
    load_scenario_file,
    note,
    output_option,
    parse_duration_min,
    plotly_js_mode,
    report_option,
    say,
    show,
    simulation_failed,
    write_atomically,
    write_report,
)

if TYPE_CHECKING:
    from cycleplan.core.model import Scenario

app = command_app()


@app.command("optimize")
def optimize_command(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False, metavar="FILE")],
    lanes: Annotated[
        list[str] | None,
        typer.Option(
            "--lanes",
            "-l",
            help="The lane counts to try, of ROLE (ROLE=N) or of every role (N), N a range 1..4, a list "
            "1,2,4 or one count; repeat for several roles. [default: each role's lanes as written]",
            metavar=LANES_METAVAR,
            show_default=False,
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            help="The models to try for ROLE, among its own and its 'models:'; repeat for several roles. "
            "[default: every model each role may use]",
            metavar="ROLE=M1,M2",
            show_default=False,
        ),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget", help="Keep P(cost > USD) at most --risk.", metavar="USD", show_default=False
        ),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(
            "--deadline",
            help="Keep P(makespan > DURATION) at most --risk: 90m, 2h, 1h30m.",
            metavar="DURATION",
            show_default=False,
        ),
    ] = None,
    risk: Annotated[
        float,
        typer.Option("--risk", help="The chance of breaking --budget or --deadline allowed.", metavar="P"),
    ] = 0.1,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            help="What to minimise: makespan (P90) or cost (mean). [default: cost with only --deadline, "
            "else makespan]",
            metavar="makespan|cost",
            show_default=False,
        ),
    ] = None,
    seed: SeedOption = 0,
    engine: FanoutEngineOption = "auto",
    exhaustive: Annotated[
        bool,
        typer.Option(
            "--exhaustive", help="Give every configuration 200 replications (no successive halving)."
        ),
    ] = False,
    workers: WorkersOption = None,
    dask: DaskOption = None,
    output: Annotated[
        Path | None,
        output_option("Write the chosen configuration as a scenario that execute runs as is (YAML)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    report: Annotated[
        Path | None,
        report_option(
            "Write an interactive HTML report: Pareto front, the choice's bands, the choice by budget."
        ),
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
) -> None:
    """Choose lanes and a model per role: the least P90 makespan within a budget, or least cost by a deadline.

    Searches every combination of the lane counts (--lanes) and the models each role may use (a role's
    `models:` in the scenario, or --models) for the one with the least P90 makespan that keeps
    P(cost > --budget) within --risk, or (--objective cost) the least mean cost that keeps
    P(makespan > --deadline) within --risk. The search is successive halving on common random numbers:
    every configuration gets 10 replications, then the best third (and any statistical tie) 30, 90 and
    200, on the same draws; clearly infeasible configurations (Clopper-Pearson bound above --risk) drop
    out early. Prints the choice with its bands, the runner-up and whether a paired bootstrap tells them
    apart, the Pareto front of P90 makespan against mean cost, and the choice at other budgets.
    Exit status: 0 chosen, 1 no configuration keeps the constraints (the message names the closest),
    2 bad input.

    \b
    Examples:
      cycleplan optimize scenarios/full-feature.yaml --lanes backend=1..3 --budget 4.50
      cycleplan optimize scenarios/payment.yaml --deadline 2h30m --objective cost --json
      cycleplan optimize scenarios/course-crud.yaml --models backend=claude-opus-4-6 -o chosen.yaml
    """
    from cycleplan.sim import SimulationError
    from cycleplan.workflows.fanout import DaskRunner, FanoutError, open_dask
    from cycleplan.workflows.optimize import EXIT_INFEASIBLE, OptimizeError, optimize

    check_fanout(seed, engine, workers)
    if budget is not None and not budget > 0:
        fail(f"--budget {budget:g}: must be a positive amount of dollars")
    if not 0 <= risk < 1:
        fail(f"--risk {risk:g}: must be a probability from 0 to below 1")
    if objective is not None and objective not in ("makespan", "cost"):
        fail(f"--objective {objective}: choose makespan or cost")
    deadline_min = None if deadline is None else parse_duration_min(deadline)
    plotly_mode = plotly_js_mode(plotly_js)
    scenario = load_scenario_file(file)
    lanes_by_role = _lanes_to_try(scenario, lanes or [])
    models_by_role = _models_to_try(scenario, models or [])
    close = None
    try:
        runner = None
        if dask is not None:
            client, close = open_dask(dask, workers)
            runner = DaskRunner(client, workers or 0)
        from cycleplan.present.terminal import progress

        with progress("optimizing", 1, level()) as advance:
            result = optimize(
                scenario,
                lanes=lanes_by_role,
                models=models_by_role,
                budget_usd=budget,
                deadline_min=deadline_min,
                risk=risk,
                objective=objective,  # type: ignore[arg-type]
                seed=seed,
                engine=engine,
                exhaustive=exhaustive,
                workers=workers,
                runner=runner,
                progress=advance,
            )
    except OptimizeError as exc:
        message = str(exc).split(": ", 1)[1]
        if exc.field == "infeasible":
            say(message, err=True)
            raise typer.Exit(EXIT_INFEASIBLE) from None
        option = {"role": "--lanes", "rounds": "--exhaustive"}
        fail(f"{option.get(exc.field, '--' + exc.field)}: {message}")
    except FanoutError as exc:
        fail(f"--{exc.field}: {str(exc).split(': ', 1)[1]}")
    except SimulationError as exc:
        simulation_failed(exc, engine, file)
    finally:
        if close is not None:
            close()
    if output is not None:
        write_atomically(output, result.chosen_yaml)
    if report is not None:
        from cycleplan.present.report.reports import optimize_report

        write_report(report, optimize_report(result), plotly_mode)
    detail(f"optimized on {result.backend} in {result.runtime_s:.2f} s")
    if as_json:
        emit_json(result.model_dump(mode="json", exclude={"runtime_s", "backend", "workers"}))
        return
    from cycleplan.present.optimize_view import optimize_view

    show(optimize_view(result, level()))
    for path in (output, report):
        if path is not None:
            note(f"wrote {path}")


def _lanes_to_try(scenario: Scenario, specs: list[str]) -> dict[str, list[int]]:
    """Role -> lane counts to try, from ``--lanes [ROLE=]COUNTS`` (a bare COUNTS: every role; a later
    option wins for its role)."""
    from cycleplan.workflows.sweep import SweepError, parse_lanes

    found: dict[str, list[int]] = {}
    for spec in specs:
        role, counts = lanes_role(scenario, spec)
        try:
            parsed = parse_lanes(counts)
        except SweepError as exc:
            fail(f"--lanes {spec}: {str(exc).removeprefix('lanes: ')}")
        for name in [role] if role is not None else scenario.role_names():
            found[name] = parsed
    return found


def _models_to_try(scenario: Scenario, specs: list[str]) -> dict[str, list[str]]:
    """Role -> models to try, from ``--models ROLE=M1,M2``, checked against the roles and their models."""
    from cycleplan.core.checks import did_you_mean

    found: dict[str, list[str]] = {}
    roles = scenario.role_names()
    for spec in specs:
        role, sep, names = spec.partition("=")
        listed = [name.strip() for name in names.split(",") if name.strip()]
        if not sep or not role or not listed:
            fail(
                f"--models {spec}: write ROLE=MODEL,MODEL, e.g. "
                "--models backend=claude-opus-4-6,claude-sonnet-4-5"
            )
        if role not in roles:
            fail(
                f"--models {spec}: no role '{role}' in this scenario{did_you_mean(role, roles)}; "
                f"roles: {', '.join(roles)}"
            )
        choices = scenario.role(role).model_choices()
        for name in listed:
            if name not in choices:
                fail(
                    f"--models {spec}: role {role} may not use '{name}'{did_you_mean(name, choices)}; "
                    f"its models: {', '.join(choices)} (list others under the role's 'models:' in the "
                    "scenario)"
                )
        found[role] = listed
    return found
