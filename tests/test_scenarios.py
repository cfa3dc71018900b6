"""The example scenarios: each guide row reproduced by the plan, and one-100 as DESIGN.md's table."""

from __future__ import annotations

import json
import subprocess

import pytest
from support import SCENARIOS

from cycleplan.core.loading import load_scenario
from cycleplan.planner import plan

# file -> (sequential minutes, parallel minutes, speedup) as the guide states them
GUIDE_ROWS = {
    "course-crud.yaml": (300, 120, 2.5),
    "authentication.yaml": (180, 90, 2.0),
    "rag.yaml": (180, 90, 2.0),
    "three-features.yaml": (1800, 600, 3.0),
    "docs-implementation.yaml": (300, 240, 1.25),
    "payment.yaml": (420, 120, 3.5),
}


def test_every_scenario_file_validates() -> None:
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert len(files) >= 7
    for path in files:
        scenario = load_scenario(path)
        assert scenario.all_tasks(), path


@pytest.mark.parametrize("name", sorted(GUIDE_ROWS))
def test_guide_row_reproduced(name: str) -> None:
    sequential, parallel, speedup = GUIDE_ROWS[name]
    scenario = load_scenario(SCENARIOS / name)
    result = plan(scenario)
    assert result.sequential_min == pytest.approx(sequential)
    assert result.makespan_min == pytest.approx(parallel)
    assert result.speedup == pytest.approx(speedup)
    assert scenario.claim is not None
    assert scenario.claim.speedup == pytest.approx(speedup)


def test_course_crud_json_from_the_command_line(cli: str) -> None:
    done = subprocess.run(
        [cli, "plan", str(SCENARIOS / "course-crud.yaml"), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["makespan_min"], data["sequential_min"], data["speedup"]) == (120, 300, 2.5)
    for key in ("lower_bound_min", "critical_path", "wall_cycles", "template_cycles", "lanes"):
        assert key in data
    lane = data["lanes"][0]
    assert {"lane", "role", "tasks"} <= set(lane)
    assert {"task", "start_min", "finish_min", "start_cycle", "finish_cycle"} <= set(lane["tasks"][0])


def _task(result_lanes: list[dict[str, object]], task_id: str) -> dict[str, object]:
    for lane in result_lanes:
        for task in lane["tasks"]:  # type: ignore[attr-defined]
            if task["task"] == task_id:
                return task  # type: ignore[no-any-return]
    raise AssertionError(f"{task_id} not planned")


def test_one_100_with_unit_cycles_compresses_to_65_then_57(cli: str, tmp_path: object) -> None:
    path = SCENARIOS / "full-feature.yaml"
    one = json.loads(
        subprocess.run([cli, "plan", str(path), "--json"], capture_output=True, text=True).stdout
    )
    assert one["template_cycles"] == 100
    assert one["wall_cycles"] == 65
    frontend = _task(one["lanes"], "frontend")
    assert frontend["start_cycle"] == 12  # right after backend's 2nd cycle (template cycle 12)
    assert one["critical_path"] == [
        "foundation",
        "backend",
        "auth",
        "knowledge",
        "quality",
        "performance",
        "deploy",
        "complete",
    ]
    two = json.loads(
        subprocess.run(
            [cli, "plan", str(path), "--lanes", "backend=2", "--json"], capture_output=True, text=True
        ).stdout
    )
    assert two["wall_cycles"] == 57
    assert "integration" in two["critical_path"]


def test_full_feature_falls_short_of_the_guides_claim() -> None:
    """The template's own critical path allows at most 100/57 = 1.75x, not the guide's 2.5x."""
    scenario = load_scenario(SCENARIOS / "full-feature.yaml")
    result = plan(scenario)
    assert result.sequential_min == pytest.approx(600)
    assert result.makespan_min == pytest.approx(390)
    assert result.lower_bounds["critical_path"] == pytest.approx(57 * 6)
    assert scenario.claim is not None and result.speedup < scenario.claim.speedup
