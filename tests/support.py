"""Paths and helpers the tests share: the repository, its scenarios, the shared data, the CLI."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
SHARED_DATA = ROOT.parent / "shared" / "data"


def cycleplan_executable() -> str:
    """The installed console script next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("cycleplan")
    if beside.exists():
        return str(beside)
    found = shutil.which("cycleplan")
    if found is None:
        pytest.fail("the cycleplan console script is not installed; run `make test`")
    return found
