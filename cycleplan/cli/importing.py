"""``cycleplan import KIND``: read work done elsewhere (Claude Code transcripts, the ONE platform's
cycle state) into the run store, or a PSPLIB instance into a scenario; one sub-command per kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cycleplan.cli.common import (
    STORE_PATH,
    StoreOption,
    emit_json,
    fail,
    note,
    output_option,
    say,
    write_atomically,
)
from cycleplan.core.wording import SEQUENTIAL_BASELINE, counted

if TYPE_CHECKING:
    from cycleplan.workflows.importers import ImportedRun

app = typer.Typer(
    name="import",
    help=(
        "Read a run done elsewhere into the run store, as a complete run like an executed one.\n\n"
        "One sub-command per KIND of record: claude-code (Claude Code transcripts), otel (Claude Code's "
        "OpenTelemetry, OTLP/JSON) and one-state (the ONE platform's cycle state file). Each import "
        "synthesises the scenario and plan the work corresponds to, so that the run can be compared and "
        "calibrated from. Warnings go to stderr; unusable input exits 2 and stores nothing.\n\n"
        "\b\n"
        "Examples:\n"
        "  cycleplan import claude-code ~/.claude/projects/-home-me-my-app\n"
        "  cycleplan import otel otel-logs.jsonl\n"
        "  cycleplan import one-state .claude/state/cycle.json --idle-minutes 45"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
"""``cycleplan import KIND``: one command per kind of record; add a kind with ``@app.command``."""


def _store_imported(imported: ImportedRun, store: Path, as_json: bool) -> None:
    """Print an import's warnings, write the run, and say what was stored."""
    from cycleplan.core.wording import minutes
    from cycleplan.store.runs import StoreError
    from cycleplan.workflows.importers import store_run

    for warning in imported.warnings:
        where = warning.file
        if warning.line is not None:
            where = f"{where}:{warning.line}:{warning.column or 1}"
        field = f"{warning.field}: " if warning.field else ""
        say(f"{where}: warning: {field}{warning.message}", err=True)
    try:
        run_id, summary = store_run(imported, store)
    except StoreError as exc:
        fail(str(exc), "nothing was imported")
    if as_json:
        emit_json(summary | {"warnings": [str(warning) for warning in imported.warnings]})
        return
    roles: dict[str, int] = {}
    for task in imported.scenario.all_tasks():
        roles[task.role] = roles.get(task.role, 0) + 1
    cycles = sum(1 for event in imported.trace if event.action == "cycle_completed")
    lanes = len({event.actor_id for event in imported.trace if event.action == "task_started"})
    say(f"imported run {run_id} ({imported.kind}, {imported.status}) from {imported.source}")
    say(
        f"  tasks      {sum(roles.values())} ({', '.join(f'{n} {role}' for role, n in roles.items())}) "
        f"on {counted(lanes, 'lane')}; {counted(cycles, 'cycle')}"
    )
    details = imported.details
    makespan = minutes(summary["makespan_min"])
    baseline = f"{SEQUENTIAL_BASELINE} {minutes(summary['sequential_min'])}"
    if "wall_min" in details:
        say(f"  makespan   {makespan} of agent time (wall {minutes(details['wall_min'])}); {baseline}")
        if "person_waits_min" in details:
            causes = ", ".join(f"{cause} {minutes(m)}" for cause, m in details["person_waits_min"].items())
            say(
                f"  waiting    on a person {minutes(details['person_wait_min'])}"
                + (f" ({causes})" if causes else "")
                + f"; idle between turns {minutes(details['idle_min'])}; "
                f"blocked on subagents {minutes(details['blocked_min'])}"
            )
        else:
            say(
                f"  idle       {minutes(details.get('idle_min', 0.0))} in "
                f"{counted(details.get('idle_cycles', 0), 'gap')}, out of the makespan"
            )
    else:
        say(f"  makespan   {makespan}; {baseline}")
    if details.get("tokens_recorded", True):
        calls = (
            f"    {counted(details['calls'], 'call')}, {counted(details['compaction_calls'], 'compaction')}"
            if "calls" in details
            else ""
        )
        say(f"  tokens     {summary['tokens_total']:,}    cost ${summary['cost_usd']:,.4f}{calls}")
    else:
        say("  tokens     not recorded by this source")
    if imported.warnings:
        note(f"  warnings   {len(imported.warnings)} (on stderr)")
    note(f"  next       cycleplan calibrate {run_id} -o calibrated.yaml")


@app.command("claude-code")
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

    Sessions that overlap run on parallel lanes; a subagent runs beside the session that launched it,
    which is blocked meanwhile. Usage is counted once per API response (message id + request id),
    compaction calls included. Time is agent time: waits on the person (questions, plan approvals,
    refused permissions, long idle gaps) and the time between turns are left out, and shown beside.

    \b
    Examples:
      cycleplan import claude-code ~/.claude/projects/-home-me-my-app
      cycleplan import claude-code ~/.claude/projects/-home-me-my-app/3f2a...jsonl --json
    """
    from cycleplan.workflows.importers import TraceImportError, import_claude_code

    try:
        imported = import_claude_code(path.expanduser())
    except TraceImportError as exc:
        fail(*(str(error) for error in exc.errors), "nothing was imported")
    _store_imported(imported, store, as_json)


@app.command("otel")
def import_otel_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="An OTLP/JSON file (one export request, or JSON Lines of them, as a collector's file "
            "exporter or `cycleplan otel receive` writes), or a folder of such files.",
            show_default=False,
            metavar="FILE|DIR",
        ),
    ],
    store: StoreOption = STORE_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored run's summary as JSON.")] = False,
) -> None:
    """Import Claude Code's OpenTelemetry (OTLP/JSON logs, and traces where present) as transcripts are.

    Each session becomes a task and each prompt a turn; calls are counted per turn from the api_request
    events (tokens, cache reads and writes, model), waits on the person are cut out, and a subagent runs
    beside the session that launched it. Claude Code sends these with CLAUDE_CODE_ENABLE_TELEMETRY=1 and
    OTEL_LOGS_EXPORTER=otlp; `cycleplan otel receive` takes them in as they come.

    \b
    Examples:
      cycleplan import otel otel-logs.jsonl
      cycleplan import otel collector-output/ --json
    """
    from cycleplan.workflows.importers import TraceImportError
    from cycleplan.workflows.importers.otel import import_otel

    try:
        imported = import_otel(path.expanduser())
    except TraceImportError as exc:
        fail(*(str(error) for error in exc.errors), "nothing was imported")
    _store_imported(imported, store, as_json)


@app.command("one-state")
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
    from cycleplan.workflows.importers import TraceImportError, import_one_state

    if not 0 < idle_minutes <= 1e6:
        fail(f"--idle-minutes {idle_minutes:g}: must be above 0")
    try:
        imported = import_one_state(path.expanduser(), idle_after_min=idle_minutes)
    except TraceImportError as exc:
        fail(*(str(error) for error in exc.errors), "nothing was imported")
    _store_imported(imported, store, as_json)


@app.command("psplib")
def import_psplib_command(
    file: Annotated[
        Path,
        typer.Argument(help="A PSPLIB single-mode instance (.sm).", show_default=False, metavar="FILE.sm"),
    ],
    output: Annotated[
        Path | None,
        output_option("Scenario YAML to write (default: stdout)."),
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
    from cycleplan.workflows.psplib import PsplibError, psplib_to_scenario, scenario_yaml

    try:
        text = scenario_yaml(psplib_to_scenario(file))
    except PsplibError as exc:
        message = str(exc)
        fail(message if message.startswith(str(file)) else f"{file}: {message}")
    if output is None:
        say(text, nl=False)
    else:
        write_atomically(output, text)
        note(f"wrote {output}; next: cycleplan plan {output}")
