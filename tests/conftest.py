"""Fixtures shared by the tests (plain helpers live in support.py)."""

from __future__ import annotations

import pytest
from support import cycleplan_executable


@pytest.fixture(autouse=True)
def _piped_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts as piped output does, whatever the terminal that runs the suite: no ``COLUMNS``
    or ``LINES`` (test workers and narrow terminals set them), so only a test that sets a width gets
    one."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def cli() -> str:
    """Path of the installed ``cycleplan`` console script."""
    return cycleplan_executable()
