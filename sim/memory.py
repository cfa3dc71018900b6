"""How much memory a simulation takes, worked out from the plan's size before anything runs, and how its
replications are batched to stay under a limit.

A simulation's peak memory has these parts (:class:`MemoryPlan`):

- **fixed**: the interpreter and its libraries, the plan and what the simulator derives from it, and one
  task's block of draws (:data:`cycleplan.core.draws.BLOCK` replications at once, whatever the batch);
- **per replication kept**: what the result holds for every replication (each scalar, lane, role and
  wait series; each task's start and finish, for its percentiles), however the replications are run;
- then the larger of two phases that never overlap: **a batch** running (per replication of it: the
  engines' records, the clocks' numbers per task and segment, the measuring's arrays per task, and, when
  the batch keeps its programs, every attempt of every task), or **the median replication's trace**
  (its programs and its events: every cycle attempt when it has at most :data:`MAX_TRACE_EVENTS`
  events, else only its tasks' starts, published events and ends).

Batches keep their programs when a whole batch of them fits (the fastest way, and the only one small
plans ever take); otherwise each task's attempts are worked out again from its draws when measured, one
task at a time, and batches shrink until they fit. Neither changes a single draw or number: batches are
cut along the draws' blocks and their curves go to the cumulative sketch batch by batch, as before.
When even a batch of one replication does not fit, :func:`memory_plan` raises :class:`MemoryLimitError`
saying how many replications would. The coefficients are bytes measured on this code (see
``benchmarks/large_scenarios.py``), rounded up: an estimate, meant to err high.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cycleplan.core.draws import BLOCK
from cycleplan.core.metrics import WAIT_CAUSES
from cycleplan.core.wording import counted
from cycleplan.sim.layout import SimulationError
from cycleplan.sim.prediction import SCALARS

if TYPE_CHECKING:
    from cycleplan.sim.simulation import Simulator

DEFAULT_MAX_MEMORY = 2_000_000_000
"""The limit ``simulate`` keeps to unless told otherwise, in bytes (2 GB)."""
MAX_TRACE_EVENTS = 100_000
"""The most events the median trace keeps with its cycles (about 200 MB); a bigger one keeps its tasks'
starts, published events and ends only."""

BASE_BYTES = 160_000_000
"""The interpreter with numpy, scipy, SimPy, pydantic and the command line loaded, and some slack."""
PLAN_TASK_BYTES = 12_000
"""Per task: the scenario, the plan, the layout and the simulator's static shapes and caches."""
PLAN_SLOT_BYTES = 40
"""Per cycle attempt of the plan: the static slot arrays the simulator keeps per task."""
EVENT_BYTES = 2_200
"""Per event of the median trace, in memory (a pydantic Event and its metadata)."""
DRAW_BYTES = 110
"""Per (attempt, replication, cycle) of one task's block of draws, with the temporaries drawing makes."""
PROGRAM_SLOT_BYTES = 130
"""Per attempt slot and replication of a kept program (its arrays), with what concatenating adds."""
WORKED_SLOT_BYTES = 420
"""Per attempt slot and replication of the one program being measured: it and its temporaries."""
TASK_BYTES = 400
"""Per task and replication of a batch: records (parallel and baseline), timings and measuring arrays
(about 350 measured on 1,000 tasks of 100 cycles)."""
SEGMENT_BYTES = 48
"""Per segment and replication of a batch: segment starts, minutes, and the SimPy engine's lists."""
RATE_LIMITED_SLOT_BYTES = 200
"""Per attempt slot and replication of a batch the SimPy engine runs under rate limits (its lists)."""
KEPT_TASK_BYTES = 24
"""Per task and replication kept: its first start and finish, and its share of the critical counts."""
KEPT_VALUE_BYTES = 96
"""Per value of a per-replication series kept: numpy, then Python lists, then JSON if written."""


class MemoryLimitError(SimulationError):
    """The simulation would need more memory than the limit; says how many replications fit."""

    def __init__(self, plan: MemoryPlan, fits: int) -> None:
        self.plan = plan
        self.fits = fits
        super().__init__("replications", plan.refusal(fits))


def megabytes(count: float) -> str:
    """``count`` bytes in MB or GB, for messages."""
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:,.0f} MB"


@dataclass(frozen=True)
class MemoryPlan:
    """The memory estimate of one simulation and the batches it runs in (all sizes in bytes)."""

    replications: int
    limit: int | None
    fixed: int
    kept: int
    """Kept per replication."""
    kept_batch: int
    """Per replication of a batch that keeps its programs."""
    worked_batch: int
    """Per replication of a batch that works programs out again, task by task (its largest task's
    attempts included)."""
    batch: int
    """Replications per batch."""
    keep: bool
    """Whether batches keep their programs."""
    trace: int
    """The median replication's trace, run again after the batches: its programs and its events."""
    trace_cycles: bool
    """Whether the median trace keeps its cycle attempts."""

    @property
    def per_replication(self) -> int:
        """What each replication adds at the peak: its kept results and its share of a batch's memory
        (as batches run at this plan's size)."""
        return self.kept + (self.kept_batch if self.keep else self.worked_batch)

    @property
    def peak(self) -> int:
        """The estimated peak of the whole process."""
        working = (self.kept_batch if self.keep else self.worked_batch) * self.batch
        return self.fixed + self.kept * self.replications + max(working, self.trace)

    def least(self, replications: int) -> int:
        """The least memory ``replications`` replications need: batches of one, worked out again."""
        return self.fixed + self.kept * replications + max(self.worked_batch, self.trace)

    def refusal(self, fits: int, fewer: str = "run {fits:,}", more: str = "raise the limit") -> str:
        """The one line that says why the replications do not fit and what to do: ``fewer`` (with
        ``{fits}``, how many fit) or ``more`` (raise the limit)."""
        needs = "needs" if self.replications == 1 else "need"
        head = (
            f"{counted(self.replications, 'replication')} {needs} at least "
            f"{megabytes(self.least(self.replications))} "
            f"(about {megabytes(self.fixed + max(self.worked_batch, self.trace))} for the plan, a batch and "
            f"the median trace, then {megabytes(self.kept)} per replication), more than the "
            f"{megabytes(self.limit or 0)} memory limit"
        )
        if fits >= 1:
            return f"{head}; {fits:,} fit: {fewer.format(fits=fits)}, or {more}"
        return f"{head}; not even one replication fits: {more} to at least {megabytes(self.least(1))}"


def memory_plan(simulator: Simulator, replications: int, engine: str, limit: int | None) -> MemoryPlan:
    """How ``replications`` of ``simulator``'s plan run with ``engine`` (``fast`` or ``simpy``) within
    ``limit`` bytes (None: no limit, batches keep their programs as they always did); raises
    :class:`MemoryLimitError` when they cannot."""
    shapes = simulator.shapes
    parallel = simulator.parallel
    tasks = len(shapes)
    slots = sum(shape.slots for shape in shapes)
    segments = sum(len(shape.segments) for shape in shapes)
    largest_slots = max((shape.slots for shape in shapes), default=0)
    lanes = len(parallel.lanes)
    roles = len({shape.task.role for shape in shapes})
    series = len(SCALARS) + lanes + roles + len(WAIT_CAUSES) + 2 * roles

    expected_attempts = 0.0
    for shape in shapes:
        failure = shape.role.failure.probability_per_cycle if not simulator.ideal else 0.0
        expected_attempts += shape.cycles * min(shape.attempts, 1.0 / max(1.0 - failure, 1e-9))
    task_events = 3 * tasks + len(parallel.layout.emitter) + 2
    trace_cycles = expected_attempts + task_events <= MAX_TRACE_EVENTS
    trace_events = int(expected_attempts) + task_events if trace_cycles else task_events

    fixed = (
        BASE_BYTES
        + tasks * PLAN_TASK_BYTES
        + slots * PLAN_SLOT_BYTES
        + max((shape.attempts * shape.cycles for shape in shapes), default=0) * BLOCK * DRAW_BYTES
    )
    trace = trace_events * EVENT_BYTES + slots * PROGRAM_SLOT_BYTES
    kept = tasks * KEPT_TASK_BYTES + series * KEPT_VALUE_BYTES
    shared = tasks * TASK_BYTES + segments * SEGMENT_BYTES
    if parallel.rate_limits is not None:
        shared += slots * RATE_LIMITED_SLOT_BYTES
    kept_batch = shared + slots * PROGRAM_SLOT_BYTES
    worked_batch = shared + largest_slots * WORKED_SLOT_BYTES
    step = 1 if simulator.ideal else min(4 * BLOCK if engine == "fast" else BLOCK, replications)

    def plan_of(batch: int, keep: bool) -> MemoryPlan:
        return MemoryPlan(
            replications, limit, fixed, kept, kept_batch, worked_batch, batch, keep, trace, trace_cycles
        )

    if limit is None:
        return plan_of(step, True)
    room = limit - fixed - kept * replications
    if max(kept_batch * step, trace) <= room:
        return plan_of(step, True)
    batch = step
    while batch > 1 and max(worked_batch * batch, trace) > room:
        # The next power of two down: those below a block divide it, so no batch straddles two blocks.
        batch = 1 << ((batch - 1).bit_length() - 1)
    chosen = plan_of(batch, False)
    if chosen.peak > limit:
        fits = (limit - chosen.least(0)) // kept if kept else 0
        raise MemoryLimitError(chosen, max(0, min(int(fits), replications - 1)))
    return chosen
