"""What both engines share: a plan's static shape (:class:`Shape`), one batch's programs in plain lists
(:class:`Batch`), the row of records a replication fills (:class:`Row`), and the task states and
cancellation reasons records keep. Knows no SimPy, so the fast engine can load without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cycleplan.core.buckets import TokenBuckets
from cycleplan.core.model import RateLimits
from cycleplan.sim.layout import Layout, Spec
from cycleplan.sim.programs import Programs, TaskShape

DISPATCH_MODES = ("plan", "dynamic")

PENDING, RUNNING, DONE, FAILED, CANCELLED = range(5)
"""Unit and task states; records keep DONE, FAILED and CANCELLED as a task's status."""

REASONS = ("", "race_lost", "dependency_failed", "cancel_parallel", "stalled")
"""Why a task was cancelled, by the code records keep."""
RACE_LOST, DEPENDENCY_FAILED, CANCEL_PARALLEL, STALLED = range(1, 5)

NAN = math.nan


@dataclass
class Row:
    """What one run of one replication recorded; lists by task index (the layout's task order)."""

    lane: list[int]
    """The lane index the task took, or -1 when it never started."""
    taken: list[float]
    """When it took its lane (NaN: never)."""
    end: list[float]
    status: list[int]
    reason: list[int]
    stop_segment: list[int]
    """The segment it was working when it was interrupted, or -1."""
    sync_wait: list[float]
    """Minutes held waiting for events, and paying sync minutes when interrupted doing so."""
    sync_paid: list[float]
    """Minutes of sync handoff paid in full."""
    rate_wait: list[float]
    segment_start: list[list[float]]
    """Per task, when each of its segments began (NaN: never)."""
    blocked: list[float] = field(default_factory=list)
    """Minutes each task was blocked on the subagents it spawned."""
    emitted: dict[str, float] = field(default_factory=dict)
    """Event -> when it was published."""
    makespan: float = 0.0


class Shape:
    """What every replication of one run shape (the parallel plan, or a one-lane baseline) shares."""

    def __init__(
        self,
        layout: Layout,
        spec: Spec,
        shapes: list[TaskShape],
        *,
        dispatch: str = "plan",
        ideal: bool = False,
        rate_limits: RateLimits | None = None,
    ) -> None:
        if dispatch not in DISPATCH_MODES:
            raise ValueError(f"dispatch must be one of {', '.join(DISPATCH_MODES)}, got '{dispatch}'")
        self.layout = layout
        self.spec = spec
        self.shapes = shapes
        self.cache: dict[str, object] = {}
        """Derived static data other modules keep with the shape (e.g. what measuring needs)."""
        self.dynamic = dispatch == "dynamic"
        self.ideal = ideal
        self.rate_limits = None if ideal or rate_limits is None else rate_limits
        if self.rate_limits is not None and not TokenBuckets(self.rate_limits).binding:
            self.rate_limits = None
        names = list(layout.tasks)
        self.names = names
        self.index = {name: position for position, name in enumerate(names)}
        self.lanes = list(spec.lanes)
        self.lane_index = {lane: position for position, lane in enumerate(self.lanes)}
        self.units = spec.units
        self.members = [tuple(self.index[task] for task in unit.members) for unit in spec.units]
        self.skipped = [tuple(self.index[task] for task in unit.skipped) for unit in spec.units]
        self.unit_of = [-1] * len(names)
        for unit in spec.units:
            for task in unit.members:
                self.unit_of[self.index[task]] = unit.index
        self.queues = [tuple(self.index[task] for task in spec.queues[lane]) for lane in self.lanes]
        self.planned_lane = [self.lane_index.get(spec.lane_of.get(name, ""), -1) for name in names]
        self.role = [layout.tasks[name].role for name in names]
        self.by_priority = sorted(range(len(self.units)), key=lambda index: self.units[index].priority)
        role_lanes: dict[str | None, list[int]] = {}
        for lane, role in spec.lanes.items():
            if lane not in spec.subagent_lanes:
                role_lanes.setdefault(role, []).append(self.lane_index[lane])
        self.lanes_for = [role_lanes.get(role, []) + role_lanes.get(None, []) for role in self.role]
        self.capacities = dict(spec.capacities)
        self.demand = [
            {
                resource: units
                for resource, units in layout.demand[name].items()
                if resource in self.capacities
            }
            for name in names
        ]
        self.cancel_parallel = [layout.roles[name].failure.cancel_parallel for name in names]
        self.emits = [tuple(layout.tasks[name].emits) for name in names]
        self.waiters = {
            event: tuple(self.index[name] for name in waiting) for event, waiting in layout.waiters.items()
        }
        self.dependents = layout.dependents
        self.after_count = [len(unit.after) for unit in spec.units]
        self.queue_length = [len(queue) for queue in self.queues]
        self.plain = [
            len(members) == 1 and not unit.skipped
            for members, unit in zip(self.members, spec.units, strict=True)
        ]
        """Units of one task that is no race's."""

        self.simple = not self.dynamic and not self.capacities
        """Plan dispatch without shared capacity: a unit can only become startable when a lane frees or
        a unit it comes after is done, so dispatch looks only there."""
        self.straight = self.simple and all(self.plain) and self.rate_limits is None
        self.segment_counts = [len(shape.segments) for shape in shapes]
        """Nothing but a task running out of retries can interrupt anything: each lane can walk its
        queue on its own (see :meth:`Run.run`)."""
        # Under rate limits: per cycle, the events awaited before it, their sync cost and those it emits.
        self.cycle_waits: list[list[tuple[tuple[str, ...], float]]] = []
        self.cycle_emits: list[list[tuple[str, ...]]] = []
        for shape in shapes:
            waits: list[tuple[tuple[str, ...], float]] = [((), 0.0)] * shape.cycles
            emits: list[tuple[str, ...]] = [()] * shape.cycles
            for segment in shape.segments:
                if segment.waits:
                    waits[segment.first_cycle] = (segment.waits, segment.sync_min)
            for event, cycle in shape.task.emits.items():
                emits[cycle - 1] = (*emits[cycle - 1], event)
            self.cycle_waits.append(waits)
            self.cycle_emits.append(emits)
        self.inline = spec.inline
        """Subagents run on their parent's lane one after the other (the one-lane baseline)."""
        self.segment_spawns = [
            [tuple(self.index[child] for child in segment.spawns) for segment in shape.segments]
            for shape in shapes
        ]
        """Per task and segment: the subagents spawned at its start."""
        self.cycle_spawns: list[list[tuple[int, ...]]] = [[()] * shape.cycles for shape in shapes]
        """Per task and cycle: the subagents spawned at its start (for per-attempt work)."""
        self.subagents = [
            tuple(child for spawned in per_segment for child in spawned)
            for per_segment in self.segment_spawns
        ]
        self.sub_lane: dict[tuple[int, int], int] = {}
        """(a lane, n) -> the lane of the n-th subagent (from 0) spawned at once by a task on it."""
        for lane, position in self.lane_index.items():
            number = 1
            while f"{lane}-sub{number}" in self.lane_index:
                self.sub_lane[(position, number - 1)] = self.lane_index[f"{lane}-sub{number}"]
                number += 1
        for position, task_shape in enumerate(shapes):
            for segment, spawned in zip(task_shape.segments, self.segment_spawns[position], strict=True):
                if spawned:
                    self.cycle_spawns[position][segment.first_cycle] = spawned


class Batch:
    """One batch's programs, turned into plain lists that a replication reads without numpy."""

    def __init__(self, shape: Shape, programs: Programs) -> None:
        self.source = programs
        self.count = programs.count
        timings = programs.timings
        self.segment_min = [timing.segment_min.tolist() for timing in timings]
        self.fail_segment = [timing.fail_segment.tolist() for timing in timings]
        self.fail_cycle = [timing.fail_cycle.tolist() for timing in timings]
        fails: list[bool] = [False] * programs.count
        if timings:
            failing = np.asarray((np.stack([t.fail_segment for t in timings]) >= 0).any(axis=0), dtype=bool)
            fails = [bool(value) for value in failing]
        self.fails = fails
        """Per replication: some task runs out of retries."""
        self.rate_limited = shape.rate_limits is not None
        if self.rate_limited:
            self.ran: list[list[list[bool]]] = []
            self.duration: list[list[list[float]]] = []
            self.failed: list[list[list[bool]]] = []
            self.counted: list[list[list[int]]] = []
            self.output: list[list[list[int]]] = []
            for program in programs.tasks:  # one task's program at a time (a batch may keep none)
                self.ran.append(program.ran.tolist())
                self.duration.append(program.duration_min.tolist())
                self.failed.append(program.failed.tolist())
                self.counted.append((program.input_tokens + program.cache_write_tokens).tolist())
                self.output.append(program.output_tokens.tolist())
