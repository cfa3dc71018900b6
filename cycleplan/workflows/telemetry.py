"""A run as OpenTelemetry spans: what the tools teams already watch (Jaeger, Tempo, Phoenix, Honeycomb...)
see of a run in the store.

One trace per run. Its ids are derived from the run's id (the trace id) and from what each span stands
for (its span id), never drawn at random, so that a resumed run, a second export or a live export all
name the same spans the same way: a resumed run continues the same trace. The spans:

====================  ==============================================================================
``run``               the root: the run from ``run_started`` to ``run_complete`` (or its last event)
``invoke_agent TASK`` one per task, child of ``run``: from ``task_started`` to the event that ended it
``cycle N``           one per attempt at a cycle, child of its task (``cycleplan.attempt``; a failed
                      attempt has error status and its error as the status description)
``chat MODEL``        one per API call of the attempt (``api_calls``), child of its cycle, laid end to
                      end from the attempt's start; an attempt of one call with no per-call rows (the
                      anthropic and emulated agents) is one call
``execute_tool NAME`` one per tool call the backend reported (``progress_update``), child of its cycle
====================  ==============================================================================

Attributes follow the OpenTelemetry semantic conventions for generative AI, version
:data:`GENAI_SEMCONV` (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.agent.name``, ``gen_ai.usage.input_tokens`` and ``output_tokens``, ``gen_ai.tool.name``,
``gen_ai.tool.call.id``). ``gen_ai.usage.input_tokens`` is the input the Messages API reports as
``input_tokens``: the uncached part. Cache reads and writes and dollars have no convention in that
version and are under ``cycleplan.usage.*`` and ``cycleplan.cost_usd``. Waits are span events named
``wait`` (``cycleplan.wait.cause``: sync, rate_limit, blocked, person, backoff; ``cycleplan.wait.ms``).
Where there is a prediction, P10/P50/P90 are attributes: the run's latest live forecast on the root
(``cycleplan.forecast.finish_min.p50``...), and a ``simulate -o`` prediction's makespan and cost on the
root and each task's duration on its span (``cycleplan.prediction.duration_min.p50``...).

Nothing secret leaves: no prompt, command or agent output is an attribute, and every string that is
(task ids, errors, models) passes through :func:`cycleplan.core.redaction.redact_secrets`.

:func:`run_spans` builds the spans from a trace (plain records, no OpenTelemetry import);
:func:`otlp_request` turns them into OTLP's ``ExportTraceServiceRequest``, the protobuf message of the
``opentelemetry-proto`` package (what OTLP/HTTP sends), and :func:`otlp_json` into OTLP/JSON (as a
collector's file exporter writes it), by protobuf's own JSON mapping. The message is filled directly
rather than through the SDK's ``ReadableSpan`` and encoder, which cost about three times as much per
span (about 53 against 17 microseconds here), and a live export pays that for every span. The proto
package is the ``otel`` extra, imported only here and only when asked.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cycleplan.core.metrics import USAGE_FIELDS
from cycleplan.core.model import Event
from cycleplan.core.prices import cost_usd, resolve
from cycleplan.core.redaction import redact_secrets
from cycleplan.executor import events as ev

if TYPE_CHECKING:
    from cycleplan.sim.prediction import Prediction

GENAI_SEMCONV = "1.37.0"
"""The version of the OpenTelemetry semantic conventions for generative AI these spans follow."""
SCHEMA_URL = f"https://opentelemetry.io/schemas/{GENAI_SEMCONV}"
SERVICE = "cycleplan"
PROVIDER = "anthropic"

OTEL_MISSING = (
    "OpenTelemetry is not installed: pip install 'cycleplan[otel]' (the SDK, its OTLP/HTTP exporter and "
    "the OTLP protobuf definitions)"
)

INTERNAL, SERVER, CLIENT = 0, 1, 2
"""Span kinds, as the SDK's ``SpanKind`` numbers them (OTLP adds one)."""


class TelemetryUnavailableError(RuntimeError):
    """The otel extra is not installed; the message says how to install it."""


@dataclass
class SpanRecord:
    """One span, in plain values: what :func:`otlp_request` encodes."""

    name: str
    key: str
    """What the span stands for within its run (``cycle/backend/3/1``); its id is derived from it."""
    parent_key: str | None
    start_ms: float
    end_ms: float
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    """``(name, time_ms, attributes)``."""
    error: str | None = None
    """The description of an error status; None for an unset status."""
    kind: int = INTERNAL
    done: bool = True
    """Whether what the span stands for is over (a live export sends only spans that are)."""


def trace_id(run_id: str) -> int:
    """The run's trace id: 16 bytes derived from its id."""
    digest = hashlib.sha256(f"cycleplan/run/{run_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1


def span_id(run_id: str, key: str) -> int:
    """The id of the span standing for ``key`` in run ``run_id``: 8 bytes derived from both."""
    digest = hashlib.sha256(f"cycleplan/span/{run_id}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _redacted(value)
    return value


@functools.lru_cache(maxsize=4096)
def _redacted(text: str) -> str:
    # Task ids, lanes and models repeat on every span: each is checked for secrets once.
    return redact_secrets(text)[:4096]


def _usage_attributes(meta: Mapping[str, Any]) -> dict[str, Any]:
    fresh, written, read, output = (int(meta.get(name) or 0) for name in USAGE_FIELDS)
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": fresh,
        "gen_ai.usage.output_tokens": output,
        "cycleplan.usage.cache_creation_input_tokens": written,
        "cycleplan.usage.cache_read_input_tokens": read,
    }
    if meta.get("cost_usd") is not None:
        attributes["cycleplan.cost_usd"] = float(meta["cost_usd"])
    return attributes


def _bands(prefix: str, band: Any) -> dict[str, float]:
    if isinstance(band, Mapping) and all(isinstance(band.get(p), int | float) for p in ("p10", "p50", "p90")):
        return {f"{prefix}.{p}": float(band[p]) for p in ("p10", "p50", "p90")}
    if band is not None and all(hasattr(band, p) for p in ("p10", "p50", "p90")):
        return {f"{prefix}.{p}": float(getattr(band, p)) for p in ("p10", "p50", "p90")}
    return {}


def _cycle_key(task: str, cycle: Any, attempt: Any) -> str:
    return f"cycle/{task}/{cycle}/{attempt}"


class SpanBuilder:
    """Spans out of events, fed one at a time in the order the store holds them."""

    def __init__(self, run_id: str, prediction: Prediction | None) -> None:
        self.run_id = run_id
        self.prediction = prediction
        self.root = SpanRecord("run", "run", None, 0.0, 0.0, done=False)
        self.tasks: dict[str, SpanRecord] = {}
        self.spans: list[SpanRecord] = []
        self.last_ms = 0.0
        self.started = False
        self.usage: dict[str, dict[str, float]] = {}
        self._handed = 0
        self._handed_tasks: set[str] = set()
        self._handed_root = False
        if prediction is not None:
            self.root.attributes.update(
                _bands("cycleplan.prediction.makespan_min", prediction.summaries.get("makespan_min"))
            )
            self.root.attributes.update(
                _bands("cycleplan.prediction.cost_usd", prediction.summaries.get("cost_usd"))
            )

    def add(self, event: Event) -> None:
        meta = event.metadata
        action = event.action
        at = float(event.timestamp)
        self.last_ms = max(self.last_ms, at)
        if action == ev.RUN_STARTED:
            self.started = True
            self.root.start_ms = at
            self.root.attributes.update(
                {
                    "cycleplan.run.id": self.run_id,
                    "cycleplan.agent": _clean(str(meta.get("agent", ""))),
                    "cycleplan.time_scale": float(meta.get("time_scale") or 1.0),
                }
            )
        elif action == ev.RUN_RESUMED:
            self.root.events.append(("resumed", at, {"cycleplan.resume": int(meta.get("resume") or 0)}))
        elif action == ev.RUN_INTERRUPTED:
            self.root.events.append(("interrupted", at, {"cycleplan.resume": int(meta.get("resume") or 0)}))
        elif action == ev.RUN_COMPLETE:
            status = str(meta.get("status", ""))
            self.root.end_ms, self.root.done = at, True
            self.root.attributes["cycleplan.run.status"] = status
            if status != "complete":
                self.root.error = f"run {status}"
        elif action == ev.FORECAST_UPDATED:
            self.root.attributes.update(
                _bands("cycleplan.forecast.finish_min", meta.get("finish_min_from_start"))
            )
            self.root.attributes.update(_bands("cycleplan.forecast.cost_usd", meta.get("cost_usd_total")))
        elif action == ev.TASK_STARTED:
            self._task_started(event)
        elif action == ev.CYCLE_COMPLETED:
            self._cycle(event)
        elif action == ev.PROGRESS_UPDATE and meta.get("tool"):
            self._tool(event)
        elif action in ev.TERMINAL:
            task = self._task(event)
            task.end_ms, task.done = at, True
            outcome = {ev.TASK_COMPLETE: "complete", ev.TASK_FAILED: "failed"}.get(action, "cancelled")
            task.attributes["cycleplan.task.outcome"] = outcome
            task.attributes.update(_usage_attributes(self.usage[event.target_id]))
            if action == ev.TASK_FAILED:
                task.error = _clean(str(meta.get("error") or "failed"))
            elif action == ev.TASK_CANCELLED:
                task.attributes["cycleplan.task.cancel_reason"] = _clean(str(meta.get("reason") or ""))
        elif action not in (ev.TASK_RESUMED, ev.PROGRESS_UPDATE) and event.actor_id != ev.RUN_ACTOR:
            # A task's emitted event (schema_ready...): a point in its task's life.
            task = self._task(event)
            task.events.append(("emit", at, {"cycleplan.event": _clean(action)}))

    def _task(self, event: Event) -> SpanRecord:
        name = event.target_id
        task = self.tasks.get(name)
        if task is None:
            task = self.tasks[name] = SpanRecord(
                f"invoke_agent {_clean(name)}", f"task/{name}", "run", float(event.timestamp), 0.0, done=False
            )
            task.attributes.update(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.provider.name": PROVIDER,
                    "gen_ai.agent.name": _clean(name),
                    "cycleplan.task": _clean(name),
                    "cycleplan.lane": _clean(event.actor_id),
                }
            )
            if self.prediction is not None and name in self.prediction.tasks:
                predicted = self.prediction.tasks[name]
                task.attributes.update(_bands("cycleplan.prediction.duration_min", predicted.duration))
                task.attributes.update(_bands("cycleplan.prediction.finish_min", predicted.finish))
            self.usage[name] = {}
        return task

    def _task_started(self, event: Event) -> None:
        task = self._task(event)
        meta = event.metadata
        task.start_ms = min(task.start_ms, float(event.timestamp))
        for name, value in (
            ("cycleplan.task.role", meta.get("role")),
            ("gen_ai.request.model", meta.get("model")),
            ("cycleplan.task.cycles", meta.get("cycles")),
        ):
            if value is not None:
                task.attributes[name] = _clean(value)

    def _cycle(self, event: Event) -> None:
        meta = event.metadata
        task = self._task(event)
        end = float(event.timestamp)
        duration = float(meta.get("duration_ms") or 0.0)
        start = float(meta.get("started_at") or end - duration)
        start = min(start, end)
        key = _cycle_key(event.target_id, meta.get("cycle"), meta.get("attempt"))
        span = SpanRecord(f"cycle {meta.get('cycle')}", key, task.key, start, end)
        model = str(meta.get("model") or task.attributes.get("gen_ai.request.model") or "")
        span.attributes.update(
            {
                "cycleplan.task": task.attributes["cycleplan.task"],
                "cycleplan.cycle": int(meta.get("cycle") or 0),
                "cycleplan.attempt": int(meta.get("attempt") or 0),
                "cycleplan.duration_ms": duration,
                **({"gen_ai.request.model": _clean(model)} if model else {}),
                **_usage_attributes(meta),
            }
        )
        if meta.get("calls") is not None:
            span.attributes["cycleplan.calls"] = int(meta["calls"])
        for cause, name in (
            ("sync", "sync_wait_ms"),
            ("rate_limit", "rate_limit_wait_ms"),
            ("blocked", "blocked_ms"),
            ("person", "person_wait_ms"),
        ):
            waited = float(meta.get(name) or 0.0)
            if waited > 0:
                span.events.append(
                    ("wait", start, {"cycleplan.wait.cause": cause, "cycleplan.wait.ms": waited})
                )
        if int(meta.get("attempt") or 1) > 1:
            span.events.append(("wait", start, {"cycleplan.wait.cause": "backoff", "cycleplan.wait.ms": 0.0}))
        if meta.get("failed"):
            span.error = _clean(str(meta.get("error") or "the attempt failed"))
        if meta.get("interrupted"):
            span.attributes["cycleplan.interrupted"] = True
        totals = self.usage[event.target_id]
        for name in (*USAGE_FIELDS, "cost_usd"):
            totals[name] = totals.get(name, 0.0) + float(meta.get(name) or 0.0)
        self.spans.append(span)
        self._calls(span, meta, model)

    def _calls(self, cycle: SpanRecord, meta: Mapping[str, Any], model: str) -> None:
        rows = meta.get("api_calls")
        name = f"chat {_clean(model)}" if model else "chat"
        common = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            **({"gen_ai.request.model": _clean(model)} if model else {}),
        }
        if not isinstance(rows, list) or not rows:
            if meta.get("calls") is None and any(meta.get(n) for n in USAGE_FIELDS):
                call = SpanRecord(
                    name, f"call/{cycle.key}/1", cycle.key, cycle.start_ms, cycle.end_ms, kind=CLIENT
                )
                call.attributes.update({**common, **_usage_attributes(meta)})
                if cycle.error is not None:
                    call.error = cycle.error
                self.spans.append(call)
            return
        price = resolve(model) if model else None
        at = cycle.start_ms
        for index, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) < 6:
                continue
            took, fresh, minutes, hour, read, output = (float(x) for x in row[:6])
            call = SpanRecord(name, f"call/{cycle.key}/{index}", cycle.key, at, at + took, kind=CLIENT)
            call.attributes.update(
                {
                    **common,
                    "gen_ai.usage.input_tokens": int(fresh),
                    "gen_ai.usage.output_tokens": int(output),
                    "cycleplan.usage.cache_creation_input_tokens": int(minutes + hour),
                    "cycleplan.usage.cache_read_input_tokens": int(read),
                    "cycleplan.call": index,
                }
            )
            if price is not None:
                call.attributes["cycleplan.cost_usd"] = cost_usd(
                    price, int(fresh), int(minutes), int(read), int(output), cache_write_1h_tokens=int(hour)
                )
            self.spans.append(call)
            at += took

    def _tool(self, event: Event) -> None:
        meta = event.metadata
        self._task(event)
        end = float(event.timestamp)
        start = float(meta.get("started_at") or end - float(meta.get("duration_ms") or 0.0))
        tool = _clean(str(meta["tool"]))
        parent = _cycle_key(event.target_id, meta.get("cycle"), meta.get("attempt"))
        use = str(meta.get("tool_use_id") or f"{start}")
        span = SpanRecord(f"execute_tool {tool}", f"tool/{parent}/{use}", parent, min(start, end), end)
        span.attributes.update(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.tool.call.id": _clean(use),
            }
        )
        if meta.get("failed"):
            span.error = "the tool call failed"
        self.spans.append(span)

    def ready(self) -> list[SpanRecord]:
        """The spans of what is over that no earlier call returned: a live export sends these."""
        out = self.spans[self._handed :]
        self._handed = len(self.spans)
        for name, task in self.tasks.items():
            if task.done and name not in self._handed_tasks:
                self._handed_tasks.add(name)
                out.append(task)
        if self.root.done and self.started and not self._handed_root:
            self._handed_root = True
            out.append(self.root)
        return out

    def finish(self) -> list[SpanRecord]:
        """Every span, what is not over ending at the last event."""
        if not self.started:
            return list(self.spans)
        end = self.last_ms
        if not self.root.done:
            self.root.end_ms = end
            self.root.attributes.setdefault("cycleplan.run.status", "running")
        for name, task in self.tasks.items():
            if not task.done:
                task.end_ms = max(end, task.start_ms)
                task.attributes.update(_usage_attributes(self.usage[name]))
        return [self.root, *self.tasks.values(), *self.spans]


def run_spans(run_id: str, trace: Iterable[Event], prediction: Prediction | None = None) -> list[SpanRecord]:
    """The spans of run ``run_id`` from its ``trace`` (root first, then tasks, then cycles, calls and
    tools in the order their events were recorded). Spans of what is not over yet (``done`` False) end
    at the trace's last event."""
    builder = SpanBuilder(run_id, prediction)
    for event in trace:
        builder.add(event)
    return builder.finish()


def _proto() -> Any:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:
        raise TelemetryUnavailableError(OTEL_MISSING) from None
    return trace_service_pb2


def resource_attributes(run_id: str, scenario: str = "") -> dict[str, Any]:
    """The resource every span of run ``run_id`` comes from: this service, and the run."""
    from cycleplan import __version__

    attributes: dict[str, Any] = {
        "service.name": SERVICE,
        "service.version": __version__,
        "cycleplan.run.id": run_id,
    }
    if scenario:
        attributes["cycleplan.scenario"] = _clean(scenario)
    return attributes


def _fill(target: Any, attributes: Mapping[str, Any]) -> None:
    """Add ``attributes`` to a repeated ``KeyValue`` field."""
    for key, value in attributes.items():
        item = target.add(key=key)
        if isinstance(value, bool):
            item.value.bool_value = value
        elif isinstance(value, int):
            item.value.int_value = value
        elif isinstance(value, float):
            item.value.double_value = value
        else:
            item.value.string_value = str(value)


_PROTO_KIND = {INTERNAL: 1, SERVER: 2, CLIENT: 3}
"""The SDK's span kinds as OTLP numbers them (0 is unspecified)."""
_STATUS_ERROR = 2


def otlp_request(run_id: str, spans: Sequence[SpanRecord], scenario: str = "") -> Any:
    """``spans`` as one OTLP ``ExportTraceServiceRequest`` (the protobuf message of the
    ``opentelemetry-proto`` package): one resource (the run), one scope (this package)."""
    from cycleplan import __version__

    service = _proto()
    request = service.ExportTraceServiceRequest()
    part = request.resource_spans.add(schema_url=SCHEMA_URL)
    _fill(part.resource.attributes, resource_attributes(run_id, scenario))
    scope = part.scope_spans.add(schema_url=SCHEMA_URL)
    scope.scope.name, scope.scope.version = SERVICE, __version__
    trace = trace_id(run_id).to_bytes(16, "big")
    ids: dict[str, bytes] = {}

    def id_of(key: str) -> bytes:
        found = ids.get(key)
        if found is None:
            found = ids[key] = span_id(run_id, key).to_bytes(8, "big")
        return found

    for record in spans:
        span = scope.spans.add(
            trace_id=trace,
            span_id=id_of(record.key),
            name=record.name,
            kind=_PROTO_KIND[record.kind],
            start_time_unix_nano=int(record.start_ms * 1e6),
            end_time_unix_nano=int(max(record.end_ms, record.start_ms) * 1e6),
            flags=0x100,  # the parent is not remote
        )
        if record.parent_key is not None:
            span.parent_span_id = id_of(record.parent_key)
        _fill(span.attributes, record.attributes)
        for name, at, attributes in record.events:
            event = span.events.add(name=name, time_unix_nano=int(at * 1e6))
            _fill(event.attributes, attributes)
        if record.error is not None:
            span.status.code = _STATUS_ERROR
            span.status.message = record.error
    return request


def _hex_ids(value: Any) -> Any:
    """Protobuf's JSON writes bytes as base64; OTLP/JSON writes trace and span ids as hex."""
    import base64

    if isinstance(value, dict):
        return {
            key: (
                base64.b64decode(item).hex()
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(item, str)
                else _hex_ids(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids(item) for item in value]
    return value


def otlp_json(
    run_id: str, trace: Iterable[Event], *, scenario: str = "", prediction: Prediction | None = None
) -> dict[str, Any]:
    """Run ``run_id`` as OTLP/JSON: one ``ExportTraceServiceRequest`` holding every span of its trace."""
    return request_json(otlp_request(run_id, run_spans(run_id, trace, prediction), scenario))


def request_json(request: Any) -> dict[str, Any]:
    """An OTLP protobuf request as OTLP/JSON (lowerCamelCase names, hex ids, enums as numbers)."""
    from google.protobuf.json_format import MessageToDict

    as_dict: dict[str, Any] = _hex_ids(
        MessageToDict(request, use_integers_for_enums=True, preserving_proto_field_name=False)
    )
    return as_dict


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))
