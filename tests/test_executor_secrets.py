"""The API key is written nowhere: not in the store, the artifacts, the logs, the summary or the output."""

from __future__ import annotations

import json
import shutil
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
    monkeypatch.setenv("FAKE_CLAUDE_ECHO_KEY", "1")
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
