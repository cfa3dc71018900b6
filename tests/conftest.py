"""Fixtures shared by the tests (plain helpers live in support.py)."""

from __future__ import annotations

import pytest
from support import cycleplan_executable


@pytest.fixture
def cli() -> str:
    """Path of the installed ``cycleplan`` console script."""
    return cycleplan_executable()
