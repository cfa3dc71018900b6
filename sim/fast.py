"""The fast engine: a plan's clocks for every replication of a batch at once, as a max-plus recursion.

When lanes keep the plan's order and no rate limit binds, nothing in a run depends on the order in which
simultaneous things happen, so the times follow from the plan's graph alone. Taking units in an order
that respects every dependency, lane order, awaited event and shared-capacity order:

- a unit starts when its members' lanes are free (the previous task on each lane ended), every unit it
  comes after has ended, every unit planned before it that shares a capacity resource has started, and
  enough capacity is free (the earliest end of a holder that frees it);
- each member works its segments (:mod:`cycleplan.sim.programs`): before a segment it waits for the
  awaited events' publication times and pays the sync minutes, spawns its subagents there and waits
  for the last to return (the longest; their sum when they run inline, in the one-lane baseline), then
  adds the segment's minutes;
- a unit ends when its (first) member finishes; a race's other members stop then.

Every step is ``max`` and ``+`` (``min`` for races) over numpy arrays of replications, with the same
floating-point operations in the same order as the SimPy engine's clock, so both give the same times to
the bit. The result is the SimPy engine's :class:`cycleplan.sim.records.Records`, measured by the same
code. A replication that leaves this static model (a task runs out of retries, so cancellations follow;
a race ends in an exact tie; a losing racer never publishes an event someone waits for) is flagged for
the SimPy engine. :func:`static_reason` says why a model cannot use this engine at all.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import numpy.typing as npt

from cycleplan.core.rules import require_holding
from cycleplan.sim.programs import Programs
from cycleplan.sim.records import Records
from cycleplan.sim.shape import CANCELLED, DONE, RACE_LOST, Shape

require_holding(__name__)  # a waiting task keeps its lane, resources and slot (cycleplan.core.rules)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _order(shape: Shape) -> list[int] | None:
    """Units in an order that respects dependencies, lane queues, awaited events and shared-capacity
    order (by planned priority); None when those conflict, so the plan's order cannot be kept."""
    units = shape.units
    before: list[set[int]] = [set(unit.after) for unit in units]
    for queue in shape.queues:
        for earlier, later in itertools.pairwise(queue):
            one, other = shape.unit_of[earlier], shape.unit_of[later]
            if one != other:
                before[other].add(one)
    layout = shape.layout
    for unit in units:
        for task in shape.members[unit.index]:
            for event in layout.tasks[shape.names[task]].waits:
                emitter = shape.unit_of[shape.index[layout.emitter[event][0]]]
                if emitter < 0:
                    return None
                if emitter != unit.index:
                    before[unit.index].add(emitter)
    needs = [
        {resource for task in shape.members[unit.index] for resource in shape.demand[task]} for unit in units
    ]
    # Units sharing a resource go in priority order: an edge from the last earlier unit needing each
    # resource implies the rest (the same order as an edge from every earlier one, at a cost per unit).
    last_needing: dict[str, int] = {}
    for index in shape.by_priority:
        for resource in needs[index]:
            if resource in last_needing:
                before[index].add(last_needing[resource])
            last_needing[resource] = index
    remaining = [len(edges) for edges in before]
    after: list[list[int]] = [[] for _ in units]
    for index, edges in enumerate(before):
        for edge in edges:
            after[edge].append(index)
    ready = [(unit.priority, unit.index) for unit in units if not remaining[unit.index]]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, index = heapq.heappop(ready)
        order.append(index)
        for successor in after[index]:
            remaining[successor] -= 1
            if not remaining[successor]:
                heapq.heappush(ready, (units[successor].priority, successor))
    return order if len(order) == len(units) else None


def static_reason(shape: Shape) -> str | None:
    """Why the fast engine cannot run this shape, in words; None when it can."""
    if shape.dynamic:
        return (
            "dynamic dispatch hands a free lane whichever unit is ready first, an order only a clock can tell"
        )
    if shape.rate_limits is not None:
        return "rate limits make every request queue for shared token buckets in the order requests arrive"
    if shape.cache.get("order") is None:
        shape.cache["order"] = _order(shape) or []
    if not shape.cache["order"] and shape.units:
        return (
            "the plan's lane order cannot be kept (a unit waits for one queued behind it), so the run "
            "stalls and cancels what is left"
        )
    return None


def run(shape: Shape, programs: Programs) -> tuple[Records, BoolArray]:
    """Records of every replication of the batch, and which replications need the SimPy engine."""
    reason = static_reason(shape)
    if reason is not None:
        raise ValueError(f"the fast engine cannot run this model: {reason}")
    order: list[int] = shape.cache["order"]  # type: ignore[assignment]
    count = programs.count
    records = Records.empty(shape, count)
    event_row = {event: position for position, event in enumerate(records.events)}
    fallback = np.zeros(count, dtype=bool)
    lanes = len(shape.lanes)
    lane_free = [np.zeros(count) for _ in range(lanes)]
    unit_start: dict[int, FloatArray] = {}
    unit_end: dict[int, FloatArray] = {}
    capacity_holders: dict[str, list[int]] = {}
    needs_of: dict[int, dict[str, int]] = {}
    for index in order:
        need: dict[str, int] = {}
        for task in shape.members[index]:
            for resource, units in shape.demand[task].items():
                need[resource] = need.get(resource, 0) + units
        needs_of[index] = need
    waiters = {event for event, names in shape.layout.waiters.items() if names}
    emitted = records.emitted
    makespan = np.zeros(count)

    for index in order:
        unit = shape.units[index]
        members = shape.members[index]
        start = np.zeros(count)
        for task in members:
            start = np.maximum(start, lane_free[shape.planned_lane[task]])
        for dep in unit.after:
            start = np.maximum(start, unit_end[dep])
        need = needs_of[index]
        if need:
            start = _capacity(start, index, need, shape, capacity_holders, needs_of, unit_start, unit_end)
        unit_start[index] = start

        finishes: list[FloatArray] = []
        # Per member and segment: arrival, after the awaited events, its start (after the sync minutes),
        # its end.
        walks: list[list[tuple[FloatArray, FloatArray, FloatArray, FloatArray]]] = []
        for task in members:
            program = programs.timings[task]
            segments = shape.shapes[task].segments
            starts = records.segment_start[task]
            clock = start
            sync_wait = np.zeros(count)
            sync_paid = np.zeros(count)
            walk: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray]] = []
            for position, segment in enumerate(segments):
                arrival = clock
                if segment.waits:
                    for event in segment.waits:
                        published = emitted[event_row[event]]
                        fallback |= np.isnan(published)
                        moved = np.fmax(clock, published)
                        sync_wait = sync_wait + (moved - clock)
                        clock = moved
                held = clock
                if segment.sync_min > 0:
                    moved = clock + segment.sync_min
                    sync_paid = sync_paid + (moved - clock)
                    clock = moved
                if segment.spawns:
                    returned = _spawn(shape, programs, records, shape.segment_spawns[task][position], clock)
                    fallback |= returned[1]
                    records.blocked[task] = records.blocked[task] + (returned[0] - clock)
                    clock = returned[0]
                starts[:, position] = clock
                begun = clock
                clock = clock + program.segment_min[:, position]
                walk.append((arrival, held, begun, clock))
                for event in segment.emits:
                    emitted[event_row[event]] = clock
            fallback |= program.fail_segment >= 0
            records.sync_wait[task] = sync_wait
            records.sync_paid[task] = sync_paid
            records.lane[task] = shape.planned_lane[task]
            records.taken[task] = start
            finishes.append(clock)
            walks.append(walk)

        if len(members) == 1:
            end = finishes[0]
            task = members[0]
            records.end[task] = end
            records.status[task] = DONE
        else:
            stacked = np.stack(finishes)
            end = stacked.min(axis=0)
            winner = np.argmin(stacked, axis=0)
            fallback |= (stacked == end).sum(axis=0) > 1
            for position, task in enumerate(members):
                won = winner == position
                records.end[task] = end
                records.status[task] = np.where(won, DONE, CANCELLED)
                records.reason[task] = np.where(won, 0, RACE_LOST)
                fallback |= _stop_loser(records, shape, task, walks[position], end, ~won, event_row, waiters)
        for task in shape.skipped[index]:
            records.end[task] = end
            records.status[task] = CANCELLED
            records.reason[task] = RACE_LOST
        unit_end[index] = end
        for task in members:
            lane_free[shape.planned_lane[task]] = end
        makespan = np.maximum(makespan, end)
    records.makespan = makespan
    return records, fallback


def _spawn(
    shape: Shape, programs: Programs, records: Records, children: tuple[int, ...], at: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Run ``children`` from ``at``: each on its own lane at once, or (inline) one after the other on
    the parent's lane. Returns when the last returns, and the replications in which one fails (left
    to SimPy)."""
    clock = at
    returned = at
    handed = np.zeros(at.shape[0], dtype=bool)
    for child in children:
        program = programs.timings[child]
        begin = clock if shape.inline else at
        records.lane[child] = shape.planned_lane[child]
        records.taken[child] = begin
        offset = begin
        for position in range(program.segment_min.shape[1]):
            records.segment_start[child][:, position] = offset
            offset = offset + program.segment_min[:, position]
        records.end[child] = offset
        records.status[child] = DONE
        handed |= program.fail_segment >= 0
        clock = offset
        returned = np.maximum(returned, offset)
    return (clock if shape.inline else returned), handed


def _capacity(
    start: FloatArray,
    index: int,
    need: dict[str, int],
    shape: Shape,
    holders: dict[str, list[int]],
    needs_of: dict[int, dict[str, int]],
    unit_start: dict[int, FloatArray],
    unit_end: dict[int, FloatArray],
) -> FloatArray:
    """The start, delayed until every unit planned earlier that shares a resource has started and enough
    of each resource is free (the dispatch instant at which earlier holders' ends free it)."""
    earlier = {holder for resource in need for holder in holders.get(resource, [])}
    for holder in earlier:
        start = np.maximum(start, unit_start[holder])
    for resource, units in need.items():
        held = holders.setdefault(resource, [])
        room = shape.capacities[resource] - units
        if held:
            ends = np.stack([unit_end[holder] for holder in held])
            demand = np.array([needs_of[holder][resource] for holder in held], dtype=np.int64)
            ranking = np.argsort(-ends, axis=0, kind="stable")
            ordered = np.take_along_axis(ends, ranking, axis=0)
            used = np.cumsum(demand[ranking], axis=0)
            over = used > room
            first = np.argmax(over, axis=0)
            threshold = np.where(over.any(axis=0), ordered[first, np.arange(ends.shape[1])], -np.inf)
            start = np.maximum(start, threshold)
        held.append(index)
    return start


def _stop_loser(
    records: Records,
    shape: Shape,
    task: int,
    walk: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray]],
    end: FloatArray,
    lost: BoolArray,
    event_row: dict[str, int],
    waiters: set[str],
) -> BoolArray:
    """Cut a losing racer's records at the race's end, as the SimPy engine's interruption does; returns
    the replications to hand to SimPy (an exact tie with the race's end, or an event it never publishes
    that someone waits for)."""
    count = end.shape[0]
    handed = np.zeros(count, dtype=bool)
    starts = records.segment_start[task]
    segments = shape.shapes[task].segments
    sync_wait = np.zeros(count)
    sync_paid = np.zeros(count)
    stop = np.full(count, -1, dtype=np.int64)
    for position, (arrival, held, begun, finished) in enumerate(walk):
        for moment in (arrival, held, begun, finished):
            handed |= lost & (moment == end)
        waiting = lost & (arrival < end) & (end < held)
        paying = lost & (held <= end) & (end < begun)
        working = lost & (begun < end) & (end < finished)
        passed = lost & (finished < end)
        sync_wait = sync_wait + np.where(
            waiting, end - arrival, np.where(paying | working | passed, held - arrival, 0.0)
        )
        sync_wait = sync_wait + np.where(paying, end - held, 0.0)
        sync_paid = sync_paid + np.where(working | passed, begun - held, 0.0)
        stop = np.where(working, position, stop)
        starts[:, position] = np.where(lost & (end <= begun), np.nan, starts[:, position])
        for event in segments[position].emits:
            row = event_row[event]
            unpublished = lost & (end <= finished)
            records.emitted[row] = np.where(unpublished, np.nan, records.emitted[row])
            if event in waiters:
                handed |= unpublished
    records.sync_wait[task] = np.where(lost, sync_wait, records.sync_wait[task])
    records.sync_paid[task] = np.where(lost, sync_paid, records.sync_paid[task])
    records.stop_segment[task] = np.where(lost, stop, -1)
    return handed
