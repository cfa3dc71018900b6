"""Figures of a sweep: speedup against lane count, and the time/cost Pareto front.

- speedup (P50, with its P10-P90 band) against the lane count, one line per planning algorithm, the
  recommended configuration marked;
- P50 cost against P50 makespan for every configuration, the Pareto front joined and the recommended
  configuration marked; error bars show each one's P10-P90 makespan.

Pure: a :class:`cycleplan.workflows.sweep.SweepResult` in, Figures out; every number comes from the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cycleplan.present.report.labels import axis_format
from cycleplan.present.report.palette import BAND, CRITICAL, ROLE_COLOURS
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from cycleplan.workflows.sweep import ConfigurationResult, SweepResult


def _lane_axis(result: SweepResult) -> str:
    return f"{result.role} lanes" if result.role is not None else "lanes per role"


def _hover(configuration: ConfigurationResult) -> str:
    return (
        f"<b>{safe(configuration.label)}</b> ({configuration.total_lanes} lanes in all)<br>"
        f"speedup P50 {configuration.speedup.p50:.2f}x [{configuration.speedup.p10:.2f}-"
        f"{configuration.speedup.p90:.2f}]<br>makespan P50 {configuration.makespan_min.p50:,.1f} min "
        f"[{configuration.makespan_min.p10:,.1f}-{configuration.makespan_min.p90:,.1f}]<br>"
        f"cost P50 ${configuration.cost_usd.p50:,.2f}<br>utilization P50 {configuration.utilization.p50:.0%}"
    )


def speedup_by_lanes(result: SweepResult) -> go.Figure:
    """P50 speedup against the lane count with its P10-P90 band, a line per algorithm."""
    import plotly.graph_objects as go

    figure = go.Figure()
    algorithms = list(dict.fromkeys(configuration.algorithm for configuration in result.configurations))
    for position, algorithm in enumerate(algorithms):
        rows = sorted((c for c in result.configurations if c.algorithm == algorithm), key=lambda c: c.lanes)
        lanes = [c.lanes for c in rows]
        colour = ROLE_COLOURS[position % len(ROLE_COLOURS)]
        figure.add_trace(
            go.Scatter(
                x=lanes,
                y=[c.speedup.p90 for c in rows],
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
                legendgroup=safe(algorithm),
            )
        )
        figure.add_trace(
            go.Scatter(
                x=lanes,
                y=[c.speedup.p10 for c in rows],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=BAND,
                name=f"{safe(algorithm)} P10-P90",
                hoverinfo="skip",
                legendgroup=safe(algorithm),
            )
        )
        figure.add_trace(
            go.Scatter(
                x=lanes,
                y=[c.speedup.p50 for c in rows],
                mode="lines+markers",
                line={"color": colour, "width": 2},
                name=f"{safe(algorithm)} P50",
                hovertext=[_hover(c) for c in rows],
                hoverinfo="text",
                legendgroup=safe(algorithm),
                meta={"algorithm": algorithm, "lanes": lanes},
            )
        )
    chosen = result.configurations[result.recommended]
    figure.add_trace(
        go.Scatter(
            x=[chosen.lanes],
            y=[chosen.speedup.p50],
            mode="markers",
            marker={"symbol": "star-open", "size": 20, "color": CRITICAL, "line": {"width": 2.5}},
            name="recommended",
            hovertext=[_hover(chosen)],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title={
            "text": f"Speedup against {safe(_lane_axis(result))}",
            "subtitle": {"text": f"{result.replications:,} replications each, on common random numbers"},
            "automargin": True,
        },
        xaxis={"title": {"text": safe(_lane_axis(result))}, "dtick": 1},
        yaxis={
            "title": {"text": "speedup over the sequential baseline"},
            "rangemode": "tozero",
            **axis_format("x"),
        },
        hovermode="closest",
        height=420,
        margin={"t": 40, "r": 20, "b": 50},
    )
    return figure


def pareto(result: SweepResult) -> go.Figure:
    """P50 cost against P50 makespan; the Pareto front joined, the recommendation marked."""
    import plotly.graph_objects as go

    configurations = result.configurations
    figure = go.Figure()
    on_front = list(result.pareto)
    off_front = [index for index in range(len(configurations)) if index not in set(on_front)]
    for name, indices, colour, size in (
        ("dominated", off_front, "#9E9E9E", 8),
        ("Pareto front", on_front, "#0072B2", 11),
    ):
        if not indices:
            continue
        rows = [configurations[index] for index in indices]
        # Configurations that predict the same P50s share one label (lanes often change neither).
        labels: dict[tuple[float, float], list[str]] = {}
        for row in rows:
            labels.setdefault((row.makespan_min.p50, row.cost_usd.p50), []).append(row.label)
        shown: set[tuple[float, float]] = set()
        text = []
        for row in rows:
            key = (row.makespan_min.p50, row.cost_usd.p50)
            text.append("" if key in shown or name == "dominated" else safe(" = ".join(labels[key])))
            shown.add(key)
        figure.add_trace(
            go.Scatter(
                x=[c.makespan_min.p50 for c in rows],
                y=[c.cost_usd.p50 for c in rows],
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [c.makespan_min.p90 - c.makespan_min.p50 for c in rows],
                    "arrayminus": [c.makespan_min.p50 - c.makespan_min.p10 for c in rows],
                    "thickness": 1,
                    "color": colour,
                },
                mode="lines+markers+text" if name == "Pareto front" else "markers",
                line={"color": colour, "width": 1, "dash": "dot"},
                marker={"color": colour, "size": size},
                text=text,
                textposition="top center",
                name=name,
                hovertext=[_hover(c) for c in rows],
                hoverinfo="text",
                meta={"indices": indices},
            )
        )
    chosen = configurations[result.recommended]
    figure.add_trace(
        go.Scatter(
            x=[chosen.makespan_min.p50],
            y=[chosen.cost_usd.p50],
            mode="markers",
            marker={"symbol": "star-open", "size": 22, "color": CRITICAL, "line": {"width": 2.5}},
            name="recommended",
            hovertext=[_hover(chosen)],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title={
            "text": "Time and cost: the Pareto front",
            "subtitle": {"text": "P50 of each configuration; bars span its P10-P90 makespan"},
            "automargin": True,
        },
        xaxis={"title": {"text": "makespan P50 (minutes)"}},
        yaxis={"title": {"text": "cost P50 (US dollars)"}, **axis_format("usd")},
        hovermode="closest",
        height=440,
        margin={"t": 40, "r": 20, "b": 50},
    )
    return figure
