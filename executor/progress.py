"""Progress while a run goes: a live table per lane on a terminal, plain lines otherwise, and the run's log.

:class:`LiveView` redraws (with rich) one row per lane, subagent lanes among them: its task, cycle k/n,
state (``subagents`` while a task is blocked on those it spawned), time on the task, tokens and cost, and
a footer with the run's totals. :class:`PlainLines` writes one line per task-level event and per cycle
for pipes and CI logs. :class:`RunLog` appends the same lines to the run's ``log.txt``. Every line is
redacted of secrets and made printable (an agent's error may carry escape sequences) before it is shown
or logged. All three read the orchestrator's state and its events; none changes anything. Times shown are
scenario minutes (real minutes, unless the run is a time-scaled rehearsal) since the run began; a resumed
run's carry on from the time its earlier parts were going (the time it stood stopped left out, as in its
summary).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cycleplan.executor import events as ev
from cycleplan.executor.clock import format_minutes
from cycleplan.executor.secrets import redact
from cycleplan.model import Event
from cycleplan.printable import printable
from cycleplan.wording import counted

if TYPE_CHECKING:
    from cycleplan.executor.orchestrator import Orchestrator

REFRESH_S = 0.25


def describe(event: Event, orchestrator: Orchestrator) -> str | None:
    """One line for ``event``, or None for events not worth a line of their own."""
    meta = event.metadata
    action = event.action
    task = event.target_id
    run = orchestrator.tasks.get(task)
    if action == ev.RUN_STARTED:
        return (
            f"run {event.group_id} started: {counted(len(orchestrator.lanes), 'lane')}, "
            f"{counted(len(orchestrator.tasks), 'task')}"
        )
    if action == ev.RUN_RESUMED:
        return f"run {event.group_id} resumed ({meta.get('resume')})"
    if action == ev.RUN_COMPLETE:
        return f"run {event.group_id} {meta.get('status')}"
    if action == ev.RUN_INTERRUPTED:
        return f"run {event.group_id} interrupted: its unfinished tasks wait for --resume"
    if run is None:
        return None
    where = f"{event.actor_id:<14} {task:<16}"
    if action == ev.TASK_STARTED:
        spawn = run.task.spawned_by
        by = "" if spawn is None else f"; spawned by {spawn.task} at its cycle {spawn.cycle}"
        return f"{where} started ({counted(run.task.cycles, 'cycle')}{by})"
    if action == ev.TASK_RESUMED:
        return f"{where} resumed at cycle {meta.get('cycle')}"
    if action == ev.CYCLE_COMPLETED:
        minutes = orchestrator.clock.scenario_min(float(meta.get("duration_ms", 0.0)))
        tokens = sum(
            int(meta.get(name, 0))
            for name in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            )
        )
        head = f"{where} cycle {meta.get('cycle')}/{run.task.cycles}"
        if meta.get("interrupted"):
            return f"{head} attempt {meta.get('attempt')} cut short: {meta.get('error', '')}"
        if meta.get("failed"):
            return f"{head} attempt {meta.get('attempt')} failed: {meta.get('error', '')}"
        cost = float(meta.get("cost_usd", 0.0))
        calls = f"{counted(int(meta['calls']), 'call')}, " if meta.get("calls") else ""
        blocked = ""
        if meta.get("blocked_ms"):
            waited = orchestrator.clock.scenario_min(float(meta["blocked_ms"]))
            blocked = f" after {format_minutes(waited)} blocked on subagents"
        used = f"{calls}{counted(tokens, 'token')}, ${cost:.4f}"
        return f"{head} done ({format_minutes(minutes)}, {used}){blocked}"
    if action == ev.TASK_COMPLETE:
        return f"{where} complete (${run.cost_usd:.4f})"
    if action == ev.TASK_FAILED:
        return f"{where} FAILED: {meta.get('error', '')}"
    if action == ev.TASK_CANCELLED:
        cause = f" by {meta['cause']}" if meta.get("cause") else ""
        return f"{where} cancelled: {meta.get('reason')}{cause}"
    if action not in ev.RESERVED:
        return f"{where} emitted {action}"
    return None


def run_began(orchestrator: Orchestrator) -> float:
    """The monotonic time the run would have begun had it never stood stopped: a resumed run's clock
    carries on from the time its earlier parts were going, rather than from zero."""
    return time.monotonic() - orchestrator.earlier_ms / 1000.0


class _Lines:
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.started = run_began(orchestrator)

    def stamp(self) -> str:
        minutes = self.orchestrator.clock.scenario_min((time.monotonic() - self.started) * 1000.0)
        return f"[{format_minutes(minutes):>10}]"


class PlainLines(_Lines):
    """One line per event on a stream (standard error when the output is not a terminal)."""

    def __init__(self, orchestrator: Orchestrator, stream: TextIO) -> None:
        super().__init__(orchestrator)
        self.stream = stream

    def __call__(self, event: Event) -> None:
        line = describe(event, self.orchestrator)
        if line is not None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(f"{self.stamp()} {printable(redact(line))}\n")
                self.stream.flush()


class RunLog(_Lines):
    """The same lines, appended to the run's ``log.txt``."""

    def __init__(self, orchestrator: Orchestrator, path: Path) -> None:
        super().__init__(orchestrator)
        self.path = path
        self._handle = path.open("a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        line = describe(event, self.orchestrator)
        if line is not None:
            self._handle.write(f"{self.stamp()} {printable(redact(line))}\n")
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class LiveView:
    """A table per lane redrawn in place on a terminal (rich)."""

    def __init__(self, orchestrator: Orchestrator, stream: TextIO) -> None:
        from rich.console import Console

        self.orchestrator = orchestrator
        self.console = Console(file=stream)
        self.started = run_began(orchestrator)
        self._task: asyncio.Task[None] | None = None
        self._live: Any = None

    def __call__(self, event: Event) -> None:
        if event.action in (ev.TASK_FAILED, ev.RUN_RESUMED):
            line = describe(event, self.orchestrator)
            if line and self._live is not None:
                self._live.console.print(printable(redact(line)), markup=False, highlight=False)

    def _table(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        orchestrator = self.orchestrator
        clock = orchestrator.clock
        now = time.monotonic()
        table = Table(box=None, expand=False, pad_edge=False)
        for column in ("lane", "task", "cycle", "state", "on task", "tokens", "cost", "done"):
            table.add_column(column, justify="right" if column in ("tokens", "cost", "on task") else "left")
        shown = 0
        for view in orchestrator.lanes.values():
            run = view.task
            if shown >= 40:
                break
            shown += 1
            if run is None:
                table.add_row(
                    view.lane,
                    "",
                    "",
                    "finished" if view.finished else "idle",
                    "",
                    "",
                    "",
                    f"{view.done}/{view.total}",
                )
                continue
            elapsed = (
                ""
                if run.task_started is None
                else f"{clock.scenario_min((now - run.task_started) * 1000):.1f} min"
            )
            table.add_row(
                view.lane,
                run.task.id,
                f"{run.cycle}/{run.task.cycles}",
                run.state,
                elapsed,
                f"{run.tokens:,}",
                f"${run.cost_usd:.3f}",
                f"{view.done}/{view.total}",
            )
        hidden = len(orchestrator.lanes) - shown
        tokens = sum(run.tokens for run in orchestrator.tasks.values())
        cost = sum(run.cost_usd for run in orchestrator.tasks.values())
        finished = sum(1 for run in orchestrator.tasks.values() if run.outcome is not None)
        minutes = clock.scenario_min((now - self.started) * 1000)
        more = f" ({counted(hidden, 'more lane', 'more lanes')})" if hidden > 0 else ""
        totals = Text(
            f"run {orchestrator.run_id}  {format_minutes(minutes)}  "
            f"{finished}/{counted(len(orchestrator.tasks), 'task')}  {counted(tokens, 'token')}  "
            f"${cost:.3f}{more}",
            style="bold",
        )
        return Group(table, totals)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            if self._live is not None:
                self._live.update(self._table(), refresh=True)

    def start(self) -> None:
        from rich.live import Live

        self._live = Live(self._table(), console=self.console, auto_refresh=False, transient=False)
        self._live.start()
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.stop()
            self._live = None
