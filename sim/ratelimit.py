"""Organisation-wide rate limits: token buckets for requests, input tokens and output tokens per minute.

Every agent of a run draws from the same buckets. A bucket holds at most one minute's allowance and
refills continuously; it starts full. Requests are served first come, first served: a request is
granted when every bucket it needs holds enough, and no earlier than the request granted before it, so
a burst queues up behind the limit. A request larger than a bucket waits for a full bucket and leaves
it in debt, which keeps long-run throughput at the limit. Knows nothing of SimPy: it answers "how long
must this request wait", and the engine waits that long.
"""

from __future__ import annotations

from cycleplan.core.model import RateLimits


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

    @property
    def binding(self) -> bool:
        """Whether any limit is set at all."""
        return bool(self.rate)

    def reserve(self, now_min: float, requests: float, input_tokens: float, output_tokens: float) -> float:
        """Take a request's allowance from every bucket; returns the minutes it must wait first.

        Input tokens are those the limit counts: uncached input and cache writes, not cache reads.
        """
        amounts = (requests, input_tokens, output_tokens)
        wanted = [amounts[kind] for kind in self.kinds]
        grant = now_min
        for i, amount in enumerate(wanted):
            at = max(now_min, self.since[i])
            level = min(self.capacity[i], self.level[i] + self.rate[i] * (at - self.since[i]))
            need = min(amount, self.capacity[i])
            if level < need:
                at += (need - level) / self.rate[i]
            grant = max(grant, at)
        for i, amount in enumerate(wanted):
            level = min(self.capacity[i], self.level[i] + self.rate[i] * (grant - self.since[i]))
            self.level[i] = level - amount
            self.since[i] = grant
        return grant - now_min
