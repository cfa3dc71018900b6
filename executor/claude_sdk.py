"""The ``claude-code`` backend on the official SDK (``claude-agent-sdk``): one Claude Code turn per cycle.

A cycle is one ``query()`` of the SDK, which runs the Claude Code CLI it bundles (installed with
``pip install 'cycleplan[claude]'``) in the lane's working directory, with the role's model (or the
cycle's), Claude Code's own system prompt with the shared specification and the role's prompt appended,
and ``resume`` set to the session the task's previous cycle named. The SDK's typed messages replace
parsing the CLI's output:

- the result (:class:`~claude_agent_sdk.ResultMessage`) decides success and gives the cycle's usage (the
  cycle's own agent's; Claude Code counts its subagents' apart), its duration and the cost Claude Code
  reports (kept as ``reported_cost_usd``; the cycle's ``cost_usd`` prices each call with its own model,
  5-minute and 1-hour cache writes apart, as the importer and the emulator do);
- the raw stream events (``message_start``, ``message_delta``, ``message_stop``) give each API call of
  the cycle's own agent, with its final usage and its time: the cycle's ``api_calls`` rows,
  ``[duration_ms, input_tokens, cache_write_5m, cache_write_1h, cache_read, output_tokens]`` as
  :mod:`cycleplan.workflows.importers.claude_code` writes them, adding up to the cycle's work;
- hooks report each tool call as it ends (``PostToolUse``: name, time, the subagent that made it) and
  each subagent Claude Code spawns through its Agent tool (``PreToolUse`` of the Agent call: spawned;
  ``PostToolUse``: returned). The orchestrator records them as they happen (:class:`.backend.CycleEvents`):
  a tool call as a ``progress_update``; a planned subagent (this backend :class:`.backend.SpawnsSubagents`)
  as its own task on its own lane, started when spawned and completed when it returns, with its calls
  read from the transcript Claude Code wrote for it (the SDK streams no usage for a subagent's calls). The
  time the agent was blocked on its subagents (the union of its Agent calls) is the cycle's
  ``blocked_ms`` and is not part of its ``duration_ms``. A subagent the agent spawned that the plan did
  not list is counted in the cycle (``unplanned_subagents``).

Tools: the read-only ones (``Read``, ``Glob``, ``Grep``, ``LS``) and the Agent tool are allowed without
asking; more with ``--claude-arg=--allowedTools=Bash,Edit`` or a permission mode. ``--claude-arg`` items
become CLI flags. A rehearsal (``--emulator``) runs against :class:`.claude_code.Rehearsal`: the loopback
emulator, Claude Code's home in the run's folder, nothing sent anywhere else. The SDK is imported when the
backend starts; without it, ``claude-code`` falls back to the headless CLI (:mod:`.claude_code`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cycleplan.core.metrics import USAGE_FIELDS
from cycleplan.core.model import Scenario
from cycleplan.core.prices import cost_usd, resolve
from cycleplan.executor.anthropic_api import cycle_prompt
from cycleplan.executor.backend import (
    BackendOptions,
    BackendUnavailableError,
    CycleEvents,
    CycleOutcome,
    CycleRequest,
    Usage,
)
from cycleplan.executor.claude_code import (
    AGENT_TOOLS,
    READ_ONLY_TOOLS,
    Rehearsal,
    cli_flags,
    cycleplan_environment,
    system_prompt,
)
from cycleplan.executor.secrets import hidden_environment, redact, secret_values


def bundled_cli() -> str | None:
    """The Claude Code CLI the installed SDK bundles, if any."""
    try:
        import claude_agent_sdk
    except ImportError:
        return None
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return str(path) if path.is_file() else None


def sdk_cli(options: BackendOptions) -> str | None:
    """The Claude Code CLI the SDK is to run (None: the one it bundles), or a one-line error when the SDK
    is not installed or has no CLI to run."""
    try:
        import claude_agent_sdk  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            "--agent claude-code on the SDK needs the claude extra: pip install 'cycleplan[claude]'"
        ) from None
    executable = options.claude_executable
    if executable != "claude":
        return shutil.which(executable) or executable
    if bundled_cli() is not None:
        return None
    found = shutil.which("claude")
    if found is None:
        raise BackendUnavailableError(
            "--agent claude-code: the installed claude-agent-sdk bundles no Claude Code CLI for this "
            "platform and 'claude' is not on PATH: install it (npm install -g @anthropic-ai/claude-code) "
            "or name it with --claude PATH"
        )
    return found


@dataclass
class ApiCall:
    """One Messages API call of a turn, as the stream (or a transcript) shows it."""

    message_id: str
    model: str
    started: float
    """Monotonic seconds (stream) or epoch ms (transcript) of its first sign."""
    usage: dict[str, int] = field(default_factory=dict)
    ended: float | None = None

    def absorb(self, usage: dict[str, Any] | None) -> None:
        """Take in usage as it grows while the answer streams (each field's largest value counts)."""
        if not isinstance(usage, dict):
            return
        split = usage.get("cache_creation")
        fields = dict(usage)
        if isinstance(split, dict):
            fields["cache_write_5m"] = split.get("ephemeral_5m_input_tokens", 0)
            fields["cache_write_1h"] = split.get("ephemeral_1h_input_tokens", 0)
        elif "cache_creation_input_tokens" in usage:
            fields.setdefault("cache_write_5m", usage.get("cache_creation_input_tokens", 0))
        for name in USAGE_FIELDS:
            fields.setdefault(name, 0)
        for name, value in fields.items():
            if isinstance(value, int) and not isinstance(value, bool):
                self.usage[name] = max(self.usage.get(name, 0), value)

    def tokens(self) -> list[int]:
        """``[input, cache_write_5m, cache_write_1h, cache_read, output]``."""
        written = self.usage.get("cache_creation_input_tokens", 0)
        five = self.usage.get("cache_write_5m", 0)
        hour = self.usage.get("cache_write_1h", 0)
        if five + hour != written:
            five = written - hour
        return [
            self.usage.get("input_tokens", 0),
            five,
            hour,
            self.usage.get("cache_read_input_tokens", 0),
            self.usage.get("output_tokens", 0),
        ]


def price_calls(calls: list[ApiCall], scenario: Scenario) -> float | None:
    """Dollars for ``calls``, each at its own model's price (None when a model has no price)."""
    total = 0.0
    for call in calls:
        price = resolve(call.model, scenario.prices)
        if price is None:
            return None
        fresh, five, hour, read, output = call.tokens()
        total += cost_usd(price, fresh, five, read, output, hour)
    return total


def usage_of(calls: list[ApiCall]) -> Usage:
    sums = [sum(column) for column in zip(*(call.tokens() for call in calls), strict=True)] if calls else []
    if not sums:
        return Usage()
    fresh, five, hour, read, output = sums
    return Usage(fresh, output, read, five + hour)


TRANSCRIPT_WAIT_S = 5.0
"""How long a returned subagent's transcript may take to show its last answer."""


async def _until_ended(path: Path) -> None:
    """Wait (briefly) until a subagent's transcript holds its last answer: Claude Code may hand the
    subagent's result back before the transcript has it on disk."""
    deadline = time.monotonic() + TRANSCRIPT_WAIT_S
    while time.monotonic() < deadline:
        if transcript_ended(path):
            return
        await asyncio.sleep(0.01)


def transcript_ended(path: Path) -> bool:
    """Whether a transcript's last answer ended the turn (its stop reason is not ``tool_use``)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in reversed(text.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = record.get("message") if isinstance(record, dict) else None
        if record.get("type") == "assistant" and isinstance(message, dict):
            return message.get("stop_reason") not in (None, "tool_use")
    return False


def transcript_calls(path: Path) -> tuple[list[ApiCall], float | None, float | None]:
    """The API calls of a Claude Code transcript file (usage per response, largest value of each field),
    and the epoch ms of its first and last records."""
    calls: dict[str, ApiCall] = {}
    first = last = None
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return [], None, None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        stamp = _epoch_ms(record.get("timestamp"))
        if stamp is not None:
            first = stamp if first is None else min(first, stamp)
            last = stamp if last is None else max(last, stamp)
        message = record.get("message")
        if record.get("type") != "assistant" or not isinstance(message, dict):
            continue
        key = str(message.get("id") or record.get("requestId") or len(calls))
        call = calls.get(key)
        if call is None:
            call = calls[key] = ApiCall(key, str(message.get("model", "")), stamp or 0.0)
        call.absorb(message.get("usage"))
        call.ended = stamp
    return list(calls.values()), first, last


def _epoch_ms(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000.0
    except ValueError:
        return None


@dataclass
class _Spawn:
    """One Agent tool call of the cycle's own agent."""

    tool_use_id: str
    task: str | None
    """The planned subagent it is, or None for one the plan did not list."""
    began: float
    ended: float | None = None
    agent_id: str | None = None


class _Turn:
    """What one cycle's messages and hooks said, gathered as they come."""

    def __init__(self, request: CycleRequest, events: CycleEvents | None, scenario: Scenario) -> None:
        self.request = request
        self.scenario = scenario
        self.events = events
        self.began = time.monotonic()
        self.calls: list[ApiCall] = []
        self.current: ApiCall | None = None
        self.spawns: dict[str, _Spawn] = {}
        self.agents: dict[str, str] = {}
        """Subagent (agent) id -> the Agent call that launched it."""
        self.transcripts: dict[str, str] = {}
        """Subagent (agent) id -> its transcript file."""
        self.tool_starts: dict[str, float] = {}
        self.tools = 0
        self.waiting = list(request.subagents)
        self.unplanned: list[_Spawn] = []
        self.result: Any = None
        self.stderr: list[str] = []
        self.main_transcript = ""

    # the stream

    def stream_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            call = ApiCall(str(message.get("id", "")), str(message.get("model", "")), time.monotonic())
            call.absorb(message.get("usage"))
            self.calls.append(call)
            self.current = call
        elif kind == "message_delta" and self.current is not None:
            self.current.absorb(event.get("usage"))
        elif kind == "message_stop" and self.current is not None:
            self.current.ended = time.monotonic()

    def task_started(self, agent_id: str, tool_use_id: str | None) -> None:
        if tool_use_id:
            self.agents[agent_id] = tool_use_id
            spawn = self.spawns.get(tool_use_id)
            if spawn is not None:
                spawn.agent_id = agent_id

    # the hooks

    async def hook(self, data: Any, tool_use_id: str | None, context: Any) -> Any:
        with contextlib.suppress(Exception):  # a bookkeeping slip must never stop the agent
            await self._hook(dict(data), tool_use_id)
        return {}

    async def _hook(self, data: dict[str, Any], tool_use_id: str | None) -> None:
        name = data.get("hook_event_name")
        if data.get("transcript_path") and not self.main_transcript:
            self.main_transcript = str(data["transcript_path"])
        use_id = str(data.get("tool_use_id") or tool_use_id or "")
        agent = data.get("agent_id")
        if name == "PreToolUse":
            self.tool_starts[use_id] = time.time() * 1000.0
            if data.get("tool_name") in AGENT_TOOLS and not agent:
                self._spawned(use_id, data.get("tool_input") or {})
        elif name in ("PostToolUse", "PostToolUseFailure"):
            self.tools += 1
            now = time.time() * 1000.0
            started = self.tool_starts.pop(use_id, now - float(data.get("duration_ms") or 0))
            subagent = None
            if agent:
                spawn = self.spawns.get(self.agents.get(str(agent), ""))
                subagent = spawn.task if spawn is not None else None
            if self.events is not None:
                self.events.tool_used(
                    str(data.get("tool_name", "")),
                    tool_use_id=use_id,
                    started_ms=started,
                    duration_ms=max(now - started, 0.0),
                    failed=name == "PostToolUseFailure",
                    subagent=subagent,
                )
            if data.get("tool_name") in AGENT_TOOLS and not agent:
                await self._returned(use_id, data.get("tool_response"), failed=name == "PostToolUseFailure")
        elif name == "SubagentStop" and data.get("agent_id") and data.get("agent_transcript_path"):
            self.transcripts[str(data["agent_id"])] = str(data["agent_transcript_path"])

    def _spawned(self, use_id: str, arguments: dict[str, Any]) -> None:
        described = str(arguments.get("description", ""))
        task = described if described in self.waiting else (self.waiting[0] if self.waiting else None)
        if task is not None:
            self.waiting.remove(task)
        spawn = self.spawns[use_id] = _Spawn(use_id, task, time.monotonic())
        if task is None:
            self.unplanned.append(spawn)
        elif self.events is not None:
            self.events.subagent_started(task)

    async def _returned(self, use_id: str, response: Any, *, failed: bool) -> None:
        spawn = self.spawns.get(use_id)
        if spawn is None:
            return
        spawn.ended = time.monotonic()
        if isinstance(response, dict) and response.get("agentId"):
            spawn.agent_id = str(response["agentId"])
        if spawn.task is None:
            return
        path = self.transcript_of(spawn)
        if path is not None:
            await _until_ended(path)
        outcome = self._subagent_outcome(spawn, response, failed)
        if self.events is not None:
            self.events.subagent_ended(spawn.task, outcome)

    def _subagent_outcome(self, spawn: _Spawn, response: Any, failed: bool) -> CycleOutcome:
        path = self.transcript_of(spawn)
        calls, first, last = transcript_calls(path) if path is not None else ([], None, None)
        status = response.get("status") if isinstance(response, dict) else None
        ok = not failed and status in (None, "completed")
        ended = spawn.ended if spawn.ended is not None else time.monotonic()
        work_ms = (ended - spawn.began) * 1000.0
        rows = _rows([call.started for call in calls], calls, first or 0.0, work_ms)
        return CycleOutcome(
            ok=ok,
            duration_ms=work_ms,
            usage=usage_of(calls),
            cost_usd=price_calls(calls, self.scenario),
            error="" if ok else f"subagent {status or 'failed'}",
            model=calls[-1].model if calls else None,
            details={
                "agent_id": spawn.agent_id,
                "calls": len(calls),
                "api_calls": rows,
                **({"transcript": str(path)} if path is not None else {}),
                **({"wall_ms": round(last - first, 3)} if first is not None and last is not None else {}),
            },
        )

    def transcript_of(self, spawn: _Spawn) -> Path | None:
        """The transcript Claude Code wrote for a subagent: as its SubagentStop hook named it, else where
        Claude Code keeps them (``<session>/subagents/agent-<id>.jsonl`` beside the session's own)."""
        if spawn.agent_id is None:
            return None
        found = self.transcripts.get(spawn.agent_id)
        if found:
            return Path(found)
        if self.main_transcript:
            main = Path(self.main_transcript)
            return main.with_suffix("") / "subagents" / f"agent-{spawn.agent_id}.jsonl"
        return None

    def blocked_ms(self) -> float:
        """Time the agent waited on its Agent calls (their union)."""
        spans = sorted(
            (spawn.began, spawn.ended if spawn.ended is not None else time.monotonic())
            for spawn in self.spawns.values()
        )
        total = 0.0
        reach = None
        for begin, end in spans:
            if reach is None or begin > reach:
                total += end - begin
                reach = end
            elif end > reach:
                total += end - reach
                reach = end
        return total * 1000.0


def _rows(
    starts_ms: list[float], calls: list[ApiCall], begin_ms: float, work_ms: float, blocked_ms: float = 0.0
) -> list[list[float]]:
    """``api_calls`` rows, as the importer writes them: a call lasts from the previous call's first sign
    (the turn's start for the first) to its own, the rest of ``work_ms`` going to the last call; the
    time blocked on subagents comes out of the call it fell in (the longest); then its tokens."""
    if not calls:
        return []
    marks = [begin_ms, *starts_ms]
    spans = [max(b - a, 0.0) for a, b in itertools.pairwise(marks)]
    if blocked_ms > 0 and spans:
        longest = max(range(len(spans)), key=spans.__getitem__)
        spans[longest] = max(spans[longest] - blocked_ms, 0.0)
    spans[-1] += max(work_ms - sum(spans), 0.0)
    return [[round(ms, 3), *call.tokens()] for ms, call in zip(spans, calls, strict=True)]


class ClaudeSdkBackend:
    """Drives Claude Code through the official SDK, one turn per cycle."""

    name = "claude-code"

    def __init__(self, scenario: Scenario, options: BackendOptions) -> None:
        self._scenario = scenario
        self._options = options
        self._cli: str | None = None
        self._secrets = secret_values()
        self.rehearsal: Rehearsal | None = Rehearsal(scenario, options) if options.emulator else None

    def spawns_subagents(self) -> bool:
        return True

    async def start(self) -> None:
        self._cli = sdk_cli(self._options)
        if self.rehearsal is not None:
            await self.rehearsal.start()

    async def close(self) -> None:
        if self.rehearsal is not None:
            await self.rehearsal.close()

    def context_tokens(self, role_name: str) -> int:
        return 0

    def options(self, request: CycleRequest, turn: _Turn) -> Any:
        """The SDK's options for one cycle."""
        from claude_agent_sdk import ClaudeAgentOptions, HookMatcher

        extra = cycleplan_environment(request)
        if self.rehearsal is not None:
            extra.update(self.rehearsal.environment(request))
        env = hidden_environment(extra, passed=self._options.pass_env)
        session = (request.previous or {}).get("session_id")
        hooks: dict[Any, list[HookMatcher]] = {
            name: [HookMatcher(hooks=[turn.hook])]
            for name in ("PreToolUse", "PostToolUse", "PostToolUseFailure", "SubagentStop")
        }
        return ClaudeAgentOptions(
            model=request.task.model_of(request.role, request.cycle),
            cwd=str(request.workdir),
            system_prompt={
                "type": "preset",
                "preset": "claude_code",
                "append": system_prompt(self._scenario, request),
            },
            resume=session if isinstance(session, str) and session else None,
            allowed_tools=[*READ_ONLY_TOOLS, *AGENT_TOOLS],
            include_partial_messages=True,
            hooks=hooks,
            env=env,
            extra_args=cli_flags(self._options.claude_args),
            cli_path=self._cli,
            stderr=turn.stderr.append,
        )

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        from claude_agent_sdk import (
            ClaudeSDKError,
            CLINotFoundError,
            ResultMessage,
            StreamEvent,
            TaskStartedMessage,
            query,
        )

        turn = _Turn(request, request.events, self._scenario)
        stem = f"cycle-{request.cycle:03d}.attempt-{request.attempt}"
        error = ""
        retryable = True
        messages = query(prompt=cycle_prompt(request), options=self.options(request, turn))
        try:
            async for message in messages:
                if isinstance(message, StreamEvent):
                    if message.parent_tool_use_id is None:
                        turn.stream_event(message.event)
                elif isinstance(message, TaskStartedMessage):
                    turn.task_started(message.task_id, message.tool_use_id)
                elif isinstance(message, ResultMessage):
                    turn.result = message
        except CLINotFoundError as exc:
            error, retryable = f"Claude Code CLI not found: {exc}", False
        except ClaudeSDKError as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            # Closing the generator stops Claude Code (a cancelled cycle included).
            closing = getattr(messages, "aclose", None)
            if closing is not None:
                await closing()
        outcome = self._outcome(request, turn, error, retryable, stem)
        self._keep(request, turn, outcome, stem)
        return outcome

    def _outcome(
        self, request: CycleRequest, turn: _Turn, error: str, retryable: bool, stem: str
    ) -> CycleOutcome:
        measured_ms = (time.monotonic() - turn.began) * 1000.0
        blocked_ms = turn.blocked_ms()
        result = turn.result
        details: dict[str, Any] = {"artifacts": [f"{stem}.json", f"{stem}.stderr"]}
        if result is None:
            last = turn.stderr[-1].strip() if turn.stderr else ""
            return CycleOutcome(
                ok=False,
                duration_ms=max(measured_ms - blocked_ms, 0.0),
                usage=usage_of(turn.calls),
                error=(error or "Claude Code ended without a result") + (f": {last}" if last else ""),
                retryable=retryable,
                details=details,
            )
        duration = float(result.duration_ms) if result.duration_ms else measured_ms
        work_ms = max(duration - blocked_ms, 0.0)
        usage = _result_usage(result.usage) or usage_of(turn.calls)
        details.update(
            session_id=result.session_id,
            subtype=result.subtype,
            num_turns=result.num_turns,
            duration_api_ms=result.duration_api_ms,
            calls=len(turn.calls),
            api_calls=_rows(
                [call.started * 1000.0 for call in turn.calls],
                turn.calls,
                turn.began * 1000.0,
                work_ms,
                blocked_ms,
            ),
            tools=turn.tools,
        )
        if result.total_cost_usd is not None:
            details["reported_cost_usd"] = result.total_cost_usd
        if turn.spawns:
            details["blocked_ms"] = round(blocked_ms, 3)
            details["spawned_within"] = True
        if turn.unplanned:
            details["unplanned_subagents"] = len(turn.unplanned)
        cost = price_calls(turn.calls, self._scenario)
        for spawn in turn.unplanned:
            # A subagent the plan did not list is the cycle's own work.
            path = turn.transcript_of(spawn)
            calls = transcript_calls(path)[0] if path is not None else []
            usage = usage.plus(usage_of(calls))
            extra = price_calls(calls, self._scenario)
            cost = None if cost is None or extra is None else cost + extra
        ok = not result.is_error and result.subtype == "success"
        failure = ""
        if not ok:
            text = result.result or "; ".join(result.errors or []) or ""
            failure = f"claude result {result.subtype}" + (f": {text}" if text else "")
        return CycleOutcome(
            ok=ok,
            duration_ms=work_ms,
            usage=usage,
            cost_usd=cost,
            error=failure,
            stop_reason=result.stop_reason,
            model=turn.calls[-1].model if turn.calls else None,
            details=details,
        )

    def _keep(self, request: CycleRequest, turn: _Turn, outcome: CycleOutcome, stem: str) -> None:
        """The attempt's artifacts: the result and each call (JSON), and Claude Code's standard error."""
        result = turn.result
        record = {
            "result": None if result is None else {k: v for k, v in vars(result).items() if k != "usage"},
            "usage": None if result is None else result.usage,
            "calls": [
                {"message_id": call.message_id, "model": call.model, "usage": call.usage}
                for call in turn.calls
            ],
            "subagents": {
                spawn.tool_use_id: {"task": spawn.task, "agent_id": spawn.agent_id}
                for spawn in turn.spawns.values()
            },
            "error": outcome.error,
        }
        text = json.dumps(record, indent=1, default=str)
        (request.artifacts / f"{stem}.json").write_text(redact(text, self._secrets), encoding="utf-8")
        (request.artifacts / f"{stem}.stderr").write_text(
            redact("\n".join(turn.stderr), self._secrets), encoding="utf-8"
        )


def _result_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None

    def number(name: str) -> int:
        value = usage.get(name)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    return Usage(
        input_tokens=number("input_tokens"),
        output_tokens=number("output_tokens"),
        cache_read_tokens=number("cache_read_input_tokens"),
        cache_write_tokens=number("cache_creation_input_tokens"),
    )
