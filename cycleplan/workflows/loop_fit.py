"""Agent loops fitted from the calls runs recorded: how many calls a cycle makes and what each costs.

Cycles that record their API calls (``calls``, and from imported transcripts ``api_calls`` and
``compactions``, see :mod:`cycleplan.workflows.importers.claude_code`) are gathered per role and run
(:class:`LoopObservations`), and :func:`fit_loop` turns them into the role's :class:`AgentLoop`:

- **calls per cycle, and growth, output and minutes per call**: lognormal matched to each run's mean and
  variance (:func:`cycleplan.workflows.posterior.moment_spread`), within runs and between them. They are
  summed (calls into a cycle's tokens and minutes, cycles into a run's), so their means must come out right: a
  fit on logarithms lets one rare tiny turn (a one-call "did you push?") widen the spread until the
  lognormal's mean is several times the data's.
  Growth is what a call writes to the cache beyond its predecessor, its uncached input included; a
  cycle's first call (it also writes the new prompt, and the whole context again when the cache expired
  while the person was away), the first call after a compaction (it writes the summary) and calls that
  rebuild the cache from the system prompt on (after an interrupted request) are left out.
  Cycles that record only their totals give one mean per cycle instead;
- **context**: the median of the first call's whole context of each task (``context_tokens``);
- **compaction**: the median context at which one ran, the median summary the next call wrote, the
  median output and minutes of the compaction call; none when no run compacted;
- **cache lifetime**: the 1-hour cache when most cache writes went there;
- **durations**: from the calls (``minutes`` per call), or a lognormal per cycle (matched to the cycles'
  mean and variance in the same way), whichever predicts the observed cycles' minutes with the lower mean
  CRPS (both are scored on the same cycles);
- **posterior**: each median's ``log_sd`` (how far the next run's may lie) and the runs it rests on.

This module reads trace metadata only; it runs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from cycleplan.core.draws import mean_of_calls
from cycleplan.core.metrics import MS_PER_MIN
from cycleplan.core.model import (
    MAX_SPREAD,
    MAX_TOKENS,
    Z90,
    AgentLoop,
    Compaction,
    Frozen,
    Lognormal,
    Posterior,
    Spread,
)
from cycleplan.workflows.posterior import LogSpread, moment_spread

CRPS_DRAWS = 4_000
"""Predictive draws per model when scoring the two duration models."""


@dataclass
class LoopObservations:
    """What one role's cycles say about its calls, by run id."""

    calls: dict[str, list[float]] = field(default_factory=dict)
    growth: dict[str, list[float]] = field(default_factory=dict)
    output: dict[str, list[float]] = field(default_factory=dict)
    minutes: dict[str, list[float]] = field(default_factory=dict)
    cycle_minutes: dict[str, list[float]] = field(default_factory=dict)
    """Each cycle's work minutes without its compactions."""
    context: list[float] = field(default_factory=list)
    compaction_context: list[float] = field(default_factory=list)
    compaction_minutes: list[float] = field(default_factory=list)
    compaction_output: list[float] = field(default_factory=list)
    summary: list[float] = field(default_factory=list)
    totals_calls: dict[str, list[float]] = field(default_factory=dict)
    """The calls behind each per-call mean of cycles that recorded only their totals."""
    written_1h: int = 0
    written: int = 0
    per_call: bool = False
    """Some cycle listed its calls one by one (else only cycle totals were seen)."""

    def __bool__(self) -> bool:
        return bool(self.calls)


def _number(metadata: Mapping[str, Any], key: str) -> float:
    value = metadata.get(key, 0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _calls(value: Any, width: int = 6) -> list[list[float]]:
    """``api_calls``/``compactions`` rows of at least ``width`` numbers; anything else is ignored."""
    if not isinstance(value, list):
        return []
    rows = []
    for row in value:
        if (
            isinstance(row, list)
            and len(row) >= width
            and all(isinstance(x, int | float) for x in row[:width])
        ):
            rows.append([float(x) for x in row[:width]])
    return rows


def observe_cycle(
    seen: LoopObservations, run: str, metadata: Mapping[str, Any], *, first_of_task: bool, context: int = 0
) -> None:
    """Add one completed cycle's calls (``metadata`` of its ``cycle_completed``) to ``seen``; ``context``
    is what the task loaded at its start (its first cycle's writes hold it besides the calls' growth)."""
    calls = int(_number(metadata, "calls"))
    if calls < 1:
        return
    rows = _calls(metadata.get("api_calls"))
    compactions = _calls(metadata.get("compactions"))
    compaction_ms = sum(row[0] for row in compactions)
    seen.calls.setdefault(run, []).append(float(calls))
    seen.cycle_minutes.setdefault(run, []).append(
        max(_number(metadata, "duration_ms") - compaction_ms, 0.0) / MS_PER_MIN
    )
    seen.written += int(_number(metadata, "cache_creation_input_tokens"))
    seen.written_1h += int(_number(metadata, "cache_creation_1h_input_tokens"))
    for row in compactions:
        seen.compaction_minutes.append(row[0] / MS_PER_MIN)
        seen.compaction_context.append(row[1] + row[2] + row[3] + row[4])
        seen.compaction_output.append(row[5])
    if rows:
        seen.per_call = True
        if first_of_task:
            seen.context.append(rows[0][1] + rows[0][2] + rows[0][3] + rows[0][4])
        after_compaction = {int(row[6]) for row in _calls(metadata.get("compactions"), width=7)}
        previous_read = -1.0
        for position, (minutes_ms, uncached, written_5m, written_1h, read, output) in enumerate(rows):
            written = written_5m + written_1h
            seen.minutes.setdefault(run, []).append(minutes_ms / MS_PER_MIN)
            seen.output.setdefault(run, []).append(output)
            if position in after_compaction:
                seen.summary.append(written)  # the first call after a compaction writes its summary
            elif position > 0 and not (previous_read > 0 and read < 0.5 * previous_read):
                # Left out besides: a cache rebuilt from its start (an interrupted request, another
                # model), which writes the whole conversation again without growing it.
                seen.growth.setdefault(run, []).append(uncached + written)
            previous_read = read
        return
    # Totals only: one mean per call for the cycle.
    if first_of_task and context > 0:
        seen.context.append(float(context))
    written = _number(metadata, "input_tokens") + _number(metadata, "cache_creation_input_tokens")
    seen.totals_calls.setdefault(run, []).append(float(calls))
    seen.minutes.setdefault(run, []).append(_number(metadata, "duration_ms") / MS_PER_MIN / calls)
    seen.output.setdefault(run, []).append(_number(metadata, "output_tokens") / calls)
    seen.growth.setdefault(run, []).append(max(written - (context if first_of_task else 0), 0.0) / calls)


class LoopFit(Frozen):
    """A role's fitted agent loop, and what it rests on."""

    loop: AgentLoop
    context_tokens: int | None
    cache_ttl: Literal["5m", "1h"]
    cycle: Lognormal | None = Field(
        description="The per-cycle duration written when it predicts the cycles better than the calls do."
    )
    durations: Literal["calls", "cycle"]
    crps_calls_min: float | None
    crps_cycle_min: float | None
    posterior: Posterior
    runs: int
    cycles: int
    calls: int
    notes: list[str] = Field(default_factory=list)


def _tokens(value: float) -> int:
    return int(min(max(round(value), 0), MAX_TOKENS))


def _spread(fit: LogSpread, floor: int = 0) -> Spread:
    median = max(_tokens(fit.median), floor)
    p90 = max(_tokens(fit.median * math.exp(Z90 * fit.sigma)), median)
    return Spread(median=median, p90=min(p90, MAX_SPREAD * median) if median > 0 else p90)


def _minutes(fit: LogSpread) -> Lognormal:
    median = max(round(fit.median, 6), 1e-6)
    p90 = max(round(fit.median * math.exp(Z90 * fit.sigma), 6), median)
    return Lognormal(median_min=median, p90_min=min(p90, MAX_SPREAD * median))


def crps(samples: np.ndarray[Any, np.dtype[np.float64]], actual: float) -> float:
    """The continuous ranked probability score of ``actual`` under ``samples`` (lower is better)."""
    ordered = np.sort(samples)
    count = len(ordered)
    spread = float(np.sum((2 * np.arange(1, count + 1) - count - 1) * ordered)) / count**2
    return float(np.mean(np.abs(ordered - actual))) - spread


def _by_calls(
    calls: Spread, minutes: Lognormal, rng: np.random.Generator
) -> np.ndarray[Any, np.dtype[np.float64]]:
    sigma_calls = math.log(calls.p90 / calls.median) / Z90 if calls.median else 0.0
    drawn = np.maximum(np.rint(calls.median * np.exp(sigma_calls * rng.standard_normal(CRPS_DRAWS))), 1.0)
    per_call = mean_of_calls(minutes.median_min, minutes.sigma, drawn, rng.standard_normal(CRPS_DRAWS))
    total: np.ndarray[Any, np.dtype[np.float64]] = drawn * per_call
    return total


def fit_loop(seen: LoopObservations, prior: AgentLoop | None) -> LoopFit | None:
    """The role's loop from ``seen`` (None without calls); the ``prior`` loop fills what was not seen."""
    calls_fit = moment_spread(seen.calls)
    counts = None if seen.per_call else seen.totals_calls
    growth_fit = moment_spread(seen.growth, counts)
    output_fit = moment_spread(seen.output, counts)
    minutes_fit = moment_spread(seen.minutes, counts)
    if calls_fit is None:
        return None
    notes: list[str] = []
    if not seen.per_call:
        notes.append("the runs record cycle totals only: per-call spreads come from the cycles' means")
    fallback = prior or AgentLoop(
        per_cycle=Spread(median=1, p90=1), growth=Spread(median=0, p90=0), output=Spread(median=0, p90=0)
    )
    compaction = prior.compaction if prior is not None else None
    if seen.compaction_context:
        compaction = Compaction(
            threshold_tokens=max(_tokens(float(np.median(seen.compaction_context))), 1),
            summary_tokens=_tokens(float(np.median(seen.summary))) if seen.summary else 15_000,
            output_tokens=_tokens(float(np.median(seen.compaction_output))),
            minutes=round(float(np.median(seen.compaction_minutes)), 4),
        )
    elif compaction is None:
        notes.append("no run compacted its context: the fitted loop never compacts")
    minutes = _minutes(minutes_fit) if minutes_fit is not None else None
    loop = AgentLoop(
        per_cycle=_spread(calls_fit, floor=1),
        growth=_spread(growth_fit) if growth_fit is not None else fallback.growth,
        output=_spread(output_fit) if output_fit is not None else fallback.output,
        minutes=minutes,
        compaction=compaction,
    )
    spreads = {
        "calls.per_cycle": calls_fit,
        "calls.growth": growth_fit,
        "calls.output": output_fit,
        "calls.minutes": minutes_fit,
    }
    # Durations: the calls' minutes, or a lognormal per cycle, whichever scores better.
    cycle_fit = moment_spread(seen.cycle_minutes)
    observed = [v for values in seen.cycle_minutes.values() for v in values if v > 0]
    rng = np.random.default_rng(20_261_204)
    crps_calls = crps_cycle = None
    cycle = None
    if observed and minutes is not None:
        drawn = _by_calls(loop.per_cycle, minutes, rng)
        crps_calls = float(np.mean([crps(drawn, value) for value in observed]))
    if observed and cycle_fit is not None:
        cycle = _minutes(cycle_fit)
        drawn = cycle.median_min * np.exp(cycle.sigma * rng.standard_normal(CRPS_DRAWS))
        crps_cycle = float(np.mean([crps(drawn, value) for value in observed]))
    durations: Literal["calls", "cycle"] = "calls"
    if crps_calls is None or (crps_cycle is not None and crps_cycle < crps_calls):
        durations = "cycle"
        loop = loop.model_copy(update={"minutes": None})
        spreads["cycle"] = cycle_fit
        del spreads["calls.minutes"]
    runs = calls_fit.runs
    posterior = Posterior(
        runs=runs,
        # At least 2: a t of one degree of freedom (two cycles of one run) has no mean to predict from.
        dof=max(calls_fit.dof, 2.0),
        log_sd={name: round(min(fit.log_sd, 10.0), 6) for name, fit in spreads.items() if fit is not None},
    )
    if runs < 2:
        notes.append(
            "one run: how much runs differ cannot be seen, so the posterior holds only the estimates' "
            "own error"
        )
    return LoopFit(
        loop=loop,
        context_tokens=_tokens(float(np.median(seen.context))) if seen.context else None,
        cache_ttl="1h" if seen.written and seen.written_1h * 2 > seen.written else "5m",
        cycle=cycle if durations == "cycle" else None,
        durations=durations,
        crps_calls_min=crps_calls,
        crps_cycle_min=crps_cycle,
        posterior=posterior,
        runs=runs,
        cycles=sum(len(values) for values in seen.calls.values()),
        calls=int(sum(sum(values) for values in seen.calls.values())),
        notes=notes,
    )
