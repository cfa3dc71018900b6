"""Figures of a backtest: each held-out run's actuals drawn over the bands predicted from the others.

- per quantity (cost, cache reads, output tokens, agent time), one row per run: the predicted P10-P90 as
  a bar, P50 as a tick, the actual as a dot (red when outside the band), each in the legend; agent time
  on a linear axis unless the runs range over two powers of ten (:func:`spans_decades`);
- per turn, the same, on a log scale of minutes.

Inputs are the plain :class:`BandRow` records the report fills from a backtest; nothing else is computed
here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cycleplan.present.report.labels import axis_format
from cycleplan.present.report.palette import ACTUAL, BAND, CRITICAL, REFERENCE
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass(frozen=True)
class BandRow:
    """One actual value against its predicted band."""

    label: str
    actual: float
    p10: float
    p50: float
    p90: float


def spans_decades(rows: Sequence[BandRow], decades: float = 2.0) -> bool:
    """Whether the rows' values (bands and actuals) range over at least ``decades`` powers of ten: then
    a linear axis squeezes the small ones against zero and a log axis reads better."""
    values = [value for row in rows for value in (row.p10, row.p90, row.actual) if value > 0]
    return bool(values) and max(values) >= min(values) * 10**decades


def bands(rows: Sequence[BandRow], title: str, unit: str, *, log: bool = False) -> go.Figure:
    """Each row's P10-P90 band, its P50 and its actual; actuals outside their band in red, each kind of
    mark in the legend."""
    import plotly.graph_objects as go

    labels = [safe(row.label) for row in rows]
    figure = go.Figure()
    figure.add_trace(
        go.Bar(
            y=labels,
            x=[row.p90 - row.p10 for row in rows],
            base=[row.p10 for row in rows],
            orientation="h",
            marker={"color": BAND},
            name="predicted P10-P90",
            hovertemplate="P10 %{base:,.4g} - P90 %{customdata:,.4g}<extra></extra>",
            customdata=[row.p90 for row in rows],
        )
    )
    figure.add_trace(
        go.Scatter(
            y=labels,
            x=[row.p50 for row in rows],
            mode="markers",
            marker={"symbol": "line-ns-open", "size": 16, "color": REFERENCE},
            name="predicted P50",
            hovertemplate="P50 %{x:,.4g}<extra></extra>",
        )
    )
    inside = [row.p10 <= row.actual <= row.p90 for row in rows]
    for name, colour, wanted in (
        ("actual, inside P10-P90", ACTUAL, True),
        ("actual, outside P10-P90", CRITICAL, False),
    ):
        chosen = [(label, row) for label, row, ok in zip(labels, rows, inside, strict=True) if ok is wanted]
        if not chosen:
            continue
        figure.add_trace(
            go.Scatter(
                y=[label for label, _ in chosen],
                x=[row.actual for _, row in chosen],
                mode="markers",
                marker={"size": 10, "color": colour},
                name=name,
                hovertemplate="actual %{x:,.4g}<extra></extra>",
                meta={"rows": [row.label for _, row in chosen]},
            )
        )
    xaxis: dict[str, object] = {"title": {"text": safe(unit)}, **axis_format(unit)}
    if log:
        xaxis.update({"type": "log", "dtick": 1, "minor": {"showgrid": True, "dtick": "D1"}})
    figure.update_layout(
        title={"text": safe(title), "automargin": True},
        xaxis=xaxis,
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(labels)), "automargin": True},
        height=150 + 30 * len(rows),
        margin={"l": 20, "t": 40, "r": 20, "b": 50},
    )
    return figure
