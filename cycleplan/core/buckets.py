"""Organisation-wide rate limits: token buckets for requests, input tokens and output tokens per minute.

One arithmetic for both sides of a rate limit: the simulator's engine and forecast ask these buckets,
and so does the executor's emulator, which answers the requests they refuse with 429
(:mod:`cycleplan.executor.buckets` adds the API's header view). Every agent of a run draws from the same
buckets. A bucket holds at most one minute's allowance and
refills continuously; it starts full. A request larger than a bucket waits for a full bucket and
leaves it in debt, which keeps long-run throughput at the limit. Knows no clock of its own: times are
minutes since the run's start, given by the caller.

Two ways to ask. :meth:`TokenBuckets.take` is the API's: a request the buckets cover is served and
takes its allowance; one they do not is refused, takes nothing and is told how long until they would
(its retry-after). The engine asks so and retries as clients do (:func:`cycleplan.core.rules.retry_wait`).
:meth:`TokenBuckets.reserve` serves requests first come, first served, each granted when every bucket
holds enough and no earlier than the one granted before it: the queue a burst forms, in the order it
arrived, which the forecast uses to place requests already waiting; :meth:`TokenBuckets.draw` takes a
request known to have been served, as the forecast replays a run's to know what the buckets hold now.
"""

from __future__ import annotations

from cycleplan.core.model import RateLimits

FULL_ENOUGH = 1e-9
"""A bucket short of a request by less than this share of its capacity serves it (:meth:`TokenBuckets.take`):
a retry timed to the refill must not be refused by a rounding error, over and over."""


class TokenBuckets:
    """The buckets of one run; times are minutes since the run's start."""

    __slots__ = ("capacity", "kinds", "level", "rate", "since")

    def __init__(self, limits: RateLimits) -> None:
        pairs = [
            ("requests", limits.requests_per_min),
            ("input_tokens", limits.input_tokens_per_min),
            ("output_tokens", limits.output_tokens_per_min),
        ]
        self.kinds = [index for index, (_, limit) in enumerate(pairs) if limit is not None]
        self.rate = [float(limit) for _, limit in pairs if limit is not None]
        self.capacity = list(self.rate)
        self.level = list(self.capacity)
        self.since = [0.0] * len(self.rate)

    def _level(self, i: int, now_min: float) -> float:
        """What bucket ``i`` holds at ``now_min``: refilled since it was last drawn on, never past full."""
        return min(self.capacity[i], self.level[i] + self.rate[i] * max(now_min - self.since[i], 0.0))

    def levels(self, now_min: float) -> list[tuple[int, float, float]]:
        """Per limit that is set: its kind (0 requests, 1 input tokens, 2 output tokens), its rate per
        minute and what its bucket holds at ``now_min``."""
        return [(kind, self.rate[i], self._level(i, now_min)) for i, kind in enumerate(self.kinds)]

    @property
    def binding(self) -> bool:
        """Whether any limit is set at all."""
        return bool(self.rate)

    def take(self, now_min: float, requests: float, input_tokens: float, output_tokens: float) -> float:
        """Serve a request now and return 0, or refuse it, taking nothing, and return the minutes until
        every bucket would hold enough for it (capped at a full bucket)."""
        amounts = (requests, input_tokens, output_tokens)
        wait = 0.0
        for i, kind in enumerate(self.kinds):
            level = self._level(i, now_min)
            need = min(amounts[kind], self.capacity[i])
            # A retry made when the bucket refills may find it a rounding error short: that is enough.
            if need - level > FULL_ENOUGH * self.capacity[i]:
                wait = max(wait, (need - level) / self.rate[i])
        if wait > 0:
            return wait
        self.draw(now_min, requests, input_tokens, output_tokens)
        return 0.0

    def draw(self, now_min: float, requests: float, input_tokens: float, output_tokens: float) -> None:
        """Take a request served at ``now_min`` from every bucket, whatever they hold (a request known to
        have been served: the forecast replays a run's so)."""
        amounts = (requests, input_tokens, output_tokens)
        for i, kind in enumerate(self.kinds):
            self.level[i] = self._level(i, now_min) - amounts[kind]
            self.since[i] = max(now_min, self.since[i])

    def reserve(self, now_min: float, requests: float, input_tokens: float, output_tokens: float) -> float:
        """Take a request's allowance from every bucket; returns the minutes it must wait first.

        Input tokens are those the limit counts: uncached input and cache writes, not cache reads.
        """
        amounts = (requests, input_tokens, output_tokens)
        wanted = [amounts[kind] for kind in self.kinds]
        grant = now_min
        for i, amount in enumerate(wanted):
            at = max(now_min, self.since[i])
            level = self._level(i, at)
            need = min(amount, self.capacity[i])
            if level < need:
                at += (need - level) / self.rate[i]
            grant = max(grant, at)
        for i, amount in enumerate(wanted):
            self.level[i] = self._level(i, grant) - amount
            self.since[i] = grant
        return grant - now_min
