"""The ``claude-code`` backend: each cycle is one headless Claude Code turn, resuming the task's session.

A cycle runs ``claude -p PROMPT --output-format json --model MODEL --append-system-prompt TEXT`` (plus
``--resume SESSION`` from the second cycle on, with the session id the previous cycle's result named)
in the lane's working directory, in a process group of its own. The CLI's result object (``type``
"result", ``subtype``, ``is_error``, ``result``, ``session_id``, ``duration_ms``, ``total_cost_usd``,
``usage``) decides success and gives the cycle's duration, cost and tokens. Its standard output and
error are the cycle's artifacts. Claude Code gets the environment with the API key (it needs it) and the
``CYCLEPLAN_*`` variables the command backend sets.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from cycleplan.executor.anthropic_api import cycle_prompt
from cycleplan.executor.backend import (
    BackendOptions,
    BackendUnavailableError,
    CycleOutcome,
    CycleRequest,
    Usage,
)
from cycleplan.executor.command import tail
from cycleplan.executor.processes import ProcessRegistry, run_in_group
from cycleplan.executor.secrets import child_environment
from cycleplan.model import Scenario


def parse_result(text: str) -> dict[str, Any] | None:
    """The CLI's result object from its standard output (the last JSON object with ``type`` "result")."""
    text = text.strip()
    if not text:
        return None
    candidates = [text, *reversed(text.splitlines())]
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, list):
            data = next((item for item in reversed(data) if isinstance(item, dict)), None)
        if isinstance(data, dict) and data.get("type", "result") == "result":
            return data
    return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _usage(data: dict[str, Any]) -> Usage:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_read_tokens=_int(usage.get("cache_read_input_tokens")),
        cache_write_tokens=_int(usage.get("cache_creation_input_tokens")),
    )


class ClaudeCodeBackend:
    """Drives the Claude Code CLI in headless mode, one turn per cycle."""

    name = "claude-code"

    def __init__(self, scenario: Scenario, options: BackendOptions, processes: ProcessRegistry) -> None:
        self._scenario = scenario
        self._options = options
        self._processes = processes
        self._executable = options.claude_executable

    async def start(self) -> None:
        found = shutil.which(self._options.claude_executable)
        if found is None:
            raise BackendUnavailableError(
                f"--agent claude-code needs the Claude Code CLI, and '{self._options.claude_executable}' "
                "is not on PATH (install it with: npm install -g @anthropic-ai/claude-code)"
            )
        self._executable = found

    async def close(self) -> None:
        return None

    def context_tokens(self, role_name: str) -> int:
        return 0

    def _system_prompt(self, request: CycleRequest) -> str:
        parts = []
        if self._scenario.spec:
            parts.append(f"Shared specification:\n{self._scenario.spec}")
        parts.append(
            request.role.system_prompt
            or f"You are the {request.role_name} agent of a team building one feature in parallel."
        )
        return "\n\n".join(parts)

    def argv(self, request: CycleRequest) -> list[str]:
        """The command line of one cycle."""
        argv = [
            self._executable,
            "-p",
            cycle_prompt(request),
            "--output-format",
            "json",
            "--model",
            request.role.model,
            "--append-system-prompt",
            self._system_prompt(request),
        ]
        session = (request.previous or {}).get("session_id")
        if isinstance(session, str) and session:
            argv += ["--resume", session]
        return argv + list(self._options.claude_args)

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        stem = f"cycle-{request.cycle:03d}.attempt-{request.attempt}"
        stdout = request.artifacts / f"{stem}.json"
        stderr = request.artifacts / f"{stem}.stderr"
        env = child_environment(
            {
                "CYCLEPLAN_RUN_ID": request.run_id,
                "CYCLEPLAN_TASK": request.task.id,
                "CYCLEPLAN_LANE": request.lane,
                "CYCLEPLAN_ROLE": request.role_name,
                "CYCLEPLAN_CYCLE": str(request.cycle),
                "CYCLEPLAN_CYCLES": str(request.task.cycles),
                "CYCLEPLAN_ATTEMPT": str(request.attempt),
                "CYCLEPLAN_ARTIFACTS": str(request.artifacts),
            },
            keep_secrets=True,
        )
        started = time.monotonic()
        try:
            status = await run_in_group(
                self.argv(request),
                cwd=request.workdir,
                env=env,
                stdout=stdout,
                stderr=stderr,
                registry=self._processes,
                task=request.task.id,
            )
        except OSError as exc:
            return CycleOutcome(
                ok=False,
                duration_ms=(time.monotonic() - started) * 1000.0,
                error=f"cannot start {self._executable}: {exc.strerror or exc}",
                retryable=False,
            )
        measured_ms = (time.monotonic() - started) * 1000.0
        return self._outcome(status, stdout, stderr, measured_ms)

    def _outcome(self, status: int, stdout: Path, stderr: Path, measured_ms: float) -> CycleOutcome:
        try:
            text = stdout.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        data = parse_result(text)
        details: dict[str, Any] = {"exit_status": status, "artifacts": [stdout.name, stderr.name]}
        if data is None:
            how = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            last = tail(stderr) or tail(stdout)
            return CycleOutcome(
                ok=False,
                duration_ms=measured_ms,
                error=f"claude {how} without a JSON result" + (f": {last}" if last else ""),
                details=details,
            )
        for name in ("session_id", "subtype", "num_turns", "duration_api_ms"):
            if data.get(name) is not None:
                details[name] = data[name]
        is_error = bool(data.get("is_error")) or data.get("subtype", "success") != "success"
        ok = status == 0 and not is_error
        duration = data.get("duration_ms")
        cost = data.get("total_cost_usd", data.get("cost_usd"))
        error = ""
        if not ok:
            result = data.get("result") or data.get("error") or ""
            error = f"claude result {data.get('subtype', 'error')}" + (f": {result}" if result else "")
            if status != 0:
                error += f" (exit status {status})"
        return CycleOutcome(
            ok=ok,
            duration_ms=float(duration) if isinstance(duration, int | float) else measured_ms,
            usage=_usage(data),
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
            error=error,
            stop_reason=data.get("stop_reason") if isinstance(data.get("stop_reason"), str) else None,
            details=details,
        )
