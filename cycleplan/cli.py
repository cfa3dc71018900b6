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
        str, typer.Option("--algorithm", "-a", help="list or sequential.", metavar="NAME")
    ] = "list",
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
    plotly_js: Annotated[
        str, typer.Option("--plotly-js", metavar="HOW", help="embed (works offline) or cdn (small file).")
    ] = "embed",
) -> None:
    """Map a scenario's tasks onto lanes: start and finish of every task, critical path, speedup.

    Times are in expected minutes (each cycle at its role's nominal duration) and in wall cycles.

    \b
    Examples:
      cycleplan plan scenarios/course-crud.yaml
      cycleplan plan scenarios/full-feature.yaml --lanes backend=2 --json
      cycleplan plan my.yaml -o plan.json --report plan.html
    """
    from cycleplan.planner import ALGORITHMS, RULES, plan

    if algorithm not in ALGORITHMS:
        _fail(f"--algorithm {algorithm}: choose one of {', '.join(ALGORITHMS)}")
    if rule is not None and rule not in RULES:
        _fail(f"--rule {rule}: choose one of {', '.join(RULES)}")
    scenario = _load(file)
    if lanes:
        scenario = scenario.with_lanes(_parse_lanes(scenario, lanes))
    plotly_mode = _plotly_mode(plotly_js)
    result = plan(scenario, algorithm=algorithm, rule=rule)
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


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
