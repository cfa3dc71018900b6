"""The emulator's rate limits: token buckets for requests, input tokens and output tokens per minute.

Like the API it imitates, the emulator answers a request the buckets cannot cover with 429 and the time
after which they will; it does not queue it. Each bucket holds one minute's allowance, refills
continuously and starts full; a request larger than a whole bucket is let through once the bucket is
full and leaves it in debt (so a limit slows such requests down rather than refusing them forever).
Input tokens are those the API counts: uncached input and cache writes, not cache reads. Times are
scenario minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cycleplan.core.model import RateLimits

KINDS = ("requests", "input-tokens", "output-tokens")
"""The names the ``anthropic-ratelimit-<kind>-*`` headers use."""


@dataclass
class _Bucket:
    rate: float
    level: float
    since: float = 0.0

    def level_at(self, now_min: float) -> float:
        return min(self.rate, self.level + self.rate * max(now_min - self.since, 0.0))


class Buckets:
    """The organisation's buckets; limits left out are not kept."""

    def __init__(self, limits: RateLimits | None) -> None:
        rates = (
            (None, None, None)
            if limits is None
            else (limits.requests_per_min, limits.input_tokens_per_min, limits.output_tokens_per_min)
        )
        self._buckets: dict[str, _Bucket] = {
            kind: _Bucket(float(rate), float(rate)) for kind, rate in zip(KINDS, rates, strict=True) if rate
        }

    @property
    def binding(self) -> bool:
        return bool(self._buckets)

    def take(self, now_min: float, requests: int, input_tokens: int, output_tokens: int) -> float:
        """Take the request's allowance and return 0, or take nothing and return the minutes to wait."""
        amounts = dict(zip(KINDS, (requests, input_tokens, output_tokens), strict=True))
        wait = 0.0
        for kind, bucket in self._buckets.items():
            need = min(amounts[kind], bucket.rate)
            level = bucket.level_at(now_min)
            if level < need:
                wait = max(wait, (need - level) / bucket.rate)
        if wait > 0:
            return wait
        for kind, bucket in self._buckets.items():
            bucket.level = bucket.level_at(now_min) - amounts[kind]
            bucket.since = now_min
        return 0.0

    def state(self, now_min: float) -> dict[str, tuple[int, int, float]]:
        """Per kind: (limit, remaining, minutes until full again)."""
        result: dict[str, tuple[int, int, float]] = {}
        for kind, bucket in self._buckets.items():
            level = bucket.level_at(now_min)
            result[kind] = (int(bucket.rate), max(int(level), 0), max(bucket.rate - level, 0.0) / bucket.rate)
        return result
