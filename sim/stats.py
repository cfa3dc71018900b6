"""Summaries of per-replication values: mean, standard deviation, percentiles, confidence interval.

The confidence interval of the mean uses Student's t (scipy's), so that a few replications get an
honestly wide interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cycleplan.core.model import Frozen


class Summary(Frozen):
    """The distribution of one quantity over the replications."""

    mean: float
    sd: float
    p10: float
    p50: float
    p90: float
    ci95_low: float
    ci95_high: float
    """The 95% confidence interval of the mean."""
    min: float
    max: float


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    from scipy.stats import t as student_t

    return float(student_t.ppf(p, df))


def confidence_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of the mean of ``values`` (a point when there is one value)."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if data.size < 2:
        return mean, mean
    half = t_quantile(0.5 + level / 2, data.size - 1) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return mean - half, mean + half


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean, standard deviation, P10/P50/P90, the 95% interval of the mean, min and max."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("nothing to summarize")
    p10, p50, p90 = (float(x) for x in np.percentile(data, [10, 50, 90]))
    low, high = confidence_interval(data)
    return Summary(
        mean=float(data.mean()),
        sd=float(data.std(ddof=1)) if data.size > 1 else 0.0,
        p10=p10,
        p50=p50,
        p90=p90,
        ci95_low=low,
        ci95_high=high,
        min=float(data.min()),
        max=float(data.max()),
    )
