"""An engine's records of a batch of replications, what they measure, and the trace they stand for.

Both engines record the same few arrays per task and replication (:class:`Records`): the lane it took and
when, when each of its segments began, how and when it ended, and how long it was held. With the
programs (:mod:`cycleplan.sim.programs`) that is everything that happened, attempt by attempt.

:func:`measure` computes, for every replication of a batch at once, what
:func:`cycleplan.core.metrics.metrics` computes from one trace (makespan, work, tokens, cost, waste, waits,
criticality), plus each task's first cycle start and end and every attempt's time and spending for the
cumulative curves. It follows ``metrics()`` rule for rule; ``metrics()`` stays the definition, and the tests
hold the two to agree on traces that :func:`trace` writes from the same records. :func:`trace` is built only
when a trace is wanted (the median replication, or :func:`cycleplan.sim.run_replication`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cycleplan.core.metrics import EPS_MS, MS_PER_MIN
from cycleplan.core.model import Event
from cycleplan.core.prices import cost_usd
from cycleplan.sim.curves import Curves
from cycleplan.sim.programs import Programs, TaskProgram, _cost
from cycleplan.sim.shape import CANCELLED, DONE, FAILED, RACE_LOST, REASONS, Row, Shape

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class Records:
    """What an engine recorded for ``count`` replications: arrays ``[task, replication]`` unless noted."""

    lane: IntArray
    taken: FloatArray
    end: FloatArray
    status: IntArray
    reason: IntArray
    stop_segment: IntArray
    sync_wait: FloatArray
    sync_paid: FloatArray
    rate_wait: FloatArray
    blocked: FloatArray
    """Minutes blocked on the subagents the task spawned."""
    segment_start: list[FloatArray]
    """Per task, ``[replication, segment]``."""
    emitted: FloatArray
    """``[event, replication]`` in :attr:`events` order (NaN: never published)."""
    events: list[str]
    makespan: FloatArray
    """``[replication]``."""

    @classmethod
    def empty(cls, shape: Shape, count: int) -> Records:
        tasks = len(shape.names)
        events = sorted(shape.layout.emitter)
        return cls(
            lane=np.full((tasks, count), -1, dtype=np.int64),
            taken=np.full((tasks, count), np.nan),
            end=np.full((tasks, count), np.nan),
            status=np.zeros((tasks, count), dtype=np.int64),
            reason=np.zeros((tasks, count), dtype=np.int64),
            stop_segment=np.full((tasks, count), -1, dtype=np.int64),
            sync_wait=np.zeros((tasks, count)),
            sync_paid=np.zeros((tasks, count)),
            rate_wait=np.zeros((tasks, count)),
            blocked=np.zeros((tasks, count)),
            segment_start=[np.full((count, len(task.segments)), np.nan) for task in shape.shapes],
            emitted=np.full((len(events), count), np.nan),
            events=events,
            makespan=np.zeros(count),
        )

    @classmethod
    def from_rows(cls, shape: Shape, rows: Sequence[Row]) -> Records:
        records = cls.empty(shape, len(rows))
        for column in range(len(rows)):
            records.put(column, rows[column])
        return records

    def put(self, column: int, row: Row) -> None:
        """Store one replication's row in column ``column``."""
        self.lane[:, column] = row.lane
        self.taken[:, column] = row.taken
        self.end[:, column] = row.end
        self.status[:, column] = row.status
        self.reason[:, column] = row.reason
        self.stop_segment[:, column] = row.stop_segment
        self.sync_wait[:, column] = row.sync_wait
        self.sync_paid[:, column] = row.sync_paid
        self.rate_wait[:, column] = row.rate_wait
        self.blocked[:, column] = row.blocked
        for task, starts in enumerate(row.segment_start):
            self.segment_start[task][column] = starts
        for position, event in enumerate(self.events):
            self.emitted[position, column] = row.emitted.get(event, np.nan)
        self.makespan[column] = row.makespan


@dataclass
class Measures:
    """Per-replication measures of a batch, each ``[replication]`` unless noted."""

    values: dict[str, FloatArray]
    """The scalars of :data:`cycleplan.sim.prediction.SCALARS` but ``sequential_min`` and ``speedup``."""
    utilization_by_lane: dict[str, FloatArray]
    utilization_by_role: dict[str, FloatArray]
    waits_min: dict[str, FloatArray]
    tokens_by_role: dict[str, FloatArray]
    cost_by_role: dict[str, FloatArray]
    critical: BoolArray
    """``[task, replication]``: the task had zero slack."""
    first_start: FloatArray
    """``[task, replication]``: when its first cycle began (NaN: it never worked)."""
    finish: FloatArray
    """``[task, replication]``: when it ended, where it worked."""
    attempts: IntArray
    """How many cycle attempts ran (completed or interrupted), of every task."""
    tokens_curve: FloatArray
    """``[replication, point]``: tokens spent by each point of the grid :func:`measure` was given (every
    attempt counts from the first point at or after its end; see :class:`cycleplan.sim.curves.Curves`)."""
    cost_curve: FloatArray
    """``[replication, point]``: dollars spent by each point, likewise."""


@dataclass
class _Static:
    """What measuring a run shape needs that does not change between batches."""

    first_in_segment: list[BoolArray]
    after: list[list[int]]
    race_of: list[int]
    races: list[list[int]]
    lane_groups: list[IntArray]
    """Tasks that may take the same lane (its planned tasks; under dynamic dispatch, the tasks whose role
    it serves), one array per distinct set of two or more: two tasks share a lane only within one."""
    waits: list[list[tuple[int, int, int]]]
    """Per task: (event position, cycle from 1, emitter task)."""
    role_lanes: dict[str, list[int]]
    roles: list[str]
    subagent: list[bool] = field(default_factory=list)
    spawn_groups: list[tuple[int, list[int]]] = field(default_factory=list)
    """(parent, the subagents it spawns at one cycle), for each spawn."""
    order: list[int] = field(default_factory=list)


def _static(shape: Shape) -> _Static:
    layout = shape.layout
    names = shape.names
    index = shape.index
    first_in_segment = []
    for task in shape.shapes:
        marks = np.ones(len(task.slot_segment), dtype=bool)
        marks[1:] = task.slot_segment[1:] != task.slot_segment[:-1]
        first_in_segment.append(marks)
    groups: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        group = layout.tasks[name].race
        if group is not None:
            groups.setdefault(group, []).append(position)
    race_names = list(groups)
    race_number = {name: number for number, name in enumerate(race_names)}
    race_of = [race_number.get(layout.tasks[name].race or "", -1) for name in names]
    by_lane: dict[int, list[int]] = {}
    for position in range(len(names)):
        if shape.dynamic:
            for number in set(shape.lanes_for[position]):
                by_lane.setdefault(number, []).append(position)
        elif shape.planned_lane[position] >= 0:
            by_lane.setdefault(shape.planned_lane[position], []).append(position)
    lane_groups = [
        np.asarray(members, dtype=np.int64)
        for members in dict.fromkeys(tuple(members) for members in by_lane.values() if len(members) > 1)
    ]
    events = {event: position for position, event in enumerate(sorted(layout.emitter))}
    waits = [
        [
            (events[event], cycle, index[layout.emitter[event][0]])
            for event, cycle in layout.tasks[name].waits.items()
        ]
        for name in names
    ]
    role_lanes: dict[str, list[int]] = {}
    for lane, role in shape.spec.lanes.items():
        if role is not None:
            role_lanes.setdefault(role, []).append(shape.lane_index[lane])
    return _Static(
        first_in_segment=first_in_segment,
        after=[[index[dep] for dep in layout.tasks[name].after] for name in names],
        race_of=race_of,
        races=[groups[group] for group in race_names],
        lane_groups=lane_groups,
        waits=waits,
        role_lanes=role_lanes,
        roles=sorted({task.role for task in layout.tasks.values()}),
        subagent=[layout.tasks[name].spawned_by is not None for name in names],
        spawn_groups=[
            (index[parent], [index[child] for child in children])
            for parent, cycles in layout.spawns.items()
            for children in cycles.values()
        ],
    )


def _static_of(shape: Shape) -> _Static:
    found = shape.cache.get("measure")
    if not isinstance(found, _Static):
        found = shape.cache["measure"] = _static(shape)
    return found


@dataclass
class _Attempts:
    """One task's attempts in a batch, as they happened."""

    complete: BoolArray
    interrupted: BoolArray
    at: FloatArray
    """When each attempt's record is written: its end, or the interruption."""
    work: FloatArray
    input_tokens: IntArray
    cache_write_tokens: IntArray
    cache_read_tokens: IntArray
    output_tokens: IntArray
    cost: FloatArray


def _attempts(shape: Shape, static: _Static, program: TaskProgram, records: Records, task: int) -> _Attempts:
    task_shape = shape.shapes[task]
    slot_start = records.segment_start[task][:, task_shape.slot_segment]
    if not (records.stop_segment[task] >= 0).any() and not np.isnan(slot_start).any():
        # Nothing interrupted and every segment began: every attempt that runs ran in full.
        return _Attempts(
            complete=program.ran,
            interrupted=np.zeros(program.ran.shape, dtype=bool),
            at=np.where(program.ran, slot_start + program.offset_min, np.nan),
            work=program.duration_min,
            input_tokens=program.input_tokens,
            cache_write_tokens=program.cache_write_tokens,
            cache_read_tokens=program.cache_read_tokens,
            output_tokens=program.output_tokens,
            cost=program.cost_usd,
        )
    ran = program.ran & ~np.isnan(slot_start)
    end_at = slot_start + program.offset_min
    stop = records.end[task][:, None]
    stopped_in = task_shape.slot_segment[None, :] == records.stop_segment[task][:, None]
    late = ran & stopped_in & (end_at >= stop)
    interrupted = late & (np.cumsum(late, axis=1) == 1)
    complete = ran & ~late
    previous = np.zeros_like(program.offset_min)
    previous[:, 1:] = program.offset_min[:, :-1]
    previous[:, static.first_in_segment[task]] = 0.0
    elapsed = np.where(interrupted, stop - (slot_start + previous), 0.0)
    duration = program.duration_min
    share = np.divide(elapsed, duration, out=np.ones_like(elapsed), where=duration > 0)
    partial = np.rint(program.output_tokens * np.minimum(share, 1.0)).astype(np.int64)
    happened = complete | interrupted
    fresh = np.where(happened, program.input_tokens, 0)
    written = np.where(happened, program.cache_write_tokens, 0)
    read = np.where(happened, program.cache_read_tokens, 0)
    output = np.where(complete, program.output_tokens, np.where(interrupted, partial, 0))
    cost = np.where(
        complete,
        program.cost_usd,
        np.where(interrupted, _cost(task_shape.price, fresh, written, read, output), 0.0),
    )
    return _Attempts(
        complete=complete,
        interrupted=interrupted,
        at=np.where(complete, end_at, np.where(interrupted, stop, np.nan)),
        work=np.where(complete, duration, elapsed),
        input_tokens=fresh,
        cache_write_tokens=written,
        cache_read_tokens=read,
        output_tokens=output,
        cost=cost,
    )


def measure(shape: Shape, programs: Programs, records: Records, step_min: float) -> Measures:
    """What every replication of the batch measures (see :func:`cycleplan.core.metrics.metrics`), with the
    cumulative tokens and cost on a grid of step ``step_min``. Takes one task's program at a time."""
    static = _static_of(shape)
    count = records.makespan.shape[0]
    tasks = len(shape.names)
    lanes = len(shape.lanes)
    rows = np.arange(count)
    busy = np.zeros((lanes, count))
    kinds = {kind: np.zeros(count, dtype=np.int64) for kind in ("input", "write", "read", "output")}
    cost = np.zeros(count)
    waste_min = np.zeros(count)
    waste_tokens = np.zeros(count, dtype=np.int64)
    waste_cost = np.zeros(count)
    failed_cycles = np.zeros(count, dtype=np.int64)
    context = np.zeros(count, dtype=np.int64)
    tokens_by_role = {role: np.zeros(count) for role in static.roles}
    cost_by_role = {role: np.zeros(count) for role in static.roles}
    first_start = np.full((tasks, count), np.nan)
    finish = np.full((tasks, count), np.nan)
    attempts = np.zeros(count, dtype=np.int64)
    curves = Curves(count, step_min)
    cycle_end: dict[tuple[int, int], FloatArray] = {}
    # The end of the cycle before each awaited event (1-based cycle numbers), for the critical walk.
    needed = {(task, cycle - 1) for task in range(tasks) for _, cycle, _ in static.waits[task] if cycle > 1}

    for task in range(tasks):
        program = programs.tasks[task]
        happened = _attempts(shape, static, program, records, task)
        task_shape = shape.shapes[task]
        role = shape.role[task]
        lane = records.lane[task]
        started = lane >= 0
        work = happened.work.sum(axis=1)
        busy[lane[started], rows[started]] += work[started]
        counts = (
            happened.input_tokens
            + happened.cache_write_tokens
            + happened.cache_read_tokens
            + happened.output_tokens
        )
        kinds["input"] += happened.input_tokens.sum(axis=1)
        kinds["write"] += happened.cache_write_tokens.sum(axis=1)
        kinds["read"] += happened.cache_read_tokens.sum(axis=1)
        kinds["output"] += happened.output_tokens.sum(axis=1)
        spent = happened.cost.sum(axis=1)
        cost += spent
        tokens_by_role[role] += counts.sum(axis=1)
        cost_by_role[role] += spent
        failed = happened.complete & program.failed
        unfinished = records.status[task] != DONE
        if failed.any() or unfinished.any() or happened.interrupted.any():
            failed_cycles += failed.sum(axis=1)
            wasted = happened.interrupted | (happened.complete & (failed | unfinished[:, None]))
            waste_min += np.where(wasted, happened.work, 0.0).sum(axis=1)
            waste_tokens += np.where(wasted, counts, 0).sum(axis=1)
            waste_cost += np.where(wasted, happened.cost, 0.0).sum(axis=1)
        context += np.where(started, task_shape.context_tokens, 0)
        worked = ~np.isnan(records.segment_start[task][:, 0])
        first_start[task] = np.where(worked, records.segment_start[task][:, 0], np.nan)
        finish[task] = np.where(worked, records.end[task], np.nan)
        attempts += (happened.complete | happened.interrupted).sum(axis=1)
        curves.add(happened.at, counts.astype(np.float64), happened.cost)
        for number in range(1, task_shape.cycles + 1):
            if (task, number) in needed:
                slots = happened.at[:, (number - 1) * task_shape.attempts : number * task_shape.attempts]
                cycle_end[(task, number)] = _nanmax(slots, axis=1)

    tokens_curve, cost_curve = curves.values()
    makespan = records.makespan
    work_total = _sum_rows(busy)
    positive = makespan > 0
    safe = np.where(positive, makespan, 1.0)

    def share(work: FloatArray, lane_total: int) -> FloatArray:
        return np.where(positive, work / (lane_total * safe), 0.0)

    dependency, lane_wait = _queueing(shape, static, records)
    status = records.status
    cancelled = status == CANCELLED
    total_tokens = kinds["input"] + kinds["write"] + kinds["read"] + kinds["output"]
    values: dict[str, FloatArray] = {
        "makespan_min": makespan.copy(),
        "cost_usd": cost,
        "tokens_total": total_tokens.astype(np.float64),
        "tokens_read": (total_tokens - kinds["output"]).astype(np.float64),
        "input_tokens": kinds["input"].astype(np.float64),
        "cache_write_tokens": kinds["write"].astype(np.float64),
        "cache_read_tokens": kinds["read"].astype(np.float64),
        "output_tokens": kinds["output"].astype(np.float64),
        "context_tokens": context.astype(np.float64),
        "utilization": share(work_total, max(lanes, 1)),
        "work_min": work_total,
        "failures": (status == FAILED).sum(axis=0).astype(np.float64),
        "failed_cycles": failed_cycles.astype(np.float64),
        "cancellations": cancelled.sum(axis=0).astype(np.float64),
        "waste_min": waste_min,
        "waste_tokens": waste_tokens.astype(np.float64),
        "waste_cost_usd": waste_cost,
        "blocked_min": _sum_rows(records.blocked),
        "completed": (
            (status != 0).all(axis=0)
            & ~(status == FAILED).any(axis=0)
            & ~(cancelled & (records.reason != RACE_LOST)).any(axis=0)
        ).astype(np.float64),
    }
    return Measures(
        values=values,
        utilization_by_lane={name: share(busy[position], 1) for position, name in enumerate(shape.lanes)},
        utilization_by_role={
            role: share(_sum_rows(busy[positions]), len(positions))
            for role, positions in static.role_lanes.items()
        },
        waits_min={
            "dependency": dependency,
            "sync": _sum_rows(records.sync_wait + records.sync_paid),
            "lane": lane_wait,
            "rate_limit": _sum_rows(records.rate_wait),
        },
        tokens_by_role=tokens_by_role,
        cost_by_role=cost_by_role,
        critical=_critical(shape, static, records, cycle_end),
        first_start=first_start,
        finish=finish,
        attempts=attempts,
        tokens_curve=tokens_curve,
        cost_curve=cost_curve,
    )


def _sum_rows(values: FloatArray) -> FloatArray:
    """The sum over the first axis (tasks or lanes), added row after row: numpy's own ``sum(axis=0)``
    adds that way too, except for a batch of one replication, where it sums pairwise and the last bits
    could differ with the batch's size."""
    total = np.zeros(values.shape[1:])
    for row in values:
        total += row
    return total


def _nanmax(values: FloatArray, axis: int) -> FloatArray:
    """Maximum ignoring NaN; NaN where every value is NaN (without numpy's warning)."""
    filled = np.where(np.isnan(values), -np.inf, values)
    top: FloatArray = filled.max(axis=axis) if filled.shape[axis] else np.full(filled.shape[0], -np.inf)
    return np.where(np.isneginf(top), np.nan, top)


def _races(static: _Static, records: Records) -> tuple[list[FloatArray], list[IntArray]]:
    """Each race group's end (the last member to stop) and the member that decided it (the first winner
    in task order, else the last to stop), as ``metrics()`` takes them."""
    ends: list[FloatArray] = []
    chosen: list[IntArray] = []
    for members in static.races:
        member_end = records.end[members]
        ended = ~np.isnan(member_end)
        ends.append(_nanmax(member_end, axis=0))
        won = (records.status[members] == DONE) & ended
        first_winner = np.argmax(won, axis=0)
        latest = np.argmax(np.where(ended, member_end, -np.inf), axis=0)
        pick = np.where(won.any(axis=0), first_winner, latest)
        chosen.append(np.asarray(members, dtype=np.int64)[pick])
    return ends, chosen


def _resolved(static: _Static, records: Records, races: list[FloatArray], dep: int) -> FloatArray:
    group = static.race_of[dep]
    return races[group] if group >= 0 else records.end[dep]


def _sharing(static: _Static, lane: IntArray) -> list[tuple[IntArray, BoolArray]]:
    """Each lane group's tasks, and, per lane they took, which of them took it in which replication
    (``[member, replication]``)."""
    found = []
    for members in static.lane_groups:
        lanes = lane[members]
        for taken in np.unique(lanes).tolist():
            if taken < 0:
                continue
            on = lanes == taken
            if (on.sum(axis=0) > 1).any():
                found.append((members, on))
    return found


def _count_below(values: FloatArray, queries: FloatArray, inclusive: bool) -> IntArray:
    """Per column, how many of ``values[:, column]`` lie below each of ``queries[:, column]`` (or at it,
    when ``inclusive``), as ``searchsorted`` would say, for every column at once."""
    merged = np.concatenate([values, queries])
    is_value = np.concatenate(
        [np.ones(values.shape, dtype=np.int64), np.zeros(queries.shape, dtype=np.int64)]
    )
    # On a tie, values first when they count (inclusive), queries first when they do not.
    order = np.lexsort((is_value if not inclusive else 1 - is_value, merged), axis=0)
    below = np.cumsum(np.take_along_axis(is_value, order, axis=0), axis=0)
    counts = np.empty_like(below)
    np.put_along_axis(counts, order, below, axis=0)
    return counts[values.shape[0] :]


def _touching_pairs(
    static: _Static, lane: IntArray, taken: FloatArray, end: FloatArray
) -> list[tuple[int, int]]:
    """Every (task, other task) that took the same lane and where the other ended when the task took
    the lane (within twice :data:`EPS_MS`), in some replication: the only pairs whose lane can hold the
    task up (``taken`` and ``end`` in milliseconds). Found per lane by sorting the ends, not by trying
    every pair of its tasks."""
    pairs: set[tuple[int, int]] = set()
    for members, on in _sharing(static, lane):
        ends = np.where(on & ~np.isnan(end[members]), end[members], np.inf)
        starts = np.where(on, taken[members], np.nan)
        order = np.argsort(ends, axis=0, kind="stable")
        sorted_ends = np.take_along_axis(ends, order, axis=0)
        low = _count_below(sorted_ends, np.where(on, starts - 2 * EPS_MS, np.inf), inclusive=False)
        high = _count_below(sorted_ends, np.where(on, starts + 2 * EPS_MS, -np.inf), inclusive=True)
        width = np.where(on, high - low, 0)
        size = len(members)
        for offset in range(int(width.max(initial=0))):
            reach = on & (offset < width)
            row = np.minimum(low + offset, size - 1)
            other = np.take_along_axis(order, row, axis=0)
            one = np.broadcast_to(np.arange(size)[:, None], other.shape)
            codes = np.unique(one[reach] * size + other[reach])
            for code in codes.tolist():
                first, second = divmod(code, size)
                if first != second:
                    pairs.add((int(members[first]), int(members[second])))
    return sorted(pairs)


def _queueing(shape: Shape, static: _Static, records: Records) -> tuple[FloatArray, FloatArray]:
    """Lane-minutes lost to unfinished dependencies, and task-minutes ready without a lane."""
    race_ends, _ = _races(static, records)
    taken, end, lane = records.taken, records.end, records.lane
    count = records.makespan.shape[0]
    before = np.zeros(taken.shape)
    end_or_start = np.where(np.isnan(end), taken, end)
    # When each task's lane was last freed before it took it: the latest end (or start) of any task that
    # took the same lane earlier (an earlier start, or the same start and an earlier end). Per lane, a
    # sort by (start, end) and a running maximum, rather than every pair of its tasks.
    for members, on in _sharing(static, lane):
        starts = np.where(on, taken[members], np.inf)
        ends = np.where(on, end_or_start[members], np.inf)
        order = np.lexsort((ends, starts), axis=0)
        sorted_starts = np.take_along_axis(starts, order, axis=0)
        sorted_ends = np.take_along_axis(ends, order, axis=0)
        latest = np.zeros_like(sorted_ends)
        latest[1:] = np.maximum(np.maximum.accumulate(sorted_ends, axis=0)[:-1], 0.0)
        # Tasks with the same start and end are not earlier than each other: each takes the latest
        # end before the first of them.
        new = np.ones(sorted_ends.shape, dtype=bool)
        new[1:] = (sorted_starts[1:] != sorted_starts[:-1]) | (sorted_ends[1:] != sorted_ends[:-1])
        first = np.maximum.accumulate(np.where(new, np.arange(len(members))[:, None], 0), axis=0)
        freed = np.empty_like(latest)
        np.put_along_axis(freed, order, np.take_along_axis(latest, first, axis=0), axis=0)
        before[members] = np.where(on, np.maximum(before[members], freed), before[members])
    dependency = np.zeros(count)
    waiting = np.zeros(count)
    for task in range(len(shape.names)):
        if static.subagent[task]:
            continue  # a subagent starts when it is spawned: it never waits for a lane or a dependency
        started = lane[task] >= 0
        ready = np.zeros(count)
        for dep in static.after[task]:
            resolved = _resolved(static, records, race_ends, dep)
            ready = np.where(np.isnan(resolved), ready, np.maximum(ready, resolved))
        start = np.where(started, taken[task], 0.0)
        dependency += np.where(started, np.maximum(0.0, np.minimum(ready, start) - before[task]), 0.0)
        waiting += np.where(started, np.maximum(0.0, start - ready), 0.0)
    return dependency, waiting


def _critical(
    shape: Shape, static: _Static, records: Records, cycle_end: dict[tuple[int, int], FloatArray]
) -> BoolArray:
    """Tasks with zero slack, walking back from the last to finish through whatever held each one up
    (as :func:`cycleplan.core.metrics._critical`), for every replication at once."""
    tasks = len(shape.names)
    taken = records.taken * MS_PER_MIN
    end = records.end * MS_PER_MIN
    status = records.status
    started = records.lane >= 0
    ended = ~np.isnan(end)
    finished = started & ended & (status != CANCELLED)
    last = _nanmax(np.where(finished, end, np.nan), axis=0)
    critical = finished & (np.abs(end - last[None, :]) <= EPS_MS)
    race_ends_min, chosen = _races(static, records)
    race_ends = [values * MS_PER_MIN for values in race_ends_min]
    late = taken > EPS_MS
    emitted = records.emitted * MS_PER_MIN

    edges: list[tuple[int, int, BoolArray]] = []

    def push_race(one: int, group: int, when: BoolArray) -> None:
        for member in static.races[group]:
            edges.append((one, member, when & (chosen[group] == member)))

    for one in range(tasks):
        for dep in static.after[one]:
            group = static.race_of[dep]
            if group >= 0:
                push_race(one, group, late[one] & (np.abs(race_ends[group] - taken[one]) <= EPS_MS))
            else:
                edges.append((one, dep, late[one] & (np.abs(end[dep] - taken[one]) <= EPS_MS)))
        for event, cycle, emitter in static.waits[one]:
            reached = taken[one]
            if cycle > 1 and (one, cycle - 1) in cycle_end:
                at = cycle_end[(one, cycle - 1)] * MS_PER_MIN
                reached = np.where(np.isnan(at), reached, at)
            edges.append((one, emitter, ~np.isnan(emitted[event]) & (emitted[event] > reached + EPS_MS)))
    for one, other in _touching_pairs(static, records.lane, taken, end):
        touching = (
            (records.lane[other] == records.lane[one])
            & started[one]
            & started[other]
            & late[one]
            & ended[other]
            & (np.abs(end[other] - taken[one]) <= EPS_MS)
        )
        if static.race_of[other] >= 0:
            push_race(one, static.race_of[other], touching & (status[other] == CANCELLED))
        edges.append((one, other, touching & (status[other] != CANCELLED)))

    for parent, children in static.spawn_groups:
        group_end = _nanmax(end[children], axis=0)
        for child in children:
            edges.append((parent, child, ended[child] & (end[child] == group_end)))

    critical &= started
    # Only edges that hold in some replication matter; walking them from the tasks that end latest
    # (typically) settles most of the walk in one pass, and passes repeat until nothing changes.
    live = [(one, other, when & started[other]) for one, other, when in edges if when.any()]
    rank = np.nan_to_num(_nanmax(end, axis=1), nan=-np.inf)
    live.sort(key=lambda edge: -rank[edge[0]])
    changed = True
    while changed:
        changed = False
        for one, other, when in live:
            gained = critical[one] & when & ~critical[other]
            if gained.any():
                critical[other] |= gained
                changed = True
    return np.asarray(critical, dtype=bool)


# --------------------------------------------------------------------------------------------------
# The trace of one replication


def attempts_in(shape: Shape, programs: Programs, records: Records, column: int) -> int:
    """How many cycle attempts ran in replication ``column`` of the batch: the ``cycle_completed`` events
    its trace holds."""
    static = _static_of(shape)
    found = 0
    for task in range(len(shape.names)):
        if records.lane[task, column] < 0:
            continue
        happened = _attempts(shape, static, programs.tasks[task], records, task)
        found += int((happened.complete[column] | happened.interrupted[column]).sum())
    return found


def trace(
    shape: Shape,
    programs: Programs,
    records: Records,
    column: int,
    header: dict[str, Any],
    group_id: str,
    *,
    cycles: bool = True,
) -> list[Event]:
    """The events of replication ``column`` of the batch, in the ONE platform's schema.

    Without ``cycles``, no ``cycle_completed`` event is written (a trace for Gantt charts of runs too big
    to keep every attempt): the tasks' starts, published events and ends stay, and a cancelled task's end
    carries all its waits, since no cycle records them."""
    static = _static_of(shape)
    per_task: list[tuple[float, list[tuple[float, Event]]]] = []

    def event(actor: str, target: str, at_min: float, metadata: dict[str, Any]) -> tuple[float, Event]:
        return at_min, Event(
            actor_id=actor,
            target_id=target,
            group_id=group_id,
            timestamp=at_min * MS_PER_MIN,
            metadata=metadata,
        )

    emitted = {name: float(records.emitted[position, column]) for position, name in enumerate(records.events)}
    for task, name in enumerate(shape.names):
        status = int(records.status[task, column])
        if status == 0:
            continue
        lane_index = int(records.lane[task, column])
        lane = shape.lanes[lane_index] if lane_index >= 0 else shape.spec.lane_of.get(name, "")
        task_shape = shape.shapes[task]
        role = task_shape.role
        program = programs.tasks[task]
        out: list[tuple[float, Event]] = []
        end_min = float(records.end[task, column])
        taken = float(records.taken[task, column])
        sync_attributed = rate_attributed = blocked_attributed = 0.0
        if lane_index >= 0:
            out.append(
                event(
                    lane,
                    name,
                    taken,
                    {
                        "action": "task_started",
                        "role": task_shape.task.role,
                        "model": role.model,
                        "context_tokens": role.tokens.context_tokens,
                    },
                )
            )
            happened = _attempts(shape, static, program, records, task)
            starts = records.segment_start[task][column]
            attempts = task_shape.attempts
            arrival = taken
            pending_sync = pending_paid = pending_rate = pending_blocked = 0.0
            seen_segment = -1
            for slot in range(task_shape.slots):
                complete = bool(happened.complete[column, slot])
                interrupted = bool(happened.interrupted[column, slot])
                if not (complete or interrupted):
                    continue
                segment_index = int(task_shape.slot_segment[slot])
                if segment_index != seen_segment:
                    segment = task_shape.segments[segment_index]
                    begun = float(starts[segment_index])
                    held_until = arrival
                    if segment.waits:
                        held_until = max([arrival, *(emitted[e] for e in segment.waits)])
                        pending_sync += held_until - arrival
                        if segment.sync_min > 0:
                            after_sync = held_until + segment.sync_min
                            pending_paid += after_sync - held_until
                            held_until = after_sync
                    if segment.spawns:
                        returned = [
                            float(records.end[child, column])
                            for child in shape.segment_spawns[task][segment_index]
                            if not math.isnan(records.end[child, column])
                        ]
                        if returned:
                            pending_blocked += max(returned) - held_until
                            held_until = max(returned)
                    pending_rate += begun - held_until
                    seen_segment = segment_index
                cycle, attempt = divmod(slot, attempts)
                at = float(happened.at[column, slot])
                failed = bool(program.failed[column, slot]) or interrupted
                if cycles:
                    metadata: dict[str, Any] = {
                        "action": "cycle_completed",
                        "cycle": cycle + 1,
                        "attempt": attempt + 1,
                        "failed": failed,
                    }
                    if interrupted:
                        metadata["interrupted"] = True
                    fresh = int(happened.input_tokens[column, slot])
                    written = int(happened.cache_write_tokens[column, slot])
                    read = int(happened.cache_read_tokens[column, slot])
                    output = int(happened.output_tokens[column, slot])
                    metadata.update(
                        {
                            "duration_ms": float(happened.work[column, slot]) * MS_PER_MIN,
                            "sync_wait_ms": pending_sync * MS_PER_MIN,
                            "sync_ms": pending_paid * MS_PER_MIN,
                            "rate_limit_wait_ms": pending_rate * MS_PER_MIN,
                            "input_tokens": fresh,
                            "cache_creation_input_tokens": written,
                            "cache_read_input_tokens": read,
                            "output_tokens": output,
                            "cost_usd": cost_usd(
                                task_shape.price
                                if task_shape.cycle_prices is None
                                else task_shape.cycle_prices[cycle],
                                fresh,
                                written,
                                read,
                                output,
                            ),
                        }
                    )
                    if pending_blocked > 0:
                        metadata["blocked_ms"] = pending_blocked * MS_PER_MIN
                        blocked_attributed += pending_blocked
                        pending_blocked = 0.0
                    if role.calls is not None:
                        metadata["calls"] = int(program.calls[column, slot])
                        metadata["compaction_calls"] = int(program.compactions[column, slot])
                    if task_shape.task.cycle_models:
                        metadata["model"] = task_shape.task.model_of(role, cycle + 1)
                    sync_attributed += pending_sync + pending_paid
                    rate_attributed += pending_rate
                    pending_sync = pending_paid = pending_rate = 0.0
                    out.append(event(lane, name, at, metadata))
                if interrupted:
                    continue
                arrival = at
                if not failed:
                    for emitted_event, emit_cycle in task_shape.task.emits.items():
                        published = emitted.get(emitted_event, math.nan)
                        if emit_cycle == cycle + 1 and not math.isnan(published):
                            out.append(
                                event(lane, name, published, {"action": emitted_event, "cycle": cycle + 1})
                            )
        reason = int(records.reason[task, column])
        if status == DONE:
            out.append(event(lane, name, end_min, {"action": "task_complete"}))
        elif status == FAILED:
            tries = task_shape.attempts
            cycle = int(program.fail_cycle[column])
            out.append(
                event(
                    lane,
                    name,
                    end_min,
                    {
                        "action": "task_failed",
                        "error": f"cycle {cycle} failed {tries} time{'s' if tries != 1 else ''}; "
                        "no retries left",
                        "shouldCancelParallel": role.failure.cancel_parallel,
                        "cycle": cycle,
                    },
                )
            )
        else:
            metadata = {"action": "task_cancelled", "reason": REASONS[reason]}
            if lane_index >= 0 and reason != 0:
                held = float(records.sync_wait[task, column] + records.sync_paid[task, column])
                metadata["sync_wait_ms"] = max(held - sync_attributed, 0.0) * MS_PER_MIN
                rate = float(records.rate_wait[task, column])
                metadata["rate_limit_wait_ms"] = max(rate - rate_attributed, 0.0) * MS_PER_MIN
                blocked = float(records.blocked[task, column]) - blocked_attributed
                if blocked > 0:
                    # Cancelled while its subagents ran: no cycle of its records that time.
                    metadata["blocked_ms"] = blocked * MS_PER_MIN
            out.append(event(lane, name, end_min, metadata))
        first = taken if lane_index >= 0 else end_min
        per_task.append((first, out))
    per_task.sort(key=lambda item: item[0])
    events = [item for _, items in per_task for item in items]
    events.sort(key=lambda item: item[0])
    makespan = float(records.makespan[column])
    start = Event(actor_id="cycleplan", target_id=group_id, group_id=group_id, timestamp=0.0, metadata=header)
    complete_event = Event(
        actor_id="cycleplan",
        target_id=group_id,
        group_id=group_id,
        timestamp=makespan * MS_PER_MIN,
        metadata={"action": "run_complete", "makespan_min": makespan},
    )
    return [start, *(item for _, item in events), complete_event]


__all__ = ["Measures", "Records", "attempts_in", "measure", "trace"]
