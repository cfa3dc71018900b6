"""How counts and durations read in words, the same in every output (terminal, reports, messages).

``counted(1, "cycle")`` is ``1 cycle`` and ``counted(2, "cycle")`` is ``2 cycles``: no output says "1
cycles" or "cycle(s)". :func:`minutes` writes every span of scenario minutes, :func:`duration` with hours
beside them when there are hours.
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


def minutes(value: float, *, unit: bool = True) -> str:
    """Scenario minutes as every output writes them: ``1,050 min``, ``70.5 min``, ``12 min`` (one decimal
    at most, a ``.0`` left off), and a span under a minute in seconds (``42 s``, ``0.7 s``).
    ``unit=False`` gives the number of minutes alone, for a column headed in minutes."""
    if unit and 0 < abs(value) < 1:
        return f"{_tenths(value * 60)} s"
    return f"{_tenths(value)} min" if unit else _tenths(value)


def _tenths(value: float) -> str:
    """``1,050``, ``70.5``, ``12``: one decimal at most, never ``-0``."""
    return f"{value + 0.0 if round(value, 1) else 0.0:,.1f}".removesuffix(".0")


def duration(value: float) -> str:
    """:func:`minutes` with the hours beside them from an hour up: ``195 min (3h 15m)``."""
    shown = minutes(value)
    if value < 60:
        return shown
    hours, rest = divmod(round(value), 60)
    return f"{shown} ({hours}h {rest:02d}m)"
