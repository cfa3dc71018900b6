"""The emulator's rate limits: the simulator's token buckets, with the API's view of them.

Like the API it imitates, the emulator answers a request the buckets cannot cover with 429 and the time
after which they will; it does not queue it. The arithmetic is the simulator's own
(:class:`cycleplan.core.buckets.TokenBuckets`: one minute's allowance a bucket, refilled continuously,
full at the start, a request larger than a whole bucket let through once it is full and leaving it in
debt; input tokens are those the API counts, uncached input and cache writes), so a rehearsal meets the
limits the prediction met. This module adds what the API says of them in its ``anthropic-ratelimit-*``
headers. Times are scenario minutes.
"""

from __future__ import annotations

from cycleplan.core.buckets import TokenBuckets
from cycleplan.core.model import RateLimits

KINDS = ("requests", "input-tokens", "output-tokens")
"""The names the ``anthropic-ratelimit-<kind>-*`` headers use, by the buckets' kind (0, 1, 2)."""


class Buckets:
    """The organisation's buckets; limits left out are not kept."""

    def __init__(self, limits: RateLimits | None) -> None:
        self._buckets = TokenBuckets(limits if limits is not None else RateLimits())

    @property
    def binding(self) -> bool:
        return self._buckets.binding

    def take(self, now_min: float, requests: int, input_tokens: int, output_tokens: int) -> float:
        """Take the request's allowance and return 0, or take nothing and return the minutes to wait."""
        return self._buckets.take(now_min, requests, input_tokens, output_tokens)

    def state(self, now_min: float) -> dict[str, tuple[int, int, float]]:
        """Per kind: (limit, remaining, minutes until full again)."""
        return {
            KINDS[kind]: (int(rate), max(int(level), 0), max(rate - level, 0.0) / rate)
            for kind, rate, level in self._buckets.levels(now_min)
        }
