"""Figures of a backtest: each held-out run's actuals drawn over the bands predicted from the others.

- per quantity (cost, cache reads, output tokens, agent time), one row per run: the predicted P10-P90 as
  a bar, P50 as a tick, the actual as a dot (red when outside the band);
- per turn, the same, on a log scale of minutes.

Inputs are the plain :class:`BandRow` records the report fills from a backtest; nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cycleplan.report.palette import BAND, CRITICAL, REFERENCE
from cycleplan.report.text import safe

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


def bands(rows: Sequence[BandRow], title: str, unit: str, *, log: bool = False) -> go.Figure:
    """Each row's P10-P90 band, its P50 and its actual; actuals outside their band in red."""
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
    figure.add_trace(
        go.Scatter(
            y=labels,
            x=[row.actual for row in rows],
            mode="markers",
            marker={
                "size": 10,
                "color": [REFERENCE if row.p10 <= row.actual <= row.p90 else CRITICAL for row in rows],
            },
            name="actual",
            hovertemplate="actual %{x:,.4g}<extra></extra>",
        )
    )
    figure.update_layout(
        title=safe(title),
        xaxis_title=safe(unit),
        xaxis_type="log" if log else "linear",
        height=140 + 36 * len(rows),
        margin={"l": 200},
        legend={"orientation": "h"},
    )
    return figure
