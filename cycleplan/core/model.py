"""The vocabulary of cycleplan: the pydantic models that cross every module boundary.

Scenario (roles, resources, tasks, an optional template), Plan (lanes of planned tasks) and Event (the
ONE platform's coordination record) live here and nowhere else. Every model is frozen and forbids
unknown fields; field names carry their units (``duration_min``, ``cost_usd``). Structural checks are
pydantic's; the cross-reference checks of a scenario (unknown roles, dependency loops, waits nobody
emits...) live in :mod:`cycleplan.core.checks` and run from :class:`Scenario`'s validator, so a Scenario that
exists is a valid one. This module must not read files or import the planner, simulator or executor.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from numpy.random import Generator

    FloatArray = npt.NDArray[np.float64]

Z90 = 1.2815515655446004
"""The standard normal's 90th percentile (``statistics.NormalDist().inv_cdf(0.9)`` to the last bit but
one, kept as written so that every recorded prediction stays the same): a lognormal's sigma is
ln(p90 / median) / Z90."""

#: Upper bounds that keep hostile numbers out of the arithmetic (and out of memory).
MAX_CYCLES = 10_000
MAX_LANES = 1_000
MAX_MINUTES = 1e7
MAX_TOKENS = 10_000_000
MAX_SPREAD = 1_000
"""A lognormal's 90th percentile is at most this many times its median (its draws stay finite)."""


def _usable_name(name: str) -> str:
    """Refuse names that match the pattern but no backend can use as a git branch or a folder."""
    if ".." in name:
        raise ValueError(f"{name!r}: a name may not contain '..' (it is a git branch and a folder name)")
    if name.endswith("."):
        raise ValueError(f"{name!r}: a name may not end with '.' (it is a git branch and a folder name)")
    if name.lower().endswith(".lock"):
        raise ValueError(f"{name!r}: a name may not end with '.lock' (git refuses such branch names)")
    return name


Identifier = Annotated[
    str,
    Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    AfterValidator(_usable_name),
]
"""Names of roles, tasks, events, resources and race groups: letters, digits, ``_ . -``, usable as a
lane's git branch (``cycleplan/<run>/<lane>``) and folder name by every backend."""

STANDARD_ACTIONS = frozenset(
    {
        "run_started",
        "task_started",
        "cycle_completed",
        "task_complete",
        "task_failed",
        "task_cancelled",
        "progress_update",
        "run_resumed",
        "task_resumed",
        "run_interrupted",
        "run_complete",
        "forecast_updated",
    }
)
"""Event actions with a fixed meaning; any other action is the name of an event a task published, so no
task may emit (or wait for) an event by one of these names."""

Minutes = Annotated[float, Field(gt=0, le=MAX_MINUTES, allow_inf_nan=False)]
NonNegativeMinutes = Annotated[float, Field(ge=0, le=MAX_MINUTES, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class Frozen(BaseModel):
    """Base of every cycleplan model: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------------
# Cycle-duration distributions


class Duration(Frozen):
    """What every cycle-duration distribution provides, so that adding one touches this module only.

    Its draws come from a cycle's stream in a fixed layout (:func:`cycleplan.core.draws.draw_block`): a
    standard normal per cycle, then whatever :meth:`draw` takes from the stream itself (the gamma's draws),
    then, when :attr:`uses_uniform` (or the role can fail), two uniforms per cycle. :meth:`sample` turns them
    into minutes. :attr:`nominal_min` is what the planner and ideal mode use; :meth:`median_p90` is what
    calibration starts its fit from.
    """

    uses_uniform: ClassVar[bool] = False
    """Whether :meth:`sample` reads the cycle's second uniform."""

    @property
    def nominal_min(self) -> float:
        raise NotImplementedError

    def median_p90(self) -> tuple[float, float]:
        """The median and the 90th percentile, in minutes."""
        raise NotImplementedError

    def draw(self, rng: Generator, shape: tuple[int, ...]) -> FloatArray | None:
        """Draws of its own from the cycle's stream, after the normals (none unless it needs them)."""
        return None

    def sample(self, normal: FloatArray, drawn: FloatArray | None, uniform: FloatArray | None) -> FloatArray:
        """Minutes per cycle from the cycle's standard normal, its own draws and its uniform."""
        raise NotImplementedError

    def scaled(self, factor: float) -> Duration:
        """The same distribution with every duration ``factor`` times as long (its shape kept): every
        field in minutes (``*_min``) is multiplied."""
        fields = self.model_dump()
        for name, value in fields.items():
            if name.endswith("_min"):
                fields[name] = (
                    [each * factor for each in value] if isinstance(value, list) else value * factor
                )
        return type(self).model_validate(fields)


class Lognormal(Duration):
    """Lognormal cycle duration given by its median and 90th percentile (minutes).

    ``p90_min == median_min`` means no variance. This is the default shape: agent turns are positive and
    right-skewed.
    """

    kind: Literal["lognormal"] = "lognormal"
    median_min: Minutes
    p90_min: Minutes

    @model_validator(mode="after")
    def _p90_not_below_median(self) -> Lognormal:
        if self.p90_min < self.median_min:
            raise ValueError(
                f"p90_min ({self.p90_min:g}) is below median_min ({self.median_min:g}); "
                "the 90th percentile must be at least the median"
            )
        if self.p90_min > MAX_SPREAD * self.median_min:
            raise ValueError(
                f"p90_min ({self.p90_min:g}) is more than {MAX_SPREAD:,} times median_min "
                f"({self.median_min:g}): its draws would overflow; cycles that differ that much are "
                "different work: split the role, or give the durations as samples (kind: empirical)"
            )
        return self

    @property
    def sigma(self) -> float:
        """Standard deviation of the underlying normal: ln(p90/median) / z(0.9)."""
        return math.log(self.p90_min / self.median_min) / Z90

    @property
    def nominal_min(self) -> float:
        return self.median_min

    @property
    def mean_min(self) -> float:
        """The mean: the median times exp(sigma^2 / 2)."""
        return self.median_min * math.exp(self.sigma**2 / 2.0)

    def median_p90(self) -> tuple[float, float]:
        return self.median_min, self.p90_min

    def sample(self, normal: FloatArray, drawn: FloatArray | None, uniform: FloatArray | None) -> FloatArray:
        import numpy as np

        # median * exp(sigma z) rather than exp(mu + sigma z): with sigma 0 it is the median exactly.
        sampled: FloatArray = self.median_min * np.exp(self.sigma * normal)
        return sampled


class Gamma(Duration):
    """Gamma cycle duration given by its mean (minutes) and coefficient of variation."""

    kind: Literal["gamma"]
    mean_min: Minutes
    cv: float = Field(ge=0, le=100, allow_inf_nan=False)

    @property
    def nominal_min(self) -> float:
        return self.mean_min

    def median_p90(self) -> tuple[float, float]:
        if self.cv == 0:
            return self.mean_min, self.mean_min
        from scipy import stats

        shape = 1.0 / self.cv**2
        law = stats.gamma(shape, scale=self.mean_min / shape)
        return float(law.ppf(0.5)), float(law.ppf(0.9))

    def draw(self, rng: Generator, shape: tuple[int, ...]) -> FloatArray | None:
        import numpy as np

        if self.cv == 0:
            return np.full(shape, self.mean_min)
        alpha = 1.0 / self.cv**2
        drawn: FloatArray = rng.standard_gamma(alpha, shape) * (self.mean_min / alpha)
        return drawn

    def sample(self, normal: FloatArray, drawn: FloatArray | None, uniform: FloatArray | None) -> FloatArray:
        assert drawn is not None
        return drawn


class Fixed(Duration):
    """A cycle that always takes the same time."""

    kind: Literal["fixed"]
    value_min: Minutes

    @property
    def nominal_min(self) -> float:
        return self.value_min

    def median_p90(self) -> tuple[float, float]:
        return self.value_min, self.value_min

    def sample(self, normal: FloatArray, drawn: FloatArray | None, uniform: FloatArray | None) -> FloatArray:
        import numpy as np

        return np.full(normal.shape, self.value_min)


class Empirical(Duration):
    """Cycle durations resampled from observed values (minutes), e.g. written by calibration."""

    kind: Literal["empirical"]
    samples_min: list[Minutes] = Field(min_length=1, max_length=100_000)
    uses_uniform: ClassVar[bool] = True

    @property
    def nominal_min(self) -> float:
        ordered = sorted(self.samples_min)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    def median_p90(self) -> tuple[float, float]:
        import numpy as np

        median, p90 = np.quantile(np.asarray(self.samples_min, dtype=float), [0.5, 0.9])
        return float(median), float(p90)

    def sample(self, normal: FloatArray, drawn: FloatArray | None, uniform: FloatArray | None) -> FloatArray:
        import numpy as np

        assert uniform is not None
        samples = np.asarray(self.samples_min, dtype=float)
        index = np.minimum((uniform * len(samples)).astype(np.int64), len(samples) - 1)
        picked: FloatArray = samples[index]
        return picked


class Exponential(Duration):
    """Memoryless cycle duration given by its mean (minutes); mostly for analytic checks."""

    kind: Literal["exponential"]
    mean_min: Minutes
    uses_uniform: ClassVar[bool] = True

    @property
    def nominal_min(self) -> float:
        return self.mean_min

    def median_p90(self) -> tuple[float, float]:
        return self.mean_min * math.log(2.0), self.mean_min * math.log(10.0)

    def sample(self, normal: FloatArray, drawn: FloatArray | None, uniform: FloatArray | None) -> FloatArray:
        import numpy as np

        assert uniform is not None
        sampled: FloatArray = -self.mean_min * np.log1p(-uniform)
        return sampled


def _duration_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "lognormal"))
    return str(getattr(value, "kind", "lognormal"))


CycleDuration = Annotated[
    Annotated[Lognormal, Tag("lognormal")]
    | Annotated[Gamma, Tag("gamma")]
    | Annotated[Fixed, Tag("fixed")]
    | Annotated[Empirical, Tag("empirical")]
    | Annotated[Exponential, Tag("exponential")],
    Discriminator(
        _duration_kind,
        custom_error_type="unknown_distribution",
        custom_error_message="kind must be one of lognormal, gamma, fixed, empirical, exponential",
    ),
]
"""One cycle's duration. ``nominal_min`` (median for lognormal and empirical, mean for gamma and
exponential, the value for fixed) is what the planner and ideal mode use."""


# --------------------------------------------------------------------------------------------------
# Role: a kind of agent and its stochastic model


class Spread(Frozen):
    """A positive quantity given by median and 90th percentile (lognormal)."""

    median: Tokens
    p90: Tokens

    @property
    def mean(self) -> float:
        """The lognormal's mean: the median times exp(sigma^2 / 2)."""
        if self.median == 0:
            return 0.0
        return self.median * math.exp((math.log(self.p90 / self.median) / Z90) ** 2 / 2.0)

    @model_validator(mode="after")
    def _p90_not_below_median(self) -> Spread:
        if self.p90 < self.median:
            raise ValueError(f"p90 ({self.p90}) is below median ({self.median})")
        if self.median > 0 and self.p90 > MAX_SPREAD * self.median:
            raise ValueError(
                f"p90 ({self.p90:,}) is more than {MAX_SPREAD:,} times the median ({self.median:,}): its "
                "draws would overflow; raise the median"
            )
        return self


class TokenModel(Frozen):
    """Tokens an agent moves per task and per cycle.

    Defaults follow the ONE template's own figure: under 3,000 tokens of fresh work per cycle, on top of
    the context loaded once per task (system prompt + shared specification, cacheable) and the
    conversation history that every later cycle reads again.
    """

    context_tokens: Tokens = 12_000
    history_growth: float = Field(default=1.0, ge=0, le=10, allow_inf_nan=False)
    """Share of each cycle's fresh input and output that stays in the conversation for later cycles."""
    fresh_input: Spread = Spread(median=1_200, p90=2_400)
    output: Spread = Spread(median=800, p90=1_800)
    cache: bool = True
    """Send the context as a cached prefix (cache writes 1.25x, reads 0.1x the base input price)."""
    cache_ttl: Literal["5m", "1h"] = "5m"
    """How long a cache entry lives: the 5-minute cache (writes 1.25x input) or the 1-hour cache (writes
    2x input). Claude Code writes to the 1-hour cache on some plans."""


class Compaction(Frozen):
    """When an agent's context grows past ``threshold_tokens`` it is compacted: one more call reads the
    whole context and writes a summary (``output_tokens`` of output), taking ``minutes``; the context
    then holds the role's ``context_tokens`` and ``summary_tokens`` (the summary and what the agent reads
    back in), which the next call writes to the cache."""

    threshold_tokens: int = Field(ge=1, le=MAX_TOKENS)
    summary_tokens: Tokens = 15_000
    output_tokens: Tokens = 4_000
    minutes: NonNegativeMinutes = 1.0


class AgentLoop(Frozen):
    """A cycle as the loop of Messages API calls a real agent turn makes.

    Each call reads the context cached so far (at 0.1x input), writes what is new since the last call to
    the cache (``growth``: tool results and the model's own output that stay in the context), and produces
    ``output``. The context carries over from cycle to cycle of a task and starts from the role's
    ``context_tokens`` (system prompt, tools, shared specification), which the task's first call writes.
    ``per_cycle``, ``growth`` and ``output`` are lognormal (median and 90th percentile); ``growth``,
    ``output`` and ``minutes`` are per call. With ``minutes`` given, a cycle lasts as long as its calls (and
    any compaction); without, its duration is drawn from the role's ``cycle`` as before. With a loop, a
    cycle's tokens come from its calls: the token model's ``fresh_input``, ``output`` and
    ``history_growth`` are not used.
    """

    per_cycle: Spread
    """API calls per cycle."""
    growth: Spread
    """Tokens each call adds to the context (and writes to the cache)."""
    output: Spread
    """Output tokens per call."""
    minutes: Lognormal | None = None
    """Minutes per call: the model's latency plus the tools it runs before the next call."""
    compaction: Compaction | None = None

    @model_validator(mode="after")
    def _at_least_one_call(self) -> AgentLoop:
        if self.per_cycle.median < 1:
            raise ValueError("per_cycle.median must be at least 1: a cycle makes at least one call")
        return self


PosteriorParameter = Literal[
    "cycle",
    "tokens.fresh_input",
    "tokens.output",
    "calls.per_cycle",
    "calls.growth",
    "calls.output",
    "calls.minutes",
]
"""The medians a posterior may leave uncertain: the cycle duration's, each token spread's, each loop's."""


class Posterior(Frozen):
    """How sure a calibration is of a role's medians, so that a prediction from few runs is less sure.

    For each parameter, the natural logarithm of its median is off by ``log_sd`` times a Student t draw
    with ``dof`` degrees of freedom. ``simulate`` draws one such factor per replication, role and
    parameter (the posterior predictive): a role fitted from 4 runs gives wider bands than one fitted from
    400. Written by ``cycleplan calibrate``; leave it out for a model taken as certain.
    """

    runs: int = Field(ge=1, le=1_000_000)
    """The runs the fit rests on."""
    dof: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    log_sd: dict[PosteriorParameter, float] = Field(default_factory=dict)

    @field_validator("log_sd")
    @classmethod
    def _spreads_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, spread in value.items():
            if not (0.0 <= spread <= 10.0):
                raise ValueError(f"{name}: log_sd must be from 0 to 10, got {spread:g}")
        return value


DEFAULT_FINAL_EXIT_CODES = (126, 127)
"""Exit statuses a shell gives a command it cannot execute (126) or cannot find (127): another attempt
would end the same way, so ``--agent command`` does not retry them unless told otherwise."""


def _exit_statuses(value: tuple[int, ...]) -> tuple[int, ...]:
    for status in value:
        if not 1 <= status <= 255:
            raise ValueError(
                f"{status} is not a failing exit status: give exit statuses from 1 to 255 "
                "(0 is success; a command killed by a signal is always retried)"
            )
    return value


ExitStatuses = Annotated[
    tuple[Annotated[int, Field(strict=True)], ...], Field(max_length=255), AfterValidator(_exit_statuses)
]
"""Exit statuses of a command, each from 1 to 255."""

Retries = Annotated[int, Field(ge=0, le=100, strict=True)]
"""A count of retries: a whole number (``true`` is not one), from 0 to 100."""

RETRIES_HELP = (
    "Retries a failed cycle gets before its task fails for good (a cycle takes at most retries + 1 "
    "attempts). `execute` retries after a backoff that doubles (about 5 s, then 10 s, ...); `simulate` "
    "draws a failure, and a retry, per attempt. 0: the first failure is final."
)
FINAL_EXIT_CODES_HELP = (
    "Exit statuses of a task's `command` (`execute --agent command`) that fail the task at once, "
    "without retries: another attempt would exit the same way (a usage error, a failing test suite). "
    "Any other non-zero status, and a command killed by a signal, is retried. A list given replaces "
    "the default [126, 127] (the shell's 'cannot execute' and 'not found'); [] retries every failure."
)


class FailureModel(Frozen):
    """Per-cycle failures and what happens when a task runs out of retries."""

    probability_per_cycle: Probability = 0.0
    max_retries: Retries = Field(
        default=2,
        description=f"{RETRIES_HELP} A task's own `retries` overrides this for that task.",
    )
    cancel_parallel: bool = False
    """When a task fails for good, also cancel the running tasks of the same role."""
    final_exit_codes: ExitStatuses = Field(
        default=DEFAULT_FINAL_EXIT_CODES,
        description=f"{FINAL_EXIT_CODES_HELP} A task's own `final_exit_codes` overrides this for that task.",
    )


class SyncCost(Frozen):
    """What consuming one awaited event costs the waiting task, on top of the wait itself.

    Charged per event a task ``waits`` for, whether or not it had to wait: ``minutes`` of the lane's time
    spent taking the handoff in (reading the other side's types, rebasing), and ``handoff_tokens`` of
    uncached input added to the next cycle. Ideal mode charges nothing.
    """

    minutes: NonNegativeMinutes = 0.0
    handoff_tokens: Tokens = 0


DEFAULT_CYCLE = Lognormal(median_min=3.0, p90_min=5.0)
"""The ONE template's "a cycle takes 2-5 minutes": median 3, 90% of cycles under 5."""

DEFAULT_MODEL = "claude-sonnet-4-5"


def _scaled_spread(spread: Spread, factor: float) -> Spread:
    return Spread(median=round(spread.median * factor), p90=round(spread.p90 * factor))


class ModelOption(Frozen):
    """A model a role may run on instead of its own, and how its cycles differ from the role's model's.

    The price comes from the price table (or the scenario's ``prices:``), like the role's own model's. The
    factors are relative to the role as written (calibrated or not): a model twice as fast per turn has
    ``duration_factor: 0.5``; one that writes a third more has ``tokens_factor: 1.33``. ``optimize``
    chooses among the role's model and these.
    """

    model: str = Field(min_length=1, max_length=200)
    duration_factor: float = Field(default=1.0, gt=0, le=100, allow_inf_nan=False)
    """Multiplies every cycle's (and every call's) minutes."""
    tokens_factor: float = Field(default=1.0, gt=0, le=100, allow_inf_nan=False)
    """Multiplies the tokens a cycle reads fresh and writes (and a loop's growth and output per call)."""
    failure_probability: Probability | None = None
    """Per-cycle failure probability on this model (None: the role's own)."""


class Role(Frozen):
    """A kind of agent: how many lanes it has, its model, and how its cycles behave: their duration, the
    tokens they move (as one request, or as an agent loop of calls), their failures, what consuming an
    event costs them, and how sure a calibration is of all that (``posterior``)."""

    lanes: int = Field(default=1, ge=1, le=MAX_LANES)
    model: str = Field(default=DEFAULT_MODEL, min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    system_prompt: str = Field(default="", max_length=200_000)
    cycle: CycleDuration = DEFAULT_CYCLE
    tokens: TokenModel = TokenModel()
    calls: AgentLoop | None = None
    """Each cycle as a loop of API calls (None: one request per cycle, the token model's own)."""
    failure: FailureModel = FailureModel()
    sync: SyncCost = SyncCost()
    posterior: Posterior | None = None
    models: list[ModelOption] = Field(default_factory=list, max_length=100)
    """Other models this role may run on (``optimize`` chooses among ``model`` and these); empty: the
    role's own model only. Every other command runs the role's ``model``."""

    @model_validator(mode="after")
    def _compaction_leaves_room(self) -> Role:
        compaction = None if self.calls is None else self.calls.compaction
        if compaction is None:
            return self
        after = self.tokens.context_tokens + compaction.summary_tokens
        if after >= compaction.threshold_tokens:
            raise ValueError(
                f"calls.compaction.threshold_tokens ({compaction.threshold_tokens:,}) must be above "
                f"tokens.context_tokens + summary_tokens ({after:,}): a compacted context would have to "
                "compact again at once"
            )
        return self

    def model_choices(self) -> list[str]:
        """The models this role may run on: its own first, then its ``models``."""
        return [self.model, *(option.model for option in self.models if option.model != self.model)]

    def with_model(self, option: ModelOption | str) -> Role:
        """This role on another model: ``option``'s factors applied to its durations, tokens and failures
        (a model name: the listed option of that name, or the role's own model as it is). The result lists
        no other models."""
        if isinstance(option, str):
            if option == self.model:
                return self.model_copy(update={"models": []})
            found = [each for each in self.models if each.model == option]
            if not found:
                raise ValueError(
                    f"'{option}' is not among this role's models: {', '.join(self.model_choices())}"
                )
            option = found[0]
        tokens = self.tokens.model_copy(
            update={
                "fresh_input": _scaled_spread(self.tokens.fresh_input, option.tokens_factor),
                "output": _scaled_spread(self.tokens.output, option.tokens_factor),
            }
        )
        calls = self.calls
        if calls is not None:
            calls = calls.model_copy(
                update={
                    "growth": _scaled_spread(calls.growth, option.tokens_factor),
                    "output": _scaled_spread(calls.output, option.tokens_factor),
                    "minutes": None
                    if calls.minutes is None
                    else calls.minutes.scaled(option.duration_factor),
                }
            )
        failure = self.failure
        if option.failure_probability is not None:
            failure = failure.model_copy(update={"probability_per_cycle": option.failure_probability})
        return Role.model_validate(
            {
                **self.model_dump(),
                "model": option.model,
                "cycle": self.cycle.scaled(option.duration_factor).model_dump(),
                "tokens": tokens.model_dump(),
                "calls": None if calls is None else calls.model_dump(),
                "failure": failure.model_dump(),
                "models": [],
            }
        )

    @property
    def nominal_cycle_min(self) -> float:
        """The minutes the planner and ideal mode give one cycle: the loop's median calls at its mean
        minutes per call (a cycle's many calls average out) when the loop times its calls, else the cycle
        duration's nominal value."""
        if self.calls is not None and self.calls.minutes is not None:
            return self.calls.per_cycle.median * self.calls.minutes.mean_min
        return self.cycle.nominal_min


class Resource(Frozen):
    """A renewable resource shared by tasks (a staging server, one human reviewer)."""

    capacity: int = Field(ge=1, le=MAX_LANES)
    description: str = Field(default="", max_length=10_000)


# --------------------------------------------------------------------------------------------------
# Task and template


class Spawn(Frozen):
    """Where a subagent comes from: the task that spawns it, and the cycle at whose start it does."""

    task: Identifier
    cycle: int = Field(ge=1, le=MAX_CYCLES)


class Task(Frozen):
    """One unit of planned work, done by one lane of ``role`` in ``cycles`` agent turns.

    ``waits`` maps an event name to the cycle (1-based) that cannot start before the event arrives; the
    lane is held while waiting. ``emits`` maps an event name to the cycle after which it is published.

    A task with ``spawned_by`` is a subagent (fork-join): when its parent reaches the start of cycle
    ``spawned_by.cycle`` (after that cycle's waits and handoff), the subagent starts at once on a lane of
    its own, from its own prompt; the parent's lane is blocked (neither working nor waiting) until the last
    subagent spawned there returns, and then the parent works the cycle. A subagent that fails returns
    its failure to its parent, which goes on. Subagents take no part in ``after``, events, races or shared
    resources, and spawn no subagents of their own.
    """

    id: Identifier
    role: Identifier
    cycles: int = Field(ge=1, le=MAX_CYCLES)
    after: list[Identifier] = Field(default_factory=list, max_length=1_000)
    waits: dict[Identifier, int] = Field(default_factory=dict, max_length=100)
    emits: dict[Identifier, int] = Field(default_factory=dict, max_length=100)
    race: Identifier | None = None
    requires: dict[Identifier, int] = Field(default_factory=dict, max_length=100)
    duration_multiplier: float = Field(default=1.0, gt=0, le=1_000, allow_inf_nan=False)
    description: str = Field(default="", max_length=10_000)
    phase: str = Field(default="", max_length=200)
    prompt: str = Field(
        default="",
        max_length=200_000,
        description="What the agent is asked to do (anthropic, claude-code, emulated); when empty, the "
        "task's description, else its id.",
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=1_000,
        description="What `execute --agent command` runs for each cycle of the task: an argument list, run "
        "without a shell (e.g. [python3, scripts/migrate.py]) in the working directory (the lane's worktree "
        "with --worktrees). Exit status 0 is a cycle done; any other a failed attempt, retried unless it "
        "is one of `final_exit_codes`. The command learns where it is from CYCLEPLAN_RUN_ID, "
        "CYCLEPLAN_TASK, CYCLEPLAN_LANE, CYCLEPLAN_ROLE, CYCLEPLAN_CYCLE, CYCLEPLAN_CYCLES, "
        "CYCLEPLAN_ATTEMPT and CYCLEPLAN_ARTIFACTS (a folder of its own to write to); of the executor's "
        "environment it gets PATH, HOME, the locale and the like, and what `--pass-env NAME` names. Its "
        "standard output and error are kept with the run. Other agents ignore it.",
    )
    shell: bool = Field(
        default=False,
        description="Run `command` with /bin/sh -c: its first item is the shell text, the others become "
        "$0, $1, ...",
    )
    retries: Retries | None = Field(
        default=None,
        description=f"{RETRIES_HELP} Overrides the role's `failure.max_retries` (default 2) for this task.",
    )
    final_exit_codes: ExitStatuses | None = Field(
        default=None,
        description=f"{FINAL_EXIT_CODES_HELP} Overrides the role's `failure.final_exit_codes` for this task.",
    )
    template_cycles: tuple[int, int] | None = None
    """Where the task sits in its template (first and last template cycle), when it comes from one."""
    cycle_models: dict[int, str] = Field(default_factory=dict, max_length=MAX_CYCLES)
    """Cycles that run on another model than the role's (cycle number -> model id), e.g. a turn a skill
    moved to a smaller model."""
    spawned_by: Spawn | None = None
    """This task is a subagent of ``spawned_by.task``, spawned at the start of its ``spawned_by.cycle``."""
    timeout_min: Minutes | None = None
    """The executor fails the task when its attempts (and backoffs) take longer than this, in scenario
    minutes; time held waiting for events does not count. None: no limit."""

    @field_validator("waits", "emits")
    @classmethod
    def _cycle_numbers_positive(cls, value: dict[str, int]) -> dict[str, int]:
        for event, cycle in value.items():
            if event in STANDARD_ACTIONS:
                raise ValueError(
                    f"{event}: the executor records its own events under this name; rename the event"
                )
            if cycle < 1:
                raise ValueError(f"{event}: cycle numbers start at 1, got {cycle}")
        return value

    @field_validator("command")
    @classmethod
    def _command_runnable(cls, value: list[str] | None) -> list[str] | None:
        for index, argument in enumerate(value or []):
            if "\x00" in argument:
                raise ValueError(f"argument {index} holds a NUL character, which no command can be given")
        return value

    @field_validator("cycle_models")
    @classmethod
    def _cycle_models_named(cls, value: dict[int, str]) -> dict[int, str]:
        for cycle, model in value.items():
            if cycle < 1:
                raise ValueError(f"cycle numbers start at 1, got {cycle}")
            if not model or len(model) > 200:
                raise ValueError(f"cycle {cycle}: a model id has 1 to 200 characters")
        return value

    def max_retries(self, role: Role) -> int:
        """Retries a failed cycle of this task gets when ``role`` does it: its own ``retries``, else the
        role's ``failure.max_retries``."""
        return role.failure.max_retries if self.retries is None else self.retries

    def final_exit_statuses(self, role: Role) -> frozenset[int]:
        """Exit statuses of its command that fail this task at once: its own ``final_exit_codes``, else
        the role's."""
        given = role.failure.final_exit_codes if self.final_exit_codes is None else self.final_exit_codes
        return frozenset(given)

    def model_of(self, role: Role, cycle: int) -> str:
        """The model cycle ``cycle`` (1-based) runs on."""
        return self.cycle_models.get(cycle, role.model)

    @field_validator("requires")
    @classmethod
    def _units_positive(cls, value: dict[str, int]) -> dict[str, int]:
        for resource, units in value.items():
            if units < 1:
                raise ValueError(f"{resource}: a task requires at least 1 unit, got {units}")
        return value


class Phase(Frozen):
    """A stretch of a template's cycles with a name (e.g. "Backend Schema & Services")."""

    name: str
    first_cycle: int = Field(ge=1)
    last_cycle: int = Field(ge=1)


class Template(Frozen):
    """A reusable plan of work: phases, and the tasks that carry them out."""

    name: Identifier
    description: str = ""
    claim: str = ""
    phases: list[Phase] = Field(default_factory=list)
    tasks: list[Task] = Field(min_length=1)

    @property
    def cycles(self) -> int:
        return sum(task.cycles for task in self.tasks)


# --------------------------------------------------------------------------------------------------
# Prices and rate limits

UsdPerMtok = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
"""A price in US dollars per million tokens."""


class ModelPrice(Frozen):
    """What one model's tokens cost, in US dollars per million tokens.

    Cache writes default to 1.25x the input price for the 5-minute cache and 2x for the 1-hour cache;
    cache reads to 0.1x.
    """

    input_per_mtok: UsdPerMtok
    output_per_mtok: UsdPerMtok
    cache_write_per_mtok: UsdPerMtok | None = None
    cache_write_1h_per_mtok: UsdPerMtok | None = None
    cache_read_per_mtok: UsdPerMtok | None = None

    @property
    def cache_write(self) -> float:
        """USD per million cache-write tokens (5-minute cache)."""
        return self.input_per_mtok * 1.25 if self.cache_write_per_mtok is None else self.cache_write_per_mtok

    @property
    def cache_write_1h(self) -> float:
        """USD per million cache-write tokens of the 1-hour cache (2x input unless given)."""
        given = self.cache_write_1h_per_mtok
        return self.input_per_mtok * 2.0 if given is None else given

    def for_ttl(self, ttl: str) -> ModelPrice:
        """These prices as a role writing to the ``ttl`` cache pays them: its writes at that cache's
        price."""
        if ttl == "5m":
            return self
        return self.model_copy(update={"cache_write_per_mtok": self.cache_write_1h})

    @property
    def cache_read(self) -> float:
        """USD per million cache-read tokens."""
        return self.input_per_mtok * 0.1 if self.cache_read_per_mtok is None else self.cache_read_per_mtok


PerMinute = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]


class RateLimits(Frozen):
    """The organisation's API rate limits, shared by every agent (token buckets refilled per minute).

    Uncached input and cache writes count against ``input_tokens_per_min``; cache reads do not. A limit
    left out does not bind.
    """

    requests_per_min: PerMinute | None = None
    input_tokens_per_min: PerMinute | None = None
    output_tokens_per_min: PerMinute | None = None


# --------------------------------------------------------------------------------------------------
# Scenario


class Claim(Frozen):
    """What a guide promises for a scenario, kept beside our prediction of it."""

    sequential_min: Minutes
    parallel_min: Minutes
    source: str = Field(default="", max_length=1_000)

    @property
    def speedup(self) -> float:
        return self.sequential_min / self.parallel_min


class Scenario(Frozen):
    """A piece of work to plan: roles with lanes, resources, and tasks (listed and/or from a template).

    Tasks listed here are added to the template's; a listed task whose id is a template task's replaces
    it. Roles that tasks use but ``roles`` leaves out get one lane and the default model.
    """

    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=10_000)
    template: Identifier | None = None
    spec: str = Field(default="", max_length=1_000_000)
    """The shared specification every agent receives (feature, ontology, acceptance criteria)."""
    claim: Claim | None = None
    max_parallel: int | None = Field(default=None, ge=1, le=MAX_LANES)
    roles: dict[Identifier, Role] = Field(default_factory=dict, max_length=1_000)
    resources: dict[Identifier, Resource] = Field(default_factory=dict, max_length=1_000)
    tasks: list[Task] = Field(default_factory=list, max_length=10_000)
    prices: dict[str, ModelPrice] = Field(default_factory=dict, max_length=1_000)
    """Prices per model id, overriding the built-in dated table (:mod:`cycleplan.core.prices`)."""
    rate_limits: RateLimits | None = None
    """Organisation-wide API rate limits the simulator applies (none when left out)."""
    run_timeout_min: Minutes | None = None
    """The executor cancels what is left of a run after this many scenario minutes. None: no limit."""

    @model_validator(mode="after")
    def _references_hold(self) -> Scenario:
        from cycleplan.core.checks import ScenarioProblems, scenario_problems

        problems = scenario_problems(self)
        if problems:
            raise ScenarioProblems(problems)
        return self

    def all_tasks(self) -> list[Task]:
        """The tasks to plan: the template's (with listed replacements), then the listed new ones."""
        from cycleplan.core.templates import get_template

        if self.template is None:
            return list(self.tasks)
        listed = {task.id: task for task in self.tasks}
        base = get_template(self.template).tasks
        merged = [listed.pop(task.id, task) for task in base]
        return merged + [task for task in self.tasks if task.id in listed]

    def subagents(self) -> dict[str, dict[int, list[Task]]]:
        """Each task that spawns subagents -> the cycle it spawns them at -> those subagents, in order."""
        found: dict[str, dict[int, list[Task]]] = {}
        for task in self.all_tasks():
            if task.spawned_by is not None:
                found.setdefault(task.spawned_by.task, {}).setdefault(task.spawned_by.cycle, []).append(task)
        return found

    def role(self, name: str) -> Role:
        """The role called ``name``, or the default role when the scenario does not list it."""
        return self.roles.get(name, _DEFAULT_ROLE)

    def role_names(self) -> list[str]:
        """Every role in use: listed ones first, then those only tasks mention, in task order."""
        names = list(self.roles)
        for task in self.all_tasks():
            if task.role not in names:
                names.append(task.role)
        return names

    def with_lanes(self, lanes: dict[str, int]) -> Scenario:
        """A copy with the lane counts of some roles changed (``--lanes backend=2``)."""
        roles = {name: self.role(name) for name in self.role_names()}
        for name, count in lanes.items():
            roles[name] = roles.get(name, _DEFAULT_ROLE).model_copy(update={"lanes": count})
        return Scenario.model_validate(
            {**self.model_dump(), "roles": {k: v.model_dump() for k, v in roles.items()}}
        )

    def configured(self, lanes: dict[str, int], models: dict[str, str]) -> Scenario:
        """A plain scenario: the lanes of some roles set, some roles moved to one of their models
        (:meth:`Role.with_model`), and no role listing other models any more."""
        roles = {name: self.role(name) for name in self.role_names()}
        for name, role in roles.items():
            chosen = role.with_model(models.get(name, role.model))
            roles[name] = chosen.model_copy(update={"lanes": lanes.get(name, chosen.lanes)})
        return Scenario.model_validate(
            {**self.model_dump(), "roles": {k: v.model_dump() for k, v in roles.items()}}
        )


_DEFAULT_ROLE = Role()


# --------------------------------------------------------------------------------------------------
# Plan


class PlannedTask(Frozen):
    """One task's place on a lane: when it starts and finishes, in expected minutes and in wall cycles."""

    task: str
    role: str
    cycles: int
    start_min: float
    finish_min: float
    start_cycle: float
    finish_cycle: float
    wait_min: float = 0.0
    """Planned time the lane is held waiting for events."""
    lane_start_min: float | None = None
    """When the lane is taken: before ``start_min`` when the task waits for an event before its first
    cycle (the lane is held meanwhile). None in plans that do not record it."""
    lane_start_cycle: float | None = None
    """``lane_start_min`` in wall cycles."""


class SyncPoint(Frozen):
    """When the plan expects an event to be emitted, in expected minutes and in wall cycles."""

    event: str
    task: str
    """The task that emits it."""
    after_cycle: int
    at_min: float
    at_cycle: float
    waiters: list[str]
    """Tasks that wait for it."""


LaneName = Annotated[
    str,
    Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    AfterValidator(_usable_name),
]
"""A lane's name (``<role>-<n>``, ``<lane>-sub<n>``): a name as :data:`Identifier`, a little longer."""


class Lane(Frozen):
    """One agent instance and the tasks it runs, in order."""

    lane: LaneName
    role: str | None
    tasks: list[PlannedTask]


class Plan(Frozen):
    """The planner's output, and the contract handed to the simulator and the executor."""

    scenario: Scenario
    algorithm: str
    rule: str | None = None
    makespan_min: float
    sequential_min: float
    speedup: float
    lower_bound_min: float
    lower_bounds: dict[str, float]
    """Each bound by name (``critical_path``, ``role:backend``, ``resource:staging``, ``max_parallel``)."""
    critical_path: list[str]
    wall_cycles: float
    template_cycles: int
    lanes: list[Lane]
    sync_points: list[SyncPoint] = Field(default_factory=list)
    """Every event some task emits, in the order the plan expects them."""
    proven_optimal: bool | None = None
    """True when no plan can have a shorter makespan (an exact algorithm proved it, or the makespan meets
    a lower bound); False when an exact algorithm stopped before proving it; None when unknown."""

    @model_validator(mode="after")
    def _places_its_scenario(self) -> Plan:
        from cycleplan.core.checks import ScenarioProblems, plan_problems

        problems = plan_problems(self)
        if problems:
            raise ScenarioProblems(problems)
        return self

    def planned_tasks(self) -> Iterator[tuple[Lane, PlannedTask]]:
        for lane in self.lanes:
            for planned in lane.tasks:
                yield lane, planned

    @property
    def cycle_map(self) -> str:
        """The compressed cycle map, e.g. ``100 template cycles -> 65 wall cycles`` (``34 cycles -> 20 wall
        cycles`` for a scenario that names no template)."""
        from cycleplan.core.wording import counted

        kind = "template cycle" if self.scenario.template is not None else "cycle"
        return f"{counted(self.template_cycles, kind)} -> {counted(self.wall_cycles, 'wall cycle')}"


# --------------------------------------------------------------------------------------------------
# Event


class Event(BaseModel):
    """The ONE platform's coordination record, field for field.

    ``timestamp`` is in milliseconds (since the epoch for executed runs, since the run's start for
    simulated ones). ``metadata["action"]`` names what happened: run_started, task_started,
    cycle_completed, an emitted event name, task_complete, task_failed, task_cancelled, progress_update,
    run_complete.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: Literal["task_event"] = "task_event"
    actor_id: str = Field(alias="actorId")
    target_id: str = Field(alias="targetId")
    group_id: str = Field(alias="groupId")
    timestamp: float
    metadata: dict[str, Any]

    @field_validator("metadata")
    @classmethod
    def _has_action(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("action"), str):
            raise ValueError("metadata needs an 'action' string")
        return value

    @property
    def action(self) -> str:
        return str(self.metadata["action"])
