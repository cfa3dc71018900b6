"""The ``command`` backend: each cycle runs the task's command; its exit status decides success.

The command is an argument list run without a shell, unless the task says ``shell: true``: then, as with
POSIX ``sh -c``, the first item is the shell text and the others become ``$0``, ``$1``... The command
learns where it is from its environment: ``CYCLEPLAN_RUN_ID``, ``CYCLEPLAN_TASK``, ``CYCLEPLAN_LANE``,
``CYCLEPLAN_ROLE``, ``CYCLEPLAN_CYCLE``, ``CYCLEPLAN_CYCLES``, ``CYCLEPLAN_ATTEMPT`` and
``CYCLEPLAN_ARTIFACTS`` (a folder it may write to, as an absolute path). Of the executor's own environment
it gets only the allowed variables (``PATH``, ``HOME``, the locale... see :mod:`.secrets`) and those named
with ``execute --pass-env NAME``; the Anthropic API key is not passed on unless so named. Its standard
output and error are kept as artifacts (``cycle-003.attempt-1.stdout`` / ``.stderr``). Cancelling a
cycle stops the command's whole process group.

A non-zero exit status is a failed attempt, which the orchestrator retries, unless the status is one of
the task's final ones (``final_exit_codes``, else its role's ``failure.final_exit_codes``; by default
126 and 127, a command the shell cannot execute or cannot find): another attempt would exit the same
way, so the task fails at once. A command that cannot be started at all fails at once too. A command
killed by a signal is always retried.
"""

from __future__ import annotations

import os
import time

from cycleplan.core.model import Scenario
from cycleplan.executor.backend import (
    BackendOptions,
    BackendUnavailableError,
    CycleOutcome,
    CycleRequest,
)
from cycleplan.executor.processes import ProcessRegistry, run_in_group
from cycleplan.executor.secrets import child_environment

STDERR_TAIL_BYTES = 400
"""How much of a failed command's standard error goes into the event's ``error``."""


def artifact_stem(request: CycleRequest) -> str:
    return f"cycle-{request.cycle:03d}.attempt-{request.attempt}"


def tail(path: os.PathLike[str], limit: int = STDERR_TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file as text, on one line."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return ""
    return " ".join(data.decode("utf-8", "replace").split())


def preflight(scenario: Scenario, options: BackendOptions) -> None:
    """Refuse a scenario with a task that has no command to run, before anything is recorded."""
    missing = [task.id for task in scenario.all_tasks() if not task.command]
    if missing:
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise BackendUnavailableError(
            f"--agent command needs a 'command' on every task; missing on: {shown}. Give each task a "
            "command (an argument list, e.g. command: [python3, step.py]), or choose another --agent"
        )


class CommandBackend:
    """Runs ``task.command`` once per cycle in its own process group."""

    name = "command"

    def __init__(
        self, scenario: Scenario, processes: ProcessRegistry, pass_env: tuple[str, ...] = ()
    ) -> None:
        self._scenario = scenario
        self._processes = processes
        self._pass_env = pass_env

    async def start(self) -> None:
        preflight(self._scenario, BackendOptions())

    async def close(self) -> None:
        return None

    def context_tokens(self, role_name: str) -> int:
        return 0

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        task = request.task
        assert task.command is not None
        argv = ["/bin/sh", "-c", *task.command] if task.shell else list(task.command)
        env = child_environment(
            {
                "CYCLEPLAN_RUN_ID": request.run_id,
                "CYCLEPLAN_TASK": task.id,
                "CYCLEPLAN_LANE": request.lane,
                "CYCLEPLAN_ROLE": request.role_name,
                "CYCLEPLAN_CYCLE": str(request.cycle),
                "CYCLEPLAN_CYCLES": str(task.cycles),
                "CYCLEPLAN_ATTEMPT": str(request.attempt),
                "CYCLEPLAN_ARTIFACTS": str(request.artifacts.resolve()),
            },
            passed=self._pass_env,
        )
        stem = artifact_stem(request)
        stdout = request.artifacts / f"{stem}.stdout"
        stderr = request.artifacts / f"{stem}.stderr"
        started = time.monotonic()
        try:
            status = await run_in_group(
                argv,
                cwd=request.workdir,
                env=env,
                stdout=stdout,
                stderr=stderr,
                registry=self._processes,
                task=task.id,
            )
        except OSError as exc:
            return CycleOutcome(
                ok=False,
                duration_ms=(time.monotonic() - started) * 1000,
                error=f"cannot start {argv[0]!r}: {exc.strerror or exc}",
                retryable=False,
            )
        duration_ms = (time.monotonic() - started) * 1000
        details = {"exit_status": status, "artifacts": [stdout.name, stderr.name]}
        if status == 0:
            return CycleOutcome(ok=True, duration_ms=duration_ms, details=details)
        how = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
        final = status in task.final_exit_statuses(request.role)
        if final:
            how += " (one of final_exit_codes: not retried)"
        last = tail(stderr)
        return CycleOutcome(
            ok=False,
            duration_ms=duration_ms,
            error=f"{argv[0]} {how}" + (f": {last}" if last else ""),
            retryable=not final,
            details=details,
        )
