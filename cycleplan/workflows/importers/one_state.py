"""The ONE platform's cycle state file as a run of the ``one-100`` template.

The ONE hooks keep ``.claude/state/cycle.json``: ``current_cycle``, ``completed_cycles``, ``feature_name``
and ``lessons_learned``, a list of ``{cycle, lesson, timestamp}`` with a UNIX timestamp (seconds) per
completed cycle, one cycle advanced per Claude Code turn. How it maps onto a run:

- the scenario is the ``one-100`` template; cycle *n* is template cycle *n*, so it belongs to the task
  whose range holds it (cycles 11-20 are ``backend``'s 1st to 10th); the work was done by one agent,
  one cycle after the other, so the plan is the ``sequential`` one, on one lane;
- a cycle's duration is the time since the previous cycle's entry; the first cycle, which has none,
  and every cycle after an idle gap longer than ``idle_after_min`` (flagged ``idle``, the gap kept as
  ``idle_ms``, not work) get the median of the other cycles (flagged ``duration_imputed``);
- the trace runs on the agent clock (``clock: agent`` in its header): an idle gap's excess over the
  median cycle is cut out, so that the run's makespan and each task's duration are the agent's time; the
  wall time is kept as ``wall_min`` in the details;
- the file is real and messy, and that is tolerated: entries repeated for a cycle already recorded
  (the hooks keep advancing "cycle 100" after the feature is complete) count once, the first time;
  text after the JSON object is ignored; both with a warning. Cycles missing from the list share the
  next entry's gap; tasks the file never reaches are recorded as cancelled (stalled);
- the file records no tokens, so the run holds none: its events carry no token or cost fields (rather
  than zeros, which would read as free work) and its details say ``tokens_recorded: false``.

An empty file, one that is not a JSON object, or one with fewer than two timed cycles cannot be
imported: :class:`~cycleplan.workflows.importers.run.TraceImportError` says where and why. This module writes
nothing.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

from cycleplan.core.loading import FileError
from cycleplan.core.metrics import MS_PER_MIN
from cycleplan.core.model import Scenario, Task
from cycleplan.core.templates import get_template
from cycleplan.core.wording import counted
from cycleplan.workflows.importers.run import (
    IMPORT_AGENT,
    ImportedRun,
    TraceBuilder,
    TraceImportError,
    mended,
    read_file,
)

KIND = "one-state"
TEMPLATE = "one-100"
DEFAULT_IDLE_AFTER_MIN = 60.0
"""A gap between two cycles longer than this (minutes) is idle time, not one cycle's work."""
MAX_FILE_BYTES = 50_000_000

_HINT = (
    "a ONE cycle state file is one JSON object with a lessons_learned list of {cycle, lesson, timestamp} "
    "(the ONE hooks write it to .claude/state/cycle.json)"
)


def _line_column(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _read(path: Path, warnings: list[FileError]) -> dict[str, Any]:
    name = str(path)
    raw = read_file(path, MAX_FILE_BYTES, "give the cycle state file (.claude/state/cycle.json)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TraceImportError([FileError(name, f"is not UTF-8 text (byte {exc.start}); {_HINT}")]) from None
    if not text.strip():
        raise TraceImportError([FileError(name, f"is empty; {_HINT}")])
    begin = len(text) - len(text.lstrip())
    try:
        state, end = json.JSONDecoder().raw_decode(text, begin)
    except RecursionError:
        raise TraceImportError([FileError(name, f"is nested too deeply to read; {_HINT}")]) from None
    except json.JSONDecodeError as exc:
        raise TraceImportError(
            [FileError(name, f"not valid JSON: {exc.msg}; {_HINT}", line=exc.lineno, column=exc.colno)]
        ) from None
    state = mended(state)
    trailing = text[end:].strip()
    if trailing:
        line, column = _line_column(text, end + (len(text[end:]) - len(text[end:].lstrip())))
        preview = " ".join(trailing.split())[:40]
        warnings.append(
            FileError(
                name,
                f"{counted(len(trailing), 'character')} of text after the JSON object ({preview!r}); ignored",
                line=line,
                column=column,
            )
        )
    if not isinstance(state, dict):
        kind = type(state).__name__
        raise TraceImportError([FileError(name, f"holds a JSON {kind}, not an object; {_HINT}")])
    return state


def _entries(path: Path, state: dict[str, Any], warnings: list[FileError]) -> list[tuple[int, float]]:
    """(cycle, timestamp in ms) of every usable entry, in the order written."""
    name = str(path)
    lessons = state.get("lessons_learned")
    if not isinstance(lessons, list):
        raise TraceImportError(
            [FileError(name, f"has no lessons_learned list; {_HINT}", field="lessons_learned")]
        )
    last_cycle = get_template(TEMPLATE).cycles
    found: list[tuple[int, float]] = []
    skipped: list[str] = []
    for index, entry in enumerate(lessons):
        cycle = entry.get("cycle") if isinstance(entry, dict) else None
        stamp = entry.get("timestamp") if isinstance(entry, dict) else None
        if not isinstance(cycle, int) or isinstance(cycle, bool) or not 1 <= cycle <= last_cycle:
            skipped.append(f"lessons_learned[{index}]: cycle must be a whole number from 1 to {last_cycle}")
        elif not isinstance(stamp, int | float) or isinstance(stamp, bool) or not 0 < stamp < 1e11:
            skipped.append(f"lessons_learned[{index}]: timestamp must be UNIX seconds")
        else:
            found.append((cycle, float(stamp) * 1000.0))
    for message in skipped[:5]:
        where, _, what = message.partition(": ")
        warnings.append(FileError(name, f"{what}; entry skipped", field=where))
    if len(skipped) > 5:
        warnings.append(
            FileError(name, f"{len(skipped) - 5} more unusable entries skipped", field="lessons_learned")
        )
    return found


def import_one_state(path: str | Path, idle_after_min: float = DEFAULT_IDLE_AFTER_MIN) -> ImportedRun:
    """Read the ONE cycle state file at ``path`` into a complete run of the ``one-100`` template."""
    if not idle_after_min > 0:
        raise ValueError("idle_after_min must be above 0")
    file = Path(path)
    name = str(file)
    warnings: list[FileError] = []
    state = _read(file, warnings)
    entries = _entries(file, state, warnings)

    first: dict[int, float] = {}
    repeats: dict[int, int] = {}
    for cycle, stamp in entries:
        if cycle in first:
            repeats[cycle] = repeats.get(cycle, 0) + 1
        else:
            first[cycle] = stamp
    for cycle, count in sorted(repeats.items()):
        warnings.append(
            FileError(
                name,
                f"cycle {cycle} is recorded {counted(count, 'more time')} after its first entry; "
                "only the first counts",
                field="lessons_learned",
            )
        )
    if len(first) < 2:
        raise TraceImportError(
            [
                FileError(
                    name,
                    f"{counted(len(first), 'completed cycle')} with a timestamp: a cycle's duration needs "
                    "the entry before it, so at least two are needed",
                    field="lessons_learned",
                )
            ]
        )

    recorded = sorted(first)
    reached = recorded[-1]
    # Each recorded cycle's gap since the previous recorded one, shared out over any cycles missing between.
    gaps: dict[int, float] = {}
    shared: set[int] = set()
    missing: list[int] = []
    backwards = 0
    for before, cycle in itertools.pairwise(recorded):
        gap = first[cycle] - first[before]
        if gap < 0:
            backwards += 1
            gap = 0.0
        span = cycle - before
        for number in range(before + 1, cycle + 1):
            gaps[number] = gap / span
            if span > 1:
                shared.add(number)
        missing.extend(range(before + 1, cycle))
    missing = [*range(1, recorded[0]), *missing]
    if missing:
        warnings.append(
            FileError(
                name,
                f"{counted(len(missing), 'cycle')} {'has' if len(missing) == 1 else 'have'} no entry "
                f"({_ranges(missing)}); they share the next entry's gap",
                field="lessons_learned",
            )
        )
    if backwards:
        warnings.append(
            FileError(
                name,
                f"{counted(backwards, 'cycle')} {'is' if backwards == 1 else 'are'} timed before the cycle "
                "they follow; counted as 0 minutes",
            )
        )

    idle_after_ms = idle_after_min * MS_PER_MIN
    idle = {cycle for cycle, gap in gaps.items() if gap > idle_after_ms}
    working = [gap for cycle, gap in gaps.items() if cycle not in idle and gap > 0]
    typical = statistics.median(working) if working else idle_after_ms
    if idle:
        longest = max(gaps[c] for c in idle)
        warnings.append(
            FileError(
                name,
                f"{counted(len(idle), 'gap')} longer than {idle_after_min:g} min (the longest "
                f"{_hours(longest)}) flagged as idle, not work; each of those cycles counts the median "
                f"cycle, {typical / MS_PER_MIN:.1f} min",
                field="lessons_learned",
            )
        )

    # Cycle n ends at its entry's time (missing ones at their share of the next gap).
    ends: dict[int, float] = {}
    for cycle in range(recorded[0], reached + 1):
        ends[cycle] = first[cycle] if cycle in first else ends[cycle - 1] + gaps[cycle]
    for cycle in range(recorded[0] - 1, 0, -1):
        ends[cycle] = ends[cycle + 1] - typical
    start_ms = ends[1] - typical
    wall_ms = ends[reached] - start_ms
    # The agent clock: an idle gap counts as the median cycle it was given, the rest of it is cut out,
    # so that makespan and durations are the agent's time (the wall time goes in the details).
    wall_ends = {0: start_ms, **ends}
    clock = start_ms
    for cycle in range(1, reached + 1):
        clock += typical if cycle in idle else wall_ends[cycle] - wall_ends[cycle - 1]
        ends[cycle] = clock

    scenario = Scenario(
        name=f"imported one-state {state.get('feature_name') or file.stem}"[:200],
        description=f"Imported from the ONE cycle state file {file}: {len(first)} cycles recorded, up to "
        f"cycle {reached}."[:10_000],
        template=TEMPLATE,
    )
    from cycleplan.planner import plan as make_plan

    plan = make_plan(scenario, algorithm="sequential")
    lane = plan.lanes[0].lane
    builder = TraceBuilder()
    tasks = scenario.all_tasks()
    status = "complete"
    imputed = 0
    for task in tasks:
        assert task.template_cycles is not None
        low, high = task.template_cycles
        if low > reached:
            builder.add(
                lane, task.id, ends[reached], action="task_cancelled", reason="stalled", imported=True
            )
            status = "interrupted"
            continue
        begun = ends[low - 1] if low > 1 else start_ms
        builder.add(lane, task.id, begun, action="task_started", role=task.role, cycles=task.cycles)
        for cycle in range(low, min(high, reached) + 1):
            metadata = _cycle(task, cycle, low, ends, gaps, typical, idle, shared)
            imputed += bool(metadata.get("duration_imputed"))
            builder.add(lane, task.id, ends[cycle], **metadata)
            for event, after in task.emits.items():
                if low + after - 1 == cycle:
                    builder.add(lane, task.id, ends[cycle], action=event, cycle=after)
        if high <= reached:
            builder.add(lane, task.id, ends[high], action="task_complete")
        else:
            builder.add(
                lane, task.id, ends[reached], action="task_cancelled", reason="stalled", imported=True
            )
            status = "interrupted"
    if status != "complete":
        warnings.append(
            FileError(
                name,
                f"the feature stops at cycle {reached} of {get_template(TEMPLATE).cycles}: the tasks not "
                "finished are recorded as cancelled (stalled) and the run as interrupted",
            )
        )
    details: dict[str, Any] = {
        "feature": state.get("feature_name"),
        "cycles": len(first),
        "last_cycle": reached,
        "repeated_entries": sum(repeats.values()),
        "missing_cycles": len(missing),
        "idle_cycles": len(idle),
        "idle_after_min": idle_after_min,
        "idle_min": round(sum(gaps[c] - typical for c in idle) / MS_PER_MIN, 3),
        "wall_min": round(wall_ms / MS_PER_MIN, 3),
        "agent_min": round((ends[reached] - start_ms) / MS_PER_MIN, 3),
        "imputed_cycles": imputed,
        "median_cycle_min": round(typical / MS_PER_MIN, 4),
        "tokens_recorded": False,
    }
    trace = builder.trace(
        {lane: plan.lanes[0].role},
        tasks,
        start_ms,
        ends[reached],
        status,
        {
            "agent": IMPORT_AGENT,
            "time_scale": 1.0,
            "clock": "agent",
            "imported": {"kind": KIND, "source": name, **details},
        },
    )
    return ImportedRun(KIND, name, scenario, plan, trace, warnings, status, details)


def _cycle(
    task: Task,
    cycle: int,
    low: int,
    ends: dict[int, float],
    gaps: dict[int, float],
    typical: float,
    idle: set[int],
    shared: set[int],
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "action": "cycle_completed",
        "cycle": cycle - low + 1,
        "attempt": 1,
        "failed": False,
        "template_cycle": cycle,
        "started_at": ends[cycle] - (gaps.get(cycle, typical) if cycle not in idle else typical),
        "duration_ms": round(gaps.get(cycle, typical), 3),
        "sync_wait_ms": 0.0,
        "sync_ms": 0.0,
        "rate_limit_wait_ms": 0.0,
    }
    if cycle not in gaps or cycle in idle:
        metadata["duration_ms"] = round(typical, 3)
        metadata["duration_imputed"] = True
    if cycle in idle:
        metadata["idle"] = True
        metadata["idle_ms"] = round(gaps[cycle] - typical, 3)
    if cycle in shared:
        metadata["gap_shared"] = True
    return metadata


def _ranges(numbers: list[int]) -> str:
    parts: list[str] = []
    begin = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(begin) if begin == previous else f"{begin}-{previous}")
        if number is not None:
            begin = previous = number
    return ", ".join(parts[:6]) + (", ..." if len(parts) > 6 else "")


def _hours(ms: float) -> str:
    minutes = ms / MS_PER_MIN
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"
