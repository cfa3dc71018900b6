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

import numpy as np
import numpy.typing as npt

from cycleplan.model import (
    Empirical,
    Exponential,
    Fixed,
    Gamma,
    Lognormal,
    Role,
    Spread,
    Task,
)

Z90 = 1.2815515655446004
"""The standard normal's 90th percentile: a lognormal's sigma is ln(p90 / median) / Z90."""

BLOCK = 256
"""Replications drawn together: replication r is row ``r % BLOCK`` of block ``r // BLOCK``."""


def task_key(task_id: str) -> int:
    """A stable 64-bit number for a task id, the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(task_id.encode("utf-8"), digest_size=8).digest(), "little")


def task_stream(
    seed: int, block: int, task_id: str, attempt: int = 0, key: int | None = None
) -> np.random.Generator:
    """The Generator of one task's ``attempt`` in one block of replications (``key``: :func:`task_key`)."""
    if seed < 0 or block < 0 or attempt < 0:
        raise ValueError("seed, block and attempt must be non-negative")
    sequence = np.random.SeedSequence(
        seed, spawn_key=(block, task_key(task_id) if key is None else key, attempt)
    )
    return np.random.Generator(np.random.PCG64(sequence))


def attempts(role: Role) -> int:
    """How many attempts a cycle of ``role`` may take: the first and every retry."""
    return role.failure.max_retries + 1


def drawn_attempts(role: Role) -> int:
    """Attempts drawn for ``role``: all of them, or only the first when a cycle can never fail."""
    return attempts(role) if role.failure.probability_per_cycle > 0 else 1


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

    @property
    def attempts(self) -> int:
        return len(self.duration_min)


@dataclass(frozen=True)
class DrawBlock:
    """One task's draws for a block of replications, indexed ``[attempt, replication, cycle]``."""

    duration_min: npt.NDArray[np.float64]
    fresh_input: npt.NDArray[np.int64]
    output: npt.NDArray[np.int64]
    failed: npt.NDArray[np.bool_]

    @property
    def attempts(self) -> int:
        return int(self.duration_min.shape[0])

    def row(self, index: int) -> TaskDraws:
        """One replication's draws (``index`` within the block)."""
        return TaskDraws(
            duration_min=self.duration_min[:, index, :].tolist(),
            fresh_input=self.fresh_input[:, index, :].tolist(),
            output=self.output[:, index, :].tolist(),
            failed=self.failed[:, index, :].tolist(),
        )


def _spread(spread: Spread, z: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    if spread.median == 0:
        return np.zeros(z.shape, dtype=np.int64)
    sigma = math.log(spread.p90 / spread.median) / Z90
    if sigma == 0.0:
        return np.full(z.shape, spread.median, dtype=np.int64)
    drawn: npt.NDArray[np.int64] = np.rint(spread.median * np.exp(sigma * z)).astype(np.int64)
    return drawn


def _gamma(cycle: Gamma, rng: np.random.Generator, shape: tuple[int, int]) -> npt.NDArray[np.float64]:
    if cycle.cv == 0:
        return np.full(shape, cycle.mean_min)
    alpha = 1.0 / cycle.cv**2
    drawn: npt.NDArray[np.float64] = rng.standard_gamma(alpha, shape) * (cycle.mean_min / alpha)
    return drawn


def _from_uniforms(cycle: Empirical | Exponential, u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if isinstance(cycle, Exponential):
        drawn: npt.NDArray[np.float64] = -cycle.mean_min * np.log1p(-u)
        return drawn
    samples = np.asarray(cycle.samples_min, dtype=float)
    index = np.minimum((u * len(samples)).astype(np.int64), len(samples) - 1)
    picked: npt.NDArray[np.float64] = samples[index]
    return picked


def _uses_uniforms(role: Role) -> bool:
    """Whether a role's cycles draw uniforms: for failures, or for empirical and exponential durations."""
    return role.failure.probability_per_cycle > 0 or isinstance(role.cycle, Empirical | Exponential)


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
    count = drawn_attempts(role)
    shape = (count, BLOCK, task.cycles)
    if ideal:
        return DrawBlock(
            duration_min=np.full(shape, role.cycle.nominal_min * task.duration_multiplier),
            fresh_input=np.full(shape, role.tokens.fresh_input.median, dtype=np.int64),
            output=np.full(shape, role.tokens.output.median, dtype=np.int64),
            failed=np.zeros(shape, dtype=bool),
        )
    stable = task_key(task.id) if key is None else key
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
        if isinstance(cycle, Gamma):
            minutes[attempt] = _gamma(cycle, rng, (BLOCK, task.cycles))
        if uniforms_used:
            uniforms = rng.random((BLOCK, task.cycles, 2))
            failed[attempt] = uniforms[..., 0] < probability
            if isinstance(cycle, Empirical | Exponential):
                minutes[attempt] = _from_uniforms(cycle, uniforms[..., 1])
        if isinstance(cycle, Lognormal):
            # median * exp(sigma z) rather than exp(mu + sigma z): with sigma 0 it is the median exactly.
            minutes[attempt] = cycle.median_min * np.exp(cycle.sigma * normals[..., 0])
        elif isinstance(cycle, Fixed):
            minutes[attempt] = cycle.value_min
        fresh[attempt] = _spread(role.tokens.fresh_input, normals[..., 1])
        output[attempt] = _spread(role.tokens.output, normals[..., 2])
    if task.duration_multiplier != 1.0:
        minutes *= task.duration_multiplier
    return DrawBlock(duration_min=minutes, fresh_input=fresh, output=output, failed=failed)


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
