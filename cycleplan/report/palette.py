"""Colours shared by every figure, so a role has the same colour across a report."""

from __future__ import annotations

# A qualitative palette that stays readable for common colour-vision deficiencies (Okabe-Ito, extended).
ROLE_COLOURS = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#7F7F7F",
    "#8C564B",
    "#17BECF",
    "#BCBD22",
]
CRITICAL = "#B00020"
BAND = "rgba(0, 114, 178, 0.18)"
REFERENCE = "#555555"


def role_colours(roles: list[str]) -> dict[str, str]:
    """A colour per role, in the order given (cycling when there are many roles)."""
    return {role: ROLE_COLOURS[index % len(ROLE_COLOURS)] for index, role in enumerate(roles)}
