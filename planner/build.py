"""From an algorithm's Schedule to the Plan: lanes of planned tasks, critical path, bounds, speedup.

Every algorithm's answer goes through here, so every Plan is measured the same way. Knows the Problem
and the model's Plan; runs no algorithm of its own besides the sequential baseline it compares against.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from cycleplan.core.model import Task
from cycleplan.planner import sequential
from cycleplan.planner.priority import passes
from cycleplan.planner.problem import (
    EPS,
    Durations,
    Lane,
    Placement,
    Problem,
    Schedule,
    cycle_durations,
    nominal_durations,
)
from cycleplan.planner.replay import emit_times

if TYPE_CHECKING:
    from cycleplan.core.model import Lane as PlanLane
    from cycleplan.core.model import Plan


def lane_name(lane: Lane) -> str:
    role, number = lane
    return role if lane == sequential.LANE else f"{role}-{number}"


def lower_bounds(problem: Problem, durations: Durations) -> dict[str, float]:
    """Bounds no plan can beat: the critical path, and each role's, resource's and the cap's work spread
    over its capacity."""
    bounds = {"critical_path": passes(problem, durations).critical_path_min}
    load: dict[str, float] = {}
    for activity in problem.activities:
        length = problem.nominal_length(activity, durations)
        for task in activity.members:
            key = f"role:{task.role}"
            load[key] = load.get(key, 0.0) + length
        for resource, units in problem.demand(activity).items():
            load[resource] = load.get(resource, 0.0) + units * length
    for key, work in load.items():
        capacity = problem.lanes[key[5:]] if key.startswith("role:") else problem.capacities[key]
        bounds[key] = work / capacity
    return bounds


def _winner(problem: Problem, placed: Placement, durations: Durations, emitted: dict[str, float]) -> str:
    activity = problem.activities[placed.activity]
    if not activity.is_race:
        return activity.members[0].id
    best = min(
        activity.members,
        key=lambda task: problem.finish_times(
            type(activity)(activity.index, task.id, (task,), (), ()), placed.start, durations, emitted
        )[0],
    )
    return best.id


def critical_path(problem: Problem, placements: dict[int, Placement], durations: Durations) -> list[str]:
    """The chain of tasks that sets the makespan, first to last.

    Walk back from the activity that ends last: to the emitter whose event it waited for last, else to
    whatever ended exactly when it started (a dependency first, then the task before it on its lane, then
    one holding a resource it needed).
    """
    if not placements:
        return []
    emitted = emit_times(problem, placements, durations)

    current: int | None = max(placements.values(), key=lambda p: (p.end, -p.activity)).activity
    by_end = sorted((p.end, p.activity) for p in placements.values())
    chain: list[str] = []
    seen: set[int] = set()
    while current is not None and current not in seen:
        seen.add(current)
        placed = placements[current]
        activity = problem.activities[current]
        winner_id = _winner(problem, placed, durations, emitted)
        chain.append(winner_id)
        winner = next(task for task in activity.members if task.id == winner_id)
        binding: str | None = None
        clock = placed.start
        waits_before: dict[int, list[str]] = {}
        for event, cycle in winner.waits.items():
            waits_before.setdefault(cycle, []).append(event)
        for number, minutes in enumerate(durations(winner), start=1):
            for event in waits_before.get(number, ()):
                if emitted[event] > clock + EPS:
                    binding, clock = event, emitted[event]
            clock += minutes
        if binding is not None:
            current = problem.activity_of[problem.emitter[binding][0]]
            continue
        if placed.start <= EPS:
            break
        # What ended when it started: a slice of the placements by end (the EPS test itself decides).
        low = bisect.bisect_left(by_end, (placed.start - 2 * EPS, -1))
        high = bisect.bisect_right(by_end, (placed.start + 2 * EPS, len(problem.activities)))
        ending = [
            placements[index]
            for end, index in by_end[low:high]
            if abs(end - placed.start) <= EPS and index != current
        ]
        by_dependency = [p for p in ending if p.activity in activity.after]
        by_lane = [p for p in ending if set(p.lanes) & set(placed.lanes)]
        demand = problem.demand(activity)
        by_resource = [p for p in ending if set(problem.demand(problem.activities[p.activity])) & set(demand)]
        for group in (by_dependency, by_lane, by_resource, ending):
            if group:
                current = min(group, key=lambda p: p.activity).activity
                break
        else:
            current = None
    chain.reverse()
    return chain


def build_plan(problem: Problem, schedule: Schedule, algorithm: str, rule: str | None) -> Plan:
    from cycleplan.core.model import Lane as PlanLane
    from cycleplan.core.model import Plan, PlannedTask, SyncPoint

    scenario = problem.scenario
    # The sequential baseline runs subagents on its one lane, one after the other.
    durations = nominal_durations(scenario, inline=algorithm == "sequential")
    rows: dict[Lane, list[PlannedTask]] = {lane: [] for lane in schedule.lanes}
    for index, placed in schedule.minutes.items():
        activity = problem.activities[index]
        in_cycles = schedule.cycles[index]
        for position, task in enumerate(activity.members):
            lane = placed.lanes[position]
            if task.id in schedule.skipped:
                start, start_cycle = placed.end, in_cycles.end
                lane_start, lane_start_cycle = placed.end, in_cycles.end
            else:
                # A race member still waiting when the winner finishes never starts a cycle.
                start = min(placed.first_cycle[task.id], placed.end)
                start_cycle = min(in_cycles.first_cycle[task.id], in_cycles.end)
                lane_start, lane_start_cycle = placed.start, in_cycles.start
            busy = min(sum(durations(task)), placed.end - start)
            rows[lane].append(
                PlannedTask(
                    task=task.id,
                    role=task.role,
                    cycles=task.cycles,
                    start_min=start,
                    finish_min=placed.end,
                    start_cycle=start_cycle,
                    finish_cycle=in_cycles.end,
                    wait_min=max(0.0, placed.end - placed.start - busy)
                    if task.id not in schedule.skipped
                    else 0.0,
                    lane_start_min=lane_start,
                    lane_start_cycle=lane_start_cycle,
                )
            )
    lanes = [
        PlanLane(
            lane=lane_name(lane),
            role=None if lane == sequential.LANE else lane[0],
            tasks=sorted(rows[lane], key=lambda row: (row.start_min, row.finish_min, row.task)),
        )
        for lane in schedule.lanes
    ]
    subagent_lanes = _subagent_lanes(problem, schedule, algorithm == "sequential")
    if algorithm == "sequential" and subagent_lanes:
        merged = [*lanes[0].tasks, *(row for lane in subagent_lanes for row in lane.tasks)]
        lanes[0] = lanes[0].model_copy(
            update={"tasks": sorted(merged, key=lambda row: (row.start_min, row.finish_min, row.task))}
        )
    else:
        lanes.extend(subagent_lanes)
    makespan = max((p.end for p in schedule.minutes.values()), default=0.0)
    sequential_min = sequential.makespan(problem, nominal_durations(scenario, inline=True))
    bounds = lower_bounds(problem, durations)
    lower_bound = max(bounds.values(), default=0.0)
    proven_optimal = True if makespan <= lower_bound + EPS else schedule.proven_optimal
    in_minutes = emit_times(problem, schedule.minutes, durations)
    in_cycles_at = emit_times(
        problem, schedule.cycles, cycle_durations(scenario, inline=algorithm == "sequential")
    )
    tasks = scenario.all_tasks()
    waiters: dict[str, list[str]] = {}
    for other in tasks:
        for event in other.waits:
            waiters.setdefault(event, []).append(other.id)
    sync_points = sorted(
        (
            SyncPoint(
                event=event,
                task=task.id,
                after_cycle=cycle,
                at_min=in_minutes[event],
                at_cycle=in_cycles_at[event],
                waiters=waiters.get(event, []),
            )
            for task in tasks
            for event, cycle in task.emits.items()
            if event in in_minutes and event in in_cycles_at
        ),
        key=lambda point: (point.at_min, point.event),
    )
    return Plan(
        scenario=scenario,
        algorithm=algorithm,
        rule=rule,
        makespan_min=makespan,
        sequential_min=sequential_min,
        speedup=sequential_min / makespan if makespan > 0 else 1.0,
        lower_bound_min=lower_bound,
        lower_bounds=bounds,
        critical_path=_with_subagents(problem, critical_path(problem, schedule.minutes, durations)),
        wall_cycles=max((p.end for p in schedule.cycles.values()), default=0.0),
        template_cycles=sum(task.cycles for task in scenario.all_tasks()),
        lanes=lanes,
        proven_optimal=proven_optimal,
        sync_points=sync_points,
    )


def cycle_starts(task: Task, start: float, durations: Durations, emitted: dict[str, float]) -> list[float]:
    """When each of ``task``'s cycles begins if it takes its lane at ``start``: after the events it
    waits for, before anything else (the subagents it spawns there, then its own work)."""
    starts: list[float] = []
    clock = start
    for number, minutes in enumerate(durations(task), start=1):
        for event, before in task.waits.items():
            if before == number:
                clock = max(clock, emitted[event])
        starts.append(clock)
        clock += minutes
    return starts


def _subagent_lanes(problem: Problem, schedule: Schedule, inline: bool) -> list[PlanLane]:
    """The planned rows of every subagent: spawned when its parent begins the spawning cycle, each on a
    lane of its own named after its parent's (``backend-1-sub2``: the second subagent spawned there),
    or, ``inline`` (the sequential baseline), on the parent's lane one after the other."""
    from cycleplan.core.model import Lane as PlanLane
    from cycleplan.core.model import PlannedTask

    scenario = problem.scenario
    spawned = scenario.subagents()
    if not spawned:
        return []
    own_minutes = nominal_durations(scenario)
    views = (
        (schedule.minutes, nominal_durations(scenario, inline=inline)),
        (schedule.cycles, cycle_durations(scenario, inline=inline)),
    )
    emitted = [emit_times(problem, placements, durations) for placements, durations in views]
    rows: dict[str, list[PlannedTask]] = {}
    roles: dict[str, str] = {}
    for index, placed in schedule.minutes.items():
        activity = problem.activities[index]
        for position, parent in enumerate(activity.members):
            if parent.id not in spawned:
                continue
            lane = lane_name(placed.lanes[position])
            starts = [
                cycle_starts(parent, view[0][index].start, view[1], events)
                for view, events in zip(views, emitted, strict=True)
            ]
            for cycle, children in sorted(spawned[parent.id].items()):
                offsets = [0.0, 0.0]
                for number, child in enumerate(children, start=1):
                    lengths = (sum(own_minutes(child)), float(child.cycles))
                    begin = [starts[view][cycle - 1] + offsets[view] for view in (0, 1)]
                    name = lane if inline else f"{lane}-sub{number}"
                    roles.setdefault(name, child.role)
                    rows.setdefault(name, []).append(
                        PlannedTask(
                            task=child.id,
                            role=child.role,
                            cycles=child.cycles,
                            start_min=begin[0],
                            finish_min=begin[0] + lengths[0],
                            start_cycle=begin[1],
                            finish_cycle=begin[1] + lengths[1],
                            lane_start_min=begin[0],
                            lane_start_cycle=begin[1],
                        )
                    )
                    if inline:
                        offsets = [offsets[0] + lengths[0], offsets[1] + lengths[1]]
    if not inline:
        # Every lane of a spawning role gets the subagent lanes its busiest spawn needs, so that a task
        # run on another lane than planned (dynamic dispatch) has lanes for its subagents too.
        widest: dict[str, int] = {}
        child_role: dict[tuple[str, int], str] = {}
        role_of = {task.id: task.role for task in scenario.all_tasks()}
        for parent_id, cycles in spawned.items():
            role = role_of[parent_id]
            for children in cycles.values():
                widest[role] = max(widest.get(role, 0), len(children))
                for number, child in enumerate(children, start=1):
                    child_role.setdefault((role, number), child.role)
        for role_lane in schedule.lanes:
            for number in range(1, widest.get(role_lane[0], 0) + 1):
                name = f"{lane_name(role_lane)}-sub{number}"
                rows.setdefault(name, [])
                roles.setdefault(name, child_role[(role_lane[0], number)])
    return [
        PlanLane(
            lane=name,
            role=None if inline else roles[name],
            tasks=sorted(found, key=lambda row: (row.start_min, row.finish_min, row.task)),
        )
        for name, found in sorted(rows.items())
    ]


def _with_subagents(problem: Problem, chain: list[str]) -> list[str]:
    """The critical path with, after each task on it, the longest subagent of each of its spawns: the
    parent was blocked until that one returned."""
    spawned = problem.scenario.subagents()
    if not spawned:
        return chain
    own_minutes = nominal_durations(problem.scenario)
    out: list[str] = []
    for task_id in chain:
        out.append(task_id)
        for _, children in sorted(spawned.get(task_id, {}).items()):
            out.append(max(children, key=lambda child: (sum(own_minutes(child)), child.id)).id)
    return out
