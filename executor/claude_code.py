"""The ``claude-code`` backend: each cycle is one headless Claude Code turn, resuming the task's session.

With the claude extra installed (``pip install 'cycleplan[claude]'``) the backend runs on the official
SDK (:mod:`.claude_sdk`); this module is the fallback that drives a ``claude`` on PATH (or ``--claude
PATH``) in headless mode, and holds what both share: the system prompt, the environment, and the
rehearsal (:class:`Rehearsal`: the loopback emulator, Claude Code's home in the run's folder, the
variables that keep Claude Code quiet and offline).

In headless mode a cycle runs ``claude -p PROMPT --output-format json --model MODEL
--append-system-prompt TEXT`` (plus ``--resume SESSION`` from the second cycle on, with the session id
the previous cycle's result named) in the lane's working directory, in a process group of its own. The
CLI's result object (``type`` "result", ``subtype``, ``is_error``, ``result``, ``session_id``,
``duration_ms``, ``total_cost_usd``, ``usage``) decides success and gives the cycle's duration, cost
and tokens (a resumed session's ``total_cost_usd`` is its running total: the turn costs the difference).
Its standard output and error are the cycle's artifacts. Claude Code gets the allowed environment with
the ``ANTHROPIC_*`` and ``CLAUDE_*`` variables (it needs the key; :mod:`.secrets`) and the ``CYCLEPLAN_*``
variables the command backend sets.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cycleplan.core.model import Scenario
from cycleplan.executor.anthropic_api import cycle_prompt
from cycleplan.executor.backend import (
    BackendOptions,
    BackendUnavailableError,
    CycleOutcome,
    CycleRequest,
    Usage,
)
from cycleplan.executor.billing import LEDGER_FILE
from cycleplan.executor.command import tail
from cycleplan.executor.processes import ProcessRegistry, run_in_group
from cycleplan.executor.secrets import child_environment

if TYPE_CHECKING:
    from cycleplan.executor.emulator import Emulator

AGENT_TOOLS = ("Agent", "Task")
"""Claude Code's tool for spawning subagents (named Task in older versions)."""
READ_ONLY_TOOLS = ("Read", "Glob", "Grep", "LS")
"""Tools allowed without asking: they read, never change anything."""
QUIET_ENVIRONMENT = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
}
"""What keeps a rehearsing Claude Code from reaching anything but the emulator: no telemetry, update
checks, error reports or other non-essential traffic."""
CLAUDE_HOME = "claude"
"""Claude Code's configuration folder in a rehearsal, in the run's folder (its transcripts are under
``projects/``)."""
PLACEHOLDER_KEY = "emulated-key"


def sdk_installed() -> bool:
    """Whether the claude extra (the claude-agent-sdk package) is installed."""
    return importlib.util.find_spec("claude_agent_sdk") is not None


def claude_cli(options: BackendOptions) -> str:
    """The path of the Claude Code CLI ``options`` name, or a one-line error saying how to get it."""
    found = shutil.which(options.claude_executable)
    if found is None:
        raise BackendUnavailableError(
            f"--agent claude-code needs the Claude Code CLI, and '{options.claude_executable}' is not on "
            "PATH: install it (npm install -g @anthropic-ai/claude-code), name it with --claude PATH, or "
            "use the SDK's own (pip install 'cycleplan[claude]', without --claude)"
        )
    return found


def preflight(scenario: Scenario, options: BackendOptions) -> None:
    """Refuse to start, before anything is recorded, when the client ``options`` choose is missing:
    the SDK (and a CLI for it), or the CLI on PATH."""
    if uses_sdk(options):
        from cycleplan.executor.claude_sdk import sdk_cli

        sdk_cli(options)
    else:
        claude_cli(options)


def uses_sdk(options: BackendOptions) -> bool:
    """Whether ``options`` run Claude Code through the SDK rather than the headless CLI."""
    return options.claude_client == "sdk" or (options.claude_client == "auto" and sdk_installed())


def system_prompt(scenario: Scenario, request: CycleRequest) -> str:
    """What is appended to Claude Code's own system prompt: the shared specification and the role's
    prompt."""
    parts = []
    if scenario.spec:
        parts.append(f"Shared specification:\n{scenario.spec}")
    parts.append(
        request.role.system_prompt
        or f"You are the {request.role_name} agent of a team building one feature in parallel."
    )
    return "\n\n".join(parts)


def cycleplan_environment(request: CycleRequest) -> dict[str, str]:
    """The ``CYCLEPLAN_*`` variables an agent process learns where it is from."""
    return {
        "CYCLEPLAN_RUN_ID": request.run_id,
        "CYCLEPLAN_TASK": request.task.id,
        "CYCLEPLAN_LANE": request.lane,
        "CYCLEPLAN_ROLE": request.role_name,
        "CYCLEPLAN_CYCLE": str(request.cycle),
        "CYCLEPLAN_CYCLES": str(request.task.cycles),
        "CYCLEPLAN_ATTEMPT": str(request.attempt),
        "CYCLEPLAN_ARTIFACTS": str(request.artifacts.resolve()),
    }


def cli_flags(arguments: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """``--claude-arg`` items (``--flag``, ``--flag=value`` or ``--flag value``) as the SDK's
    ``extra_args`` (flag name without dashes -> value, None for a bare flag)."""
    flags: dict[str, str | None] = {}
    items = list(arguments)
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if not item.startswith("-"):
            continue
        name, equals, value = item.lstrip("-").partition("=")
        if equals:
            flags[name] = value
        elif index < len(items) and not items[index].startswith("-"):
            flags[name] = items[index]
            index += 1
        else:
            flags[name] = None
    return flags


class Rehearsal:
    """Claude Code against the loopback emulator: no key, no network, no cost.

    The emulator (:class:`cycleplan.executor.emulator.Emulator`) bills each request from what Claude Code
    sends and drives its agent loop from the scenario's draws; each cycle's requests are tagged with the
    cycle (``ANTHROPIC_CUSTOM_HEADERS``) so that the emulator plays the simulator's draws for it and spawns
    its planned subagents. Claude Code's home is ``<run folder>/claude``, so its transcripts stay with the
    run; the emulator's ledger is ``<run folder>/emulator.jsonl``. The model aliases Claude Code resolves
    for subagents (haiku, sonnet, opus) name the scenario's own models.
    """

    def __init__(self, scenario: Scenario, options: BackendOptions, *, spawns: bool = True) -> None:
        self.scenario = scenario
        self.options = options
        self.spawns = spawns
        """Whether Claude Code is to spawn the planned subagents (else the orchestrator runs them)."""
        folder = options.run_folder or Path.cwd()
        self.home = folder / CLAUDE_HOME
        self.ledger = folder / LEDGER_FILE
        self.emulator: Emulator | None = None

    async def start(self) -> None:
        from cycleplan.executor.emulator import Emulator

        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        self.emulator = Emulator(
            self.scenario,
            seed=self.options.seed,
            time_scale=self.options.time_scale,
            faults=self.options.emulator_faults,
            ledger=self.ledger,
        )
        await self.emulator.start()

    async def close(self) -> None:
        if self.emulator is not None:
            await self.emulator.close()
            self.emulator = None

    def environment(self, request: CycleRequest) -> dict[str, str]:
        """What Claude Code's environment gets for one cycle of a rehearsal."""
        from cycleplan.executor.emulator import SPAWN_HEADER, TURN_HEADER

        assert self.emulator is not None, "the rehearsal has not started"
        headers = [f"{TURN_HEADER}: {request.task.id}:{request.cycle}:{request.attempt}"]
        if not self.spawns:
            headers.append(f"{SPAWN_HEADER}: no")
        env = {
            **QUIET_ENVIRONMENT,
            "ANTHROPIC_BASE_URL": self.emulator.url,
            "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
            "CLAUDE_CONFIG_DIR": str(self.home),
            "CLAUDE_CODE_TMPDIR": str(self.home / "tmp"),
            "ANTHROPIC_CUSTOM_HEADERS": "\n".join(headers),
        }
        for family in ("haiku", "sonnet", "opus"):
            model = next(
                (
                    self.scenario.role(name).model
                    for name in self.scenario.role_names()
                    if family in self.scenario.role(name).model
                ),
                None,
            )
            if model is not None:
                env[f"ANTHROPIC_DEFAULT_{family.upper()}_MODEL"] = model
        return env


def transcripts_folder(run_folder: Path, workdir: Path | None = None) -> Path:
    """Where a rehearsal's Claude Code transcripts are: the project folder of ``workdir`` when it exists
    (Claude Code names it after the path, every character that is not a letter or digit a dash), else the
    folder of all projects."""
    projects = run_folder / CLAUDE_HOME / "projects"
    if workdir is not None:
        slug = "".join(c if c.isalnum() else "-" for c in str(workdir))
        if (projects / slug).is_dir():
            return projects / slug
    found = [path for path in projects.iterdir() if path.is_dir()] if projects.is_dir() else []
    return found[0] if len(found) == 1 else projects


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
        self._totals: dict[str, float] = {}
        """Session id -> the running total cost it last reported."""
        # Headless, Claude Code reports no subagents: the orchestrator runs the planned ones itself.
        self.rehearsal: Rehearsal | None = (
            Rehearsal(scenario, options, spawns=False) if options.emulator else None
        )

    async def start(self) -> None:
        self._executable = claude_cli(self._options)
        if self.rehearsal is not None:
            await self.rehearsal.start()

    async def close(self) -> None:
        if self.rehearsal is not None:
            await self.rehearsal.close()

    def context_tokens(self, role_name: str) -> int:
        return 0

    def _turn_cost(self, data: dict[str, Any], request: CycleRequest) -> float | None:
        """The turn's own cost: a resumed session's ``total_cost_usd`` is its running total, so what the
        session had reported before is taken off (kept as ``reported_cost_usd``)."""
        total = data.get("total_cost_usd", data.get("cost_usd"))
        if not isinstance(total, int | float) or isinstance(total, bool):
            return None
        session = data.get("session_id")
        previous = request.previous or {}
        before = self._totals.get(str(session))
        if before is None and previous.get("session_id") == session:
            reported = previous.get("reported_cost_usd")
            before = float(reported) if isinstance(reported, int | float) else None
        if isinstance(session, str):
            self._totals[session] = float(total)
        return max(float(total) - (before or 0.0), 0.0)

    def _system_prompt(self, request: CycleRequest) -> str:
        return system_prompt(self._scenario, request)

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
        if self.rehearsal is not None:
            argv += ["--allowedTools", ",".join(READ_ONLY_TOOLS)]
        return argv + list(self._options.claude_args)

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        stem = f"cycle-{request.cycle:03d}.attempt-{request.attempt}"
        stdout = request.artifacts / f"{stem}.json"
        stderr = request.artifacts / f"{stem}.stderr"
        extra = cycleplan_environment(request)
        if self.rehearsal is not None:
            extra.update(self.rehearsal.environment(request))
        env = child_environment(extra, keep_secrets=True, passed=self._options.pass_env)
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
        return self._outcome(status, stdout, stderr, measured_ms, request)

    def _outcome(
        self, status: int, stdout: Path, stderr: Path, measured_ms: float, request: CycleRequest
    ) -> CycleOutcome:
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
        if isinstance(data.get("total_cost_usd"), int | float):
            details["reported_cost_usd"] = data["total_cost_usd"]
        is_error = bool(data.get("is_error")) or data.get("subtype", "success") != "success"
        ok = status == 0 and not is_error
        duration = data.get("duration_ms")
        cost = self._turn_cost(data, request)
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
            cost_usd=cost,
            error=error,
            stop_reason=data.get("stop_reason") if isinstance(data.get("stop_reason"), str) else None,
            details=details,
        )
