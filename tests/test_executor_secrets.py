"""The API key is written nowhere: not in the store, the artifacts, the logs, the summary or the output."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest

KEY = "sk-ant-api03-DUMMY-never-write-me-0123456789abcdef"
FAKE = Path(__file__).parent / "fakes" / "claude"

SCENARIO = """
    name: secrets
    spec: "Feature: course CRUD."
    roles:
      backend: {lanes: 2}
      ops: {lanes: 1}
    tasks:
      - {id: backend, role: backend, cycles: 3, emits: {schema_ready: 1}}
      - {id: frontend, role: backend, cycles: 2, waits: {schema_ready: 2}}
      - {id: ops, role: ops, cycles: 2, after: [backend]}
"""

LEAKY = """
    name: leaky
    roles: {ops: {lanes: 1, failure: {max_retries: 0}}}
    tasks:
      - {id: leak, role: ops, cycles: 1, shell: true,
         command: ["echo key=$ANTHROPIC_API_KEY; echo key=$ANTHROPIC_API_KEY >&2; exit 1"]}
"""


def _files_holding(folder: Path, needle: bytes) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]


@pytest.mark.parametrize("agent", ["emulated", "claude-code", "command"])
def test_a_dummy_key_is_absent_from_everything_a_run_leaves(
    agent: str, cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    shutil.copy(FAKE, bin_folder / "claude")
    (bin_folder / "claude").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}:/usr/bin:/bin")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    # An agent that prints its environment: the key it was given must not reach the artifacts.
    monkeypatch.setenv("CLAUDE_FAKE_ECHO_KEY", "1")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(textwrap.dedent(LEAKY if agent == "command" else SCENARIO))
    store = tmp_path / "store" / "runs.db"
    options = {"emulated": ["--time-scale", "20000"], "claude-code": ["--claude", "claude"]}.get(agent, [])
    command = [cli, "execute", str(scenario), "--agent", agent, "--store", str(store), "--json"]
    done = subprocess.run(
        [*command, "--progress", "plain", *options],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    runs = subprocess.run(
        [cli, "runs", "--store", str(store), "--json"], capture_output=True, text=True, check=True
    )
    run_id = json.loads(runs.stdout)[0]["run_id"]
    exported = subprocess.run(
        [cli, "export", run_id, "--store", str(store)], capture_output=True, text=True, check=True
    )
    for text in (done.stdout, done.stderr, runs.stdout, exported.stdout):
        assert KEY not in text
    # The database (with its WAL), every artifact, the log.
    assert (store.parent / "runs" / run_id / "log.txt").exists()
    assert _files_holding(store.parent, KEY.encode()) == []
    if agent == "claude-code":
        artifacts = list((store.parent / "runs" / run_id / "artifacts").rglob("*.json"))
        assert artifacts and all(b"[redacted]" in path.read_bytes() for path in artifacts)


ENVIRONMENT = """
    name: environment
    roles: {ops: {lanes: 1, failure: {max_retries: 0}}}
    tasks:
      - {id: look, role: ops, cycles: 1, command: ["sh", "-c", "env > \\"$CYCLEPLAN_ARTIFACTS/env.txt\\""]}
"""


def _environment_seen(store: Path) -> dict[str, str]:
    (seen,) = store.parent.rglob("env.txt")
    return dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)


def test_a_command_gets_only_the_allowed_environment_and_what_is_named(cli: str, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(textwrap.dedent(ENVIRONMENT))
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "DATABASE_URL": "postgres://db", "UNRELATED": "x"}

    def run(store: Path, *extra: str) -> dict[str, str]:
        command = [cli, "execute", str(scenario), "--agent", "command", "--store", str(store), *extra]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, env=env)
        assert done.returncode == 0, done.stderr
        return _environment_seen(store)

    seen = run(tmp_path / "plain" / "runs.db")
    assert "ANTHROPIC_API_KEY" not in seen and "DATABASE_URL" not in seen and "UNRELATED" not in seen
    assert seen["PATH"] == os.environ["PATH"] and seen["CYCLEPLAN_TASK"] == "look"
    assert Path(seen["CYCLEPLAN_ARTIFACTS"]).is_absolute()  # still right from a lane's worktree
    named = run(tmp_path / "named" / "runs.db", "--pass-env", "DATABASE_URL")
    assert named["DATABASE_URL"] == "postgres://db" and "UNRELATED" not in named


@pytest.mark.parametrize(
    "argument", [f"--api-key={KEY}", "--settings-token=abc123456789", "sk-ant-api03-" + "Q" * 30]
)
def test_a_secret_in_claude_arg_is_refused(cli: str, tmp_path: Path, argument: str) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(textwrap.dedent(SCENARIO))
    done = subprocess.run(
        [cli, "execute", str(scenario), "--agent", "claude-code", f"--claude-arg={argument}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--claude-arg holds" in done.stderr and "ANTHROPIC_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr and KEY not in done.stderr + done.stdout
    assert not (tmp_path / ".cycleplan").exists()


PASTED = """
    name: pasted
    description: "deploy with sk-ant-api03-PASTEDPASTEDPASTED0123456789"
    roles: {ops: {lanes: 1}}
    tasks:
      - id: deploy
        role: ops
        cycles: 1
        prompt: "Use the key ghp_0123456789abcdefghijklmnopqrstuvwxyzAB to push."
        command: ["true", "AKIAIOSFODNN7EXAMPLE"]
"""


def test_a_key_pasted_into_a_scenario_is_not_kept_or_reported(cli: str, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(textwrap.dedent(PASTED))
    store = tmp_path / "store" / "runs.db"
    done = subprocess.run(
        [cli, "execute", str(scenario), "--agent", "command", "--store", str(store), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    report = tmp_path / "plan.html"
    subprocess.run([cli, "plan", str(scenario), "--report", str(report)], check=True, capture_output=True)
    compared = subprocess.run(
        [
            cli,
            "compare",
            run_id,
            "--store",
            str(store),
            "--report",
            str(tmp_path / "compare.html"),
            "-n",
            "50",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compared.returncode == 0, compared.stderr
    for needle in ("PASTEDPASTEDPASTED", "ghp_0123456789", "AKIAIOSFODNN7EXAMPLE"):
        assert _files_holding(store.parent, needle.encode()) == [], needle
        assert needle not in report.read_text() and needle not in (tmp_path / "compare.html").read_text()
    with sqlite3.connect(store) as db:
        (stored,) = db.execute("SELECT plan FROM runs").fetchone()
    assert "[redacted]" in stored
