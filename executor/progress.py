"""Progress while a run goes, as text: plain lines for pipes and CI logs, and the run's log.

The live table drawn in place on a terminal belongs to presentation (:mod:`cycleplan.present.live`), which
reads the same orchestrator state and describes events with :func:`describe`. :class:`PlainLines` writes
one line per task-level event and per cycle, the first live forecast and then one a minute
(:func:`.forecast_words.forecast_line`), and the warnings of the run's guards (:mod:`.guards`).
:class:`RunLog` appends the same lines to the run's ``log.txt``. Every line is redacted of secrets and
made printable (an agent's error may carry escape sequences) before it is shown or logged. Both read the
orchestrator's state and its events; neither changes anything. Times shown are scenario minutes (real
minutes, unless the run is a time-scaled rehearsal) since the run began; a resumed run's carry on from
the time its earlier parts were going (the time it stood stopped left out, as in its summary).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cycleplan.core.model import Event
from cycleplan.core.printable import printable
from cycleplan.core.wording import counted, minutes
from cycleplan.executor import events as ev
from cycleplan.executor.forecast_words import forecast_line
from cycleplan.executor.secrets import redact

if TYPE_CHECKING:
    from cycleplan.executor.orchestrator import Orchestrator


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
        if meta.get("guard"):
            return (
                f"run {event.group_id} stopped by its {meta['guard']}: {meta.get('message', '')}; "
                "its unfinished tasks wait for --resume"
            )
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
        took = orchestrator.clock.scenario_min(float(meta.get("duration_ms", 0.0)))
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
            blocked = f" after {minutes(waited)} blocked on subagents"
        used = f"{calls}{counted(tokens, 'token')}, ${cost:.4f}"
        return f"{head} done ({minutes(took)}, {used}){blocked}"
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


FORECAST_EVERY_S = 60.0
"""The plain lines and the log show the first forecast and then at most one a minute (real seconds): the
executor forecasts every few seconds, which a log read afterwards does not need."""


class _Lines:
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.started = run_began(orchestrator)
        self._forecast_shown: float | None = None

    def since_min(self) -> float:
        return self.orchestrator.clock.scenario_min((time.monotonic() - self.started) * 1000.0)

    def stamp(self) -> str:
        return f"[{minutes(self.since_min()):>10}]"

    def line(self, event: Event) -> str | None:
        """The line for ``event``: :func:`describe`'s, or a forecast's when one is due."""
        if event.action != ev.FORECAST_UPDATED:
            return describe(event, self.orchestrator)
        now = time.monotonic()
        if self._forecast_shown is not None and now - self._forecast_shown < FORECAST_EVERY_S:
            return None
        self._forecast_shown = now
        at = event.metadata.get("at_min")
        since = float(at) if isinstance(at, int | float) else self.since_min()
        return forecast_line(event.metadata, since, self.orchestrator.clock.time_scale)


class PlainLines(_Lines):
    """One line per event on a stream (standard error when the output is not a terminal), and the
    warnings of the run's guards."""

    def __init__(self, orchestrator: Orchestrator, stream: TextIO) -> None:
        super().__init__(orchestrator)
        self.stream = stream

    def __call__(self, event: Event) -> None:
        line = self.line(event)
        if line is not None:
            self.warn(line)

    def warn(self, line: str) -> None:
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
        line = self.line(event)
        if line is not None:
            self.warn(line)

    def warn(self, line: str) -> None:
        self._handle.write(f"{self.stamp()} {printable(redact(line))}\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
