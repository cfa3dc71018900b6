"""Figures of a run held against its prediction: what happened drawn over what was expected.

- the actual Gantt over each task's predicted P10-P90 band (start to finish), its waiting hatched;
- the actual value marked on the predicted distribution (makespan, speedup, cost...);
- cumulative tokens or cost over time, the predicted P10-P90 band against the actual curve.

Inputs are small plain records (:class:`TaskBand`, :class:`CumulativeBand`) that the comparison fills
from a Prediction and a trace's metrics; these functions only draw them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cycleplan.present.report.binning import histogram
from cycleplan.present.report.gantt_parts import ACTUAL_WIDTH, wait_traces
from cycleplan.present.report.labels import axis_format, axis_title, number
from cycleplan.present.report.marks import (
    ACTUAL_LINE,
    ACTUAL_OUTSIDE_LINE,
    DISTRIBUTION_PX,
    Mark,
    add_marks,
    headroom,
)
from cycleplan.present.report.palette import ACTUAL, BAND, CRITICAL, REFERENCE
from cycleplan.present.report.text import safe

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from cycleplan.core.metrics import TaskSpan, WaitSpan


@dataclass(frozen=True)
class Percentiles:
    """P10, P50 and P90 of one predicted quantity."""

    p10: float
    p50: float
    p90: float


@dataclass(frozen=True)
class TaskBand:
    """A task's predicted start and finish (minutes since the run's start)."""

    task: str
    lane: str
    start: Percentiles
    finish: Percentiles


@dataclass(frozen=True)
class CumulativeBand:
    """A predicted cumulative quantity (tokens, dollars) on a time grid, as P10/P50/P90 curves."""

    grid_min: Sequence[float]
    p10: Sequence[float]
    p50: Sequence[float]
    p90: Sequence[float]


def band_traces(
    x: Sequence[float],
    p10: Sequence[float],
    p50: Sequence[float],
    p90: Sequence[float],
    what: str,
    shape: str = "linear",
) -> list[go.Scatter]:
    """A band over ``x``: P10-P90 filled (the P90 edge unlisted), P50 dashed, named ``{what} P10-P90`` and
    ``{what} P50``; ``shape="hv"`` holds each value until the next."""
    import plotly.graph_objects as go

    edge = {"width": 0, "shape": shape}
    return [
        go.Scatter(x=list(x), y=list(p90), name=f"{what} P90", mode="lines", line=edge, showlegend=False),
        go.Scatter(
            x=list(x),
            y=list(p10),
            name=f"{what} P10-P90",
            mode="lines",
            fill="tonexty",
            fillcolor=BAND,
            line=edge,
        ),
        go.Scatter(
            x=list(x),
            y=list(p50),
            name=f"{what} P50",
            mode="lines",
            line={"dash": "dash", "color": "#0072B2", "shape": shape},
        ),
    ]


def gantt_over_bands(
    actual: Mapping[str, TaskSpan], bands: Sequence[TaskBand], waits: Sequence[WaitSpan] = ()
) -> go.Figure:
    """Each task on its predicted lane: a pale bar from P10 start to P90 finish, a thin mark of the P50
    span, and the actual span as a solid bar (dark inside the band, red when it ended outside it), with
    the actual run's waiting hatched over it; every kind of mark has its legend entry."""
    import plotly.graph_objects as go

    rows = [band.task for band in bands]
    labels = [safe(f"{band.task} ({band.lane})") for band in bands]
    label_of = dict(zip(rows, labels, strict=True))
    figure = go.Figure()
    figure.add_trace(
        go.Bar(
            name="predicted P10-P90",
            orientation="h",
            y=labels,
            base=[band.start.p10 for band in bands],
            x=[band.finish.p90 - band.start.p10 for band in bands],
            marker={"color": BAND, "line": {"width": 0}},
            width=0.8,
            hovertext=[
                f"<b>{safe(b.task)}</b><br>start P10-P90 {b.start.p10:.1f}-{b.start.p90:.1f} min"
                f"<br>finish P10-P90 {b.finish.p10:.1f}-{b.finish.p90:.1f} min"
                for b in bands
            ],
            hoverinfo="text",
            meta={"tasks": rows},
        )
    )
    figure.add_trace(
        go.Bar(
            name="predicted P50",
            orientation="h",
            y=labels,
            base=[band.start.p50 for band in bands],
            x=[band.finish.p50 - band.start.p50 for band in bands],
            marker={"color": "rgba(0,0,0,0)", "line": {"color": "#0072B2", "width": 2}},
            width=0.8,
            hoverinfo="skip",
            meta={"tasks": rows},
        )
    )
    present = [band for band in bands if band.task in actual]
    outside = [not (band.finish.p10 <= actual[band.task].finish_min <= band.finish.p90) for band in present]
    inside = [band for band, out in zip(present, outside, strict=True) if not out]
    late_or_early = [band for band, out in zip(present, outside, strict=True) if out]
    for name, colour, chosen in (
        ("actual", ACTUAL, inside),
        ("actual, finished outside P10-P90", CRITICAL, late_or_early),
    ):
        if not chosen:
            continue
        figure.add_trace(
            go.Bar(
                name=name,
                orientation="h",
                y=[label_of[band.task] for band in chosen],
                base=[actual[band.task].start_min for band in chosen],
                x=[actual[band.task].finish_min - actual[band.task].start_min for band in chosen],
                marker={"color": colour},
                width=ACTUAL_WIDTH,
                hovertext=[
                    f"<b>{safe(band.task)}</b> on {safe(actual[band.task].lane)}<br>actual "
                    f"{actual[band.task].start_min:.1f}-{actual[band.task].finish_min:.1f} min "
                    f"({safe(actual[band.task].status)})"
                    + ("<br><b>finished outside P10-P90</b>" if colour == CRITICAL else "")
                    for band in chosen
                ],
                hoverinfo="text",
                meta={"tasks": [band.task for band in chosen], "outside": colour == CRITICAL},
            )
        )
    shown = [span for span in waits if span.task in label_of]
    for trace in wait_traces(shown, lambda span: label_of[span.task], width=ACTUAL_WIDTH, offset=None):
        figure.add_trace(trace)
    figure.update_layout(
        title={"text": "Actual run over the predicted P10-P90 band of each task", "automargin": True},
        barmode="overlay",
        xaxis={"title": {"text": "minutes since the run's start"}, "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(labels))},
        height=max(360, 90 + 30 * len(bands)),
        margin={"l": 170, "r": 20, "t": 40, "b": 50},
    )
    return figure


def actual_on_distribution(
    samples: Sequence[float], actual: float, percentiles: Percentiles, name: str, unit: str, percentile: float
) -> go.Figure:
    """The predicted distribution of ``name`` as a histogram (fixed bins, so the figure's size does not
    grow with the replications), P10/P50/P90 dotted, the actual value solid (near black inside P10-P90,
    red outside it, as on the page's Gantt chart); each line labelled in a row of its own and listed in
    the legend."""
    import plotly.graph_objects as go

    bins = histogram(samples)
    figure = go.Figure(
        go.Bar(
            x=bins.centres,
            y=bins.counts,
            width=bins.width,
            name="predicted (replications)",
            marker={"color": "#0072B2"},
            opacity=0.75,
        )
    )
    marks = [
        Mark(value, f"{label} {number(value, unit)}", "predicted P10, P50, P90")
        for label, value in (("P10", percentiles.p10), ("P50", percentiles.p50), ("P90", percentiles.p90))
    ]
    outside = not percentiles.p10 <= actual <= percentiles.p90
    marks.append(
        Mark(
            actual,
            f"actual {number(actual, unit)} (P{percentile:.0f})",
            "actual, outside P10-P90" if outside else "actual",
            dict(ACTUAL_OUTSIDE_LINE if outside else ACTUAL_LINE),
        )
    )
    shown = [*bins.centres, *(mark.x for mark in marks)]
    add_marks(figure, marks, min(shown, default=0.0), max(shown, default=1.0))
    figure.update_layout(
        title={"text": f"Actual {safe(name)} on the predicted distribution", "automargin": True},
        xaxis={"title": {"text": axis_title(safe(name), unit)}, **axis_format(unit)},
        yaxis={
            "title": {"text": "replications"},
            "range": [0, headroom(len(marks), max(bins.counts, default=1))],
        },
        bargap=0.02,
        height=DISTRIBUTION_PX,
        margin={"t": 40, "b": 50, "r": 20},
        meta={"actual": actual, "percentile": percentile},
    )
    return figure


def cumulative_against_band(
    band: CumulativeBand,
    actual_min: Sequence[float],
    actual_values: Sequence[float],
    name: str,
    unit: str = "",
) -> go.Figure:
    """Cumulative ``name`` over time: the predicted P10-P90 band filled, P50 dashed, the actual as near-black
    steps (red on this page means outside a band, which a curve is in places and not in others)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for trace in band_traces(band.grid_min, band.p10, band.p50, band.p90, "predicted"):
        figure.add_trace(trace)
    figure.add_trace(
        go.Scatter(
            x=list(actual_min),
            y=list(actual_values),
            name="actual",
            line={"shape": "hv", "color": ACTUAL, "width": 2},
        )
    )
    figure.update_layout(
        title={"text": f"Cumulative {safe(name)} over time: predicted band and actual", "automargin": True},
        xaxis={"title": {"text": "minutes since the run's start"}},
        yaxis={"title": {"text": axis_title(safe(name), unit) if unit else safe(name)}, **axis_format(unit)},
        height=400,
        margin={"t": 40, "b": 50, "r": 20},
    )
    return figure


@dataclass(frozen=True)
class ForecastFan:
    """The live forecasts of one quantity over a run: when each was made and its P10/P50/P90, the actual
    (None while the run is unfinished) and the moment from which every band held it (None: never)."""

    at_min: Sequence[float]
    p10: Sequence[float]
    p50: Sequence[float]
    p90: Sequence[float]
    actual: float | None
    held_from_min: float | None
    end_min: float | None = None
    """When the run ended (the last forecast stands until then); None: at the last forecast."""


def forecast_fan(fan: ForecastFan, name: str, unit: str) -> go.Figure:
    """The forecasts of ``name`` made during the run as a fan: their P10-P90 filled over the moment each was
    made, P50 dashed, converging on the actual (a near-black line); a dotted line marks the moment from
    which every forecast's band held the actual (how early they were right)."""
    import plotly.graph_objects as go

    times = list(fan.at_min)
    end = max([*times, fan.end_min or 0.0])

    def held(values: Sequence[float]) -> list[float]:
        # Each forecast stands until the next one; the last until the run's end.
        return [*values, values[-1]] if values else []

    steps = [*times, end] if times else []
    figure = go.Figure()
    for trace in band_traces(steps, held(fan.p10), held(fan.p50), held(fan.p90), "forecast", shape="hv"):
        figure.add_trace(trace)
    if fan.actual is not None:
        figure.add_trace(
            go.Scatter(
                x=[0.0, end],
                y=[fan.actual, fan.actual],
                name=f"actual {number(fan.actual, unit)}",
                mode="lines",
                line=dict(ACTUAL_LINE, width=2),
            )
        )
    if fan.held_from_min is not None:
        extremes = [*fan.p10, *fan.p90, *([] if fan.actual is None else [fan.actual])]
        low, high = min(extremes, default=0.0), max(extremes, default=1.0)
        figure.add_trace(
            go.Scatter(
                x=[fan.held_from_min, fan.held_from_min],
                y=[low, high],
                name=f"every band held the actual from {number(fan.held_from_min, 'min')}",
                mode="lines",
                line={"dash": "dot", "color": REFERENCE, "width": 2},
            )
        )
    figure.update_layout(
        title={"text": f"Live forecasts of the {safe(name)} over the run", "automargin": True},
        xaxis={
            "title": {"text": "minutes since the run's start, when the forecast was made"},
            "rangemode": "tozero",
        },
        yaxis={"title": {"text": axis_title(safe(name), unit)}, **axis_format(unit)},
        height=400,
        margin={"t": 40, "b": 50, "r": 20},
        meta={"actual": fan.actual, "held_from_min": fan.held_from_min, "forecasts": len(times)},
    )
    return figure
