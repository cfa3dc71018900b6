"""An imported run: what an importer makes of another tool's records, and how it enters the run store.

An importer (:mod:`.claude_code`, :mod:`.one_state`) reads files and returns an :class:`ImportedRun`: the
scenario and plan the work corresponds to, its trace in the executor's event schema (so that
:func:`cycleplan.core.metrics.metrics` measures it like any executed run) and the warnings met on the way.
:class:`TraceBuilder` lays the trace out in time order. Nothing is written until the whole run is built;
:func:`store_run` then writes it all or nothing: staged in a scratch store beside the target, then copied
over in one SQLite transaction, so an import that fails half way leaves no half-written run behind. This
module reads no foreign format.
"""

from __future__ import annotations

import contextlib
import json
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cycleplan.core.loading import FileError
from cycleplan.core.metrics import metrics, run_header
from cycleplan.core.model import Event, Plan, Scenario, Task
from cycleplan.core.reading import read_bounded

IMPORT_AGENT = "claude-code"
"""The agent an imported run records: both importers read work done by Claude Code."""

_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_.-]+")


class TraceImportError(Exception):
    """The input cannot be turned into a run; ``errors`` says where and why (FILE:LINE: what to do)."""

    def __init__(self, errors: list[FileError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


@dataclass(frozen=True)
class ImportedRun:
    """A run read from another tool's records, complete and ready for the run store."""

    kind: str
    """Which importer made it (``claude-code``, ``one-state``)."""
    source: str
    """The path it was read from."""
    scenario: Scenario
    plan: Plan
    trace: list[Event]
    warnings: list[FileError]
    status: str
    """How the run ended: complete, or interrupted when the records stop before the work does."""
    details: dict[str, Any] = field(default_factory=dict)
    """What the importer counted (sessions, turns, idle gaps...), kept in the run's summary."""


def read_file(path: Path, limit: int, hint: str) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them; anything else (no such file,
    a folder, a device such as /dev/zero, a pipe that would never end, a socket, a file too large) is
    refused with one line that says what to give instead (``hint``)."""
    name = str(path)
    try:
        found = path.stat()
    except FileNotFoundError:
        raise TraceImportError([FileError(name, "no such file or folder; check the path")]) from None
    except OSError as exc:
        raise TraceImportError([FileError(name, f"cannot be read: {exc.strerror or exc}")]) from None
    if stat.S_ISDIR(found.st_mode):
        raise TraceImportError([FileError(name, f"is a folder; {hint}")])
    if not stat.S_ISREG(found.st_mode):
        raise TraceImportError(
            [FileError(name, f"is not a regular file (a device, a pipe or a socket); {hint}")]
        )
    if found.st_size > limit:
        raise TraceImportError(
            [FileError(name, f"is {found.st_size:,} bytes, more than the {limit:,} read; {hint}")]
        )
    try:
        with path.open("rb") as stream:
            data = read_bounded(stream, limit)
    except OSError as exc:
        raise TraceImportError([FileError(name, f"cannot be read: {exc.strerror or exc}")]) from None
    if len(data) > limit:
        raise TraceImportError(
            [FileError(name, f"grew past the {limit:,} bytes read while it was read; {hint}")]
        )
    return data


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` that says ``ValueError`` for nesting too deep to read (not ``RecursionError``),
    and replaces lone surrogates (``"\\ud800"``, no character of any text) in every string by U+FFFD."""
    # Bytes are UTF-8 or nothing (json.loads would let encoded surrogates through).
    probe = text if isinstance(text, str) else text.decode("utf-8")
    try:
        value = json.loads(probe)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    if _SURROGATE_ESCAPE.search(probe):
        value = mended(value)
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def mended(value: Any) -> Any:
    """Parsed JSON ``value`` with lone surrogates in its strings (keys too) replaced by U+FFFD, walked
    without recursion; containers are mended in place."""

    def fix(text: str) -> str:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    if isinstance(value, str):
        return fix(value)
    root: list[Any] = [value]
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                item = node.pop(key)
                node[fix(key) if isinstance(key, str) else key] = fix(item) if isinstance(item, str) else item
                if isinstance(item, dict | list):
                    stack.append(item)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    node[index] = fix(item)
                elif isinstance(item, dict | list):
                    stack.append(item)
    return root[0]


def identifier(text: str, taken: set[str]) -> str:
    """``text`` as a task or role id (letters, digits, ``_ . -``, at most 80), unique among ``taken``."""
    name = re.sub(r"\.{2,}", ".", _NOT_IN_NAMES.sub("_", text))[:72].strip("_.-") or "task"
    if not name[0].isalnum():
        name = f"t{name}"
    if name.lower().endswith(".lock"):
        name = f"{name[:-5]}_lock"
    unique, number = name, 2
    while unique in taken:
        unique = f"{name}-{number}"
        number += 1
    taken.add(unique)
    return unique


def assign_lanes(spans: Mapping[str, tuple[float, float]], role: str) -> dict[str, str]:
    """Each task's lane, ``<role>-<n>``, so that no lane holds two tasks at once.

    Greedy by start time, taking the lowest-numbered free lane: for intervals this uses exactly as many
    lanes as the most tasks that ever overlap.
    """
    lanes: list[float] = []
    assigned: dict[str, str] = {}
    for task, (start, end) in sorted(spans.items(), key=lambda item: (item[1][0], item[1][1], item[0])):
        for number, free_at in enumerate(lanes):
            if free_at <= start:
                lanes[number] = end
                break
        else:
            number = len(lanes)
            lanes.append(end)
        assigned[task] = f"{role}-{number + 1}"
    return assigned


class TraceBuilder:
    """Collects a run's events per task and lays them out as one trace in time order.

    Events keep their order within a task; at equal times, the task that started earlier comes first,
    so a task's end always precedes the start of the next task on its lane. ``groupId`` (the run's id)
    is a placeholder until :func:`store_run` gives the run its id.
    """

    def __init__(self) -> None:
        self._group = "imported"
        self._events: list[tuple[float, int, Event]] = []
        self._task_start: dict[str, float] = {}

    def add(self, lane: str, task: str, timestamp_ms: float, **metadata: Any) -> None:
        """Record one event of ``task`` on ``lane``; ``metadata`` must hold ``action``."""
        if metadata["action"] == "task_started":
            self._task_start[task] = timestamp_ms
        event = Event.model_validate(
            {
                "actorId": lane,
                "targetId": task,
                "groupId": self._group,
                "timestamp": timestamp_ms,
                "metadata": metadata,
            }
        )
        self._events.append((timestamp_ms, len(self._events), event))

    def trace(
        self,
        lanes: Mapping[str, str | None],
        tasks: Iterable[Task],
        start_ms: float,
        end_ms: float,
        status: str,
        header: Mapping[str, Any],
    ) -> list[Event]:
        """The whole trace: ``run_started`` (with ``header`` beside the lanes and tasks), every task's
        events in time order, ``run_complete``."""
        ordered = sorted(
            self._events,
            key=lambda item: (item[0], self._task_start.get(item[2].target_id, item[0]), item[1]),
        )
        first = Event.model_validate(
            {
                "actorId": "cycleplan",
                "targetId": self._group,
                "groupId": self._group,
                "timestamp": start_ms,
                "metadata": {**run_header(lanes, tasks), **header},
            }
        )
        last = Event.model_validate(
            {
                "actorId": "cycleplan",
                "targetId": self._group,
                "groupId": self._group,
                "timestamp": end_ms,
                "metadata": {"action": "run_complete", "status": status},
            }
        )
        return [first, *(item[2] for item in ordered), last]


def _key(event: Event, seen: dict[str, int]) -> str:
    """A key unique within the run, in the executor's style (``cycle_completed:task:3:1``)."""
    meta = event.metadata
    action = event.action
    if action in ("run_started", "run_complete"):
        base = action
    elif action == "cycle_completed":
        base = f"{action}:{event.target_id}:{meta.get('cycle')}:{meta.get('attempt')}"
    elif action in ("task_started", "task_complete", "task_failed", "task_cancelled"):
        base = f"{action}:{event.target_id}"
    elif action == "progress_update":
        base = f"progress:{event.target_id}"
    else:
        base = f"emit:{event.target_id}:{action}"
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}:{count}"


def _regroup(trace: list[Event], run_id: str) -> list[Event]:
    """The trace with the run's id as ``groupId`` (and as the target of run-wide events)."""
    out: list[Event] = []
    for event in trace:
        update: dict[str, Any] = {"group_id": run_id}
        if event.actor_id == "cycleplan":
            update["target_id"] = run_id
        out.append(event.model_copy(update=update))
    return out


def store_run(
    imported: ImportedRun, store: str | Path, *, replacing: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Write ``imported`` into the run store at ``store`` as one new run; its id and summary.

    All or nothing: the run is written to a scratch store in the same folder, then copied into the
    target in a single transaction, which also deletes the run ``replacing`` names (an earlier import
    of the same source) when there is one. Raises :class:`cycleplan.store.StoreError` when the store cannot
    be opened or written.
    """
    from cycleplan.executor.run import ExecuteOptions, new_run_id
    from cycleplan.executor.summary import run_summary
    from cycleplan.store import RunStore, StoreError

    metrics(imported.trace)  # the trace contract holds before anything is written
    target = Path(store)
    with RunStore(target):
        pass  # creates the store (and its tables) when it is new
    run_id = new_run_id()
    trace = _regroup(imported.trace, run_id)
    try:
        scratch_dir = tempfile.mkdtemp(prefix=".import-", dir=target.parent)
    except OSError as exc:
        raise StoreError(
            f"{target.parent}: cannot write beside the run store: {exc.strerror or exc}"
        ) from None
    scratch = Path(scratch_dir) / "staged.db"
    try:
        with RunStore(scratch) as staged:
            staged.create_run(
                run_id,
                agent=IMPORT_AGENT,
                source=imported.source,
                scenario=imported.scenario.name,
                options=ExecuteOptions(agent=IMPORT_AGENT).model_dump(mode="json"),
                plan_json=imported.plan.model_dump_json(),
            )
            seen: dict[str, int] = {}
            for event in trace:
                staged.append(run_id, _key(event, seen), event)
            summary = run_summary(staged, run_id) | {
                "status": imported.status,
                "imported": {"kind": imported.kind, "source": imported.source, **imported.details},
                "warnings": len(imported.warnings),
            }
            staged.set_status(run_id, imported.status, summary)
        with RunStore(target) as runs:
            runs.take_in(scratch, replacing=replacing)
    finally:
        for leftover in Path(scratch_dir).glob("*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            Path(scratch_dir).rmdir()
    return run_id, summary
