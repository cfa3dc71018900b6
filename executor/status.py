"""Where a run stands, read from the store: what ``cycleplan status RUN`` shows, from another terminal.

:func:`run_state` reads a run (running, stopped, interrupted or finished) through the store opened
read-only, while its executor may still be writing it: its status as a listing shows it, tasks and lanes
done, tokens and cost so far, how long it has been going on the scenario's clock, its guards and the
latest forecast its executor recorded (a ``forecast_updated`` event, :mod:`.guards`). Plain data, ready
for JSON; the terminal's view of it belongs to presentation. It reads events only and changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

from cycleplan.core.model import Plan
from cycleplan.executor import events as ev
from cycleplan.executor.replay import replay
from cycleplan.executor.summary import running_ms
from cycleplan.store.catalog import shown_status
from cycleplan.store.runs import RunStore, StoreError

FORECAST_BANDS = ("finish_min_from_start", "cost_usd_total", "cost_to_complete_usd", "tokens_total")
"""The forecast's bands (``{p10, p50, p90}``) ``status`` passes on."""


def run_state(store: RunStore, ref: str) -> dict[str, Any]:
    """The state of the run ``ref`` names (an id, a unique beginning of one, ``latest``), with
    ``forecast`` None when no forecast was recorded. :class:`StoreError` for a run that is not there."""
    run_id = store.resolve(ref)
    record = store.run(run_id)
    trace = store.trace(run_id)
    status = shown_status(store, record)
    options = record.options or {}
    time_scale = float(options.get("time_scale", 1.0) or 1.0)
    try:
        plan: Plan | None = Plan.model_validate_json(record.plan_json)
    except ValueError:
        plan = None
    task_ids = [task.id for task in plan.scenario.all_tasks()] if plan is not None else []
    progress = replay(trace, task_ids)
    ended = {task for task, done in progress.tasks.items() if done.ended is not None}
    outcomes = {"complete": 0, "failed": 0, "cancelled": 0}
    for done in progress.tasks.values():
        if done.ended is not None:
            outcomes[done.ended.removeprefix("task_")] += 1
    running = sum(1 for done in progress.tasks.values() if done.started and done.ended is None)
    lanes = plan.lanes if plan is not None else []
    lanes_done = sum(1 for lane in lanes if all(planned.task in ended for planned in lane.tasks))

    work = [event for event in trace if event.action != ev.FORECAST_UPDATED]
    elapsed_ms = running_ms(work)
    if status == "running" and work:
        # Still going: up to now, not to its last event.
        elapsed_ms += max(time.time() * 1000.0 - work[-1].timestamp, 0.0)
    forecast_event = next((e for e in reversed(trace) if e.action == ev.FORECAST_UPDATED), None)
    stopped = next(
        (e for e in reversed(trace) if e.action in (ev.RUN_INTERRUPTED, ev.RUN_RESUMED, ev.RUN_COMPLETE)),
        None,
    )
    guards = {
        name: options[name]
        for name in ("budget_usd", "deadline_min")
        if isinstance(options.get(name), int | float)
    }
    if guards:
        guards["risk"] = options.get("risk")
    state: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "agent": record.agent,
        "scenario": record.scenario,
        "time_scale": time_scale,
        "elapsed_min": elapsed_ms * time_scale / 60_000.0,
        "tasks": {"total": len(task_ids), "running": running, **outcomes},
        "lanes": {"total": len(lanes), "done": lanes_done},
        "tokens_total": sum(done.tokens for done in progress.tasks.values()),
        "cost_usd": sum(done.cost_usd for done in progress.tasks.values()),
        "guards": guards,
        "forecast": None if forecast_event is None else _forecast(forecast_event.metadata, guards),
    }
    if forecast_event is not None:
        state["forecast"]["recorded_ms"] = forecast_event.timestamp
    if stopped is not None and stopped.action == ev.RUN_INTERRUPTED and stopped.metadata.get("guard"):
        state["stopped_by"] = {
            key: value for key, value in stopped.metadata.items() if key not in ("action", "resume")
        }
    return state


def _forecast(metadata: dict[str, Any], guards: dict[str, Any]) -> dict[str, Any]:
    """A recorded forecast as ``status`` passes it on: its bands, when it was made, and the chance of
    keeping each guard the run was given."""
    shown: dict[str, Any] = {"at_min": metadata.get("at_min")}
    for name in FORECAST_BANDS:
        if isinstance(metadata.get(name), dict):
            shown[name] = metadata[name]
    if "replications" in metadata:
        shown["replications"] = metadata["replications"]
    for chance, guard in (("p_within_budget", "budget_usd"), ("p_by_deadline", "deadline_min")):
        if metadata.get(chance) is not None or guard in guards:
            shown[chance] = metadata.get(chance)
    return shown


__all__ = ["FORECAST_BANDS", "StoreError", "run_state"]
