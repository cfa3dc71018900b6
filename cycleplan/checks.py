"""Cross-reference checks of a scenario: what pydantic's field-by-field validation cannot see.

Each problem carries the path of the field it is about in the scenario file (``tasks.3.after.0``), so
that the loader can point at the file's line. Called from :class:`cycleplan.model.Scenario`'s validator;
nothing else should need to call it. Knows the model's shapes, nothing about files or YAML.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cycleplan.model import Scenario, Task

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario: where (a path into the file's structure) and what."""

    path: Path
    message: str


class ScenarioProblems(ValueError):  # noqa: N818 (a ValueError so pydantic reports it)
    """Raised by Scenario's validator; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_dotted(p.path)}: {p.message}" for p in problems))


def _dotted(path: Path) -> str:
    return ".".join(str(part) for part in path) or "(top)"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a candidate is close to ``name``, else an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _known(names: Iterable[str]) -> str:
    listed = sorted(names)
    if not listed:
        return "none are defined"
    shown = ", ".join(listed[:12]) + (", ..." if len(listed) > 12 else "")
    return f"known: {shown}"


def scenario_problems(scenario: Scenario) -> list[Problem]:
    """Every cross-reference problem of ``scenario``, in file order."""
    from cycleplan.templates import TEMPLATES

    problems: list[Problem] = []
    if scenario.template is not None and scenario.template not in TEMPLATES:
        problems.append(
            Problem(
                ("template",),
                f"unknown template '{scenario.template}'{did_you_mean(scenario.template, TEMPLATES)}; "
                f"built-in templates: {', '.join(sorted(TEMPLATES))}",
            )
        )
        return problems
    if scenario.template is None and not scenario.tasks:
        problems.append(Problem(("tasks",), "no tasks: list some under 'tasks', or name a 'template'"))
        return problems

    seen: dict[str, int] = {}
    for index, task in enumerate(scenario.tasks):
        if task.id in seen:
            problems.append(
                Problem(
                    ("tasks", index, "id"),
                    f"duplicate task id '{task.id}' (first used by tasks.{seen[task.id]}); ids must be unique",  # noqa: E501
                )
            )
        else:
            seen[task.id] = index

    tasks = scenario.all_tasks()
    origin = _origins(scenario)
    ids = {task.id for task in tasks}
    template_ids = {task.id for task in tasks if origin[task.id][0] == "template"}

    emitters: dict[str, str] = {}
    for task in tasks:
        for event in task.emits:
            if event in emitters and emitters[event] != task.id:
                problems.append(
                    Problem(
                        (*origin[task.id], "emits", event),
                        f"event '{event}' is already emitted by task '{emitters[event]}'; "
                        "give each emitted event its own name",
                    )
                )
            else:
                emitters.setdefault(event, task.id)

    for task in tasks:
        where = origin[task.id]
        from_template = task.id in template_ids
        if task.role not in scenario.roles and not from_template:
            problems.append(
                Problem(
                    (*where, "role"),
                    f"unknown role '{task.role}'{did_you_mean(task.role, scenario.roles)}; "
                    f"define it under 'roles' ({_known(scenario.roles)})",
                )
            )
        for position, dependency in enumerate(task.after):
            if dependency not in ids:
                problems.append(
                    Problem(
                        (*where, "after", position),
                        f"unknown task '{dependency}'{did_you_mean(dependency, ids)}; {_known(ids)}",
                    )
                )
        for event, cycle in task.waits.items():
            racer = next((t for t in tasks if t.id == emitters.get(event) and t.race is not None), None)
            if racer is not None:
                problems.append(
                    Problem(
                        (*where, "waits", event),
                        f"waits for '{event}', which race member '{racer.id}' emits and may never emit if it "
                        f"loses; depend on the race with 'after: [{racer.id}]' instead",
                    )
                )
            if event not in emitters:
                problems.append(
                    Problem(
                        (*where, "waits", event),
                        f"waits for event '{event}', which no task emits{did_you_mean(event, emitters)}; "
                        "add it to some task's 'emits'",
                    )
                )
            if cycle > task.cycles:
                problems.append(
                    Problem(
                        (*where, "waits", event),
                        f"waits before cycle {cycle}, but the task has only {task.cycles} cycles",
                    )
                )
        for event, cycle in task.emits.items():
            if cycle > task.cycles:
                problems.append(
                    Problem(
                        (*where, "emits", event),
                        f"emits after cycle {cycle}, but the task has only {task.cycles} cycles",
                    )
                )
        for resource, units in task.requires.items():
            if resource not in scenario.resources:
                problems.append(
                    Problem(
                        (*where, "requires", resource),
                        f"unknown resource '{resource}'{did_you_mean(resource, scenario.resources)}; "
                        f"define it under 'resources' ({_known(scenario.resources)})",
                    )
                )
            elif units > scenario.resources[resource].capacity:
                capacity = scenario.resources[resource].capacity
                problems.append(
                    Problem(
                        (*where, "requires", resource),
                        f"needs {units} of '{resource}', which has a capacity of only {capacity}",
                    )
                )
        if task.command is None and task.shell:
            problems.append(Problem((*where, "shell"), "shell: true needs a 'command'"))

    problems.extend(_race_problems(scenario, tasks, origin))
    if not problems:
        problems.extend(_loop_problems(tasks, emitters, origin))
    return problems


def _origins(scenario: Scenario) -> dict[str, Path]:
    """Where each resolved task is written: ``("tasks", i)`` or ``("template",)``."""
    origin: dict[str, Path] = {}
    if scenario.template is not None:
        for task in scenario.all_tasks():
            origin[task.id] = ("template",)
    for index, task in enumerate(scenario.tasks):
        origin.setdefault(task.id, ("tasks", index))
        if origin[task.id] == ("template",):
            origin[task.id] = ("tasks", index)
    return origin


def _race_problems(scenario: Scenario, tasks: list[Task], origin: dict[str, Path]) -> list[Problem]:
    problems: list[Problem] = []
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        if task.race is not None:
            groups.setdefault(task.race, []).append(task)
    for group, members in groups.items():
        first = members[0]
        where = (*origin[first.id], "race")
        if len(members) == 1:
            problems.append(
                Problem(
                    where,
                    f"race group '{group}' has only one member ('{first.id}'); a race needs two or more",
                )
            )
            continue
        names = {member.id for member in members}
        for member in members:
            inside = names.intersection(member.after)
            if inside:
                problems.append(
                    Problem(
                        (*origin[member.id], "after"),
                        f"'{member.id}' depends on '{sorted(inside)[0]}' of its own race group '{group}'; "
                        "race members start together",
                    )
                )
        needed: dict[str, int] = {}
        for member in members:
            needed[member.role] = needed.get(member.role, 0) + 1
        for role, count in needed.items():
            lanes = scenario.role(role).lanes
            if count > lanes:
                problems.append(
                    Problem(
                        where,
                        f"race group '{group}' runs {count} '{role}' tasks at once, but '{role}' has {lanes} "
                        f"lane{'s' if lanes != 1 else ''}",
                    )
                )
        if scenario.max_parallel is not None and len(members) > scenario.max_parallel:
            problems.append(
                Problem(
                    where,
                    f"race group '{group}' runs {len(members)} tasks at once, above max_parallel "
                    f"({scenario.max_parallel})",
                )
            )
        for resource, spec in scenario.resources.items():
            total = sum(member.requires.get(resource, 0) for member in members)
            if total > spec.capacity:
                problems.append(
                    Problem(
                        where,
                        f"race group '{group}' needs {total} of '{resource}' at once, above its capacity "
                        f"({spec.capacity})",
                    )
                )
    return problems


def _loop_problems(tasks: list[Task], emitters: dict[str, str], origin: dict[str, Path]) -> list[Problem]:
    """Dependency loops through ``after`` and through waits on events, each named once: ``a -> b -> a``."""
    edges: dict[str, list[str]] = {task.id: [] for task in tasks}
    for task in tasks:
        edges[task.id].extend(task.after)
        edges[task.id].extend(emitters[event] for event in task.waits)

    problems: list[Problem] = []
    reported: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in edges:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, index = stack[-1]
            if index < len(edges[node]):
                stack[-1] = (node, index + 1)
                nxt = edges[node][index]
                if state.get(nxt) == 1:
                    loop = [*path[path.index(nxt) :], nxt]
                    key = frozenset(loop)
                    if key not in reported:
                        reported.add(key)
                        # Written as "runs before": a -> b means a must finish (or emit) before b.
                        shown = " -> ".join(reversed(loop))
                        problems.append(
                            Problem(
                                (*origin[nxt], "after"), f"dependency loop: {shown}; no task in it can start"
                            )
                        )
                elif nxt not in state:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
                stack.pop()
    return problems
