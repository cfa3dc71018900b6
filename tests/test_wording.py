"""Counts and spans of minutes read the same in every output: one function for each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cycleplan.core.wording import counted, duration, minutes

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("value", "shown", "bare"),
    [
        (1050.0, "1,050 min", "1,050"),
        (70.5, "70.5 min", "70.5"),
        (12.0, "12 min", "12"),
        (12.34, "12.3 min", "12.3"),
        (4.25, "4.2 min", "4.2"),
        (0.7, "42 s", "0.7"),
        (0.0, "0 min", "0"),
        (0.0125, "0.8 s", "0"),
        (-0.0001, "0 s", "0"),
        (-3.5, "-3.5 min", "-3.5"),
    ],
)
def test_minutes_read_one_way(value: float, shown: str, bare: str) -> None:
    assert minutes(value) == shown
    assert minutes(value, unit=False) == bare


def test_a_duration_of_hours_shows_them_beside_the_minutes() -> None:
    assert duration(195) == "195 min (3h 15m)"
    assert duration(59.5) == "59.5 min"
    assert duration(60) == "60 min (1h 00m)"


def test_counts_take_the_number_they_ask_for() -> None:
    assert counted(1, "cycle") == "1 cycle"
    assert counted(0, "cycle") == "0 cycles"
    assert counted(1000, "replication") == "1,000 replications"
    assert counted(2.0, "more lane", "more lanes") == "2 more lanes"


def test_no_module_formats_minutes_of_its_own() -> None:
    # A span of minutes is written by cycleplan.core.wording only: no other function named for it.
    own = []
    for folder in ("cycleplan", "planner", "sim", "executor"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef) and node.name in {"format_minutes", "_minutes"}:
                    returns = ast.unparse(node.returns) if node.returns is not None else ""
                    if returns == "str":
                        own.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert own == []
