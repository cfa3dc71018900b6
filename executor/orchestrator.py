"""The orchestrator: one coroutine per lane follows the Plan, and every step is an event in the store.

Each lane runs its planned tasks in order. Before a task starts, its dependencies must have completed
(for a race member: its race must have a winner); if one failed or was cancelled, the task is cancelled
(``dependency_failed``). A started task runs its cycles on the backend; before cycle *k* it holds its
lane until every event it ``waits`` for before *k* is committed (the seed's ``watchFor``), and after cycle
*j* it publishes what it ``emits`` after *j*. Failure policy:

- a failed attempt is retried after an exponential backoff, up to the role's ``max_retries``;
- a task out of retries, out of time (``timeout_min``) or refused by the backend fails
  (``task_failed``); its dependents, and tasks waiting for its events, are cancelled
  (``dependency_failed``); with the role's ``cancel_parallel`` its running siblings of the same role
  are cancelled too (``cancel_parallel``);
- the first race member to complete wins, the others are cancelled (``race_lost``);
- the run's timeout (``run_timeout``), Ctrl-C (``interrupted``) and a plan whose lanes block each
  other forever (``stalled``) cancel what is left.

Resources and ``max_parallel`` are held while a task works, not while it waits for an event. Every event
goes through :meth:`Orchestrator.record`, which commits it to the store before anything may react to it.
This module never imports a concrete backend, the terminal or the simulator.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cycleplan.executor import events as ev
from cycleplan.executor.backend import Backend, CycleOutcome, CycleRequest
from cycleplan.executor.clock import Clock
from cycleplan.executor.coordination import EventBoard
from cycleplan.executor.replay import RunProgress
from cycleplan.executor.secrets import redact, secret_values
from cycleplan.executor.slots import PARALLEL, Slots
from cycleplan.executor.store import RunStore
from cycleplan.metrics import run_header
from cycleplan.model import Event, Plan, PlannedTask, Role, Task
from cycleplan.prices import cost_usd, resolve

MAX_BACKOFF_S = 300.0
"""Backoff between attempts never exceeds this (scenario seconds)."""

STALL_CHECK_S = 0.5
"""How often (real seconds) the orchestrator checks that some lane can still make progress."""


@dataclass
class TaskRun:
    """The live state of one task in this executor process."""

    task: Task
    role: Role
    lane: str
    priority: tuple[float, str]
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
    """pending, blocked (dependencies), waiting (an event), running, backoff, or how it ended."""
    attempt_started: float | None = None
    attempt_started_ms: float = 0.0
    """Epoch milliseconds when the current (or last) attempt started."""
    task_started: float | None = None
    waiting_since: float | None = None
    """Monotonic time the task began holding its lane for an event, while it does."""
    held: bool = False
    """Holds its slots (resources, max_parallel) right now."""
    artifacts: Path | None = None


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

        tasks = {task.id: task for task in self.scenario.all_tasks()}
        self.tasks: dict[str, TaskRun] = {}
        self.lanes: dict[str, LaneView] = {}
        self._queues: dict[str, list[str]] = {}
        for lane in plan.lanes:
            self.lanes[lane.lane] = LaneView(lane.lane, lane.role, total=len(lane.tasks))
            self._queues[lane.lane] = []
            for planned in lane.tasks:
                task = tasks[planned.task]
                self.tasks[task.id] = self._task_run(task, lane.lane, planned, progress)
                self._queues[lane.lane].append(task.id)
        self.races: dict[str, list[str]] = {}
        for task in tasks.values():
            if task.race is not None:
                self.races.setdefault(task.race, []).append(task.id)
        self.emitter = {event: task.id for task in tasks.values() for event in task.emits}
        capacities = {name: resource.capacity for name, resource in self.scenario.resources.items()}
        if self.scenario.max_parallel is not None:
            capacities[PARALLEL] = self.scenario.max_parallel
        self.slots = Slots(capacities)
        self._blocked: dict[str, asyncio.Future[Any] | None] = dict.fromkeys(self.lanes)
        self._lanes_left = set(self.lanes)

    def _task_run(self, task: Task, lane: str, planned: PlannedTask, progress: RunProgress) -> TaskRun:
        run = TaskRun(task, self.scenario.role(task.role), lane, (planned.start_min, task.id))
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
        for event in trace:
            self.board.publish(event)

    def record(self, actor: str, target: str, **metadata: Any) -> Event:
        """Commit an event to the store, then let waiters and observers see it."""
        clean = {key: self._clean(value) for key, value in metadata.items()}
        event = ev.make_event(actor, target, self.run_id, self.clock.now_ms(), **clean)
        stored = self.store.append(self.run_id, ev.key_for(event, resume=self.resume), event)
        if stored is not None:
            self.board.publish(event)
            for observer in self.observers:
                try:
                    observer(event)
                except Exception:  # showing progress must never stop a run
                    continue
        return event

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
        watchdogs = [asyncio.create_task(self._watch_stalls())]
        if self.policy.run_timeout_min is not None:
            watchdogs.append(asyncio.create_task(self._run_timeout(self.policy.run_timeout_min)))
        lanes = [asyncio.create_task(self._lane(name), name=f"lane {name}") for name in self.lanes]
        try:
            await asyncio.gather(*lanes)
        finally:
            for task in (*watchdogs, *lanes):
                task.cancel()
            await asyncio.gather(*watchdogs, *lanes, return_exceptions=True)
        self.status = self._final_status()
        if self.status == ev.INTERRUPTED:
            # Not over: what was stopped stays unfinished, and --resume carries on from here.
            self.record(ev.RUN_ACTOR, self.run_id, action=ev.RUN_INTERRUPTED, resume=self.resume)
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

    def stop(self, reason: str) -> None:
        """Stop everything left: Ctrl-C (``interrupted``) leaves it unfinished for ``--resume``; the run's
        timeout (``run_timeout``) cancels it."""
        if self.stopping is not None:
            return
        self.stopping = reason
        for run in self.tasks.values():
            self._cancel(run, reason, None)

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
        await self._acquire(run, demand)
        try:
            await self._work(run, demand)
        finally:
            if run.held:
                run.held = False
                self.slots.release(demand)

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
        run.held = True

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
            self.record(run.lane, task.id, action=ev.TASK_RESUMED, cycle=run.cycles_done + 1)
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
                outcome = await self._cycle(run, cycle, waited_ms, handoffs, budget_s, artifacts)
                if outcome is None:
                    return
                run.cycles_done = cycle
                self._emit_due(run)
            self._complete(run)
        finally:
            run.working = False

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
            run.held = False
            self.slots.release(demand)
            run.waiting_since = started
            for event in missing:
                if not await self._wait_event(run, event):
                    self._cancelled(run, "dependency_failed", self.emitter[event], event=event)
                    return None, 0
            run.waiting_since = None
            await self._acquire(run, demand)
        return (time.monotonic() - started) * 1000.0, len(needed)

    async def _cycle(
        self,
        run: TaskRun,
        cycle: int,
        waited_ms: float,
        handoffs: int,
        budget_s: float | None,
        artifacts: Path,
    ) -> CycleOutcome | None:
        """Attempts at one cycle until one succeeds; None when the task failed."""
        task = run.task
        attempts = run.role.failure.max_retries + 1
        while True:
            attempt = run.failed_attempts + run.interrupted_attempts + 1
            request = CycleRequest(
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
            )
            run.state = "running"
            remaining = None if budget_s is None else budget_s - run.spent_ms / 1000.0
            outcome, timed_out = await self._attempt(run, request, remaining)
            metadata = self._cycle_metadata(run, request, outcome, waited_ms if attempt == 1 else 0.0)
            if timed_out:
                metadata["error"] = f"timed out after {self._timeout_min(task):g} scenario minutes"
                metadata["timeout"] = True
            self.record(run.lane, task.id, **metadata)
            if outcome.ok and not timed_out:
                run.failed_attempts = run.interrupted_attempts = 0
                run.previous = metadata
                return outcome
            run.failed_attempts += 1
            if timed_out or not outcome.retryable or run.failed_attempts >= attempts:
                error = metadata.get("error") or "failed"
                if not timed_out and outcome.retryable:
                    error = f"{error} (cycle {cycle}, {attempts} attempt{'s' if attempts > 1 else ''})"
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
        self, run: TaskRun, request: CycleRequest, remaining_s: float | None
    ) -> tuple[CycleOutcome, bool]:
        started = time.monotonic()
        run.attempt_started = started
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
                error=f"stopped: {reason}",
            )
            raise
        except Exception as exc:  # a backend bug must fail the attempt, not the run
            outcome = CycleOutcome(
                ok=False,
                duration_ms=(time.monotonic() - started) * 1000.0,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            run.attempt_started = None
        run.spent_ms += outcome.duration_ms
        return outcome, timed_out

    def _cycle_metadata(
        self, run: TaskRun, request: CycleRequest, outcome: CycleOutcome, waited_ms: float
    ) -> dict[str, Any]:
        usage = outcome.usage
        model = outcome.model or run.role.model
        if outcome.cost_usd is not None:
            cost = outcome.cost_usd
        else:
            price = resolve(model, self.scenario.prices)
            cost = (
                0.0
                if price is None
                else cost_usd(
                    price,
                    usage.input_tokens,
                    usage.cache_write_tokens,
                    usage.cache_read_tokens,
                    usage.output_tokens,
                )
            )
        run.tokens += usage.total
        run.cost_usd += cost
        details = dict(outcome.details)
        sync_ms = float(details.pop("sync_ms", 0.0))
        rate_limit_wait_ms = float(details.pop("rate_limit_wait_ms", 0.0))
        metadata: dict[str, Any] = {
            **details,
            "action": ev.CYCLE_COMPLETED,
            "cycle": request.cycle,
            "attempt": request.attempt,
            "started_at": run.attempt_started_ms,
            "failed": not outcome.ok,
            "duration_ms": round(max(outcome.duration_ms - sync_ms - rate_limit_wait_ms, 0.0), 3),
            "sync_wait_ms": round(waited_ms, 3),
            "sync_ms": round(sync_ms, 3),
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
        race = run.task.race
        if race is not None:
            for member in self.races[race]:
                if member != run.task.id:
                    self._cancel(self.tasks[member], "race_lost", run.task.id)

    def _failed(self, run: TaskRun, error: str, **extra: Any) -> None:
        run.outcome = run.state = "failed"
        cancel_parallel = run.role.failure.cancel_parallel
        self.record(
            run.lane,
            run.task.id,
            action=ev.TASK_FAILED,
            error=error,
            shouldCancelParallel=cancel_parallel,
            **extra,
        )
        if cancel_parallel:
            for other in self.tasks.values():
                if other is not run and other.working and other.task.role == run.task.role:
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
        if cause is not None:
            metadata["cause"] = cause
        self.record(run.lane, run.task.id, **metadata)


def _ended_among(tasks: frozenset[str]) -> Callable[[Event], bool]:
    def ended(event: Event) -> bool:
        return event.target_id in tasks and event.action in ev.TERMINAL

    return ended
