"""The ``anthropic`` and ``emulated`` backends: one cycle is one Messages API call in the task's conversation.

Each task is a conversation with its role's model. The system prompt is the shared specification
(feature, ontology, acceptance criteria) followed by the role's own prompt, both marked with
``cache_control`` so that every agent reads the specification from the prompt cache, and the newest user
turn is marked too so that each cycle reads the conversation so far from the cache. Usage (input, output,
cache read, cache write), latency and stop reason are recorded per cycle. A cycle whose answer stops with
``refusal`` failed. 429 and 529 answers are retried after their ``retry-after`` (their waits recorded as
``rate_limit_wait_ms``), 5xx and connection errors a few times with backoff; other errors fail the
attempt at once. Every attempt is kept as an artifact (``cycle-003.attempt-1.json``: prompt, answer,
usage), and the conversation of a resumed task is rebuilt from those files.

The key comes from ``ANTHROPIC_API_KEY`` only and goes to the SDK only. ``emulated`` is the same
backend pointed at :class:`cycleplan.executor.emulator.Emulator` on loopback, with requests tagged by
task, cycle and attempt and the role's sync cost acted out. The SDK is imported when a backend starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cycleplan.executor.backend import (
    BackendOptions,
    BackendUnavailableError,
    CycleOutcome,
    CycleRequest,
    Usage,
)
from cycleplan.executor.secrets import api_key, redact
from cycleplan.model import Scenario

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from cycleplan.executor.emulator import Emulator

MAX_RATE_LIMIT_RETRIES = 1_000
"""429/529 answers one attempt may wait through before it gives up."""
MAX_TRANSIENT_RETRIES = 3
"""5xx answers and connection errors one attempt retries before it fails."""
TRANSIENT_BACKOFF_S = 1.0
"""First wait after a 5xx or connection error (real seconds, doubling)."""
DEFAULT_RETRY_AFTER_S = 5.0
"""Wait after a 429/529 that names none."""
REQUEST_TIMEOUT_S = 600.0

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
                    "cache_control": {"type": "ephemeral"},
                }
            )
        blocks.append(
            {
                "type": "text",
                "text": self._system_prompt(request.role_name, request.role.system_prompt),
                "cache_control": {"type": "ephemeral"},
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

    def _headers(self, request: CycleRequest) -> dict[str, str]:
        if not self._tag_requests:
            return {}
        return {
            "x-cycleplan-task": request.task.id,
            "x-cycleplan-cycle": str(request.cycle),
            "x-cycleplan-attempt": str(request.attempt),
        }

    async def _sync_cost(self, request: CycleRequest) -> float:
        """Time spent taking awaited events in (acted out by the emulated backend only), in ms."""
        return 0.0

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        from anthropic import APIConnectionError, APIStatusError

        client = self._client
        if client is None:
            raise RuntimeError("the backend is not started")
        started = time.monotonic()
        sync_ms = await self._sync_cost(request)
        prompt = cycle_prompt(request)
        messages = [
            *self._conversation(request),
            {
                "role": "user",
                "content": [{"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}],
            },
        ]
        model = request.role.model
        rate_limit_wait_s = 0.0
        rate_limited = 0
        transient = 0
        latency_ms = 0.0
        while True:
            sent = time.monotonic()
            try:
                raw = await client.messages.with_raw_response.create(
                    model=model,
                    max_tokens=self._options.max_output_tokens,
                    system=self._system(request),  # type: ignore[arg-type]
                    messages=messages,  # type: ignore[arg-type]
                    extra_headers=self._headers(request),
                )
                message = await raw.parse()
                latency_ms = (time.monotonic() - sent) * 1000.0
                request_id = raw.headers.get("request-id")
                break
            except APIStatusError as exc:
                status = exc.status_code
                if status in (429, 529):
                    rate_limited += 1
                    if rate_limited > MAX_RATE_LIMIT_RETRIES:
                        return self._failure(
                            request,
                            started,
                            f"HTTP {status}: gave up after {rate_limited - 1} retries",
                            prompt,
                            sync_ms,
                            rate_limit_wait_s,
                        )
                    wait = retry_after_s(exc.response.headers)
                    wait = DEFAULT_RETRY_AFTER_S if wait is None else wait
                    # A little jitter keeps agents told the same retry-after from all coming back at once.
                    wait *= 1.0 + 0.2 * self._random.random()
                    await asyncio.sleep(wait)
                    rate_limit_wait_s += wait
                    continue
                if status >= 500 or status in (408, 409):
                    transient += 1
                    if transient > MAX_TRANSIENT_RETRIES:
                        return self._failure(
                            request,
                            started,
                            f"HTTP {status}: {_message(exc)}",
                            prompt,
                            sync_ms,
                            rate_limit_wait_s,
                        )
                    await asyncio.sleep(TRANSIENT_BACKOFF_S * 2 ** (transient - 1) / self._options.time_scale)
                    continue
                return self._failure(
                    request,
                    started,
                    f"HTTP {status}: {_message(exc)}",
                    prompt,
                    sync_ms,
                    rate_limit_wait_s,
                    retryable=False,
                )
            except APIConnectionError as exc:
                transient += 1
                if transient > MAX_TRANSIENT_RETRIES:
                    return self._failure(
                        request, started, f"connection failed: {exc}", prompt, sync_ms, rate_limit_wait_s
                    )
                await asyncio.sleep(TRANSIENT_BACKOFF_S * 2 ** (transient - 1) / self._options.time_scale)

        text = "".join(getattr(block, "text", "") for block in message.content)
        usage = message.usage
        counted = Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
        )
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
                "request_id": request_id,
            },
            self._secrets,
        )
        turns = self._turns.get(request.task.id)
        if ok and turns is not None and len(turns) == request.cycle - 1:
            turns.append((prompt, text))
        return CycleOutcome(
            ok=ok,
            duration_ms=(time.monotonic() - started) * 1000.0,
            usage=counted,
            error="" if ok else f"the model stopped with {stop_reason}",
            stop_reason=stop_reason,
            model=message.model,
            details={
                "latency_ms": round(latency_ms, 3),
                "rate_limited": rate_limited,
                "rate_limit_wait_ms": rate_limit_wait_s * 1000.0,
                "sync_ms": sync_ms,
                "transient_errors": transient,
                "artifact": f"{stem}.json",
            },
        )

    def _failure(
        self,
        request: CycleRequest,
        started: float,
        error: str,
        prompt: str,
        sync_ms: float,
        rate_limit_wait_s: float,
        *,
        retryable: bool = True,
    ) -> CycleOutcome:
        stem = f"cycle-{request.cycle:03d}.attempt-{request.attempt}"
        _write_json(
            request.artifacts / f"{stem}.json",
            {
                "ok": False,
                "cycle": request.cycle,
                "attempt": request.attempt,
                "prompt": prompt,
                "error": error,
            },
            self._secrets,
        )
        return CycleOutcome(
            ok=False,
            duration_ms=(time.monotonic() - started) * 1000.0,
            error=error,
            retryable=retryable,
            details={
                "rate_limit_wait_ms": rate_limit_wait_s * 1000.0,
                "sync_ms": sync_ms,
                "artifact": f"{stem}.json",
            },
        )


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
        from cycleplan.executor.emulator import Emulator

        self.emulator = Emulator(
            self._scenario,
            seed=self._options.seed,
            time_scale=self._options.time_scale,
            faults=self._options.emulator_faults,
        )
        self._base_url = await self.emulator.start()
        await super().start()

    async def close(self) -> None:
        await super().close()
        if self.emulator is not None:
            await self.emulator.close()

    def context_tokens(self, role_name: str) -> int:
        return self._scenario.role(role_name).tokens.context_tokens

    async def _sync_cost(self, request: CycleRequest) -> float:
        minutes = request.role.sync.minutes * request.handoffs
        if minutes <= 0:
            return 0.0
        started = time.monotonic()
        await asyncio.sleep(minutes * 60.0 / self._options.time_scale)
        return (time.monotonic() - started) * 1000.0
