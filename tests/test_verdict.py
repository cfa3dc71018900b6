"""compare tells the truth: a verdict built as findings, that never says what its table does not show.

Regression tests for what a new user saw (a verdict clearing tasks its table marked, one definition of
"inside" for utilization and speedup, the cost blamed on prices while output tokens sat at P98, a partial
run judged as whole, a run without token records at P0, the critical path of executed runs), and a
property test over many runs, honest and perturbed on purpose, that holds every finding to its table.
"""

from __future__ import annotations

import json
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ROOT

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event, Plan, Scenario
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.executor.summary import render_summary
from cycleplan.planner import plan
from cycleplan.present.render_runs import comparison_view
from cycleplan.present.terminal import to_text
from cycleplan.sim import run_replication, simulate
from cycleplan.sim.prediction import Prediction
from cycleplan.workflows.bands import HEADLINE, INSIDE, Placement, percentile_text, place
from cycleplan.workflows.comparison import Comparison, compare, compare_run, summary_json
from cycleplan.workflows.importers import import_one_state, store_run
from cycleplan.workflows.verdict import MAX_TASKS

SMALL = """
    name: small
    roles:
      backend: {cycle: {median_min: 5, p90_min: 8}, tokens: {output: {median: 800, p90: 1200}}}
      frontend: {cycle: {median_min: 5, p90_min: 8}}
      quality: {cycle: {median_min: 4, p90_min: 6}, failure: {probability_per_cycle: 0.05, max_retries: 3}}
    tasks:
      - {id: backend, role: backend, cycles: 4, emits: {schema_ready: 2}}
      - {id: frontend, role: frontend, cycles: 3, waits: {schema_ready: 1}}
      - {id: docs, role: frontend, cycles: 2, after: [frontend]}
      - {id: quality, role: quality, cycles: 2, after: [backend, frontend]}
"""


@cache
def _plan() -> Plan:
    return plan(parse_scenario(textwrap.dedent(SMALL)))


@cache
def _prediction() -> Prediction:
    return simulate(_plan(), replications=400, seed=0)


def _under(changes: dict[str, dict[str, Any]], replication: int) -> list[Event]:
    """A run of the plan under another model (``changes``: role -> settings merged in): what happens
    when the prediction is wrong."""
    data = _plan().scenario.model_dump()
    for role, changed in changes.items():
        for key, value in changed.items():
            current = data["roles"][role].get(key)
            data["roles"][role][key] = {**current, **value} if isinstance(current, dict) else value
    other = _plan().model_copy(update={"scenario": Scenario.model_validate(data)})
    return run_replication(other, replication, seed=21).trace


def _cut(trace: list[Event], share: float) -> list[Event]:
    """The trace of a run stopped part way: its events up to ``share`` of its span, no ``run_complete``."""
    end = trace[0].timestamp + share * (trace[-1].timestamp - trace[0].timestamp)
    return [event for event in trace if event.timestamp <= end and event.action != "run_complete"]


# --------------------------------------------------------------------------------------------------
# What every verdict must keep


def assert_truthful(comparison: Comparison) -> None:
    """Every finding from its table; every task outside its band named or counted; one "inside"."""
    verdict = comparison.verdict
    headline = verdict.headline
    table = to_text(comparison_view(comparison))
    outside = [row.task for row in comparison.tasks if any(row.outside.values())]
    named = {finding.subject for finding in verdict.findings if finding.subject_kind == "task"}
    assert named <= set(outside)
    assert len(named) == min(len(outside), MAX_TASKS), (named, outside)
    assert ("every task inside its band" in headline.lower()) == (not outside), headline
    if outside:
        count = len(outside)
        assert f"{count} task{'s' if count != 1 else ''} outside" in headline.lower(), headline
    for row in comparison.tasks:
        for part, flag in row.outside.items():
            placement: Placement = getattr(row, part)
            assert flag == (not INSIDE[0] <= placement.percentile <= INSIDE[1])
    for finding in verdict.findings:
        assert (
            finding.inside == (INSIDE[0] <= finding.percentile <= INSIDE[1]) or finding.subject_kind == "run"
        )
        assert not finding.inside or finding.quantity in HEADLINE
        if finding.subject_kind == "task":
            row = next(r for r in comparison.tasks if r.task == finding.subject)
            placement = getattr(row, finding.quantity)
            assert (finding.actual, finding.p10, finding.p90) == (
                placement.actual,
                placement.p10,
                placement.p90,
            )
            assert placement.outside
    for name in HEADLINE:
        placement = comparison.placement(name)
        if placement.inside is not None:
            assert placement.inside == (INSIDE[0] <= placement.percentile <= INSIDE[1])
            if not placement.inside:
                assert percentile_text(placement) not in ("P10", "P90"), percentile_text(placement)
                assert any(f.subject_kind == "run" and f.quantity == name for f in verdict.findings)
    if verdict.notice:
        assert all(comparison.placement(name).inside is None for name in HEADLINE)
        assert "not judged" in table
    if "Inside the prediction" in headline:
        assert all(comparison.placement(name).inside is not False for name in HEADLINE)
    data = json.loads(json.dumps(summary_json(comparison)))
    assert data["verdict"]["headline"] == headline
    for finding in data["verdict"]["findings"]:
        assert {"subject", "quantity", "actual", "p10", "p90", "percentile", "inside"} <= set(finding)
    for row in data["tasks"]:
        assert isinstance(row["outside"], dict)


KINDS = ("honest", "slow task", "token blow-up", "failures", "interrupted", "nothing finished")


def _trace(kind: str, replication: int) -> list[Event]:
    if kind == "honest":
        return run_replication(_plan(), replication, seed=21).trace
    if kind == "slow task":
        return _under({"frontend": {"cycle": {"median_min": 14, "p90_min": 20}}}, replication)
    if kind == "token blow-up":
        return _under({"backend": {"tokens": {"output": {"median": 6000, "p90": 9000}}}}, replication)
    if kind == "failures":
        return _under({"backend": {"failure": {"probability_per_cycle": 0.5, "max_retries": 8}}}, replication)
    honest = run_replication(_plan(), replication, seed=21).trace
    return _cut(honest, 0.5 if kind == "interrupted" else 0.01)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KINDS), st.integers(0, 40))
def test_every_finding_agrees_with_its_table(kind: str, replication: int) -> None:
    status = "interrupted" if kind in ("interrupted", "nothing finished") else ""
    comparison = compare(
        _plan(), _trace(kind, replication), _prediction(), run_id=f"r{replication}", status=status
    )
    assert_truthful(comparison)


# --------------------------------------------------------------------------------------------------
# The cases a new user met


def test_inside_is_one_definition_whatever_the_unit() -> None:
    samples = [float(value) for value in range(100)]
    for unit in ("min", "x", "share", "usd", "tokens"):
        low = place(samples, 5.5, unit)
        assert low.percentile == pytest.approx(6.0) and low.inside is False, unit
        assert place(samples, 50.0, unit).inside
    # A band narrower than its unit's smallest spread is widened first: a sliver off is no miss.
    fixed = place([100.0] * 50, 100.05, "min")
    assert fixed.inside and 10 <= fixed.percentile <= 90


def test_a_cost_overrun_is_traced_to_the_kind_of_token_that_moved_it() -> None:
    trace = _under({"backend": {"tokens": {"output": {"median": 6000, "p90": 9000}}}}, 0)
    comparison = compare(_plan(), trace, _prediction())
    assert comparison.cost_usd.inside is False and comparison.tokens_by_kind["output_tokens"].inside is False
    cost = next(f for f in comparison.verdict.findings if f.quantity == "cost_usd")
    assert "output tokens drove it" in cost.text, cost.text
    assert "price per token differs" not in cost.text


def test_a_run_that_stopped_part_way_is_not_judged_as_a_whole() -> None:
    trace = _cut(run_replication(_plan(), 3, seed=21).trace, 0.5)
    comparison = compare(_plan(), trace, _prediction(), status="interrupted")
    verdict = comparison.verdict
    assert verdict.notice.startswith("The run did not finish (interrupted)")
    assert all(comparison.placement(name).inside is None for name in HEADLINE)
    assert not comparison.inside
    statuses = {row.task: row.status for row in comparison.tasks}
    assert "partly run" in statuses.values() and "not run" in statuses.values()
    text = to_text(comparison_view(comparison))
    assert "inside" not in text.split("verdict")[0].replace("not judged", "")
    assert "Inside the prediction" not in verdict.headline
    nothing = compare(_plan(), _cut(run_replication(_plan(), 3, seed=21).trace, 0.0), _prediction())
    assert nothing.verdict.notice and "0 of 4 tasks finished" in nothing.verdict.notice


def test_execute_claims_no_speedup_for_a_run_that_did_not_finish() -> None:
    summary = {
        "run_id": "r",
        "status": "failed",
        "makespan_min": 10.0,
        "planned_makespan_min": 8.0,
        "sequential_min": 12.0,
        "speedup": 1.2,
        "planned_speedup": 1.5,
        "tokens_total": 1000,
        "cost_usd": 0.1,
        "tasks": {"complete": 1, "failed": 1, "cancelled": 2, "total": 4},
        "failed_cycles": 3,
    }
    text = render_summary(summary)
    assert "1.20x" not in text and "not measured" in text
    assert "1.20x" in render_summary({**summary, "status": "complete"})


def test_a_run_without_token_records_is_not_judged_on_tokens(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    run_id, _ = store_run(
        import_one_state(ROOT / "tests" / "data" / "one-state" / "cycle-405b946017.json"), store
    )
    comparison = compare_run(store, run_id, replications=200)
    for name in ("tokens_total", "cost_usd"):
        assert comparison.placement(name).inside is None and not comparison.placement(name).recorded
    assert not any(f.quantity in ("tokens_total", "cost_usd") for f in comparison.verdict.findings)
    text = to_text(comparison_view(comparison))
    assert "not recorded" in text and "P0 !" not in text
    assert_truthful(comparison)


CHAIN = """
    name: chain
    roles:
      a: {cycle: {kind: fixed, value_min: 4}}
      b: {cycle: {kind: fixed, value_min: 3}}
    tasks:
      - {id: first, role: a, cycles: 2}
      - {id: second, role: a, cycles: 2, after: [first]}
      - {id: side, role: b, cycles: 1, after: [first]}
      - {id: last, role: a, cycles: 1, after: [second, side]}
"""


def test_an_executed_run_with_the_plans_durations_has_the_plans_critical_path(tmp_path: Path) -> None:
    planned = plan(parse_scenario(textwrap.dedent(CHAIN)))
    result = execute(
        planned,
        ExecuteOptions(agent="emulated", time_scale=600, seed=1),
        store=tmp_path / "runs.db",
        progress="none",
    )
    critical = result.summary["critical"]
    assert set(critical) == set(planned.critical_path), (critical, planned.critical_path)
