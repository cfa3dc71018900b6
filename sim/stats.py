"""Summaries of per-replication values: mean, standard deviation, percentiles, confidence interval.

The confidence interval of the mean uses Student's t (closed forms for one and two degrees of freedom,
Newton's method on the exact distribution function up to 200, the Cornish-Fisher expansion beyond), so
that a few replications get an honestly wide interval. No scipy: numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cycleplan.model import Frozen


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


def _normal_quantile(p: float) -> float:
    """The standard normal's quantile (Acklam's rational approximation, refined by one Newton step)."""
    if not 0 < p < 1:
        raise ValueError("p must be strictly between 0 and 1")
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690, -30.66479806614716,
         2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572)
    c = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    elif p > 1 - low:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    else:
        q = p - 0.5
        r = q * q
        x = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        )
    error = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    return x - error * math.sqrt(2 * math.pi) * math.exp(x * x / 2)


def _t_cdf(t: float, df: int) -> float:
    """Student's t distribution function for whole ``df`` (Abramowitz and Stegun 26.7.3 and 26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:
        term = total = math.cos(theta)
        for k in range(1, (df - 3) // 2 + 1):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        inside = 2 / math.pi * (theta + (math.sin(theta) * total if df > 1 else 0.0))
    else:
        term = total = 1.0
        for k in range(1, (df - 2) // 2 + 1):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        inside = math.sin(theta) * total
    return 0.5 + 0.5 * inside


def _t_density(t: float, df: int) -> float:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = _normal_quantile(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    t = z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    if df <= 200:
        # The expansion is rough for few degrees of freedom: polish it on the exact distribution.
        for _ in range(6):
            t -= (_t_cdf(t, df) - p) / _t_density(t, df)
    return t


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
