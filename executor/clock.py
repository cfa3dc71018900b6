"""The executor's clock: epoch-millisecond timestamps that never run backwards, and the time scale.

Timestamps come from the monotonic clock anchored once to the wall clock, so the order of a run's events
is also the order of their timestamps even if the system clock is stepped. ``time_scale`` is how many
scenario minutes pass in one real minute (``--time-scale 60``: a simulated minute lasts a second); only
the emulated agent runs faster than real time, and the executor shrinks its own waits (timeouts,
backoff) by the same factor so that a rehearsal keeps the scenario's proportions. (Messages write
minutes with :func:`cycleplan.core.wording.minutes`.)
"""

from __future__ import annotations

import time

MS_PER_MIN = 60_000.0


class Clock:
    """Wall-clock milliseconds for events; conversions between scenario minutes and real seconds."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._epoch_s = time.time()
        self._anchor = time.monotonic()

    def now_ms(self) -> float:
        """Milliseconds since the epoch, monotonic within this process."""
        return round((self._epoch_s + time.monotonic() - self._anchor) * 1000.0, 3)

    def real_s(self, scenario_min: float) -> float:
        """Real seconds that ``scenario_min`` scenario minutes last at this time scale."""
        return scenario_min * 60.0 / self.time_scale

    def scenario_min(self, real_ms: float) -> float:
        """Scenario minutes that ``real_ms`` real milliseconds stand for."""
        return real_ms * self.time_scale / MS_PER_MIN
