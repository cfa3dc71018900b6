"""How sure a fit from a few runs is: the spread of a logged quantity within runs and between them.

Calibration fits each parameter (a median: of calls per cycle, of tokens per call, of a cycle's minutes)
from observations grouped by run. Runs differ from one another more than cycles of one run do (another
repository, another person, another day), so the next run is not one more cycle of the runs seen: it has
its own median, drawn from the population of runs. :func:`moment_spread` estimates, on the logarithm of
each run's lognormal (matched to the run's mean and variance), with the one-way random-effects (analysis
of variance) estimator:

- ``sigma``: the spread of single observations around their own run's centre (within runs);
- ``between``: the spread of runs' centres around the overall centre, beyond what ``sigma`` alone would
  give them (zero when the runs agree as well as chance allows);
- ``log_sd``: how far the next run's centre may lie from the overall one: ``between`` plus the error of
  the estimate itself, ``sqrt(between^2 (1 + 1/R) + sigma^2 / N)`` for R runs of N observations, to be
  drawn as a Student t with ``dof = R - 1`` degrees of freedom (``N - 1`` from a single run, whose
  runs-to-run spread cannot be seen: only the estimate's own error counts then).

A prediction that draws each replication's medians this way (the posterior predictive) is as sure as
its data: from 4 runs its bands are wider than from 400. This module only computes; it knows no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogSpread:
    """A logged quantity's centre and spreads (natural logarithms), and how much data they rest on."""

    centre: float
    """The mean of the runs' centres (each run counts once, whatever its size)."""
    sigma: float
    between: float
    log_sd: float
    dof: float
    runs: int
    observations: int

    @property
    def median(self) -> float:
        return math.exp(self.centre)


def moment_spread(
    values_by_run: Mapping[str, Sequence[float]], counts_by_run: Mapping[str, Sequence[float]] | None = None
) -> LogSpread | None:
    """The spreads of a quantity summed many at a time (tokens or minutes per call), by run: each run's
    lognormal is matched to its mean and variance (not to its logarithms), so that the median and spread
    reproduce the mean a sum of many calls converges to, heavy tail included. Zeros are allowed.

    With ``counts_by_run``, each value is itself the mean of that many observations (a cycle's mean per
    call, when only its totals were recorded): the run's mean weighs them by count, and the variance of
    one observation is that of the means times their counts."""
    medians: list[float] = []
    variances: list[tuple[float, int]] = []
    for run, values in values_by_run.items():
        data = np.asarray(values, dtype=float)
        if not len(data):
            continue
        counts = np.ones(len(data)) if counts_by_run is None else np.asarray(counts_by_run[run], dtype=float)
        mean = float(np.sum(counts * data) / np.sum(counts))
        if mean <= 0:
            continue
        variance = float(np.sum(counts * (data - mean) ** 2) / len(data))
        spread = math.log1p(variance / mean**2)
        medians.append(math.log(mean) - spread / 2.0)
        variances.append((spread, int(np.sum(counts))))
    if not medians:
        return None
    runs = len(medians)
    total = sum(count for _, count in variances)
    sigma = math.sqrt(sum(spread * count for spread, count in variances) / total)
    centres = np.asarray(medians)
    between = 0.0
    if runs >= 2:
        # A run's centre is itself uncertain (the log of a mean of n values varies by about CV^2 / n):
        # only what the runs differ beyond that is between them.
        noise = float(np.mean([math.expm1(sigma**2) / count for _, count in variances]))
        between = math.sqrt(max(float(centres.var(ddof=1)) - noise, 0.0))
    log_sd = math.sqrt(between**2 * (1.0 + 1.0 / runs) + sigma**2 / total)
    return LogSpread(
        centre=float(centres.mean()),
        sigma=sigma,
        between=between,
        log_sd=log_sd,
        dof=float(runs - 1) if runs >= 2 else float(max(total - 1, 1)),
        runs=runs,
        observations=total,
    )
