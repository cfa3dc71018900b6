"""Capacity shared by tasks: the scenario's renewable resources and ``max_parallel``.

A task takes all the units it needs at once or none (no task holds some while waiting for others, so
slots alone cannot deadlock) and gives them back when it ends or while it waits for an event. Waiting
tasks are served in the plan's order (planned start, then task id); a later task that fits is let
through while an earlier one waits for more units than are free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

PARALLEL = "max_parallel"
"""The name under which ``max_parallel`` is counted among the resources."""


@dataclass(order=True)
class _Waiter:
    priority: tuple[float, str]
    demand: dict[str, int] = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class Slots:
    """Units of named capacities, granted all-or-nothing in priority order."""

    def __init__(self, capacities: Mapping[str, int]) -> None:
        self.capacity = dict(capacities)
        self.free = dict(capacities)
        self._waiters: list[_Waiter] = []

    def demand_of(self, requires: Mapping[str, int], *, parallel: bool) -> dict[str, int]:
        """The units a task takes: its ``requires`` (capped at capacity) and one of ``max_parallel``."""
        demand = {
            name: min(units, self.capacity[name]) for name, units in requires.items() if name in self.capacity
        }
        if parallel and PARALLEL in self.capacity:
            demand[PARALLEL] = 1
        return demand

    def _fits(self, demand: Mapping[str, int]) -> bool:
        return all(self.free[name] >= units for name, units in demand.items())

    def _take(self, demand: Mapping[str, int]) -> None:
        for name, units in demand.items():
            self.free[name] -= units

    def acquire(self, demand: Mapping[str, int], priority: tuple[float, str]) -> asyncio.Future[None]:
        """A future done once ``demand`` is granted (at once when it fits and nobody waits before it)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not demand:
            future.set_result(None)
            return future
        self._waiters.append(_Waiter(priority, dict(demand), future))
        self._waiters.sort()
        self._grant()
        return future

    def release(self, demand: Mapping[str, int]) -> None:
        for name, units in demand.items():
            self.free[name] += units
        self._grant()

    def cancel(self, future: asyncio.Future[None], demand: Mapping[str, int]) -> None:
        """Withdraw a request; if it had been granted already, give its units back."""
        granted = future.done() and not future.cancelled()
        self._waiters = [w for w in self._waiters if w.future is not future]
        if not future.done():
            future.cancel()
        if granted:
            self.release(demand)

    def _grant(self) -> None:
        waiting: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if self._fits(waiter.demand):
                self._take(waiter.demand)
                waiter.future.set_result(None)
            else:
                waiting.append(waiter)
        self._waiters = waiting
