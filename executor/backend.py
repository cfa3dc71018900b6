"""The one small async interface every agent backend implements, and the registry that builds them.

A backend runs one cycle at a time for the orchestrator: :meth:`Backend.run_cycle` takes a
:class:`CycleRequest` and returns a :class:`CycleOutcome` (success or a failed attempt with whatever it
cost). The orchestrator owns retries, timeouts, cancellation and the store; a backend owns talking to its
agent and keeping that agent's output as artifacts. A backend must stop its agent when the coroutine
running a cycle is cancelled. A backend that acts out the handoff of awaited events (the emulated agent)
also implements :class:`TakesHandoff`: the orchestrator has it take the handoff in before the cycle's work
and before the subagents the cycle spawns; for the other agents the handoff is part of their cycle. A
backend whose agent spawns a cycle's subagents itself, within the cycle (Claude Code through its Agent
tool), implements :class:`SpawnsSubagents`: the orchestrator then does not start them but hands their ids
to the cycle (:attr:`CycleRequest.subagents`) and records what the backend reports while the cycle runs
(:class:`CycleEvents`: each subagent's start and end, each tool the agents use). Backends are built by
name with :func:`make_backend`, which imports each one lazily so that choosing ``command`` never imports
the Anthropic SDK. :func:`preflight` asks a backend, before a run is recorded, whether it can run at all
(a key, a reachable API, a ``claude`` to run, a command on every task), writing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cycleplan.core.model import Role, Scenario, Task
    from cycleplan.executor.processes import ProcessRegistry


class BackendUnavailableError(Exception):
    """A backend cannot start (no API key, no ``claude`` on PATH, a task without a command...).

    Its message is one line meant for the user.
    """


@dataclass(frozen=True)
class Usage:
    """Tokens one cycle moved, in the Messages API's four kinds."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def plus(self, other: Usage) -> Usage:
        """The tokens of both (a cycle's calls added up)."""
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    def as_metadata(self) -> dict[str, int]:
        """The Messages API's usage field names, as traces carry them."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True)
class CycleRequest:
    """Everything a backend needs to run one attempt at one cycle of one task."""

    run_id: str
    lane: str
    task: Task
    role_name: str
    role: Role
    cycle: int
    """1-based."""
    attempt: int
    """1-based; above 1 after failed attempts at this cycle."""
    spec: str
    """The scenario's shared specification (feature, ontology, acceptance criteria)."""
    artifacts: Path
    """This task's artifact folder (exists); a backend writes its outputs here."""
    workdir: Path
    """Where agent processes run: the lane's git worktree with ``--worktrees``, else the working directory."""
    previous: Mapping[str, Any] | None = None
    """Metadata of this task's last completed cycle (None before the first): where a backend finds what
    it needs to continue the task's conversation (a Claude Code session id...), also after a resume."""
    handoffs: int = 0
    """Awaited events this cycle is the first to take in (what a role's ``sync`` cost is charged for; a
    backend that :class:`TakesHandoff` has already taken them in when the cycle's attempts run)."""
    subagents: tuple[str, ...] = ()
    """For a backend that :class:`SpawnsSubagents`: the subagents this cycle is planned to spawn and that
    have not ended yet, in plan order."""
    events: CycleEvents | None = None
    """Where a backend reports what happens within the cycle as it happens (None: nobody listens)."""


@dataclass(frozen=True)
class CycleOutcome:
    """What one attempt at a cycle gave."""

    ok: bool
    duration_ms: float
    """Time the agent spent on the attempt (reported by the agent when it says, else measured)."""
    usage: Usage = Usage()
    cost_usd: float | None = None
    """Cost reported by the agent (Claude Code), None when the executor should price the usage."""
    error: str = ""
    retryable: bool = True
    """False when another attempt cannot help (authentication refused, a bad request)."""
    stop_reason: str | None = None
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Backend-specific facts recorded with the cycle (session id, exit status, rate-limit waits...)."""


class Backend(Protocol):
    """What the orchestrator calls; see the module docstring."""

    name: str

    async def start(self) -> None:
        """Open clients, servers or worktrees; raise :class:`BackendUnavailableError` when that cannot be."""

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        """Run one attempt; on cancellation stop the agent and re-raise."""

    async def close(self) -> None:
        """Release whatever :meth:`start` opened."""

    def context_tokens(self, role_name: str) -> int:
        """Tokens of context a task of ``role_name`` loads when it starts (0 when unknown)."""


class CycleEvents(Protocol):
    """What a backend reports while a cycle runs; the orchestrator records each report as an event at
    once. Times are epoch milliseconds."""

    def tool_used(
        self,
        tool: str,
        *,
        tool_use_id: str,
        started_ms: float,
        duration_ms: float,
        failed: bool = False,
        subagent: str | None = None,
    ) -> None:
        """A tool call ended (``subagent``: the subagent task that made it; None: the cycle's own agent)."""

    def subagent_started(self, task_id: str) -> None:
        """The agent spawned the planned subagent ``task_id``."""

    def subagent_ended(self, task_id: str, outcome: CycleOutcome) -> None:
        """Subagent ``task_id`` returned to the agent, with what its work gave and cost."""


@runtime_checkable
class SpawnsSubagents(Protocol):
    """A backend whose agent spawns the cycle's planned subagents itself (see the module docstring)."""

    def spawns_subagents(self) -> bool:
        """Whether this backend, as configured, spawns subagents within cycles."""


@runtime_checkable
class TakesHandoff(Protocol):
    """A backend that acts out the time a cycle spends taking awaited events in, apart from its work."""

    async def take_handoff(self, request: CycleRequest) -> float:
        """Take in the ``request.handoffs`` events cycle ``request.cycle`` awaited; real ms spent."""


@dataclass(frozen=True)
class BackendOptions:
    """Options of :func:`make_backend` that only some backends read."""

    time_scale: float = 1.0
    seed: int = 0
    max_output_tokens: int = 4096
    api_key_env: str = "ANTHROPIC_API_KEY"
    base_url: str | None = None
    claude_executable: str = "claude"
    claude_args: tuple[str, ...] = ()
    emulator_faults: Any = None
    """An :class:`cycleplan.executor.emulator.Faults` for the emulated backend (tests inject faults)."""
    emulator: bool = False
    """claude-code: talk to a loopback emulator of the Messages API instead of the real one."""
    claude_client: str = "auto"
    """claude-code: ``sdk`` (the claude-agent-sdk package), ``cli`` (the headless CLI on PATH), or
    ``auto`` (the SDK when it is installed)."""
    run_folder: Path | None = None
    """The run's folder (the emulator's ledger, Claude Code's home in a rehearsal)."""
    pass_env: tuple[str, ...] = ()
    """Variables of the executor's environment that agent processes get beyond the allowed ones
    (:mod:`.secrets`); ``execute --pass-env NAME``."""
    extra: Mapping[str, Any] = field(default_factory=dict)


def _anthropic(scenario: Scenario, options: BackendOptions, processes: ProcessRegistry) -> Backend:
    from cycleplan.executor.anthropic_api import AnthropicBackend

    return AnthropicBackend(scenario, options)


def _claude_code(scenario: Scenario, options: BackendOptions, processes: ProcessRegistry) -> Backend:
    from cycleplan.executor.claude_code import ClaudeCodeBackend, uses_sdk

    if uses_sdk(options):
        from cycleplan.executor.claude_sdk import ClaudeSdkBackend

        return ClaudeSdkBackend(scenario, options)
    return ClaudeCodeBackend(scenario, options, processes)


def _command(scenario: Scenario, options: BackendOptions, processes: ProcessRegistry) -> Backend:
    from cycleplan.executor.command import CommandBackend

    return CommandBackend(scenario, processes, options.pass_env)


def _emulated(scenario: Scenario, options: BackendOptions, processes: ProcessRegistry) -> Backend:
    from cycleplan.executor.anthropic_api import EmulatedBackend

    return EmulatedBackend(scenario, options)


def _anthropic_ready(scenario: Scenario, options: BackendOptions) -> None:
    from cycleplan.executor.anthropic_api import preflight

    preflight(scenario, options)


def _claude_code_ready(scenario: Scenario, options: BackendOptions) -> None:
    from cycleplan.executor.claude_code import preflight

    preflight(scenario, options)


def _command_ready(scenario: Scenario, options: BackendOptions) -> None:
    from cycleplan.executor.command import preflight

    preflight(scenario, options)


def _always_ready(scenario: Scenario, options: BackendOptions) -> None:
    return None


@dataclass(frozen=True)
class BackendEntry:
    """A backend ``execute --agent`` can name: what it is, in a few words, how to make one, and what it
    checks before a run is recorded (:func:`preflight`)."""

    name: str
    summary: str
    build: Callable[[Scenario, BackendOptions, ProcessRegistry], Backend]
    ready: Callable[[Scenario, BackendOptions], None] = _always_ready


BACKENDS: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry("anthropic", "the Messages API", _anthropic, _anthropic_ready),
        BackendEntry("claude-code", "Claude Code, a turn per cycle", _claude_code, _claude_code_ready),
        BackendEntry("command", "each task's command", _command, _command_ready),
        BackendEntry("emulated", "a local imitation of the API; no network, no cost", _emulated),
    )
}
"""The one place a backend is registered: ``execute --agent``'s choices and help come from here."""

AGENTS = tuple(BACKENDS)
"""The backends ``cycleplan execute --agent`` accepts."""


def preflight(agent: str, scenario: Scenario, options: BackendOptions) -> None:
    """Raise :class:`BackendUnavailableError` when the backend called ``agent`` cannot run ``scenario``
    as ``options`` say (no API key, an API host that does not resolve, no ``claude`` to run, a task
    without a command...). It writes nothing, so a run that cannot go leaves no trace: the executor asks
    before it records a run (or, resuming one, before it takes the run's lease)."""
    entry = BACKENDS.get(agent)
    if entry is None:
        raise BackendUnavailableError(f"unknown agent '{agent}'; choose one of {', '.join(AGENTS)}")
    entry.ready(scenario, options)


def make_backend(
    agent: str,
    scenario: Scenario,
    options: BackendOptions,
    processes: ProcessRegistry,
) -> Backend:
    """The backend called ``agent`` (one of :data:`AGENTS`)."""
    entry = BACKENDS.get(agent)
    if entry is None:
        raise BackendUnavailableError(f"unknown agent '{agent}'; choose one of {', '.join(AGENTS)}")
    return entry.build(scenario, options, processes)
