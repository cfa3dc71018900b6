"""Properties every planning algorithm must keep on random scenarios, checked by the independent checker.

Random scenarios: a random DAG of 1-25 tasks over 1-4 roles of 1-3 lanes, 1-8 cycles each, sync points
(an earlier task emits, a later one waits, so no loop), an optional ``max_parallel``, optional extra
resources, and optional race groups of 2-3 unrelated members.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schedule_checker import check_plan

from cycleplan.model import Plan, Scenario
from cycleplan.planner import ALGORITHMS, RULES, plan

ROLE_NAMES = ["backend", "frontend", "quality", "ops"]
CYCLE_MINUTES = [1.0, 2.0, 2.5, 3.0, 0.7]

try:  # the exact algorithm is an optional extra
    import ortools  # noqa: F401

    HAVE_ORTOOLS = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ORTOOLS = False


def _reachable(edges: dict[int, set[int]], start: int) -> set[int]:
    seen: set[int] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        for nxt in edges[node]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _acyclic(nodes: list[int], edges: dict[int, set[int]]) -> bool:
    remaining = {node: 0 for node in nodes}
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


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    role_count = draw(st.integers(1, 4))
    roles = {
        name: {
            "lanes": draw(st.integers(1, 3)),
            "cycle": {"kind": "fixed", "value_min": draw(st.sampled_from(CYCLE_MINUTES))},
        }
        for name in ROLE_NAMES[:role_count]
    }
    resources: dict[str, dict[str, int]] = {}
    for number in range(draw(st.integers(0, 2))):
        resources[f"r{number}"] = {"capacity": draw(st.integers(1, 4))}
    max_parallel = draw(st.one_of(st.none(), st.integers(1, 5)))

    count = draw(st.integers(1, 25))
    tasks: list[dict[str, Any]] = []
    edges: dict[int, set[int]] = {i: set() for i in range(count)}  # i -> j: j after i, or j waits on i
    for index in range(count):
        task: dict[str, Any] = {
            "id": f"t{index}",
            "role": draw(st.sampled_from(list(roles))),
            "cycles": draw(st.integers(1, 8)),
        }
        if index:
            after = draw(st.lists(st.integers(0, index - 1), max_size=3, unique=True))
            if after:
                task["after"] = [f"t{i}" for i in sorted(after)]
                for i in after:
                    edges[i].add(index)
        if draw(st.booleans()):
            task["duration_multiplier"] = draw(st.sampled_from([0.5, 1.5, 2.0]))
        requires = {
            name: draw(st.integers(1, spec["capacity"]))
            for name, spec in resources.items()
            if draw(st.booleans())
        }
        if requires:
            task["requires"] = requires
        tasks.append(task)

    # Sync points: an earlier task emits after one of its cycles, a later one waits before one of its own.
    for number in range(draw(st.integers(0, min(4, count - 1)))):
        source = draw(st.integers(0, count - 2))
        target = draw(st.integers(source + 1, count - 1))
        event = f"e{number}"
        tasks[source].setdefault("emits", {})[event] = draw(st.integers(1, tasks[source]["cycles"]))
        tasks[target].setdefault("waits", {})[event] = draw(st.integers(1, tasks[target]["cycles"]))
        edges[source].add(target)

    # Race groups among tasks that emit nothing, are unrelated, and keep the merged graph free of loops.
    if count >= 2 and draw(st.integers(0, 3)) > 0:
        free = [i for i in range(count) if not tasks[i].get("emits")]
        groups: list[list[int]] = []
        for number in range(draw(st.integers(1, 2))):
            size = draw(st.integers(2, 3))
            members: list[int] = []
            per_role: dict[str, int] = {}
            for candidate_task in draw(st.permutations(free)):
                role = tasks[candidate_task]["role"]
                unrelated = all(
                    candidate_task not in _reachable(edges, m) and m not in _reachable(edges, candidate_task)
                    for m in members
                )
                if unrelated and per_role.get(role, 0) < roles[role]["lanes"]:
                    members.append(candidate_task)
                    per_role[role] = per_role.get(role, 0) + 1
                    if len(members) == size:
                        break
            if len(members) < 2:
                continue
            if max_parallel is not None:
                members = members[:max_parallel]
            if len(members) < 2:
                continue
            for name, spec in resources.items():
                # Members start together: trim requirements that would not fit side by side.
                needing = [m for m in members if name in tasks[m].get("requires", {})]
                if sum(tasks[m]["requires"][name] for m in needing) > spec["capacity"]:
                    for position, m in enumerate(needing):
                        if position < spec["capacity"]:
                            tasks[m]["requires"][name] = 1
                        else:
                            del tasks[m]["requires"][name]
            candidate = [*groups, members]
            group_of = {m: g for g, ms in enumerate(candidate) for m in ms}
            node = {i: ("g", group_of[i]) if i in group_of else ("t", i) for i in range(count)}
            names = sorted(set(node.values()))
            merged: dict[int, set[int]] = {k: set() for k in range(len(names))}
            position = {name: k for k, name in enumerate(names)}
            for i, outs in edges.items():
                for j in outs:
                    a, b = position[node[i]], position[node[j]]
                    if a != b:
                        merged[a].add(b)
            if not _acyclic(list(merged), merged):
                continue
            groups.append(members)
            free = [i for i in free if i not in members]
            for m in members:
                tasks[m]["race"] = f"race{number}"

    data: dict[str, Any] = {"name": "random", "roles": roles, "resources": resources, "tasks": tasks}
    if max_parallel is not None:
        data["max_parallel"] = max_parallel
    return Scenario.model_validate(data)


def _algorithms() -> list[str]:
    return [name for name in ALGORITHMS if name != "cpsat" or HAVE_ORTOOLS]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario=scenarios(), rule=st.sampled_from(sorted(RULES)))
def test_list_and_sequential_plans_keep_every_rule(scenario: Scenario, rule: str) -> None:
    for algorithm, used_rule in (("list", rule), ("sequential", None)):
        result = plan(scenario, algorithm=algorithm, rule=used_rule)
        check_plan(scenario, result)
        assert Plan.model_validate_json(result.model_dump_json()) == result
        assert plan(scenario, algorithm=algorithm, rule=used_rule) == result


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), seed=st.integers(0, 3))
def test_improve_keeps_every_rule_and_never_loses_to_list(scenario: Scenario, seed: int) -> None:
    result = plan(scenario, algorithm="improve", seed=seed, schedules=60)
    check_plan(scenario, result)
    assert result.makespan_min <= plan(scenario, algorithm="list").makespan_min + 1e-9
    assert Plan.model_validate_json(result.model_dump_json()) == result
    assert plan(scenario, algorithm="improve", seed=seed, schedules=60) == result


@pytest.mark.skipif(not HAVE_ORTOOLS, reason="the exact algorithm needs: pip install cycleplan[optimal]")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_cpsat_keeps_every_rule_and_is_never_worse(scenario: Scenario) -> None:
    result = plan(scenario, algorithm="cpsat", time_limit_s=2.0)
    check_plan(scenario, result)
    assert Plan.model_validate_json(result.model_dump_json()) == result
    reference = plan(scenario, algorithm="list").makespan_min
    assert result.makespan_min <= reference + 1e-6
    if result.proven_optimal:
        assert result.makespan_min <= plan(scenario, algorithm="improve", schedules=60).makespan_min + 1e-6
