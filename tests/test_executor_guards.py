"""Guards and the live forecast: a budget that stops a run before it spends past it, a deadline, and
forecasts (from a test double: the real one lives above the executor) recorded as events that survive a
resume; ``cycleplan status`` and the guard flags through the real command line."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support import SCENARIOS

from cycleplan.core.loading import load_scenario
from cycleplan.core.model import Event, Plan
from cycleplan.executor import ExecuteOptions, execute, resume
from cycleplan.executor import events as ev
from cycleplan.executor.audit import trace_problems
from cycleplan.executor.forecast_words import clock_times
from cycleplan.executor.guards import FORECAST_MIN_GAP_S, ForecastLoop
from cycleplan.planner import plan
from cycleplan.present.live import LiveTable
from cycleplan.store import RunStore

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

FAST = 20_000.0


def _plan() -> Plan:
    return plan(load_scenario(SCENARIOS / "full-feature.yaml"))


class Double:
    """A forecaster that says the run ends 100 minutes from now and costs $2, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []
        self.made_for: list[ExecuteOptions] = []

    def of(self, plan: Plan, options: ExecuteOptions) -> Double:
        """As the executor's ``forecasts``: this double, for the run of ``plan`` with ``options``."""
        self.made_for.append(options)
        return self

    def __call__(self, trace: Sequence[Event], now_min: float) -> dict[str, Any]:
        assert all(event.action != ev.FORECAST_UPDATED for event in trace)
        self.calls.append((len(trace), now_min))
        band = {"p10": now_min + 50, "p50": now_min + 100, "p90": now_min + 150}
        money = {"p10": 1.0, "p50": 2.0, "p90": 3.0}
        return {
            "at_min": now_min,
            "finish_min_from_start": band,
            "cost_usd_total": money,
            "cost_to_complete_usd": money,
            "tokens_total": {"p10": 1, "p50": 2, "p90": 3},
            "replications": 10,
            "p_within_budget": 0.5,
            "p_by_deadline": None,
        }


def _options(**extra: Any) -> ExecuteOptions:
    return ExecuteOptions(
        agent="emulated", time_scale=FAST, retry_backoff_s=0.0, max_output_tokens=100_000, **extra
    )


def _trace(store: Path, run_id: str) -> list[Event]:
    with RunStore(store) as runs:
        assert runs.check(run_id).problems == []
        return runs.trace(run_id)


def test_a_budget_stops_the_run_within_one_cycle_and_resume_finishes_it(tmp_path: Path) -> None:
    the_plan = _plan()
    store = tmp_path / "runs.db"
    budget = 1.0
    result = execute(the_plan, _options(budget_usd=budget), store=store, progress="none")
    assert (result.status, result.exit_code) == ("interrupted", 4)
    assert result.stopped_by is not None and result.stopped_by["guard"] == "budget"
    assert "would pass the budget of $1.00" in result.stopped_by["message"]
    trace = _trace(store, result.run_id)
    assert trace_problems(the_plan, trace) == []
    assert trace[-1].action == ev.RUN_INTERRUPTED and trace[-1].metadata["guard"] == "budget"
    costs = [float(e.metadata.get("cost_usd", 0.0)) for e in trace if e.action == ev.CYCLE_COMPLETED]
    spent = sum(costs)
    assert 0 < spent <= budget + max(costs)
    assert result.summary["cost_usd"] == pytest.approx(spent)
    # Nothing cut short: the gate stops the run only once no cycle is running.
    assert not any(e.metadata.get("interrupted") for e in trace if e.action == ev.CYCLE_COMPLETED)

    # Resumed with its own budget, it stops again at once; with a larger one, it finishes.
    again = resume(result.run_id, store=store, progress="none")
    assert again.exit_code == 4 and again.summary["cost_usd"] == pytest.approx(spent)
    done = resume(result.run_id, store=store, progress="none", budget_usd=1_000.0)
    assert (done.status, done.exit_code) == ("complete", 0)
    trace = _trace(store, result.run_id)
    assert trace_problems(the_plan, trace) == []
    with RunStore(store) as runs:
        assert runs.run(result.run_id).options["budget_usd"] == 1_000.0


def test_a_deadline_stops_the_run_when_its_clock_passes_it(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    result = execute(_plan(), _options(deadline_min=100.0), store=store, progress="none")
    assert (result.status, result.exit_code) == ("interrupted", 4)
    assert result.stopped_by is not None and result.stopped_by["guard"] == "deadline"
    assert 100.0 <= result.summary["makespan_min"] < 110.0
    assert "deadline" in result.summary["stopped_by"]["message"]
    done = resume(result.run_id, store=store, progress="none", deadline_min=10_000.0)
    assert done.status == "complete"


def test_forecasts_are_recorded_warned_about_and_survive_a_resume(tmp_path: Path) -> None:
    the_plan = _plan()
    store = tmp_path / "runs.db"
    double = Double()
    log: list[str] = []

    class Stream:
        def write(self, text: str) -> None:
            log.append(text)

        def flush(self) -> None:
            return None

        def isatty(self) -> bool:
            return False

    first = execute(
        the_plan,
        _options(budget_usd=1.0),
        store=store,
        progress="plain",
        stream=Stream(),  # type: ignore[arg-type]
        forecasts=double.of,
    )
    assert first.exit_code == 4 and double.calls
    trace = _trace(store, first.run_id)
    forecasts = [e for e in trace if e.action == ev.FORECAST_UPDATED]
    assert forecasts and forecasts[0].metadata["cost_usd_total"] == {"p10": 1.0, "p50": 2.0, "p90": 3.0}
    assert all(e.actor_id == ev.RUN_ACTOR for e in forecasts)
    # Half a chance of passing the budget, above the default risk of 0.2: one warning, on the progress
    # output and in the run's log.
    warned = [line for line in log if "chance this run costs more than its budget of $1.00" in line]
    assert len(warned) == 1
    with RunStore(store) as runs:
        folder = runs.run_folder(first.run_id)
    logged = (folder / "log.txt").read_text()
    assert "chance this run costs more" in logged
    # The first forecast is shown on the plain lines and in the log (then one a minute: this run is
    # shorter), in the words the live table uses.
    shown = [line for line in log if "forecast P10-P50-P90" in line]
    assert len(shown) == 1 and "cost $1.00 - $2.00 - $3.00  within budget 50%" in shown[0]
    assert "(in 50 min - 100 min - 150 min)" in shown[0]
    assert logged.count("forecast P10-P50-P90") == 1

    before = len(forecasts)
    done = resume(first.run_id, store=store, progress="none", forecasts=double.of, budget_usd=1_000.0)
    assert done.status == "complete"
    # The resumed run's forecaster was made with the guards it resumed with.
    assert [made.budget_usd for made in double.made_for] == [1.0, 1_000.0]
    trace = _trace(store, first.run_id)
    assert trace_problems(the_plan, trace) == []
    forecasts = [e for e in trace if e.action == ev.FORECAST_UPDATED]
    assert len(forecasts) > before
    assert trace[-1].action == ev.RUN_COMPLETE
    # The forecaster saw the earlier part's events too, and the run's clock carried on.
    assert double.calls[-1][0] > double.calls[0][0]


def test_the_live_table_shows_the_latest_forecast_under_the_lanes(tmp_path: Path) -> None:
    stream = io.StringIO()
    result = execute(
        _plan(),
        _options(budget_usd=1.0),
        store=tmp_path / "runs.db",
        progress="live",
        live=LiveTable,
        stream=stream,
        forecasts=Double().of,
    )
    assert result.exit_code == 4
    drawn = stream.getvalue()
    assert "forecast P10-P50-P90  finish" in drawn
    assert "cost $1.00 - $2.00 - $3.00  within budget 50%" in drawn
    assert "by its budget" in drawn  # the stop is said above the table


def _cycleplan(cli: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, check=False, env=os.environ)


def test_status_shows_the_state_and_latest_forecast(cli: str, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    result = execute(
        _plan(),
        _options(budget_usd=1.0, deadline_min=10_000.0),
        store=store,
        progress="none",
        forecasts=Double().of,
    )
    done = _cycleplan(cli, "status", "latest", "--store", str(store), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert state["run_id"] == result.run_id and state["status"] == "interrupted"
    assert state["stopped_by"]["guard"] == "budget"
    assert state["cost_usd"] == pytest.approx(result.summary["cost_usd"])
    assert state["tasks"]["total"] == 12 and state["lanes"]["total"] == len(_plan().lanes)
    forecast = state["forecast"]
    for key in ("finish_min_from_start", "cost_usd_total"):
        assert set(forecast[key]) == {"p10", "p50", "p90"}
    assert forecast["p_within_budget"] == 0.5
    assert "p_by_deadline" in forecast  # a deadline was given, though this forecast left it out
    text = _cycleplan(cli, "status", result.run_id[:15], "--store", str(store), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    for words in ("interrupted", "total cost", "within budget", "by its budget"):
        assert words in text.stdout
    missing = _cycleplan(cli, "status", "nope", "--store", str(store), cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_status_watch_prints_a_json_line_each_read_and_ctrl_c_exits_0(cli: str, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    result = execute(_plan(), _options(budget_usd=1.0), store=store, progress="none", forecasts=Double().of)
    watching = subprocess.Popen(
        [cli, "status", "latest", "--store", str(store), "--watch", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    assert watching.stdout is not None
    lines = [watching.stdout.readline() for _ in range(2)]  # the second comes a read later
    time.sleep(0.2)
    watching.send_signal(signal.SIGINT)
    out, err = watching.communicate(timeout=30)
    assert watching.returncode == 0, err
    assert "Traceback" not in err
    states = [json.loads(line) for line in [*lines, *out.splitlines()] if line.strip()]
    assert len(states) >= 2
    assert all(state["run_id"] == result.run_id for state in states)
    assert all(state["forecast"]["cost_usd_total"]["p50"] == 2.0 for state in states)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--deadline", "soon"], "--deadline soon: write a duration with its unit"),
        (["--deadline", "90"], "e.g. 90m, 2h or 1h30m"),
        (["--budget", "0"], "--budget 0: must be above 0"),
        (["--risk", "1.5"], "--risk 1.5: a chance between 0 and 1"),
    ],
)
def test_bad_guards_exit_2_with_one_message(cli: str, tmp_path: Path, args: list[str], message: str) -> None:
    scenario = str(SCENARIOS / "course-crud.yaml")
    done = _cycleplan(cli, "execute", scenario, "--agent", "emulated", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_the_execute_cli_stops_at_its_deadline_with_exit_4(cli: str, tmp_path: Path) -> None:
    scenario = str(SCENARIOS / "course-crud.yaml")
    done = _cycleplan(
        cli, "execute", scenario, "--agent", "emulated", "--time-scale", "20000", "--deadline", "1h",
        "--store", str(tmp_path / "runs.db"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "stopped    by its deadline" in done.stdout and "--deadline DURATION" in done.stdout


def test_the_forecast_loop_ends_when_cancelled_in_the_step_that_makes_it_due() -> None:
    """The run's last event makes a forecast due and its end cancels the loop at once; the cancel must end
    it (on Python 3.11, ``asyncio.wait_for`` returned the wait's result instead, the loop went on, and
    the run's end waited for it for ever)."""
    calls: list[float] = []

    def forecaster(trace: Sequence[Event], now_min: float) -> dict[str, Any]:
        calls.append(now_min)
        return {}

    async def cancelled_when_due() -> bool:
        forecasts = ForecastLoop(forecaster, lambda: ([], 0.0), lambda *_: None, lambda _: None, every_s=60.0)
        running = asyncio.create_task(forecasts.run())
        while not calls:
            await asyncio.sleep(0.01)
        await asyncio.sleep(FORECAST_MIN_GAP_S + 0.2)  # past the gap: in its wait for the next event
        forecasts.due()
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=5.0)
        return bool(done) and running.cancelled()

    assert asyncio.run(cancelled_when_due())
    assert len(calls) == 1


def test_the_finish_band_reads_to_the_second_only_where_minutes_would_not_tell_it_apart() -> None:
    start = 1_800_000_000.0  # on a minute's boundary
    spread = clock_times(start, [0.0, 600.0, 1_500.0])
    assert len(set(spread)) == 3 and all(len(clock) == len("14:55") for clock in spread)
    # A rehearsal at 254x packs a band of ten scenario minutes into a few real seconds.
    packed = clock_times(start, [0.5, 2.0, 3.5])
    assert len(set(packed)) == 3 and all(len(clock) == len("14:55:02") for clock in packed)
    assert [clock[:5] for clock in packed] == [spread[0]] * 3


def test_the_forecast_of_a_run_that_is_over_says_nothing_of_from_now() -> None:
    from rich.console import Console

    from cycleplan.present.status import status_view

    band = {"p10": 50.0, "p50": 52.0, "p90": 55.0}
    state: dict[str, Any] = {
        "run_id": "20261207-030623-95dbfa",
        "agent": "emulated",
        "scenario": "Docs sprint",
        "tasks": {"complete": 13, "failed": 0, "cancelled": 0, "running": 0, "total": 13},
        "lanes": {"done": 7, "total": 7},
        "tokens_total": 661_028,
        "cost_usd": 1.6467,
        "elapsed_min": 55.2,
        "forecast": {"at_min": 46.7, "finish_min_from_start": band, "cost_usd_total": band},
    }

    def shown(status: str) -> str:
        console = Console(file=io.StringIO(), width=120)
        console.print(status_view(state | {"status": status}))
        return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]

    assert "since the start" in shown("complete") and "from now" not in shown("complete")
    # A run stopped part way still has its finish ahead, on its own clock.
    assert "from now" in shown("interrupted") and "from now" in shown("running")
