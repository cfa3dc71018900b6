"""Imported runs in the run store: complete like executed ones, written all or nothing, and the
`cycleplan import` command: warnings on stderr, exit 2 and an untouched store for unusable input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from support import ROOT
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.metrics import metrics
from cycleplan.core.model import Plan
from cycleplan.executor import resume, run_summary
from cycleplan.store import RunStore
from cycleplan.store.runs import StoreError
from cycleplan.workflows.importers import import_claude_code, import_one_state, store_run
from cycleplan.workflows.importers import run as import_run

DATA = ROOT / "tests" / "data"
SESSION = DATA / "claude-code" / "258c7280-ae70-4798-800f-63464d01a85d.jsonl"
STATE = DATA / "one-state" / "cycle-405b946017.json"
runner = CliRunner()


def test_an_imported_run_is_a_complete_run(tmp_path: Path) -> None:
    imported = import_claude_code(SESSION)
    run_id, summary = store_run(imported, tmp_path / "runs.db")
    with RunStore(tmp_path / "runs.db") as store:
        record = store.run(run_id)
        assert record.status == "complete"
        assert record.summary is not None and record.summary["imported"]["kind"] == "claude-code"
        plan = Plan.model_validate_json(record.plan_json)
        assert plan.scenario == imported.scenario
        trace = store.trace(run_id)
        assert all(event.group_id == run_id for event in trace)
        assert metrics(trace) == metrics(imported.trace)
        assert run_summary(store, run_id)["tokens_total"] == summary["tokens_total"] > 0
    # A finished run resumes to its summary, as an executed one does.
    assert resume(run_id, store=tmp_path / "runs.db", progress="none").status == "complete"


def test_a_failure_while_staging_leaves_the_store_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "runs.db"
    store_run(import_one_state(STATE), store)
    calls = {"n": 0}
    original = RunStore.append

    def failing(self: RunStore, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "append", failing)
    with pytest.raises(OSError, match="disk full"):
        store_run(import_one_state(STATE), store)
    with RunStore(store) as runs:
        assert len(runs.runs()) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".import-")] == []


def _clash(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next import's copy fail after its run's row went in: an event row already holds the
    place the copy needs."""
    with sqlite3.connect(store) as db:
        db.execute(
            "INSERT INTO events (run_id, seq, key, type, actor_id, target_id, group_id, timestamp, action,"
            " metadata) VALUES ('clash', 1, 'x', 'task_event', 'a', 'b', 'c', 0, 'x', '{}')"
        )
    monkeypatch.setattr("cycleplan.executor.run.new_run_id", lambda: "clash")


def test_a_failure_while_copying_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "runs.db"
    with RunStore(store):
        pass
    _clash(store, monkeypatch)
    with pytest.raises(StoreError, match="cannot write the imported run"):
        store_run(import_one_state(STATE), store)
    with RunStore(store) as runs:
        assert runs.runs() == []


def test_a_replacing_import_swaps_the_runs_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "runs.db"
    first, _ = store_run(import_one_state(STATE), store)
    second, _ = store_run(import_one_state(STATE), store, replacing=first)
    with RunStore(store) as runs:
        assert [record.run_id for record in runs.runs()] == [second]
        assert runs.events(first) == []
    # When the copy fails, the run it was to replace is still there, whole.
    _clash(store, monkeypatch)
    with pytest.raises(StoreError, match="cannot write the imported run"):
        store_run(import_one_state(STATE), store, replacing=second)
    with RunStore(store) as runs:
        assert [record.run_id for record in runs.runs()] == [second]
        assert len(runs.events(second)) == len(import_one_state(STATE).trace)


def test_runs_get_distinct_keys(tmp_path: Path) -> None:
    imported = import_claude_code(DATA / "claude-code")
    run_id, _ = store_run(imported, tmp_path / "runs.db")
    with RunStore(tmp_path / "runs.db") as store:
        stored = store.events(run_id)
    assert len(stored) == len(imported.trace)
    assert len({event.key for event in stored}) == len(stored)
    assert import_run.identifier("a b/c", set()) == "a_b_c"


# --------------------------------------------------------------------------------------------------
# The command


def test_import_command_stores_and_warns(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    result = runner.invoke(app, ["import", "one-state", str(STATE), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "imported run" in result.stdout
    assert f"{STATE}:3136:2: warning: 32 characters of text after the JSON object" in result.stderr
    result = runner.invoke(app, ["import", "claude-code", str(SESSION), "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "complete" and summary["imported"]["subagents"] == 1
    listed = runner.invoke(app, ["runs", "--store", str(store), "--json"])
    assert len(json.loads(listed.stdout)) == 2


@pytest.mark.parametrize(
    ("kind", "content", "message"),
    [
        ("one-state", "", "is empty"),
        ("one-state", "{", "not valid JSON"),
        ("claude-code", '{"type": "user"}\n{"type": "assistant", "trunc', "no API responses"),
        ("claude-code", "garbage\n", "not a Claude Code transcript"),
    ],
)
def test_unusable_input_exits_2_and_stores_nothing(
    tmp_path: Path, kind: str, content: str, message: str
) -> None:
    bad = tmp_path / "input.json"
    bad.write_text(content, encoding="utf-8")
    store = tmp_path / "runs.db"
    result = runner.invoke(app, ["import", kind, str(bad), "--store", str(store)])
    assert result.exit_code == 2
    assert message in result.stderr and "nothing was imported" in result.stderr
    assert result.stderr.startswith(str(bad))
    assert not store.exists()


def test_a_bad_idle_threshold_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", "one-state", str(STATE), "--idle-minutes", "0"])
    assert result.exit_code == 2 and "--idle-minutes" in result.stderr


def test_import_help_teaches(cli: str) -> None:
    for words in (
        ["import", "--help"],
        ["import", "claude-code", "--help"],
        ["import", "one-state", "--help"],
    ):
        result = runner.invoke(app, words)
        assert result.exit_code == 0 and "Example" in result.output
    done = subprocess.run([cli, "import", "one-state", "/no/such/cycle.json"], capture_output=True, text=True)
    assert done.returncode == 2 and "no such file" in done.stderr and "Traceback" not in done.stderr
