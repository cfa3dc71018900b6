"""What ``calibrate`` prints: each role's values before and after the fit, as tables.

A function from a Calibration to a rich renderable, shown by :mod:`cycleplan.present.terminal` (colour and
box rules on a terminal, plain text when piped or with ``NO_COLOR``); it computes nothing the calibration
does not already hold. Quiet leaves out the legend under the tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from cycleplan.core.wording import counted
from cycleplan.present.terminal import Verbosity, facts, heading, legend, table

if TYPE_CHECKING:
    from cycleplan.workflows.calibration import Calibration, Estimate, RoleFit
    from cycleplan.workflows.loop_fit import LoopFit

BLANK = Text("")
HEADERS = ("role", "value", "before", "after", "sd", "90% interval", "data")


def _interval(estimate: Estimate, digits: int) -> str:
    return f"{estimate.low:,.{digits}f} - {estimate.high:,.{digits}f}"


def _rows(fit: RoleFit) -> list[tuple[str, str, str, str, str, str]]:
    """(value, before, after, sd, 90% interval, data) of each fitted or observed value of a role."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    if fit.cycle is not None:
        c = fit.cycle
        data = counted(c.cycles, "cycle") + (f", {c.left_out} left out" if c.left_out else "")
        rows.append(
            (
                "cycle median (min)",
                f"{c.before_median_min:.2f}",
                f"{c.median_min.value:.2f}",
                f"{c.median_min.sd:.2f}",
                _interval(c.median_min, 2),
                data,
            )
        )
        rows.append(
            (
                "cycle p90 (min)",
                f"{c.before_p90_min:.2f}",
                f"{c.p90_min.value:.2f}",
                f"{c.p90_min.sd:.2f}",
                _interval(c.p90_min, 2),
                "",
            )
        )
    for what, spread in (("fresh input", fit.fresh_input), ("output", fit.output)):
        if spread is None:
            continue
        rows.append(
            (
                f"{what} median (tok)",
                f"{spread.before_median:,}",
                f"{spread.median.value:,.0f}",
                f"{spread.median.sd:,.0f}",
                _interval(spread.median, 0),
                counted(spread.cycles, "cycle"),
            )
        )
        rows.append(
            (
                f"{what} p90 (tok)",
                f"{spread.before_p90:,}",
                f"{spread.p90.value:,.0f}",
                f"{spread.p90.sd:,.0f}",
                _interval(spread.p90, 0),
                "",
            )
        )
    if fit.failure is not None:
        f = fit.failure
        rows.append(
            (
                "failure per cycle",
                f"{f.before:.3f}",
                f"{f.probability.value:.3f}",
                f"{f.probability.sd:.3f}",
                _interval(f.probability, 3),
                f"{f.failed} of {f.attempts} failed",
            )
        )
    for model in fit.models:
        factors = (
            ("duration factor", model.before_duration_factor, model.duration_factor, 2),
            ("tokens factor", model.before_tokens_factor, model.tokens_factor, 2),
            ("failure per cycle", model.before_failure, model.failure, 3),
        )
        first = True
        for what, before, estimate, digits in factors:
            if estimate is None:
                continue
            rows.append(
                (
                    f"{model.model}: {what}",
                    "role's" if before is None else f"{before:.{digits}f}",
                    f"{estimate.value:.{digits}f}",
                    f"{estimate.sd:.{digits}f}",
                    _interval(estimate, digits),
                    counted(model.cycles, "cycle") + " on it" if first else "",
                )
            )
            first = False
    for what, seen in (("cache writes", fit.cache_write), ("cache reads", fit.cache_read)):
        if seen is not None:
            rows.append(
                (
                    f"{what} (tok, seen)",
                    "",
                    f"{seen.median:,.0f}",
                    "",
                    f"p90 {seen.p90:,.0f}",
                    "observed, not fitted",
                )
            )
    return rows


def _loop(role: str, fit: LoopFit) -> list[RenderableType]:
    """The fitted agent loop of a role: median and p90 of each part, how sure each median is, and how its
    durations, context, cache and compaction were read."""
    loop = fit.loop
    spread: dict[str, float] = {str(name): value for name, value in fit.posterior.log_sd.items()}
    parts: list[tuple[str, float, float, str, str]] = [
        ("calls per cycle", loop.per_cycle.median, loop.per_cycle.p90, "calls.per_cycle", "{:,.0f}"),
        ("growth per call (tok)", loop.growth.median, loop.growth.p90, "calls.growth", "{:,.0f}"),
        ("output per call (tok)", loop.output.median, loop.output.p90, "calls.output", "{:,.0f}"),
    ]
    if loop.minutes is not None:
        parts.append(
            ("minutes per call", loop.minutes.median_min, loop.minutes.p90_min, "calls.minutes", "{:.3f}")
        )
    if fit.cycle is not None:
        parts.append(("cycle (min)", fit.cycle.median_min, fit.cycle.p90_min, "cycle", "{:.2f}"))
    numbers = table(["", "median", "p90", "log sd"], right={1, 2, 3})
    for what, median, p90, name, fmt in parts:
        sd = spread.get(name)
        numbers.add_row(what, fmt.format(median), fmt.format(p90), "" if sd is None else f"{sd:.2f}")
    context = "as before" if fit.context_tokens is None else f"{fit.context_tokens:,} tokens"
    about: list[tuple[str, RenderableType]] = [
        ("context", f"{context} at a task's start; cache {fit.cache_ttl}")
    ]
    if loop.compaction is not None:
        c = loop.compaction
        about.append(
            (
                "compaction",
                f"at {c.threshold_tokens:,} tokens: {c.output_tokens:,} out, {c.summary_tokens:,} back in, "
                f"{c.minutes:.2f} min",
            )
        )
    scores = ", ".join(
        f"{name} {value:.2f} min"
        for name, value in (("calls", fit.crps_calls_min), ("per cycle", fit.crps_cycle_min))
        if value is not None
    )
    about.append(("durations from", f"{fit.durations} (mean CRPS {scores or 'not scored'})"))
    about.append(
        ("posterior", f"each median's log drawn per replication, Student t with {fit.posterior.dof:g} dof")
    )
    return [
        BLANK,
        heading(
            f"{role}: agent loop from {counted(fit.calls, 'call')} in {counted(fit.cycles, 'cycle')} of "
            f"{counted(fit.runs, 'run')}"
        ),
        numbers,
        facts(about, indent=2),
    ]


def calibration_view(calibration: Calibration, verbosity: Verbosity = Verbosity.NORMAL) -> RenderableType:
    """Each role's values before (the prior) and after the fit, with the posterior's sd and 90% interval
    and the data each rests on; then each fitted agent loop, the subagents seen, and notes."""
    values = table(list(HEADERS), right={2, 3, 4})
    after: list[RenderableType] = []
    spawned: list[tuple[str, RenderableType]] = []
    notes: list[tuple[str, RenderableType]] = []
    for name, fit in calibration.roles.items():
        for index, row in enumerate(_rows(fit)):
            values.add_row(name if index == 0 else "", *row)
        if fit.loop is not None:
            after += _loop(name, fit.loop)
        for child, fan in fit.fan_out.items():
            spawned.append(
                (
                    name,
                    f"spawned {counted(fan.subagents, f'{child!r} subagent')}, "
                    f"{fan.per_cycle:.2f} per cycle, median {counted(fan.cycles_median, 'cycle')} each "
                    "(observed: a scenario states its subagents)",
                )
            )
        notes += [(f"note ({name})", note) for note in fit.notes]
    notes += [("note", note) for note in calibration.notes]
    parts: list[RenderableType] = [
        heading(
            f"calibrated from {counted(len(calibration.runs), 'run')}: {', '.join(calibration.runs)}; "
            f"the prior counts as {counted(calibration.prior_weight, 'cycle')}"
        ),
        BLANK,
        values,
    ]
    if verbosity is not Verbosity.QUIET:
        parts.append(
            legend(
                "before: the scenario's value (the prior); after: the fitted value, what -o writes; sd and "
                "90% interval: how sure the fit is"
            )
        )
    parts += after
    if spawned:
        parts += [BLANK, facts(spawned)]
    if notes:
        parts += [BLANK, facts(notes)]
    return Group(*parts)
