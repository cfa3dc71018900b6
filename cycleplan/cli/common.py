"""What the command modules share: failing with exit status 2, loading a scenario, the ``--lanes ROLE=N``
option, atomic writes, JSON and report output, and the options several commands declare alike.

Every helper that meets bad input ends in :func:`fail`: the message goes to stderr and the exit status is
2, with no traceback. Heavy libraries are imported inside the helpers that need them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from cycleplan.printable import printable

if TYPE_CHECKING:
    from cycleplan.model import Scenario
    from cycleplan.report.page import Report

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


def output_option(help_text: str) -> Any:
    """``--output``/``-o FILE``, with the command's own words for what it writes there."""
    return typer.Option("--output", "-o", metavar="FILE", help=help_text, show_default=False)


def report_option(help_text: str) -> Any:
    """``--report FILE``, with the command's own words for what its HTML report shows."""
    return typer.Option("--report", metavar="FILE", help=help_text, show_default=False)


def command_app() -> typer.Typer:
    """The typer app a command module registers its commands on, rendered as the root app renders.

    No completion options and plain help text (no rich markup), as on ``cycleplan`` itself.
    """
    return typer.Typer(add_completion=False, rich_markup_mode=None)


def say(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print ``text`` on stdout (stderr with ``err``) as :func:`typer.echo` does, made printable first:
    names, messages and outputs from scenarios, transcripts and agents may carry escape sequences, and
    none of them may reach the terminal (:mod:`cycleplan.printable`)."""
    typer.echo(printable(text), err=err, nl=nl)


def fail(*lines: str) -> NoReturn:
    """Print each line on stderr and exit with status 2 (bad input)."""
    for line in lines:
        say(line, err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def load_scenario_file(path: Path) -> Scenario:
    """The scenario in ``path``, or every problem in it on stderr and exit status 2."""
    from cycleplan.loading import LoadError, load_scenario

    try:
        return load_scenario(path)
    except LoadError as exc:
        fail(*(str(error) for error in exc.errors), f"{len(exc.errors)} problem(s) in {path}")


def parse_lanes_option(scenario: Scenario, specs: list[str]) -> dict[str, int]:
    """The lane counts that ``--lanes ROLE=N`` options give, checked against the scenario's roles."""
    from cycleplan.checks import did_you_mean

    lanes: dict[str, int] = {}
    roles = scenario.role_names()
    for spec in specs:
        role, sep, count = spec.partition("=")
        if not sep or not role or not count:
            fail(f"--lanes {spec}: write ROLE=N, e.g. --lanes backend=2")
        if role not in roles:
            fail(
                f"--lanes {spec}: no role '{role}' in this scenario{did_you_mean(role, roles)}; "
                f"roles: {', '.join(roles)}"
            )
        if not count.isdigit() or not 1 <= int(count) <= 1000:
            fail(f"--lanes {spec}: the lane count must be a whole number from 1 to 1000")
        lanes[role] = int(count)
    return lanes


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so an interrupted write never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror or exc}")


def plotly_js_mode(value: str) -> Literal["embed", "cdn"]:
    """The checked value of ``--plotly-js``."""
    if value not in ("embed", "cdn"):
        fail(f"--plotly-js {value}: choose embed (works offline) or cdn (small file)")
    return "embed" if value == "embed" else "cdn"


def write_report(path: Path, report: Report, plotly_js: Literal["embed", "cdn"]) -> None:
    """Write an HTML report; a file that cannot be written is bad input."""
    from cycleplan.report.page import write_page

    try:
        write_page(path, report, plotly_js)
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror or exc}")


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    say(json.dumps(data, indent=2, sort_keys=False))


def show_result(
    as_json: bool, summary: Callable[[], Any], text: Callable[[], str], *written: Path | None
) -> None:
    """A command's answer on stdout: ``summary()`` as JSON, or ``text()`` followed by a ``wrote FILE``
    line for each file it wrote (``None``: not asked for). Both are called only when needed, so that
    a command imports its renderer only to print text."""
    if as_json:
        emit_json(summary())
        return
    say(text())
    for path in written:
        if path is not None:
            say(f"wrote {path}")
