"""What ``compare`` and ``backtest`` print: views of runs held against their predictions.

Functions from a Comparison or a Backtest to rich renderables, shown by :mod:`cycleplan.present.terminal`;
they compute nothing the results do not already hold. A value outside its predicted band is marked ``!``
(red on a terminal). Quiet leaves out the legends and notes; verbose changes nothing more here.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cycleplan.core.wording import counted, minutes
from cycleplan.present.terminal import MARK, Verbosity, facts, heading, legend, table
from cycleplan.workflows.bands import HEADLINE, LABELS, Placement, percentile_text, show

if TYPE_CHECKING:
    from cycleplan.workflows.backtest import Backtest
    from cycleplan.workflows.comparison import Comparison

BLANK = Text("")


def comparison_view(comparison: Comparison, verbosity: Verbosity = Verbosity.NORMAL) -> RenderableType:
    """The run's numbers in their predicted bands, each task against its band, and the verdict."""
    c = comparison
    replications = counted(c.replications, "replication")
    source = (
        f"{replications} simulated of its own plan (seed {c.seed})"
        if c.prediction_source == "simulated"
        else f"{c.prediction_source} ({replications}, seed {c.seed})"
    )
    scale = f", time scale {c.time_scale:g}" if c.time_scale != 1.0 else ""
    numbers = table(["", "actual", "P10", "P50", "P90", "percentile"], right=range(1, 6))
    for name in (*HEADLINE, "sequential_min"):
        label, unit = LABELS[name]
        numbers.add_row(*_row(label, c.placement(name), unit))
    for role, p in c.tokens_by_role.items():
        numbers.add_row(*_row(f"  tokens {role}", p, "tokens"))
    for role, p in c.cost_by_role.items():
        numbers.add_row(*_row(f"  cost {role}", p, "usd"))
    tasks = table(["task", "lane", "status", "start", "finish", "duration"], right={3, 4, 5})
    for row in c.tasks:
        tasks.add_row(
            row.task,
            row.actual_lane or row.lane,
            row.status,
            *(_cell(getattr(row, part)) for part in ("start", "finish", "duration")),
        )
    parts: list[RenderableType] = [
        heading(
            f"run {c.run_id} ({c.agent}, {c.status}{scale}) of {c.scenario or 'scenario'} against {source}"
        ),
        BLANK,
        numbers,
        BLANK,
    ]
    if verbosity is not Verbosity.QUIET:
        parts.append(
            legend(
                "tasks: actual against predicted P10-P90, minutes since the run's start (! outside the band)"
            )
        )
    parts += [tasks, BLANK, facts(_verdict_rows(c, verbosity))]
    return Group(*parts)


def _verdict_rows(c: Comparison, verbosity: Verbosity) -> list[tuple[str, RenderableType]]:
    # Each finding once: the headline opens with the first when it is the run's.
    findings = [f.text for f in c.verdict.findings if not c.verdict.headline.startswith(f.text)]
    said: RenderableType = Text(c.verdict.headline)
    if findings:
        listed = Table.grid(padding=(0, 1, 0, 0))
        listed.add_column(no_wrap=True)
        listed.add_column(overflow="fold")
        for finding in findings:
            listed.add_row("-", finding)
        said = Group(said, listed)
    rows: list[tuple[str, RenderableType]] = [
        ("verdict", said),
        ("CRPS", f"makespan {c.makespan_crps_min:.2f} min"),
    ]
    if c.forecasts is not None:
        rows.append(("forecasts", " ".join(c.forecasts.sentences())))
    if verbosity is not Verbosity.QUIET:
        rows.append(("note", legend(c.speedup_definition)))
    return rows


def _row(label: str, placement: Placement, unit: str) -> list[str | Text]:
    """A table row: the actual (``-`` when the run did not record it), P10, P50, P90 and the mark."""
    actual = show(placement.actual, unit) if placement.recorded else "-"
    return [
        label,
        actual,
        *(show(x, unit) for x in (placement.p10, placement.p50, placement.p90)),
        _mark(placement),
    ]


def _mark(placement: Placement) -> str | Text:
    if placement.inside is None:
        return "not recorded" if not placement.recorded else "not judged"
    if placement.inside:
        return percentile_text(placement)
    return Text(f"{percentile_text(placement)} !", style=MARK)


def _cell(placement: Placement | None) -> str | Text:
    if placement is None:
        return "-"
    show = functools.partial(minutes, unit=False)
    band = f"{show(placement.actual)} [{show(placement.p10)}-{show(placement.p90)}]"
    return Text(f"{band} !", style=MARK) if placement.outside else band


# --------------------------------------------------------------------------------------------------
# Backtest

_BACKTEST_LABELS = {
    "cost_usd": "cost",
    "cache_read_tokens": "cache reads",
    "output_tokens": "output",
    "makespan_min": "agent time",
}


def _value(name: str, value: float) -> str:
    if name == "cost_usd":
        return f"${value:,.2f}"
    if name == "makespan_min":
        return f"{value:,.1f} min"
    if value >= 1e6:
        return f"{value / 1e6:,.2f}M"
    return f"{value / 1e3:,.1f}k"


def backtest_view(result: Backtest, verbosity: Verbosity = Verbosity.NORMAL) -> RenderableType:
    """Each held-out run's actuals against their bands, how often the bands held them, and the notes."""
    from cycleplan.workflows.backtest import QUANTITIES

    labels = _BACKTEST_LABELS
    runs = table(
        ["run", *(f"{labels[name]} [P10-P90]" for name in QUANTITIES), "turns inside"],
        right=range(1, len(QUANTITIES) + 2),
    )
    for run in result.runs:
        cells: list[str | Text] = [run.run_id]
        for name in QUANTITIES:
            band = run.quantities[name]
            text = f"{_value(name, band.actual)} [{_value(name, band.p10)}-{_value(name, band.p90)}]"
            cells.append(text if band.inside else Text(f"{text} !", style=MARK))
        inside = sum(turn.inside for turn in run.turns)
        cells.append(f"{inside}/{len(run.turns)}")
        runs.add_row(*cells)
    coverage = ", ".join(f"{labels[name]} {result.coverage[name]:.0%}" for name in QUANTITIES)
    rows: list[tuple[str, RenderableType]] = [
        ("inside P10-P90", f"{coverage}, turns {result.coverage['turn_duration']:.0%}"),
        (
            "median |P50 - actual| / actual",
            ", ".join(f"{labels[name]} {result.median_error[name]:.0%}" for name in QUANTITIES),
        ),
        ("median turn band P90/P10", f"{result.turn_ratio_median:.1f}"),
    ]
    parts: list[RenderableType] = [
        heading(
            f"backtest of {counted(len(result.runs), f'{result.kind} run')}: each predicted from the "
            f"others ({counted(result.replications, 'replication')}, seed {result.seed})"
        ),
        BLANK,
        runs,
        BLANK,
        facts(rows),
    ]
    if verbosity is not Verbosity.QUIET:
        parts.append(
            legend("a calibrated prediction puts about 80% of actuals inside P10-P90; '!' marks one outside")
        )
        notes = [*result.notes, *(f"{run.run_id}: {note}" for run in result.runs for note in run.notes)]
        if notes:
            parts.append(facts([("note", Group(*(Text(note) for note in notes)))]))
    return Group(*parts)
