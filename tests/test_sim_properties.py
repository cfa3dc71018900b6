"""Invariants of every simulated trace, over random scenarios (hypothesis).

In every trace: no lane runs two tasks at once; every dependency and every awaited event is respected;
each task ends exactly once; tokens and costs are non-negative and add up by role. In ideal mode the
plan's own dispatch reproduces the planner's makespan.
"""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_strategies import scenarios as random_scenarios

from cycleplan.core.metrics import STANDARD_ACTIONS, metrics
from cycleplan.core.model import Event, Scenario
from cycleplan.planner import plan
from cycleplan.sim import run_replication

EPS_MS = 1e-6
USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
scenarios = functools.partial(random_scenarios, max_tasks=6, rate_limits=True)
"""Everything the simulator models, rate limits included (:mod:`scenario_strategies`)."""


def check_trace(scenario: Scenario, trace: list[Event]) -> None:
    tasks = {task.id: task for task in scenario.all_tasks()}
    started: dict[str, tuple[str, float]] = {}
    ended: dict[str, tuple[str, float]] = {}
    cycle_starts: dict[tuple[str, int], float] = {}
    cycle_ends: dict[tuple[str, int], float] = {}
    emitted: dict[str, float] = {}
    clock = trace[0].timestamp
    for event in trace:
        assert event.timestamp >= clock - EPS_MS, "events are in time order"
        clock = event.timestamp
        meta = event.metadata
        if event.action == "task_started":
            assert event.target_id not in started
            started[event.target_id] = (event.actor_id, event.timestamp)
        elif event.action in ("task_complete", "task_failed", "task_cancelled"):
            assert event.target_id not in ended, f"{event.target_id} ends twice"
            ended[event.target_id] = (event.action, event.timestamp)
        elif event.action == "cycle_completed":
            for key in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            ):
                assert meta[key] >= 0
            assert meta["cost_usd"] >= 0
            assert meta["duration_ms"] >= 0
            key = (event.target_id, meta["cycle"])
            cycle_starts.setdefault(key, event.timestamp - meta["duration_ms"])
            cycle_ends[key] = event.timestamp
        elif event.action not in STANDARD_ACTIONS:
            emitted[event.action] = event.timestamp
            assert event.timestamp == pytest.approx(cycle_ends[(event.target_id, meta["cycle"])], abs=EPS_MS)
            assert tasks[event.target_id].emits[event.action] == meta["cycle"]

    assert set(ended) == set(tasks), "every task ends exactly once"

    by_lane: dict[str, list[tuple[float, float]]] = {}
    for task, (lane, start) in started.items():
        by_lane.setdefault(lane, []).append((start, ended[task][1]))
    for spans in by_lane.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start + EPS_MS, "a lane runs one task at a time"

    # Shared capacity: never more tasks at once than max_parallel, never two holding the staging server.
    changes: list[tuple[float, int, int]] = []
    for task, (_, start) in started.items():
        if tasks[task].spawned_by is not None:
            continue  # subagents take no shared capacity: their parent holds its own while blocked
        staging = tasks[task].requires.get("staging", 0)
        changes += [(start, 1, staging), (ended[task][1], -1, -staging)]
    running = holding = 0
    for _, step, units in sorted(changes, key=lambda change: (change[0], change[1])):
        running += step
        holding += units
        assert scenario.max_parallel is None or running <= scenario.max_parallel
        assert holding <= 1

    def resolved(dep: str) -> float:
        group = tasks[dep].race
        members = [t for t in tasks if group is not None and tasks[t].race == group] or [dep]
        winners = [ended[m][1] for m in members if ended[m][0] == "task_complete"]
        assert winners, f"{dep} did not complete but a dependent started"
        return min(winners)

    for task_id, (_, start) in started.items():
        spawn = tasks[task_id].spawned_by
        if spawn is not None:
            # Fork-join: spawned when its parent reached the cycle, returned before the parent worked it.
            parent_start = started[spawn.task][1]
            reached = (
                cycle_ends.get((spawn.task, spawn.cycle - 1), parent_start)
                if spawn.cycle > 1
                else parent_start
            )
            assert start >= reached - EPS_MS, f"{task_id} started before its parent spawned it"
            if (spawn.task, spawn.cycle) in cycle_starts:
                assert ended[task_id][1] <= cycle_starts[(spawn.task, spawn.cycle)] + EPS_MS, (
                    f"{spawn.task} worked cycle {spawn.cycle} before {task_id} returned"
                )
        for dep in tasks[task_id].after:
            assert resolved(dep) <= start + EPS_MS, f"{task_id} started before {dep} finished"
        for event, cycle in tasks[task_id].waits.items():
            if (task_id, cycle) in cycle_starts:
                assert event in emitted
                assert emitted[event] <= cycle_starts[(task_id, cycle)] + EPS_MS

    measured = metrics(trace)
    assert sum(measured.tokens_by_role.values()) == measured.tokens_total
    assert sum(measured.cost_by_role.values()) == pytest.approx(measured.cost_usd, rel=1e-12, abs=1e-12)
    assert measured.tokens_total == (
        measured.input_tokens
        + measured.cache_write_tokens
        + measured.cache_read_tokens
        + measured.output_tokens
    )
    assert 0 <= measured.waste_tokens <= measured.tokens_total
    assert 0 <= measured.waste_cost_usd <= measured.cost_usd + 1e-12
    assert all(value >= 0 for value in measured.waits_min.values())
    assert 0 <= measured.utilization <= 1 + 1e-9


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(0, 3))
def test_every_trace_keeps_the_rules(scenario: Scenario, replication: int) -> None:
    planned = plan(scenario)
    for dispatch in ("plan", "dynamic"):
        run = run_replication(planned, replication, seed=17, dispatch=dispatch)
        check_trace(scenario, run.trace)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_ideal_simulation_equals_the_plan(scenario: Scenario) -> None:
    planned = plan(scenario)
    run = run_replication(planned, 0, ideal=True)
    check_trace(scenario, run.trace)
    assert run.metrics.makespan_min == pytest.approx(planned.makespan_min, rel=1e-9)
    assert run.sequential_min == pytest.approx(planned.sequential_min, rel=1e-9)
    assert run.metrics.completed
