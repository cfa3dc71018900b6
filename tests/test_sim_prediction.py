"""Per-task percentiles and cumulative tokens and cost over time, in the Prediction.

With zero variance every percentile is the planned value and every curve is the one run's; with
variance the curves end at the distribution of the totals (within the sketch's stated resolution), and
neither the curves nor the per-task percentiles grow with the number of replications.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import SCENARIOS

from cycleplan.core.loading import load_scenario
from cycleplan.core.model import Scenario
from cycleplan.planner import plan
from cycleplan.sim import Prediction, run_replication, simulate
from cycleplan.sim.curves import BINS, POINTS, CumulativeSketch

ONE_100_ROLES = ("director", "backend", "frontend", "integration", "quality", "designer", "ops", "documenter")


def fixed_one_100(lanes: dict[str, int]) -> Scenario:
    """one-100 with no variance at all: fixed cycles and fixed tokens."""
    tokens = {"fresh_input": {"median": 1000, "p90": 1000}, "output": {"median": 700, "p90": 700}}
    roles = {role: {"cycle": {"median_min": 3, "p90_min": 3}, "tokens": tokens} for role in ONE_100_ROLES}
    return Scenario.model_validate({"name": "fixed", "template": "one-100", "roles": roles}).with_lanes(lanes)


@pytest.mark.parametrize("engine", ["simpy", "fast"])
@pytest.mark.parametrize("lanes", [{}, {"backend": 2}])
def test_with_zero_variance_every_task_percentile_is_the_planned_value(
    lanes: dict[str, int], engine: str
) -> None:
    planned = plan(fixed_one_100(lanes))
    prediction = simulate(planned, replications=7, seed=3, engine=engine)
    rows = {row.task: (lane.lane, row) for lane, row in planned.planned_tasks()}
    assert set(prediction.tasks) == set(rows)
    for task, predicted in prediction.tasks.items():
        lane, row = rows[task]
        assert predicted.lane == lane
        assert predicted.ran == 1.0
        assert predicted.start is not None and predicted.finish is not None and predicted.duration is not None
        for value in (predicted.start.p10, predicted.start.p50, predicted.start.p90):
            assert value == pytest.approx(row.start_min, rel=1e-12, abs=1e-12)
        for value in (predicted.finish.p10, predicted.finish.p50, predicted.finish.p90):
            assert value == pytest.approx(row.finish_min, rel=1e-12)
        assert predicted.duration.p50 == pytest.approx(row.finish_min - row.start_min, rel=1e-12)


def test_with_zero_variance_the_curves_are_the_one_runs_spending() -> None:
    planned = plan(fixed_one_100({}))
    prediction = simulate(planned, replications=9, seed=2)
    curves = prediction.cumulative
    assert curves is not None
    run = run_replication(planned, 0, seed=2)
    cycles = [event for event in run.trace if event.action == "cycle_completed"]
    usage = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    for index, minute in enumerate(curves.grid_min):
        done = [event for event in cycles if event.timestamp / 60_000 <= minute + 1e-9]
        tokens = sum(sum(event.metadata[key] for key in usage) for event in done)
        cost = sum(event.metadata["cost_usd"] for event in done)
        for series in (curves.tokens_p10, curves.tokens_p50, curves.tokens_p90):
            assert series[index] == pytest.approx(tokens, rel=1e-12, abs=1e-9)
        for series in (curves.cost_p10, curves.cost_p50, curves.cost_p90):
            assert series[index] == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert curves.tokens_p50[-1] == run.metrics.tokens_total


@pytest.mark.parametrize("engine", ["simpy", "fast"])
def test_the_curves_end_at_the_median_total_within_their_resolution(engine: str) -> None:
    planned = plan(load_scenario(SCENARIOS / "full-feature.yaml"))
    prediction = simulate(planned, replications=400, seed=11, engine=engine)
    curves = prediction.cumulative
    assert curves is not None
    makespans = prediction.replications.values["makespan_min"]
    # The grid runs to the first point at or after the longest replication, so at its last point every
    # replication has spent its total: the P50 there is the median total, up to one histogram bin.
    assert curves.grid_min[-1] >= max(makespans) > curves.grid_min[-2]
    assert 50 <= len(curves.grid_min) <= POINTS
    for name, total, resolution in (
        ("tokens", "tokens_total", curves.tokens_resolution),
        ("cost", "cost_usd", curves.cost_resolution),
    ):
        values = prediction.replications.values[total]
        p10, p50, p90 = (getattr(curves, f"{name}_p{q}") for q in (10, 50, 90))
        assert abs(p50[-1] - float(np.median(values))) <= resolution
        assert abs(p10[-1] - float(np.percentile(values, 10))) <= resolution
        assert abs(p90[-1] - float(np.percentile(values, 90))) <= resolution
        assert resolution <= 4 * max(values) / BINS
        for series in (p10, p50, p90):
            assert all(later >= earlier for earlier, later in itertools.pairwise(series))
        assert all(low <= mid <= high for low, mid, high in zip(p10, p50, p90, strict=True))
        assert p50[0] == 0.0


def test_neither_curves_nor_task_percentiles_grow_with_replications() -> None:
    planned = plan(load_scenario(SCENARIOS / "course-crud.yaml"))

    def sizes(replications: int) -> tuple[int, int]:
        prediction = simulate(planned, replications=replications, seed=1, engine="fast")
        assert prediction.cumulative is not None
        return len(prediction.cumulative.model_dump_json()), len(
            "".join(task.model_dump_json() for task in prediction.tasks.values())
        )

    few, many = sizes(60), sizes(6000)
    # At most POINTS points of seven numbers each (about 25 characters a number), however many runs.
    assert few[0] <= POINTS * 7 * 25 and many[0] <= POINTS * 7 * 25
    assert many[1] <= few[1] * 1.2  # a fixed set of percentiles per task


def test_tasks_and_curves_survive_the_json_round_trip(tmp_path: Path) -> None:
    prediction = simulate(plan(load_scenario(SCENARIOS / "payment.yaml")), replications=30, seed=5)
    path = tmp_path / "prediction.json"
    prediction.save(path)
    loaded = Prediction.load(path)
    assert loaded == prediction
    assert loaded.tasks == prediction.tasks and loaded.cumulative == prediction.cumulative


def test_a_race_member_that_never_works_has_no_percentiles() -> None:
    planned = plan(
        Scenario.model_validate(
            {
                "name": "one-lane race",
                "roles": {"designer": {"lanes": 2}},
                "tasks": [
                    {"id": "a", "role": "designer", "cycles": 4, "race": "r"},
                    {"id": "b", "role": "designer", "cycles": 4, "race": "r"},
                ],
            }
        ),
        algorithm="sequential",
    )
    prediction = simulate(planned, replications=10, seed=1)
    shares = sorted(task.ran for task in prediction.tasks.values())
    assert shares == [0.0, 1.0]
    idle = next(task for task in prediction.tasks.values() if task.ran == 0.0)
    assert idle.start is None and idle.finish is None and idle.duration is None


# --------------------------------------------------------------------------------------------------
# The sketch alone, against exact percentiles


def exact_curves(
    ends: list[np.ndarray[Any, Any]], amounts: list[np.ndarray[Any, Any]], grid: list[float]
) -> np.ndarray[Any, Any]:
    return np.array(
        [[amount[end <= minute].sum() for minute in grid] for end, amount in zip(ends, amounts, strict=True)]
    )


def test_the_sketch_is_within_one_bin_of_the_exact_percentiles() -> None:
    rng = np.random.default_rng(0)
    sketch = CumulativeSketch(scale_min=10.0)
    all_ends: list[np.ndarray[Any, Any]] = []
    all_tokens: list[np.ndarray[Any, Any]] = []
    all_cost: list[np.ndarray[Any, Any]] = []
    for batch in range(5):
        count, attempts = 37, 15
        # Later batches run longer, so the grid's step doubles on the way (and the far half is refilled
        # from the totals).
        ends = np.cumsum(rng.exponential(1.0 + 2 * batch, (count, attempts)), axis=1)
        ends[rng.random((count, attempts)) < 0.1] = np.nan
        tokens = rng.integers(100, 5000, (count, attempts)).astype(float) * (1 + batch)
        cost = tokens * 3e-6
        sketch.add(ends, tokens, cost, np.nanmax(ends, axis=1) + 0.5)
        for row in range(count):
            kept = ~np.isnan(ends[row])
            all_ends.append(ends[row][kept])
            all_tokens.append(tokens[row][kept])
            all_cost.append(cost[row][kept])
    result = sketch.result()
    longest = max(float(end.max()) + 0.5 for end in all_ends)
    assert result.grid_min[-1] >= longest > result.grid_min[-2]
    step = result.grid_min[1]
    # Each attempt counts from the first grid point at or after its end.
    snapped = [np.ceil(end / step) * step for end in all_ends]
    for name, amounts, resolution in (
        ("tokens", all_tokens, result.tokens_resolution),
        ("cost", all_cost, result.cost_resolution),
    ):
        exact = exact_curves(snapped, amounts, result.grid_min)
        for quantile in (10, 50, 90):
            want = np.percentile(exact, quantile, axis=0)
            got = np.array(getattr(result, f"{name}_p{quantile}"))
            assert np.all(np.abs(got - want) <= resolution * (1 + 1e-9)), (name, quantile)
    assert math.log2(result.tokens_resolution).is_integer()
