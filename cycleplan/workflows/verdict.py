"""The verdict of a comparison, built as data first: findings, then the words.

A :class:`Finding` is one quantity of one subject (the run, a task, a role, a kind of token, a kind of
wait) held against its predicted band, with the numbers the comparison's table shows for it (actual,
P10/P50/P90, percentile, inside) and the sentence that says so. :func:`build_verdict` makes one finding
for every quantity outside its band, and a headline from them, so that the words cannot disagree with the
table:

- every task with a quantity outside its band is named in a finding (the first :data:`MAX_TASKS`, the
  rest counted in the headline); "no task is outside its band" is said only when none is;
- "inside" means one thing everywhere (:data:`cycleplan.workflows.bands.INSIDE`);
- a cost outside its band is traced to the kind of token whose cost moved most (its tokens times what the
  run paid per token of that kind), or, when every kind's tokens are inside their bands, to the price;
- a run that did not finish is not judged on its makespan, speedup, utilization, tokens or cost (a
  notice says what finished), and a quantity the run did not record is "not recorded".

This module must not compute placements; it reads those of :mod:`cycleplan.workflows.comparison` and says what
they show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import Field

from cycleplan.core.model import Frozen
from cycleplan.core.wording import counted
from cycleplan.workflows.bands import (
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

MAX_TASKS = 8
"""Tasks named one by one in the findings; more are counted in the headline."""

Subject = Literal["run", "task", "role", "tokens", "wait"]


class Finding(Frozen):
    """One quantity of one subject outside its band (or, for the run, placed in it), and why."""

    subject: str = Field(description="The run's id or 'run', a task, a role, a kind of token, a wait.")
    subject_kind: Subject
    quantity: str = Field(description="What is placed: makespan_min, duration, cost_usd, tokens, ...")
    unit: str
    actual: float
    p10: float
    p50: float
    p90: float
    percentile: float
    inside: bool
    cause: str = Field(default="", description="What explains it, in words (empty when nothing does).")
    text: str = Field(description="The sentence, from the numbers above.")


class Verdict(Frozen):
    """The headline, and every finding it rests on."""

    headline: str
    findings: list[Finding]
    notice: str = Field(default="", description="Why the run is not judged as a whole, when it is not.")

    def __str__(self) -> str:
        return self.headline


class CostByKind(Frozen):
    """What each kind of token cost the run, and what it would have cost at its predicted median."""

    actual_usd: dict[str, float]
    predicted_usd: dict[str, float]


class RunState(Frozen):
    """How far the run got."""

    status: str
    complete: bool
    finished: int
    partly: int
    not_run: int
    total: int
    tokens_recorded: bool = True


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
    if not failed.outside or direction <= 0 or failed.actual <= failed.p90:
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
    """Why the run took longer (``direction`` +1) or shorter (-1) than predicted: the task furthest out
    that way among those outside their bands (on the run's critical path first), or the wait; when no
    task is outside its band but the run's whole work (``work``, its sequential baseline) is, the work
    across the board; and failures, when there were more than predicted."""
    durations = [
        Deviation(what=f"task.{row.task}.duration", subject=row.task, unit="min", placement=row.duration)
        for row in tasks
        if row.duration is not None
    ]
    out = [d for d in durations if d.placement.outside]
    on_path = [d for d in out if d.subject in critical]
    waiting = [
        Deviation(what=f"waits_min.{cause}", subject=cause, unit="min", placement=waits[cause])
        for cause in _CAUSES
        if cause in waits and waits[cause].outside
    ]
    chosen = _pick([*(on_path or out), *waiting], direction)
    parts = []
    if chosen is not None and chosen.what.startswith("task."):
        where = "on" if chosen.subject in critical else "off"
        parts.append(f"{_detail(chosen)}, {where} the run's critical path")
    elif chosen is not None:
        parts.append(_detail(chosen))
    elif work is not None and work.outside and direction * work.score > 0:
        side = "longer" if direction > 0 else "shorter"
        parts.append(
            f"the run's whole work (sequential baseline) {position(work)}: no task is outside its band, but "
            f"together they ran {side}, so cycles took {side} than the model's durations across the board "
            "(cycleplan calibrate RUN fits them)"
        )
    elif not out:
        furthest = _pick(durations, direction)
        parts.append(
            "no task or wait is outside its band"
            + (f"; the furthest: {_detail(furthest)}" if furthest is not None else "")
        )
    else:
        parts.append("no task outside its band ran that way")
    failures = _failures(failed, direction)
    if failures:
        parts.append(failures)
    return "; ".join(parts)


def _run_cause(
    name: str,
    run_level: Mapping[str, Placement],
    tokens_by_role: Mapping[str, Placement],
    cost_by_role: Mapping[str, Placement],
    waits: Mapping[str, Placement],
    tasks: Sequence[TaskComparison],
    critical: Sequence[str],
    costs: CostByKind | None,
) -> str:
    """What explains run-level quantity ``name`` outside its band."""
    placement = run_level[name]
    direction = 1.0 if placement.score > 0 else -1.0
    failed = run_level["failed_cycles"]
    if name in ("makespan_min", "utilization"):
        makespan = run_level["makespan_min"]
        longer = direction if name == "makespan_min" else -direction
        cause = _lengthened(longer, tasks, waits, failed, critical, run_level["sequential_min"])
        return f"makespan {position(makespan)}; {cause}" if name == "utilization" else cause
    if name == "speedup":
        makespan, baseline = run_level["makespan_min"], run_level["sequential_min"]
        if -direction * makespan.score >= direction * baseline.score:
            return f"makespan {position(makespan)}: " + _lengthened(
                -direction, tasks, waits, failed, critical
            )
        work = [
            Deviation(what=f"task.{row.task}.duration", subject=row.task, unit="min", placement=row.duration)
            for row in tasks
            if row.duration is not None and row.duration.outside
        ]
        chosen = _pick(work, direction)
        cause = f"the run's own work (sequential baseline) {position(baseline)}"
        return cause + (f": {_detail(chosen)}" if chosen is not None else "")
    if name == "tokens_total":
        return _tokens_cause(direction, tokens_by_role, run_level, failed)
    return _cost_cause(direction, cost_by_role, run_level, failed, costs)


def _finding(deviation: Deviation, kind: Subject, quantity: str, text: str, cause: str = "") -> Finding:
    placement = deviation.placement
    return Finding(
        subject=deviation.subject,
        subject_kind=kind,
        quantity=quantity,
        unit=deviation.unit,
        actual=placement.actual,
        p10=placement.p10,
        p50=placement.p50,
        p90=placement.p90,
        percentile=placement.percentile,
        inside=placement.inside is True,
        cause=cause,
        text=text,
    )


def _task_findings(tasks: Sequence[TaskComparison], critical: Sequence[str]) -> list[Finding]:
    """Every task with a quantity outside its band: its quantity furthest out, furthest first."""
    found: list[tuple[float, Finding]] = []
    for row in tasks:
        parts = [
            (part, p) for part in ("duration", "finish", "start") if (p := getattr(row, part)) is not None
        ]
        out = [(part, p) for part, p in parts if p.outside]
        if not out:
            continue
        part, placement = max(out, key=lambda item: abs(item[1].score))
        deviation = Deviation(
            what=f"task.{row.task}.{part}", subject=row.task, unit="min", placement=placement
        )
        where = "on" if row.task in critical else "off"
        others = [name for name, p in out if name != part]
        text = f"{_detail(deviation)}, {where} the run's critical path" + (
            f" (its {' and '.join(others)} too)" if others else ""
        )
        found.append((abs(placement.score), _finding(deviation, "task", part, text)))
    return [finding for _, finding in sorted(found, key=lambda item: (-item[0], item[1].subject))]


def build_verdict(
    run_id: str,
    run_level: Mapping[str, Placement],
    tokens_by_role: Mapping[str, Placement],
    cost_by_role: Mapping[str, Placement],
    waits: Mapping[str, Placement],
    tasks: Sequence[TaskComparison],
    critical: Sequence[str],
    state: RunState,
    costs: CostByKind | None = None,
) -> Verdict:
    """The findings and the headline (see the module docstring)."""
    findings: list[Finding] = []
    notice = ""
    if not state.complete:
        notice = (
            f"The run did not finish ({state.status}): {state.finished} of {counted(state.total, 'task')} "
            "finished, "
            f"{state.partly} partly run, {state.not_run} not run; its makespan, speedup, utilization, tokens "
            "and cost are not judged against the prediction of a whole run."
        )
    judged = [name for name in HEADLINE if run_level[name].inside is not None]
    outside = sorted(
        (name for name in judged if run_level[name].outside), key=lambda name: -abs(run_level[name].score)
    )
    subject = run_id or "run"
    for name in outside:
        label, unit = LABELS[name]
        cause = _run_cause(name, run_level, tokens_by_role, cost_by_role, waits, tasks, critical, costs)
        deviation = Deviation(what=name, subject=subject, unit=unit, placement=run_level[name])
        text = f"{label.capitalize()} {position(run_level[name])}: {cause}"
        findings.append(_finding(deviation, "run", name, text, cause))

    task_findings = _task_findings(tasks, critical)
    findings.extend(task_findings[:MAX_TASKS])
    extra: list[Finding] = []
    if state.complete and state.tokens_recorded:
        for kind in TOKEN_KINDS:
            placement = run_level[kind]
            if placement.outside:
                deviation = Deviation(what=kind, subject=LABELS[kind][0], unit="tokens", placement=placement)
                extra.append(_finding(deviation, "tokens", kind, _detail(deviation)))
        for role, placement in tokens_by_role.items():
            if placement.outside:
                deviation = Deviation(
                    what=f"tokens_by_role.{role}", subject=role, unit="tokens", placement=placement
                )
                extra.append(_finding(deviation, "role", "tokens", _detail(deviation)))
        for role, placement in cost_by_role.items():
            if placement.outside:
                deviation = Deviation(
                    what=f"cost_by_role.{role}", subject=role, unit="usd", placement=placement
                )
                extra.append(_finding(deviation, "role", "cost_usd", _detail(deviation)))
    if state.complete:
        for cause, placement in waits.items():
            if placement.outside:
                deviation = Deviation(
                    what=f"waits_min.{cause}", subject=cause, unit="min", placement=placement
                )
                extra.append(_finding(deviation, "wait", cause, _detail(deviation)))
    failed = run_level["failed_cycles"]
    if failed.outside:
        deviation = Deviation(what="failed_cycles", subject="failed attempts", unit="count", placement=failed)
        extra.append(_finding(deviation, "run", "failed_cycles", _detail(deviation)))
    findings.extend(extra)

    task_clause = _task_clause(task_findings)
    if notice:
        headline = f"{notice} {task_clause}"
    elif not outside:
        listed = ", ".join(f"{LABELS[name][0]} {percentile_text(run_level[name])}" for name in judged)
        unjudged = [LABELS[name][0] for name in HEADLINE if name not in judged]
        headline = f"Inside the prediction: {listed}, each from P10 to P90" + (
            f" ({', '.join(unjudged)} not recorded)" if unjudged else ""
        )
        headline += f"; {task_clause}"
    else:
        headline = findings[0].text + "."
        if len(outside) > 1:
            headline += (
                " Also outside P10-P90: "
                + ", ".join(f"{LABELS[name][0]} ({percentile_text(run_level[name])})" for name in outside[1:])
                + "."
            )
        headline += f" {task_clause[0].upper()}{task_clause[1:]}"
    return Verdict(headline=headline.strip(), findings=findings, notice=notice)


def _task_clause(task_findings: Sequence[Finding]) -> str:
    """``every task inside its band.`` or ``3 tasks outside their bands: frontend, knowledge, deploy.``"""
    if not task_findings:
        return "every task inside its band."
    names = [finding.subject for finding in task_findings]
    shown = ", ".join(names[:MAX_TASKS]) + (
        f" and {len(names) - MAX_TASKS} more" if len(names) > MAX_TASKS else ""
    )
    count = len(names)
    if count == 1:
        return f"1 task outside its band: {shown}."
    return f"{count} tasks outside their bands: {shown}."


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
        if run_level[kind].outside
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
    costs: CostByKind | None = None,
) -> str:
    """Why the run cost more (``direction`` +1) or less than predicted: the role furthest out that way,
    then the kind of token whose cost moved most that way (its tokens times what the run paid per token
    of that kind, against its predicted median), or, when every kind's tokens were inside their bands,
    the price per token."""
    roles = [
        Deviation(what=f"cost_by_role.{role}", subject=role, unit="usd", placement=placement)
        for role, placement in cost_by_role.items()
    ]
    role = _pick(roles, direction)
    parts = [_detail(role) if role is not None else "no role stands out"]
    failures = _failures(failed, direction)
    if failures:
        parts.append(failures + " (every failed attempt is sent and billed again)")
    kinds_out = [kind for kind in TOKEN_KINDS if run_level[kind].outside]
    if costs is not None:
        moved = {
            kind: costs.actual_usd.get(kind, 0.0) - costs.predicted_usd.get(kind, 0.0) for kind in TOKEN_KINDS
        }
        total = sum(moved.values())
        driver = max(TOKEN_KINDS, key=lambda kind: moved[kind] * direction)
        if moved[driver] * direction > 0 and (driver in kinds_out or not kinds_out):
            placed = run_level[driver]
            share = (
                f"{show(abs(moved[driver]), 'usd')} of the {show(abs(total), 'usd')} "
                if total * direction > 0
                else ""
            )
            side = "above" if direction > 0 else "below"
            parts.append(
                f"{LABELS[driver][0]} drove it ({share}{side} the predicted median; their tokens "
                f"{position(placed)})"
                + (
                    f": {_KIND_KNOB[driver]} {'underestimated' if direction > 0 else 'overestimated'}"
                    if placed.outside
                    else ""
                )
            )
            if not kinds_out:
                parts.append(
                    "every kind of token was inside its band, so the price per token differs: check the "
                    "roles' models and the price table"
                )
            return "; ".join(part for part in parts if part)
    if not kinds_out:
        parts.append(
            "every kind of token was inside its band, so the price per token differs: check the roles' "
            "models and the price table"
        )
    else:
        parts.append(_kind_hint(direction, run_level, role.subject if role is not None else None))
    return "; ".join(part for part in parts if part)
