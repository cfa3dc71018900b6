"""Every kind of report page read as a person reads it, in headless Chromium: one colour per role on every
figure, a legend entry for every kind of mark, labels apart, numbers short, waiting drawn inside the
Gantt bars, units and sources named, and the page fitting a 1400 px and a 1000 x 700 window.

The pages come from the commands users run (``plan``, ``simulate``, ``sweep``, ``backtest --report``) or,
for a run against its prediction, from :func:`cycleplan.workflows.comparison.compare` on a run slower than its
prediction. What is checked is read off the drawn page: the SVG plotly drew and its computed styles.
"""

from __future__ import annotations

import json
import re
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any

import browser
import pytest
from support import ROOT, SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event, Plan
from cycleplan.planner import plan
from cycleplan.present.report.page import write_page
from cycleplan.present.report.reports import comparison_report
from cycleplan.sim import run_replication, simulate
from cycleplan.workflows.comparison import compare
from cycleplan.workflows.forecast import forecast

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

RED = "rgb(176, 0, 32)"
SIZES = ((1400, 900), (1000, 700))
PAGES = (
    "plan",
    "plan-crud",
    "simulate",
    "simulate-subagent",
    "simulate-rate",
    "compare",
    "sweep",
    "backtest",
)

# Read off the drawn page: for each figure its heading, the boxes of its SVG, texts, legend and plot
# areas, and the computed style of every path each trace drew (its role from the trace's meta).
PAGE_JS = """
const box = (element) => {
  const r = element.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
};
const styleOf = (path) => {
  const s = getComputedStyle(path);
  return {fill: s.fill, stroke: s.stroke, dash: s.strokeDasharray, fillOpacity: s.fillOpacity,
          strokeWidth: s.strokeWidth};
};
const traceOf = (element) => {
  const d = element.__data__;
  return d && d[0] && d[0].trace ? d[0].trace : null;
};
const roleOf = (trace) => (trace && trace.meta && trace.meta.role !== undefined ? trace.meta.role : null);
const figures = [...document.querySelectorAll(".js-plotly-plot")].map((gd) => {
  const heading = gd.closest(".figure").querySelector("h2");
  const subtitle = gd.closest(".figure").querySelector(".subtitle");
  const svg = gd.querySelector(".main-svg");
  // A mark's own paths: error bars (P10-P90 whiskers) are drawn in the axis colour, not the mark's.
  const drawn = (p) => p.getAttribute("d") && p.getAttribute("d") !== "M0,0Z" && !p.closest(".errorbar");
  return {
    title: heading ? heading.textContent : "",
    subtitle: subtitle ? subtitle.textContent : "",
    titleBox: heading ? box(heading) : null,
    plotlyTitle: !!gd.querySelector(".gtitle"),
    svg: box(svg),
    traces: [...gd.querySelectorAll(".cartesianlayer g.trace")].map((g) => {
      const trace = traceOf(g);
      return {
        name: trace ? trace.name : null,
        role: roleOf(trace),
        wait: trace && trace.meta ? trace.meta.wait || null : null,
        styles: [...g.querySelectorAll("path")].filter(drawn).map(styleOf),
      };
    }),
    shapes: [...gd.querySelectorAll(".shapelayer path")].map(styleOf),
    legend: [...gd.querySelectorAll("g.legend g.traces")].map((item) => ({
      text: item.querySelector(".legendtext").textContent,
      role: roleOf(traceOf(item)),
      styles: [...item.querySelectorAll("path")].map(styleOf),
    })),
    legendBox: gd.querySelector("g.legend .bg") ? box(gd.querySelector("g.legend .bg")) : null,
    plotAreas: [...gd.querySelectorAll(".draglayer .nsewdrag")].map(box),
    buttons: [...gd.querySelectorAll(".updatemenu-button")].map(box),
    annotations: [...gd.querySelectorAll("g.annotation")].map((a) => ({text: a.textContent, box: box(a)})),
    texts: [...gd.querySelectorAll("svg text")]
      .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
      .map((t) => ({text: t.textContent, box: box(t), legend: !!t.closest(".legend")})),
    y2ticks: [...gd.querySelectorAll("g.y2tick text")].map((t) => t.textContent),
    ticks: [...gd.querySelectorAll(".xaxislayer-above text, .yaxislayer-above text")]
      .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
      .map((t) => ({text: t.textContent, box: box(t)})),
    barTexts: [...gd.querySelectorAll(".cartesianlayer g.trace.bars text.bartext")]
      .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
      .map((t) => ({text: t.textContent, transform: t.getAttribute("transform") || "",
                    size: parseFloat(getComputedStyle(t).fontSize), box: box(t),
                    bar: box(t.closest("g.point").querySelector("path"))})),
  };
});
return {width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
        text: document.body.innerText, figures};
"""

SLOW_FRONTEND = """
name: small
spec: "Feature: course CRUD."
roles:
  backend: {cycle: {median_min: 5, p90_min: 8}}
  frontend: {cycle: {median_min: %s, p90_min: %s}}
tasks:
  - {id: backend, role: backend, cycles: 4, emits: {schema_ready: 2}}
  - {id: frontend, role: frontend, cycles: 3, waits: {schema_ready: 1}}
  - {id: quality, role: backend, cycles: 2, after: [backend, frontend]}
"""


def _cli(*args: str) -> None:
    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 0, done.output


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One page of every kind, each written as users write it."""
    folder = tmp_path_factory.mktemp("pages")
    out = {name: folder / f"{name}.html" for name in PAGES}
    _cli("plan", str(SCENARIOS / "full-feature.yaml"), "--report", str(out["plan"]))
    _cli("plan", str(SCENARIOS / "course-crud.yaml"), "--report", str(out["plan-crud"]))
    for name, scenario in (
        ("simulate", "full-feature.yaml"),
        ("simulate-subagent", "agent-session.yaml"),
        ("simulate-rate", "rate-limited.yaml"),
    ):
        _cli("simulate", str(SCENARIOS / scenario), "-n", "300", "-s", "1", "--report", str(out[name]))
    the_plan = plan(parse_scenario(SLOW_FRONTEND % (5, 8)))
    slow = parse_scenario(SLOW_FRONTEND % (15, 24))
    slow_run = run_replication(the_plan.model_copy(update={"scenario": slow}), 0, seed=11)
    actual = _with_forecasts(the_plan, slow_run.trace)
    prediction = simulate(the_plan, replications=400, seed=0)
    write_page(out["compare"], comparison_report(compare(the_plan, actual, prediction, run_id="r-slow")))
    crud = str(SCENARIOS / "course-crud.yaml")
    _cli("sweep", crud, "--lanes", "1..3", "-n", "100", "-w", "1", "--report", str(out["sweep"]))
    store = folder / "runs.db"
    data = ROOT / "tests" / "data" / "claude-code"
    for transcript in ("258c7280-ae70-4798-800f-63464d01a85d.jsonl", "subagent.jsonl", "tool_heavy.jsonl"):
        _cli("import", "claude-code", str(data / transcript), "--store", str(store))
    ids = _run_ids(store)
    _cli("backtest", *ids, "--store", str(store), "-n", "100", "--report", str(out["backtest"]))
    return out


def _with_forecasts(the_plan: Plan, trace: list[Event]) -> list[Event]:
    """``trace`` with the live forecasts the executor would have recorded a quarter, half and three
    quarters of the way through (so the compare page draws its forecast fans)."""
    origin, end = trace[0].timestamp, trace[-1].timestamp
    events = list(trace)
    for share in (0.25, 0.5, 0.75):
        at = origin + share * (end - origin)
        made = forecast(the_plan, [e for e in trace if e.timestamp <= at], (at - origin) / 60_000, seed=1)
        metadata = {"action": "forecast_updated", **made.to_json()}
        events.append(trace[0].model_copy(update={"timestamp": at, "metadata": metadata}))
    return sorted(events, key=lambda event: event.timestamp)


def _run_ids(store: Path) -> list[str]:
    done = CliRunner().invoke(app, ["runs", "--store", str(store), "--json"])
    assert done.exit_code == 0, done.output
    return [run["run_id"] for run in json.loads(done.stdout)]


@cache
def _read(page: Path, width: int, height: int) -> dict[str, Any]:
    return browser.probe(page, PAGE_JS, width, height)  # type: ignore[no-any-return]


def read(pages: dict[str, Path], name: str, size: tuple[int, int] = SIZES[0]) -> dict[str, Any]:
    return _read(pages[name], *size)


def _overlap(a: dict[str, float], b: dict[str, float], slack: float = 0.5) -> bool:
    return (
        min(a["right"], b["right"]) - max(a["left"], b["left"]) > slack
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > slack
    )


def _figure(page: dict[str, Any], title_start: str) -> dict[str, Any]:
    found = [figure for figure in page["figures"] if figure["title"].startswith(title_start)]
    assert len(found) == 1, [figure["title"] for figure in page["figures"]]
    return found[0]


# --------------------------------------------------------------------------------------------------
# 1. One colour per role on every figure of a page


@pytest.mark.parametrize("name", ["simulate", "simulate-subagent"])
def test_a_role_has_one_colour_on_every_figure_of_the_page(pages: dict[str, Path], name: str) -> None:
    page = read(pages, name)
    colours: dict[str, set[str]] = {}
    figures_of: dict[str, set[int]] = {}
    for index, figure in enumerate(page["figures"]):
        for trace in figure["traces"]:
            if trace["role"] is None:
                continue
            fills = {style["fill"] for style in trace["styles"]}
            assert fills, trace["name"]  # the role's trace drew something
            colours.setdefault(trace["role"], set()).update(fills)
            figures_of.setdefault(trace["role"], set()).add(index)
        for item in figure["legend"]:
            if item["role"] is not None:
                colours.setdefault(item["role"], set()).update(style["fill"] for style in item["styles"])
    assert colours, "no figure drew a role"
    for role, seen in colours.items():
        assert len(seen) == 1, f"{role} is drawn in {sorted(seen)}"
    distinct = [next(iter(seen)) for seen in colours.values()]
    assert len(set(distinct)) == len(distinct), colours  # and no two roles share one
    # Every role is on the Gantt charts, the tokens and cost, and the utilization: four figures or more.
    assert all(len(shown) >= 3 for shown in figures_of.values()), figures_of


# --------------------------------------------------------------------------------------------------
# 2. Every kind of mark has a legend entry


def _is_red(style: dict[str, str]) -> bool:
    filled = style["fill"] == RED and style["fillOpacity"] != "0"
    outlined = style["stroke"] == RED and style["strokeWidth"] not in ("0px", "0")
    return filled or outlined


@pytest.mark.parametrize("name", PAGES)
def test_every_kind_of_mark_has_a_legend_entry(pages: dict[str, Path], name: str) -> None:
    page = read(pages, name)
    for figure in page["figures"]:
        drawn = [style for trace in figure["traces"] for style in trace["styles"]] + figure["shapes"]
        legend = [style for item in figure["legend"] for style in item["styles"]]
        where = f"{name}: {figure['title']}"
        if any(_is_red(style) for style in drawn):
            assert any(_is_red(style) for style in legend), f"{where}: red marks without a legend entry"
        if any(style["fill"].startswith("url(") for style in drawn):
            assert any(style["fill"].startswith("url(") for style in legend), f"{where}: hatching unexplained"
        dashes = {style["dash"] for style in figure["shapes"] if style["dash"] != "none"}
        if dashes:
            assert any(style["dash"] != "none" for style in legend), f"{where}: dotted lines unexplained"


def test_the_marks_say_what_they_are(pages: dict[str, Path]) -> None:
    legends = {
        name: {item["text"] for figure in read(pages, name)["figures"] for item in figure["legend"]}
        for name in ("plan", "simulate", "compare", "backtest")
    }
    assert {"critical path (red outline)", "event emitted (dotted line)", "waiting for an event"} <= legends[
        "plan"
    ]
    assert {"P10, P50, P90", "scenario's claim", "critical in at least half the replications"} <= legends[
        "simulate"
    ]
    assert {"actual, finished outside P10-P90", "predicted P10, P50, P90", "waiting for an event"} <= legends[
        "compare"
    ]
    assert "actual, outside P10-P90" in legends["backtest"]
    # The live forecasts, as fans converging on the actual finish and cost.
    assert {"forecast P10-P90", "forecast P50"} <= legends["compare"]
    titles = [figure["title"] for figure in read(pages, "compare")["figures"]]
    assert any("Live forecasts of the finish time" in title for title in titles)
    assert any("Live forecasts of the total cost" in title for title in titles)


# --------------------------------------------------------------------------------------------------
# 3. Labels apart, numbers short, percent ticks on the CDFs


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("size", SIZES, ids=["1400", "1000"])
def test_no_two_labels_overlap(pages: dict[str, Path], name: str, size: tuple[int, int]) -> None:
    for figure in read(pages, name, size)["figures"]:
        for first, second in combinations(figure["annotations"], 2):
            assert not _overlap(first["box"], second["box"]), (name, figure["title"], first, second)
        if figure["legendBox"] is not None:
            for label in figure["annotations"]:
                assert not _overlap(label["box"], figure["legendBox"]), (name, figure["title"], label)


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("size", SIZES, ids=["1400", "1000"])
def test_no_label_runs_over_an_axis_s_tick_labels(
    pages: dict[str, Path], name: str, size: tuple[int, int]
) -> None:
    # Subplot titles and the marks' labels are annotations; at 1000 px "tokens by kind (P50, P10-P90)"
    # ran over the "35M" at the top of the axis beside it.
    for figure in read(pages, name, size)["figures"]:
        for label in figure["annotations"]:
            for tick in figure["ticks"]:
                assert not _overlap(label["box"], tick["box"]), (name, figure["title"], label, tick)


@pytest.mark.parametrize("name", ["plan", "simulate", "simulate-subagent"])
@pytest.mark.parametrize("size", SIZES, ids=["1400", "1000"])
def test_task_names_in_gantt_bars_are_level_legible_and_inside(
    pages: dict[str, Path], name: str, size: tuple[int, int]
) -> None:
    # A one-cycle task ("complete", a subagent's "explore") had its name turned on end at 4 px; a name
    # that does not fit its bar at a legible size is left to the hover.
    gantts = [figure for figure in read(pages, name, size)["figures"] if figure["barTexts"]]
    assert gantts, name
    for figure in gantts:
        sizes = {text["size"] for text in figure["barTexts"]}
        assert len(sizes) == 1 and min(sizes) >= 9, (figure["title"], sizes)  # one size on the chart
        for text in figure["barTexts"]:
            assert "rotate" not in text["transform"], (figure["title"], text)
            assert text["box"]["left"] >= text["bar"]["left"] - 1, (figure["title"], text)
            assert text["box"]["right"] <= text["bar"]["right"] + 1, (figure["title"], text)


def test_an_actual_is_red_only_outside_its_band(pages: dict[str, Path]) -> None:
    # Red on a page means outside a band (and the critical path, a claim); an actual inside P10-P90 was
    # drawn red on the distributions and every actual curve red, while the Gantt drew it near black.
    page = read(pages, "compare")
    seen = set()
    for figure in page["figures"]:
        if figure["title"].endswith("on the predicted distribution"):
            label = next(a["text"] for a in figure["annotations"] if a["text"].startswith("actual"))
            rank = float(re.search(r"\(P(\d+(?:\.\d)?)\)", label).group(1))  # type: ignore[union-attr]
            if 10 < rank < 90:
                entry, red = "actual", False
            elif rank < 10 or rank > 90:
                entry, red = "actual, outside P10-P90", True
            else:
                continue
            seen.add(red)
            item = next(i for i in figure["legend"] if i["text"] == entry)
            assert any(_is_red(style) for style in item["styles"]) is red, (figure["title"], item)
            assert any(_is_red(style) and style["strokeWidth"] == "3px" for style in figure["shapes"]) is red
        if figure["title"].startswith("Cumulative"):
            actual = [trace for trace in figure["traces"] if trace["name"] == "actual"]
            styles = [style for trace in actual for style in trace["styles"]]
            assert styles and not any(_is_red(style) for style in styles), figure["title"]
    assert seen == {True, False}, "the page should show an actual inside its band and one outside"


def test_numbers_are_short_and_cdf_ticks_are_percentages(pages: dict[str, Path]) -> None:
    for name in PAGES:
        page = read(pages, name)
        for figure in page["figures"]:
            for text in figure["texts"]:
                assert not re.search(r"\d[eE][+-]\d", text["text"]), (name, text)  # 2.423e+06
                assert not re.fullmatch(r"[$]?\d{6,}(\.\d+)?", text["text"]), (name, text)  # 2423000
    compared = read(pages, "compare")
    labels = [a["text"] for figure in compared["figures"] for a in figure["annotations"]]
    assert any(re.fullmatch(r"actual \d+(\.\d+)?[kM]? tokens \(P\d+(\.\d)?\)", label) for label in labels)
    assert any(re.fullmatch(r"actual \$\d+\.\d+ \(P\d+(\.\d)?\)", label) for label in labels), labels
    predicted = read(pages, "simulate")
    for figure in (_figure(predicted, "speedup: P50"), _figure(predicted, "makespan: P50")):
        assert set(figure["y2ticks"]) <= {"0%", "25%", "50%", "75%", "100%"}, figure["y2ticks"]
        assert "100%" in figure["y2ticks"] and "0%" in figure["y2ticks"]


# --------------------------------------------------------------------------------------------------
# 4. Waiting inside a task's bar


@pytest.mark.parametrize(
    ("name", "cause", "entry"),
    [
        ("simulate", "sync", "waiting for an event"),
        ("simulate-subagent", "subagents", "blocked on its subagents"),
        ("simulate-rate", "rate_limit", "held by rate limits"),
        ("compare", "sync", "waiting for an event"),
        ("plan", "sync", "waiting for an event"),
    ],
)
def test_waits_are_drawn_hatched_in_the_gantt(
    pages: dict[str, Path], name: str, cause: str, entry: str
) -> None:
    page = read(pages, name)
    gantts = [f for f in page["figures"] if any(t["wait"] == cause for t in f["traces"])]
    assert gantts, f"{name}: no Gantt draws {cause} waits"
    for figure in gantts:
        waits = [trace for trace in figure["traces"] if trace["wait"] == cause]
        assert all(style["fill"].startswith("url(") for trace in waits for style in trace["styles"])
        assert entry in {item["text"] for item in figure["legend"]}


# --------------------------------------------------------------------------------------------------
# 5-7. Units, claims and cycle counts say where they come from


def test_where_the_time_goes_says_it_sums_lane_minutes(pages: dict[str, Path]) -> None:
    figure = _figure(read(pages, "simulate"), "Where the time goes")
    assert "lane-minutes per run, summed over all 8 lanes" in figure["subtitle"]
    assert "lane-minutes per run" in {text["text"] for text in figure["texts"]}  # the y axis


def test_the_claim_is_the_scenario_s_and_the_template_s_guide_is_named(pages: dict[str, Path]) -> None:
    for name in ("plan", "plan-crud", "simulate"):
        text = read(pages, name)["text"]
        assert "GUIDE'S CLAIM" not in text.upper()
        assert "SCENARIO'S CLAIM" in text
    assert "from Parallel Agent Execution, Pattern 1" in read(pages, "plan-crud")["text"]
    assert "The one-100 template's guide says: A cycle takes 2-5 minutes" in read(pages, "plan")["text"]
    assert "template's guide" not in read(pages, "plan-crud")["text"]


def test_a_scenario_without_a_template_counts_plain_cycles(pages: dict[str, Path]) -> None:
    text = read(pages, "plan-crud")["text"]
    assert "from 25 cycles" in text and "25 cycles -> 10 wall cycles" in text
    assert "template cycles" not in text
    assert "from the one-100 template's 100 cycles" in read(pages, "plan")["text"]


# --------------------------------------------------------------------------------------------------
# 8. The page fits the window


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("size", SIZES, ids=["1400x900", "1000x700"])
def test_the_page_fits_the_window(pages: dict[str, Path], name: str, size: tuple[int, int]) -> None:
    page = read(pages, name, size)
    assert page["scrollWidth"] <= page["width"], "the page scrolls sideways"
    for figure in page["figures"]:
        where = f"{name} at {size}: {figure['title']}"
        svg = figure["svg"]
        if figure["titleBox"] is not None:
            assert figure["titleBox"]["right"] <= page["width"], where
        assert svg["right"] <= page["width"] and svg["left"] >= 0, where
        for text in figure["texts"]:
            cut = (
                text["box"]["left"] < svg["left"] - 1
                or text["box"]["top"] < svg["top"] - 1
                or text["box"]["right"] > svg["right"] + 1
                or text["box"]["bottom"] > svg["bottom"] + 1
            )
            assert not cut, f"{where}: {text['text']!r} is cut off"
            if figure["legendBox"] is not None and not text["legend"]:
                assert not _overlap(text["box"], figure["legendBox"]), f"{where}: the legend covers {text}"
        for area in figure["plotAreas"]:
            if figure["legendBox"] is not None:
                assert not _overlap(figure["legendBox"], area), f"{where}: the legend covers the plot"
            for button in figure["buttons"]:
                assert not _overlap(button, area), f"{where}: a button covers the plot"


def test_one_ideal_replication_reads_as_one_value(tmp_path: Path) -> None:
    # `simulate --ideal -n 1 --report` headed its numbers "(P50)" with "P10-P90 2.50x - 2.50x" under
    # them and said they came "from 1 replications with random cycle durations".
    page = tmp_path / "ideal.html"
    _cli("simulate", str(SCENARIOS / "course-crud.yaml"), "--ideal", "-n", "1", "--report", str(page))
    text = browser.probe(page, "return document.body.innerText", 1000, 700)
    head = text.split("The plan's own arithmetic")[0]
    assert "(P50)" not in head.upper() and "P10-P90" not in head, head
    assert "the numbers above come from one replication of the ideal model" in text
    assert "1 replications" not in text and "random cycle durations" not in text
