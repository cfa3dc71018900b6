"""An independent checker of plans: does a Plan do what its Scenario asks, by the model's own rules?

Written from the model's semantics alone, sharing no code with the planner, so that a planner bug cannot
hide behind a checker that makes the same mistake. Given a Scenario and a Plan it replays every task from
when its lane is taken, cycle by cycle (a cycle that waits for an event starts no earlier than the event
is emitted; cycles otherwise follow each other at once), and reports every way the plan breaks a rule:

- every task planned exactly once, on a lane of its own role (or on the sequential baseline's lane);
- no lane runs two tasks at once;
- every ``after`` dependency finished before the dependent takes its lane;
- every wait respected, and the recorded first-cycle start, finish and wait match the replay;
- race members take their lanes together and all finish when the first of them does;
- at every instant no role uses more than its lanes, no resource more than its capacity, and no more than
  ``max_parallel`` tasks run;
- lower bound <= makespan <= sequential makespan, and the makespan is the last finish.

The same checks run twice: in expected minutes (each cycle at its role's nominal duration) and in wall
cycles (each cycle one unit long).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from cycleplan.core.model import Plan, PlannedTask, Scenario, Task

TOLERANCE = 1e-6


class ScheduleViolationError(AssertionError):
    """A plan that breaks its scenario's rules; ``violations`` lists every broken rule."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = violations
        shown = "\n  ".join(violations[:30])
        more = f"\n  ... and {len(violations) - 30} more" if len(violations) > 30 else ""
        super().__init__(f"{len(violations)} violation(s):\n  {shown}{more}")


@dataclass(frozen=True)
class _Row:
    """One planned task as one view (minutes or wall cycles) sees it."""

    lane: str
    lane_role: str | None
    task: Task
    lane_start: float
    start: float
    finish: float
    wait: float | None


@dataclass(frozen=True)
class _Replay:
    """A task replayed from its lane start: when each cycle starts and when it would finish alone."""

    cycle_starts: list[float]
    own_end: float
    emits: dict[str, float]


def check_plan(scenario: Scenario, plan: Plan) -> None:
    """Raise :class:`ScheduleViolationError` listing every rule ``plan`` breaks; return quietly otherwise."""
    found = violations(scenario, plan)
    if found:
        raise ScheduleViolationError(found)


def violations(scenario: Scenario, plan: Plan) -> list[str]:
    """Every rule ``plan`` breaks for ``scenario``, as readable sentences (empty when it is valid)."""
    problems: list[str] = []
    if plan.scenario != scenario:
        problems.append("the plan carries a different scenario")
    tasks = {task.id: task for task in scenario.all_tasks()}

    seen: dict[str, int] = {}
    entries: list[tuple[str, str | None, PlannedTask]] = []
    for lane in plan.lanes:
        for planned in lane.tasks:
            seen[planned.task] = seen.get(planned.task, 0) + 1
            entries.append((lane.lane, lane.role, planned))
    for task_id in tasks:
        if seen.get(task_id, 0) != 1:
            problems.append(f"task {task_id} is planned {seen.get(task_id, 0)} times, not once")
    for task_id in seen:
        if task_id not in tasks:
            problems.append(f"the plan has task {task_id}, which the scenario does not")
    if problems:
        return problems

    lane_names = [lane.lane for lane in plan.lanes]
    if len(set(lane_names)) != len(lane_names):
        problems.append(f"lane names repeat: {lane_names}")
    sequential = plan.algorithm == "sequential"
    for lane in plan.lanes:
        if lane.role is None:
            if not sequential:
                problems.append(f"lane {lane.lane} has no role in a {plan.algorithm} plan")
            continue
        for planned in lane.tasks:
            if tasks[planned.task].role != lane.role:
                problems.append(
                    f"task {planned.task} of role {tasks[planned.task].role} is on lane {lane.lane} "
                    f"of role {lane.role}"
                )
    for _, _, planned in entries:
        task = tasks[planned.task]
        if planned.role != task.role or planned.cycles != task.cycles:
            problems.append(f"task {task.id}: the plan records role/cycles that differ from the scenario")
        if planned.lane_start_min is None or planned.lane_start_cycle is None:
            problems.append(f"task {task.id}: the plan does not record when its lane is taken")
    if problems:
        return problems

    def minutes(task: Task) -> list[float]:
        return [scenario.role(task.role).cycle.nominal_min * task.duration_multiplier] * task.cycles

    def units(task: Task) -> list[float]:
        return [1.0] * task.cycles

    rows_min = [
        _Row(
            lane,
            role,
            tasks[p.task],
            float(p.lane_start_min if p.lane_start_min is not None else p.start_min),
            p.start_min,
            p.finish_min,
            p.wait_min,
        )
        for lane, role, p in entries
    ]
    rows_cycles = [
        _Row(
            lane,
            role,
            tasks[p.task],
            float(p.lane_start_cycle if p.lane_start_cycle is not None else p.start_cycle),
            p.start_cycle,
            p.finish_cycle,
            None,
        )
        for lane, role, p in entries
    ]
    problems += _check_view("minutes", scenario, rows_min, minutes, sequential)
    problems += _check_view("wall cycles", scenario, rows_cycles, units, sequential)

    last_finish = max((row.finish for row in rows_min), default=0.0)
    if abs(plan.makespan_min - last_finish) > TOLERANCE:
        problems.append(f"makespan_min {plan.makespan_min} is not the last finish {last_finish}")
    last_cycle = max((row.finish for row in rows_cycles), default=0.0)
    if abs(plan.wall_cycles - last_cycle) > TOLERANCE:
        problems.append(f"wall_cycles {plan.wall_cycles} is not the last finish {last_cycle}")
    if plan.lower_bound_min > plan.makespan_min + TOLERANCE:
        problems.append(f"lower bound {plan.lower_bound_min} is above the makespan {plan.makespan_min}")
    if plan.makespan_min > plan.sequential_min + 1e-9:
        problems.append(
            f"makespan {plan.makespan_min} is above the sequential makespan {plan.sequential_min}"
        )
    expected_sequential = _sequential_minutes(list(tasks.values()), minutes)
    if abs(plan.sequential_min - expected_sequential) > TOLERANCE:
        problems.append(
            f"sequential_min {plan.sequential_min} is not the one-lane total {expected_sequential}"
        )
    chain_bound = _longest_chain(list(tasks.values()), minutes)
    if plan.makespan_min < chain_bound - TOLERANCE:
        problems.append(f"makespan {plan.makespan_min} beats the longest dependency chain {chain_bound}")
    if plan.template_cycles != sum(task.cycles for task in tasks.values()):
        problems.append("template_cycles is not the total number of cycles")
    problems += _check_critical_path(plan, tasks, rows_min)
    return problems


def _sequential_minutes(tasks: list[Task], durations: Callable[[Task], list[float]]) -> float:
    """One lane, one task after the other; a race group runs only its fastest member."""
    total = 0.0
    fastest: dict[str, float] = {}
    for task in tasks:
        length = sum(durations(task))
        if task.race is None:
            total += length
        else:
            fastest[task.race] = min(fastest.get(task.race, length), length)
    return total + sum(fastest.values())


def _longest_chain(tasks: list[Task], durations: Callable[[Task], list[float]]) -> float:
    """The longest chain of ``after`` dependencies, each task at its nominal length (a race at its
    fastest member's): no plan can be shorter."""
    by_id = {task.id: task for task in tasks}
    fastest: dict[str, float] = {}
    for task in tasks:
        if task.race is not None:
            length = sum(durations(task))
            fastest[task.race] = min(fastest.get(task.race, length), length)
    memo: dict[str, float] = {}

    def finish(task_id: str) -> float:
        if task_id not in memo:
            task = by_id[task_id]
            length = fastest[task.race] if task.race is not None else sum(durations(task))
            memo[task_id] = max((finish(dep) for dep in task.after), default=0.0) + length
        return memo[task_id]

    return max((finish(task.id) for task in tasks), default=0.0)


def _check_view(
    view: str,
    scenario: Scenario,
    rows: list[_Row],
    durations: Callable[[Task], list[float]],
    sequential: bool,
) -> list[str]:
    problems: list[str] = []
    by_task = {row.task.id: row for row in rows}
    emitter = {
        event: (task_id, cycle) for task_id, row in by_task.items() for event, cycle in row.task.emits.items()
    }
    replays: dict[str, _Replay] = {}

    def replay(task_id: str, depth: int = 0) -> _Replay:
        if task_id in replays:
            return replays[task_id]
        if depth > len(by_task):
            raise RecursionError("waits form a loop")
        row = by_task[task_id]
        task = row.task
        clock = row.lane_start
        starts: list[float] = []
        emits: dict[str, float] = {}
        for number, minutes in enumerate(durations(task), start=1):
            for event, before in task.waits.items():
                if before == number:
                    clock = max(clock, emit_time(event, depth))
            starts.append(clock)
            clock += minutes
            for event, after in task.emits.items():
                if after == number:
                    emits[event] = clock
        replays[task_id] = _Replay(starts, clock, emits)
        return replays[task_id]

    def emit_time(event: str, depth: int) -> float:
        source, _ = emitter[event]
        return replay(source, depth + 1).emits[event]

    # Who ran: a race member with a zero-length row was never started (the sequential baseline runs only
    # a race's fastest member).
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        if row.task.race is not None:
            groups.setdefault(row.task.race, []).append(row)
    ran = {row.task.id for row in rows if row.task.race is None or row.finish > row.lane_start + TOLERANCE}
    group_end: dict[str, float] = {}
    for group, members in groups.items():
        runners = [row for row in members if row.task.id in ran]
        if not runners:
            problems.append(f"[{view}] race {group}: no member runs")
            continue
        if not sequential and len(runners) != len(members):
            problems.append(f"[{view}] race {group}: only {len(runners)} of {len(members)} members run")
        if max(r.lane_start for r in runners) - min(r.lane_start for r in runners) > TOLERANCE:
            problems.append(f"[{view}] race {group}: members take their lanes at different times")
        group_end[group] = min(replay(r.task.id).own_end for r in runners)
        for row in members:
            if abs(row.finish - group_end[group]) > TOLERANCE:
                problems.append(
                    f"[{view}] race {group}: {row.task.id} finishes at {row.finish}, not when the first "
                    f"member does ({group_end[group]})"
                )

    for row in rows:
        task = row.task
        if task.id not in ran:
            if abs(row.start - row.finish) > TOLERANCE or (row.wait or 0.0) > TOLERANCE:
                problems.append(f"[{view}] {task.id}: a member that never runs has a non-empty row")
            continue
        run = replay(task.id)
        end = group_end[task.race] if task.race is not None else run.own_end
        first = min(run.cycle_starts[0], end)
        if abs(row.start - first) > TOLERANCE:
            problems.append(f"[{view}] {task.id}: first cycle recorded at {row.start}, replayed at {first}")
        if abs(row.finish - end) > TOLERANCE:
            problems.append(f"[{view}] {task.id}: finish recorded at {row.finish}, replayed at {end}")
        if row.lane_start > row.start + TOLERANCE:
            problems.append(f"[{view}] {task.id}: lane taken at {row.lane_start}, after its first cycle")
        if row.lane_start < -TOLERANCE:
            problems.append(f"[{view}] {task.id}: lane taken before time 0")
        if row.wait is not None and task.race is None:
            wait = row.finish - row.lane_start - sum(durations(task))
            if abs(row.wait - wait) > TOLERANCE:
                problems.append(f"[{view}] {task.id}: wait recorded as {row.wait}, replayed as {wait}")
        for dependency in task.after:
            before = by_task[dependency]
            if row.lane_start < before.finish - TOLERANCE:
                problems.append(
                    f"[{view}] {task.id} takes its lane at {row.lane_start}, before {dependency} "
                    f"finishes at {before.finish}"
                )
        for event, cycle in task.waits.items():
            source, emit_cycle = emitter[event]
            emitted = replay(source).emits[event]
            if by_task[source].finish < emitted - TOLERANCE:
                problems.append(f"[{view}] {source} stops before emitting {event}")
            if cycle <= len(run.cycle_starts) and run.cycle_starts[cycle - 1] < emitted - TOLERANCE:
                problems.append(
                    f"[{view}] {task.id}: cycle {cycle} starts at {run.cycle_starts[cycle - 1]}, before "
                    f"{source} emits {event} after its cycle {emit_cycle} at {emitted}"
                )

    # Lanes: one task at a time; each lane belongs to one role, and no role has more lanes than it may.
    on_lane: dict[str, list[_Row]] = {}
    for row in rows:
        if row.finish > row.lane_start + TOLERANCE:
            on_lane.setdefault(row.lane, []).append(row)
    for lane, lane_rows in on_lane.items():
        lane_rows.sort(key=lambda r: (r.lane_start, r.finish))
        for first, second in itertools.pairwise(lane_rows):
            if second.lane_start < first.finish - TOLERANCE:
                problems.append(
                    f"[{view}] lane {lane} runs {first.task.id} ({first.lane_start}-{first.finish}) and "
                    f"{second.task.id} ({second.lane_start}-{second.finish}) at once"
                )
    if not sequential:
        lanes_of_role: dict[str, set[str]] = {}
        for row in rows:
            lanes_of_role.setdefault(row.task.role, set()).add(row.lane)
        for role, lanes in lanes_of_role.items():
            if len(lanes) > scenario.role(role).lanes:
                problems.append(
                    f"[{view}] role {role} uses {len(lanes)} lanes, more than its {scenario.role(role).lanes}"
                )

    # Capacities at every instant: usage only rises when some task takes its lane.
    spans = [row for row in rows if row.finish > row.lane_start + TOLERANCE]
    for point in sorted({row.lane_start for row in spans}):
        running = [r for r in spans if r.lane_start <= point + TOLERANCE and r.finish > point + TOLERANCE]
        per_role: dict[str, int] = {}
        for r in running:
            per_role[r.task.role] = per_role.get(r.task.role, 0) + 1
        for role, count in per_role.items():
            if count > scenario.role(role).lanes:
                problems.append(f"[{view}] at {point}: {count} {role} tasks run, above its lanes")
        if scenario.max_parallel is not None and len(running) > scenario.max_parallel:
            problems.append(
                f"[{view}] at {point}: {len(running)} tasks run, above max_parallel {scenario.max_parallel}"
            )
        for name, resource in scenario.resources.items():
            used = sum(r.task.requires.get(name, 0) for r in running)
            if used > resource.capacity:
                problems.append(
                    f"[{view}] at {point}: {used} units of {name} in use, above its capacity "
                    f"{resource.capacity}"
                )
    return problems


def _check_critical_path(plan: Plan, tasks: dict[str, Task], rows: list[_Row]) -> list[str]:
    problems: list[str] = []
    path = plan.critical_path
    if tasks and not path:
        return ["the critical path is empty"]
    if len(set(path)) != len(path) or any(task_id not in tasks for task_id in path):
        return [f"the critical path {path} repeats or names unknown tasks"]
    by_task = {row.task.id: row for row in rows}
    if path and abs(by_task[path[-1]].finish - plan.makespan_min) > TOLERANCE:
        problems.append(f"the critical path ends with {path[-1]}, which does not finish last")
    for first, second in itertools.pairwise(path):
        # Each link (dependency, lane, resource or event) needs the first to begin before the second ends.
        if by_task[first].lane_start >= by_task[second].finish - TOLERANCE:
            problems.append(f"the critical path goes back in time from {first} to {second}")
    return problems
