"""Memory-bounded simulation: batches of replications change no number, and a run that cannot fit is
refused with how many replications would (exit 2 from the command line, no traceback)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import SCENARIOS
from typer.testing import CliRunner

import cycleplan.core.reading
from cycleplan.cli import app
from cycleplan.core.loading import load_scenario
from cycleplan.core.reading import MAX_FILE_BYTES
from cycleplan.planner import plan
from cycleplan.sim import simulate, simulation
from cycleplan.sim.layout import build_layout
from cycleplan.sim.memory import MemoryLimitError, MemoryPlan, memory_plan
from cycleplan.sim.prediction import Prediction
from cycleplan.sim.simulation import Simulator

runner = CliRunner()


def numbers(prediction: Prediction) -> dict[str, Any]:
    """Everything a prediction says except how long it took."""
    data = prediction.model_dump()
    data["config"].pop("runtime_s")
    return data


@pytest.mark.parametrize(
    ("scenario", "engine"),
    [
        ("full-feature.yaml", "fast"),
        ("full-feature.yaml", "simpy"),
        ("three-features.yaml", "fast"),
        ("rate-limited.yaml", "simpy"),
        ("agent-session.yaml", "auto"),
    ],
)
@pytest.mark.parametrize("batch", [1, 4])
def test_batches_give_the_numbers_of_one_run(
    scenario: str, engine: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = plan(load_scenario(SCENARIOS / scenario))
    whole = simulate(planned, replications=11, seed=5, engine=engine, max_memory=None)

    def in_batches(*args: Any, **kwargs: Any) -> MemoryPlan:
        return dataclasses.replace(memory_plan(*args, **kwargs), batch=batch, keep=False)

    monkeypatch.setattr(simulation, "memory_plan", in_batches)
    batched = simulate(planned, replications=11, seed=5, engine=engine, max_memory=None)
    assert numbers(batched) == numbers(whole)


def test_a_run_that_cannot_fit_says_how_many_replications_do() -> None:
    planned = plan(load_scenario(SCENARIOS / "full-feature.yaml"))
    simulator = Simulator(build_layout(planned), 1, "plan", False)
    estimate = memory_plan(simulator, 1_000, "fast", None)
    limit = estimate.least(100)
    with pytest.raises(MemoryLimitError) as raised:
        simulate(planned, replications=1_000_000, seed=1, engine="fast", max_memory=limit)
    assert 100 <= raised.value.fits < 1_000_000
    fits = raised.value.fits
    simulate(planned, replications=fits, seed=1, engine="fast", max_memory=limit)


def test_the_command_refuses_in_one_line_naming_what_fits() -> None:
    result = runner.invoke(
        app, ["simulate", str(SCENARIOS / "full-feature.yaml"), "-n", "1000000", "--max-memory", "300MB"]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "1,000,000 replications need" in lines[0]
    assert "fit: use -n " in lines[0] and "raise --max-memory" in lines[0]


def test_the_command_says_when_not_even_one_replication_fits() -> None:
    result = runner.invoke(
        app, ["simulate", str(SCENARIOS / "full-feature.yaml"), "-n", "10", "--max-memory", "10MB"]
    )
    assert result.exit_code == 2, result.output
    assert "not even one replication fits: raise --max-memory to at least" in result.output


@pytest.mark.parametrize("size", ["lots", "2XB", "0.5MB", "-1GB"])
def test_a_memory_limit_that_is_no_size_is_refused(size: str) -> None:
    result = runner.invoke(app, ["simulate", str(SCENARIOS / "course-crud.yaml"), "--max-memory", size])
    assert result.exit_code == 2
    assert f"--max-memory {size}: give a size such as 2GB" in result.output


def test_a_plan_larger_than_a_scenario_file_is_written_and_read_back(tmp_path: Path) -> None:
    tasks = [
        {"id": f"t{index}", "role": "backend", "cycles": 2, **({"after": [f"t{index - 1}"]} if index else {})}
        for index in range(4_000)
    ]
    source = tmp_path / "chain.yaml"
    source.write_text(yaml.safe_dump({"name": "chain", "tasks": tasks, "roles": {"backend": {"lanes": 2}}}))
    target = tmp_path / "chain.json"
    written = runner.invoke(app, ["plan", str(source), "-o", str(target)])
    assert written.exit_code == 0, written.output
    assert target.stat().st_size > MAX_FILE_BYTES
    read = runner.invoke(app, ["simulate", str(target), "--ideal", "-n", "1", "--json"])
    assert read.exit_code == 0, read.output
    assert '"makespan_min"' in read.output


def test_plan_o_refuses_a_plan_the_readers_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cycleplan.core.reading, "MAX_PLAN_BYTES", 5_000)
    target = tmp_path / "plan.json"
    result = runner.invoke(app, ["plan", str(SCENARIOS / "full-feature.yaml"), "-o", str(target)])
    assert result.exit_code == 2
    assert "more than the 5,000 bytes simulate and execute read" in result.output
    assert not target.exists()
