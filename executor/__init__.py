"""The executor: run a Plan against real agents, durably, and record the run as a trace.

    >>> from cycleplan.executor import ExecuteOptions, execute, resume
    >>> result = execute(plan, ExecuteOptions(agent="emulated", time_scale=600))
    >>> result.status, result.summary["makespan_min"]

One coroutine per lane follows the plan, and subagents run on their own lanes when their parents spawn
them (:mod:`.orchestrator`); waits and emits go through the run's committed events
(:mod:`.coordination`); every event is committed to the SQLite run store (:mod:`cycleplan.store`) before
anything depends on it, so a killed run resumes without
redoing completed work (:mod:`.run`), and the store admits one writer per run, the holder of the run's
lease.
Agents sit behind one small async interface (:mod:`.backend`): ``anthropic`` (:mod:`.anthropic_api`),
``claude-code`` (on the official SDK, :mod:`.claude_sdk`, else the headless CLI, :mod:`.claude_code`),
``command`` (:mod:`.command`) and ``emulated``, a loopback server that speaks the Messages API
(:mod:`.emulator`), which also bills any real client from the requests it sends (:mod:`.billing`), so
that ``claude-code --emulator`` rehearses with the real Claude Code offline. A run is measured by
:func:`cycleplan.core.metrics.metrics`, as simulations are (:mod:`.summary`), and
:func:`.audit.trace_problems` checks that a trace kept its plan's promises. Never imports the simulator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cycleplan.executor.backend import AGENTS, BackendUnavailableError
    from cycleplan.executor.run import (
        ExecuteOptions,
        ExecutionError,
        RunResult,
        RunTakenOverError,
        execute,
        resume,
    )
    from cycleplan.executor.summary import run_summary, scenario_trace

_HOME = {
    "AGENTS": "backend",
    "BackendUnavailableError": "backend",
    "ExecuteOptions": "run",
    "ExecutionError": "run",
    "RunResult": "run",
    "RunTakenOverError": "run",
    "execute": "run",
    "resume": "run",
    "run_summary": "summary",
    "scenario_trace": "summary",
}
"""Where each name lives: loaded when first asked for, so that importing the package loads no backend."""


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'cycleplan.executor' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cycleplan.executor.{home}"), name)


__all__ = [
    "AGENTS",
    "BackendUnavailableError",
    "ExecuteOptions",
    "ExecutionError",
    "RunResult",
    "RunTakenOverError",
    "execute",
    "resume",
    "run_summary",
    "scenario_trace",
]
