"""What the command modules share: failing with exit status 2, loading a scenario, the ``--lanes``
option, atomic writes, JSON, report and terminal output, and the options several commands declare alike.

Every helper that meets bad input ends in :func:`fail`: the message goes to stderr and the exit status is
2, with no traceback. Results go through :func:`show_result` or :func:`show` (a view on the terminal of
:mod:`cycleplan.present.terminal`), what is not a result through :func:`note` (left out by ``--quiet``) and
:func:`detail` (shown by ``--verbose``). Heavy libraries, rich among them, are imported inside the
helpers that need them.

One flag has one meaning in every command (the README's "Flags" table; a test holds every command to it).
A flag renamed to keep that promise stays for a while as a hidden alias that still works and says what to
write instead (:func:`deprecated`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from cycleplan.cli import verbosity
from cycleplan.core.printable import printable
from cycleplan.core.wording import counted

if TYPE_CHECKING:
    from cycleplan.core.model import Scenario
    from cycleplan.present.report.page import Report
    from cycleplan.present.terminal import Verbosity, View
    from cycleplan.sim import SimulationError
    from cycleplan.sim.prediction import Prediction

EXIT_BAD_INPUT = 2

STORE_PATH = Path(".cycleplan/runs.db")
STORE_HELP = "Run store (SQLite); runs' artifacts and logs go beside it."

# Options several commands share, declared once.
PlotlyJsOption = Annotated[
    str, typer.Option("--plotly-js", metavar="HOW", help="embed (works offline) or cdn (small file).")
]
StoreOption = Annotated[Path, typer.Option("--store", help=STORE_HELP, metavar="PATH")]
LANES_METAVAR = "[ROLE=]N"
ScenarioLanesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--lanes",
        "-l",
        help="Lanes of ROLE, ROLE=N, or of every role, N (scenario files only); repeat for several roles.",
        metavar=LANES_METAVAR,
        show_default=False,
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", "-s", help="Seed of every random draw.", metavar="S")]
# The options of the commands that fan configurations out (sweep, optimize).
FanoutEngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        "-e",
        help="The simulation engine: simpy, fast or auto (fast when the model allows).",
        metavar="simpy|fast|auto",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", "-w", help="Local worker processes (default: every core).", metavar="N"),
]
DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        help="Run on Dask: a scheduler address (tcp://host:8786) or 'local' for a LocalCluster "
        "(needs pip install 'cycleplan[dask]').",
        metavar="ADDRESS",
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
    none of them may reach the terminal (:mod:`cycleplan.core.printable`)."""
    typer.echo(printable(text), err=err, nl=nl)


def fail(*lines: str) -> NoReturn:
    """Print each line on stderr and exit with status 2 (bad input)."""
    for line in lines:
        say(line, err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def load_scenario_file(path: Path) -> Scenario:
    """The scenario in ``path``, or every problem in it on stderr and exit status 2."""
    from cycleplan.core.loading import LoadError, load_scenario

    try:
        return load_scenario(path)
    except LoadError as exc:
        fail(*(str(error) for error in exc.errors), f"{counted(len(exc.errors), 'problem')} in {path}")


def lanes_role(scenario: Scenario, spec: str) -> tuple[str | None, str]:
    """``--lanes [ROLE=]N`` split into its role (None: every role), checked against the scenario's
    roles, and the count as written."""
    from cycleplan.core.checks import did_you_mean

    role, sep, count = spec.rpartition("=")
    if (sep and not role) or not count:
        fail(f"--lanes {spec}: write ROLE=N, or N for every role, e.g. --lanes backend=2")
    if not sep:
        return None, count
    roles = scenario.role_names()
    if role not in roles:
        fail(
            f"--lanes {spec}: no role '{role}' in this scenario{did_you_mean(role, roles)}; "
            f"roles: {', '.join(roles)}"
        )
    return role, count


def parse_lanes_option(scenario: Scenario, specs: list[str]) -> dict[str, int]:
    """The lane counts that ``--lanes [ROLE=]N`` options give (a bare N: every role), checked against the
    scenario's roles; a later option wins over an earlier one for the same role."""
    lanes: dict[str, int] = {}
    for spec in specs:
        role, count = lanes_role(scenario, spec)
        if not count.isdigit() or not 1 <= int(count) <= 1000:
            fail(
                f"--lanes {spec}: the lane count must be a whole number from 1 to 1000"
                + ("" if role is not None or count.isdigit() else "; write ROLE=N, e.g. --lanes backend=2")
            )
        lanes.update(dict.fromkeys([role] if role is not None else scenario.role_names(), int(count)))
    return lanes


def deprecated(old: str, instead: str) -> None:
    """Say on stderr (even with ``--quiet``: it is a warning) that ``old``, a flag as given, is on its way
    out and what to write instead."""
    say(f"{old} is deprecated and will go: write {instead}", err=True)


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
    from cycleplan.present.report.page import write_page

    try:
        write_page(path, report, plotly_js)
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror or exc}")


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    say(json.dumps(data, indent=2, sort_keys=False))


def level() -> Verbosity:
    """How much the command line asks to be told (``--quiet``, ``--verbose``)."""
    from cycleplan.present.terminal import Verbosity

    return Verbosity(verbosity.level())


def note(text: str, *, err: bool = False) -> None:
    """What is not a result (a file written, the next step, a warning): printed unless ``--quiet``."""
    if verbosity.level() > verbosity.QUIET:
        say(text, err=err)


def detail(text: str) -> None:
    """What only ``--verbose`` asks for (timings): on stderr, so that it never mixes with results."""
    if verbosity.level() == verbosity.VERBOSE:
        say(text, err=True)


def show(view: View) -> None:
    """A view of a result on stdout (:mod:`cycleplan.present.terminal`: colour, width, made printable)."""
    from cycleplan.present.terminal import show as show_on_terminal

    show_on_terminal(view)


def show_result(
    as_json: bool,
    summary: Callable[[], Any],
    view: Callable[[Verbosity], View],
    *written: Path | None,
) -> None:
    """A command's answer on stdout: ``summary()`` as JSON, or ``view(verbosity)`` followed by a
    ``wrote FILE`` note for each file it wrote (``None``: not asked for). Both are called only when
    needed, so that a command imports its renderer (and rich) only to print text."""
    if as_json:
        emit_json(summary())
        return
    show(view(level()))
    for path in written:
        if path is not None:
            note(f"wrote {path}")


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration_min(text: str) -> float:
    """Minutes of ``--deadline DURATION``: ``90m``, ``2h``, ``1h30m``, ``45s``; exit 2 otherwise."""
    spoken = text.strip().lower().replace(" ", "")
    match = _DURATION.fullmatch(spoken)
    if not spoken or match is None or not any(match.groups()):
        fail(f"--deadline {text}: write a duration with its unit, e.g. 90m, 2h or 1h30m")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    total = hours * 60 + minutes + seconds / 60
    if total <= 0:
        fail(f"--deadline {text}: must be longer than 0")
    return total


def check_fanout(seed: int, engine: str, workers: int | None) -> None:
    """Exit 2 on a bad ``--seed``, ``--engine`` or ``--workers`` of a command that fans configurations out."""
    from cycleplan.sim import ENGINES

    if seed < 0:
        fail(f"--seed {seed}: must be zero or positive")
    if engine not in ENGINES:
        fail(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if workers is not None and workers < 1:
        fail(f"--workers {workers}: must be at least 1")


def simulation_failed(exc: SimulationError, engine: str, file: Path) -> NoReturn:
    """Exit 2 on a simulation the scenario or ``--engine`` does not allow, naming which."""
    if exc.field == "engine":
        fail(f"--engine {engine}: {str(exc).removeprefix('engine: ')}")
    fail(f"{file}: {exc}")


def read_prediction(path: Path) -> Prediction:
    """The prediction ``cycleplan simulate -o`` wrote to ``path``; exit 2 with the field at fault."""
    from pydantic import ValidationError

    from cycleplan.sim.prediction import Prediction

    try:
        return Prediction.model_validate_json(path.read_bytes())
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror or exc}")
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(part) for part in first["loc"]) or "(file)"
        fail(f"{path}: {place}: {first['msg']} (was it written by `cycleplan simulate -o`?)")
