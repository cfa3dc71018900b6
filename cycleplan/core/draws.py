"""The randomness of a run: what each cycle of each task draws, and what its request consumes.

Common random numbers. Replications are drawn in blocks of :data:`BLOCK`; every (seed, block, task,
attempt) gets its own numpy Generator, derived through :class:`numpy.random.SeedSequence` from the seed,
the block number, a stable hash of the task id (never Python's ``hash()``, which changes between
processes) and the attempt. From it the task draws, for every replication of the block at once, the
duration, fresh input, output and failure of every cycle. The draw for (task, cycle, attempt) of a
replication therefore depends only on the seed, the replication, the task and its role's model; never on
lanes, dispatch, other tasks, how many replications are run or the order things happen in. Drawing a
block at a time keeps the cost per replication small; :func:`draw_task` takes one replication's row.
The simulator and the executor's emulator both draw through this module, so a rehearsal meets the same
numbers.

:class:`Conversation` turns a cycle's draws into the tokens of its request: the context loaded at the
task's start, the history that every later cycle reads again, fresh input and output, with or without
prompt caching. This module owns no clock and no prices.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import get_args

import numpy as np
import numpy.typing as npt

from cycleplan.core.model import (
    Z90,
    AgentLoop,
    PosteriorParameter,
    Role,
    Spread,
    Task,
)

FloatArray = npt.NDArray[np.float64]


BLOCK = 256
"""Replications drawn together: replication r is row ``r % BLOCK`` of block ``r // BLOCK``."""

LOOP_STREAM = 1
"""The spawn-key tag of an attempt's agent-loop draws: a stream of their own, so that giving a role a loop
leaves every other draw of its tasks as it was."""
POSTERIOR_STREAM = 2
"""The spawn-key tag of a role's posterior draws, one stream per (seed, block, role)."""
PARAMETERS: tuple[str, ...] = get_args(PosteriorParameter)
MAX_LOG_FACTOR = math.log(100.0)
"""A posterior factor's bound: no median is drawn more than 100 times off."""
"""Every posterior parameter, in the order their Student t draws are laid out."""


def task_key(task_id: str) -> int:
    """A stable 64-bit number for a task id, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(task_id.encode("utf-8"), digest_size=8).digest(), "little")


def task_stream(
    seed: int, block: int, task_id: str, attempt: int = 0, key: int | None = None, tag: int = 0
) -> np.random.Generator:
    """The Generator of one task's ``attempt`` in one block of replications (``key``: :func:`task_key`;
    ``tag``: 0 for the cycle draws, :data:`LOOP_STREAM` for the agent loop's)."""
    if seed < 0 or block < 0 or attempt < 0:
        raise ValueError("seed, block and attempt must be non-negative")
    stable = task_key(task_id) if key is None else key
    spawn_key = (block, stable, attempt) if tag == 0 else (block, stable, attempt, tag)
    sequence = np.random.SeedSequence(seed, spawn_key=spawn_key)
    return np.random.Generator(np.random.PCG64(sequence))


def posterior_factors(role_name: str, role: Role, seed: int, block: int) -> dict[str, FloatArray]:
    """Per replication of ``block``, the factor each uncertain median of ``role`` is multiplied by.

    One Student t draw per replication and parameter (``dof`` from the posterior), from a stream of
    (seed, block, role name): every task of the role in a replication shares its factors, as one run's
    agents share one model. Parameters the posterior leaves certain are not in the result.
    """
    posterior = role.posterior
    if posterior is None or not any(spread > 0 for spread in posterior.log_sd.values()):
        return {}
    sequence = np.random.SeedSequence(seed, spawn_key=(block, task_key(role_name), 0, POSTERIOR_STREAM))
    draws = np.random.Generator(np.random.PCG64(sequence)).standard_t(posterior.dof, (BLOCK, len(PARAMETERS)))
    spreads: dict[str, float] = {str(name): spread for name, spread in posterior.log_sd.items()}
    # A t of few degrees of freedom has tails without end; no median is taken as more than 100 times
    # off (a log factor beyond +-ln 100), so one wild draw cannot overflow a replication.
    return {
        name: np.exp(np.clip(spreads[name] * draws[:, position], -MAX_LOG_FACTOR, MAX_LOG_FACTOR))
        for position, name in enumerate(PARAMETERS)
        if spreads.get(name, 0.0) > 0
    }


def attempts(task: Task, role: Role) -> int:
    """How many attempts a cycle of ``task`` done by ``role`` may take: the first and every retry (the
    task's ``retries``, else the role's ``failure.max_retries``, as the executor counts them)."""
    return task.max_retries(role) + 1


def drawn_attempts(task: Task, role: Role) -> int:
    """Attempts drawn for ``task``: all of them, or only the first when a cycle can never fail."""
    return attempts(task, role) if role.failure.probability_per_cycle > 0 else 1


@dataclass(frozen=True)
class TaskDraws:
    """Everything one task may use in one replication, indexed ``[attempt][cycle]`` (both from 0).

    Plain nested lists (not arrays): the emulator reads them one value at a time. A role that never
    fails has one attempt: its retries can never happen, so they are not drawn.
    """

    duration_min: list[list[float]]
    fresh_input: list[list[int]]
    output: list[list[int]]
    failed: list[list[bool]]
    loop: LoopDraws | None = None

    @property
    def attempts(self) -> int:
        return len(self.duration_min)


@dataclass(frozen=True)
class LoopDraws:
    """An agent loop's draws per attempt and cycle: how many calls, and per call the mean growth, output
    and minutes of those calls."""

    calls: list[list[int]]
    growth: list[list[float]]
    output: list[list[float]]
    minutes: list[list[float]]


@dataclass(frozen=True)
class LoopBlock:
    """:class:`LoopDraws` for a block of replications, indexed ``[attempt, replication, cycle]``."""

    calls: npt.NDArray[np.int64]
    growth: FloatArray
    output: FloatArray
    minutes: FloatArray


@dataclass(frozen=True)
class DrawBlock:
    """One task's draws for a block of replications, indexed ``[attempt, replication, cycle]``.

    With an agent loop, ``duration_min`` is the calls' minutes (calls x minutes per call) when the loop
    times its calls, compactions not included (they depend on the conversation, see :func:`loop_cycle`).
    """

    duration_min: FloatArray
    fresh_input: npt.NDArray[np.int64]
    output: npt.NDArray[np.int64]
    failed: npt.NDArray[np.bool_]
    loop: LoopBlock | None = None

    @property
    def attempts(self) -> int:
        return int(self.duration_min.shape[0])

    def row(self, index: int) -> TaskDraws:
        """One replication's draws (``index`` within the block)."""
        loop = None
        if self.loop is not None:
            loop = LoopDraws(
                calls=self.loop.calls[:, index, :].tolist(),
                growth=self.loop.growth[:, index, :].tolist(),
                output=self.loop.output[:, index, :].tolist(),
                minutes=self.loop.minutes[:, index, :].tolist(),
            )
        return TaskDraws(
            duration_min=self.duration_min[:, index, :].tolist(),
            fresh_input=self.fresh_input[:, index, :].tolist(),
            output=self.output[:, index, :].tolist(),
            failed=self.failed[:, index, :].tolist(),
            loop=loop,
        )


def _spread(spread: Spread, z: FloatArray, factor: FloatArray | None = None) -> npt.NDArray[np.int64]:
    if spread.median == 0:
        return np.zeros(z.shape, dtype=np.int64)
    sigma = math.log(spread.p90 / spread.median) / Z90
    if factor is not None:
        return np.asarray(np.rint(spread.median * factor[:, None] * np.exp(sigma * z)), dtype=np.int64)
    if sigma == 0.0:
        return np.full(z.shape, spread.median, dtype=np.int64)
    drawn: npt.NDArray[np.int64] = np.rint(spread.median * np.exp(sigma * z)).astype(np.int64)
    return drawn


def _sigma(spread: Spread) -> float:
    return math.log(spread.p90 / spread.median) / Z90 if spread.median > 0 else 0.0


def mean_of_calls(median: FloatArray | float, sigma: float, calls: FloatArray, z: FloatArray) -> FloatArray:
    """The mean of ``calls`` independent lognormal values (per call: ``median``, log-spread ``sigma``),
    drawn at once from standard normals ``z`` as the lognormal with the same mean and variance (Fenton
    and Wilkinson): the mean of many calls varies less than one call, as a sum of many tool results does.
    """
    variance = math.expm1(sigma * sigma)
    spread = np.log1p(variance / calls)
    mean = np.asarray(median, dtype=float) * math.exp(sigma * sigma / 2.0)
    drawn: FloatArray = mean * np.exp(np.sqrt(spread) * z - spread / 2.0)
    return drawn


def _loop_block(
    loop: AgentLoop,
    task: Task,
    seed: int,
    block: int,
    count: int,
    key: int,
    factors: dict[str, FloatArray],
    ideal: bool,
) -> LoopBlock:
    """The loop's draws for every attempt, from the attempts' loop streams (normals ``[replication,
    cycle, 4]``: calls, growth, output, minutes)."""
    shape = (count, BLOCK, task.cycles)
    if ideal:
        # The median number of calls, each at the mean per call (what many calls average out to).
        per_call = loop.minutes.mean_min if loop.minutes is not None else 0.0
        return LoopBlock(
            calls=np.full(shape, loop.per_cycle.median, dtype=np.int64),
            growth=np.full(shape, loop.growth.mean),
            output=np.full(shape, loop.output.mean),
            minutes=np.full(shape, per_call * task.duration_multiplier),
        )
    ones = np.ones(BLOCK)

    def median(value: float, name: str) -> FloatArray:
        return value * factors.get(name, ones)[:, None]

    calls = np.empty(shape, dtype=np.int64)
    growth = np.empty(shape)
    output = np.empty(shape)
    minutes = np.zeros(shape)
    for attempt in range(count):
        normals = task_stream(seed, block, task.id, attempt, key, LOOP_STREAM).standard_normal(
            (BLOCK, task.cycles, 4)
        )
        n = np.rint(
            median(loop.per_cycle.median, "calls.per_cycle")
            * np.exp(_sigma(loop.per_cycle) * normals[..., 0])
        )
        n = np.maximum(n, 1.0)
        calls[attempt] = n.astype(np.int64)
        growth[attempt] = mean_of_calls(
            median(loop.growth.median, "calls.growth"), _sigma(loop.growth), n, normals[..., 1]
        )
        output[attempt] = mean_of_calls(
            median(loop.output.median, "calls.output"), _sigma(loop.output), n, normals[..., 2]
        )
        if loop.minutes is not None:
            minutes[attempt] = (
                mean_of_calls(
                    median(loop.minutes.median_min, "calls.minutes"), loop.minutes.sigma, n, normals[..., 3]
                )
                * task.duration_multiplier
            )
    return LoopBlock(calls=calls, growth=growth, output=output, minutes=minutes)


def _uses_uniforms(role: Role) -> bool:
    """Whether a role's cycles draw uniforms: for failures, or for empirical and exponential durations."""
    return role.failure.probability_per_cycle > 0 or role.cycle.uses_uniform


def draw_block(
    task: Task, role: Role, seed: int, block: int, *, ideal: bool = False, key: int | None = None
) -> DrawBlock:
    """The draws of ``task`` (done by ``role``) for block ``block`` of seed ``seed``.

    Layout of each attempt's stream, fixed whatever the parameters' values: standard normals
    ``[replication, cycle, 3]`` (duration, fresh input, output), then gamma draws ``[replication, cycle]``
    when the role's cycles are gamma, then uniforms ``[replication, cycle, 2]`` (failure, duration) when
    the role uses them (a failure probability, or empirical or exponential durations); drawn last, they
    change nothing before them when a failure probability is added. One stream per attempt keeps earlier
    attempts' draws when retries are added. ``ideal`` gives every cycle its nominal duration and median
    tokens and never fails.
    """
    count = drawn_attempts(task, role)
    shape = (count, BLOCK, task.cycles)
    stable = task_key(task.id) if key is None else key
    if ideal:
        drawn = DrawBlock(
            duration_min=np.full(shape, role.nominal_cycle_min * task.duration_multiplier),
            fresh_input=np.full(shape, role.tokens.fresh_input.median, dtype=np.int64),
            output=np.full(shape, role.tokens.output.median, dtype=np.int64),
            failed=np.zeros(shape, dtype=bool),
        )
        return _with_loop(drawn, task, role, seed, block, stable, {}, ideal=True)
    factors = posterior_factors(task.role, role, seed, block)
    cycle = role.cycle
    minutes = np.empty(shape)
    fresh = np.empty(shape, dtype=np.int64)
    output = np.empty(shape, dtype=np.int64)
    failed = np.zeros(shape, dtype=bool)
    probability = role.failure.probability_per_cycle
    uniforms_used = _uses_uniforms(role)
    for attempt in range(count):
        rng = task_stream(seed, block, task.id, attempt, stable)
        normals = rng.standard_normal((BLOCK, task.cycles, 3))
        own = cycle.draw(rng, (BLOCK, task.cycles))
        uniform = None
        if uniforms_used:
            uniforms = rng.random((BLOCK, task.cycles, 2))
            failed[attempt] = uniforms[..., 0] < probability
            uniform = uniforms[..., 1]
        minutes[attempt] = cycle.sample(normals[..., 0], own, uniform)
        fresh[attempt] = _spread(role.tokens.fresh_input, normals[..., 1], factors.get("tokens.fresh_input"))
        output[attempt] = _spread(role.tokens.output, normals[..., 2], factors.get("tokens.output"))
    if "cycle" in factors:
        minutes *= factors["cycle"][None, :, None]
    if task.duration_multiplier != 1.0:
        minutes *= task.duration_multiplier
    drawn = DrawBlock(duration_min=minutes, fresh_input=fresh, output=output, failed=failed)
    return _with_loop(drawn, task, role, seed, block, stable, factors, ideal=False)


def _with_loop(
    drawn: DrawBlock,
    task: Task,
    role: Role,
    seed: int,
    block: int,
    key: int,
    factors: dict[str, FloatArray],
    *,
    ideal: bool,
) -> DrawBlock:
    """``drawn`` with the role's agent-loop draws, and the calls' minutes as the cycles' when the loop
    times its calls; ``drawn`` itself for a role without a loop."""
    loop = role.calls
    if loop is None:
        return drawn
    block_of_loop = _loop_block(loop, task, seed, block, drawn.attempts, key, factors, ideal)
    minutes = drawn.duration_min
    if loop.minutes is not None:
        minutes = block_of_loop.calls * block_of_loop.minutes
    return DrawBlock(
        duration_min=minutes,
        fresh_input=drawn.fresh_input,
        output=drawn.output,
        failed=drawn.failed,
        loop=block_of_loop,
    )


def draw_task(
    task: Task, role: Role, seed: int, replication: int, *, ideal: bool = False, key: int | None = None
) -> TaskDraws:
    """The draws of ``task`` (done by ``role``) in replication ``replication`` of seed ``seed``."""
    if replication < 0:
        raise ValueError("replication must be non-negative")
    block = draw_block(task, role, seed, replication // BLOCK, ideal=ideal, key=key)
    return block.row(replication % BLOCK)


# --------------------------------------------------------------------------------------------------
# Tokens of a conversation


@dataclass(frozen=True)
class RequestTokens:
    """One request's tokens, by how they are billed (the Messages API's usage fields)."""

    input_tokens: int
    """Uncached input."""
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int

    @property
    def counted_input(self) -> int:
        """Input that counts against an input-tokens-per-minute limit (cache reads do not)."""
        return self.input_tokens + self.cache_creation_input_tokens

    @property
    def read(self) -> int:
        """Every input token the model reads, cached or not."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


class Conversation:
    """The token bookkeeping of one task's conversation, one request per cycle attempt.

    Every request sends the context (system prompt and shared specification, loaded at the task's
    start) and the history so far, then the cycle's fresh input. With caching, the prefix already
    cached is read at 0.1x and the rest of the prefix is written at 1.25x; without it, all is uncached
    input. A successful cycle adds ``history_growth`` x (fresh input + output) to the history; a failed
    attempt adds nothing (the retry starts from the same state).
    """

    __slots__ = ("cache", "cached", "context", "growth", "history")

    def __init__(self, context_tokens: int, history_growth: float, cache: bool) -> None:
        self.context = context_tokens
        self.growth = history_growth
        self.cache = cache
        self.history = 0
        self.cached = 0

    def request(self, fresh_input: int, output: int, handoff_tokens: int = 0) -> RequestTokens:
        """The tokens of the next request; ``handoff_tokens`` are uncached input on top."""
        prefix = self.context + self.history
        if not self.cache:
            return RequestTokens(prefix + fresh_input + handoff_tokens, 0, 0, output)
        read = min(self.cached, prefix)
        self.cached = prefix
        return RequestTokens(fresh_input + handoff_tokens, prefix - read, read, output)

    def commit(self, fresh_input: int, output: int, handoff_tokens: int = 0) -> None:
        """Record a successful cycle: its new messages stay in the conversation."""
        self.history += round(self.growth * (fresh_input + handoff_tokens + output))


# --------------------------------------------------------------------------------------------------
# Tokens of an agent loop


@dataclass(frozen=True)
class LoopState:
    """Where a task's agent loop stands between cycles: the context as of its last call (``prefix``)
    and how much of it the prompt cache holds (``cached``), in tokens, per replication."""

    prefix: FloatArray
    cached: FloatArray

    @classmethod
    def start(cls, context_tokens: int, count: int) -> LoopState:
        """A task's start: its context loaded, nothing cached yet."""
        return cls(np.full(count, float(context_tokens)), np.zeros(count))


@dataclass(frozen=True)
class LoopCycle:
    """What one attempt of one cycle of an agent loop reads, writes and outputs, per replication."""

    read: FloatArray
    """Cache reads over its calls (and its compactions')."""
    written: FloatArray
    """Cache writes over its calls."""
    output: FloatArray
    """Output tokens: its calls' and its compactions' summaries."""
    compactions: npt.NDArray[np.int64]
    after: LoopState
    """The state after it, were it kept."""


def loop_cycle(
    state: LoopState,
    calls: FloatArray,
    growth: FloatArray,
    output: FloatArray,
    *,
    context_tokens: int,
    threshold: float | None,
    summary_tokens: float,
    compaction_output: float = 0.0,
) -> LoopCycle:
    """The tokens of ``calls`` calls from ``state``, each adding ``growth`` to the context and writing
    ``output`` (both per call), as the Messages API bills them.

    A call reads what is cached (everything up to the previous call) and writes the rest, so ``k`` calls
    from ``prefix`` P with ``cached`` C read ``C + (k-1)P + g k(k-1)/2`` and write ``P - C + k g``. When
    the context has reached ``threshold`` before a call, the agent compacts first: one call reads the
    whole context and outputs ``compaction_output`` tokens of summary; the context is then the role's
    ``context_tokens`` (still cached) plus ``summary_tokens`` (not yet). Everything is worked in closed
    form, a pass per compaction, so a cycle of 200 calls costs what one of 2 does.
    """
    prefix = state.prefix.copy()
    cached = state.cached.copy()
    remaining = calls.astype(float)
    read = np.zeros_like(prefix)
    written = np.zeros_like(prefix)
    summaries = np.zeros_like(prefix)
    compactions = np.zeros(prefix.shape, dtype=np.int64)
    just_compacted = np.zeros(prefix.shape, dtype=bool)
    while True:
        if threshold is None:
            k = remaining
        else:
            # Growth below a token per million calls never reaches the threshold within a cycle.
            grows = growth > 1e-6
            room = np.where(grows, np.ceil((threshold - prefix) / np.where(grows, growth, 1.0)), np.inf)
            k = np.where(prefix < threshold, np.minimum(remaining, np.maximum(room, 1.0)), 0.0)
            # Right after a compaction there is room for a call (a Role keeps its summary below the
            # threshold), so every pass makes progress.
            k = np.where(just_compacted & (remaining > 0), np.maximum(k, 1.0), k)
        some = k > 0
        read += np.where(some, cached + (k - 1.0) * prefix + growth * (k - 1.0) * k / 2.0, 0.0)
        written += np.where(some, prefix - cached + k * growth, 0.0)
        prefix = prefix + k * growth
        cached = np.where(some, prefix, cached)
        remaining = remaining - k
        if threshold is None or not (remaining > 0).any():
            break
        compact = (remaining > 0) & (prefix >= threshold)
        just_compacted = compact
        read += np.where(compact, prefix, 0.0)
        summaries += np.where(compact, compaction_output, 0.0)
        compactions += compact
        prefix = np.where(compact, context_tokens + summary_tokens, prefix)
        cached = np.where(compact, float(context_tokens), cached)
    return LoopCycle(
        read=read,
        written=written,
        output=calls * output + summaries,
        compactions=compactions,
        after=LoopState(prefix, cached),
    )
