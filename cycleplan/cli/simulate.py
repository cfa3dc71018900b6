"""Predictions: ``simulate`` (the simulator with error bars) and ``report`` (a saved prediction or
plan as an HTML page).

Also :func:`prediction_summary`, the JSON that ``simulate --json`` prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cycleplan.cli.common import (
    PlotlyJsOption,
    ScenarioLanesOption,
    SeedOption,
    command_app,
    fail,
    level,
    note,
    output_option,
    parse_lanes_option,
    plotly_js_mode,
    report_option,
    show_result,
    simulation_failed,
    write_atomically,
    write_report,
)
from cycleplan.core.wording import counted

if TYPE_CHECKING:
    from cycleplan.present.terminal import Verbosity, View
    from cycleplan.sim.prediction import Prediction

app = command_app()

PROGRESS_FROM_REPLICATIONS = 200
"""Show a progress bar (on a terminal) from this many realistic replications on."""

_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9}


def parse_memory(text: str) -> int | None:
    """``--max-memory``: a size such as ``2GB``, ``500MB`` or ``1.5G`` in bytes, or ``none`` (no limit);
    a ValueError for anything else."""
    cleaned = text.strip().upper().replace(" ", "")
    if cleaned in ("NONE", "OFF"):
        return None
    number = cleaned.rstrip("KMGB")
    unit = cleaned[len(number) :]
    if unit not in _UNITS or not number:
        raise ValueError(text)
    value = float(number) * _UNITS[unit]
    if not (value >= 1e6 and value < 1e15):
        raise ValueError(text)
    return int(value)


def prediction_summary(prediction: Prediction) -> dict[str, Any]:
    """The JSON that ``simulate --json`` prints: every number reproducible from the seed (no runtime)."""

    def band(name: str) -> dict[str, float]:
        summary = prediction.summaries[name]
        return {
            "mean": summary.mean,
            "sd": summary.sd,
            "p10": summary.p10,
            "p50": summary.p50,
            "p90": summary.p90,
            "ci95_low": summary.ci95_low,
            "ci95_high": summary.ci95_high,
        }

    config = prediction.config
    claim = prediction.claim
    return {
        "scenario": config.scenario,
        "replications": config.replications,
        "seed": config.seed,
        "dispatch": config.dispatch,
        "ideal": config.ideal,
        "algorithm": config.algorithm,
        "rule": config.rule,
        "version": config.version,
        "prices_as_of": config.prices_as_of,
        "makespan_min": band("makespan_min"),
        "sequential_min": band("sequential_min"),
        "speedup": band("speedup"),
        "cost_usd": band("cost_usd"),
        "tokens_total": band("tokens_total"),
        "tokens_read": band("tokens_read"),
        "utilization": band("utilization"),
        "tokens": {
            kind: band(kind)
            for kind in (
                "input_tokens",
                "cache_write_tokens",
                "cache_read_tokens",
                "output_tokens",
                "context_tokens",
            )
        },
        "waits_min": {cause: band(f"waits_min.{cause}") for cause in prediction.replications.waits_min},
        "utilization_by_role": {
            role: band(f"utilization_by_role.{role}") for role in prediction.replications.utilization_by_role
        },
        "failures": band("failures"),
        "failed_cycles": band("failed_cycles"),
        "cancellations": band("cancellations"),
        "waste_min": band("waste_min"),
        "waste_cost_usd": band("waste_cost_usd"),
        "completed_share": prediction.summaries["completed"].mean,
        "criticality": prediction.criticality,
        "median_replication": prediction.median_replication,
        "plan": {
            "makespan_min": prediction.plan_makespan_min,
            "sequential_min": prediction.plan_sequential_min,
            "speedup": prediction.plan_speedup,
        },
        "claim": None
        if claim is None
        else {
            "sequential_min": claim.sequential_min,
            "parallel_min": claim.parallel_min,
            "speedup": claim.speedup,
            "source": claim.source,
        },
    }


@app.command("simulate")
def simulate_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="Scenario YAML file, or a plan written by `plan -o plan.json`.",
            show_default=False,
            metavar="FILE|plan.json",
        ),
    ],
    replications: Annotated[
        int, typer.Option("--replications", "-n", help="How many runs to simulate.", metavar="N")
    ] = 1000,
    seed: SeedOption = 0,
    ideal: Annotated[
        bool,
        typer.Option(
            "--ideal",
            help="Nominal cycle durations, median tokens, no failures, sync costs or rate limits.",
        ),
    ] = False,
    dispatch: Annotated[
        str,
        typer.Option(
            "--dispatch",
            "-d",
            help="plan: lanes keep the plan's order; dynamic: a free lane takes the ready task "
            "planned first.",
            metavar="plan|dynamic",
        ),
    ] = "plan",
    lanes: ScenarioLanesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON.")] = False,
    output: Annotated[
        Path | None,
        output_option("Write the whole prediction (arrays, summaries, median trace) as JSON."),
    ] = None,
    report: Annotated[
        Path | None,
        report_option("Write an interactive HTML report (distributions, costs, utilization, waits, Gantt)."),
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            "-e",
            help="simpy: the reference engine; fast: the max-plus recursion, the same numbers much sooner "
            "(plan dispatch, no rate limits); auto: fast when the model allows it.",
            metavar="simpy|fast|auto",
        ),
    ] = "auto",
    max_memory: Annotated[
        str,
        typer.Option(
            "--max-memory",
            help="Keep the estimated peak memory under this (e.g. 4GB, 500MB; none: no limit). Replications "
            "run in batches that fit; when even that cannot, simulate stops first and says how many fit.",
            metavar="SIZE",
        ),
    ] = "2GB",
) -> None:
    """Predict speedup, makespan, tokens, cost and utilization with error bars.

    Runs the plan many times with random cycle durations, tokens and failures (the scenario's model),
    each replication on the same draws as its sequential baseline (the same work on one lane). Prints P50
    [P10-P90] and the 95% confidence interval of the mean (one value each for -n 1), the scenario's claim
    beside them, the most critical tasks and where the time goes. The same seed gives the same output.

    \b
    Examples:
      cycleplan simulate scenarios/course-crud.yaml
      cycleplan simulate scenarios/course-crud.yaml --ideal -n 1
      cycleplan simulate scenarios/full-feature.yaml --lanes backend=2 -n 2000 --seed 7 --json
      cycleplan simulate plan.json --dispatch dynamic -o prediction.json
      cycleplan simulate scenarios/payment.yaml --report payment.html
      cycleplan simulate scenarios/full-feature.yaml -n 100000 --engine fast
    """
    from cycleplan.core.loading import LoadError, load_scenario_or_plan
    from cycleplan.core.model import Plan
    from cycleplan.sim import DISPATCH_MODES, ENGINES, SimulationError, simulate
    from cycleplan.sim.memory import MemoryLimitError

    if replications < 1:
        fail(f"--replications {replications}: must be at least 1")
    if engine not in ENGINES:
        fail(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if seed < 0:
        fail(f"--seed {seed}: must be zero or positive")
    if dispatch not in DISPATCH_MODES:
        fail(f"--dispatch {dispatch}: choose one of {', '.join(DISPATCH_MODES)}")
    try:
        memory_limit = parse_memory(max_memory)
    except ValueError:
        fail(f"--max-memory {max_memory}: give a size such as 2GB or 500MB (at least 1MB), or none")
    plotly_mode = plotly_js_mode(plotly_js)
    try:
        loaded = load_scenario_or_plan(file)
    except LoadError as exc:
        fail(*(str(error) for error in exc.errors), f"{counted(len(exc.errors), 'problem')} in {file}")
    if isinstance(loaded, Plan):
        if lanes:
            fail("--lanes: changes a scenario's lanes; plan.json is already planned, so pass the scenario")
        the_plan = loaded
    else:
        from cycleplan.planner import plan

        scenario = loaded.with_lanes(parse_lanes_option(loaded, lanes)) if lanes else loaded
        the_plan = plan(scenario)

    long_run = not ideal and replications >= PROGRESS_FROM_REPLICATIONS
    settings: dict[str, Any] = {
        "replications": replications,
        "seed": seed,
        "dispatch": dispatch,
        "ideal": ideal,
        "engine": engine,
        "max_memory": memory_limit,
    }
    try:
        if long_run:
            from cycleplan.present.terminal import progress

            with progress("simulating", replications, level()) as advance:
                prediction = simulate(the_plan, progress=advance, **settings)
        else:
            prediction = simulate(the_plan, **settings)
    except MemoryLimitError as exc:
        fail(f"{file}: {exc.plan.refusal(exc.fits, fewer='use -n {fits}', more='raise --max-memory')}")
    except SimulationError as exc:
        simulation_failed(exc, engine, file)
    if output is not None:
        write_atomically(output, prediction.to_json() + "\n")
    if report is not None:
        from cycleplan.present.report.reports import prediction_report

        write_report(report, prediction_report(prediction, the_plan), plotly_mode)

    def view(verbosity: Verbosity) -> View:
        from cycleplan.present.render import prediction_view

        return prediction_view(prediction, verbosity)

    show_result(as_json, lambda: prediction_summary(prediction), view, output, report)


@app.command("report")
def report_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="A prediction written by `simulate -o`, or a plan written by `plan -o`.",
            show_default=False,
            metavar="prediction.json|plan.json",
        ),
    ],
    output: Annotated[
        Path,
        output_option("The HTML file to write."),
    ],
    plotly_js: PlotlyJsOption = "embed",
) -> None:
    """Turn a saved prediction or plan into an interactive HTML report.

    The page opens with the numbers that matter (speedup, makespan, cost, utilization, with their
    P10-P90 bands), then the figures. With --plotly-js embed (the default) it works offline.

    \b
    Examples:
      cycleplan report prediction.json -o prediction.html
      cycleplan report plan.json -o plan.html --plotly-js cdn
    """
    from pydantic import ValidationError

    from cycleplan.core.loading import LoadError, load_plan

    plotly_mode = plotly_js_mode(plotly_js)
    if not file.is_file():
        fail(f"{file}: no such file; give a prediction.json from `simulate -o` or a plan.json from `plan -o`")
    try:
        head = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{file}: not a JSON file written by cycleplan ({exc})")
    if isinstance(head, dict) and "replications" in head and "config" in head:
        from cycleplan.present.report.reports import prediction_report
        from cycleplan.sim.prediction import Prediction

        try:
            prediction = Prediction.model_validate(head)
        except ValidationError as exc:
            first = exc.errors()[0]
            place = ".".join(str(part) for part in first["loc"])
            fail(f"{file}: {place}: {first['msg']} (was it written by `cycleplan simulate -o`?)")
        built = prediction_report(prediction)
    else:
        from cycleplan.present.report.reports import plan_report

        other = _other_result(head)
        if other is not None:
            fail(f"{file}: {other}")
        try:
            built = plan_report(load_plan(file))
        except LoadError as exc:
            fail(*(str(error) for error in exc.errors))
    write_report(output, built, plotly_mode)
    note(f"wrote {output}")


_OTHER_RESULTS = (
    ({"configurations", "pareto", "recommended"}, "sweep result", "cycleplan sweep ... --report sweep.html"),
    ({"verdict", "tasks"}, "comparison", "cycleplan compare RUN --report compare.html"),
    ({"runs", "kind", "replications"}, "backtest result", "cycleplan backtest RUN... --report backtest.html"),
)


def _other_result(head: object) -> str | None:
    """What a JSON file that is neither a prediction nor a plan is, and where its report comes from."""
    if not isinstance(head, dict):
        return None
    for keys, what, command in _OTHER_RESULTS:
        if keys <= head.keys():
            return f"this is a {what}, not a prediction or a plan; its report comes from `{command}`"
    return None
