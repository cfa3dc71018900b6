"""The terminal results are shown on: one rich Console per stream, and the pieces every text view is
built from.

It owns three decisions, made here once for every command:

- **colour**: on a terminal (rich's detection: a tty, or ``FORCE_COLOR`` / ``TTY_COMPATIBLE=1``), and
  never when ``NO_COLOR`` is set (https://no-color.org) or the output is piped: then no escape sequence
  at all is written, only plain text;
- **width**: the terminal's (or ``COLUMNS``), long lines wrapped to it with their indent kept; piped
  output without ``COLUMNS`` is not wrapped, so that each row stays one line for ``grep``;
- **verbosity**: :class:`Verbosity`; views show their legends and notes unless quiet, and more detail
  (timings, the engine, every critical task) when verbose.

Every string a view holds may come from a scenario, a transcript or an agent, so :func:`show` removes
escape sequences and control characters from what is rendered (:func:`cycleplan.core.printable.printable`)
before rich adds its own colours. Tables are :class:`ResultTable`: a rule under the header, drawn in
box characters on a terminal and in ``-`` when piped. Views are functions from results to renderables;
they compute nothing. This module is presentation: only views and the CLI import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.table import Column, Table
from rich.text import Text

from cycleplan.core.printable import printable

View = RenderableType
"""What the views of this layer return and :func:`show` prints (a rich renderable): the name the CLI holds
them by, so that only presentation imports rich."""


class Verbosity(IntEnum):
    """How much a command says besides its results."""

    QUIET = 0
    """Results and errors only: no legends, notes, progress or ``wrote FILE`` lines."""
    NORMAL = 1
    VERBOSE = 2
    """Also timings and the detail a result holds but does not show by default."""


PIPE_WIDTH = 10_000
"""The width of piped output without ``COLUMNS``: wide enough that no line is wrapped."""

HEADER = "bold"
LABEL = "bold"
LEGEND = "dim"
MARK = "bold red"
"""A value outside its predicted band."""
CHOSEN = "bold green"
"""The recommended configuration."""

_TERMINAL_RULE = box.SIMPLE_HEAD
_PIPE_RULE = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)


def console(*, stderr: bool = False) -> Console:
    """A Console on stdout (or stderr) that decides colour and width as the module says."""
    no_color = os.environ.get("NO_COLOR", "") != ""
    made = Console(
        stderr=stderr,
        color_system=None if no_color else "auto",
        no_color=no_color,
        markup=False,
        highlight=False,
        emoji=False,
    )
    if not made.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        made.width = PIPE_WIDTH
    return made


def show(view: RenderableType, *, stderr: bool = False) -> None:
    """Print ``view``: made printable, wrapped to the width, without trailing spaces."""
    console(stderr=stderr).print(_Printable(view))


def to_text(view: RenderableType, width: int = PIPE_WIDTH) -> str:
    """``view`` as the plain text a pipe would get (for tests and for callers that want a string)."""
    plain = Console(width=width, color_system=None, markup=False, highlight=False, emoji=False)
    with plain.capture() as captured:
        plain.print(_Printable(view))
    return captured.get().rstrip("\n")


class _Printable:
    """A renderable's lines with foreign escape sequences removed and trailing spaces trimmed."""

    def __init__(self, inner: RenderableType) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in console.render_lines(self.inner, options, pad=False):
            yield from _trimmed([segment if segment.control else _safe(segment) for segment in line])
            yield Segment.line()


def _safe(segment: Segment) -> Segment:
    text = printable(segment.text)
    return segment if text == segment.text else Segment(text, segment.style)


def _trimmed(line: list[Segment]) -> list[Segment]:
    while line and not line[-1].control:
        last = line[-1]
        kept = last.text.rstrip()
        if kept:
            line[-1] = Segment(kept, last.style)
            break
        line.pop()
    return line


class ResultTable(Table):
    """A table of results: a header with a rule under it and columns two spaces apart, nothing else."""

    def __init__(self, *headers: Column | str, **settings: object) -> None:
        super().__init__(
            *headers,
            box=_PIPE_RULE,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            header_style=HEADER,
            **settings,  # type: ignore[arg-type]
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.box = _TERMINAL_RULE if options.is_terminal and not options.ascii_only else _PIPE_RULE
        self._keep_words(console, options)
        yield from super().__rich_console__(console, options)

    def _keep_words(self, console: Console, options: ConsoleOptions) -> None:
        """On a narrow terminal, let columns of single words (names, numbers, ranges) keep their width
        and the columns of phrases wrap between words, when that fits; else every column may wrap (and
        words too long for their column are folded, never cut)."""
        single = [not any(" " in str(cell) for cell in column.cells) for column in self.columns]
        needed = len(self.columns) - 1  # one space of padding between columns
        for column, whole in zip(self.columns, single, strict=True):
            sizes = [Measurement.get(console, options, cell) for cell in [column.header, *column.cells]]
            needed += max(size.maximum if whole else size.minimum for size in sizes)
        for column, whole in zip(self.columns, single, strict=True):
            column.no_wrap = whole and needed <= options.max_width


def table(headers: Sequence[str], right: Iterable[int] = ()) -> ResultTable:
    """A :class:`ResultTable` with these column headers, the columns numbered in ``right`` aligned
    right; cells wrap (never cut) when the terminal is too narrow."""
    aligned = set(right)
    return ResultTable(
        *(
            Column(header, justify="right" if index in aligned else "left", overflow="fold")
            for index, header in enumerate(headers)
        )
    )


def facts(rows: Iterable[tuple[str, RenderableType]], indent: int = 0) -> RenderableType:
    """Label-value lines (``makespan   195 min``), ``indent`` spaces in: the labels in one column, each
    value wrapped under itself when it is longer than the line."""
    grid = Table.grid(padding=(0, 2, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return Padding(grid, (0, 0, 0, indent), expand=False) if indent else grid


def heading(text: str) -> Text:
    return Text(text, style=LABEL)


def legend(text: str) -> Text:
    """An explanation of what a view shows: dim on a terminal, left out when quiet (by the view)."""
    return Text(text, style=LEGEND)


def styled(text: str, style: str | None) -> Text:
    return Text(text, style=style or "")


@contextmanager
def progress(
    description: str, total: int, verbosity: Verbosity
) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr, and the function that advances it (``done, total``), when
    stderr is a terminal and the command is not quiet; otherwise ``None`` and no bar."""
    shown_on = console(stderr=True)
    if verbosity is Verbosity.QUIET or not shown_on.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=shown_on, transient=True) as bar:
        job = bar.add_task(description, total=total)

        def advance(done: int, of: int) -> None:
            bar.update(job, completed=done, total=of)

        yield advance
