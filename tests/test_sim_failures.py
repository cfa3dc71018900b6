"""Failures, retries and cancellation; sync waits and their costs; races. One feature per test."""

from __future__ import annotations

from typing import Any

import pytest

from cycleplan.core.model import Event, Plan, Scenario
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate
from cycleplan.sim.stats import confidence_interval


def scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate(fields)


def fixed(minutes: float, **role: Any) -> dict[str, Any]:
    return {"cycle": {"kind": "fixed", "value_min": minutes}, **role}


def actions(trace: list[Event], task: str) -> list[str]:
    return [event.action for event in trace if event.target_id == task]


def last(trace: list[Event], task: str) -> Event:
    return [event for event in trace if event.target_id == task][-1]


# --------------------------------------------------------------------------------------------------
# Failures


def failing_plan(cancel_parallel: bool = False) -> Plan:
    failure = {"probability_per_cycle": 1.0, "max_retries": 2, "cancel_parallel": cancel_parallel}
    return plan(
        scenario(
            name="failing",
            roles={
                "backend": fixed(1, lanes=2, failure=failure),
                "frontend": fixed(1),
                "docs": fixed(1),
            },
            tasks=[
                {"id": "api", "role": "backend", "cycles": 3, "emits": {"api_ready": 2}},
                {"id": "slow", "role": "backend", "cycles": 1, "duration_multiplier": 10},
                {"id": "client", "role": "frontend", "cycles": 2, "waits": {"api_ready": 1}},
                {"id": "tests", "role": "docs", "cycles": 1, "after": ["api"]},
                {"id": "readme", "role": "docs", "cycles": 2},
            ],
        )
    )


def test_a_task_out_of_retries_fails_and_cancels_its_dependents() -> None:
    run = run_replication(failing_plan(), 0)
    trace, m = run.trace, run.metrics
    assert actions(trace, "api") == ["task_started"] + ["cycle_completed"] * 3 + ["task_failed"]
    failed = last(trace, "api")
    assert failed.timestamp == 3 * 60_000
    assert failed.metadata["shouldCancelParallel"] is False
    assert "cycle 1" in failed.metadata["error"]
    # The waiter held its lane and is cancelled when the event can no longer come; "tests" never starts.
    assert actions(trace, "client") == ["task_started", "task_cancelled"]
    assert last(trace, "client").metadata["reason"] == "dependency_failed"
    assert actions(trace, "tests") == ["task_cancelled"]
    assert actions(trace, "readme")[-1] == "task_complete"
    assert m.failures == 2  # "slow" also runs out of retries, after 30 minutes
    assert m.failed_cycles == 3 + 3
    assert m.cancellations == 2
    assert not m.completed
    assert m.waste_min == pytest.approx(3 + 30)
    assert m.waste_tokens > 0 and m.waste_cost_usd > 0
    assert m.waits_min["sync"] == pytest.approx(3)


def test_cancel_parallel_stops_the_running_tasks_of_the_role() -> None:
    run = run_replication(failing_plan(cancel_parallel=True), 0)
    trace = run.trace
    failed = last(trace, "api")
    assert failed.metadata["shouldCancelParallel"] is True
    cancelled = last(trace, "slow")
    assert cancelled.action == "task_cancelled"
    assert cancelled.metadata["reason"] == "cancel_parallel"
    assert cancelled.timestamp == failed.timestamp
    interrupted = [e for e in trace if e.target_id == "slow" and e.action == "cycle_completed"][-1]
    assert interrupted.metadata["interrupted"] is True
    assert interrupted.metadata["duration_ms"] == pytest.approx(3 * 60_000)
    assert run.metrics.makespan_min == pytest.approx(3)
    # The interrupted cycle counts as work and as waste, not as a failed attempt.
    assert run.metrics.failed_cycles == 3
    assert run.metrics.waste_min == pytest.approx(3 + 3)


def test_cancel_parallel_spares_what_the_freed_lane_starts_next() -> None:
    planned = plan(
        scenario(
            name="one lane",
            roles={
                "backend": fixed(
                    1, failure={"probability_per_cycle": 1.0, "max_retries": 0, "cancel_parallel": True}
                )
            },
            tasks=[{"id": "a", "role": "backend", "cycles": 1}, {"id": "b", "role": "backend", "cycles": 1}],
        )
    )
    run = run_replication(planned, 0)
    assert [last(run.trace, task).action for task in ("a", "b")] == ["task_failed", "task_failed"]
    assert run.metrics.cancellations == 0
    assert run.metrics.makespan_min == 2
    assert run.sequential_min == 2


def test_retries_follow_the_failure_probability() -> None:
    p, retries = 0.5, 1
    planned = plan(
        scenario(
            name="coin",
            roles={"worker": fixed(1, failure={"probability_per_cycle": p, "max_retries": retries})},
            tasks=[{"id": "t", "role": "worker", "cycles": 1}],
        )
    )
    prediction = simulate(planned, replications=2000, seed=8)
    failures = prediction.replications.values["failures"]
    low, high = confidence_interval(failures, 0.99)
    assert low <= p ** (retries + 1) <= high
    attempts_failed = prediction.replications.values["failed_cycles"]
    low, high = confidence_interval(attempts_failed, 0.99)
    assert low <= p + p * p <= high  # the first attempt fails with p, the retry with p again


# --------------------------------------------------------------------------------------------------
# Sync waits


def sync_plan(minutes: float = 0, handoff: int = 0) -> Plan:
    tokens = {
        "context_tokens": 0,
        "fresh_input": {"median": 100, "p90": 100},
        "output": {"median": 10, "p90": 10},
    }
    return plan(
        scenario(
            name="sync",
            roles={
                "backend": fixed(10, tokens=tokens),
                "frontend": fixed(10, tokens=tokens, sync={"minutes": minutes, "handoff_tokens": handoff}),
            },
            tasks=[
                {"id": "schema", "role": "backend", "cycles": 4, "emits": {"schema_ready": 2}},
                {"id": "pages", "role": "frontend", "cycles": 3, "waits": {"schema_ready": 1}},
            ],
        )
    )


def first_cycle(trace: list[Event], task: str) -> Event:
    return next(e for e in trace if e.target_id == task and e.action == "cycle_completed")


def test_a_waiting_task_holds_its_lane_until_the_event() -> None:
    run = run_replication(sync_plan(), 0)
    started = next(e for e in run.trace if e.target_id == "pages" and e.action == "task_started")
    emitted = next(e for e in run.trace if e.action == "schema_ready")
    cycle = first_cycle(run.trace, "pages")
    assert started.timestamp == 0
    assert emitted.timestamp == 20 * 60_000
    assert cycle.timestamp - cycle.metadata["duration_ms"] == emitted.timestamp
    assert cycle.metadata["sync_wait_ms"] == 20 * 60_000
    assert run.metrics.waits_min["sync"] == pytest.approx(20)
    assert run.metrics.makespan_min == pytest.approx(50)
    assert run.metrics.utilization_by_lane["frontend-1"] == pytest.approx(30 / 50)


def test_sync_minutes_and_handoff_tokens_are_charged_per_event() -> None:
    plain = run_replication(sync_plan(), 0)
    costly = run_replication(sync_plan(minutes=5, handoff=1000), 0)
    assert costly.metrics.makespan_min == pytest.approx(plain.metrics.makespan_min + 5)
    assert costly.metrics.waits_min["sync"] == pytest.approx(20 + 5)
    assert first_cycle(costly.trace, "pages").metadata["input_tokens"] == 1100
    assert costly.metrics.input_tokens == plain.metrics.input_tokens + 1000
    ideal = run_replication(sync_plan(minutes=5, handoff=1000), 0, ideal=True)
    assert ideal.metrics.makespan_min == pytest.approx(plain.metrics.makespan_min)
    assert ideal.metrics.input_tokens == plain.metrics.input_tokens


# --------------------------------------------------------------------------------------------------
# Races


def race_plan() -> Plan:
    return plan(
        scenario(
            name="race",
            roles={"designer": fixed(1, lanes=2), "frontend": fixed(1)},
            tasks=[
                {"id": "option-a", "role": "designer", "cycles": 5, "race": "design"},
                {
                    "id": "option-b",
                    "role": "designer",
                    "cycles": 5,
                    "race": "design",
                    "duration_multiplier": 2,
                },
                {"id": "build", "role": "frontend", "cycles": 3, "after": ["option-b"]},
            ],
        )
    )


def test_the_first_to_finish_wins_and_the_others_are_cancelled() -> None:
    run = run_replication(race_plan(), 0)
    trace, m = run.trace, run.metrics
    assert last(trace, "option-a").action == "task_complete"
    loser = last(trace, "option-b")
    assert loser.action == "task_cancelled"
    assert loser.metadata["reason"] == "race_lost"
    assert loser.timestamp == 5 * 60_000
    assert m.tasks["build"].start_min == pytest.approx(5)  # dependents of any member wait for the race
    assert m.makespan_min == pytest.approx(8)
    assert m.completed
    assert m.cancellations == 1
    loser_tokens = sum(
        e.metadata[k]
        for e in trace
        if e.target_id == "option-b" and e.action == "cycle_completed"
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    )
    assert loser_tokens > 0
    assert m.waste_tokens == loser_tokens
    assert m.waste_min == pytest.approx(5)
    # One agent does not race itself: the baseline runs the fastest member alone.
    assert run.sequential_min == pytest.approx(8)


def test_a_stochastic_race_ends_with_its_fastest_member() -> None:
    planned = plan(
        scenario(
            name="coin race",
            roles={"designer": {"lanes": 2, "cycle": {"kind": "exponential", "mean_min": 2}}},
            tasks=[
                {"id": "a", "role": "designer", "cycles": 1, "race": "r"},
                {"id": "b", "role": "designer", "cycles": 1, "race": "r"},
            ],
        )
    )
    prediction = simulate(planned, replications=2000, seed=12)
    low, high = confidence_interval(prediction.replications.values["makespan_min"], 0.99)
    assert low <= 1.0 <= high  # the minimum of two exponentials of mean 2 has mean 1
    for parallel, sequential in zip(
        prediction.replications.values["makespan_min"],
        prediction.replications.values["sequential_min"],
        strict=True,
    ):
        assert parallel == pytest.approx(sequential, rel=1e-12)
    assert prediction.criticality["a"] + prediction.criticality["b"] == pytest.approx(1.0)


def test_a_one_lane_plan_runs_a_race_by_one_member() -> None:
    planned = plan(
        scenario(
            name="one-lane race",
            roles={"designer": {"lanes": 2}},
            tasks=[
                {"id": "a", "role": "designer", "cycles": 4, "race": "r"},
                {"id": "b", "role": "designer", "cycles": 4, "race": "r"},
            ],
        ),
        algorithm="sequential",
    )
    assert [lane.lane for lane in planned.lanes] == ["sequential"]
    run = run_replication(planned, 0)
    ran = [e.target_id for e in run.trace if e.action == "task_started"]
    skipped = ({"a", "b"} - set(ran)).pop()
    assert last(run.trace, skipped).metadata["reason"] == "race_lost"
    assert run.metrics.completed
    # The baseline runs whichever member is faster on the draws, so the plan can only tie or lose.
    speedups = simulate(planned, replications=40, seed=1).replications.values["speedup"]
    assert max(speedups) <= 1 + 1e-9
    assert min(speedups) < 0.95
