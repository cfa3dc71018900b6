"""``cycleplan otel``: OpenTelemetry in, as it arrives: ``otel receive``, an OTLP/HTTP endpoint that writes
the telemetry Claude Code sends into the run store (:mod:`cycleplan.workflows.otel_receiver`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cycleplan.cli.common import STORE_PATH, StoreOption, fail, note, say

app = typer.Typer(
    name="otel",
    help=(
        "Take in OpenTelemetry as it arrives: Claude Code's telemetry becomes runs in the run store.\n\n"
        "Files a collector wrote are read by `cycleplan import otel`; runs go out with `cycleplan export "
        "--format otlp` and `cycleplan execute --otlp-endpoint`.\n\n"
        "\b\n"
        "Example:\n"
        "  cycleplan otel receive --port 4318 --store team/runs.db"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
"""``cycleplan otel COMMAND``."""


@app.callback()
def otel_group() -> None:
    # A group even with one command: `cycleplan otel receive`, with room for more.
    pass


@app.command("receive")
def receive_command(
    port: Annotated[
        int, typer.Option("--port", help="The port to listen on (0: any free one).", metavar="PORT")
    ] = 4318,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="The address to listen on: 127.0.0.1 for this machine only, 0.0.0.0 for the team's.",
            metavar="HOST",
        ),
    ] = "127.0.0.1",
    store: StoreOption = STORE_PATH,
) -> None:
    """Receive Claude Code's telemetry over OTLP/HTTP and write each session into the run store as it arrives.

    Takes POST /v1/logs, /v1/traces and /v1/metrics as OTLP/JSON or protobuf (gzip too). Every request is
    appended to otel-received.jsonl beside the store before it is answered, so nothing is lost if the
    receiver is killed; each session it touches is imported again and its run replaced (one run per
    session, by the transcript importer's rules: prompts are turns, calls counted per turn, waits on the
    person cut out, subagents beside their session). Point Claude Code at it with
    CLAUDE_CODE_ENABLE_TELEMETRY=1, OTEL_LOGS_EXPORTER=otlp, OTEL_EXPORTER_OTLP_PROTOCOL=http/json (or
    http/protobuf) and OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT. Stops on Ctrl-C.

    \b
    Examples:
      cycleplan otel receive
      cycleplan otel receive --host 0.0.0.0 --port 4318 --store team/runs.db
    """
    if not 0 <= port <= 65535:
        fail(f"--port {port}: give a port from 0 to 65535")
    try:
        import opentelemetry.proto.collector.logs.v1.logs_service_pb2  # noqa: F401
    except ImportError:
        from cycleplan.workflows.telemetry import OTEL_MISSING

        fail(OTEL_MISSING)
    import asyncio
    import contextlib

    from cycleplan.store import StoreError
    from cycleplan.workflows.otel_receiver import Imported, Receiver, serve

    def imported(done: Imported) -> None:
        if done.problem:
            note(f"session {done.session}: not imported yet: {done.problem}", err=True)
            return
        say(
            f"session {done.session}: run {done.run_id}, {done.calls} calls, {done.tokens:,} tokens, "
            f"${done.cost_usd:,.4f}"
        )

    receiver = Receiver(store, on_import=imported)
    try:
        sessions = receiver.restore()
    except (OSError, StoreError) as exc:
        fail(f"{store}: {exc}")

    def ready(url: str) -> None:
        note(
            f"listening on {url} (OTLP/HTTP: /v1/logs, /v1/traces, /v1/metrics); runs go to {store}, "
            f"requests to {receiver.journal}"
            + (f"; {len(sessions)} sessions already received" if sessions else ""),
            err=True,
        )

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(receiver, host, port, ready))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
