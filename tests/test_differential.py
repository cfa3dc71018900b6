"""The parts that run a plan, held to each other on random scenarios (:mod:`scenario_strategies`).

- The executor (emulated, no failures, no rate limits, no agent loops) against the simulator's
  replication of the same seed: the same draws, so the same start order, and every start and finish
  within a stated tolerance of the simulated one: the executor's own overhead, which real time adds to
  each cycle. A run that goes past the tolerance is run again on a clock four times slower, where the same
  real overhead counts for a quarter: what is overhead shrinks there, what is wrong does not.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_strategies import scenarios

from cycleplan.core.model import Event, Plan, Scenario
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.executor import events as ev
from cycleplan.executor.summary import scenario_trace
from cycleplan.planner import plan
from cycleplan.sim import run_replication
from cycleplan.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

RUNNABLE = scenarios(max_tasks=8, failures=False, loops=False)
"""Random scenarios with resources, waits, ``max_parallel``, races and subagents, and none of what adds
real time the overhead bound below does not cover: no failures (retries), no rate limits, no agent
loops (tens of calls per cycle, each with its own overhead)."""

SCALE = 500.0
"""Scenario minutes per real minute: a 40-minute scenario runs in about 5 s."""
STARTUP_MIN = 0.5
"""What the run's first call may lag on the scenario's clock at :data:`SCALE` (60 ms real: the client's
first connection); measured at most 0.17."""
PER_CYCLE_MIN = 0.12
"""What each cycle run before a start or finish may add to its lag at :data:`SCALE` (15 ms real: the
executor's calls to the emulator and its commits); measured at most 0.056 per cycle on 25 random
scenarios, twice that leaves room for a busy machine."""
SLOWER = 4.0
"""How much slower the clock runs when a run at :data:`SCALE` goes past the bounds: the same real
overhead, a quarter of the scenario minutes (a machine busy enough to lag 28 ms a cycle did so)."""


def _slack(trace: list[Event], at_min: float) -> float:
    return STARTUP_MIN + PER_CYCLE_MIN * _cycles_before(trace, at_min)


def _times(trace: list[Event]) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """Each task's start and end (minutes from the run's start) and how it ended."""
    first = min(event.timestamp for event in trace)
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    outcome: dict[str, str] = {}
    for event in trace:
        action = event.metadata["action"]
        if action == ev.TASK_STARTED:
            starts.setdefault(event.target_id, (event.timestamp - first) / 60_000)
        elif action in ev.TERMINAL:
            ends[event.target_id] = (event.timestamp - first) / 60_000
            outcome[event.target_id] = action
    return starts, ends, outcome


def _cycles_before(trace: list[Event], at_min: float) -> int:
    first = min(event.timestamp for event in trace)
    return sum(
        1
        for event in trace
        if event.metadata["action"] == ev.CYCLE_COMPLETED and (event.timestamp - first) / 60_000 <= at_min
    )


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario=RUNNABLE, seed=st.integers(0, 1_000))
def test_the_executor_runs_the_plan_as_the_simulator_predicts_it(
    tmp_path_factory: pytest.TempPathFactory, scenario: Scenario, seed: int
) -> None:
    the_plan = plan(scenario)
    simulated = run_replication(the_plan, 0, seed=seed)
    try:
        _check_run(tmp_path_factory, the_plan, simulated.trace, seed, SCALE)
    except AssertionError:
        # The executor's overhead is real time, so on a busy machine it can pass the bound at this
        # clock; at a slower clock the same overhead is a smaller share of a scenario minute. A wrong
        # order, draw or outcome does not shrink with the clock, so it fails here as well.
        _check_run(tmp_path_factory, the_plan, simulated.trace, seed, SCALE / SLOWER)


def _check_run(
    tmp_path_factory: pytest.TempPathFactory,
    the_plan: Plan,
    simulated: list[Event],
    seed: int,
    scale: float,
) -> None:
    store = tmp_path_factory.mktemp("run") / "runs.db"
    options = ExecuteOptions(
        agent="emulated", time_scale=scale, seed=seed, retry_backoff_s=0.0, max_output_tokens=100_000
    )
    result = execute(the_plan, options, store=store, progress="none")
    with RunStore(store, read_only=True) as runs:
        executed = scenario_trace(runs.trace(result.run_id), scale)
    sim_start, sim_end, sim_outcome = _times(simulated)
    run_start, run_end, run_outcome = _times(executed)
    # Every task starts and ends in both, at the simulated time plus the executor's own overhead.
    assert sorted(run_start) == sorted(sim_start) and sorted(run_end) == sorted(sim_end)
    for task, start in sim_start.items():
        assert start - 1e-6 <= run_start[task] <= start + _slack(simulated, start), (task, "start")
    for task, end in sim_end.items():
        assert end - 1e-6 <= run_end[task] <= end + _slack(simulated, end), (task, "end")
    # In the same order, wherever the simulated starts are further apart than the overhead.
    for first, one in sim_start.items():
        for second, other in sim_start.items():
            if one + _slack(simulated, other) < other:
                assert run_start[first] < run_start[second], (first, second)
    # Ended the same way; within a race whose members finish within the overhead of each other the
    # winner may differ (the race ends at the same time either way, as the ends above show).
    races = {task.id: task.race for task in the_plan.scenario.all_tasks() if task.race is not None}
    assert {t: o for t, o in run_outcome.items() if t not in races} == {
        t: o for t, o in sim_outcome.items() if t not in races
    }
    for race in set(races.values()):
        members = [t for t, r in races.items() if r == race]
        assert sorted(run_outcome[t] for t in members) == sorted(sim_outcome[t] for t in members), race
