"""The seed's coordination helpers made real: watchFor, waitForAll and raceForFirst over committed events.

:class:`EventBoard` holds the events of one run that are already committed to the store (the recorder
publishes an event here only after the store has it) and the futures of coroutines waiting for some.
A waiter is woken by an event that is durable, never by one that a crash could still lose. Knows
nothing of SQLite, backends or plans.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cycleplan.core.model import Event

Predicate = Callable[[Event], bool]


def _matches(event: Event, action: str | None, target: str | None, predicate: Predicate | None) -> bool:
    if action is not None and event.action != action:
        return False
    if target is not None and event.target_id != target:
        return False
    return predicate is None or predicate(event)


@dataclass
class _Watcher:
    action: str | None
    target: str | None
    predicate: Predicate | None
    future: asyncio.Future[Event]

    def matches(self, event: Event) -> bool:
        return _matches(event, self.action, self.target, self.predicate)


class EventBoard:
    """Committed events of one run, indexed by action, and the coroutines waiting for them."""

    def __init__(self) -> None:
        self._by_action: dict[str, list[Event]] = {}
        self._watchers: list[_Watcher] = []
        self.count = 0

    def publish(self, event: Event) -> None:
        """Make a committed event visible and wake every watcher it satisfies."""
        self._by_action.setdefault(event.action, []).append(event)
        self.count += 1
        if not self._watchers:
            return
        keep: list[_Watcher] = []
        for watcher in self._watchers:
            if watcher.future.done():
                continue
            if watcher.matches(event):
                watcher.future.set_result(event)
            else:
                keep.append(watcher)
        self._watchers = keep

    def find(
        self, action: str | None = None, target: str | None = None, predicate: Predicate | None = None
    ) -> Event | None:
        """The first committed event matching all the given conditions, if any."""
        pools: Iterable[list[Event]] = (
            [self._by_action.get(action, [])] if action is not None else self._by_action.values()
        )
        for pool in pools:
            for event in pool:
                if _matches(event, action, target, predicate):
                    return event
        return None

    def watch_for(
        self, action: str | None = None, target: str | None = None, predicate: Predicate | None = None
    ) -> asyncio.Future[Event]:
        """A future for the first event matching the conditions (already done if one is committed)."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        found = self.find(action, target, predicate)
        if found is not None:
            future.set_result(found)
        else:
            self._watchers.append(_Watcher(action, target, predicate, future))
        return future

    def watch_next(
        self, action: str | None = None, target: str | None = None, predicate: Predicate | None = None
    ) -> asyncio.Future[Event]:
        """A future for the next matching event to be committed (those already here do not count)."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._watchers.append(_Watcher(action, target, predicate, future))
        return future

    async def wait_for_all(self, actions: Iterable[str]) -> list[Event]:
        """The seed's ``waitForAll``: one event for each action, once all have been committed."""
        return list(await asyncio.gather(*(self.watch_for(action) for action in actions)))

    async def race_for_first(self, actions: Iterable[str]) -> Event:
        """The seed's ``raceForFirst``: the first event committed among the given actions."""
        futures = [self.watch_for(action) for action in actions]
        try:
            done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
            return min((f.result() for f in done), key=lambda e: e.timestamp)
        finally:
            for future in futures:
                future.cancel()
