"""Figures of a Plan: the Gantt chart of lanes over time.

Tasks are bars coloured by role; tasks on the critical path carry a dark outline; sync points (when an
event is emitted) are dotted vertical lines. Buttons switch the time axis between expected minutes and
wall cycles. Pure: a Plan in, a Figure out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cycleplan.report.palette import CRITICAL, role_colours
from cycleplan.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from cycleplan.model import Plan


def _roles(plan: Plan) -> list[str]:
    roles: list[str] = []
    for _, planned in plan.planned_tasks():
        if planned.role not in roles:
            roles.append(planned.role)
    return roles


def gantt(plan: Plan) -> go.Figure:
    """Lanes over time; one bar trace per role and unit (minutes shown, wall cycles behind a button)."""
    import plotly.graph_objects as go

    colours = role_colours(_roles(plan))
    critical = set(plan.critical_path)
    lane_order = [safe(lane.lane) for lane in plan.lanes]
    figure = go.Figure()
    units = (("minutes", "start_min", "finish_min"), ("wall cycles", "start_cycle", "finish_cycle"))
    for unit_index, (unit, start_field, finish_field) in enumerate(units):
        for role, colour in colours.items():
            rows = [(lane, planned) for lane, planned in plan.planned_tasks() if planned.role == role]
            if not rows:
                continue
            starts = [getattr(planned, start_field) for _, planned in rows]
            lengths = [getattr(planned, finish_field) - getattr(planned, start_field) for _, planned in rows]
            hover = [
                f"<b>{safe(planned.task)}</b><br>role {safe(role)} on {safe(lane.lane)}<br>"
                f"{planned.cycles} cycles<br>minutes {planned.start_min:g}-{planned.finish_min:g}<br>"
                f"wall cycles {planned.start_cycle:g}-{planned.finish_cycle:g}"
                + (f"<br>waits {planned.wait_min:g} min" if planned.wait_min > 0 else "")
                + ("<br><b>on the critical path</b>" if planned.task in critical else "")
                for lane, planned in rows
            ]
            figure.add_trace(
                go.Bar(
                    name=safe(role),
                    legendgroup=safe(role),
                    showlegend=unit_index == 0,
                    visible=unit_index == 0,
                    orientation="h",
                    y=[safe(lane.lane) for lane, _ in rows],
                    base=starts,
                    x=lengths,
                    text=[safe(planned.task) for _, planned in rows],
                    textposition="inside",
                    insidetextanchor="middle",
                    hovertext=hover,
                    hoverinfo="text",
                    marker={
                        "color": colour,
                        "line": {
                            "color": [
                                CRITICAL if planned.task in critical else "white" for _, planned in rows
                            ],
                            "width": [3 if planned.task in critical else 1 for _, planned in rows],
                        },
                    },
                    meta={"unit": unit, "tasks": [planned.task for _, planned in rows]},
                )
            )
    per_unit = len(figure.data) // 2
    sync_shapes = _sync_shapes(plan)
    buttons = []
    for unit_index, (unit, _, _) in enumerate(units):
        visible = [index // per_unit == unit_index for index in range(len(figure.data))]
        buttons.append(
            {
                "label": unit,
                "method": "update",
                "args": [{"visible": visible}, {"xaxis.title.text": unit, "shapes": sync_shapes[unit_index]}],
            }
        )
    figure.update_layout(
        title=f"Plan: {safe(plan.scenario.name or 'scenario')} ({safe(plan.cycle_map)})",
        barmode="overlay",
        xaxis={"title": {"text": "minutes"}, "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(lane_order)), "title": "lane"},
        legend={"title": {"text": "role"}},
        updatemenus=[{"type": "buttons", "direction": "right", "x": 1.0, "y": 1.15, "buttons": buttons}],
        shapes=sync_shapes[0],
        height=max(320, 60 + 42 * len(lane_order)),
        margin={"l": 110, "r": 30, "t": 90, "b": 50},
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
                    "line": {"dash": "dot", "color": "#444", "width": 1},
                    "label": {"text": safe(point.event), "textposition": "end", "font": {"size": 10}},
                }
            )
    return minutes, cycles
