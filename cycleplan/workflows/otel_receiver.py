"""An OTLP/HTTP endpoint that turns the telemetry Claude Code sends into runs in the run store as it arrives.

Point every machine's Claude Code at it (``OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:4318``, with
``CLAUDE_CODE_ENABLE_TELEMETRY=1`` and ``OTEL_LOGS_EXPORTER=otlp``) and the whole team's sessions become
runs to calibrate and backtest from. It takes what the OTLP/HTTP specification says an endpoint takes:
``POST /v1/logs``, ``/v1/traces`` and ``/v1/metrics``, each as ``application/json`` (OTLP/JSON) or
``application/x-protobuf`` (decoded by the ``opentelemetry-proto`` package, the otel extra), gzip bodies
too, and answers with the (empty) export response in the request's encoding.

Nothing is lost if it is killed: each request is appended, as one line of OTLP/JSON, to the journal
(:data:`JOURNAL`, beside the store) and flushed before the answer; ``cycleplan import otel`` reads that
file as it reads a collector's. Then each session the request touched is imported again from all that was
received of it (:func:`cycleplan.workflows.importers.otel.import_otel_requests`) and its run in the store
replaced, the new run written and the old deleted in one transaction: one run per session, named ``SOURCE
session ID``, the latest complete. A restarted receiver reads its journal back first. Imports run one at
a time, off the event loop, a moment after the last request that touched the session (:data:`SETTLE_S`),
so a busy session is not imported at every batch; SIGTERM and Ctrl-C import what waits before the
endpoint stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import signal
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cycleplan.workflows.importers.otel import events_of, is_request, read_requests

JOURNAL = "otel-received.jsonl"
"""The file beside the run store that keeps every request received, one OTLP/JSON line each."""
SETTLE_S = 0.5
"""How long after the last request touching a session its run is imported again."""
MAX_BODY_BYTES = 64 * 1024 * 1024

_SIGNALS = {
    "/v1/logs": ("logs_service_pb2", "ExportLogsServiceRequest", "ExportLogsServiceResponse", "logs"),
    "/v1/traces": ("trace_service_pb2", "ExportTraceServiceRequest", "ExportTraceServiceResponse", "trace"),
    "/v1/metrics": (
        "metrics_service_pb2",
        "ExportMetricsServiceRequest",
        "ExportMetricsServiceResponse",
        "metrics",
    ),
}


class BadRequestError(ValueError):
    """A request the endpoint cannot read (its message says why; the answer is 400)."""


def _message(path: str, which: int) -> Any:
    module, request, response, package = _SIGNALS[path]
    import importlib

    loaded = importlib.import_module(f"opentelemetry.proto.collector.{package}.v1.{module}")
    return getattr(loaded, (request, response)[which])()


def decode(path: str, body: bytes, content_type: str, encoding: str = "") -> dict[str, Any]:
    """One request's body as OTLP/JSON (a dict); raises :class:`BadRequestError`."""
    # aiohttp inflates a gzip or deflate body itself; a body still compressed is inflated here.
    try:
        if encoding == "gzip" and body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        elif encoding == "deflate" and body[:1] == b"\x78":
            body = zlib.decompress(body)
    except (OSError, zlib.error, EOFError) as exc:
        raise BadRequestError(f"the body is not {encoding} data: {exc}") from None
    if content_type == "application/json":
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"not JSON: {exc}") from None
        if not isinstance(document, dict) or (document and not is_request(document)):
            raise BadRequestError("not an OTLP/JSON export request")
        return document
    if content_type == "application/x-protobuf":
        from google.protobuf.message import DecodeError

        from cycleplan.workflows.telemetry import request_json

        message = _message(path, 0)
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequestError(f"not an OTLP protobuf request: {exc}") from None
        return request_json(message)
    raise BadRequestError(
        f"Content-Type {content_type or '(none)'}: send application/json or application/x-protobuf"
    )


@dataclass
class Imported:
    """What one import of a session did: the run that now holds it (or why there is none)."""

    session: str
    run_id: str | None
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    problem: str = ""


class Receiver:
    """The endpoint's state: the journal, what was received of each session, and each session's run."""

    def __init__(self, store: Path, on_import: Callable[[Imported], None] | None = None) -> None:
        self.store = store
        self.journal = store.parent / JOURNAL
        self.on_import = on_import
        self._requests: dict[str, list[tuple[str, int, Mapping[str, Any]]]] = {}
        self._lines = 0
        self._runs: dict[str, str] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def source(self) -> str:
        return str(self.journal)

    def run_source(self, session: str) -> str:
        return f"{self.journal} session {session}"

    def restore(self) -> list[str]:
        """Read the journal and the store back (a restarted receiver): the sessions it holds."""
        from cycleplan.store import RunStore

        self.store.parent.mkdir(parents=True, exist_ok=True)
        if self.journal.exists() and self.journal.stat().st_size > 0:
            from cycleplan.workflows.importers.run import TraceImportError

            with contextlib.suppress(TraceImportError):
                for origin, line, request in read_requests(self.journal):
                    self._remember(origin, line, request)
        with RunStore(self.store) as runs:
            for record in runs.runs():
                prefix = f"{self.journal} session "
                if record.source.startswith(prefix):
                    self._runs[record.source[len(prefix) :]] = record.run_id
        return sorted(self._requests)

    def _remember(self, origin: str, line: int, request: Mapping[str, Any]) -> set[str]:
        self._lines = max(self._lines, line)
        sessions = {str(event.attributes["session.id"]) for event in events_of(request, origin, line)}
        for session in sessions:
            self._requests.setdefault(session, []).append((origin, line, request))
        return sessions

    def receive(self, document: dict[str, Any]) -> set[str]:
        """Journal one request (flushed to disk) and remember it; the sessions it touched."""
        text = json.dumps(document, separators=(",", ":"))
        with self.journal.open("a", encoding="utf-8") as journal:
            journal.write(text + "\n")
            journal.flush()
        self._lines += 1
        return self._remember(self.source, self._lines, document)

    def schedule(self, sessions: set[str]) -> None:
        loop = asyncio.get_running_loop()
        for session in sessions:
            pending = self._pending.pop(session, None)
            if pending is not None:
                pending.cancel()
            self._pending[session] = loop.call_later(SETTLE_S, self._start_import, session)

    def _start_import(self, session: str) -> None:
        self._pending.pop(session, None)
        task = asyncio.get_running_loop().create_task(self._import(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _import(self, session: str) -> None:
        async with self._lock:
            requests = list(self._requests.get(session, []))
            done = await asyncio.to_thread(self._store_session, session, requests)
        if self.on_import is not None:
            self.on_import(done)

    def _store_session(self, session: str, requests: list[tuple[str, int, Mapping[str, Any]]]) -> Imported:
        from cycleplan.store import StoreError
        from cycleplan.workflows.importers import store_run
        from cycleplan.workflows.importers.otel import import_otel_requests
        from cycleplan.workflows.importers.run import TraceImportError

        old = self._runs.get(session)
        try:
            imported = import_otel_requests(self.run_source(session), requests, sessions=[session])
            run_id, summary = store_run(imported, self.store, replacing=old)
        except TraceImportError as exc:
            return Imported(session, old, problem=str(exc.errors[0].message))
        except StoreError as exc:
            return Imported(session, old, problem=str(exc))
        self._runs[session] = run_id
        return Imported(
            session,
            run_id,
            int(imported.details.get("calls", 0)),
            int(summary.get("tokens_total", 0)),
            float(summary.get("cost_usd", 0.0)),
        )

    def unstored(self) -> set[str]:
        """Sessions received that have no run in the store."""
        return set(self._requests) - set(self._runs)

    async def settle(self) -> None:
        """Import every session that waits to be, now (before the endpoint stops)."""
        for session in list(self._pending):
            self._pending.pop(session).cancel()
            self._start_import(session)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def application(receiver: Receiver) -> Any:
    """The aiohttp application of the endpoint."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return web.json_response({"message": "request too large"}, status=413)
        body = await request.read()
        kind = request.content_type
        try:
            document = decode(path, body, kind, request.headers.get("Content-Encoding", "").lower())
        except BadRequestError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        if document:
            receiver.schedule(receiver.receive(document))
        if kind == "application/x-protobuf":
            return web.Response(body=_message(path, 1).SerializeToString(), content_type=kind)
        return web.json_response({})

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    for path in _SIGNALS:
        app.router.add_post(path, handle)

    async def settle(_: web.Application) -> None:
        await receiver.settle()

    app.on_shutdown.append(settle)
    return app


async def serve(
    receiver: Receiver, host: str, port: int, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve the endpoint on ``host:port`` until cancelled; ``on_ready`` gets its URL once it listens."""
    from aiohttp import web

    runner = web.AppRunner(application(receiver))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and getattr(server, "sockets", None):
        bound = server.sockets[0].getsockname()[1]
    if on_ready is not None:
        on_ready(f"http://{host}:{bound}")
    # A session received but never stored (the receiver was killed before its import) is stored now.
    receiver.schedule(receiver.unstored())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await receiver.settle()
        await runner.cleanup()
