"""Figures of a Plan: the Gantt chart of lanes over time.

Tasks are bars coloured by role (the page's colours); tasks on the critical path carry a red outline; a
lane held before a task's first cycle is hatched; sync points (when an event is emitted) are dotted
vertical lines; each of these marks has a legend entry. Buttons switch the time axis between expected
minutes and wall cycles. Pure: a Plan in, a Figure out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cycleplan.present.report.gantt_parts import (
    BAR_WIDTH,
    TASK_LABEL,
    TASK_LABEL_LAYOUT,
    critical_trace,
    gantt_height,
    legend_line,
    wait_traces,
)
from cycleplan.present.report.labels import cycles_detail
from cycleplan.present.report.palette import REFERENCE, RoleColours, role_colours
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from cycleplan.core.metrics import WaitSpan
    from cycleplan.core.model import Plan

SYNC_LINE = {"dash": "dot", "color": REFERENCE, "width": 1}


def _roles(plan: Plan) -> list[str]:
    roles: list[str] = []
    for _, planned in plan.planned_tasks():
        if planned.role not in roles:
            roles.append(planned.role)
    return roles


def _waits_before(plan: Plan, unit: str) -> list[WaitSpan]:
    """Where the plan holds a lane for a task before its first cycle (an event it waits for first)."""
    from cycleplan.core.metrics import WaitSpan

    spans = []
    for lane, planned in plan.planned_tasks():
        taken = planned.lane_start_min if unit == "minutes" else planned.lane_start_cycle
        start = planned.start_min if unit == "minutes" else planned.start_cycle
        if taken is not None and start - taken > 1e-9:
            spans.append(
                WaitSpan(task=planned.task, lane=lane.lane, cause="sync", start_min=taken, finish_min=start)
            )
    return spans


def gantt(plan: Plan, colours: RoleColours | None = None) -> go.Figure:
    """Lanes over time; one bar trace per role and unit (minutes shown, wall cycles behind a button).

    A lane held before a task's first cycle (waiting for an event) is drawn hatched before its bar;
    ``colours`` is the page's role -> colour map (one is made from the plan's roles when not given).
    """
    import plotly.graph_objects as go

    colours = colours if colours is not None else role_colours(_roles(plan))
    critical = set(plan.critical_path)
    lane_order = [safe(lane.lane) for lane in plan.lanes]
    figure = go.Figure()
    units = (("minutes", "start_min", "finish_min"), ("wall cycles", "start_cycle", "finish_cycle"))
    unit_of_trace: list[int] = []
    for unit_index, (unit, start_field, finish_field) in enumerate(units):
        for rank, role in enumerate(_roles(plan)):
            rows = [(lane, planned) for lane, planned in plan.planned_tasks() if planned.role == role]
            starts = [getattr(planned, start_field) for _, planned in rows]
            lengths = [getattr(planned, finish_field) - getattr(planned, start_field) for _, planned in rows]
            hover = [
                f"<b>{safe(planned.task)}</b><br>role {safe(role)} on {safe(lane.lane)}<br>"
                f"{planned.cycles} cycles<br>minutes {planned.start_min:g}-{planned.finish_min:g}<br>"
                f"wall cycles {planned.start_cycle:g}-{planned.finish_cycle:g}"
                + (f"<br>waits {planned.wait_min:g} min for events" if planned.wait_min > 0 else "")
                + ("<br><b>on the critical path</b>" if planned.task in critical else "")
                for lane, planned in rows
            ]
            figure.add_trace(
                go.Bar(
                    name=safe(role),
                    legendgroup=f"role-{safe(role)}",
                    legendrank=rank,
                    showlegend=unit_index == 0,
                    visible=unit_index == 0,
                    orientation="h",
                    y=[safe(lane.lane) for lane, _ in rows],
                    base=starts,
                    x=lengths,
                    text=[safe(planned.task) for _, planned in rows],
                    **TASK_LABEL,
                    hovertext=hover,
                    hoverinfo="text",
                    width=BAR_WIDTH,
                    marker={"color": colours[role], "line": {"color": "white", "width": 1}},
                    meta={"unit": unit, "role": role, "tasks": [planned.task for _, planned in rows]},
                )
            )
            unit_of_trace.append(unit_index)
        for trace in wait_traces(
            _waits_before(plan, unit),
            lambda span: safe(span.lane),
            unit="min" if unit == "minutes" else "cycles",
            visible=unit_index == 0,
            showlegend=unit_index == 0,
            width=BAR_WIDTH,
            offset=None,
        ):
            trace.meta = {**trace.meta, "unit": unit}
            figure.add_trace(trace)
            unit_of_trace.append(unit_index)
        on_path = [
            (planned.task, safe(lane.lane), getattr(planned, start_field), getattr(planned, finish_field))
            for lane, planned in plan.planned_tasks()
            if planned.task in critical
        ]
        if on_path:
            trace = critical_trace(on_path, visible=unit_index == 0, showlegend=unit_index == 0)
            trace.meta = {**trace.meta, "unit": unit}
            figure.add_trace(trace)
            unit_of_trace.append(unit_index)
    marks: list[go.Scatter] = []
    if plan.sync_points:
        marks.append(legend_line("event emitted (dotted line)", SYNC_LINE))
    for mark in marks:
        figure.add_trace(mark)
        unit_of_trace.append(-1)
    sync_shapes = _sync_shapes(plan)
    buttons = []
    for unit_index, (unit, _, _) in enumerate(units):
        visible = [owner in (unit_index, -1) for owner in unit_of_trace]
        buttons.append(
            {
                "label": unit,
                "method": "update",
                "args": [{"visible": visible}, {"xaxis.title.text": unit, "shapes": sync_shapes[unit_index]}],
            }
        )
    figure.update_layout(
        title={
            "text": f"The plan: {safe(plan.scenario.name or 'scenario')} on its lanes",
            "subtitle": {"text": f"{plan.algorithm} plan at nominal durations; {safe(plan.cycle_map)}"},
            "automargin": True,
        },
        barmode="overlay",
        xaxis={"title": {"text": "minutes"}, "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(lane_order)), "title": "lane"},
        legend={"title": {"text": "role"}, "tracegroupgap": 2},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 0,
                "xanchor": "left",
                "y": 1.0,
                "yanchor": "bottom",
                "pad": {"b": 20},
                "showactive": True,
                "buttons": buttons,
            }
        ],
        shapes=sync_shapes[0],
        **TASK_LABEL_LAYOUT,
        height=gantt_height(len(lane_order)),
        margin={"l": 110, "r": 20, "t": 70, "b": 50},
        meta={"cycles": cycles_detail(plan)},
    )
    return figure


def _sync_shapes(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Dotted vertical lines where events are emitted, in minutes and in wall cycles."""
    minutes: list[dict[str, Any]] = []
    cycles: list[dict[str, Any]] = []
    for point in plan.sync_points:
        for at, shapes in ((point.at_min, minutes), (point.at_cycle, cycles)):
            shapes.append(
                {
                    "type": "line",
                    "x0": at,
                    "x1": at,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": SYNC_LINE,
                    # Under the bars: the line shows between them and never runs through a task's name.
                    "layer": "below",
                    "label": {
                        "text": safe(point.event),
                        "textposition": "end",
                        "textangle": 0,
                        "xanchor": "left",
                        "yanchor": "bottom",
                        "font": {"size": 10},
                    },
                }
            )
    return minutes, cycles
