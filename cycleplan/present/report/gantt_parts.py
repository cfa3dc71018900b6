"""Pieces every Gantt chart of a page shares, so that a mark means the same on each: waiting drawn
inside a task's bar (pale, hatched by cause), the critical path's red outline, and legend entries for
marks that are not traces of their own (an event's dotted line, a failed or cancelled task).

A legend entry for such a mark is an empty trace: it draws nothing and shows the mark's look beside its
name, so a reader can tell what each mark means without hovering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cycleplan.core.metrics import WAIT_SPAN_CAUSES
from cycleplan.present.report.palette import CRITICAL, REFERENCE, WAIT_FILL, WAIT_NAMES, WAIT_PATTERNS
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from cycleplan.core.metrics import WaitSpan

BAR_WIDTH = 0.8
"""A task bar's height, in rows."""
STRIP_WIDTH = 0.24
"""A wait strip's height: the lower part of a task bar, clear of the name in its middle."""
ACTUAL_WIDTH = 0.3
"""The thin actual bar drawn over a predicted band."""
CRITICAL_OUTLINE = {"color": CRITICAL, "width": 3}
FAILED_PATTERN = {"shape": "-", "fgcolor": "#000000", "size": 6, "solidity": 0.25}
CANCELLED_OPACITY = 0.4
TASK_LABEL_MIN_PX = 9
"""A task's name is written level inside its bar at one size on the whole chart, and left out (it is on
hover) where the bar is too short to hold it at this size: never turned on end or shrunk past reading."""
TASK_LABEL = {"textposition": "inside", "insidetextanchor": "middle", "textangle": 0}
"""How a task bar carries its name (the settings of a plotly bar trace)."""
TASK_LABEL_LAYOUT = {"uniformtext": {"minsize": TASK_LABEL_MIN_PX, "mode": "hide"}}
"""The layout setting that goes with :data:`TASK_LABEL`."""
MARKS_RANK = 1000
"""Legend rank of marks: after the roles (plotly's default rank is 1000; roles get lower ranks)."""


def wait_traces(
    waits: Sequence[WaitSpan],
    row: Callable[[WaitSpan], str],
    *,
    unit: str = "min",
    visible: bool = True,
    showlegend: bool = True,
    width: float = STRIP_WIDTH,
    offset: float | None = -BAR_WIDTH / 2,
) -> list[go.Bar]:
    """One bar trace per cause of waiting, drawn over the task bars (``barmode="overlay"``): each span
    on the row ``row(span)`` names, pale and hatched, with its task and length on hover. By default a
    strip along the bottom of a task bar, so the task's name in its middle stays legible; ``width`` and
    ``offset`` (rows, as plotly's bar ``width`` and ``offset``; None centres it) place it otherwise."""
    import plotly.graph_objects as go

    traces = []
    for cause in WAIT_SPAN_CAUSES:
        spans = [span for span in waits if span.cause == cause and span.finish_min > span.start_min]
        if not spans:
            continue
        traces.append(
            go.Bar(
                name=WAIT_NAMES[cause],
                legendgroup=f"wait-{cause}",
                legendrank=MARKS_RANK + 10,
                showlegend=showlegend,
                visible=visible,
                orientation="h",
                y=[row(span) for span in spans],
                base=[span.start_min for span in spans],
                x=[span.finish_min - span.start_min for span in spans],
                width=width,
                offset=offset,
                marker={
                    "color": WAIT_FILL,
                    "line": {"color": REFERENCE, "width": 0.5},
                    "pattern": {"shape": WAIT_PATTERNS[cause], "fgcolor": REFERENCE, "size": 6},
                },
                hovertext=[
                    f"<b>{safe(span.task)}</b> {WAIT_NAMES[cause]}<br>"
                    f"{span.start_min:,.1f}-{span.finish_min:,.1f} {unit} "
                    f"({span.finish_min - span.start_min:,.1f} {unit})"
                    for span in spans
                ],
                hoverinfo="text",
                meta={"wait": cause, "tasks": [span.task for span in spans]},
            )
        )
    return traces


def legend_bar(name: str, marker: dict[str, Any]) -> go.Bar:
    """A legend entry showing a bar's look (an outline, a pattern, a fade) that draws nothing."""
    import plotly.graph_objects as go

    return go.Bar(
        name=name,
        legendgroup=name,
        legendrank=MARKS_RANK + 20,
        orientation="h",
        x=[None],
        y=[None],
        marker=marker,
        hoverinfo="skip",
        meta={"legend_only": True},
    )


def legend_line(name: str, line: dict[str, Any]) -> go.Scatter:
    """A legend entry showing a line's look (e.g. an event's dotted line) that draws nothing."""
    import plotly.graph_objects as go

    return go.Scatter(
        name=name,
        legendgroup=name,
        legendrank=MARKS_RANK + 30,
        mode="lines",
        x=[None],
        y=[None],
        line=line,
        hoverinfo="skip",
        meta={"legend_only": True},
    )


def critical_trace(
    rows: Sequence[tuple[str, str, float, float]], *, visible: bool = True, showlegend: bool = True
) -> go.Bar:
    """A red outline around each task on the critical path, drawn over its bar; ``rows`` are (task,
    row, start, finish). Its own trace, so its legend entry shows just the outline."""
    import plotly.graph_objects as go

    return go.Bar(
        name="critical path (red outline)",
        legendgroup="critical",
        legendrank=MARKS_RANK,
        showlegend=showlegend,
        visible=visible,
        orientation="h",
        y=[row for _, row, _, _ in rows],
        base=[start for _, _, start, _ in rows],
        x=[finish - start for _, _, start, finish in rows],
        width=BAR_WIDTH,
        marker={"color": "rgba(0,0,0,0)", "line": CRITICAL_OUTLINE},
        hoverinfo="skip",
        meta={"critical": True, "tasks": [task for task, _, _, _ in rows]},
    )


def status_entries(statuses: set[str]) -> list[go.Bar]:
    """Legend entries for the failed and cancelled tasks a chart shows."""
    entries = []
    if "failed" in statuses:
        entries.append(legend_bar("failed (striped)", {"color": REFERENCE, "pattern": FAILED_PATTERN}))
    if "cancelled" in statuses:
        entries.append(legend_bar("cancelled (faded)", {"color": REFERENCE, "opacity": CANCELLED_OPACITY}))
    return entries


def gantt_height(rows: int) -> int:
    """Enough height for ``rows`` lanes and the legend beside them."""
    return max(360, 90 + 40 * rows)
