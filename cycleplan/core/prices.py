"""What tokens cost: a dated price table per model, the scenario's overrides, and the cost of one cycle.

Prices are US dollars per million tokens, from Anthropic's published model pages as of
:data:`PRICES_AS_OF`. Cache writes cost 1.25x the input price for the 5-minute cache and 2x for the
1-hour cache, cache reads 0.1x, unless a model's entry says otherwise. A scenario's ``prices:`` mapping
(model id -> prices) overrides or extends the table; its validation (no negative prices) lives in
:class:`cycleplan.core.model.ModelPrice`. This module knows nothing of simulation or execution: both price
their cycles through :func:`cost_usd`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cycleplan.core.model import ModelPrice

PRICES_AS_OF = "2026-11-28"
"""The date the built-in table was last checked against Anthropic's published prices."""

PRICE_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing"


def _price(input_per_mtok: float, output_per_mtok: float) -> ModelPrice:
    return ModelPrice(input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok)


PRICE_TABLE: dict[str, ModelPrice] = {
    "claude-opus-5-5": _price(4.0, 20.0),
    "claude-opus-5": _price(5.0, 25.0),
    "claude-opus-4-8": _price(5.0, 25.0),
    "claude-opus-4-7": _price(5.0, 25.0),
    "claude-opus-4-6": _price(5.0, 25.0),
    "claude-opus-4-5": _price(5.0, 25.0),
    "claude-opus-4-1": _price(15.0, 75.0),
    "claude-opus-4-0": _price(15.0, 75.0),
    "claude-sonnet-5-5": _price(2.0, 10.0),
    "claude-sonnet-5": _price(2.0, 10.0),
    "claude-sonnet-4-6": _price(3.0, 15.0),
    "claude-sonnet-4-5": _price(3.0, 15.0),
    "claude-sonnet-4-0": _price(3.0, 15.0),
    "claude-haiku-4-5": _price(1.0, 5.0),
    "claude-3-5-haiku": _price(0.8, 4.0),
}
"""USD per million tokens (input, output) as of :data:`PRICES_AS_OF`; cache prices follow the ratios."""

_ALIASES = {"claude-opus-4": "claude-opus-4-0", "claude-sonnet-4": "claude-sonnet-4-0"}
_DATED = re.compile(r"^(?P<base>.+?)-(?:\d{8}|latest)$")


def _undated(model: str) -> str:
    """``model`` without a date or ``-latest`` suffix."""
    dated = _DATED.match(model)
    return dated.group("base") if dated else model


def model_base(model: str) -> str:
    """The model a name stands for: a dated id (``claude-haiku-4-5-20251001``) or ``-latest`` alias as its
    base model, ``claude-opus-4`` as ``claude-opus-4-0``. Two names are one model when their bases match."""
    base = _undated(model)
    return _ALIASES.get(base, base)


def resolve(model: str, overrides: Mapping[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of ``model``: the scenario's override, else the table's, else None.

    Dated ids (``claude-haiku-4-5-20251001``) and ``-latest`` aliases resolve to their base model.
    """
    overrides = overrides or {}
    # The name as written first (an override may price one dated id), then what it stands for.
    candidates = list(dict.fromkeys([model, _undated(model), model_base(model)]))
    for name in candidates:
        if name in overrides:
            return overrides[name]
    for name in candidates:
        if name in PRICE_TABLE:
            return PRICE_TABLE[name]
    return None


def cost_usd(
    price: ModelPrice,
    input_tokens: float,
    cache_write_tokens: float,
    cache_read_tokens: float,
    output_tokens: float,
    cache_write_1h_tokens: float = 0.0,
) -> float:
    """Dollars for one request's tokens: uncached input, cache writes (``cache_write_tokens`` at the
    5-minute cache's price, ``cache_write_1h_tokens`` at the 1-hour cache's), cache reads, output."""
    return (
        input_tokens * price.input_per_mtok
        + cache_write_tokens * price.cache_write
        + cache_read_tokens * price.cache_read
        + output_tokens * price.output_per_mtok
        + cache_write_1h_tokens * price.cache_write_1h
    ) / 1e6
