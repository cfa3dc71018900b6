"""Rewriting a scenario file changes the values put into it and nothing else: every shipped scenario and
starter comes back byte for byte, the file's own indentation is kept, and new numbers read back as the
numbers they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SCENARIOS

from cycleplan.core.loading import parse_scenario
from cycleplan.core.starter import STARTERS, starter_text
from cycleplan.workflows.rewriting import Layout, ScenarioText, new_text, own, put

FILES = sorted(SCENARIOS.glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_a_scenario_unchanged_is_written_back_byte_for_byte(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert ScenarioText(text).text() == text


@pytest.mark.parametrize("template", list(STARTERS))
def test_a_starter_unchanged_is_written_back_byte_for_byte(template: str) -> None:
    text = starter_text(template, "demo")
    assert ScenarioText(text).text() == text


def test_the_file_s_own_indentation_is_kept() -> None:
    text = (
        "roles:\n"
        "    backend:\n"
        "        lanes: 2   # two of them\n"
        "tasks:\n"
        "- id: a\n"
        "  role: backend\n"
        "  cycles: 2\n"
    )
    document = ScenarioText(text)
    assert document.layout == Layout(mapping=4, sequence=2, offset=0)
    put(document.data["roles"]["backend"], "lanes", 3)
    assert document.text() == text.replace("lanes: 2", "lanes: 3")


def test_put_merges_a_mapping_in_place_and_leaves_equal_values_as_written() -> None:
    text = "roles:\n  b:\n    cycle: {kind: gamma, mean_min: 3.0, cv: 0.5}  # a guess\n"
    document = ScenarioText(text)
    role = own(document.data["roles"], "b")
    put(role, "cycle", {"kind": "lognormal", "mean_min": 3, "median_min": 2.5, "p90_min": 4})
    assert document.text() == (
        "roles:\n  b:\n    cycle: {kind: lognormal, mean_min: 3.0, median_min: 2.5, p90_min: 4} # a guess\n"
    )


def test_new_floats_read_back_as_floats() -> None:
    document = ScenarioText("roles:\n  b:\n    lanes: 1\ntasks:\n  - {id: a, role: b, cycles: 1}\n")
    put(document.data["roles"]["b"], "failure", {"probability_per_cycle": 1e-05})
    put(document.data["roles"]["b"], "cycle", {"median_min": 2e-4, "p90_min": 2e-2})
    scenario = parse_scenario(document.text())
    assert scenario.roles["b"].failure.probability_per_cycle == 1e-05
    assert scenario.roles["b"].cycle.median_p90() == (2e-4, 2e-2)


def test_a_new_file_writes_text_of_several_lines_as_a_block() -> None:
    text = new_text({"name": "demo", "spec": "Feature: x.\nAcceptance: y.\n", "tasks": [{"id": "a"}]})
    assert text == "name: demo\nspec: |\n  Feature: x.\n  Acceptance: y.\ntasks:\n  - id: a\n"
