"""``--quiet`` and ``--verbose``: how much every command says besides its results.

Both are taken by the root command (``cycleplan -q simulate ...``) and by every command
(``cycleplan simulate ... -q``); :class:`cycleplan.cli.CycleplanGroup` adds them to each command as it
loads it, so a new command has them without declaring them. Their callbacks note what was asked in the
click context's ``meta``, which the root and the command share; :func:`level` reads it back. This module
stays light (no rich), since the root command imports it to print its own help.
"""

from __future__ import annotations

from typing import Annotated

import typer
import typer.main
from typer import _click
from typer._click.globals import get_current_context

_QUIET = "cycleplan.quiet"
_VERBOSE = "cycleplan.verbose"

QUIET, NORMAL, VERBOSE = 0, 1, 2
"""The levels :func:`level` returns, the values of :class:`cycleplan.present.terminal.Verbosity`."""


def _remember(ctx: typer.Context, asked: str, other: str) -> None:
    if ctx.meta.get(other):
        raise typer.BadParameter("--quiet and --verbose ask for opposite things; choose one")
    ctx.meta[asked] = True


def _quiet(ctx: typer.Context, value: bool) -> bool:
    if value:
        _remember(ctx, _QUIET, _VERBOSE)
    return value


def _verbose(ctx: typer.Context, value: bool) -> bool:
    if value:
        _remember(ctx, _VERBOSE, _QUIET)
    return value


QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Print results and errors only: no progress, notes, legends or `wrote FILE` lines.",
        callback=_quiet,
        expose_value=False,
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Print more detail: timings, and what a result holds but does not show by default.",
        callback=_verbose,
        expose_value=False,
    ),
]


def _options_of_every_command(quiet: QuietOption = False, verbose: VerboseOption = False) -> None:
    """The template the options are built from (typer builds parameters from a signature)."""


def output_options() -> list[_click.Parameter]:
    """``--quiet`` and ``--verbose`` as click parameters, to add to a command."""
    template = typer.Typer(add_completion=False)
    template.command()(_options_of_every_command)
    return list(typer.main.get_command(template).params)


def level() -> int:
    """QUIET, NORMAL or VERBOSE, as the current command line asks (NORMAL outside a command)."""
    ctx = get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return QUIET if meta.get(_QUIET) else VERBOSE if meta.get(_VERBOSE) else NORMAL
