"""Commands on scenario files: ``validate``, ``plan``, ``schema``, ``templates`` and ``init``.

Also :func:`plan_summary`, the JSON that ``plan --json`` prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cycleplan.cli.common import (
    EXIT_BAD_INPUT,
    LANES_METAVAR,
    PlotlyJsOption,
    command_app,
    deprecated,
    detail,
    emit_json,
    fail,
    load_scenario_file,
    note,
    output_option,
    parse_lanes_option,
    plotly_js_mode,
    report_option,
    say,
    show_result,
    write_atomically,
    write_report,
)
from cycleplan.core.wording import counted

if TYPE_CHECKING:
    from cycleplan.core.model import Plan
    from cycleplan.present.terminal import Verbosity, View

app = command_app()


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False, metavar="FILE")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a scenario file and report every problem with its line and field.

    Exit status 0 when valid, 2 with one line per problem (FILE:LINE:COL: field: what is wrong).

    \b
    Example:  cycleplan validate scenarios/course-crud.yaml
    """
    from cycleplan.core.loading import LoadError, load_scenario

    try:
        scenario = load_scenario(file)
    except LoadError as exc:
        if as_json:
            emit_json(
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
        fail(*(str(error) for error in exc.errors), f"{counted(len(exc.errors), 'problem')} in {file}")
    tasks = scenario.all_tasks()
    roles = scenario.role_names()
    lanes = sum(scenario.role(role).lanes for role in roles)
    if as_json:
        emit_json(
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
    say(
        f"{file}: valid: {counted(len(tasks), 'task')}, {counted(sum(t.cycles for t in tasks), 'cycle')}, "
        f"{counted(len(roles), 'role')}, {counted(lanes, 'lane')}{source}"
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


def plan_file_text(plan: Plan, output: Path) -> str:
    """What ``plan -o`` writes: indented JSON, or JSON on one line when indenting would take it past
    the largest plan file ``simulate`` and ``execute`` read; a plan too big even so is refused (exit 2)."""
    from cycleplan.core.reading import MAX_PLAN_BYTES

    text = plan.model_dump_json(indent=1)
    if len(text.encode("utf-8")) <= MAX_PLAN_BYTES:
        return text
    text = plan.model_dump_json()
    size = len(text.encode("utf-8"))
    if size > MAX_PLAN_BYTES:
        tasks, lanes = len(plan.scenario.all_tasks()), len(plan.lanes)
        fail(
            f"{output}: not written: the plan takes {size:,} bytes ({counted(tasks, 'task')}, "
            f"{counted(lanes, 'lane')}), more than the {MAX_PLAN_BYTES:,} bytes simulate and execute read; "
            "plan fewer tasks or fewer lanes at a time"
        )
    return text


@app.command("plan")
def plan_command(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False, metavar="FILE")],
    algorithm: Annotated[
        str,
        typer.Option(
            "--algorithm",
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
            help="Lanes of ROLE, ROLE=N, or of every role, N; repeat for several roles.",
            metavar=LANES_METAVAR,
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan's numbers and lanes as JSON.")
    ] = False,
    output: Annotated[
        Path | None,
        output_option("Write the whole plan (with its scenario) as JSON, for `simulate` and `execute`."),
    ] = None,
    report: Annotated[
        Path | None,
        report_option("Write an interactive HTML report (Gantt chart)."),
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
        typer.Option("--seed", "-s", metavar="S", help="improve: seed of the search.", show_default=False),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            metavar="N",
            help="cpsat: solver threads (default one per core, at most 8).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", metavar="N", hidden=True, help="Deprecated: --threads.", show_default=False
        ),
    ] = None,
) -> None:
    """Map a scenario's tasks onto lanes: start and finish of every task, critical path, speedup.

    Times are in expected minutes (each cycle at its role's nominal duration) and in wall cycles.

    \b
    Examples:
      cycleplan plan scenarios/course-crud.yaml
      cycleplan plan scenarios/full-feature.yaml --lanes backend=2 --json
      cycleplan plan my.yaml -o plan.json --report plan.html
      cycleplan plan big.yaml --algorithm cpsat --time-limit 30 --threads 4
    """
    import time

    from cycleplan.planner import ALGORITHMS, OPTIONS, RULES, plan
    from cycleplan.planner.cpsat import MissingExtraError

    if workers is not None:
        deprecated(f"plan --workers {workers}", f"--threads {workers}")
        threads = workers if threads is None else threads
    if algorithm not in ALGORITHMS:
        fail(f"--algorithm {algorithm}: choose one of {', '.join(ALGORITHMS)}")
    if rule is not None and rule not in RULES:
        fail(f"--rule {rule}: choose one of {', '.join(RULES)}")
    for option, value, low in (("--schedules", schedules, 1), ("--threads", threads, 1), ("--seed", seed, 0)):
        if value is not None and value < low:
            fail(f"{option} {value}: must be at least {low}")
    if time_limit is not None and not time_limit > 0:
        fail(f"--time-limit {time_limit}: must be a positive number of seconds")
    options = {"schedules": schedules, "time_limit_s": time_limit, "seed": seed, "workers": threads}
    given = {name: value for name, value in options.items() if value is not None}
    unsupported = sorted(set(given) - OPTIONS[algorithm])
    if unsupported:
        flags = {
            "schedules": "--schedules",
            "time_limit_s": "--time-limit",
            "seed": "--seed",
            "workers": "--threads",
        }
        fail(f"{', '.join(flags[name] for name in unsupported)}: not an option of --algorithm {algorithm}")
    scenario = load_scenario_file(file)
    if lanes:
        scenario = scenario.with_lanes(parse_lanes_option(scenario, lanes))
    plotly_mode = plotly_js_mode(plotly_js)
    began = time.perf_counter()
    try:
        result = plan(scenario, algorithm=algorithm, rule=rule, **given)
    except MissingExtraError as exc:
        fail(str(exc))
    detail(f"planned in {time.perf_counter() - began:.2f} s")
    if output is not None:
        write_atomically(output, plan_file_text(result, output))
    if report is not None:
        from cycleplan.present.report.reports import plan_report

        write_report(report, plan_report(result), plotly_mode)

    def view(verbosity: Verbosity) -> View:
        from cycleplan.present.render import plan_view

        return plan_view(result, verbosity)

    show_result(as_json, lambda: plan_summary(result), view, output, report)


@app.command("schema")
def schema(
    output: Annotated[
        Path | None,
        output_option("Write to a file instead of stdout."),
    ] = None,
) -> None:
    """Print the JSON Schema of the scenario format, for editors (YAML language servers).

    \b
    Example:  cycleplan schema -o cycleplan.schema.json
    """
    from cycleplan.core.model import Scenario

    text = json.dumps(Scenario.model_json_schema(), indent=2)
    if output is None:
        say(text)
    else:
        write_atomically(output, text + "\n")
        note(f"wrote {output}")


@app.command("templates")
def templates(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the built-in templates a scenario can name with `template: NAME`.

    \b
    Example:  cycleplan templates
    """
    from cycleplan.core.templates import TEMPLATES

    if as_json:
        emit_json(
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
        say(f"{template.name}  ({counted(template.cycles, 'cycle')}, {counted(len(template.tasks), 'task')})")
        say(f"  {template.description}")
        for task in template.tasks:
            span = task.template_cycles or (0, 0)
            after = f"  after {', '.join(task.after)}" if task.after else ""
            sync = "".join(f"  emits {e} after cycle {c}" for e, c in task.emits.items())
            sync += "".join(f"  waits {e} before cycle {c}" for e, c in task.waits.items())
            say(f"    {span[0]:>3}-{span[1]:<3} {task.id:<12} {task.role:<12}{after}{sync}".rstrip())


@app.command("init")
def init(
    name: Annotated[
        str,
        typer.Argument(
            help="Name of the new scenario; written to NAME.yaml (a NAME ending in .yaml names the file).",
            show_default=False,
            metavar="NAME",
        ),
    ],
    template: Annotated[
        str,
        typer.Option("--template", "-t", help="The starter's template: one-100 or blank.", metavar="NAME"),
    ] = "one-100",
    output: Annotated[
        Path | None,
        output_option("File to write (default NAME.yaml)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter scenario to edit.

    \b
    Examples:
      cycleplan init my-feature                 # one-100 template with every knob explained
      cycleplan init api-sprint --template blank
    """
    from cycleplan.core.starter import STARTERS, starter_text

    if template not in STARTERS:
        fail(f"--template {template}: choose one of {', '.join(STARTERS)}")
    given = Path(name)
    if given.suffix in (".yaml", ".yml"):
        name, target = given.stem, output or given
    else:
        target = output or Path(f"{name}.yaml")
    if target.exists() and not force:
        fail(f"{target}: already exists; choose another name or pass --force to overwrite")
    write_atomically(target, starter_text(template, name))
    note(f"wrote {target}; next: cycleplan plan {target}")
