"""The one measure of a run: makespan, tokens, cost, utilization, waits and criticality from its trace.

A trace is the ordered list of :class:`cycleplan.core.model.Event` of one run, simulated or executed. The
simulator and the executor both write it in the ONE platform's schema and both measure it here, so a
prediction and the run it predicts are compared number for number. What a trace must hold:

- ``run_started`` first; its metadata carries ``lanes`` (lane -> role, or None for a lane that takes
  any role) and ``tasks`` (task id -> ``role``, ``after``, ``waits``, ``race``, and for a subagent
  ``spawned_by`` as ``[parent, cycle]``), as :func:`run_header` writes them; an imported task may carry
  ``released``, the timestamp before which it could not start (a session its person started later).
- per task on its lane (``actorId``): ``task_started`` (with ``context_tokens``), ``cycle_completed``
  per attempt (``cycle``, ``attempt``, ``failed``, ``duration_ms`` of work, ``sync_wait_ms`` and
  ``sync_ms`` spent on awaited events and their handoff, ``rate_limit_wait_ms``, the Messages API
  usage fields ``input_tokens``, ``cache_creation_input_tokens``, ``cache_read_input_tokens``,
  ``output_tokens``, and ``cost_usd``; optionally ``blocked_ms`` spent blocked on the subagents the
  cycle spawned and ``person_wait_ms`` spent waiting on a person), the names of events it publishes,
  then one of
  ``task_complete``, ``task_failed`` (``error``, ``shouldCancelParallel``) or ``task_cancelled``
  (``reason``: race_lost, dependency_failed, cancel_parallel, stalled; with the ``sync_wait_ms``,
  ``rate_limit_wait_ms`` and ``blocked_ms`` no cycle of the task records).
- ``run_complete`` last, when the run is over. An executed run may also hold ``run_resumed``,
  ``task_resumed`` and ``run_interrupted`` (the executor stopped and picked up again); they mark time,
  nothing else. ``forecast_updated`` (a live forecast the executor recorded) is ignored.

Timestamps are milliseconds; only differences matter. Fields a trace leaves out count as zero. This
module reads events only: it knows nothing of SimPy, numpy, plans or agents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import Field

from cycleplan.core.model import STANDARD_ACTIONS, Event, Frozen, Task

MS_PER_MIN = 60_000.0
EPS_MS = 1e-6
"""Two times closer than this (a nanosecond) are the same instant, in a simulated trace."""
REAL_INSTANT_MS = 50.0
"""Two moments of a real run (executed or imported) closer than this, in real milliseconds, are the same
instant for the critical path: an executor starts a task a fraction of a millisecond to a few after what
it waited for has ended (the store commits the ending first). A rehearsal's trace is on the scenario's
clock, so the tolerance there is this times its time scale."""


def instant_ms(header: Mapping[str, Any]) -> float:
    """How close two timestamps of a trace with ``header`` (its ``run_started`` metadata) must be to be
    the same instant: :data:`REAL_INSTANT_MS` times the time scale for a real run (its header carries a
    ``time_scale``), :data:`EPS_MS` for a simulated one."""
    scale = header.get("time_scale")
    if isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0:
        return REAL_INSTANT_MS * float(scale)
    return EPS_MS


WAIT_CAUSES = ("dependency", "sync", "lane", "rate_limit")
"""Where time goes besides work:

- ``dependency``: a lane sat free before its next task because that task's dependencies were unfinished
  (lane-minutes);
- ``sync``: a lane was held by a task waiting for an event, or taking its handoff in (lane-minutes);
- ``lane``: a task was ready but waited for a lane (or a shared resource) to take it (task-minutes);
- ``rate_limit``: a lane was held while the organisation's rate limits let the request through.
"""


TOKEN_KINDS = ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens")
USAGE_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
"""The Messages API usage fields a ``cycle_completed`` event carries, as the API names them (cache writes
of both caches together)."""


def run_header(lanes: Mapping[str, str | None], tasks: Iterable[Task]) -> dict[str, Any]:
    """The metadata ``run_started`` must carry (add your own keys beside it)."""
    return {
        "action": "run_started",
        "lanes": dict(lanes),
        "tasks": {
            task.id: {
                "role": task.role,
                "after": list(task.after),
                "waits": dict(task.waits),
                "race": task.race,
                **(
                    {"spawned_by": [task.spawned_by.task, task.spawned_by.cycle]}
                    if task.spawned_by is not None
                    else {}
                ),
            }
            for task in tasks
        },
    }


class TaskSpan(Frozen):
    """Where and when one task ran, in minutes since the run's start."""

    lane: str
    start_min: float
    finish_min: float
    status: str
    """complete, failed or cancelled."""
    role: str = ""


WAIT_SPAN_CAUSES = ("sync", "subagents", "rate_limit")
"""What holds a task's lane inside its span besides work: an awaited event and its handoff (``sync``),
the subagents it spawned (``subagents``: blocked, neither work nor a wait in :data:`WAIT_CAUSES`), the
organisation's rate limits (``rate_limit``)."""


class WaitSpan(Frozen):
    """A stretch of time a task held its lane without working, in minutes since the run's start."""

    task: str
    lane: str
    cause: str
    """One of :data:`WAIT_SPAN_CAUSES`."""
    start_min: float
    finish_min: float


class TraceMetrics(Frozen):
    """The measured numbers of one run (all minutes since the run's start, costs in US dollars)."""

    makespan_min: float
    work_min: float = Field(description="Minutes of work on every lane, failed and cancelled work included.")
    busy_min_by_lane: dict[str, float]
    utilization: float = Field(description="Work over (lanes x makespan).")
    utilization_by_lane: dict[str, float]
    utilization_by_role: dict[str, float]
    input_tokens: int = Field(description="Uncached input tokens.")
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    tokens_total: int
    tokens_read: int = Field(description="Every input token read: uncached, cache writes and cache reads.")
    context_tokens: int = Field(description="Context loaded at task starts (each task loads its own).")
    cost_usd: float
    tokens_by_role: dict[str, int]
    cost_by_role: dict[str, float]
    waits_min: dict[str, float] = Field(description="Minutes by cause; see WAIT_CAUSES.")
    blocked_min: float = Field(
        default=0.0,
        description="Minutes tasks spent blocked on the subagents they spawned: neither work nor a wait.",
    )
    person_wait_min: float = Field(
        default=0.0,
        description="Minutes agents spent waiting on a person inside their cycles (answers, approvals, "
        "permission prompts, idle gaps); imported runs leave them out of the clock, so of the makespan.",
    )
    failures: int = Field(description="Tasks that failed for good.")
    failed_cycles: int = Field(description="Cycle attempts that failed (and were retried or not).")
    cancellations: int
    waste_min: float = Field(
        description="Work that did not count: failed attempts, failed and cancelled tasks."
    )
    waste_tokens: int
    waste_cost_usd: float
    completed: bool = Field(description="Every task finished (race losers aside).")
    critical: list[str] = Field(description="Tasks with zero slack: delaying any would delay the end.")
    tasks: dict[str, TaskSpan]


class _Run:
    """What the events say about each task, gathered in one pass."""

    def __init__(self) -> None:
        self.lane: dict[str, str] = {}
        self.start: dict[str, float] = {}
        self.end: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self.cycle_end: dict[str, dict[int, float]] = {}
        self.emitted: dict[str, tuple[float, str]] = {}


def metrics(trace: Sequence[Event]) -> TraceMetrics:
    """Measure one run from its trace (see the module docstring for what the trace must hold)."""
    if not trace or trace[0].action != "run_started":
        raise ValueError("a trace starts with a run_started event")
    header = trace[0].metadata
    lanes: dict[str, str | None] = dict(header.get("lanes", {}))
    tasks_info: dict[str, dict[str, Any]] = dict(header.get("tasks", {}))
    origin = trace[0].timestamp
    finish = origin
    for event in trace:
        if event.action == "run_complete":
            finish = event.timestamp
            break
        if event.action != "forecast_updated":
            # A forecast is about the run, not part of it: it moves no end.
            finish = event.timestamp

    run = _Run()
    roles = {task: str(info.get("role", "")) for task, info in tasks_info.items()}
    busy: dict[str, float] = dict.fromkeys(lanes, 0.0)
    tokens = dict.fromkeys(TOKEN_KINDS, 0)
    tokens_by_role: dict[str, int] = {}
    cost_by_role: dict[str, float] = {}
    cost = waste_cost = 0.0
    waste_ms = 0.0
    waste_tokens = 0
    sync_ms = rate_ms = blocked_ms = person_ms = 0.0
    failures = failed_cycles = cancellations = 0
    context = 0
    completed = True
    # Cycles of tasks that end unfinished are wasted whole; keep them until the task's end is known.
    pending: dict[str, list[tuple[float, int, float]]] = {}

    for event in trace:
        action = event.action
        meta = event.metadata
        task = event.target_id
        if action == "cycle_completed":
            role = roles.get(task, "")
            get = meta.get
            duration = float(get("duration_ms") or 0)
            busy[event.actor_id] = busy.get(event.actor_id, 0.0) + duration
            sync_ms += float(get("sync_wait_ms") or 0) + float(get("sync_ms") or 0)
            rate_ms += float(get("rate_limit_wait_ms") or 0)
            blocked_ms += float(get("blocked_ms") or 0)
            person_ms += float(get("person_wait_ms") or 0)
            fresh = int(get("input_tokens") or 0)
            written = int(get("cache_creation_input_tokens") or 0)
            read = int(get("cache_read_input_tokens") or 0)
            output = int(get("output_tokens") or 0)
            tokens["input_tokens"] += fresh
            tokens["cache_write_tokens"] += written
            tokens["cache_read_tokens"] += read
            tokens["output_tokens"] += output
            count = fresh + written + read + output
            spent = float(get("cost_usd") or 0)
            cost += spent
            tokens_by_role[role] = tokens_by_role.get(role, 0) + count
            cost_by_role[role] = cost_by_role.get(role, 0.0) + spent
            attempt_failed = bool(get("failed", False))
            if attempt_failed and not get("interrupted", False):
                failed_cycles += 1
            if attempt_failed:
                waste_ms += duration
                waste_tokens += count
                waste_cost += spent
            else:
                pending.setdefault(task, []).append((duration, count, spent))
            cycle_end = run.cycle_end.get(task)
            if cycle_end is None:
                cycle_end = run.cycle_end[task] = {}
            cycle_end[int(get("cycle") or 0)] = event.timestamp
        elif action == "task_started":
            run.lane[task] = event.actor_id
            run.start[task] = event.timestamp
            context += int(meta.get("context_tokens") or 0)
        elif action in ("task_complete", "task_failed", "task_cancelled"):
            status = {"task_complete": "complete", "task_failed": "failed", "task_cancelled": "cancelled"}
            run.end[task] = event.timestamp
            run.status[task] = status[action]
            sync_ms += float(meta.get("sync_wait_ms") or 0)
            rate_ms += float(meta.get("rate_limit_wait_ms") or 0)
            blocked_ms += float(meta.get("blocked_ms") or 0)
            if action == "task_failed":
                failures += 1
                completed = False
            elif action == "task_cancelled":
                cancellations += 1
                if meta.get("reason") != "race_lost":
                    completed = False
            if action != "task_complete":
                for duration, count, spent in pending.pop(task, []):
                    waste_ms += duration
                    waste_tokens += count
                    waste_cost += spent
        elif action not in STANDARD_ACTIONS and action not in run.emitted:
            run.emitted[action] = (event.timestamp, task)
    if any(task not in run.status for task in tasks_info):
        completed = False

    makespan_ms = max(finish - origin, 0.0)
    makespan = makespan_ms / MS_PER_MIN
    work_ms = sum(busy.values())
    lane_count = max(len(lanes), 1)
    role_lanes: dict[str, list[str]] = {}
    for lane, lane_role in lanes.items():
        if lane_role is not None:
            role_lanes.setdefault(lane_role, []).append(lane)

    def share(work: float, lane_total: int) -> float:
        return work / (lane_total * makespan_ms) if makespan_ms > 0 else 0.0

    dependency_ms, lane_ms = _queueing(run, tasks_info, origin)
    total_tokens = sum(tokens.values())
    spans = {
        task: TaskSpan(
            lane=run.lane.get(task, ""),
            start_min=(run.start.get(task, run.end[task]) - origin) / MS_PER_MIN,
            finish_min=(run.end[task] - origin) / MS_PER_MIN,
            status=run.status[task],
            role=roles.get(task, ""),
        )
        for task in tasks_info
        if task in run.end
    }
    return TraceMetrics(
        makespan_min=makespan,
        work_min=work_ms / MS_PER_MIN,
        busy_min_by_lane={lane: value / MS_PER_MIN for lane, value in busy.items()},
        utilization=share(work_ms, lane_count),
        utilization_by_lane={lane: share(value, 1) for lane, value in busy.items() if lane in lanes},
        utilization_by_role={
            role: share(sum(busy[lane] for lane in names), len(names)) for role, names in role_lanes.items()
        },
        input_tokens=tokens["input_tokens"],
        cache_write_tokens=tokens["cache_write_tokens"],
        cache_read_tokens=tokens["cache_read_tokens"],
        output_tokens=tokens["output_tokens"],
        tokens_total=total_tokens,
        tokens_read=total_tokens - tokens["output_tokens"],
        context_tokens=context,
        cost_usd=cost,
        tokens_by_role=tokens_by_role,
        cost_by_role=cost_by_role,
        waits_min={
            "dependency": dependency_ms / MS_PER_MIN,
            "sync": sync_ms / MS_PER_MIN,
            "lane": lane_ms / MS_PER_MIN,
            "rate_limit": rate_ms / MS_PER_MIN,
        },
        blocked_min=blocked_ms / MS_PER_MIN,
        person_wait_min=person_ms / MS_PER_MIN,
        failures=failures,
        failed_cycles=failed_cycles,
        cancellations=cancellations,
        waste_min=waste_ms / MS_PER_MIN,
        waste_tokens=waste_tokens,
        waste_cost_usd=waste_cost,
        completed=completed,
        critical=_critical(run, tasks_info, origin, instant_ms(header)),
        tasks=spans,
    )


def wait_spans(trace: Sequence[Event]) -> list[WaitSpan]:
    """Where each task held its lane without working, as a trace records it.

    A cycle attempt's ``cycle_completed`` carries its work (``duration_ms``) and what held it before
    that work: the awaited events and their handoff, the subagents it spawned, the rate limits; a
    cancelled task's end carries what held it since its last attempt. Both engines hold a lane in that
    order before the work, which ends at the event's timestamp (see
    :func:`cycleplan.workflows.comparison.first_cycle_starts`), so the spans are laid back from there.
    Zero-length spans are left out.
    """
    if not trace:
        return []
    origin = trace[0].timestamp
    spans: list[WaitSpan] = []
    for event in trace:
        action = event.action
        if action == "cycle_completed":
            work = float(event.metadata.get("duration_ms") or 0)
        elif action == "task_cancelled":
            work = 0.0
        else:
            continue
        meta = event.metadata
        held = (
            ("sync", float(meta.get("sync_wait_ms") or 0) + float(meta.get("sync_ms") or 0)),
            ("subagents", float(meta.get("blocked_ms") or 0)),
            ("rate_limit", float(meta.get("rate_limit_wait_ms") or 0)),
        )
        begin = event.timestamp - work - sum(ms for _, ms in held)
        for cause, ms in held:
            if ms > EPS_MS:
                spans.append(
                    WaitSpan(
                        task=event.target_id,
                        lane=event.actor_id,
                        cause=cause,
                        start_min=max(begin - origin, 0.0) / MS_PER_MIN,
                        finish_min=max(begin + ms - origin, 0.0) / MS_PER_MIN,
                    )
                )
            begin += ms
    return spans


def _race_end(run: _Run, tasks_info: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[float, str]]:
    """Each race group's end and the member that ended it (the winner, else the last to stop)."""
    members: dict[str, list[str]] = {}
    for task, info in tasks_info.items():
        if info.get("race") is not None:
            members.setdefault(str(info["race"]), []).append(task)
    ends: dict[str, tuple[float, str]] = {}
    for group, names in members.items():
        ended = [name for name in names if name in run.end]
        if not ended:
            continue
        winners = [name for name in ended if run.status[name] == "complete"]
        chosen = winners[0] if winners else max(ended, key=lambda name: run.end[name])
        ends[group] = (max(run.end[name] for name in ended), chosen)
    return ends


def _resolved(
    run: _Run, tasks_info: Mapping[str, Mapping[str, Any]], races: Mapping[str, tuple[float, str]], dep: str
) -> tuple[float, str] | None:
    """When dependency ``dep`` was resolved for its dependents, and by which task."""
    group = tasks_info.get(dep, {}).get("race")
    if group is not None and group in races:
        return races[group]
    if dep in run.end:
        return run.end[dep], dep
    return None


def _ready(
    run: _Run,
    tasks_info: Mapping[str, Mapping[str, Any]],
    races: Mapping[str, tuple[float, str]],
    task: str,
    origin: float,
) -> float:
    ready = origin
    for dep in tasks_info[task].get("after", []):
        resolved = _resolved(run, tasks_info, races, dep)
        if resolved is not None:
            ready = max(ready, resolved[0])
    return ready


def _lane_before(run: _Run, origin: float) -> dict[str, float]:
    """For each started task, when its lane was last freed before it started."""
    by_lane: dict[str, list[str]] = {}
    for task, lane in run.lane.items():
        by_lane.setdefault(lane, []).append(task)
    before: dict[str, float] = {}
    for names in by_lane.values():
        names.sort(key=lambda name: (run.start[name], run.end.get(name, run.start[name])))
        free = origin
        for name in names:
            before[name] = free
            free = max(free, run.end.get(name, run.start[name]))
    return before


def _queueing(run: _Run, tasks_info: Mapping[str, Mapping[str, Any]], origin: float) -> tuple[float, float]:
    """Lane-time lost to unfinished dependencies, and task-time spent ready but without a lane (ms)."""
    races = _race_end(run, tasks_info)
    before = _lane_before(run, origin)
    dependency = lane = 0.0
    for task, start in run.start.items():
        if task not in tasks_info or tasks_info[task].get("spawned_by") is not None:
            continue  # a subagent starts when it is spawned: it never waits for a lane or a dependency
        ready = _ready(run, tasks_info, races, task, origin)
        released = tasks_info[task].get("released")
        if isinstance(released, int | float):
            # Not there to start before then (a session its person began later): no wait of anyone's.
            before[task] = max(before[task], min(float(released), start))
            ready = max(ready, float(released))
        dependency += max(0.0, min(ready, start) - before[task])
        lane += max(0.0, start - ready)
    return dependency, lane


def _critical(
    run: _Run, tasks_info: Mapping[str, Mapping[str, Any]], origin: float, instant: float = EPS_MS
) -> list[str]:
    """Tasks with zero slack: walk back from the last to finish through whatever held each one up.

    A task is held up at its start by a dependency or by the task before it on its lane that ended at
    that instant (``instant``: how close two times must be to be one, see :func:`instant_ms`), and inside
    by an awaited event published after it reached the waiting cycle.
    """
    finished = [task for task in run.end if run.status[task] != "cancelled" and task in run.start]
    if not finished:
        return []
    last = max(run.end[task] for task in finished)
    races = _race_end(run, tasks_info)
    loser_to_winner = {
        task: races[str(info["race"])][1]
        for task, info in tasks_info.items()
        if info.get("race") is not None and str(info["race"]) in races
    }
    by_lane: dict[str, list[str]] = {}
    for task, lane in run.lane.items():
        by_lane.setdefault(lane, []).append(task)

    stack = [task for task in finished if abs(run.end[task] - last) <= instant]
    critical: set[str] = set()
    while stack:
        task = stack.pop()
        if task in critical or task not in run.start:
            continue
        critical.add(task)
        start = run.start[task]
        info = tasks_info.get(task, {})
        if start - origin > instant:
            for dep in info.get("after", []):
                resolved = _resolved(run, tasks_info, races, dep)
                if resolved is not None and abs(resolved[0] - start) <= instant:
                    stack.append(resolved[1])
            for other in by_lane.get(run.lane[task], []):
                if other != task and other in run.end and abs(run.end[other] - start) <= instant:
                    if run.status[other] == "cancelled":
                        if other in loser_to_winner:
                            stack.append(loser_to_winner[other])
                    else:
                        stack.append(other)
        for child in _last_children(run, tasks_info, task):
            stack.append(child)
        ends = run.cycle_end.get(task, {})
        for event, cycle in info.get("waits", {}).items():
            if event not in run.emitted:
                continue
            reached = ends.get(int(cycle) - 1, start) if int(cycle) > 1 else start
            emitted_at, emitter = run.emitted[event]
            if emitted_at > reached + instant:
                stack.append(emitter)
    return sorted(critical)


def _last_children(run: _Run, tasks_info: Mapping[str, Mapping[str, Any]], parent: str) -> list[str]:
    """Of each group of subagents ``parent`` spawned at one cycle, those that returned last: the parent
    was blocked until then, so they lie on the parent's path."""
    groups: dict[int, list[str]] = {}
    for task, info in tasks_info.items():
        spawned = info.get("spawned_by")
        if spawned is not None and spawned[0] == parent and task in run.end and task in run.start:
            groups.setdefault(int(spawned[1]), []).append(task)
    last: list[str] = []
    for names in groups.values():
        latest = max(run.end[name] for name in names)
        last.extend(name for name in names if run.end[name] == latest)
    return last
