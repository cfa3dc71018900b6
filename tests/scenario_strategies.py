"""The random scenarios every property test draws from (hypothesis), one generator with switches.

A scenario is a random graph of tasks over 1-``max_roles`` roles of 1-3 lanes: ``after`` dependencies on
earlier tasks, sync points (an earlier task emits after one of its cycles, a later one waits before one
of its own, so no loop), shared resources with random demands, an optional ``max_parallel``, race groups
of 2-3 unrelated earlier tasks (kept only when merging them leaves the graph free of loops, and trimmed
so that the members fit side by side), subagents spawned at a parent's cycle, agent loops, failures,
sync costs, context and caching, and the organisation's rate limits. Each switch turns one feature off,
for the parts that do not model it (the planner sees no stochastic model) or for comparisons that
need it off (the executor against the simulator runs without failures).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from cycleplan.core.model import Scenario

ROLE_NAMES = ("backend", "frontend", "quality", "ops")
FIXED_MINUTES = (1.0, 2.0, 2.5, 3.0, 0.7)
CYCLES = (
    {"median_min": 2, "p90_min": 4},
    {"kind": "exponential", "mean_min": 2},
    {"kind": "gamma", "mean_min": 2, "cv": 0.8},
    {"kind": "empirical", "samples_min": [0.5, 1.5, 4]},
)
LOOPS = (
    {"median": 1, "p90": 3},
    {"median": 8, "p90": 20},
    {"median": 40, "p90": 90},
)


def reachable(edges: dict[int, set[int]], start: int) -> set[int]:
    """The nodes reachable from ``start`` (not ``start`` itself unless on a loop)."""
    seen: set[int] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        for nxt in edges[node]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def acyclic(nodes: list[int], edges: dict[int, set[int]]) -> bool:
    remaining = dict.fromkeys(nodes, 0)
    for node in nodes:
        for nxt in edges[node]:
            remaining[nxt] += 1
    ready = [node for node in nodes if remaining[node] == 0]
    count = 0
    while ready:
        node = ready.pop()
        count += 1
        for nxt in edges[node]:
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                ready.append(nxt)
    return count == len(nodes)


def _role(draw: st.DrawFn, *, stochastic: bool, failures: bool, costs: bool, loops: bool) -> dict[str, Any]:
    role: dict[str, Any] = {"lanes": draw(st.integers(1, 3))}
    if stochastic and draw(st.integers(0, 4)) > 0:
        role["cycle"] = draw(st.sampled_from(CYCLES))
    else:
        role["cycle"] = {"kind": "fixed", "value_min": draw(st.sampled_from(FIXED_MINUTES))}
    role["failure"] = {"probability_per_cycle": 0.0}
    if failures:
        role["failure"] = {
            "probability_per_cycle": draw(st.sampled_from([0.0, 0.0, 0.1, 0.4])),
            "max_retries": draw(st.integers(0, 3)),
            "cancel_parallel": draw(st.booleans()),
        }
    if costs:
        role["sync"] = {
            "minutes": draw(st.sampled_from([0, 0.5])),
            "handoff_tokens": draw(st.sampled_from([0, 300, 700])),
        }
        role["tokens"] = {"context_tokens": draw(st.sampled_from([0, 5000])), "cache": draw(st.booleans())}
    if loops and draw(st.integers(0, 2)) == 0:
        role["calls"] = {
            "per_cycle": draw(st.sampled_from(LOOPS)),
            "growth": {"median": 900, "p90": 4000},
            "output": {"median": 150, "p90": 600},
            "minutes": draw(st.sampled_from([None, {"median_min": 0.1, "p90_min": 0.3}])),
            "compaction": draw(
                st.sampled_from([None, {"threshold_tokens": 30_000, "summary_tokens": 4_000, "minutes": 0.5}])
            ),
        }
    return role


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    max_tasks: int = 8,
    max_roles: int = 3,
    stochastic: bool = True,
    failures: bool = True,
    costs: bool = True,
    loops: bool = True,
    syncs: bool = True,
    resources: bool = True,
    max_parallel: bool = True,
    races: bool = True,
    subagents: bool = True,
    multipliers: bool = True,
    rate_limits: bool = False,
) -> Scenario:
    """A random scenario with the features switched on (see the module docstring)."""
    roles = {
        name: _role(draw, stochastic=stochastic, failures=failures, costs=costs, loops=loops)
        for name in ROLE_NAMES[: draw(st.integers(1, max_roles))]
    }
    capacities: dict[str, dict[str, int]] = {}
    if resources:
        for number in range(draw(st.integers(0, 2))):
            capacities[f"r{number}"] = {"capacity": draw(st.integers(1, 4))}
    cap = draw(st.one_of(st.none(), st.integers(1, 5))) if max_parallel else None

    count = draw(st.integers(1, max_tasks))
    tasks: list[dict[str, Any]] = []
    edges: dict[int, set[int]] = {i: set() for i in range(count)}  # i -> j: j after i, or j waits on i
    for index in range(count):
        task: dict[str, Any] = {
            "id": f"t{index}",
            "role": draw(st.sampled_from(sorted(roles))),
            "cycles": draw(st.integers(1, 6)),
        }
        if index:
            after = draw(st.lists(st.integers(0, index - 1), max_size=3, unique=True))
            if after:
                task["after"] = [f"t{i}" for i in sorted(after)]
                for i in after:
                    edges[i].add(index)
        if multipliers and draw(st.integers(0, 3)) == 0:
            task["duration_multiplier"] = draw(st.sampled_from([0.5, 1.5, 2.0]))
        requires = {
            name: draw(st.integers(1, spec["capacity"]))
            for name, spec in capacities.items()
            if draw(st.booleans())
        }
        if requires:
            task["requires"] = requires
        tasks.append(task)

    if syncs:
        for number in range(draw(st.integers(0, min(4, count - 1)))):
            source = draw(st.integers(0, count - 2))
            target = draw(st.integers(source + 1, count - 1))
            event = f"e{number}"
            tasks[source].setdefault("emits", {})[event] = draw(st.integers(1, tasks[source]["cycles"]))
            tasks[target].setdefault("waits", {})[event] = draw(st.integers(1, tasks[target]["cycles"]))
            edges[source].add(target)

    if races and count >= 2 and draw(st.integers(0, 3)) > 0:
        _races(draw, roles, capacities, cap, tasks, edges)

    if subagents:
        for parent in [task for task in tasks if "race" not in task]:
            # Fork-join at the start of one of the parent's cycles.
            for number in range(draw(st.integers(1, 2)) if draw(st.integers(0, 3)) == 0 else 0):
                tasks.append(
                    {
                        "id": f"{parent['id']}.sub{number}",
                        "role": draw(st.sampled_from(sorted(roles))),
                        "cycles": draw(st.integers(1, 2)),
                        "spawned_by": {"task": parent["id"], "cycle": draw(st.integers(1, parent["cycles"]))},
                    }
                )

    data: dict[str, Any] = {"name": "random", "roles": roles, "resources": capacities, "tasks": tasks}
    if cap is not None:
        data["max_parallel"] = cap
    if rate_limits:
        data["rate_limits"] = draw(
            st.sampled_from([None, {"input_tokens_per_min": 9_000, "requests_per_min": 1.5}])
        )
    return Scenario.model_validate(data)


def _races(
    draw: st.DrawFn,
    roles: dict[str, Any],
    capacities: dict[str, dict[str, int]],
    cap: int | None,
    tasks: list[dict[str, Any]],
    edges: dict[int, set[int]],
) -> None:
    """Group unrelated tasks that emit nothing into races that fit side by side and close no loop."""
    count = len(tasks)
    free = [i for i in range(count) if not tasks[i].get("emits")]
    groups: list[list[int]] = []
    for number in range(draw(st.integers(1, 2))):
        size = draw(st.integers(2, 3))
        members: list[int] = []
        per_role: dict[str, int] = {}
        for candidate in draw(st.permutations(free)):
            role = tasks[candidate]["role"]
            unrelated = all(
                candidate not in reachable(edges, m) and m not in reachable(edges, candidate) for m in members
            )
            if unrelated and per_role.get(role, 0) < roles[role]["lanes"]:
                members.append(candidate)
                per_role[role] = per_role.get(role, 0) + 1
                if len(members) == size:
                    break
        if cap is not None:
            members = members[:cap]
        if len(members) < 2:
            continue
        for name, spec in capacities.items():
            # Members start together: trim requirements that would not fit side by side.
            needing = [m for m in members if name in tasks[m].get("requires", {})]
            if sum(tasks[m]["requires"][name] for m in needing) > spec["capacity"]:
                for position, m in enumerate(needing):
                    if position < spec["capacity"]:
                        tasks[m]["requires"][name] = 1
                    else:
                        del tasks[m]["requires"][name]
        candidate_groups = [*groups, members]
        group_of = {m: g for g, ms in enumerate(candidate_groups) for m in ms}
        node = {i: ("g", group_of[i]) if i in group_of else ("t", i) for i in range(count)}
        names = sorted(set(node.values()))
        merged: dict[int, set[int]] = {k: set() for k in range(len(names))}
        position = {name: k for k, name in enumerate(names)}
        for i, outs in edges.items():
            for j in outs:
                a, b = position[node[i]], position[node[j]]
                if a != b:
                    merged[a].add(b)
        if not acyclic(list(merged), merged):
            continue
        groups.append(members)
        free = [i for i in free if i not in members]
        for m in members:
            tasks[m]["race"] = f"race{number}"
