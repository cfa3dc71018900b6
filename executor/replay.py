"""What a run's stored events say about each task: where a resumed run picks up.

:func:`replay` folds a trace into one :class:`TaskProgress` per task (started, cycles done, failed
attempts at the next cycle, events published, how it ended) and the run's own facts (resumed how often,
over or not). It reads events only; the orchestrator turns the result into live state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cycleplan.core.metrics import USAGE_FIELDS
from cycleplan.core.model import Event
from cycleplan.executor import events as ev


@dataclass
class TaskProgress:
    """One task as far as the trace goes."""

    started: bool = False
    cycles_done: int = 0
    failed_attempts: int = 0
    """Failed attempts at cycle ``cycles_done + 1`` (what its retries count)."""
    interrupted_attempts: int = 0
    """Attempts at cycle ``cycles_done + 1`` that Ctrl-C stopped (numbered, not counted as failures)."""
    emitted: set[str] = field(default_factory=set)
    ended: str | None = None
    """task_complete, task_failed or task_cancelled; None while unfinished."""
    reason: str | None = None
    previous: dict[str, Any] | None = None
    """Metadata of the last completed cycle."""
    spent_ms: float = 0.0
    """Time spent on attempts so far (what a task timeout counts)."""
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class RunProgress:
    tasks: dict[str, TaskProgress]
    resumes: int = 0
    over: bool = False
    """run_complete is in the trace."""
    status: str | None = None
    """run_complete's status; ``interrupted`` while the last part of the run ended with Ctrl-C."""
    events: int = 0


def replay(trace: Iterable[Event], task_ids: Iterable[str]) -> RunProgress:
    run = RunProgress(tasks={task: TaskProgress() for task in task_ids})
    for event in trace:
        run.events += 1
        action = event.action
        meta = event.metadata
        if action == ev.RUN_RESUMED:
            run.resumes = max(run.resumes, int(meta.get("resume", 0)))
            run.status = None
            continue
        if action == ev.RUN_INTERRUPTED:
            run.status = ev.INTERRUPTED
            continue
        if action == ev.RUN_COMPLETE:
            run.over = True
            run.status = str(meta.get("status", ""))
            continue
        progress = run.tasks.get(event.target_id)
        if progress is None:
            continue
        if action == ev.TASK_STARTED:
            progress.started = True
        elif action == ev.CYCLE_COMPLETED:
            progress.spent_ms += float(meta.get("duration_ms", 0.0))
            progress.tokens += sum(int(meta.get(name, 0)) for name in USAGE_FIELDS)
            progress.cost_usd += float(meta.get("cost_usd", 0.0))
            cycle = int(meta.get("cycle", 0))
            if meta.get("failed"):
                if cycle == progress.cycles_done + 1:
                    if meta.get("interrupted"):
                        progress.interrupted_attempts += 1
                    else:
                        progress.failed_attempts += 1
            elif cycle == progress.cycles_done + 1:
                progress.cycles_done = cycle
                progress.failed_attempts = progress.interrupted_attempts = 0
                progress.previous = dict(meta)
        elif action in ev.TERMINAL:
            progress.ended = action
            progress.reason = meta.get("reason")
        elif action not in ev.RESERVED:
            progress.emitted.add(action)
    return run
