"""Fixed-size summaries of samples for drawing: histogram bins and CDF points.

A figure built from these has the same size for 2,000 replications as for 200,000, so a report does not
grow with the replication count. Presentation only: the numbers they summarise come from the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HISTOGRAM_BINS = 60
CDF_POINTS = 201


@dataclass(frozen=True)
class Bins:
    """Histogram bins: centres, counts and the common width."""

    centres: list[float]
    counts: list[int]
    width: float


def histogram(samples: Sequence[float], bins: int = HISTOGRAM_BINS) -> Bins:
    import numpy as np

    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        return Bins([], [], 1.0)
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return Bins([low], [int(values.size)], max(abs(low) * 0.02, 1e-6))
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    return Bins([float(c) for c in centres], [int(c) for c in counts], float(edges[1] - edges[0]))


def cdf(samples: Sequence[float], points: int = CDF_POINTS) -> tuple[list[float], list[float]]:
    """The empirical CDF at evenly spaced probabilities: (values, probabilities)."""
    import numpy as np

    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        return [], []
    probabilities = np.linspace(0.0, 1.0, points)
    quantiles = np.quantile(values, probabilities)
    return [float(q) for q in quantiles], [float(p) for p in probabilities]
