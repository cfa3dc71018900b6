"""Listings as a person reads them: rows under a header, a rich table on a terminal and plain padded
columns when piped (so that ``grep`` and ``awk`` see one row per line). Used by ``cycleplan runs``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def show_table(
    header: list[str], rows: list[list[str]], right: set[str], *, plain: Callable[[str], None]
) -> None:
    """Rows under a header, columns named in ``right`` aligned right: drawn with rich on a terminal, and
    written line by line through ``plain`` in padded columns when stdout is piped."""
    if sys.stdout.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for index, name in enumerate(header):
            # Ids, statuses and numbers are read whole: on a narrow terminal only the words wrap.
            whole = index == 0 or name in right or name == "status"
            table.add_column(
                name,
                justify="right" if name in right else "left",
                no_wrap=whole,
                min_width=max(len(row[index]) for row in [header, *rows]) if whole else None,
                overflow="fold",
            )
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        Console().print(table)
        return
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for cells in (header, *rows):
        plain(
            "  ".join(
                (cell.rjust(width) if name in right else cell.ljust(width))
                for name, cell, width in zip(header, cells, widths, strict=True)
            ).rstrip()
        )
