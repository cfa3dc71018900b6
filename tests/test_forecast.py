"""The live forecast (cycleplan.workflows.forecast over cycleplan.sim.forecast): actuals once a run is
over, the prediction at its start, conditioning on the time an attempt has run, the budget and deadline
chances, and its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cycleplan.core.loading import load_scenario
from cycleplan.core.metrics import MS_PER_MIN
from cycleplan.core.model import Plan, RateLimits, Scenario
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate
from cycleplan.sim.forecast import (
    RACE_WORK,
    Grant,
    RunState,
    TaskState,
    conditioned_remaining,
    outlook,
    served_pace,
)
from cycleplan.workflows.forecast import Band, Forecast, forecast, standing

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


@pytest.fixture(scope="module")
def crud() -> Plan:
    return plan(load_scenario(SCENARIOS / "course-crud.yaml"))


def test_a_finished_run_is_its_actuals_with_no_width(crud: Plan) -> None:
    run = run_replication(crud, 3, seed=2)
    made = forecast(crud, run.trace, run.metrics.makespan_min)
    for band, actual in (
        (made.finish_min_from_start, run.metrics.makespan_min),
        (made.cost_usd_total, run.metrics.cost_usd),
        (made.tokens_total, float(run.metrics.tokens_total)),
        (made.cost_to_complete_usd, 0.0),
    ):
        assert band.p10 == band.p50 == band.p90 == pytest.approx(actual)


def test_at_the_start_it_is_the_prediction(crud: Plan) -> None:
    start = [run_replication(crud, 0, seed=0).trace[0]]
    made = forecast(crud, start, 0.0, replications=1000, seed=0)
    predicted = simulate(crud, replications=1000, seed=0, engine="fast")
    for band, name in ((made.finish_min_from_start, "makespan_min"), (made.cost_usd_total, "cost_usd")):
        summary = predicted.summary(name)
        # The same draws on the same recursion: equal but for replications the fast engine hands to SimPy.
        assert band.p50 == pytest.approx(summary.p50, rel=0.02)
        assert band.p10 == pytest.approx(summary.p10, rel=0.03)
        assert band.p90 == pytest.approx(summary.p90, rel=0.03)


@pytest.mark.parametrize(
    ("name", "limits"),
    [
        ("rate-limited", None),
        # Events, handoffs and dependencies under a limit that binds: the gates the race keeps.
        ("course-crud", RateLimits(requests_per_min=0.15)),
        ("payment", RateLimits(input_tokens_per_min=2_000)),
    ],
)
def test_under_rate_limits_the_start_is_the_engines_race(name: str, limits: RateLimits | None) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    if limits is not None:
        scenario = scenario.model_copy(update={"rate_limits": limits})
    limited = plan(scenario)
    made = outlook(limited, RunState(0.0), replications=1000).finish_min
    predicted = simulate(limited, replications=1000, seed=0).summary("makespan_min")
    # The same draws and the same race; only the clients' jitter comes from another stream.
    assert float(np.median(made)) == pytest.approx(predicted.p50, rel=0.02)
    assert float(np.percentile(made, 10)) == pytest.approx(predicted.p10, rel=0.03)
    assert float(np.percentile(made, 90)) == pytest.approx(predicted.p90, rel=0.03)


def test_no_replication_beats_the_limits_pace() -> None:
    limited = plan(load_scenario(SCENARIOS / "rate-limited.yaml"))
    finish = outlook(limited, RunState(0.0), replications=500).finish_min
    # 38 requests at least (twelve pages of three cycles, a review of two) at one a minute, the first
    # from a full bucket, and the last one still has to work.
    assert (finish > 37.0).all()


def test_the_buckets_remember_the_requests_they_served() -> None:
    limited = plan(load_scenario(SCENARIOS / "rate-limited.yaml"))
    now = 10.0
    # Six writers each asked for their first cycle a moment ago.
    asking = {f"page-0{page}": TaskState(taken_min=0.0, working_since_min=now - 0.1) for page in range(1, 7)}
    full = outlook(limited, RunState(now, tasks=asking), replications=1000).finish_min
    # A request served just before they asked left the one-request bucket empty: none is through yet.
    drawn = RunState(now, tasks=asking, grants=(Grant(arrived_min=now - 0.5, granted_min=now - 0.2),))
    empty = outlook(limited, drawn, replications=1000).finish_min
    assert float(np.median(empty)) > float(np.median(full)) + 0.3
    assert (empty > now + 37.0).all()


def test_the_pace_served_is_the_limits_own_over_the_gaps_seen_while_requests_waited() -> None:
    one_a_minute = RateLimits(requests_per_min=1)
    # Each request waited, and was waiting when the one before it was served: a saturated bucket,
    # which at the limit's pace would serve one a minute; they came 1.25 minutes apart.
    saturated = [Grant(arrived_min=0.5 * i, granted_min=1.25 * i + 0.1) for i in range(6)]
    assert served_pace(saturated, one_a_minute) == pytest.approx(0.8)
    # Requests that never waited, or came after the one before was served, say nothing of the pace.
    idle = [Grant(arrived_min=5.0 * i, granted_min=5.0 * i + 0.5 * (i % 2)) for i in range(6)]
    assert served_pace(idle, one_a_minute) == 1.0
    # Too few pairs to judge, no limits, or a limit served faster than its pace (a bucket not empty).
    assert served_pace(saturated[:3], one_a_minute) == 1.0
    assert served_pace(saturated, None) == 1.0
    assert served_pace(saturated, RateLimits(requests_per_min=0.5)) == 1.0
    # The bucket the request needs longest sets its time: 30,000 input tokens at 60,000 a minute.
    tokens = [Grant(0.1 * i, 0.6 * i + 0.2, counted_input=30_000) for i in range(6)]
    assert served_pace(
        tokens, RateLimits(requests_per_min=100, input_tokens_per_min=60_000)
    ) == pytest.approx(0.5 / 0.6)


def test_where_the_limits_are_a_fluid_queue_a_slower_pace_moves_the_finish_later() -> None:
    # Subagents are not raced request by request: their plans keep the limits as a fluid queue.
    session = load_scenario(SCENARIOS / "agent-session.yaml")
    limited = plan(session.model_copy(update={"rate_limits": RateLimits(requests_per_min=2)}))
    full = outlook(limited, RunState(0.0), replications=500).finish_min
    slower = outlook(limited, RunState(0.0, pace=0.8), replications=500).finish_min
    assert (slower >= full - 1e-9).all()
    # The limit sets the pace of most of the run: at four fifths of it the run takes longer by nearly a
    # fifth.
    assert 1.1 < np.median(slower) / np.median(full) < 1.26


def test_a_race_too_long_to_run_in_time_is_kept_as_a_fluid_queue() -> None:
    # A hundred lanes of five one-minute tasks under a limit of 40 requests a minute: racing 1,500
    # requests over a hundred lanes in every replication would take many seconds.
    tasks = [
        {"id": f"t{index:03d}", "role": "agent", "cycles": 3}
        | ({"after": [f"t{index - 100:03d}"]} if index >= 100 else {})
        for index in range(500)
    ]
    crowded = Scenario.model_validate(
        {
            "name": "crowded",
            "roles": {"agent": {"lanes": 100, "cycle": {"kind": "fixed", "value_min": 1}}},
            "tasks": tasks,
            "rate_limits": {"requests_per_min": 40},
        }
    )
    big = plan(crowded)
    assert RACE_WORK < 200 * 100 * 1_500
    paced = outlook(big, RunState(0.0), replications=200).finish_min
    slower = outlook(big, RunState(0.0, pace=0.8), replications=200).finish_min
    # 1,500 requests at 40 a minute, the last task's still to work: the fluid queue, at the pace the run
    # was served at.
    assert 1_500 / 40 - 1 < np.median(paced) < 1_500 / 40 + 4
    assert np.median(slower) / np.median(paced) == pytest.approx(1.25, rel=0.05)
    # The race models the clients' jitter itself: the pace read from a run does not move it.
    limited = plan(load_scenario(SCENARIOS / "rate-limited.yaml"))
    raced = outlook(limited, RunState(0.0), replications=200).finish_min
    assert (outlook(limited, RunState(0.0, pace=0.8), replications=200).finish_min == raced).all()


def test_the_pace_is_read_from_the_trace_of_a_run_under_limits() -> None:
    limited = plan(load_scenario(SCENARIOS / "rate-limited.yaml"))
    run = run_replication(limited, 0, seed=3)
    half = run.metrics.makespan_min / 2
    trace = [event for event in run.trace if event.timestamp - run.trace[0].timestamp <= half * MS_PER_MIN]
    state = standing(limited, trace, half).state
    # The simulator's requests race back to the buckets with the clients' jitter: a few per cent is lost.
    assert 0.85 < state.pace < 1.0
    # Every one-request attempt ended by then was served once: the buckets are replayed from them.
    ended = [e for e in trace if e.action == "cycle_completed"]
    assert len(state.grants) == len(ended) > 0
    assert all(grant.arrived_min <= grant.granted_min <= half for grant in state.grants)
    crud = plan(load_scenario(SCENARIOS / "course-crud.yaml"))
    unlimited = run_replication(crud, 0, seed=3)
    unlimited_state = standing(crud, unlimited.trace, unlimited.metrics.makespan_min / 2).state
    assert unlimited_state.pace == 1.0 and unlimited_state.grants == ()


def test_conditioned_remaining_is_what_is_left_past_the_elapsed_time() -> None:
    rng = np.random.default_rng(1)
    durations = 3.0 * np.exp(0.4 * rng.standard_normal(20_000))
    elapsed = 4.0
    left = conditioned_remaining(durations, elapsed, 5_000, np.random.default_rng(2))
    assert (left >= 0).all()
    # X | X > t lies past t, so it ends later than an unconditioned draw does.
    assert np.median(elapsed + left) > np.median(durations) + 1.0
    expected = durations[durations > elapsed].mean() - elapsed
    assert left.mean() == pytest.approx(expected, rel=0.05)
    # Far in the tail, past every drawn duration, it still leaves time to go.
    tail = conditioned_remaining(durations, 1_000.0, 100, np.random.default_rng(3))
    assert (tail >= 0).all() and np.median(tail) > 0


def test_conditioning_moves_the_running_cycles_finish_later(crud: Plan) -> None:
    first = crud.lanes[0].tasks[0]
    now = 30.0
    # The first cycle began at 0: seen at its start, and seen still running at ``now``.
    fresh = RunState(0.0, tasks={first.task: TaskState(taken_min=0.0, working_since_min=0.0)})
    long_running = RunState(now, tasks={first.task: TaskState(taken_min=0.0, working_since_min=0.0)})
    unconditioned = outlook(crud, fresh, replications=2000).finish_min
    conditioned = outlook(crud, long_running, replications=2000).finish_min
    assert np.median(conditioned) > np.median(unconditioned)
    assert (conditioned >= now).all()


def test_mid_run_forecast_keeps_what_happened(crud: Plan) -> None:
    run = run_replication(crud, 5, seed=4)
    half = run.metrics.makespan_min / 2
    trace = [event for event in run.trace if event.timestamp <= half * MS_PER_MIN]
    stands = standing(crud, trace, half)
    spent = sum(float(e.metadata.get("cost_usd") or 0) for e in trace if e.action == "cycle_completed")
    assert stands.spent_usd == pytest.approx(spent)
    assert stands.finished_min is None
    ended = {e.target_id for e in trace if e.action == "task_complete"}
    assert {name for name, state in stands.state.tasks.items() if state.end_min is not None} == ended
    made = forecast(crud, trace, half)
    assert made.finish_min_from_start.p10 >= half
    assert made.cost_usd_total.p10 >= spent
    assert made.cost_usd_total.p50 == pytest.approx(spent + made.cost_to_complete_usd.p50, rel=0.05)
    # Forecasts made later are narrower: more of the run is known.
    early = forecast(crud, [e for e in run.trace if e.timestamp <= 0.1 * half * MS_PER_MIN], 0.1 * half)
    assert made.finish_min_from_start.width < early.finish_min_from_start.width


def test_budget_and_deadline_chances(crud: Plan) -> None:
    start = [run_replication(crud, 0, seed=0).trace[0]]
    plain = forecast(crud, start, 0.0)
    assert plain.p_within_budget is None and plain.p_by_deadline is None
    generous = forecast(crud, start, 0.0, budget_usd=1e6, deadline_min=1e6)
    assert generous.p_within_budget == 1.0 and generous.p_by_deadline == 1.0
    none = forecast(crud, start, 0.0, budget_usd=0.0, deadline_min=0.0)
    assert none.p_within_budget == 0.0 and none.p_by_deadline == 0.0
    middle = forecast(
        crud,
        start,
        0.0,
        budget_usd=plain.cost_usd_total.p50,
        deadline_min=plain.finish_min_from_start.p50,
    )
    assert middle.p_within_budget == pytest.approx(0.5, abs=0.02)
    assert middle.p_by_deadline == pytest.approx(0.5, abs=0.02)


def test_json_round_trip(crud: Plan) -> None:
    run = run_replication(crud, 1, seed=1)
    half = run.metrics.makespan_min / 2
    trace = [event for event in run.trace if event.timestamp <= half * MS_PER_MIN]
    made = forecast(crud, trace, half, budget_usd=2.0, deadline_min=150.0)
    data = json.loads(json.dumps(made.to_json()))
    assert set(data["finish_min_from_start"]) == {"p10", "p50", "p90"}
    assert Forecast.from_json(data) == made
    assert Band.from_json(Band(1.0, 2.0, 3.0).to_json()) == Band(1.0, 2.0, 3.0)


def test_same_seed_same_forecast(crud: Plan) -> None:
    run = run_replication(crud, 2, seed=3)
    half = run.metrics.makespan_min / 2
    trace = [event for event in run.trace if event.timestamp <= half * MS_PER_MIN]
    assert forecast(crud, trace, half, seed=7) == forecast(crud, trace, half, seed=7)
