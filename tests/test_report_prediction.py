"""Prediction reports: figure data from the Prediction, a page that does not grow with replications,
the `report` command, and the page in a real browser."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import browser
import pytest
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import load_scenario
from cycleplan.planner import plan
from cycleplan.present.report import prediction_figures as figures
from cycleplan.present.report.page import render_page, write_page
from cycleplan.present.report.palette import CRITICAL
from cycleplan.present.report.reports import prediction_report
from cycleplan.sim import simulate
from cycleplan.sim.prediction import Prediction


@cache
def _prediction(replications: int, name: str = "course-crud.yaml") -> Prediction:
    return simulate(plan(load_scenario(SCENARIOS / name)), replications=replications, seed=3)


def test_headlines_come_from_the_summaries() -> None:
    prediction = _prediction(200)
    report = prediction_report(prediction)
    values = {h.label: (h.value, h.detail) for h in report.headlines}
    speedup = prediction.summaries["speedup"]
    assert values["speedup (P50)"] == (
        f"{speedup.p50:.2f}x",
        f"P10-P90 {speedup.p10:.2f}x - {speedup.p90:.2f}x",
    )
    assert values["scenario's claim"] == (
        "2.50x",
        "300 min (5h 00m) -> 120 min (2h 00m), from Parallel Agent Execution, Pattern 1",
    )
    assert report.facts["replications"] == "200" and report.facts["seed"] == "3"


def test_distribution_counts_every_replication_and_marks_percentiles_and_claim() -> None:
    prediction = _prediction(200)
    summary = prediction.summaries["speedup"]
    figure = figures.distribution(prediction.replications.values["speedup"], summary, "speedup", "x", 2.5)
    bars, curve = figure.data
    assert sum(bars.y) == 200
    assert curve.y[0] == 0 and curve.y[-1] == 1
    assert list(curve.x) == sorted(curve.x)
    lines = [shape.x0 for shape in figure.layout.shapes]
    assert lines == [summary.p10, summary.p50, summary.p90, 2.5]


def test_cost_utilization_waits_and_criticality_figures() -> None:
    prediction = _prediction(200)
    by_role = figures.tokens_and_cost_by_role(prediction)
    roles = [trace.name for trace in by_role.data if trace.x == ("tokens",)]
    assert roles == ["backend", "frontend", "quality"]
    utilization = figures.utilization_by_lane(prediction).data
    lanes = list(prediction.replications.utilization_by_lane)
    assert [lane for trace in utilization for lane in trace.x] == lanes
    for trace in utilization:  # a trace per role, holding that role's lanes
        assert {prediction.lanes[lane] for lane in trace.x} == {trace.meta["role"]}
        assert list(trace.y) == [prediction.summaries[f"utilization_by_lane.{lane}"].p50 for lane in trace.x]
    lost = figures.time_lost(prediction)
    assert lost.data[0].meta["names"][-1] == "waste_min" and len(lost.data[0].y) == 5
    assert lost.layout.yaxis.title.text == "lane-minutes per run"
    assert "summed over all 3 lanes" in lost.layout.title.subtitle.text
    critical = figures.criticality(prediction).data
    shares = [share for trace in critical for share in trace.x]
    assert shares == sorted(shares, reverse=True)
    assert {task for trace in critical for task in trace.meta["tasks"]} == set(prediction.criticality)
    assert all(share >= 0.5 for share in critical[0].x) and critical[0].marker.color == CRITICAL


def test_page_does_not_grow_with_replications() -> None:
    small = len(render_page(prediction_report(_prediction(100)), "cdn"))
    large = len(render_page(prediction_report(_prediction(1000)), "cdn"))
    assert abs(large - small) < 0.03 * small, (small, large)


def test_report_command_reads_prediction_and_plan(tmp_path: Path) -> None:
    runner = CliRunner()
    saved = tmp_path / "prediction.json"
    _prediction(200).save(saved)
    result = runner.invoke(app, ["report", str(saved), "-o", str(tmp_path / "p.html"), "--plotly-js", "cdn"])
    assert result.exit_code == 0, result.output
    assert "Prediction: Course CRUD" in (tmp_path / "p.html").read_text()
    plan_file = tmp_path / "plan.json"
    assert runner.invoke(app, ["plan", str(SCENARIOS / "payment.yaml"), "-o", str(plan_file)]).exit_code == 0
    result = runner.invoke(app, ["report", str(plan_file), "-o", str(tmp_path / "plan.html")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("content", ["not json", '{"config": {}, "replications": 3}', "[1, 2]"])
def test_report_command_refuses_other_files(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = CliRunner().invoke(app, ["report", str(bad), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2
    assert not (tmp_path / "x.html").exists()


def test_one_100_prediction_report_in_the_browser(tmp_path: Path) -> None:
    prediction = _prediction(300, "full-feature.yaml")
    page = tmp_path / "prediction.html"
    report = prediction_report(prediction, plan(load_scenario(SCENARIOS / "full-feature.yaml")))
    write_page(page, report)
    loaded = browser.load(page)
    assert loaded.console_errors() == []
    assert loaded.dom.count('class="main-svg"') >= len(report.figures)
    shot = browser.screenshot(page, tmp_path / "prediction.png", 1280, 2400)
    assert shot.stat().st_size > 50_000
