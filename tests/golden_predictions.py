"""The numbers every example scenario predicts, reduced to what a golden file can hold.

:func:`fingerprint` plans a scenario and simulates it on a fixed seed with both engines, and keeps the
headline percentiles (readable, to see what moved) and a SHA-256 digest of every per-replication array
(exact to the last bit). ``tests/test_golden_predictions.py`` holds today's code to the file it wrote;
regenerate the file only when a change is meant to move the numbers:

    .venv/bin/python tests/golden_predictions.py > tests/golden/predictions.json

A new example scenario gets its own entry added beside the others, which stay as they were recorded
(each names the quantities it holds, so quantities added later are not held to them).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cycleplan.core.loading import load_scenario
from cycleplan.planner import plan
from cycleplan.sim import simulate

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SEED = 11
REPLICATIONS = 300
ENGINES = ("simpy", "auto")


def digest(values: dict[str, Any], names: list[str]) -> str:
    """SHA-256 of the arrays ``names`` of ``values``, in that order, as float64 bytes."""
    hasher = hashlib.sha256()
    for name in names:
        hasher.update(name.encode())
        hasher.update(np.asarray(values[name], dtype=np.float64).tobytes())
    return hasher.hexdigest()


def arrays_of(prediction: Any) -> dict[str, dict[str, Any]]:
    """The per-replication arrays of ``prediction``, by field of its ``replications``."""
    reps = prediction.replications
    return {
        "values": reps.values,
        "utilization_by_lane": reps.utilization_by_lane,
        "utilization_by_role": reps.utilization_by_role,
        "waits_min": reps.waits_min,
        "tokens_by_role": reps.tokens_by_role,
        "cost_by_role": reps.cost_by_role,
    }


def plan_and_predict(path: Path, engine: str) -> tuple[Any, Any]:
    """``path``'s scenario planned, and simulated on :data:`SEED` with ``engine``."""
    chosen = plan(load_scenario(path))
    return chosen, simulate(chosen, replications=REPLICATIONS, seed=SEED, engine=engine)


def fingerprint(path: Path) -> dict[str, Any]:
    """What ``path``'s scenario predicts on :data:`SEED`, per engine."""
    out: dict[str, Any] = {}
    for engine in ENGINES:
        chosen, prediction = plan_and_predict(path, engine)
        out["plan_makespan_min"] = chosen.makespan_min
        kept: dict[str, Any] = {
            "p50": {name: summary.p50 for name, summary in sorted(prediction.summaries.items())},
            "median_replication": prediction.median_replication,
        }
        for field, arrays in arrays_of(prediction).items():
            names = sorted(arrays)
            kept[field] = {"names": names, "sha256": digest(arrays, names)}
        out[engine] = kept
    return out


def main() -> None:
    golden = {path.name: fingerprint(path) for path in sorted(SCENARIOS.glob("*.yaml"))}
    json.dump(golden, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
