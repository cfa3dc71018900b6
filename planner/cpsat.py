"""``cpsat``: the exact algorithm, a constraint model solved by OR-Tools CP-SAT (the ``optimal`` extra).

Every activity is an interval from when it takes its lanes to when it ends. Role lanes, ``max_parallel``
and the extra resources are cumulative constraints over those intervals; ``after`` links are
end-before-start. Sync points are modelled exactly: a cycle that waits starts at the later of the
previous cycle's end and the awaited emit times (a max constraint), so an activity's length follows from
when it starts, as in the rest of the planner; a race ends when its first member does (a min constraint).
The objective is the makespan. The search starts from the ``improve`` schedule (a hint and an upper
bound) and from the critical-path lower bound.

Redundant constraints that do not change the answer but help prove it: heads and tails bound each
start; chains of dependencies become direct precedences; the time after the makespan fills every
resource (so cumulative reasoning bounds the makespan); and work that must come before, after or between
activities needs capacity x time (energy).

The search is clause learning over the bounds of the start times (lazy clause generation): on hard
instances (PSPLIB j30's tightly resource-constrained classes) the proof of optimality comes from that
search, not from the LP relaxation, so the parameters give it all the time:

- ``linearization_level`` 0: no LP relaxation. Its bound rises slowly on these instances and each LP
  solve slows the search.
- ``use_new_integer_conflict_resolution``: conflict analysis over integer bounds, which learns shorter
  clauses from the cumulative constraints' explanations; it halves the time to prove the hardest j30
  instances.
- ``use_disjunctive_constraint_in_cumulative`` off: no extra no-overlap reasoning for the activities of
  a cumulative that pairwise cannot overlap. It costs more propagation time than it saves in search, and
  so would no-overlap constraints over cliques of such activities, which the model does not add.
- ``shared_tree_num_workers``: the workers split one search tree between them instead of running a
  portfolio of different strategies, each of which gets a fraction of a core on a small machine.

Timetable edge finding and the overload checker in the cumulative constraints, LP-based workers, a
search that fixes starts in order, and pairwise minimum delays computed by small solves before the main
one all made the proofs slower. The time limit covers the whole call, warm start and model included.

Times are integers for CP-SAT: minutes are scaled by the smallest factor that makes every cycle a whole
number of units. When no small factor does, cycles are rounded, the solution is timed again with the
true durations, and optimality is not claimed.

OR-Tools is imported only when this algorithm runs; without it, :class:`MissingExtraError`
says what to install. Returns the best schedule found within ``time_limit_s`` and whether it is proven
optimal (``Schedule.proven_optimal``).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from cycleplan.planner import improve
from cycleplan.planner.arrays import assign_lanes
from cycleplan.planner.priority import passes
from cycleplan.planner.problem import (
    EPS,
    Placement,
    Problem,
    Schedule,
    cycle_durations,
    nominal_durations,
    role_lanes,
)
from cycleplan.planner.replay import retime

DEFAULT_TIME_LIMIT_S = 10.0
SCALES = (1, 2, 4, 5, 10, 20, 25, 50, 100, 1_000)
ROUNDED_SCALE = 1_000
WARM_START_SCHEDULES = 500
TRANSITIVE_LIMIT = 400
"""Up to this many activities, chains of dependencies are also stated as direct precedences."""
ENERGY = True
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Search threads when none are asked for: one per core this process may use, at most
    :data:`MAX_DEFAULT_WORKERS`. The workers split one search tree between them (see the module
    docstring), which pays off up to one worker per core and costs time beyond it."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


class MissingExtraError(ImportError):
    """An algorithm needs a package that is not installed; the message says how to install it."""


def _cp_model() -> Any:
    try:
        from ortools.sat.python import cp_model
    except ImportError as exc:
        raise MissingExtraError(
            "the cpsat algorithm needs OR-Tools, which is not installed: pip install cycleplan[optimal]"
        ) from exc
    return cp_model


def _scale(problem: Problem) -> tuple[float, bool]:
    """Time units per minute that make every cycle a whole number of units, and whether that is exact.

    The smallest factor of :data:`SCALES` that works, divided by the greatest common divisor of the
    lengths it gives (cycles of 0.7 and 1.05 minutes become 2 and 3 units, not 14 and 21).
    """
    minutes = nominal_durations(problem.scenario)
    lengths = {
        value for activity in problem.activities for task in activity.members for value in minutes(task)
    }
    for scale in SCALES:
        if all(
            round(value * scale) >= 1 and abs(value * scale - round(value * scale)) <= 1e-9 * value * scale
            for value in lengths
        ):
            divisor = math.gcd(*(round(value * scale) for value in lengths)) or 1
            return scale / divisor, True
    return float(ROUNDED_SCALE), False


def schedule(
    problem: Problem,
    rule: str | None = None,
    *,
    time_limit_s: float | None = None,
    workers: int | None = None,
) -> Schedule:
    """The shortest schedule CP-SAT finds within ``time_limit_s`` (default 10 s) with ``workers`` search
    workers (default :func:`default_workers`)."""
    cp_model = _cp_model()
    began = time.perf_counter()
    warm = improve.schedule(problem, rule, schedules=WARM_START_SCHEDULES)
    if not problem.activities:
        return warm
    warm_makespan = max(p.end for p in warm.minutes.values())
    scale, exact = _scale(problem)
    minutes = nominal_durations(problem.scenario)

    def units(task_minutes: float) -> int:
        return max(1, round(task_minutes * scale))

    cycle_units = {
        task.id: [units(value) for value in minutes(task)]
        for activity in problem.activities
        for task in activity.members
    }
    horizon = sum(min(sum(cycle_units[t.id]) for t in a.members) for a in problem.activities)
    # A race member that loses may still be waiting, or working, well after the horizon.
    far = horizon + sum(sum(lengths) for lengths in cycle_units.values())
    if exact:
        horizon = min(horizon, round(warm_makespan * scale))

    model = cp_model.CpModel()
    start: dict[int, Any] = {}
    end: dict[int, Any] = {}
    first_cycle: dict[str, Any] = {}
    emit: dict[str, Any] = {}
    interval: dict[int, Any] = {}

    # Activities in an order where emitters come before the tasks that wait for them.
    done: set[int] = set()
    order: list[int] = []
    pending = [a.index for a in problem.activities]
    while pending:
        ready = [index for index in pending if all(p in done for p in problem.activities[index].predecessors)]
        for index in ready:
            done.add(index)
            order.append(index)
        pending = [index for index in pending if index not in done]
        if not ready:
            raise AssertionError("dependency loop")  # the scenario's checks refuse loops

    # Heads and tails: no activity takes its lanes before its earliest start with unlimited lanes, nor
    # later than the horizon less the shortest chain of work that must follow it.
    shortest = {a.index: min(sum(cycle_units[t.id]) for t in a.members) for a in problem.activities}
    successors: dict[int, list[int]] = {a.index: [] for a in problem.activities}
    for activity in problem.activities:
        for pred in activity.after:
            successors[pred].append(activity.index)
    tail: dict[int, int] = {}
    for index in reversed(order):
        tail[index] = shortest[index] + max((tail[succ] for succ in successors[index]), default=0)
    relaxed = passes(problem, minutes)
    head = {
        index: math.floor(relaxed.earliest_start[index] * scale + 1e-6) if exact else 0 for index in order
    }

    for index in order:
        activity = problem.activities[index]
        start[index] = model.new_int_var(
            head[index], max(head[index], horizon - tail[index]), f"start_{index}"
        )
        ends = []
        for task in activity.members:
            lengths = cycle_units[task.id]
            waits_before: dict[int, list[str]] = {}
            for event, cycle in task.waits.items():
                waits_before.setdefault(cycle, []).append(event)
            emits_after: dict[int, list[str]] = {}
            for event, cycle in task.emits.items():
                emits_after.setdefault(cycle, []).append(event)
            # clock = segment start variable + units since it began
            segment: Any = start[index]
            offset = 0
            for number, length in enumerate(lengths, start=1):
                if number in waits_before:
                    ready_at = model.new_int_var(0, far, f"cycle_{task.id}_{number}")
                    model.add_max_equality(
                        ready_at, [segment + offset, *(emit[e] for e in waits_before[number])]
                    )
                    segment, offset = ready_at, 0
                if number == 1:
                    first_cycle[task.id] = segment + offset
                offset += length
                for event in emits_after.get(number, ()):
                    emit[event] = segment + offset
            ends.append(segment + offset)
        fixed = len(activity.members) == 1 and not activity.members[0].waits
        if fixed:
            end[index] = start[index] + sum(cycle_units[activity.members[0].id])
            size = sum(cycle_units[activity.members[0].id])
            interval[index] = model.new_fixed_size_interval_var(start[index], size, f"activity_{index}")
        else:
            end[index] = model.new_int_var(0, horizon, f"end_{index}")
            if len(ends) == 1:
                model.add(end[index] == ends[0])
            else:
                model.add_min_equality(end[index], ends)
            size = model.new_int_var(1, horizon, f"size_{index}")
            interval[index] = model.new_interval_var(start[index], size, end[index], f"activity_{index}")
        for pred in activity.after:
            model.add(start[index] >= end[pred])

    # Chains of ``after`` links: from each activity, the longest delay to every activity after it.
    reach_from: dict[int, dict[int, int]] = {}
    if len(order) <= TRANSITIVE_LIMIT:
        for source in order:
            reach: dict[int, int] = {source: 0}
            for index in order:
                if index in reach:
                    for succ in successors[index]:
                        reach[succ] = max(reach.get(succ, 0), reach[index] + shortest[index])
            del reach[source]
            reach_from[source] = reach
            # Each chain as one precedence, delayed by the chain's shortest length.
            for target, delay in reach.items():
                if target not in successors[source]:
                    model.add(start[target] >= start[source] + delay)

    makespan = model.new_int_var(0, horizon, "makespan")
    for index in end:
        model.add(makespan >= end[index])
    # The time after the makespan, as if it used every resource in full: cumulative reasoning then
    # bounds the makespan itself, which is what proving optimality needs.
    after_end = model.new_interval_var(makespan, horizon - makespan, horizon, "after_makespan")
    demands: dict[str, list[tuple[int, int]]] = {}
    for activity in problem.activities:
        for task in activity.members:
            demands.setdefault(f"role:{task.role}", []).append((activity.index, 1))
        for resource, amount in problem.demand(activity).items():
            demands.setdefault(resource, []).append((activity.index, amount))
    for resource, pairs in demands.items():
        capacity = (
            problem.lanes[resource[5:]] if resource.startswith("role:") else problem.capacities[resource]
        )
        merged: dict[int, int] = {}
        for index, amount in pairs:
            merged[index] = merged.get(index, 0) + amount
        if sum(merged.values()) > capacity:
            intervals = [interval[i] for i in merged]
            amounts = list(merged.values())
            intervals.append(after_end)
            amounts.append(capacity)
            model.add_cumulative(intervals, amounts, capacity)

    if ENERGY and reach_from:
        # Work that must happen before an activity, after it, or between two activities needs room:
        # capacity x time >= energy (units x shortest length) of that work, on every resource.
        ahead: dict[int, set[int]] = {index: set() for index in order}
        for source, reach in reach_from.items():
            for target in reach:
                ahead[target].add(source)
        for resource, pairs in demands.items():
            capacity = (
                problem.lanes[resource[5:]] if resource.startswith("role:") else problem.capacities[resource]
            )
            energy = {index: 0 for index in order}
            for index, amount in pairs:
                energy[index] += amount * shortest[index]
            if sum(energy.values()) <= capacity:
                continue
            for index in order:
                before = sum(energy[other] for other in ahead[index])
                if before > capacity * head[index]:
                    model.add(capacity * start[index] >= before)
                behind = sum(energy[other] for other in reach_from[index])
                if behind > capacity * (tail[index] - shortest[index]):
                    model.add(capacity * (makespan - end[index]) >= behind)
                for target, delay in reach_from[index].items():
                    between = [other for other in reach_from[index] if other in ahead[target]]
                    work = sum(energy[other] for other in between)
                    if len(between) >= 2 and work > capacity * (delay - shortest[index]):
                        model.add(capacity * (start[target] - end[index]) >= work)

    bound = passes(problem, minutes).critical_path_min
    if exact:
        model.add(makespan >= math.ceil(bound * scale - 1e-6))
    model.minimize(makespan)
    for index, placed in warm.minutes.items():
        model.add_hint(start[index], round(placed.start * scale))

    solver = cp_model.CpSolver()
    limit = DEFAULT_TIME_LIMIT_S if time_limit_s is None else time_limit_s
    solver.parameters.max_time_in_seconds = max(0.0, limit - (time.perf_counter() - began))
    threads = default_workers() if workers is None else workers
    solver.parameters.num_workers = threads
    # One search tree, split between the workers, instead of a portfolio of different searches.
    solver.parameters.shared_tree_num_workers = threads if threads > 1 else 0
    # Clause learning over the constraints' explanations, without the LP relaxation (see the docstring).
    solver.parameters.linearization_level = 0
    solver.parameters.use_new_integer_conflict_resolution = True
    solver.parameters.use_disjunctive_constraint_in_cumulative = False
    # The objective is a makespan: solutions that start every task as early as they may are enough.
    solver.parameters.push_all_tasks_toward_start = True
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _marked(warm, False)

    spans = [(index, solver.value(start[index]) / scale, solver.value(end[index]) / scale) for index in order]
    lanes = assign_lanes(problem, spans)
    placements = {
        index: Placement(
            index,
            at,
            finish,
            lanes[index],
            {
                task.id: solver.value(first_cycle[task.id]) / scale
                for task in problem.activities[index].members
            },
        )
        for index, at, finish in spans
    }
    if not exact:
        placements = retime(problem, placements, minutes)
    found = max(p.end for p in placements.values())
    proven = exact and status == cp_model.OPTIMAL
    if found > warm_makespan + EPS or (not proven and found >= warm_makespan - EPS):
        return _marked(warm, proven and abs(found - warm_makespan) <= EPS)
    return Schedule(
        minutes=placements,
        cycles=retime(problem, placements, cycle_durations(problem.scenario)),
        lanes=role_lanes(problem),
        proven_optimal=proven,
    )


def _marked(schedule: Schedule, proven: bool) -> Schedule:
    return Schedule(schedule.minutes, schedule.cycles, schedule.lanes, schedule.skipped, proven)
