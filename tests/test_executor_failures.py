"""How ``cycleplan execute`` meets failures, through the real command line: how many times it retries
(as ``simulate`` predicts), failures it does not retry, runs that cannot go at all (refused before
anything is written), and what its progress lines and log say meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from executor_support import wait_for
from support import cycleplan_executable

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event
from cycleplan.executor.anthropic_api import AnthropicBackend
from cycleplan.executor.backend import BackendOptions, CycleRequest

ROOT = Path(__file__).resolve().parent.parent


def _cycleplan(
    *args: str, cwd: Path, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in drop} | (env or {})
    return subprocess.run(
        [cycleplan_executable(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment,
    )


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _failed_attempts(trace: list[Event]) -> dict[str, int]:
    return dict(
        Counter(e.target_id for e in trace if e.action == "cycle_completed" and e.metadata.get("failed"))
    )


def _exported(run_id: str, cwd: Path) -> list[Event]:
    done = _cycleplan("export", run_id, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [Event.model_validate_json(line) for line in done.stdout.splitlines()]


# --------------------------------------------------------------------------------------------------
# retries: task over role over the default, the same in execute and simulate

ALWAYS_FAILING = """
    roles:
      usual: {lanes: 2, cycle: {kind: fixed, value_min: 1}, failure: {probability_per_cycle: 1.0}}
      careful:
        lanes: 2
        cycle: {kind: fixed, value_min: 1}
        failure: {probability_per_cycle: 1.0, max_retries: 1}
    tasks:
      - {id: by-default, role: usual, cycles: 1}
      - {id: by-task-none, role: usual, cycles: 1, retries: 0}
      - {id: by-role, role: careful, cycles: 1}
      - {id: by-task-more, role: careful, cycles: 1, retries: 3}
"""
EXPECTED_ATTEMPTS = {"by-default": 3, "by-task-none": 1, "by-role": 2, "by-task-more": 4}
"""Every attempt fails: a task makes its retries + 1 attempts, by the task's ``retries``, else its
role's ``failure.max_retries``, else the default 2."""


def test_retries_come_from_the_task_else_the_role_and_simulate_predicts_the_same(tmp_path: Path) -> None:
    scenario = _write(tmp_path, "failing.yaml", ALWAYS_FAILING)
    done = _cycleplan(
        "execute", str(scenario), "--agent", "emulated", "--time-scale", "600", "--json", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    executed = _exported(summary["run_id"], tmp_path)
    assert _failed_attempts(executed) == EXPECTED_ATTEMPTS
    failed = {e.target_id: e.metadata["error"] for e in executed if e.action == "task_failed"}
    assert failed["by-task-none"].endswith("(cycle 1, 1 attempt)")
    assert failed["by-task-more"].endswith("(cycle 1, 4 attempts)")

    prediction = tmp_path / "prediction.json"
    simulated = _cycleplan(
        "simulate", str(scenario), "-n", "20", "-o", str(prediction), "--json", cwd=tmp_path
    )
    assert simulated.returncode == 0, simulated.stderr
    trace = [Event.model_validate(event) for event in json.loads(prediction.read_text())["trace"]]
    assert _failed_attempts(trace) == EXPECTED_ATTEMPTS
    # Every replication fails every attempt: the prediction and the run count the same failed attempts.
    predicted = json.loads(simulated.stdout)["failed_cycles"]
    assert predicted["p10"] == predicted["p90"] == summary["failed_cycles"] == sum(EXPECTED_ATTEMPTS.values())


def test_retries_are_validated_with_file_line_and_field(tmp_path: Path) -> None:
    scenario = _write(
        tmp_path,
        "bad.yaml",
        """
        roles:
          ops: {failure: {max_retries: true, final_exit_codes: [0]}}
        tasks:
          - {id: a, role: ops, cycles: 1, retries: -1}
          - {id: b, role: ops, cycles: 1, retries: 1.5, final_exit_codes: [2, 300]}
        """,
    )
    done = _cycleplan("validate", str(scenario), cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    problems = done.stderr.splitlines()
    for expected in (
        r"bad\.yaml:3:\d+: roles\.ops\.failure\.max_retries: expected a whole number",
        r"bad\.yaml:3:\d+: roles\.ops\.failure\.final_exit_codes: 0 is not a failing exit status",
        r"bad\.yaml:5:\d+: tasks\.0\.retries: must be at least 0, got -1",
        r"bad\.yaml:6:\d+: tasks\.1\.retries: expected a whole number",
        r"bad\.yaml:6:\d+: tasks\.1\.final_exit_codes: 300 is not a failing exit status",
    ):
        assert any(re.search(expected, line) for line in problems), (expected, problems)


# --------------------------------------------------------------------------------------------------
# failures no retry can mend


def test_a_command_whose_failure_is_final_fails_at_once(tmp_path: Path) -> None:
    scenario = _write(
        tmp_path,
        "final.yaml",
        """
        roles:
          ops: {lanes: 4}
          strict: {failure: {final_exit_codes: [4]}}
        tasks:
          - id: listed
            role: ops
            cycles: 1
            command: [sh, -c, "echo usage >&2; exit 3"]
            final_exit_codes: [3]
          - {id: by-role, role: strict, cycles: 1, command: [sh, -c, "exit 4"]}
          - {id: not-found, role: ops, cycles: 1, command: [no-such-command-anywhere], shell: true}
          - {id: no-retries, role: ops, cycles: 1, command: ["false"], retries: 0}
          - {id: fine, role: ops, cycles: 1, command: ["true"]}
        """,
    )
    done = _cycleplan("execute", str(scenario), "--agent", "command", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    trace = _exported(summary["run_id"], tmp_path)
    # No backoff was waited out: a retry would have waited 5 s or so first. Measured on the run's own
    # clock, which a busy machine's interpreter start-up does not stretch.
    span_s = (max(e.timestamp for e in trace) - min(e.timestamp for e in trace)) / 1000
    assert span_s < 4.0, span_s
    assert _failed_attempts(trace) == {"listed": 1, "by-role": 1, "not-found": 1, "no-retries": 1}
    ended = {e.target_id: e for e in trace if e.action in ("task_failed", "task_complete")}
    assert ended["fine"].action == "task_complete"
    errors = {task: str(event.metadata.get("error", "")) for task, event in ended.items()}
    assert "exited with status 3 (one of final_exit_codes: not retried): usage" in errors["listed"]
    assert "exited with status 4 (one of final_exit_codes: not retried)" in errors["by-role"]
    assert "exited with status 127 (one of final_exit_codes: not retried)" in errors["not-found"]
    assert errors["no-retries"] == "false exited with status 1 (cycle 1, 1 attempt)"


def test_a_host_name_that_does_not_resolve_fails_the_attempt_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the pre-flight (a host that stopped resolving mid-run), a name with no address is final: no
    transient retries, no backoff."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    scenario = parse_scenario("roles: {ops: {}}\ntasks: [{id: a, role: ops, cycles: 1}]")
    task = scenario.all_tasks()[0]

    async def one_attempt() -> Any:
        backend = AnthropicBackend(scenario, BackendOptions(base_url="http://no-such-host.invalid"))
        await backend.start()
        try:
            return await backend.run_cycle(
                CycleRequest(
                    run_id="r",
                    lane="ops-1",
                    task=task,
                    role_name="ops",
                    role=scenario.role("ops"),
                    cycle=1,
                    attempt=1,
                    spec="",
                    artifacts=tmp_path,
                    workdir=tmp_path,
                )
            )
        finally:
            await backend.close()

    started = time.monotonic()
    outcome = asyncio.run(one_attempt())
    assert not outcome.ok and not outcome.retryable
    assert "does not resolve" in outcome.error and "no-such-host.invalid" in outcome.error
    assert outcome.details["transient_errors"] == 0
    assert time.monotonic() - started < 5.0  # the transient backoff (1 s, 2 s, 4 s) was not waited out


# --------------------------------------------------------------------------------------------------
# pre-flight: a run that cannot go is refused before anything is written

NO_COMMANDS = """
    roles: {ops: {}}
    tasks:
      - {id: plan-it, role: ops, cycles: 1}
      - {id: do-it, role: ops, cycles: 1, after: [plan-it]}
"""


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.mark.parametrize(
    ("agent", "flags", "env", "message"),
    [
        ("command", [], {}, "--agent command needs a 'command' on every task; missing on: plan-it, do-it"),
        (
            "claude-code",
            ["--claude", "no-such-claude"],
            {},
            "'no-such-claude' is not on PATH: install it",
        ),
        (
            "anthropic",
            [],
            {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": "http://no-such-host.invalid"},
            "cannot reach ANTHROPIC_BASE_URL (http://no-such-host.invalid): host name 'no-such-host.invalid' "
            "does not resolve",
        ),
        (
            "anthropic",
            [],
            {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": "http://127.0.0.1:{port}"},
            "127.0.0.1:{port} refuses connections (nothing listens there); correct or unset "
            "ANTHROPIC_BASE_URL",
        ),
    ],
    ids=[
        "command-without-commands",
        "claude-code-without-claude",
        "anthropic-unknown-host",
        "anthropic-refused",
    ],
)
def test_a_run_that_cannot_go_is_refused_before_anything_is_written(
    tmp_path: Path, agent: str, flags: list[str], env: dict[str, str], message: str
) -> None:
    scenario = _write(tmp_path, "scenario.yaml", NO_COMMANDS)
    port = str(_closed_port())
    env = {name: value.replace("{port}", port) for name, value in env.items()}
    started = time.monotonic()
    done = _cycleplan("execute", str(scenario), "--agent", agent, *flags, cwd=tmp_path, env=env, drop=PROXIES)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert message.replace("{port}", port) in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    # No store, no run folder, no lock: nothing to clean up, nothing for `runs` to list.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scenario.yaml"]
    # At once, not after retries (the name lookup of .invalid here took well under a second).
    assert elapsed < 10.0, elapsed


# --------------------------------------------------------------------------------------------------
# what the progress lines and the run's log say

_STAMP = re.compile(r"^\[\s*([\d.,]+) (s|min)\] (.*)$")


def _stamped(text: str) -> list[tuple[float, str]]:
    """(seconds, line) of each line of a run's log."""
    lines = []
    for line in text.splitlines():
        found = _STAMP.match(line)
        assert found is not None, line
        value = float(found.group(1).replace(",", ""))
        lines.append((value * 60 if found.group(2) == "min" else value, found.group(3)))
    return lines


def test_progress_lines_say_one_cycle_one_lane_one_task(tmp_path: Path) -> None:
    scenario = _write(
        tmp_path,
        "one.yaml",
        """
        roles: {ops: {}}
        tasks: [{id: only, role: ops, cycles: 1, command: ["false"], retries: 0}]
        """,
    )
    done = _cycleplan("execute", str(scenario), "--agent", "command", "--progress", "plain", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "started: 1 lane, 1 task" in done.stderr
    assert "only             started (1 cycle)" in done.stderr
    assert "(cycle 1, 1 attempt)" in done.stderr
    assert "1 failed attempt" in done.stdout
    for wrong in ("1 lanes", "1 tasks", "1 cycles", "1 attempts", "1 failed attempts", "attempt(s)"):
        assert wrong not in done.stderr + done.stdout, wrong
    (log,) = (tmp_path / ".cycleplan" / "runs").glob("*/log.txt")
    assert [line for _, line in _stamped(log.read_text())] == [
        line.split("] ", 1)[1] for line in done.stderr.splitlines()
    ]


def test_a_resumed_runs_log_carries_on_from_the_time_the_run_had_taken(tmp_path: Path) -> None:
    marker = tmp_path / "second-cycle.started"
    # Cycle 2 hangs the first time it runs, until Ctrl-C; each cycle takes half a second.
    step = f'if [ "$CYCLEPLAN_CYCLE" = 2 ] && [ ! -e {marker} ]; then touch {marker}; sleep 60; fi; sleep 0.5'
    scenario = _write(
        tmp_path,
        "two.yaml",
        f"""
        roles: {{ops: {{}}}}
        tasks: [{{id: slow, role: ops, cycles: 2, shell: true, command: ['{step}']}}]
        """,
    )
    store = tmp_path / "runs.db"
    process = subprocess.Popen(
        [cycleplan_executable(), "execute", str(scenario), "--agent", "command", "--store", str(store)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(marker.exists, "the second cycle to start", process)
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    (log,) = (tmp_path / "runs").glob("*/log.txt")
    run_id = log.parent.name
    before = _stamped(log.read_text())
    assert before[-1][1].endswith("interrupted: its unfinished tasks wait for --resume")
    ran_s = before[-1][0]
    assert ran_s >= 0.7  # a cycle, and a part of the next

    stopped_s = 2.0
    time.sleep(stopped_s)
    resumed = _cycleplan("execute", "--resume", run_id, "--store", str(store), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    after = _stamped(log.read_text())[len(before) :]
    assert after[0][1] == f"run {run_id} resumed (1)"
    # The clock carries on from where the run stood (one decimal shown), and the time it stood stopped
    # is not on it.
    assert ran_s - 0.1 <= after[0][0] < ran_s + stopped_s / 2, (ran_s, after)
    assert after[-1][1] == f"run {run_id} complete"
    assert after[-1][0] >= ran_s + 0.5  # the second cycle's half second, on top
    # The progress lines on stderr keep the same clock as the log.
    assert [line for _, line in after] == [line.split("] ", 1)[1] for line in resumed.stderr.splitlines()]
    assert [stamp for stamp, _ in after] == [
        stamp for stamp, _ in _stamped("\n".join(resumed.stderr.splitlines()))
    ]


# --------------------------------------------------------------------------------------------------
# what a command is told, as the schema and the README say


def test_every_variable_a_command_gets_is_described_in_the_schema_and_the_readme(tmp_path: Path) -> None:
    scenario = _write(
        tmp_path,
        "env.yaml",
        """
        roles: {ops: {}}
        tasks: [{id: look, role: ops, cycles: 1, command: [sh, -c, "env > $CYCLEPLAN_ARTIFACTS/env.txt"]}]
        """,
    )
    done = _cycleplan("execute", str(scenario), "--agent", "command", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (dump,) = (tmp_path / ".cycleplan" / "runs").glob("*/artifacts/look/env.txt")
    given = {line.split("=", 1)[0] for line in dump.read_text().splitlines() if line.startswith("CYCLEPLAN_")}
    assert len(given) == 8, given

    schema = _cycleplan("schema", cwd=tmp_path)
    assert schema.returncode == 0, schema.stderr
    fields = json.loads(schema.stdout)["$defs"]["Task"]["properties"]
    for name in ("command", "shell", "retries", "final_exit_codes", "prompt"):
        assert fields[name].get("description"), name
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### What a command is told") :]
    for variable in sorted(given):
        assert variable in fields["command"]["description"], variable
        assert f"| `{variable}` |" in section, variable
