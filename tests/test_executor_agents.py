"""Real agent work in the executor: agent loops played call by call, subagents as fork-join.

A rehearsal of a session whose cycles are loops of calls (one compacting its context, one on another
model, one writing to the 1-hour cache, one without caching) and that spawns subagents (one at its first
cycle, two at its third, one of which fails an attempt and retries it) bills, cycle by cycle and attempt
by attempt, exactly the tokens of the simulator's replication on the same seed; the subagents start when
their parent reaches the spawning cycle and return before it works that cycle. Failure, cancellation and
``cancel_parallel`` around subagents are held to the simulator's rules with local commands.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from executor_support import run_and_audit

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event, Plan, Role, Scenario
from cycleplan.executor import RunResult
from cycleplan.executor import events as ev
from cycleplan.executor.anthropic_api import AnthropicBackend
from cycleplan.executor.backend import BackendOptions, CycleRequest
from cycleplan.executor.emulator import Emulator
from cycleplan.planner import plan
from cycleplan.sim import run_replication

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

SESSION = """\
name: a session with subagents
spec: "Feature: course search."
roles:
  main:
    tokens: {context_tokens: 8000, cache_ttl: 1h}
    calls:
      per_cycle: {median: 5, p90: 9}
      growth: {median: 3000, p90: 8000}
      output: {median: 200, p90: 600}
      minutes: {median_min: 0.5, p90_min: 1.0}
      compaction: {threshold_tokens: 40000, summary_tokens: 4000, output_tokens: 3000, minutes: 1}
  explorer:
    model: claude-haiku-4-5
    failure: {probability_per_cycle: 0.3, max_retries: 3}
    calls:
      per_cycle: {median: 3, p90: 6}
      growth: {median: 2000, p90: 5000}
      output: {median: 100, p90: 300}
      minutes: {median_min: 0.4, p90_min: 0.8}
  frontend:
    tokens: {context_tokens: 6000, cache: false}
    sync: {minutes: 1, handoff_tokens: 700}
    calls:
      per_cycle: {median: 3, p90: 5}
      growth: {median: 1500, p90: 4000}
      output: {median: 150, p90: 400}
      minutes: {median_min: 0.5, p90_min: 0.9}
tasks:
  - {id: session, role: main, cycles: 4, emits: {ready: 2}, cycle_models: {3: claude-haiku-4-5}}
  - {id: scout, role: explorer, cycles: 1, spawned_by: {task: session, cycle: 1}}
  - {id: probe-a, role: explorer, cycles: 2, spawned_by: {task: session, cycle: 3}}
  - {id: probe-b, role: explorer, cycles: 1, spawned_by: {task: session, cycle: 3}}
  - {id: ui, role: frontend, cycles: 3, waits: {ready: 2}}
"""
SEED = 6
"""A seed whose replication 0 compacts the session's context and fails probe-a's first attempt once."""

USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


def _cycles(trace: list[Event]) -> dict[tuple[str, int, int], dict[str, Any]]:
    return {
        (e.target_id, int(e.metadata["cycle"]), int(e.metadata["attempt"])): e.metadata
        for e in trace
        if e.action == ev.CYCLE_COMPLETED
    }


def _ends(trace: list[Event]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {e.target_id: (e.action, e.metadata) for e in trace if e.action in ev.TERMINAL}


def test_the_emulators_calls_add_up_to_the_simulators_attempts_on_every_seed() -> None:
    scenario = parse_scenario(SESSION, "session.yaml")
    the_plan = plan(scenario)
    tasks = {task.id: task for task in scenario.all_tasks()}
    for seed in range(12):
        emulator = Emulator(scenario, seed=seed)
        for (task_id, cycle, attempt), meta in _cycles(run_replication(the_plan, 0, seed=seed).trace).items():
            task, role = tasks[task_id], scenario.role(tasks[task_id].role)
            whole = emulator.loop_calls(task, role, cycle, attempt, 1)
            calls = [emulator.loop_calls(task, role, cycle, attempt, j, j) for j in range(1, whole.calls + 1)]
            assert whole.calls == meta["calls"] and whole.failed == meta["failed"]
            assert [call.ends_turn for call in calls] == [False] * (whole.calls - 1) + [True]
            added = [
                sum(call.tokens.input_tokens for call in calls),
                sum(call.tokens.cache_creation_input_tokens for call in calls),
                sum(call.tokens.cache_read_input_tokens for call in calls),
                sum(call.tokens.output_tokens for call in calls),
            ]
            assert added == [meta[name] for name in USAGE], (seed, task_id, cycle, attempt)
            assert sum(call.compactions for call in calls) == whole.compactions == meta["compaction_calls"]
            assert all(min(call.tokens.read, call.tokens.output_tokens) >= 0 for call in calls)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, RunResult, list[Event]]:
    the_plan = plan(parse_scenario(SESSION, "session.yaml"))
    result, trace = run_and_audit(
        the_plan,
        tmp_path_factory.mktemp("session"),
        "emulated",
        time_scale=5_000,
        seed=SEED,
        max_output_tokens=100_000,
    )
    return the_plan, result, trace


def test_the_replication_has_what_the_rehearsal_must_play(
    session: tuple[Plan, RunResult, list[Event]],
) -> None:
    the_plan, _, _ = session
    simulated = _cycles(run_replication(the_plan, 0, seed=SEED).trace)
    assert sum(meta["compaction_calls"] for (task, _, _), meta in simulated.items() if task == "session") > 0
    assert [key for key, meta in simulated.items() if meta["failed"]] == [("probe-a", 1, 1)]
    assert ("probe-a", 1, 2) in simulated
    assert {
        e.target_id for e in run_replication(the_plan, 0, seed=SEED).trace if e.action == "task_failed"
    } == set()


def test_a_rehearsal_bills_the_simulators_replication_call_by_call(
    session: tuple[Plan, RunResult, list[Event]],
) -> None:
    the_plan, result, trace = session
    assert result.status == "complete"
    replication = run_replication(the_plan, 0, seed=SEED)
    executed, simulated = _cycles(trace), _cycles(replication.trace)
    assert executed.keys() == simulated.keys()
    for key, meta in simulated.items():
        got = executed[key]
        assert [got[name] for name in USAGE] == [meta[name] for name in USAGE], key
        assert (got["calls"], got["compaction_calls"]) == (meta["calls"], meta["compaction_calls"]), key
        assert got["failed"] == meta["failed"], key
        # Priced with the cycle's model, cache writes at the role's cache lifetime.
        assert got["cost_usd"] == pytest.approx(meta["cost_usd"], rel=1e-12), key
    assert executed[("session", 3, 1)]["model"] == "claude-haiku-4-5"
    assert executed[("ui", 1, 1)]["input_tokens"] > 700  # uncached: the whole context, the handoff on top
    assert result.summary["tokens_total"] == replication.metrics.tokens_total
    assert result.summary["cost_usd"] == pytest.approx(replication.metrics.cost_usd)


def test_a_loop_is_played_as_calls_that_use_a_tool_until_the_last(
    session: tuple[Plan, RunResult, list[Event]],
) -> None:
    _, result, trace = session
    meta = _cycles(trace)[("session", 2, 1)]
    artifact = Path(result.summary["run_folder"]) / "artifacts" / "session" / meta["artifact"]
    calls = json.loads(artifact.read_text())["calls"]
    assert len(calls) == meta["calls"] > 1
    assert [call["stop_reason"] for call in calls] == ["tool_use"] * (len(calls) - 1) + ["end_turn"]
    for name in USAGE:
        assert sum(call["usage"][name] for call in calls) == meta[name]
    refused = json.loads((artifact.parent.parent / "probe-a" / "cycle-001.attempt-1.json").read_text())
    assert refused["stop_reason"] == "refusal" and refused["calls"][-1]["stop_reason"] == "refusal"


def test_subagents_start_at_their_cycle_and_return_before_their_parent_works_it(
    session: tuple[Plan, RunResult, list[Event]],
) -> None:
    the_plan, result, trace = session
    cycles = _cycles(trace)
    started = {e.target_id: e for e in trace if e.action == ev.TASK_STARTED}
    ends = {e.target_id: e for e in trace if e.action in ev.TERMINAL}
    reached = {1: started["session"].timestamp, 3: next(e for e in trace if e.action == "ready").timestamp}
    for child, cycle in (("scout", 1), ("probe-a", 3), ("probe-b", 3)):
        assert started[child].timestamp >= reached[cycle]
        assert ends[child].action == ev.TASK_COMPLETE
        assert ends[child].timestamp <= cycles[("session", cycle, 1)]["started_at"]
    lanes = {row.task: lane.lane for lane, row in the_plan.planned_tasks()}
    assert {child: started[child].actor_id for child in ("scout", "probe-a", "probe-b")} == {
        child: lanes[child] for child in ("scout", "probe-a", "probe-b")
    }
    assert lanes["scout"] == lanes["probe-a"] == "main-1-sub1" and lanes["probe-b"] == "main-1-sub2"
    # probe-a and probe-b ran side by side, on lanes of their own.
    assert started["probe-b"].timestamp < ends["probe-a"].timestamp
    # Blocked time is on the spawning cycles, and only there.
    blocked = {key[1]: meta.get("blocked_ms") for key, meta in cycles.items() if key[0] == "session"}
    assert blocked[2] is None and blocked[4] is None
    assert blocked[1] >= ends["scout"].timestamp - started["scout"].timestamp - 1
    last = max(ends["probe-a"].timestamp, ends["probe-b"].timestamp)
    assert blocked[3] >= last - started["probe-a"].timestamp - 1
    assert result.summary["blocked_min"] > 0
    assert all("blocked_ms" not in meta for key, meta in cycles.items() if key[0] != "session")


COMMANDS = """\
roles:
  main: {lanes: 2, failure: {max_retries: 0, cancel_parallel: true}}
  helper: {lanes: 1}
tasks:
  - {id: boss, role: helper, cycles: 1, command: ["true"]}
  - {id: slow-kid, role: main, cycles: 1, spawned_by: {task: boss, cycle: 1}, command: ["sleep", "0.8"]}
  - {id: lead, role: main, cycles: 2, shell: true, command: ["sleep 0.2; exit 1"]}
  - {id: late-kid, role: main, cycles: 1, spawned_by: {task: lead, cycle: 2}, command: ["true"]}
"""


def test_a_parent_that_fails_drops_its_unspawned_subagents_and_spares_running_ones(tmp_path: Path) -> None:
    the_plan = plan(parse_scenario(COMMANDS, "commands.yaml"))
    result, trace = run_and_audit(the_plan, tmp_path, "command")
    ends = _ends(trace)
    assert ends["lead"][0] == ev.TASK_FAILED and ends["lead"][1]["shouldCancelParallel"] is True
    # lead's cancel_parallel does not reach slow-kid, of its role but a subagent of another task.
    assert ends["slow-kid"][0] == ev.TASK_COMPLETE
    assert ends["boss"][0] == ev.TASK_COMPLETE
    assert ends["late-kid"][0] == ev.TASK_CANCELLED
    assert (ends["late-kid"][1]["reason"], ends["late-kid"][1]["cause"]) == ("dependency_failed", "lead")
    assert not any(e.target_id == "late-kid" and e.action == ev.TASK_STARTED for e in trace)
    assert result.status == "failed"


BLOCKED = """\
roles:
  main: {lanes: 2, failure: {max_retries: 0, cancel_parallel: true}}
  helper: {lanes: 1}
tasks:
  - {id: parent, role: main, cycles: 2, command: ["true"]}
  - {id: kid, role: helper, cycles: 1, spawned_by: {task: parent, cycle: 1}, command: ["sleep", "30"]}
  - {id: kid-2, role: helper, cycles: 1, spawned_by: {task: parent, cycle: 2}, command: ["true"]}
  - {id: breaker, role: main, cycles: 1, shell: true, command: ["sleep 0.5; exit 3"]}
"""


def test_a_parent_cancelled_while_blocked_cancels_its_running_subagents_first(tmp_path: Path) -> None:
    the_plan = plan(parse_scenario(BLOCKED, "blocked.yaml"))
    result, trace = run_and_audit(the_plan, tmp_path, "command")
    ends = _ends(trace)
    assert ends["breaker"][0] == ev.TASK_FAILED
    assert (ends["parent"][1]["reason"], ends["parent"][1]["cause"]) == ("cancel_parallel", "breaker")
    # The running subagent stops with its parent's reason, before its parent's ending is recorded.
    assert (ends["kid"][1]["reason"], ends["kid"][1]["cause"]) == ("cancel_parallel", "breaker")
    order = [e.target_id for e in trace if e.action in ev.TERMINAL]
    assert order.index("kid") < order.index("parent")
    (cut,) = [meta for key, meta in _cycles(trace).items() if key[0] == "kid"]
    assert cut["interrupted"] is True
    # The one it never spawned is cancelled as a dependency that failed.
    assert (ends["kid-2"][1]["reason"], ends["kid-2"][1]["cause"]) == ("dependency_failed", "parent")
    assert result.status == "failed"


def test_the_runs_timeout_stops_a_blocked_parent_and_its_subagents(tmp_path: Path) -> None:
    scenario = parse_scenario(BLOCKED.replace("exit 3", "exit 0"), "blocked.yaml")
    timed = scenario.model_copy(update={"run_timeout_min": 0.02})
    result, trace = run_and_audit(plan(timed), tmp_path, "command")
    assert result.status == "timeout"
    ends = _ends(trace)
    assert ends["breaker"][0] == ev.TASK_COMPLETE
    assert ends["parent"][1]["reason"] == ends["kid"][1]["reason"] == "run_timeout"
    assert (ends["kid-2"][1]["reason"], ends["kid-2"][1]["cause"]) == ("dependency_failed", "parent")


STALL = """\
roles: {main: {}, helper: {}, other: {}}
tasks:
  - {id: parent, role: main, cycles: 2, emits: {ready: 1}, command: ["true"]}
  - {id: kid, role: helper, cycles: 1, spawned_by: {task: parent, cycle: 1}, command: [sleep, "1.6"]}
  - {id: later, role: helper, cycles: 1, spawned_by: {task: parent, cycle: 2}, command: ["true"]}
  - {id: watcher, role: other, cycles: 1, waits: {ready: 1}, command: ["true"]}
"""


def test_a_parent_blocked_on_subagents_is_no_stall(tmp_path: Path) -> None:
    # While kid runs, watcher's lane waits for an event its blocked parent has yet to publish, and the
    # lane of a subagent not yet spawned is idle: the run is going, not stalled.
    result, trace = run_and_audit(plan(parse_scenario(STALL, "stall.yaml")), tmp_path, "command")
    assert result.status == "complete"
    assert {action for action, _ in _ends(trace).values()} == {ev.TASK_COMPLETE}


def test_the_one_lane_baseline_runs_subagents_in_turn_on_their_parents_lane(tmp_path: Path) -> None:
    scenario = parse_scenario(
        textwrap.dedent(
            """\
            roles: {main: {}, helper: {}}
            tasks:
              - {id: lead, role: main, cycles: 2, command: ["true"]}
              - {id: a, role: helper, cycles: 2, spawned_by: {task: lead, cycle: 2}, command: ["true"]}
              - {id: b, role: helper, cycles: 1, spawned_by: {task: lead, cycle: 2}, command: ["true"]}
              - {id: after, role: main, cycles: 1, after: [lead], command: ["true"]}
            """
        ),
        "inline.yaml",
    )
    the_plan = plan(scenario, "sequential")
    assert len(the_plan.lanes) == 1
    result, trace = run_and_audit(the_plan, tmp_path, "command")
    assert result.status == "complete"
    started = {e.target_id: e for e in trace if e.action == ev.TASK_STARTED}
    ends = {e.target_id: e for e in trace if e.action in ev.TERMINAL}
    assert {event.actor_id for event in started.values()} == {the_plan.lanes[0].lane}
    assert ends["a"].timestamp <= started["b"].timestamp or ends["b"].timestamp <= started["a"].timestamp
    blocked = [
        e.metadata.get("blocked_ms")
        for e in trace
        if e.action == ev.CYCLE_COMPLETED and e.target_id == "lead"
    ]
    assert blocked[0] is None and blocked[1] > 0


LOOP = """\
spec: "Feature: course search."
roles:
  agent:
    tokens: {cache_ttl: 1h}
    calls:
      per_cycle: {median: 4, p90: 4}
      growth: {median: 1000, p90: 1000}
      output: {median: 50, p90: 50}
tasks:
  - {id: work, role: agent, cycles: 1}
"""


class _Tagged(AnthropicBackend):
    """The real backend with its requests tagged, so that the emulator plays the drawn loop call by call."""

    def __init__(self, scenario: Scenario, options: BackendOptions, cap: int | None) -> None:
        super().__init__(scenario, options)
        self._tag_requests = True
        self.cap = cap

    def _call_cap(self, role: Role) -> int | None:
        return self.cap if self.cap is not None else super()._call_cap(role)


def test_the_anthropic_backend_runs_the_tool_loop_up_to_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-emulator")
    scenario = parse_scenario(LOOP, "loop.yaml")
    task = scenario.all_tasks()[0]
    role = scenario.role("agent")
    assert AnthropicBackend(scenario, BackendOptions())._call_cap(role) == 12

    async def one_cycle(cap: int | None, folder: Path) -> tuple[list[dict[str, Any]], Any]:
        folder.mkdir()
        async with Emulator(scenario, time_scale=20_000, keep_requests=True) as emulator:
            backend = _Tagged(scenario, BackendOptions(base_url=emulator.url, time_scale=20_000), cap)
            await backend.start()
            request = CycleRequest(
                run_id="r",
                lane="agent-1",
                task=task,
                role_name="agent",
                role=role,
                cycle=1,
                attempt=1,
                spec=scenario.spec,
                artifacts=folder,
                workdir=folder,
            )
            outcome = await backend.run_cycle(request)
            await backend.close()
            return emulator.requests, outcome

    requests, outcome = asyncio.run(one_cycle(None, tmp_path / "whole"))
    assert outcome.ok and outcome.stop_reason == "end_turn" and outcome.details["calls"] == 4
    assert [r["headers"]["x-cycleplan-call"] for r in requests] == ["1", "2", "3", "4"]
    last = requests[-1]["body"]
    assert last["tools"][0]["name"] == "notes"
    assert [m["role"] for m in last["messages"]] == ["user"] + ["assistant", "user"] * 3
    assert last["messages"][-1]["content"][0]["type"] == "tool_result"
    breakpoints = json.dumps(last).count('"cache_control"')
    assert breakpoints <= 4 and '"ttl": "1h"' in json.dumps(last["system"])
    assert outcome.usage.total > 0

    requests, capped = asyncio.run(one_cycle(2, tmp_path / "capped"))
    assert len(requests) == 2 and capped.ok and capped.stop_reason == "tool_use"
    assert capped.details["call_cap_reached"] is True and capped.details["calls"] == 2
