"""Organisation rate limits: shared token buckets, and the speedup they cap."""

from __future__ import annotations

from typing import Any

import pytest

from cycleplan.core.buckets import TokenBuckets
from cycleplan.core.model import RateLimits, Scenario
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate


def scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate(fields)


def test_buckets_start_full_refill_per_minute_and_serve_in_order() -> None:
    buckets = TokenBuckets(RateLimits(input_tokens_per_min=100))
    assert buckets.reserve(0.0, 1, 60, 0) == 0
    assert buckets.reserve(0.0, 1, 60, 0) == pytest.approx(0.2)  # 40 left, 20 more come in 0.2 min
    assert buckets.reserve(0.0, 1, 10, 0) == pytest.approx(0.3)  # queued behind the previous grant
    assert buckets.reserve(10.0, 1, 100, 0) == 0  # refilled to capacity, never beyond
    assert buckets.reserve(10.0, 1, 1, 0) == pytest.approx(0.01)


def test_every_limit_binds_on_its_own() -> None:
    requests = TokenBuckets(RateLimits(requests_per_min=2))
    assert [requests.reserve(0.0, 1, 0, 0) for _ in range(4)] == pytest.approx([0, 0, 0.5, 1.0])
    output = TokenBuckets(RateLimits(output_tokens_per_min=1000))
    assert output.reserve(0.0, 1, 10**6, 900) == 0
    assert output.reserve(0.0, 1, 10**6, 200) == pytest.approx(0.1)
    assert not TokenBuckets(RateLimits()).binding


def test_a_request_larger_than_the_bucket_waits_for_a_full_one_and_leaves_debt() -> None:
    buckets = TokenBuckets(RateLimits(input_tokens_per_min=100))
    assert buckets.reserve(0.0, 1, 250, 0) == 0
    assert buckets.reserve(0.0, 1, 50, 0) == pytest.approx(2.0)  # 150 of debt, then 50 more


def limited(lanes: int, limit: float | None) -> Scenario:
    tokens = {
        "context_tokens": 0,
        "history_growth": 0,
        "fresh_input": {"median": 10_000, "p90": 10_000},
        "output": {"median": 0, "p90": 0},
    }
    return scenario(
        name="rate limited",
        rate_limits={"input_tokens_per_min": limit} if limit else None,
        roles={"worker": {"lanes": lanes, "tokens": tokens, "cycle": {"kind": "fixed", "value_min": 1}}},
        tasks=[{"id": f"feature-{i}", "role": "worker", "cycles": 10} for i in range(8)],
    )


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
def test_an_input_token_limit_flattens_the_speedup_as_lanes_grow(lanes: int) -> None:
    # 80 cycles of 10,000 input tokens, one minute each; the organisation allows 30,000 per minute.
    # By hand: the full bucket lets 3 requests through at once, then one every 1/3 minute at best, so the
    # last of 80 requests goes at (800,000 - 30,000) / 30,000 = 25.67 min and ends a minute later;
    # without the limit n lanes take 80 / n minutes, and one or two lanes never reach the limit.
    limit = 30_000
    total = 80 * 10_000
    by_hand = max(80 / lanes, (total - limit) / limit + 1)
    unlimited = simulate(plan(limited(lanes, None)), replications=1)
    capped = simulate(plan(limited(lanes, limit)), replications=50)
    assert unlimited.summary("speedup").p50 == pytest.approx(lanes)
    makespan = capped.summary("makespan_min")
    assert makespan.min >= by_hand - 1e-9  # no run beats the limit's pace
    assert capped.summary("speedup").max <= 3.0 + 1e-9
    if lanes >= 4:
        # Refused requests race back with the clients' jitter: the limit is served at nearly its pace,
        # not in order, so a lane that keeps losing falls behind and finishes alone, off the limit.
        assert makespan.p50 == pytest.approx(by_hand, rel=0.20)
        assert makespan.p90 > by_hand * 1.02
        assert capped.summary("waits_min.rate_limit").p50 > 0
    else:
        assert makespan.max == pytest.approx(by_hand)
        assert capped.summary("waits_min.rate_limit").max == 0


def test_a_refused_request_takes_nothing_and_is_told_when_the_buckets_will_hold_it() -> None:
    buckets = TokenBuckets(RateLimits(requests_per_min=2, input_tokens_per_min=100))
    assert buckets.take(0.0, 1, 60, 0) == 0
    assert buckets.take(0.0, 1, 60, 0) == pytest.approx(0.2)  # 40 input tokens left: 20 more in 0.2 min
    assert buckets.take(0.1, 1, 60, 0) == pytest.approx(0.1)  # refused, it took nothing: 50 now
    assert buckets.take(0.2, 1, 60, 0) == 0
    assert buckets.take(0.2, 1, 1, 0) == pytest.approx(0.3)  # 0.4 of a request left, 2 more a minute
    # A retry timed to the refill is served even when the sum lands a rounding error short.
    refill = TokenBuckets(RateLimits(input_tokens_per_min=30_000))
    assert refill.take(0.0, 1, 30_000, 0) == 0
    wait = refill.take(0.1, 1, 10_000, 0)
    assert refill.take(0.1 + wait, 1, 10_000, 0) == 0
    # A request larger than a bucket waits for a full one and leaves it in debt.
    large = TokenBuckets(RateLimits(input_tokens_per_min=100))
    assert large.take(0.0, 1, 250, 0) == 0
    assert large.take(0.0, 1, 50, 0) == pytest.approx(2.0)


def test_cache_reads_do_not_count_against_the_input_limit() -> None:
    def one_task(cache: bool) -> Scenario:
        tokens = {"context_tokens": 100_000, "fresh_input": {"median": 1000, "p90": 1000}, "cache": cache}
        return scenario(
            name="cached",
            rate_limits={"input_tokens_per_min": 150_000},
            roles={"worker": {"tokens": tokens, "cycle": {"kind": "fixed", "value_min": 0.25}}},
            tasks=[{"id": "t", "role": "worker", "cycles": 8}],
        )

    cached = run_replication(plan(one_task(True)), 0)
    uncached = run_replication(plan(one_task(False)), 0)
    assert cached.metrics.cache_read_tokens > 7 * 100_000
    assert cached.metrics.waits_min["rate_limit"] == 0
    assert cached.metrics.makespan_min == pytest.approx(2.0)
    assert uncached.metrics.waits_min["rate_limit"] > 2
    # Ideal mode ignores rate limits.
    assert run_replication(plan(one_task(False)), 0, ideal=True).metrics.makespan_min == pytest.approx(2.0)


def test_a_request_known_served_is_drawn_whatever_the_buckets_hold() -> None:
    buckets = TokenBuckets(RateLimits(requests_per_min=1, input_tokens_per_min=100))
    buckets.draw(0.0, 1, 80, 0)
    # Served elsewhere while the buckets held too little: they go into debt, and refill from there.
    buckets.draw(0.5, 1, 80, 0)
    assert [level for _, _, level in buckets.levels(0.5)] == pytest.approx([-0.5, -10.0])
    assert buckets.take(0.5, 1, 10, 0) == pytest.approx(1.5)  # a whole request short: 1.5 minutes
    assert buckets.take(2.0, 1, 10, 0) == 0
