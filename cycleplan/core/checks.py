"""Cross-reference checks of a scenario and of a plan: what pydantic's field-by-field validation cannot
see.

Each problem carries the path of the field it is about in the file (``tasks.3.after.0`` in a scenario,
``lanes.2.tasks.0.task`` in a plan), so that the loader can point at the file's line. Called from the
validators of :class:`cycleplan.core.model.Scenario` and :class:`cycleplan.core.model.Plan`, so that a plan
the simulator would refuse is refused wherever it is read (``simulate``, ``execute``, a resumed run). The
loader calls the scenario checks once more on the parts of a file that did validate when others did not
(:class:`Unvalidated` names the others), so that one run reports every problem of a file; a check that
rests on a field that failed is skipped. Knows the model's shapes, nothing about files or YAML.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cycleplan.core.wording import counted

if TYPE_CHECKING:
    from cycleplan.core.model import Plan, Scenario, Task

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


class Unvalidated:
    """The fields of a scenario file that failed validation (or were refused as they were read).

    The loader builds a scenario from the rest, with each failed field at its default, and the checks
    skip every problem that would rest on a failed field: an unknown task is not named while some task's
    id failed, nor a wait beyond a task's cycles while its ``cycles`` did. Each question costs the length
    of its path, however many fields failed.
    """

    def __init__(self, paths: Iterable[Path] = ()) -> None:
        self.paths = frozenset(paths)
        """Where each failed field is written; a path ending in :data:`NAME` says that a mapping's key
        failed (``roles.back/end.[key]``), not its value."""
        self._around = {failed[:end] for failed in self.paths for end in range(len(failed) + 1)}
        self._misnamed = {failed[:-2] for failed in self.paths if len(failed) >= 2 and failed[-1] == NAME}

    def intact(self, *path: str | int) -> bool:
        """Whether the value at ``path`` validated whole: nothing at it, around it or inside it failed."""
        return self.present(*path) and path not in self._around

    def present(self, *path: str | int) -> bool:
        """Whether the collection at ``path`` validated as one: a mapping or list of the right size,
        every entry there, though an entry (or something in it) may have failed."""
        return not any(path[:end] in self.paths for end in range(len(path) + 1))

    def named(self, *path: str | int) -> bool:
        """Whether the mapping at ``path`` validated as one with every name (key) in it valid, though
        something inside an entry may have failed: what it names is all known."""
        return self.present(*path) and path not in self._misnamed


NAME = "[key]"
"""The last part of a failed path when a mapping's key failed (pydantic's own marker)."""

VALIDATED = Unvalidated()
"""Nothing failed: every check runs (a Scenario that exists)."""


def _dotted(path: Path) -> str:
    return ".".join(str(part) for part in path) or "(top)"


def closest_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` when one is close enough to be a likely misspelling."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a candidate is close to ``name``, else an empty string."""
    close = closest_name(name, candidates)
    return f" (did you mean '{close}'?)" if close else ""


def _known(names: Iterable[str]) -> str:
    listed = sorted(names)
    if not listed:
        return "none are defined"
    shown = ", ".join(listed[:12]) + (", ..." if len(listed) > 12 else "")
    return f"known: {shown}"


def plan_problems(plan: Plan) -> list[Problem]:
    """Every way ``plan`` is not a placement of its own scenario: each task on exactly one lane, with the
    task's role and cycles; lanes named once each."""
    tasks = {task.id: task for task in plan.scenario.all_tasks()}
    problems: list[Problem] = []
    placed: dict[str, Path] = {}
    lanes: dict[str, int] = {}
    for index, lane in enumerate(plan.lanes):
        if lane.lane in lanes:
            problems.append(
                Problem(("lanes", index, "lane"), f"lane '{lane.lane}' is also lanes.{lanes[lane.lane]}")
            )
        lanes.setdefault(lane.lane, index)
        for row, planned in enumerate(lane.tasks):
            path: Path = ("lanes", index, "tasks", row)
            task = tasks.get(planned.task)
            if task is None:
                problems.append(
                    Problem(
                        (*path, "task"),
                        f"'{planned.task}' is no task of the plan's scenario"
                        f"{did_you_mean(planned.task, tasks)}; {_known(tasks)}",
                    )
                )
                continue
            if planned.task in placed:
                problems.append(
                    Problem(
                        (*path, "task"),
                        f"'{planned.task}' is already placed at {_dotted(placed[planned.task])}",
                    )
                )
                continue
            placed[planned.task] = path
            if planned.role != task.role:
                problems.append(
                    Problem(
                        (*path, "role"),
                        f"'{planned.task}' is a task of role '{task.role}', not '{planned.role}'",
                    )
                )
            if planned.cycles != task.cycles:
                problems.append(
                    Problem(
                        (*path, "cycles"),
                        f"'{planned.task}' has {counted(task.cycles, 'cycle')} in the scenario, "
                        f"not {planned.cycles}",
                    )
                )
    unplaced = [name for name in tasks if name not in placed]
    if unplaced:
        shown = ", ".join(unplaced[:12]) + (", ..." if len(unplaced) > 12 else "")
        problems.append(
            Problem(
                ("lanes",),
                f"task(s) {shown} are on no lane; a plan places every task of its scenario: plan the "
                "scenario again with 'cycleplan plan FILE -o plan.json'",
            )
        )
    return problems


def scenario_problems(scenario: Scenario, unvalidated: Unvalidated = VALIDATED) -> list[Problem]:
    """Every cross-reference problem of ``scenario``, in file order; with ``unvalidated``, those that do
    not rest on a field that failed validation."""
    from cycleplan.core.templates import TEMPLATES

    ok = unvalidated.intact
    problems: list[Problem] = []
    if not ok("template") or not unvalidated.present("tasks"):
        return problems  # which tasks there are is not known
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
                    f"duplicate task id '{task.id}' (first used by tasks.{seen[task.id]}); "
                    "ids must be unique: rename one",
                )
            )
        else:
            seen[task.id] = index

    tasks = scenario.all_tasks()
    origin = _origins(scenario)
    ids = {task.id for task in tasks}
    listed = range(len(scenario.tasks))
    # Names a reference may be checked against only when none of them failed.
    ids_known = all(ok("tasks", index, "id") for index in listed)
    emitters_known = all(ok("tasks", index, "emits") for index in listed)
    template_ids = {task.id for task in tasks if origin[task.id][0] == "template"}
    # Roles a template uses need no entry under 'roles' (they get the default role), so listed tasks
    # may use them too.
    known_roles = set(scenario.roles)
    if scenario.template is not None:
        known_roles.update(task.role for task in scenario.all_tasks() if task.id in template_ids)

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

    racing: dict[str, Task] = {}
    for task in tasks:
        if task.race is not None:
            racing.setdefault(task.id, task)

    for task in tasks:
        where = origin[task.id]
        from_template = task.id in template_ids
        if (
            task.role not in known_roles
            and not from_template
            and ok(*where, "role")
            and unvalidated.named("roles")
        ):
            problems.append(
                Problem(
                    (*where, "role"),
                    f"unknown role '{task.role}'{did_you_mean(task.role, known_roles)}; "
                    f"define it under 'roles' ({_known(known_roles)})",
                )
            )
        for position, dependency in enumerate(task.after):
            if dependency == task.id:
                problems.append(
                    Problem(
                        (*where, "after", position),
                        f"dependency loop: {task.id} -> {task.id}; a task cannot come after itself: "
                        f"remove '{task.id}' from its 'after'",
                    )
                )
            elif dependency not in ids and ids_known:
                problems.append(
                    Problem(
                        (*where, "after", position),
                        f"unknown task '{dependency}'{did_you_mean(dependency, ids)}; 'after' lists ids "
                        f"of tasks that must finish first ({_known(ids)})",
                    )
                )
        for event, cycle in task.waits.items():
            racer = racing.get(emitters.get(event, ""))
            if emitters.get(event) == task.id and ok(*where, "id"):
                problems.append(
                    Problem(
                        (*where, "waits", event),
                        f"dependency loop: {task.id} -> {task.id}; it waits for '{event}', which it emits "
                        "itself: a task cannot wait for its own event, remove the wait",
                    )
                )
            elif racer is not None:
                problems.append(
                    Problem(
                        (*where, "waits", event),
                        f"waits for '{event}', which race member '{racer.id}' emits and may never emit if it "
                        f"loses; depend on the race with 'after: [{racer.id}]' instead",
                    )
                )
            if event not in emitters and emitters_known:
                problems.append(
                    Problem(
                        (*where, "waits", event),
                        f"waits for event '{event}', which no task emits{did_you_mean(event, emitters)}; "
                        "add it to some task's 'emits'",
                    )
                )
            if cycle > task.cycles and ok(*where, "cycles"):
                problems.append(
                    Problem(
                        (*where, "waits", event),
                        f"waits before cycle {cycle}, but the task has only {counted(task.cycles, 'cycle')}; "
                        f"use a cycle from 1 to {task.cycles}",
                    )
                )
        for event, cycle in task.emits.items():
            if cycle > task.cycles and ok(*where, "cycles"):
                problems.append(
                    Problem(
                        (*where, "emits", event),
                        f"emits after cycle {cycle}, but the task has only {counted(task.cycles, 'cycle')}; "
                        f"use a cycle from 1 to {task.cycles}",
                    )
                )
        for cycle in task.cycle_models:
            if cycle > task.cycles and ok(*where, "cycles"):
                problems.append(
                    Problem(
                        (*where, "cycle_models", cycle),
                        f"names cycle {cycle}, but the task has only {counted(task.cycles, 'cycle')}; "
                        f"use a cycle from 1 to {task.cycles}",
                    )
                )
        for resource, units in task.requires.items():
            if resource not in scenario.resources:
                if not unvalidated.named("resources"):
                    continue
                problems.append(
                    Problem(
                        (*where, "requires", resource),
                        f"unknown resource '{resource}'{did_you_mean(resource, scenario.resources)}; "
                        f"define it under 'resources' ({_known(scenario.resources)})",
                    )
                )
            elif units > scenario.resources[resource].capacity and ok("resources", resource, "capacity"):
                capacity = scenario.resources[resource].capacity
                problems.append(
                    Problem(
                        (*where, "requires", resource),
                        f"needs {units} of '{resource}', which has a capacity of only {capacity}; "
                        "it could never start: lower the units or raise the capacity",
                    )
                )
        if task.command is None and task.shell and ok(*where, "command"):
            problems.append(
                Problem(
                    (*where, "shell"),
                    "shell: true needs a 'command' to run in the shell; add one or remove 'shell'",
                )
            )

    problems.extend(_race_problems(scenario, tasks, origin, unvalidated))
    problems.extend(_spawn_problems(tasks, origin, unvalidated, ids_known))
    if len(seen) == len(scenario.tasks):
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


def _race_problems(
    scenario: Scenario, tasks: list[Task], origin: dict[str, Path], unvalidated: Unvalidated
) -> list[Problem]:
    ok = unvalidated.intact
    # A group's members are all known only when no task's race failed.
    members_known = all(ok("tasks", index, "race") for index in range(len(scenario.tasks)))
    problems: list[Problem] = []
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        if task.race is not None:
            groups.setdefault(task.race, []).append(task)
    for group, members in groups.items():
        first = members[0]
        where = (*origin[first.id], "race")
        if len(members) == 1:
            if not members_known:
                continue
            problems.append(
                Problem(
                    where,
                    f"race group '{group}' has only one member ('{first.id}'); a race needs two or more: "
                    f"give another task 'race: {group}', or remove 'race'",
                )
            )
            continue
        names = {member.id for member in members}
        for member in members:
            for position, dependency in enumerate(member.after):
                if dependency in names and dependency != member.id:
                    problems.append(
                        Problem(
                            (*origin[member.id], "after", position),
                            f"'{member.id}' comes after '{dependency}' of its own race group '{group}', but "
                            "race members start together: remove the dependency or leave the race",
                        )
                    )
        needed: dict[str, int] = {}
        for member in members:
            needed[member.role] = needed.get(member.role, 0) + 1
        roles_known = all(ok(*origin[member.id], "role") for member in members)
        for role, count in needed.items():
            lanes = scenario.role(role).lanes
            if count > lanes and roles_known and ok("roles", role, "lanes"):
                problems.append(
                    Problem(
                        where,
                        f"race group '{group}' runs {count} '{role}' tasks at once, but '{role}' has {lanes} "
                        f"lane{'s' if lanes != 1 else ''}; race members start together: give '{role}' "
                        f"{count} lanes",
                    )
                )
        if scenario.max_parallel is not None and len(members) > scenario.max_parallel:
            problems.append(
                Problem(
                    where,
                    f"race group '{group}' runs {len(members)} tasks at once, above max_parallel "
                    f"({scenario.max_parallel}); raise max_parallel or shrink the race",
                )
            )
        for resource, spec in scenario.resources.items():
            total = sum(member.requires.get(resource, 0) for member in members)
            if total > spec.capacity and ok("resources", resource, "capacity"):
                problems.append(
                    Problem(
                        where,
                        f"race group '{group}' needs {total} of '{resource}' at once, above its capacity "
                        f"({spec.capacity}); race members start together: raise the capacity",
                    )
                )
    return problems


def _spawn_problems(
    tasks: list[Task], origin: dict[str, Path], unvalidated: Unvalidated, ids_known: bool
) -> list[Problem]:
    """Subagents (``spawned_by``) name a parent that exists and reaches the cycle, and take no part in
    what the scheduler orders: dependencies, events, races, shared resources, further subagents."""
    problems: list[Problem] = []
    by_id = {task.id: task for task in tasks}
    parent_of = {task.id: task.spawned_by.task for task in tasks if task.spawned_by is not None}
    for task in tasks:
        where = origin[task.id]
        for position, dependency in enumerate(task.after):
            if dependency in parent_of:
                problems.append(
                    Problem(
                        (*where, "after", position),
                        f"'{dependency}' is a subagent: it returns to the task that spawned it, and nothing "
                        f"else can come after it; depend on '{parent_of[dependency]}' instead",
                    )
                )
        spawn = task.spawned_by
        if spawn is None:
            continue
        at = (*where, "spawned_by")
        parent = by_id.get(spawn.task)
        if spawn.task == task.id:
            problems.append(Problem((*at, "task"), "a task cannot spawn itself: name its parent task"))
        elif parent is None:
            if ids_known:
                problems.append(
                    Problem(
                        (*at, "task"),
                        f"unknown task '{spawn.task}'{did_you_mean(spawn.task, by_id)}; 'spawned_by.task' "
                        f"names the task whose cycle spawns this subagent ({_known(by_id)})",
                    )
                )
        else:
            if spawn.cycle > parent.cycles and unvalidated.intact(*origin[parent.id], "cycles"):
                problems.append(
                    Problem(
                        (*at, "cycle"),
                        f"spawned at cycle {spawn.cycle} of '{parent.id}', which has only {parent.cycles} "
                        f"cycles; use a cycle from 1 to {parent.cycles}",
                    )
                )
            if parent.spawned_by is not None:
                problems.append(
                    Problem(
                        (*at, "task"),
                        f"'{parent.id}' is a subagent itself, and subagents spawn no subagents; name a task "
                        "that is not spawned",
                    )
                )
            if parent.race is not None:
                problems.append(
                    Problem(
                        (*at, "task"),
                        f"'{parent.id}' runs in race group '{parent.race}', which may cancel it at any "
                        "moment; subagents are spawned only by tasks outside races",
                    )
                )
        for name in ("after", "waits", "emits", "requires"):
            if getattr(task, name):
                problems.append(
                    Problem(
                        (*where, name),
                        f"a subagent (spawned_by '{spawn.task}') starts when its parent spawns it and "
                        f"returns to it; it takes no '{name}': remove it",
                    )
                )
        if task.race is not None:
            problems.append(
                Problem(
                    (*where, "race"),
                    f"a subagent (spawned_by '{spawn.task}') runs in no race group: remove 'race'",
                )
            )
    return problems


def _loop_problems(tasks: list[Task], emitters: dict[str, str], origin: dict[str, Path]) -> list[Problem]:
    """Dependency loops through ``after`` and through waits on events, each named once: ``a -> b -> a``.

    A race group's members start together, so the group is one node: a loop that passes through any of
    its members passes through the whole group. References to unknown tasks or events and a task's
    dependencies on itself are reported elsewhere and ignored here.
    """
    unit = {task.id: task.id if task.race is None else f"race '{task.race}'" for task in tasks}
    edges: dict[str, list[tuple[str, Path]]] = {name: [] for name in unit.values()}
    for task in tasks:
        here = unit[task.id]
        for position, dependency in enumerate(task.after):
            if dependency in unit and unit[dependency] != here:
                edges[here].append((unit[dependency], (*origin[task.id], "after", position)))
        for event in task.waits:
            emitter = emitters.get(event)
            if emitter in unit and unit[emitter] != here:
                edges[here].append((unit[emitter], (*origin[task.id], "waits", event)))

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
                nxt, where = edges[node][index]
                if state.get(nxt) == 1:
                    loop = [*path[path.index(nxt) :], nxt]
                    key = frozenset(loop)
                    if key not in reported:
                        reported.add(key)
                        # Written as "runs before": a -> b means a must finish (or emit) before b.
                        shown = " -> ".join(reversed(loop))
                        race = (
                            "; race members start together"
                            if any(n.startswith("race ") for n in loop)
                            else ""
                        )
                        problems.append(
                            Problem(
                                where,
                                f"dependency loop: {shown}{race}; no task in it can start: "
                                "remove one of these dependencies",
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


def model_problems(scenario: Scenario, unvalidated: Unvalidated = VALIDATED) -> list[Problem]:
    """Models no price is known for (a misspelt name bills $0 and cannot be simulated): each role's
    model, each of its ``models`` (which must not list one model twice) and each task's ``cycle_models``,
    unless the scenario's ``prices:`` names it. With
    ``unvalidated``, none while the prices failed (the one a model needs may be among them)."""
    from cycleplan.core.prices import PRICE_TABLE, PRICES_AS_OF, model_base, resolve

    if not unvalidated.intact("prices"):
        return []

    def unknown(model: str) -> str:
        return (
            f"unknown model '{model}'{did_you_mean(model, PRICE_TABLE)}: no price is known for it (table as "
            f"of {PRICES_AS_OF}); fix the name, or give its price under 'prices:', e.g. "
            f"prices: {{{model}: {{input_per_mtok: 3, output_per_mtok: 15}}}}"
        )

    problems: list[Problem] = []
    for name, role in scenario.roles.items():
        if resolve(role.model, scenario.prices) is None:
            problems.append(Problem(("roles", name, "model"), unknown(role.model)))
        # A dated id (claude-haiku-4-5-20251001) is the model its base names: one model, listed once.
        listed: dict[str, int] = {}
        for index, option in enumerate(role.models):
            where = ("roles", name, "models", index, "model")
            base = model_base(option.model)
            if base == model_base(role.model):
                problems.append(
                    Problem(
                        where,
                        f"'{option.model}' is listed twice: it is the role's own model ('{role.model}'), "
                        "always a choice; remove it from 'models'",
                    )
                )
            elif base in listed:
                problems.append(
                    Problem(
                        where,
                        f"'{option.model}' is listed twice (first as models.{listed[base]}, "
                        f"'{role.models[listed[base]].model}'); list each model once",
                    )
                )
            elif resolve(option.model, scenario.prices) is None:
                problems.append(Problem(where, unknown(option.model)))
            listed.setdefault(base, index)
    for index, task in enumerate(scenario.tasks):
        for cycle, model in task.cycle_models.items():
            if resolve(model, scenario.prices) is None:
                problems.append(Problem(("tasks", index, "cycle_models", cycle), unknown(model)))
    return problems
