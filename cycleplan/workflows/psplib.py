"""PSPLIB single-mode RCPSP instances (``.sm`` files) as Scenarios, and their published bounds.

An instance becomes a scenario that the planner solves exactly as the literature states it:

- every job of non-zero duration is a task of one role, ``job``, whose cycles last one minute (fixed), so
  a job of duration ``d`` is a task of ``d`` cycles and makespans come out in the instance's time units;
- the role has one lane per task, so lanes never constrain; the renewable resources ``R1``..``R4``
  become scenario resources with the instance's capacities, and each task ``requires`` its non-zero
  requests;
- precedences become ``after``. Jobs of duration zero (the dummy source and sink, and any other) are
  dropped: they hold no resource over time, and their predecessors are linked to their successors
  instead, so every precedence between the remaining jobs is kept, transitively where needed.

Task ids are ``j`` and the PSPLIB job number (``j2``..``j31`` for a j30 instance). Also here: readers for
the optimum and best-known tables (``j30opt.sm``, ``j120hrs.sm``...) and a YAML writer for the scenario.
Reads files and builds models; plans nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cycleplan.core.model import Scenario
from cycleplan.core.wording import counted

ROLE = "job"


class PsplibError(ValueError):
    """A file that is not a readable PSPLIB single-mode instance."""


@dataclass(frozen=True)
class Instance:
    """A PSPLIB single-mode instance as written: jobs numbered from 1, source first and sink last."""

    name: str
    durations: dict[int, int]
    requests: dict[int, tuple[int, ...]]
    successors: dict[int, tuple[int, ...]]
    capacities: tuple[int, ...]
    horizon: int | None = None


def _section(lines: list[str], title: str) -> int:
    for number, line in enumerate(lines):
        if line.strip().upper().startswith(title):
            return number
    raise PsplibError(f"no '{title}' section")


def _ints(line: str) -> list[int]:
    return [int(token) for token in line.split()]


def parse_instance(text: str, name: str = "instance") -> Instance:
    """Parse the text of a single-mode ``.sm`` file."""
    lines = text.splitlines()
    horizon = None
    for line in lines:
        if line.strip().lower().startswith("horizon"):
            found = re.search(r"(\d+)\s*$", line)
            horizon = int(found.group(1)) if found else None
    try:
        successors: dict[int, tuple[int, ...]] = {}
        row = _section(lines, "PRECEDENCE RELATIONS") + 2
        while row < len(lines) and not lines[row].startswith("*"):
            values = _ints(lines[row])
            if values:
                job, modes, count = values[0], values[1], values[2]
                if modes != 1:
                    raise PsplibError(f"job {job} has {modes} modes; only single-mode instances are read")
                successors[job] = tuple(values[3 : 3 + count])
            row += 1

        durations: dict[int, int] = {}
        requests: dict[int, tuple[int, ...]] = {}
        row = _section(lines, "REQUESTS/DURATIONS") + 1
        while row < len(lines) and not lines[row].lstrip().startswith("-"):
            row += 1
        row += 1
        while row < len(lines) and not lines[row].startswith("*"):
            values = _ints(lines[row])
            if values:
                if any(value < 0 for value in values):
                    raise PsplibError(f"line {row + 1}: job {values[0]} has a negative duration or request")
                durations[values[0]] = values[2]
                requests[values[0]] = tuple(values[3:])
            row += 1

        row = _section(lines, "RESOURCEAVAILABILITIES") + 2
        capacities = tuple(_ints(lines[row]))
        if any(capacity < 0 for capacity in capacities):
            raise PsplibError(f"line {row + 1}: a resource has a negative capacity")
    except (IndexError, ValueError) as exc:
        if isinstance(exc, PsplibError):
            raise PsplibError(f"{name}: {exc}") from None
        raise PsplibError(f"{name}: not a PSPLIB single-mode file ({exc})") from None
    if set(successors) != set(durations) or not durations:
        raise PsplibError(f"{name}: the precedence and duration tables list different jobs")
    for job, request in requests.items():
        if len(request) != len(capacities):
            raise PsplibError(f"{name}: job {job} requests {len(request)} resources, not {len(capacities)}")
    for job, after in successors.items():
        unknown = [succ for succ in after if succ not in durations]
        if unknown:
            raise PsplibError(f"{name}: job {job} has unknown successors {unknown}")
        backwards = [succ for succ in after if succ <= job]
        if backwards:
            # PSPLIB numbers every successor higher, which also rules out loops.
            raise PsplibError(f"{name}: job {job} has successors numbered no higher than itself: {backwards}")
    return Instance(name, durations, requests, successors, capacities, horizon)


def instance_to_scenario(instance: Instance) -> Scenario:
    """The scenario of an instance (see the module docstring for how jobs, resources and zero-duration
    jobs are mapped)."""
    kept = [job for job in sorted(instance.durations) if instance.durations[job] > 0]
    predecessors: dict[int, set[int]] = {job: set() for job in instance.durations}
    for job, after in instance.successors.items():
        for succ in after:
            predecessors[succ].add(job)

    # Kept predecessors of each job, looking through dropped (zero-duration) jobs.
    resolved: dict[int, set[int]] = {}

    def kept_predecessors(job: int) -> set[int]:
        if job not in resolved:
            found: set[int] = set()
            for pred in predecessors[job]:
                if instance.durations[pred] > 0:
                    found.add(pred)
                else:
                    found |= kept_predecessors(pred)
            resolved[job] = found
        return resolved[job]

    for job in sorted(instance.durations):  # predecessors first: the recursion stays shallow
        kept_predecessors(job)

    resource_names = [f"R{number}" for number in range(1, len(instance.capacities) + 1)]
    tasks: list[dict[str, Any]] = []
    for job in kept:
        task: dict[str, Any] = {"id": f"j{job}", "role": ROLE, "cycles": instance.durations[job]}
        preds = sorted(kept_predecessors(job))
        if preds:
            task["after"] = [f"j{pred}" for pred in preds]
        requires = {
            name: units
            for name, units in zip(resource_names, instance.requests[job], strict=True)
            if units > 0
        }
        if requires:
            task["requires"] = requires
        tasks.append(task)
    data: dict[str, Any] = {
        "name": instance.name,
        "description": f"PSPLIB single-mode RCPSP instance {instance.name}"
        + (f" (horizon {instance.horizon})" if instance.horizon is not None else ""),
        "roles": {
            ROLE: {
                "lanes": max(1, len(tasks)),
                "cycle": {"kind": "fixed", "value_min": 1.0},
                "description": "one PSPLIB job per lane: lanes never constrain, resources do",
            }
        },
        "resources": {
            name: {"capacity": capacity}
            for name, capacity in zip(resource_names, instance.capacities, strict=True)
            if capacity > 0
        },
        "tasks": tasks,
    }
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PsplibError(
            f"{instance.name}: not a scenario cycleplan can plan ({where}: {first['msg']}; "
            f"{counted(exc.error_count(), 'problem')} in all)"
        ) from None


MAX_FILE_BYTES = 20_000_000
"""The largest ``.sm`` file read (PSPLIB's largest, j120, are under 10 kB)."""


def read_instance(path: str | Path) -> Instance:
    """Read a ``.sm`` file: a regular file of at most :data:`MAX_FILE_BYTES`."""
    from cycleplan.workflows.importers.run import TraceImportError, read_file

    source = Path(path)
    try:
        data = read_file(source, MAX_FILE_BYTES, "give a PSPLIB single-mode instance (.sm file)")
    except TraceImportError as exc:
        raise PsplibError(str(exc.errors[0])) from None
    return parse_instance(data.decode("latin-1"), source.stem)


def psplib_to_scenario(path: str | Path) -> Scenario:
    """The scenario of the PSPLIB single-mode instance in ``path`` (a ``.sm`` file)."""
    return instance_to_scenario(read_instance(path))


def scenario_yaml(scenario: Scenario) -> str:
    """A scenario as YAML that :func:`cycleplan.core.loading.load_scenario` reads back to an equal Scenario.

    Only values that differ from the defaults are written, in the model's field order.
    """
    import yaml

    data = scenario.model_dump(mode="json", exclude_defaults=True)
    text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    return text


def read_known_makespans(path: str | Path) -> dict[tuple[int, int], int]:
    """(parameter, instance) -> makespan, from an optimum or best-known table (``j30opt.sm``,
    ``j120hrs.sm``...). Rows are the lines that start with three whole numbers."""
    table: dict[tuple[int, int], int] = {}
    text = Path(path).read_text(encoding="latin-1")
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) >= 3 and all(token.isdigit() for token in tokens[:3]):
            table[(int(tokens[0]), int(tokens[1]))] = int(tokens[2])
    return table


def instance_key(path: str | Path) -> tuple[int, int] | None:
    """(parameter, instance) from a PSPLIB file name such as ``j3012_7.sm`` (set j30, parameter 12)."""
    found = re.fullmatch(r"j(30|60|90|120)(\d+)_(\d+)", Path(path).stem)
    return (int(found.group(2)), int(found.group(3))) if found else None
