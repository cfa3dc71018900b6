"""Claude Code's own telemetry as runs: the OTLP/JSON that Claude Code exports (logs, and traces where
present), read from files or as an OTLP endpoint receives it, imported as its transcripts are.

Claude Code sends an event a log record when telemetry is on (``CLAUDE_CODE_ENABLE_TELEMETRY=1``,
``OTEL_LOGS_EXPORTER=otlp``), each with its ``session.id``, its ``prompt.id`` and an ``event.name``.
Those read here:

- ``user_prompt``: the person typed a prompt (it starts a turn);
- ``api_request``: one API call (``model``, ``request_id``, ``duration_ms``, ``ttft_ms``,
  ``input_tokens``, ``output_tokens``, ``cache_read_tokens``, ``cache_creation_tokens`` split into
  ``cache_creation_5m_tokens`` and ``cache_creation_1h_tokens``, ``cost_usd``), with ``agent_id`` when a
  subagent made it;
- ``tool_decision`` (``tool_name``, ``tool_use_id``, ``decision``: accept or reject, ``request_id`` of the
  response that asked) and ``tool_result`` (``tool_use_id``, ``success``): a tool call and its result;
- ``subagent_completed`` (``agent_id``): a subagent's end.

They become the records a transcript holds (a prompt record, an assistant record per call with its
usage and tool calls, a record carrying each tool result), session by session and subagent by
subagent, and :func:`~cycleplan.workflows.importers.claude_code.import_session_records` makes the run by
the transcript importer's own rules: sessions and subagents become tasks, prompts turns, calls are
counted per turn, waits on the person (questions, plan approvals, refused permissions, idle gaps) are
cut out, and a subagent blocks the session that launched it. What telemetry does not say:

- when a call's first line was written: a call's record is timed at its start plus its time to first
  token (the event is stamped when the response completes), so call durations and agent time differ
  slightly from the transcript's;
- which Agent tool call launched which subagent: a subagent is matched to the Agent (or Task) call of
  its session whose span holds its calls, the earliest first;
- compactions and interruptions: none are seen.

Traces, where present (Claude Code's tracing, ``CLAUDE_CODE_ENHANCED_TELEMETRY_BETA=1`` with
``OTEL_TRACES_EXPORTER=otlp``), stand for the same events: a ``claude_code.interaction`` span a prompt
(at its start), ``claude_code.llm_request`` a call (its ``gen_ai.conversation.id`` the subagent's id when
it is not the session's), ``claude_code.tool`` a tool call (its start) and its result (its end). A
session with log events is read from its logs alone (the same calls, told twice); one with traces only
from its traces, where a cache write's split between the 5-minute and the 1-hour cache is not told (it
counts as 5-minute) nor are refused permissions. Metrics are read past.

Input that is no OTLP/JSON export request (``resourceLogs``, ``resourceSpans`` or ``resourceMetrics``)
raises :class:`~cycleplan.workflows.importers.run.TraceImportError`. This module writes nothing.
"""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cycleplan.core.loading import FileError
from cycleplan.workflows.importers.claude_code import (
    TASK_TOOLS,
    SessionRecords,
    import_session_records,
)
from cycleplan.workflows.importers.run import ImportedRun, TraceImportError, read_file

KIND = "otel"
MAX_FILE_BYTES = 2_000_000_000
PREFIX = "claude_code."
NOT_OTLP = "not an OTLP/JSON export request"
_SIGNALS = ("resourceLogs", "resourceSpans", "resourceMetrics")
_WHAT = "give an OTLP/JSON file (as a collector's file exporter writes) or a folder of them"


@dataclass
class TelemetryEvent:
    """One Claude Code event, from a log record (or a span standing for an API call)."""

    name: str
    """Without the ``claude_code.`` prefix: ``api_request``, ``user_prompt``..."""
    time_ms: float
    attributes: dict[str, Any]
    origin: str
    line: int
    sequence: int = 0


@dataclass
class _Session:
    events: list[TelemetryEvent] = field(default_factory=list)


def _value(value: Any) -> Any:
    """An OTLP/JSON ``AnyValue`` as a plain value."""
    if not isinstance(value, Mapping):
        return None
    for kind, raw in value.items():
        if kind == "stringValue":
            return str(raw)
        if kind == "intValue":
            try:
                return int(raw)
            except (TypeError, ValueError):
                return None
        if kind == "doubleValue":
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
        if kind == "boolValue":
            return bool(raw)
        if kind == "arrayValue" and isinstance(raw, Mapping):
            return [_value(item) for item in raw.get("values", [])]
        if kind == "kvlistValue" and isinstance(raw, Mapping):
            return _attributes(raw.get("values", []))
    return None


def _attributes(items: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("key"), str):
                found[item["key"]] = _value(item.get("value"))
    return found


def _iso_ms(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp() * 1000.0


def _nanos_ms(value: Any) -> float | None:
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        return None
    return nanos / 1e6 if nanos > 0 else None


def is_request(document: Any) -> bool:
    """Whether ``document`` is an OTLP/JSON export request (logs, traces or metrics)."""
    return isinstance(document, Mapping) and any(isinstance(document.get(key), list) for key in _SIGNALS)


def events_of(document: Mapping[str, Any], origin: str, line: int) -> list[TelemetryEvent]:
    """The Claude Code events of one OTLP/JSON export request."""
    found: list[TelemetryEvent] = []
    for part in document.get("resourceLogs") or []:
        resource = _attributes((part.get("resource") or {}).get("attributes"))
        for scope in part.get("scopeLogs") or []:
            for record in scope.get("logRecords") or []:
                attributes = {**resource, **_attributes(record.get("attributes"))}
                name = attributes.get("event.name") or _value(record.get("body")) or ""
                name = str(name).removeprefix(PREFIX)
                at = _iso_ms(attributes.get("event.timestamp")) or _nanos_ms(record.get("timeUnixNano"))
                if at is None or not isinstance(attributes.get("session.id"), str):
                    continue
                sequence = attributes.get("event.sequence")
                found.append(
                    TelemetryEvent(
                        name, at, attributes, origin, line, sequence if isinstance(sequence, int) else 0
                    )
                )
    for part in document.get("resourceSpans") or []:
        resource = _attributes((part.get("resource") or {}).get("attributes"))
        for scope in part.get("scopeSpans") or []:
            for span in scope.get("spans") or []:
                found.extend(_span_events(span, resource, origin, line))
    return found


def _span_events(
    span: Mapping[str, Any], resource: dict[str, Any], origin: str, line: int
) -> list[TelemetryEvent]:
    """The events a span of Claude Code's tracing stands for: ``claude_code.llm_request`` a call,
    ``claude_code.interaction`` a prompt, ``claude_code.tool`` a tool call and its result; another span
    with a session and token counts, a call."""
    attributes = {**resource, **_attributes(span.get("attributes"))}
    end = _nanos_ms(span.get("endTimeUnixNano"))
    begin = _nanos_ms(span.get("startTimeUnixNano"))
    session = attributes.get("session.id")
    if end is None or not isinstance(session, str):
        return []
    begin = end if begin is None else begin
    attributes["signal"] = "traces"
    conversation = attributes.get("gen_ai.conversation.id")
    if "agent_id" not in attributes and isinstance(conversation, str) and conversation != session:
        attributes["agent_id"] = conversation  # a subagent's conversation is its agent id
    name = str(span.get("name") or "").removeprefix(PREFIX)
    if name == "interaction":
        return (
            []
            if "agent_id" in attributes
            else [TelemetryEvent("user_prompt", begin, attributes, origin, line)]
        )
    if name == "tool" and isinstance(attributes.get("tool_use_id"), str):
        return [
            TelemetryEvent("tool_decision", begin, {**attributes, "decision": "accept"}, origin, line),
            TelemetryEvent("tool_result", end, attributes, origin, line, 1),
        ]
    if name == "llm_request" or any(
        isinstance(attributes.get(k), int) for k in ("input_tokens", "output_tokens")
    ):
        attributes.setdefault("request_id", f"span-{span.get('spanId')}")
        attributes.setdefault("duration_ms", end - begin)
        return [TelemetryEvent("api_request", end, attributes, origin, line)]
    return []


def read_requests(path: Path) -> list[tuple[str, int, dict[str, Any]]]:
    """Every OTLP/JSON export request in ``path`` (a file of one JSON document or JSON Lines of them, or a
    folder of such files): ``(file, line, request)``."""
    if not path.exists():
        raise TraceImportError([FileError(str(path), "no such file or folder; check the path")])
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl"))
        if path.is_dir()
        else [path]
    )
    if not files:
        raise TraceImportError([FileError(str(path), f"no .json or .jsonl file here; {_WHAT}")])
    found: list[tuple[str, int, dict[str, Any]]] = []
    refused: list[FileError] = []
    for file in files:
        data = read_file(file, MAX_FILE_BYTES, _WHAT)
        try:
            whole = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            whole = None
        if is_request(whole):
            found.append((str(file), 1, whole))
            continue
        if whole is not None:
            refused.append(
                FileError(str(file), f"{NOT_OTLP} (no resourceLogs, resourceSpans or resourceMetrics)")
            )
            continue
        lines = data.split(b"\n")
        kept = 0
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                document = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                document = None
            if is_request(document):
                found.append((str(file), number, document))
                kept += 1
        if kept == 0:
            refused.append(
                FileError(
                    str(file),
                    f"{NOT_OTLP}: neither one JSON document with resourceLogs, resourceSpans or "
                    "resourceMetrics nor JSON Lines of them",
                )
            )
    if not found:
        raise TraceImportError([*refused[:5], FileError(str(path), f"nothing to import; {_WHAT}")])
    return found


def _ms_iso(ms: float) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.UTC).isoformat().replace("+00:00", "Z")


def _count(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _usage(attributes: Mapping[str, Any]) -> dict[str, Any]:
    written = _count(attributes.get("cache_creation_tokens"))
    hour = _count(attributes.get("cache_creation_1h_tokens"))
    minutes = (
        _count(attributes.get("cache_creation_5m_tokens"))
        if "cache_creation_5m_tokens" in attributes
        else written - hour
    )
    return {
        "input_tokens": _count(attributes.get("input_tokens")),
        "output_tokens": _count(attributes.get("output_tokens")),
        "cache_read_input_tokens": _count(attributes.get("cache_read_tokens")),
        "cache_creation_input_tokens": max(written, hour + minutes),
        "cache_creation": {"ephemeral_5m_input_tokens": minutes, "ephemeral_1h_input_tokens": hour},
    }


def _first_line_ms(event: TelemetryEvent) -> float:
    """When a call's first record would be written: its start plus its time to first token."""
    took = _count(event.attributes.get("duration_ms"))
    first = event.attributes.get("ttft_ms")
    lead = _count(first) if first is not None else took
    return event.time_ms - took + min(lead, took)


def _records(session: str, events: list[TelemetryEvent]) -> SessionRecords:
    """One session's events as transcript records: the session's own and each subagent's."""
    events = sorted(events, key=lambda e: (e.time_ms, e.sequence))
    main: list[tuple[float, int, dict[str, Any]]] = []
    agents: dict[str, list[tuple[float, int, dict[str, Any]]]] = defaultdict(list)
    calls: dict[str, dict[str, Any]] = {}
    latest: dict[str | None, dict[str, Any]] = {}
    tool_calls: dict[str, tuple[str | None, float, str]] = {}  # id -> (agent, called at, tool)
    results: dict[str, tuple[float, bool]] = {}
    subagent_calls: dict[str, list[float]] = defaultdict(list)
    origin = events[0].origin
    order = 0

    def put(agent: str | None, at: float, record: dict[str, Any]) -> None:
        nonlocal order
        order += 1
        (agents[agent] if agent else main).append((at, order, record))

    for event in events:
        attributes = event.attributes
        agent = attributes.get("agent_id") if isinstance(attributes.get("agent_id"), str) else None
        if event.name == "user_prompt" and agent is None:
            # What the person typed is none of the run's business (and is redacted unless
            # OTEL_LOG_USER_PROMPTS is set): a prompt stands in for it.
            put(
                None,
                event.time_ms,
                {
                    "type": "user",
                    "timestamp": _ms_iso(event.time_ms),
                    "message": {"role": "user", "content": "(prompt)"},
                },
            )
        elif event.name == "api_request":
            request = str(attributes.get("request_id") or f"{event.origin}:{event.line}:{event.sequence}")
            if request in calls:
                continue
            at = _first_line_ms(event)
            record = {
                "type": "assistant",
                "timestamp": _ms_iso(at),
                "requestId": request,
                "message": {
                    "id": request,
                    "role": "assistant",
                    "model": str(attributes.get("model") or ""),
                    "usage": _usage(attributes),
                    "content": [],
                },
            }
            calls[request] = latest[agent] = record
            put(agent, at, record)
            if agent is not None:
                subagent_calls[agent].append(at)
        elif event.name in ("tool_decision", "tool_result"):
            use = attributes.get("tool_use_id")
            if not isinstance(use, str):
                continue
            if use not in tool_calls:
                tool = str(attributes.get("tool_name") or "")
                called = event.time_ms
                # A tool span names no request: the call before it asked for it.
                asked = calls.get(str(attributes.get("request_id"))) or latest.get(agent)
                if asked is not None:
                    asked["message"]["content"].append({"type": "tool_use", "id": use, "name": tool})
                    called = _iso_ms(asked["timestamp"]) or called
                tool_calls[use] = (agent, called, tool)
            rejected = event.name == "tool_decision" and str(attributes.get("decision")) == "reject"
            if (event.name == "tool_result" or rejected) and use not in results:
                results[use] = (event.time_ms, rejected)
        elif event.name == "subagent_completed" and agent is not None:
            subagent_calls[agent].append(event.time_ms)
    launched = _launches(tool_calls, results, subagent_calls)
    for use, (at, rejected) in results.items():
        agent, _, tool = tool_calls[use]
        said = "User rejected tool use" if rejected else "(tool result)"
        result: dict[str, Any] = {
            "type": "user",
            "timestamp": _ms_iso(at),
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use, "content": said}],
            },
        }
        if use in launched:
            result["toolUseResult"] = {"agentId": launched[use]}
        put(agent, at, result)
    for use, child in launched.items():
        _, called, _ = tool_calls[use]
        # The subagent's prompt: its launch.
        put(
            child,
            called,
            {"type": "user", "timestamp": _ms_iso(called), "message": {"role": "user", "content": "(task)"}},
        )

    def rows(items: list[tuple[float, int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
        return [
            (line, record)
            for line, (_, _, record) in enumerate(sorted(items, key=lambda x: (x[0], x[1])), start=1)
        ]

    return SessionRecords(
        session, origin, rows(main), {agent: rows(items) for agent, items in agents.items()}
    )


def _launches(
    tool_calls: Mapping[str, tuple[str | None, float, str]],
    results: Mapping[str, tuple[float, bool]],
    subagent_calls: Mapping[str, list[float]],
) -> dict[str, str]:
    """Agent tool call id -> the subagent it launched: the earliest unmatched call whose span (from the
    call to its result) holds all the subagent's calls."""
    launches = sorted(
        (called, use)
        for use, (agent, called, tool) in tool_calls.items()
        if tool in TASK_TOOLS and use in results and not results[use][1]
    )
    children = sorted((min(times), max(times), agent) for agent, times in subagent_calls.items() if times)
    matched: dict[str, str] = {}
    for first, last, agent in children:
        for called, use in launches:
            if use not in matched and called <= first and last <= results[use][0] + 1.0:
                matched[use] = agent
                break
    return matched


def session_records(requests: Iterable[tuple[str, int, Mapping[str, Any]]]) -> dict[str, SessionRecords]:
    """Each session's records, from the Claude Code events of ``requests`` ``(origin, line, request)``."""
    by_session: dict[str, list[TelemetryEvent]] = defaultdict(list)
    seen: set[tuple[Any, ...]] = set()
    for origin, line, request in requests:
        for event in events_of(request, origin, line):
            # An exporter that retried may have delivered the same batch twice.
            key = (
                event.attributes.get("session.id"),
                event.name,
                event.sequence,
                event.time_ms,
                event.attributes.get("request_id"),
                event.attributes.get("tool_use_id"),
                event.attributes.get("agent_id"),
            )
            if key in seen:
                continue
            seen.add(key)
            by_session[str(event.attributes["session.id"])].append(event)
    for session, events in by_session.items():
        # Logs and traces tell the same calls twice; a session's logs, when there are any, are the ones kept.
        if any(event.attributes.get("signal") != "traces" for event in events):
            by_session[session] = [event for event in events if event.attributes.get("signal") != "traces"]
    return {session: _records(session, events) for session, events in sorted(by_session.items())}


def import_otel_requests(
    source: str, requests: Iterable[tuple[str, int, Mapping[str, Any]]], sessions: Iterable[str] | None = None
) -> ImportedRun:
    """A run from OTLP/JSON export requests ``(origin, line, request)``: every session in them, or only
    ``sessions``. Raises :class:`TraceImportError` when no Claude Code call is among them."""
    found = session_records(requests)
    if sessions is not None:
        wanted = set(sessions)
        found = {key: value for key, value in found.items() if key in wanted}
    calls = sum(
        1
        for records in found.values()
        for _, record in [*records.main, *(row for rows in records.subagents.values() for row in rows)]
        if record.get("type") == "assistant"
    )
    if calls == 0:
        raise TraceImportError(
            [
                FileError(
                    source,
                    "no Claude Code API call (claude_code.api_request) here: is telemetry on "
                    "(CLAUDE_CODE_ENABLE_TELEMETRY=1, OTEL_LOGS_EXPORTER=otlp)? Nothing was imported",
                )
            ]
        )
    return import_session_records(source, found.values(), KIND)


def import_otel(path: str | Path) -> ImportedRun:
    """Read Claude Code's OTLP/JSON telemetry at ``path`` (a file or a folder of files) into a run."""
    root = Path(path)
    return import_otel_requests(str(root), read_requests(root))
