"""``optimize``: successive halving on common random numbers finds the exhaustive search's choice (or one
in its statistical tie) for a fifth of its replications; model options are validated and applied; the
chosen configuration runs through ``execute`` as is; bad input exits 2 and an infeasible search exits 1."""

from __future__ import annotations

import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import load_scenario, parse_scenario
from cycleplan.core.model import ModelOption, Scenario
from cycleplan.workflows.optimize import (
    OptimizeError,
    OptimizeResult,
    clopper_pearson_low,
    optimize,
    paired_bootstrap,
    search_space,
)

runner = CliRunner()

# Three scenarios, each with a space of at most 200 configurations (lanes x models per role).
SPACES: dict[str, dict[str, Any]] = {
    "full-feature": {"lanes": {"backend": [1, 2]}, "budget_usd": 4.5},  # 2 x 3^4 = 162
    "payment": {"lanes": {}, "budget_usd": None},  # 3^4 = 81
    "course-crud": {"lanes": {"backend": [1, 2, 3, 4]}, "budget_usd": 2.0},  # 4 x 3^3 = 108
}
SEED = 5


@cache
def searched(name: str) -> tuple[OptimizeResult, OptimizeResult]:
    """The successive-halving result and the exhaustive one, on the same seed (computed once)."""
    space = SPACES[name]
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    options: dict[str, Any] = {
        "lanes": space["lanes"],
        "budget_usd": space["budget_usd"],
        "seed": SEED,
        "workers": 1,
    }
    return optimize(scenario, **options), optimize(scenario, exhaustive=True, **options)


def _p90_rows(values: np.ndarray) -> np.ndarray:
    found: np.ndarray = np.percentile(values, 90, axis=1)
    return found


def _makespans(scenario: Scenario, result: OptimizeResult, which: str) -> np.ndarray:
    from cycleplan.sim.simulation import simulate
    from cycleplan.workflows.optimize import configured_plan

    estimate = getattr(result, which)
    planned = configured_plan(scenario, estimate.lanes, estimate.models)
    prediction = simulate(planned, replications=200, seed=SEED, engine="auto")
    return np.asarray(prediction.replications.values["makespan_min"])


@pytest.mark.parametrize("name", sorted(SPACES))
def test_the_search_finds_the_exhaustive_choice_for_a_fifth_of_its_replications(name: str) -> None:
    halving, exhaustive = searched(name)
    assert halving.configurations == exhaustive.configurations <= 200
    assert halving.replications_exhaustive == exhaustive.replications_used == 200 * halving.configurations
    assert halving.replications_used <= 0.2 * exhaustive.replications_used
    assert halving.search == "successive halving" and exhaustive.search == "exhaustive"
    if halving.chosen.label != exhaustive.chosen.label:
        # Only a statistical tie may differ: a paired bootstrap on the same draws cannot tell them apart.
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        ours, best = _makespans(scenario, halving, "chosen"), _makespans(scenario, exhaustive, "chosen")
        _, low, high = paired_bootstrap(best, ours, _p90_rows, SEED)
        assert low <= 0 <= high, (halving.chosen.label, exhaustive.chosen.label, low, high)
    else:
        # Its 200 replications are the exhaustive search's own, and simulate's on the configured plan:
        # the same numbers to the bit.
        assert halving.chosen == exhaustive.chosen
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        assert np.percentile(_makespans(scenario, halving, "chosen"), 90) == halving.chosen.makespan_min.p90
    assert halving.chosen.feasible and halving.chosen.replications == 200


def test_the_result_holds_the_choice_runner_up_front_and_budget_moves() -> None:
    halving, _ = searched("full-feature")
    assert halving.chosen.p_over_budget is not None and halving.chosen.p_over_budget <= halving.risk
    assert halving.runner_up is not None and halving.versus_runner_up is not None
    versus = halving.versus_runner_up
    assert versus.ci95_low <= versus.difference <= versus.ci95_high
    assert versus.distinguishable == (versus.ci95_low > 0 or versus.ci95_high < 0)
    # The chosen point is on the front (nothing both faster and cheaper), and the front is ordered.
    assert halving.chosen.label in {each.label for each in halving.pareto}
    p90s = [each.makespan_min.p90 for each in halving.pareto]
    costs = [each.cost_usd.mean for each in halving.pareto]
    assert p90s == sorted(p90s) and costs == sorted(costs, reverse=True)
    # A larger budget never chooses a slower configuration.
    chosen = [each.makespan_p90_min for each in halving.by_limit if each.makespan_p90_min is not None]
    assert len(chosen) >= 2 and all(a >= b for a, b in itertools.pairwise(chosen))
    rounds = [each.replications for each in halving.rounds]
    assert rounds == [10, 30, 90, 200]
    assert [each.configurations for each in halving.rounds[1:]] == [each.kept for each in halving.rounds[:-1]]


def test_clopper_pearson_bound() -> None:
    assert clopper_pearson_low(0, 10) == 0.0
    # 10 of 10 over budget: the true chance is above 0.74 with 95% confidence (0.05 ** (1/10)).
    assert clopper_pearson_low(10, 10) == pytest.approx(0.05 ** (1 / 10))
    assert clopper_pearson_low(3, 10) < 0.3 < clopper_pearson_low(30, 50)


def test_a_model_option_changes_durations_tokens_failures_and_price_only_where_chosen() -> None:
    scenario = load_scenario(SCENARIOS / "course-crud.yaml")
    backend = scenario.roles["backend"]
    assert backend.model_choices() == ["claude-sonnet-4-5", "claude-opus-4-6", "claude-haiku-4-5"]
    option = ModelOption(
        model="claude-opus-4-6", duration_factor=0.5, tokens_factor=2.0, failure_probability=0.3
    )
    moved = backend.with_model(option)
    assert moved.model == "claude-opus-4-6" and moved.models == []
    assert moved.cycle.median_p90() == pytest.approx((6.0, 10.0))
    assert moved.tokens.output.median == 2 * backend.tokens.output.median
    assert moved.failure.probability_per_cycle == 0.3
    configured = scenario.configured({"backend": 3}, {"frontend": "claude-haiku-4-5"})
    assert configured.roles["backend"].lanes == 3 and configured.roles["backend"].model == "claude-sonnet-4-5"
    assert configured.roles["frontend"].model == "claude-haiku-4-5"
    assert all(not role.models for role in configured.roles.values())
    # The role's own model, as written, is what every other command runs.
    assert scenario.configured({}, {}).roles["quality"].cycle == scenario.roles["quality"].cycle


def test_the_space_is_checked_against_roles_and_their_models() -> None:
    scenario = load_scenario(SCENARIOS / "payment.yaml")
    assert len(search_space(scenario)) == 81
    assert len(search_space(scenario, models={"backend": ["claude-opus-4-6"]})) == 27
    # A dated id asks for the listed model it names.
    dated = search_space(scenario, models={"backend": ["claude-opus-4-6-20260101", "claude-opus-4-6"]})
    assert dated == search_space(scenario, models={"backend": ["claude-opus-4-6"]})
    with pytest.raises(OptimizeError, match="no role 'ops'"):
        search_space(scenario, lanes={"ops": [1, 2]})
    with pytest.raises(OptimizeError, match="not among the models role designer may use"):
        search_space(scenario, models={"designer": ["claude-opus-4-6"]})
    with pytest.raises(OptimizeError, match="budget"):
        optimize(scenario, budget_usd=0, workers=1)


def test_no_feasible_configuration_names_the_closest() -> None:
    scenario = load_scenario(SCENARIOS / "course-crud.yaml")
    with pytest.raises(OptimizeError, match=r"no configuration keeps P\(cost > \$0\.01\)") as raised:
        optimize(scenario, budget_usd=0.01, workers=1, models={"backend": ["claude-haiku-4-5"]})
    assert raised.value.field == "infeasible" and "the closest is" in str(raised.value)


def test_cli_json_report_and_chosen_scenario_runs_on_the_emulator(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.yaml"
    report = tmp_path / "optimize.html"
    result = runner.invoke(
        app,
        [
            "optimize",
            str(SCENARIOS / "course-crud.yaml"),
            "--lanes",
            "backend=1..2",
            "--deadline",
            "3h",
            "--objective",
            "cost",
            "--json",
            "-w",
            "1",
            "-o",
            str(chosen),
            "--report",
            str(report),
            "--plotly-js",
            "cdn",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["objective"] == "cost" and data["deadline_min"] == 180
    assert {"chosen", "runner_up", "versus_runner_up", "pareto", "by_limit", "rounds", "chosen_yaml"} <= set(
        data
    )
    assert data["chosen"]["p_late"] <= 0.1 and data["configurations"] == 54
    assert "Pareto front" in report.read_text(encoding="utf-8")
    # The chosen scenario is plain: validate accepts it and execute runs it as is, offline.
    text = chosen.read_text(encoding="utf-8")
    assert text == data["chosen_yaml"] and "models:" not in text
    configured = parse_scenario(text, "chosen.yaml")
    assert {name: role.model for name, role in configured.roles.items()} == data["chosen"]["models"]
    assert runner.invoke(app, ["validate", str(chosen)]).exit_code == 0
    executed = runner.invoke(
        app,
        [
            "execute",
            str(chosen),
            "--agent",
            "emulated",
            "--time-scale",
            "20000",
            "--store",
            str(tmp_path / "runs.db"),
            "--json",
            "--progress",
            "none",
        ],
    )
    assert executed.exit_code == 0, executed.output
    assert json.loads(executed.stdout)["status"] == "complete"


def test_cli_text_names_the_choice_and_the_replications() -> None:
    result = runner.invoke(app, ["optimize", str(SCENARIOS / "payment.yaml"), "-w", "1", "--budget", "3"])
    assert result.exit_code == 0, result.output
    assert "chosen" in result.stdout and "runner-up" in result.stdout and "Pareto front" in result.stdout
    assert "of an exhaustive 16,200" in result.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--lanes", "backend=0..2"], "from 1 to 1000"),
        (["--lanes", "backend=x"], "write a range like 1..8"),
        (["--lanes", "ops=1..2"], "no role 'ops'"),
        (["--models", "backend=claude-opsu-4-6"], "may not use 'claude-opsu-4-6'"),
        (["--models", "nobody=claude-opus-4-6"], "no role 'nobody'"),
        (["--models", "backend"], "write ROLE=MODEL,MODEL"),
        (["--budget", "0"], "--budget 0: must be a positive amount"),
        (["--budget", "-3"], "must be a positive amount"),
        (["--deadline", "soon"], "write a duration with its unit"),
        (["--risk", "1.5"], "must be a probability"),
        (["--objective", "speed"], "choose makespan or cost"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(options: list[str], message: str) -> None:
    result = runner.invoke(app, ["optimize", str(SCENARIOS / "course-crud.yaml"), "-w", "1", *options])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cli_infeasible_exits_1_and_says_so() -> None:
    result = runner.invoke(
        app, ["optimize", str(SCENARIOS / "course-crud.yaml"), "-w", "1", "--budget", "0.01"]
    )
    assert result.exit_code == 1, result.output
    assert "no configuration keeps" in result.stderr and "raise the budget" in result.stderr


def test_the_two_coordinate_front_equals_the_general_one() -> None:
    from cycleplan.workflows.optimize import pareto_2d
    from cycleplan.workflows.sweep import pareto_front

    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 60):
        # Rounded, so that ties and equal points occur.
        points = [(float(x), float(y)) for x, y in np.round(rng.uniform(0, 5, size=(size, 2)))]
        lanes = [float(value) for value in rng.integers(1, 4, size=size)]
        # The general front keeps every copy of an equal point; the two-coordinate one keeps the copy
        # with the fewest lanes (then the first).
        fewest = {
            point: min(
                (index for index in range(size) if points[index] == point), key=lambda i: (lanes[i], i)
            )
            for point in set(points)
        }
        expected = [index for index in pareto_front(points) if fewest[points[index]] == index]
        assert pareto_2d(points, lanes) == expected


def test_the_bound_for_many_configurations_is_the_bound_for_each() -> None:
    from cycleplan.workflows.optimize import _Candidate, _Search

    rng = np.random.default_rng(9)
    search = _Search("makespan", budget_usd=1.0, deadline_min=None, risk=0.1)
    candidates = [
        _Candidate(index, (1,), ("m",), np.ones(size), rng.uniform(0.5, 1.5, size))
        for index, size in enumerate([10, 10, 30, 30, 90, 200])
    ]
    expected = [
        any(clopper_pearson_low(count, each.cost.size) > 0.1 for count in search.breaks(each))
        for each in candidates
    ]
    assert search.surely_infeasible_all(candidates) == expected
    assert any(expected)


def test_a_workers_cached_simulators_never_serve_another_seed() -> None:
    from cycleplan.workflows import optimize as module

    scenario = load_scenario(SCENARIOS / "course-crud.yaml")
    options: dict[str, Any] = {"workers": 1, "models": {"quality": ["claude-sonnet-4-5"]}}
    optimize(scenario, seed=5, **options)
    after_another = optimize(scenario, seed=4, **options)
    module._SIMULATORS.clear()
    module._PLANS.clear()
    fresh = optimize(scenario, seed=4, **options)
    assert after_another.model_dump(exclude={"runtime_s"}) == fresh.model_dump(exclude={"runtime_s"})
