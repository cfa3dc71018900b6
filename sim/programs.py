"""Each task's work in a batch of replications, worked out from its draws before any clock runs.

Given a task's draws, what it will do once it runs is fixed: which attempts of which cycles run (up to each
cycle's first success, or until a cycle runs out of retries), how long each takes, and what each request
costs in tokens and dollars (the conversation's tokens depend on which attempts succeeded, never on the
clock). This module computes all of that for a whole batch of replications with numpy, so that the
engines (SimPy's and the max-plus recursion) only move clocks.

Attempts are laid out in *slots*, ``slot = cycle * attempts + attempt``, in the order they run. A task's
work is cut into *segments* at its sync points (before a cycle that waits for events, after a cycle that
publishes events), or at every slot when rate limits apply (each request must pass the buckets at its own
start). Nothing inside a segment can make the task wait, so an engine can work a whole segment with one
timeout; both engines use the same ``segment_min`` sums, which makes their clocks agree to the bit. This
module knows no clock, lanes or SimPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np
import numpy.typing as npt

from cycleplan.core.draws import BLOCK, DrawBlock, LoopState, draw_block, drawn_attempts, loop_cycle, task_key
from cycleplan.core.model import ModelPrice, Role, Task

if TYPE_CHECKING:
    from cycleplan.sim.layout import Layout

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Segment:
    """Cycles ``first_cycle`` to ``end_cycle - 1`` (from 0) of a task, worked without a pause."""

    first_cycle: int
    end_cycle: int
    first_slot: int
    end_slot: int
    waits: tuple[str, ...]
    """Events awaited before the segment's first cycle (empty unless that cycle waits)."""
    sync_min: float
    """Minutes paid after the waits to take the handoff in (sync minutes times events; 0 in ideal mode)."""
    emits: tuple[str, ...]
    """Events published after the segment's last cycle."""
    spawns: tuple[str, ...] = ()
    """Subagents spawned at the segment's start (after its waits and handoff), before its work."""


@dataclass(frozen=True)
class TaskShape:
    """What is static about one task's work: its slots, its segments and its request prices."""

    index: int
    task: Task
    role: Role
    price: ModelPrice
    attempts: int
    """Attempts drawn per cycle (one when the role never fails)."""
    segments: tuple[Segment, ...]
    slot_segment: npt.NDArray[np.int64]
    """The segment of every slot."""
    handoff: npt.NDArray[np.int64]
    """Handoff tokens added to each cycle's requests (per cycle)."""
    context_tokens: int
    key: int
    cycle_prices: tuple[ModelPrice, ...] | None = None
    """Each cycle's prices, when some cycle runs on another model than the task's (``cycle_models``)."""
    compaction_min: float = 0.0
    """Minutes each compaction adds to its cycle (a timed agent loop's; none in ideal mode)."""

    @property
    def cycles(self) -> int:
        return self.task.cycles

    @property
    def slots(self) -> int:
        return self.task.cycles * self.attempts


def task_shape(
    index: int,
    task: Task,
    role: Role,
    price: ModelPrice,
    *,
    ideal: bool,
    per_slot: bool,
    cycle_prices: tuple[ModelPrice, ...] | None = None,
    spawns: dict[int, tuple[str, ...]] | None = None,
) -> TaskShape:
    """The static shape of ``task``'s work; ``per_slot`` cuts a segment per slot (rate limits apply);
    ``spawns``: cycle (from 1) -> subagents spawned at its start."""
    attempts = drawn_attempts(task, role)
    spawned_at = {cycle - 1: children for cycle, children in (spawns or {}).items()}
    waits_before: dict[int, list[str]] = {}
    for event, cycle in task.waits.items():
        waits_before.setdefault(cycle - 1, []).append(event)
    emits_after: dict[int, list[str]] = {}
    for event, cycle in task.emits.items():
        emits_after.setdefault(cycle - 1, []).append(event)
    sync_minutes = 0.0 if ideal else role.sync.minutes
    handoff_tokens = 0 if ideal else role.sync.handoff_tokens
    handoff = np.array(
        [handoff_tokens * len(waits_before.get(cycle, ())) for cycle in range(task.cycles)], dtype=np.int64
    )

    def sync_cost(cycle: int) -> float:
        events = waits_before.get(cycle, ())
        return sync_minutes * len(events) if events else 0.0

    segments: list[Segment] = []
    if per_slot:
        for cycle in range(task.cycles):
            for attempt in range(attempts):
                first = attempt == 0
                slot = cycle * attempts + attempt
                segments.append(
                    Segment(
                        first_cycle=cycle,
                        end_cycle=cycle + 1,
                        first_slot=slot,
                        end_slot=slot + 1,
                        waits=tuple(waits_before.get(cycle, ())) if first else (),
                        sync_min=sync_cost(cycle) if first else 0.0,
                        emits=(),
                        spawns=spawned_at.get(cycle, ()) if first else (),
                    )
                )
    else:
        start = 0
        for cycle in range(task.cycles):
            last = cycle == task.cycles - 1
            if last or cycle in emits_after or (cycle + 1) in waits_before or (cycle + 1) in spawned_at:
                segments.append(
                    Segment(
                        first_cycle=start,
                        end_cycle=cycle + 1,
                        first_slot=start * attempts,
                        end_slot=(cycle + 1) * attempts,
                        waits=tuple(waits_before.get(start, ())),
                        sync_min=sync_cost(start),
                        emits=tuple(emits_after.get(cycle, ())),
                        spawns=spawned_at.get(start, ()),
                    )
                )
                start = cycle + 1
    slot_segment = np.empty(task.cycles * attempts, dtype=np.int64)
    for position, segment in enumerate(segments):
        slot_segment[segment.first_slot : segment.end_slot] = position
    return TaskShape(
        index=index,
        task=task,
        role=role,
        price=price,
        attempts=attempts,
        segments=tuple(segments),
        slot_segment=slot_segment,
        handoff=handoff,
        context_tokens=role.tokens.context_tokens,
        key=task_key(task.id),
        cycle_prices=cycle_prices,
        compaction_min=0.0
        if ideal or role.calls is None or role.calls.minutes is None or role.calls.compaction is None
        else role.calls.compaction.minutes,
    )


def task_shapes(layout: Layout, *, ideal: bool, per_slot: bool) -> list[TaskShape]:
    """:func:`task_shape` of every task of ``layout``, in its order."""
    return [
        task_shape(
            position,
            task,
            layout.roles[task_id],
            layout.prices[task_id],
            ideal=ideal,
            per_slot=per_slot,
            cycle_prices=layout.cycle_prices.get(task_id),
            spawns=layout.spawns.get(task_id),
        )
        for position, (task_id, task) in enumerate(layout.tasks.items())
    ]


@dataclass(frozen=True)
class TaskProgram:
    """One task's work in every replication of a batch; arrays are ``[replication, ...]``."""

    ran: BoolArray
    """``[replication, slot]``: the attempt runs if the task gets that far."""
    duration_min: FloatArray
    """``[replication, slot]``: minutes of each attempt that runs (0 for the others)."""
    failed: BoolArray
    """``[replication, slot]``: the attempt runs and fails."""
    offset_min: FloatArray
    """``[replication, slot]``: minutes from its segment's start to the attempt's end."""
    segment_min: FloatArray
    """``[replication, segment]``: minutes of work in each segment (the last ``offset_min`` in it)."""
    fail_segment: IntArray
    """``[replication]``: the segment whose last cycle runs out of retries, or -1."""
    fail_cycle: IntArray
    """``[replication]``: that cycle (from 1), or 0."""
    length_min: FloatArray
    """``[replication]``: minutes of work when nothing interrupts it; infinite when it runs out of retries."""
    input_tokens: IntArray
    cache_write_tokens: IntArray
    cache_read_tokens: IntArray
    output_tokens: IntArray
    cost_usd: FloatArray
    """``[replication, slot]``: each request's tokens by kind and its cost (0 for slots that never run)."""
    compactions: IntArray
    """``[replication, slot]``: compaction calls of each attempt (agent loops only; else 0)."""
    calls: IntArray
    """``[replication, slot]``: API calls of each attempt that runs (agent loops only; else 0)."""


def _cost(
    price: ModelPrice, fresh: IntArray, written: IntArray, read: IntArray, output: IntArray
) -> FloatArray:
    """:func:`cycleplan.core.prices.cost_usd` over arrays, with the same operations in the same order."""
    total: FloatArray = (
        fresh * price.input_per_mtok
        + written * price.cache_write
        + read * price.cache_read
        + output * price.output_per_mtok
    ) / 1e6
    return total


def _costs(
    shape: TaskShape, fresh: IntArray, written: IntArray, read: IntArray, output: IntArray
) -> FloatArray:
    """Costs of ``[replication, cycle, ...]`` tokens: at the task's price, or at each cycle's own."""
    prices = shape.cycle_prices
    if prices is None:
        return _cost(shape.price, fresh, written, read, output)
    axes = (1, len(prices)) + (1,) * (fresh.ndim - 2)

    def per_cycle(name: str) -> FloatArray:
        return np.array([getattr(price, name) for price in prices]).reshape(axes)

    total: FloatArray = (
        fresh * per_cycle("input_per_mtok")
        + written * per_cycle("cache_write")
        + read * per_cycle("cache_read")
        + output * per_cycle("output_per_mtok")
    ) / 1e6
    return total


def _runs(
    failed: BoolArray, attempts: int, cycles: int
) -> tuple[BoolArray, IntArray, BoolArray, BoolArray, IntArray]:
    """From ``[replication, cycle, attempt]`` failure draws: which attempts run, how many each cycle
    takes, which cycles run out of retries, which replications fail the task, and at which cycle."""
    succeeded: BoolArray = ~failed
    any_success: BoolArray = np.asarray(succeeded.any(axis=2), dtype=bool)
    first_success = np.argmax(succeeded, axis=2)
    tries = np.where(any_success, first_success + 1, attempts)
    exhausted: BoolArray = ~any_success
    fails: BoolArray = np.asarray(exhausted.any(axis=1), dtype=bool)
    fail_cycle = np.where(fails, np.argmax(exhausted, axis=1), cycles)
    reached = np.arange(cycles)[None, :] <= fail_cycle[:, None]
    ran = (np.arange(attempts)[None, None, :] < tries[:, :, None]) & reached[:, :, None]
    return ran, tries, exhausted, fails, fail_cycle


def _timing(shape: TaskShape, duration: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each slot's offset in its segment, each segment's minutes, and the whole work's minutes."""
    count = duration.shape[0]
    offset = np.empty_like(duration)
    segment_min = np.empty((count, len(shape.segments)))
    for position, segment in enumerate(shape.segments):
        running = np.add.accumulate(duration[:, segment.first_slot : segment.end_slot], axis=1)
        offset[:, segment.first_slot : segment.end_slot] = running
        segment_min[:, position] = running[:, -1]
    length = np.add.accumulate(duration, axis=1)[:, -1] if duration.shape[1] else np.zeros(count)
    return offset, segment_min, length


def task_program(shape: TaskShape, draws: DrawBlock, rows: slice, *, shortcut: bool = True) -> TaskProgram:
    """The program of ``shape``'s task for replications ``rows`` of a block of draws (``shortcut``: take
    the shorter path when no cycle can fail; the tests compare both)."""
    if shape.role.calls is not None:
        return _loop_program(shape, draws, rows)
    if shortcut and shape.attempts == 1 and not draws.failed.any():
        return _sure_program(shape, draws, rows)
    attempts, cycles = shape.attempts, shape.cycles
    # [replication, cycle, attempt], so that flattening the last two axes gives slots in running order.
    minutes = np.ascontiguousarray(draws.duration_min[:, rows, :].transpose(1, 2, 0))
    fresh = draws.fresh_input[:, rows, :].transpose(1, 2, 0)
    output = draws.output[:, rows, :].transpose(1, 2, 0)
    failed = draws.failed[:, rows, :].transpose(1, 2, 0)
    count = minutes.shape[0]
    ran, tries, exhausted, fails, fail_cycle = _runs(failed, attempts, cycles)
    duration = np.where(ran, minutes, 0.0).reshape(count, cycles * attempts)
    offset, segment_min, length = _timing(shape, duration)
    fail_cycle_out = np.where(fails, fail_cycle, -1)
    last_slot = np.maximum(fail_cycle_out, 0) * attempts + attempts - 1
    fail_segment = np.where(fails, shape.slot_segment[last_slot], -1)

    # The conversation: a successful cycle adds its rounded growth to the history every later request
    # sends again; a failed attempt adds nothing.
    tokens = shape.role.tokens
    winner = np.minimum(tries - 1, attempts - 1)[:, :, None]
    kept_fresh = np.take_along_axis(fresh, winner, axis=2)[:, :, 0]
    kept_output = np.take_along_axis(output, winner, axis=2)[:, :, 0]
    growth = np.rint(tokens.history_growth * (kept_fresh + shape.handoff[None, :] + kept_output))
    growth = np.where(exhausted, 0, growth).astype(np.int64)
    history = np.cumsum(growth, axis=1) - growth
    prefix = tokens.context_tokens + history
    handoff = shape.handoff[None, :, None]
    zero = np.zeros(ran.shape, dtype=np.int64)
    if tokens.cache:
        earlier = np.concatenate([np.zeros((count, 1), dtype=np.int64), prefix[:, :-1]], axis=1)
        first = np.arange(attempts)[None, None, :] == 0
        read = np.where(first, earlier[:, :, None], prefix[:, :, None])
        written = np.where(first, (prefix - earlier)[:, :, None], 0)
        fresh_in = fresh + handoff
    else:
        read = zero
        written = zero
        fresh_in = prefix[:, :, None] + fresh + handoff
    fresh_in = np.where(ran, fresh_in, 0)
    written = np.where(ran, written, 0)
    read = np.where(ran, read, 0)
    out = np.where(ran, output, 0)
    flat = (count, cycles * attempts)
    return TaskProgram(
        ran=ran.reshape(flat),
        duration_min=duration,
        failed=(ran & failed).reshape(flat),
        offset_min=offset,
        segment_min=segment_min,
        fail_segment=fail_segment.astype(np.int64),
        fail_cycle=np.where(fails, fail_cycle + 1, 0).astype(np.int64),
        length_min=np.where(fails, np.inf, length),
        input_tokens=fresh_in.reshape(flat).astype(np.int64),
        cache_write_tokens=written.reshape(flat).astype(np.int64),
        cache_read_tokens=read.reshape(flat).astype(np.int64),
        output_tokens=out.reshape(flat).astype(np.int64),
        cost_usd=_costs(shape, fresh_in, written, read, out).reshape(flat),
        compactions=np.zeros(flat, dtype=np.int64),
        calls=np.zeros(flat, dtype=np.int64),
    )


def _sure_program(shape: TaskShape, draws: DrawBlock, rows: slice) -> TaskProgram:
    """:func:`task_program` when every cycle succeeds at its first attempt (the same numbers, sooner).

    Copies what it keeps of the draws: a view of some rows would keep the whole block alive."""
    duration = draws.duration_min[0, rows, :].copy()
    fresh = draws.fresh_input[0, rows, :]
    output = draws.output[0, rows, :].copy()
    count = duration.shape[0]
    offset, segment_min, length = _timing(shape, duration)
    tokens = shape.role.tokens
    growth = np.rint(tokens.history_growth * (fresh + shape.handoff[None, :] + output)).astype(np.int64)
    prefix = tokens.context_tokens + (np.cumsum(growth, axis=1) - growth)
    if tokens.cache:
        read = np.zeros_like(prefix)
        read[:, 1:] = prefix[:, :-1]
        written = prefix - read
        fresh_in = fresh + shape.handoff[None, :]
    else:
        read = written = np.zeros_like(prefix)
        fresh_in = prefix + fresh + shape.handoff[None, :]
    return TaskProgram(
        ran=np.ones(duration.shape, dtype=bool),
        duration_min=duration,
        failed=np.zeros(duration.shape, dtype=bool),
        offset_min=offset,
        segment_min=segment_min,
        fail_segment=np.full(count, -1, dtype=np.int64),
        fail_cycle=np.zeros(count, dtype=np.int64),
        length_min=length,
        input_tokens=fresh_in,
        cache_write_tokens=written,
        cache_read_tokens=read,
        output_tokens=output,
        cost_usd=_costs(shape, fresh_in, written, read, output),
        compactions=np.zeros(duration.shape, dtype=np.int64),
        calls=np.zeros(duration.shape, dtype=np.int64),
    )


def _loop_program(shape: TaskShape, draws: DrawBlock, rows: slice) -> TaskProgram:
    """:func:`task_program` for a role whose cycles are agent loops: each attempt's calls read and write
    the conversation as :func:`cycleplan.core.draws.loop_cycle` bills them, cycle after cycle; a failed
    attempt's calls are paid and its context dropped (the retry starts from the same state, now cached).
    Compactions add their minutes to the cycle when the loop times its calls."""
    loop = shape.role.calls
    assert loop is not None and draws.loop is not None
    attempts, cycles = shape.attempts, shape.cycles

    def by_slot(values: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        return np.ascontiguousarray(values[:, rows, :].transpose(1, 2, 0))

    minutes = by_slot(draws.duration_min).astype(float)
    failed = by_slot(draws.failed).astype(bool)
    calls = by_slot(draws.loop.calls).astype(float)
    growth = by_slot(draws.loop.growth).astype(float)
    output = by_slot(draws.loop.output).astype(float)
    count = minutes.shape[0]
    ran, _, _, fails, fail_cycle = _runs(failed, attempts, cycles)

    compaction = loop.compaction
    threshold = None if compaction is None else float(compaction.threshold_tokens)
    summary = 0.0 if compaction is None else float(compaction.summary_tokens)
    summary_output = 0.0 if compaction is None else float(compaction.output_tokens)
    read = np.zeros((count, cycles, attempts))
    written = np.zeros((count, cycles, attempts))
    out = np.zeros((count, cycles, attempts))
    compactions = np.zeros((count, cycles, attempts), dtype=np.int64)
    state = LoopState.start(shape.context_tokens, count)
    for cycle in range(cycles):
        for attempt in range(attempts):
            running = ran[:, cycle, attempt]
            if not running.any():
                continue
            done = loop_cycle(
                state,
                calls[:, cycle, attempt],
                growth[:, cycle, attempt],
                output[:, cycle, attempt],
                context_tokens=shape.context_tokens,
                threshold=threshold,
                summary_tokens=summary,
                compaction_output=summary_output,
            )
            read[:, cycle, attempt] = np.where(running, done.read, 0.0)
            written[:, cycle, attempt] = np.where(running, done.written, 0.0)
            out[:, cycle, attempt] = np.where(running, done.output, 0.0)
            compactions[:, cycle, attempt] = np.where(running, done.compactions, 0)
            kept = running & ~failed[:, cycle, attempt]
            state = LoopState(
                prefix=np.where(kept, done.after.prefix, state.prefix),
                cached=np.where(kept, done.after.cached, np.where(running, state.prefix, state.cached)),
            )
    if shape.compaction_min > 0:
        minutes = minutes + compactions * shape.compaction_min
    duration = np.where(ran, minutes, 0.0).reshape(count, cycles * attempts)
    offset, segment_min, length = _timing(shape, duration)
    fail_cycle_out = np.where(fails, fail_cycle, -1)
    last_slot = np.maximum(fail_cycle_out, 0) * attempts + attempts - 1
    fail_segment = np.where(fails, shape.slot_segment[last_slot], -1)

    handoff = np.where(ran, shape.handoff[None, :, None], 0).astype(np.int64)
    read_tokens = np.rint(read).astype(np.int64)
    written_tokens = np.rint(written).astype(np.int64)
    if shape.role.tokens.cache:
        fresh_in = handoff
    else:
        fresh_in = handoff + read_tokens + written_tokens
        read_tokens = np.zeros_like(read_tokens)
        written_tokens = np.zeros_like(written_tokens)
    out_tokens = np.rint(out).astype(np.int64)
    flat = (count, cycles * attempts)
    return TaskProgram(
        ran=ran.reshape(flat),
        duration_min=duration,
        failed=(ran & failed).reshape(flat),
        offset_min=offset,
        segment_min=segment_min,
        fail_segment=fail_segment.astype(np.int64),
        fail_cycle=np.where(fails, fail_cycle + 1, 0).astype(np.int64),
        length_min=np.where(fails, np.inf, length),
        input_tokens=fresh_in.reshape(flat),
        cache_write_tokens=written_tokens.reshape(flat),
        cache_read_tokens=read_tokens.reshape(flat),
        output_tokens=out_tokens.reshape(flat),
        cost_usd=_costs(shape, fresh_in, written_tokens, read_tokens, out_tokens).reshape(flat),
        compactions=compactions.reshape(flat),
        calls=np.where(ran, calls, 0.0).astype(np.int64).reshape(flat),
    )


@dataclass(frozen=True)
class TaskTiming:
    """What the engines' clocks need of a task's program (its :class:`TaskProgram`'s fields of the same
    names): a few numbers per replication and segment, none per attempt."""

    segment_min: FloatArray
    fail_segment: IntArray
    fail_cycle: IntArray
    length_min: FloatArray

    @classmethod
    def of(cls, program: TaskProgram) -> TaskTiming:
        return cls(program.segment_min, program.fail_segment, program.fail_cycle, program.length_min)


class Programs:
    """Every task's program for replications ``first`` to ``first + count - 1``.

    ``timings`` (per task, what the clocks need) are always kept. The full programs (``tasks``, per
    attempt) are kept too when ``keep`` is true; otherwise ``tasks[i]`` works task ``i``'s program out again
    from its draws each time it is asked for, so that a batch holds one task's attempts at a time (the
    same numbers: the draws depend on the seed, the block and the task only).
    """

    def __init__(
        self,
        shapes: list[TaskShape],
        seed: int,
        first: int,
        count: int,
        *,
        ideal: bool = False,
        keep: bool = True,
    ) -> None:
        self.shapes = shapes
        self.seed = seed
        self.first = first
        self.count = count
        self.ideal = ideal
        self.keep = keep
        kept: list[TaskProgram] = []
        self.timings: list[TaskTiming] = []
        for position in range(len(shapes)):
            program = self.program(position)
            self.timings.append(TaskTiming.of(program))
            if keep:
                kept.append(program)
        self.tasks: Sequence[TaskProgram] = kept if keep else _Worked(self)

    def timings_of(self, rows: IntArray) -> Programs:
        """The clocks' numbers of replications ``rows`` of the batch only, for an engine that reads
        nothing else (no rate limits): a SimPy run of a few replications then holds their numbers as
        lists, not the whole batch's. Its ``tasks`` is empty."""
        chosen = object.__new__(Programs)
        chosen.shapes, chosen.seed, chosen.ideal, chosen.keep = self.shapes, self.seed, self.ideal, False
        chosen.first, chosen.count = self.first, len(rows)
        chosen.timings = [
            TaskTiming(t.segment_min[rows], t.fail_segment[rows], t.fail_cycle[rows], t.length_min[rows])
            for t in self.timings
        ]
        chosen.tasks = []
        return chosen

    def program(self, position: int) -> TaskProgram:
        """Task ``position``'s program for the batch, worked out from its draws."""
        shape = self.shapes[position]
        first, count = self.first, self.count
        parts: list[TaskProgram] = []
        for block in range(first // BLOCK, (first + count - 1) // BLOCK + 1):
            low = max(first, block * BLOCK) - block * BLOCK
            high = min(first + count, (block + 1) * BLOCK) - block * BLOCK
            draws = draw_block(
                shape.task, shape.role, self.seed, 0 if self.ideal else block, ideal=self.ideal, key=shape.key
            )
            parts.append(task_program(shape, draws, slice(low, high)))
        return parts[0] if len(parts) == 1 else _concatenate(parts)


class _Worked(Sequence[TaskProgram]):
    """The programs of a batch that keeps none: each worked out again when asked for."""

    def __init__(self, programs: Programs) -> None:
        self.programs = programs

    def __len__(self) -> int:
        return len(self.programs.shapes)

    @overload
    def __getitem__(self, index: int) -> TaskProgram: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[TaskProgram]: ...
    def __getitem__(self, index: int | slice) -> TaskProgram | Sequence[TaskProgram]:
        if isinstance(index, slice):
            return [self.programs.program(position) for position in range(len(self))[index]]
        return self.programs.program(range(len(self))[index])


def _concatenate(parts: list[TaskProgram]) -> TaskProgram:
    fields = TaskProgram.__dataclass_fields__
    return TaskProgram(**{name: np.concatenate([getattr(part, name) for part in parts]) for name in fields})
