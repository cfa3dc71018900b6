"""``improve``: a genetic algorithm over activity lists with forward-backward improvement.

The search of Hartmann's activity-list genetic algorithm, with every child justified (Valls, Ballestín
and Quintanilla's double justification, also called forward-backward improvement):

1. The population starts from the priority rule's own list and lists drawn by regret-based biased random
   sampling on the same rule (an eligible activity is drawn with weight ``(worst - its value + e)``).
2. Each generation pairs the lists at random, crosses them over at two points (the child keeps
   precedence order), swaps some neighbours that do not depend on each other, and schedules the child
   with the serial schedule generation scheme.
3. Justification: the schedule is packed to the right (activities in decreasing finish order, each as
   late as possible) and then to the left again (increasing start order); the child's list becomes the
   order of its improved start times. This repeats while it shortens the schedule.
4. Parents and children compete; the best distinct schedules survive.

Every schedule generated counts against ``schedules``; ``time_limit_s`` caps the wall time as well, and
the search stops early at a schedule as short as the lower bound (nothing can beat it). With the schedule
budget alone the result depends only on the problem and ``seed``. The fast array scheduler
(:mod:`cycleplan.planner.arrays`) serves problems without sync points and races; the others go through
the general :class:`~cycleplan.planner.problem.Timeline`, without justification (a task that waits has
no fixed length to pack backwards). The answer is never worse than the ``list`` algorithm's with the same
rule, which is evaluated first.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cycleplan.planner import list_schedule
from cycleplan.planner.arrays import Compact, compact, to_placements
from cycleplan.planner.build import lower_bounds
from cycleplan.planner.priority import rule_key
from cycleplan.planner.problem import (
    EPS,
    Placement,
    Problem,
    Schedule,
    Timeline,
    cycle_durations,
    nominal_durations,
    role_lanes,
    topological_order,
)
from cycleplan.planner.replay import retime

DEFAULT_SEED = 0
MUTATION = 0.05
"""Chance that each neighbouring pair of a child's list is swapped (when they do not depend on each
other)."""


def default_schedules(activities: int, fast: bool) -> int:
    """A schedule budget that keeps plans of up to 100 tasks well under half a second of CPU time:
    the array scheduler (``fast``) places an activity in microseconds, the Timeline in tens of them."""
    activities = max(1, activities)
    if fast:
        return max(20, min(2_000, 40_000 // activities))
    return max(5, min(400, 4_000 // activities))


@dataclass
class _Budget:
    schedules: int
    deadline: float | None
    lower_bound: float
    """No schedule is shorter: reaching it ends the search."""
    used: int = 0
    best: float = math.inf

    def spend(self, makespan: float) -> None:
        self.used += 1
        self.best = min(self.best, makespan)

    @property
    def left(self) -> bool:
        if self.used >= self.schedules or self.best <= self.lower_bound + EPS:
            return False
        return self.deadline is None or time.perf_counter() < self.deadline


@dataclass(frozen=True)
class _Individual:
    order: tuple[int, ...]
    makespan: float
    starts: tuple[float, ...]
    placed: tuple[int, ...]
    """The list that, placed forwards, gives ``starts`` (``order`` is the starts' order, for the search)."""


class _Search:
    """What the genetic algorithm needs from a scheduler: evaluate a list, and precedence links."""

    predecessors: list[list[int]]

    def evaluate(self, order: Sequence[int], budget: _Budget) -> _Individual:
        raise NotImplementedError


class _ArraySearch(_Search):
    def __init__(self, arrays: Compact) -> None:
        self.arrays = arrays
        self.predecessors = arrays.predecessors

    def evaluate(self, order: Sequence[int], budget: _Budget) -> _Individual:
        arrays = self.arrays
        duration = arrays.duration
        starts, makespan, _ = arrays.serial(order)
        placed = order
        budget.spend(makespan)
        while budget.left:
            # Pack right: latest finish first, each as late as it may be (in reversed time).
            backward = sorted(range(arrays.size), key=lambda j: (-(starts[j] + duration[j]), -j))
            reversed_starts, span, _ = arrays.serial(backward, backward=True)
            budget.spend(span)
            # Pack left again: earliest start (of the right-packed schedule) first.
            forward = sorted(range(arrays.size), key=lambda j: (span - reversed_starts[j] - duration[j], j))
            new_starts, new_makespan, _ = arrays.serial(forward)
            budget.spend(new_makespan)
            if new_makespan >= makespan - EPS:
                if new_makespan <= makespan + EPS:
                    starts, placed = new_starts, forward
                break
            starts, makespan, placed = new_starts, new_makespan, forward
        order = tuple(sorted(range(arrays.size), key=lambda j: (starts[j], j)))
        return _Individual(order, makespan, tuple(starts), tuple(placed))


class _TimelineSearch(_Search):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.durations = nominal_durations(problem.scenario)
        self.predecessors = [list(activity.predecessors) for activity in problem.activities]

    def evaluate(self, order: Sequence[int], budget: _Budget) -> _Individual:
        timeline = self.placed(order)
        makespan = max(p.end for p in timeline.values())
        budget.spend(makespan)
        starts = tuple(timeline[index].start for index in range(len(order)))
        return _Individual(tuple(order), makespan, starts, tuple(order))

    def placed(self, order: Sequence[int]) -> dict[int, Placement]:
        timeline = Timeline(self.problem, self.durations)
        for index in order:
            timeline.place(self.problem.activities[index])
        return timeline.placed


def _sample(
    predecessors: list[list[int]], value: list[float], spread: float, rng: random.Random
) -> tuple[int, ...]:
    """An activity list by regret-based biased random sampling: lower ``value`` is more likely first."""
    count = len(predecessors)
    successors: list[list[int]] = [[] for _ in range(count)]
    remaining = [len(preds) for preds in predecessors]
    for index, preds in enumerate(predecessors):
        for pred in preds:
            successors[pred].append(index)
    eligible = [index for index in range(count) if remaining[index] == 0]
    order: list[int] = []
    while eligible:
        worst = max(value[index] for index in eligible)
        weights = [worst - value[index] + spread for index in eligible]
        pick = rng.random() * sum(weights)
        position = len(eligible) - 1
        for number, weight in enumerate(weights):
            pick -= weight
            if pick < 0:
                position = number
                break
        chosen = eligible.pop(position)
        order.append(chosen)
        for succ in successors[chosen]:
            remaining[succ] -= 1
            if remaining[succ] == 0:
                eligible.append(succ)
    return tuple(order)


def _crossover(mother: Sequence[int], father: Sequence[int], rng: random.Random) -> list[int]:
    """Two-point crossover: the mother's head, the father's middle, the mother's tail, each part in its
    parent's order among the activities not yet taken (so precedence order is kept)."""
    size = len(mother)
    first, second = sorted((rng.randrange(size + 1), rng.randrange(size + 1)))
    child = list(mother[:first])
    taken = set(child)
    for source, stop in ((father, second), (mother, size)):
        for index in source:
            if len(child) >= stop:
                break
            if index not in taken:
                child.append(index)
                taken.add(index)
    return child


def _mutate(order: list[int], direct: set[tuple[int, int]], rng: random.Random) -> None:
    for position in range(len(order) - 1):
        if rng.random() < MUTATION and (order[position], order[position + 1]) not in direct:
            order[position], order[position + 1] = order[position + 1], order[position]


def _genetic(
    search: _Search,
    first: tuple[int, ...],
    value: list[float],
    spread: float,
    budget: _Budget,
    rng: random.Random,
) -> _Individual:
    predecessors = search.predecessors
    direct = {(pred, index) for index, preds in enumerate(predecessors) for pred in preds}
    population_size = max(8, min(50, budget.schedules // 60))
    best = search.evaluate(first, budget)
    population = [best]
    seen = {best.starts}
    attempts = 0
    while len(population) < population_size and budget.left and attempts < 4 * population_size:
        attempts += 1
        candidate = search.evaluate(_sample(predecessors, value, spread, rng), budget)
        if candidate.starts not in seen:
            seen.add(candidate.starts)
            population.append(candidate)
        if candidate.makespan < best.makespan - EPS:
            best = candidate
    if len(population) < 2:
        return best
    while budget.left:
        rng.shuffle(population)
        children: list[_Individual] = []
        for mother, father in zip(population[0::2], population[1::2], strict=False):
            for one, other in ((mother, father), (father, mother)):
                if not budget.left:
                    break
                child_order = _crossover(one.order, other.order, rng)
                _mutate(child_order, direct, rng)
                child = search.evaluate(child_order, budget)
                if child.makespan < best.makespan - EPS:
                    best = child
                if child.starts not in seen:
                    seen.add(child.starts)
                    children.append(child)
        pool = sorted(population + children, key=lambda ind: (ind.makespan, ind.order))
        population = pool[:population_size]
        if len(population) < 2:
            break
    return best


def schedule(
    problem: Problem,
    rule: str | None = None,
    *,
    schedules: int | None = None,
    time_limit_s: float | None = None,
    seed: int = DEFAULT_SEED,
) -> Schedule:
    """Search activity lists for a short schedule within ``schedules`` generated schedules (default:
    :func:`default_schedules`) and ``time_limit_s`` seconds of wall time (default: no limit), drawing
    from a generator seeded with ``seed``."""
    durations = nominal_durations(problem.scenario)
    reference = list_schedule.schedule(problem, rule)
    if not problem.activities:
        return reference
    reference_makespan = max(p.end for p in reference.minutes.values())
    lower_bound = max(lower_bounds(problem, durations).values(), default=0.0)
    if reference_makespan <= lower_bound + EPS:
        return reference
    arrays = compact(problem, durations)
    budget = _Budget(
        schedules
        if schedules is not None
        else default_schedules(len(problem.activities), arrays is not None),
        None if time_limit_s is None else time.perf_counter() + time_limit_s,
        lower_bound,
    )
    key: Callable[..., tuple[float, ...]] = rule_key(problem, durations, rule or list_schedule.DEFAULT_RULE)
    first = tuple(activity.index for activity in topological_order(problem, key))
    value = [key(activity)[0] for activity in problem.activities]
    # The weight every eligible activity gets on top of its regret: about one step of the rule's scale.
    spread = (max(value) - min(value)) / len(value) or 1.0
    rng = random.Random(seed)

    search: _Search = _ArraySearch(arrays) if arrays is not None else _TimelineSearch(problem)
    best = _genetic(search, first, value, spread, budget, rng)

    if best.makespan >= reference_makespan - EPS:
        return reference
    if arrays is not None:
        minutes = to_placements(problem, arrays, best.placed)
    else:
        assert isinstance(search, _TimelineSearch)
        minutes = search.placed(best.order)
    return Schedule(
        minutes=minutes,
        cycles=retime(problem, minutes, cycle_durations(problem.scenario)),
        lanes=role_lanes(problem),
    )
