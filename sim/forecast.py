"""The rest of a run from where it stands: finish time, cost and tokens to complete, per replication.

A run part done is a :class:`RunState`: when each started task took its lane, how many of its cycles it
has completed, whether an attempt is in progress and since when, which tasks have ended and when, and
which events are out. :func:`outlook` simulates the rest with the fast engine's recursion
(:mod:`.fast`), on the same draws and programs as a prediction (:mod:`.programs`, so a calibrated
posterior is drawn as it is there), with what has happened held fixed:

- an ended task ends when it ended; an event already out was published when it was;
- a running task's attempt in progress has already worked ``t`` minutes, so its remaining time is drawn
  from its cycle's duration given that it is longer than ``t`` (``X - t | X > t``, resampled from the
  task's own drawn cycle durations above ``t``; past the last few of them, their tail scaled up), then
  the task works the rest of its cycles as drawn;
- a task not started yet starts no sooner than now, in the plan's lane order, as in a prediction.

Costs and tokens to complete count every attempt still to run (the one in progress included: its usage is
recorded when it ends). Organisation rate limits cannot be kept in a max-plus recursion: requests race for
the buckets as they come back. Where a scenario has them, the rest is run as that race, request by
request, every replication at once (:mod:`.race`, the SimPy engine's rules: from the start it forecasts
what :func:`cycleplan.sim.simulate` predicts). The buckets stand as the requests served so far left them
(:attr:`RunState.grants`, replayed at their grants); an attempt in progress was let through, first come
first served from there, when they held enough for it, and one they would let through only after now is
still being refused and comes back within its retry-after. Plans the race does not run (subagents, races,
shared capacities, or more to race than :data:`RACE_WORK`) keep the limits as a fluid queue beside the
recursion: a unit's end is held no earlier than the moment its requests could have been served at the
limits' pace after every request of units before it (the queue starting empty), which is where binding
limits put it, at the limits' own pace times the share of it the run has been served at so far
(:attr:`RunState.pace`, :func:`served_pace`: a refused request comes back a little after the buckets could
serve it, and what those gaps have cost so far is the best word on what they will cost the rest).

What it leaves out, as a prediction on the fast engine would hand them to SimPy: a task that runs out of
retries here ends at its last failed cycle without cancelling its dependents, and the members of a race
all count their whole cost. This module knows no events, executors or traces: the workflow that reads a
trace (:mod:`cycleplan.workflows.forecast`) builds the state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from cycleplan.core.buckets import TokenBuckets
from cycleplan.core.model import Plan, RateLimits
from cycleplan.sim import fast, race
from cycleplan.sim.layout import SimulationError, build_layout
from cycleplan.sim.programs import Programs, TaskProgram, TaskShape, task_shapes
from cycleplan.sim.records import Records
from cycleplan.sim.shape import Shape

FloatArray = npt.NDArray[np.float64]

FORECAST_STREAM = 3
"""The spawn-key tag of the stream the conditioned remaining times are drawn from (the cycle draws use
0, the agent loop's 1, the posterior's 2: :mod:`cycleplan.core.draws`)."""

TAIL = 20
"""Fewest drawn durations above the elapsed time to resample from; past them the tail is scaled."""

RACE_WORK = 2_000_000
"""The most replications x lanes x requests still to come that the rest is raced for under rate limits
(about half a second of CPU on a 2-core machine: each request served is a step over every replication's
lanes); past it, the limits are a fluid queue. The example scenarios are all within it; a hundred
lanes of five tasks are not."""


@dataclass(frozen=True)
class TaskState:
    """Where one started task stands, in scenario minutes since the run's start."""

    taken_min: float
    """When it took its lane."""
    end_min: float | None = None
    """When it ended (completed, failed or cancelled); None while it runs."""
    cycles_done: int = 0
    """Cycles completed successfully."""
    attempts_failed: int = 0
    """Attempts at the next cycle that failed (their usage is recorded; the retries are left)."""
    working_since_min: float | None = None
    """When the attempt in progress began; None when none is (the task waits for an event, is blocked on
    its subagents, or is between attempts)."""


@dataclass(frozen=True)
class RunState:
    """A run part done: the tasks that have started (those absent have not) and the events out."""

    now_min: float
    tasks: Mapping[str, TaskState] = field(default_factory=dict)
    emitted: Mapping[str, float] = field(default_factory=dict)
    """Event name -> when it was published."""
    pace: float = 1.0
    """The share of the rate limits' pace the run's requests have been served at while they waited
    (:func:`served_pace`); where the rest is forecast as a fluid queue, it is served at it."""
    grants: tuple[Grant, ...] = ()
    """The requests the rate limits have served (their attempts ended): what the buckets hold now."""


@dataclass(frozen=True)
class Grant:
    """One request the rate limits served, in scenario minutes since the run's start."""

    arrived_min: float
    """When it was first sent."""
    granted_min: float
    """When it was served (after its waits for the limits)."""
    requests: float = 1.0
    counted_input: float = 0.0
    """Input tokens the limits count: uncached input and cache writes."""
    output: float = 0.0


PACE_PAIRS = 3
"""Fewest saturated pairs of grants :func:`served_pace` judges the pace from."""
PACE_FLOOR = 0.25
"""The least pace :func:`served_pace` reports (a limit that served less is a stall, not a pace)."""


def served_pace(grants: Sequence[Grant], limits: RateLimits | None) -> float:
    """The share of the limits' pace at which ``grants`` were served while requests waited.

    Taken in the order they were served, a request that had waited for the limits and was already
    waiting when the one before it was served met a saturated bucket: at the limits' own pace it would
    have come its bucket time (its amount over the rate of the bucket it needs longest) after that one.
    The pace is the sum of those bucket times over the sum of the gaps actually seen, capped at 1 and
    floored at :data:`PACE_FLOOR`; 1 with fewer than :data:`PACE_PAIRS` such pairs, or no limits."""
    buckets = None if limits is None else TokenBuckets(limits)
    if buckets is None or not buckets.binding:
        return 1.0
    served = sorted(grants, key=lambda grant: grant.granted_min)
    due = 0.0
    seen = 0.0
    pairs = 0
    for before, grant in pairwise(served):
        if not grant.arrived_min < grant.granted_min or grant.arrived_min > before.granted_min:
            continue
        amounts = (grant.requests, grant.counted_input, grant.output)
        due += max(amounts[kind] / rate for kind, rate in zip(buckets.kinds, buckets.rate, strict=True))
        seen += grant.granted_min - before.granted_min
        pairs += 1
    if pairs < PACE_PAIRS or seen <= 0:
        return 1.0
    return min(max(due / seen, PACE_FLOOR), 1.0)


@dataclass(frozen=True)
class Outlook:
    """The rest of a run, per replication (each ``[replication]``)."""

    finish_min: FloatArray
    """When the run ends, in minutes since its start (never before now)."""
    cost_usd: FloatArray
    """Dollars still to spend."""
    tokens: FloatArray
    """Tokens still to spend."""


def conditioned_remaining(
    durations: FloatArray, elapsed_min: float, count: int, rng: np.random.Generator
) -> FloatArray:
    """``count`` draws of ``X - elapsed | X > elapsed`` for a cycle whose durations are drawn as
    ``durations`` (minutes): resampled from those above ``elapsed`` when there are at least :data:`TAIL`
    of them; else the largest :data:`TAIL` scaled by ``elapsed`` over the smallest of them (a tail that
    keeps its shape as it stretches, as a lognormal's nearly does)."""
    ordered = np.sort(durations[np.isfinite(durations)])
    if ordered.size == 0 or elapsed_min <= 0:
        if ordered.size == 0:
            return np.zeros(count)
        return np.asarray(ordered[rng.integers(0, ordered.size, count)], dtype=float)
    first = int(np.searchsorted(ordered, elapsed_min, side="right"))
    above = ordered.size - first
    if above >= min(TAIL, ordered.size):
        picked = ordered[first + rng.integers(0, above, count)]
        return np.asarray(picked - elapsed_min, dtype=float)
    tail = ordered[-min(TAIL, ordered.size) :]
    scaled = elapsed_min * tail[rng.integers(0, tail.size, count)] / max(float(tail[0]), 1e-12)
    return np.asarray(np.maximum(scaled - elapsed_min, 0.0), dtype=float)


class _Forecaster:
    """One plan's shapes and draws, and the recursion from a state."""

    def __init__(self, plan: Plan, replications: int, seed: int) -> None:
        if replications < 1:
            raise SimulationError("replications", f"must be at least 1, got {replications}")
        if seed < 0:
            raise SimulationError("seed", f"must be zero or positive, got {seed}")
        layout = build_layout(plan)
        self.layout = layout
        self.shapes: list[TaskShape] = task_shapes(layout, ideal=False, per_slot=False)
        # The recursion keeps the plan's lane order; rate limits are applied beside it (see above).
        self.shape = Shape(layout, layout.parallel, self.shapes, dispatch="plan")
        reason = fast.static_reason(self.shape)
        if reason is not None:
            raise SimulationError("lanes", f"cannot forecast this plan: {reason}")
        self.order: list[int] = self.shape.cache["order"]  # type: ignore[assignment]
        self.count = replications
        self.programs = Programs(self.shapes, seed, 0, replications)
        self.rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(0, 0, 0, FORECAST_STREAM)))
        )
        limits = plan.scenario.rate_limits
        self.buckets = None if limits is None or not TokenBuckets(limits).binding else TokenBuckets(limits)
        self.now = 0.0
        self.paced_from = 0.0
        """When the rate limits' queue of requests still to come starts moving."""
        self.pace = 1.0
        """The share of the limits' pace the rest is served at (:attr:`RunState.pace`)."""
        self.states: list[TaskState | None] = [None] * len(self.shapes)
        self.left: list[tuple[FloatArray, FloatArray, FloatArray]] = []

    # ----------------------------------------------------------------------------------------------
    # per task: what is left of its work

    def _first_slot(self, task: int, state: TaskState | None) -> int:
        """The first slot still to run: 0 for a task not started, the next cycle's first for one that
        runs, past the last for one that ended."""
        shape = self.shapes[task]
        if state is None:
            return 0
        if state.end_min is not None:
            return shape.slots
        return min(state.cycles_done, shape.cycles) * shape.attempts + self._tried(task, state)

    def _tried(self, task: int, state: TaskState) -> int:
        """Attempts at a running task's next cycle already made and failed (the draws' later ones run)."""
        return min(state.attempts_failed, self.shapes[task].attempts - 1)

    def _current(self, task: int, state: TaskState, now: float) -> FloatArray:
        """Minutes the next cycle of a running task still takes: its attempt in progress conditioned on
        the time it has worked, then the retries drawn for the cycle."""
        shape = self.shapes[task]
        program = self.programs.tasks[task]
        cycle = state.cycles_done
        first = cycle * shape.attempts + self._tried(task, state)
        retries = program.duration_min[:, first + 1 : (cycle + 1) * shape.attempts].sum(axis=1)
        if state.working_since_min is None:
            whole: FloatArray = program.duration_min[:, first] + retries
            return whole
        left: FloatArray = self._attempt_left(task, now - state.working_since_min) + retries
        return left

    def _attempt_left(self, task: int, elapsed_min: float) -> FloatArray:
        """Minutes an attempt of ``task`` that has worked ``elapsed_min`` still works."""
        program = self.programs.tasks[task]
        pool = program.duration_min[program.ran]
        return conditioned_remaining(pool, max(elapsed_min, 0.0), self.count, self.rng)

    def _asking(self, task: int, state: TaskState) -> tuple[float, float, float]:
        """What the request of a running task's next attempt asks of the buckets, on average over the
        replications: requests (an agent loop's calls), counted input tokens and output tokens."""
        shape = self.shapes[task]
        slot = min(state.cycles_done * shape.attempts + self._tried(task, state), shape.slots - 1)
        program = self.programs.tasks[task]
        return (
            max(float(program.calls[:, slot].mean()), 1.0),
            float((program.input_tokens[:, slot] + program.cache_write_tokens[:, slot]).mean()),
            float(program.output_tokens[:, slot].mean()),
        )

    def _left(self, task: int, state: TaskState | None) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Dollars, tokens and rate-limited amounts (requests, counted input, output) still to spend."""
        program: TaskProgram = self.programs.tasks[task]
        first = self._first_slot(task, state)
        tail = slice(first, None)
        cost = program.cost_usd[:, tail].sum(axis=1)
        tokens = (
            program.input_tokens[:, tail]
            + program.cache_write_tokens[:, tail]
            + program.cache_read_tokens[:, tail]
            + program.output_tokens[:, tail]
        ).sum(axis=1)
        # The attempt in progress has passed the rate limits already: it queues for nothing more.
        queue = slice(first + 1 if state is not None and state.working_since_min is not None else first, None)
        calls = program.calls[:, queue]
        requests = np.where(calls > 0, calls, program.ran[:, queue]).sum(axis=1)
        counted = (program.input_tokens[:, queue] + program.cache_write_tokens[:, queue]).sum(axis=1)
        output = program.output_tokens[:, queue].sum(axis=1)
        amounts = np.stack([requests, counted, output]).astype(float)
        return cost.astype(float), tokens.astype(float), amounts

    # ----------------------------------------------------------------------------------------------
    # the recursion

    def run(self, state: RunState) -> Outlook:
        shape = self.shape
        count = self.count
        now = float(state.now_min)
        names = shape.names
        states = [state.tasks.get(name) for name in names]
        self.now = now
        self.paced_from = now
        self.pace = min(max(float(state.pace), PACE_FLOOR), 1.0)
        if self.buckets is not None and race.eligible(shape) and self._race_work(states) <= RACE_WORK:
            return self._raced(state, states)
        if self.buckets is not None:
            states = self._granted(states, now)
        self.states = states
        records = Records.empty(shape, count)  # scratch for subagents spawned from here on
        lane_free = [np.zeros(count) for _ in shape.lanes]
        unit_start: dict[int, FloatArray] = {}
        unit_end: dict[int, FloatArray] = {}
        holders: dict[str, list[int]] = {}
        needs_of: dict[int, dict[str, int]] = {}
        for index in self.order:
            need: dict[str, int] = {}
            for task in shape.members[index]:
                for resource, units in shape.demand[task].items():
                    need[resource] = need.get(resource, 0) + units
            needs_of[index] = need
        emitted: dict[str, FloatArray] = {
            event: np.full(count, float(at)) for event, at in state.emitted.items()
        }
        finish = np.full(count, now)
        for task_state in states:
            if task_state is not None and task_state.end_min is not None:
                finish = np.maximum(finish, task_state.end_min)
        queued = np.zeros((3, count))
        """Rate-limited amounts of every unit so far (requests, counted input, output)."""
        cost, tokens = self._costs(states)

        for index in self.order:
            members = shape.members[index]
            member_states = [states[task] for task in members]
            need = needs_of[index]
            if all(one is not None and one.end_min is not None for one in member_states):
                ended = [one for one in member_states if one is not None and one.end_min is not None]
                end = np.full(count, max(float(one.end_min or 0.0) for one in ended))
                unit_start[index] = np.full(count, min(one.taken_min for one in ended))
                unit_end[index] = end
                for resource in need:
                    holders.setdefault(resource, []).append(index)
                for task in members:
                    lane_free[shape.planned_lane[task]] = end
                continue
            started = [one for one in member_states if one is not None]
            if started:
                start = np.full(count, min(one.taken_min for one in started))
                for resource in need:
                    holders.setdefault(resource, []).append(index)
            else:
                start = np.full(count, now)
                for task in members:
                    start = np.maximum(start, lane_free[shape.planned_lane[task]])
                for dep in shape.units[index].after:
                    start = np.maximum(start, unit_end[dep])
                if need:
                    start = fast._capacity(start, index, need, shape, holders, needs_of, unit_start, unit_end)
            unit_start[index] = start
            finishes = [self._walk(task, states[task], start, now, emitted, records) for task in members]
            end = finishes[0] if len(finishes) == 1 else np.stack(finishes).min(axis=0)
            if self.buckets is not None:
                end = self._paced(index, end, queued)
            unit_end[index] = end
            for task in members:
                lane_free[shape.planned_lane[task]] = end
            finish = np.maximum(finish, end)
        return Outlook(finish_min=finish, cost_usd=cost, tokens=tokens)

    def _costs(self, states: list[TaskState | None]) -> tuple[FloatArray, FloatArray]:
        """Dollars and tokens still to spend."""
        self.left = [self._left(task, states[task]) for task in range(len(states))]
        cost = np.zeros(self.count)
        tokens = np.zeros(self.count)
        for spent, used, _ in self.left:
            cost += spent
            tokens += used
        return cost, tokens

    # ----------------------------------------------------------------------------------------------
    # under rate limits: the race

    def _race_work(self, states: list[TaskState | None]) -> float:
        """What racing the rest costs: replications times lanes times the requests still to come."""
        requests = 0.0
        for task, program in enumerate(self.programs.tasks):
            first = self._first_slot(task, states[task])
            requests += float(program.ran[:, first:].sum()) / self.count
        return self.count * len(self.shape.lanes) * requests

    def _raced(self, state: RunState, states: list[TaskState | None]) -> Outlook:
        """The rest run as the race for the buckets it is (:class:`~cycleplan.sim.race.Race`), each lane
        set off from where its task stands."""
        assert self.buckets is not None
        now = self.now
        count = self.count
        ended = {
            task: float(one.end_min)
            for task, one in enumerate(states)
            if one is not None and one.end_min is not None
        }
        # A task with every cycle done whose end is not recorded yet ends now.
        for task, one in enumerate(states):
            if one is not None and one.end_min is None and one.cycles_done >= self.shapes[task].cycles:
                ended[task] = now
        buckets, begins = self._limits_now(states, state.grants, ended)
        running = race.Race(
            self.shape, self.programs, buckets, self.rng, now_min=now, ended=ended, emitted=state.emitted
        )
        for lane, queue in enumerate(self.shape.queues):
            place = next((at for at, task in enumerate(queue) if task not in ended), len(queue))
            if place == len(queue):
                continue
            task = queue[place]
            one = states[task]
            if one is None:
                running.enter(lane, place, np.full(count, now))
                continue
            shape = self.shapes[task]
            tried = self._tried(task, one)
            slot = one.cycles_done * shape.attempts + tried
            began = begins.get(task)
            if began is None:
                # Between attempts, held for an event or stopped: it asks next, past the cycle's gate.
                running.ask(lane, place, slot, np.full(count, now), gated=tried == 0)
            elif began <= now:
                running.working(lane, place, slot, now + self._attempt_left(task, now - began))
            else:
                # Still refused: it comes back at some point of its retry-after.
                back = running.wait_now(task, slot) * self.rng.random(count)
                running.ask(lane, place, slot, now + back, gated=False)
        finish = running.run()
        cost, tokens = self._costs(states)
        return Outlook(finish_min=finish, cost_usd=cost, tokens=tokens)

    def _limits_now(
        self, states: list[TaskState | None], grants: Sequence[Grant], ended: Mapping[int, float]
    ) -> tuple[TokenBuckets, dict[int, float]]:
        """The buckets as they stand now, and when each attempt in progress of a task not ``ended`` was
        (or will be, past now) let through: the requests served so far replayed at their grants, and
        those in progress served in the order they came, first come first served, from what the buckets
        then held. Each attempt asks for one request, as in the race and the engine."""
        limits = self.layout.plan.scenario.rate_limits
        assert limits is not None
        now = self.now
        asked: list[tuple[float, int, float, float]] = []
        for task, one in enumerate(states):
            if one is None or task in ended or one.working_since_min is None:
                continue
            _, counted, output = self._asking(task, one)
            asked.append((float(one.working_since_min), task, counted, output))
        served = [grant for grant in grants if grant.granted_min <= now]
        steps = sorted(
            [(grant.granted_min, 0, index) for index, grant in enumerate(served)]
            + [(since, 1, index) for index, (since, *_) in enumerate(asked)]
        )

        def replay(refused: set[int]) -> tuple[TokenBuckets, dict[int, float]]:
            buckets = TokenBuckets(limits)
            begins: dict[int, float] = {}
            for at, kind, index in steps:
                if kind == 0:
                    grant = served[index]
                    buckets.draw(at, grant.requests, grant.counted_input, grant.output)
                    continue
                _, task, counted, output = asked[index]
                if task not in refused:
                    begins[task] = at + buckets.reserve(at, 1.0, counted, output)
            return buckets, begins

        _, begins = replay(set())
        # Those let through only after now have taken nothing from the buckets yet.
        buckets, _ = replay({task for task, at in begins.items() if at > now})
        return buckets, begins

    def _walk(
        self,
        task: int,
        state: TaskState | None,
        start: FloatArray,
        now: float,
        emitted: dict[str, FloatArray],
        records: Records,
    ) -> FloatArray:
        """When ``task`` ends, publishing its events on the way (those not out yet)."""
        if state is not None and state.end_min is not None:
            return np.full(self.count, state.end_min)
        shape = self.shapes[task]
        timing = self.programs.timings[task]
        segments = shape.segments
        first_segment = 0
        clock = start
        if state is not None:
            cycle = min(state.cycles_done, shape.cycles)
            if cycle >= shape.cycles:
                return np.full(self.count, now)
            first_segment = int(shape.slot_segment[cycle * shape.attempts])
            segment = segments[first_segment]
            # An attempt still queued at the rate limits begins when they let it through.
            clock = np.full(self.count, max(now, state.working_since_min or now))
            if state.working_since_min is None and segment.first_cycle == cycle:
                clock = self._before(task, first_segment, clock, emitted, records, state)
            program = self.programs.tasks[task]
            after = program.duration_min[:, (cycle + 1) * shape.attempts : segment.end_slot].sum(axis=1)
            clock = clock + self._current(task, state, now) + after
            self._publish(segment.emits, clock, emitted)
            first_segment += 1
        for position in range(first_segment, len(segments)):
            clock = self._before(task, position, clock, emitted, records, None)
            clock = clock + timing.segment_min[:, position]
            self._publish(segments[position].emits, clock, emitted)
        return clock

    def _before(
        self,
        task: int,
        position: int,
        clock: FloatArray,
        emitted: dict[str, FloatArray],
        records: Records,
        state: TaskState | None,
    ) -> FloatArray:
        """The clock after a segment's waits, handoff and subagents."""
        segment = self.shapes[task].segments[position]
        for event in segment.waits:
            published = emitted.get(event)
            if published is not None:
                clock = np.fmax(clock, published)
        if segment.sync_min > 0:
            clock = clock + segment.sync_min
        if segment.spawns:
            children = self.shape.segment_spawns[task][position]
            if state is None:
                clock, _ = fast._spawn(self.shape, self.programs, records, children, clock)
            else:
                # Blocked on subagents already spawned: each returns when what is left of it is done.
                returned = clock
                for child in children:
                    returned = np.maximum(returned, self._child_end(child, self.states[child], clock))
                clock = returned
        return clock

    def _child_end(self, child: int, state: TaskState | None, clock: FloatArray) -> FloatArray:
        """When a subagent of a running parent returns: its end, or what is left of its work."""
        if state is not None and state.end_min is not None:
            return np.full(self.count, state.end_min)
        timing = self.programs.timings[child]
        if state is None:
            whole: FloatArray = clock + timing.segment_min.sum(axis=1)
            return whole
        shape = self.shapes[child]
        program = self.programs.tasks[child]
        cycle = min(state.cycles_done, shape.cycles)
        if cycle >= shape.cycles:
            return clock
        after = program.duration_min[:, (cycle + 1) * shape.attempts :].sum(axis=1)
        left: FloatArray = np.maximum(clock, self.now) + self._current(child, state, self.now) + after
        return left

    @staticmethod
    def _publish(events: tuple[str, ...], clock: FloatArray, emitted: dict[str, FloatArray]) -> None:
        for event in events:
            if event not in emitted:
                emitted[event] = clock

    def _granted(self, states: list[TaskState | None], now: float) -> list[TaskState | None]:
        """``states`` with each attempt in progress begun when the rate limits let its request through,
        taking the requests in the order they arrived (from a full bucket): one still queued begins
        after now."""
        assert self.buckets is not None
        buckets = TokenBuckets(self.layout.plan.scenario.rate_limits)  # type: ignore[arg-type]
        arrived = sorted(
            (one.working_since_min, task)
            for task, one in enumerate(states)
            if one is not None and one.end_min is None and one.working_since_min is not None
        )
        granted = list(states)
        for since, task in arrived:
            state = states[task]
            assert state is not None
            requests, counted, output = self._asking(task, state)
            begins = since + buckets.reserve(since, requests, counted, output) / self.pace
            self.paced_from = max(self.paced_from, begins)
            granted[task] = TaskState(
                taken_min=state.taken_min,
                cycles_done=state.cycles_done,
                attempts_failed=state.attempts_failed,
                working_since_min=begins,
            )
        return granted

    def _paced(self, index: int, end: FloatArray, queued: FloatArray) -> FloatArray:
        """``end`` held no earlier than the rate limits allow: for every k, the unit's k-th request from
        its last goes through only once every request queued before it has been served at the limits'
        pace, and then the unit still works its last k attempts."""
        assert self.buckets is not None
        buckets = self.buckets
        members = self.shape.members[index]
        for task in members:
            queued += self.left[task][2]
        for task in members:
            shape = self.shapes[task]
            program = self.programs.tasks[task]
            state = self.states[task]
            first = self._first_slot(task, state)
            if state is not None and state.working_since_min is not None:
                first += 1  # the attempt in progress is through the limits already
            if first >= shape.slots:
                continue
            ran = program.ran[:, first:]
            calls = program.calls[:, first:]
            amounts = (
                np.where(calls > 0, calls, ran).astype(float),
                (program.input_tokens[:, first:] + program.cache_write_tokens[:, first:]).astype(float),
                program.output_tokens[:, first:].astype(float),
            )
            # Sums over the last k attempts, k = 1, 2, ...: reversed running sums.
            work = np.cumsum(program.duration_min[:, first:][:, ::-1], axis=1)
            for kind, rate in zip(buckets.kinds, buckets.rate, strict=True):
                last_k = np.cumsum(amounts[kind][:, ::-1], axis=1)
                # The k-th request from the last waits for what is queued before it.
                waiting = np.maximum(queued[kind][:, None] - last_k, 0.0)
                served = self.paced_from + waiting / (rate * self.pace)
                reached = np.where(ran[:, ::-1], served + work, -np.inf).max(axis=1)
                end = np.maximum(end, reached)
        return end


def outlook(plan: Plan, state: RunState, *, replications: int = 1000, seed: int = 0) -> Outlook:
    """The rest of ``plan``'s run from ``state``, in ``replications`` replications drawn from ``seed``.

    Raises :class:`~cycleplan.sim.layout.SimulationError` for a plan the fast engine cannot run (its
    lanes' order cannot be kept)."""
    return _Forecaster(plan, replications, seed).run(state)


__all__ = ["Grant", "Outlook", "RunState", "TaskState", "conditioned_remaining", "outlook", "served_pace"]
