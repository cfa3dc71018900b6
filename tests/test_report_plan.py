"""Plan reports: the Gantt figure's data, escaping of untrusted text, and the page in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import browser
import pytest
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import load_scenario, parse_scenario
from cycleplan.core.model import Plan
from cycleplan.planner import plan
from cycleplan.present.report.page import render_page, write_page
from cycleplan.present.report.palette import CRITICAL
from cycleplan.present.report.plan_figures import gantt
from cycleplan.present.report.reports import plan_report

HOSTILE = """
name: "<script>document.body.setAttribute('data-pwned','script')</script>"
description: "<img src=x onerror=\\"document.body.setAttribute('data-pwned','img')\\">"
roles:
  "backend": {cycle: {kind: fixed, value_min: 5}}
tasks:
  - id: x
    role: backend
    cycles: 2
    description: "<img src=x onerror=\\"document.body.setAttribute('data-pwned','desc')\\">"
"""


def _one_100(lanes: dict[str, int] | None = None) -> Plan:
    scenario = load_scenario(SCENARIOS / "full-feature.yaml")
    return plan(scenario.with_lanes(lanes) if lanes else scenario)


def test_gantt_bars_match_the_plan() -> None:
    result = _one_100()
    figure = gantt(result)
    roles = [t for t in figure.data if "role" in t.meta]
    minute_traces = [t for t in roles if t.meta["unit"] == "minutes"]
    cycle_traces = [t for t in roles if t.meta["unit"] == "wall cycles"]
    assert len(minute_traces) == len(cycle_traces) == 8  # one per role
    planned = {p.task: p for _, p in result.planned_tasks()}
    for trace in minute_traces:
        for task, base, length in zip(trace.meta["tasks"], trace.base, trace.x, strict=True):
            assert base == planned[task].start_min
            assert base + length == pytest.approx(planned[task].finish_min)
    frontend = next(t for t in cycle_traces if "frontend" in t.meta["tasks"])
    assert frontend.base[frontend.meta["tasks"].index("frontend")] == 12
    assert all(trace.visible is True for trace in minute_traces)
    assert all(trace.visible is False for trace in cycle_traces)


def test_gantt_outlines_the_critical_path() -> None:
    result = _one_100({"backend": 2})
    figure = gantt(result)
    (outline,) = [t for t in figure.data if t.meta.get("critical") and t.meta["unit"] == "minutes"]
    assert set(outline.meta["tasks"]) == set(result.critical_path)
    assert "integration" in outline.meta["tasks"] and "knowledge" not in outline.meta["tasks"]
    assert outline.marker.line.color == CRITICAL and outline.name == "critical path (red outline)"
    planned = {p.task: p for _, p in result.planned_tasks()}
    for task, base, length in zip(outline.meta["tasks"], outline.base, outline.x, strict=True):
        assert (base, base + length) == pytest.approx((planned[task].start_min, planned[task].finish_min))


def test_units_button_switches_visibility() -> None:
    menu = gantt(_one_100()).layout.updatemenus[0]
    labels = [button.label for button in menu.buttons]
    assert labels == ["minutes", "wall cycles"]
    figure = gantt(_one_100())
    cycles_visible = menu.buttons[1].args[0]["visible"]
    for trace, shown in zip(figure.data, cycles_visible, strict=True):
        unit = (trace.meta or {}).get("unit")
        assert shown == (unit in ("wall cycles", None))  # legend-only marks stay in both views
    assert sum(cycles_visible) == 8 + 1 + 1 + 1  # roles, the wait before frontend, outline, event line


def test_plan_report_headlines() -> None:
    report = plan_report(_one_100())
    values = {h.label: (h.value, h.detail) for h in report.headlines}
    assert values["planned speedup"][0] == "1.54x"
    assert values["cycles"] == ("65 wall", "from the one-100 template's 100 cycles")
    assert values["scenario's claim"] == (
        "2.50x",
        "600 min (10h 00m) -> 240 min (4h 00m), from Parallel Agent Execution, Performance Metrics",
    )
    assert "The one-100 template's guide says: A cycle takes 2-5 minutes" in " ".join(report.notes)


def test_untrusted_text_is_escaped_in_figures_and_page() -> None:
    result = plan(parse_scenario(HOSTILE))
    figure = gantt(result)
    assert "<script>" not in str(figure.layout.title.text)
    assert "&lt;script&gt;" in str(figure.layout.title.text)
    page = render_page(plan_report(result), plotly_js="cdn")
    assert "<script>document" not in page
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=" in page


def test_cdn_page_is_small_and_embedded_page_carries_plotly(tmp_path: Path) -> None:
    report = plan_report(_one_100())
    small = write_page(tmp_path / "cdn.html", report, "cdn")
    large = write_page(tmp_path / "embedded.html", report, "embed")
    assert small < 100_000 < 3_000_000 < large
    assert not (tmp_path / ".cdn.html.tmp").exists()


def test_plan_command_writes_report(tmp_path: Path) -> None:
    target = tmp_path / "plan.html"
    result = CliRunner().invoke(app, ["plan", str(SCENARIOS / "course-crud.yaml"), "--report", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("<!DOCTYPE html>")


# --------------------------------------------------------------------------------------------------
# In a real browser, network off


def test_one_100_report_renders_offline_without_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "one-100.html"
    write_page(page, plan_report(_one_100()))
    loaded = browser.load(page)
    assert loaded.console_errors() == []
    assert 'class="main-svg"' in loaded.dom  # plotly drew the figure
    assert "foundation" in loaded.dom
    shot = browser.screenshot(page, tmp_path / "one-100.png", 1280, 900)
    assert shot.stat().st_size > 20_000


def test_network_is_really_off_in_browser_tests(tmp_path: Path) -> None:
    """The CDN variant cannot fetch plotly.js under the test browser's flags: proof the network is off."""
    page = tmp_path / "cdn.html"
    write_page(page, plan_report(_one_100()), "cdn")
    loaded = browser.load(page)
    assert 'class="main-svg"' not in loaded.dom
    assert any("Plotly is not defined" in line for line in loaded.console_errors())


def test_hostile_names_run_no_script_in_the_browser(tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    write_page(page, plan_report(plan(parse_scenario(HOSTILE))))
    loaded = browser.load(page)
    assert 'class="main-svg"' in loaded.dom
    assert re.search(r"<body[^>]*data-pwned", loaded.dom) is None
    assert "&lt;script&gt;document.body.setAttribute" in loaded.dom  # shown as text


def test_gantt_marks_sync_points_in_both_units() -> None:
    result = _one_100()
    (point,) = result.sync_points
    assert (point.event, point.task, point.at_cycle, point.waiters) == (
        "schema_ready",
        "backend",
        12,
        ["frontend"],
    )
    figure = gantt(result)
    assert [shape.x0 for shape in figure.layout.shapes] == [point.at_min]  # minutes shown first
    cycles_button = figure.layout.updatemenus[0].buttons[1]
    assert [shape["x0"] for shape in cycles_button.args[1]["shapes"]] == [12]
