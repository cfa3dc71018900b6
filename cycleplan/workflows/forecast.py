"""A live forecast of a run: when it will finish and what it will have cost, from its events so far.

    >>> from cycleplan.workflows.forecast import forecast
    >>> outlook = forecast(plan, trace, now_min=42.0, budget_usd=5.0)
    >>> outlook.finish_min_from_start.p50, outlook.p_within_budget

What this module owns:

- :class:`Band` (P10, P50, P90) and :class:`Forecast`, which saves to plain JSON and loads back (the
  executor records it as a ``forecast_updated`` event; ``status --json`` shows it);
- :func:`standing`: what a trace says of where a run stands, on the scenario's clock (a rehearsal's
  times stretched back by its time scale and the stretches it stood stopped taken out, as
  :func:`cycleplan.executor.summary.scenario_trace` does), with the dollars and tokens recorded so far
  and, under rate limits, the requests the limits have served (each one-request attempt served at its
  end less its duration, having waited its ``rate_limit_wait_ms``), from which the forecast replays
  what the buckets hold, and the pace they were served at (:func:`cycleplan.sim.forecast.served_pace`);
- :func:`forecast`: the rest simulated from that state (:func:`cycleplan.sim.forecast.outlook`), added
  to what has been spent, and the chances of keeping within a budget and a deadline.

A run that is over (``run_complete`` recorded) is its actuals, with bands of no width. Events it does not
know (``forecast_updated``, ``progress_update``...) are read past. It computes and returns; it draws
nothing and writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cycleplan.core.metrics import MS_PER_MIN, USAGE_FIELDS
from cycleplan.core.model import Event, Plan
from cycleplan.executor import events as ev
from cycleplan.executor.summary import scenario_trace
from cycleplan.sim.forecast import Grant, RunState, TaskState, outlook, served_pace

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Band:
    """P10, P50 and P90 of one forecast quantity."""

    p10: float
    p50: float
    p90: float

    @classmethod
    def of(cls, values: FloatArray) -> Band:
        p10, p50, p90 = (float(value) for value in np.percentile(values, [10, 50, 90]))
        return cls(p10=p10, p50=p50, p90=p90)

    @classmethod
    def exactly(cls, value: float) -> Band:
        """A band of no width: what is known."""
        return cls(p10=value, p50=value, p90=value)

    @property
    def width(self) -> float:
        return self.p90 - self.p10

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies within P10-P90 (edges included)."""
        return self.p10 <= value <= self.p90

    def to_json(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Band:
        return cls(p10=float(data["p10"]), p50=float(data["p50"]), p90=float(data["p90"]))


@dataclass(frozen=True)
class Forecast:
    """Where a run is going, as seen ``at_min`` scenario minutes after it began."""

    at_min: float
    """Scenario minutes since the run began when the forecast was made."""
    finish_min_from_start: Band
    """When the run will finish, in scenario minutes since its start."""
    cost_usd_total: Band
    """Dollars spent so far plus the cost to complete."""
    cost_to_complete_usd: Band
    tokens_total: Band
    """Tokens spent so far plus those still to spend."""
    replications: int
    """Replications simulated; 0 for a run that is over (nothing is left to simulate)."""
    p_within_budget: float | None = None
    """Share of replications whose total cost is within the budget (None: no budget given)."""
    p_by_deadline: float | None = None
    """Share of replications that finish by the deadline (None: no deadline given)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: the fields above, bands as ``{"p10", "p50", "p90"}``."""
        return {
            "at_min": self.at_min,
            "finish_min_from_start": self.finish_min_from_start.to_json(),
            "cost_usd_total": self.cost_usd_total.to_json(),
            "cost_to_complete_usd": self.cost_to_complete_usd.to_json(),
            "tokens_total": self.tokens_total.to_json(),
            "replications": self.replications,
            "p_within_budget": self.p_within_budget,
            "p_by_deadline": self.p_by_deadline,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Forecast:
        def chance(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else float(value)

        return cls(
            at_min=float(data["at_min"]),
            finish_min_from_start=Band.from_json(data["finish_min_from_start"]),
            cost_usd_total=Band.from_json(data["cost_usd_total"]),
            cost_to_complete_usd=Band.from_json(data["cost_to_complete_usd"]),
            tokens_total=Band.from_json(data["tokens_total"]),
            replications=int(data["replications"]),
            p_within_budget=chance("p_within_budget"),
            p_by_deadline=chance("p_by_deadline"),
        )


@dataclass(frozen=True)
class Standing:
    """What a trace says of its run at a moment: the state the rest is simulated from, and what has been
    spent (every attempt recorded, failed and interrupted ones included)."""

    state: RunState
    spent_usd: float
    spent_tokens: int
    finished_min: float | None
    """When the run ended (``run_complete``), in scenario minutes since its start; None while it runs."""


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return default


def standing(plan: Plan, trace: Sequence[Event], now_min: float) -> Standing:
    """Where the run of ``plan`` with events ``trace`` (as the executor records them, or a simulated
    trace) stands ``now_min`` scenario minutes after it began."""
    if not trace:
        return Standing(RunState(now_min=max(now_min, 0.0)), 0.0, 0, None)
    header = trace[0].metadata if trace[0].action == ev.RUN_STARTED else {}
    scaled = scenario_trace(trace, _number(header.get("time_scale"), 1.0))
    origin = scaled[0].timestamp
    tasks = {task.id: task for task in plan.scenario.all_tasks()}
    published = {event for task in tasks.values() for event in task.emits}

    taken: dict[str, float] = {}
    ended: dict[str, float] = {}
    done: dict[str, int] = {}
    failed: dict[tuple[str, int], int] = {}
    seen: dict[str, float] = {}
    emitted: dict[str, float] = {}
    grants: list[Grant] = []
    limited = plan.scenario.rate_limits is not None
    spent_usd = 0.0
    spent_tokens = 0
    finished: float | None = None
    stopped = False
    last = 0.0
    for event in scaled:
        at = (event.timestamp - origin) / MS_PER_MIN
        last = max(last, at)
        action = event.action
        task = event.target_id
        meta = event.metadata
        if action == ev.CYCLE_COMPLETED:
            get = meta.get
            spent_usd += float(get("cost_usd") or 0.0)
            spent_tokens += sum(int(get(name) or 0) for name in USAGE_FIELDS)
            cycle = int(get("cycle") or 0)
            if not get("failed", False):
                done[task] = max(done.get(task, 0), cycle)
            elif not get("interrupted", False):
                failed[(task, cycle)] = failed.get((task, cycle), 0) + 1
            seen[task] = at
            if limited:
                grant = _grant(meta, at)
                if grant is not None:
                    grants.append(grant)
        elif action == ev.TASK_STARTED:
            taken.setdefault(task, at)
            seen[task] = at
        elif action == ev.TASK_RESUMED:
            seen[task] = at
        elif action in ev.TERMINAL:
            ended.setdefault(task, at)
        elif action == ev.RUN_COMPLETE:
            finished = at
        elif action == ev.RUN_INTERRUPTED:
            stopped = True
        elif action == ev.RUN_RESUMED:
            stopped = False
        elif action in published and task in tasks:
            emitted.setdefault(action, at)
            seen[task] = at
    now = max(now_min, last)

    states: dict[str, TaskState] = {}
    children: dict[tuple[str, int], list[str]] = {}
    for planned in tasks.values():
        if planned.spawned_by is not None:
            children.setdefault((planned.spawned_by.task, planned.spawned_by.cycle), []).append(planned.id)
    for name in sorted(set(taken) | set(ended)):
        work = tasks.get(name)
        if work is None:
            continue
        if name in ended:
            states[name] = TaskState(
                taken_min=taken.get(name, ended[name]),
                end_min=ended[name],
                cycles_done=done.get(name, 0),
            )
            continue
        cycle = done.get(name, 0) + 1
        since: float | None = None if stopped else seen.get(name, taken[name])
        awaited = [event for event, before in work.waits.items() if before == cycle]
        if since is not None and awaited:
            if all(event in emitted for event in awaited):
                handoff = plan.scenario.role(work.role).sync.minutes * len(awaited)
                since = max(since, max(emitted[event] for event in awaited) + handoff)
            else:
                since = None  # it holds its lane waiting for an event
        spawned = children.get((name, cycle), [])
        if since is not None and spawned:
            if all(child in ended for child in spawned):
                since = max(since, max(ended[child] for child in spawned))
            else:
                since = None  # blocked on its subagents
        states[name] = TaskState(
            taken_min=taken[name],
            cycles_done=done.get(name, 0),
            attempts_failed=failed.get((name, cycle), 0),
            working_since_min=None if since is None else min(since, now),
        )
    pace = served_pace(grants, plan.scenario.rate_limits)
    return Standing(
        RunState(now_min=now, tasks=states, emitted=emitted, pace=pace, grants=tuple(grants)),
        spent_usd,
        spent_tokens,
        finished,
    )


def _grant(meta: Mapping[str, Any], end_min: float) -> Grant | None:
    """The request of a recorded attempt, as the rate limits served it; None for an attempt of several
    requests (an agent loop's, Claude Code's), whose requests' own times the event does not hold."""
    get = meta.get
    if int(get("calls") or 1) > 1 or int(get("api_calls") or 1) > 1 or get("interrupted", False):
        return None
    granted = end_min - _number(get("duration_ms"), 0.0) / MS_PER_MIN
    waited = _number(get("rate_limit_wait_ms"), 0.0) / MS_PER_MIN
    return Grant(
        arrived_min=granted - waited,
        granted_min=granted,
        counted_input=float(get("input_tokens") or 0) + float(get("cache_creation_input_tokens") or 0),
        output=float(get("output_tokens") or 0),
    )


def forecast(
    plan: Plan,
    trace: Sequence[Event],
    now_min: float,
    *,
    replications: int = 1000,
    seed: int = 0,
    budget_usd: float | None = None,
    deadline_min: float | None = None,
) -> Forecast:
    """Forecast the run of ``plan`` whose events so far are ``trace``, ``now_min`` scenario minutes
    after it began: finish time, total cost, cost to complete and total tokens (P10/P50/P90 over
    ``replications`` replications from ``seed``), and the chances of a total cost within ``budget_usd``
    and of finishing by ``deadline_min`` (scenario minutes since the start), when given."""
    stands = standing(plan, trace, now_min)
    at = stands.state.now_min
    if stands.finished_min is not None:
        finish = np.full(1, stands.finished_min)
        to_complete = np.zeros(1)
        tokens_left = np.zeros(1)
        count = 0
    else:
        rest = outlook(plan, stands.state, replications=replications, seed=seed)
        finish, to_complete, tokens_left = rest.finish_min, rest.cost_usd, rest.tokens
        count = replications
    total = stands.spent_usd + to_complete
    return Forecast(
        at_min=at,
        finish_min_from_start=Band.of(finish),
        cost_usd_total=Band.of(total),
        cost_to_complete_usd=Band.of(to_complete),
        tokens_total=Band.of(stands.spent_tokens + tokens_left),
        replications=count,
        p_within_budget=None if budget_usd is None else float(np.mean(total <= budget_usd)),
        p_by_deadline=None if deadline_min is None else float(np.mean(finish <= deadline_min)),
    )


__all__ = ["Band", "Forecast", "Standing", "forecast", "standing"]
