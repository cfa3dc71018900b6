"""Guards on what a run spends and how long it takes, and the live forecast the executor keeps of both.

The executor never computes a forecast itself (that is the simulator's work, and it never imports the
simulator): it is handed a :data:`Forecaster`, a plain callable from the run's trace so far and the
scenario minutes since the run began to a forecast's JSON (the shape of
``cycleplan.workflows.forecast.Forecast.to_json()``: ``at_min``, ``finish_min_from_start``,
``cost_usd_total``, ``cost_to_complete_usd``, ``tokens_total`` as ``{p10, p50, p90}``, ``replications``,
``p_within_budget``, ``p_by_deadline``), or None for no forecast. :class:`ForecastLoop` calls it off the
event loop (one call at a time, on the newest state, after each task-level event and at least every
:data:`FORECAST_EVERY_S` seconds, never more than a fifth of the time), and the orchestrator records
each result as a ``forecast_updated`` event.

Guards (:class:`Guards`, from ``ExecuteOptions.budget_usd``, ``deadline_min`` and ``risk``):

- **warnings**: when a forecast's chance of breaking a guard (``1 - p_within_budget``,
  ``1 - p_by_deadline``) passes ``risk``, :meth:`Guards.warnings` gives a line to show on the progress
  output and in the run's log; once more only after the chance has fallen back to ``risk`` or below.
- **the budget**, independent of any forecast (:class:`BudgetGate`): before each attempt at a cycle the
  gate adds up the cost recorded so far, the expected cost of the attempts running now and the expected
  cost of this one (the dearest attempt seen so far for its role, else :func:`nominal_cycle_cost_usd`).
  Past the budget, the attempt waits for those running to end; with none running, the run stops as
  Ctrl-C stops it (resumable, nothing lost, status ``interrupted``, exit status :data:`EXIT_GUARD`), so
  it spends at most the budget plus what the attempts running went over their expected cost, which is
  one cycle's cost at most unless a cycle costs more than any of its role before it.
- **the deadline**: when the run's clock (scenario minutes since it began, the time it stood stopped
  left out) passes it, the run stops the same way, cutting short the attempts running.

This module knows the executor's events and the scenario's prices; it never imports the simulator, the
workflows or the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cycleplan.core.model import Event, ModelPrice, Role, Scenario
from cycleplan.core.prices import cost_usd, resolve
from cycleplan.core.wording import minutes
from cycleplan.executor import events as ev

Forecaster = Callable[[Sequence[Event], float], "dict[str, Any] | None"]
"""The trace so far (``forecast_updated`` events left out) and the scenario minutes since the run began ->
a forecast's JSON, or None. Called in a worker thread, one call at a time."""

BUDGET = "budget"
DEADLINE = "deadline"
"""The guards that stop a run (``guard`` in its ``run_interrupted`` event)."""

EXIT_GUARD = 4
"""Exit status of a run a guard stopped (resumable, like Ctrl-C's 130)."""

DEFAULT_RISK = 0.2
"""The chance of breaking a guard past which a forecast warns."""

FORECAST_EVERY_S = 3.0
"""A forecast at least this often (real seconds) while nothing happens."""
FORECAST_GAP = 4.0
"""After a forecast that took *d* seconds, the next starts no sooner than ``FORECAST_GAP * d`` later:
the forecaster has at most a fifth of the process, so the run's own bookkeeping keeps the rest."""
FORECAST_MIN_GAP_S = 0.2
"""And no sooner than this, however quick the forecaster."""

TRIGGERS = frozenset({ev.RUN_STARTED, ev.RUN_RESUMED, ev.TASK_STARTED, ev.TASK_RESUMED, *ev.TERMINAL})
"""Task-level events: each asks for a new forecast."""


def nominal_cycle_cost_usd(role: Role, prices: Mapping[str, ModelPrice] | None = None) -> float:
    """US dollars of a task's first cycle of ``role`` at its median tokens (the dearest cycle as a rule:
    it writes the context to the cache), counted as the simulator and the emulator count it
    (:class:`cycleplan.core.draws.Conversation` for one request a cycle,
    :func:`cycleplan.core.draws.loop_cycle` for an agent loop): what the budget gate expects of a role
    before it has seen one. 0.0 for a model without a price."""
    import numpy as np  # only a run with a budget pays for it

    from cycleplan.core.draws import Conversation, LoopState, loop_cycle

    price = resolve(role.model, dict(prices or {}))
    if price is None:
        return 0.0
    price = price.for_ttl(role.tokens.cache_ttl)
    tokens = role.tokens
    loop = role.calls
    if loop is None:
        first = Conversation(tokens.context_tokens, tokens.history_growth, tokens.cache).request(
            round(tokens.fresh_input.median), round(tokens.output.median)
        )
        return cost_usd(
            price,
            first.input_tokens,
            first.cache_creation_input_tokens,
            first.cache_read_input_tokens,
            first.output_tokens,
        )
    cycle = loop_cycle(
        LoopState.start(tokens.context_tokens, 1),
        np.array([max(float(loop.per_cycle.median), 1.0)]),
        np.array([float(loop.growth.median)]),
        np.array([float(loop.output.median)]),
        context_tokens=tokens.context_tokens,
        threshold=None,
        summary_tokens=0.0,
    )
    read, written, output = float(cycle.read[0]), float(cycle.written[0]), float(cycle.output[0])
    if tokens.cache:
        return cost_usd(price, 0, written, read, output)
    return cost_usd(price, read + written, 0, 0, output)


class BudgetGate:
    """Admits attempts at cycles while the cost recorded, the attempts running and the next one's
    expected cost stay within the budget (see the module docstring)."""

    def __init__(self, budget_usd: float, nominal_usd: Mapping[str, float]) -> None:
        self.budget_usd = budget_usd
        self.nominal_usd = dict(nominal_usd)
        self.spent_usd = 0.0
        self.dearest_usd: dict[str, float] = {}
        """The dearest attempt seen so far, per role."""
        self.reserved_usd = 0.0
        self.running = 0
        self._waiters: list[asyncio.Future[None]] = []

    def expected_usd(self, role: str) -> float:
        """What the next attempt of ``role`` is expected to cost."""
        seen = self.dearest_usd.get(role)
        return seen if seen is not None else self.nominal_usd.get(role, 0.0)

    def spent(self, role: str, cost: float) -> None:
        """An attempt of ``role`` was recorded with ``cost``."""
        self.spent_usd += cost
        if cost > self.dearest_usd.get(role, -1.0):
            self.dearest_usd[role] = cost

    async def admit(self, role: str) -> float | None:
        """Reserve the expected cost of an attempt of ``role`` (returned, for :meth:`release`) once it
        fits within the budget; None when it does not fit with no attempt running: the run must stop."""
        while True:
            expected = self.expected_usd(role)
            if self.spent_usd + self.reserved_usd + expected <= self.budget_usd:
                self.reserved_usd += expected
                self.running += 1
                return expected
            if self.running == 0:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self, reserved: float) -> None:
        """An admitted attempt ended (its cost already :meth:`spent`): wake those waiting to be admitted."""
        self.running -= 1
        self.reserved_usd = 0.0 if self.running == 0 else max(self.reserved_usd - reserved, 0.0)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


@dataclass
class Guards:
    """A run's guards: the budget gate, the deadline, and the warnings forecasts give about both."""

    budget_usd: float | None = None
    deadline_min: float | None = None
    """Scenario minutes since the run began (the time it stood stopped left out)."""
    risk: float = DEFAULT_RISK
    gate: BudgetGate | None = None
    _warned: set[str] = field(default_factory=set)

    @classmethod
    def of(
        cls, scenario: Scenario, budget_usd: float | None, deadline_min: float | None, risk: float
    ) -> Guards:
        gate = None
        if budget_usd is not None:
            nominal = {
                name: nominal_cycle_cost_usd(role, scenario.prices) for name, role in scenario.roles.items()
            }
            gate = BudgetGate(budget_usd, nominal)
        return cls(budget_usd, deadline_min, risk, gate)

    def seed(self, trace: Iterable[Event], role_of: Mapping[str, str]) -> None:
        """What the earlier parts of a resumed run spent, and the dearest attempt of each role they saw."""
        if self.gate is None:
            return
        for event in trace:
            if event.action == ev.CYCLE_COMPLETED:
                cost = event.metadata.get("cost_usd")
                if isinstance(cost, int | float) and not isinstance(cost, bool):
                    self.gate.spent(role_of.get(event.target_id, ""), float(cost))

    def warnings(self, forecast: Mapping[str, Any], now_min: float) -> list[str]:
        """Lines to show for ``forecast``: each guard whose chance of being broken has just passed
        :attr:`risk`."""
        lines: list[str] = []
        checks = (
            (BUDGET, self.budget_usd, forecast.get("p_within_budget")),
            (DEADLINE, self.deadline_min, forecast.get("p_by_deadline")),
        )
        for guard, limit, within in checks:
            if limit is None or not isinstance(within, int | float) or isinstance(within, bool):
                continue
            chance = 1.0 - float(within)
            if chance <= self.risk:
                self._warned.discard(guard)
                continue
            if guard in self._warned:
                continue
            self._warned.add(guard)
            if guard == BUDGET:
                cost = _band(forecast.get("cost_usd_total"))
                median = f" (forecast total P50 ${cost[1]:,.2f}, P90 ${cost[2]:,.2f})" if cost else ""
                lines.append(
                    f"warning: a {chance:.0%} chance this run costs more than its budget of ${limit:,.2f}"
                    f"{median}; it stops before it spends past it (--risk {self.risk:g})"
                )
            else:
                finish = _band(forecast.get("finish_min_from_start"))
                median = ""
                if finish:
                    median = f" (forecast finish P50 at {minutes(finish[1])}, "
                    median += f"P90 at {minutes(finish[2])})"
                lines.append(
                    f"warning: a {chance:.0%} chance this run is not done by its deadline of "
                    f"{minutes(limit)}{median}; it stops there (--risk {self.risk:g})"
                )
        return lines


def _band(value: Any) -> tuple[float, float, float] | None:
    """``(p10, p50, p90)`` of a band's JSON, or None when it is not one."""
    if not isinstance(value, Mapping):
        return None
    try:
        band = (float(value["p10"]), float(value["p50"]), float(value["p90"]))
    except (KeyError, TypeError, ValueError):
        return None
    return band if all(math.isfinite(part) for part in band) else None


class ForecastLoop:
    """Calls a :data:`Forecaster` in a worker thread while a run goes: one call at a time, on the newest
    state (what happened during a call is forecast by the next), after each :meth:`due` and at least every
    :data:`FORECAST_EVERY_S` seconds, spaced by :data:`FORECAST_GAP` times the last call's length."""

    def __init__(
        self,
        forecaster: Forecaster,
        snapshot: Callable[[], tuple[Sequence[Event], float]],
        publish: Callable[[dict[str, Any], float], None],
        failed: Callable[[str], None],
        *,
        every_s: float = FORECAST_EVERY_S,
    ) -> None:
        self.forecaster = forecaster
        self.snapshot = snapshot
        self.publish = publish
        self.failed = failed
        self.every_s = every_s
        self.calls = 0
        self._due: asyncio.Event | None = None
        self._reported = False

    def due(self) -> None:
        """Something happened: forecast again as soon as the spacing allows."""
        if self._due is not None:
            self._due.set()

    async def run(self) -> None:
        self._due = asyncio.Event()
        self._due.set()
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a cancel that comes in the step
            # the wait ends (the run's last event makes a forecast due, and the run's end cancels this
            # loop and waits for it: it would wait for ever).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every_s):
                    await self._due.wait()
            self._due.clear()
            trace, now_min = self.snapshot()
            began = time.monotonic()
            try:
                result = await asyncio.to_thread(self.forecaster, trace, now_min)
            except Exception as exc:  # a forecaster's bug must never stop a run
                if not self._reported:
                    self._reported = True
                    self.failed(f"forecast failed: {type(exc).__name__}: {exc}")
                result = None
            took = time.monotonic() - began
            self.calls += 1
            if isinstance(result, dict):
                self.publish(result, now_min)
            await asyncio.sleep(max(FORECAST_MIN_GAP_S, FORECAST_GAP * took))
