"""Figures of a Prediction: distributions with their percentiles, tokens and cost by role, utilization
per lane, where the time goes, and how often each task is critical.

Distributions are drawn from fixed bins and CDF points (:mod:`.binning`), so a figure's size does not
depend on the replication count. Pure: a Prediction in, Figures out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cycleplan.report.binning import cdf, histogram
from cycleplan.report.palette import CRITICAL, REFERENCE, role_colours
from cycleplan.report.text import safe

if TYPE_CHECKING:
    from collections.abc import Mapping

    import plotly.graph_objects as go

    from cycleplan.metrics import TaskSpan
    from cycleplan.sim.prediction import Prediction
    from cycleplan.sim.stats import Summary

WAIT_LABELS = {
    "dependency": "dependency (lane free, task not ready)",
    "sync": "sync (held waiting for an event)",
    "lane": "lane (ready, no lane free)",
    "rate_limit": "rate limit",
}


def distribution(
    samples: Sequence[float], summary: Summary, name: str, unit: str, claim: float | None = None
) -> go.Figure:
    """Histogram and CDF of one quantity, its P10/P50/P90 dotted, the guide's claim dashed when given."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    bins = histogram(samples)
    values, probabilities = cdf(samples)
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Bar(
            x=bins.centres,
            y=bins.counts,
            width=bins.width,
            name="replications",
            marker={"color": "#0072B2"},
            opacity=0.7,
        ),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            x=values, y=probabilities, name="CDF", mode="lines", line={"color": "#E69F00", "width": 2}
        ),
        secondary_y=True,
    )
    for label, value in (("P10", summary.p10), ("P50", summary.p50), ("P90", summary.p90)):
        figure.add_vline(
            x=value, line={"dash": "dot", "color": REFERENCE}, annotation_text=f"{label} {value:.3g}"
        )
    if claim is not None:
        figure.add_vline(
            x=claim,
            line={"dash": "dash", "color": CRITICAL, "width": 2},
            annotation_text=f"guide's claim {claim:.3g}",
            annotation_position="bottom right",
        )
    figure.update_layout(
        title=f"{safe(name)}: P50 {summary.p50:.3g} [P10 {summary.p10:.3g} - P90 {summary.p90:.3g}] "
        f"{safe(unit)}",
        xaxis={"title": {"text": f"{safe(name)} ({safe(unit)})"}},
        bargap=0.02,
        meta={"p10": summary.p10, "p50": summary.p50, "p90": summary.p90, "claim": claim},
    )
    figure.update_yaxes(title_text="replications", secondary_y=False)
    figure.update_yaxes(title_text="share at or below", range=[0, 1], secondary_y=True)
    return figure


def _p10_p90_bars(summaries: Sequence[Summary]) -> dict[str, object]:
    """Error bars from each bar's P50 down to its P10 and up to its P90."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [s.p90 - s.p50 for s in summaries],
        "arrayminus": [s.p50 - s.p10 for s in summaries],
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def tokens_and_cost_by_role(prediction: Prediction) -> go.Figure:
    """Mean tokens and mean cost per run, stacked by role; beside them tokens by kind with P10-P90."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    replications = prediction.replications
    roles = list(replications.tokens_by_role)
    colours = role_colours(roles)
    figure = make_subplots(
        rows=1, cols=3, subplot_titles=("tokens by role", "cost by role (USD)", "tokens by kind")
    )
    for role in roles:
        figure.add_trace(
            go.Bar(
                x=["tokens"],
                y=[_mean(replications.tokens_by_role[role])],
                name=safe(role),
                legendgroup=safe(role),
                marker={"color": colours[role]},
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Bar(
                x=["cost"],
                y=[_mean(replications.cost_by_role.get(role, []))],
                name=safe(role),
                legendgroup=safe(role),
                showlegend=False,
                marker={"color": colours[role]},
            ),
            row=1,
            col=2,
        )
    kinds = ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens")
    labels = ("input (uncached)", "cache writes", "cache reads", "output")
    summaries = [prediction.summaries[kind] for kind in kinds]
    figure.add_trace(
        go.Bar(
            x=list(labels),
            y=[s.p50 for s in summaries],
            error_y=_p10_p90_bars(summaries),
            name="P50 [P10-P90]",
            marker={"color": "#7F7F7F"},
            showlegend=False,
        ),
        row=1,
        col=3,
    )
    figure.update_layout(barmode="stack", title="Tokens and cost per run", legend={"title": {"text": "role"}})
    return figure


def utilization_by_lane(prediction: Prediction) -> go.Figure:
    """Each lane's busy share of the makespan: P50 with a P10-P90 bar."""
    import plotly.graph_objects as go

    lanes = list(prediction.replications.utilization_by_lane)
    summaries = [prediction.summaries[f"utilization_by_lane.{lane}"] for lane in lanes]
    colours = role_colours(list(dict.fromkeys(str(prediction.lanes.get(lane)) for lane in lanes)))
    figure = go.Figure(
        go.Bar(
            x=[safe(lane) for lane in lanes],
            y=[s.p50 for s in summaries],
            error_y=_p10_p90_bars(summaries),
            marker={"color": [colours[str(prediction.lanes.get(lane))] for lane in lanes]},
            hovertext=[
                f"{safe(lane)}: P50 {s.p50:.0%} [P10 {s.p10:.0%} - P90 {s.p90:.0%}]"
                for lane, s in zip(lanes, summaries, strict=True)
            ],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title="Utilization per lane (busy share of the makespan)",
        yaxis={"tickformat": ".0%", "range": [0, 1.05]},
    )
    return figure


def time_lost(prediction: Prediction) -> go.Figure:
    """Minutes lost per run by cause: the four waits and failed or cancelled work (P50, P10-P90)."""
    import plotly.graph_objects as go

    names = [f"waits_min.{cause}" for cause in WAIT_LABELS] + ["waste_min"]
    labels = [*WAIT_LABELS.values(), "failure (wasted work)"]
    summaries = [prediction.summaries[name] for name in names]
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=[s.p50 for s in summaries],
            error_y=_p10_p90_bars(summaries),
            marker={"color": ["#56B4E9", "#E69F00", "#009E73", "#CC79A7", CRITICAL]},
            meta={"names": names},
        )
    )
    figure.update_layout(
        title="Where the time goes besides work (minutes per run, P50 [P10-P90])",
        yaxis={"title": {"text": "minutes"}},
    )
    return figure


def criticality(prediction: Prediction) -> go.Figure:
    """Share of replications in which each task had zero slack, most critical on top."""
    import plotly.graph_objects as go

    ordered = sorted(prediction.criticality.items(), key=lambda item: (-item[1], item[0]))
    figure = go.Figure(
        go.Bar(
            x=[index for _, index in ordered],
            y=[safe(task) for task, _ in ordered],
            orientation="h",
            marker={"color": [CRITICAL if index >= 0.5 else "#0072B2" for _, index in ordered]},
        )
    )
    figure.update_layout(
        title="Criticality index: how often a task's delay delays the end",
        xaxis={"tickformat": ".0%", "range": [0, 1]},
        yaxis={"categoryorder": "array", "categoryarray": [safe(task) for task, _ in reversed(ordered)]},
        height=max(300, 60 + 26 * len(ordered)),
    )
    return figure


def trace_gantt(spans: Mapping[str, TaskSpan], lanes: Mapping[str, str | None], title: str) -> go.Figure:
    """One replication's tasks on their lanes (e.g. the median replication), coloured by status."""
    import plotly.graph_objects as go

    colours = {"complete": "#0072B2", "failed": CRITICAL, "cancelled": "#7F7F7F"}
    figure = go.Figure()
    for status, colour in colours.items():
        rows = [(task, span) for task, span in spans.items() if span.status == status]
        if not rows:
            continue
        figure.add_trace(
            go.Bar(
                name=status,
                orientation="h",
                y=[safe(span.lane) for _, span in rows],
                base=[span.start_min for _, span in rows],
                x=[span.finish_min - span.start_min for _, span in rows],
                text=[safe(task) for task, _ in rows],
                textposition="inside",
                marker={"color": colour, "line": {"color": "white", "width": 1}},
                hovertext=[
                    f"<b>{safe(task)}</b> on {safe(span.lane)}<br>{span.start_min:.1f}-"
                    f"{span.finish_min:.1f} min ({status})"
                    for task, span in rows
                ],
                hoverinfo="text",
                meta={"tasks": [task for task, _ in rows]},
            )
        )
    order = [safe(lane) for lane in lanes]
    figure.update_layout(
        title=safe(title),
        barmode="overlay",
        xaxis={"title": {"text": "minutes"}, "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(order))},
        height=max(320, 60 + 42 * len(order)),
    )
    return figure
