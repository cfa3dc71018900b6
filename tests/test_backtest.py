"""``cycleplan backtest``: each stored run predicted from the others, and how often the bands held.

The mechanics run on the small transcripts in tests/data; the acceptance figures on the five full
Claude Code sessions of the shared data (skipped, saying why, when it is absent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, SHARED_DATA
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.workflows.backtest import QUANTITIES, backtest
from cycleplan.workflows.importers import import_claude_code, import_one_state, store_run

runner = CliRunner()
DATA = ROOT / "tests" / "data"
FULL = SHARED_DATA / "traces" / "claude-code"
SESSIONS = ("258c7280", "4d5611e5", "8463c716", "ae4a77f8", "fa812bfe")
needs_full = pytest.mark.skipif(
    not FULL.is_dir(), reason=f"the five full Claude Code sessions are not here ({FULL})"
)


def _store(tmp_path: Path, *paths: Path) -> tuple[Path, list[str]]:
    store = tmp_path / "runs.db"
    ids = [store_run(import_claude_code(path), store)[0] for path in paths]
    return store, ids


def _cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_json_names_every_quantity_of_every_held_out_run(tmp_path: Path) -> None:
    store, ids = _store(
        tmp_path,
        DATA / "claude-code" / "258c7280-ae70-4798-800f-63464d01a85d.jsonl",
        DATA / "claude-code" / "subagent.jsonl",
    )
    done = _cli("backtest", *ids, "--store", str(store), "--json", "-n", "200")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert [run["run_id"] for run in result["runs"]] == ids
    for run in result["runs"]:
        assert run["calibrated_from"] == [other for other in ids if other != run["run_id"]]
        for name in QUANTITIES:
            band = run[name]
            assert set(band) == {"actual", "p10", "p50", "p90", "percentile"}
            assert band["p10"] <= band["p50"] <= band["p90"]
            assert 0 <= band["percentile"] <= 100
        assert run["turns"], "every run has turns to hold against their bands"
    assert set(result["coverage"]) == {*QUANTITIES, "turn_duration"}
    inside = [
        run[name]["p10"] <= run[name]["actual"] <= run[name]["p90"]
        for run in result["runs"]
        for name in ["cost_usd"]
    ]
    assert result["coverage"]["cost_usd"] == sum(inside) / len(inside)


def test_runs_that_cannot_be_backtested_are_refused_with_exit_status_2(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, DATA / "claude-code" / "258c7280-ae70-4798-800f-63464d01a85d.jsonl")
    one = _cli("backtest", ids[0], "--store", str(store))
    assert one.exit_code == 2 and "at least two runs" in one.output
    unknown = _cli("backtest", ids[0], "20990101-000000-abcdef", "--store", str(store))
    assert unknown.exit_code == 2 and "20990101-000000-abcdef" in unknown.output
    one_state, _ = store_run(import_one_state(DATA / "one-state" / "cycle-405b946017.json"), store)
    mixed = _cli("backtest", ids[0], one_state, "--store", str(store))
    assert mixed.exit_code == 2 and "different kinds" in mixed.output
    missing = _cli("backtest", "a", "b", "--store", str(tmp_path / "none.db"))
    assert missing.exit_code == 2 and "no run store" in missing.output


def test_a_run_imported_twice_counts_once(tmp_path: Path) -> None:
    session = DATA / "claude-code" / "258c7280-ae70-4798-800f-63464d01a85d.jsonl"
    store, ids = _store(tmp_path, session, session)
    done = _cli("backtest", *ids, "--store", str(store))
    assert done.exit_code == 2
    assert "same timeline" in done.output and "fewer than two distinct runs" in done.output


@needs_full
def test_the_five_real_sessions_are_predicted_within_their_bands(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, *(next(FULL.glob(f"{session}-*.jsonl")) for session in SESSIONS))
    result = backtest(store, ids, replications=1000, seed=0)
    cost = [run.quantities["cost_usd"] for run in result.runs]
    reads = [run.quantities["cache_read_tokens"] for run in result.runs]
    assert sum(band.inside for band in cost) >= 4
    assert result.median_error["cost_usd"] <= 0.40
    assert sum(0.5 <= band.p50 / band.actual <= 2.0 for band in reads) >= 4
    assert 0.60 <= result.coverage["turn_duration"] <= 0.90
    assert result.turn_ratio_median <= 15


@pytest.mark.parametrize(
    ("sessions", "log"),
    [
        (("258c7280-ae70-4798-800f-63464d01a85d.jsonl", "short.jsonl", "subagent.jsonl"), True),
        (("subagent.jsonl", "tool_heavy.jsonl"), False),
    ],
)
def test_agent_time_is_on_a_log_axis_only_when_runs_range_from_seconds_to_hours(
    tmp_path: Path, sessions: tuple[str, ...], log: bool
) -> None:
    from cycleplan.present.report.reports import backtest_report

    store, ids = _store(tmp_path, *(DATA / "claude-code" / name for name in sessions))
    report = backtest_report(backtest(store, ids, replications=200))
    axes = {figure.layout.title.text.split(":")[0]: figure.layout.xaxis.type for figure in report.figures}
    assert axes["agent time"] == ("log" if log else None)
    assert axes["cost"] == "log"
