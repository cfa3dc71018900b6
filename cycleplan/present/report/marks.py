"""Vertical marks on a distribution (its P10, P50 and P90, a claim, an actual value): each a line with a
legend entry per kind, and a label in a row of its own at the top of the plot, so that no two labels
overlap however close their values are. The y axes get the headroom the label rows need, so labels
cover no data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cycleplan.present.report.palette import ACTUAL, CRITICAL, REFERENCE

if TYPE_CHECKING:
    import plotly.graph_objects as go

ROW_PX = 18
"""Height of one label row, in pixels."""
DISTRIBUTION_PX = 420
"""A distribution figure's height, in pixels."""
PLOT_PX = 300
"""The plot area's height in such a figure (less its margins and legend rows), as :func:`headroom`
assumes it: a little less than it is, so the labels always have room."""

PERCENTILE_LINE: dict[str, Any] = {"dash": "dot", "color": REFERENCE, "width": 1.5}
CLAIM_LINE: dict[str, Any] = {"dash": "dash", "color": CRITICAL, "width": 2}
ACTUAL_LINE: dict[str, Any] = {"color": ACTUAL, "width": 3}
"""An actual value inside its predicted P10-P90: near black, as an actual span on a Gantt chart."""
ACTUAL_OUTSIDE_LINE: dict[str, Any] = {"color": CRITICAL, "width": 3}
"""An actual value outside its predicted P10-P90: red, as everything outside its band on the page."""


@dataclass(frozen=True)
class Mark:
    """A vertical line at ``x``, labelled ``label`` above the data; ``kind`` is its legend entry (marks
    of one kind share one entry)."""

    x: float
    label: str
    kind: str
    line: dict[str, Any] = field(default_factory=lambda: dict(PERCENTILE_LINE))


def headroom(rows: int, top: float) -> float:
    """The top of a y axis whose data reach ``top`` that leaves ``rows`` label rows free above them."""
    share = min(0.6, (rows * ROW_PX + 6) / PLOT_PX)
    return top / (1.0 - share) if top > 0 else 1.0


def add_marks(figure: go.Figure, marks: Sequence[Mark], low: float, high: float) -> None:
    """Draw ``marks`` on ``figure`` whose x axis spans about ``low`` to ``high``: lines over the whole
    plot, labels stacked from the top down in the order given, each starting at its line and running
    away from the nearer edge."""
    span = high - low if high > low else 1.0
    seen: set[str] = set()
    for row, mark in enumerate(marks):
        figure.add_shape(
            type="line",
            x0=mark.x,
            x1=mark.x,
            xref="x",
            yref="paper",
            y0=0,
            y1=1,
            line=mark.line,
            name=mark.kind,
            legendgroup=mark.kind,
            showlegend=mark.kind not in seen,
        )
        seen.add(mark.kind)
        right_half = (mark.x - low) / span > 0.55
        figure.add_annotation(
            x=mark.x,
            xref="x",
            y=1,
            yref="paper",
            yanchor="top",
            yshift=-row * ROW_PX - 2,
            xanchor="right" if right_half else "left",
            xshift=-3 if right_half else 3,
            text=mark.label,
            showarrow=False,
            font={"size": 11, "color": mark.line.get("color", REFERENCE)},
            bgcolor="rgba(255, 255, 255, 0.7)",
        )
