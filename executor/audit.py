"""Did a run keep its plan's promises? The invariants of an executed trace, checked from its events.

:func:`trace_problems` returns one line per broken rule (an empty list for a sound trace):

- the trace opens with ``run_started`` and ``run_complete``, if present, closes it;
- no event is recorded twice (the same task start, cycle attempt, emitted event or ending);
- a task starts at most once, ends at most once, and nothing happens to it after it ends; its successful
  cycles come in order, its attempts at a cycle are numbered 1, 2, ...; it completes only after its
  last cycle;
- a task starts only after each of its dependencies completed (for a race member: after its race has a
  winner), and a task whose dependency never completed never starts;
- no attempt at cycle *k* starts before the events the task waits for before *k* are committed;
- a task publishes what it emits after cycle *j* once, after cycle *j* succeeded;
- a subagent starts only once its parent has reached the cycle that spawns it, and returns before its
  parent works that cycle (or, for a subagent the parent's agent spawned within its cycle, the parent's
  cycle recorded ``spawned_within``: before that cycle ends);
- a lane never runs two tasks at once (a parent blocked on subagents that run on its own lane, as on the
  one-lane baseline, is not running); at most one member of a race completes;
- with ``max_parallel``, never more attempts at once than it allows (subagents take no slot).

It reads events only (the tests, and anyone auditing a run, call it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cycleplan.core.model import Event, Plan
from cycleplan.core.wording import counted
from cycleplan.executor import events as ev

EPS_MS = 0.5
"""Timestamps this close count as the same instant (the clock rounds to microseconds)."""


def _identity(event: Event) -> tuple[Any, ...] | None:
    action = event.action
    meta = event.metadata
    if action == ev.CYCLE_COMPLETED:
        return (action, event.target_id, meta.get("cycle"), meta.get("attempt"))
    if action in (ev.TASK_STARTED, ev.TASK_COMPLETE, ev.TASK_FAILED, ev.TASK_CANCELLED, ev.RUN_STARTED):
        return (action, event.target_id)
    if action in (ev.RUN_RESUMED, ev.TASK_RESUMED):
        return (action, event.target_id, meta.get("resume"), meta.get("cycle"))
    if action in ev.RESERVED:
        return None
    return ("emit", event.target_id, action)


def trace_problems(plan: Plan, trace: Sequence[Event]) -> list[str]:
    """Every way ``trace`` breaks the rules in the module docstring (empty when it keeps them all)."""
    problems: list[str] = []
    tasks = {task.id: task for task in plan.scenario.all_tasks()}
    if not trace or trace[0].action != ev.RUN_STARTED:
        return ["the trace does not open with run_started"]
    completes = [i for i, e in enumerate(trace) if e.action == ev.RUN_COMPLETE]
    if len(completes) > 1 or (completes and completes[0] != len(trace) - 1):
        problems.append("run_complete is not the last event, or appears more than once")

    seen: set[tuple[Any, ...]] = set()
    for event in trace:
        identity = _identity(event)
        if identity is not None:
            if identity in seen:
                problems.append(f"recorded twice: {identity}")
            seen.add(identity)

    started: dict[str, Event] = {}
    ended: dict[str, Event] = {}
    emitted: dict[str, Event] = {}
    attempts: dict[str, list[Event]] = {}
    for event in trace:
        task = event.target_id
        action = event.action
        if task not in tasks:
            continue
        if task in ended:
            problems.append(f"{task}: {action} after it ended with {ended[task].action}")
        if action == ev.TASK_STARTED:
            started.setdefault(task, event)
        elif action in ev.TERMINAL:
            ended.setdefault(task, event)
        elif action == ev.CYCLE_COMPLETED:
            if task not in started:
                problems.append(f"{task}: a cycle before task_started")
            attempts.setdefault(task, []).append(event)
        elif action not in ev.RESERVED:
            emitted.setdefault(action, event)

    for task_id, spec in tasks.items():
        problems += _cycles(task_id, spec.cycles, attempts.get(task_id, []), ended.get(task_id))
        problems += _dependencies(task_id, spec.after, tasks, started, ended)
        first_try: dict[int, float] = {}
        for event in attempts.get(task_id, []):
            cycle = int(event.metadata.get("cycle", 0))
            at = float(event.metadata.get("started_at", event.timestamp))
            first_try[cycle] = min(first_try.get(cycle, at), at)
        for name, before in spec.waits.items():
            if before in first_try:
                if name not in emitted:
                    problems.append(f"{task_id}: cycle {before} ran, but '{name}' was never emitted")
                elif first_try[before] + EPS_MS < emitted[name].timestamp:
                    problems.append(f"{task_id}: cycle {before} started before '{name}' was emitted")
        for name, after in spec.emits.items():
            published = emitted.get(name)
            if published is None:
                if ended.get(task_id) is not None and ended[task_id].action == ev.TASK_COMPLETE:
                    problems.append(f"{task_id}: completed without emitting '{name}'")
                continue
            done = [
                e
                for e in attempts.get(task_id, [])
                if int(e.metadata.get("cycle", 0)) == after and not e.metadata.get("failed")
            ]
            if not done or trace.index(done[0]) > trace.index(published):
                problems.append(f"{task_id}: emitted '{name}' before its cycle {after} succeeded")

    problems += _subagents(tasks, started, ended, attempts)
    parent_of = {task_id: spec.spawned_by.task for task_id, spec in tasks.items() if spec.spawned_by}
    problems += _lanes(started, ended, parent_of)
    problems += _races(tasks, ended)
    if plan.scenario.max_parallel is not None:
        working = {task: events for task, events in attempts.items() if task not in parent_of}
        problems += _parallel(plan.scenario.max_parallel, working)
    return problems


def _subagents(
    tasks: dict[str, Any],
    started: dict[str, Event],
    ended: dict[str, Event],
    attempts: dict[str, list[Event]],
) -> list[str]:
    problems: list[str] = []
    for task_id, spec in tasks.items():
        spawn = spec.spawned_by
        if spawn is None or task_id not in started:
            continue
        parent = spawn.task
        begin = started[task_id].timestamp
        if parent not in started:
            problems.append(f"{task_id}: started though its parent {parent} never did")
            continue
        reached: float | None = started[parent].timestamp
        if spawn.cycle > 1:
            done = [
                e.timestamp
                for e in attempts.get(parent, [])
                if int(e.metadata.get("cycle", 0)) == spawn.cycle - 1 and not e.metadata.get("failed")
            ]
            reached = min(done) if done else None
        if reached is None or begin + EPS_MS < reached:
            problems.append(f"{task_id}: started before its parent {parent} reached cycle {spawn.cycle}")
        at_cycle = [e for e in attempts.get(parent, []) if int(e.metadata.get("cycle", 0)) == spawn.cycle]
        if any(e.metadata.get("spawned_within") for e in at_cycle):
            done = [e.timestamp for e in at_cycle if not e.metadata.get("failed")]
            if done and (task_id not in ended or min(done) + EPS_MS < ended[task_id].timestamp):
                problems.append(
                    f"{task_id}: its parent {parent} ended cycle {spawn.cycle} before it returned"
                )
            continue
        work = [float(e.metadata.get("started_at", e.timestamp)) for e in at_cycle]
        if work and (task_id not in ended or min(work) + EPS_MS < ended[task_id].timestamp):
            problems.append(f"{task_id}: its parent {parent} worked cycle {spawn.cycle} before it returned")
    return problems


def _cycles(task: str, cycles: int, attempts: list[Event], end: Event | None) -> list[str]:
    problems: list[str] = []
    done = 0
    tries = 0
    for event in attempts:
        cycle = int(event.metadata.get("cycle", 0))
        attempt = int(event.metadata.get("attempt", 0))
        if cycle != done + 1:
            problems.append(f"{task}: cycle {cycle} attempted after {done} succeeded")
            continue
        tries += 1
        if attempt != tries:
            problems.append(f"{task}: cycle {cycle} attempt {attempt} where {tries} was next")
            tries = attempt
        if not event.metadata.get("failed"):
            done = cycle
            tries = 0
    if end is not None and end.action == ev.TASK_COMPLETE and done != cycles:
        problems.append(f"{task}: completed after {done} of {counted(cycles, 'cycle')}")
    return problems


def _dependencies(
    task: str,
    after: list[str],
    tasks: dict[str, Any],
    started: dict[str, Event],
    ended: dict[str, Event],
) -> list[str]:
    problems: list[str] = []
    if task not in started:
        return problems
    begin = started[task].timestamp
    for dependency in after:
        race = tasks[dependency].race
        members = [t for t, spec in tasks.items() if spec.race == race] if race is not None else [dependency]
        completions = [
            ended[m].timestamp for m in members if m in ended and ended[m].action == ev.TASK_COMPLETE
        ]
        if not completions:
            problems.append(f"{task}: started though its dependency {dependency} never completed")
        elif begin + EPS_MS < min(completions):
            problems.append(f"{task}: started before its dependency {dependency} completed")
    return problems


def _lanes(started: dict[str, Event], ended: dict[str, Event], parent_of: dict[str, str]) -> list[str]:
    problems: list[str] = []
    by_lane: dict[str, list[tuple[float, float, str]]] = {}
    for task, event in started.items():
        end = ended[task].timestamp if task in ended else float("inf")
        by_lane.setdefault(event.actor_id, []).append((event.timestamp, end, task))
    for lane, spans in by_lane.items():
        spans.sort()
        running: list[tuple[float, str]] = []
        for begin, end, task in spans:
            running = [(until, other) for until, other in running if begin + EPS_MS < until]
            for _, other in running:
                if parent_of.get(task) != other:
                    problems.append(f"lane {lane} ran {other} and {task} at once")
            running.append((end, task))
    return problems


def _races(tasks: dict[str, Any], ended: dict[str, Event]) -> list[str]:
    winners: dict[str, list[str]] = {}
    for task, spec in tasks.items():
        if spec.race is not None and task in ended and ended[task].action == ev.TASK_COMPLETE:
            winners.setdefault(spec.race, []).append(task)
    return [
        f"race {race} has {len(names)} winners: {', '.join(names)}"
        for race, names in winners.items()
        if len(names) > 1
    ]


def _parallel(limit: int, attempts: dict[str, list[Event]]) -> list[str]:
    edges: list[tuple[float, int]] = []
    for events in attempts.values():
        for event in events:
            begin = float(event.metadata.get("started_at", event.timestamp))
            edges += [(begin + EPS_MS, 1), (event.timestamp, -1)]
    edges.sort()
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return [f"{peak} attempts ran at once; max_parallel is {limit}"] if peak > limit else []
