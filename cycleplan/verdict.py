"""The verdict of a comparison: the largest source of error, in words.

This module must not compute placements; it reads those of :mod:`cycleplan.comparison` and says what
they show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cycleplan.bands import (
    HEADLINE,
    LABELS,
    TOKEN_KINDS,
    Deviation,
    Placement,
    TaskComparison,
    percentile_text,
    position,
    show,
)
from cycleplan.metrics import TraceMetrics

_KIND_KNOB = {
    "input_tokens": "tokens.fresh_input (or, with caching off, the history re-sent each cycle)",
    "cache_write_tokens": "calls.growth with an agent loop, else tokens.history_growth (history written "
    "to the cache each cycle)",
    "cache_read_tokens": "calls.per_cycle or calls.growth with an agent loop (every call re-reads the "
    "context), else tokens.history_growth or tokens.context_tokens (re-read every cycle)",
    "output_tokens": "calls.output with an agent loop, else tokens.output",
}
"""The part of a role's token model each kind of token depends on most (a cycle as one request, or as
an agent loop of calls: see ``Role.calls``)."""

_WAIT_WORDS = {
    "rate_limit": "rate-limit waits",
    "sync": "waits for events and handoffs",
    "lane": "time ready tasks waited for a lane",
    "dependency": "lane time idle on dependencies",
}
_CAUSES = ("rate_limit", "sync")
"""Waits that can make a run longer (lane and dependency waits are its effect, not its cause)."""


def _band_and_actual(placement: Placement, unit: str) -> str:
    """``P90 38 min, actual 71 min``: the band's near edge and the actual."""
    edge = ("P90", placement.p90) if placement.actual > placement.p50 else ("P10", placement.p10)
    return f"{edge[0]} {show(edge[1], unit)}, actual {show(placement.actual, unit)}"


def _ratio(placement: Placement, unit: str) -> str:
    """``1.8x the predicted median``, or the two values when the median is zero."""
    if placement.p50 > 0:
        ratio = placement.actual / placement.p50
        return f"{ratio:.2f}x" if 0.95 <= ratio <= 1.05 else f"{ratio:.1f}x"
    return f"{show(placement.actual, unit)} against {show(placement.p50, unit)}"


def _pick(candidates: Iterable[Deviation], direction: float) -> Deviation | None:
    """The candidate furthest out in ``direction`` (+1 above the median, -1 below), if any is on that side."""
    best = max(candidates, key=lambda deviation: deviation.placement.score * direction, default=None)
    if best is None or best.placement.score * direction <= 0:
        return None
    return best


def _detail(deviation: Deviation) -> str:
    """One detail in words: ``frontend took 1.8x its predicted median (P90 38 min, actual 71 min)``."""
    placement = deviation.placement
    what = deviation.what
    unit = deviation.unit
    band = _band_and_actual(placement, unit)
    later = "later" if placement.actual > placement.p50 else "earlier"
    if what.endswith(".duration"):
        return f"{deviation.subject} took {_ratio(placement, unit)} its predicted median ({band})"
    if what.endswith(".start"):
        return f"{deviation.subject} started {later} than predicted ({band})"
    if what.endswith(".finish"):
        return f"{deviation.subject} finished {later} than predicted ({band})"
    if what.startswith("tokens_by_role."):
        return f"{deviation.subject} used {_ratio(placement, unit)} its predicted median of tokens ({band})"
    if what.startswith("cost_by_role."):
        return f"{deviation.subject} cost {_ratio(placement, unit)} its predicted median ({band})"
    subject = deviation.subject
    if what.startswith("waits_min."):
        subject = _WAIT_WORDS.get(subject, f"{subject} waits")
    if placement.p50 == 0:
        return f"{subject} came to {show(placement.actual, unit)} where the predicted median is 0 ({band})"
    return f"{subject} came to {_ratio(placement, unit)} the predicted median ({band})"


def _failures(failed: Placement, direction: float) -> str:
    """``failed attempts came to ...: failure.probability_per_cycle is likely underestimated``, when the
    run failed more often than predicted and that is the side being explained; else nothing."""
    if failed.inside or direction <= 0 or failed.actual <= failed.p90:
        return ""
    retried = Deviation(what="failed_cycles", subject="failed attempts", unit="count", placement=failed)
    return f"{_detail(retried)}: failure.probability_per_cycle is likely underestimated"


def _lengthened(
    direction: float,
    tasks: Sequence[TaskComparison],
    waits: Mapping[str, Placement],
    failed: Placement,
    critical: Sequence[str],
    work: Placement | None = None,
) -> str:
    """Why the run took longer (``direction`` +1) or shorter (-1) than predicted: the task on the run's
    critical path, or the wait, furthest out that way; when no task is outside its own band but the
    run's whole work (``work``, its one-lane baseline) is, the work across the board; and failures,
    when there were more than predicted."""
    on_path = [row for row in tasks if row.task in critical and row.duration is not None]
    rows = on_path or [row for row in tasks if row.duration is not None]
    candidates = [
        Deviation(what=f"task.{row.task}.duration", subject=row.task, unit="min", placement=row.duration)
        for row in rows
        if row.duration is not None
    ]
    candidates += [
        Deviation(what=f"waits_min.{cause}", subject=cause, unit="min", placement=waits[cause])
        for cause in _CAUSES
        if cause in waits
    ]
    chosen = _pick(candidates, direction)
    parts = []
    if chosen is None:
        parts.append("no task or wait stands out from its prediction")
    elif (
        chosen.what.startswith("task.")
        and chosen.placement.inside
        and work is not None
        and not work.inside
        and direction * work.score > 0
    ):
        side = "longer" if direction > 0 else "shorter"
        parts.append(
            f"the run's whole work (one-lane baseline) {position(work)}: no single task is outside its band, "
            f"but together they ran {side}, so cycles took {side} than the model's durations across the "
            "board (cycleplan calibrate RUN fits them)"
        )
    elif chosen.what.startswith("task.") and chosen.placement.inside:
        parts.append("no single task is outside its band; the furthest: " + _detail(chosen))
    elif chosen.what.startswith("task."):
        where = "on" if chosen.subject in critical else "off"
        parts.append(f"{_detail(chosen)}, {where} the run's critical path")
    else:
        parts.append(_detail(chosen))
    failures = _failures(failed, direction)
    if failures:
        parts.append(failures)
    return "; ".join(parts)


def _verdict(
    run_level: Mapping[str, Placement],
    tokens_by_role: Mapping[str, Placement],
    cost_by_role: Mapping[str, Placement],
    waits: Mapping[str, Placement],
    tasks: Sequence[TaskComparison],
    measured: TraceMetrics,
    deviations: Sequence[Deviation],
) -> str:
    """The largest source of error in plain words (see :func:`compare`)."""
    outside = [name for name in HEADLINE if not run_level[name].inside]
    if not outside:
        listed = ", ".join(f"{LABELS[name][0]} {percentile_text(run_level[name])}" for name in HEADLINE)
        text = f"Inside the prediction: {listed}, all between P10 and P90."
        furthest = next((d for d in deviations if not d.placement.inside), None)
        if furthest is not None:
            text += f" The detail furthest out: {_detail(furthest)}."
        return text

    worst = max(outside, key=lambda name: abs(run_level[name].score))
    placement = run_level[worst]
    direction = 1.0 if placement.score > 0 else -1.0
    failed = run_level["failed_cycles"]
    critical = measured.critical
    if worst == "makespan_min" or worst == "utilization":
        makespan = run_level["makespan_min"]
        longer = direction if worst == "makespan_min" else -direction
        cause = _lengthened(longer, tasks, waits, failed, critical, run_level["sequential_min"])
        if worst == "utilization":
            cause = f"makespan {position(makespan)}; {cause}"
    elif worst == "speedup":
        makespan, baseline = run_level["makespan_min"], run_level["sequential_min"]
        if -direction * makespan.score >= direction * baseline.score:
            cause = f"makespan {position(makespan)}: " + _lengthened(
                -direction, tasks, waits, failed, critical
            )
        else:
            work = [
                Deviation(
                    what=f"task.{row.task}.duration", subject=row.task, unit="min", placement=row.duration
                )
                for row in tasks
                if row.duration is not None
            ]
            chosen = _pick(work, direction)
            cause = f"the run's own work (one-lane baseline) {position(baseline)}"
            if chosen is not None:
                cause += f": {_detail(chosen)}"
    elif worst == "tokens_total":
        cause = _tokens_cause(direction, tokens_by_role, run_level, failed)
    else:
        cause = _cost_cause(direction, cost_by_role, run_level, failed)
    text = f"{LABELS[worst][0].capitalize()} {position(placement)}: {cause}."
    others = [name for name in outside if name != worst]
    if others:
        text += (
            " Also outside P10-P90: "
            + ", ".join(f"{LABELS[name][0]} ({percentile_text(run_level[name])})" for name in others)
            + "."
        )
    return text


def _tokens_cause(
    direction: float,
    tokens_by_role: Mapping[str, Placement],
    run_level: Mapping[str, Placement],
    failed: Placement,
) -> str:
    """Why the run used more (``direction`` +1) or fewer tokens than predicted: the role furthest out
    that way, then failures (every failed attempt is sent and billed again) or else the kind of token
    furthest out, with the part of the role's token model it depends on."""
    roles = [
        Deviation(what=f"tokens_by_role.{role}", subject=role, unit="tokens", placement=placement)
        for role, placement in tokens_by_role.items()
    ]
    role = _pick(roles, direction)
    parts = []
    if role is not None:
        parts.append(_detail(role))
    failures = _failures(failed, direction)
    if failures:
        parts.append(failures + " (every failed attempt is sent and billed again)")
    else:
        parts.append(_kind_hint(direction, run_level, role.subject if role is not None else None))
    return "; ".join(part for part in parts if part) or "no role or kind of token stands out"


def _kind_hint(direction: float, run_level: Mapping[str, Placement], role: str | None) -> str:
    """``cache reads are the kind furthest out (P99): frontend's tokens.history_growth ... underestimated``
    (nothing when no kind is out that way)."""
    kinds = [
        Deviation(what=kind, subject=LABELS[kind][0], unit="tokens", placement=run_level[kind])
        for kind in TOKEN_KINDS
    ]
    kind = _pick(kinds, direction)
    if kind is None:
        return ""
    estimate = "underestimated" if direction > 0 else "overestimated"
    whose = f"{role}'s " if role is not None else ""
    return (
        f"{kind.subject} are the kind furthest out ({percentile_text(kind.placement)}): "
        f"{whose}{_KIND_KNOB[kind.what]} {estimate}"
    )


def _cost_cause(
    direction: float,
    cost_by_role: Mapping[str, Placement],
    run_level: Mapping[str, Placement],
    failed: Placement,
) -> str:
    """Why the run cost more (``direction`` +1) or less than predicted: the role furthest out that way,
    then why its tokens differ, or, when the tokens were inside their band, the price per token."""
    tokens = run_level["tokens_total"]
    roles = [
        Deviation(what=f"cost_by_role.{role}", subject=role, unit="usd", placement=placement)
        for role, placement in cost_by_role.items()
    ]
    role = _pick(roles, direction)
    parts = [_detail(role) if role is not None else "no role stands out"]
    if tokens.inside:
        parts.append(
            f"tokens were inside their band ({percentile_text(tokens)}), so the price per token differs: "
            "check the roles' models and the price table"
        )
    else:
        failures = _failures(failed, direction)
        subject = role.subject if role is not None else None
        parts.append(
            failures + " (every failed attempt is sent and billed again)"
            if failures
            else _kind_hint(direction, run_level, subject)
        )
    return "; ".join(part for part in parts if part)
