"""Colours of a page: one colour per role, decided once per page and handed to every figure on it, and
the few colours and patterns that mean the same thing on every figure (critical, band, waiting...).

Role colours never reuse a colour kept for another meaning (the reds of :data:`CRITICAL`, the greys and
black of reference marks), so a bar's colour names its role and nothing else.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Iterator, Mapping

# A qualitative palette that stays readable for common colour-vision deficiencies (Okabe-Ito without its
# black, grey and vermillion, then Tol's and Tableau's distinct hues).
ROLE_COLOURS = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#8C564B",
    "#17BECF",
    "#BCBD22",
    "#9467BD",
    "#332288",
    "#44AA99",
]
CRITICAL = "#B00020"
"""Red: on the critical path, outside the predicted band, the recommendation, a claim."""
BAND = "rgba(0, 114, 178, 0.18)"
REFERENCE = "#555555"
"""Dark grey: percentile lines, a predicted median, an actual inside its band."""
NEUTRAL = "#8C8C8C"
"""Grey: bars that belong to no role (tokens by kind, time by cause)."""
ACTUAL = "#333333"
"""Near black: an actual value or span."""
WAIT_FILL = "rgba(255, 255, 255, 0.9)"
"""Waiting inside a task's bar is drawn as a pale bar hatched by cause, over the task's colour."""
WAIT_PATTERNS = {"sync": "/", "subagents": "x", "rate_limit": "."}
WAIT_NAMES = {
    "sync": "waiting for an event",
    "subagents": "blocked on its subagents",
    "rate_limit": "held by rate limits",
}


def _extra_colour(index: int) -> str:
    """Colours past the palette: hues a golden angle apart, mid saturation, so none repeats."""
    hue = (0.11 + index * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hls_to_rgb(hue, 0.45, 0.55)
    return f"#{round(red * 255):02X}{round(green * 255):02X}{round(blue * 255):02X}"


class RoleColours(Mapping[str, str]):
    """A page's role -> colour map. Roles named when it is made get the palette in that order; a role a
    figure meets that was not named gets the next free colour, and every later figure gets the same one.
    Build one per page and pass it to each figure."""

    def __init__(self, roles: Iterable[str] = ()) -> None:
        self._colours: dict[str, str] = {}
        self.add(roles)

    def add(self, roles: Iterable[str]) -> RoleColours:
        """Give each of ``roles`` not seen yet its colour, in order; returns the map."""
        for role in roles:
            self.__getitem__(role)
        return self

    def __getitem__(self, role: str) -> str:
        colour = self._colours.get(role)
        if colour is None:
            index = len(self._colours)
            colour = ROLE_COLOURS[index] if index < len(ROLE_COLOURS) else _extra_colour(index)
            self._colours[role] = colour
        return colour

    def __iter__(self) -> Iterator[str]:
        return iter(self._colours)

    def __len__(self) -> int:
        return len(self._colours)

    def __contains__(self, role: object) -> bool:
        return role in self._colours


def role_colours(roles: Iterable[str]) -> RoleColours:
    """A colour per role, in the order given."""
    return RoleColours(roles)
