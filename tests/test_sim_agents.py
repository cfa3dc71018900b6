"""Real agent work in the simulator: agent loops billed call by call, subagents as fork-join.

The agent loop's closed form is held to a call-by-call replay of the same conversation; subagents are
held to the plan's arithmetic (parents blocked for the longest subagent, the one-lane baseline running
them one after the other); both engines must give the same numbers with them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cycleplan.core.draws import LoopState, loop_cycle
from cycleplan.core.loading import parse_scenario
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate


def replay(
    calls: int,
    growth: float,
    output: float,
    context: int,
    threshold: float | None,
    summary: float,
    said: float,
) -> tuple[float, float, float, int, float]:
    """The conversation call by call: each call reads what the previous one cached and writes the rest;
    a compaction reads the whole context and says ``said`` tokens of summary."""
    prefix, cached = float(context), 0.0
    read = written = out = 0.0
    compactions = 0
    for _ in range(calls):
        if threshold is not None and prefix >= threshold:
            read += prefix
            out += said
            compactions += 1
            prefix, cached = context + summary, float(context)
        read += cached
        written += prefix + growth - cached
        prefix += growth
        cached = prefix
        out += output
    return read, written, out, compactions, prefix


@settings(max_examples=200, deadline=None)
@given(
    calls=st.integers(1, 400),
    growth=st.integers(0, 8000),
    output=st.floats(0, 2000),
    context=st.integers(0, 30_000),
    compacting=st.booleans(),
)
def test_the_closed_form_bills_what_the_calls_would(
    calls: int, growth: int, output: float, context: int, compacting: bool
) -> None:
    # Whole tokens of growth and a threshold half a token off them: no call lands exactly on it, where
    # a running sum and a product may round to either side.
    threshold = context + 40_000.5 if compacting else None
    summary = 9_000.0
    done = loop_cycle(
        LoopState.start(context, 1),
        np.array([float(calls)]),
        np.array([float(growth)]),
        np.array([output]),
        context_tokens=context,
        threshold=threshold,
        summary_tokens=summary,
        compaction_output=3_500.0,
    )
    read, written, out, compactions, prefix = replay(
        calls, growth, output, context, threshold, summary, 3_500.0
    )
    assert done.read[0] == pytest.approx(read, rel=1e-9, abs=1e-6)
    assert done.written[0] == pytest.approx(written, rel=1e-9, abs=1e-6)
    assert done.output[0] == pytest.approx(out, rel=1e-9, abs=1e-6)
    assert int(done.compactions[0]) == compactions
    assert done.after.prefix[0] == pytest.approx(prefix, rel=1e-9, abs=1e-6)


SESSION = """\
name: a session with subagents
roles:
  main: {cycle: {kind: fixed, value_min: 10}}
  explorer: {cycle: {kind: fixed, value_min: 3}}
  other: {cycle: {kind: fixed, value_min: 5}}
tasks:
  - {id: session, role: main, cycles: 3, emits: {ready: 2}}
  - {id: ex1, role: explorer, cycles: 1, spawned_by: {task: session, cycle: 2}}
  - {id: ex2, role: explorer, cycles: 2, spawned_by: {task: session, cycle: 2}}
  - {id: ex3, role: explorer, cycles: 1, spawned_by: {task: session, cycle: 3}}
  - {id: b, role: other, cycles: 3, waits: {ready: 2}}
  - {id: c, role: other, cycles: 1, after: [session]}
"""


def test_a_parent_is_blocked_for_its_longest_subagent_and_the_baseline_runs_them_in_turn() -> None:
    planned = plan(parse_scenario(SESSION, "session.yaml"))
    # session: 10, blocked max(3, 6), 10, blocked 3, 10 = 39; c after it: 44.
    assert planned.makespan_min == pytest.approx(44.0)
    # One lane: 30 + 3 + 6 + 3 of subagents, 15 of b, 5 of c.
    assert planned.sequential_min == pytest.approx(62.0)
    rows = {row.task: (lane.lane, row) for lane, row in planned.planned_tasks()}
    assert rows["ex1"][0] == "main-1-sub1" and rows["ex2"][0] == "main-1-sub2"
    assert rows["ex1"][1].start_min == pytest.approx(10.0) and rows["ex3"][1].start_min == pytest.approx(26.0)
    assert "explorer-1" not in {lane.lane for lane in planned.lanes}, (
        "subagent roles get no lanes of their own"
    )
    # b waits for ready, emitted after session's 2nd cycle: 10 + 6 + 10 = 26.
    assert planned.sync_points[0].at_min == pytest.approx(26.0)
    run = run_replication(planned, 0)
    assert run.metrics.makespan_min == pytest.approx(44.0)
    assert run.sequential_min == pytest.approx(62.0)
    assert run.metrics.blocked_min == pytest.approx(9.0)
    assert run.metrics.waits_min["lane"] == 0.0
    blocked = {
        event.metadata["cycle"]: event.metadata.get("blocked_ms", 0.0)
        for event in run.trace
        if event.action == "cycle_completed" and event.target_id == "session"
    }
    assert blocked == {1: 0.0, 2: 6 * 60_000.0, 3: 3 * 60_000.0}


LOOPS = """\
name: loops, models and subagents
roles:
  main:
    model: claude-opus-4-6
    tokens: {context_tokens: 21000, cache_ttl: 1h}
    calls:
      per_cycle: {median: 40, p90: 120}
      growth: {median: 900, p90: 5000}
      output: {median: 120, p90: 900}
      minutes: {median_min: 0.12, p90_min: 0.4}
      compaction: {threshold_tokens: 120000, summary_tokens: 15000, minutes: 1.3}
  explorer:
    model: claude-haiku-4-5
    failure: {probability_per_cycle: 0.2, max_retries: 1}
    calls:
      per_cycle: {median: 12, p90: 30}
      growth: {median: 1500, p90: 6000}
      output: {median: 60, p90: 300}
      minutes: {median_min: 0.05, p90_min: 0.1}
tasks:
  - {id: session, role: main, cycles: 3, cycle_models: {2: claude-haiku-4-5}}
  - {id: explore, role: explorer, cycles: 2, spawned_by: {task: session, cycle: 1}}
  - {id: explore-2, role: explorer, cycles: 1, spawned_by: {task: session, cycle: 3}}
"""


def test_both_engines_agree_on_loops_models_and_subagents() -> None:
    planned = plan(parse_scenario(LOOPS, "loops.yaml"))
    simpy = simulate(planned, replications=600, seed=4, engine="simpy")
    fast = simulate(planned, replications=600, seed=4, engine="fast")
    assert fast.config.engine == "fast"
    for name, values in simpy.replications.values.items():
        assert np.array_equal(np.asarray(values), np.asarray(fast.replications.values[name])), name
    assert simpy.summaries["cache_read_tokens"].p50 > 1_000_000
    assert simpy.summaries["blocked_min"].p50 > 0


def test_one_hour_writes_and_cycle_models_are_priced_as_the_api_bills_them() -> None:
    scenario = parse_scenario(LOOPS, "loops.yaml")
    run = run_replication(plan(scenario), 3, seed=2)
    opus, haiku = (5.0, 25.0), (1.0, 5.0)
    for event in run.trace:
        if event.action != "cycle_completed" or event.target_id != "session":
            continue
        meta = event.metadata
        input_price, output_price = haiku if meta["cycle"] == 2 else opus
        expected = (
            meta["input_tokens"] * input_price
            + meta["cache_creation_input_tokens"] * input_price * 2.0
            + meta["cache_read_input_tokens"] * input_price * 0.1
            + meta["output_tokens"] * output_price
        ) / 1e6
        assert meta["cost_usd"] == pytest.approx(expected, rel=1e-12)
        assert meta["calls"] >= 1
