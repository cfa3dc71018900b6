"""Cumulative tokens and dollars over time, summarised over replications in fixed memory.

:class:`Curves` sums each replication's cycle attempts (when each ended, its tokens and its cost) into its
cumulative values at every point of a time grid, task by task, so that no batch ever holds every
attempt at once. :class:`CumulativeSketch` keeps, for every grid point, a histogram of the replications'
cumulative values there. Nothing it keeps grows with the number of replications, and the result
(:class:`cycleplan.sim.prediction.Cumulative`) has a fixed size.

The grid has :data:`POINTS` points ``k * step_min``; when a replication ends beyond it the step doubles:
every other point is kept and the new far half starts from the histogram of the totals, which is
exact because every replication seen so far had ended there. The value bins are :data:`BINS` bins of a
power-of-two width that doubles (adjacent bins merge) when a value outgrows them. A percentile read from
a histogram is within one bin width of the exact one (both lie in the same bin) and is clamped to the
exact minimum and maximum at that point, so it is exact when every replication agrees.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from cycleplan.sim.prediction import Cumulative

POINTS = 128
"""Points of the time grid; the output keeps those up to the longest replication's end (65 to 128)."""
BINS = 1024
"""Value bins per point and quantity."""
QUANTILES = (0.1, 0.5, 0.9)

FloatArray = npt.NDArray[np.float64]


def _power_of_two_at_least(value: float) -> float:
    """The smallest power of two not below ``value`` (``value`` > 0)."""
    mantissa, exponent = math.frexp(value)
    return math.ldexp(1.0, exponent - 1) if mantissa == 0.5 else math.ldexp(1.0, exponent)


class _Histograms:
    """One quantity's histogram at every grid point, plus the histogram of the totals."""

    def __init__(self) -> None:
        self.width = 0.0
        """Bin width; 0 until the first values arrive."""
        self.counts = np.zeros((POINTS, BINS), dtype=np.int64)
        self.low = np.full(POINTS, np.inf)
        self.high = np.full(POINTS, -np.inf)
        self.totals = np.zeros(BINS, dtype=np.int64)
        self.totals_low = np.inf
        self.totals_high = -np.inf

    def fit(self, largest: float) -> None:
        """Widen the bins until ``largest`` falls inside them."""
        if self.width == 0.0:
            self.width = _power_of_two_at_least(largest / (BINS / 2)) if largest > 0 else 1.0
        while largest >= self.width * BINS:
            self.width *= 2
            self.counts = np.concatenate(
                [self.counts[:, 0::2] + self.counts[:, 1::2], np.zeros((POINTS, BINS // 2), np.int64)],
                axis=1,
            )
            self.totals = np.concatenate(
                [self.totals[0::2] + self.totals[1::2], np.zeros(BINS // 2, np.int64)]
            )

    def stretch(self) -> None:
        """The grid's step doubled: keep every other point; the far half starts from the totals."""
        half = POINTS // 2
        self.counts = np.concatenate([self.counts[0::2], np.tile(self.totals, (POINTS - half, 1))])
        self.low = np.concatenate([self.low[0::2], np.full(POINTS - half, self.totals_low)])
        self.high = np.concatenate([self.high[0::2], np.full(POINTS - half, self.totals_high)])

    def add(self, values: FloatArray, totals: FloatArray) -> None:
        """Add replications' values at every point (``values[replication, point]``) and their totals."""
        bins = (values * (1.0 / self.width)).astype(np.int64)
        np.minimum(bins, BINS - 1, out=bins)
        bins += (np.arange(POINTS, dtype=np.int64) * BINS)[None, :]
        self.counts += np.bincount(bins.ravel(), minlength=POINTS * BINS).reshape(POINTS, BINS)
        self.low = np.minimum(self.low, values.min(axis=0))
        self.high = np.maximum(self.high, values.max(axis=0))
        total_bins = np.minimum((totals / self.width).astype(np.int64), BINS - 1)
        self.totals += np.bincount(total_bins, minlength=BINS)
        self.totals_low = min(self.totals_low, float(totals.min()))
        self.totals_high = max(self.totals_high, float(totals.max()))

    def percentiles(self, points: int) -> list[list[float]]:
        """P10, P50 and P90 at the first ``points`` points (numpy's linear interpolation between order
        statistics, each order statistic placed evenly inside its bin)."""
        out: list[list[float]] = [[] for _ in QUANTILES]
        for point in range(points):
            counts = self.counts[point]
            cumulative = np.cumsum(counts)
            total = int(cumulative[-1])

            def order_statistic(rank: int, counts: npt.NDArray[np.int64] = counts,
                                cumulative: npt.NDArray[np.int64] = cumulative) -> float:  # fmt: skip
                bin_index = int(np.searchsorted(cumulative, rank, side="right"))
                before = int(cumulative[bin_index - 1]) if bin_index else 0
                inside = (rank - before + 0.5) / int(counts[bin_index])
                return (bin_index + inside) * self.width

            for slot, quantile in enumerate(QUANTILES):
                position = quantile * (total - 1)
                lower = math.floor(position)
                value = order_statistic(lower)
                if position > lower:
                    value += (position - lower) * (order_statistic(lower + 1) - value)
                value = min(max(value, float(self.low[point])), float(self.high[point]))
                out[slot].append(value)
        return out


class Curves:
    """Each replication's cumulative tokens and cost at every point of a grid of step ``step_min``.

    Attempts are added a task at a time, in task order; each amount lands at the first point at or after
    its attempt's end and is summed there in the order added, exactly as one ``bincount`` over every
    attempt of the batch (task after task) would sum it, so the values do not depend on how the attempts
    were handed over.
    """

    def __init__(self, count: int, step_min: float) -> None:
        self.count = count
        self.step_min = step_min
        self.offsets = (np.arange(count, dtype=np.int64) * POINTS)[:, None]
        self.tokens_steps = np.zeros(count * POINTS)
        self.cost_steps = np.zeros(count * POINTS)

    def add(self, ends_min: FloatArray, tokens: FloatArray, cost: FloatArray) -> None:
        """Add attempts: ``ends_min[replication, attempt]`` (NaN: it never ran, its amounts are ignored),
        and each one's ``tokens`` and ``cost``."""
        if ends_min.size == 0:
            return
        ran = ~np.isnan(ends_min)
        point = np.ceil(np.where(ran, ends_min, 0.0) / self.step_min)
        np.minimum(point, POINTS - 1, out=point)
        flat = (point.astype(np.int64) + self.offsets).ravel()
        np.add.at(self.tokens_steps, flat, np.where(ran, tokens, 0.0).ravel())
        np.add.at(self.cost_steps, flat, np.where(ran, cost, 0.0).ravel())

    def values(self) -> tuple[FloatArray, FloatArray]:
        """Cumulative tokens and cost, ``[replication, point]``."""
        shape = (self.count, POINTS)
        tokens: FloatArray = np.cumsum(self.tokens_steps.reshape(shape), axis=1, dtype=np.float64)
        cost: FloatArray = np.cumsum(self.cost_steps.reshape(shape), axis=1, dtype=np.float64)
        return tokens, cost


class CumulativeSketch:
    """Cumulative tokens and cost at each grid point, over every replication added so far."""

    def __init__(self, scale_min: float) -> None:
        """``scale_min``: a typical run's length (e.g. the plan's makespan); the grid starts at twice it."""
        scale = scale_min if scale_min > 0 and math.isfinite(scale_min) else 1.0
        self.step_min = _power_of_two_at_least(2 * scale / (POINTS - 1))
        self.longest_min = 0.0
        self.replications = 0
        self.tokens = _Histograms()
        self.cost = _Histograms()

    def step_for(self, longest_min: float) -> float:
        """The grid's step once a replication ending at ``longest_min`` is added."""
        step = self.step_min
        while longest_min > (POINTS - 1) * step:
            step *= 2
        return step

    def stretch_to(self, longest_min: float) -> None:
        """Make the grid reach ``longest_min`` (doubling its step), before a batch that long is added."""
        self.longest_min = max(self.longest_min, longest_min)
        while longest_min > (POINTS - 1) * self.step_min:
            self.step_min *= 2
            if self.replications:
                self.tokens.stretch()
                self.cost.stretch()

    def add_values(self, tokens: FloatArray, cost: FloatArray) -> None:
        """Add a batch of replications' cumulative values on the current grid (:meth:`Curves.values`,
        after :meth:`stretch_to` the batch's longest replication)."""
        if tokens.shape[0] == 0:
            return
        for histograms, values in ((self.tokens, tokens), (self.cost, cost)):
            totals = values[:, -1]
            histograms.fit(float(totals.max()))
            histograms.add(values, totals)
        self.replications += tokens.shape[0]

    def add(
        self, ends_min: FloatArray, tokens: FloatArray, cost: FloatArray, makespan_min: FloatArray
    ) -> None:
        """Add a batch of replications.

        ``ends_min[replication, attempt]`` is when each cycle attempt ended (NaN for one that never ran),
        ``tokens`` and ``cost`` what it spent (any order of attempts; NaN rows' amounts are ignored);
        ``makespan_min[replication]`` when the replication ended.
        """
        count = ends_min.shape[0]
        if count == 0:
            return
        self.stretch_to(float(np.max(makespan_min)))
        curves = Curves(count, self.step_min)
        curves.add(ends_min, tokens, cost)
        self.add_values(*curves.values())

    def result(self) -> Cumulative:
        """P10/P50/P90 curves from 0 to the first point at or after the longest replication's end."""
        if self.replications == 0:
            raise ValueError("no replications added")
        points = min(math.ceil(self.longest_min / self.step_min), POINTS - 1) + 1
        tokens = self.tokens.percentiles(points)
        cost = self.cost.percentiles(points)
        return Cumulative(
            grid_min=[index * self.step_min for index in range(points)],
            tokens_p10=tokens[0],
            tokens_p50=tokens[1],
            tokens_p90=tokens[2],
            cost_p10=cost[0],
            cost_p50=cost[1],
            cost_p90=cost[2],
            tokens_resolution=self.tokens.width,
            cost_resolution=self.cost.width,
        )
