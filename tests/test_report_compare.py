"""Plan-vs-actual figures, drawn from hand-made predictions and traces."""

from __future__ import annotations

from cycleplan.core.metrics import TaskSpan
from cycleplan.present.report.compare_figures import (
    CumulativeBand,
    Percentiles,
    TaskBand,
    actual_on_distribution,
    cumulative_against_band,
    gantt_over_bands,
)
from cycleplan.present.report.palette import CRITICAL

BANDS = [
    TaskBand("backend", "backend-1", Percentiles(0, 0, 0), Percentiles(100, 120, 150)),
    TaskBand("frontend", "frontend-1", Percentiles(20, 24, 30), Percentiles(110, 125, 160)),
    TaskBand("<b>qa</b>", "quality-1", Percentiles(0, 0, 0), Percentiles(50, 60, 75)),
]
ACTUAL = {
    "backend": TaskSpan(lane="backend-1", start_min=0, finish_min=130, status="complete"),
    "frontend": TaskSpan(lane="frontend-1", start_min=26, finish_min=170, status="complete"),
}


def test_gantt_over_bands_draws_band_median_and_actual() -> None:
    figure = gantt_over_bands(ACTUAL, BANDS)
    band, median, inside, outside = figure.data
    assert list(band.base) == [0, 20, 0]
    assert list(band.x) == [150, 140, 75]  # P10 start to P90 finish
    assert list(median.base) == [0, 24, 0] and list(median.x) == [120, 101, 60]
    # The unrun task has no actual bar; frontend finished after its P90, so it is red, in its own entry.
    assert inside.meta == {"tasks": ["backend"], "outside": False} and inside.name == "actual"
    assert list(inside.base) == [0] and list(inside.x) == [130]
    assert outside.meta == {"tasks": ["frontend"], "outside": True}
    assert outside.name == "actual, finished outside P10-P90" and outside.marker.color == CRITICAL
    assert list(outside.base) == [26] and list(outside.x) == [144]
    assert "&lt;b&gt;qa&lt;/b&gt; (quality-1)" in band.y


def test_actual_marked_on_distribution() -> None:
    samples = [100.0 + i for i in range(50)]
    figure = actual_on_distribution(samples, 140.0, Percentiles(105, 124.5, 144), "makespan", "min", 81.0)
    assert sum(figure.data[0].y) == len(samples)  # binned: every replication counted once
    assert min(figure.data[0].x) > 100 and max(figure.data[0].x) < 149
    lines = [shape.x0 for shape in figure.layout.shapes]
    assert lines == [105, 124.5, 144, 140.0]
    assert figure.layout.meta == {"actual": 140.0, "percentile": 81.0}
    assert any("P81" in annotation.text for annotation in figure.layout.annotations)


def test_cumulative_band_and_actual_steps() -> None:
    band = CumulativeBand([0, 60, 120], [0, 1000, 2000], [0, 1500, 3000], [0, 2000, 4000])
    figure = cumulative_against_band(band, [0, 30, 90, 125], [0, 800, 2600, 3900], "tokens")
    upper, lower, median, actual = figure.data
    assert list(upper.y) == [0, 2000, 4000] and lower.fill == "tonexty" and list(lower.y) == [0, 1000, 2000]
    assert list(median.y) == [0, 1500, 3000]
    assert list(actual.x) == [0, 30, 90, 125] and actual.line.shape == "hv"
