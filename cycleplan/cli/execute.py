"""Runs against real agents: ``execute`` (durably, into the run store) and ``export`` (a run's trace,
read from the store opened read-only). The store's list of runs is ``runs`` (:mod:`cycleplan.cli.runs`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from cycleplan.cli import verbosity
from cycleplan.cli.common import (
    STORE_PATH,
    ScenarioLanesOption,
    SeedOption,
    StoreOption,
    command_app,
    emit_json,
    fail,
    note,
    output_option,
    parse_duration_min,
    parse_lanes_option,
    read_prediction,
    say,
    write_atomically,
)
from cycleplan.core.wording import counted
from cycleplan.executor.backend import BACKENDS

if TYPE_CHECKING:
    from cycleplan.core.model import Event, Plan
    from cycleplan.executor import ExecuteOptions, RunResult
    from cycleplan.executor.guards import Forecaster

app = command_app()


@app.command("execute")
def execute_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML file, or a plan written by `plan -o plan.json` (not with --resume).",
            show_default=False,
            metavar="FILE|plan.json",
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            "-a",
            help="Who does the work: "
            + ", ".join(f"{entry.name} ({entry.summary})" for entry in BACKENDS.values())
            + ".",
            metavar="|".join(BACKENDS),
            show_default=False,
        ),
    ] = None,
    store: StoreOption = STORE_PATH,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue a run stopped by Ctrl-C or killed: completed tasks are not run again. RUN is its "
            "id, a unique beginning of it, or latest.",
            metavar="RUN",
            show_default=False,
        ),
    ] = None,
    emulator: Annotated[
        bool,
        typer.Option(
            "--emulator",
            help="With --agent claude-code: rehearse against the local emulator of the API (no key, no "
            "network, no cost); Claude Code's transcripts are kept in the run's folder.",
        ),
    ] = False,
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            help="In a rehearsal (--agent emulated, or claude-code --emulator): scenario minutes per real "
            "minute (60: a minute lasts a second).",
            metavar="X",
        ),
    ] = 1.0,
    seed: SeedOption = 0,
    lanes: ScenarioLanesOption = None,
    worktrees: Annotated[
        bool, typer.Option("--worktrees", help="Give each lane its own git worktree of this repository.")
    ] = False,
    task_timeout: Annotated[
        float | None,
        typer.Option(
            "--task-timeout",
            help="Fail a task whose work takes longer (scenario minutes; a task's timeout_min wins).",
            metavar="MIN",
            show_default=False,
        ),
    ] = None,
    run_timeout: Annotated[
        float | None,
        typer.Option(
            "--run-timeout",
            help="Cancel what is left after this many scenario minutes.",
            metavar="MIN",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", help="max_tokens of each Messages API call.", metavar="N")
    ] = 4096,
    claude: Annotated[
        str | None,
        typer.Option(
            "--claude",
            help="claude-code: drive this Claude Code executable in headless mode instead of the SDK's.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    claude_args: Annotated[
        list[str] | None,
        typer.Option(
            "--claude-arg",
            help="An extra argument for every claude call, e.g. --claude-arg=--permission-mode=acceptEdits.",
            metavar="ARG",
            show_default=False,
        ),
    ] = None,
    pass_env: Annotated[
        list[str] | None,
        typer.Option(
            "--pass-env",
            help=(
                "Give agent processes this variable of your environment too (repeatable). They get only "
                "PATH, HOME, USER, SHELL, the locale (LANG, LC_*), TERM, TZ, TMPDIR, certificate and proxy "
                "variables, CYCLEPLAN_* (and for claude-code ANTHROPIC_* and CLAUDE_*) otherwise."
            ),
            metavar="NAME",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        str,
        typer.Option(
            "--progress",
            help="auto (a live table on a terminal, plain lines otherwise; none with --quiet), live, plain "
            "or none; on stderr.",
            metavar="MODE",
        ),
    ] = "auto",
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            help="Stop the run (resumable, exit 4) before a cycle would take its cost past USD dollars.",
            metavar="USD",
            show_default=False,
        ),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(
            "--deadline",
            help="Stop the run (resumable, exit 4) when its clock passes this: 90m, 2h, 1h30m (scenario "
            "time since the run began).",
            metavar="DURATION",
            show_default=False,
        ),
    ] = None,
    risk: Annotated[
        float | None,
        typer.Option(
            "--risk",
            help="Warn when the forecast's chance of breaking --budget or --deadline passes P "
            "[default: 0.2].",
            metavar="P",
            show_default=False,
        ),
    ] = None,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help="Send the run's spans live over OTLP/HTTP to this URL (http://localhost:4318), or env: to "
            "where the OTEL_EXPORTER_OTLP_* variables say (the otel extra).",
            metavar="URL",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a summary as JSON: run_id, status, makespan_min, speedup, ..."),
    ] = False,
) -> None:
    """Run a plan against real agents, durably: every event is committed to the run store first.

    Lanes run side by side as the plan says; waits and emits go through the store; failed cycles are
    retried, failures cancel their dependents, races keep their winner. Ctrl-C stops the running agents,
    leaves their tasks unfinished and exits 130; after Ctrl-C, a crash or `kill -9`, `--resume RUN`
    finishes the run without redoing completed cycles (the time it stood stopped is not counted).
    Exit status: 0 complete, 1 failed or timed out, 2 bad input (or a run another executor holds),
    3 taken over: this executor's lease on the run expired (it was paused or stalled), another executor
    resumed the run, and this one stopped at once, recording nothing more; 4 stopped by a guard (--budget
    or --deadline), resumable like Ctrl-C; 130 interrupted.

    Guards: --budget USD stops the run before a cycle would take its recorded cost past USD (at most one
    cycle's cost over it); --deadline stops it when its clock passes the deadline. While the run goes, a
    forecast of its finish and cost is made on each task event and every few seconds, shown under the
    live table and recorded in the store (`cycleplan status RUN`); a warning line says when its chance of
    breaking a guard passes --risk. A resumed run keeps its guards unless given new ones.

    --otlp-endpoint sends the run to an OpenTelemetry backend while it goes (a trace per run, a span per
    task, cycle attempt and API call; see `export --format otlp`), from a separate low-priority process,
    in batches every OTEL_BSP_SCHEDULE_DELAY ms; a resumed run continues the same trace.

    One executor writes a run at a time: it holds the run's lease in the store, renewed every few
    seconds (it lasts 30 s; CYCLEPLAN_LEASE_S sets another length). `--resume` on a run whose lease is
    live is refused with the owner's pid and host and when the lease expires.

    The anthropic agent reads the key from ANTHROPIC_API_KEY only and never writes it anywhere.
    claude-code runs on the claude-agent-sdk package (pip install 'cycleplan[claude]'), else on the
    claude found on PATH; with --emulator it rehearses offline, and --json names its transcripts.

    \b
    Examples:
      cycleplan execute scenarios/full-feature.yaml --agent emulated --time-scale 600
      cycleplan execute scenarios/agent-session.yaml --agent claude-code --emulator --time-scale 60
      cycleplan execute plan.json --agent claude-code --worktrees
      cycleplan execute my.yaml --agent command --pass-env DATABASE_URL --json
      cycleplan execute --resume 20250114-093012-3f9a1c
      cycleplan execute --resume latest
      cycleplan execute my.yaml --agent anthropic --budget 20 --deadline 2h --risk 0.1
      cycleplan execute --resume latest --budget 30
      cycleplan execute my.yaml --agent emulated --otlp-endpoint http://localhost:4318
    """
    from cycleplan.executor import AGENTS
    from cycleplan.executor.summary import render_summary

    if progress not in ("auto", "live", "plain", "none"):
        fail(f"--progress {progress}: choose one of auto, live, plain, none")
    mode: Literal["auto", "live", "plain", "none"] = progress  # type: ignore[assignment]
    if mode == "auto" and verbosity.level() == verbosity.QUIET:
        mode = "none"
    if budget is not None and not (0 < budget <= 1e9):
        fail(f"--budget {budget:g}: must be above 0 dollars")
    deadline_min = None if deadline is None else parse_duration_min(deadline)
    if risk is not None and not 0 < risk < 1:
        fail(f"--risk {risk:g}: a chance between 0 and 1, e.g. 0.2")
    settings = None if otlp_endpoint is None else _otlp_settings(otlp_endpoint)
    if resume is None:
        if file is None:
            fail("FILE is missing: give a scenario or plan.json to run, or --resume RUN")
        if agent is None:
            fail(f"--agent is required: one of {', '.join(AGENTS)} (emulated rehearses offline)")
    listeners: list[Any] = []
    if settings is not None:
        from cycleplan.workflows.live_export import LiveExport

        listeners.append(LiveExport(store, settings))
    try:
        result = _run(
            file,
            agent,
            store,
            resume,
            emulator,
            time_scale,
            seed,
            lanes,
            worktrees,
            task_timeout,
            run_timeout,
            max_tokens,
            claude,
            claude_args,
            pass_env,
            mode,
            budget,
            deadline_min,
            risk,
            listeners,
        )
    finally:
        for listener in listeners:
            sent = listener.close()
            for error in sent["errors"]:
                say(f"warning: OTLP export: {error}", err=True)
            if sent["spans"]:
                note(f"sent {counted(sent['spans'], 'span')} to {listener.settings.url}", err=True)
    if as_json:
        emit_json(result.summary)
    else:
        say(render_summary(result.summary))
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _otlp_settings(endpoint: str) -> Any:
    """The live export's settings for ``--otlp-endpoint`` (``env``: from the OTEL_EXPORTER_OTLP_*
    variables); exit 2 when they are wrong or the otel extra is missing."""
    from cycleplan.workflows.live_export import LiveExportError, endpoint_settings, http_url
    from cycleplan.workflows.telemetry import OTEL_MISSING

    if endpoint != "env" and not http_url(endpoint):
        fail(
            f"--otlp-endpoint {endpoint}: give an http(s) URL, such as http://localhost:4318 "
            "(or env: the OTEL_EXPORTER_OTLP_* variables)"
        )
    try:
        import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401
    except ImportError:
        fail(f"--otlp-endpoint: {OTEL_MISSING}")
    try:
        return endpoint_settings(None if endpoint == "env" else endpoint)
    except LiveExportError as exc:
        fail(str(exc))


def _run(
    file: Path | None,
    agent: str | None,
    store: Path,
    resume: str | None,
    emulator: bool,
    time_scale: float,
    seed: int,
    lanes: list[str] | None,
    worktrees: bool,
    task_timeout: float | None,
    run_timeout: float | None,
    max_tokens: int,
    claude: str | None,
    claude_args: list[str] | None,
    pass_env: list[str] | None,
    mode: Literal["auto", "live", "plain", "none"],
    budget: float | None,
    deadline_min: float | None,
    risk: float | None,
    listeners: list[Any],
) -> RunResult:
    """Execute FILE or resume RUN, as the options say; exit 2 on what the user must fix."""
    from cycleplan.executor import AGENTS, ExecuteOptions, ExecutionError
    from cycleplan.executor import execute as run_plan
    from cycleplan.executor import resume as resume_run
    from cycleplan.present.live import LiveTable

    if resume is not None:
        if file is not None or agent is not None or lanes:
            fail(
                "--resume continues a stored run with its own plan and agent; "
                "leave out FILE, --agent and --lanes"
            )
        try:
            result = resume_run(
                resume,
                store=store,
                progress=mode,
                live=LiveTable,
                forecasts=forecaster,
                budget_usd=budget,
                deadline_min=deadline_min,
                risk=risk,
                listeners=listeners,
            )
        except ExecutionError as exc:
            _stopped(exc)
    else:
        assert file is not None and agent is not None
        if agent not in AGENTS:
            fail(f"--agent {agent}: choose one of {', '.join(AGENTS)}")
        if not 0 < time_scale <= 1e7:
            fail(f"--time-scale {time_scale:g}: must be above 0 and at most 10,000,000")
        if seed < 0:
            fail(f"--seed {seed}: must be zero or positive")
        for name, value in (("--task-timeout", task_timeout), ("--run-timeout", run_timeout)):
            if value is not None and not value > 0:
                fail(f"{name} {value:g}: must be above 0 minutes")
        if max_tokens < 1:
            fail(f"--max-tokens {max_tokens}: must be at least 1")
        from pydantic import ValidationError

        try:
            options = ExecuteOptions(
                agent=agent,
                time_scale=time_scale,
                seed=seed,
                max_output_tokens=max_tokens,
                task_timeout_min=task_timeout,
                run_timeout_min=run_timeout,
                worktrees=worktrees,
                claude_executable=claude or "claude",
                claude_args=list(claude_args or []),
                claude_client="auto" if claude is None else "cli",
                emulator=emulator,
                pass_env=list(pass_env or []),
                budget_usd=budget,
                deadline_min=deadline_min,
                **({} if risk is None else {"risk": risk}),
            )
        except ValidationError as exc:
            fail(*(str(error["ctx"]["error"]) if "ctx" in error else error["msg"] for error in exc.errors()))
        from cycleplan.core.loading import LoadError, load_scenario_or_plan
        from cycleplan.core.model import Plan

        try:
            loaded = load_scenario_or_plan(file)
        except LoadError as exc:
            fail(*(str(error) for error in exc.errors), f"{counted(len(exc.errors), 'problem')} in {file}")
        if isinstance(loaded, Plan):
            if lanes:
                fail(
                    "--lanes: changes a scenario's lanes; plan.json is already planned, so pass the scenario"
                )
            the_plan = loaded
        else:
            from cycleplan.planner import plan

            the_plan = plan(loaded.with_lanes(parse_lanes_option(loaded, lanes)) if lanes else loaded)
        try:
            result = run_plan(
                the_plan,
                options,
                store=store,
                source=str(file),
                progress=mode,
                live=LiveTable,
                forecasts=forecaster,
                listeners=listeners,
            )
        except ExecutionError as exc:
            _stopped(exc)
    return result


def forecaster(plan: Plan, options: ExecuteOptions) -> Forecaster:
    """The executor's live forecast: :func:`cycleplan.workflows.forecast.forecast` of the rest of
    ``plan`` from the trace so far, as JSON, with the run's seed and guards."""
    from cycleplan.workflows.forecast import forecast

    def made(trace: Sequence[Event], now_min: float) -> dict[str, Any] | None:
        result = forecast(
            plan,
            trace,
            now_min,
            seed=options.seed,
            budget_usd=options.budget_usd,
            deadline_min=options.deadline_min,
        )
        return result.to_json()

    return made


def _stopped(exc: Exception) -> NoReturn:
    """Print the executor's one-line message on stderr and exit with its status (2, or 3 taken over)."""
    say(str(exc), err=True)
    raise typer.Exit(getattr(exc, "exit_code", 2))


@app.command("export")
def export_command(
    run: Annotated[
        str,
        typer.Argument(
            help="The run: its id, a unique beginning of it, or latest (see `cycleplan runs`).", metavar="RUN"
        ),
    ],
    store: StoreOption = STORE_PATH,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="jsonl: one event a line, in order; otlp: OpenTelemetry spans, OTLP/JSON (the otel extra).",
            metavar="FORMAT",
        ),
    ] = "jsonl",
    output: Annotated[
        Path | None,
        output_option("Write to a file instead of stdout."),
    ] = None,
    prediction: Annotated[
        Path | None,
        typer.Option(
            "--prediction",
            "-p",
            help="With --format otlp: a prediction written by `simulate -o`, its P10/P50/P90 as attributes.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a run's trace: its events in order, with the ONE platform's field names, or its spans.

    Times are as recorded (epoch milliseconds; a time-scaled rehearsal's run_started says its scale).
    --format otlp writes one OpenTelemetry trace (OTLP/JSON, an ExportTraceServiceRequest): a span per
    task, per cycle attempt and per API call, with the GenAI semantic conventions' attributes; a collector,
    Jaeger or Phoenix reads it.

    \b
    Examples:
      cycleplan export 20250114-093012-3f9a1c --format jsonl -o trace.jsonl
      cycleplan export latest | jq -c 'select(.metadata.action == "task_failed")'
      cycleplan export latest --format otlp -o run.json
    """
    from cycleplan.store import RunStore, StoreError, export_jsonl

    if format_ not in ("jsonl", "otlp"):
        fail(f"--format {format_}: choose jsonl or otlp")
    if prediction is not None and format_ != "otlp":
        fail("--prediction: only with --format otlp")
    if not store.exists():
        fail(f"{store}: no run store here (pass --store PATH)")
    if format_ == "otlp":
        text, what = _otlp_export(store, run, prediction)
    else:
        try:
            with RunStore(store, read_only=True) as runs_store:
                lines = list(export_jsonl(runs_store, run))
        except StoreError as exc:
            fail(str(exc))
        text, what = "".join(line + "\n" for line in lines), counted(len(lines), "event")
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text)
        note(f"wrote {what} to {output}", err=True)


def _otlp_export(store: Path, run: str, prediction: Path | None) -> tuple[str, str]:
    """A run as OTLP/JSON text, and what it holds in words."""
    from cycleplan.store import RunStore, StoreError
    from cycleplan.workflows.telemetry import TelemetryUnavailableError, dumps, otlp_json

    given = None if prediction is None else read_prediction(prediction)
    try:
        with RunStore(store, read_only=True) as runs_store:
            run_id = runs_store.resolve(run)
            record = runs_store.run(run_id)
            document = otlp_json(run_id, runs_store.trace(run_id), scenario=record.scenario, prediction=given)
    except StoreError as exc:
        fail(str(exc))
    except TelemetryUnavailableError as exc:
        fail(str(exc))
    spans = sum(len(scope["spans"]) for part in document["resourceSpans"] for scope in part["scopeSpans"])
    return dumps(document) + "\n", counted(spans, "span")
