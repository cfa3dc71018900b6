"""The orchestrator: one coroutine per lane follows the Plan, and every step is an event in the store.

Each lane runs its planned tasks in order. Before a task starts, its dependencies must have completed
(for a race member: its race must have a winner); if one failed or was cancelled, the task is cancelled
(``dependency_failed``). A started task runs its cycles on the backend; before cycle *k* it holds its
lane until every event it ``waits`` for before *k* is committed (the seed's ``watchFor``), and after cycle
*j* it publishes what it ``emits`` after *j*. Failure policy:

- a failed attempt is retried after an exponential backoff, up to the task's ``retries`` (else its
  role's ``failure.max_retries``), unless the backend says another attempt cannot help (a final
  failure: an API key refused, a command's exit status in ``final_exit_codes``);
- a task out of retries, out of time (``timeout_min``) or refused by the backend fails
  (``task_failed``); its dependents, and tasks waiting for its events, are cancelled
  (``dependency_failed``); with the role's ``cancel_parallel`` its running siblings of the same role
  are cancelled too (``cancel_parallel``);
- the first race member to complete wins, the others are cancelled (``race_lost``);
- the run's timeout (``run_timeout``), Ctrl-C (``interrupted``) and a plan whose lanes block each
  other forever (``stalled``) cancel what is left.

Subagents (fork-join). A task whose cycle *k* spawns subagents starts them when it reaches *k*, after
that cycle's waits and handoff: each on its planned lane (``<parent lane>-sub<n>``; subagents that share
a lane, as on the one-lane baseline's, run there one after the other), with no dependencies, events or
slots. The parent holds its lane, blocked, until the last returns, records that time as ``blocked_ms``
on cycle *k*, and then works the cycle. A subagent that fails returns its failure and the parent goes on;
``cancel_parallel`` does not reach subagents, nor does a subagent's failure set it off. A parent that ends
before spawning cancels the subagents it has not spawned (``dependency_failed``); a parent cancelled
while blocked cancels its running subagents with its own reason first. Subagent lanes have no coroutine of
their own: they run what their parents spawn. A resumed parent spawns again only the subagents that had
not ended, and counts the time it was blocked before the stop.

A backend whose agent spawns subagents itself (:class:`~cycleplan.executor.backend.SpawnsSubagents`:
Claude Code through its Agent tool) is handed the cycle's planned subagents instead, and reports them
while the cycle runs: a subagent starts on its lane when the agent spawns it and completes (or fails)
when it returns, all its cycles in that one turn (its first cycle carries the turn, the others are
recorded ``folded``); the parent's cycle records the time it was blocked on them (``blocked_ms``, with
``spawned_within``). A planned subagent the agent did not spawn by the end of the cycle is cancelled
(``not_spawned``). Each tool call the backend reports is a ``progress_update`` (``tool``, ``started_at``,
``duration_ms``) of the task whose agent made it.

A task holds its lane, its resources and its ``max_parallel`` slot from its start to its end, through
waits on events, subagents and rate limits, as :mod:`cycleplan.core.rules` rules for the planner and
the simulator too (:meth:`Orchestrator._before_cycle` gives back what that rule says a waiting task does
not keep). Every event goes through :meth:`Orchestrator.record`, which commits it to the
store before anything may react to it. This module never imports a concrete backend, the terminal or the
simulator.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cycleplan.core.metrics import run_header
from cycleplan.core.model import Event, Plan, PlannedTask, Role, Task
from cycleplan.core.prices import cost_usd, resolve
from cycleplan.core.rules import DispatchUnit, Holding, dispatch_units, holds_while_waiting
from cycleplan.core.wording import counted, minutes
from cycleplan.executor import events as ev
from cycleplan.executor.backend import (
    Backend,
    CycleOutcome,
    CycleRequest,
    SpawnsSubagents,
    TakesHandoff,
    Usage,
)
from cycleplan.executor.clock import Clock
from cycleplan.executor.coordination import EventBoard
from cycleplan.executor.guards import BUDGET, DEADLINE, TRIGGERS, Forecaster, ForecastLoop, Guards
from cycleplan.executor.replay import RunProgress
from cycleplan.executor.secrets import redact, secret_values
from cycleplan.executor.slots import PARALLEL, Slots
from cycleplan.executor.summary import running_ms, stopped_spans
from cycleplan.store.runs import RunStore

MAX_BACKOFF_S = 300.0
"""Backoff between attempts never exceeds this (scenario seconds)."""

STALL_CHECK_S = 0.5
"""How often (real seconds) the orchestrator checks that some lane can still make progress."""


@dataclass
class _Gate:
    """Where the members of a race group wait for each other before they start together."""

    arrived: set[str] = field(default_factory=set)
    opened: asyncio.Future[None] | None = None
    """Done once the group's capacity is granted: every member waiting goes ahead."""
    granted: asyncio.Future[None] | None = None
    """The request for the group's capacity, once every member still running has arrived."""
    demand: dict[str, int] = field(default_factory=dict)


@dataclass
class TaskRun:
    """The live state of one task in this executor process."""

    task: Task
    role: Role
    lane: str
    priority: tuple[float, int]
    """Its unit's (:func:`cycleplan.core.rules.dispatch_units`): who takes shared capacity first."""
    started: bool = False
    cycles_done: int = 0
    failed_attempts: int = 0
    """Failed attempts at the next cycle (what its retries count)."""
    interrupted_attempts: int = 0
    """Attempts at the next cycle that Ctrl-C stopped in an earlier part of the run (numbered, not
    counted as failures)."""
    emitted: set[str] = field(default_factory=set)
    previous: dict[str, Any] | None = None
    spent_ms: float = 0.0
    outcome: str | None = None
    """complete, failed or cancelled once the task has ended."""
    handle: asyncio.Task[None] | None = None
    cancel: tuple[str, str | None] | None = None
    """(reason, cause) when someone has asked for this task to stop."""
    working: bool = False
    """Started and not ended: what ``cancel_parallel`` stops."""
    tokens: int = 0
    cost_usd: float = 0.0
    cycle: int = 0
    state: str = "pending"
    """pending, blocked (dependencies), waiting (an event), handoff (taking events in), subagents
    (blocked on those it spawned), running, backoff, or how it ended."""
    attempt_started_ms: float = 0.0
    """Epoch milliseconds when the current (or last) attempt started."""
    task_started: float | None = None
    waiting_since: float | None = None
    """Monotonic time the task began holding its lane for an event, while it does."""
    holding: dict[str, int] = field(default_factory=dict)
    """The slots (resource units, a ``max_parallel`` slot) it holds right now."""
    artifacts: Path | None = None
    reason: str | None = None
    """Why it was cancelled, when an earlier part of the run cancelled it."""
    blocked_since: float | None = None
    """Monotonic time it began to be blocked on the subagents it spawned (None: it is not)."""

    @property
    def subagent(self) -> bool:
        return self.task.spawned_by is not None


@dataclass(frozen=True)
class CycleStart:
    """What happened before a cycle's first attempt, recorded with it: real ms held for its events,
    taking them in, and blocked on the subagents it spawned (None: it spawns none)."""

    sync_wait_ms: float = 0.0
    sync_ms: float = 0.0
    blocked_ms: float | None = None

    def as_metadata(self) -> dict[str, float]:
        shown = {"sync_wait_ms": round(self.sync_wait_ms, 3), "sync_ms": round(self.sync_ms, 3)}
        if self.blocked_ms is not None:
            shown["blocked_ms"] = round(self.blocked_ms, 3)
        return shown


AFTER_FIRST = CycleStart()
"""What the retries of a cycle carry: the first attempt recorded its waits."""


@dataclass
class LaneView:
    """What the progress view shows for one lane."""

    lane: str
    role: str | None
    task: TaskRun | None = None
    done: int = 0
    total: int = 0
    finished: bool = False


@dataclass(frozen=True)
class Policy:
    """The executor's knobs, in the scenario's units (the clock turns them into real time)."""

    retry_backoff_s: float = 5.0
    """First backoff after a failed attempt, in scenario seconds; doubles with each retry."""
    task_timeout_min: float | None = None
    """Default for tasks without ``timeout_min`` (scenario minutes)."""
    run_timeout_min: float | None = None
    """Scenario minutes the whole run may take (this executor process's part of it)."""
    seed: int = 0


class Orchestrator:
    """Runs one Plan's lanes against one backend, recording into one run of the store."""

    def __init__(
        self,
        plan: Plan,
        backend: Backend,
        store: RunStore,
        run_id: str,
        *,
        clock: Clock,
        policy: Policy,
        progress: RunProgress,
        run_folder: Path,
        workdirs: Mapping[str, Path],
        header: Mapping[str, Any],
        observers: list[Callable[[Event], None]] | None = None,
        guards: Guards | None = None,
        forecaster: Forecaster | None = None,
    ) -> None:
        self.plan = plan
        self.scenario = plan.scenario
        self.backend = backend
        self.store = store
        self.run_id = run_id
        self.clock = clock
        self.policy = policy
        self.run_folder = run_folder
        self.workdirs = dict(workdirs)
        self.header = dict(header)
        self.observers = observers or []
        self.board = EventBoard()
        self.resume = progress.resumes
        self._secrets = secret_values()
        self._rng = random.Random(policy.seed)
        self.stopping: str | None = None
        self.status: str = "running"
        self.guards = guards
        self.stopped_by: dict[str, Any] | None = None
        """The guard that stopped the run (``guard``: budget or deadline) and why, when one did."""
        self.forecast: dict[str, Any] | None = None
        """The latest forecast recorded (its event's metadata), for the progress views."""
        self._trace: list[Event] | None = None
        """The run's events so far (forecasts left out), kept only for a forecaster."""
        self._forecasts: ForecastLoop | None = None
        if forecaster is not None:
            self._trace = []
            self._forecasts = ForecastLoop(forecaster, self._snapshot, self._forecast_made, self.warn)
        self._part_began = time.monotonic()

        tasks = {task.id: task for task in self.scenario.all_tasks()}
        self.units = {unit.name: unit for unit in dispatch_units(plan)}
        self.unit_of = {member: unit for unit in self.units.values() for member in unit.members}
        """Each task that starts on its lane -> its unit (subagents have none: their parents start them)."""
        self._gates = {name: _Gate() for name, unit in self.units.items() if len(unit.members) > 1}
        """Race groups, whose members start together."""
        self.tasks: dict[str, TaskRun] = {}
        self.lanes: dict[str, LaneView] = {}
        self._queues: dict[str, list[str]] = {}
        """The tasks each lane with a coroutine of its own runs, in order (subagents are spawned)."""
        for lane in plan.lanes:
            view = self.lanes[lane.lane] = LaneView(lane.lane, lane.role, total=len(lane.tasks))
            queue: list[str] = []
            for planned in lane.tasks:
                task = tasks[planned.task]
                run = self.tasks[task.id] = self._task_run(task, lane.lane, planned, progress)
                if task.spawned_by is None:
                    queue.append(task.id)
                elif run.outcome is not None:
                    view.done += 1
            if queue or len(lane.tasks) == 0:
                self._queues[lane.lane] = queue
            else:
                view.finished = view.done >= view.total
        self.children: dict[str, dict[int, list[str]]] = {
            parent: {cycle: [child.id for child in children] for cycle, children in cycles.items()}
            for parent, cycles in self.scenario.subagents().items()
        }
        """Each task that spawns subagents -> the cycle it spawns them at -> their ids, in order."""
        self._earlier: list[Event] = []
        """The events of the earlier parts of this run (a resumed run's)."""
        self.earlier_ms = 0.0
        """Real ms the earlier parts of this run were going (their stopped stretches left out): where
        the clocks of the progress lines and the run's log carry on from."""
        self.races: dict[str, list[str]] = {}
        for task in tasks.values():
            if task.race is not None:
                self.races.setdefault(task.race, []).append(task.id)
        self.emitter = {event: task.id for task in tasks.values() for event in task.emits}
        capacities = {name: resource.capacity for name, resource in self.scenario.resources.items()}
        if self.scenario.max_parallel is not None:
            capacities[PARALLEL] = self.scenario.max_parallel
        self.slots = Slots(capacities)
        for unit in self.units.values():
            self.slots.reserve(unit.priority, self._demand_of(unit))
        self._blocked: dict[str, asyncio.Future[Any] | None] = dict.fromkeys(self._queues)
        self._lanes_left = set(self._queues)
        self.spawns_within = isinstance(backend, SpawnsSubagents) and backend.spawns_subagents()
        """The backend's agent spawns subagents itself, within the cycle (see the module docstring)."""

    def _demand_of(self, unit: DispatchUnit) -> dict[str, int]:
        """What ``unit``'s members not yet ended take together."""
        total: dict[str, int] = {}
        for member in unit.members:
            run = self.tasks[member]
            if run.outcome is None:
                for name, units in self.slots.demand_of(run.task.requires, parallel=True).items():
                    total[name] = total.get(name, 0) + units
        return total

    def _task_run(self, task: Task, lane: str, planned: PlannedTask, progress: RunProgress) -> TaskRun:
        unit = self.unit_of.get(task.id)
        # Subagents come after every unit: they take no shared capacity, and give way in a stall.
        priority = unit.priority if unit is not None else (planned.start_min, len(self.units))
        run = TaskRun(task, self.scenario.role(task.role), lane, priority)
        done = progress.tasks.get(task.id)
        if done is not None:
            run.started = done.started
            run.cycles_done = done.cycles_done
            run.failed_attempts = done.failed_attempts
            run.interrupted_attempts = done.interrupted_attempts
            run.emitted = set(done.emitted)
            run.previous = done.previous
            run.spent_ms = done.spent_ms
            run.tokens = done.tokens
            run.cost_usd = done.cost_usd
            run.cycle = done.cycles_done
            run.reason = done.reason
            if done.ended is not None:
                run.outcome = {
                    ev.TASK_COMPLETE: "complete",
                    ev.TASK_FAILED: "failed",
                    ev.TASK_CANCELLED: "cancelled",
                }[done.ended]
                run.state = run.outcome
        return run

    # ----------------------------------------------------------------------------------------------
    # recording

    def publish_stored(self, trace: list[Event]) -> None:
        """Make the events of an earlier part of this run visible to the waits of this one."""
        self._earlier = list(trace)
        self.earlier_ms = running_ms(trace)
        for event in trace:
            self.board.publish(event)
            if event.action == ev.FORECAST_UPDATED:
                self.forecast = dict(event.metadata)
            elif self._trace is not None:
                self._trace.append(event)
        if self.guards is not None:
            self.guards.seed(trace, {task: run.task.role for task, run in self.tasks.items()})

    def record(self, actor: str, target: str, **metadata: Any) -> Event:
        """Commit an event to the store, then let waiters and observers see it."""
        clean = {key: self._clean(value) for key, value in metadata.items()}
        event = ev.make_event(actor, target, self.run_id, self.clock.now_ms(), **clean)
        stored = self.store.append(self.run_id, ev.key_for(event, resume=self.resume), event)
        if stored is not None:
            self.board.publish(event)
            if self._trace is not None and event.action != ev.FORECAST_UPDATED:
                self._trace.append(event)
                if event.action in TRIGGERS and self._forecasts is not None:
                    self._forecasts.due()
            for observer in self.observers:
                try:
                    observer(event)
                except Exception:  # showing progress must never stop a run
                    continue
        return event

    def warn(self, line: str) -> None:
        """Say ``line`` on the progress output and in the run's log (observers with a ``warn``)."""
        for observer in self.observers:
            warn = getattr(observer, "warn", None)
            if warn is not None:
                try:
                    warn(line)
                except Exception:  # showing progress must never stop a run
                    continue

    def run_min(self) -> float:
        """Scenario minutes since the run began, the time it stood stopped left out."""
        return self.clock.scenario_min(self.earlier_ms + (time.monotonic() - self._part_began) * 1000.0)

    def _snapshot(self) -> tuple[list[Event], float]:
        return list(self._trace or ()), self.run_min()

    def _forecast_made(self, forecast: dict[str, Any], now_min: float) -> None:
        """Record a forecast made at ``now_min`` (not once the run is stopping: it would forecast a stop),
        and warn of the guards it says are at risk."""
        if self.stopping is not None:
            return
        metadata = {key: value for key, value in forecast.items() if key != "action"}
        event = self.record(ev.RUN_ACTOR, self.run_id, action=ev.FORECAST_UPDATED, **metadata)
        self.forecast = dict(event.metadata)
        if self.guards is not None:
            for line in self.guards.warnings(forecast, now_min):
                self.warn(line)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self._secrets)
        if isinstance(value, dict):
            return {key: self._clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(item) for item in value]
        return value

    # ----------------------------------------------------------------------------------------------
    # the run

    async def run(self, *, resumed: bool) -> str:
        """Run every lane to its end; the run's status (complete, failed, timeout, interrupted)."""
        if resumed:
            self.record(ev.RUN_ACTOR, self.run_id, action=ev.RUN_RESUMED, resume=self.resume)
        else:
            header = run_header({lane.lane: lane.role for lane in self.plan.lanes}, self.scenario.all_tasks())
            self.record(ev.RUN_ACTOR, self.run_id, **header, **self.header)
        self._settle_orphans()
        self._part_began = time.monotonic()
        watchdogs = [asyncio.create_task(self._watch_stalls())]
        if self.policy.run_timeout_min is not None:
            watchdogs.append(asyncio.create_task(self._run_timeout(self.policy.run_timeout_min)))
        deadline = None if self.guards is None else self.guards.deadline_min
        if deadline is not None:
            if self.run_min() >= deadline:
                self._deadline_passed(deadline)  # before any lane starts: nothing is cut short
            else:
                watchdogs.append(asyncio.create_task(self._deadline(deadline)))
        if self._forecasts is not None:
            watchdogs.append(asyncio.create_task(self._forecasts.run(), name="forecasts"))
        lanes = [asyncio.create_task(self._lane(name), name=f"lane {name}") for name in self._queues]
        try:
            await asyncio.gather(*lanes)
        finally:
            for task in (*watchdogs, *lanes):
                task.cancel()
            await asyncio.gather(*watchdogs, *lanes, return_exceptions=True)
        self.status = self._final_status()
        if self.status == ev.INTERRUPTED:
            # Not over: what was stopped stays unfinished, and --resume carries on from here.
            guard = self.stopped_by or {}
            self.record(ev.RUN_ACTOR, self.run_id, action=ev.RUN_INTERRUPTED, resume=self.resume, **guard)
        else:
            self.record(ev.RUN_ACTOR, self.run_id, action=ev.RUN_COMPLETE, status=self.status)
        return self.status

    def _final_status(self) -> str:
        if self.stopping == ev.INTERRUPTED:
            return ev.INTERRUPTED
        if self.stopping == "run_timeout":
            return "timeout"
        outcomes = [run.outcome for run in self.tasks.values()]
        if any(outcome == "failed" for outcome in outcomes):
            return "failed"
        for run in self.tasks.values():
            if run.outcome == "cancelled" and not self._lost_race(run):
                return "failed"
        return "complete"

    def _lost_race(self, run: TaskRun) -> bool:
        race = run.task.race
        return race is not None and any(self.tasks[m].outcome == "complete" for m in self.races[race])

    def stop(self, reason: str, guard: dict[str, Any] | None = None) -> None:
        """Stop everything left: Ctrl-C (``interrupted``) leaves it unfinished for ``--resume``, and so does
        a guard (``interrupted`` with ``guard``: what :attr:`stopped_by` says); the run's timeout
        (``run_timeout``) cancels it."""
        if self.stopping is not None:
            return
        self.stopping = reason
        if guard is not None:
            self.stopped_by = guard
        for run in self.tasks.values():
            self._cancel(run, reason, None)

    async def _deadline(self, deadline: float) -> None:
        await asyncio.sleep(self.clock.real_s(deadline - self.run_min()))
        # The sleep ends a little early or late, never by more than the clock's grain: stop now.
        self._deadline_passed(deadline)

    def _deadline_passed(self, deadline: float) -> None:
        self.stop(
            ev.INTERRUPTED,
            {
                "guard": DEADLINE,
                "deadline_min": deadline,
                "message": f"the run's clock passed its deadline of {minutes(deadline)}",
            },
        )

    def _budget_passed(self, run: TaskRun) -> None:
        gate = self.guards.gate if self.guards is not None else None
        assert gate is not None
        expected = gate.expected_usd(run.task.role)
        self.stop(
            ev.INTERRUPTED,
            {
                "guard": BUDGET,
                "budget_usd": gate.budget_usd,
                "cost_usd": round(gate.spent_usd, 6),
                "message": (
                    f"${gate.spent_usd:,.4f} spent; the next cycle of {run.task.id} (about ${expected:,.4f}, "
                    f"the dearest of role {run.task.role} so far) would pass the budget of "
                    f"${gate.budget_usd:,.2f}"
                ),
            },
        )

    async def _run_timeout(self, minutes: float) -> None:
        await asyncio.sleep(self.clock.real_s(minutes))
        self.stop("run_timeout")

    async def _watch_stalls(self) -> None:
        """Cancel what waits forever: every unfinished lane blocked on something no lane can produce."""
        while True:
            await asyncio.sleep(STALL_CHECK_S)
            if self.stopping is not None or not self._lanes_left:
                continue
            blocked = [self._blocked[lane] for lane in self._lanes_left]
            if all(future is not None and not future.done() for future in blocked):
                # Break the knot with as little as possible: the task planned last gives way.
                waiting = [self.lanes[lane].task for lane in self._lanes_left]
                stuck = [run for run in waiting if run is not None and run.outcome is None]
                if stuck:
                    victim = max(stuck, key=lambda run: run.priority)
                    self._cancel(victim, "stalled", None)

    async def _lane(self, lane: str) -> None:
        view = self.lanes[lane]
        try:
            for task_id in self._queues[lane]:
                run = self.tasks[task_id]
                if run.outcome is not None:
                    view.done += 1
                    continue
                view.task = run
                if self.stopping is not None:
                    self._cancelled(run, self.stopping, None)
                else:
                    run.handle = asyncio.create_task(self._guarded(run), name=f"task {task_id}")
                    run.handle.add_done_callback(functools.partial(self._handle_done, run))
                    try:
                        await run.handle
                    except asyncio.CancelledError:
                        this = asyncio.current_task()
                        if run.cancel is None or (this is not None and this.cancelling()):
                            raise
                        # Cancelled before its coroutine began, so _guarded could not record it.
                        self._cancelled(run, *run.cancel)
                view.done += 1
            view.task = None
        finally:
            view.finished = True
            self._lanes_left.discard(lane)

    async def _guarded(self, run: TaskRun) -> None:
        try:
            await self._task(run)
        except asyncio.CancelledError:
            if run.cancel is None:
                raise
            if run.outcome is None:
                reason, cause = run.cancel
                self._cancelled(run, reason, cause)

    def _cancel(self, run: TaskRun, reason: str, cause: str | None) -> None:
        if run.outcome is not None or run.cancel is not None:
            return
        run.cancel = (reason, cause)
        if run.handle is not None and not run.handle.done():
            run.handle.cancel()

    # ----------------------------------------------------------------------------------------------
    # one task

    async def _task(self, run: TaskRun) -> None:
        task = run.task
        if run.subagent:
            # Spawned by its parent: no dependencies, races or slots stand in its way.
            await self._work(run, {})
            return
        run.state = "blocked"
        for dependency in task.after:
            ok, cause = await self._dependency(run, dependency)
            if not ok:
                self._cancelled(run, "dependency_failed", cause)
                return
        if task.race is not None:
            winner = self._race_winner(task.race)
            if winner is not None:
                self._cancelled(run, "race_lost", winner)
                return
        demand = self.slots.demand_of(task.requires, parallel=True)
        try:
            unit = self.unit_of[task.id]
            if unit.name in self._gates:
                await self._start_together(run, unit)
            else:
                await self._acquire(run, demand)
            await self._work(run, demand)
        finally:
            if run.holding:
                held, run.holding = run.holding, {}
                self.slots.release(held)

    async def _start_together(self, run: TaskRun, unit: DispatchUnit) -> None:
        """Wait on the lane until every member of ``unit`` still running has come this far, then take
        the unit's capacity for all of them at once (:mod:`cycleplan.core.rules`)."""
        gate = self._gates[unit.name]
        gate.arrived.add(run.task.id)
        self._open_gate(unit)
        if gate.opened is None:
            gate.opened = asyncio.get_running_loop().create_future()
        try:
            await self._blocked_on(run, asyncio.shield(gate.opened))
        except asyncio.CancelledError:
            gate.arrived.discard(run.task.id)
            if gate.granted is not None and not gate.granted.done() and not gate.arrived:
                self.slots.cancel(gate.granted, gate.demand)  # nobody left to take it
            raise

    def _open_gate(self, unit: DispatchUnit) -> None:
        """Ask for ``unit``'s capacity once every member not yet ended has arrived at its gate."""
        gate = self._gates[unit.name]
        live = [member for member in unit.members if self.tasks[member].outcome is None]
        if gate.granted is not None or not live or not all(member in gate.arrived for member in live):
            return
        if gate.opened is None:
            gate.opened = asyncio.get_running_loop().create_future()
        opened = gate.opened
        gate.demand = self._demand_of(unit)
        gate.granted = self.slots.acquire(gate.demand, unit.priority)

        def granted(future: asyncio.Future[None]) -> None:
            if future.cancelled():
                return
            for member in live:
                run = self.tasks[member]
                for name, units in self.slots.demand_of(run.task.requires, parallel=True).items():
                    run.holding[name] = run.holding.get(name, 0) + units
            if not opened.done():
                opened.set_result(None)

        if gate.granted.done():
            granted(gate.granted)
        else:
            gate.granted.add_done_callback(granted)

    def _handle_done(self, run: TaskRun, _: asyncio.Task[None]) -> None:
        self._ended(run)

    def _ended(self, run: TaskRun) -> None:
        """``run`` ended: when its unit will not start now, its reservation goes, and the others of a race
        that were waiting for it go ahead."""
        unit = self.unit_of.get(run.task.id)
        if unit is None:
            return
        if all(self.tasks[member].outcome is not None for member in unit.members):
            self.slots.withdraw(unit.priority)
        elif unit.name in self._gates:
            self._open_gate(unit)

    async def _blocked_on(self, run: TaskRun, future: asyncio.Future[Any]) -> Any:
        self._blocked[run.lane] = future
        try:
            return await future
        finally:
            self._blocked[run.lane] = None

    async def _acquire(self, run: TaskRun, demand: dict[str, int]) -> None:
        future = self.slots.acquire(demand, run.priority)
        try:
            await self._blocked_on(run, future)
        except asyncio.CancelledError:
            self.slots.cancel(future, demand)
            raise
        for name, units in demand.items():
            run.holding[name] = run.holding.get(name, 0) + units

    async def _dependency(self, run: TaskRun, dependency: str) -> tuple[bool, str | None]:
        """Whether ``dependency`` completed (for a race member: whether its race has a winner)."""
        race = self.tasks[dependency].task.race
        members = self.races[race] if race is not None else [dependency]
        while True:
            winner = next((m for m in members if self.tasks[m].outcome == "complete"), None)
            if winner is not None:
                return True, winner
            if all(self.tasks[m].outcome is not None for m in members):
                return False, dependency
            future = self.board.watch_next(predicate=_ended_among(frozenset(members)))
            await self._blocked_on(run, future)

    def _race_winner(self, race: str) -> str | None:
        return next((m for m in self.races[race] if self.tasks[m].outcome == "complete"), None)

    async def _wait_event(self, run: TaskRun, event: str) -> bool:
        """Hold the lane until ``event`` is committed; False when its emitter ended without it."""
        emitter = self.emitter[event]
        while True:
            if self.board.find(action=event) is not None:
                return True
            if self.tasks[emitter].outcome is not None:
                return False
            future = self.board.watch_next(
                predicate=lambda e: e.action == event or (e.target_id == emitter and e.action in ev.TERMINAL)
            )
            await self._blocked_on(run, future)

    async def _work(self, run: TaskRun, demand: dict[str, int]) -> None:
        task = run.task
        artifacts = run.artifacts = self.run_folder / "artifacts" / task.id
        artifacts.mkdir(parents=True, exist_ok=True)
        if not run.started:
            run.started = True
            self.record(
                run.lane,
                task.id,
                action=ev.TASK_STARTED,
                role=task.role,
                model=run.role.model,
                cycles=task.cycles,
                context_tokens=self.backend.context_tokens(task.role),
                planned_start_min=run.priority[0],
            )
        else:
            self.record(
                run.lane, task.id, action=ev.TASK_RESUMED, cycle=run.cycles_done + 1, resume=self.resume
            )
        run.working = True
        run.task_started = time.monotonic()
        timeout_min = task.timeout_min if task.timeout_min is not None else self.policy.task_timeout_min
        budget_s = None if timeout_min is None else self.clock.real_s(timeout_min)
        try:
            # A run killed between a cycle and what it emits publishes it now.
            self._emit_due(run)
            for cycle in range(run.cycles_done + 1, task.cycles + 1):
                run.cycle = cycle
                waited_ms, handoffs = await self._before_cycle(run, cycle, demand)
                if waited_ms is None:
                    return
                sync_ms = await self._take_handoff(run, cycle, handoffs, artifacts)
                blocked_ms = None if self.spawns_within else await self._spawn(run, cycle)
                start = CycleStart(waited_ms, sync_ms, blocked_ms)
                outcome = await self._cycle(run, cycle, start, handoffs, budget_s, artifacts)
                if outcome is None:
                    return
                run.cycles_done = cycle
                self._emit_due(run)
            self._complete(run)
        finally:
            run.working = False

    # ----------------------------------------------------------------------------------------------
    # subagents

    async def _spawn(self, run: TaskRun, cycle: int) -> float | None:
        """Start the subagents ``run`` spawns at ``cycle`` and hold it, blocked, until the last returns.

        Real ms blocked (with what an earlier part of the run spent blocked on them), or None when the
        cycle spawns nothing. Cancelled while blocked, it cancels the subagents still running with its own
        reason, waits for them to stop, and re-raises.
        """
        names = self.children.get(run.task.id, {}).get(cycle)
        if not names:
            return None
        children = [self.tasks[name] for name in names]
        earlier_ms = self._blocked_before(run, cycle, children)
        due = [child for child in children if child.outcome is None and child.cancel is None]
        if not due:
            return earlier_ms
        run.state = "subagents"
        began = run.blocked_since = time.monotonic()
        by_lane: dict[str, list[TaskRun]] = {}
        for child in due:
            by_lane.setdefault(child.lane, []).append(child)
        groups = [
            asyncio.create_task(self._subagents_on(lane, group), name=f"subagents {lane}")
            for lane, group in by_lane.items()
        ]
        try:
            await asyncio.wait(groups)
        except asyncio.CancelledError:
            reason, cause = run.cancel if run.cancel is not None else (ev.INTERRUPTED, None)
            for child in due:
                self._cancel(child, reason, cause)
            await _settle(groups)
            raise
        run.blocked_since = None
        return earlier_ms + (time.monotonic() - began) * 1000.0

    async def _subagents_on(self, lane: str, children: list[TaskRun]) -> None:
        """Run ``children`` on ``lane`` one after the other (usually one: a lane of its own)."""
        view = self.lanes[lane]
        for child in children:
            if child.outcome is not None or child.cancel is not None:
                continue  # stopped before its turn: its parent's ending settles it
            shown = view.task
            view.task = child
            view.finished = False
            child.handle = asyncio.create_task(self._guarded(child), name=f"task {child.task.id}")
            try:
                await child.handle
            except asyncio.CancelledError:
                this = asyncio.current_task()
                if child.cancel is None or (this is not None and this.cancelling()):
                    raise
                # Cancelled before its coroutine began, so _guarded could not record it.
                self._cancelled(child, *child.cancel)
            finally:
                if view.task is child:
                    view.task = shown

    def _blocked_before(self, run: TaskRun, cycle: int, children: list[TaskRun]) -> float:
        """Real ms ``run`` was blocked on ``children`` (spawned at ``cycle``) in earlier parts of this run
        and recorded nowhere yet: from their first start to the last's end, or to the stop, less the time
        the run stood stopped."""
        if not self._earlier:
            return 0.0
        names = {child.task.id for child in children}
        started: list[float] = []
        ended: dict[str, float] = {}
        for event in self._earlier:
            if event.target_id == run.task.id and event.action == ev.CYCLE_COMPLETED:
                if int(event.metadata.get("cycle", 0)) == cycle:
                    return 0.0  # its first attempt at the cycle recorded the blocked time
            elif event.target_id in names:
                if event.action == ev.TASK_STARTED:
                    started.append(event.timestamp)
                elif event.action in ev.TERMINAL:
                    ended[event.target_id] = event.timestamp
        if not started:
            return 0.0
        begin = min(started)
        until = max(ended.values()) if len(ended) == len(names) else self._earlier[-1].timestamp
        idle = sum(
            max(min(end, until) - max(start, begin), 0.0) for start, end in stopped_spans(self._earlier)
        )
        return max(until - begin - idle, 0.0)

    # ----------------------------------------------------------------------------------------------
    # subagents a backend's agent spawns itself

    def subagent_began(self, parent: TaskRun, child: TaskRun) -> None:
        """The parent's agent spawned ``child``: it starts on its lane now."""
        if child.outcome is not None or child.working:
            return
        view = self.lanes[child.lane]
        view.task = child
        view.finished = False
        child.working = True
        child.state = "running"
        child.cycle = child.cycles_done + 1
        child.task_started = time.monotonic()
        child.attempt_started_ms = self.clock.now_ms()
        child.artifacts = self.run_folder / "artifacts" / child.task.id
        parent.state = "subagents"
        if not child.started:
            child.started = True
            self.record(
                child.lane,
                child.task.id,
                action=ev.TASK_STARTED,
                role=child.task.role,
                model=child.role.model,
                cycles=child.task.cycles,
                context_tokens=self.backend.context_tokens(child.task.role),
                planned_start_min=child.priority[0],
                spawned_within=True,
            )
        else:
            self.record(
                child.lane,
                child.task.id,
                action=ev.TASK_RESUMED,
                cycle=child.cycles_done + 1,
                resume=self.resume,
            )

    def subagent_returned(self, parent: TaskRun, child: TaskRun, outcome: CycleOutcome) -> None:
        """``child`` returned to its parent's agent: its cycles, then its ending."""
        if child.outcome is not None:
            return
        if not child.working:
            self.subagent_began(parent, child)
        child.working = False
        artifacts = child.artifacts or self.run_folder / "artifacts" / child.task.id
        first = child.cycles_done + 1
        request = self._request_for(child, first, artifacts)
        metadata = self._cycle_metadata(child, request, outcome, AFTER_FIRST)
        child.spent_ms += outcome.duration_ms
        self.record(child.lane, child.task.id, **metadata)
        if not outcome.ok:
            self._failed(child, str(metadata.get("error") or "failed"), cycle=first)
        else:
            for folded in range(first + 1, child.task.cycles + 1):
                self.record(
                    child.lane,
                    child.task.id,
                    action=ev.CYCLE_COMPLETED,
                    cycle=folded,
                    attempt=1,
                    started_at=child.attempt_started_ms,
                    failed=False,
                    duration_ms=0.0,
                    folded=True,
                    **Usage().as_metadata(),
                    cost_usd=0.0,
                )
            child.cycles_done = child.task.cycles
            self._complete(child)
        if all(
            self.tasks[name].outcome is not None or not self.tasks[name].working
            for names in self.children.get(parent.task.id, {}).values()
            for name in names
        ):
            parent.state = "running"

    def _request_for(self, run: TaskRun, cycle: int, artifacts: Path) -> CycleRequest:
        artifacts.mkdir(parents=True, exist_ok=True)
        return CycleRequest(
            run_id=self.run_id,
            lane=run.lane,
            task=run.task,
            role_name=run.task.role,
            role=run.role,
            cycle=cycle,
            attempt=run.failed_attempts + run.interrupted_attempts + 1,
            spec=self.scenario.spec,
            artifacts=artifacts,
            workdir=self.workdirs.get(run.lane, Path.cwd()),
            previous=run.previous,
        )

    def _not_spawned(self, parent: TaskRun, names: tuple[str, ...]) -> None:
        """The parent's cycle is done: planned subagents its agent never spawned will not run."""
        for name in names:
            child = self.tasks[name]
            if child.outcome is None and not child.working:
                self._cancelled(child, "not_spawned", parent.task.id)

    def _drop_subagents(self, run: TaskRun, reason: str, cause: str | None) -> None:
        """``run`` has ended: cancel its subagents that are not running. Those never started are
        cancelled as ``dependency_failed``; those an earlier part of the run had started (and stopped)
        with ``run``'s own reason."""
        for cycles in self.children.get(run.task.id, {}).values():
            for name in cycles:
                child = self.tasks[name]
                if child.outcome is not None or (child.handle is not None and not child.handle.done()):
                    continue
                if child.working:  # spawned within the parent's cycle, which is over
                    child.working = False
                if child.started and reason != "dependency_failed":
                    self._cancelled(child, reason, cause)
                else:
                    self._cancelled(child, "dependency_failed", run.task.id)

    def _settle_orphans(self) -> None:
        """Subagents of parents an earlier part of the run ended, left unfinished by a stop between the
        two: settle them as their parent's ending would have."""
        for parent in self.children:
            run = self.tasks[parent]
            if run.outcome in ("failed", "cancelled"):
                reason = run.reason if run.outcome == "cancelled" and run.reason else "dependency_failed"
                self._drop_subagents(run, reason, parent)

    def _subagent_ended(self, run: TaskRun) -> None:
        view = self.lanes[run.lane]
        view.done += 1
        if run.lane not in self._queues:
            view.finished = view.done >= view.total

    def _emit_due(self, run: TaskRun) -> None:
        """Publish what the task emits after the cycles it has done, if not yet published."""
        for event, after in sorted(run.task.emits.items(), key=lambda item: item[1]):
            if after <= run.cycles_done and event not in run.emitted:
                run.emitted.add(event)
                self.record(run.lane, run.task.id, action=event, cycle=after)

    async def _before_cycle(
        self, run: TaskRun, cycle: int, demand: dict[str, int]
    ) -> tuple[float | None, int]:
        """Wait for the events cycle ``cycle`` needs; (held ms, events consumed), None when cancelled."""
        needed = [event for event, before in run.task.waits.items() if before == cycle]
        if not needed:
            return 0.0, 0
        started = time.monotonic()
        missing = [event for event in needed if self.board.find(action=event) is None]
        if missing:
            run.state = "waiting"
            returned = _given_back(demand, holds_while_waiting("event"))
            for name, units in returned.items():
                run.holding[name] -= units
            run.holding = {name: units for name, units in run.holding.items() if units}
            self.slots.release(returned)
            run.waiting_since = started
            for event in missing:
                if not await self._wait_event(run, event):
                    self._cancelled(run, "dependency_failed", self.emitter[event], event=event)
                    return None, 0
            run.waiting_since = None
            await self._acquire(run, returned)
        return (time.monotonic() - started) * 1000.0, len(needed)

    def _request(self, run: TaskRun, cycle: int, handoffs: int, artifacts: Path) -> CycleRequest:
        """The request for the next attempt at ``cycle``."""
        task = run.task
        attempt = run.failed_attempts + run.interrupted_attempts + 1
        subagents: tuple[str, ...] = ()
        events: _Reporter | None = None
        if self.spawns_within:
            names = self.children.get(task.id, {}).get(cycle, [])
            subagents = tuple(name for name in names if self.tasks[name].outcome is None)
            events = _Reporter(self, run, cycle, attempt)
        return CycleRequest(
            run_id=self.run_id,
            lane=run.lane,
            task=task,
            role_name=task.role,
            role=run.role,
            cycle=cycle,
            attempt=attempt,
            spec=self.scenario.spec,
            artifacts=artifacts,
            workdir=self.workdirs.get(run.lane, Path.cwd()),
            previous=run.previous,
            handoffs=handoffs,
            subagents=subagents,
            events=events,
        )

    async def _take_handoff(self, run: TaskRun, cycle: int, handoffs: int, artifacts: Path) -> float:
        """Have a backend that acts out handoffs take cycle ``cycle``'s events in; real ms spent (they
        count toward the task's timeout, as its attempts do)."""
        if handoffs == 0 or not isinstance(self.backend, TakesHandoff):
            return 0.0
        run.state = "handoff"
        spent = await self.backend.take_handoff(self._request(run, cycle, handoffs, artifacts))
        run.spent_ms += spent
        return spent

    async def _cycle(
        self,
        run: TaskRun,
        cycle: int,
        start: CycleStart,
        handoffs: int,
        budget_s: float | None,
        artifacts: Path,
    ) -> CycleOutcome | None:
        """Attempts at one cycle until one succeeds; None when the task failed. The first attempt
        recorded carries ``start``."""
        task = run.task
        attempts = task.max_retries(run.role) + 1
        while True:
            gate = self.guards.gate if self.guards is not None else None
            reserved = 0.0
            if gate is not None:
                run.state = "budget"
                admitted = await gate.admit(run.task.role)
                if admitted is None:
                    # Nothing running, and this cycle would pass the budget: stop as Ctrl-C does.
                    self._budget_passed(run)
                    raise asyncio.CancelledError
                reserved = admitted
            request = self._request(run, cycle, handoffs, artifacts)
            run.state = "running"
            remaining = None if budget_s is None else budget_s - run.spent_ms / 1000.0
            try:
                outcome, timed_out = await self._attempt(run, request, remaining, start)
            finally:
                if gate is not None:
                    # Its cost is spent (recorded below) before anyone waiting can look again.
                    gate.release(reserved)
            metadata = self._cycle_metadata(run, request, outcome, start)
            start = AFTER_FIRST
            if timed_out:
                metadata["error"] = f"timed out after {counted(self._timeout_min(task), 'scenario minute')}"
                metadata["timeout"] = True
            self.record(run.lane, task.id, **metadata)
            if outcome.ok and not timed_out:
                run.failed_attempts = run.interrupted_attempts = 0
                run.previous = metadata
                if request.subagents:
                    self._not_spawned(run, request.subagents)
                return outcome
            run.failed_attempts += 1
            if timed_out or not outcome.retryable or run.failed_attempts >= attempts:
                error = metadata.get("error") or "failed"
                if not timed_out and outcome.retryable:
                    error = f"{error} (cycle {cycle}, {counted(attempts, 'attempt')})"
                self._failed(run, str(error), cycle=cycle, timeout=timed_out)
                return None
            run.state = "backoff"
            backoff = min(self.policy.retry_backoff_s * 2 ** (run.failed_attempts - 1), MAX_BACKOFF_S)
            backoff *= 0.75 + 0.5 * self._rng.random()
            delay = self.clock.real_s(backoff / 60.0)
            if budget_s is not None:
                delay = min(delay, max(budget_s - run.spent_ms / 1000.0, 0.0))
            await asyncio.sleep(delay)
            run.spent_ms += delay * 1000.0

    def _timeout_min(self, task: Task) -> float:
        return task.timeout_min if task.timeout_min is not None else (self.policy.task_timeout_min or 0.0)

    async def _attempt(
        self, run: TaskRun, request: CycleRequest, remaining_s: float | None, start: CycleStart
    ) -> tuple[CycleOutcome, bool]:
        started = time.monotonic()
        run.attempt_started_ms = self.clock.now_ms()
        timed_out = False
        scope = asyncio.timeout(None if remaining_s is None else max(remaining_s, 0.0))
        try:
            async with scope:
                outcome = await self.backend.run_cycle(request)
        except TimeoutError as exc:
            timed_out = scope.expired()
            outcome = CycleOutcome(
                ok=False,
                duration_ms=(time.monotonic() - started) * 1000.0,
                error="" if timed_out else f"TimeoutError: {exc}",
            )
        except asyncio.CancelledError:
            elapsed = (time.monotonic() - started) * 1000.0
            run.spent_ms += elapsed
            reason = run.cancel[0] if run.cancel else "cancelled"
            if self.stopped_by is not None:
                reason = str(self.stopped_by["guard"])
            self.record(
                run.lane,
                run.task.id,
                action=ev.CYCLE_COMPLETED,
                cycle=request.cycle,
                attempt=request.attempt,
                started_at=run.attempt_started_ms,
                failed=True,
                interrupted=True,
                duration_ms=round(elapsed, 3),
                **start.as_metadata(),
                error=f"stopped: {reason}",
            )
            raise
        except Exception as exc:  # a backend bug must fail the attempt, not the run
            outcome = CycleOutcome(
                ok=False,
                duration_ms=(time.monotonic() - started) * 1000.0,
                error=f"{type(exc).__name__}: {exc}",
            )
        run.spent_ms += outcome.duration_ms
        return outcome, timed_out

    def _cycle_metadata(
        self, run: TaskRun, request: CycleRequest, outcome: CycleOutcome, start: CycleStart
    ) -> dict[str, Any]:
        usage = outcome.usage
        model = outcome.model or run.task.model_of(run.role, request.cycle)
        if outcome.cost_usd is not None:
            cost = outcome.cost_usd
        else:
            # The cycle's model, its cache writes at the role's cache lifetime, as the API bills them.
            price = resolve(model, self.scenario.prices)
            cost = (
                0.0
                if price is None
                else cost_usd(
                    price.for_ttl(run.role.tokens.cache_ttl),
                    usage.input_tokens,
                    usage.cache_write_tokens,
                    usage.cache_read_tokens,
                    usage.output_tokens,
                )
            )
        run.tokens += usage.total
        run.cost_usd += cost
        if self.guards is not None and self.guards.gate is not None:
            self.guards.gate.spent(run.task.role, cost)
        details = dict(outcome.details)
        rate_limit_wait_ms = float(details.pop("rate_limit_wait_ms", 0.0))
        metadata: dict[str, Any] = {
            **details,
            "action": ev.CYCLE_COMPLETED,
            "cycle": request.cycle,
            "attempt": request.attempt,
            "started_at": run.attempt_started_ms,
            "failed": not outcome.ok,
            "duration_ms": round(max(outcome.duration_ms - rate_limit_wait_ms, 0.0), 3),
            **start.as_metadata(),
            "rate_limit_wait_ms": round(rate_limit_wait_ms, 3),
            **usage.as_metadata(),
            "cost_usd": cost,
            "model": model,
        }
        if outcome.stop_reason is not None:
            metadata["stop_reason"] = outcome.stop_reason
        if not outcome.ok:
            metadata["error"] = outcome.error or "failed"
        return metadata

    # ----------------------------------------------------------------------------------------------
    # how tasks end

    def _complete(self, run: TaskRun) -> None:
        run.outcome = run.state = "complete"
        self.record(run.lane, run.task.id, action=ev.TASK_COMPLETE, tokens=run.tokens, cost_usd=run.cost_usd)
        if run.subagent:
            self._subagent_ended(run)
        race = run.task.race
        if race is not None:
            for member in self.races[race]:
                if member != run.task.id:
                    self._cancel(self.tasks[member], "race_lost", run.task.id)

    def _failed(self, run: TaskRun, error: str, **extra: Any) -> None:
        run.outcome = run.state = "failed"
        # A subagent's failure returns to its parent; it cancels nothing, and nothing cancels subagents
        # as siblings.
        cancel_parallel = run.role.failure.cancel_parallel and not run.subagent
        self.record(
            run.lane,
            run.task.id,
            action=ev.TASK_FAILED,
            error=error,
            shouldCancelParallel=cancel_parallel,
            **extra,
        )
        if run.subagent:
            self._subagent_ended(run)
        self._drop_subagents(run, "dependency_failed", run.task.id)
        if cancel_parallel:
            for other in self.tasks.values():
                if (
                    other is not run
                    and other.working
                    and not other.subagent
                    and other.task.role == run.task.role
                ):
                    self._cancel(other, "cancel_parallel", run.task.id)

    def _cancelled(self, run: TaskRun, reason: str, cause: str | None, **extra: Any) -> None:
        if run.outcome is not None or reason == ev.INTERRUPTED:
            # An interrupted task is not over: --resume continues it from its last committed cycle.
            return
        run.outcome = run.state = "cancelled"
        metadata: dict[str, Any] = {"action": ev.TASK_CANCELLED, "reason": reason, **extra}
        if run.waiting_since is not None:
            # Held for an event that never came: lane time the trace counts as a sync wait.
            metadata["sync_wait_ms"] = round((time.monotonic() - run.waiting_since) * 1000.0, 3)
            run.waiting_since = None
        if run.blocked_since is not None:
            # Cancelled while its subagents ran: no cycle records that time, so its ending does.
            metadata["blocked_ms"] = round((time.monotonic() - run.blocked_since) * 1000.0, 3)
            run.blocked_since = None
        if cause is not None:
            metadata["cause"] = cause
        self.record(run.lane, run.task.id, **metadata)
        if run.subagent:
            self._subagent_ended(run)
        self._drop_subagents(run, reason, cause)
        self._ended(run)


async def _settle(tasks: list[asyncio.Task[None]]) -> None:
    """Wait until ``tasks`` are done, even through cancellations of the waiter (the caller re-raises)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            pending = {task for task in pending if not task.done()}


def _ended_among(tasks: frozenset[str]) -> Callable[[Event], bool]:
    def ended(event: Event) -> bool:
        return event.target_id in tasks and event.action in ev.TERMINAL

    return ended


class _Reporter:
    """What a backend reports during one attempt at one cycle, recorded by the orchestrator at once
    (:class:`~cycleplan.executor.backend.CycleEvents`)."""

    def __init__(self, orchestrator: Orchestrator, run: TaskRun, cycle: int, attempt: int) -> None:
        self.orchestrator = orchestrator
        self.run = run
        self.cycle = cycle
        self.attempt = attempt

    def tool_used(
        self,
        tool: str,
        *,
        tool_use_id: str,
        started_ms: float,
        duration_ms: float,
        failed: bool = False,
        subagent: str | None = None,
    ) -> None:
        orchestrator = self.orchestrator
        child = orchestrator.tasks.get(subagent or "")
        run, cycle, attempt = self.run, self.cycle, self.attempt
        if child is not None and child.outcome is None:
            run, cycle, attempt = child, child.cycles_done + 1, child.failed_attempts + 1
        orchestrator.record(
            run.lane,
            run.task.id,
            action=ev.PROGRESS_UPDATE,
            cycle=cycle,
            attempt=attempt,
            tool=tool,
            tool_use_id=tool_use_id,
            started_at=round(started_ms, 3),
            duration_ms=round(duration_ms, 3),
            **({"failed": True} if failed else {}),
        )

    def subagent_started(self, task_id: str) -> None:
        child = self.orchestrator.tasks.get(task_id)
        if child is not None:
            self.orchestrator.subagent_began(self.run, child)

    def subagent_ended(self, task_id: str, outcome: CycleOutcome) -> None:
        child = self.orchestrator.tasks.get(task_id)
        if child is not None:
            self.orchestrator.subagent_returned(self.run, child, outcome)


def _given_back(demand: dict[str, int], keeps: Holding) -> dict[str, int]:
    """The part of ``demand`` a waiting task gives back under ``keeps``."""
    return {
        name: units
        for name, units in demand.items()
        if not (keeps.parallel_slot if name == PARALLEL else keeps.resources)
    }
