"""The rest of a run under rate limits, request by request: every replication's race for the buckets at once.

Under organisation rate limits a request is served only when the buckets hold enough; one refused comes
back after its retry-after with the clients' jitter (:func:`cycleplan.core.rules.retry_wait`), and
whoever comes back first once they do is served. The SimPy engine runs that race one replication at a
time. A live forecast needs a thousand of them in a fraction of a second, so :class:`Race` runs them
together: each step takes, in every replication, the lane whose request comes next, asks that
replication's buckets (:class:`cycleplan.core.buckets.TokenBuckets`' arithmetic over arrays) and either
serves it (the attempt then works its drawn minutes, and the lane asks for its next one when it ends)
or sends it back with its jitter.

It runs what the SimPy engine runs under rate limits for plans of plain units on their planned lanes:
each lane walks its queue in the plan's order; a task starts when its lane is free and the units it
comes after have ended; before a cycle that waits for events it holds its lane until they are out and
then pays its handoff; each attempt asks the buckets for one request with its counted input and output
tokens. :func:`eligible` says which plans those are (no subagents, races or shared capacities). A task
that runs out of retries ends at its last failed attempt and emits nothing more, as in the forecast
(:mod:`.forecast`), which sets each lane off from where the run stands and reads the finish off.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from cycleplan.core.buckets import FULL_ENOUGH, TokenBuckets
from cycleplan.core.rules import RETRY_JITTER
from cycleplan.sim.programs import Programs
from cycleplan.sim.shape import Shape

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def eligible(shape: Shape) -> bool:
    """Whether :class:`Race` runs ``shape``: plain units only (no races), no shared capacities, no
    subagents."""
    return not shape.capacities and all(shape.plain) and not any(shape.subagents)


class Race:
    """The rest of one plan's run under rate limits, in every replication of ``programs`` at once.

    Set each lane off (:meth:`enter`, :meth:`ask`, :meth:`working`), then :meth:`run`. Times are scenario
    minutes since the run's start; ``ended`` and ``emitted`` are what is known already (a task's end,
    an event's publication); ``buckets`` hold what they hold at ``now_min``."""

    def __init__(
        self,
        shape: Shape,
        programs: Programs,
        buckets: TokenBuckets,
        rng: np.random.Generator,
        *,
        now_min: float,
        ended: Mapping[int, float],
        emitted: Mapping[str, float],
    ) -> None:
        count = programs.count
        self.shape = shape
        self.count = count
        self.rng = rng
        self.now = now_min
        tasks = len(shape.names)
        events = sorted({event for per_task in shape.emits for event in per_task} | set(emitted))
        self.source_of_event = {event: tasks + position for position, event in enumerate(events)}
        # What is known: when each task ended and each event was published (inf: not yet).
        self.known = np.full((tasks + len(events), count), np.inf)
        for task, end in ended.items():
            self.known[task] = end
        for event, at in emitted.items():
            self.known[self.source_of_event[event]] = at

        # Every task's slots side by side: global slot = offset of the task + its slot.
        offsets = np.cumsum([0] + [one.slots for one in shape.shapes])
        self.offset = offsets[:-1]
        width = int(offsets[-1])
        self.task_of = np.repeat(np.arange(tasks), [one.slots for one in shape.shapes])
        self.duration = np.zeros((count, width))
        self.counted = np.zeros((count, width))
        self.output = np.zeros((count, width))
        self.failed = np.zeros((count, width), dtype=bool)
        self.after = np.full((count, width), -1, dtype=np.int64)
        """The next attempt of the same task that runs, or -1: the task ends."""
        self.first = np.full((count, tasks), -1, dtype=np.int64)
        """Each task's first attempt that runs."""
        self.gate = np.full(width, -1, dtype=np.int64)
        """The gate (index into :attr:`gates`) a lane passes before asking for a slot, or -1."""
        self.gates: list[tuple[IntArray, float]] = []
        """What a gate waits for (known sources: tasks' ends, events) and the handoff paid after it."""
        self.emits = np.zeros((len(events), width), dtype=bool)
        """Events an attempt publishes when it ends its cycle successfully."""
        columns = np.arange(width)
        for task, (one, program) in enumerate(zip(shape.shapes, programs.tasks, strict=True)):
            span = slice(int(self.offset[task]), int(self.offset[task]) + one.slots)
            ran = program.ran.astype(bool)
            self.duration[:, span] = program.duration_min
            self.counted[:, span] = program.input_tokens + program.cache_write_tokens
            self.output[:, span] = program.output_tokens
            self.failed[:, span] = program.failed
            # The next slot that runs, from each slot: a reversed running minimum of the slots that do.
            ahead = np.where(ran, columns[span][None, :], width)
            nearest = np.minimum.accumulate(ahead[:, ::-1], axis=1)[:, ::-1]
            following = np.concatenate([nearest[:, 1:], np.full((count, 1), width)], axis=1)
            self.after[:, span] = np.where(following < width, following, -1)
            self.first[:, task] = np.where(nearest[:, 0] < width, nearest[:, 0], -1)
            after_units = shape.units[shape.unit_of[task]].after if shape.unit_of[task] >= 0 else ()
            before = [member for unit in after_units for member in shape.members[unit]]
            for cycle in range(one.cycles):
                waits, sync_min = shape.cycle_waits[task][cycle]
                sources = [self.source_of_event[event] for event in waits if event in self.source_of_event]
                missing = [event for event in waits if event not in self.source_of_event]
                if missing:
                    sources.append(-1)  # an event nobody publishes: the gate never opens
                if cycle == 0:
                    sources += before
                if sources or (waits and sync_min > 0):
                    self.gate[span.start + cycle * one.attempts] = len(self.gates)
                    self.gates.append((np.asarray(sources, dtype=np.int64), sync_min if waits else 0.0))
                for event in shape.cycle_emits[task][cycle]:
                    cycle_slots = slice(
                        span.start + cycle * one.attempts, span.start + (cycle + 1) * one.attempts
                    )
                    self.emits[self.source_of_event[event] - tasks, cycle_slots] = True

        lanes = len(shape.lanes)
        longest = max((len(queue) for queue in shape.queues), default=0)
        self.queue = np.full((lanes, longest + 1), -1, dtype=np.int64)
        for lane, queue in enumerate(shape.queues):
            self.queue[lane, : len(queue)] = queue
        self.next_at = np.full((count, lanes), np.inf)
        """When each lane next asks the buckets (inf: it is idle, held at a gate or done)."""
        self.slot = np.full((count, lanes), -1, dtype=np.int64)
        """The global slot each lane asks for next (or waits at a gate to ask for)."""
        self.place = np.zeros((count, lanes), dtype=np.int64)
        """Each lane's place in its queue."""
        self.held = np.full((count, lanes), -1, dtype=np.int64)
        """The gate each lane is held at, or -1."""
        self.held_since = np.zeros((count, lanes))

        self.kinds = buckets.kinds
        self.rate = np.asarray(buckets.rate)[:, None]
        self.capacity = np.asarray(buckets.capacity)[:, None]
        self.level = np.asarray([level for _, _, level in buckets.levels(now_min)])[:, None].repeat(count, 1)
        self.since = np.full((len(self.kinds), count), now_min)

    # ----------------------------------------------------------------------------------------------
    # setting the lanes off

    def enter(self, lane: int, place: int, at: FloatArray) -> None:
        """Lane ``lane`` takes the task at ``place`` in its queue at ``at``: once past the gate of its
        first cycle (the units it comes after, the events it waits for), it asks for its first attempt."""
        rows = np.arange(self.count)
        self._begin(rows, np.full(self.count, lane), np.full(self.count, place), at)

    def ask(self, lane: int, place: int, slot: int, at: FloatArray, *, gated: bool) -> None:
        """Lane ``lane``'s task at ``place`` asks for its ``slot`` at ``at`` (``gated``: past the
        slot's gate first, for a task about to begin a cycle)."""
        rows = np.arange(self.count)
        lanes = np.full(self.count, lane)
        self.place[:, lane] = place
        task = int(self.queue[lane, place])
        self._reach(rows, lanes, np.full(self.count, int(self.offset[task]) + slot), at, gated=gated)

    def working(self, lane: int, place: int, slot: int, done_at: FloatArray) -> None:
        """Lane ``lane``'s task at ``place`` is through the buckets with its ``slot`` and ends the attempt
        at ``done_at``."""
        rows = np.arange(self.count)
        self.place[:, lane] = place
        task = int(self.queue[lane, place])
        self._done(
            rows, np.full(self.count, lane), np.full(self.count, int(self.offset[task]) + slot), done_at
        )

    def wait_now(self, task: int, slot: int) -> FloatArray:
        """Minutes from now until the buckets would serve ``task``'s attempt at ``slot``, per replication."""
        column = int(self.offset[task]) + slot
        amounts = self._amounts(np.arange(self.count), np.full(self.count, column))
        _, wait = self._asked(self.level, self.since, np.full(self.count, self.now), amounts)
        return wait

    # ----------------------------------------------------------------------------------------------
    # the race

    def run(self) -> FloatArray:
        """Run every replication to its end; when each ends (the last task end known, never before now)."""
        rows_all = np.arange(self.count)
        jitter = RETRY_JITTER
        while True:
            self._refuse_the_early()
            lane = np.argmin(self.next_at, axis=1)
            at = self.next_at[rows_all, lane]
            live = np.isfinite(at)
            if not live.any():
                break
            rows = rows_all[live]
            lanes = lane[live]
            at = at[live]
            slot = self.slot[rows, lanes]
            amounts = self._amounts(rows, slot)
            level, wait = self._asked(self.level[:, rows], self.since[:, rows], at, amounts)
            served = wait <= 0.0
            refused = ~served
            if refused.any():
                back = at[refused] + wait[refused] * (1.0 + jitter * self.rng.random(int(refused.sum())))
                self.next_at[rows[refused], lanes[refused]] = back
            if served.any():
                taken = rows[served]
                self.level[:, taken] = level[:, served] - amounts[:, served]
                self.since[:, taken] = np.maximum(at[served], self.since[:, taken])
                column = slot[served]
                self._done(taken, lanes[served], column, at[served] + self.duration[taken, column])
        ends = self.known[: len(self.shape.names)]
        finish = np.where(np.isfinite(ends), ends, -np.inf).max(axis=0, initial=-np.inf)
        last: FloatArray = np.maximum(finish, self.now)
        return last

    def _refuse_the_early(self) -> None:
        """Refuse, all at once, every request that comes before any could be served: until one is, the
        buckets only refill, so each is refused as it would be on its own, and comes back with its
        jitter. Lanes that ask together would otherwise cost a step per refusal."""
        at = self.next_at
        asking = np.isfinite(at)
        if not asking.any():
            return
        rows = np.arange(self.count)[:, None]
        column = np.where(asking, self.slot, 0)
        every = (np.ones(at.shape), self.counted[rows, column], self.output[rows, column])
        amounts = np.stack([every[kind] for kind in self.kinds])
        _, wait = self._asked(self.level[:, :, None], self.since[:, :, None], at, amounts)
        # None is served before the first moment one of them could be: whoever asks earlier is refused.
        first = np.where(asking, at + wait, np.inf).min(axis=1)
        early = asking & (at < first[:, None])
        if early.any():
            draws = self.rng.random(int(early.sum()))
            self.next_at[early] = at[early] + wait[early] * (1.0 + RETRY_JITTER * draws)

    def _asked(
        self, level: FloatArray, since: FloatArray, at: FloatArray, amounts: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """What buckets that held ``level`` at ``since`` hold at ``at``, and the minutes each request of
        ``amounts`` (``[limit, ...]``, shaped as ``at`` past the first axis) must still wait (0: it is
        served): :meth:`cycleplan.core.buckets.TokenBuckets.take` over arrays."""
        axes = (len(self.kinds),) + (1,) * at.ndim
        capacity = self.capacity.reshape(axes)
        rate = self.rate.reshape(axes)
        held = np.minimum(capacity, level + rate * np.maximum(at - since, 0.0))
        short = np.minimum(amounts, capacity) - held
        wait: FloatArray = np.where(short > FULL_ENOUGH * capacity, short / rate, 0.0).max(axis=0)
        return held, wait

    def _amounts(self, rows: IntArray, column: IntArray) -> FloatArray:
        """Per set limit, what each request asks of its bucket: ``[limit, row]``."""
        every = (np.ones(rows.size), self.counted[rows, column], self.output[rows, column])
        return np.stack([every[kind] for kind in self.kinds])

    def _done(self, rows: IntArray, lanes: IntArray, column: IntArray, done_at: FloatArray) -> None:
        """The attempts at ``column`` end at ``done_at``: what they publish is out, and each lane goes on
        to its task's next attempt, or its next task."""
        tasks = len(self.shape.names)
        succeeded = ~self.failed[rows, column]
        publishing = self.emits[:, column] & succeeded[None, :]
        recorded = bool(publishing.any())
        for event in np.flatnonzero(publishing.any(axis=1)):
            which = rows[publishing[event]]
            self.known[tasks + event, which] = np.minimum(
                self.known[tasks + event, which], done_at[publishing[event]]
            )
        following = self.after[rows, column]
        goes_on = following >= 0
        if goes_on.any():
            self._reach(rows[goes_on], lanes[goes_on], following[goes_on], done_at[goes_on], gated=True)
        ends = ~goes_on
        if ends.any():
            ended_rows, ended_lanes, at = rows[ends], lanes[ends], done_at[ends]
            self.known[self.task_of[column[ends]], ended_rows] = at
            recorded = True
            self._begin(ended_rows, ended_lanes, self.place[ended_rows, ended_lanes] + 1, at)
        if recorded:
            self._release()

    def _begin(self, rows: IntArray, lanes: IntArray, place: IntArray, at: FloatArray) -> None:
        """Lanes take the task at ``place`` in their queues at ``at``; past their queue's end, they rest."""
        self.place[rows, lanes] = place
        task = self.queue[lanes, np.minimum(place, self.queue.shape[1] - 1)]
        idle = task < 0
        self.next_at[rows[idle], lanes[idle]] = np.inf
        self.slot[rows[idle], lanes[idle]] = -1
        busy = ~idle
        if busy.any():
            rows, lanes, task, at = rows[busy], lanes[busy], task[busy], at[busy]
            first = self.first[rows, task]
            self._reach(rows, lanes, np.where(first >= 0, first, self.offset[task]), at, gated=True)

    def _reach(
        self, rows: IntArray, lanes: IntArray, column: IntArray, at: FloatArray, *, gated: bool
    ) -> None:
        """Lanes reach the attempt at ``column`` at ``at``: they ask for it then, or once past its gate."""
        self.slot[rows, lanes] = column
        gate = self.gate[column] if gated else np.full(rows.size, -1)
        self.next_at[rows, lanes] = at
        held = gate >= 0
        if held.any():
            self.held[rows[held], lanes[held]] = gate[held]
            self.held_since[rows[held], lanes[held]] = at[held]
            self.next_at[rows[held], lanes[held]] = np.inf
            self._release()

    def _release(self) -> None:
        """Let lanes through the gates whose sources are all known, after their handoffs."""
        if not (self.held >= 0).any():
            return
        for gate in np.unique(self.held[self.held >= 0]):
            rows, lanes = np.nonzero(self.held == gate)
            sources, handoff = self.gates[int(gate)]
            if sources.size == 0:
                opens = np.zeros(rows.size)
            elif (sources < 0).any():
                continue
            else:
                opens = self.known[sources][:, rows].max(axis=0)
            through = np.isfinite(opens)
            if through.any():
                rows, lanes = rows[through], lanes[through]
                self.next_at[rows, lanes] = np.maximum(self.held_since[rows, lanes], opens[through]) + handoff
                self.held[rows, lanes] = -1


__all__ = ["Race", "eligible"]
