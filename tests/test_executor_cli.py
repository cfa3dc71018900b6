"""``cycleplan execute``, ``runs`` and ``export`` as a user meets them."""

from __future__ import annotations

import io
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.planner import plan
from cycleplan.present.live import LiveTable
from cycleplan.store import RunStore

SCENARIO = """
    name: cli
    roles: {backend: {lanes: 1, failure: {max_retries: 0}}, frontend: {lanes: 1}}
    tasks:
      - {id: backend, role: backend, cycles: 2, emits: {schema_ready: 1}, command: ["true"]}
      - {id: frontend, role: frontend, cycles: 2, waits: {schema_ready: 1}, command: ["true"]}
      - {id: qa, role: backend, cycles: 1, after: [backend, frontend],
         command: ["sh", "-c", "exit ${QA_STATUS:?not passed}"]}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(SCENARIO))
    return path


def _cycleplan(
    cli: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [cli, *args], cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )


def test_execute_runs_lists_and_exports(cli: str, scenario: Path, tmp_path: Path) -> None:
    done = _cycleplan(
        cli,
        "execute",
        str(scenario),
        "--agent",
        "command",
        "--pass-env",
        "QA_STATUS",
        "--json",
        cwd=tmp_path,
        env={"QA_STATUS": "0"},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for key in ("run_id", "status", "makespan_min", "speedup", "tokens_total", "cost_usd"):
        assert key in summary
    assert summary["status"] == "complete"
    # The default store is .cycleplan/runs.db in the working directory.
    assert (tmp_path / ".cycleplan" / "runs.db").exists()
    assert "backend-1" in done.stderr  # plain progress lines when stderr is not a terminal

    listed = _cycleplan(cli, "runs", cwd=tmp_path)
    assert listed.returncode == 0 and summary["run_id"] in listed.stdout and "complete" in listed.stdout
    rows = json.loads(_cycleplan(cli, "runs", "--json", cwd=tmp_path).stdout)
    assert rows[0]["run_id"] == summary["run_id"] and rows[0]["agent"] == "command"

    exported = _cycleplan(cli, "export", summary["run_id"], "--format", "jsonl", cwd=tmp_path)
    events = [Event.model_validate_json(line) for line in exported.stdout.splitlines()]
    assert events[0].action == "run_started" and events[-1].action == "run_complete"
    assert len(events) == summary["events"]
    target = tmp_path / "trace.jsonl"
    _cycleplan(cli, "export", summary["run_id"], "-o", str(target), cwd=tmp_path)
    assert target.read_text() == exported.stdout


def test_a_failed_run_exits_1_with_a_readable_summary(cli: str, scenario: Path, tmp_path: Path) -> None:
    done = _cycleplan(
        cli,
        "execute",
        str(scenario),
        "--agent",
        "command",
        "--pass-env",
        "QA_STATUS",
        cwd=tmp_path,
        env={"QA_STATUS": "4"},
    )
    assert done.returncode == 1
    assert "failed" in done.stdout and "makespan" in done.stdout and "cycleplan export" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_plan_json_and_lanes_are_accepted(cli: str, scenario: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert _cycleplan(cli, "plan", str(scenario), "-o", str(plan_file), cwd=tmp_path).returncode == 0
    done = _cycleplan(
        cli,
        "execute",
        str(plan_file),
        "--agent",
        "command",
        "--pass-env",
        "QA_STATUS",
        "--json",
        cwd=tmp_path,
        env={"QA_STATUS": "0"},
    )
    assert done.returncode == 0, done.stderr
    done = _cycleplan(
        cli, "execute", str(scenario), "--agent", "command", "--lanes", "backend=2",
        "--pass-env", "QA_STATUS", "--json", cwd=tmp_path, env={"QA_STATUS": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("lane", "lanes.0.lane: '../../escaped' is not a valid name"),
        ("unplaced", "task(s) frontend are on no lane"),
    ],
)
def test_execute_refuses_a_plan_simulate_refuses(
    cli: str, scenario: Path, tmp_path: Path, edit: str, message: str
) -> None:
    """A hand-edited plan.json: a lane named to climb out of the repository, or a task on no lane."""
    plan_file = tmp_path / "plan.json"
    assert _cycleplan(cli, "plan", str(scenario), "-o", str(plan_file), cwd=tmp_path).returncode == 0
    data = json.loads(plan_file.read_text())
    if edit == "lane":
        data["lanes"][0]["lane"] = "../../escaped"
    else:
        data["lanes"][1]["tasks"] = []
    plan_file.write_text(json.dumps(data, indent=1))
    for command in (
        ["simulate", str(plan_file), "-n", "10"],
        ["execute", str(plan_file), "--agent", "command"],
    ):
        done = _cycleplan(cli, *command, "--json", cwd=tmp_path, env={"QA_STATUS": "0"})
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert message in done.stderr
    assert not (tmp_path / ".cycleplan").exists()  # no run was created
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["execute", "{scenario}"], "--agent is required"),
        (["execute", "{scenario}", "--agent", "robot"], "--agent robot: choose one of"),
        (["execute", "{scenario}", "--agent", "command", "--time-scale", "60"], "with --agent emulated"),
        (["execute", "{scenario}", "--agent", "emulated", "--time-scale", "0"], "must be above 0"),
        (["execute", "--agent", "command"], "FILE is missing"),
        (["execute", "{scenario}", "--resume", "x"], "leave out FILE"),
        (["execute", "--resume", "nope"], "no run 'nope'"),
        (["execute", "missing.yaml", "--agent", "command"], "missing.yaml"),
        (["execute", "{scenario}", "--agent", "command", "--progress", "loud"], "--progress loud"),
        (["execute", "{scenario}", "--agent", "command", "--task-timeout", "0"], "must be above 0 minutes"),
        (["export", "nope", "--store", "{scenario}.db"], "no run store here"),
        (["export", "nope", "--format", "csv"], "choose jsonl or otlp"),
        (["runs", "--check", "latest", "--store", "{scenario}.db"], "no run store here"),
    ],
)
def test_bad_input_exits_2_with_one_message(
    cli: str, scenario: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    if "--resume" in args and "nope" in args:
        RunStore(tmp_path / ".cycleplan" / "runs.db").close()
    done = _cycleplan(cli, *(a.replace("{scenario}", str(scenario)) for a in args), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_the_live_view_draws_a_row_per_lane(tmp_path: Path) -> None:
    the_plan = plan(parse_scenario(textwrap.dedent(SCENARIO).replace("${QA_STATUS:?not passed}", "0")))
    stream = io.StringIO()
    result = execute(
        the_plan,
        ExecuteOptions(agent="command", workdir=str(tmp_path)),
        store=tmp_path / "runs.db",
        progress="live",
        live=LiveTable,
        stream=stream,
    )
    assert result.status == "complete"
    drawn = stream.getvalue()
    for text in ("backend-1", "frontend-1", "cycle", "tokens", result.run_id):
        assert text in drawn
