"""The claude-code backend, driven against a fake ``claude`` on PATH that prints the CLI's JSON result."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from executor_support import run_and_audit

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event, Plan
from cycleplan.executor import ExecutionError, RunResult
from cycleplan.executor import events as ev
from cycleplan.executor.claude_code import parse_result
from cycleplan.planner import plan

FAKE = Path(__file__).parent / "fakes" / "claude"

SCENARIO = """
    name: claude
    spec: "Feature: course CRUD."
    roles:
      backend: {lanes: 1, model: claude-opus-4-5, failure: {max_retries: 1}}
      frontend: {lanes: 1, system_prompt: "You build the UI."}
    tasks:
      - {id: backend, role: backend, cycles: 3, emits: {schema_ready: 1}, prompt: Build the schema.}
      - {id: frontend, role: frontend, cycles: 2, waits: {schema_ready: 2}}
"""


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake on PATH; returns the file it logs each call to."""
    folder = tmp_path / "bin"
    folder.mkdir()
    target = folder / "claude"
    shutil.copy(FAKE, target)
    target.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{Path('/usr/bin')}:{Path('/bin')}")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CLAUDE_FAKE_LOG", str(log))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-key-for-claude-tests")
    return log


def _plan(text: str = SCENARIO) -> Plan:
    return plan(parse_scenario(textwrap.dedent(text)))


def _run(the_plan: Plan, tmp_path: Path, **options: Any) -> tuple[RunResult, list[Event]]:
    # The headless CLI on PATH, even where the claude extra (the SDK) is installed.
    return run_and_audit(the_plan, tmp_path, "claude-code", claude_client="cli", **options)


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_each_cycle_is_one_headless_turn_resuming_the_session(fake_claude: Path, tmp_path: Path) -> None:
    result, trace = _run(_plan(), tmp_path)
    assert result.status == "complete"
    calls = _calls(fake_claude)
    backend = [c for c in calls if c["task"] == "backend"]
    assert [c["cycle"] for c in backend] == ["1", "2", "3"]
    first = backend[0]["argv"]
    assert first[:1] == ["-p"] and _option(first, "--output-format") == "json"
    assert _option(first, "--model") == "claude-opus-4-5"
    assert "Feature: course CRUD." in (_option(first, "--append-system-prompt") or "")
    assert "Build the schema." in first[1]
    assert "--resume" not in first
    cycles = [e for e in trace if e.target_id == "backend" and e.action == ev.CYCLE_COMPLETED]
    session = cycles[0].metadata["session_id"]
    assert _option(backend[1]["argv"], "--resume") == session
    assert _option(backend[2]["argv"], "--resume") == cycles[1].metadata["session_id"]
    frontend = [c for c in calls if c["task"] == "frontend"]
    assert "You build the UI." in (_option(frontend[0]["argv"], "--append-system-prompt") or "")
    assert all(c["has_key"] for c in calls)
    # Duration, cost and usage come from the CLI's result.
    meta = cycles[0].metadata
    assert meta["duration_ms"] == 61000 and meta["cost_usd"] == 0.0125
    assert (meta["input_tokens"], meta["output_tokens"], meta["cache_creation_input_tokens"]) == (
        120,
        450,
        2000,
    )
    assert cycles[1].metadata["cache_read_input_tokens"] == 2000
    # A resumed session reports its running total; the turn costs the difference.
    assert cycles[1].metadata["reported_cost_usd"] == 0.025 and cycles[1].metadata["cost_usd"] == 0.0125
    assert result.summary["cost_usd"] == pytest.approx(0.0125 * 5)
    artifact = Path(result.summary["run_folder"]) / "artifacts" / "backend" / "cycle-001.attempt-1.json"
    assert json.loads(artifact.read_text())["session_id"] == session


def test_an_error_result_fails_the_attempt_and_its_cost_counts(
    fake_claude: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_FAKE_FAIL", "backend:2:1,frontend:1")
    result, trace = _run(_plan(), tmp_path)
    ends = {e.target_id: e for e in trace if e.action in ev.TERMINAL}
    # backend: cycle 2 fails once, the retry (resuming the same session) succeeds.
    assert ends["backend"].action == ev.TASK_COMPLETE
    retried = [c for c in _calls(fake_claude) if c["task"] == "backend" and c["cycle"] == "2"]
    assert [c["attempt"] for c in retried] == ["1", "2"]
    assert _option(retried[0]["argv"], "--resume") == _option(retried[1]["argv"], "--resume")
    # frontend fails every attempt (the first and the role's default two retries).
    assert ends["frontend"].action == ev.TASK_FAILED
    error = ends["frontend"].metadata["error"]
    assert "error_during_execution" in error and "tests did not pass" in error and "exit status 1" in error
    failed = [e for e in trace if e.action == ev.CYCLE_COMPLETED and e.metadata["failed"]]
    assert (
        sorted((e.target_id, e.metadata["cost_usd"]) for e in failed)
        == [("backend", 0.004)] + [("frontend", 0.004)] * 3
    )
    assert result.status == "failed"


def test_output_that_is_not_a_result_fails_the_attempt(
    fake_claude: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_FAKE_GARBAGE", "frontend:1")
    _, trace = _run(_plan(), tmp_path)
    end = next(e for e in trace if e.target_id == "frontend" and e.action in ev.TERMINAL)
    assert end.action == ev.TASK_FAILED
    assert (
        "exited with status 2 without a JSON result: Error: something went badly wrong"
        in end.metadata["error"]
    )


def test_a_missing_claude_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutionError, match="'claude' is not on PATH"):
        _run(_plan(), tmp_path)


def test_worktrees_give_each_lane_its_own_checkout(fake_claude: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "--quiet"], check=True)
    (repo / "README").write_text("hello\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "start"], check=True)
    result, _ = _run(_plan(), tmp_path, worktrees=True, workdir=str(repo))
    assert result.status == "complete"
    where = {c["task"]: Path(c["cwd"]) for c in _calls(fake_claude)}
    assert where["backend"] != where["frontend"]
    for folder in where.values():
        assert (folder / "README").read_text() == "hello\n"
        assert (folder / ".git").is_file()
    branches = subprocess.run(
        [*git, "branch", "--list", "cycleplan/*"], capture_output=True, text=True, check=True
    ).stdout
    assert f"cycleplan/{result.run_id}/backend-1" in branches
    assert f"cycleplan/{result.run_id}/frontend-1" in branches


def test_worktrees_need_a_repository(fake_claude: Path, tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match="needs a git repository"):
        _run(_plan(), tmp_path, worktrees=True)


def test_the_result_is_found_in_json_and_stream_json_output() -> None:
    result = {"type": "result", "subtype": "success", "is_error": False, "session_id": "s"}
    assert parse_result(json.dumps(result)) == result
    stream = "\n".join([json.dumps({"type": "system", "subtype": "init"}), json.dumps(result)])
    assert parse_result(stream) == result
    assert parse_result(json.dumps([{"type": "system"}, result])) == result
    assert parse_result("not json") is None
    assert parse_result("") is None
