"""PSPLIB instances as scenarios, and the planner's algorithms against their known optima.

Five j30 instances are copied into tests/data/psplib for the default suite. Tests over the full sets read
``../shared/data/psplib`` from the repository root and skip when it is absent.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest
from schedule_checker import check_plan

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Scenario
from cycleplan.planner import ALGORITHMS, plan
from cycleplan.planner.arrays import compact
from cycleplan.planner.problem import Problem, nominal_durations
from cycleplan.workflows.psplib import (
    PsplibError,
    instance_key,
    instance_to_scenario,
    parse_instance,
    psplib_to_scenario,
    read_known_makespans,
    scenario_yaml,
)

DATA = Path(__file__).parent / "data" / "psplib"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "psplib"
OPTIMUM = {"j301_1": 43, "j3013_1": 58, "j3029_5": 98, "j3041_7": 92, "j3046_2": 67}
"""From j30opt.sm (Demeulemeester & Herroelen)."""

needs_shared = pytest.mark.skipif(
    not (SHARED / "j30").is_dir(), reason=f"the full PSPLIB sets are not at {SHARED}"
)

try:
    import ortools  # noqa: F401

    HAVE_ORTOOLS = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ORTOOLS = False


def instance(name: str) -> Path:
    return DATA / f"{name}.sm"


# --------------------------------------------------------------------------------------------------
# Parsing


def test_an_instance_becomes_one_task_per_job_with_its_resources() -> None:
    scenario = psplib_to_scenario(instance("j301_1"))
    tasks = {task.id: task for task in scenario.all_tasks()}
    assert len(tasks) == 30  # 32 jobs less the dummy source and sink
    assert {name: spec.capacity for name, spec in scenario.resources.items()} == {
        "R1": 12,
        "R2": 13,
        "R3": 4,
        "R4": 12,
    }
    assert tasks["j2"].cycles == 8 and tasks["j2"].requires == {"R1": 4} and tasks["j2"].after == []
    assert tasks["j5"].after == ["j4"]
    assert tasks["j20"].after == ["j5", "j11", "j18"]
    role = scenario.role("job")
    assert role.lanes == 30 and role.cycle.nominal_min == 1.0


def test_zero_duration_jobs_are_dropped_and_their_links_kept() -> None:
    text = """
PRECEDENCE RELATIONS:
jobnr.    #modes  #successors   successors
   1        1          2           2   3
   2        1          1           4
   3        1          1           4
   4        1          1           5
   5        1          1           6
   6        1          0
************************************************************************
REQUESTS/DURATIONS:
jobnr. mode duration  R 1
------------------------------------------------------------------------
  1      1     0       0
  2      1     3       2
  3      1     2       1
  4      1     0       2
  5      1     4       1
  6      1     0       0
************************************************************************
RESOURCEAVAILABILITIES:
  R 1
    2
************************************************************************
"""
    scenario = instance_to_scenario(parse_instance(text, "tiny"))
    tasks = {task.id: task for task in scenario.all_tasks()}
    assert sorted(tasks) == ["j2", "j3", "j5"]
    assert tasks["j5"].after == ["j2", "j3"]  # through the zero-duration job 4
    result = plan(scenario, algorithm="list")
    check_plan(scenario, result)
    assert result.makespan_min == 3 + 2 + 4  # j2 and j3 cannot share R1 (2 + 1 > 2)


def test_a_file_that_is_not_psplib_is_refused_with_its_name() -> None:
    with pytest.raises(PsplibError, match="broken"):
        parse_instance("hello\nworld\n", "broken")


def test_the_scenario_survives_a_yaml_round_trip() -> None:
    scenario = psplib_to_scenario(instance("j3046_2"))
    assert parse_scenario(scenario_yaml(scenario), "j3046_2.yaml") == scenario


def test_instance_keys_and_known_makespans_are_read() -> None:
    assert instance_key("j3013_1.sm") == (13, 1)
    assert instance_key(Path("x/j12060_10.sm")) == (60, 10)
    assert instance_key("notes.txt") is None


# --------------------------------------------------------------------------------------------------
# Algorithms on the copied instances


@pytest.mark.parametrize("name", sorted(OPTIMUM))
def test_list_and_improve_plans_are_valid_and_improve_is_close_to_the_optimum(name: str) -> None:
    scenario = psplib_to_scenario(instance(name))
    quick = plan(scenario, algorithm="list")
    check_plan(scenario, quick)
    better = plan(scenario, algorithm="improve", schedules=2_000)
    check_plan(scenario, better)
    assert OPTIMUM[name] <= better.makespan_min <= quick.makespan_min
    assert better.makespan_min <= OPTIMUM[name] * 1.05


def test_the_fast_scheduler_serves_psplib_and_the_general_one_serves_waits() -> None:
    psplib = Problem.from_scenario(psplib_to_scenario(instance("j301_1")))
    assert compact(psplib, nominal_durations(psplib.scenario)) is not None
    one_100 = Problem.from_scenario(Scenario.model_validate({"template": "one-100"}))
    assert compact(one_100, nominal_durations(one_100.scenario)) is None


def test_improve_on_psplib_is_deterministic_for_a_seed() -> None:
    scenario = psplib_to_scenario(instance("j3013_1"))
    first = plan(scenario, algorithm="improve", schedules=500, seed=1)
    assert plan(scenario, algorithm="improve", schedules=500, seed=1) == first
    check_plan(scenario, plan(scenario, algorithm="improve", schedules=500, seed=2))


def hundred_tasks(with_waits: bool) -> Scenario:
    """100 tasks over four roles of two lanes with a shared resource; every tenth task waits for an
    event from an earlier one when ``with_waits``."""
    tasks: list[dict[str, Any]] = []
    for number in range(100):
        task: dict[str, Any] = {
            "id": f"t{number}",
            "role": "abcd"[number % 4],
            "cycles": 1 + (number * 7) % 6,
            "after": sorted({f"t{number - 1 - number % 3}", f"t{number // 2}"} - {f"t{number}"})
            if number > 2
            else [],
        }
        if number % 5 == 0:
            task["requires"] = {"staging": 1 + number % 2}
        if with_waits and number % 10 == 9:
            tasks[number - 5].setdefault("emits", {})[f"e{number}"] = 1
            task["waits"] = {f"e{number}": 1}
        tasks.append(task)
    return Scenario.model_validate(
        {
            "roles": {role: {"lanes": 2} for role in "abcd"},
            "resources": {"staging": {"capacity": 2}},
            "tasks": tasks,
        }
    )


@pytest.mark.parametrize("with_waits", [False, True], ids=["fast-scheduler", "general-scheduler"])
def test_the_default_plan_of_100_tasks_is_improve_and_sound(with_waits: bool) -> None:
    """Its time (under half a second) is measured by benchmarks/plan_time.py, not here."""
    scenario = hundred_tasks(with_waits)
    result = plan(scenario)
    check_plan(scenario, result)
    assert result.algorithm == "improve"
    assert result.makespan_min <= plan(scenario, algorithm="list").makespan_min


@pytest.mark.skipif(not HAVE_ORTOOLS, reason="cpsat needs: pip install cycleplan[optimal]")
@pytest.mark.parametrize("name", ["j301_1", "j3013_1", "j3041_7", "j3046_2"])
def test_cpsat_proves_the_known_optimum(name: str) -> None:
    scenario = psplib_to_scenario(instance(name))
    result = plan(scenario, algorithm="cpsat", time_limit_s=30)
    check_plan(scenario, result)
    assert result.makespan_min == OPTIMUM[name]
    assert result.proven_optimal is True


# --------------------------------------------------------------------------------------------------
# The full sets (../shared/data/psplib)


@needs_shared
def test_every_j30_instance_parses_and_the_optimum_table_covers_them() -> None:
    optimum = read_known_makespans(SHARED / "j30opt.sm")
    files = sorted((SHARED / "j30").glob("*.sm"))
    assert len(files) == len(optimum) == 480
    for path in files[::16]:
        scenario = psplib_to_scenario(path)
        assert len(scenario.all_tasks()) <= 30
        assert instance_key(path) in optimum


@needs_shared
def test_list_stays_within_six_percent_of_the_j30_optima_on_a_spread_sample() -> None:
    optimum = read_known_makespans(SHARED / "j30opt.sm")
    files = sorted((SHARED / "j30").glob("*.sm"))[::8]
    gaps = []
    for path in files:
        scenario = psplib_to_scenario(path)
        problem = Problem.from_scenario(scenario)
        placed = ALGORITHMS["list"](problem, None)
        makespan = max(p.end for p in placed.minutes.values())
        known = optimum[instance_key(path) or (0, 0)]
        gaps.append((makespan - known) / known)
    assert statistics.fmean(gaps) <= 0.06


@needs_shared
def test_the_best_known_tables_read_latin_1_and_tabs() -> None:
    best = read_known_makespans(SHARED / "j120hrs.sm")
    assert len(best) == 600
    assert best[(1, 1)] == 105


@needs_shared
@pytest.mark.skipif(not HAVE_ORTOOLS, reason="cpsat needs: pip install cycleplan[optimal]")
def test_cpsat_proves_the_hardest_j30_instance_optimal() -> None:
    """j3029_3 took the longest to prove of all 480 j30 instances (about 5 s on two cores); the limit
    leaves room for a busy machine."""
    path = SHARED / "j30" / "j3029_3.sm"
    scenario = psplib_to_scenario(path)
    result = plan(scenario, algorithm="cpsat", time_limit_s=30)
    check_plan(scenario, result)
    assert result.makespan_min == read_known_makespans(SHARED / "j30opt.sm")[(29, 3)] == 78
    assert result.proven_optimal is True
