"""A recorded forecast in words: its bands as P10 - P50 - P90 and its chances of keeping the guards.

The forecast is the plain JSON the executor records as a ``forecast_updated`` event (:mod:`.guards`).
:func:`forecast_line` is the one line the progress views show under or among the lanes (the live table,
plain lines and the run's log); ``cycleplan status`` lays the same parts out as rows. Words only: it
reads the forecast and computes nothing it does not hold but minutes from now and clock times.
"""

from __future__ import annotations

import time
from typing import Any

from cycleplan.core.wording import minutes

BAND = ("p10", "p50", "p90")

CHANCES = (("p_within_budget", "within budget"), ("p_by_deadline", "by deadline"))
"""A forecast's chances of keeping each guard, and how they are labelled."""


def band_text(band: Any, money: bool) -> str:
    """A forecast band's P10 - P50 - P90, in minutes or in dollars; ``-`` for no band."""
    if not isinstance(band, dict):
        return "-"
    parts = [float(band[name]) for name in BAND]
    if money:
        return " - ".join(f"${part:,.2f}" for part in parts)
    return " - ".join(minutes(part) for part in parts)


def minutes_left(finish: dict[str, Any], elapsed_min: float) -> list[float]:
    """The finish band's P10, P50 and P90 as minutes from ``elapsed_min`` on (none below zero)."""
    return [max(float(finish[name]) - elapsed_min, 0.0) for name in BAND]


def chances(forecast: dict[str, Any]) -> list[tuple[str, float]]:
    """``(label, chance)`` of each guard the forecast was made with."""
    return [
        (label, float(forecast[key])) for key, label in CHANCES if isinstance(forecast.get(key), int | float)
    ]


def clock_times(now_s: float, seconds_from_now: list[float]) -> list[str]:
    """Clock times ``seconds_from_now`` after ``now_s`` (epoch seconds), to the minute, or to the second
    where the minutes alone would read the same (a rehearsal's scale packs a band into a minute)."""
    moments = [time.localtime(now_s + seconds) for seconds in seconds_from_now]
    minutes_only = [time.strftime("%H:%M", moment) for moment in moments]
    if len(set(minutes_only)) == len(minutes_only):
        return minutes_only
    return [time.strftime("%H:%M:%S", moment) for moment in moments]


def forecast_line(forecast: dict[str, Any], elapsed_min: float, time_scale: float = 1.0) -> str | None:
    """``forecast P10-P50-P90  finish 14:55 - 15:10 - 15:30 (in 12 min - 27 min - 47 min)  cost ...
    within budget 90%``: the finish as clock times (a rehearsal's ``time_scale`` shortens the wait) and
    minutes from ``elapsed_min`` (scenario minutes since the run began), the total cost, the chances.
    None when the forecast holds none of them."""
    finish, cost = forecast.get("finish_min_from_start"), forecast.get("cost_usd_total")
    parts = []
    if isinstance(finish, dict):
        left = minutes_left(finish, elapsed_min)
        clock = clock_times(time.time(), [part * 60 / time_scale for part in left])
        parts.append(f"finish {' - '.join(clock)} (in {' - '.join(minutes(part) for part in left)})")
    if isinstance(cost, dict):
        parts.append("cost " + band_text(cost, money=True))
    parts += [f"{label} {chance:.0%}" for label, chance in chances(forecast)]
    return "forecast P10-P50-P90  " + "  ".join(parts) if parts else None
