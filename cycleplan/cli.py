"""The ``cycleplan`` command: parse arguments, call one library function, render the result.

The only module that imports typer. Library errors (:class:`cycleplan.loading.LoadError`, bad options)
become messages on stderr and exit status 2 here and nowhere else; no traceback reaches the user for bad
input. Heavy libraries are imported inside the commands that need them so that ``--help`` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from cycleplan import __version__

if TYPE_CHECKING:
    from cycleplan.model import Plan, Scenario
    from cycleplan.report.page import Report

app = typer.Typer(
    name="cycleplan",
    help=(
        "Plan, predict and run parallel AI-agent work.\n\n"
        "A scenario (YAML) names roles with lanes and tasks of cycles; `plan` maps them onto lanes, "
        "`simulate` predicts speedup, tokens and cost with error bars, `execute` runs the plan.\n\n"
        "Start with:  cycleplan init my-feature && cycleplan plan my-feature.yaml"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_BAD_INPUT = 2

STORE_PATH = Path(".cycleplan/runs.db")
STORE_HELP = "Run store (SQLite); runs' artifacts and logs go beside it."

# Options several commands share, declared once.
PlotlyJsOption = Annotated[
    str, typer.Option("--plotly-js", metavar="HOW", help="embed (works offline) or cdn (small file).")
]
StoreOption = Annotated[Path, typer.Option("--store", help=STORE_HELP, metavar="PATH")]
ScenarioLanesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--lanes",
        "-l",
        help="Lanes of a role, ROLE=N (scenario files only); repeat for several roles.",
        metavar="ROLE=N",
        show_default=False,
    ),
]


def _fail(*lines: str) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cycleplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    del version


def _load(path: Path) -> Scenario:
    from cycleplan.loading import LoadError, load_scenario

    try:
        return load_scenario(path)
    except LoadError as exc:
        _fail(*(str(error) for error in exc.errors), f"{len(exc.errors)} problem(s) in {path}")


def _parse_lanes(scenario: Scenario, specs: list[str]) -> dict[str, int]:
    from cycleplan.checks import did_you_mean

    lanes: dict[str, int] = {}
    roles = scenario.role_names()
    for spec in specs:
        role, sep, count = spec.partition("=")
        if not sep or not role or not count:
            _fail(f"--lanes {spec}: write ROLE=N, e.g. --lanes backend=2")
        if role not in roles:
            _fail(
                f"--lanes {spec}: no role '{role}' in this scenario{did_you_mean(role, roles)}; "
                f"roles: {', '.join(roles)}"
            )
        if not count.isdigit() or not 1 <= int(count) <= 1000:
            _fail(f"--lanes {spec}: the lane count must be a whole number from 1 to 1000")
        lanes[role] = int(count)
    return lanes


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so an interrupted write never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        _fail(f"{path}: cannot write: {exc.strerror or exc}")


def _plotly_mode(value: str) -> Literal["embed", "cdn"]:
    if value not in ("embed", "cdn"):
        _fail(f"--plotly-js {value}: choose embed (works offline) or cdn (small file)")
    return "embed" if value == "embed" else "cdn"


def _write_report(path: Path, report: Report, plotly_js: Literal["embed", "cdn"]) -> None:
    from cycleplan.report.page import write_page

    try:
        write_page(path, report, plotly_js)
    except OSError as exc:
        _fail(f"{path}: cannot write: {exc.strerror or exc}")


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


# --------------------------------------------------------------------------------------------------
# validate


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False, metavar="FILE")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a scenario file and report every problem with its line and field.

    Exit status 0 when valid, 2 with one line per problem (FILE:LINE:COL: field: what is wrong).

    \b
    Example:  cycleplan validate scenarios/course-crud.yaml
    """
    from cycleplan.loading import LoadError, load_scenario

    try:
        scenario = load_scenario(file)
    except LoadError as exc:
        if as_json:
            _emit_json(
                {
                    "file": str(file),
                    "valid": False,
                    "errors": [
                        {"line": e.line, "column": e.column, "field": e.field, "message": e.message}
                        for e in exc.errors
                    ],
                }
            )
            raise typer.Exit(EXIT_BAD_INPUT) from None
        _fail(*(str(error) for error in exc.errors), f"{len(exc.errors)} problem(s) in {file}")
    tasks = scenario.all_tasks()
    roles = scenario.role_names()
    lanes = sum(scenario.role(role).lanes for role in roles)
    if as_json:
        _emit_json(
            {
                "file": str(file),
                "valid": True,
                "name": scenario.name,
                "template": scenario.template,
                "tasks": len(tasks),
                "roles": len(roles),
                "lanes": lanes,
                "cycles": sum(task.cycles for task in tasks),
            }
        )
        return
    source = f", template {scenario.template}" if scenario.template else ""
    typer.echo(
        f"{file}: valid: {len(tasks)} tasks, {sum(t.cycles for t in tasks)} cycles, "
        f"{len(roles)} roles, {lanes} lanes{source}"
    )


# --------------------------------------------------------------------------------------------------
# plan


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The JSON that ``plan --json`` prints: the numbers and the lanes, without the scenario."""
    return {
        "scenario": plan.scenario.name,
        "algorithm": plan.algorithm,
        "rule": plan.rule,
        "makespan_min": plan.makespan_min,
        "sequential_min": plan.sequential_min,
        "speedup": plan.speedup,
        "lower_bound_min": plan.lower_bound_min,
        "lower_bounds": plan.lower_bounds,
        "proven_optimal": plan.proven_optimal,
        "critical_path": plan.critical_path,
        "wall_cycles": plan.wall_cycles,
        "template_cycles": plan.template_cycles,
        "cycle_map": plan.cycle_map,
        "claim": None
        if plan.scenario.claim is None
        else {
            "sequential_min": plan.scenario.claim.sequential_min,
            "parallel_min": plan.scenario.claim.parallel_min,
            "speedup": plan.scenario.claim.speedup,
        },
        "lanes": [lane.model_dump(mode="json") for lane in plan.lanes],
    }


@app.command("plan")
def plan_command(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False, metavar="FILE")],
    algorithm: Annotated[
        str,
        typer.Option(
            "--algorithm",
            "-a",
            metavar="NAME",
            help="improve (default: genetic search with forward-backward improvement), list "
            "(one pass of a priority rule), sequential (one lane), cpsat (exact; the optimal extra).",
        ),
    ] = "improve",
    rule: Annotated[
        str | None,
        typer.Option(
            "--rule",
            metavar="RULE",
            help="Priority rule for list: lft (default), lst, est, mts, grpw, spt, lpt.",
        ),
    ] = None,
    lanes: Annotated[
        list[str] | None,
        typer.Option(
            "--lanes",
            "-l",
            help="Lanes of a role, ROLE=N; repeat for several roles.",
            metavar="ROLE=N",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan's numbers and lanes as JSON.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the whole plan (with its scenario) as JSON, for `simulate` and `execute`.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Write an interactive HTML report (Gantt chart).",
            show_default=False,
        ),
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
    schedules: Annotated[
        int | None,
        typer.Option(
            "--schedules", metavar="N", help="improve: how many schedules to try.", show_default=False
        ),
    ] = None,
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            metavar="SECONDS",
            help="improve, cpsat: stop searching after this long.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", metavar="S", help="improve: seed of the search.", show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", metavar="N", help="cpsat: solver threads (default 8).", show_default=False),
    ] = None,
) -> None:
    """Map a scenario's tasks onto lanes: start and finish of every task, critical path, speedup.

    Times are in expected minutes (each cycle at its role's nominal duration) and in wall cycles.

    \b
    Examples:
      cycleplan plan scenarios/course-crud.yaml
      cycleplan plan scenarios/full-feature.yaml --lanes backend=2 --json
      cycleplan plan my.yaml -o plan.json --report plan.html
      cycleplan plan big.yaml --algorithm cpsat --time-limit 30
    """
    from cycleplan.planner import ALGORITHMS, OPTIONS, RULES, plan
    from cycleplan.planner.cpsat import MissingExtraError

    if algorithm not in ALGORITHMS:
        _fail(f"--algorithm {algorithm}: choose one of {', '.join(ALGORITHMS)}")
    if rule is not None and rule not in RULES:
        _fail(f"--rule {rule}: choose one of {', '.join(RULES)}")
    for option, value, low in (("--schedules", schedules, 1), ("--workers", workers, 1), ("--seed", seed, 0)):
        if value is not None and value < low:
            _fail(f"{option} {value}: must be at least {low}")
    if time_limit is not None and not time_limit > 0:
        _fail(f"--time-limit {time_limit}: must be a positive number of seconds")
    options = {"schedules": schedules, "time_limit_s": time_limit, "seed": seed, "workers": workers}
    given = {name: value for name, value in options.items() if value is not None}
    unsupported = sorted(set(given) - OPTIONS[algorithm])
    if unsupported:
        flags = {
            "schedules": "--schedules",
            "time_limit_s": "--time-limit",
            "seed": "--seed",
            "workers": "--workers",
        }
        _fail(f"{', '.join(flags[name] for name in unsupported)}: not an option of --algorithm {algorithm}")
    scenario = _load(file)
    if lanes:
        scenario = scenario.with_lanes(_parse_lanes(scenario, lanes))
    plotly_mode = _plotly_mode(plotly_js)
    try:
        result = plan(scenario, algorithm=algorithm, rule=rule, **given)
    except MissingExtraError as exc:
        _fail(str(exc))
    if output is not None:
        _write_atomically(output, result.model_dump_json(indent=1))
    if report is not None:
        from cycleplan.report.reports import plan_report

        _write_report(report, plan_report(result), plotly_mode)
    if as_json:
        _emit_json(plan_summary(result))
        return
    from cycleplan.render import render_plan

    typer.echo(render_plan(result))
    for written in (output, report):
        if written is not None:
            typer.echo(f"wrote {written}")


# --------------------------------------------------------------------------------------------------
# schema, templates, init


@app.command()
def schema(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write to a file instead of stdout.", show_default=False
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of the scenario format, for editors (YAML language servers).

    \b
    Example:  cycleplan schema -o cycleplan.schema.json
    """
    from cycleplan.model import Scenario

    text = json.dumps(Scenario.model_json_schema(), indent=2)
    if output is None:
        typer.echo(text)
    else:
        _write_atomically(output, text + "\n")
        typer.echo(f"wrote {output}")


@app.command()
def templates(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the built-in templates a scenario can name with `template: NAME`.

    \b
    Example:  cycleplan templates
    """
    from cycleplan.templates import TEMPLATES

    if as_json:
        _emit_json(
            [
                {
                    "name": t.name,
                    "cycles": t.cycles,
                    "tasks": [task.id for task in t.tasks],
                    "description": t.description,
                }
                for t in TEMPLATES.values()
            ]
        )
        return
    for template in TEMPLATES.values():
        typer.echo(f"{template.name}  ({template.cycles} cycles, {len(template.tasks)} tasks)")
        typer.echo(f"  {template.description}")
        for task in template.tasks:
            span = task.template_cycles or (0, 0)
            after = f"  after {', '.join(task.after)}" if task.after else ""
            sync = "".join(f"  emits {e} after cycle {c}" for e, c in task.emits.items())
            sync += "".join(f"  waits {e} before cycle {c}" for e, c in task.waits.items())
            typer.echo(f"    {span[0]:>3}-{span[1]:<3} {task.id:<12} {task.role:<12}{after}{sync}")


@app.command()
def init(
    name: Annotated[
        str,
        typer.Argument(
            help="Name of the new scenario; written to NAME.yaml.", show_default=False, metavar="NAME"
        ),
    ],
    template: Annotated[
        str, typer.Option("--template", "-t", help="one-100 or blank.", metavar="NAME")
    ] = "one-100",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="File to write (default NAME.yaml).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter scenario to edit.

    \b
    Examples:
      cycleplan init my-feature                 # one-100 template with every knob explained
      cycleplan init api-sprint --template blank
    """
    from cycleplan.starter import STARTERS, starter_text

    if template not in STARTERS:
        _fail(f"--template {template}: choose one of {', '.join(STARTERS)}")
    target = output or Path(f"{name}.yaml")
    if target.exists() and not force:
        _fail(f"{target}: already exists; choose another name or pass --force to overwrite")
    _write_atomically(target, starter_text(template, name))
    typer.echo(f"wrote {target}; next: cycleplan plan {target}")


# --------------------------------------------------------------------------------------------------
# simulate

if TYPE_CHECKING:
    from cycleplan.sim.prediction import Prediction

PROGRESS_FROM_REPLICATIONS = 200
"""Show a progress bar (on a terminal) from this many realistic replications on."""


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
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of every random draw.", metavar="S")] = 0,
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
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the whole prediction (arrays, summaries, median trace) as JSON.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Write an interactive HTML report (distributions, costs, utilization, waits, Gantt).",
            show_default=False,
        ),
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
) -> None:
    """Predict speedup, makespan, tokens, cost and utilization with error bars.

    Runs the plan many times with random cycle durations, tokens and failures (the scenario's model),
    each replication on the same draws as its one-lane sequential baseline. Prints P50 [P10-P90] and the
    95% confidence interval of the mean, the guide's claim beside them, the most critical tasks and where
    the time goes. The same seed gives the same output.

    \b
    Examples:
      cycleplan simulate scenarios/course-crud.yaml
      cycleplan simulate scenarios/course-crud.yaml --ideal -n 1
      cycleplan simulate scenarios/full-feature.yaml --lanes backend=2 -n 2000 --seed 7 --json
      cycleplan simulate plan.json --dispatch dynamic -o prediction.json
      cycleplan simulate scenarios/payment.yaml --report payment.html
      cycleplan simulate scenarios/full-feature.yaml -n 100000 --engine fast
    """
    from cycleplan.loading import LoadError, load_scenario_or_plan
    from cycleplan.model import Plan
    from cycleplan.sim import DISPATCH_MODES, ENGINES, SimulationError, simulate

    if replications < 1:
        _fail(f"--replications {replications}: must be at least 1")
    if engine not in ENGINES:
        _fail(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if seed < 0:
        _fail(f"--seed {seed}: must be zero or positive")
    if dispatch not in DISPATCH_MODES:
        _fail(f"--dispatch {dispatch}: choose one of {', '.join(DISPATCH_MODES)}")
    plotly_mode = _plotly_mode(plotly_js)
    try:
        loaded = load_scenario_or_plan(file)
    except LoadError as exc:
        _fail(*(str(error) for error in exc.errors), f"{len(exc.errors)} problem(s) in {file}")
    if isinstance(loaded, Plan):
        if lanes:
            _fail("--lanes: changes a scenario's lanes; plan.json is already planned, so pass the scenario")
        the_plan = loaded
    else:
        from cycleplan.planner import plan

        scenario = loaded.with_lanes(_parse_lanes(loaded, lanes)) if lanes else loaded
        the_plan = plan(scenario)

    long_run = not ideal and replications >= PROGRESS_FROM_REPLICATIONS and sys.stderr.isatty()
    try:
        if long_run:
            from rich.console import Console
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as bar:
                job = bar.add_task("simulating", total=replications)
                prediction = simulate(
                    the_plan,
                    replications=replications,
                    seed=seed,
                    dispatch=dispatch,
                    ideal=ideal,
                    engine=engine,
                    progress=lambda done, _total: bar.update(job, completed=done),
                )
        else:
            prediction = simulate(
                the_plan, replications=replications, seed=seed, dispatch=dispatch, ideal=ideal, engine=engine
            )
    except SimulationError as exc:
        if exc.field == "engine":
            _fail(f"--engine {engine}: {str(exc).removeprefix('engine: ')}")
        _fail(f"{file}: {exc}")
    if output is not None:
        _write_atomically(output, prediction.to_json() + "\n")
    if report is not None:
        from cycleplan.report.reports import prediction_report

        _write_report(report, prediction_report(prediction, the_plan), plotly_mode)
    if as_json:
        _emit_json(prediction_summary(prediction))
        return
    from cycleplan.render import render_prediction

    typer.echo(render_prediction(prediction))
    for written in (output, report):
        if written is not None:
            typer.echo(f"wrote {written}")


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
        typer.Option("--output", "-o", metavar="FILE", help="The HTML file to write.", show_default=False),
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

    from cycleplan.loading import LoadError, load_plan

    plotly_mode = _plotly_mode(plotly_js)
    if not file.is_file():
        _fail(
            f"{file}: no such file; give a prediction.json from `simulate -o` or a plan.json from `plan -o`"
        )
    try:
        head = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail(f"{file}: not a JSON file written by cycleplan ({exc})")
    if isinstance(head, dict) and "replications" in head and "config" in head:
        from cycleplan.report.reports import prediction_report
        from cycleplan.sim.prediction import Prediction

        try:
            prediction = Prediction.model_validate(head)
        except ValidationError as exc:
            first = exc.errors()[0]
            place = ".".join(str(part) for part in first["loc"])
            _fail(f"{file}: {place}: {first['msg']} (was it written by `cycleplan simulate -o`?)")
        built = prediction_report(prediction)
    else:
        from cycleplan.report.reports import plan_report

        try:
            built = plan_report(load_plan(file))
        except LoadError as exc:
            _fail(*(str(error) for error in exc.errors))
    _write_report(output, built, plotly_mode)
    typer.echo(f"wrote {output}")


# --------------------------------------------------------------------------------------------------
# execute, runs, export


@app.command("execute")
def execute_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML file, or a plan written by `plan -o plan.json` (not with --resume).",
            show_default=False,
            metavar="FILE|plan.json",
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            "-a",
            help="Who does the work: anthropic (Messages API), claude-code (the CLI, headless), command "
            "(each task's command), emulated (a local imitation of the API; no network, no cost).",
            metavar="anthropic|claude-code|command|emulated",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = STORE_PATH,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue a run that was killed: completed tasks are not run again.",
            metavar="RUN",
            show_default=False,
        ),
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            help="With --agent emulated: scenario minutes per real minute (60: a minute lasts a second).",
            metavar="X",
        ),
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the emulator's draws.", metavar="S")] = 0,
    lanes: ScenarioLanesOption = None,
    worktrees: Annotated[
        bool, typer.Option("--worktrees", help="Give each lane its own git worktree of this repository.")
    ] = False,
    task_timeout: Annotated[
        float | None,
        typer.Option(
            "--task-timeout",
            help="Fail a task whose work takes longer (scenario minutes; a task's timeout_min wins).",
            metavar="MIN",
            show_default=False,
        ),
    ] = None,
    run_timeout: Annotated[
        float | None,
        typer.Option(
            "--run-timeout",
            help="Cancel what is left after this many scenario minutes.",
            metavar="MIN",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", help="max_tokens of each Messages API call.", metavar="N")
    ] = 4096,
    claude: Annotated[
        str, typer.Option("--claude", help="The Claude Code executable (claude-code).", metavar="PATH")
    ] = "claude",
    claude_args: Annotated[
        list[str] | None,
        typer.Option(
            "--claude-arg",
            help="An extra argument for every claude call, e.g. --claude-arg=--permission-mode=acceptEdits.",
            metavar="ARG",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        str,
        typer.Option(
            "--progress",
            help="auto (a live table on a terminal, plain lines otherwise), live, plain or none; on stderr.",
            metavar="MODE",
        ),
    ] = "auto",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a summary as JSON: run_id, status, makespan_min, speedup, ..."),
    ] = False,
) -> None:
    """Run a plan against real agents, durably: every event is committed to the run store first.

    Lanes run side by side as the plan says; waits and emits go through the store; failed cycles are
    retried, failures cancel their dependents, races keep their winner. After a crash or `kill -9`,
    `--resume RUN` finishes the run without redoing completed tasks. Ctrl-C cancels the running agents
    and exits 130. Exit status: 0 complete, 1 failed or timed out, 2 bad input.

    The anthropic agent reads the key from ANTHROPIC_API_KEY only and never writes it anywhere.

    \b
    Examples:
      cycleplan execute scenarios/full-feature.yaml --agent emulated --time-scale 600
      cycleplan execute plan.json --agent claude-code --worktrees
      cycleplan execute my.yaml --agent command --json
      cycleplan execute --resume 20250114-093012-3f9a1c
    """
    from cycleplan.executor import AGENTS, ExecuteOptions, ExecutionError
    from cycleplan.executor import execute as run_plan
    from cycleplan.executor import resume as resume_run
    from cycleplan.executor.summary import render_summary

    if progress not in ("auto", "live", "plain", "none"):
        _fail(f"--progress {progress}: choose one of auto, live, plain, none")
    mode: Literal["auto", "live", "plain", "none"] = progress  # type: ignore[assignment]
    if resume is not None:
        if file is not None or agent is not None or lanes:
            _fail(
                "--resume continues a stored run with its own plan and agent; "
                "leave out FILE, --agent and --lanes"
            )
        try:
            result = resume_run(resume, store=store, progress=mode)
        except ExecutionError as exc:
            _fail(str(exc))
    else:
        if file is None:
            _fail("FILE is missing: give a scenario or plan.json to run, or --resume RUN")
        if agent is None:
            _fail(f"--agent is required: one of {', '.join(AGENTS)} (emulated rehearses offline)")
        if agent not in AGENTS:
            _fail(f"--agent {agent}: choose one of {', '.join(AGENTS)}")
        if not 0 < time_scale <= 1e7:
            _fail(f"--time-scale {time_scale:g}: must be above 0 and at most 10,000,000")
        if seed < 0:
            _fail(f"--seed {seed}: must be zero or positive")
        for name, value in (("--task-timeout", task_timeout), ("--run-timeout", run_timeout)):
            if value is not None and not value > 0:
                _fail(f"{name} {value:g}: must be above 0 minutes")
        if max_tokens < 1:
            _fail(f"--max-tokens {max_tokens}: must be at least 1")
        from cycleplan.loading import LoadError, load_scenario_or_plan
        from cycleplan.model import Plan

        try:
            loaded = load_scenario_or_plan(file)
        except LoadError as exc:
            _fail(*(str(error) for error in exc.errors), f"{len(exc.errors)} problem(s) in {file}")
        if isinstance(loaded, Plan):
            if lanes:
                _fail(
                    "--lanes: changes a scenario's lanes; plan.json is already planned, so pass the scenario"
                )
            the_plan = loaded
        else:
            from cycleplan.planner import plan

            the_plan = plan(loaded.with_lanes(_parse_lanes(loaded, lanes)) if lanes else loaded)
        options = ExecuteOptions(
            agent=agent,
            time_scale=time_scale,
            seed=seed,
            max_output_tokens=max_tokens,
            task_timeout_min=task_timeout,
            run_timeout_min=run_timeout,
            worktrees=worktrees,
            claude_executable=claude,
            claude_args=list(claude_args or []),
        )
        try:
            result = run_plan(the_plan, options, store=store, source=str(file), progress=mode)
        except ExecutionError as exc:
            _fail(str(exc))
    if as_json:
        _emit_json(result.summary)
    else:
        typer.echo(render_summary(result.summary))
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command("runs")
def runs_command(
    store: StoreOption = STORE_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """List the runs in a run store, newest first: id, status, agent, scenario, makespan and cost.

    A run whose executor was killed shows as `stopped`: `cycleplan execute --resume RUN` finishes it.

    \b
    Example:  cycleplan runs --store .cycleplan/runs.db
    """
    import datetime

    from cycleplan.executor import ExecutionError, RunStore, StoreError, is_live
    from cycleplan.executor.clock import format_minutes

    if not store.exists():
        _fail(f"{store}: no run store here yet (cycleplan execute creates it)")
    try:
        runs_store = RunStore(store)
    except (StoreError, ExecutionError) as exc:
        _fail(str(exc))
    with runs_store:
        rows = []
        for record in runs_store.runs():
            status = record.status
            if status == "running" and not is_live(runs_store, record.run_id):
                status = "stopped"
            summary = record.summary or {}
            rows.append(
                {
                    "run_id": record.run_id,
                    "status": status,
                    "agent": record.agent,
                    "scenario": record.scenario,
                    "source": record.source,
                    "created": datetime.datetime.fromtimestamp(record.created_ms / 1000).isoformat(
                        timespec="seconds"
                    ),
                    "makespan_min": summary.get("makespan_min"),
                    "cost_usd": summary.get("cost_usd"),
                }
            )
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        typer.echo(f"{store}: no runs yet")
        return
    typer.echo(
        f"{'run':<24} {'status':<12} {'agent':<12} {'created':<20} {'makespan':>12} {'cost':>10}  scenario"
    )
    for row in rows:
        makespan = "" if row["makespan_min"] is None else format_minutes(float(row["makespan_min"]))
        cost = "" if row["cost_usd"] is None else f"${row['cost_usd']:,.4f}"
        typer.echo(
            f"{row['run_id']:<24} {row['status']:<12} {row['agent']:<12} {row['created']:<20} "
            f"{makespan:>12} {cost:>10}  {row['scenario'] or row['source']}"
        )


@app.command("export")
def export_command(
    run: Annotated[str, typer.Argument(help="The run's id (see `cycleplan runs`).", metavar="RUN")],
    store: StoreOption = STORE_PATH,
    format_: Annotated[
        str, typer.Option("--format", "-f", help="jsonl: one event a line, in order.", metavar="FORMAT")
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write to a file instead of stdout.", show_default=False
        ),
    ] = None,
) -> None:
    """Write a run's trace: its events in order, with the ONE platform's field names.

    Times are as recorded (epoch milliseconds; a time-scaled rehearsal's run_started says its scale).

    \b
    Example:  cycleplan export 20250114-093012-3f9a1c --format jsonl -o trace.jsonl
    """
    from cycleplan.executor import RunStore, StoreError, export_jsonl

    if format_ != "jsonl":
        _fail(f"--format {format_}: only jsonl is supported")
    if not store.exists():
        _fail(f"{store}: no run store here (pass --store PATH)")
    try:
        with RunStore(store) as runs_store:
            lines = list(export_jsonl(runs_store, run))
    except StoreError as exc:
        _fail(str(exc))
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(output, text)
        typer.echo(f"wrote {len(lines)} events to {output}", err=True)


# --------------------------------------------------------------------------------------------------
# import, calibrate

import_app = typer.Typer(
    name="import",
    help=(
        "Read a run done elsewhere into the run store, as a complete run like an executed one.\n\n"
        "One sub-command per KIND of record: claude-code (Claude Code transcripts) and one-state (the ONE "
        "platform's cycle state file). Each import synthesises the scenario and plan the work corresponds "
        "to, so that the run can be compared and calibrated from. Warnings go to stderr; unusable input "
        "exits 2 and stores nothing.\n\n"
        "\b\n"
        "Examples:\n"
        "  cycleplan import claude-code ~/.claude/projects/-home-me-my-app\n"
        "  cycleplan import one-state .claude/state/cycle.json --idle-minutes 45"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
"""``cycleplan import KIND``: one command per kind of record; add a kind with ``@import_app.command``."""
app.add_typer(import_app, name="import")

if TYPE_CHECKING:
    from cycleplan.importers import ImportedRun


def _store_imported(imported: ImportedRun, store: Path, as_json: bool) -> None:
    """Print an import's warnings, write the run, and say what was stored."""
    from cycleplan.executor.clock import format_minutes
    from cycleplan.executor.store import StoreError
    from cycleplan.importers import store_run

    for warning in imported.warnings:
        where = warning.file
        if warning.line is not None:
            where = f"{where}:{warning.line}:{warning.column or 1}"
        field = f"{warning.field}: " if warning.field else ""
        typer.echo(f"{where}: warning: {field}{warning.message}", err=True)
    try:
        run_id, summary = store_run(imported, store)
    except StoreError as exc:
        _fail(str(exc), "nothing was imported")
    if as_json:
        _emit_json(summary | {"warnings": [str(warning) for warning in imported.warnings]})
        return
    roles: dict[str, int] = {}
    for task in imported.scenario.all_tasks():
        roles[task.role] = roles.get(task.role, 0) + 1
    cycles = sum(1 for event in imported.trace if event.action == "cycle_completed")
    lanes = len({event.actor_id for event in imported.trace if event.action == "task_started"})
    typer.echo(f"imported run {run_id} ({imported.kind}, {imported.status}) from {imported.source}")
    typer.echo(
        f"  tasks      {sum(roles.values())} ({', '.join(f'{n} {role}' for role, n in roles.items())}) "
        f"on {lanes} lane(s); {cycles} cycles"
    )
    makespan, work = format_minutes(summary["makespan_min"]), format_minutes(summary["sequential_min"])
    typer.echo(f"  makespan   {makespan}; work {work}")
    typer.echo(f"  tokens     {summary['tokens_total']:,}    cost ${summary['cost_usd']:,.4f}")
    if imported.warnings:
        typer.echo(f"  warnings   {len(imported.warnings)} (on stderr)")
    typer.echo(f"  next       cycleplan calibrate {run_id} -o calibrated.yaml")


@import_app.command("claude-code")
def import_claude_code_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="A session file (<id>.jsonl, with its <id>/subagents/ beside it), a session folder, a "
            "subagent file, or a whole project folder under ~/.claude/projects/.",
            show_default=False,
            metavar="PATH",
        ),
    ],
    store: StoreOption = STORE_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored run's summary as JSON.")] = False,
) -> None:
    """Import Claude Code transcripts: one task per session or subagent, one cycle per user-prompt turn.

    Sessions and subagents that overlap in time run on parallel lanes. Usage is counted once per API
    response (message id + request id); internal compaction sessions are marked, not counted as work.

    \b
    Examples:
      cycleplan import claude-code ~/.claude/projects/-home-me-my-app
      cycleplan import claude-code ~/.claude/projects/-home-me-my-app/3f2a...jsonl --json
    """
    from cycleplan.importers import TraceImportError, import_claude_code

    try:
        imported = import_claude_code(path.expanduser())
    except TraceImportError as exc:
        _fail(*(str(error) for error in exc.errors), "nothing was imported")
    _store_imported(imported, store, as_json)


@import_app.command("one-state")
def import_one_state_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="The ONE cycle state file (.claude/state/cycle.json).", show_default=False, metavar="FILE"
        ),
    ],
    idle_minutes: Annotated[
        float,
        typer.Option(
            "--idle-minutes",
            help="A gap between two cycles longer than this is idle time, not work.",
            metavar="MIN",
        ),
    ] = 60.0,
    store: StoreOption = STORE_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored run's summary as JSON.")] = False,
) -> None:
    """Import the ONE platform's cycle state file as a run of the one-100 template.

    Cycles map to one-100's tasks (cycles 11-20 are backend's), done one after the other on one lane.
    Repeated entries count once; gaps longer than --idle-minutes are flagged as idle, not work; text
    after the JSON object is ignored with a warning.

    \b
    Example:  cycleplan import one-state .claude/state/cycle.json
    """
    from cycleplan.importers import TraceImportError, import_one_state

    if not 0 < idle_minutes <= 1e6:
        _fail(f"--idle-minutes {idle_minutes:g}: must be above 0")
    try:
        imported = import_one_state(path.expanduser(), idle_after_min=idle_minutes)
    except TraceImportError as exc:
        _fail(*(str(error) for error in exc.errors), "nothing was imported")
    _store_imported(imported, store, as_json)


@import_app.command("psplib")
def import_psplib_command(
    file: Annotated[
        Path,
        typer.Argument(help="A PSPLIB single-mode instance (.sm).", show_default=False, metavar="FILE.sm"),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Scenario YAML to write (default: stdout).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Turn a PSPLIB scheduling instance into a scenario: each job a task needing units of the
    renewable resources, durations in one-minute cycles.

    PSPLIB is the standard benchmark of resource-constrained project scheduling, with proven optima:
    plan the scenario to see how close the planner gets.

    \b
    Examples:
      cycleplan import psplib j301_1.sm -o j301_1.yaml
      cycleplan import psplib j301_1.sm | cycleplan plan /dev/stdin
    """
    from cycleplan.psplib import PsplibError, psplib_to_scenario, scenario_yaml

    if not file.is_file():
        _fail(f"{file}: no such file")
    try:
        text = scenario_yaml(psplib_to_scenario(file))
    except PsplibError as exc:
        _fail(f"{file}: {exc}")
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write_atomically(output, text)
        typer.echo(f"wrote {output}; next: cycleplan plan {output}")


@app.command("calibrate")
def calibrate_command(
    runs: Annotated[
        list[str],
        typer.Argument(help="Runs to fit from (see `cycleplan runs`).", metavar="RUN", show_default=False),
    ],
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            help="The scenario to calibrate (its values are the prior); default: the first run's own.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the calibrated scenario here (YAML).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    prior_weight: Annotated[
        float,
        typer.Option(
            "--prior-weight", help="How many observed cycles the scenario's values count for.", metavar="W"
        ),
    ] = 5.0,
    role_map: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Fit the runs' role FROM as the scenario's role TO, e.g. --role main=backend; repeatable.",
            metavar="FROM=TO",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = STORE_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fits as JSON.")] = False,
) -> None:
    """Fit each role's cycle duration, tokens per cycle and failure rate from runs, against a prior.

    Durations: lognormal, maximum likelihood, with the scenario's median and p90 as a prior worth
    --prior-weight cycles. Prints each value before and after, with its posterior sd and 90% interval,
    and writes the scenario with the fitted values in place (comments of the original are not kept).

    \b
    Examples:
      cycleplan calibrate 20250114-093012-3f9a1c -o calibrated.yaml
      cycleplan calibrate RUN1 RUN2 --scenario my.yaml --prior-weight 10 --role main=backend -o my-fit.yaml
    """
    import math

    from cycleplan.calibration import CalibrationError, calibrate_runs, calibrated_yaml, render_calibration

    if not 0 <= prior_weight <= 1e9 or math.isnan(prior_weight):
        _fail(f"--prior-weight {prior_weight:g}: must be zero (no prior) or more")
    renames: dict[str, str] = {}
    for spec in role_map or []:
        source, sep, target = spec.partition("=")
        if not sep or not source or not target:
            _fail(f"--role {spec}: write FROM=TO, e.g. --role main=backend")
        renames[source] = target
    prior = _load(scenario) if scenario is not None else None
    try:
        calibration = calibrate_runs(store, runs, prior, prior_weight, renames)
        text = None
        if output is not None:
            original = scenario.read_text(encoding="utf-8") if scenario is not None else None
            text = calibrated_yaml(calibration, original, str(output))
    except CalibrationError as exc:
        _fail(str(exc))
    if as_json:
        _emit_json(
            {
                "runs": calibration.runs,
                "prior_weight": calibration.prior_weight,
                "roles": {name: fit.model_dump(mode="json") for name, fit in calibration.roles.items()},
                "notes": calibration.notes,
                "written": None if output is None else str(output),
            }
        )
    else:
        typer.echo(render_calibration(calibration))
    if output is not None and text is not None:
        _write_atomically(output, text)
        kept = " (the original's comments are not kept)" if scenario is not None else ""
        typer.echo(f"wrote {output}{kept}", err=as_json)


# --------------------------------------------------------------------------------------------------
# sweep


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
        typer.Option(
            "--report", metavar="FILE", help="Write an interactive HTML report.", show_default=False
        ),
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
        _fail(f"--replications {replications}: must be at least 1")
    if seed < 0:
        _fail(f"--seed {seed}: must be zero or positive")
    if engine not in ENGINES:
        _fail(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if dispatch not in DISPATCH_MODES:
        _fail(f"--dispatch {dispatch}: choose one of {', '.join(DISPATCH_MODES)}")
    if workers is not None and workers < 1:
        _fail(f"--workers {workers}: must be at least 1")
    plotly_mode = _plotly_mode(plotly_js)
    try:
        counts = parse_lanes(lanes)
    except SweepError as exc:
        _fail(f"--lanes {lanes}: {str(exc).removeprefix('lanes: ')}")
    scenario = _load(file)
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
        _fail(f"{option.get(exc.field, '--' + exc.field)}: {str(exc).split(': ', 1)[1]}")
    except SimulationError as exc:
        if exc.field == "engine":
            _fail(f"--engine {engine}: {str(exc).removeprefix('engine: ')}")
        _fail(f"{file}: {exc}")
    finally:
        if close is not None:
            close()
    if report is not None:
        from cycleplan.report.reports import sweep_report

        _write_report(report, sweep_report(result), plotly_mode)
    if as_json:
        data = result.model_dump(mode="json", exclude={"runtime_s", "backend", "workers"})
        for configuration in data["configurations"]:
            configuration.pop("runtime_s")
        _emit_json(data)
        return
    typer.echo(render_sweep(result))
    if report is not None:
        typer.echo(f"\nwrote {report}")


# --------------------------------------------------------------------------------------------------
# compare


@app.command("compare")
def compare_command(
    run: Annotated[str, typer.Argument(help="The run's id (see `cycleplan runs`).", metavar="RUN")],
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
    seed: Annotated[
        int, typer.Option("--seed", "-s", help="Seed of the simulation without --prediction.", metavar="S")
    ] = 0,
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
        typer.Option(
            "--report",
            metavar="FILE",
            help="Write an interactive HTML report (the actual run drawn over the predicted bands).",
            show_default=False,
        ),
    ] = None,
    plotly_js: PlotlyJsOption = "embed",
) -> None:
    """Hold a run against its prediction: where its makespan, speedup, tokens and cost fall, and why.

    Per task: predicted P10/P50/P90 start, finish and duration against the actual. For the run: the
    actual makespan, speedup, tokens, cost and utilization, each with its percentile in the predicted
    distribution (the share of replications at or below it). Ends with a verdict naming the largest
    source of error. Without --prediction the run's own plan and scenario are simulated. Works on
    executed and imported runs alike.

    The actual speedup is the run's own work summed as one lane would run it in plan order (every cycle
    attempt's work and handoff, failed attempts included, race losers left out, no waiting) over its
    makespan; the predicted speedup is the simulator's one-lane baseline on the same draws over the
    makespan, the same sum unless a lone lane is held by rate limits.

    \b
    Examples:
      cycleplan compare 20250114-093012-3f9a1c
      cycleplan compare 20250114-093012-3f9a1c --prediction prediction.json --json
      cycleplan compare 20250114-093012-3f9a1c -n 2000 --report compare.html
    """
    from pydantic import ValidationError

    from cycleplan.comparison import ComparisonError, compare_run, render_comparison, summary_json

    if replications < 1:
        _fail(f"--replications {replications}: must be at least 1")
    if seed < 0:
        _fail(f"--seed {seed}: must be zero or positive")
    plotly_mode = _plotly_mode(plotly_js)
    given = None
    if prediction is not None:
        from cycleplan.sim.prediction import Prediction

        try:
            given = Prediction.model_validate_json(prediction.read_bytes())
        except OSError as exc:
            _fail(f"{prediction}: cannot read: {exc.strerror or exc}")
        except ValidationError as exc:
            first = exc.errors()[0]
            place = ".".join(str(part) for part in first["loc"]) or "(file)"
            _fail(f"{prediction}: {place}: {first['msg']} (was it written by `cycleplan simulate -o`?)")
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
        _fail(str(exc))
    if report is not None:
        from cycleplan.report.reports import comparison_report

        _write_report(report, comparison_report(comparison), plotly_mode)
    if as_json:
        _emit_json(summary_json(comparison))
        return
    typer.echo(render_comparison(comparison))
    if report is not None:
        typer.echo(f"wrote {report}")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
