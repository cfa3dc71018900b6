"""Figures of a Prediction: distributions with their percentiles, tokens and cost by role, utilization
per lane, where the time goes, and how often each task is critical.

Distributions are drawn from fixed bins and CDF points (:mod:`.binning`), so a figure's size does not
depend on the replication count. Pure: a Prediction in, Figures out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cycleplan.present.report.binning import cdf, histogram
from cycleplan.present.report.gantt_parts import (
    BAR_WIDTH,
    CANCELLED_OPACITY,
    FAILED_PATTERN,
    TASK_LABEL,
    TASK_LABEL_LAYOUT,
    critical_trace,
    gantt_height,
    status_entries,
    wait_traces,
)
from cycleplan.present.report.labels import CLAIM_LABEL, axis_format, axis_title, number
from cycleplan.present.report.marks import CLAIM_LINE, DISTRIBUTION_PX, Mark, add_marks, headroom
from cycleplan.present.report.palette import CRITICAL, NEUTRAL, RoleColours, role_colours
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    import plotly.graph_objects as go

    from cycleplan.core.metrics import TaskSpan, WaitSpan
    from cycleplan.sim.prediction import Prediction
    from cycleplan.sim.stats import Summary

WAIT_LABELS = {
    "dependency": "dependency<br>(lane free, task not ready)",
    "sync": "sync<br>(lane held for an event)",
    "lane": "lane<br>(task ready, no lane free;<br>task-minutes)",
    "rate_limit": "rate limit<br>(lane held by the limits)",
}
BLOCKED_LABEL = "subagents<br>(lane blocked on them)"
WASTE_LABEL = "failed work<br>(wasted)"
HISTOGRAM = "#0072B2"
CDF = "#E69F00"


def distribution(
    samples: Sequence[float], summary: Summary, name: str, unit: str, claim: float | None = None
) -> go.Figure:
    """Histogram and CDF of one quantity, its P10/P50/P90 dotted, the scenario's claim dashed when given;
    each line labelled in a row of its own and listed in the legend."""
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
            marker={"color": HISTOGRAM},
            opacity=0.7,
            legendrank=1,
        ),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            x=values,
            y=probabilities,
            name="share at or below (right axis)",
            mode="lines",
            line={"color": CDF, "width": 2},
            legendrank=2,
        ),
        secondary_y=True,
    )
    marks = [
        Mark(value, f"{label} {number(value, unit)}", "P10, P50, P90")
        for label, value in (("P10", summary.p10), ("P50", summary.p50), ("P90", summary.p90))
    ]
    if claim is not None:
        marks.append(Mark(claim, f"{CLAIM_LABEL} {number(claim, unit)}", CLAIM_LABEL, dict(CLAIM_LINE)))
    shown = [*bins.centres, *(mark.x for mark in marks)]
    add_marks(figure, marks, min(shown, default=0.0), max(shown, default=1.0))
    top = headroom(len(marks), max(bins.counts, default=1))
    figure.update_layout(
        title={
            "text": f"{safe(name)}: P50 {number(summary.p50, unit)} "
            f"(P10 {number(summary.p10, unit)} - P90 {number(summary.p90, unit)})",
            "automargin": True,
        },
        xaxis={"title": {"text": axis_title(safe(name), unit)}, **axis_format(unit)},
        bargap=0.02,
        height=DISTRIBUTION_PX,
        margin={"t": 40, "b": 50, "r": 20},
        meta={"p10": summary.p10, "p50": summary.p50, "p90": summary.p90, "claim": claim},
    )
    figure.update_yaxes(title_text="replications", range=[0, top], secondary_y=False)
    # No title on the right axis: the legend names it (a title there would sit under the legend).
    figure.update_yaxes(
        range=[0, headroom(len(marks), 1.0)],
        tickvals=[0, 0.25, 0.5, 0.75, 1],
        tickformat=".0%",
        showgrid=False,
        secondary_y=True,
    )
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


def _page_roles(prediction: Prediction, colours: RoleColours | None) -> tuple[list[str], RoleColours]:
    """The roles to draw, in the page's order, and the page's colours (made here when not given)."""
    lane_roles = [role for role in prediction.lanes.values() if role is not None]
    found = list(dict.fromkeys([*lane_roles, *prediction.replications.tokens_by_role]))
    if colours is None:
        colours = role_colours(found)
    ordered = [role for role in colours if role in found] + [role for role in found if role not in colours]
    return ordered, colours


def tokens_and_cost_by_role(prediction: Prediction, colours: RoleColours | None = None) -> go.Figure:
    """Mean tokens and mean cost per run, stacked by role; beside them tokens by kind with P10-P90."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    replications = prediction.replications
    roles, colours = _page_roles(prediction, colours)
    figure = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "tokens by role<br>(mean)",
            "cost by role<br>(mean)",
            "tokens by kind<br>(P50, P10-P90)",
        ),
        horizontal_spacing=0.1,
    )
    # Each subplot's title on two short lines and clear of the top tick label of its y axis, which
    # stands half above the plot: on one line the longest ran over the next axis's labels at 1000 px.
    figure.update_annotations(yshift=10)
    for rank, role in enumerate(role for role in roles if role in replications.tokens_by_role):
        figure.add_trace(
            go.Bar(
                x=["tokens"],
                y=[_mean(replications.tokens_by_role[role])],
                name=safe(role),
                legendgroup=f"role-{safe(role)}",
                legendrank=rank,
                marker={"color": colours[role]},
                hovertemplate=f"{safe(role)}: %{{y:.3~s}} tokens<extra></extra>",
                meta={"role": role},
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Bar(
                x=["cost"],
                y=[_mean(replications.cost_by_role.get(role, []))],
                name=safe(role),
                legendgroup=f"role-{safe(role)}",
                showlegend=False,
                marker={"color": colours[role]},
                hovertemplate=f"{safe(role)}: $%{{y:,.2f}}<extra></extra>",
                meta={"role": role},
            ),
            row=1,
            col=2,
        )
    kinds = ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens")
    labels = ("input<br>uncached", "cache<br>write", "cache<br>read", "output")
    summaries = [prediction.summaries[kind] for kind in kinds]
    figure.add_trace(
        go.Bar(
            x=list(labels),
            y=[s.p50 for s in summaries],
            error_y=_p10_p90_bars(summaries),
            name="P50 [P10-P90]",
            marker={"color": NEUTRAL},
            showlegend=False,
            hovertemplate="%{x}: P50 %{y:.3~s} tokens<extra></extra>",
        ),
        row=1,
        col=3,
    )
    figure.update_yaxes(axis_format("tokens"), row=1, col=1)
    figure.update_yaxes(axis_format("usd"), row=1, col=2)
    figure.update_yaxes(axis_format("tokens"), row=1, col=3)
    figure.update_layout(
        barmode="stack",
        title={"text": "Tokens and cost per run", "automargin": True},
        legend={"title": {"text": "role"}},
        height=440,
        margin={"t": 80, "b": 60, "r": 20},
    )
    return figure


def utilization_by_lane(prediction: Prediction, colours: RoleColours | None = None) -> go.Figure:
    """Each lane's busy share of the makespan: P50 with a P10-P90 bar, a trace (and colour) per role."""
    import plotly.graph_objects as go

    lanes = list(prediction.replications.utilization_by_lane)
    roles, colours = _page_roles(prediction, colours)
    lane_role = {lane: prediction.lanes.get(lane) for lane in lanes}
    figure = go.Figure()
    for rank, role in enumerate([*roles, None]):
        mine = [lane for lane in lanes if lane_role[lane] == role]
        if not mine:
            continue
        summaries = [prediction.summaries[f"utilization_by_lane.{lane}"] for lane in mine]
        figure.add_trace(
            go.Bar(
                x=[safe(lane) for lane in mine],
                y=[s.p50 for s in summaries],
                error_y=_p10_p90_bars(summaries),
                name=safe(role) if role is not None else "lanes of any role",
                legendgroup=f"role-{safe(role)}" if role is not None else "any-role",
                legendrank=rank,
                marker={"color": colours[role] if role is not None else NEUTRAL},
                hovertext=[
                    f"{safe(lane)}: P50 {s.p50:.0%} [P10 {s.p10:.0%} - P90 {s.p90:.0%}]"
                    for lane, s in zip(mine, summaries, strict=True)
                ],
                hoverinfo="text",
                meta={"role": role, "lanes": mine},
            )
        )
    figure.update_layout(
        title={
            "text": "Utilization per lane",
            "subtitle": {"text": "busy share of the makespan: P50, bars P10-P90"},
            "automargin": True,
        },
        barmode="overlay",
        xaxis={"categoryorder": "array", "categoryarray": [safe(lane) for lane in lanes]},
        yaxis={"tickformat": ".0%", "range": [0, 1.05]},
        legend={"title": {"text": "role"}},
        height=400,
        margin={"t": 40, "b": 60, "r": 20},
    )
    return figure


def time_lost(prediction: Prediction) -> go.Figure:
    """Lane-minutes lost per run by cause, summed over the lanes: the four waits, time blocked on
    subagents (when there is any) and failed or cancelled work (P50, P10-P90)."""
    import plotly.graph_objects as go

    names = [f"waits_min.{cause}" for cause in WAIT_LABELS]
    labels = list(WAIT_LABELS.values())
    blocked = prediction.summaries.get("blocked_min")
    if blocked is not None and blocked.p90 > 0:
        names.append("blocked_min")
        labels.append(BLOCKED_LABEL)
    names.append("waste_min")
    labels.append(WASTE_LABEL)
    summaries = [prediction.summaries[name] for name in names]
    lanes = max(len(prediction.lanes), 1)
    makespan = prediction.summaries["makespan_min"].p50
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=[s.p50 for s in summaries],
            error_y=_p10_p90_bars(summaries),
            marker={"color": NEUTRAL},
            hovertext=[
                f"{label.replace('<br>', ' ')}<br>P50 {s.p50:,.1f} lane-minutes summed over {lanes} lanes "
                f"({s.p50 / lanes:,.1f} min a lane)<br>P10-P90 {s.p10:,.1f} - {s.p90:,.1f}"
                for label, s in zip(labels, summaries, strict=True)
            ],
            hoverinfo="text",
            name="P50 [P10-P90]",
            meta={"names": names},
        )
    )
    figure.update_layout(
        title={
            "text": "Where the time goes besides work",
            "subtitle": {
                "text": f"lane-minutes per run, summed over all {lanes} lanes (P50, bars P10-P90); the run's "
                f"{lanes} lanes x {makespan:,.0f} min P50 makespan hold {lanes * makespan:,.0f} lane-minutes"
            },
            "automargin": True,
        },
        yaxis={"title": {"text": "lane-minutes per run"}, "tickformat": ",.4~g"},
        height=420,
        margin={"t": 60, "b": 80, "r": 20},
    )
    return figure


def criticality(prediction: Prediction) -> go.Figure:
    """Share of replications in which each task had zero slack, most critical on top; tasks critical in
    at least half the replications in red, each colour in the legend."""
    import plotly.graph_objects as go

    ordered = sorted(prediction.criticality.items(), key=lambda item: (-item[1], item[0]))
    figure = go.Figure()
    for name, colour, chosen in (
        ("critical in at least half the replications", CRITICAL, [row for row in ordered if row[1] >= 0.5]),
        ("critical less often", NEUTRAL, [row for row in ordered if row[1] < 0.5]),
    ):
        if not chosen:
            continue
        figure.add_trace(
            go.Bar(
                x=[index for _, index in chosen],
                y=[safe(task) for task, _ in chosen],
                orientation="h",
                name=name,
                marker={"color": colour},
                hovertemplate="%{y}: critical in %{x:.0%} of replications<extra></extra>",
                meta={"tasks": [task for task, _ in chosen]},
            )
        )
    figure.update_layout(
        title={"text": "Criticality index: how often a task's delay delays the end", "automargin": True},
        barmode="overlay",
        showlegend=True,
        xaxis={"tickformat": ".0%", "range": [0, 1], "title": {"text": "share of replications"}},
        yaxis={"categoryorder": "array", "categoryarray": [safe(task) for task, _ in reversed(ordered)]},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        height=max(320, 110 + 24 * len(ordered)),
        margin={"t": 60, "r": 20},
    )
    return figure


def _status_marker(colour: str, statuses: Sequence[str]) -> dict[str, object]:
    """A role's bars, cancelled ones faded and failed ones striped (per-bar styles only when needed)."""
    marker: dict[str, object] = {"color": colour, "line": {"color": "white", "width": 1}}
    if "cancelled" in statuses:
        marker["opacity"] = [CANCELLED_OPACITY if status == "cancelled" else 1.0 for status in statuses]
    if "failed" in statuses:
        shapes = [FAILED_PATTERN["shape"] if status == "failed" else "" for status in statuses]
        marker["pattern"] = {**FAILED_PATTERN, "shape": shapes}
    return marker


def trace_gantt(
    spans: Mapping[str, TaskSpan],
    lanes: Mapping[str, str | None],
    title: str,
    colours: RoleColours | None = None,
    waits: Sequence[WaitSpan] = (),
    critical: Collection[str] = (),
) -> go.Figure:
    """One replication's tasks on their lanes (e.g. the median replication), coloured by role; waiting
    inside a task's bar hatched by cause, the critical path outlined in red, failed tasks striped and
    cancelled ones faded, each mark in the legend."""
    import plotly.graph_objects as go

    roles = list(dict.fromkeys(span.role for span in spans.values()))
    colours = colours if colours is not None else role_colours(roles)
    ordered = [role for role in colours if role in roles] + [role for role in roles if role not in colours]
    figure = go.Figure()
    for rank, role in enumerate(ordered):
        rows = [(task, span) for task, span in spans.items() if span.role == role]
        figure.add_trace(
            go.Bar(
                name=safe(role) if role else "(no role)",
                legendgroup=f"role-{safe(role)}",
                legendrank=rank,
                orientation="h",
                y=[safe(span.lane) for _, span in rows],
                base=[span.start_min for _, span in rows],
                x=[span.finish_min - span.start_min for _, span in rows],
                text=[safe(task) for task, _ in rows],
                **TASK_LABEL,
                width=BAR_WIDTH,
                marker=_status_marker(colours[role], [span.status for _, span in rows]),
                hovertext=[
                    f"<b>{safe(task)}</b> ({safe(role)}) on {safe(span.lane)}<br>{span.start_min:.1f}-"
                    f"{span.finish_min:.1f} min ({span.status})"
                    + ("<br><b>on the critical path</b>" if task in critical else "")
                    for task, span in rows
                ],
                hoverinfo="text",
                meta={"role": role, "tasks": [task for task, _ in rows]},
            )
        )
    for trace in wait_traces(waits, lambda span: safe(span.lane)):
        figure.add_trace(trace)
    on_path = [
        (task, safe(span.lane), span.start_min, span.finish_min)
        for task, span in spans.items()
        if task in critical
    ]
    if on_path:
        figure.add_trace(critical_trace(on_path))
    for entry in status_entries({span.status for span in spans.values()}):
        figure.add_trace(entry)
    order = [safe(lane) for lane in lanes]
    figure.update_layout(
        title={"text": safe(title), "automargin": True},
        barmode="overlay",
        xaxis={"title": {"text": "minutes"}, "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(order))},
        legend={"title": {"text": "role"}, "tracegroupgap": 2},
        **TASK_LABEL_LAYOUT,
        height=gantt_height(len(order)),
        margin={"l": 110, "t": 40, "r": 20, "b": 50},
    )
    return figure
