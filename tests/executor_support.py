"""Running a plan in the executor's tests: the run, its stored trace, and the trace audited; waiting on
an executor running in another process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cycleplan.core.model import Event, Plan
from cycleplan.executor import ExecuteOptions, RunResult, execute
from cycleplan.executor.audit import trace_problems
from cycleplan.store import RunStore


def run_and_audit(
    the_plan: Plan, tmp_path: Path, agent: str, **options: Any
) -> tuple[RunResult, list[Event]]:
    """Execute ``the_plan`` with ``agent`` (no retry backoff, working in ``tmp_path``), read its trace back
    from the store, and fail the test if the trace breaks any rule of the plan."""
    settings: dict[str, Any] = {"agent": agent, "retry_backoff_s": 0.0, "workdir": str(tmp_path)}
    settings.update(options)
    store = tmp_path / "store" / "runs.db"
    result = execute(the_plan, ExecuteOptions(**settings), store=store, progress="none")
    with RunStore(store) as runs:
        trace = runs.trace(result.run_id)
    assert trace_problems(the_plan, trace) == []
    return result, trace


DEADLINE_S = 60.0
"""The longest a test waits for an executor in another process to reach a moment."""


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[str] | None = None) -> None:
    """Poll ``condition`` until it holds; fail when ``process`` exits first or :data:`DEADLINE_S` passes."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the executor exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
