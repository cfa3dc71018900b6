"""Every example scenario predicts the same numbers on the same seed as the golden file recorded.

New model features are opt-in: a scenario that does not use them must not move by a bit. Quantities added
to the prediction later are not held to the file (it names the ones it holds); those it names must match
exactly, with both engines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden_predictions import ENGINES, SCENARIOS, arrays_of, digest, plan_and_predict

GOLDEN = json.loads((Path(__file__).parent / "golden" / "predictions.json").read_text())


def test_the_golden_file_covers_every_example_scenario() -> None:
    assert sorted(GOLDEN) == sorted(path.name for path in SCENARIOS.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
@pytest.mark.parametrize("engine", ENGINES)
def test_scenario_predicts_the_recorded_numbers(name: str, engine: str) -> None:
    recorded = GOLDEN[name]
    chosen, prediction = plan_and_predict(SCENARIOS / name, engine)
    assert chosen.makespan_min == recorded["plan_makespan_min"]
    kept = recorded[engine]
    assert prediction.median_replication == kept["median_replication"]
    for quantity, p50 in kept["p50"].items():
        assert prediction.summaries[quantity].p50 == p50, quantity
    for field, arrays in arrays_of(prediction).items():
        names = kept[field]["names"]
        assert set(names) <= set(arrays), field
        assert digest(arrays, names) == kept[field]["sha256"], field
