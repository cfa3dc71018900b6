"""Load: a hundred lanes against the emulator with rate limits binding, without deadlock or loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from cycleplan.core.model import Scenario
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.executor import events as ev
from cycleplan.executor.audit import trace_problems
from cycleplan.planner import plan
from cycleplan.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

LANES = 100


def load_scenario(lanes: int = LANES, tasks_per_lane: int = 2, cycles: int = 3) -> Scenario:
    """``lanes`` agents of one role, a chain of dependencies across them, and rate limits that bind."""
    tasks = []
    for index in range(lanes * tasks_per_lane):
        task: dict[str, object] = {"id": f"t{index:04d}", "role": "agent", "cycles": cycles}
        if index >= lanes:
            task["after"] = [f"t{index - lanes:04d}"]
        if index == 0:
            task["emits"] = {"kickoff": 1}
        elif index < lanes and index % 10 == 0:
            task["waits"] = {"kickoff": 1}
        tasks.append(task)
    return Scenario.model_validate(
        {
            "name": "load",
            # Every lane wants a request a minute; the organisation may send 40.
            "rate_limits": {"requests_per_min": 40, "input_tokens_per_min": 2_000_000},
            "roles": {"agent": {"lanes": lanes, "cycle": {"kind": "fixed", "value_min": 1}}},
            "tasks": tasks,
        }
    )


def test_a_hundred_lanes_with_binding_rate_limits_finish(tmp_path: Path) -> None:
    scenario = load_scenario()
    the_plan = plan(scenario)
    assert len(the_plan.lanes) == LANES
    options = ExecuteOptions(agent="emulated", time_scale=2_000, run_timeout_min=100_000, retry_backoff_s=0)
    result = execute(the_plan, options, store=tmp_path / "runs.db", progress="none")
    assert result.status == "complete"
    with RunStore(tmp_path / "runs.db") as runs:
        trace = runs.trace(result.run_id)
    assert trace_problems(the_plan, trace) == []
    cycles = [e for e in trace if e.action == ev.CYCLE_COMPLETED]
    assert len(cycles) == LANES * 2 * 3
    assert sum(e.metadata.get("rate_limited", 0) for e in cycles) > 0
    # 600 requests at 40 a minute: the limit, not the plan (6 minutes), sets the pace.
    assert result.summary["makespan_min"] >= 600 / 40 - 1
    assert result.summary["waits_min"]["rate_limit"] > 0
