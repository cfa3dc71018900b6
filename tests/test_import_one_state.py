"""The ONE cycle state file into a run of one-100: cycles onto the template's tasks, repeated entries,
idle gaps and trailing text tolerated with warnings, unusable files refused with their position."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, SHARED_DATA

from cycleplan.core.metrics import MS_PER_MIN, metrics
from cycleplan.workflows.importers import ImportedRun, TraceImportError, import_one_state

DATA = ROOT / "tests" / "data" / "one-state" / "cycle-405b946017.json"
FULL = SHARED_DATA / "traces" / "one-cycle-state"


def _state(cycles: list[tuple[int, float]], **extra: object) -> dict[str, object]:
    return {
        "current_cycle": max(c for c, _ in cycles),
        "feature_name": "Courses",
        "lessons_learned": [{"cycle": c, "lesson": f"done {c}", "timestamp": t} for c, t in cycles],
        **extra,
    }


def _write(tmp_path: Path, state: object, tail: str = "") -> Path:
    path = tmp_path / "cycle.json"
    path.write_text(json.dumps(state, indent=2) + tail, encoding="utf-8")
    return path


def _cycles(imported: ImportedRun) -> list[dict[str, Any]]:
    return [e.metadata for e in imported.trace if e.action == "cycle_completed"]


def test_the_real_file_maps_onto_one_100() -> None:
    imported = import_one_state(DATA)
    assert imported.status == "complete"
    assert imported.scenario.template == "one-100"
    assert imported.plan.algorithm == "sequential"
    cycles = _cycles(imported)
    assert len(cycles) == 100
    assert [c["template_cycle"] for c in cycles] == list(range(1, 101))
    backend = [e for e in imported.trace if e.target_id == "backend" and e.action == "cycle_completed"]
    assert [e.metadata["cycle"] for e in backend] == list(range(1, 11))
    ready = [e for e in imported.trace if e.action == "schema_ready"]
    assert len(ready) == 1 and ready[0].metadata["cycle"] == 2
    assert ready[0].timestamp == backend[1].timestamp
    measured = metrics(imported.trace)
    # On the agent clock, one lane working cycle after cycle: the idle gaps are out of the makespan,
    # which is the work; the wall time (with the gaps) is kept beside it.
    assert measured.completed and measured.makespan_min == pytest.approx(measured.work_min)
    assert (
        imported.details["wall_min"] > imported.details["agent_min"] == pytest.approx(measured.makespan_min)
    )


def test_tokens_the_file_does_not_record_are_absent() -> None:
    imported = import_one_state(DATA)
    assert imported.details["tokens_recorded"] is False
    token_fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    for event in imported.trace:
        assert not {*token_fields, "cost_usd", "context_tokens"} & set(event.metadata), event.action
    measured = metrics(imported.trace)
    assert measured.tokens_total == 0 and measured.cost_usd == 0 and measured.context_tokens == 0
    assert measured.completed and measured.work_min > 0


def test_the_real_file_is_messy_and_tolerated() -> None:
    imported = import_one_state(DATA)
    messages = [str(w) for w in imported.warnings]
    assert any(":3136:2: 32 characters of text after the JSON object" in m for m in messages)
    assert any("cycle 100 is recorded 505 more times" in m for m in messages)
    assert any("flagged as idle, not work" in m for m in messages)
    idle = [c for c in _cycles(imported) if c.get("idle")]
    assert len(idle) == imported.details["idle_cycles"] == 5
    assert all(c["duration_imputed"] and c["idle_ms"] > 60 * MS_PER_MIN for c in idle)


def test_a_cycle_lasts_from_the_entry_before_it(tmp_path: Path) -> None:
    start = 1_700_000_000.0
    imported = import_one_state(_write(tmp_path, _state([(1, start), (2, start + 180), (3, start + 300)])))
    cycles = _cycles(imported)
    assert [c["duration_ms"] for c in cycles[1:]] == [180_000.0, 120_000.0]
    assert cycles[0]["duration_imputed"] is True  # nothing before cycle 1 says when it started
    assert cycles[0]["duration_ms"] == 150_000.0
    assert imported.trace[0].timestamp == (start - 150) * 1000


def test_repeated_entries_count_once(tmp_path: Path) -> None:
    start = 1_700_000_000.0
    entries = [(1, start), (2, start + 60), (2, start + 120), (3, start + 200), (3, start + 900)]
    imported = import_one_state(_write(tmp_path, _state(entries)))
    assert [c["duration_ms"] for c in _cycles(imported)][1:] == [60_000.0, 140_000.0]
    assert imported.details["repeated_entries"] == 2


def test_the_idle_threshold_is_an_option(tmp_path: Path) -> None:
    start = 1_700_000_000.0
    path = _write(
        tmp_path, _state([(1, start), (2, start + 120), (3, start + 120 + 40 * 60), (4, start + 9000)])
    )
    assert import_one_state(path).details["idle_cycles"] == 1
    assert import_one_state(path, idle_after_min=30).details["idle_cycles"] == 2


def test_missing_cycles_share_the_next_gap(tmp_path: Path) -> None:
    start = 1_700_000_000.0
    imported = import_one_state(_write(tmp_path, _state([(1, start), (2, start + 60), (5, start + 420)])))
    cycles = _cycles(imported)
    assert [c["duration_ms"] for c in cycles[2:5]] == [120_000.0] * 3
    assert all(c["gap_shared"] for c in cycles[2:5])
    assert any("3-4" in w.message for w in imported.warnings)


def test_an_unfinished_feature_is_an_interrupted_run(tmp_path: Path) -> None:
    start = 1_700_000_000.0
    imported = import_one_state(_write(tmp_path, _state([(c, start + 100 * c) for c in range(1, 16)])))
    assert imported.status == "interrupted"
    measured = metrics(imported.trace)
    assert not measured.completed
    assert measured.tasks["foundation"].status == "complete"
    assert measured.tasks["backend"].status == "cancelled"
    assert len(_cycles(imported)) == 15


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("   \n", "is empty"),
        ('{"current_cycle": 3, "lessons_learned": [{"cycle": 1,', "not valid JSON"),
        ("[1, 2, 3]", "holds a JSON list, not an object"),
        ('{"current_cycle": 3}', "has no lessons_learned list"),
        (
            '{"lessons_learned": [{"cycle": 1, "lesson": "x", "timestamp": 1700000000}]}',
            "at least two are needed",
        ),
    ],
)
def test_unusable_state_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cycle.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TraceImportError, match=message) as caught:
        import_one_state(path)
    assert str(caught.value).startswith(str(path))


def test_a_truncated_state_file_names_its_line(tmp_path: Path) -> None:
    text = DATA.read_text(encoding="utf-8")
    path = tmp_path / "cycle.json"
    path.write_text(text[:20_000], encoding="utf-8")
    with pytest.raises(TraceImportError) as caught:
        import_one_state(path)
    (error,) = caught.value.errors
    assert error.line is not None and error.line > 100
    assert "not valid JSON" in error.message


def test_bad_entries_are_skipped_with_their_place(tmp_path: Path) -> None:
    state = _state([(1, 1_700_000_000.0), (2, 1_700_000_060.0), (3, 1_700_000_200.0)])
    state["lessons_learned"].insert(1, {"cycle": "two", "timestamp": 1})
    imported = import_one_state(_write(tmp_path, state))
    assert [w.field for w in imported.warnings if w.field] == ["lessons_learned[1]"]


@pytest.mark.skipif(
    not FULL.is_dir(), reason=f"the full ONE state files are not here ({FULL}); tests/data has one"
)
@pytest.mark.parametrize(
    "name",
    ["cycle-02cd1c6e0f.json", "cycle-405b946017.json", "cycle-5daac2b410.json", "cycle-8ad9acae48.json"],
)
def test_every_real_state_file_imports(name: str) -> None:
    imported = import_one_state(FULL / name)
    assert imported.status == "complete" and len(_cycles(imported)) == 100
    assert metrics(imported.trace).completed
