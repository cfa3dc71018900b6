"""The ``anthropic`` and ``emulated`` backends: one cycle is one agent turn in the task's conversation.

Each task is a conversation with its role's model (a cycle listed in the task's ``cycle_models`` runs on
that model). The system prompt is the shared specification (feature, ontology, acceptance criteria)
followed by the role's own prompt, both marked with ``cache_control`` (with the role's ``cache_ttl``) so
that every agent reads the specification from the prompt cache, and the newest user turn is marked too
so that each call reads the conversation so far from the cache. For a role without an agent loop a cycle
is one Messages API call. For a role with one (``calls``) a cycle is a tool loop: the model is offered a
small ``notes`` tool (it adds to or reads the task's ``notes.md`` artifact); while an answer stops with
``tool_use`` the backend runs the tool, sends its ``tool_result`` and calls again, and the answer that
stops otherwise ends the cycle. A real model decides when it is done, so the loop is capped at three
times the role's ``calls.per_cycle.p90`` calls (a cycle that reaches the cap ends there, recorded with
``call_cap_reached``); the emulated agent ends its loop itself after the drawn calls. The calls' usage is
added up into the cycle's, and the cycle records its ``calls`` and ``compaction_calls`` (compactions the
emulator reports; a real loop never compacts here). Only the cycle's prompt and final text stay in the
conversation later cycles send, not its tool exchanges.

Usage (input, output, cache read, cache write), latency and stop reason are recorded per cycle. A cycle
whose answer stops with ``refusal`` failed. 429 and 529 answers are retried after their ``retry-after``
with the clients' jitter (:func:`cycleplan.core.rules.retry_wait`, as the simulator retries; their waits
recorded as ``rate_limit_wait_ms``; a floor that doubles while the server names shorter
waits, and at most :data:`MAX_RATE_LIMIT_RETRIES` in a row), 5xx and connection errors a few times with
backoff; other errors fail the attempt at once, and those no retry can mend (a refused key, a bad
request, a host name that does not resolve) fail the task. Every attempt is kept as an artifact
(``cycle-003.attempt-1.json``: prompt, answer, usage, and for a loop each call's usage), and the
conversation of a resumed task is rebuilt from those files. Before a run is recorded, :func:`preflight`
checks the key, and that the API's host name resolves and its port accepts connections: a mistyped
``ANTHROPIC_BASE_URL`` is an error at once rather than a run of retries.

The key comes from ``ANTHROPIC_API_KEY`` only and goes to the SDK only. ``emulated`` is the same
backend pointed at :class:`cycleplan.executor.emulator.Emulator` on loopback, with requests tagged by
task, cycle, attempt and call, and the role's sync cost acted out (:meth:`EmulatedBackend.take_handoff`).
The SDK is imported when a backend starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cycleplan.core.model import Role, Scenario
from cycleplan.core.rules import retry_wait
from cycleplan.executor.backend import (
    BackendOptions,
    BackendUnavailableError,
    CycleOutcome,
    CycleRequest,
    Usage,
)
from cycleplan.executor.secrets import api_key, redact

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from cycleplan.executor.emulator import Emulator

MAX_RATE_LIMIT_RETRIES = 100
"""429/529 answers in a row one call may wait through before its attempt gives up (a server that keeps
refusing is given up on, not hammered)."""
RATE_LIMIT_FLOOR_S = 0.5
"""The least wait after a 429/529 (modelled seconds: divided by the time scale). A server whose
``retry-after`` is shorter than the floor (or missing) is not trusted to pace the call: the floor doubles
with each such answer in a row, up to :data:`RATE_LIMIT_FLOOR_MAX_S`. One that names a longer wait is
obeyed as it says, as the simulator's token bucket waits exactly until capacity returns."""
RATE_LIMIT_FLOOR_MAX_S = 60.0
MAX_TRANSIENT_RETRIES = 3
"""5xx answers and connection errors one attempt retries before it fails."""
TRANSIENT_BACKOFF_S = 1.0
"""First wait after a 5xx or connection error (real seconds, doubling)."""
DEFAULT_RETRY_AFTER_S = 5.0
"""Wait after a 429/529 that names none."""
REQUEST_TIMEOUT_S = 600.0
DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Where the SDK sends requests when neither the backend nor ``ANTHROPIC_BASE_URL`` says otherwise."""

CALL_CAP_FACTOR = 3
"""A real agent loop stops after this many times its role's ``calls.per_cycle.p90`` calls."""

NOTES_TOOL: dict[str, Any] = {
    "name": "notes",
    "description": (
        "Your notes for this task, kept between turns. Pass `text` to add a note; call it without "
        "`text` to read every note so far."
    ),
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The note to add."}},
    },
}
"""The tool an agent loop is offered: harmless, and enough for a model to work in steps."""

_SUCCESS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn"})


def cycle_prompt(request: CycleRequest) -> str:
    """The user turn that starts cycle ``request.cycle`` of the task."""
    task = request.task
    lines: list[str] = []
    if request.cycle == 1:
        what = task.prompt or task.description or f"Carry out the task '{task.id}'."
        lines.append(f"Task '{task.id}' for the {request.role_name} role: {what}")
        lines.append(
            f"The task takes {task.cycles} cycle{'s' if task.cycles > 1 else ''}; "
            "this is cycle 1. Do the first part and say what you did."
        )
    else:
        lines.append(f"Cycle {request.cycle} of {task.cycles} of task '{task.id}': continue.")
    arrived = [event for event, before in task.waits.items() if before == request.cycle]
    if arrived:
        lines.append(f"Now available from the other agents: {', '.join(arrived)}.")
    return "\n".join(lines)


def preflight(scenario: Scenario, options: BackendOptions) -> None:
    """Refuse to start, before anything is recorded, without a key, or when the API's host name does
    not resolve or its port refuses connections (:mod:`.reach`): a run would spend every task's retries
    finding that out."""
    from cycleplan.executor.reach import unreachable

    api_key(options.api_key_env)
    given = options.base_url or os.environ.get("ANTHROPIC_BASE_URL")
    url = given or DEFAULT_BASE_URL
    why = unreachable(url)
    if why is not None:
        named = f"ANTHROPIC_BASE_URL ({url})" if given else f"the Messages API ({url})"
        remedy = "correct or unset ANTHROPIC_BASE_URL" if given else "check your network and DNS"
        raise BackendUnavailableError(
            f"--agent anthropic cannot reach {named}: {why}; {remedy}, then run again "
            "(or rehearse offline with --agent emulated)"
        )


def retry_after_s(headers: Any) -> float | None:
    """Seconds a 429/529 answer asks to wait (``retry-after-ms``, else ``retry-after``), if any."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def _write_json(path: Path, data: dict[str, Any], secrets: list[str]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(redact(json.dumps(data, indent=1), secrets), encoding="utf-8")
    temporary.replace(path)


class AnthropicBackend:
    """Runs cycles as Messages API calls with the official SDK's async client."""

    name = "anthropic"

    def __init__(self, scenario: Scenario, options: BackendOptions) -> None:
        self._scenario = scenario
        self._options = options
        self._client: AsyncAnthropic | None = None
        self._base_url = options.base_url
        self._tag_requests = False
        self._secrets: list[str] = []
        self._random = random.Random(options.seed)
        self._turns: dict[str, list[tuple[str, str]]] = {}
        """Each task's conversation so far: (prompt, answer) of its completed cycles."""

    def _key(self) -> str:
        return api_key(self._options.api_key_env)

    async def start(self) -> None:
        try:
            from anthropic import AsyncAnthropic
        except ImportError:  # pragma: no cover - a dependency of cycleplan
            raise BackendUnavailableError(
                "the anthropic package is not installed: pip install anthropic"
            ) from None
        key = self._key()
        self._secrets = [key]
        # max_retries=0: the executor retries itself, so that every wait is seen and recorded.
        self._client = AsyncAnthropic(
            api_key=key, base_url=self._base_url, max_retries=0, timeout=REQUEST_TIMEOUT_S
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def context_tokens(self, role_name: str) -> int:
        """An estimate (4 characters a token) of the specification and the role's prompt."""
        role = self._scenario.role(role_name)
        return (len(self._scenario.spec) + len(self._system_prompt(role_name, role.system_prompt))) // 4

    @staticmethod
    def _system_prompt(role_name: str, text: str) -> str:
        return text or f"You are the {role_name} agent of a team building one feature in parallel."

    def _system(self, request: CycleRequest) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self._scenario.spec:
            blocks.append(
                {
                    "type": "text",
                    "text": f"Shared specification:\n{self._scenario.spec}",
                    "cache_control": _cache_control(request.role),
                }
            )
        blocks.append(
            {
                "type": "text",
                "text": self._system_prompt(request.role_name, request.role.system_prompt),
                "cache_control": _cache_control(request.role),
            }
        )
        return blocks

    def _conversation(self, request: CycleRequest) -> list[dict[str, Any]]:
        """The task's earlier cycles as user/assistant turns (kept in memory, else read from artifacts)."""
        turns = self._turns.get(request.task.id)
        if turns is None or len(turns) != request.cycle - 1:
            turns = self._turns[request.task.id] = self._read_turns(request)
        messages: list[dict[str, Any]] = []
        for prompt, response in turns:
            messages.append({"role": "user", "content": prompt})
            messages.append({"role": "assistant", "content": response or "(done)"})
        return messages

    @staticmethod
    def _read_turns(request: CycleRequest) -> list[tuple[str, str]]:
        turns: list[tuple[str, str]] = []
        for cycle in range(1, request.cycle):
            found = sorted(
                request.artifacts.glob(f"cycle-{cycle:03d}.attempt-*.json"),
                key=lambda path: int(path.stem.rsplit("-", 1)[-1]) if path.stem[-1].isdigit() else 0,
            )
            for path in reversed(found):
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if data.get("ok"):
                    turns.append((str(data.get("prompt", "")), str(data.get("response", ""))))
                    break
        return turns

    def _headers(self, request: CycleRequest, call: int = 0) -> dict[str, str]:
        if not self._tag_requests:
            return {}
        headers = {
            "x-cycleplan-task": request.task.id,
            "x-cycleplan-cycle": str(request.cycle),
            "x-cycleplan-attempt": str(request.attempt),
        }
        if call:
            headers["x-cycleplan-call"] = str(call)
        return headers

    def _call_cap(self, role: Role) -> int | None:
        """Calls after which an agent loop's cycle ends even if the model wants more (None: no cap)."""
        assert role.calls is not None
        return max(role.calls.per_cycle.p90 * CALL_CAP_FACTOR, 1)

    async def _send(
        self,
        request: CycleRequest,
        model: str,
        messages: list[dict[str, Any]],
        tally: _Tally,
        *,
        tools: list[dict[str, Any]] | None = None,
        call: int = 0,
    ) -> _Reply | _Refused:
        """One Messages API call, waiting out 429s and 529s and retrying transient errors."""
        from anthropic import APIConnectionError, APIStatusError

        client = self._client
        if client is None:
            raise RuntimeError("the backend is not started")
        extra: dict[str, Any] = {} if tools is None else {"tools": tools}
        refusals = 0  # 429/529s of this call in a row
        unpaced = 0  # of those, answers whose retry-after fell short of the floor: it doubles with each
        while True:
            sent = time.monotonic()
            try:
                raw = await client.messages.with_raw_response.create(
                    model=model,
                    max_tokens=self._options.max_output_tokens,
                    system=self._system(request),  # type: ignore[arg-type]
                    messages=messages,  # type: ignore[arg-type]
                    extra_headers=self._headers(request, call),
                    **extra,
                )
                message = await raw.parse()
                latency_ms = (time.monotonic() - sent) * 1000.0
                return _Reply(message, raw.headers, raw.headers.get("request-id"), latency_ms)
            except APIStatusError as exc:
                status = exc.status_code
                if status in (429, 529):
                    tally.rate_limited += 1
                    refusals += 1
                    if refusals > MAX_RATE_LIMIT_RETRIES:
                        return _Refused(
                            f"HTTP {status}: gave up after {refusals - 1} retries in a row "
                            f"({tally.rate_limit_wait_s:.0f} s of waiting)"
                        )
                    asked = retry_after_s(exc.response.headers)
                    floor = min(RATE_LIMIT_FLOOR_S * 2**unpaced, RATE_LIMIT_FLOOR_MAX_S)
                    floor /= self._options.time_scale
                    if asked is None or asked < floor:
                        unpaced += 1
                    wait = max(DEFAULT_RETRY_AFTER_S if asked is None else asked, floor)
                    # A little jitter keeps agents told the same retry-after from all coming back at once.
                    wait = retry_wait(wait, self._random.random())
                    await asyncio.sleep(wait)
                    tally.rate_limit_wait_s += wait
                    continue
                if status >= 500 or status in (408, 409):
                    tally.transient += 1
                    if tally.transient > MAX_TRANSIENT_RETRIES:
                        return _Refused(f"HTTP {status}: {_message(exc)}")
                    await asyncio.sleep(
                        TRANSIENT_BACKOFF_S * 2 ** (tally.transient - 1) / self._options.time_scale
                    )
                    continue
                return _Refused(f"HTTP {status}: {_message(exc)}", retryable=False)
            except APIConnectionError as exc:
                unknown = _unknown_host(exc)
                if unknown is not None:
                    # The name has no address: no retry can give it one.
                    return _Refused(f"connection failed: {unknown}", retryable=False)
                tally.transient += 1
                if tally.transient > MAX_TRANSIENT_RETRIES:
                    return _Refused(f"connection failed: {exc}")
                await asyncio.sleep(
                    TRANSIENT_BACKOFF_S * 2 ** (tally.transient - 1) / self._options.time_scale
                )

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        started = time.monotonic()
        prompt = cycle_prompt(request)
        messages = [
            *self._conversation(request),
            {
                "role": "user",
                "content": [{"type": "text", "text": prompt, "cache_control": _cache_control(request.role)}],
            },
        ]
        model = request.task.model_of(request.role, request.cycle)
        if request.role.calls is not None:
            return await self._run_loop(request, started, prompt, model, messages)
        tally = _Tally()
        reply = await self._send(request, model, messages, tally)
        if isinstance(reply, _Refused):
            return self._failure(request, started, reply, prompt, tally)
        message = reply.message
        text = _text(message)
        counted = _usage(message)
        stop_reason = message.stop_reason
        ok = stop_reason in _SUCCESS
        stem = f"cycle-{request.cycle:03d}.attempt-{request.attempt}"
        _write_json(
            request.artifacts / f"{stem}.json",
            {
                "ok": ok,
                "cycle": request.cycle,
                "attempt": request.attempt,
                "model": message.model,
                "prompt": prompt,
                "turns": len(messages),
                "response": text,
                "stop_reason": stop_reason,
                "usage": counted.as_metadata(),
                "request_id": reply.request_id,
            },
            self._secrets,
        )
        self._remember(request, ok, prompt, text)
        return CycleOutcome(
            ok=ok,
            duration_ms=(time.monotonic() - started) * 1000.0,
            usage=counted,
            error="" if ok else f"the model stopped with {stop_reason}",
            stop_reason=stop_reason,
            model=message.model,
            details={
                "latency_ms": round(reply.latency_ms, 3),
                "rate_limited": tally.rate_limited,
                "rate_limit_wait_ms": tally.rate_limit_wait_s * 1000.0,
                "transient_errors": tally.transient,
                "artifact": f"{stem}.json",
            },
        )

    async def _run_loop(
        self,
        request: CycleRequest,
        started: float,
        prompt: str,
        model: str,
        messages: list[dict[str, Any]],
    ) -> CycleOutcome:
        """One cycle of an agent loop: call, run the tools the answer asks for, call again, until an
        answer stops for another reason than ``tool_use`` (or the call cap is reached)."""
        tally = _Tally()
        cap = self._call_cap(request.role)
        usage = Usage()
        latency_ms = 0.0
        compactions = 0
        calls: list[dict[str, Any]] = []
        conversation = list(messages)
        turns = len(messages)
        while True:
            reply = await self._send(
                request, model, conversation, tally, tools=[NOTES_TOOL], call=len(calls) + 1
            )
            if isinstance(reply, _Refused):
                return self._failure(request, started, reply, prompt, tally, usage=usage, calls=calls)
            message = reply.message
            counted = _usage(message)
            usage = usage.plus(counted)
            latency_ms += reply.latency_ms
            compactions += _header_int(reply.headers, "x-cycleplan-compactions")
            calls.append({"stop_reason": message.stop_reason, "usage": counted.as_metadata()})
            if message.stop_reason != "tool_use" or (cap is not None and len(calls) >= cap):
                break
            results = [
                await self._use_tool(request, block) for block in message.content if block.type == "tool_use"
            ]
            if results:
                results[-1]["cache_control"] = _cache_control(request.role)
            # One cache breakpoint on the newest turn: drop the previous tool results' own.
            for earlier in conversation[turns:]:
                if earlier["role"] == "user":
                    for block in earlier["content"]:
                        block.pop("cache_control", None)
            conversation.append({"role": "assistant", "content": _blocks(message)})
            conversation.append({"role": "user", "content": results or [{"type": "text", "text": "Go on."}]})
        text = _text(message)
        stop_reason = message.stop_reason
        ok = stop_reason in _SUCCESS
        capped = stop_reason == "tool_use"
        stem = f"cycle-{request.cycle:03d}.attempt-{request.attempt}"
        _write_json(
            request.artifacts / f"{stem}.json",
            {
                "ok": ok,
                "cycle": request.cycle,
                "attempt": request.attempt,
                "model": message.model,
                "prompt": prompt,
                "turns": turns,
                "response": text,
                "stop_reason": stop_reason,
                "usage": usage.as_metadata(),
                "calls": calls,
                "compaction_calls": compactions,
                "request_id": reply.request_id,
            },
            self._secrets,
        )
        self._remember(request, ok, prompt, text)
        details: dict[str, Any] = {
            "latency_ms": round(latency_ms, 3),
            "rate_limited": tally.rate_limited,
            "rate_limit_wait_ms": tally.rate_limit_wait_s * 1000.0,
            "transient_errors": tally.transient,
            "calls": len(calls),
            "compaction_calls": compactions,
            "artifact": f"{stem}.json",
        }
        if capped:
            details["call_cap_reached"] = True
        return CycleOutcome(
            ok=ok,
            duration_ms=(time.monotonic() - started) * 1000.0,
            usage=usage,
            error="" if ok else f"the model stopped with {stop_reason}",
            stop_reason=stop_reason,
            model=message.model,
            details=details,
        )

    async def _use_tool(self, request: CycleRequest, block: Any) -> dict[str, Any]:
        """Run the tool a ``tool_use`` block asks for; its ``tool_result`` block."""
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.id}
        if block.name != NOTES_TOOL["name"]:
            return {**result, "content": f"no tool is called '{block.name}'", "is_error": True}
        notes = request.artifacts / "notes.md"
        given = block.input.get("text") if isinstance(block.input, dict) else None
        if isinstance(given, str) and given.strip():
            with notes.open("a", encoding="utf-8") as handle:
                handle.write(redact(given.strip(), self._secrets) + "\n")
            return {**result, "content": "noted"}
        try:
            kept = notes.read_text(encoding="utf-8")
        except OSError:
            kept = ""
        return {**result, "content": kept or "(no notes yet)"}

    def _remember(self, request: CycleRequest, ok: bool, prompt: str, text: str) -> None:
        turns = self._turns.get(request.task.id)
        if ok and turns is not None and len(turns) == request.cycle - 1:
            turns.append((prompt, text))

    def _failure(
        self,
        request: CycleRequest,
        started: float,
        refused: _Refused,
        prompt: str,
        tally: _Tally,
        *,
        usage: Usage | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> CycleOutcome:
        stem = f"cycle-{request.cycle:03d}.attempt-{request.attempt}"
        artifact: dict[str, Any] = {
            "ok": False,
            "cycle": request.cycle,
            "attempt": request.attempt,
            "prompt": prompt,
            "error": refused.error,
        }
        details: dict[str, Any] = {
            "rate_limited": tally.rate_limited,
            "rate_limit_wait_ms": tally.rate_limit_wait_s * 1000.0,
            "transient_errors": tally.transient,
            "artifact": f"{stem}.json",
        }
        if calls is not None:
            # The calls answered before the one that failed are paid all the same.
            artifact["calls"] = calls
            details["calls"] = len(calls)
        _write_json(request.artifacts / f"{stem}.json", artifact, self._secrets)
        return CycleOutcome(
            ok=False,
            duration_ms=(time.monotonic() - started) * 1000.0,
            usage=usage or Usage(),
            error=refused.error,
            retryable=refused.retryable,
            details=details,
        )


@dataclass
class _Tally:
    """What one attempt waited through and retried, over all its calls."""

    rate_limited: int = 0
    rate_limit_wait_s: float = 0.0
    transient: int = 0


@dataclass(frozen=True)
class _Reply:
    message: Any
    headers: Any
    request_id: str | None
    latency_ms: float


@dataclass(frozen=True)
class _Refused:
    error: str
    retryable: bool = True


def _unknown_host(error: BaseException) -> str | None:
    """What the resolver said, when ``error`` comes of a host name that has no address (not of a
    resolver that failed to answer, which a retry may get past)."""
    import socket

    final = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)}
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror) and seen.errno in final:
            return f"{error} (the host name does not resolve)"
        seen = seen.__cause__ or seen.__context__
    return None


def _cache_control(role: Role) -> dict[str, str]:
    """A cache breakpoint with the role's cache lifetime (the API's default 5 minutes unless 1 hour)."""
    if role.tokens.cache_ttl == "1h":
        return {"type": "ephemeral", "ttl": "1h"}
    return {"type": "ephemeral"}


def _usage(message: Any) -> Usage:
    usage = message.usage
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )


def _text(message: Any) -> str:
    return "".join(getattr(block, "text", "") for block in message.content)


def _blocks(message: Any) -> list[dict[str, Any]]:
    """An answer's text and tool calls as content blocks to send back in the conversation."""
    blocks: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text" and block.text:
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    return blocks or [{"type": "text", "text": "(working)"}]


def _header_int(headers: Any, name: str) -> int:
    try:
        return max(int(headers.get(name) or 0), 0)
    except (TypeError, ValueError):
        return 0


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))


class EmulatedBackend(AnthropicBackend):
    """The anthropic backend against a loopback emulator of the Messages API (no network, no cost)."""

    name = "emulated"
    PLACEHOLDER_KEY = "emulated-key"

    def __init__(self, scenario: Scenario, options: BackendOptions) -> None:
        super().__init__(scenario, options)
        self._tag_requests = True
        self.emulator: Emulator | None = None

    def _key(self) -> str:
        # A key in the environment is sent (and must stay secret) as with the real API; none is needed.
        return os.environ.get(self._options.api_key_env, "").strip() or self.PLACEHOLDER_KEY

    async def start(self) -> None:
        from cycleplan.executor.billing import LEDGER_FILE
        from cycleplan.executor.emulator import Emulator

        folder = self._options.run_folder
        self.emulator = Emulator(
            self._scenario,
            seed=self._options.seed,
            time_scale=self._options.time_scale,
            faults=self._options.emulator_faults,
            ledger=None if folder is None else folder / LEDGER_FILE,
        )
        self._base_url = await self.emulator.start()
        await super().start()

    async def close(self) -> None:
        await super().close()
        if self.emulator is not None:
            await self.emulator.close()

    def context_tokens(self, role_name: str) -> int:
        return self._scenario.role(role_name).tokens.context_tokens

    def _call_cap(self, role: Role) -> int | None:
        # The emulator ends each loop after the drawn calls, however many: a cap would cut the draws.
        return None

    async def take_handoff(self, request: CycleRequest) -> float:
        """Act out the role's sync minutes for each event the cycle takes in (scaled); real ms spent."""
        minutes = request.role.sync.minutes * request.handoffs
        if minutes <= 0:
            return 0.0
        started = time.monotonic()
        await asyncio.sleep(minutes * 60.0 / self._options.time_scale)
        return (time.monotonic() - started) * 1000.0
