"""What a part loads is what it needs: reading the run store loads no orchestrator or backend, and the
fast engine (numpy) loads no SimPy. Each is checked in a fresh interpreter, where nothing is loaded yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cycleplan.store import RunStore


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_reading_the_run_store_loads_no_orchestrator(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    RunStore(store).close()
    loaded = _loaded_after(
        "from cycleplan.store import RunStore\n"
        f"with RunStore({str(store)!r}, read_only=True) as runs:\n"
        "    runs.runs()\n"
    )
    assert "cycleplan.store.runs" in loaded
    heavy = {"cycleplan.executor.orchestrator", "cycleplan.executor.run", "anthropic", "aiohttp"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_the_runs_command_loads_no_orchestrator(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    RunStore(store).close()
    loaded = _loaded_after(
        "import sys\nfrom cycleplan.cli import app\n"
        f"try:\n    app(['runs', '--store', {str(store)!r}])\nexcept SystemExit:\n    pass\n"
    )
    assert "cycleplan.store.runs" in loaded
    assert "cycleplan.executor.orchestrator" not in loaded


def test_the_fast_engine_loads_no_simpy() -> None:
    loaded = _loaded_after("import cycleplan.sim.fast")
    assert "cycleplan.sim.shape" in loaded
    assert "simpy" not in loaded
