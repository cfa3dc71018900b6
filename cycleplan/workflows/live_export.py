"""Live export: a run's spans sent over OTLP/HTTP while it goes, with the executor barely paying for it.

:class:`LiveExport` is an executor listener (:data:`cycleplan.executor.run.Listener`). It starts, before
the run, a separate process at the lowest priority (Linux's idle scheduling class: it runs on
CPU time nobody else wants) that does all the span work: it reads the run's
events from the store itself (a reader beside the executor, as SQLite's WAL allows), builds the spans of
what is over (:class:`~cycleplan.workflows.telemetry.SpanBuilder`), encodes them and sends them, in
batches, every ``OTEL_BSP_SCHEDULE_DELAY`` milliseconds (5,000 by default) and at once when the run
ends. The executor only tells it, on its first event, which run to follow, and when the run has ended:
per event, the listener costs one call and a comparison. :meth:`LiveExport.close` waits for the last
batch to go and says how many spans went and what failed.

Where to send, and how, follows OpenTelemetry's exporter variables: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
(used as it is) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` added), ``..._HEADERS``,
``..._PROTOCOL`` (``http/protobuf``, the default, or ``http/json``; gRPC is not offered),
``..._COMPRESSION`` (``gzip``) and ``..._TIMEOUT`` (milliseconds), each with its ``TRACES_`` variant
first; ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` spans at most per request (512). An endpoint given to
:func:`endpoint_settings` replaces the endpoint variables and keeps the rest.

A span goes once what it stands for is over: an attempt's (and its calls' and tools') when the attempt
ends, a task's when the task ends, the root's when the run does; a run stopped and never resumed has
sent no root (``cycleplan export --format otlp`` writes the whole trace at any time). A resumed run
continues its trace: the process follows the resumed part and skips the spans of what was over before it
(the executor that ran that part sent them), so that no span is sent twice.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from cycleplan.core.model import Event
from cycleplan.executor import events as ev

DEFAULT_ENDPOINT = "http://localhost:4318"
PROTOCOLS = ("http/protobuf", "http/json")
DEFAULT_DELAY_MS = 5_000.0
DEFAULT_BATCH = 512
CLOSE_TIMEOUT_S = 60.0
"""How long :meth:`LiveExport.close` waits for the last batch before it gives up on it."""


_RUN_ENDS = frozenset({ev.RUN_COMPLETE, ev.RUN_INTERRUPTED})


class LiveExportError(ValueError):
    """The export's settings are wrong (an endpoint that is no http(s) URL, an unknown protocol)."""


def _variable(name: str, environ: dict[str, str]) -> str | None:
    """``OTEL_EXPORTER_OTLP_TRACES_<name>``, else ``OTEL_EXPORTER_OTLP_<name>``, else None (the names
    as the OpenTelemetry SDK declares them)."""
    from opentelemetry.sdk import environment_variables as names

    for variable in (
        getattr(names, f"OTEL_EXPORTER_OTLP_TRACES_{name}"),
        getattr(names, f"OTEL_EXPORTER_OTLP_{name}"),
    ):
        value = environ.get(variable, "").strip()
        if value:
            return value
    return None


def http_url(text: str) -> bool:
    """Whether ``text`` is an http or https URL with a host."""
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def traces_url(base: str) -> str:
    """The traces path of an OTLP/HTTP base URL (``http://host:4318`` -> ``.../v1/traces``)."""
    trimmed = base.rstrip("/")
    return trimmed if trimmed.endswith("/v1/traces") else f"{trimmed}/v1/traces"


@dataclass(frozen=True)
class Settings:
    """Where and how spans are sent."""

    url: str
    protocol: str = "http/protobuf"
    headers: tuple[tuple[str, str], ...] = ()
    gzip: bool = False
    timeout_s: float = 10.0
    delay_s: float = DEFAULT_DELAY_MS / 1000
    batch: int = DEFAULT_BATCH
    build_s: float = 0.05
    """How often the exporting process reads new events and builds and encodes their spans."""

    def to_argv(self) -> list[str]:
        return ["--settings", json.dumps(self.__dict__)]


def endpoint_settings(endpoint: str | None, environ: dict[str, str] | None = None) -> Settings:
    """The export's settings: ``endpoint`` (an OTLP/HTTP base URL) or, when None, the endpoint the
    ``OTEL_EXPORTER_OTLP_*`` variables name; everything else from those variables. Raises
    :class:`LiveExportError` with a one-line message when they are wrong."""
    env = dict(os.environ if environ is None else environ)
    try:
        import opentelemetry.sdk.environment_variables  # noqa: F401
    except ImportError:
        from cycleplan.workflows.telemetry import OTEL_MISSING

        raise LiveExportError(OTEL_MISSING) from None
    if endpoint is not None:
        if not http_url(endpoint):
            raise LiveExportError(
                f"--otlp-endpoint {endpoint}: give an http(s) URL, such as http://localhost:4318 "
                "(or env: the OTEL_EXPORTER_OTLP_* variables)"
            )
        url = traces_url(endpoint)
    elif (traces := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()) != "":
        url = traces
    else:
        url = traces_url(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT)
    if not http_url(url):
        raise LiveExportError(f"OTLP endpoint {url}: give an http(s) URL, such as http://localhost:4318")
    protocol = _variable("PROTOCOL", env) or "http/protobuf"
    if protocol not in PROTOCOLS:
        raise LiveExportError(
            f"OTLP protocol {protocol}: cycleplan sends OTLP over HTTP; set OTEL_EXPORTER_OTLP_PROTOCOL "
            f"to {' or '.join(PROTOCOLS)}"
        )
    from opentelemetry.util.re import parse_env_headers

    headers = list(parse_env_headers(_variable("HEADERS", env) or "", liberal=True).items())
    timeout = _number(_variable("TIMEOUT", env), 10_000.0) / 1000
    delay = _number(env.get("OTEL_BSP_SCHEDULE_DELAY"), DEFAULT_DELAY_MS) / 1000
    batch = int(_number(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), DEFAULT_BATCH))
    return Settings(
        url=url,
        protocol=protocol,
        headers=tuple(headers),
        gzip=(_variable("COMPRESSION", env) or "").lower() == "gzip",
        timeout_s=max(timeout, 0.1),
        delay_s=max(delay, 0.01),
        batch=max(batch, 1),
    )


def _number(text: str | None, default: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value > 0 else default


class LiveExport:
    """An executor listener that has the run's spans sent while it goes (see the module's docstring)."""

    def __init__(self, store: str | Path, settings: Settings) -> None:
        self.settings = settings
        self._run_id: str | None = None
        argv = [sys.executable, "-m", "cycleplan.workflows.live_export", "--store", str(store)]
        self._process: subprocess.Popen[str] | None = subprocess.Popen(
            [*argv, *settings.to_argv()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stdin: IO[str] | None = self._process.stdin

    def __call__(self, event: Event) -> None:
        if self._run_id is None:
            self._run_id = event.group_id
            self._say(f"run {event.group_id}")
        if event.action in _RUN_ENDS:
            self._say("flush")

    def _say(self, line: str) -> None:
        if self._stdin is None:
            return
        try:
            self._stdin.write(line + "\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._stdin = None

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> dict[str, Any]:
        """Let the last batch go and stop the process; what it sent (``spans``) and what failed
        (``errors``, at most a few lines)."""
        process, self._process = self._process, None
        if process is None:
            return {"spans": 0, "errors": []}
        self._stdin = None  # communicate() closes it: the process sends what is left and exits
        _ordinary_priority(process.pid)
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return {"spans": 0, "errors": [f"the last spans were not sent within {timeout_s:g} s"]}
        try:
            report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            lines = [line for line in err.strip().splitlines() if line.strip()]
            return {
                "spans": 0,
                "errors": [lines[-1] if lines else f"the exporter exited {process.returncode}"],
            }
        return report


def _ordinary_priority(pid: int = 0) -> None:
    """Back to the ordinary scheduling class, when the system allows it: the run is over and what is
    left to send should not wait for an idle CPU."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))


def _lower_priority() -> None:
    """Run only on CPU time nobody else wants (Linux's idle class), else at the lowest nice level."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


# --------------------------------------------------------------------------------------------------
# The exporting process


class _Sender:
    """Encodes spans as they are handed over and sends what waits in batches: protobuf requests of one
    type concatenated are one request (their repeated fields appended), so encoded parts wait as bytes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent = 0
        self.errors: list[str] = []
        self._parts: list[Any] = []
        self._waiting = 0
        self._last = time.monotonic()

    def add(self, run_id: str, spans: list[Any], scenario: str) -> None:
        from cycleplan.workflows.telemetry import otlp_request, request_json

        size = self.settings.batch
        for begin in range(0, len(spans), size):
            chunk = spans[begin : begin + size]
            request = otlp_request(run_id, chunk, scenario)
            if self.settings.protocol == "http/json":
                self._parts.append(request_json(request))
            else:
                self._parts.append(request.SerializeToString())
            self._waiting += len(chunk)
            if self._waiting >= size:
                self.send()

    def due(self) -> bool:
        return bool(self._parts) and time.monotonic() - self._last >= self.settings.delay_s

    def send(self) -> None:
        """Send what waits, as one request."""
        self._last = time.monotonic()
        if not self._parts:
            return
        parts, count = self._parts, self._waiting
        self._parts, self._waiting = [], 0
        if self.settings.protocol == "http/json":
            merged = {"resourceSpans": [part for document in parts for part in document["resourceSpans"]]}
            self._post(json.dumps(merged, separators=(",", ":")).encode(), "application/json", count)
        else:
            self._post(b"".join(parts), "application/x-protobuf", count)

    def _post(self, body: bytes, kind: str, count: int) -> None:
        headers = {"Content-Type": kind, **dict(self.settings.headers)}
        if self.settings.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        for attempt in range(3):
            request = urllib.request.Request(self.settings.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                    response.read()
                self.sent += count
                return
            except urllib.error.HTTPError as exc:
                # Retryable as the OTLP specification says: 429, 502, 503, 504.
                problem = f"{self.settings.url}: HTTP {exc.code} {exc.reason}"
                if exc.code not in (429, 502, 503, 504):
                    break
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = f"{self.settings.url}: {reason}"
            time.sleep(0.5 * 2**attempt)
        if len(self.errors) < 3:
            self.errors.append(f"{problem}; {count} spans not sent")


class _Follower:
    """Follows one run in the store and hands out the spans of what is over, once each."""

    def __init__(self, store: Path, run_id: str) -> None:
        from cycleplan.store import RunStore
        from cycleplan.workflows.telemetry import SpanBuilder

        self.store = RunStore(store, read_only=True)
        self.run_id = run_id
        self.scenario = self.store.run(run_id).scenario
        self.builder = SpanBuilder(run_id, None)
        self.read = 0
        self.first = True

    def spans(self) -> list[Any]:
        stored = list(self.store.iter_events(self.run_id, after=self.read))
        if stored:
            self.read = stored[-1].seq
        new = [row.event for row in stored]
        if self.first:
            self.first = False
            resumed = max((i for i, e in enumerate(new) if e.action == ev.RUN_RESUMED), default=None)
            if resumed is not None:
                # Sent by the executor that ran the part before the resume.
                for event in new[:resumed]:
                    self.builder.add(event)
                self.builder.ready()
                new = new[resumed:]
        for event in new:
            self.builder.add(event)
        return self.builder.ready()


def _exporter_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cycleplan.workflows.live_export")
    parser.add_argument("--store", required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args(argv)
    given = json.loads(args.settings)
    given["headers"] = tuple((str(name), str(value)) for name, value in given.get("headers", []))
    settings = Settings(**given)
    # Everything a pass needs, loaded while the run starts rather than when its first spans are due.
    import cycleplan.store  # noqa: F401
    import cycleplan.workflows.telemetry as telemetry

    telemetry.otlp_request("warm-up", [], "")
    _lower_priority()  # loaded (while the run starts): from now on, only CPU time nobody else wants
    lines: queue.Queue[str | None] = queue.Queue()

    def read_lines() -> None:
        for line in sys.stdin:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=read_lines, daemon=True).start()
    sender = _Sender(settings)
    follower: _Follower | None = None
    store = Path(args.store)
    ended = False
    # Spans are built and encoded as the events come (off the executor's process and at low priority),
    # and sent every schedule delay: what is left when the run ends is little.
    build_every = min(settings.delay_s, settings.build_s)
    while not ended:
        try:
            line = lines.get(timeout=build_every)
        except queue.Empty:
            line = "tick"
        if line is None:
            ended = True
        if line in ("flush", None):
            _ordinary_priority()
        elif line.startswith("run "):
            try:
                follower = _Follower(store, line[4:])
            except Exception as exc:  # a store it cannot read: say so at the end
                sender.errors.append(f"{store}: {exc}")
            continue
        if follower is not None:
            try:
                ready = follower.spans()
            except Exception as exc:  # the store busy or changing: the next pass reads again
                if ended and len(sender.errors) < 3:
                    sender.errors.append(f"{store}: {exc}")
                ready = []
            if ready:
                sender.add(follower.run_id, ready, follower.scenario)
        if line in ("flush", None) or sender.due():
            sender.send()
    print(json.dumps({"spans": sender.sent, "errors": sender.errors, "url": settings.url}))
    return 0


if __name__ == "__main__":
    status = _exporter_main(sys.argv[1:])
    sys.stdout.flush()
    # Everything is sent and said: skip the interpreter's teardown, which the executor would wait for.
    os._exit(status)
