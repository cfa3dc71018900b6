"""A loopback HTTP server that speaks the Messages API and behaves as the scenario says agents behave.

It answers two kinds of requests.

**Tagged requests (the emulated backend).** A request that names a task of the scenario with
``x-cycleplan-task``, ``x-cycleplan-cycle`` and ``x-cycleplan-attempt`` (and which call of a loop with
``x-cycleplan-call``) is answered after the cycle's drawn duration (divided by the time scale) with the
drawn tokens as ``usage``, from the same draws the simulator uses (:func:`cycleplan.core.draws.draw_task`,
keyed by seed, task, cycle and attempt, and :class:`cycleplan.core.draws.Conversation` for context, history
and caching): a rehearsal bills what the simulator's replication bills, to the token. A cycle the role's
failure model fails is answered with ``stop_reason: "refusal"``: its time and tokens are spent and its
work is unusable. A role with an agent loop (``calls``) plays it call by call: an attempt is the drawn
number of calls ``n``; calls 1 to ``n - 1`` are answered with ``stop_reason: "tool_use"`` and a
``tool_use`` block of the first tool the request offers, and call ``n`` ends the turn (``end_turn``, or
``refusal`` when the attempt fails). Call ``j``'s usage is the difference between the rounded totals of
:func:`cycleplan.core.draws.loop_cycle` over ``j`` and over ``j - 1`` calls from the attempt's starting
conversation, so that the answers of an attempt add up to exactly the simulator's tokens for it,
compactions (folded into the call they precede) and handoff tokens (on the first call) included; each
call lasts its share of the attempt's drawn duration, plus the minutes of the compactions it carries.
``x-cycleplan-calls`` and ``x-cycleplan-compactions`` on each answer say how many calls the attempt makes
and how many compactions this answer carries; a loop request without ``x-cycleplan-call`` is answered as
its whole attempt at once.

**Any other request (a real client: Claude Code, an SDK).** It is billed from what it sends, as the API
would (:mod:`.billing`): its input tokens estimated from its content, its prompt cache kept by its
``cache_control`` breakpoints (5-minute or 1-hour), the cache shared by every client of the emulator. Its
turn is read from its messages (:func:`read_turn`: the last user message without a tool result opens it;
the answers after it are its calls so far) and played from the draws of the role whose model it names
(:meth:`Emulator.role_for_model`): as many calls as the role's loop draws (one without a loop), each with
its drawn share of output tokens and of the turn's minutes (less the time the client took since the
previous answer, its tools being part of a call), then the turn ends. Calls before the last answer with a
tool call the client offers that changes nothing: a ``Read`` of part of a file of the working directory
the client names (about the tokens the role's loop adds per call), else ``Glob``/``LS``, else the first
tool offered. A request tagged ``x-cycleplan-turn: TASK:CYCLE:ATTEMPT`` (the claude-code backend sets it)
plays that cycle's draws, and when the plan has the cycle spawn subagents (and no ``x-cycleplan-spawn:
no`` says someone else runs them) its first call asks for them through the client's Agent (or Task)
tool, each prompt ending with ``[cycleplan-subagent:ID]``, so that the client spawns them and the
emulator knows their requests (they play their task's draws, one turn).
A tagged turn counts its calls itself, so that a client that compacts its conversation mid-turn (and
sends it anew from a summary) goes on where it was; a request asking for a detailed summary of the
conversation (the compaction) is answered with text only, the role's compaction output tokens after its
compaction minutes, and is no call of the loop. An untagged turn is drawn as an anonymous task of its
role, keyed by the turn. The answer text has about
as many tokens (by the estimator) as the output billed, so that the context grows as it would.

Both kinds are answered as JSON, or as server-sent events when the request says ``stream: true``
(:func:`sse_events`: ``message_start`` with the input usage, ``ping``, each content block's start, delta
and stop, ``message_delta`` with the stop reason and the final usage, ``message_stop``); the usage says
``cache_creation`` split by lifetime for billed requests. ``POST /v1/messages/count_tokens`` answers with
the estimate. The scenario's ``rate_limits`` are enforced with token buckets, one take per request: a
request they cannot cover gets 429 with ``retry-after`` (real seconds) and the ``anthropic-ratelimit-*``
headers, which every answer carries. :class:`Faults` adds what tests need: server errors (500), overload
(529), a storm of 429s, agents that hang. With a ``ledger`` path the emulator keeps its own account of
every answered request, one JSON line each (:class:`.billing.Ledger`: time, model, tokens by kind, cost,
and the task, cycle and call it played). The API key is checked for presence only and never kept. Built
on aiohttp; binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import socket
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cycleplan.core.draws import Conversation, LoopState, RequestTokens, TaskDraws, draw_task, loop_cycle
from cycleplan.core.model import Role, Scenario, Task
from cycleplan.core.prices import cost_usd, resolve
from cycleplan.executor.billing import (
    BLOCK_OVERHEAD_TOKENS,
    CHARS_PER_TOKEN,
    Ledger,
    PromptCache,
    estimate_tokens,
    prompt_blocks,
)
from cycleplan.executor.buckets import Buckets

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
        ledger: Path | None = None,
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
        self.cache = PromptCache()
        """The prompt cache of requests billed from what they send."""
        self.ledger = Ledger(ledger) if ledger is not None else None
        """With ``ledger``: one JSON line per answered request (see :mod:`.billing`)."""
        self._turn_plans: dict[str, TurnPlan] = {}
        self._answered: dict[str, int] = {}
        """Calls answered so far in each tagged turn (``TASK:CYCLE:ATTEMPT``)."""
        self._turn_answered: dict[str, tuple[float, bool]] = {}
        """Per client turn: when its last call was answered (monotonic seconds), and whether that
        answer asked for subagents."""
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
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
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
        if self.ledger is not None:
            self.ledger.close()

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

    def _identify(self, request: web.Request) -> tuple[Task, Role, int, int]:
        """The task, role, cycle and attempt a tagged request names (its task is one of the scenario's)."""
        task = self._tasks[request.headers.get("x-cycleplan-task", "")]
        cycle = _positive(request.headers.get("x-cycleplan-cycle"), 1)
        attempt = _positive(request.headers.get("x-cycleplan-attempt"), 1)
        return task, self.scenario.role(task.role), cycle, attempt

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

    async def _count_tokens(self, request: web.Request) -> web.Response:
        from aiohttp import web

        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._answer(400, _error("invalid_request_error", "the body is not JSON"))
        if not isinstance(body, dict):
            return self._answer(400, _error("invalid_request_error", "the body must be a JSON object"))
        return web.json_response({"input_tokens": sum(block.tokens for block in prompt_blocks(body))})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        number = self.stats.requests
        arrived = time.monotonic()
        arrived_ms = time.time() * 1000.0
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
        if request.headers.get("x-cycleplan-task", "") in self._tasks:
            return await self._drawn(request, body, number, arrived_ms)
        return await self._billed(request, body, number, arrived, arrived_ms)

    async def _fault(self, task_id: str) -> web.Response | None:
        """The answer a fault gives instead of the model's, if one strikes (a hung task never returns)."""
        faults = self.faults
        if self.stats.requests <= faults.rate_limit_storm:
            return self._retry(429, "rate_limit_error", "rate limit storm", faults.storm_retry_after_s)
        if task_id in faults.hang_tasks:
            self.stats.hung += 1
            await asyncio.Event().wait()
        roll = self._random.random()
        if roll < faults.server_error_rate:
            return self._answer(500, _error("api_error", "internal server error (emulated)"))
        if roll < faults.server_error_rate + faults.overloaded_rate:
            return self._retry(529, "overloaded_error", "overloaded (emulated)", faults.storm_retry_after_s)
        return None

    async def _drawn(
        self, request: web.Request, body: dict[str, Any], number: int, arrived_ms: float
    ) -> web.StreamResponse:
        """A request tagged with its task, cycle and attempt: answered from the simulator's draws."""
        model = str(body["model"])
        task, role, cycle, attempt = self._identify(request)
        fault = await self._fault(task.id)
        if fault is not None:
            return fault

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
                    "id": f"toolu_emulated_{number:08d}",
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
            "id": f"msg_emulated_{number:08d}",
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
        one_hour = role.tokens.cache_ttl == "1h"
        written = tokens.cache_creation_input_tokens
        self._bill_row(
            arrived_ms,
            message,
            cache_write_5m=0 if one_hour else written,
            cache_write_1h=written if one_hour else 0,
            role=task.role,
            task=task.id,
            cycle=cycle,
            attempt=attempt,
            call=call or None,
            stream=bool(body.get("stream")),
        )
        return await self._reply(request, message, headers, stream=bool(body.get("stream")))

    # ----------------------------------------------------------------------------------------------
    # any client: billed from the request it sends, its agent loop driven by the role's draws

    def turn_plan(self, request_headers: Any, model: str, turn: ClientTurn) -> TurnPlan:
        """What the turn ``turn`` (of a request naming ``model``) is to be: see the module docstring."""
        found = self._turn_plans.get(turn.key)
        if found is not None:
            return found
        child = self._tasks.get(turn.subagent or "")
        tag = _turn_tag(request_headers.get(TURN_HEADER, ""))
        if child is not None:
            found = self._subagent_plan(child)
        elif tag is not None and tag[0] in self._tasks:
            task = self._tasks[tag[0]]
            children = tuple(self.scenario.subagents().get(task.id, {}).get(tag[1], []))
            if request_headers.get(SPAWN_HEADER, "").strip().lower() == "no":
                children = ()
            found = replace(self._plan_from_draws(task, tag[1], tag[2], children), tagged=True)
        else:
            role_name = self.role_for_model(model)
            anonymous = Task(id=f"turn-{turn.key[:16]}", role=role_name, cycles=1)
            found = self._plan_from_draws(anonymous, 1, 1, ())
        self._turn_plans[turn.key] = found
        return found

    def role_for_model(self, model: str) -> str:
        """The role whose model ``model`` is (by its name, else by its family: opus, sonnet, haiku), else
        the scenario's first role."""
        names = self.scenario.role_names() or ["agent"]
        for name in names:
            if self.scenario.role(name).model == model:
                return name
        base = _base_model(model)
        for name in names:
            if _base_model(self.scenario.role(name).model) == base:
                return name
        family = _family(model)
        for name in names:
            if family and _family(self.scenario.role(name).model) == family:
                return name
        return names[0]

    def _plan_from_draws(self, task: Task, cycle: int, attempt: int, children: tuple[Task, ...]) -> TurnPlan:
        role = self.scenario.role(task.role)
        draws = self.draws(task, role)
        index = min(max(cycle, 1), task.cycles) - 1
        a = min(max(attempt, 1) - 1, draws.attempts - 1)
        growth = 0.0
        if role.calls is not None and draws.loop is not None:
            calls = int(draws.loop.calls[a][index])
            output = round(calls * draws.loop.output[a][index])
            growth = float(draws.loop.growth[a][index])
        else:
            calls, output = 1, int(draws.output[a][index])
        if children:
            calls = max(calls, 2)  # the call that spawns them, and one after they return
        compaction = role.calls.compaction if role.calls is not None else None
        return TurnPlan(
            task=task.id,
            role_name=task.role,
            cycle=cycle,
            attempt=attempt,
            compaction_output=0 if compaction is None else compaction.output_tokens,
            compaction_min=0.0 if compaction is None else compaction.minutes,
            outputs=_split(output, calls),
            minutes=(draws.duration_min[a][index] / calls,) * calls,
            failed=bool(draws.failed[a][index]),
            children=tuple(child.id for child in children),
            growth=(growth,) * calls,
        )

    def _subagent_plan(self, task: Task) -> TurnPlan:
        """A subagent's one turn: its cycles' first attempts, one after the other."""
        outputs: list[int] = []
        minutes: list[float] = []
        growth: list[float] = []
        for cycle in range(1, task.cycles + 1):
            part = self._plan_from_draws(task, cycle, 1, ())
            outputs += part.outputs
            minutes += part.minutes
            growth += part.growth
        return TurnPlan(
            task=task.id,
            role_name=task.role,
            cycle=1,
            attempt=1,
            outputs=tuple(outputs),
            minutes=tuple(minutes),
            failed=False,
            subagent=True,
            growth=tuple(growth),
        )

    def _client_pause_s(
        self,
        progress: str,
        plan: TurnPlan,
        call: int,
        arrived: float,
        *,
        compacting: bool = False,
        spawning: bool = False,
    ) -> float:
        """Real seconds before answering call ``call`` of a turn: its share of the turn's minutes, less
        the time the client took since the previous answer (its tools ran within the call's minutes). A
        call that asks for subagents is answered at once and its share is taken after they return (the
        simulator's fork-join: spawn, be blocked, then work); a compaction takes the role's compaction
        minutes."""
        scale = 60.0 / self.time_scale
        if compacting:
            return plan.compaction_min * scale
        if spawning:
            return 0.0
        share = plan.minutes[min(max(call, 1), plan.calls) - 1] * scale
        previous = self._turn_answered.get(progress)
        if call <= 1 or previous is None:
            return share
        answered, spawned = previous
        if spawned:
            return share + plan.minutes[0] * scale
        return max(share - (arrived - answered), 0.0)

    async def _billed(
        self, request: web.Request, body: dict[str, Any], number: int, arrived: float, arrived_ms: float
    ) -> web.StreamResponse:
        """A request from any client: billed from what it sends; its turn's calls from the draws."""
        model = str(body["model"])
        turn = read_turn(body)
        plan = self.turn_plan(request.headers, model, turn)
        fault = await self._fault(plan.task)
        if fault is not None:
            return fault
        # A tagged turn counts its calls itself: the client may compact its conversation mid-turn, and
        # the conversation it sends then starts again.
        progress = f"{plan.task}:{plan.cycle}:{plan.attempt}" if plan.tagged else turn.key
        done = self._answered.get(progress, 0) if plan.tagged else turn.calls_before
        call = done if turn.compacting else done + 1
        blocks = prompt_blocks(body)
        bill = self.cache.bill(blocks, self.now_min())
        wanted = plan.outputs[min(max(call, 1), plan.calls) - 1]
        if turn.compacting and plan.compaction_output:
            wanted = plan.compaction_output
        output = min(wanted, int(body["max_tokens"]))
        wait_min = self.buckets.take(self.now_min(), 1, bill.input_tokens + bill.cache_write, output)
        if wait_min > 0:
            return self._retry(
                429,
                "rate_limit_error",
                "this request would exceed your organization's rate limit (emulated)",
                wait_min * 60.0 / self.time_scale,
            )
        spawning = (
            call == 1
            and bool(plan.children)
            and not turn.compacting
            and any(name in _offered_tools(body) for name in AGENT_TOOLS)
        )
        await asyncio.sleep(
            self._client_pause_s(progress, plan, call, arrived, compacting=turn.compacting, spawning=spawning)
        )
        self.cache.commit(blocks, bill, self.now_min())
        spawned = False
        if turn.compacting:
            summary = f"Summary of the conversation so far (task {plan.task}, cycle {plan.cycle})."
            content, stop_reason = [{"type": "text", "text": _filler(summary, output)}], "end_turn"
        else:
            answer = self._client_content(body, turn, plan, call, model, output, number)
            content, stop_reason, spawned = answer
            if plan.tagged:
                self._answered[progress] = call
        if stop_reason == "end_turn" and output < wanted:
            stop_reason = "max_tokens"
        self._turn_answered[progress] = (time.monotonic(), spawned)
        message = {
            "id": f"msg_emulated_{number:08d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": bill.input_tokens,
                "cache_creation_input_tokens": bill.cache_write,
                "cache_read_input_tokens": bill.cache_read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": bill.cache_write_5m,
                    "ephemeral_1h_input_tokens": bill.cache_write_1h,
                },
                "output_tokens": output,
            },
        }
        self._bill_row(
            arrived_ms,
            message,
            cache_write_5m=bill.cache_write_5m,
            cache_write_1h=bill.cache_write_1h,
            role=plan.role_name,
            task=plan.task,
            cycle=plan.cycle,
            attempt=plan.attempt,
            call=call,
            calls=plan.calls,
            subagent=plan.subagent,
            compaction=turn.compacting or None,
            stream=bool(body.get("stream")),
            session=request.headers.get("x-claude-code-session-id"),
        )
        headers = {"x-cycleplan-calls": str(plan.calls), "x-cycleplan-call": str(call)}
        return await self._reply(request, message, headers, stream=bool(body.get("stream")))

    def _client_content(
        self,
        body: dict[str, Any],
        turn: ClientTurn,
        plan: TurnPlan,
        call: int,
        model: str,
        output: int,
        number: int,
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """The answer's content blocks, its stop reason, and whether it asks for subagents."""
        tools = _offered_tools(body)
        blocks: list[dict[str, Any]] = []
        spawned = False
        if call < plan.calls and tools:
            agent = next((tools[name] for name in AGENT_TOOLS if name in tools), None)
            if plan.children and call == 1 and agent is not None:
                blocks = [
                    _tool_use(
                        agent, f"toolu_emulated_{number:08d}_{i}", self._spawn_input(agent, child, model)
                    )
                    for i, child in enumerate(plan.children)
                ]
                spawned = True
            else:
                growth = plan.growth[call - 1] if call <= len(plan.growth) else 0.0
                name, arguments = _harmless_call(tools, turn.cwd, call, growth)
                blocks = [_tool_use(tools[name], f"toolu_emulated_{number:08d}", arguments)]
            stop_reason = "tool_use"
        else:
            stop_reason = "refusal" if plan.failed and call >= plan.calls else "end_turn"
        used = sum(estimate_tokens(block) for block in blocks)
        text_tokens = output - used
        if text_tokens > BLOCK_OVERHEAD_TOKENS or not blocks:
            opening = f"Emulated answer: task {plan.task}, cycle {plan.cycle}, call {call} of {plan.calls}."
            blocks.insert(0, {"type": "text", "text": _filler(opening, text_tokens)})
        return blocks, stop_reason, spawned

    def _spawn_input(self, tool: dict[str, Any], child_id: str, model: str) -> dict[str, Any]:
        child = self._tasks[child_id]
        what = child.prompt or child.description or f"Carry out the subagent task '{child.id}'."
        wanted: dict[str, Any] = {
            "description": child.id,
            "prompt": f"{what}\n\n{SUBAGENT_MARK}{child.id}]",
            "subagent_type": "general-purpose",
            "run_in_background": False,
        }
        child_model = self.scenario.role(child.role).model
        family = _family(child_model)
        properties = _properties(tool)
        if family and family != _family(model) and family in _enum(properties.get("model")):
            wanted["model"] = family
        if not properties:
            return {key: wanted[key] for key in ("description", "prompt")}
        return {key: value for key, value in wanted.items() if key in properties}

    def _bill_row(self, arrived_ms: float, message: dict[str, Any], **facts: Any) -> None:
        if self.ledger is None:
            return
        usage = message["usage"]
        model = str(message["model"])
        price = resolve(model, self.scenario.prices)
        cost = (
            None
            if price is None
            else cost_usd(
                price,
                usage["input_tokens"],
                facts["cache_write_5m"],
                usage["cache_read_input_tokens"],
                usage["output_tokens"],
                facts["cache_write_1h"],
            )
        )
        row = {
            "at_ms": round(arrived_ms, 3),
            "duration_ms": round(time.time() * 1000.0 - arrived_ms, 3),
            "status": 200,
            "model": model,
            "message_id": message["id"],
            "input_tokens": usage["input_tokens"],
            "cache_write_5m": facts.pop("cache_write_5m"),
            "cache_write_1h": facts.pop("cache_write_1h"),
            "cache_read_input_tokens": usage["cache_read_input_tokens"],
            "output_tokens": usage["output_tokens"],
            "cost_usd": cost,
            "stop_reason": message["stop_reason"],
            **{key: value for key, value in facts.items() if value is not None},
        }
        self.ledger.append(row)

    async def _reply(
        self, request: web.Request, message: dict[str, Any], headers: dict[str, str], *, stream: bool
    ) -> web.StreamResponse:
        """A 200 answer: the message as JSON, or as the server-sent events of a streamed answer."""
        if not stream:
            return self._answer(200, message, headers)
        from aiohttp import web

        self.stats.count(200)
        response = web.StreamResponse(
            status=200,
            headers={
                **self._headers(),
                **headers,
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
            },
        )
        await response.prepare(request)
        await response.write(b"".join(sse_events(message)))
        await response.write_eof()
        return response


# --------------------------------------------------------------------------------------------------
# a client's turn, and how the emulator plays it

TURN_HEADER = "x-cycleplan-turn"
"""``TASK:CYCLE:ATTEMPT``: which cycle of the scenario a real client's requests belong to (optional)."""
SPAWN_HEADER = "x-cycleplan-spawn"
"""``no``: the client does not spawn the cycle's planned subagents (someone else runs them)."""
SUBAGENT_MARK = "[cycleplan-subagent:"
"""Ends the prompt of a subagent the emulator asks for, followed by its task id and ``]``: the subagent's
own requests carry it in their first message, so that the emulator knows whose turn they are."""
AGENT_TOOLS = ("Agent", "Task")
"""The tools through which a client spawns subagents (Claude Code's, by version)."""
MAX_READ_BYTES = 1_000_000
"""Files at least this large are never read by an emulated agent."""
CHARS_PER_LINE = 60
"""About how long a line of a file in the working directory is (a Read asks for lines)."""
_SUBAGENT = re.compile(re.escape(SUBAGENT_MARK) + r"([A-Za-z0-9][A-Za-z0-9_.-]*)\]")
_COMPACTING = re.compile(r"create a detailed summary of the conversation", re.IGNORECASE)
_CWD = re.compile(r"(?:Primary working directory|Working directory):\s*(/[^\n]*)")


@dataclass(frozen=True)
class ClientTurn:
    """Where a request stands in its conversation."""

    key: str
    """A stable id of the turn: the conversation's first message, and the turn's prompt and position."""
    calls_before: int
    """Answers the client already had in this turn (assistant messages after its prompt)."""
    subagent: str | None = None
    """The task id of the subagent whose conversation this is, when the emulator asked for it."""
    cwd: str | None = None
    """The working directory the client says it is in."""
    compacting: bool = False
    """The request asks for a summary of the conversation (the client compacts its context)."""


@dataclass(frozen=True)
class TurnPlan:
    """How the emulator plays one turn: per call, its output tokens and scenario minutes."""

    task: str
    role_name: str
    cycle: int
    attempt: int
    outputs: tuple[int, ...]
    minutes: tuple[float, ...]
    failed: bool
    children: tuple[str, ...] = ()
    """Subagents its first call asks for (through the client's Agent tool)."""
    subagent: bool = False
    growth: tuple[float, ...] = ()
    """Per call, the tokens the role's loop adds to the context: what a file read asks for."""
    tagged: bool = False
    """The turn is a cycle of the scenario (``x-cycleplan-turn``): the emulator counts its calls."""
    compaction_output: int = 0
    """Output tokens of a compaction summary (the role's ``calls.compaction``; 0: the call's own)."""
    compaction_min: float = 0.0

    @property
    def calls(self) -> int:
        return len(self.outputs)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def _is_prompt(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, list):
        return not any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    return True


def read_turn(body: dict[str, Any]) -> ClientTurn:
    """Where a request stands: the turn began at the last user message that carries no tool result; the
    answers after it are the calls made so far."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    start = max((i for i, m in enumerate(messages) if _is_prompt(m)), default=0)
    calls_before = sum(1 for m in messages[start + 1 :] if m.get("role") == "assistant")
    prompts = sum(1 for m in messages[: start + 1] if _is_prompt(m))
    first = _text_of(messages[0].get("content")) if messages else ""
    prompt = _text_of(messages[start].get("content")) if messages else ""
    digest = hashlib.blake2b(digest_size=16)
    for part in (first, str(prompts), prompt):
        digest.update(part.encode("utf-8") + b"\0")
    marked = _SUBAGENT.search(first)
    system = body.get("system")
    where = _CWD.search(first) or _CWD.search(
        _text_of(system) if isinstance(system, list) else str(system or "")
    )
    last = messages[-1] if messages else {}
    compacting = last.get("role") == "user" and bool(_COMPACTING.search(_text_of(last.get("content"))))
    return ClientTurn(
        compacting=compacting,
        key=digest.hexdigest(),
        calls_before=calls_before,
        subagent=marked.group(1) if marked else None,
        cwd=where.group(1).strip() if where else None,
    )


def _turn_tag(text: str) -> tuple[str, int, int] | None:
    parts = text.strip().split(":")
    if len(parts) != 3 or not parts[0]:
        return None
    cycle, attempt = _positive(parts[1], 0), _positive(parts[2], 0)
    if cycle < 1 or attempt < 1:
        return None
    return parts[0], cycle, attempt


def _split(total: int, parts: int) -> tuple[int, ...]:
    """``total`` in ``parts`` near-equal whole parts that add up to it."""
    total = max(int(total), 0)
    return tuple((total * (j + 1)) // parts - (total * j) // parts for j in range(parts))


def _base_model(model: str) -> str:
    return re.sub(r"-(?:\d{8}|latest)$", "", model)


def _family(model: str) -> str:
    return next((family for family in ("opus", "sonnet", "haiku") if family in model), "")


def _offered_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return {}
    return {
        str(tool["name"]): tool
        for tool in tools
        if isinstance(tool, dict) and tool.get("name") and not tool.get("defer_loading")
    }


def _properties(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema")
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        return dict(schema["properties"])
    return {}


def _enum(schema: Any) -> list[str]:
    if isinstance(schema, dict) and isinstance(schema.get("enum"), list):
        return [str(value) for value in schema["enum"]]
    return []


def _harmless_call(
    tools: dict[str, dict[str, Any]], cwd: str | None, call: int, growth: float = 0.0
) -> tuple[str, dict[str, Any]]:
    """A tool call that changes nothing: read part of a file of the working directory (about ``growth``
    tokens of it, a different part each call, when the tool takes a line range), else list the
    directory, else call the first tool offered with no arguments."""
    if "Read" in tools and cwd:
        try:
            files = sorted(
                entry.path
                for entry in os.scandir(cwd)
                if entry.is_file(follow_symlinks=False)
                and not entry.name.startswith(".")
                and entry.stat().st_size < MAX_READ_BYTES
            )
        except OSError:
            files = []
        if not files:
            return "Read", {"file_path": cwd}
        path = files[(call - 1) % len(files)]
        arguments: dict[str, Any] = {"file_path": path}
        properties = _properties(tools["Read"])
        if growth > 0 and "limit" in properties and "offset" in properties:
            limit = max(int(growth * CHARS_PER_TOKEN / CHARS_PER_LINE), 1)
            try:
                with open(path, "rb") as handle:
                    lines = sum(1 for _ in handle)
            except OSError:
                lines = 0
            if lines > limit:
                arguments["offset"] = 1 + ((call - 1) * limit) % (lines - limit + 1)
                arguments["limit"] = limit
        return "Read", arguments
    if "Glob" in tools:
        return "Glob", {"pattern": "*"}
    if "LS" in tools and cwd:
        return "LS", {"path": cwd}
    name = next(iter(tools))
    return name, {}


def _tool_use(tool: dict[str, Any], tool_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": str(tool["name"]), "input": arguments}


_WORDS = (
    "the agent reads the files it needs, checks what the specification asks for, and notes what comes next; "
)


def _filler(opening: str, tokens: int) -> str:
    """Text of about ``tokens`` tokens by the estimator (at least ``opening``)."""
    wanted = int(max(tokens - BLOCK_OVERHEAD_TOKENS, 0) * CHARS_PER_TOKEN)
    if wanted <= len(opening):
        return opening
    body = (_WORDS * (wanted // len(_WORDS) + 1))[: wanted - len(opening) - 1]
    return f"{opening} {body}"


def sse_events(message: dict[str, Any]) -> list[bytes]:
    """``message`` as the server-sent events of a streamed Messages API answer: ``message_start`` (the
    input usage), ``ping``, per content block ``content_block_start``, ``content_block_delta`` (text, or
    a tool call's JSON input) and ``content_block_stop``, then ``message_delta`` (stop reason, final
    usage) and ``message_stop``."""
    usage = dict(message["usage"])
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, int(usage.get("output_tokens", 0)))},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        if block.get("type") == "tool_use":
            opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}))}
        else:
            opened = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": str(block.get("text", ""))}
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
        )
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    final = {
        name: usage[name]
        for name in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        )
        if name in usage
    }
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message["stop_reason"],
                    "stop_sequence": message.get("stop_sequence"),
                },
                "usage": final,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


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
    return ""
