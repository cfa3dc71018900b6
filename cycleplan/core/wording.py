"""How counts and durations read in words, the same in every output (terminal, reports, messages).

``counted(1, "cycle")`` is ``1 cycle`` and ``counted(2, "cycle")`` is ``2 cycles``: no output says
"1 cycles" or "cycle(s)". :func:`duration` writes minutes with hours beside them when there are hours.
Plain functions of numbers; nothing here imports beyond the standard library.
"""

from __future__ import annotations

SEQUENTIAL_BASELINE = "sequential baseline"
"""The one name every output gives ``sequential_min``: the same work done on one lane in plan order,
the numerator of every speedup."""


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` in the number the count asks for: ``1 cycle``, ``0 cycles``,
    ``1,000 replications``; ``plural`` for the nouns that do not just take an ``s``."""
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    number = f"{count:,}" if isinstance(count, int) else f"{count:g}"
    return f"{number} {noun if count == 1 else (plural or noun + 's')}"


def duration(minutes: float) -> str:
    """``195 min (3h 15m)``; short spans stay in minutes."""
    shown = f"{minutes:g}" if minutes == round(minutes, 1) else f"{minutes:.1f}"
    if minutes < 60:
        return f"{shown} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{shown} min ({hours}h {rest:02d}m)"
