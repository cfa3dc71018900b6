"""How numbers and names read on a page: a value with its unit (``2.42M tokens``, ``$1.23``, ``421 min``,
``1.54x``), the plotly tick formats that match, and words that say where a claim or a cycle count comes
from. Text only: nothing here draws or computes a result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cycleplan.workflows.bands import show

if TYPE_CHECKING:
    from cycleplan.core.model import Plan

_UNITS = {"usd": "usd", "us dollars": "usd", "$": "usd", "minutes": "min", "min": "min", "share": "share"}


def unit_key(unit: str) -> str:
    """The unit as :func:`cycleplan.workflows.bands.show` knows it (``USD`` -> ``usd``, ``minutes`` ->
    ``min``)."""
    return _UNITS.get(unit.lower(), unit)


def number(value: float, unit: str) -> str:
    """``value`` short, with its unit: ``2.42M tokens``, ``$1.23``, ``421 min``, ``1.54x``, ``41%``."""
    key = unit_key(unit)
    shown = show(value, key)
    if key == "tokens":
        return f"{shown} tokens"
    if key in ("usd", "min", "x", "share"):
        return shown
    return f"{value:,.3g} {unit}".rstrip()


def axis_format(unit: str) -> dict[str, str]:
    """Plotly axis settings that write ticks as :func:`number` writes values (SI prefixes, dollars,
    percentages), for ``xaxis``/``yaxis`` dicts."""
    key = unit_key(unit)
    if key == "usd":
        return {"tickprefix": "$", "tickformat": ",.2~f"}
    if key == "share":
        return {"tickformat": ".0%"}
    if key == "tokens":
        return {"tickformat": ".3~s"}
    if key == "x":
        return {"ticksuffix": "x", "tickformat": ".2~f"}
    return {"tickformat": ",.4~g"}


def axis_title(name: str, unit: str) -> str:
    """``makespan (minutes)``, ``cost (US dollars)``, ``tokens``."""
    key = unit_key(unit)
    words = {"usd": "US dollars", "min": "minutes", "x": "x", "tokens": "", "share": "%"}.get(key, unit)
    return f"{name} ({words})" if words and words != name else name


CLAIM_LABEL = "scenario's claim"
"""A claim comes with the scenario (``claim:``); its ``source`` says whose words it repeats."""


def claim_detail(sequential: str, parallel: str, source: str) -> str:
    """``600 min -> 240 min, from Parallel Agent Execution, Pattern 1``."""
    return f"{sequential} -> {parallel}" + (f", from {source}" if source else "")


def template_note(plan: Plan) -> str | None:
    """What the plan's built-in template's guide says of itself, named as the template's; None when the
    scenario names no template or its template makes no claim."""
    from cycleplan.core.templates import TEMPLATES

    name = plan.scenario.template
    template = TEMPLATES.get(name) if name is not None else None
    if template is None or not template.claim:
        return None
    return f"The {name} template's guide says: {template.claim}"


def cycles_detail(plan: Plan) -> str:
    """Where the cycle count comes from: ``from the one-100 template's 100 cycles``, or ``from 34 cycles``
    when the scenario names no template."""
    if plan.scenario.template is None:
        return f"from {plan.template_cycles} cycles"
    return f"from the {plan.scenario.template} template's {plan.template_cycles} cycles"
