"""How a run's live forecasts fared: the track of recorded forecasts, judged against the actual finish and
cost, in ``compare`` (text, JSON) and its report's fan charts, on a run whose forecasts the real
forecaster made."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import SCENARIOS

from cycleplan.core.model import Event
from cycleplan.present.report.compare_figures import ForecastFan, forecast_fan
from cycleplan.workflows.forecast import Band
from cycleplan.workflows.forecast_track import hindsight, points, track


def _forecast(at: float, finish: tuple[float, float, float], cost: tuple[float, float, float]) -> Event:
    def band(values: tuple[float, float, float]) -> dict[str, float]:
        return dict(zip(("p10", "p50", "p90"), values, strict=True))

    metadata: dict[str, Any] = {
        "action": "forecast_updated",
        "at_min": at,
        "finish_min_from_start": band(finish),
        "cost_usd_total": band(cost),
        "cost_to_complete_usd": band(cost),
        "tokens_total": band((1, 2, 3)),
        "replications": 100,
    }
    return Event(timestamp=at * 60_000, actor_id="run", target_id="run", group_id="g", metadata=metadata)


def test_held_from_is_where_the_bands_start_holding_for_good() -> None:
    times = [0.0, 10.0, 20.0, 30.0, 40.0]
    bands = [Band(50, 60, 70), Band(80, 90, 100), Band(60, 70, 80), Band(85, 95, 99), Band(88, 90, 92)]
    judged = hindsight(times, bands, actual=90.0, makespan_min=50.0)
    # Held at 10 by chance, missed at 20, then held from 30 to the end.
    assert judged.first_held_min == 10.0
    assert judged.held_from_min == 30.0
    assert judged.held_from_share == pytest.approx(0.6)
    assert judged.inside_share == pytest.approx(3 / 5)
    missed_last = hindsight(times, [*bands[:-1], Band(91, 93, 95)], actual=90.0, makespan_min=50.0)
    assert missed_last.held_from_min is None and missed_last.held_from_share is None


def test_track_reads_recorded_forecasts_in_order_and_passes_over_unreadable_ones() -> None:
    broken = {"action": "forecast_updated", "at_min": "soon"}
    unreadable = _forecast(5.0, (1, 2, 3), (1, 2, 3)).model_copy(update={"metadata": broken})
    trace = [
        _forecast(20.0, (90, 100, 110), (2.0, 2.5, 3.0)),
        unreadable,
        _forecast(0.0, (60, 80, 100), (1.0, 2.0, 3.0)),
        Event(timestamp=1, actor_id="lane", target_id="t", group_id="g", metadata={"action": "task_started"}),
    ]
    history = track(trace, actual_finish_min=105.0, actual_cost_usd=2.9)
    assert history is not None and history.forecasts == 2
    assert [point.at_min for point in history.points] == [0.0, 20.0]
    assert history.finish is not None and history.finish.held_from_min == 20.0  # 105 is past 100 at 0
    assert history.cost is not None and history.cost.held_from_min == 0.0
    said = " ".join(history.sentences())
    assert "2 live forecasts recorded" in said and "from 20 min (19% into the run) on" in said
    unfinished = track(trace)
    assert unfinished is not None and unfinished.finish is None and unfinished.cost is None
    assert track(trace[3:]) is None
    assert points(trace)[0].finish_p90 == 100


def test_fan_holds_the_last_forecast_to_the_end_and_marks_when_it_held() -> None:
    fan = ForecastFan(
        at_min=[0.0, 30.0], p10=[60, 95], p50=[80, 100], p90=[100, 110], actual=105.0, held_from_min=30.0,
        end_min=105.0,
    )  # fmt: skip
    figure = forecast_fan(fan, "finish time", "min")
    upper, lower, median, actual, held = figure.data
    assert list(upper.x) == [0.0, 30.0, 105.0] and list(upper.y) == [100, 110, 110]
    assert lower.fill == "tonexty" and list(lower.y) == [60, 95, 95]
    assert median.line.dash == "dash" and list(median.y) == [80, 100, 100]
    assert list(actual.y) == [105.0, 105.0] and list(actual.x) == [0.0, 105.0]
    assert list(held.x) == [30.0, 30.0] and "from 30 min" in held.name
    assert figure.layout.meta == {"actual": 105.0, "held_from_min": 30.0, "forecasts": 2}
    open_run = forecast_fan(ForecastFan([0.0], [1], [2], [3], None, None), "total cost", "usd")
    assert len(open_run.data) == 3  # no actual yet, nothing held


def _cycleplan(cli: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, check=False, env=os.environ)


def test_compare_judges_the_live_forecasts_of_a_real_run(cli: str, tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    scenario = str(SCENARIOS / "course-crud.yaml")
    done = _cycleplan(
        cli, "execute", scenario, "--agent", "emulated", "--time-scale", "3000", "--seed", "3",
        "--budget", "50", "--store", store, "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = tmp_path / "compare.html"
    compared = _cycleplan(
        cli, "compare", "latest", "--store", store, "--json", "--report", str(report), cwd=tmp_path
    )
    assert compared.returncode == 0, compared.stderr
    history = json.loads(compared.stdout)["forecasts"]
    assert history["forecasts"] >= 2 and "points" not in history
    makespan = json.loads(compared.stdout)["makespan_min"]["actual"]
    assert history["finish"]["actual"] == pytest.approx(makespan)
    held = history["finish"]["held_from_min"]
    assert held is None or 0.0 <= held <= makespan
    assert 0.0 <= history["cost"]["inside_share"] <= 1.0
    page = report.read_text()
    assert "Live forecasts of the finish time over the run" in page
    assert "Live forecasts of the total cost over the run" in page
    text = _cycleplan(cli, "compare", "latest", "--store", store, cwd=tmp_path)
    assert text.returncode == 0 and "live forecasts recorded" in text.stdout
