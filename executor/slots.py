"""Capacity shared by tasks: the scenario's renewable resources and ``max_parallel``.

A unit (a task, or a race group's members together) takes all the units it needs at once or none (no
unit holds some while waiting for others, so slots alone cannot deadlock) and keeps them until it ends,
as :mod:`cycleplan.core.rules` says. Units are served in the plan's order (:attr:`DispatchUnit.priority`):
every unit not yet started is *reserved* with its demand, and a unit does not take units of a capacity
that a reserved unit of higher priority also needs, even when they are free, as the simulator and the
plan do. A unit that ends without starting is withdrawn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from cycleplan.core.rules import PARALLEL, blocked_by_earlier

__all__ = ["PARALLEL", "Slots"]


@dataclass(order=True)
class _Waiter:
    priority: tuple[float, int]
    demand: dict[str, int] = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class Slots:
    """Units of named capacities, granted all-or-nothing in priority order."""

    def __init__(self, capacities: Mapping[str, int]) -> None:
        self.capacity = dict(capacities)
        self.free = dict(capacities)
        self._waiters: list[_Waiter] = []
        self._reserved: dict[tuple[float, int], dict[str, int]] = {}
        """Units not started yet (priority -> demand): capacity they need is theirs first."""

    def reserve(self, priority: tuple[float, int], demand: Mapping[str, int]) -> None:
        """Keep what ``demand`` needs for the unit of ``priority`` before any unit after it."""
        if demand:
            self._reserved[priority] = dict(demand)

    def withdraw(self, priority: tuple[float, int]) -> None:
        """The unit of ``priority`` will not start (it was cancelled, or ended in an earlier part of the
        run): later units may take what it would have."""
        if self._reserved.pop(priority, None) is not None:
            self._grant()

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

    def acquire(self, demand: Mapping[str, int], priority: tuple[float, int]) -> asyncio.Future[None]:
        """A future done once ``demand`` is granted: at once when it fits and no unit of higher priority
        needs the same capacities first. Asking withdraws the unit's reservation when it needs nothing."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not demand:
            self.withdraw(priority)
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
            if self._fits(waiter.demand) and not blocked_by_earlier(
                waiter.demand, waiter.priority, self._reserved
            ):
                self._take(waiter.demand)
                self._reserved.pop(waiter.priority, None)
                waiter.future.set_result(None)
            else:
                waiting.append(waiter)
        self._waiters = waiting
