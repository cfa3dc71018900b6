"""The ``cycleplan`` command: the root app, the commands it has and where each one lives, and ``main``.

The CLI is the only part of cycleplan that imports typer. Each command lives in the module of its concept
(``scenario``, ``simulate``, ``execute``, ``runs``, ``importing``, ``calibrate``, ``sweep``, ``optimize``,
``compare``; shared helpers and options in ``common``) and is imported only when it runs or shows its
own help, so that ``cycleplan --help`` imports none of them (see :mod:`cycleplan.cli.lazy`). Library
errors and bad options become messages on stderr and exit status 2 in those modules; no traceback
reaches the user for bad input. Heavy libraries are imported inside the commands that need them.

To add a command: write it on the ``app`` of its module and add a line to :data:`COMMANDS` with its short
help (the first sentence of its docstring; the tests check that the two agree).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer import _click
from typer.core import TyperGroup

from cycleplan import __version__
from cycleplan.cli.lazy import LazyCommand, LazyGroup
from cycleplan.cli.verbosity import QuietOption, VerboseOption, output_options

_SCENARIO = "cycleplan.cli.scenario"
_SIMULATE = "cycleplan.cli.simulate"
_EXECUTE = "cycleplan.cli.execute"

COMMANDS: dict[str, LazyCommand] = {
    "validate": LazyCommand(
        _SCENARIO, "app", "Check a scenario file and report every problem with its line and field."
    ),
    "plan": LazyCommand(
        _SCENARIO,
        "app",
        "Map a scenario's tasks onto lanes: start and finish of every task, critical path, speedup.",
    ),
    "schema": LazyCommand(
        _SCENARIO, "app", "Print the JSON Schema of the scenario format, for editors (YAML language servers)."
    ),
    "templates": LazyCommand(
        _SCENARIO, "app", "List the built-in templates a scenario can name with `template: NAME`."
    ),
    "init": LazyCommand(_SCENARIO, "app", "Write a commented starter scenario to edit."),
    "simulate": LazyCommand(
        _SIMULATE, "app", "Predict speedup, makespan, tokens, cost and utilization with error bars."
    ),
    "report": LazyCommand(
        _SIMULATE, "app", "Turn a saved prediction or plan into an interactive HTML report."
    ),
    "execute": LazyCommand(
        _EXECUTE,
        "app",
        "Run a plan against real agents, durably: every event is committed to the run store first.",
    ),
    "runs": LazyCommand(
        "cycleplan.cli.runs",
        "app",
        "List the runs in a run store, newest first, with their tokens and cost; or remove runs.",
    ),
    "status": LazyCommand(
        "cycleplan.cli.status",
        "app",
        "Show where a run stands and its latest forecast of finish time and cost.",
    ),
    "export": LazyCommand(
        _EXECUTE,
        "app",
        "Write a run's trace: its events in order, with the ONE platform's field names, or its spans.",
    ),
    "calibrate": LazyCommand(
        "cycleplan.cli.calibrate",
        "app",
        "Fit each role's cycle duration, tokens per cycle and failure rate from runs, against a prior.",
    ),
    "sweep": LazyCommand(
        "cycleplan.cli.sweep",
        "app",
        "Compare lane counts (and planners): speedup, makespan, cost, utilization, and a recommendation.",
    ),
    "optimize": LazyCommand(
        "cycleplan.cli.optimize",
        "app",
        "Choose lanes and a model per role: the least P90 makespan within a budget, or least cost by a "
        "deadline.",
    ),
    "compare": LazyCommand(
        "cycleplan.cli.compare",
        "app",
        "Hold a run against its prediction: where its makespan, speedup, tokens and cost fall, and why.",
    ),
    "backtest": LazyCommand(
        "cycleplan.cli.backtest",
        "app",
        "Predict each run from the others (leave one out): how far can I trust a calibrated prediction?",
    ),
    "import": LazyCommand(
        "cycleplan.cli.importing",
        "app",
        "Read a run done elsewhere into the run store, as a complete run like an executed one.",
    ),
    "otel": LazyCommand(
        "cycleplan.cli.otel",
        "app",
        "Take in OpenTelemetry as it arrives: Claude Code's telemetry becomes runs in the run store.",
    ),
}
"""Every command of ``cycleplan``, in the order of ``cycleplan --help``: its module, the typer app there
that holds it, and its short help."""


class CycleplanGroup(LazyGroup):
    """The root group: the commands of :data:`COMMANDS`, each imported when asked for, each given
    ``--quiet`` and ``--verbose`` (:mod:`cycleplan.cli.verbosity`) as it loads."""

    registry = COMMANDS

    def prepare(self, command: _click.Command) -> None:
        commands: list[_click.Command] = [command]
        if isinstance(command, TyperGroup):
            # A group that also acts alone (`runs` lists) takes them too; one that only groups does not.
            commands = [*([command] if command.invoke_without_command else []), *command.commands.values()]
        for each in commands:
            each.params.extend(output_options())


app = typer.Typer(
    name="cycleplan",
    cls=CycleplanGroup,
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cycleplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    del version, quiet, verbose


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
