"""The executor with real local commands: the store, the coordination helpers, and the failure policy.

Every test checks the store afterwards: the trace keeps the plan's promises (dependencies, waits,
emits, one task per lane, one race winner) and the right tasks were retried, failed or cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from executor_support import run_and_audit

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event, Plan
from cycleplan.core.reading import LoadError
from cycleplan.executor import ExecutionError, RunResult
from cycleplan.executor import events as ev
from cycleplan.executor.coordination import EventBoard
from cycleplan.executor.summary import scenario_trace, stopped_spans
from cycleplan.planner import plan
from cycleplan.store import RunStore


def _plan(text: str) -> Plan:
    return plan(parse_scenario(textwrap.dedent(text)))


def _run(the_plan: Plan, tmp_path: Path, **options: Any) -> tuple[RunResult, list[Event]]:
    return run_and_audit(the_plan, tmp_path, "command", **options)


def _ends(trace: list[Event]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {e.target_id: (e.action, e.metadata) for e in trace if e.action in ev.TERMINAL}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# store and coordination


def test_store_commits_each_key_once_in_sequence(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        store.create_run("r1", agent="command", source="s", scenario="x", options={}, plan_json="{}")
        first = ev.make_event("lane-1", "a", "r1", 1.0, action="task_started")
        assert store.append("r1", "task_started:a", first) is not None
        assert store.append("r1", "task_started:a", first) is None
        second = ev.make_event("lane-1", "a", "r1", 2.0, action="task_complete")
        assert store.append("r1", "task_complete:a", second) is not None
        assert [(s.seq, s.key) for s in store.events("r1")] == [(1, "task_started:a"), (2, "task_complete:a")]
    with RunStore(tmp_path / "runs.db") as store:
        assert store.append("r1", "x", ev.make_event("l", "a", "r1", 3.0, action="schema_ready")) is not None
        assert [s.seq for s in store.events("r1")] == [1, 2, 3]
        assert store.runs()[0].run_id == "r1"
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_time_a_run_stood_stopped_is_taken_out_of_its_clock() -> None:
    def event(action: str, at_s: float, **meta: Any) -> Event:
        return ev.make_event("lane-1", "t", "run", 1_000_000 + at_s * 1000, action=action, **meta)

    trace = [
        event(ev.RUN_STARTED, 0),
        event(ev.CYCLE_COMPLETED, 10, cycle=1, attempt=1, duration_ms=10_000),
        event(ev.RUN_INTERRUPTED, 12, resume=0),
        event(ev.RUN_RESUMED, 100, resume=1),  # stopped 88 s
        event(ev.CYCLE_COMPLETED, 110, cycle=2, attempt=1, duration_ms=10_000),
        event(ev.RUN_RESUMED, 200, resume=2),  # killed after the cycle: stopped 90 s
        event(ev.RUN_COMPLETE, 205, status="complete"),
    ]
    assert stopped_spans(trace) == [(1_012_000, 1_100_000), (1_110_000, 1_200_000)]
    running = [(e.timestamp - 1_000_000) / 1000 for e in scenario_trace(trace, 1.0)]
    assert running == [0, 10, 12, 12, 22, 22, 27]
    # At time scale 60 the running clock stretches, stopped time still left out.
    scaled = scenario_trace(trace, 60.0)
    assert [(e.timestamp - 1_000_000) / 1000 for e in scaled] == [60 * x for x in running]
    assert scaled[1].metadata["duration_ms"] == 600_000
    # Nothing stopped and no scale: the trace as stored.
    assert scenario_trace(trace[:3], 1.0) == trace[:3]


def test_board_waits_for_all_and_races_for_first() -> None:
    async def scenario() -> tuple[list[str], str]:
        board = EventBoard()
        both = asyncio.ensure_future(board.wait_for_all(["backend_ready", "frontend_ready"]))
        first = asyncio.ensure_future(board.race_for_first(["design_a", "design_b"]))
        await asyncio.sleep(0)
        board.publish(ev.make_event("l", "t", "r", 1.0, action="design_b"))
        board.publish(ev.make_event("l", "t", "r", 2.0, action="backend_ready"))
        await asyncio.sleep(0)
        assert not both.done()
        board.publish(ev.make_event("l", "t", "r", 3.0, action="design_a"))
        board.publish(ev.make_event("l", "t", "r", 4.0, action="frontend_ready"))
        got = await both
        return [e.action for e in got], (await first).action

    assert asyncio.run(scenario()) == (["backend_ready", "frontend_ready"], "design_b")


# --------------------------------------------------------------------------------------------------
# running plans


COURSE = """
    name: course
    roles: {backend: {lanes: 1}, frontend: {lanes: 1}, quality: {lanes: 1}}
    tasks:
      - id: backend
        role: backend
        cycles: 3
        emits: {schema_ready: 2}
        command: ["sh", "-c", "sleep 0.05; echo backend $CYCLEPLAN_CYCLE of $CYCLEPLAN_CYCLES"]
      - id: frontend
        role: frontend
        cycles: 3
        waits: {schema_ready: 2}
        command: ["sh", "-c", "echo frontend $CYCLEPLAN_CYCLE; echo oops >&2"]
      - id: quality
        role: quality
        cycles: 1
        after: [backend, frontend]
        command: ["sh", "-c", "echo $CYCLEPLAN_TASK on $CYCLEPLAN_LANE > $CYCLEPLAN_ARTIFACTS/note.txt"]
"""


def test_dependencies_waits_and_emits_hold_and_output_is_kept(tmp_path: Path) -> None:
    result, trace = _run(_plan(COURSE), tmp_path)
    assert (result.status, result.exit_code) == ("complete", 0)
    assert trace[0].action == ev.RUN_STARTED and trace[-1].action == ev.RUN_COMPLETE
    assert trace[0].metadata["lanes"] == {
        "backend-1": "backend",
        "frontend-1": "frontend",
        "quality-1": "quality",
    }
    assert {t: a for t, (a, _) in _ends(trace).items()} == dict.fromkeys(
        ("backend", "frontend", "quality"), ev.TASK_COMPLETE
    )
    actions = [(e.target_id, e.action) for e in trace]
    assert actions.index(("backend", "schema_ready")) > actions.index(("backend", ev.CYCLE_COMPLETED))
    # The frontend's second cycle waited for schema_ready (audited above) and says how long.
    frontend = [e for e in trace if e.target_id == "frontend" and e.action == ev.CYCLE_COMPLETED]
    assert frontend[1].metadata["sync_wait_ms"] > 0
    assert all(e.group_id == result.run_id for e in trace)
    artifacts = Path(result.summary["run_folder"]) / "artifacts"
    assert (artifacts / "backend" / "cycle-003.attempt-1.stdout").read_text() == "backend 3 of 3\n"
    assert (artifacts / "frontend" / "cycle-001.attempt-1.stderr").read_text() == "oops\n"
    assert (artifacts / "quality" / "note.txt").read_text() == "quality on quality-1\n"
    assert "complete" in (Path(result.summary["run_folder"]) / "log.txt").read_text()
    summary = result.summary
    for key in ("run_id", "status", "makespan_min", "speedup", "tokens_total", "cost_usd"):
        assert key in summary
    assert summary["tasks"] == {"total": 3, "complete": 3, "failed": 0, "cancelled": 0}


def test_a_crashing_command_is_retried_then_fails_and_cascades(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        roles:
          backend: {lanes: 1, failure: {max_retries: 2}}
          frontend: {lanes: 1}
          docs: {lanes: 1}
        tasks:
          - {id: backend, role: backend, cycles: 2, emits: {schema_ready: 2},
             command: ["sh", "-c", "[ $CYCLEPLAN_CYCLE = 1 ] || { echo crashed >&2; exit 3; }"]}
          - {id: frontend, role: frontend, cycles: 2, waits: {schema_ready: 2}, command: ["true"]}
          - {id: quality, role: backend, cycles: 1, after: [backend], command: ["true"]}
          - {id: docs, role: docs, cycles: 2, command: ["true"]}
        """
    )
    result, trace = _run(the_plan, tmp_path)
    assert (result.status, result.exit_code) == ("failed", 1)
    ends = _ends(trace)
    assert ends["backend"][0] == ev.TASK_FAILED
    assert "exited with status 3: crashed" in ends["backend"][1]["error"]
    assert ends["backend"][1]["shouldCancelParallel"] is False
    assert ends["frontend"][0] == ev.TASK_CANCELLED
    cancelled = dict(ends["frontend"][1])
    # It held its lane waiting for schema_ready until the backend failed: a sync wait in the trace.
    assert cancelled.pop("sync_wait_ms") > 0
    assert cancelled == {
        "action": ev.TASK_CANCELLED,
        "reason": "dependency_failed",
        "cause": "backend",
        "event": "schema_ready",
    }
    assert ends["quality"][1]["reason"] == "dependency_failed"
    assert ends["docs"][0] == ev.TASK_COMPLETE
    attempts = [
        (e.metadata["cycle"], e.metadata["attempt"], e.metadata["failed"])
        for e in trace
        if e.target_id == "backend" and e.action == ev.CYCLE_COMPLETED
    ]
    assert attempts == [(1, 1, False), (2, 1, True), (2, 2, True), (2, 3, True)]
    assert not any(e.target_id == "quality" and e.action == ev.TASK_STARTED for e in trace)
    assert result.summary["failed_cycles"] == 3


def test_a_failed_attempt_is_retried_and_the_task_completes(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        roles: {backend: {failure: {max_retries: 1}}}
        tasks:
          - {id: flaky, role: backend, cycles: 2,
             command: ["sh", "-c", "[ $CYCLEPLAN_ATTEMPT = 2 ] || [ $CYCLEPLAN_CYCLE = 1 ]"]}
        """
    )
    result, trace = _run(the_plan, tmp_path)
    assert result.status == "complete"
    failed = [e for e in trace if e.action == ev.CYCLE_COMPLETED and e.metadata["failed"]]
    assert [(e.metadata["cycle"], e.metadata["attempt"]) for e in failed] == [(2, 1)]


def test_a_missing_program_fails_at_once(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        roles: {backend: {failure: {max_retries: 5}}}
        tasks: [{id: ghost, role: backend, cycles: 1, command: ["no-such-program-here"]}]
        """
    )
    result, trace = _run(the_plan, tmp_path)
    assert result.status == "failed"
    assert sum(e.action == ev.CYCLE_COMPLETED for e in trace) == 1
    assert "cannot start 'no-such-program-here'" in _ends(trace)["ghost"][1]["error"]


def test_cancel_parallel_stops_running_siblings_and_their_processes(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    the_plan = _plan(
        f"""
        roles: {{backend: {{lanes: 2, failure: {{max_retries: 0, cancel_parallel: true}}}}}}
        tasks:
          - {{id: doomed, role: backend, cycles: 1, command: ["sh", "-c", "sleep 0.3; exit 1"]}}
          - {{id: sibling, role: backend, cycles: 1, shell: true,
             command: ["sleep 30 & echo $! >> {pids}; wait"]}}
        """
    )
    started = time.monotonic()
    _, trace = _run(the_plan, tmp_path)
    assert time.monotonic() - started < 20
    ends = _ends(trace)
    assert ends["doomed"][0] == ev.TASK_FAILED and ends["doomed"][1]["shouldCancelParallel"] is True
    assert ends["sibling"][1] == {"action": ev.TASK_CANCELLED, "reason": "cancel_parallel", "cause": "doomed"}
    interrupted = [e for e in trace if e.target_id == "sibling" and e.action == ev.CYCLE_COMPLETED]
    assert interrupted[0].metadata["interrupted"] is True
    child = int(pids.read_text().split()[0])
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the cancelled command's child outlived it"


RACE = """
    roles: {designer: {lanes: 2}, frontend: {lanes: 1}}
    tasks:
      - {id: design-a, role: designer, cycles: 1, race: design, command: ["sh", "-c", "sleep 0.1"]}
      - {id: design-b, role: designer, cycles: 1, race: design, command: ["sh", "-c", "sleep 20"]}
      - {id: build, role: frontend, cycles: 1, after: [design-b], command: ["true"]}
"""


def test_the_first_race_member_wins_and_the_rest_are_cancelled(tmp_path: Path) -> None:
    started = time.monotonic()
    result, trace = _run(_plan(RACE), tmp_path)
    assert time.monotonic() - started < 15
    assert result.status == "complete"
    ends = _ends(trace)
    assert ends["design-a"][0] == ev.TASK_COMPLETE
    assert ends["design-b"][1]["reason"] == "race_lost" and ends["design-b"][1]["cause"] == "design-a"
    # A dependent of a race member waits for the race, not for that member.
    assert ends["build"][0] == ev.TASK_COMPLETE


def test_a_hung_agent_times_out_and_its_process_group_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    the_plan = _plan(
        f"""
        roles: {{ops: {{failure: {{max_retries: 3}}}}}}
        tasks:
          - {{id: hung, role: ops, cycles: 2, timeout_min: 0.01, shell: true,
             command: ["sleep 60 & echo $! >> {pids}; wait"]}}
          - {{id: after-hung, role: ops, cycles: 1, after: [hung], command: ["true"]}}
        """
    )
    started = time.monotonic()
    _, trace = _run(the_plan, tmp_path)
    assert time.monotonic() - started < 20
    ends = _ends(trace)
    assert ends["hung"][0] == ev.TASK_FAILED
    assert ends["hung"][1]["timeout"] is True and "timed out" in ends["hung"][1]["error"]
    assert ends["after-hung"][1]["reason"] == "dependency_failed"
    # A timeout is final: no retry.
    assert sum(e.target_id == "hung" and e.action == ev.CYCLE_COMPLETED for e in trace) == 1
    child = int(pids.read_text().split()[0])
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


@pytest.mark.parametrize("escape", ["setsid", "double-fork"])
def test_processes_that_left_the_group_are_stopped_with_it(tmp_path: Path, escape: str) -> None:
    """`setsid` (a session of its own) and a daemon's double fork (its parent gone) both escape the
    process group; the timeout finds them by the marks their environment inherited."""
    pids = tmp_path / "pids"
    spawn = {
        "setsid": f"setsid sleep 60 & echo $! >> {pids}; wait",
        "double-fork": f"(setsid sh -c 'echo $$ >> {pids}; exec sleep 60' &); sleep 60",
    }[escape]
    the_plan = _plan(
        f"""
        roles: {{ops: {{failure: {{max_retries: 0}}}}}}
        tasks:
          - {{id: hung, role: ops, cycles: 1, timeout_min: 0.02, shell: true, command: ["{spawn}"]}}
        """
    )
    _, trace = _run(the_plan, tmp_path)
    assert _ends(trace)["hung"][1]["timeout"] is True
    escaped = int(pids.read_text().split()[0])
    deadline = time.monotonic() + 5
    while _alive(escaped) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(escaped)


def test_the_run_timeout_cancels_what_is_left(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        run_timeout_min: 0.01
        roles: {ops: {lanes: 1}}
        tasks:
          - {id: slow, role: ops, cycles: 1, command: ["sleep", "30"]}
          - {id: next, role: ops, cycles: 1, after: [slow], command: ["true"]}
        """
    )
    result, trace = _run(the_plan, tmp_path)
    assert (result.status, result.exit_code) == ("timeout", 1)
    ends = _ends(trace)
    assert ends["slow"][1]["reason"] == "run_timeout"
    assert ends["next"][1]["reason"] == "run_timeout"
    assert trace[-1].metadata == {"action": ev.RUN_COMPLETE, "status": "timeout"}


def test_max_parallel_and_resources_are_respected(tmp_path: Path) -> None:
    log = tmp_path / "log"
    command = (
        f'["sh", "-c", "echo start $CYCLEPLAN_TASK >> {log}; sleep 0.1; echo end $CYCLEPLAN_TASK >> {log}"]'
    )
    the_plan = _plan(
        f"""
        max_parallel: 2
        resources: {{staging: {{capacity: 1}}}}
        roles: {{qa: {{lanes: 4}}}}
        tasks:
          - {{id: a, role: qa, cycles: 2, requires: {{staging: 1}}, command: {command}}}
          - {{id: b, role: qa, cycles: 2, requires: {{staging: 1}}, command: {command}}}
          - {{id: c, role: qa, cycles: 2, command: {command}}}
          - {{id: d, role: qa, cycles: 2, command: {command}}}
        """
    )
    result, _ = _run(the_plan, tmp_path)  # the audit checks max_parallel
    assert result.status == "complete"
    running: set[str] = set()
    for line in log.read_text().split("\n"):
        if line:
            what, task = line.split()
            if what == "start":
                running.add(task)
                assert not {"a", "b"} <= running, "two tasks held the one staging unit"
                assert len(running) <= 2
            else:
                running.discard(task)


def test_a_plan_whose_lanes_block_each_other_is_cancelled_as_stalled(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        roles: {ops: {lanes: 1}}
        tasks:
          - {id: first, role: ops, cycles: 1, command: ["true"]}
          - {id: second, role: ops, cycles: 1, after: [first], command: ["true"]}
        """
    )
    lane = the_plan.lanes[0]
    # An edited plan.json that puts the dependent first on the only lane.
    broken = the_plan.model_copy(update={"lanes": [lane.model_copy(update={"tasks": lane.tasks[::-1]})]})
    result, trace = _run(broken, tmp_path)
    ends = _ends(trace)
    assert ends["second"][1]["reason"] == "stalled"
    assert ends["first"][0] == ev.TASK_COMPLETE
    assert result.status == "failed"


def test_the_command_agent_needs_a_command_on_every_task(tmp_path: Path) -> None:
    the_plan = _plan("roles: {ops: {}}\ntasks: [{id: a, role: ops, cycles: 1}]")
    with pytest.raises(ExecutionError, match="needs a 'command' on every task; missing on: a"):
        _run(the_plan, tmp_path)
    # Refused before the store was opened: no store, no run folder, no lock.
    assert not (tmp_path / "store").exists()


def test_time_scale_is_for_rehearsals_only(tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match="--agent emulated"):
        _run(_plan(COURSE), tmp_path, time_scale=10)


def test_executor_events_cannot_be_emitted_by_tasks() -> None:
    """Refused where every scenario and plan is read, so `validate` and `execute` agree."""
    with pytest.raises(LoadError, match="task_complete: the executor records its own events"):
        _plan(
            "roles: {ops: {}}\n"
            'tasks: [{id: a, role: ops, cycles: 1, emits: {task_complete: 1}, command: ["true"]}]'
        )


def test_every_action_the_executor_records_is_one_no_task_may_emit() -> None:
    recorded = {
        value
        for name, value in vars(ev).items()
        if name.isupper() and isinstance(value, str) and name not in ("RUN_ACTOR", "INTERRUPTED")
    }
    assert recorded == ev.RESERVED


def test_exported_trace_is_the_stored_events_in_the_seed_schema(tmp_path: Path) -> None:
    from cycleplan.store import export_jsonl

    result, trace = _run(_plan(COURSE), tmp_path)
    with RunStore(tmp_path / "store" / "runs.db") as store:
        lines = list(export_jsonl(store, result.run_id))
    assert len(lines) == len(trace)
    first = json.loads(lines[0])
    assert set(first) == {"type", "actorId", "targetId", "groupId", "timestamp", "metadata"}
    assert [Event.model_validate_json(line) for line in lines] == trace


def test_the_executor_never_imports_the_simulator_and_loads_backends_lazily() -> None:
    probe = (
        "import sys, json\n"
        "import cycleplan.executor, cycleplan.executor.run, cycleplan.executor.orchestrator\n"
        "heavy = {'anthropic', 'aiohttp', 'numpy', 'simpy', 'plotly'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
    source = Path(__file__).resolve().parent.parent / "executor"
    for module in source.glob("*.py"):
        text = module.read_text()
        assert "cycleplan.sim" not in text and "from cycleplan import sim" not in text, module.name
