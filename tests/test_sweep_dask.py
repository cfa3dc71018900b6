"""A sweep on a Dask LocalCluster of two worker processes gives the local run's numbers exactly."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support import SCENARIOS

from cycleplan.core.loading import load_scenario
from cycleplan.workflows.sweep import SweepResult, dask_runner, sweep

distributed = pytest.importorskip("distributed", reason="Dask is an extra: pip install 'cycleplan[dask]'")


def reproducible(result: SweepResult) -> dict[str, Any]:
    data = result.model_dump(mode="json", exclude={"runtime_s", "backend", "workers"})
    for configuration in data["configurations"]:
        configuration.pop("runtime_s")
    return data


def test_dask_local_cluster_matches_the_local_run() -> None:
    began = time.perf_counter()
    scenario = load_scenario(SCENARIOS / "full-feature.yaml")
    options: dict[str, Any] = {
        "role": "backend",
        "algorithms": ["list", "improve"],
        "replications": 150,
        "seed": 13,
    }
    local = sweep(scenario, [1, 2, 3], workers=1, **options)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    )
    try:
        with distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            on_dask = sweep(
                scenario, [1, 2, 3], runner=dask_runner(client), backend="dask", workers=2, **options
            )
    finally:
        cluster.close()
    assert on_dask.backend == "dask"
    assert reproducible(on_dask) == reproducible(local)
    assert time.perf_counter() - began < 60


def test_cli_dask_local(tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from cycleplan.cli import app

    runner = CliRunner()
    path = str(SCENARIOS / "course-crud.yaml")
    common = ["sweep", path, "--lanes", "1..2", "-n", "40", "--seed", "2", "--json"]
    local = runner.invoke(app, [*common, "--workers", "1"])
    on_dask = runner.invoke(app, [*common, "--dask", "local", "--workers", "2"])
    assert local.exit_code == 0 and on_dask.exit_code == 0, local.output + on_dask.output
    assert json.loads(local.stdout) == json.loads(on_dask.stdout)
