"""OpenTelemetry in and out: runs as OTLP spans (to a file, live, into a real receiver), and Claude Code's own
telemetry (OTLP logs) as runs, through ``import otel`` and the ``otel receive`` endpoint.

The real parts: Arize Phoenix as the receiver the spans go to and are read back from (its own venv, named
by ``CYCLEPLAN_PHOENIX``, which ``.ci/run`` sets up), and the Claude Code CLI of the claude extra, run
offline against the emulator with its OTLP exporter pointed at ``otel receive``. Each skips, saying why,
where it cannot run.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import socket
import subprocess
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Event, Plan
from cycleplan.executor import ExecuteOptions, execute, resume
from cycleplan.executor import events as ev
from cycleplan.planner import plan
from cycleplan.store import RunStore

otel_proto = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra is not installed: pip install 'cycleplan[otel]'",
)

from cycleplan.workflows.live_export import LiveExport, endpoint_settings  # noqa: E402
from cycleplan.workflows.telemetry import GENAI_SEMCONV, otlp_json, span_id, trace_id  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

FLAKY = """
    name: flaky spans
    roles:
      dev:
        lanes: 2
        model: claude-sonnet-4-5
        cycle: {median_min: 1, p90_min: 2}
        failure: {probability_per_cycle: 0.3, max_retries: 1}
    tasks:
      - {id: api, role: dev, cycles: 3, emits: {schema_ready: 1}}
      - {id: ui, role: dev, cycles: 2, waits: {schema_ready: 1}}
      - {id: docs, role: dev, cycles: 2, after: [api]}
"""

FAST = 5_000.0


def _plan() -> Plan:
    return plan(parse_scenario(textwrap.dedent(FLAKY)))


def _options(**extra: Any) -> ExecuteOptions:
    return ExecuteOptions(agent="emulated", time_scale=FAST, retry_backoff_s=0.0, seed=3, **extra)


def _trace(store: Path, run_id: str) -> list[Event]:
    with RunStore(store) as runs:
        return runs.trace(run_id)


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span for part in document["resourceSpans"] for scope in part["scopeSpans"] for span in scope["spans"]
    ]


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in span.get("attributes", []):
        value = item["value"]
        (kind, raw), *_ = value.items()
        found[item["key"]] = int(raw) if kind == "intValue" else raw
    return found


def _cycles(trace: list[Event]) -> dict[tuple[str, int, int], dict[str, Any]]:
    return {
        (e.target_id, int(e.metadata["cycle"]), int(e.metadata["attempt"])): dict(e.metadata)
        for e in trace
        if e.action == ev.CYCLE_COMPLETED
    }


USAGE = {
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "cycleplan.usage.cache_creation_input_tokens": "cache_creation_input_tokens",
    "cycleplan.usage.cache_read_input_tokens": "cache_read_input_tokens",
}


def _check_spans(run_id: str, trace: list[Event], spans: list[dict[str, Any]]) -> None:
    """One span per task and per attempt, every parent present, usage equal to the store's."""
    trace_hex = f"{trace_id(run_id):032x}"
    assert {span["traceId"] for span in spans} == {trace_hex}
    ids = {span["spanId"] for span in spans}
    assert len(ids) == len(spans), "a span sent twice"
    roots = [span for span in spans if not span.get("parentSpanId")]
    assert [root["name"] for root in roots] == ["run"]
    assert all(span["parentSpanId"] in ids for span in spans if span.get("parentSpanId"))
    # A task cancelled before it started (its dependency failed) is a span too, of no length.
    tasks = {e.target_id for e in trace if e.action in (ev.TASK_STARTED, ev.TASK_CANCELLED)}
    agents = [span for span in spans if span["name"].startswith("invoke_agent ")]
    assert sorted(_attributes(span)["gen_ai.agent.name"] for span in agents) == sorted(tasks)
    by_id = {span["spanId"]: span for span in spans}
    cycles = _cycles(trace)
    attempts = [span for span in spans if span["name"].startswith("cycle ")]
    assert len(attempts) == len(cycles)
    for span in attempts:
        attributes = _attributes(span)
        key = (attributes["cycleplan.task"], attributes["cycleplan.cycle"], attributes["cycleplan.attempt"])
        meta = cycles[key]
        assert span["spanId"] == f"{span_id(run_id, 'cycle/{}/{}/{}'.format(*key)):016x}"
        assert _attributes(by_id[span["parentSpanId"]])["gen_ai.agent.name"] == key[0]
        for attribute, field in USAGE.items():
            assert attributes[attribute] == int(meta.get(field) or 0), (key, attribute)
        assert attributes["cycleplan.cost_usd"] == pytest.approx(float(meta["cost_usd"]))
        failed = span.get("status", {}).get("code") == 2
        assert failed == bool(meta.get("failed")), key
        if failed:
            assert span["status"]["message"] == meta["error"]
    calls = [span for span in spans if span["name"].startswith("chat ")]
    assert len(calls) == len(cycles)  # the emulated agent: one Messages API call per attempt
    for call in calls:
        parent = _attributes(by_id[call["parentSpanId"]])
        assert _attributes(call)["gen_ai.operation.name"] == "chat"
        for attribute in USAGE:
            assert _attributes(call)[attribute] == parent[attribute]


def test_a_run_exports_as_one_trace_of_task_attempt_and_call_spans(tmp_path: Path, cli: str) -> None:
    store = tmp_path / "runs.db"
    result = execute(_plan(), _options(), store=store, progress="none")
    trace = _trace(store, result.run_id)
    assert any(e.metadata.get("failed") for e in trace if e.action == ev.CYCLE_COMPLETED)
    document = otlp_json(result.run_id, trace, scenario="flaky spans")
    _check_spans(result.run_id, trace, _spans(document))
    # The same run gives the same spans, ids and all.
    assert otlp_json(result.run_id, trace, scenario="flaky spans") == document
    (resource,) = document["resourceSpans"]
    assert resource["schemaUrl"].endswith(GENAI_SEMCONV)
    assert {"key": "service.name", "value": {"stringValue": "cycleplan"}} in resource["resource"][
        "attributes"
    ]
    root = next(span for span in _spans(document) if span["name"] == "run")
    assert _attributes(root)["cycleplan.run.status"] == result.status

    out = tmp_path / "run.json"
    done = subprocess.run(
        [cli, "export", result.run_id, "--format", "otlp", "-o", str(out), "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == document
    assert f"wrote {len(_spans(document))} spans" in done.stderr


def test_a_resumed_run_continues_the_same_trace(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    first = execute(_plan(), _options(budget_usd=0.08), store=store, progress="none")
    assert first.status == "interrupted"
    before = {span["spanId"]: span for span in _spans(otlp_json(first.run_id, _trace(store, first.run_id)))}
    done = resume(first.run_id, store=store, progress="none", budget_usd=1_000.0)
    assert done.status in ("complete", "failed")
    trace = _trace(store, first.run_id)
    after = {span["spanId"]: span for span in _spans(otlp_json(first.run_id, trace))}
    _check_spans(first.run_id, trace, list(after.values()))
    # Every attempt exported before the resume is the same span after it, in the same trace.
    attempts = [key for key, span in before.items() if span["name"].startswith(("cycle ", "chat "))]
    assert attempts and all(after[key] == before[key] for key in attempts)
    assert {span["traceId"] for span in after.values()} == {span["traceId"] for span in before.values()}
    root = next(span for span in after.values() if span["name"] == "run")
    assert [event["name"] for event in root.get("events", [])] == ["interrupted", "resumed"]


def test_nothing_secret_reaches_an_attribute(tmp_path: Path) -> None:
    key = "sk-ant-api03-" + "x" * 40
    run = "20250101-000000-abcdef"
    trace = [
        ev.make_event(
            ev.RUN_ACTOR, run, run, 1_000.0, action=ev.RUN_STARTED, agent="command", time_scale=1.0
        ),
        ev.make_event("dev-1", "deploy", run, 1_001.0, action=ev.TASK_STARTED, role="dev", cycles=1),
        ev.make_event(
            "dev-1",
            "deploy",
            run,
            1_500.0,
            action=ev.CYCLE_COMPLETED,
            cycle=1,
            attempt=1,
            failed=True,
            started_at=1_001.0,
            duration_ms=499.0,
            error=f"exit 1: curl -H 'x-api-key: {key}'",
            sync_wait_ms=120.0,
        ),
        ev.make_event("dev-1", "deploy", run, 1_501.0, action=ev.TASK_FAILED, error=f"gave up on {key}"),
        ev.make_event(ev.RUN_ACTOR, run, run, 1_502.0, action=ev.RUN_COMPLETE, status="failed"),
    ]
    document = otlp_json(run, trace)
    text = json.dumps(document)
    assert key not in text and "[redacted]" in text
    spans = {span["name"]: span for span in _spans(document)}
    assert spans["cycle 1"]["status"]["code"] == 2
    assert spans["invoke_agent deploy"]["status"] == {"code": 2, "message": "gave up on [redacted]"}
    (wait,) = spans["cycle 1"]["events"]
    assert wait["name"] == "wait" and _attributes(wait) == {
        "cycleplan.wait.cause": "sync",
        "cycleplan.wait.ms": 120.0,
    }


def test_forecasts_and_predictions_become_p10_p50_p90_attributes(tmp_path: Path, cli: str) -> None:
    store = tmp_path / "runs.db"
    scenario = tmp_path / "flaky.yaml"
    scenario.write_text(textwrap.dedent(FLAKY))
    prediction = tmp_path / "prediction.json"
    for args in (
        ["simulate", str(scenario), "-n", "200", "-o", str(prediction)],
        ["execute", str(scenario), "--agent", "emulated", "--time-scale", "5000", "--store", str(store)],
        ["export", "latest", "--format", "otlp", "-p", str(prediction), "-o", str(tmp_path / "run.json")],
    ):
        done = subprocess.run(
            [cli, *args, *(["--store", str(store)] if args[0] == "export" else [])],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode in (0, 1), done.stderr  # a flaky run may fail
    spans = _spans(json.loads((tmp_path / "run.json").read_text()))
    root = _attributes(next(span for span in spans if span["name"] == "run"))
    predicted = json.loads(prediction.read_text())
    for name, summary in (("makespan_min", "makespan_min"), ("cost_usd", "cost_usd")):
        for p in ("p10", "p50", "p90"):
            assert root[f"cycleplan.prediction.{name}.{p}"] == pytest.approx(
                predicted["summaries"][summary][p]
            )
    # The live forecast the executor recorded, as it stood last.
    with RunStore(store) as runs:
        trace = runs.trace(runs.resolve("latest"))
    last = [e.metadata for e in trace if e.action == ev.FORECAST_UPDATED][-1]
    assert root["cycleplan.forecast.finish_min.p90"] == pytest.approx(last["finish_min_from_start"]["p90"])
    api = _attributes(next(span for span in spans if span["name"] == "invoke_agent api"))
    assert api["cycleplan.prediction.duration_min.p50"] == pytest.approx(
        predicted["tasks"]["api"]["duration"]["p50"]
    )


# --------------------------------------------------------------------------------------------------
# Live export


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Collector:
    """A bare OTLP/HTTP traces endpoint on loopback that keeps what it is sent, decoded by the OTLP
    protobuf definitions (JSON bodies too)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        from aiohttp import web
        from google.protobuf.json_format import MessageToDict

        from cycleplan.workflows.telemetry import request_json

        async def traces(request: web.Request) -> web.Response:
            body = await request.read()
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if request.content_type == "application/json":
                document = json.loads(body)
            else:
                message = otel_proto.ExportTraceServiceRequest()
                message.ParseFromString(body)
                document = request_json(message)
                assert MessageToDict(message)
            self.requests.append((request.content_type, document))
            return web.json_response({})

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app)
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[dict[str, Any]]:
        return [span for _, document in self.requests for span in _spans(document)]

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.stop()


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_live_export_sends_each_span_once_across_a_resume(
    tmp_path: Path, collector: Collector, protocol: str
) -> None:
    store = tmp_path / "runs.db"
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    settings = endpoint_settings(collector.url, environ)
    live = LiveExport(store, settings)
    first = execute(_plan(), _options(budget_usd=0.08), store=store, progress="none", listeners=[live])
    assert first.status == "interrupted" and live.close()["errors"] == []
    again = LiveExport(store, settings)
    resume(first.run_id, store=store, progress="none", budget_usd=1_000.0, listeners=[again])
    report = again.close()
    assert report["errors"] == []
    trace = _trace(store, first.run_id)
    sent = collector.spans()
    assert {kind for kind, _ in collector.requests} == {
        "application/json" if protocol == "http/json" else "application/x-protobuf"
    }
    _check_spans(first.run_id, trace, sent)
    # What was sent live is what a file export holds, span for span.
    exported = {span["spanId"]: span for span in _spans(otlp_json(first.run_id, trace))}
    assert {span["spanId"] for span in sent} == set(exported)
    for span in sent:
        if span["name"].startswith(("cycle ", "chat ")):
            assert span == exported[span["spanId"]]


def test_with_export_off_nothing_of_opentelemetry_is_loaded(tmp_path: Path, cli: str) -> None:
    scenario = tmp_path / "flaky.yaml"
    scenario.write_text(textwrap.dedent(FLAKY))
    program = textwrap.dedent(
        f"""
        import sys
        from cycleplan.cli import main
        sys.argv = ["cycleplan", "execute", {str(scenario)!r}, "--agent", "emulated", "--time-scale", "5000",
                    "--store", {str(tmp_path / "runs.db")!r}, "--progress", "none", "-q"]
        try:
            main()
        except SystemExit:
            pass
        # (The anthropic SDK imports the OpenTelemetry API for its own tracing when it is installed.)
        ours = ("opentelemetry.proto", "opentelemetry.sdk", "google.protobuf",
                "cycleplan.workflows.telemetry", "cycleplan.workflows.live_export")
        loaded = sorted(name for name in sys.modules if name.startswith(ours))
        print("LOADED", loaded, file=sys.stderr)
        """
    )
    done = subprocess.run(
        [str(Path(cli).with_name("python")), "-c", program], capture_output=True, text=True, timeout=120
    )
    assert "LOADED []" in done.stderr, done.stderr[-2000:]


def test_live_export_honours_the_otel_variables() -> None:
    settings = endpoint_settings(
        None,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-team=agents",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
        },
    )
    assert settings.url == "https://collector.example:4318/v1/traces"
    assert settings.headers == (("authorization", "Bearer abc"), ("x-team", "agents"))
    assert (settings.protocol, settings.gzip, settings.timeout_s, settings.delay_s) == (
        "http/json",
        True,
        2.5,
        1.0,
    )
    traces = endpoint_settings(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:1/custom"})
    assert (traces.url, traces.protocol) == ("http://h:1/custom", "http/protobuf")
    assert endpoint_settings(None, {}).url == "http://localhost:4318/v1/traces"


# --------------------------------------------------------------------------------------------------
# A real receiver: Arize Phoenix


def _phoenix() -> str | None:
    command = os.environ.get("CYCLEPLAN_PHOENIX", "")
    return command if command and Path(command).exists() else None


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[str]:
    command = _phoenix()
    if command is None:
        pytest.skip(
            "Arize Phoenix is not installed: CYCLEPLAN_PHOENIX names its phoenix command "
            "(.ci/run sets up .venv-phoenix with `pip install arize-phoenix`)"
        )
    port, grpc = _free_port(), _free_port()
    work = tmp_path / "phoenix"
    work.mkdir()
    env = {
        **os.environ,
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (tmp_path / "phoenix.log").open("w")
    server = subprocess.Popen([command, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "phoenix.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Phoenix did not come up within 120 s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _phoenix_spans(url: str, expected: int) -> list[dict[str, Any]]:
    """Every span of Phoenix's default project, read back through its REST API."""
    deadline = time.monotonic() + 60
    while True:
        spans: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
            with urllib.request.urlopen(f"{url}/v1/projects/default/spans?{query}", timeout=10) as response:
                page = json.load(response)
            spans += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def test_a_run_sent_to_phoenix_comes_back_span_for_span(tmp_path: Path, phoenix: str, cli: str) -> None:
    scenario = tmp_path / "flaky.yaml"
    scenario.write_text(textwrap.dedent(FLAKY))
    store = tmp_path / "runs.db"
    done = subprocess.run(
        [
            *[cli, "execute", str(scenario), "--agent", "emulated", "--time-scale", "5000", "--seed", "3"],
            *["--store", str(store), "--otlp-endpoint", phoenix, "--progress", "none"],
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "200"},
    )
    assert done.returncode in (0, 1), done.stderr
    assert "warning" not in done.stderr, done.stderr
    with RunStore(store) as runs:
        run_id = runs.resolve("latest")
        trace = runs.trace(run_id)
    exported = _spans(otlp_json(run_id, trace))
    back = _phoenix_spans(phoenix, len(exported))
    assert f"sent {len(exported)} spans" in done.stderr
    # Phoenix's spans in OTLP/JSON's words, then the same checks as a file export.
    as_otlp = []
    for span in back:
        attributes = [
            {"key": key, "value": _any_value(value)} for key, value in _flat(span["attributes"]).items()
        ]
        status = {"code": 2, "message": span["status_message"]} if span["status_code"] == "ERROR" else {}
        as_otlp.append(
            {
                "traceId": span["context"]["trace_id"],
                "spanId": span["context"]["span_id"],
                "parentSpanId": span.get("parent_id") or "",
                "name": span["name"],
                "attributes": attributes,
                "status": status,
            }
        )
    _check_spans(run_id, trace, as_otlp)
    assert len(as_otlp) == len(exported)


def _flat(attributes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Phoenix may nest dotted attribute names; flatten them back."""
    flat: dict[str, Any] = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


# --------------------------------------------------------------------------------------------------
# Bad options


def test_bad_telemetry_options_exit_2_with_a_message(tmp_path: Path, cli: str) -> None:
    scenario = tmp_path / "spans.yaml"
    scenario.write_text(textwrap.dedent(FLAKY))
    for args, message in (
        (
            ["execute", str(scenario), "--agent", "emulated", "--otlp-endpoint", "localhost:4318"],
            "http(s) URL",
        ),
        (["otel", "receive", "--port", "70000"], "a port from 0 to 65535"),
        (["import", "otel", str(scenario)], "not an OTLP/JSON export request"),
    ):
        done = subprocess.run(
            [cli, *args, "--store", str(tmp_path / "runs.db")], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------------------------------
# Claude Code's telemetry in

SAMPLE = Path(__file__).parent / "data" / "otel" / "claude-code-logs.jsonl"
"""Real telemetry of the Claude Code CLI (the claude extra's), run against the emulator: a session of
two turns whose first launches a subagent; its log events."""
TRACES = SAMPLE.with_name("claude-code-traces.jsonl")
"""The same session's spans (Claude Code's tracing)."""


def _raw_events(path: Path) -> list[dict[str, Any]]:
    """The sample's log records as plain attribute dicts, read here without the importer."""
    found = []
    for line in path.read_text().splitlines():
        for part in json.loads(line)["resourceLogs"]:
            for scope in part["scopeLogs"]:
                for record in scope["logRecords"]:
                    found.append(
                        {item["key"]: next(iter(item["value"].values())) for item in record["attributes"]}
                    )
    return found


def _imported_run(store: Path, source: Path, cli: str, kind: str) -> tuple[dict[str, Any], list[Event]]:
    done = subprocess.run(
        [cli, "import", kind, str(source), "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    return summary, _trace(store, summary["run_id"])


def _calls(trace: list[Event]) -> dict[tuple[str, int], list[list[int]]]:
    """Each turn's calls: tokens [input, cache 5m, cache 1h, cache read, output] per call."""
    return {
        (e.target_id, int(e.metadata["cycle"])): [
            [int(x) for x in row[1:6]] for row in e.metadata["api_calls"]
        ]
        for e in trace
        if e.action == ev.CYCLE_COMPLETED
    }


def test_claude_code_telemetry_imports_as_its_events_say(tmp_path: Path, cli: str) -> None:
    summary, trace = _imported_run(tmp_path / "runs.db", SAMPLE, cli, "otel")
    raw = _raw_events(SAMPLE)
    requests = [e for e in raw if e["event.name"] == "api_request"]
    assert summary["imported"]["kind"] == "otel"
    assert summary["imported"]["calls"] == len({e["request_id"] for e in requests})
    assert (
        summary["imported"]["turns"] == sum(1 for e in raw if e["event.name"] == "user_prompt") + 1
    )  # and the subagent's
    assert summary["imported"]["subagents"] == len({e["agent_id"] for e in requests if "agent_id" in e})
    fields = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    assert summary["tokens_total"] == sum(int(e[name]) for e in requests for name in fields)
    # Priced by the project's table, the calls cost what Claude Code itself reported.
    assert summary["cost_usd"] == pytest.approx(sum(float(e["cost_usd"]) for e in requests), rel=1e-6)
    started = {e.target_id: e.metadata for e in trace if e.action == ev.TASK_STARTED}
    header = trace[0].metadata["tasks"]
    (child,) = [task for task, info in header.items() if info.get("spawned_by")]
    assert header[child]["spawned_by"][0] in started and child.endswith(
        next(e["agent_id"] for e in requests if "agent_id" in e)
    )
    per_call = sorted(row for rows in _calls(trace).values() for row in rows)
    assert per_call == sorted(
        [
            int(e["input_tokens"]),
            int(e["cache_creation_5m_tokens"]),
            int(e["cache_creation_1h_tokens"]),
            int(e["cache_read_tokens"]),
            int(e["output_tokens"]),
        ]
        for e in requests
    )


def test_claude_code_traces_alone_import_as_its_logs_do(tmp_path: Path, cli: str) -> None:
    from_logs, logs = _imported_run(tmp_path / "logs.db", SAMPLE, cli, "otel")
    from_traces, traces = _imported_run(tmp_path / "traces.db", TRACES, cli, "otel")
    assert _calls(traces) == _calls(logs)
    for name in ("calls", "turns", "subagents", "sessions"):
        assert from_traces["imported"][name] == from_logs["imported"][name], name
    assert from_traces["cost_usd"] == pytest.approx(from_logs["cost_usd"], rel=1e-9)
    # Both at once: the logs are kept, the same calls are not counted twice.
    both = tmp_path / "both"
    both.mkdir()
    shutil.copy(SAMPLE, both)
    shutil.copy(TRACES, both)
    from_both, twice = _imported_run(tmp_path / "both.db", both, cli, "otel")
    assert _calls(twice) == _calls(logs) and from_both["tokens_total"] == from_logs["tokens_total"]


class ReceiverProcess:
    """``cycleplan otel receive`` in a process of its own, on a free loopback port."""

    def __init__(self, cli: str, store: Path) -> None:
        self.store = store
        store.parent.mkdir(parents=True, exist_ok=True)
        self.log = store.parent / "receiver.log"
        self._log = self.log.open("w")
        self.process = subprocess.Popen(
            [cli, "otel", "receive", "--port", "0", "--store", str(store)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        deadline = time.monotonic() + 60
        while "listening on" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "otel receive did not start"
            time.sleep(0.1)
        self.url = self.log.read_text().split("listening on ", 1)[1].split()[0]

    def post(self, path: str, body: bytes, kind: str = "application/json", zipped: bool = False) -> int:
        headers = {"Content-Type": kind, **({"Content-Encoding": "gzip"} if zipped else {})}
        data = gzip.compress(body) if zipped else body
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def run_with(self, calls: int) -> tuple[str, list[Event]]:
        """The run the receiver made once it holds ``calls`` calls (it imports as batches arrive)."""
        deadline = time.monotonic() + 60
        while True:
            if self.store.exists():
                with RunStore(self.store) as runs:
                    records = runs.runs()
                    if (
                        len(records) == 1
                        and (records[0].summary or {}).get("imported", {}).get("calls") == calls
                    ):
                        return records[0].run_id, runs.trace(records[0].run_id)
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"no run of {calls} calls: {self.log.read_text()[-1500:]}"
            time.sleep(0.2)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.communicate(timeout=30)
        self._log.close()


def test_otel_receive_journals_each_request_and_keeps_one_run_per_session(tmp_path: Path, cli: str) -> None:
    store = tmp_path / "team" / "runs.db"
    receiver = ReceiverProcess(cli, store)
    lines = SAMPLE.read_text().splitlines()
    raw = _raw_events(SAMPLE)
    calls = len({e["request_id"] for e in raw if e["event.name"] == "api_request"})
    try:
        for number, line in enumerate(lines):
            assert receiver.post("/v1/logs", line.encode(), zipped=number % 2 == 0) == 200
        assert receiver.post("/v1/metrics", b"{}") == 200
        assert receiver.post("/v1/logs", b"not json") == 400
        run_id, trace = receiver.run_with(calls)
    finally:
        receiver.stop(kill=True)  # nothing is lost: the journal has every request
    journal = store.parent / "otel-received.jsonl"
    assert len(journal.read_text().splitlines()) == len(lines)
    # What the receiver stored is what importing the same requests from a file gives.
    summary, imported = _imported_run(tmp_path / "file.db", SAMPLE, cli, "otel")
    assert _calls(trace) == _calls(imported)
    with RunStore(store) as runs:
        assert runs.run(run_id).summary["tokens_total"] == summary["tokens_total"]
    # A restarted receiver reads its journal back and replaces the session's run, not adds one.
    again = ReceiverProcess(cli, store)
    try:
        assert "1 sessions already received" in again.log.read_text()
        assert again.post("/v1/logs", lines[-1].encode()) == 200
        deadline = time.monotonic() + 30
        while True:
            with RunStore(store) as runs:
                ids = [record.run_id for record in runs.runs()]
            if ids != [run_id]:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert len(ids) == 1
        _, retrace = again.run_with(calls)
        assert _calls(retrace) == _calls(trace)
    finally:
        again.stop()
    # Killed before it imported what it had just received: the next receiver imports it from the journal.
    hasty = ReceiverProcess(cli, tmp_path / "hasty" / "runs.db")
    for line in lines:
        assert hasty.post("/v1/logs", line.encode()) == 200
    hasty.stop(kill=True)
    later = ReceiverProcess(cli, hasty.store)
    try:
        _, recovered = later.run_with(calls)
        assert _calls(recovered) == _calls(trace)
    finally:
        later.stop()


# --------------------------------------------------------------------------------------------------
# The real Claude Code CLI's telemetry, received as it runs


def _bundled_cli() -> str | None:
    from cycleplan.executor.claude_sdk import bundled_cli

    return bundled_cli()


LOOP = (
    "{per_cycle: {median: 3, p90: 5}, growth: {median: 400, p90: 1500}, output: {median: 100, p90: 300}, "
    "minutes: {median_min: 0.005, p90_min: 0.008}}"
)
SESSION = f"""
    name: a session with a subagent
    roles:
      main: {{model: claude-sonnet-4-5, calls: {LOOP}}}
      explorer: {{model: claude-haiku-4-5, calls: {LOOP}}}
    tasks:
      - {{id: session, role: main, cycles: 2, prompt: Work on the issue.}}
      - {{id: explore, role: explorer, cycles: 1, spawned_by: {{task: session, cycle: 1}}, prompt: Explore.}}
"""


@pytest.mark.skipif(
    _bundled_cli() is None,
    reason="the claude extra (claude-agent-sdk, which bundles Claude Code) is not installed: "
    "pip install 'cycleplan[claude]'",
)
@pytest.mark.parametrize("protocol", ["http/json", "http/protobuf"])
def test_real_claude_code_telemetry_makes_the_run_its_transcripts_make(
    tmp_path: Path, cli: str, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = ReceiverProcess(cli, tmp_path / "received" / "runs.db")
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.py").write_text("".join(f"def step_{i}():\n    return {i}\n\n" for i in range(200)))
    telemetry = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_LOGS_EXPORT_INTERVAL": "500",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_EXPORT_INTERVAL": "500",
    }
    for name, value in telemetry.items():
        monkeypatch.setenv(name, value)
    try:
        result = execute(
            plan(parse_scenario(textwrap.dedent(SESSION))),
            ExecuteOptions(
                agent="claude-code",
                emulator=True,
                claude_client="sdk",
                workdir=str(work),
                pass_env=[name for name in telemetry if name.startswith("OTEL_")],
            ),
            store=tmp_path / "executed.db",
            progress="none",
        )
        assert result.status == "complete"
        transcripts = Path(result.summary["transcripts"])
        from_transcripts, transcript_trace = _imported_run(
            tmp_path / "imported.db", transcripts, cli, "claude-code"
        )
        calls = from_transcripts["imported"]["calls"]
        run_id, received = receiver.run_with(calls)
    finally:
        receiver.stop()
    with RunStore(receiver.store) as runs:
        from_telemetry = runs.run(run_id).summary
    assert from_telemetry is not None
    # The same calls, turn by turn, with the same tokens; the same turns, subagent and cost.
    assert _calls(received) == _calls(transcript_trace)
    for name in ("calls", "turns", "subagents", "sessions", "responses"):
        assert from_telemetry["imported"][name] == from_transcripts["imported"][name], name
    assert from_telemetry["tokens_total"] == from_transcripts["tokens_total"]
    assert from_telemetry["cost_usd"] == pytest.approx(from_transcripts["cost_usd"], rel=1e-9)
    spawned = {
        task: info["spawned_by"]
        for task, info in received[0].metadata["tasks"].items()
        if info.get("spawned_by")
    }
    assert spawned == {
        task: info["spawned_by"]
        for task, info in transcript_trace[0].metadata["tasks"].items()
        if info.get("spawned_by")
    }
    # Agent time differs a little: telemetry stamps a call when its response completes (less its time
    # to first token, here), a transcript when its first line is written.
    assert from_telemetry["makespan_min"] == pytest.approx(from_transcripts["makespan_min"], rel=0.25)
    # The spans Claude Code sent beside its logs, alone, make the same run too.
    journal = receiver.store.parent / "otel-received.jsonl"
    spans_only = tmp_path / "spans.jsonl"
    spans_only.write_text(
        "".join(line + "\n" for line in journal.read_text().splitlines() if '"resourceSpans"' in line[:20])
    )
    _, from_spans = _imported_run(tmp_path / "spans.db", spans_only, cli, "otel")
    assert _calls(from_spans) == _calls(transcript_trace)
