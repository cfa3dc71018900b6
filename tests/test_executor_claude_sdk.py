"""Real Claude Code in the loop: the claude-code backend on the official SDK, against the emulator.

The claude extra's wheel bundles the real Claude Code CLI; these tests run it, offline, against the
loopback emulator, and hold three ledgers against each other call for call: the emulator's own, the
executed run's (from the SDK's stream and hooks) and the run imported from the transcripts Claude Code
wrote. They skip, saying why, where the extra is not installed.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from executor_support import run_and_audit

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event, Plan
from cycleplan.executor import events as ev
from cycleplan.executor.billing import read_ledger
from cycleplan.executor.claude_code import cli_flags
from cycleplan.executor.claude_sdk import bundled_cli
from cycleplan.planner import plan
from cycleplan.store import RunStore
from cycleplan.workflows.importers import import_claude_code, store_run

pytestmark = pytest.mark.skipif(
    bundled_cli() is None,
    reason="the claude extra (claude-agent-sdk, which bundles Claude Code) is not installed: "
    "pip install 'cycleplan[claude]'",
)

# Calls of a few tenths of a second: a turn of the real client takes a few seconds at time scale 1.
LOOP = (
    "{per_cycle: {median: 3, p90: 5}, growth: {median: 400, p90: 1500}, output: {median: 100, p90: 300}, "
    "minutes: {median_min: 0.005, p90_min: 0.008}}"
)

LANES = f"""
    name: two lanes of agent loops
    spec: "Feature: a small command-line tool."
    roles:
      dev: {{lanes: 2, model: claude-sonnet-4-5, calls: {LOOP}}}
    tasks:
      - {{id: api, role: dev, cycles: 2, prompt: Build the API.}}
      - {{id: ui, role: dev, cycles: 2, prompt: Build the UI.}}
"""

SUBAGENTS = f"""
    name: a session with subagents
    roles:
      main: {{model: claude-sonnet-4-5, calls: {LOOP}}}
      explorer: {{model: claude-haiku-4-5, calls: {LOOP}}}
    tasks:
      - {{id: session, role: main, cycles: 2, prompt: Work on the issue.}}
      - {{id: explore, role: explorer, cycles: 1, spawned_by: {{task: session, cycle: 1}}, prompt: Explore.}}
      - {{id: review, role: explorer, cycles: 2, spawned_by: {{task: session, cycle: 1}}, prompt: Review.}}
"""


def _workdir(tmp_path: Path) -> Path:
    """A small work tree for the agents to read."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.py").write_text("".join(f"def step_{i}():\n    return {i}\n\n" for i in range(200)))
    (work / "README.md").write_text("# tool\n" + "A line of documentation.\n" * 100)
    return work


def _run(text: str, tmp_path: Path, **options: Any) -> tuple[Plan, Any, list[Event]]:
    the_plan = plan(parse_scenario(textwrap.dedent(text)))
    settings: dict[str, Any] = {"emulator": True, "claude_client": "sdk", "workdir": str(_workdir(tmp_path))}
    result, trace = run_and_audit(the_plan, tmp_path, "claude-code", **{**settings, **options})
    return the_plan, result, trace


Rows = dict[tuple[str, int], list[list[int]]]


def _ledger_rows(folder: Path) -> Rows:
    rows: Rows = defaultdict(list)
    for row in read_ledger(folder / "emulator.jsonl"):
        if row["status"] == 200:
            tokens = [
                row["input_tokens"],
                row["cache_write_5m"],
                row["cache_write_1h"],
                row["cache_read_input_tokens"],
                row["output_tokens"],
            ]
            rows[(row["task"], row["cycle"])].append(tokens)
    return dict(rows)


def _trace_rows(trace: list[Event], name: dict[str, str] | None = None) -> Rows:
    rows: Rows = {}
    for event in trace:
        meta = event.metadata
        if event.action == ev.CYCLE_COMPLETED and not meta.get("folded"):
            task = (name or {}).get(event.target_id, event.target_id)
            rows[(task, int(meta["cycle"]))] = [[int(x) for x in row[1:6]] for row in meta["api_calls"]]
    return rows


def _imported(transcripts: Path, tmp_path: Path) -> tuple[str, list[Event]]:
    store = tmp_path / "imported.db"
    run_id, _ = store_run(import_claude_code(transcripts), store)
    with RunStore(store) as runs:
        return run_id, runs.trace(run_id)


def _names(executed: list[Event], imported: list[Event]) -> dict[str, str]:
    """Imported task id -> the executed task it is: a session by its id, a subagent by its agent id."""
    names: dict[str, str] = {}
    ids = {e.target_id for e in imported if e.action == ev.TASK_STARTED}
    for event in executed:
        meta = event.metadata
        if event.action != ev.CYCLE_COMPLETED or meta.get("folded"):
            continue
        if meta.get("session_id") in ids:
            names[meta["session_id"]] = event.target_id
        agent = meta.get("agent_id")
        if agent:
            names.update({found: event.target_id for found in ids if found.endswith(f"agent-{agent}")})
    return names


def _turn_ms(trace: list[Event], name: dict[str, str] | None = None) -> dict[tuple[str, int], float]:
    return {
        ((name or {}).get(e.target_id, e.target_id), int(e.metadata["cycle"])): float(
            e.metadata["duration_ms"]
        )
        + float(e.metadata.get("blocked_ms") or 0)
        for e in trace
        if e.action == ev.CYCLE_COMPLETED and not e.metadata.get("folded")
    }


def _three_ledgers(result: Any, executed: list[Event], tmp_path: Path) -> list[Event]:
    """The emulator's ledger, the executed run and the imported run agree call for call; the imported
    trace."""
    folder = Path(result.summary["run_folder"])
    _, imported = _imported(Path(result.summary["transcripts"]), tmp_path)
    names = _names(executed, imported)
    ledger, ran, read = _ledger_rows(folder), _trace_rows(executed), _trace_rows(imported, names)
    assert ledger == ran == read
    totals = [sum(column) for column in zip(*(row for rows in ledger.values() for row in rows), strict=True)]
    kinds = ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens")
    summary = result.summary
    assert [summary[kind] for kind in kinds] == [totals[0], totals[1] + totals[2], totals[3], totals[4]]
    billed = [row for row in read_ledger(folder / "emulator.jsonl") if row["status"] == 200]
    assert summary["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in billed))
    for event in executed:  # each cycle's usage is its calls'
        if event.action == ev.CYCLE_COMPLETED and not event.metadata.get("folded"):
            calls = ran[(event.target_id, int(event.metadata["cycle"]))]
            assert event.metadata["output_tokens"] == sum(row[4] for row in calls)
            assert event.metadata["cache_read_input_tokens"] == sum(row[3] for row in calls)
    return imported


def test_agent_loops_on_two_lanes_agree_in_three_ledgers(tmp_path: Path) -> None:
    _, result, executed = _run(LANES, tmp_path)
    assert result.status == "complete"
    imported = _three_ledgers(result, executed, tmp_path)
    calls = [e.metadata["calls"] for e in executed if e.action == ev.CYCLE_COMPLETED]
    assert len(calls) == 4 and max(calls) >= 3 and all(c >= 1 for c in calls)
    # Each turn's time: executed and imported within a second (time scale 1).
    names = _names(executed, imported)
    ran, read = _turn_ms(executed), _turn_ms(imported, names)
    assert ran.keys() == read.keys()
    for turn, ms in ran.items():
        assert abs(ms - read[turn]) < 1_000, turn
    # The tools Claude Code ran are events of their tasks, with their times.
    tools = [e for e in executed if e.action == ev.PROGRESS_UPDATE]
    assert tools and {e.metadata["tool"] for e in tools} == {"Read"}
    assert all(e.metadata["duration_ms"] >= 0 and e.metadata["started_at"] > 0 for e in tools)
    # Claude Code lived in the run's folder, and a session resumed from cycle to cycle.
    sessions = {
        e.target_id: {
            x.metadata["session_id"]
            for x in executed
            if x.target_id == e.target_id and "session_id" in x.metadata
        }
        for e in executed
        if e.action == ev.TASK_COMPLETE
    }
    assert all(len(ids) == 1 for ids in sessions.values())
    assert Path(result.summary["transcripts"]).is_relative_to(Path(result.summary["run_folder"]))


def test_subagents_claude_code_spawned_are_fork_join_children_in_every_ledger(tmp_path: Path) -> None:
    _, result, executed = _run(SUBAGENTS, tmp_path)
    assert result.status == "complete"
    started = {e.target_id: e.actor_id for e in executed if e.action == ev.TASK_STARTED}
    assert started == {"session": "main-1", "explore": "main-1-sub1", "review": "main-1-sub2"}
    first = next(e for e in executed if e.target_id == "session" and e.action == ev.CYCLE_COMPLETED)
    assert first.metadata["spawned_within"] is True and first.metadata["blocked_ms"] > 0
    ends = {e.target_id: e.timestamp for e in executed if e.action == ev.TASK_COMPLETE}
    assert ends["explore"] <= first.timestamp and ends["review"] <= first.timestamp
    # A subagent is one Claude Code turn: review's two cycles are played in it, its second folded.
    review = [e.metadata for e in executed if e.target_id == "review" and e.action == ev.CYCLE_COMPLETED]
    assert [(m["cycle"], m.get("folded", False)) for m in review] == [(1, False), (2, True)]
    imported = _three_ledgers(result, executed, tmp_path)
    names = _names(executed, imported)
    header = imported[0].metadata["tasks"]
    children = {names[task]: info.get("spawned_by") for task, info in header.items() if names.get(task)}
    session = next(task for task, known in names.items() if known == "session")
    assert children["explore"] == children["review"] == [session, 1] and children["session"] is None
    ran, read = _turn_ms(executed), _turn_ms(imported, names)
    for turn, ms in ran.items():
        assert abs(ms - read[turn]) < 1_000, turn


def test_eight_lanes_of_real_claude_code_complete(tmp_path: Path) -> None:
    tasks = "\n".join(f"      - {{id: t{i}, role: dev, cycles: 1}}" for i in range(8))
    text = f"""
    name: eight lanes
    roles:
      dev: {{lanes: 8, model: claude-sonnet-4-5, calls: {LOOP}}}
    tasks:
{tasks}
"""
    _, result, executed = _run(text, tmp_path, time_scale=10)
    assert result.status == "complete" and result.summary["tasks"]["complete"] == 8
    lanes = {e.actor_id for e in executed if e.action == ev.TASK_STARTED}
    assert len(lanes) == 8
    assert len(_ledger_rows(Path(result.summary["run_folder"]))) == 8


def test_from_the_command_line_rehearse_import_and_compare(tmp_path: Path, cli: str) -> None:
    scenario = tmp_path / "session.yaml"
    scenario.write_text(textwrap.dedent(SUBAGENTS))
    work = _workdir(tmp_path)
    store = tmp_path / "runs.db"
    execute = [cli, "execute", str(scenario), "--agent", "claude-code", "--emulator", "--time-scale", "5"]
    done = subprocess.run(
        [*execute, "--store", str(store), "--json", "--progress", "none"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    transcripts = Path(summary["transcripts"])
    assert transcripts.is_dir() and any(transcripts.glob("*.jsonl"))
    imported = subprocess.run(
        [cli, "import", "claude-code", str(transcripts), "--store", str(tmp_path / "imported.db"), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    run = json.loads(imported.stdout)
    assert run["imported"]["subagents"] == 2 and run["tokens_total"] == summary["tokens_total"]
    # The imported run against a prediction of its own plan; the executed one against the scenario's.
    compared = subprocess.run(
        [cli, "compare", run["run_id"], "--store", str(tmp_path / "imported.db"), "-n", "50", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compared.returncode == 0, compared.stderr
    assert "verdict" in json.loads(compared.stdout)
    prediction = tmp_path / "prediction.json"
    simulate = [cli, "simulate", str(scenario), "-n", "50", "-o", str(prediction)]
    subprocess.run(simulate, capture_output=True, check=True)
    report = tmp_path / "compare.html"
    compare = [cli, "compare", summary["run_id"], "--store", str(store), "--prediction", str(prediction)]
    compared = subprocess.run(
        [*compare, "--report", str(report)], capture_output=True, text=True, check=False
    )
    assert compared.returncode == 0, compared.stderr
    assert report.stat().st_size > 0


def test_claude_args_become_cli_flags() -> None:
    assert cli_flags(["--permission-mode=acceptEdits", "--verbose", "--max-turns", "3"]) == {
        "permission-mode": "acceptEdits",
        "verbose": None,
        "max-turns": "3",
    }
