"""Figures of an optimization: the Pareto front with the chosen point and its bands, and the choice
against the budget (or the deadline).

- mean cost against P90 makespan for every configuration on the front; the chosen one and the runner-up
  drawn with their P10-P90 bands of makespan and of cost;
- the chosen configuration's P90 makespan (or mean cost) at each budget (or deadline), labelled with the
  configuration, so that one sees where the choice moves.

Pure: a :class:`cycleplan.workflows.optimize.OptimizeResult` in, Figures out; every number comes from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cycleplan.present.report.labels import axis_format
from cycleplan.present.report.palette import CRITICAL
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from cycleplan.workflows.optimize import ConfigurationEstimate, OptimizeResult


def _hover(estimate: ConfigurationEstimate) -> str:
    makespan, cost = estimate.makespan_min, estimate.cost_usd
    return (
        f"<b>{safe(estimate.label)}</b><br>makespan P90 {makespan.p90:,.1f} min "
        f"[P10 {makespan.p10:,.1f}, P50 {makespan.p50:,.1f}]<br>cost mean ${cost.mean:,.2f} "
        f"[P10 ${cost.p10:,.2f}, P90 ${cost.p90:,.2f}]<br>{estimate.replications} replications"
    )


def pareto(result: OptimizeResult) -> go.Figure:
    """Mean cost against P90 makespan on the front; the chosen point and the runner-up with their bands."""
    import plotly.graph_objects as go

    figure = go.Figure()
    front = result.pareto
    figure.add_trace(
        go.Scatter(
            x=[each.makespan_min.p90 for each in front],
            y=[each.cost_usd.mean for each in front],
            mode="lines+markers",
            line={"color": "#0072B2", "width": 1, "dash": "dot"},
            marker={"color": "#0072B2", "size": 9},
            name="Pareto front",
            hovertext=[_hover(each) for each in front],
            hoverinfo="text",
        )
    )
    marked = [("chosen", result.chosen, CRITICAL, "star-open", 22)]
    if result.runner_up is not None:
        marked.append(("runner-up", result.runner_up, "#E69F00", "diamond-open", 15))
    for name, estimate, colour, symbol, size in marked:
        makespan, cost = estimate.makespan_min, estimate.cost_usd
        figure.add_trace(
            go.Scatter(
                x=[makespan.p90],
                y=[cost.mean],
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [0.0],
                    "arrayminus": [makespan.p90 - makespan.p10],
                    "color": colour,
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [cost.p90 - cost.mean],
                    "arrayminus": [cost.mean - cost.p10],
                    "color": colour,
                },
                mode="markers",
                # Open marks: the front's own point shows through the chosen one's.
                marker={"symbol": symbol, "size": size, "color": colour, "line": {"width": 2.5}},
                name=f"{name}: {safe(estimate.label)}",
                hovertext=[_hover(estimate)],
                hoverinfo="text",
            )
        )
    figure.update_layout(
        title={
            "text": "Time and cost: the Pareto front",
            "subtitle": {
                "text": "P90 makespan and mean cost; bars: the chosen and runner-up's P10 makespan and "
                "P10-P90 cost"
            },
            "automargin": True,
        },
        xaxis={"title": {"text": "makespan P90 (minutes)"}},
        yaxis={"title": {"text": "mean cost (US dollars)"}, **axis_format("usd")},
        hovermode="closest",
        height=460,
        margin={"t": 60, "r": 20, "b": 50},
    )
    return figure


def choice_by_limit(result: OptimizeResult) -> go.Figure:
    """The choice at each budget (or deadline): its objective, labelled with the configuration."""
    import plotly.graph_objects as go

    on_budget = result.objective == "makespan"
    rows = [each for each in result.by_limit if each.label is not None]
    values = [(each.makespan_p90_min if on_budget else each.cost_mean_usd) or 0.0 for each in rows]
    figure = go.Figure(
        go.Scatter(
            x=[each.limit for each in rows],
            y=values,
            mode="lines+markers",
            line={"shape": "hv", "color": "#0072B2"},
            marker={"size": 9},
            hovertext=[safe(each.label or "") for each in rows],
            hoverinfo="text+x+y",
            name="choice",
        )
    )
    limit = result.budget_usd if on_budget else result.deadline_min
    if limit is not None:
        figure.add_vline(x=limit, line={"color": CRITICAL, "dash": "dash"})
    figure.update_layout(
        title={
            "text": "How the choice moves with the " + ("budget" if on_budget else "deadline"),
            "subtitle": {
                "text": "the best configuration that keeps each limit within the risk; dashed: yours"
            },
            "automargin": True,
        },
        xaxis={
            "title": {"text": "budget (US dollars)" if on_budget else "deadline (minutes)"},
            **(axis_format("usd") if on_budget else {}),
        },
        yaxis={"title": {"text": "chosen P90 makespan (minutes)" if on_budget else "chosen mean cost (USD)"}},
        hovermode="closest",
        height=420,
        margin={"t": 60, "r": 20, "b": 50},
    )
    return figure
