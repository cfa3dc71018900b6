"""``cycleplan simulate``: the summary, the JSON, reproducibility, the guide's claims, bad input."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.sim import Prediction

runner = CliRunner()

GUIDE_ROWS = {
    "course-crud.yaml": 2.5,
    "authentication.yaml": 2.0,
    "rag.yaml": 2.0,
    "three-features.yaml": 3.0,
    "docs-implementation.yaml": 1.25,
    "payment.yaml": 3.5,
}


def simulate_json(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["simulate", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("name", sorted(GUIDE_ROWS))
def test_ideal_mode_reproduces_the_guide_row(name: str) -> None:
    data = simulate_json(str(SCENARIOS / name), "--ideal", "-n", "1")
    speedup = data["speedup"]
    assert isinstance(speedup, dict)
    assert speedup["p50"] == pytest.approx(GUIDE_ROWS[name], rel=1e-12)
    claim = data["claim"]
    assert isinstance(claim, dict)
    assert claim["speedup"] == pytest.approx(GUIDE_ROWS[name])


def test_the_summary_shows_the_band_next_to_the_claim() -> None:
    result = runner.invoke(app, ["simulate", str(SCENARIOS / "course-crud.yaml"), "-n", "200", "--seed", "4"])
    assert result.exit_code == 0, result.output
    text = result.output
    claim = r"^claim +300 min \(5h 00m\) -> 120 min \(2h 00m\) = 2\.50x  \(the scenario's"
    assert re.search(claim, text, re.MULTILINE), text
    for needle in (
        "speedup",
        "P10 - P90",
        "95% CI",
        "makespan",
        "cost",
        "utilization",
        "2.50x",
        "predicted",
        "tokens read",
        "cache reads",
        "most critical",
        "where the time goes",
        "dependency",
        "rate limit",
    ):
        assert needle in text, needle
    claim_line = next(line for line in text.splitlines() if line.startswith("predicted"))
    assert "x [" in claim_line and "of replications" in claim_line


def test_json_has_the_promised_fields() -> None:
    data = simulate_json(str(SCENARIOS / "full-feature.yaml"), "-n", "40", "--seed", "2")
    assert data["replications"] == 40
    assert data["seed"] == 2
    for key in ("makespan_min", "sequential_min", "speedup", "cost_usd", "tokens_total", "utilization"):
        band = data[key]
        assert isinstance(band, dict)
        assert {"mean", "p10", "p50", "p90"} <= set(band), key
        assert band["p10"] <= band["p50"] <= band["p90"]
    criticality = data["criticality"]
    assert isinstance(criticality, dict)
    assert set(criticality) >= {"foundation", "backend", "complete"}
    assert all(0 <= share <= 1 for share in criticality.values())
    assert "runtime_s" not in json.dumps(data)


def test_same_seed_same_bytes_across_processes(cli: str) -> None:
    def run(seed: str) -> str:
        done = subprocess.run(
            [cli, "simulate", str(SCENARIOS / "course-crud.yaml"), "-n", "300", "--seed", seed, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stderr == ""  # no progress bar when stderr is not a terminal
        return done.stdout

    first = run("7")
    assert run("7") == first
    assert run("8") != first


def test_writes_a_prediction_from_a_plan_file(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    planned = runner.invoke(app, ["plan", str(SCENARIOS / "payment.yaml"), "-o", str(plan_file), "--json"])
    assert planned.exit_code == 0, planned.output
    target = tmp_path / "out" / "prediction.json"
    result = runner.invoke(
        app, ["simulate", str(plan_file), "-n", "25", "--dispatch", "dynamic", "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.output
    prediction = Prediction.load(target)
    assert prediction.config.dispatch == "dynamic"
    assert prediction.config.replications == 25
    assert prediction.trace[0].action == "run_started"
    assert prediction.trace[-1].action == "run_complete"


def test_lanes_option_changes_the_plan() -> None:
    one = simulate_json(str(SCENARIOS / "full-feature.yaml"), "--ideal", "-n", "1")
    two = simulate_json(str(SCENARIOS / "full-feature.yaml"), "--ideal", "-n", "1", "--lanes", "backend=2")
    assert two["makespan_min"]["p50"] < one["makespan_min"]["p50"]  # type: ignore[index]


BAD_SCENARIOS = {
    "p90 below median": (
        "roles:\n  backend:\n    cycle: {median_min: 5, p90_min: 3}\n",
        "roles.backend.cycle",
    ),
    "negative price": (
        "prices:\n  claude-sonnet-4-5: {input_per_mtok: -3, output_per_mtok: 15}\nroles:\n  backend: {}\n",
        "prices.claude-sonnet-4-5.input_per_mtok",
    ),
    "probability above 1": (
        "roles:\n  backend:\n    failure: {probability_per_cycle: 1.5}\n",
        "roles.backend.failure.probability_per_cycle",
    ),
    "unpriced model": ("roles:\n  backend: {model: in-house}\n", "roles.backend.model"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_nonsense_parameters_exit_2_naming_the_field(case: str, tmp_path: Path) -> None:
    text, field = BAD_SCENARIOS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n" + text + "tasks:\n  - {id: t, role: backend, cycles: 2}\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["simulate", str(path), "-n", "5"])
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--replications", "0"], "--replications 0: must be at least 1"),
        (["-n", "-3"], "--replications -3"),
        (["--seed", "-1"], "--seed -1"),
        (["--dispatch", "fastest"], "--dispatch fastest: choose one of plan, dynamic"),
    ],
)
def test_bad_options_exit_2(options: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", str(SCENARIOS / "course-crud.yaml"), *options])
    assert result.exit_code == 2
    assert message in result.output


def test_lanes_cannot_change_a_plan_file(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert runner.invoke(app, ["plan", str(SCENARIOS / "rag.yaml"), "-o", str(plan_file)]).exit_code == 0
    result = runner.invoke(app, ["simulate", str(plan_file), "--lanes", "backend=2"])
    assert result.exit_code == 2
    assert "--lanes" in result.output


@pytest.mark.parametrize(
    ("keys", "what"),
    [
        (["configurations", "pareto", "recommended", "best"], "a sweep result"),
        (["verdict", "tasks", "makespan_min"], "a comparison"),
        (["runs", "kind", "replications", "coverage"], "a backtest result"),
    ],
)
def test_report_names_a_result_that_is_neither_a_prediction_nor_a_plan(
    tmp_path: Path, keys: list[str], what: str
) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict.fromkeys(keys, 0)))
    done = CliRunner().invoke(app, ["report", str(other), "-o", str(tmp_path / "x.html")])
    assert done.exit_code == 2
    assert f"this is {what}, not a prediction or a plan" in done.output
    assert len(done.output.strip().splitlines()) == 1
