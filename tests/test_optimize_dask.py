"""optimize on a Dask LocalCluster of two worker processes gives the serial run's choice and numbers."""

from __future__ import annotations

import json

import pytest
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app

distributed = pytest.importorskip("distributed", reason="Dask is an extra: pip install 'cycleplan[dask]'")


def test_cli_dask_local_matches_the_serial_run() -> None:
    runner = CliRunner()
    common = [
        "optimize",
        str(SCENARIOS / "course-crud.yaml"),
        "--lanes",
        "backend=1..2",
        "--budget",
        "2",
        "--seed",
        "4",
        "--json",
    ]
    serial = runner.invoke(app, [*common, "--workers", "1"])
    on_dask = runner.invoke(app, [*common, "--dask", "local", "--workers", "2"])
    assert serial.exit_code == 0 and on_dask.exit_code == 0, serial.output + on_dask.output
    assert json.loads(serial.stdout) == json.loads(on_dask.stdout)
    assert json.loads(on_dask.stdout)["configurations"] == 54
