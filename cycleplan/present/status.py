"""What ``cycleplan status`` prints: a run's state and its latest forecast, as text.

A function from :func:`cycleplan.executor.status.run_state`'s data to a rich renderable; it computes
nothing the state does not hold (minutes from now are the forecast's minus the run's clock).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from cycleplan.core.wording import minutes
from cycleplan.executor.forecast_words import band_text, chances, minutes_left
from cycleplan.present.terminal import Verbosity, facts, heading, legend

UNFINISHED = frozenset({"running", "stopped", "interrupted"})
"""Statuses of a run with a finish still ahead: its forecast says how far, from the run's clock."""


def forecast_lines(
    forecast: dict[str, Any], elapsed_min: float, *, ahead: bool = True
) -> list[tuple[str, str]]:
    """Label-value rows of a forecast: finish P10-P50-P90 from the start and, for a run not over
    (``ahead``), from now, total cost, and the chances of keeping the guards given."""
    finish = forecast.get("finish_min_from_start")
    rows = [("finish", f"{band_text(finish, False)} since the start (P10-P50-P90)")]
    if ahead and isinstance(finish, dict):
        left = minutes_left(finish, elapsed_min)
        rows.append(("", "in " + " - ".join(minutes(part) for part in left) + " from now"))
    rows.append(("total cost", band_text(forecast.get("cost_usd_total"), True)))
    rows += [(label, f"{chance:.0%} chance") for label, chance in chances(forecast)]
    return rows


def status_view(state: dict[str, Any], verbosity: Verbosity = Verbosity.NORMAL) -> RenderableType:
    """The run's status, progress, spend and clock, its guards and its latest forecast."""
    tasks = state["tasks"]
    lanes = state["lanes"]
    rows: list[tuple[str, RenderableType]] = [
        ("status", state["status"]),
        (
            "tasks",
            f"{tasks['complete']} complete, {tasks['failed']} failed, {tasks['cancelled']} cancelled, "
            f"{tasks['running']} running of {tasks['total']}",
        ),
        ("lanes", f"{lanes['done']} of {lanes['total']} done"),
        ("tokens", f"{state['tokens_total']:,}"),
        ("cost", f"${state['cost_usd']:,.4f}"),
        ("elapsed", minutes(state["elapsed_min"])),
    ]
    guards = state.get("guards") or {}
    if "budget_usd" in guards:
        rows.append(("budget", f"${guards['budget_usd']:,.2f}"))
    if "deadline_min" in guards:
        rows.append(("deadline", minutes(guards["deadline_min"])))
    stopped = state.get("stopped_by")
    if stopped:
        rows.append(("stopped", f"by its {stopped.get('guard')}: {stopped.get('message', '')}"))
    parts: list[RenderableType] = [
        heading(f"run {state['run_id']} ({state['agent']}, {state['scenario']})"),
        facts(rows, indent=2),
    ]
    forecast = state.get("forecast")
    if forecast:
        parts.append(heading(f"forecast at {minutes(float(forecast.get('at_min') or 0.0))}"))
        ahead = state["status"] in UNFINISHED
        parts.append(facts(forecast_lines(forecast, state["elapsed_min"], ahead=ahead), indent=2))
    else:
        parts.append(Text("no forecast recorded"))
    if verbosity > Verbosity.QUIET and state.get("time_scale", 1.0) != 1.0:
        parts.append(legend(f"a rehearsal at time scale {state['time_scale']:g}: minutes are the scenario's"))
    return Group(*parts)
