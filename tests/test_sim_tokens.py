"""Tokens and dollars: context, history, fresh input and output; prompt caching; the price table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from cycleplan.core.draws import Conversation, RequestTokens, draw_task
from cycleplan.core.model import ModelPrice, Role, Scenario, Task
from cycleplan.core.prices import PRICE_TABLE, PRICES_AS_OF, cost_usd, resolve
from cycleplan.planner import plan
from cycleplan.sim import SimulationError, simulate


def scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate(fields)


def billed(request: RequestTokens) -> tuple[int, int, int]:
    return request.input_tokens, request.cache_creation_input_tokens, request.cache_read_input_tokens


def test_conversation_with_cache_writes_the_prefix_once_and_reads_it_after() -> None:
    talk = Conversation(context_tokens=1000, history_growth=1.0, cache=True)
    first = talk.request(100, 50)
    assert (first.input_tokens, first.cache_creation_input_tokens, first.cache_read_input_tokens) == (
        100,
        1000,
        0,
    )
    talk.commit(100, 50)
    second = talk.request(100, 50, handoff_tokens=30)
    assert billed(second) == (130, 150, 1000)
    assert second.counted_input == 130 + 150
    assert second.read == 130 + 150 + 1000


def test_conversation_without_cache_rereads_everything_uncached() -> None:
    talk = Conversation(context_tokens=1000, history_growth=0.5, cache=False)
    assert talk.request(100, 60).input_tokens == 1100
    talk.commit(100, 60)
    again = talk.request(100, 60)
    assert (again.input_tokens, again.cache_creation_input_tokens, again.cache_read_input_tokens) == (
        1180,
        0,
        0,
    )


def test_a_failed_attempt_does_not_grow_the_history() -> None:
    talk = Conversation(context_tokens=10, history_growth=1.0, cache=True)
    talk.request(5, 5)  # attempt that fails: nothing committed
    retry = talk.request(5, 5)
    assert billed(retry) == (5, 0, 10)


def test_cost_uses_cache_write_and_read_ratios() -> None:
    price = ModelPrice(input_per_mtok=3, output_per_mtok=15)
    assert cost_usd(price, 1e6, 0, 0, 0) == pytest.approx(3)
    assert cost_usd(price, 0, 1e6, 0, 0) == pytest.approx(3.75)
    assert cost_usd(price, 0, 0, 1e6, 0) == pytest.approx(0.3)
    assert cost_usd(price, 0, 0, 0, 1e6) == pytest.approx(15)
    explicit = ModelPrice(input_per_mtok=2, output_per_mtok=10, cache_read_per_mtok=0.1)
    assert cost_usd(explicit, 0, 0, 1e6, 0) == pytest.approx(0.1)


def test_price_table_is_dated_and_resolves_model_ids() -> None:
    assert PRICES_AS_OF
    assert resolve("claude-sonnet-4-5") == PRICE_TABLE["claude-sonnet-4-5"]
    assert resolve("claude-haiku-4-5-20251001") == PRICE_TABLE["claude-haiku-4-5"]
    assert resolve("no-such-model") is None
    mine = ModelPrice(input_per_mtok=1, output_per_mtok=2)
    assert resolve("claude-sonnet-4-5", {"claude-sonnet-4-5": mine}) == mine
    assert resolve("in-house", {"in-house": mine}) == mine
    assert all(price.input_per_mtok > 0 and price.output_per_mtok > 0 for price in PRICE_TABLE.values())


def test_negative_prices_are_rejected_by_the_model() -> None:
    with pytest.raises(ValidationError, match="input_per_mtok"):
        ModelPrice(input_per_mtok=-1, output_per_mtok=2)


def test_a_model_without_a_price_is_named() -> None:
    planned = plan(
        scenario(
            name="unpriced",
            roles={"backend": {"model": "in-house-model"}},
            tasks=[{"id": "t", "role": "backend", "cycles": 1}],
        )
    )
    with pytest.raises(SimulationError, match=r"roles\.backend\.model"):
        simulate(planned, replications=1)


def _fixed_tokens(cache: bool) -> dict[str, Any]:
    return {
        "context_tokens": 1000,
        "history_growth": 1.0,
        "fresh_input": {"median": 100, "p90": 100},
        "output": {"median": 50, "p90": 50},
        "cache": cache,
    }


def test_tokens_and_cost_of_a_task_add_up_by_hand() -> None:
    planned = plan(
        scenario(
            name="by hand",
            roles={"backend": {"tokens": _fixed_tokens(True), "cycle": {"kind": "fixed", "value_min": 1}}},
            tasks=[{"id": "t", "role": "backend", "cycles": 3}],
        )
    )
    prediction = simulate(planned, replications=2, seed=0)
    s = prediction.summaries
    # cycle 1: write 1000; cycle 2: read 1000, write 150; cycle 3: read 1150, write 150
    assert s["input_tokens"].p50 == 300
    assert s["cache_write_tokens"].p50 == 1300
    assert s["cache_read_tokens"].p50 == 2150
    assert s["output_tokens"].p50 == 150
    assert s["tokens_total"].p50 == 300 + 1300 + 2150 + 150
    expected = (300 * 3 + 1300 * 3.75 + 2150 * 0.3 + 150 * 15) / 1e6
    assert s["cost_usd"].p50 == pytest.approx(expected)
    free = planned.scenario.model_copy(
        update={"prices": {"claude-sonnet-4-5": ModelPrice(input_per_mtok=0, output_per_mtok=0)}}
    )
    assert simulate(planned, free, replications=1).summary("cost_usd").max == 0


def test_three_agents_each_read_their_own_context() -> None:
    # The guide: "150k tokens total (shared)". Each agent loads the 150k context itself: 450k are read.
    def three_agents(cache: bool) -> Scenario:
        tokens = {"context_tokens": 150_000, "cache": cache}
        return scenario(
            name="three agents",
            roles={role: {"tokens": tokens} for role in ("backend", "frontend", "quality")},
            tasks=[
                {"id": "backend", "role": "backend", "cycles": 10},
                {"id": "frontend", "role": "frontend", "cycles": 10},
                {"id": "quality", "role": "quality", "cycles": 5},
            ],
        )

    cached = simulate(plan(three_agents(True)), replications=50, seed=1)
    uncached = simulate(plan(three_agents(False)), replications=50, seed=1)
    assert cached.summary("context_tokens").min == 450_000
    assert cached.summary("tokens_read").min > 450_000
    assert cached.summary("cache_write_tokens").min >= 450_000
    # Caching leaves the tokens read as they are and makes the re-reads cheap.
    assert cached.replications.values["tokens_read"] == uncached.replications.values["tokens_read"]
    assert cached.summary("cost_usd").max < uncached.summary("cost_usd").min / 3


def test_token_spreads_have_the_given_median_and_p90() -> None:
    role = Role.model_validate({"tokens": {"fresh_input": {"median": 1000, "p90": 3000}}})
    task = Task(id="t", role="r", cycles=200)
    values = np.concatenate([np.array(draw_task(task, role, 0, r).fresh_input[0]) for r in range(20)])
    assert np.median(values) == pytest.approx(1000, rel=0.05)
    assert np.percentile(values, 90) == pytest.approx(3000, rel=0.08)
