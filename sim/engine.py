"""The SimPy engine: lanes take units, tasks work their segments, and every run fills a row of records.

A SimPy process per running task works its segments (:mod:`cycleplan.sim.programs`): before a segment it
waits for awaited events while holding its lane and pays the sync handoff, then works the whole segment
with one timeout, since nothing inside one can make it wait. Under rate limits every attempt is a segment
of its own and first asks the organisation's buckets: refused, it waits its retry-after with the
clients' jitter and asks again (:mod:`cycleplan.core.rules`), on a stream of jitter draws of each
replication's own (:data:`RETRY_STREAM`). A task whose cycle runs out of retries fails
at the end of that cycle's segment. Lanes are not processes: whenever a task ends, :meth:`Run.dispatch`
hands freed lanes their next unit, either in the plan's order (``plan``: each lane runs its queue in
order, as the executor does) or by priority (``dynamic``: a free lane takes the ready unit planned
earliest). A unit's members start together; a race's first member to finish wins and the others are
interrupted. A task that fails for good cancels everything that depends on it (and with
``cancel_parallel`` the running tasks of its role).

The engine writes no events: it records when each task took its lane, when each segment began, when each
event was published, how each task ended and how long it was held, into :class:`Row`. The measures and
the trace are derived from those records (:mod:`cycleplan.sim.records`). The clock is SimPy's, in
minutes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy
from simpy.events import Initialize

from cycleplan.core.buckets import TokenBuckets
from cycleplan.core.rules import require_holding, retry_wait
from cycleplan.sim.layout import Unit
from cycleplan.sim.shape import (
    CANCEL_PARALLEL,
    CANCELLED,
    DEPENDENCY_FAILED,
    DONE,
    FAILED,
    PENDING,
    RACE_LOST,
    RUNNING,
    STALLED,
    Batch,
    Row,
    Shape,
)

require_holding(__name__)  # a waiting task keeps its lane, resources and slot (cycleplan.core.rules)

NAN = math.nan

RETRY_STREAM = 4
"""The spawn-key tag of a replication's retry jitter draws (the cycle draws use 0, the agent loop's 1,
the posterior's 2, the forecast's 3)."""


class Run:
    """One replication of one run shape."""

    def __init__(self, shape: Shape, batch: Batch, row: int, *, walk: bool = True) -> None:
        self.shape = shape
        self.batch = batch
        self.row = row
        self.walk = walk
        self.env = simpy.Environment()
        count = len(shape.names)
        self.unit_state = [PENDING] * len(shape.units)
        self.fired: dict[str, simpy.Event] = {}
        self.record = Row(
            lane=[-1] * count,
            taken=[NAN] * count,
            end=[NAN] * count,
            status=[PENDING] * count,
            reason=[0] * count,
            stop_segment=[-1] * count,
            sync_wait=[0.0] * count,
            sync_paid=[0.0] * count,
            rate_wait=[0.0] * count,
            segment_start=[[NAN] * segments for segments in shape.segment_counts],
            blocked=[0.0] * count,
        )

    def _prepare(self) -> None:
        """The state central dispatch keeps (a walked run needs none of it)."""
        shape = self.shape
        lanes = len(shape.lanes)
        self.buckets = TokenBuckets(shape.rate_limits) if shape.rate_limits is not None else None
        if self.buckets is not None:
            programs = self.batch.source
            replication = programs.first + self.row
            sequence = np.random.SeedSequence(programs.seed, spawn_key=(replication, RETRY_STREAM))
            self.jitter = random.Random(int(sequence.generate_state(1)[0]))
        self.task_state = [PENDING] * len(shape.names)
        self.lane_task = [-1] * lanes
        self.position = [0] * lanes
        self.used = dict.fromkeys(shape.capacities, 0)
        self.cancelling: set[int] = set()
        self.cancel_on_start: dict[int, int] = {}
        self.lane_process: list[simpy.Process | None] = [None] * lanes
        self.next_task = [-1] * lanes
        """The task handed to each lane and not yet begun by its process."""
        self.wake: list[simpy.Event | None] = [None] * lanes
        """The event an idle lane's process waits on."""
        self.started = False
        """Lane processes exist (the first dispatch happens before they do)."""
        self.unresolved = len(shape.units)
        self.waiting_after = list(shape.after_count)
        self.candidates: list[int] = []
        """Units that may have become startable since the last dispatch (plan dispatch)."""
        self.full_scan = True
        """Look at every lane on the next dispatch (at the start, and after cancellations)."""

    # ---------------------------------------------------------------------------------------------
    # Running

    def run(self) -> Row:
        """Run to the end; returns the records.

        When nothing can interrupt anything in this replication (a straight shape, see
        :attr:`Shape.straight`, and no task runs out of retries), each lane walks its queue as its own
        process, waiting for what each task comes after: the same times as central dispatch, for less
        bookkeeping. Everything else goes through :meth:`dispatch`.
        """
        if self.walk and self.shape.straight and not self.batch.fails[self.row]:
            walked = self._walk()
            if walked is not None:
                return walked
            return Run(self.shape, self.batch, self.row, walk=False).run()
        self._prepare()
        self.dispatch()
        self.started = True
        for lane, task in enumerate(self.next_task):
            if task >= 0:
                self.lane_process[lane] = self.env.process(self._lane(lane))
        self.env.run()
        if self.unresolved:
            # Nothing can move any more (a plan order that cannot be kept): cancel what is left.
            for task, state in enumerate(self.task_state):
                if state == RUNNING:
                    self._interrupt(task, STALLED)
            self.env.run()
            for unit in self.shape.units:
                if self.unit_state[unit.index] == PENDING:
                    self._cancel_unit(unit.index, STALLED)
        return self.record

    def _walk(self) -> Row | None:
        """Every lane walks its queue; None when the plan's order cannot be kept (a stall)."""
        env = self.env
        shape = self.shape
        record = self.record
        unit_state = self.unit_state
        done: dict[int, simpy.Event] = {}

        def walk(lane: int) -> Generator[simpy.Event, Any, None]:
            minutes_of = self.batch.segment_min
            row = self.row
            for task in shape.queues[lane]:
                index = shape.unit_of[task]
                for before in shape.units[index].after:
                    if unit_state[before] != DONE:
                        event = done.get(before)
                        if event is None:
                            event = done[before] = env.event()
                        yield event
                record.lane[task] = lane
                record.taken[task] = env.now
                minutes = minutes_of[task][row]
                starts = record.segment_start[task]
                sync_wait = sync_paid = 0.0
                for position, segment in enumerate(shape.shapes[task].segments):
                    if segment.waits:
                        for event_name in segment.waits:
                            if event_name not in record.emitted:
                                held = env.now
                                yield self._fired(event_name)
                                sync_wait += env.now - held
                        if segment.sync_min > 0:
                            held = env.now
                            yield env.timeout(segment.sync_min)
                            sync_paid += env.now - held
                    if segment.spawns:
                        yield from self._spawn(task, shape.segment_spawns[task][position])
                    starts[position] = env.now
                    yield env.timeout(minutes[position])
                    for event_name in segment.emits:
                        self._emit(event_name)
                now = env.now
                record.sync_wait[task] = sync_wait
                record.sync_paid[task] = sync_paid
                record.end[task] = now
                record.status[task] = DONE
                if now > record.makespan:
                    record.makespan = now
                unit_state[index] = DONE
                event = done.get(index)
                if event is not None:
                    event.succeed()

        for lane in range(len(shape.lanes)):
            if shape.queues[lane]:
                env.process(walk(lane))
        env.run()
        if any(state != DONE for state in unit_state):
            return None
        return record

    # ---------------------------------------------------------------------------------------------
    # Dispatch

    def dispatch(self) -> None:
        """Start every unit that can start now."""
        if self.shape.dynamic:
            self._dispatch_dynamic()
        elif self.full_scan or self.used:
            # Shared capacity goes in planned order across lanes, so every lane is looked at.
            self.full_scan = False
            self.candidates.clear()
            self._dispatch_plan()
        else:
            # Only a freed lane's next unit, or a dependent of a unit just done, can have become ready.
            candidates = self.candidates
            while candidates:
                index = candidates.pop()
                if self.unit_state[index] == PENDING and not self.waiting_after[index]:
                    lanes = self._lanes_at(index)
                    if lanes is not None:
                        self._start(index, lanes)

    def _lanes_at(self, index: int) -> list[int] | None:
        """The member lanes of a unit, when each is free with that member next in its queue."""
        shape = self.shape
        lanes = []
        for member in shape.members[index]:
            lane = shape.planned_lane[member]
            if self.lane_task[lane] >= 0 or self._head(lane) != member:
                return None
            lanes.append(lane)
        return lanes

    def _head(self, lane: int) -> int:
        queue = self.shape.queues[lane]
        length = self.shape.queue_length[lane]
        position = self.position[lane]
        state = self.task_state
        while position < length and state[queue[position]] != PENDING:
            position += 1
        self.position[lane] = position
        return queue[position] if position < length else -1

    def _after_done(self, unit: Unit) -> bool:
        return not self.waiting_after[unit.index]

    def _capacity_free(self, unit: Unit, in_plan_order: bool) -> bool:
        if not self.used:
            return True
        shape = self.shape
        need: dict[str, int] = {}
        for task in shape.members[unit.index]:
            for resource, units in shape.demand[task].items():
                need[resource] = need.get(resource, 0) + units
        for resource, units in need.items():
            if self.used[resource] + units > shape.capacities[resource]:
                return False
        if in_plan_order:
            # Shared capacity goes to units in planned order, as the plan assumed:
            # cycleplan.core.rules.blocked_by_earlier, applied inline on the engine's arrays (the hot loop),
            # and held to the executor's use of it by tests/test_differential.py.
            for index in shape.by_priority:
                other = shape.units[index]
                if other.priority >= unit.priority:
                    break
                if self.unit_state[index] == PENDING and any(
                    resource in shape.demand[task] for task in shape.members[index] for resource in need
                ):
                    return False
        return True

    def _dispatch_plan(self) -> None:
        shape = self.shape
        progress = True
        while progress:
            progress = False
            for lane, current in enumerate(self.lane_task):
                if current >= 0:
                    continue
                task = self._head(lane)
                if task < 0:
                    continue
                index = shape.unit_of[task]
                unit = shape.units[index]
                if self.unit_state[index] != PENDING or self.waiting_after[index]:
                    continue
                lanes = self._lanes_at(index)
                if lanes is None:
                    continue
                if not self._capacity_free(unit, in_plan_order=True):
                    continue
                self._start(index, lanes)
                progress = True

    def _dispatch_dynamic(self) -> None:
        shape = self.shape
        for index in shape.by_priority:
            if self.unit_state[index] != PENDING:
                continue
            unit = shape.units[index]
            if not self._after_done(unit):
                continue
            # A unit that waits for events starts only once their emitters have started, so that it
            # never holds the lane its emitter needs.
            if any(self.unit_state[emitter] == PENDING for emitter in unit.emitters):
                continue
            lanes: list[int] = []
            for task in shape.members[index]:
                free = next(
                    (
                        lane
                        for lane in shape.lanes_for[task]
                        if self.lane_task[lane] < 0 and lane not in lanes
                    ),
                    -1,
                )
                if free < 0:
                    break
                lanes.append(free)
            if len(lanes) != len(unit.members) or not self._capacity_free(unit, in_plan_order=False):
                continue
            self._start(index, lanes)

    def _start(self, index: int, lanes: list[int]) -> None:
        self.unit_state[index] = RUNNING
        now = self.env.now
        record = self.record
        shape = self.shape
        used = self.used
        for task, lane in zip(shape.members[index], lanes, strict=True):
            self.task_state[task] = RUNNING
            self.lane_task[lane] = task
            record.lane[task] = lane
            record.taken[task] = now
            if used:
                for resource, units in shape.demand[task].items():
                    used[resource] += units
            self.next_task[lane] = task
            if self.lane_process[lane] is None:
                if self.started:
                    self.lane_process[lane] = self.env.process(self._lane(lane))
            else:
                wake = self.wake[lane]
                if wake is not None:
                    self.wake[lane] = None
                    wake.succeed()

    # ---------------------------------------------------------------------------------------------
    # A lane and the tasks it works

    def _lane(self, lane: int) -> Generator[simpy.Event, Any, None]:
        """One lane: work each task handed to it, then wait until the next one is."""
        work = self._work_slots if self.batch.rate_limited else self._work
        while True:
            task = self.next_task[lane]
            if task < 0:
                wake = self.wake[lane] = self.env.event()
                yield wake
                continue
            self.next_task[lane] = -1
            yield from work(task, lane)

    # ---------------------------------------------------------------------------------------------
    # A task's work

    def _work(self, task: int, lane: int) -> Generator[simpy.Event, Any, None]:
        """Segment by segment, one timeout each."""
        env = self.env
        record = self.record
        segments = self.shape.shapes[task].segments
        minutes = self.batch.segment_min[task][self.row]
        fail_segment = self.batch.fail_segment[task][self.row]
        starts = record.segment_start[task]
        if task in self.cancel_on_start:
            self._ended(task, lane, CANCELLED, self.cancel_on_start.pop(task))
            return
        held = -1.0  # since when the task is held waiting for an event or paying its sync minutes
        working = -1
        sync_wait = sync_paid = 0.0
        try:
            for position, segment in enumerate(segments):
                if segment.waits:
                    for event in segment.waits:
                        if event not in record.emitted:
                            held = env.now
                            yield self._fired(event)
                            sync_wait += env.now - held
                            held = -1.0
                    if segment.sync_min > 0:
                        held = env.now
                        yield env.timeout(segment.sync_min)
                        sync_paid += env.now - held
                        held = -1.0
                if segment.spawns:
                    yield from self._spawn(task, self.shape.segment_spawns[task][position])
                starts[position] = env.now
                working = position
                yield env.timeout(minutes[position])
                working = -1
                if position == fail_segment:
                    record.sync_wait[task] = sync_wait
                    record.sync_paid[task] = sync_paid
                    self._failed(task, lane)
                    return
                for event in segment.emits:
                    self._emit(event)
            record.sync_wait[task] = sync_wait
            record.sync_paid[task] = sync_paid
            self._ended(task, lane, DONE, 0)
        except simpy.Interrupt as interrupt:
            if held >= 0:
                sync_wait += env.now - held
            record.sync_wait[task] = sync_wait
            record.sync_paid[task] = sync_paid
            record.stop_segment[task] = working
            self._ended(task, lane, CANCELLED, int(interrupt.cause or 0))

    def _work_slots(self, task: int, lane: int) -> Generator[simpy.Event, Any, None]:
        """Attempt by attempt, each first passing the organisation's rate limits."""
        env = self.env
        record = self.record
        batch = self.batch
        row = self.row
        attempts = self.shape.shapes[task].attempts
        cycle_waits = self.shape.cycle_waits[task]
        cycle_emits = self.shape.cycle_emits[task]
        cycle_spawns = self.shape.cycle_spawns[task]
        ran = batch.ran[task][row]
        duration = batch.duration[task][row]
        failed = batch.failed[task][row]
        counted = batch.counted[task][row]
        output = batch.output[task][row]
        fail_cycle = batch.fail_cycle[task][row]
        starts = record.segment_start[task]
        buckets = self.buckets
        assert buckets is not None
        if task in self.cancel_on_start:
            self._ended(task, lane, CANCELLED, self.cancel_on_start.pop(task))
            return
        held = -1.0
        held_by_rate_limit = False
        working = -1
        sync_wait = sync_paid = rate_wait = 0.0
        try:
            for cycle, (waits, sync_min) in enumerate(cycle_waits):
                if waits:
                    for event in waits:
                        if event not in record.emitted:
                            held = env.now
                            yield self._fired(event)
                            sync_wait += env.now - held
                            held = -1.0
                    if sync_min > 0:
                        held = env.now
                        yield env.timeout(sync_min)
                        sync_paid += env.now - held
                        held = -1.0
                if cycle_spawns[cycle]:
                    yield from self._spawn(task, cycle_spawns[cycle])
                for attempt in range(attempts):
                    slot = cycle * attempts + attempt
                    if not ran[slot]:
                        break
                    asked = buckets.take(env.now, 1, counted[slot], output[slot])
                    if asked > 0:
                        held, held_by_rate_limit = env.now, True
                        yield from self._through_limits(asked, counted[slot], output[slot])
                        rate_wait += env.now - held
                        held, held_by_rate_limit = -1.0, False
                    starts[slot] = env.now
                    working = slot
                    yield env.timeout(duration[slot])
                    working = -1
                    if not failed[slot]:
                        break
                if cycle + 1 == fail_cycle:
                    record.sync_wait[task], record.sync_paid[task] = sync_wait, sync_paid
                    record.rate_wait[task] = rate_wait
                    self._failed(task, lane)
                    return
                for event in cycle_emits[cycle]:
                    self._emit(event)
            record.sync_wait[task], record.sync_paid[task] = sync_wait, sync_paid
            record.rate_wait[task] = rate_wait
            self._ended(task, lane, DONE, 0)
        except simpy.Interrupt as interrupt:
            if held >= 0:
                if held_by_rate_limit:
                    rate_wait += env.now - held
                else:
                    sync_wait += env.now - held
            record.sync_wait[task], record.sync_paid[task] = sync_wait, sync_paid
            record.rate_wait[task] = rate_wait
            record.stop_segment[task] = working
            self._ended(task, lane, CANCELLED, int(interrupt.cause or 0))

    def _through_limits(self, asked: float, counted: int, output: int) -> Generator[simpy.Event, Any, None]:
        """Retry a request the buckets refused (told to come back in ``asked`` minutes) as clients do,
        with their jitter, until the buckets serve it."""
        buckets = self.buckets
        assert buckets is not None
        while asked > 0:
            yield self.env.timeout(retry_wait(asked, self.jitter.random()))
            asked = buckets.take(self.env.now, 1, counted, output)

    # ---------------------------------------------------------------------------------------------
    # Subagents

    def _spawn(self, parent: int, children: tuple[int, ...]) -> Generator[simpy.Event, Any, None]:
        """Spawn ``children`` and hold the parent, blocked, until the last returns: each on its own lane
        at once, or (inline) on the parent's lane one after the other. An interruption of the parent
        cancels the subagents still running."""
        env = self.env
        began = env.now
        try:
            if self.shape.inline:
                lane = self.record.lane[parent]
                for child in children:
                    yield from self._child(child, lane)
            else:
                lane = self.record.lane[parent]
                sub_lane, planned = self.shape.sub_lane, self.shape.planned_lane
                running = [
                    env.process(self._child(child, sub_lane.get((lane, number), planned[child])))
                    for number, child in enumerate(children)
                ]
                try:
                    yield env.all_of(running)
                except simpy.Interrupt as interrupt:
                    for process in running:
                        if process.is_alive:
                            process.interrupt(interrupt.cause)
                    raise
        finally:
            self.record.blocked[parent] += env.now - began

    def _child(self, task: int, lane: int) -> Generator[simpy.Event, Any, None]:
        """One subagent's work from the moment it is spawned: no waits, no dispatch; a failure ends it
        and returns to its parent. Under rate limits each attempt passes the buckets first."""
        env = self.env
        record = self.record
        batch = self.batch
        row = self.row
        record.lane[task] = lane
        record.taken[task] = env.now
        starts = record.segment_start[task]
        working = -1
        held = -1.0
        outcome = DONE
        try:
            if batch.rate_limited:
                buckets = self.buckets
                assert buckets is not None
                ran, duration = batch.ran[task][row], batch.duration[task][row]
                counted, output = batch.counted[task][row], batch.output[task][row]
                for slot in range(len(ran)):
                    if not ran[slot]:
                        continue
                    asked = buckets.take(env.now, 1, counted[slot], output[slot])
                    if asked > 0:
                        held = env.now
                        yield from self._through_limits(asked, counted[slot], output[slot])
                        record.rate_wait[task] += env.now - held
                        held = -1.0
                    starts[slot] = env.now
                    working = slot
                    yield env.timeout(duration[slot])
                    working = -1
                if batch.fail_cycle[task][row]:
                    outcome = FAILED
            else:
                minutes = batch.segment_min[task][row]
                fail_segment = batch.fail_segment[task][row]
                for position in range(len(minutes)):
                    starts[position] = env.now
                    working = position
                    yield env.timeout(minutes[position])
                    working = -1
                    if position == fail_segment:
                        outcome = FAILED
                        break
            self._child_ended(task, outcome, 0)
        except simpy.Interrupt as interrupt:
            if held >= 0:
                record.rate_wait[task] += env.now - held
            record.stop_segment[task] = working
            self._child_ended(task, CANCELLED, int(interrupt.cause or 0))
            if self.shape.inline:
                raise

    def _child_ended(self, task: int, outcome: int, reason: int) -> None:
        record = self.record
        now = self.env.now
        record.end[task] = now
        record.status[task] = outcome
        record.reason[task] = reason
        if now > record.makespan:
            record.makespan = now

    def _drop_subagents(self, task: int) -> None:
        """``task`` ended before spawning some of its subagents: they are cancelled, never to start."""
        record = self.record
        for child in self.shape.subagents[task]:
            if record.status[child] == PENDING and record.lane[child] < 0:
                self._child_ended(child, CANCELLED, DEPENDENCY_FAILED)

    def _fired(self, event: str) -> simpy.Event:
        if event not in self.fired:
            self.fired[event] = self.env.event()
        return self.fired[event]

    def _emit(self, event: str) -> None:
        self.record.emitted[event] = self.env.now
        if event in self.fired:
            self.fired[event].succeed()

    # ---------------------------------------------------------------------------------------------
    # Endings: completion, failure, cancellation and what they cascade to

    def _failed(self, task: int, lane: int) -> None:
        shape = self.shape
        # Only what runs when the failure happens is cancelled, not what its freed lane starts next.
        role = shape.role[task]
        running = [
            other
            for other, state in enumerate(self.task_state)
            if state == RUNNING and other != task and shape.role[other] == role
        ]
        self._ended(task, lane, FAILED, 0)
        if shape.cancel_parallel[task]:
            for other in running:
                self._interrupt(other, CANCEL_PARALLEL)

    def _interrupt(self, task: int, reason: int) -> None:
        if self.task_state[task] != RUNNING or task in self.cancelling:
            return
        self.cancelling.add(task)
        lane = self.record.lane[task]
        process = self.lane_process[lane]
        if process is None or self.next_task[lane] == task or isinstance(process.target, Initialize):
            # Handed to its lane this instant and not yet begun: an interrupt would land before its
            # first line (or in another task's), so it is cancelled as it begins.
            self.cancel_on_start[task] = reason
        else:
            process.interrupt(reason)

    def _done(self, task: int, lane: int) -> None:
        """A task completed in a simple shape (see :attr:`Shape.simple`), without a race: the common
        case of :meth:`_ended`, kept short."""
        shape = self.shape
        record = self.record
        now = self.env.now
        record.makespan = now
        record.end[task] = now
        record.status[task] = DONE
        self.task_state[task] = DONE
        self.lane_task[lane] = -1
        index = shape.unit_of[task]
        self.unit_state[index] = DONE
        self.unresolved -= 1
        waiting = self.waiting_after
        unit_state = self.unit_state
        for dependent in shape.dependents[index]:
            waiting[dependent] -= 1
            if not waiting[dependent] and unit_state[dependent] == PENDING:
                lanes = self._lanes_at(dependent)
                if lanes is not None:
                    self._start(dependent, lanes)
        if self.lane_task[lane] < 0:
            head = self._head(lane)
            if head >= 0:
                following = shape.unit_of[head]
                if not waiting[following] and unit_state[following] == PENDING:
                    lanes = self._lanes_at(following)
                    if lanes is not None:
                        self._start(following, lanes)

    def _ended(self, task: int, lane: int, outcome: int, reason: int) -> None:
        shape = self.shape
        if outcome == DONE and shape.simple and not self.full_scan and shape.plain[shape.unit_of[task]]:
            self._done(task, lane)
            return
        record = self.record
        now = self.env.now
        record.makespan = now
        record.end[task] = now
        record.status[task] = outcome
        record.reason[task] = reason
        self.task_state[task] = outcome
        self.cancelling.discard(task)
        self.lane_task[lane] = -1
        for resource, units in shape.demand[task].items():
            self.used[resource] -= units
        if outcome != DONE:
            self.full_scan = True
        elif not shape.dynamic:
            head = self._head(lane)
            if head >= 0:
                self.candidates.append(shape.unit_of[head])
        index = shape.unit_of[task]
        if self.unit_state[index] == RUNNING:
            members = shape.members[index]
            if outcome == DONE:
                self._resolve(index, DONE)
                for other in members:
                    if other != task:
                        self._interrupt(other, RACE_LOST)
            elif all(self.task_state[member] != RUNNING for member in members):
                self._resolve(index, FAILED if outcome == FAILED else CANCELLED)
        if outcome != DONE:
            self._doom_events(task)
            self._drop_subagents(task)
        self.dispatch()

    def _resolve(self, index: int, state: int) -> None:
        self.unit_state[index] = state
        self.unresolved -= 1
        if state == DONE:
            for dependent in self.shape.dependents[index]:
                self.waiting_after[dependent] -= 1
                self.candidates.append(dependent)
        else:
            self.full_scan = True
        record = self.record
        for task in self.shape.skipped[index]:
            record.end[task] = self.env.now
            record.status[task] = CANCELLED
            record.reason[task] = RACE_LOST
        if state != DONE:
            for dependent in self.shape.dependents[index]:
                if self.unit_state[dependent] == PENDING:
                    self._cancel_unit(dependent, DEPENDENCY_FAILED)

    def _cancel_unit(self, index: int, reason: int) -> None:
        """Cancel a unit that never started (nor will)."""
        self.full_scan = True
        now = self.env.now
        record = self.record
        record.makespan = now
        members = self.shape.members[index]
        for task in members:
            self.task_state[task] = CANCELLED
            record.end[task] = now
            record.status[task] = CANCELLED
            record.reason[task] = reason
        self._resolve(index, CANCELLED)
        for task in members:
            self._doom_events(task)
            self._drop_subagents(task)

    def _doom_events(self, task: int) -> None:
        """Events ``task`` will now never publish: whoever waits for them is cancelled."""
        shape = self.shape
        for event in shape.emits[task]:
            if event in self.record.emitted:
                continue
            for waiter in shape.waiters.get(event, ()):
                if shape.unit_of[waiter] < 0:
                    continue  # not part of this run (a race member the baseline does not run)
                state = self.task_state[waiter]
                if state == RUNNING:
                    self._interrupt(waiter, DEPENDENCY_FAILED)
                elif state == PENDING:
                    index = shape.unit_of[waiter]
                    if self.unit_state[index] == PENDING:
                        self._cancel_unit(index, DEPENDENCY_FAILED)
