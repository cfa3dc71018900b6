"""Calibration recovers the truth: traces simulated from a known model, fitted from a wrong prior, give
back the model's parameters within their stated uncertainty; and the calibrated scenario validates."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, SCENARIOS, SHARED_DATA
from typer.testing import CliRunner

from cycleplan.calibration import (
    CalibrationError,
    Estimate,
    RoleFit,
    calibrate,
    calibrate_runs,
    calibrated_yaml,
    fit_log,
    render_calibration,
)
from cycleplan.cli import app
from cycleplan.importers import import_claude_code, import_one_state, store_run
from cycleplan.loading import load_scenario
from cycleplan.model import Event, FailureModel, Lognormal, Role, Scenario, Spread, Task, TokenModel
from cycleplan.planner import plan
from cycleplan.sim import run_replication

DATA = ROOT / "tests" / "data"
runner = CliRunner()
TASKS = [Task(id=f"t{i}", role="backend", cycles=50) for i in range(4)]
TRUTH = {
    "cycle_median": 4.0,
    "cycle_p90": 9.0,
    "fresh_median": 1500,
    "fresh_p90": 4000,
    "output_median": 900,
    "output_p90": 2500,
    "failure": 0.08,
}


def _role(
    cycle: tuple[float, float], fresh: tuple[int, int], output: tuple[int, int], failure: float
) -> Role:
    return Role(
        lanes=2,
        cycle=Lognormal(median_min=cycle[0], p90_min=cycle[1]),
        tokens=TokenModel(
            fresh_input=Spread(median=fresh[0], p90=fresh[1]), output=Spread(median=output[0], p90=output[1])
        ),
        failure=FailureModel(probability_per_cycle=failure, max_retries=5),
    )


TRUE_SCENARIO = Scenario(roles={"backend": _role((4.0, 9.0), (1500, 4000), (900, 2500), 0.08)}, tasks=TASKS)
WRONG_PRIOR = Scenario(roles={"backend": _role((2.0, 3.0), (500, 800), (3000, 5000), 0.0)}, tasks=TASKS)


def _traces(seed: int, replications: int) -> list[tuple[str, list[Event]]]:
    the_plan = plan(TRUE_SCENARIO, algorithm="list")
    return [(f"sim-{seed}-{r}", run_replication(the_plan, r, seed=seed).trace) for r in range(replications)]


def _checks(fit: RoleFit) -> dict[str, tuple[Estimate, float]]:
    return {
        "cycle_median": (fit.cycle.median_min, TRUTH["cycle_median"]),
        "cycle_p90": (fit.cycle.p90_min, TRUTH["cycle_p90"]),
        "fresh_median": (fit.fresh_input.median, TRUTH["fresh_median"]),
        "fresh_p90": (fit.fresh_input.p90, TRUTH["fresh_p90"]),
        "output_median": (fit.output.median, TRUTH["output_median"]),
        "output_p90": (fit.output.p90, TRUTH["output_p90"]),
        "failure": (fit.failure.probability, TRUTH["failure"]),
    }


def test_calibration_recovers_the_truth_from_a_wrong_prior() -> None:
    calibration = calibrate(_traces(seed=11, replications=2), WRONG_PRIOR, prior_weight=5)
    fit = calibration.roles["backend"]
    for name, (estimate, truth) in _checks(fit).items():
        assert estimate.covers(truth), f"{name}: {truth} outside {estimate}"
        # and the prior's wrong value is not inside
    assert not fit.cycle.median_min.covers(2.0) and not fit.output.median.covers(3000)


def test_stated_uncertainty_covers_the_truth_about_as_often_as_it_says() -> None:
    runs = 60
    covered = dict.fromkeys(TRUTH, 0)
    for seed in range(runs):
        fit = calibrate(_traces(seed=100 + seed, replications=1), WRONG_PRIOR, prior_weight=0).roles[
            "backend"
        ]
        for name, (estimate, truth) in _checks(fit).items():
            covered[name] += estimate.covers(truth)
    # 90% intervals: 54 of 60 expected; 46 is more than three standard deviations below.
    assert min(covered.values()) >= 46, covered


def test_weight_zero_is_maximum_likelihood_and_a_heavy_prior_stays_put() -> None:
    values = [1.0, 2.0, 4.0, 8.0]
    fit = fit_log(values, 3.0, 5.0, weight=0)
    assert fit is not None
    logs = np.log(values)
    assert fit.mu == pytest.approx(logs.mean())
    assert fit.sigma == pytest.approx(logs.std())  # the MLE divides by n
    heavy = fit_log(values, 3.0, 5.0, weight=1e7)
    assert heavy is not None
    assert math.exp(heavy.mu) == pytest.approx(3.0, rel=1e-4)
    assert fit_log([], 3.0, 5.0, weight=0) is None


def test_the_calibrated_scenario_validates_and_keeps_the_rest(tmp_path: Path) -> None:
    source = SCENARIOS / "full-feature.yaml"
    prior = load_scenario(source)
    the_plan = plan(prior, algorithm="list")
    traces = [("sim", run_replication(the_plan, 0, seed=3).trace)]
    calibration = calibrate(traces, prior, prior_weight=2)
    text = calibrated_yaml(calibration, source.read_text(encoding="utf-8"), "out.yaml")
    written = tmp_path / "calibrated.yaml"
    written.write_text(text, encoding="utf-8")
    loaded = load_scenario(written)
    assert loaded.all_tasks() == prior.all_tasks()
    assert loaded.description == prior.description
    for role, fit in calibration.roles.items():
        cycle = loaded.role(role).cycle
        assert isinstance(cycle, Lognormal) and fit.cycle is not None
        assert cycle.median_min == pytest.approx(fit.cycle.median_min.value, rel=1e-3)
    assert loaded.roles == calibration.scenario.roles
    assert "&" not in text.split("roles:")[1]  # aliases were written out, each role its own
    assert "backend" in render_calibration(calibration)


def test_roles_the_scenario_lacks_are_left_out_or_mapped() -> None:
    imported = import_claude_code(DATA / "claude-code" / "tool_heavy.jsonl")
    other = Scenario(roles={"backend": Role()}, tasks=[Task(id="x", role="backend", cycles=3)])
    with pytest.raises(CalibrationError, match="--role main=ROLE"):
        calibrate([("cc", imported.trace)], other)
    mapped = calibrate([("cc", imported.trace)], other, role_map={"main": "backend"})
    assert mapped.roles["backend"].cycle is not None and mapped.roles["backend"].cycle.cycles == 2
    with pytest.raises(CalibrationError, match="prior weight"):
        calibrate([("cc", imported.trace)], other, prior_weight=-1)


def test_imputed_and_idle_durations_are_left_out() -> None:
    imported = import_one_state(DATA / "one-state" / "cycle-405b946017.json")
    calibration = calibrate([("one", imported.trace)], imported.scenario)
    fitted = sum(fit.cycle.cycles for fit in calibration.roles.values() if fit.cycle is not None)
    left_out = sum(fit.cycle.left_out for fit in calibration.roles.values() if fit.cycle is not None)
    assert (fitted, left_out) == (94, 6)
    assert all(fit.output is None for fit in calibration.roles.values())  # no usage in the state file


# --------------------------------------------------------------------------------------------------
# From the run store, through the command


def _store_with_imports(tmp_path: Path) -> tuple[Path, str, str]:
    store = tmp_path / "runs.db"
    cc, _ = store_run(import_claude_code(DATA / "claude-code"), store)
    one, _ = store_run(import_one_state(DATA / "one-state" / "cycle-405b946017.json"), store)
    return store, cc, one


def test_calibrate_command_prints_before_and_after_and_writes_a_valid_scenario(tmp_path: Path) -> None:
    store, cc, one = _store_with_imports(tmp_path)
    out = tmp_path / "calibrated.yaml"
    result = runner.invoke(app, ["calibrate", cc, "--store", str(store), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "before" in result.stdout and "90% interval" in result.stdout
    assert "cycle median (min)" in result.stdout
    load_scenario(out)
    result = runner.invoke(app, ["calibrate", one, "--store", str(store), "--json", "--prior-weight", "0"])
    fits = json.loads(result.stdout)
    assert fits["roles"]["backend"]["cycle"]["cycles"] == 27


def test_calibrate_command_with_a_scenario_file(tmp_path: Path) -> None:
    store, _, one = _store_with_imports(tmp_path)
    out = tmp_path / "fit.yaml"
    source = SCENARIOS / "full-feature.yaml"
    result = runner.invoke(
        app,
        [
            "calibrate",
            one,
            "--store",
            str(store),
            "--scenario",
            str(source),
            "--role",
            "director=backend",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "comments are not kept" in result.stderr + result.stdout
    assert load_scenario(out).all_tasks() == load_scenario(source).all_tasks()


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["calibrate", "no-such-run"], "no run 'no-such-run'"),
        (["calibrate", "RUN", "--prior-weight", "-1"], "--prior-weight"),
        (["calibrate", "RUN", "--role", "main"], "write FROM=TO"),
    ],
)
def test_calibrate_command_refuses_bad_input(tmp_path: Path, words: list[str], message: str) -> None:
    store, cc, _ = _store_with_imports(tmp_path)
    words = [cc if word == "RUN" else word for word in words]
    result = runner.invoke(app, [*words, "--store", str(store)])
    assert result.exit_code == 2
    assert message in result.stderr


def test_calibrate_command_without_a_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["calibrate", "x", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and "no run store here" in result.stderr


@pytest.mark.skipif(
    not (SHARED_DATA / "traces").is_dir(), reason=f"the full traces are not here ({SHARED_DATA})"
)
def test_the_real_data_calibrates(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    cc, _ = store_run(import_claude_code(SHARED_DATA / "traces" / "claude-code"), store)
    calibration = calibrate_runs(store, [cc])
    main = calibration.roles["main"].cycle
    assert main is not None and main.median_min.value > 3.0  # a Claude Code turn is longer than a ONE cycle
    for state in sorted((SHARED_DATA / "traces" / "one-cycle-state").glob("*.json")):
        one, _ = store_run(import_one_state(state), store)
        fitted = calibrate_runs(store, [one])
        calibrated_yaml(fitted)
