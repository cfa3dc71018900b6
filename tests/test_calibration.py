"""Calibration recovers the truth: traces simulated from a known model, fitted from a wrong prior, give
back the model's parameters within their stated uncertainty; and the calibrated scenario validates."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import ROOT, SCENARIOS, SHARED_DATA
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import load_scenario
from cycleplan.core.model import (
    Event,
    FailureModel,
    Lognormal,
    ModelOption,
    Role,
    Scenario,
    Spread,
    Task,
    TokenModel,
)
from cycleplan.planner import plan
from cycleplan.present.render_calibration import calibration_view
from cycleplan.present.terminal import to_text
from cycleplan.sim import run_replication
from cycleplan.store import RunStore
from cycleplan.workflows.calibration import (
    CalibrationError,
    Estimate,
    RoleFit,
    calibrate,
    calibrate_runs,
    calibrated_yaml,
    fit_log,
)
from cycleplan.workflows.importers import import_claude_code, import_one_state, store_run

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
    assert "backend" in to_text(calibration_view(calibration))


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
    comments = [line for line in source.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    written = out.read_text(encoding="utf-8").splitlines()
    assert comments and all(line in written for line in comments)
    assert load_scenario(out).all_tasks() == load_scenario(source).all_tasks()


WRITTEN_BY_HAND = """\
# Checkout, as the team wrote it.
name: "Checkout"   # quoted on purpose
spec: |
  Feature: checkout.
    - pay by card
  Acceptance: the order is paid.
roles:
  backend:
    lanes: 2
    cycle: {median_min: 3, p90_min: 5}   # the team's guess
  frontend: {lanes: 1, model: 'claude-sonnet-4-5'}
tasks:
  - {id: schema, role: backend, cycles: 3, emits: {schema_ready: 2}}
  - id: ui
    role: frontend
    cycles: 2
    after: [schema]   # after the schema
    waits: {schema_ready: 1}
    command: ['echo', "ui"]
"""


def _calibrate_file(store: Path, run: str, source: Path, out: Path) -> None:
    words = ["calibrate", run, "--store", str(store), "--scenario", str(source), "--role", "main=backend"]
    result = runner.invoke(app, [*words, "-o", str(out)])
    assert result.exit_code == 0, result.output


def _calibrated_text(tmp_path: Path, store: Path, run: str, text: str) -> tuple[Scenario, Scenario, str]:
    """The scenario ``text`` as written, calibrated from ``run`` through the command, and the file written."""
    source, out = tmp_path / "scenario.yaml", tmp_path / "fit.yaml"
    source.write_text(text, encoding="utf-8")
    _calibrate_file(store, run, source, out)
    return load_scenario(source), load_scenario(out), out.read_text(encoding="utf-8")


def test_calibrate_changes_only_the_fitted_values_of_a_scenario_file(tmp_path: Path) -> None:
    store, cc, _ = _store_with_imports(tmp_path)
    source = tmp_path / "checkout.yaml"
    source.write_text(WRITTEN_BY_HAND, encoding="utf-8")
    out = tmp_path / "fit.yaml"
    _calibrate_file(store, cc, source, out)

    header, *body = out.read_text(encoding="utf-8").splitlines()
    assert header.startswith(f"# Calibrated by cycleplan from 1 run {cc}; the prior counted as 5 cycles.")
    original = WRITTEN_BY_HAND.splitlines()
    # Byte for byte up to the fitted role, and from the role after it to the end.
    fitted = original.index("  backend:") + 1
    assert body[:fitted] == original[:fitted]
    after = "  frontend: {lanes: 1, model: 'claude-sonnet-4-5'}"
    assert body[body.index(after) :] == original[original.index(after) :]
    # In the fitted role: its lanes as written, its cycle refitted in its own style beside its comment,
    # and the fitted values it did not have, added after them.
    role = body[fitted : body.index(after)]
    assert role[0] == "    lanes: 2"
    assert re.fullmatch(r"    cycle: \{median_min: [0-9.]+, p90_min: [0-9.]+\} +# the team's guess", role[1])
    assert role[1] != original[fitted + 1]
    added = [re.match(r"    (\w+):", line) for line in role[2:]]
    assert {match[1] for match in added if match} == {"tokens", "failure", "calls", "posterior"}

    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    prior = load_scenario(source)
    loaded = load_scenario(out)
    fit = calibrate_runs(store, [cc], prior, role_map={"main": "backend"})
    assert loaded.roles["backend"] == fit.scenario.roles["backend"] != prior.roles["backend"]
    assert loaded.model_copy(update={"roles": prior.roles}) == prior

    # Calibrating the calibrated file again replaces the opening line instead of adding another.
    again = tmp_path / "fit-again.yaml"
    _calibrate_file(store, cc, out, again)
    lines = again.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# Calibrated by cycleplan") and lines[1] == original[0]


def test_calibrate_writes_a_listed_model_s_factors_into_its_own_entry(tmp_path: Path) -> None:
    store, cc, _ = _store_with_imports(tmp_path)
    prior, loaded, text = _calibrated_text(
        tmp_path,
        store,
        cc,
        "roles:\n"
        "  backend:\n"
        "    model: claude-sonnet-4-5\n"
        "    cycle: {median_min: 6, p90_min: 10}\n"
        "    models:\n"
        "      - {model: claude-opus-4-6, duration_factor: 2}   # a guess\n"
        "      - {model: claude-haiku-4-5, duration_factor: 0.5}\n"
        "tasks:\n"
        "  - {id: a, role: backend, cycles: 2}\n",
    )
    fit = calibrate_runs(store, [cc], prior, role_map={"main": "backend"}).roles["backend"]
    with RunStore(store) as runs:
        trace = runs.trace(cc)
    on_opus = sum(
        event.action == "cycle_completed"
        and not event.metadata.get("interrupted")
        and event.metadata.get("model") == "claude-opus-4-6"
        for event in trace
    )
    [opus] = fit.models
    assert opus.model == "claude-opus-4-6" and opus.cycles == on_opus > 0
    written = loaded.roles["backend"].models
    assert written[0].duration_factor == pytest.approx(opus.duration_factor.value, rel=1e-3) != 2
    assert written[1] == prior.roles["backend"].models[1]  # no run used haiku: as written
    assert re.search(r"- \{model: claude-opus-4-6, duration_factor: [0-9.]+.*\} +# a guess", text), text
    assert "- {model: claude-haiku-4-5, duration_factor: 0.5}" in text


def test_calibrate_leaves_the_roles_an_alias_shares_with_a_fitted_role_as_they_were(tmp_path: Path) -> None:
    store, cc, _ = _store_with_imports(tmp_path)
    prior, loaded, text = _calibrated_text(
        tmp_path,
        store,
        cc,
        "roles:\n"
        "  backend: &six-minute-cycles\n"
        "    cycle: {median_min: 6, p90_min: 10}\n"
        "  frontend: *six-minute-cycles\n"
        "  ops: *six-minute-cycles\n"
        "tasks:\n"
        "  - {id: a, role: backend, cycles: 2}\n"
        "  - {id: b, role: frontend, cycles: 1}\n"
        "  - {id: c, role: ops, cycles: 1}\n",
    )
    assert loaded.roles["backend"] != prior.roles["backend"]
    assert loaded.roles["frontend"] == loaded.roles["ops"] == prior.roles["frontend"]
    assert "ops: *six-minute-cycles" in text


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


# --------------------------------------------------------------------------------------------------
# Agent loops, posteriors, and what calibration must not invent

LOOP_TRUTH = {"per_cycle": 30, "growth": 1200, "output": 200, "minutes": 0.1}
LOOP_ROLE = Role.model_validate(
    {
        "lanes": 2,
        "tokens": {"context_tokens": 20_000},
        "calls": {
            "per_cycle": {"median": 30, "p90": 60},
            "growth": {"median": 1200, "p90": 4000},
            "output": {"median": 200, "p90": 700},
            "minutes": {"median_min": 0.1, "p90_min": 0.25},
        },
    }
)
LOOP_SCENARIO = Scenario(
    roles={"backend": LOOP_ROLE}, tasks=[Task(id=f"t{i}", role="backend", cycles=6) for i in range(3)]
)


def _loop_traces(runs: int) -> list[tuple[str, list[Event]]]:
    the_plan = plan(LOOP_SCENARIO, algorithm="list")
    return [(f"run-{r}", run_replication(the_plan, r, seed=8).trace) for r in range(runs)]


def test_an_agent_loop_is_recovered_from_the_runs_it_made() -> None:
    fit = calibrate(_loop_traces(40), WRONG_PRIOR, prior_weight=0).roles["backend"]
    assert fit.loop is not None and fit.loop.durations == "calls"
    loop = fit.loop.loop
    # Cycle totals give each cycle's mean per call; the medians of the calls come back within 20%.
    assert loop.per_cycle.median == pytest.approx(LOOP_TRUTH["per_cycle"], rel=0.2)
    assert loop.output.median == pytest.approx(LOOP_TRUTH["output"], rel=0.2)
    assert loop.minutes is not None and loop.minutes.median_min == pytest.approx(
        LOOP_TRUTH["minutes"], rel=0.2
    )
    # Per-call means of a cycle are what totals show: their mean is right, so growth per call is too.
    mean_growth = loop.growth.median * math.exp(
        Lognormal(median_min=1, p90_min=loop.growth.p90 / loop.growth.median).sigma ** 2 / 2
    )
    true_mean = 1200 * math.exp(Lognormal(median_min=1, p90_min=4000 / 1200).sigma ** 2 / 2)
    assert mean_growth == pytest.approx(true_mean, rel=0.2)
    assert fit.loop.context_tokens == 20_000


def test_a_role_s_other_models_get_their_factors_from_the_cycles_that_ran_on_them() -> None:
    haiku = ModelOption(
        model="claude-haiku-4-5", duration_factor=0.5, tokens_factor=0.6, failure_probability=0.2
    )
    truth = TRUE_SCENARIO.model_copy(
        update={"roles": {"backend": TRUE_SCENARIO.roles["backend"].model_copy(update={"models": [haiku]})}}
    )
    on_haiku = truth.model_copy(update={"roles": {"backend": truth.roles["backend"].with_model(haiku)}})
    traces = []
    for name, scenario in (("own", truth), ("haiku", on_haiku)):
        the_plan = plan(scenario, algorithm="list")
        traces += [(f"{name}-{r}", run_replication(the_plan, r, seed=5).trace) for r in range(2)]
    # The prior says the other model is the role's own in every respect; a dated id names it in the runs.
    written = ModelOption(model="claude-haiku-4-5-20251001")
    prior = WRONG_PRIOR.model_copy(
        update={"roles": {"backend": WRONG_PRIOR.roles["backend"].model_copy(update={"models": [written]})}}
    )
    fit = calibrate(traces, prior, prior_weight=5).roles["backend"]
    # The role's own fit holds only its own model's cycles.
    assert fit.cycle.median_min.covers(TRUTH["cycle_median"]), fit.cycle.median_min
    assert fit.failure.probability.covers(TRUTH["failure"])
    [model] = fit.models
    assert model.model == "claude-haiku-4-5-20251001" and model.cycles > 100
    assert model.duration_factor.covers(0.5), model.duration_factor
    assert model.tokens_factor.covers(0.6), model.tokens_factor
    assert model.failure.covers(0.2), model.failure
    # ...and the calibrated scenario carries them, so optimize chooses on what was seen.
    option = calibrate(traces, prior, prior_weight=5).scenario.roles["backend"].models[0]
    assert option.duration_factor == pytest.approx(model.duration_factor.value, rel=1e-3)
    assert option.failure_probability == pytest.approx(model.failure.value, rel=1e-3)
    # No cycle on another model: no model fit, and the written factors stay.
    alone = calibrate(traces[:2], prior, prior_weight=5)
    assert alone.roles["backend"].models == [] and alone.scenario.roles["backend"].models == [written]


def test_a_fit_from_few_runs_is_less_sure_than_one_from_many() -> None:
    few = calibrate(_loop_traces(3), WRONG_PRIOR, prior_weight=0).roles["backend"].loop
    many = calibrate(_loop_traces(40), WRONG_PRIOR, prior_weight=0).roles["backend"].loop
    assert few is not None and many is not None
    assert few.posterior.runs == 3 and many.posterior.runs == 40
    assert few.posterior.dof < many.posterior.dof
    for name in ("calls.per_cycle", "calls.output"):
        assert few.posterior.log_sd[name] > many.posterior.log_sd[name], name
    # ... and simulate draws each replication's medians from it: wider bands from fewer runs.
    from cycleplan.sim import simulate

    def band(loop_fit: Any) -> float:
        scenario = calibrate(_loop_traces(loop_fit), WRONG_PRIOR, prior_weight=0).scenario
        summary = simulate(plan(scenario, algorithm="list"), replications=400, seed=2).summaries["cost_usd"]
        return summary.p90 / summary.p10

    assert band(3) > band(40)


def test_no_failure_rate_is_invented_and_copies_of_a_run_count_once() -> None:
    traces = _loop_traces(2)
    copied = [*traces, ("copy", traces[0][1])]
    calibration = calibrate(copied, WRONG_PRIOR, prior_weight=5)
    assert calibration.runs == ["run-0", "run-1"]
    assert any("run copy has the same timeline as run run-0" in note for note in calibration.notes)
    failure = calibration.roles["backend"].failure
    assert failure is not None and failure.failed == 0 and failure.probability.value == 0.0
    assert calibration.scenario.role("backend").failure.probability_per_cycle == 0.0


def test_a_posterior_changes_nothing_when_absent_and_the_same_seed_gives_the_same_numbers() -> None:
    from cycleplan.sim import simulate

    scenario = calibrate(_loop_traces(3), WRONG_PRIOR, prior_weight=0).scenario
    assert scenario.role("backend").posterior is not None
    planned = plan(scenario, algorithm="list")
    first = simulate(planned, replications=300, seed=5).replications.values["cost_usd"]
    assert simulate(planned, replications=300, seed=5).replications.values["cost_usd"] == first
    sure = scenario.model_copy(
        update={"roles": {"backend": scenario.role("backend").model_copy(update={"posterior": None})}}
    )
    assert (
        simulate(plan(sure, algorithm="list"), replications=300, seed=5).replications.values["cost_usd"]
        != first
    )


@pytest.mark.skipif(not (DATA / "claude-code").is_dir(), reason="tests/data/claude-code is missing")
def test_subagent_fan_out_is_reported_per_spawning_role() -> None:
    imported = import_claude_code(DATA / "claude-code" / "258c7280-ae70-4798-800f-63464d01a85d.jsonl")
    fit = calibrate([("session", imported.trace)], imported.scenario, prior_weight=0).roles["main"]
    assert set(fit.fan_out) == {"subagent"}
    fan = fit.fan_out["subagent"]
    assert fan.subagents == 1 and fan.per_cycle == pytest.approx(1 / 2) and fan.cycles_median == 1
