"""The live view of a run on a terminal: a table redrawn in place (with rich) while the executor goes.

One row per lane, subagent lanes among them: its task, cycle k/n, state (``subagents`` while a task is
blocked on those it spawned), time on the task, tokens and cost; a footer with the run's totals; failed
tasks, resumptions and the guards' warnings printed above the table as they happen; under it, the latest
forecast the executor recorded (finish as clock time and minutes from now, total cost, P10-P50-P90, and
the chances of keeping the budget and the deadline). It reads the orchestrator's state and its
events and changes nothing. Passed to :func:`cycleplan.executor.run.execute` as ``live=LiveTable``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, TextIO

from cycleplan.core.model import Event
from cycleplan.core.printable import printable
from cycleplan.core.wording import counted, minutes
from cycleplan.executor import events as ev
from cycleplan.executor.forecast_words import forecast_line
from cycleplan.executor.progress import describe, run_began
from cycleplan.executor.secrets import redact

if TYPE_CHECKING:
    from cycleplan.executor.orchestrator import Orchestrator

REFRESH_S = 0.25
"""How often the table is redrawn, in seconds."""


class LiveTable:
    """A table per lane redrawn in place on a terminal (rich)."""

    def __init__(self, orchestrator: Orchestrator, stream: TextIO) -> None:
        from rich.console import Console

        self.orchestrator = orchestrator
        self.console = Console(file=stream)
        self.started = run_began(orchestrator)
        self._task: asyncio.Task[None] | None = None
        self._live: Any = None

    def __call__(self, event: Event) -> None:
        if event.action in (ev.TASK_FAILED, ev.RUN_RESUMED, ev.RUN_INTERRUPTED):
            line = describe(event, self.orchestrator)
            if line:
                self.warn(line)

    def warn(self, line: str) -> None:
        """A line above the table (a failure, a resumption, a guard's warning or stop)."""
        if self._live is not None:
            self._live.console.print(printable(redact(line)), markup=False, highlight=False)

    def _forecast(self, since: float) -> Any:
        """The latest forecast under the lanes (:func:`forecast_line`)."""
        from rich.text import Text

        forecast = self.orchestrator.forecast
        line = forecast_line(forecast, since, self.orchestrator.clock.time_scale) if forecast else None
        return None if line is None else Text(line)

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
        since = clock.scenario_min((now - self.started) * 1000)
        more = f" ({counted(hidden, 'more lane', 'more lanes')})" if hidden > 0 else ""
        totals = Text(
            f"run {orchestrator.run_id}  {minutes(since)}  "
            f"{finished}/{counted(len(orchestrator.tasks), 'task')}  {counted(tokens, 'token')}  "
            f"${cost:.3f}{more}",
            style="bold",
        )
        forecast = self._forecast(since)
        return Group(table, totals) if forecast is None else Group(table, totals, forecast)

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
