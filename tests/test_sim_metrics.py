"""``metrics(trace)`` on a hand-written trace, as an executed run would record it; summaries; the
Prediction's JSON round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import SCENARIOS

from cycleplan.core.loading import load_scenario
from cycleplan.core.metrics import WaitSpan, metrics, run_header, wait_spans
from cycleplan.core.model import Event, Task
from cycleplan.planner import plan
from cycleplan.sim import Prediction, run_replication, simulate
from cycleplan.sim.stats import confidence_interval, summarize, t_quantile

EPOCH_MS = 1_764_000_000_000.0  # an executed run's timestamps are wall-clock milliseconds
MIN = 60_000.0


def event(actor: str, target: str, minute: float, **metadata: Any) -> Event:
    return Event(
        actorId=actor, targetId=target, groupId="run-1", timestamp=EPOCH_MS + minute * MIN, metadata=metadata
    )


def cycle(lane: str, task: str, minute: float, number: int, work: float, **extra: Any) -> Event:
    usage = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 10,
    }
    return event(
        lane,
        task,
        minute,
        action="cycle_completed",
        cycle=number,
        attempt=1,
        failed=False,
        duration_ms=work * MIN,
        **{**usage, "cost_usd": 0.01, **extra},
    )


def hand_trace() -> list[Event]:
    tasks = [
        Task(id="x", role="a", cycles=2, emits={"e": 1}),
        Task(id="y", role="b", cycles=1, after=["x"]),
        Task(id="z", role="a", cycles=2, waits={"e": 2}),
    ]
    header = run_header({"a-1": "a", "a-2": "a", "b-1": "b"}, tasks)
    return [
        event("executor", "run-1", 0, **header),
        event("a-1", "x", 0, action="task_started", context_tokens=1000),
        event("a-2", "z", 0, action="task_started", context_tokens=1000),
        cycle("a-2", "z", 3, 1, 3),
        cycle("a-1", "x", 5, 1, 5),
        event("a-1", "x", 5, action="e", cycle=1),
        cycle("a-2", "z", 9, 2, 4, sync_wait_ms=2 * MIN),  # waited 3 -> 5 for e, then 5 -> 9 working
        event("a-2", "z", 9, action="task_complete"),
        cycle("a-1", "x", 10, 2, 5),
        event("a-1", "x", 10, action="task_complete"),
        event("b-1", "y", 12, action="task_started", context_tokens=500),
        cycle("b-1", "y", 20, 1, 8, cost_usd=0.05),
        event("b-1", "y", 20, action="task_complete"),
        event("executor", "run-1", 20, action="run_complete"),
    ]


def test_metrics_of_an_executed_trace() -> None:
    m = metrics(hand_trace())
    assert m.makespan_min == 20
    assert m.busy_min_by_lane == {"a-1": 10, "a-2": 7, "b-1": 8}
    assert m.work_min == 25
    assert m.utilization == pytest.approx(25 / 60)
    assert m.utilization_by_role == {"a": pytest.approx(17 / 40), "b": pytest.approx(8 / 20)}
    assert m.input_tokens == 500 and m.output_tokens == 50 and m.tokens_total == 550
    assert m.context_tokens == 2500
    assert m.cost_usd == pytest.approx(0.09)
    assert m.tokens_by_role == {"a": 440, "b": 110}
    assert m.cost_by_role == {"a": pytest.approx(0.04), "b": pytest.approx(0.05)}
    # b-1 sat free until x finished at 10 (dependency); y was ready at 10 and started at 12 (lane).
    assert m.waits_min == {"dependency": 10, "sync": 2, "lane": 2, "rate_limit": 0}
    assert m.completed and m.failures == 0 and m.cancellations == 0 and m.waste_min == 0
    # y ends the run; it started 2 minutes after x ended, so nothing held it up: only y is critical.
    assert m.critical == ["y"]
    assert m.tasks["y"].start_min == 12 and m.tasks["y"].lane == "b-1" and m.tasks["y"].role == "b"


def test_wait_spans_are_laid_before_the_work_they_held_up() -> None:
    # z reached its 2nd cycle at 3 and waited for e until 5, then worked until 9.
    assert wait_spans(hand_trace()) == [
        WaitSpan(task="z", lane="a-2", cause="sync", start_min=3, finish_min=5)
    ]
    # A cycle that ended at 10 after 4 minutes of work, held before it 1 minute for an event and its
    # handoff, then 2 by the subagents it spawned, then half a minute by rate limits.
    held = {
        "sync_wait_ms": 0.75 * MIN,
        "sync_ms": 0.25 * MIN,
        "blocked_ms": 2 * MIN,
        "rate_limit_wait_ms": 0.5 * MIN,
    }
    trace = [
        hand_trace()[0],
        event("a-1", "x", 0, action="task_started"),
        cycle("a-1", "x", 10, 1, 4, **held),
    ]
    assert wait_spans(trace) == [
        WaitSpan(task="x", lane="a-1", cause="sync", start_min=2.5, finish_min=3.5),
        WaitSpan(task="x", lane="a-1", cause="subagents", start_min=3.5, finish_min=5.5),
        WaitSpan(task="x", lane="a-1", cause="rate_limit", start_min=5.5, finish_min=6),
    ]


@pytest.mark.parametrize("name", ["agent-session.yaml", "rate-limited.yaml", "full-feature.yaml"])
def test_simulated_waits_lie_inside_their_task_on_its_lane(name: str) -> None:
    trace = run_replication(plan(load_scenario(SCENARIOS / name)), 0, seed=3).trace
    spans = metrics(trace).tasks
    waits = wait_spans(trace)
    assert waits  # subagents, rate limits and an awaited event, one scenario each
    for wait in waits:
        task = spans[wait.task]
        assert wait.lane == task.lane
        assert task.start_min - 1e-9 <= wait.start_min < wait.finish_min <= task.finish_min + 1e-9, wait


def test_critical_tasks_follow_what_held_each_task_up() -> None:
    trace = hand_trace()
    moved = [
        e.model_copy(update={"timestamp": e.timestamp - 2 * MIN})
        if e.target_id == "y" or e.action == "run_complete"
        else e
        for e in trace
    ]
    m = metrics(moved)
    assert m.makespan_min == 18
    assert m.critical == ["x", "y"]
    assert m.waits_min["lane"] == 0


def test_a_trace_must_start_with_run_started() -> None:
    with pytest.raises(ValueError, match="run_started"):
        metrics(hand_trace()[1:])


def test_student_t_quantiles() -> None:
    known = {1: 12.7062, 2: 4.3027, 3: 3.1824, 5: 2.5706, 10: 2.2281, 30: 2.0423, 1000: 1.9623}
    for df, value in known.items():
        assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    assert t_quantile(0.995, 20) == pytest.approx(2.8453, abs=1e-4)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)


def test_summaries() -> None:
    summary = summarize([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert (summary.mean, summary.p10, summary.p50, summary.p90) == (6, 2, 6, 10)
    assert summary.sd == pytest.approx(3.3166, abs=1e-4)
    assert summary.ci95_low == pytest.approx(6 - 2.2281 * 3.3166 / 11**0.5, abs=1e-3)
    assert confidence_interval([4.0]) == (4.0, 4.0)
    assert summarize([2.0]).sd == 0


def test_prediction_saves_and_loads(tmp_path: Path) -> None:
    planned = plan(load_scenario(SCENARIOS / "course-crud.yaml"))
    prediction = simulate(planned, replications=20, seed=3)
    path = tmp_path / "prediction.json"
    prediction.save(path)
    loaded = Prediction.load(path)
    assert loaded == prediction
    assert '"actorId"' in path.read_text()  # the trace keeps the ONE platform's field names
    assert metrics(loaded.trace).makespan_min == pytest.approx(
        prediction.replications.values["makespan_min"][prediction.median_replication]
    )
    assert len(prediction.replications.values["speedup"]) == 20


def test_results_load_without_simpy() -> None:
    """A prediction and the shared measurer load without SimPy (which modules may import which is held by
    tests/test_layers.py)."""
    probe = "import sys, cycleplan.sim.prediction, cycleplan.core.metrics; print('simpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
