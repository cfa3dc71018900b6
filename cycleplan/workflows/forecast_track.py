"""How a run's live forecasts fared: every forecast it recorded, and from when each one held the actual.

    >>> from cycleplan.workflows.forecast_track import track
    >>> history = track(trace, actual_finish_min=64.0, actual_cost_usd=3.1)
    >>> history.finish.held_from_min, history.cost.inside_share

During a run the executor records a forecast of its finish and total cost (``forecast_updated`` events,
:mod:`cycleplan.workflows.forecast`). Once the run is over, the actuals are known and each forecast can
be judged: did its P10-P90 hold what happened? For each quantity :func:`track` says

- ``held_from_min``: the moment from which every later forecast's band held the actual (how early the
  forecasts were right and stayed right), and that moment as a share of the run's length;
- ``first_held_min``: the first forecast whose band held it (right once, perhaps by luck);
- ``inside_share``: the share of all forecasts whose band held it.

Times are scenario minutes since the run's start, the clock of :func:`comparison.compare`'s trace.
A run that did not finish has forecasts but no actuals: its track carries the forecasts and no verdicts.
Forecast events whose content cannot be read are passed over (the store keeps them as recorded).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from cycleplan.core.model import Event, Frozen
from cycleplan.core.wording import counted, minutes
from cycleplan.executor import events as ev
from cycleplan.workflows.forecast import Band, Forecast


class ForecastPoint(Frozen):
    """One recorded forecast: when it was made, and its P10/P50/P90 finish and total cost."""

    at_min: float
    finish_p10: float
    finish_p50: float
    finish_p90: float
    cost_p10: float
    cost_p50: float
    cost_p90: float


class Hindsight(Frozen):
    """One forecast quantity judged against what happened."""

    actual: float
    held_from_min: float | None = Field(
        description="Scenario minutes from the run's start from which every forecast's P10-P90 held the "
        "actual (None: the last forecast missed it)."
    )
    held_from_share: float | None = Field(description="held_from_min as a share of the run's makespan.")
    first_held_min: float | None = Field(description="When a forecast's band first held the actual.")
    inside_share: float = Field(description="Share of the forecasts whose P10-P90 held the actual.")


class ForecastTrack(Frozen):
    """A run's recorded forecasts and, for a finished run, how they fared. ``points`` is left out of JSON."""

    forecasts: int
    finish: Hindsight | None = Field(description="Finish time (minutes); None while the run is unfinished.")
    cost: Hindsight | None = Field(description="Total cost (USD); None while the run is unfinished.")
    points: list[ForecastPoint] = Field(default_factory=list, exclude=True)

    def sentences(self) -> list[str]:
        """In words: how many forecasts, and from when each quantity's band held the actual."""
        said = [f"{counted(self.forecasts, 'live forecast')} recorded."]
        for name, judged, unit in (("finish", self.finish, "min"), ("total cost", self.cost, "usd")):
            if judged is None:
                continue
            actual = minutes(judged.actual) if unit == "min" else f"${judged.actual:,.2f}"
            share = f"{judged.inside_share:.0%} of them held the actual {name} {actual} in P10-P90"
            if judged.held_from_min is None:
                said.append(f"{share}; the last one missed it.")
            else:
                into = (
                    "" if judged.held_from_share is None else f" ({judged.held_from_share:.0%} into the run)"
                )
                since = f"from {minutes(judged.held_from_min)}{into} on"
                said.append(f"{share}; {since}, every forecast held it.")
        return said


def points(trace: Sequence[Event]) -> list[ForecastPoint]:
    """The forecasts recorded in ``trace``, in the order they were made."""
    found = []
    for event in trace:
        if event.action != ev.FORECAST_UPDATED:
            continue
        try:
            made = Forecast.from_json(event.metadata)
        except (KeyError, TypeError, ValueError):
            continue
        finish, cost = made.finish_min_from_start, made.cost_usd_total
        found.append(
            ForecastPoint(
                at_min=made.at_min,
                finish_p10=finish.p10,
                finish_p50=finish.p50,
                finish_p90=finish.p90,
                cost_p10=cost.p10,
                cost_p50=cost.p50,
                cost_p90=cost.p90,
            )
        )
    return sorted(found, key=lambda point: point.at_min)


def hindsight(times: Sequence[float], bands: Sequence[Band], actual: float, makespan_min: float) -> Hindsight:
    """Judge forecast ``bands`` made at ``times`` (ascending) against ``actual``."""
    held = [band.covers(actual) for band in bands]
    held_from: float | None = None
    for at, inside in zip(reversed(times), reversed(held), strict=True):
        if not inside:
            break
        held_from = at
    first = next((at for at, inside in zip(times, held, strict=True) if inside), None)
    share = None if held_from is None or makespan_min <= 0 else min(held_from / makespan_min, 1.0)
    return Hindsight(
        actual=actual,
        held_from_min=held_from,
        held_from_share=share,
        first_held_min=first,
        inside_share=sum(held) / len(held) if held else 0.0,
    )


def track(
    trace: Sequence[Event], *, actual_finish_min: float | None = None, actual_cost_usd: float | None = None
) -> ForecastTrack | None:
    """The forecasts ``trace`` recorded and, given the run's actual finish and cost, how they fared.
    None when the run recorded no forecast."""
    made = points(trace)
    if not made:
        return None
    times = [point.at_min for point in made]
    finish = cost = None
    if actual_finish_min is not None:
        bands = [Band(point.finish_p10, point.finish_p50, point.finish_p90) for point in made]
        finish = hindsight(times, bands, actual_finish_min, actual_finish_min)
    if actual_cost_usd is not None:
        bands = [Band(point.cost_p10, point.cost_p50, point.cost_p90) for point in made]
        cost = hindsight(times, bands, actual_cost_usd, actual_finish_min or 0.0)
    return ForecastTrack(forecasts=len(made), finish=finish, cost=cost, points=made)
