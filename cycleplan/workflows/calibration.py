"""Calibration: each role's cycle model fitted from actual traces, weighted against the scenario's prior.

What is fitted, per role, from every cycle attempt the traces hold (executed or imported runs):

- **cycle duration**: lognormal by maximum likelihood on log minutes, with the scenario's values as a
  conjugate prior (normal-inverse-gamma): its median and p90 give the prior's location and spread,
  and ``prior_weight`` says how many observed cycles the prior is worth. Equivalently, the fit pools
  the data with ``prior_weight`` pseudo-cycles that have the prior's median and spread; with weight 0
  it is the plain maximum-likelihood fit. Uncertainty is the posterior's: standard deviation and 90%
  interval of the median (Student t) and of the p90 (posterior draws from a seeded Generator).
- **tokens per cycle**: fresh input (the cycle's uncached input; for an uncached conversation, what
  is left after its context and history) and output, each a lognormal median/p90 fitted the same way
  on log(1 + tokens). Cycles without recorded usage are left out. Cache writes and reads are shown as
  observed, not fitted: the token model derives them from the context and the history.
- **failure rate**: failed attempts over attempts, pooled with the scenario's rate as ``prior_weight``
  pseudo-attempts: ``(weight x prior + failed) / (weight + attempts)``. No rate is invented: with no
  failure seen and a prior of 0 it stays 0. Its 90% interval is the Beta posterior's (Jeffreys prior).
- **other models**: cycles that ran on one of the role's listed ``models`` (by the model each cycle, or
  its task's start, names; a dated id is its base model) are kept out of the role's own fit. Each such
  model's ``duration_factor`` and ``tokens_factor`` are its fitted median (against the written factor
  as the prior) over the role's own fitted median, and its ``failure_probability`` is pooled as above.
- **agent loops**: roles whose cycles record their API calls get a fitted loop (calls per cycle, growth,
  output and minutes per call, context, compaction, cache lifetime, and whether durations come from the
  calls or from a per-cycle distribution): :mod:`cycleplan.workflows.loop_fit`.
- **posterior**: how far each fitted median may be off for the next run, written as the role's
  ``posterior`` so that ``simulate`` draws it per replication. For a loop role it comes from the runs'
  differences (:mod:`cycleplan.workflows.posterior`); for a cycle duration fitted as above, from the fit's own
  posterior (the Student t of its log-median).

Runs whose timelines are identical (the same cycles at the same moments: snapshots of one run, such as
the ONE state files of one feature) are counted once, with a note naming them.

Attempts cut short by a stop (``interrupted``), and durations an importer imputed or found idle, are
left out of the duration fit. The calibrated scenario is the prior with those values replaced, written
as YAML that validates (:func:`calibrated_yaml`): the prior's own file, when there is one, with only those
values changed (:mod:`cycleplan.workflows.rewriting`). This module reads traces and the run store; it never
runs, plans or simulates anything.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from cycleplan.core.metrics import MS_PER_MIN
from cycleplan.core.model import (
    MAX_MINUTES,
    MAX_SPREAD,
    MAX_TOKENS,
    Z90,
    CycleDuration,
    Event,
    Frozen,
    Role,
    Scenario,
    Spread,
)
from cycleplan.core.prices import model_base
from cycleplan.core.wording import counted
from cycleplan.workflows.loop_fit import LoopFit, LoopObservations, fit_loop, observe_cycle

DEFAULT_PRIOR_WEIGHT = 5.0
"""How many observed cycles the scenario's own values count for, unless told otherwise."""
POSTERIOR_DRAWS = 20_000

_SKIP_DURATION = ("duration_imputed", "idle", "gap_shared")
"""Flags an importer puts on cycles whose duration was not measured."""


class CalibrationError(Exception):
    """The runs or options cannot be calibrated from (an unknown run, no cycles, a bad role map)."""


class Estimate(Frozen):
    """A fitted value with its posterior standard deviation and 90% interval."""

    value: float
    sd: float
    low: float = Field(description="5th percentile of the posterior.")
    high: float = Field(description="95th percentile of the posterior.")

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high


class DurationFit(Frozen):
    """A role's cycle duration before (the prior) and after calibration, in minutes."""

    cycles: int = Field(description="Cycle attempts whose duration was fitted.")
    left_out: int = Field(description="Attempts whose duration was imputed, idle or not positive.")
    before_median_min: float
    before_p90_min: float
    before_kind: str
    median_min: Estimate
    p90_min: Estimate


class SpreadFit(Frozen):
    """Tokens per cycle (fresh input or output) before and after calibration."""

    cycles: int
    before_median: int
    before_p90: int
    median: Estimate
    p90: Estimate


class FailureFit(Frozen):
    """The per-cycle failure probability before and after calibration."""

    attempts: int
    failed: int
    before: float
    probability: Estimate


class Observed(Frozen):
    """Median and 90th percentile of something observed per cycle but not fitted."""

    cycles: int
    median: float
    p90: float


class FanOut(Frozen):
    """How many subagents of one role a role's cycles spawned, and how long those ran."""

    subagents: int
    per_cycle: float = Field(description="Subagents per completed cycle of the spawning role.")
    cycles_median: float = Field(description="The subagents' median number of cycles.")


class ModelFit(Frozen):
    """One of a role's other models (``models:``), fitted from the cycles that ran on it: its factors
    relative to the role as calibrated (the role's own model), None where nothing was seen."""

    model: str
    cycles: int = Field(description="Cycle attempts that ran on this model.")
    before_duration_factor: float
    duration_factor: Estimate | None
    before_tokens_factor: float
    tokens_factor: Estimate | None
    before_failure: float | None
    failure: Estimate | None


class RoleFit(Frozen):
    """Everything calibrated for one role; None where the traces held nothing to fit."""

    role: str
    cycle: DurationFit | None
    fresh_input: SpreadFit | None
    output: SpreadFit | None
    failure: FailureFit | None
    cache_write: Observed | None
    cache_read: Observed | None
    loop: LoopFit | None = None
    fan_out: dict[str, FanOut] = Field(
        default_factory=dict,
        description="Subagents the role's tasks spawned, by their role: observed, not fitted (a scenario "
        "states its subagents).",
    )
    cycle_log_sd: float | None = Field(
        default=None, description="The fitted cycle median's posterior spread (log), its t's dof below."
    )
    cycle_dof: float | None = None
    models: list[ModelFit] = Field(
        default_factory=list, description="The role's other models that cycles of these runs ran on."
    )
    notes: list[str] = Field(default_factory=list)


class Calibration(Frozen):
    """The result: the fits per role, and the calibrated scenario."""

    runs: list[str]
    prior_weight: float
    roles: dict[str, RoleFit]
    notes: list[str]
    scenario: Scenario


# --------------------------------------------------------------------------------------------------
# Observations


@dataclass
class ModelObservations:
    """What the traces say about a role's cycles on one of its other models (``models:``)."""

    durations_min: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    """Fresh input plus output, per cycle with recorded usage."""
    attempts: int = 0
    failed: int = 0


@dataclass
class RoleObservations:
    """What the traces say about one role's cycles."""

    durations_min: list[float] = field(default_factory=list)
    durations_by_run: dict[str, list[float]] = field(default_factory=dict)
    left_out: int = 0
    fresh_input: list[int] = field(default_factory=list)
    output: list[int] = field(default_factory=list)
    cache_write: list[int] = field(default_factory=list)
    cache_read: list[int] = field(default_factory=list)
    attempts: int = 0
    failed: int = 0
    loop: LoopObservations = field(default_factory=LoopObservations)
    cycles: int = 0
    """Cycles completed (the first attempt that did not fail of each)."""
    spawned: dict[str, list[int]] = field(default_factory=dict)
    """Subagents this role's tasks spawned, by the subagents' role: each one's cycles."""
    by_model: dict[str, ModelObservations] = field(default_factory=dict)
    """Cycles that ran on another of the role's listed models, by that model's name as the scenario
    writes it: kept out of the role's own fit, and fitted as that model's factors."""


def _other_models(role: Role) -> dict[str, str]:
    """The role's listed models other than its own, by the model each stands for (its base name)."""
    own = model_base(role.model)
    return {
        model_base(option.model): option.model for option in role.models if model_base(option.model) != own
    }


def _number(metadata: Mapping[str, Any], key: str) -> float:
    value = metadata.get(key, 0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def observe(
    trace: Sequence[Event],
    prior: Scenario,
    role_map: Mapping[str, str] | None = None,
    into: dict[str, RoleObservations] | None = None,
    run: str = "",
) -> dict[str, RoleObservations]:
    """Gather the cycles of ``trace`` (run ``run``) by role (renamed through ``role_map``), adding to
    ``into``.

    ``prior`` says how each task's durations were stretched (``duration_multiplier``) and whether a
    role's conversation is cached, which decides what counts as fresh input.
    """
    found = into if into is not None else {}
    if not trace or trace[0].action != "run_started":
        raise CalibrationError("a trace starts with a run_started event")
    tasks_info: dict[str, Any] = dict(trace[0].metadata.get("tasks", {}))
    renames = dict(role_map or {})
    cycles_of = Counter(
        event.target_id
        for event in trace
        if event.action == "cycle_completed"
        and not event.metadata.get("failed")
        and not event.metadata.get("interrupted")
    )
    for task, info in tasks_info.items():
        spawned = info.get("spawned_by")
        if isinstance(spawned, list) and spawned and spawned[0] in tasks_info:
            parent_role = str(tasks_info[spawned[0]].get("role", ""))
            child_role = str(info.get("role", ""))
            found.setdefault(renames.get(parent_role, parent_role), RoleObservations()).spawned.setdefault(
                renames.get(child_role, child_role), []
            ).append(cycles_of.get(task, 0))
    multiplier = {task.id: task.duration_multiplier for task in prior.all_tasks()}
    context: dict[str, int] = {}
    history: dict[str, int] = {}
    looped: set[str] = set()
    # Each role's other listed models by the model each names (a role the prior lacks has none).
    other_models = {name: _other_models(role) for name, role in prior.roles.items()}
    started_on: dict[str, str] = {}  # each task's model as it started (a cycle names its own when it differs)
    for event in trace:
        task = event.target_id
        meta = event.metadata
        if event.action == "task_started":
            context[task] = int(_number(meta, "context_tokens"))
            history[task] = 0
            started_on[task] = str(meta.get("model") or "")
        if event.action != "cycle_completed" or meta.get("interrupted"):
            continue
        source_role = str(tasks_info.get(task, {}).get("role", ""))
        role = renames.get(source_role, source_role)
        seen = found.setdefault(role, RoleObservations())
        failed = bool(meta.get("failed", False))
        other = other_models.get(role, {}).get(model_base(str(meta.get("model") or started_on.get(task, ""))))
        on_other = seen.by_model.setdefault(other, ModelObservations()) if other is not None else None
        # A cycle on another listed model counts for that model's factors only, not the role's own fit.
        counted_in: RoleObservations | ModelObservations = seen if on_other is None else on_other
        counted_in.attempts += 1
        counted_in.failed += failed
        if not failed:
            seen.cycles += 1
            if on_other is None:
                observe_cycle(
                    seen.loop, run, meta, first_of_task=task not in looped, context=context.get(task, 0)
                )
                looped.add(task)
        minutes = _number(meta, "duration_ms") / MS_PER_MIN
        if minutes <= 0 or any(meta.get(flag) for flag in _SKIP_DURATION):
            if on_other is None:
                seen.left_out += 1
        else:
            counted_in.durations_min.append(minutes / multiplier.get(task, 1.0))
            if on_other is None:
                seen.durations_by_run.setdefault(run, []).append(minutes / multiplier.get(task, 1.0))
        if "output_tokens" not in meta or meta.get("responses_without_usage"):
            continue
        tokens = prior.role(role).tokens
        uncached = int(_number(meta, "input_tokens"))
        output = int(_number(meta, "output_tokens"))
        fresh = uncached if tokens.cache else max(uncached - context.get(task, 0) - history.get(task, 0), 0)
        if not failed:
            history[task] = history.get(task, 0) + round(tokens.history_growth * (fresh + output))
        if on_other is not None:
            on_other.tokens.append(fresh + output)
            continue
        seen.fresh_input.append(fresh)
        seen.output.append(output)
        seen.cache_write.append(int(_number(meta, "cache_creation_input_tokens")))
        seen.cache_read.append(int(_number(meta, "cache_read_input_tokens")))
    return found


# --------------------------------------------------------------------------------------------------
# Fits


def _median_p90(cycle: CycleDuration) -> tuple[float, float]:
    """A duration distribution's median and 90th percentile, in minutes."""
    return cycle.median_p90()


@dataclass(frozen=True)
class LogFit:
    """Posterior of a lognormal's log-location and log-spread (normal-inverse-gamma)."""

    mu: float
    sigma: float
    kappa: float
    nu: float
    """Posterior precision count of the location and degrees of freedom of the spread."""

    def median(self, offset: float) -> Estimate:
        from scipy import stats

        scale = self.sigma / math.sqrt(self.kappa)
        q_low, q_high = (float(q) for q in np.atleast_1d(stats.t.ppf([0.05, 0.95], self.nu)))
        low, high = self.mu + scale * q_low, self.mu + scale * q_high
        draws = np.exp(self.mu + scale * stats.t.rvs(self.nu, size=POSTERIOR_DRAWS, random_state=_rng()))
        return Estimate(
            value=math.exp(self.mu) - offset,
            sd=float(np.std(draws)),
            low=math.exp(low) - offset,
            high=math.exp(high) - offset,
        )

    def p90(self, offset: float) -> Estimate:
        with np.errstate(over="ignore"):  # few cycles and no prior: draws far out in the tail are inf
            return self._p90(offset)

    def _p90(self, offset: float) -> Estimate:
        rng = _rng()
        variance = self.nu * self.sigma**2 / rng.chisquare(self.nu, POSTERIOR_DRAWS)
        mu = self.mu + np.sqrt(variance / self.kappa) * rng.standard_normal(POSTERIOR_DRAWS)
        draws = np.exp(mu + Z90 * np.sqrt(variance)) - offset
        low, high = np.quantile(draws, [0.05, 0.95])
        finite = draws[np.isfinite(draws)]
        return Estimate(
            value=math.exp(self.mu + Z90 * self.sigma) - offset,
            sd=float(np.std(finite)) if len(finite) == len(draws) else math.inf,
            low=float(low),
            high=float(high),
        )


def _rng() -> np.random.Generator:
    """The posterior draws' Generator: seeded, so a calibration is the same every time it is run."""
    return np.random.default_rng(20_240_601)


def fit_log(values: Sequence[float], prior_median: float, prior_p90: float, weight: float) -> LogFit | None:
    """The lognormal fit of ``values`` (all positive) against a prior worth ``weight`` observations.

    None when there is neither data nor prior weight to fit from.
    """
    n = len(values)
    if n + weight <= 0:
        return None
    logs = np.log(np.asarray(values, dtype=float)) if n else np.zeros(0)
    mean = float(logs.mean()) if n else 0.0
    scatter = float(((logs - mean) ** 2).sum()) if n else 0.0
    mu0 = math.log(prior_median)
    sigma0 = math.log(prior_p90 / prior_median) / Z90
    kappa = weight + n
    mu = (weight * mu0 + n * mean) / kappa
    pooled = weight * sigma0**2 + scatter + weight * n * (mean - mu0) ** 2 / kappa
    return LogFit(mu=mu, sigma=math.sqrt(pooled / kappa), kappa=kappa, nu=kappa)


def fit_failure(attempts: int, failed: int, prior: float, weight: float) -> Estimate:
    """The per-attempt failure probability: ``(weight x prior + failed) / (weight + attempts)``, which
    invents no failures (none seen and a prior of 0 give 0), with the 90% interval and spread of the
    Beta posterior under a Jeffreys prior."""
    from scipy import stats

    law = stats.beta(weight * prior + 0.5 + failed, weight * (1.0 - prior) + 0.5 + attempts - failed)
    low, high = law.ppf([0.05, 0.95])
    total = weight + attempts
    value = (weight * prior + failed) / total if total > 0 else prior
    return Estimate(value=float(value), sd=float(law.std()), low=float(min(low, value)), high=float(high))


def _observed(values: Sequence[int]) -> Observed | None:
    if not values:
        return None
    median, p90 = np.quantile(np.asarray(values, dtype=float), [0.5, 0.9])
    return Observed(cycles=len(values), median=float(median), p90=float(p90))


def _spread_fit(values: Sequence[int], prior: Spread, weight: float) -> SpreadFit | None:
    if not values:
        return None
    fit = fit_log([v + 1.0 for v in values], prior.median + 1.0, prior.p90 + 1.0, weight)
    assert fit is not None
    return SpreadFit(
        cycles=len(values),
        before_median=prior.median,
        before_p90=prior.p90,
        median=fit.median(1.0),
        p90=fit.p90(1.0),
    )


def fit_role(role: str, seen: RoleObservations, prior: Scenario, weight: float) -> RoleFit:
    """Calibrate one role from its observations against the scenario's values for it."""
    spec = prior.role(role)
    only_other_models = seen.attempts == 0 and bool(seen.by_model)
    notes: list[str] = []
    cycle: DurationFit | None = None
    cycle_log_sd: float | None = None
    cycle_dof: float | None = None
    if seen.durations_min:
        median, p90 = _median_p90(spec.cycle)
        fit = fit_log(seen.durations_min, median, p90, weight)
        assert fit is not None
        cycle = DurationFit(
            cycles=len(seen.durations_min),
            left_out=seen.left_out,
            before_median_min=median,
            before_p90_min=p90,
            before_kind=spec.cycle.kind,
            median_min=fit.median(0.0),
            p90_min=fit.p90(0.0),
        )
        cycle_log_sd, cycle_dof = fit.sigma / math.sqrt(fit.kappa), fit.nu
        if spec.cycle.kind != "lognormal":
            notes.append(
                f"its {spec.cycle.kind} cycle duration becomes a lognormal with the same median and p90"
            )
        if len(seen.durations_min) < 3 and weight < 1:
            notes.append("fewer than 3 cycles and almost no prior: the intervals understate the uncertainty")
    elif only_other_models:
        notes.append(
            f"no cycle ran on its own model ({spec.model}): its cycle and token models stay as they were, "
            "and its other models' factors are relative to them"
        )
    else:
        notes.append("no measured cycle duration: its cycle model stays as it was")
    if not seen.output and not only_other_models:
        notes.append("no recorded token usage: its token model stays as it was")
    failure = None
    if seen.attempts:
        failure = FailureFit(
            attempts=seen.attempts,
            failed=seen.failed,
            before=spec.failure.probability_per_cycle,
            probability=fit_failure(seen.attempts, seen.failed, spec.failure.probability_per_cycle, weight),
        )
    loop = fit_loop(seen.loop, spec.calls) if seen.loop else None
    if loop is not None:
        notes.extend(loop.notes)
    fan_out = {
        child: FanOut(
            subagents=len(cycles),
            per_cycle=len(cycles) / seen.cycles if seen.cycles else 0.0,
            cycles_median=float(np.median(cycles)),
        )
        for child, cycles in seen.spawned.items()
    }
    models = [
        _fit_model(spec, name, observed, seen, cycle, weight)
        for name, observed in seen.by_model.items()
        if observed.attempts
    ]
    return RoleFit(
        role=role,
        cycle=cycle,
        fresh_input=_spread_fit(seen.fresh_input, spec.tokens.fresh_input, weight),
        output=_spread_fit(seen.output, spec.tokens.output, weight),
        failure=failure,
        cache_write=_observed(seen.cache_write),
        cache_read=_observed(seen.cache_read),
        loop=loop,
        fan_out=fan_out,
        cycle_log_sd=cycle_log_sd,
        cycle_dof=cycle_dof,
        models=models,
        notes=notes,
    )


def _ratio(estimate: Estimate, base: float) -> Estimate:
    return Estimate(
        value=estimate.value / base, sd=estimate.sd / base, low=estimate.low / base, high=estimate.high / base
    )


def _fit_model(
    spec: Role,
    name: str,
    seen: ModelObservations,
    own: RoleObservations,
    cycle: DurationFit | None,
    weight: float,
) -> ModelFit:
    """The factors of the role's model ``name`` from the cycles that ran on it: its fitted median over the
    role's own (as calibrated from ``own``, or as written when none of its own cycles were seen). Each
    fit has the written factor as its prior, worth ``weight`` cycles as everywhere in calibration."""
    option = next(option for option in spec.models if option.model == name)
    median, p90 = _median_p90(spec.cycle)
    base = cycle.median_min.value if cycle is not None else median
    duration = None
    if seen.durations_min:
        factor = option.duration_factor
        fit = fit_log(seen.durations_min, base * factor, base * (p90 / median) * factor, weight)
        assert fit is not None
        duration = _ratio(fit.median(0.0), base)
    tokens = None
    if seen.tokens:
        written = spec.tokens.fresh_input.median + spec.tokens.output.median + 1.0
        written_p90 = spec.tokens.fresh_input.p90 + spec.tokens.output.p90 + 1.0
        sums = [fresh + out + 1.0 for fresh, out in zip(own.fresh_input, own.output, strict=True)]
        own_fit = fit_log(sums, written, written_p90, weight) if sums else None
        token_base = math.exp(own_fit.mu) if own_fit is not None else written
        spread = written_p90 / written
        factor = option.tokens_factor
        fit = fit_log(
            [t + 1.0 for t in seen.tokens], token_base * factor, token_base * spread * factor, weight
        )
        assert fit is not None
        tokens = _ratio(fit.median(0.0), token_base)
    prior_failure = option.failure_probability
    failure = fit_failure(
        seen.attempts,
        seen.failed,
        spec.failure.probability_per_cycle if prior_failure is None else prior_failure,
        weight,
    )
    return ModelFit(
        model=name,
        cycles=seen.attempts,
        before_duration_factor=option.duration_factor,
        duration_factor=duration,
        before_tokens_factor=option.tokens_factor,
        tokens_factor=tokens,
        before_failure=prior_failure,
        failure=failure,
    )


# --------------------------------------------------------------------------------------------------
# The calibrated scenario


def _minutes(value: float) -> float:
    return min(max(round(value, 4), 1e-4), MAX_MINUTES)


def _tokens(value: float) -> int:
    return int(min(max(round(value), 0), MAX_TOKENS))


def _bounded_p90(p90: float, median: float) -> float:
    """``p90`` kept between the median and ``MAX_SPREAD`` times it, so the written scenario loads."""
    if median <= 0:
        return max(p90, median)
    return min(max(p90, median), MAX_SPREAD * median)


def _spread_data(fit: SpreadFit) -> dict[str, int]:
    median = _tokens(fit.median.value)
    return {"median": median, "p90": int(_bounded_p90(_tokens(fit.p90.value), median))}


def apply_fits(data: dict[str, Any], fits: Mapping[str, RoleFit], runs: Sequence[str] = ()) -> dict[str, Any]:
    """Scenario data (as YAML reads it, or as a round trip of the file reads it) with the fitted values of
    each role put in place (``runs``: the runs the fits come from).

    Each fitted role gets its own copy of what a YAML alias shares with other roles, and only the fitted
    values change: in a file read for rewriting, everything else keeps its layout and comments."""
    from cycleplan.workflows.rewriting import own, put

    roles = data.get("roles")
    if not isinstance(roles, dict):
        roles = data["roles"] = {}
    for name, fit in fits.items():
        if not isinstance(roles.get(name), dict):
            roles[name] = {}
        entry = own(roles, name)
        if fit.cycle is not None:
            median = _minutes(fit.cycle.median_min.value)
            cycle: dict[str, Any] = {
                "median_min": median,
                "p90_min": _bounded_p90(_minutes(fit.cycle.p90_min.value), median),
            }
            written = entry.get("cycle")
            if isinstance(written, dict) and "kind" in written:
                cycle = {"kind": "lognormal", **cycle}  # lognormal is the default kind: said where it was
            put(entry, "cycle", cycle)
        if fit.fresh_input is not None or fit.output is not None:
            tokens = _mapping(entry, "tokens")
            if fit.fresh_input is not None:
                put(tokens, "fresh_input", _spread_data(fit.fresh_input))
            if fit.output is not None:
                put(tokens, "output", _spread_data(fit.output))
        if fit.failure is not None:
            put(_mapping(entry, "failure"), "probability_per_cycle", round(fit.failure.probability.value, 6))
        if fit.models:
            _apply_models(entry, fit.models)
        if fit.loop is not None:
            _apply_loop(entry, fit.loop)
        elif fit.cycle is not None and fit.cycle_log_sd is not None and fit.cycle_dof is not None:
            put(
                entry,
                "posterior",
                {
                    "runs": max(len(runs), 1),
                    "dof": round(fit.cycle_dof, 6),
                    "log_sd": {"cycle": round(min(fit.cycle_log_sd, 10.0), 6)},
                },
            )
    return data


def _factor(estimate: Estimate) -> float:
    """A fitted factor as a model option takes it (above 0, at most 100)."""
    return min(max(round(estimate.value, 4), 1e-4), 100.0)


def _apply_models(entry: dict[str, Any], fits: Sequence[ModelFit]) -> None:
    """Put each fitted model's factors into its entry of the role's ``models`` list."""
    from cycleplan.workflows.rewriting import put

    listed = entry.get("models")
    if not isinstance(listed, list):
        return
    for fit in fits:
        for option in listed:
            if isinstance(option, dict) and option.get("model") == fit.model:
                if fit.duration_factor is not None:
                    put(option, "duration_factor", _factor(fit.duration_factor))
                if fit.tokens_factor is not None:
                    put(option, "tokens_factor", _factor(fit.tokens_factor))
                if fit.failure is not None:
                    put(option, "failure_probability", round(fit.failure.value, 6))


def _mapping(entry: dict[str, Any], key: str) -> dict[str, Any]:
    """The mapping at ``entry[key]``, an empty one put there when there is none."""
    value = entry.get(key)
    if not isinstance(value, dict):
        value = entry[key] = {}
    return value


def _apply_loop(entry: dict[str, Any], loop: LoopFit) -> None:
    """Put a fitted loop, its context, cache lifetime, duration model and posterior into a role."""
    from cycleplan.workflows.rewriting import put

    put(entry, "calls", loop.loop.model_dump(mode="json", exclude_none=True))
    tokens = _mapping(entry, "tokens")
    if loop.context_tokens is not None:
        put(tokens, "context_tokens", loop.context_tokens)
    put(tokens, "cache_ttl", loop.cache_ttl)
    if loop.cycle is not None:
        put(entry, "cycle", loop.cycle.model_dump(mode="json"))
    put(entry, "posterior", loop.posterior.model_dump(mode="json"))


HEADER = "# Calibrated by cycleplan from "
"""How the line a calibrated scenario opens with starts; calibrating it again replaces the line."""


def calibrated_yaml(
    calibration: Calibration, original_text: str | None = None, name: str = "<calibrated>"
) -> str:
    """The calibrated scenario as YAML: ``original_text`` (the prior's file) with the fitted values
    replaced and everything else as it was written (comments, block scalars, key order, quoting, flow
    lists; :mod:`cycleplan.workflows.rewriting`), or the prior scenario written out in full. Either opens with
    a comment naming the runs, in place of the one an earlier calibration wrote.

    Raises :class:`CalibrationError` if the result does not validate.
    """
    from cycleplan.core.loading import LoadError, parse_scenario
    from cycleplan.workflows.rewriting import RewriteError, ScenarioText, new_text

    header = (
        f"{HEADER}{counted(len(calibration.runs), 'run')} {', '.join(calibration.runs)}; "
        f"the prior counted as "
        f"{counted(calibration.prior_weight, 'cycle')}.\n"
    )
    if original_text is not None:
        if original_text.startswith(HEADER):
            original_text = original_text.partition("\n")[2]
        try:
            document = ScenarioText(original_text)
        except RewriteError as exc:
            raise CalibrationError(f"the scenario file cannot be rewritten: {exc}") from None
        if not isinstance(document.data, dict):
            raise CalibrationError("the scenario file is not a mapping of keys to values")
        apply_fits(document.data, calibration.roles, calibration.runs)
        text = header + document.text()
    else:
        data = calibration.scenario.model_dump(mode="json", exclude_defaults=True)
        text = header + new_text(apply_fits(data, calibration.roles, calibration.runs))
    try:
        parse_scenario(text, name)
    except LoadError as exc:
        raise CalibrationError(
            "the calibrated scenario does not validate: " + "; ".join(str(e) for e in exc.errors)
        ) from None
    return text


def timeline(trace: Sequence[Event]) -> tuple[tuple[str, str, int, int, float], ...]:
    """What identifies a run's work: each cycle attempt's task, action, number and end, from its start."""
    if not trace:
        return ()
    origin = trace[0].timestamp
    return tuple(
        (
            event.target_id,
            event.action,
            int(_number(event.metadata, "cycle")),
            int(_number(event.metadata, "attempt")),
            round(event.timestamp - origin, 3),
        )
        for event in trace
        if event.action == "cycle_completed"
    )


def distinct_runs(
    traces: Sequence[tuple[str, Sequence[Event]]],
) -> tuple[list[tuple[str, Sequence[Event]]], list[str]]:
    """``traces`` with runs whose timelines repeat an earlier run's left out, and a note per one left out:
    two snapshots of one run are one run's evidence, not two."""
    kept: list[tuple[str, Sequence[Event]]] = []
    first: dict[tuple[tuple[str, str, int, int, float], ...], str] = {}
    notes: list[str] = []
    for run, trace in traces:
        key = timeline(trace)
        if key and key in first:
            notes.append(
                f"run {run} has the same timeline as run {first[key]} ({counted(len(key), 'cycle')} at the "
                "same moments): it is a copy of that run, counted once"
            )
            continue
        first.setdefault(key, run)
        kept.append((run, trace))
    return kept, notes


def calibrate(
    traces: Sequence[tuple[str, Sequence[Event]]],
    prior: Scenario,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    role_map: Mapping[str, str] | None = None,
) -> Calibration:
    """Fit every role the traces (named ``(run id, trace)``) show, against ``prior``.

    Roles the traces use that ``prior`` lacks are left out with a note (rename them with ``role_map``).
    """
    if not prior_weight >= 0 or math.isinf(prior_weight):
        raise CalibrationError(f"the prior weight must be zero or more, got {prior_weight:g}")
    distinct, notes = distinct_runs(traces)
    seen: dict[str, RoleObservations] = {}
    for run, trace in distinct:
        observe(trace, prior, role_map, into=seen, run=run)
    known = set(prior.role_names())
    fits: dict[str, RoleFit] = {}
    for role, observed in seen.items():
        if role not in known:
            notes.append(
                f"role '{role}' ({counted(observed.attempts, 'cycle')}) is not in the scenario: left out; "
                f"map it onto one of {', '.join(sorted(known))} with --role {role}=ROLE"
            )
            continue
        fits[role] = fit_role(role, observed, prior, prior_weight)
    if not fits:
        raise CalibrationError(
            "no cycle of these runs belongs to a role of the scenario: nothing to calibrate"
            + ("; " + notes[0] if notes else "")
        )
    used = [run for run, _ in distinct]
    data = apply_fits(prior.model_dump(mode="json", exclude_defaults=True), fits, used)
    scenario = Scenario.model_validate(data)
    return Calibration(
        runs=used,
        prior_weight=prior_weight,
        roles=fits,
        notes=notes,
        scenario=scenario,
    )


def calibrate_runs(
    store: str | Path,
    run_ids: Sequence[str],
    prior: Scenario | None = None,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    role_map: Mapping[str, str] | None = None,
) -> Calibration:
    """Calibrate from runs of the run store at ``store`` (ids, or any reference
    :meth:`~cycleplan.store.runs.RunStore.resolve` takes; a run named twice counts once); the prior
    is ``prior``, else the first run's own scenario. Raises :class:`CalibrationError` for an unknown run
    or a store that cannot be read."""
    from cycleplan.core.model import Plan
    from cycleplan.executor.summary import scenario_trace
    from cycleplan.store.runs import RunStore, StoreError

    if not run_ids:
        raise CalibrationError("give at least one run id (see `cycleplan runs`)")
    if not Path(store).exists():
        raise CalibrationError(f"{store}: no run store here (pass --store PATH)")
    traces: list[tuple[str, list[Event]]] = []
    scenarios: list[Scenario] = []
    try:
        with RunStore(store, read_only=True) as runs:
            run_ids = list(dict.fromkeys(runs.resolve(ref) for ref in run_ids))
            for run_id in run_ids:
                record = runs.run(run_id)
                scale = float(record.options.get("time_scale", 1.0))
                traces.append((run_id, scenario_trace(runs.trace(run_id), scale)))
                scenarios.append(Plan.model_validate_json(record.plan_json).scenario)
    except StoreError as exc:
        raise CalibrationError(str(exc)) from None
    for run_id, trace in traces:
        if not any(event.action == "cycle_completed" for event in trace):
            raise CalibrationError(f"run {run_id} holds no completed cycle: nothing to calibrate from")
    notes: list[str] = []
    if prior is None:
        prior = scenarios[0]
        if any(other != prior for other in scenarios[1:]):
            notes.append(
                f"the runs hold different scenarios; the prior is run {run_ids[0]}'s (choose with --scenario)"
            )
    calibration = calibrate(traces, prior, prior_weight, role_map)
    return calibration.model_copy(update={"notes": notes + calibration.notes})
