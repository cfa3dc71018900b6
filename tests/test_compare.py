"""Comparison of a run with its prediction: percentiles, CRPS, per-task bands, the verdict, the
`compare` command on executed and imported runs, and its report (in a real browser too)."""

from __future__ import annotations

import itertools
import json
import subprocess
import textwrap
from functools import cache
from pathlib import Path

import browser
import numpy as np
import pytest
from support import ROOT, SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import load_scenario, parse_scenario
from cycleplan.core.metrics import metrics
from cycleplan.core.model import Event, Plan, Scenario
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.planner import plan
from cycleplan.present.render_runs import comparison_view
from cycleplan.present.report.page import write_page
from cycleplan.present.report.reports import comparison_report
from cycleplan.present.terminal import to_text
from cycleplan.sim import run_replication, simulate
from cycleplan.sim.prediction import Percentiles, Prediction
from cycleplan.store import RunStore
from cycleplan.workflows.bands import HEADLINE, crps, percentile_of, place, place_in_band
from cycleplan.workflows.comparison import (
    SPEEDUP_DEFINITION,
    Comparison,
    ComparisonError,
    compare,
    compare_run,
    cumulative_actual,
    fidelity,
    first_cycle_starts,
    summary_json,
)
from cycleplan.workflows.importers import import_claude_code, store_run

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
runner = CliRunner()

SMALL = """
    name: small
    spec: "Feature: course CRUD."
    roles:
      backend: {cycle: {median_min: 5, p90_min: 8}}
      frontend: {cycle: {median_min: 5, p90_min: 8}}
    tasks:
      - {id: backend, role: backend, cycles: 4, emits: {schema_ready: 2}}
      - {id: frontend, role: frontend, cycles: 3, waits: {schema_ready: 1}}
      - {id: quality, role: backend, cycles: 2, after: [backend, frontend]}
"""


# --------------------------------------------------------------------------------------------------
# Scores


def test_percentile_is_the_share_at_or_below_with_ties_counted_half() -> None:
    samples = [1.0, 2.0, 2.0, 3.0]
    assert percentile_of(samples, 0.5) == 0.0
    assert percentile_of(samples, 1.0) == 12.5  # one tie of four: half of it
    assert percentile_of(samples, 2.0) == 50.0
    assert percentile_of(samples, 2.5) == 75.0
    assert percentile_of(samples, 9.0) == 100.0
    assert percentile_of([4.0] * 10, 4.0) == 50.0


def _crps_by_pairs(samples: list[float], actual: float) -> float:
    spread = sum(abs(x - actual) for x in samples) / len(samples)
    pairs = sum(abs(x - y) for x, y in itertools.product(samples, samples)) / len(samples) ** 2
    return spread - pairs / 2


def test_crps_matches_the_definition_and_rewards_sharp_right_predictions() -> None:
    generator = np.random.default_rng(3)
    for size in (1, 2, 7, 50):
        samples = generator.lognormal(3, 0.4, size).tolist()
        for actual in (0.0, float(np.median(samples)), 100.0):
            assert crps(samples, actual) == pytest.approx(_crps_by_pairs(samples, actual), abs=1e-9)
    assert crps([5.0], 7.0) == 2.0  # a point forecast scores its absolute error
    assert crps([5.0] * 10, 5.0) == 0.0
    wide = generator.normal(100, 30, 2000)
    sharp = generator.normal(100, 5, 2000)
    assert crps(sharp, 101.0) < crps(wide, 101.0)
    assert crps(sharp, 160.0) > crps(wide, 160.0)


def test_placement_in_samples_and_in_a_band() -> None:
    samples = np.arange(1.0, 101.0)
    placed = place(samples, 95.5, "min")
    assert (placed.p10, placed.p50, placed.p90) == pytest.approx((10.9, 50.5, 90.1))
    assert placed.percentile == 95.0 and not placed.inside and placed.score > 1.2816
    assert place(samples, 50.0, "min").inside
    band = Percentiles(p10=10, p50=20, p90=40)
    assert place_in_band(band, 10, "min").percentile == pytest.approx(10, abs=1e-6)
    assert place_in_band(band, 20, "min").percentile == pytest.approx(50)
    assert place_in_band(band, 40, "min").percentile == pytest.approx(90, abs=1e-6)
    assert place_in_band(band, 40, "min").inside and not place_in_band(band, 41, "min").inside
    # A band of zero width (a task that always starts at 0) does not make a small difference a miss.
    assert place_in_band(Percentiles(p10=0, p50=0, p90=0), 0.05, "min").inside
    assert not place_in_band(Percentiles(p10=0, p50=0, p90=0), 5, "min").inside


# --------------------------------------------------------------------------------------------------
# Against simulated traces


@cache
def _plan(text: str = SMALL) -> Plan:
    return plan(parse_scenario(textwrap.dedent(text)))


@cache
def _prediction(text: str = SMALL, replications: int = 400, seed: int = 0) -> Prediction:
    return simulate(_plan(text), replications=replications, seed=seed)


def test_task_starts_read_from_a_trace_are_the_simulators() -> None:
    """A task's start is when its first cycle began, after any wait before it: read from a trace, it is
    what the simulator records, rate limits, failures and handoffs included."""
    scenarios = [
        load_scenario(SCENARIOS / "rate-limited.yaml"),
        parse_scenario(
            textwrap.dedent(
                """
                roles:
                  backend: {sync: {minutes: 2}, failure: {probability_per_cycle: 0.3, max_retries: 5}}
                  frontend: {sync: {minutes: 3, handoff_tokens: 300}}
                tasks:
                  - {id: backend, role: backend, cycles: 4, emits: {schema: 2}}
                  - {id: frontend, role: frontend, cycles: 3, waits: {schema: 1}}
                  - {id: docs, role: frontend, cycles: 2, after: [backend], race: docs}
                  - {id: docs-too, role: backend, cycles: 2, after: [backend], race: docs}
                """
            )
        ),
    ]
    for scenario in scenarios:
        planned = plan(scenario)
        for seed in range(3):
            single = simulate(planned, replications=1, seed=seed)
            starts = first_cycle_starts(single.trace)
            for task, predicted in single.tasks.items():
                if predicted.start is None:
                    assert task not in starts
                else:
                    assert starts[task] == pytest.approx(predicted.start.p50, abs=1e-9)


def test_a_replication_compared_with_its_own_prediction() -> None:
    the_plan = _plan()
    prediction = _prediction()
    replication = run_replication(the_plan, 7, seed=0)
    comparison = compare(the_plan, replication.trace, prediction, run_id="r7")
    values = prediction.replications.values
    assert comparison.makespan_min.actual == values["makespan_min"][7]
    assert comparison.makespan_min.percentile == percentile_of(
        values["makespan_min"], values["makespan_min"][7]
    )
    assert comparison.speedup.actual == pytest.approx(values["speedup"][7])
    assert comparison.tokens_total.actual == values["tokens_total"][7]
    assert comparison.cost_usd.actual == pytest.approx(values["cost_usd"][7])
    summary = prediction.summaries["makespan_min"]
    assert (comparison.makespan_min.p10, comparison.makespan_min.p90) == (summary.p10, summary.p90)
    assert comparison.makespan_crps_min == pytest.approx(
        crps(values["makespan_min"], values["makespan_min"][7])
    )
    assert [row.task for row in comparison.tasks] == ["backend", "frontend", "quality"]
    frontend = next(row for row in comparison.tasks if row.task == "frontend")
    span = metrics(replication.trace).tasks["frontend"]
    assert frontend.finish is not None and frontend.finish.actual == span.finish_min
    assert frontend.start is not None and frontend.start.actual > span.start_min  # it waited for the schema
    assert frontend.duration is not None
    assert frontend.duration.actual == pytest.approx(frontend.finish.actual - frontend.start.actual)
    assert set(comparison.tokens_by_role) == {"backend", "frontend"}
    curve = comparison.cumulative
    assert curve.tokens[-1] == comparison.tokens_total.actual
    assert curve.cost_usd[-1] == pytest.approx(comparison.cost_usd.actual)
    assert curve.minutes == sorted(curve.minutes)


def test_a_run_like_its_prediction_is_said_to_be_inside() -> None:
    the_plan = _plan()
    prediction = _prediction()
    values = prediction.replications.values
    for replication in range(40):
        comparison = compare(the_plan, run_replication(the_plan, replication, seed=0).trace, prediction)
        if comparison.inside:
            break
    assert all(comparison.placement(name).inside for name in HEADLINE)
    headline = comparison.verdict.headline
    assert headline.startswith("Inside the prediction: makespan P"), headline
    assert "each from P10 to P90" in headline
    outside = [row.task for row in comparison.tasks if any(row.outside.values())]
    assert ("every task inside its band" in headline) == (not outside)
    assert all(name in headline for name in outside)
    assert values["makespan_min"][replication] == comparison.makespan_min.actual


def _variant(scenario: Scenario, role: str, **changes: object) -> Scenario:
    """``scenario`` with some of ``role``'s settings replaced (nested dicts merged one level down)."""
    data = scenario.model_dump()
    settings = data["roles"][role]
    for key, value in changes.items():
        if isinstance(value, dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return Scenario.model_validate(data)


def _actual_from(the_plan: Plan, scenario: Scenario, seed: int = 11) -> list[Event]:
    """A trace of ``the_plan`` run under another model: what happens when the prediction is wrong."""
    return run_replication(the_plan.model_copy(update={"scenario": scenario}), 0, seed=seed).trace


def test_the_verdict_names_the_role_whose_history_grew_faster() -> None:
    the_plan = _plan()
    grown = _variant(the_plan.scenario, "frontend", tokens={"history_growth": 6.0})
    comparison = compare(the_plan, _actual_from(the_plan, grown), _prediction())
    headline = comparison.verdict.headline
    assert headline.startswith("Tokens above P90"), headline
    assert "frontend used" in headline
    assert "history_growth" in headline and "underestimated" in headline
    assert comparison.deviations[0].placement.score >= comparison.deviations[-1].placement.score


def test_the_verdict_names_the_task_that_ran_long() -> None:
    the_plan = _plan()
    slow = _variant(the_plan.scenario, "frontend", cycle={"median_min": 15, "p90_min": 24})
    comparison = compare(the_plan, _actual_from(the_plan, slow), _prediction())
    headline = comparison.verdict.headline
    assert headline.startswith("Makespan above P90"), headline
    assert "frontend took" in headline and ", on the run's critical path" in headline
    frontend = next(row for row in comparison.tasks if row.task == "frontend")
    assert frontend.duration is not None and not frontend.duration.inside
    assert frontend.duration.percentile > 99


def test_the_verdict_names_failures_and_cheaper_runs() -> None:
    the_plan = _plan()
    flaky = _variant(the_plan.scenario, "backend", failure={"probability_per_cycle": 0.6, "max_retries": 20})
    comparison = compare(the_plan, _actual_from(the_plan, flaky), _prediction())
    assert not comparison.inside
    words = to_text(comparison_view(comparison))
    assert "failed attempts came to" in words
    assert "failure.probability_per_cycle is likely underestimated" in words or (
        "failed attempt is sent and billed again" in words
    )
    terse = _variant(
        _variant(the_plan.scenario, "backend", tokens={"output": {"median": 50, "p90": 60}}),
        "frontend",
        tokens={"output": {"median": 50, "p90": 60}},
    )
    comparison = compare(the_plan, _actual_from(the_plan, terse), _prediction())
    headline = comparison.verdict.headline
    assert headline.startswith(("Tokens below P10", "Cost below P10")), headline
    assert "output" in headline


def test_a_prediction_of_other_tasks_is_refused() -> None:
    other = simulate(plan(load_scenario(SCENARIOS / "rag.yaml")), replications=20, seed=0)
    trace = run_replication(_plan(), 0, seed=0).trace
    with pytest.raises(ComparisonError, match="the prediction is of other tasks"):
        compare(_plan(), trace, other)
    with pytest.raises(ComparisonError, match="no events yet"):
        compare(_plan(), [], _prediction())


def test_json_holds_the_run_numbers_with_their_percentiles_and_not_the_arrays() -> None:
    comparison = compare(_plan(), run_replication(_plan(), 3, seed=0).trace, _prediction(), run_id="r3")
    data = json.loads(json.dumps(summary_json(comparison)))
    for name in ("makespan_min", "speedup", "tokens_total", "cost_usd", "utilization"):
        assert {"actual", "p10", "p50", "p90", "percentile"} <= set(data[name])
        assert 0 <= data[name]["percentile"] <= 100
    assert "prediction" not in data and "cumulative" not in data
    assert data["speedup_definition"] == SPEEDUP_DEFINITION
    assert {"start", "finish", "duration"} <= set(data["tasks"][0])
    assert data["verdict"]["headline"] == comparison.verdict.headline
    assert len(data["verdict"]["findings"]) == len(comparison.verdict.findings)
    assert all("outside" in row for row in data["tasks"])
    assert len(json.dumps(data)) < 40_000
    text = to_text(comparison_view(comparison))
    assert "verdict" in text and "frontend" in text and "P10" in text


def test_fidelity_scores_many_runs() -> None:
    the_plan = _plan()
    prediction = _prediction()
    comparisons = [
        compare(the_plan, run_replication(the_plan, 0, seed=seed).trace, prediction) for seed in range(1, 41)
    ]
    scores = fidelity(comparisons)
    assert scores.runs == 40
    inside = [c.makespan_min.p10 <= c.makespan_min.actual <= c.makespan_min.p90 for c in comparisons]
    assert scores.coverage == sum(inside) / 40
    # Runs drawn from the very model that predicts them: calibrated, within sampling error.
    assert 0.6 <= scores.coverage <= 0.95
    assert abs(scores.speedup_error) < 0.05 and abs(scores.makespan_error) < 0.05
    assert scores.crps_min == pytest.approx(np.mean([c.makespan_crps_min for c in comparisons]))
    assert 0 < scores.crps_relative < 0.15


def test_cumulative_of_an_empty_trace_is_a_point() -> None:
    assert cumulative_actual([]).tokens == [0.0]


# --------------------------------------------------------------------------------------------------
# Runs of the store and the command


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A store holding one emulated run of SMALL, and the scenario file."""
    folder = tmp_path_factory.mktemp("compare")
    scenario = folder / "small.yaml"
    scenario.write_text(textwrap.dedent(SMALL))
    options = ExecuteOptions(agent="emulated", time_scale=5_000, seed=4, max_output_tokens=100_000)
    result = execute(_plan(), options, store=folder / "runs.db", progress="none")
    assert result.status == "complete"
    return folder / "runs.db", result.run_id, scenario


def test_compare_run_simulates_the_runs_own_plan(executed: tuple[Path, str, Path]) -> None:
    store, run_id, _ = executed
    comparison = compare_run(store, run_id, replications=300, seed=2)
    assert (comparison.run_id, comparison.status, comparison.agent) == (run_id, "complete", "emulated")
    assert comparison.prediction_source == "simulated" and comparison.replications == 300
    assert comparison.time_scale == 5_000
    # The emulated run draws what replication 0 of seed 4 draws: the same tokens, to the token.
    assert comparison.tokens_total.actual == run_replication(_plan(), 0, seed=4).metrics.tokens_total
    # Its minutes are the scenario's, not the seconds it took.
    assert (
        comparison.makespan_min.p10 * 0.5 < comparison.makespan_min.actual < comparison.makespan_min.p90 * 2
    )
    assert comparison.verdict
    with RunStore(store) as runs:
        assert runs.run(run_id).status == "complete"  # comparing writes nothing


def test_compare_run_refuses_unknown_runs_and_missing_stores(
    executed: tuple[Path, str, Path], tmp_path: Path
) -> None:
    store, run_id, _ = executed
    with pytest.raises(ComparisonError, match=rf"no run 'nope' in .*recent runs: {run_id}"):
        compare_run(store, "nope")
    with pytest.raises(ComparisonError, match="no run store here"):
        compare_run(tmp_path / "absent.db", run_id)


def test_an_imported_run_is_compared_with_its_synthesised_plan(tmp_path: Path) -> None:
    session = ROOT / "tests" / "data" / "claude-code" / "258c7280-ae70-4798-800f-63464d01a85d.jsonl"
    run_id, _ = store_run(import_claude_code(session), tmp_path / "runs.db")
    comparison = compare_run(tmp_path / "runs.db", run_id, replications=200)
    assert comparison.agent == "claude-code" and comparison.tasks
    assert comparison.tokens_total.actual > 0 and comparison.verdict


def test_compare_command_prints_json_and_writes_the_report(
    executed: tuple[Path, str, Path], tmp_path: Path
) -> None:
    store, run_id, _ = executed
    page = tmp_path / "out" / "compare.html"
    result = runner.invoke(
        app, ["compare", run_id, "--store", str(store), "-n", "200", "--json", "--report", str(page)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for name in ("makespan_min", "speedup", "tokens_total", "cost_usd"):
        assert {"actual", "p10", "p50", "p90", "percentile"} <= set(data[name])
    assert data["replications"] == 200 and data["run_id"] == run_id
    html = page.read_text(encoding="utf-8")
    assert "Run against prediction: small" in html and "predicted P10-P90" in html
    assert not list(page.parent.glob(".*.tmp"))
    text = runner.invoke(app, ["compare", run_id, "--store", str(store), "-n", "200"])
    assert text.exit_code == 0 and "verdict" in text.stdout and "percentile" in text.stdout


def test_compare_command_takes_a_saved_prediction(executed: tuple[Path, str, Path], tmp_path: Path) -> None:
    store, run_id, scenario = executed
    saved = tmp_path / "prediction.json"
    _prediction(replications=150, seed=9).save(saved)
    result = runner.invoke(
        app, ["compare", run_id, "--store", str(store), "--prediction", str(saved), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["prediction_source"] == str(saved) and data["replications"] == 150 and data["seed"] == 9
    other = tmp_path / "other.json"
    simulate(plan(load_scenario(SCENARIOS / "rag.yaml")), replications=20).save(other)
    refused = runner.invoke(app, ["compare", run_id, "--store", str(store), "--prediction", str(other)])
    assert refused.exit_code == 2 and "the prediction is of other tasks" in refused.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"config": 3}')
    refused = runner.invoke(app, ["compare", run_id, "--store", str(store), "--prediction", str(broken)])
    assert refused.exit_code == 2 and "was it written by `cycleplan simulate -o`?" in refused.stderr
    del scenario


def test_an_unknown_run_is_a_clear_error_with_exit_2(
    executed: tuple[Path, str, Path], tmp_path: Path, cli: str
) -> None:
    store, run_id, _ = executed
    done = subprocess.run(
        [cli, "compare", "no-such-run", "--store", str(store), "--report", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"no run 'no-such-run' in {store}; recent runs: {run_id}"]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "r.html").exists()
    missing = subprocess.run(
        [cli, "compare", run_id, "--store", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "no run store here" in missing.stderr
    assert not (tmp_path / "none.db").exists()  # comparing never creates a store
    for bad in (["-n", "0"], ["--seed", "-1"], ["--plotly-js", "inline"]):
        refused = runner.invoke(app, ["compare", run_id, "--store", str(store), *bad])
        assert refused.exit_code == 2, bad


def test_help_says_how_speedup_is_defined() -> None:
    result = runner.invoke(app, ["compare", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "one lane would run it in plan order" in text and "--prediction" in text and "--report" in text


def test_comparison_round_trips_without_its_arrays() -> None:
    comparison = compare(_plan(), run_replication(_plan(), 1, seed=0).trace, _prediction())
    kept = ("prediction", "cumulative", "wait_spans")
    again = Comparison.model_validate(
        {**comparison.model_dump(), **{name: getattr(comparison, name) for name in kept}}
    )
    assert again == comparison
    assert comparison.wait_spans  # the frontend waited for schema_ready: the report draws it


# --------------------------------------------------------------------------------------------------
# The report


def test_the_report_draws_the_run_over_its_prediction() -> None:
    the_plan = _plan()
    slow = _variant(the_plan.scenario, "frontend", cycle={"median_min": 15, "p90_min": 24})
    comparison = compare(the_plan, _actual_from(the_plan, slow), _prediction(), run_id="r-slow")
    report = comparison_report(comparison)
    assert [h.label for h in report.headlines] == [
        "makespan (actual)",
        "speedup (actual)",
        "tokens (actual)",
        "cost (actual)",
        "utilization (actual)",
    ]
    assert "outside P10-P90" in report.headlines[0].detail
    assert report.facts["run"] == "r-slow" and report.notes[0] == f"Verdict: {comparison.verdict}"
    gantt, *distributions = report.figures[:5]
    band = gantt.data[0]
    assert list(band.meta["tasks"]) == ["backend", "frontend", "quality"]
    frontend = next(row for row in comparison.tasks if row.task == "frontend")
    assert frontend.start is not None and frontend.finish is not None
    (outside,) = [trace for trace in gantt.data if trace.name == "actual, finished outside P10-P90"]
    assert outside.meta["outside"] is True and "frontend" in outside.meta["tasks"]
    position = list(outside.meta["tasks"]).index("frontend")
    assert outside.base[position] == frontend.start.actual  # the actual bar starts at the first cycle
    (waiting,) = [trace for trace in gantt.data if trace.name == "waiting for an event"]
    assert list(waiting.meta["tasks"]) == ["frontend"]  # before its first cycle, until schema_ready
    assert [figure.layout.meta["actual"] for figure in distributions] == [
        comparison.placement(name).actual for name in ("makespan_min", "speedup", "tokens_total", "cost_usd")
    ]
    tokens_curve, cost_curve = report.figures[5:]
    assert list(tokens_curve.data[-1].y)[-1] == comparison.tokens_total.actual
    assert list(cost_curve.data[-1].y)[-1] == pytest.approx(comparison.cost_usd.actual)


def test_the_report_page_opens_offline_without_errors(tmp_path: Path) -> None:
    comparison = compare(_plan(), run_replication(_plan(), 5, seed=0).trace, _prediction())
    page = tmp_path / "compare.html"
    report = comparison_report(comparison)
    write_page(page, report)
    loaded = browser.load(page)
    assert loaded.console_errors() == []
    assert loaded.dom.count('class="main-svg"') >= len(report.figures)


def test_a_run_long_across_the_board_is_said_to_be_so() -> None:
    """Every task a little long, none outside its band, the whole work outside: the work is the cause."""
    from cycleplan.workflows.bands import TaskComparison
    from cycleplan.workflows.verdict import _lengthened

    band = Percentiles(p10=50, p50=60, p90=75)
    rows = [
        TaskComparison(
            task=f"t{index}",
            role="backend",
            lane="backend-1",
            actual_lane="backend-1",
            status="complete",
            ran_share=1.0,
            start=None,
            finish=None,
            duration=place_in_band(band, 72 + index, "min"),
        )
        for index in range(3)
    ]
    quiet = place_in_band(Percentiles(p10=0, p50=1, p90=3), 1, "min")
    failed = place_in_band(Percentiles(p10=0, p50=0, p90=0), 0, "count")
    work = place_in_band(Percentiles(p10=170, p50=180, p90=200), 218, "min")
    cause = _lengthened(1.0, rows, {"dependency": quiet}, failed, ["t0", "t1", "t2"], work)
    assert cause.startswith("the run's whole work (sequential baseline) above P90"), cause
    assert "no task is outside its band" in cause and "calibrate" in cause
    # Without the work outside its band, the furthest task is named as before.
    inside = place_in_band(Percentiles(p10=170, p50=180, p90=200), 190, "min")
    assert _lengthened(1.0, rows, {"dependency": quiet}, failed, ["t2"], inside).startswith(
        "no task or wait is outside its band; the furthest: t2"
    )
