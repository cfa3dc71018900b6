"""A loopback HTTP server that speaks the Messages API and behaves as the scenario says agents behave.

``POST /v1/messages`` answers after the cycle's drawn duration (divided by the time scale) with the
drawn tokens as ``usage``, from the same draws the simulator uses (:func:`cycleplan.draws.draw_task`,
keyed by seed, task, cycle and attempt, and :class:`cycleplan.draws.Conversation` for context, history
and caching). A cycle the role's failure model fails is answered with ``stop_reason: "refusal"``: its
time and tokens are spent and its work is unusable. The scenario's ``rate_limits`` are enforced with
token buckets, one take per request: a request they cannot cover gets 429 with ``retry-after`` (real
seconds) and the ``anthropic-ratelimit-*`` headers, which every answer carries. :class:`Faults` adds what
tests need: server errors (500), overload (529), a storm of 429s, agents that hang.

A role with an agent loop (``calls``) plays it call by call: an attempt is the drawn number of calls
``n``; calls 1 to ``n - 1`` are answered with ``stop_reason: "tool_use"`` and a ``tool_use`` block of the
first tool the request offers, and call ``n`` ends the turn (``end_turn``, or ``refusal`` when the attempt
fails). Call ``j``'s usage is the difference between the rounded totals of
:func:`cycleplan.draws.loop_cycle` over ``j`` and over ``j - 1`` calls from the attempt's starting
conversation, so that the answers of an attempt add up to exactly the simulator's tokens for it,
compactions (folded into the call they precede) and handoff tokens (on the first call) included; each
call lasts its share of the attempt's drawn duration, plus the minutes of the compactions it carries.
``x-cycleplan-calls`` and ``x-cycleplan-compactions`` on each answer say how many calls the attempt makes
and how many compactions this answer carries.

Requests say which cycle they are with ``x-cycleplan-task``, ``x-cycleplan-cycle`` and
``x-cycleplan-attempt`` headers, and which call of a loop with ``x-cycleplan-call`` (the emulated backend
sends them); a loop request without ``x-cycleplan-call`` is answered as its whole attempt at once.
Without a task header a request is drawn as the next cycle of an anonymous task of the role whose model
it names. The API key is checked for presence only and never kept. Built on aiohttp; binds 127.0.0.1
only.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from cycleplan.draws import Conversation, LoopState, RequestTokens, TaskDraws, draw_task, loop_cycle
from cycleplan.executor.buckets import Buckets
from cycleplan.model import Role, Scenario, Task

if TYPE_CHECKING:
    from aiohttp import web

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Faults:
    """Faults the emulator injects on top of the scenario's own model."""

    server_error_rate: float = 0.0
    """Share of requests answered 500 (``api_error``) at once."""
    overloaded_rate: float = 0.0
    """Share of requests answered 529 (``overloaded_error``) with a retry-after."""
    rate_limit_storm: int = 0
    """The first this many requests are answered 429 whatever the buckets hold."""
    storm_retry_after_s: float = 0.02
    """The retry-after (real seconds) of storm 429s and 529s."""
    hang_tasks: frozenset[str] = frozenset()
    """Requests for these tasks are never answered."""
    seed: int = 0


@dataclass
class EmulatorStats:
    """What the emulator answered, by HTTP status; and the tokens it billed."""

    responses: dict[int, int] = field(default_factory=dict)
    requests: int = 0
    hung: int = 0

    def count(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1


@dataclass(frozen=True)
class LoopAnswer:
    """Calls ``first`` to ``last`` of one attempt at a cycle of an agent loop, as the emulator answers
    them."""

    duration_min: float
    """Scenario minutes these calls take: their share of the attempt's drawn duration, and their
    compactions'."""
    failed: bool
    """The attempt fails (said by its last call)."""
    ends_turn: bool
    """These calls include the attempt's last."""
    calls: int
    """Calls the attempt makes."""
    tokens: RequestTokens
    compactions: int
    """Compactions folded into these calls."""
    compaction_output: int
    """Output tokens of those compactions' summaries (written by calls of their own, so not bound by this
    request's ``max_tokens``)."""


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class Emulator:
    """The Messages API on loopback, drawing from ``scenario``'s model with ``seed``."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        faults: Faults | None = None,
        replication: int = 0,
        keep_requests: bool = False,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.time_scale = time_scale
        self.faults = faults or Faults()
        self.replication = replication
        self.stats = EmulatorStats()
        self.keep_requests = keep_requests
        self.requests: list[dict[str, Any]] = []
        """With ``keep_requests``: each request's body and ``x-cycleplan-*`` headers (never its key)."""
        self.buckets = Buckets(scenario.rate_limits)
        self._tasks = {task.id: task for task in scenario.all_tasks()}
        self._draws: dict[str, TaskDraws] = {}
        self._loop_starts: dict[str, list[LoopState]] = {}
        self._attempt_began: dict[tuple[str, int, int], float] = {}
        """When the first call of each attempt of an agent loop arrived (monotonic seconds)."""
        self._anonymous: dict[str, int] = {}
        self._random = random.Random(self.faults.seed)
        self._started = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ----------------------------------------------------------------------------------------------
    # lifecycle

    async def start(self) -> str:
        """Listen on a free loopback port; the base URL to give the SDK."""
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._started = time.monotonic()
        self.url = f"http://{HOST}:{sock.getsockname()[1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------------------------------
    # the model

    def now_min(self) -> float:
        """Scenario minutes since the emulator started."""
        return (time.monotonic() - self._started) * self.time_scale / 60.0

    def draws(self, task: Task, role: Role) -> TaskDraws:
        found = self._draws.get(task.id)
        if found is None:
            found = self._draws[task.id] = draw_task(task, role, self.seed, self.replication)
        return found

    def cycle(self, task: Task, role: Role, cycle: int, attempt: int) -> tuple[float, bool, RequestTokens]:
        """Duration (scenario minutes), failure and tokens of ``attempt`` at ``cycle`` (both 1-based).

        The conversation so far is rebuilt from the draws: each earlier cycle by its first attempt that
        did not fail, plus the failed attempts at this cycle before this one.
        """
        draws = self.draws(task, role)
        last = draws.attempts - 1
        tokens = role.tokens
        conversation = Conversation(tokens.context_tokens, tokens.history_growth, tokens.cache)
        handoff = role.sync.handoff_tokens
        for done in range(min(cycle - 1, task.cycles)):
            extra = handoff * self._handoffs(task, done + 1)
            for a in range(draws.attempts):
                conversation.request(draws.fresh_input[a][done], draws.output[a][done], extra)
                if not draws.failed[a][done] or a == last:
                    conversation.commit(draws.fresh_input[a][done], draws.output[a][done], extra)
                    break
        index = min(cycle, task.cycles) - 1
        extra = handoff * self._handoffs(task, cycle)
        for a in range(min(attempt - 1, last)):
            conversation.request(draws.fresh_input[a][index], draws.output[a][index], extra)
        a = min(attempt - 1, last)
        request = conversation.request(draws.fresh_input[a][index], draws.output[a][index], extra)
        return draws.duration_min[a][index], draws.failed[a][index], request

    def _cycle_starts(self, task: Task, role: Role) -> list[LoopState]:
        """Where ``task``'s agent loop stands at the start of each cycle, along the attempts its draws
        keep: a kept attempt carries its conversation on; a failed one is paid and its context dropped,
        the context as it was before it now cached (as the simulator chains them)."""
        found = self._loop_starts.get(task.id)
        if found is not None:
            return found
        loop = role.calls
        draws = self.draws(task, role)
        assert loop is not None and draws.loop is not None
        state = LoopState.start(role.tokens.context_tokens, 1)
        starts: list[LoopState] = []
        for index in range(task.cycles):
            starts.append(state)
            for a in range(draws.attempts):
                if not draws.failed[a][index]:
                    state = self._loop_totals(task, role, state, a, index, draws.loop.calls[a][index])[1]
                    break
                state = LoopState(prefix=state.prefix, cached=state.prefix.copy())
        self._loop_starts[task.id] = starts
        return starts

    def _loop_totals(
        self, task: Task, role: Role, state: LoopState, attempt: int, index: int, calls: int
    ) -> tuple[tuple[int, int, int, int], LoopState]:
        """Rounded read, written and output tokens and compactions of the first ``calls`` calls of
        ``attempt`` (from 0) at cycle ``index`` (from 0) from ``state``, and the state after them."""
        loop = role.calls
        loop_draws = self.draws(task, role).loop
        assert loop is not None and loop_draws is not None
        if calls <= 0:
            return (0, 0, 0, 0), state
        compaction = loop.compaction
        done = loop_cycle(
            state,
            np.array([float(calls)]),
            np.array([loop_draws.growth[attempt][index]]),
            np.array([loop_draws.output[attempt][index]]),
            context_tokens=role.tokens.context_tokens,
            threshold=None if compaction is None else float(compaction.threshold_tokens),
            summary_tokens=0.0 if compaction is None else float(compaction.summary_tokens),
            compaction_output=0.0 if compaction is None else float(compaction.output_tokens),
        )
        totals = (
            int(np.rint(done.read[0])),
            int(np.rint(done.written[0])),
            int(np.rint(done.output[0])),
            int(done.compactions[0]),
        )
        return totals, done.after

    def loop_calls(
        self, task: Task, role: Role, cycle: int, attempt: int, first: int, last: int | None = None
    ) -> LoopAnswer:
        """Calls ``first`` to ``last`` (1-based; ``last`` None: to the attempt's end) of ``attempt`` at
        ``cycle`` (both 1-based) of ``task``, whose role has an agent loop.

        The attempt starts where the draws leave the conversation: after each earlier cycle's kept
        attempt, with this cycle's earlier attempts (which failed) paid and their context dropped.
        """
        loop = role.calls
        draws = self.draws(task, role)
        assert loop is not None and draws.loop is not None
        index = min(cycle, task.cycles) - 1
        a = min(attempt - 1, draws.attempts - 1)
        begin = self._cycle_starts(task, role)[index]
        if a > 0:
            begin = LoopState(prefix=begin.prefix, cached=begin.prefix.copy())
        calls = int(draws.loop.calls[a][index])
        last = calls if last is None else min(last, calls)
        first = max(min(first, last), 1)
        before = self._loop_totals(task, role, begin, a, index, first - 1)[0]
        after = self._loop_totals(task, role, begin, a, index, last)[0]
        read, written, output, compactions = (now - then for now, then in zip(after, before, strict=True))
        handoff = role.sync.handoff_tokens * self._handoffs(task, cycle) if first == 1 else 0
        if role.tokens.cache:
            tokens = RequestTokens(handoff, written, read, output)
        else:
            tokens = RequestTokens(handoff + read + written, 0, 0, output)
        compaction = loop.compaction
        compaction_min = 0.0 if compaction is None or loop.minutes is None else compaction.minutes
        duration = draws.duration_min[a][index] * (last - first + 1) / calls + compactions * compaction_min
        return LoopAnswer(
            duration_min=duration,
            failed=draws.failed[a][index],
            ends_turn=last == calls,
            calls=calls,
            tokens=tokens,
            compactions=compactions,
            compaction_output=0 if compaction is None else compactions * compaction.output_tokens,
        )

    @staticmethod
    def _handoffs(task: Task, cycle: int) -> int:
        return sum(1 for before in task.waits.values() if before == cycle)

    def _identify(self, request: web.Request, model: str) -> tuple[Task, Role, int, int]:
        name = request.headers.get("x-cycleplan-task", "")
        task = self._tasks.get(name)
        if task is not None:
            cycle = _positive(request.headers.get("x-cycleplan-cycle"), 1)
            attempt = _positive(request.headers.get("x-cycleplan-attempt"), 1)
            return task, self.scenario.role(task.role), cycle, attempt
        role_name = next(
            (n for n in self.scenario.role_names() if self.scenario.role(n).model == model),
            self.scenario.role_names()[0] if self.scenario.role_names() else "agent",
        )
        count = self._anonymous[role_name] = self._anonymous.get(role_name, 0) + 1
        anonymous = Task(id=f"anonymous-{role_name}", role=role_name, cycles=1_000)
        return anonymous, self.scenario.role(role_name), min(count, 1_000), 1

    def _pause_s(
        self, task: Task, role: Role, cycle: int, attempt: int, call: int, duration_min: float
    ) -> float:
        """Real seconds to wait before answering. Call ``j`` of an agent loop's attempt is answered when
        calls 1 to ``j`` have lasted their share of the attempt since its first call arrived, so that
        the round trips between calls (real time, stretched by the time scale) come out of the shares
        instead of on top of them; anything else waits its own duration."""
        if role.calls is None or call < 1:
            return duration_min * 60.0 / self.time_scale
        key = (task.id, cycle, attempt)
        now = time.monotonic()
        if call == 1:
            self._attempt_began[key] = now
        began = self._attempt_began.get(key)
        if began is None:  # its first call went to an earlier emulator (a resumed run)
            return duration_min * 60.0 / self.time_scale
        so_far = self.loop_calls(task, role, cycle, attempt, 1, call).duration_min
        return max(began + so_far * 60.0 / self.time_scale - now, 0.0)

    # ----------------------------------------------------------------------------------------------
    # HTTP

    def _headers(self) -> dict[str, str]:
        headers = {"request-id": f"req_emulated_{self.stats.requests:08d}"}
        now = datetime.now(UTC)
        for kind, (limit, remaining, refill_min) in self.buckets.state(self.now_min()).items():
            reset = now + timedelta(seconds=refill_min * 60.0 / self.time_scale)
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset.isoformat(timespec="milliseconds")
        return headers

    def _answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        from aiohttp import web

        self.stats.count(status)
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            headers={**self._headers(), **(headers or {})},
        )

    def _retry(self, status: int, kind: str, message: str, wait_s: float) -> web.Response:
        wait_s = max(wait_s, 0.001)
        return self._answer(
            status,
            _error(kind, message),
            {"retry-after": f"{wait_s:.3f}", "retry-after-ms": f"{wait_s * 1000:.0f}"},
        )

    async def _health(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.json_response({"ok": True})

    async def _messages(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
            return self._answer(401, _error("authentication_error", "x-api-key header is required"))
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._answer(400, _error("invalid_request_error", "the body is not JSON"))
        if self.keep_requests:
            tags = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-cycleplan-")}
            self.requests.append({"headers": tags, "body": body})
        problem = _check_body(body)
        if problem:
            return self._answer(400, _error("invalid_request_error", problem))
        model = str(body["model"])
        task, role, cycle, attempt = self._identify(request, model)

        faults = self.faults
        if self.stats.requests <= faults.rate_limit_storm:
            return self._retry(429, "rate_limit_error", "rate limit storm", faults.storm_retry_after_s)
        if task.id in faults.hang_tasks:
            self.stats.hung += 1
            await asyncio.Event().wait()
        roll = self._random.random()
        if roll < faults.server_error_rate:
            return self._answer(500, _error("api_error", "internal server error (emulated)"))
        if roll < faults.server_error_rate + faults.overloaded_rate:
            return self._retry(529, "overloaded_error", "overloaded (emulated)", faults.storm_retry_after_s)

        call = _positive(request.headers.get("x-cycleplan-call"), 0)
        loop: LoopAnswer | None = None
        if role.calls is not None:
            loop = self.loop_calls(task, role, cycle, attempt, max(call, 1), call or None)
            duration_min, failed, tokens = loop.duration_min, loop.failed, loop.tokens
        else:
            duration_min, failed, tokens = self.cycle(task, role, cycle, attempt)
        summaries = 0 if loop is None else loop.compaction_output
        output = min(tokens.output_tokens - summaries, int(body["max_tokens"])) + summaries
        wait_min = self.buckets.take(self.now_min(), 1, tokens.counted_input, output)
        if wait_min > 0:
            return self._retry(
                429,
                "rate_limit_error",
                "this request would exceed your organization's rate limit (emulated)",
                wait_min * 60.0 / self.time_scale,
            )
        await asyncio.sleep(self._pause_s(task, role, cycle, attempt, call, duration_min))
        text = f"Emulated {role.model} turn: task {task.id}, cycle {cycle}, attempt {attempt}."
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if loop is not None and not loop.ends_turn:
            stop_reason = "tool_use"
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_emulated_{self.stats.requests:08d}",
                    "name": _tool_name(body),
                    "input": {},
                }
            )
        elif failed:
            stop_reason = "refusal"
        elif output < tokens.output_tokens:
            stop_reason = "max_tokens"
        else:
            stop_reason = "end_turn"
        message = {
            "id": f"msg_emulated_{self.stats.requests:08d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": tokens.input_tokens,
                "cache_creation_input_tokens": tokens.cache_creation_input_tokens,
                "cache_read_input_tokens": tokens.cache_read_input_tokens,
                "output_tokens": output,
            },
        }
        headers = {"x-cycleplan-duration-min": f"{duration_min:.6f}"}
        if loop is not None:
            headers["x-cycleplan-calls"] = str(loop.calls)
            headers["x-cycleplan-compactions"] = str(loop.compactions)
        return self._answer(200, message, headers)


def _tool_name(body: dict[str, Any]) -> str:
    """The first tool the request offers (the one an emulated agent calls), else ``workspace``."""
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict) and tools[0].get("name"):
        return str(tools[0]["name"])
    return "workspace"


def _positive(text: str | None, default: int) -> int:
    try:
        value = int(text or "")
    except ValueError:
        return default
    return value if value >= 1 else default


def _check_body(body: Any) -> str:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: must be a positive integer"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if body.get("stream"):
        return "stream: the emulator answers non-streaming requests only"
    return ""
