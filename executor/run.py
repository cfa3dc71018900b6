"""A run's lifecycle: start a plan, or pick a killed run up again, and end with its summary.

:func:`execute` asks the backend's pre-flight (:func:`.backend.preflight`: a key, a reachable API, a
``claude`` to run, a command on every task) before it writes anything, so a run that cannot go leaves no
run folder, store row or lock behind; then it records a new run (its plan and options) in the store,
starts the backend, runs the :class:`~cycleplan.executor.orchestrator.Orchestrator` and returns a
:class:`RunResult`. :func:`resume` reads a run's plan, options and events back, asks the same pre-flight
before it takes the run's lease, stops the agent processes a killed or interrupted executor
left behind, and runs what is left: tasks that completed are not run again, a task that was running
continues after its last completed cycle. ``resume`` refuses a run whose stored trace is damaged
(:meth:`~cycleplan.store.runs.RunStore.check`). Ctrl-C (or SIGTERM) stops the running agents, records
the attempts it cut short and ``run_interrupted``, and leaves the run ``interrupted``, not over:
``resume`` continues it as it would a killed run. Errors meant for the user are :class:`ExecutionError`
with a one-line message.

One executor writes a run at a time, by the run's lease in the store (:mod:`.store` checks it in the
transaction of every write):

- ``execute`` takes the lease (epoch 1) in the transaction that records the run; ``resume`` takes it
  before it reads, kills or runs anything.
- While it works, the executor renews the lease every sixth of its length
  (:data:`~cycleplan.store.runs.LEASE_S`, 30 s; ``CYCLEPLAN_LEASE_S``), from a task of its event
  loop: one small transaction every 5 s, nothing per event. At the end, however it ends, it releases it.
- A resume while the lease is live is refused (:class:`ExecutionError`, exit status 2) with the owner's
  pid and host and when the lease expires; the run is left alone, agents and all. The lease is dead
  once expired, released, or held by a pid that is provably gone (same host, boot and pid namespace:
  ``kill -9`` need not wait). Then the newcomer takes it with the epoch one higher, and only then stops
  the agents the store says the old executor left.
- An executor that finds its lease taken over (its next write, or its next renewal, names a newer epoch)
  stops at once with :class:`RunTakenOverError` (exit status 3): it records nothing more, and it kills
  nothing it did not start itself (no processes found by their marks, none from the store's list: they
  may be the new owner's). The new owner has stopped the agents it had started before the take-over.

The lock file in the run's folder remains, for runs stored before leases; it guarantees nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from pydantic import Field, field_validator

from cycleplan.core.model import Event, Frozen, Plan
from cycleplan.core.redaction import find_secret
from cycleplan.executor import events as ev
from cycleplan.executor.backend import (
    AGENTS,
    BackendOptions,
    BackendUnavailableError,
    make_backend,
    preflight,
)
from cycleplan.executor.clock import Clock
from cycleplan.executor.guards import DEFAULT_RISK, EXIT_GUARD, Forecaster, Guards
from cycleplan.executor.orchestrator import Orchestrator, Policy
from cycleplan.executor.processes import ProcessRegistry, kill_orphans
from cycleplan.executor.replay import replay
from cycleplan.executor.secrets import redact, secret_values
from cycleplan.executor.summary import run_summary
from cycleplan.store.runs import (
    DEFAULT_STORE,
    LeaseError,
    LeaseLostError,
    RunStore,
    StoreError,
)

Progress = Literal["auto", "live", "plain", "none"]


class LiveView(Protocol):
    """What redraws a run in place on a terminal while it goes (drawn by the presentation layer, e.g.
    :class:`cycleplan.present.live.LiveTable`): it observes every event between ``start`` and ``stop``."""

    def __call__(self, event: Event) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


LiveFactory = Callable[[Orchestrator, TextIO], LiveView]
"""Makes the live view of a run from its orchestrator and the stream to draw on. ``progress="live"`` (and
``"auto"`` on a terminal) draws with it; without one, progress is written as plain lines."""

EXIT_CODES = {"complete": 0, "failed": 1, "timeout": 1, "interrupted": 130}
"""Exit status by how a run ended; a run a guard stopped (budget, deadline) exits
:data:`~cycleplan.executor.guards.EXIT_GUARD` (4)."""


class ExecutionError(Exception):
    """Something the user must fix before a run can go (its message is one line)."""

    exit_code = 2


class RunTakenOverError(ExecutionError):
    """This executor's lease on its run expired and another executor took the run over: this one stopped
    at once, recorded nothing more, and stopped no process but its own agents (exit status 3)."""

    exit_code = 3


class ExecuteOptions(Frozen):
    """How to run a plan; stored with the run so that ``--resume`` runs it the same way."""

    agent: str
    """One of :data:`.backend.AGENTS`."""
    time_scale: float = Field(default=1.0, gt=0, le=1e7, allow_inf_nan=False)
    """Scenario minutes per real minute; only the emulated agent can go faster than real time."""
    seed: int = Field(default=0, ge=0)
    """Seeds the emulator's draws and the backoff jitter."""
    max_output_tokens: int = Field(default=4096, ge=1, le=1_000_000)
    task_timeout_min: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """For tasks without their own ``timeout_min`` (scenario minutes)."""
    run_timeout_min: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Overrides the scenario's ``run_timeout_min``."""
    retry_backoff_s: float = Field(default=5.0, ge=0, le=3600, allow_inf_nan=False)
    """First wait after a failed attempt, in scenario seconds (doubling, jittered)."""
    worktrees: bool = False
    workdir: str | None = None
    """Where agents work (default: the directory ``execute`` was started in)."""
    claude_executable: str = "claude"
    claude_args: list[str] = Field(default_factory=list)
    claude_client: Literal["auto", "sdk", "cli"] = "auto"
    """claude-code: the official SDK (``sdk``, the claude extra), the headless CLI on PATH (``cli``), or
    the SDK when it is installed (``auto``)."""
    emulator: bool = False
    """claude-code: rehearse against the loopback emulator (no key, no network, no cost), Claude Code's
    home and transcripts in the run's folder."""
    pass_env: list[str] = Field(default_factory=list, max_length=1_000)
    """Variables of the executor's environment agent processes get beyond the allowed ones
    (:mod:`cycleplan.executor.secrets`), by name; their values are never stored."""
    budget_usd: float | None = Field(default=None, gt=0, le=1e9, allow_inf_nan=False)
    """Stop the run before a cycle would take its recorded cost past this (:mod:`.guards`)."""
    deadline_min: float | None = Field(default=None, gt=0, le=1e9, allow_inf_nan=False)
    """Stop the run when its clock passes this many scenario minutes since it began."""
    risk: float = Field(default=DEFAULT_RISK, gt=0, lt=1, allow_inf_nan=False)
    """Warn when a forecast gives a guard a chance above this of being broken."""

    @field_validator("agent")
    @classmethod
    def _known_agent(cls, value: str) -> str:
        if value not in AGENTS:
            raise ValueError(f"unknown agent '{value}'; choose one of {', '.join(AGENTS)}")
        return value

    @field_validator("pass_env")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,255}", name):
                raise ValueError(
                    f"--pass-env {name!r}: give a variable's name (letters, digits, '_'), not its value"
                )
        return value

    @field_validator("claude_args")
    @classmethod
    def _no_secrets(cls, value: list[str]) -> list[str]:
        live = secret_values()
        for argument in value:
            kind = find_secret(argument) or ("the API key" if any(key in argument for key in live) else None)
            flag = argument.split("=", 1)[0].lower()
            if kind is None and any(
                word in flag for word in ("api-key", "apikey", "token", "secret", "password")
            ):
                kind = "a credential"
            if kind is not None:
                raise ValueError(
                    f"--claude-arg holds {kind}, and the run's options are stored: give Claude Code its key "
                    "through ANTHROPIC_API_KEY (or name another variable with --pass-env)"
                )
        return value


Listener = Callable[[Event], None]
"""Called with each event of a run once the store has committed it, on the executor's event loop (so
it must return at once; an exception it raises is ignored): what a live export hangs on. No listener
costs nothing."""

Forecasts = Callable[[Plan, ExecuteOptions], Forecaster]
"""Makes a run's :data:`~cycleplan.executor.guards.Forecaster` once its plan and options are known (a
resumed run's, with its guards, read from the store): the seed, ``budget_usd`` and ``deadline_min`` a
forecast is made with come from the options."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended, and its summary (see :func:`cycleplan.executor.summary.run_summary`)."""

    run_id: str
    status: str
    summary: dict[str, Any]
    signal_number: int | None = None
    stopped_by: dict[str, Any] | None = None
    """The guard that stopped the run (``guard``: budget or deadline, and ``message``), when one did."""

    @property
    def exit_code(self) -> int:
        if self.signal_number is not None:
            return 128 + self.signal_number
        if self.stopped_by is not None:
            return EXIT_GUARD
        return EXIT_CODES.get(self.status, 1)


def new_run_id() -> str:
    """A sortable, unique run id: ``20250114-093012-3f9a1c``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[bool]:
    """Hold the run's lock file while this process works on it, when it can; yields whether it does.

    The lock only tells :func:`.store.is_live` about runs stored before leases: the run's lease in the
    store is what keeps one writer per run. A lock still held here belongs to an executor whose lease has
    expired (it is stalled, or paused): its next write is refused, so it does not stop this one."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / "lock").open("a")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        handle.close()


def _backend_options(
    options: ExecuteOptions, folder: Path | None = None, faults: Any = None
) -> BackendOptions:
    """What the backend is told of ``options`` (and of the run's folder, once there is one)."""
    return BackendOptions(
        time_scale=options.time_scale,
        seed=options.seed,
        max_output_tokens=options.max_output_tokens,
        claude_executable=options.claude_executable,
        claude_args=tuple(options.claude_args),
        emulator_faults=faults,
        emulator=options.emulator,
        claude_client=options.claude_client,
        run_folder=folder,
        pass_env=tuple(options.pass_env),
    )


def _ready(plan: Plan, options: ExecuteOptions) -> None:
    """The backend's pre-flight (:func:`.backend.preflight`): it writes nothing, so a run that cannot go
    leaves no run folder, no store row and no lock."""
    try:
        preflight(options.agent, plan.scenario, _backend_options(options))
    except BackendUnavailableError as exc:
        raise ExecutionError(str(exc)) from None


def _check(plan: Plan, options: ExecuteOptions) -> None:
    if options.agent not in AGENTS:
        raise ExecutionError(f"unknown agent '{options.agent}'; choose one of {', '.join(AGENTS)}")
    if options.emulator and options.agent != "claude-code":
        raise ExecutionError(
            "--emulator is for --agent claude-code (--agent emulated already runs against the emulator)"
        )
    rehearsal = options.agent == "emulated" or options.emulator
    if options.time_scale != 1.0 and not rehearsal:
        raise ExecutionError(
            "--time-scale is for rehearsals: use it with --agent emulated or --agent claude-code --emulator"
        )
    reserved = sorted(
        {event for task in plan.scenario.all_tasks() for event in task.emits if event in ev.RESERVED}
    )
    if reserved:
        raise ExecutionError(
            f"event name{'s' if len(reserved) > 1 else ''} {', '.join(reserved)} "
            "cannot be emitted: the executor records its own events under these names; rename them"
        )


def execute(
    plan: Plan,
    options: ExecuteOptions,
    *,
    store: str | Path = DEFAULT_STORE,
    source: str = "",
    progress: Progress = "auto",
    live: LiveFactory | None = None,
    stream: TextIO | None = None,
    faults: Any = None,
    on_start: Callable[[str], None] | None = None,
    forecasts: Forecasts | None = None,
    listeners: Sequence[Listener] = (),
) -> RunResult:
    """Run ``plan`` with ``options`` as a new run of the store at ``store``.

    ``faults`` (an :class:`cycleplan.executor.emulator.Faults`) is for the emulated agent.
    ``on_start`` is called with the new run's id once it is recorded. ``forecasts`` makes the
    forecaster (see :mod:`.guards`) that forecasts the rest of the run while it goes; each forecast is
    recorded as a ``forecast_updated`` event. Each of ``listeners`` is called with every event once it
    is committed (see :data:`Listener`).
    """
    _check(plan, options)
    _ready(plan, options)
    if options.workdir is None:
        # Stored with the run, so that a resumed run's agents carry on in the same checkout.
        options = options.model_copy(update={"workdir": str(Path.cwd())})
    with _open(store) as runs:
        run_id = new_run_id()
        return asyncio.run(
            _drive(
                runs,
                run_id,
                plan,
                options,
                new=(source, on_start),
                progress=progress,
                live=live,
                stream=stream,
                faults=faults,
                forecasts=forecasts,
                listeners=listeners,
            )
        )


def resume(
    run_id: str,
    *,
    store: str | Path = DEFAULT_STORE,
    progress: Progress = "auto",
    live: LiveFactory | None = None,
    stream: TextIO | None = None,
    faults: Any = None,
    forecasts: Forecasts | None = None,
    budget_usd: float | None = None,
    deadline_min: float | None = None,
    risk: float | None = None,
    listeners: Sequence[Listener] = (),
) -> RunResult:
    """Continue run ``run_id`` (or the run any reference :meth:`RunStore.resolve` takes names, such as
    ``latest``) where its events leave it (after Ctrl-C, ``kill -9``, a crash, a reboot, a guard's stop).
    Refused while another executor owns the run (its lease is live), and when the run's stored trace is
    damaged (``cycleplan runs --check RUN`` says how).

    The run keeps the guards stored in its options; ``budget_usd``, ``deadline_min`` and ``risk``, when
    given, replace them (and are stored for the next resume)."""
    if not Path(store).exists():
        raise ExecutionError(f"{store}: no run store here (pass --store PATH)")
    with _open(store) as runs:
        try:
            run_id = runs.resolve(run_id)
            record = runs.run(run_id)
        except StoreError as exc:
            raise ExecutionError(str(exc)) from None
        try:
            plan = Plan.model_validate_json(record.plan_json)
            options = ExecuteOptions.model_validate(record.options)
        except ValueError as exc:
            raise ExecutionError(
                f"run {run_id}: its stored plan or options cannot be read ({str(exc).splitlines()[0]}): "
                "it cannot be resumed"
            ) from None
        guards = {
            name: value
            for name, value in (("budget_usd", budget_usd), ("deadline_min", deadline_min), ("risk", risk))
            if value is not None
        }
        if guards:
            try:
                options = ExecuteOptions.model_validate({**options.model_dump(), **guards})
            except ValueError as exc:
                raise ExecutionError(f"run {run_id}: {str(exc).splitlines()[0]}") from None
        ended = _ended(runs, run_id, plan, options, _sound_trace(runs, run_id))
        if ended is not None:
            return ended
        _ready(plan, options)
        return asyncio.run(
            _drive(
                runs,
                run_id,
                plan,
                options,
                new=None,
                progress=progress,
                live=live,
                stream=stream,
                faults=faults,
                forecasts=forecasts,
                new_options=bool(guards),
                listeners=listeners,
            )
        )


def _sound_trace(store: RunStore, run_id: str) -> list[Event]:
    """The run's trace, once :meth:`RunStore.check` finds nothing wrong with it: a resumed run goes on
    from what its events say, so they must all be there and add up."""
    try:
        problems = store.check(run_id).problems
        if not problems:
            return store.trace(run_id)
    except StoreError as exc:
        raise ExecutionError(str(exc)) from None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise ExecutionError(
        f"run {run_id} cannot be resumed: its stored trace is damaged: {problems[0]}{more}; "
        f"`cycleplan runs --check {run_id}` lists what is wrong"
    )


def _ended(
    store: RunStore, run_id: str, plan: Plan, options: ExecuteOptions, trace: list[Event]
) -> RunResult | None:
    """The result of a run that is over (nothing is written), or None when there is work left."""
    so_far = replay(trace, [task.id for task in plan.scenario.all_tasks()])
    if not so_far.over:
        return None
    if so_far.status == ev.INTERRUPTED:
        # Stored before interrupted runs were left open: its tasks were cancelled for good.
        raise ExecutionError(
            f"run {run_id} was interrupted (Ctrl-C) and its running tasks were cancelled; "
            "it cannot be resumed: start a new run"
        )
    summary = with_files(run_summary(store, run_id), options, store.run_folder(run_id))
    return RunResult(run_id, str(so_far.status), summary)


def with_files(summary: dict[str, Any], options: ExecuteOptions, folder: Path) -> dict[str, Any]:
    """``summary`` with where a rehearsal kept its files: the emulator's ledger (``emulator_ledger``) and,
    for claude-code, Claude Code's transcripts (``transcripts``, for ``cycleplan import claude-code``)."""
    from cycleplan.executor.billing import LEDGER_FILE

    if options.agent == "emulated":
        return summary | {"emulator_ledger": str(folder / LEDGER_FILE)}
    if options.agent != "claude-code" or not options.emulator:
        return summary
    from cycleplan.executor.claude_code import transcripts_folder

    workdir = Path(options.workdir) if options.workdir and not options.worktrees else None
    return summary | {
        "transcripts": str(transcripts_folder(folder, workdir)),
        "emulator_ledger": str(folder / LEDGER_FILE),
    }


@contextlib.contextmanager
def _open(store: str | Path) -> Iterator[RunStore]:
    try:
        runs = RunStore(store, read_only=False)
    except StoreError as exc:
        raise ExecutionError(str(exc)) from None
    try:
        yield runs
    finally:
        runs.close()


async def _drive(
    store: RunStore,
    run_id: str,
    plan: Plan,
    options: ExecuteOptions,
    *,
    new: tuple[str, Callable[[str], None] | None] | None,
    progress: Progress,
    live: LiveFactory | None,
    stream: TextIO | None,
    faults: Any,
    forecasts: Forecasts | None = None,
    new_options: bool = False,
    listeners: Sequence[Listener] = (),
) -> RunResult:
    folder = store.run_folder(run_id)
    keeper = _LeaseKeeper(store, run_id)
    try:
        trace: list[Event] = []
        if new is None:
            # The lease first: it refuses a newcomer while the run's owner lives, naming it.
            store.take_lease(run_id)
            keeper.start()
            # Read again under the lease: the executor that held the run may have written since.
            trace = _sound_trace(store, run_id)
            ended = _ended(store, run_id, plan, options, trace)
            if ended is not None:
                return ended
            if new_options:
                store.set_options(run_id, json.loads(redact(options.model_dump_json())))
        with run_lock(folder):
            return await _work(
                store,
                run_id,
                plan,
                options,
                keeper,
                trace,
                new,
                progress,
                live,
                stream,
                faults,
                forecasts,
                listeners,
            )
    except LeaseLostError as exc:
        raise RunTakenOverError(str(exc)) from None
    except LeaseError as exc:
        raise ExecutionError(str(exc)) from None
    except StoreError as exc:
        raise ExecutionError(f"{exc}; once that is fixed, continue with --resume {run_id}") from None
    finally:
        await keeper.stop()
        with contextlib.suppress(StoreError):
            store.release_lease(run_id)


async def _work(
    store: RunStore,
    run_id: str,
    plan: Plan,
    options: ExecuteOptions,
    keeper: _LeaseKeeper,
    trace: list[Event],
    new: tuple[str, Callable[[str], None] | None] | None,
    progress: Progress,
    live: LiveFactory | None,
    stream: TextIO | None,
    faults: Any,
    forecasts: Forecasts | None = None,
    listeners: Sequence[Listener] = (),
) -> RunResult:
    """Start the backend, record a new run (leased) or stop a resumed run's orphans, and orchestrate."""
    folder = store.run_folder(run_id)
    so_far = replay(trace, [task.id for task in plan.scenario.all_tasks()])
    if new is None:
        so_far.resumes += 1
        # Only now, the lease ours: an executor that still held it was left alone, agents and all.
        kill_orphans(store, run_id)
    registry = ProcessRegistry(store, run_id)
    workdir = Path(options.workdir) if options.workdir else Path.cwd()
    workdirs: dict[str, Path] = {}
    backend = make_backend(options.agent, plan.scenario, _backend_options(options, folder, faults), registry)
    try:
        await backend.start()
        if new is not None:
            source, on_start = new
            try:
                store.create_run(
                    run_id,
                    agent=options.agent,
                    source=source,
                    scenario=redact(plan.scenario.name),
                    options=json.loads(redact(options.model_dump_json())),
                    plan_json=redact(plan.model_dump_json()),
                    lease=True,
                )
            except StoreError as exc:
                raise ExecutionError(str(exc)) from None  # nothing recorded: nothing to resume
            keeper.start()
            if on_start is not None:
                on_start(run_id)
        if options.worktrees:
            from cycleplan.executor.worktrees import prepare_worktrees

            # In a thread, so that the lease is renewed while git works.
            workdirs = await asyncio.to_thread(
                prepare_worktrees, workdir, folder, run_id, [lane.lane for lane in plan.lanes]
            )
        work = asyncio.ensure_future(
            _orchestrate(
                store,
                run_id,
                plan,
                options,
                backend,
                so_far,
                trace,
                folder,
                workdir,
                workdirs,
                progress,
                live,
                stream,
                forecasts,
                listeners,
            )
        )
        keeper.watch(work)
        try:
            return await work
        except asyncio.CancelledError:
            lost = store.lease_lost(run_id)
            if lost is None:
                raise
            raise LeaseLostError(lost) from None
    except BackendUnavailableError as exc:
        raise ExecutionError(str(exc)) from None
    finally:
        await backend.close()


class _LeaseKeeper:
    """Renews this executor's lease on a run while it works (every
    :attr:`~cycleplan.store.runs.RunStore.lease_renewal_s`), and cancels the work at once when the
    lease turns out to be lost: its agents are stopped as the work unwinds, and the store refuses every
    write the unwinding tries."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self._task: asyncio.Task[None] | None = None
        self._work: asyncio.Future[Any] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._renew(), name=f"lease {self._run_id}")

    def watch(self, work: asyncio.Future[Any]) -> None:
        self._work = work
        if self._store.lease_lost(self._run_id) is not None:
            work.cancel()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._store.lease_renewal_s)
            try:
                self._store.renew_lease(self._run_id)
            except LeaseLostError:
                if self._work is not None:
                    self._work.cancel()
                return
            except StoreError:
                continue  # busy, or a full disk: the next renewal tries again, and every write checks

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def _orchestrate(
    store: RunStore,
    run_id: str,
    plan: Plan,
    options: ExecuteOptions,
    backend: Any,
    so_far: Any,
    trace: list[Event],
    folder: Path,
    workdir: Path,
    workdirs: dict[str, Path],
    progress: Progress,
    live: LiveFactory | None,
    stream: TextIO | None,
    forecasts: Forecasts | None = None,
    listeners: Sequence[Listener] = (),
) -> RunResult:
    from cycleplan.executor.progress import PlainLines, RunLog

    scenario = plan.scenario
    run_timeout = options.run_timeout_min if options.run_timeout_min is not None else scenario.run_timeout_min
    orchestrator = Orchestrator(
        plan,
        backend,
        store,
        run_id,
        clock=Clock(options.time_scale),
        policy=Policy(
            retry_backoff_s=options.retry_backoff_s,
            task_timeout_min=options.task_timeout_min,
            run_timeout_min=run_timeout,
            seed=options.seed,
        ),
        progress=so_far,
        run_folder=folder,
        workdirs={lane.lane: workdirs.get(lane.lane, workdir) for lane in plan.lanes},
        header={
            "agent": options.agent,
            "time_scale": options.time_scale,
            "seed": options.seed,
            **({"emulator": True} if options.emulator else {}),
        },
        guards=Guards.of(scenario, options.budget_usd, options.deadline_min, options.risk),
        forecaster=None if forecasts is None else forecasts(plan, options),
    )
    orchestrator.publish_stored(trace)
    orchestrator.observers.extend(listeners)
    log = RunLog(orchestrator, folder / "log.txt")
    orchestrator.observers.append(log)
    out = stream if stream is not None else sys.stderr
    view: LiveView | None = None
    mode = progress
    if mode == "auto":
        mode = "live" if out.isatty() and live is not None else "plain"
    if mode == "live" and live is None:
        mode = "plain"
    if mode == "live" and live is not None:
        view = live(orchestrator, out)
        orchestrator.observers.append(view)
    elif mode == "plain":
        orchestrator.observers.append(PlainLines(orchestrator, out))

    received: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(number: int) -> None:
        received.append(number)
        orchestrator.stop(ev.INTERRUPTED)

    handled = []
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, on_signal, number)
            handled.append(number)
    if view is not None:
        view.start()
    try:
        status = await orchestrator.run(resumed=bool(trace))
    finally:
        if view is not None:
            view.stop()
        for number in handled:
            loop.remove_signal_handler(number)
        log.close()
    summary = with_files(run_summary(store, run_id), options, folder) | {"status": status}
    stopped_by = orchestrator.stopped_by if status == ev.INTERRUPTED and not received else None
    if stopped_by is not None:
        summary["stopped_by"] = stopped_by
    store.set_status(run_id, status, summary)
    return RunResult(run_id, status, summary, received[0] if received else None, stopped_by)
