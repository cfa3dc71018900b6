"""``sweep``: configurations on common random numbers, paired differences, the Pareto front, the
recommendation, the local process pool, the CLI and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import load_scenario
from cycleplan.planner import plan
from cycleplan.sim import simulate
from cycleplan.workflows.sweep import (
    SweepError,
    SweepResult,
    configure,
    pareto_front,
    parse_lanes,
    sweep,
)

runner = CliRunner()


def reproducible(result: SweepResult) -> dict[str, Any]:
    data = result.model_dump(mode="json", exclude={"runtime_s", "backend", "workers"})
    for configuration in data["configurations"]:
        configuration.pop("runtime_s")
    return data


def test_lane_ranges() -> None:
    assert parse_lanes("1..4") == [1, 2, 3, 4]
    assert parse_lanes("1,2,8, 3..4") == [1, 2, 3, 4, 8]
    assert parse_lanes("3") == [3]
    for bad in ("4..1", "0..3", "x", "1..", "", "2000"):
        with pytest.raises(SweepError):
            parse_lanes(bad)


def test_pareto_front() -> None:
    points = [(10.0, 5.0), (8.0, 6.0), (8.0, 7.0), (12.0, 4.0), (10.0, 5.0), (9.0, 9.0)]
    assert pareto_front(points) == [1, 0, 4, 3]


def test_every_configuration_meets_the_same_draws() -> None:
    scenario = load_scenario(SCENARIOS / "full-feature.yaml")
    result = sweep(scenario, [1, 2, 3], role="backend", replications=120, seed=7, workers=1)
    assert [c.lanes for c in result.configurations] == [1, 2, 3]
    assert result.backend == "serial"
    for configuration in result.configurations:
        # Each configuration is what simulate() predicts for that lane count, on the same seed.
        alone = simulate(
            plan(configure(scenario, configuration.lanes, "backend")), replications=120, seed=7, engine="auto"
        )
        assert configuration.makespan_min == alone.summaries["makespan_min"]
        assert configuration.cost_usd == alone.summaries["cost_usd"]
    # Common random numbers: lanes never change a task's tokens, so every configuration costs the same
    # in every replication, and the paired difference of makespans has a far narrower interval than
    # the makespans' own spread.
    costs = {c.cost_usd.mean for c in result.configurations}
    assert len(costs) == 1
    two = result.configurations[1]
    assert two.versus_fewer is not None
    paired_width = two.versus_fewer.ci95_high_min - two.versus_fewer.ci95_low_min
    independent_width = (
        2 * 1.96 * np.hypot(two.makespan_min.sd, result.configurations[0].makespan_min.sd) / np.sqrt(120)
    )
    assert paired_width < independent_width / 1.5
    assert two.versus_fewer.mean_min < 0  # a second backend lane helps


def test_recommendation_is_the_fewest_lanes_within_the_margin() -> None:
    scenario = load_scenario(SCENARIOS / "full-feature.yaml")
    result = sweep(
        scenario, [1, 2, 3, 4], role="backend", replications=100, seed=1, workers=1, within_percent=0
    )
    best = result.configurations[result.best].makespan_min.p50
    chosen = result.configurations[result.recommended]
    assert chosen.makespan_min.p50 <= best + 1e-9
    assert all(c.lanes >= chosen.lanes for c in result.configurations if c.makespan_min.p50 <= best + 1e-9)
    loose = sweep(
        scenario, [1, 2, 3, 4], role="backend", replications=100, seed=1, workers=1, within_percent=50
    )
    assert loose.configurations[loose.recommended].lanes == 1
    assert "within the 50% asked" in loose.recommendation
    assert chosen.pareto
    # More lanes that change nothing are not on the front: the lanes held break the tie.
    assert not any(
        c.pareto
        for c in result.configurations
        if c.lanes > chosen.lanes and c.makespan_min == chosen.makespan_min
    )


def test_the_local_pool_gives_the_serial_numbers() -> None:
    scenario = load_scenario(SCENARIOS / "three-features.yaml")
    serial = sweep(scenario, [1, 2, 3], algorithms=["list", "improve"], replications=80, seed=3, workers=1)
    pooled = sweep(scenario, [1, 2, 3], algorithms=["list", "improve"], replications=80, seed=3, workers=2)
    assert pooled.backend == "local" and pooled.workers == 2
    assert reproducible(serial) == reproducible(pooled)
    assert len(serial.configurations) == 6
    assert {c.algorithm for c in serial.configurations} == {"list", "improve"}


def test_bad_settings_are_named() -> None:
    scenario = load_scenario(SCENARIOS / "course-crud.yaml")
    with pytest.raises(SweepError, match="role"):
        sweep(scenario, [1], role="nobody", workers=1)
    with pytest.raises(SweepError, match="algorithms"):
        sweep(scenario, [1], algorithms=["magic"], workers=1)
    with pytest.raises(SweepError, match="within"):
        sweep(scenario, [1], within_percent=-5, workers=1)


def test_cli_table_json_and_report(tmp_path: Path) -> None:
    path = str(SCENARIOS / "full-feature.yaml")
    text = runner.invoke(app, ["sweep", path, "--lanes", "backend=1..3", "-n", "60", "-w", "1"])
    assert text.exit_code == 0, text.output
    for needle in ("speedup P50", "makespan P50", "cost P50", "Pareto", "Run 2 backend lanes"):
        assert needle in text.output, needle
    report = tmp_path / "sweep.html"
    done = runner.invoke(
        app,
        [
            "sweep",
            path,
            "--lanes",
            "backend=1..3",
            "-n",
            "60",
            "-w",
            "1",
            "--json",
            "--report",
            str(report),
        ],
    )
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert [c["lanes"] for c in data["configurations"]] == [1, 2, 3]
    for configuration in data["configurations"]:
        assert {"speedup", "makespan_min", "cost_usd", "utilization", "pareto"} <= set(configuration)
        assert (
            configuration["speedup"]["p10"]
            <= configuration["speedup"]["p50"]
            <= configuration["speedup"]["p90"]
        )
    assert data["recommendation"].startswith("Run ")
    page = report.read_text(encoding="utf-8")
    assert "Sweep: Full feature" in page and "Pareto" in page and "Speedup against backend lanes" in page


def test_cli_bad_input_exits_2() -> None:
    path = str(SCENARIOS / "course-crud.yaml")
    for options, message in (
        (["--lanes", "3..1"], "--lanes 3..1"),
        (["--lanes", "nobody=1..2"], "no role 'nobody'"),
        (["--lanes", "backend=1..2", "--lanes", "frontend=1..2"], "give --lanes once"),
        (["--algorithm", "magic"], "--algorithm"),
        (["--engine", "fast", "--dispatch", "dynamic"], "dynamic dispatch"),
        (["--workers", "0"], "--workers 0"),
    ):
        result = runner.invoke(app, ["sweep", path, "-n", "5", "-w", "1", *options])
        assert result.exit_code == 2, (options, result.output)
        assert message in result.output, (options, result.output)


def test_report_escapes_scenario_text(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "course-crud.yaml")
    hostile = scenario.model_copy(update={"name": "<script>alert(1)</script>"})
    result = sweep(hostile, [1, 2], replications=20, workers=1)
    from cycleplan.present.report.page import write_page
    from cycleplan.present.report.reports import sweep_report

    path = tmp_path / "hostile.html"
    write_page(path, sweep_report(result), "cdn")
    page = path.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_report_renders_offline_without_console_errors(tmp_path: Path) -> None:
    import browser

    from cycleplan.present.report.page import write_page
    from cycleplan.present.report.reports import sweep_report

    scenario = load_scenario(SCENARIOS / "full-feature.yaml")
    result = sweep(scenario, [1, 2, 3], algorithms=["list", "improve"], replications=50, workers=1)
    page = tmp_path / "sweep.html"
    write_page(page, sweep_report(result))
    loaded = browser.load(page)
    assert loaded.console_errors() == []
    assert loaded.dom.count('class="main-svg"') >= 2  # plotly drew both figures
    assert "Pareto front" in loaded.dom


def test_a_model_without_a_price_is_one_line_from_sweep_not_a_broken_pool(tmp_path: Path) -> None:
    """The simulator's error could not cross back from sweep's worker processes whole (the pool broke):
    it pickles now. The scenario's misspelt model is refused before any worker starts."""
    import pickle

    from cycleplan.sim import SimulationError

    error = pickle.loads(pickle.dumps(SimulationError("roles.backend.model", "no price known")))
    assert (error.field, str(error)) == ("roles.backend.model", "roles.backend.model: no price known")
    scenario = tmp_path / "typo.yaml"
    scenario.write_text(
        "roles: {backend: {model: claude-sonet-4-5}}\n"
        "tasks: [{id: a, role: backend, cycles: 2}, {id: b, role: backend, cycles: 1}]\n"
    )
    arguments = ["sweep", str(scenario), "--lanes", "backend=1..3", "-n", "50"]
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 2, done.output
    assert "unknown model 'claude-sonet-4-5' (did you mean 'claude-sonnet-4-5'?)" in done.output
    assert "Traceback" not in done.output
