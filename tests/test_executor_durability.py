"""Durability, through the real command line: ``kill -9`` then ``--resume``, and Ctrl-C.

The executor runs as a subprocess; the tests read its store while it works, kill it, resume it, and
check afterwards that every event is there exactly once and that no completed task ran twice, also
when the run is stopped while a parent is blocked on its subagents.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from executor_support import wait_for

from cycleplan.core.loading import load_scenario
from cycleplan.core.model import Event, Plan
from cycleplan.executor import events as ev
from cycleplan.executor.audit import trace_problems
from cycleplan.planner import plan
from cycleplan.store import RunStore


def _stored(store: Path) -> list[tuple[str, str]]:
    """(target, action) of the events committed so far, read while the executor writes."""
    if not store.exists():
        return []
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return [
                (str(t), str(a)) for t, a in db.execute("SELECT target_id, action FROM events ORDER BY seq")
            ]
    except sqlite3.OperationalError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _trace(store: Path) -> tuple[str, list[Event]]:
    with RunStore(store) as runs:
        (record,) = runs.runs()
        return record.run_id, runs.trace(record.run_id)


def _resume(cli: str, run_id: str, store: Path, cwd: Path) -> dict[str, Any]:
    """``cycleplan execute --resume RUN --json``; its summary, after checking that it succeeded."""
    resumed = subprocess.run(
        [cli, "execute", "--resume", run_id, "--store", str(store), "--json", "--progress", "none"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary: dict[str, Any] = json.loads(resumed.stdout)
    return summary


def _assert_ran_once(tmp_path: Path, the_plan: Plan, tasks: set[str]) -> None:
    """Each cycle of ``tasks`` ran once: one line per cycle in the scenario's work log."""
    runs = Counter(tuple(line.split()[:2]) for line in (tmp_path / "work.log").read_text().splitlines())
    for task in tasks:
        cycles = next(t.cycles for t in the_plan.scenario.all_tasks() if t.id == task)
        assert all(runs[(task, str(c))] == 1 for c in range(1, cycles + 1)), task


def _scenario(tmp_path: Path) -> Path:
    log = tmp_path / "work.log"
    marker = tmp_path / "long.started"
    pid = tmp_path / "long.pid"
    step = f"echo $CYCLEPLAN_TASK $CYCLEPLAN_CYCLE $CYCLEPLAN_ATTEMPT >> {log}; sleep 0.15"
    # The long task's first cycle hangs on its first run only (a killed executor leaves it behind).
    long = f"if [ ! -e {marker} ]; then touch {marker}; sleep 60 & echo $! > {pid}; wait; fi; {step}"

    def task(name: str, role: str, cycles: int, run: str, **more: object) -> dict[str, object]:
        return {"id": name, "role": role, "cycles": cycles, "shell": True, "command": [run], **more}

    scenario = {
        "name": "durable",
        "roles": {"backend": {"lanes": 2}, "frontend": {"lanes": 1}, "ops": {"lanes": 1}},
        "tasks": [
            task("schema", "backend", 3, step, emits={"schema_ready": 1}),
            task("api", "backend", 4, step, after=["schema"]),
            task("auth", "backend", 3, step, after=["schema"]),
            task("ui", "frontend", 4, step, waits={"schema_ready": 2}),
            task("deploy", "ops", 2, long),
            task("release", "ops", 2, step, after=["api", "auth", "ui", "deploy"]),
        ],
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def test_kill_9_then_resume_finishes_the_run_with_every_event_once(cli: str, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    store = tmp_path / "store" / "runs.db"
    command = [
        cli,
        "execute",
        str(scenario),
        "--agent",
        "command",
        "--store",
        str(store),
        "--progress",
        "plain",
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: ("schema", ev.TASK_COMPLETE) in _stored(store) and (tmp_path / "long.pid").exists(),
            "a completed task and the long one running",
            process,
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    before = _stored(store)
    completed_before = {t for t, a in before if a == ev.TASK_COMPLETE}
    assert "schema" in completed_before
    assert (tmp_path / "store", ev.RUN_COMPLETE) not in before
    orphan = int((tmp_path / "long.pid").read_text())
    assert _alive(orphan), "the killed executor's agent should still be running before the resume"

    run_id, _ = _trace(store)
    listed = subprocess.run(
        [cli, "runs", "--store", str(store), "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(listed.stdout)[0]["status"] == "stopped"
    assert _resume(cli, run_id, store, tmp_path)["status"] == "complete"
    assert not _alive(orphan), "the resumed run should stop what the killed executor left running"

    _, trace = _trace(store)
    the_plan = plan(load_scenario(scenario))
    assert trace_problems(the_plan, trace) == []  # includes: no event recorded twice
    # The store held every event committed before the kill, unchanged, at the head of the trace.
    assert [(e.target_id, e.action) for e in trace[: len(before)]] == before
    ends = {e.target_id: e.action for e in trace if e.action in ev.TERMINAL}
    assert set(ends.values()) == {ev.TASK_COMPLETE} and len(ends) == 6
    assert sum(e.action == ev.RUN_RESUMED for e in trace) == 1
    assert sum(e.action == ev.RUN_COMPLETE for e in trace) == 1
    assert any(e.action == ev.TASK_RESUMED and e.target_id == "deploy" for e in trace)
    # No task that had completed before the kill ran again.
    _assert_ran_once(tmp_path, the_plan, completed_before)
    # A second resume has nothing left to do.
    again = subprocess.run(
        [cli, "execute", "--resume", run_id, "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "complete"
    assert len(_trace(store)[1]) == len(trace)


def test_ctrl_c_stops_the_agents_exits_130_and_resume_finishes_the_run(cli: str, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    store = tmp_path / "store" / "runs.db"
    process = subprocess.Popen(
        [cli, "execute", str(scenario), "--agent", "command", "--store", str(store), "--progress", "plain"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "long.pid").exists(), "the long task to start", process)
        os.kill(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    child = int((tmp_path / "long.pid").read_text())
    wait_for(lambda: not _alive(child), "the stopped agent's child to die")

    run_id, trace = _trace(store)
    the_plan = plan(load_scenario(scenario))
    assert trace_problems(the_plan, trace) == []
    assert trace[-1].metadata == {"action": ev.RUN_INTERRUPTED, "resume": 0}
    assert not any(e.action == ev.RUN_COMPLETE for e in trace), "an interrupted run is not over"
    # What was stopped is left unfinished, not cancelled: the cut attempt is recorded as such.
    assert not any(e.target_id == "deploy" and e.action in ev.TERMINAL for e in trace)
    (cut,) = [e for e in trace if e.target_id == "deploy" and e.action == ev.CYCLE_COMPLETED]
    assert cut.metadata["interrupted"] is True and cut.metadata["attempt"] == 1
    assert f"--resume {run_id}" in stdout
    with RunStore(store) as runs:
        assert runs.run(run_id).status == "interrupted"
    completed_before = {e.target_id for e in trace if e.action == ev.TASK_COMPLETE}

    stopped_s = 1.5
    time.sleep(stopped_s)
    summary = _resume(cli, run_id, store, tmp_path)
    assert summary["status"] == "complete" and "resume" not in summary
    _, trace = _trace(store)
    assert trace_problems(the_plan, trace) == []
    ends = {e.target_id: e.action for e in trace if e.action in ev.TERMINAL}
    assert set(ends.values()) == {ev.TASK_COMPLETE} and len(ends) == 6
    # The cut attempt is numbered, and the retry that follows it does not count it as a failure.
    deploy = [e.metadata for e in trace if e.target_id == "deploy" and e.action == ev.CYCLE_COMPLETED]
    assert [(m["cycle"], m["attempt"], m["failed"]) for m in deploy] == [
        (1, 1, True),
        (1, 2, False),
        (2, 1, False),
    ]
    assert summary["failed_cycles"] == 0
    _assert_ran_once(tmp_path, the_plan, completed_before)
    # The time the run stood stopped is not part of its makespan.
    span_min = (trace[-1].timestamp - trace[0].timestamp) / 60_000
    assert summary["makespan_min"] < span_min - 0.9 * stopped_s / 60


def test_an_emulated_run_killed_mid_conversation_resumes_it(cli: str, tmp_path: Path) -> None:
    scenario = tmp_path / "emulated.yaml"
    scenario.write_text(
        textwrap.dedent(
            """
            name: conversation
            spec: "Feature: course CRUD."
            roles:
              backend: {lanes: 2, cycle: {kind: fixed, value_min: 1}}
              frontend: {lanes: 1, cycle: {kind: fixed, value_min: 1}}
            tasks:
              - {id: backend, role: backend, cycles: 12, emits: {schema_ready: 2}}
              - {id: auth, role: backend, cycles: 12}
              - {id: frontend, role: frontend, cycles: 12, waits: {schema_ready: 3}}
            """
        )
    )
    store = tmp_path / "store" / "runs.db"
    command = [
        cli,
        "execute",
        str(scenario),
        "--agent",
        "emulated",
        "--time-scale",
        "200",
        "--store",
        str(store),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: sum(a == ev.CYCLE_COMPLETED for _, a in _stored(store)) >= 8, "a few cycles", process
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    run_id, before = _trace(store)
    summary = _resume(cli, run_id, store, tmp_path)
    _, trace = _trace(store)
    assert trace_problems(plan(load_scenario(scenario)), trace) == []
    assert trace[: len(before)] == before
    cycles = [(e.target_id, e.metadata["cycle"]) for e in trace if e.action == ev.CYCLE_COMPLETED]
    assert sorted(cycles) == sorted({(t, c) for t in ("backend", "auth", "frontend") for c in range(1, 13)})
    # The resumed conversation carried on: a late cycle's request held every earlier turn.
    last = json.loads(
        (Path(summary["run_folder"]) / "artifacts" / "auth" / "cycle-012.attempt-1.json").read_text()
    )
    assert last["ok"] and last["prompt"].startswith("Cycle 12 of 12")
    assert last["turns"] == 2 * 11 + 1


def test_a_run_cut_short_after_any_event_resumes_to_a_sound_trace(tmp_path: Path) -> None:
    """Every point a crash could stop the executor at: keep the events up to it, resume, audit."""
    from cycleplan.executor import ExecuteOptions, execute, resume

    scenario = tmp_path / "cut.yaml"
    scenario.write_text(
        textwrap.dedent(
            """
            roles: {backend: {lanes: 2}, frontend: {lanes: 1}}
            tasks:
              - {id: schema, role: backend, cycles: 2, emits: {schema_ready: 1}, command: ["true"]}
              - {id: ui, role: frontend, cycles: 2, waits: {schema_ready: 2}, command: ["true"]}
              - {id: pick-a, role: backend, cycles: 1, race: pick, after: [schema], command: ["true"]}
              - {id: pick-b, role: backend, cycles: 1, race: pick, after: [schema], command: ["sleep", "0.2"]}
              - {id: ship, role: frontend, cycles: 1, after: [ui, pick-b], command: ["true"]}
            """
        )
    )
    the_plan = plan(load_scenario(scenario))
    whole = tmp_path / "whole.db"
    options = ExecuteOptions(agent="command", retry_backoff_s=0, workdir=str(tmp_path))
    first = execute(the_plan, options, store=whole, progress="none")
    assert first.status == "complete"
    with RunStore(whole) as runs:
        record = runs.run(first.run_id)
        stored = runs.events(first.run_id)
    for cut in range(1, len(stored)):
        store = tmp_path / f"cut-{cut}" / "runs.db"
        with RunStore(store) as runs:
            runs.create_run(
                record.run_id,
                agent=record.agent,
                source=record.source,
                scenario=record.scenario,
                options=record.options,
                plan_json=record.plan_json,
            )
            for event in stored[:cut]:
                runs.append(record.run_id, event.key, event.event)
        result = resume(record.run_id, store=store, progress="none")
        with RunStore(store) as runs:
            trace = runs.trace(record.run_id)
        assert trace_problems(the_plan, trace) == [], cut
        assert trace[:cut] == [event.event for event in stored[:cut]], cut
        assert result.status == "complete", cut
        ended = {e.target_id: e.action for e in trace if e.action in ev.TERMINAL}
        assert len(ended) == 5, cut


BLOCKED_SESSION = """
name: blocked
spec: "Feature: course search."
roles:
  main: {cycle: {kind: fixed, value_min: 1}}
  explorer:
    calls:
      per_cycle: {median: 3, p90: 3}
      growth: {median: 1000, p90: 1000}
      output: {median: 100, p90: 100}
      minutes: {median_min: 1, p90_min: 1}
  other: {cycle: {kind: fixed, value_min: 1}}
tasks:
  - {id: session, role: main, cycles: 3}
  - {id: quick, role: explorer, cycles: 1, spawned_by: {task: session, cycle: 2}}
  - {id: long, role: explorer, cycles: 3, spawned_by: {task: session, cycle: 2}}
  - {id: side, role: other, cycles: 2}
"""


def test_ctrl_c_while_a_parent_is_blocked_then_resume_runs_nothing_twice(cli: str, tmp_path: Path) -> None:
    scenario = tmp_path / "blocked.yaml"
    scenario.write_text(BLOCKED_SESSION)
    store = tmp_path / "store" / "runs.db"
    command = [
        cli,
        "execute",
        str(scenario),
        "--agent",
        "emulated",
        "--time-scale",
        "200",
        "--store",
        str(store),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: {("quick", ev.TASK_COMPLETE), ("long", ev.CYCLE_COMPLETED)} <= set(_stored(store)),
            "one subagent back and the other one cycle in",
            process,
        )
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    run_id, before = _trace(store)
    the_plan = plan(load_scenario(scenario))
    assert trace_problems(the_plan, before) == []
    assert before[-1].action == ev.RUN_INTERRUPTED
    # Stopped while blocked: session had not begun its second cycle, long had not returned.
    assert not any(e.target_id == "session" and e.metadata.get("cycle") == 2 for e in before)
    assert not any(e.target_id == "long" and e.action in ev.TERMINAL for e in before)

    summary = _resume(cli, run_id, store, tmp_path)
    assert summary["status"] == "complete"
    _, trace = _trace(store)
    assert trace_problems(the_plan, trace) == []
    assert trace[: len(before)] == before
    # Every cycle succeeded once; nothing that succeeded before the stop was attempted again after it.
    succeeded = Counter(
        (e.target_id, e.metadata["cycle"])
        for e in trace
        if e.action == ev.CYCLE_COMPLETED and not e.metadata["failed"]
    )
    tasks = {t.id: t.cycles for t in the_plan.scenario.all_tasks()}
    assert succeeded == Counter(
        {(task, c): 1 for task, cycles in tasks.items() for c in range(1, cycles + 1)}
    )
    done_before = {
        (e.target_id, e.metadata["cycle"])
        for e in before
        if e.action == ev.CYCLE_COMPLETED and not e.metadata["failed"]
    }
    after = trace[len(before) :]
    assert not any(
        e.action == ev.CYCLE_COMPLETED and (e.target_id, e.metadata["cycle"]) in done_before for e in after
    )
    ended_before = {e.target_id for e in before if e.action in ev.TERMINAL}
    assert "quick" in ended_before
    assert not any(e.target_id in ended_before for e in after)
    assert {e.target_id for e in after if e.action == ev.TASK_RESUMED} >= {"session", "long"}
    # The parent's blocked time counts the part before the stop as well.
    stopped_at = before[-1].timestamp
    spawned_at = min(
        e.timestamp for e in before if e.action == ev.TASK_STARTED and e.target_id in ("quick", "long")
    )
    (second,) = [
        e.metadata
        for e in after
        if e.target_id == "session" and e.action == ev.CYCLE_COMPLETED and e.metadata["cycle"] == 2
    ]
    assert second["blocked_ms"] >= stopped_at - spawned_at


def test_a_run_with_subagents_cut_short_after_any_event_resumes_to_a_sound_trace(tmp_path: Path) -> None:
    """Every point a crash could stop a parent and its subagents at: keep the events up to it, resume,
    audit; subagents that had ended are not spawned again."""
    from cycleplan.executor import ExecuteOptions, execute, resume

    scenario = tmp_path / "cut.yaml"
    scenario.write_text(
        textwrap.dedent(
            """
            roles: {main: {lanes: 1}, helper: {lanes: 1}}
            tasks:
              - {id: lead, role: main, cycles: 3, command: ["true"]}
              - {id: first, role: helper, cycles: 1, spawned_by: {task: lead, cycle: 1}, command: ["true"]}
              - {id: left, role: helper, cycles: 2, spawned_by: {task: lead, cycle: 3}, command: ["true"]}
              - {id: right, role: helper, cycles: 1, spawned_by: {task: lead, cycle: 3}, command: ["true"]}
              - {id: next, role: main, cycles: 1, after: [lead], command: ["true"]}
            """
        )
    )
    the_plan = plan(load_scenario(scenario))
    whole = tmp_path / "whole.db"
    options = ExecuteOptions(agent="command", retry_backoff_s=0, workdir=str(tmp_path))
    first = execute(the_plan, options, store=whole, progress="none")
    assert first.status == "complete"
    with RunStore(whole) as runs:
        record = runs.run(first.run_id)
        stored = runs.events(first.run_id)
    for cut in range(1, len(stored)):
        store = tmp_path / f"cut-{cut}" / "runs.db"
        with RunStore(store) as runs:
            runs.create_run(
                record.run_id,
                agent=record.agent,
                source=record.source,
                scenario=record.scenario,
                options=record.options,
                plan_json=record.plan_json,
            )
            for event in stored[:cut]:
                runs.append(record.run_id, event.key, event.event)
        result = resume(record.run_id, store=store, progress="none")
        with RunStore(store) as runs:
            trace = runs.trace(record.run_id)
        assert trace_problems(the_plan, trace) == [], cut
        assert trace[:cut] == [event.event for event in stored[:cut]], cut
        assert result.status == "complete", cut
        ended = {e.target_id: e.action for e in trace if e.action in ev.TERMINAL}
        assert set(ended.values()) == {ev.TASK_COMPLETE} and len(ended) == 5, cut
        started = Counter(e.target_id for e in trace if e.action == ev.TASK_STARTED)
        assert set(started.values()) == {1}, cut
        blocked = {
            e.metadata["cycle"]: e.metadata.get("blocked_ms")
            for e in trace
            if e.action == ev.CYCLE_COMPLETED and e.target_id == "lead" and not e.metadata["failed"]
        }
        assert blocked[2] is None and blocked[1] is not None and blocked[3] is not None, cut
