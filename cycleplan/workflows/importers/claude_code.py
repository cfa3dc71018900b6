"""Claude Code transcripts as runs: sessions and subagents become tasks, user-prompt turns become cycles,
and time is counted on the agent clock.

Reads the JSON Lines files Claude Code writes under ``~/.claude/projects/<project>/``: a session file
``<id>.jsonl`` with its ``<id>/subagents/agent-<id>.jsonl``, a session folder, one subagent file, or a
whole project folder (every session in it), or a folder of project folders (``projects/`` itself: the
transcripts of a run whose lanes worked in worktrees). How they map onto a run:

Tasks and cycles

- one task per session (role ``main``), one cycle per user-prompt turn: a ``type: user`` record that is a
  real prompt (typed text, a slash command or a background-task notification; not a tool result, meta
  text, a compaction summary or an interruption marker) starts a turn, which ends at the last record
  before the next prompt. A background-task notification resumes the turn before it (the time between
  the two belongs to nobody). A prompt no API response follows (``/mcp``, ``/compact``, an instant
  interruption) is no turn of work. Sessions that overlap in agent time go on separate lanes;
- one task per subagent (role ``subagent``), one cycle per turn of its transcript, spawned by the turn of
  its session that made the Task tool call launching it (``spawned_by``): the session's Task tool result
  names the subagent (``toolUseResult.agentId``) and, through its ``tool_use_id``, that call. A subagent
  whose launch cannot be found (no session transcript, as with a bare ``<id>/subagents/`` folder) stays
  an independent task, with a warning. A subagent without a transcript file is rebuilt from the
  ``agent_progress`` copies its session keeps (``partial: true``, with a warning: they may miss calls);
- each role's model is the most common over its calls; a turn whose calls mostly ran on another model
  (a skill may move a turn to a smaller one) is listed in its task's ``cycle_models``. A role whose cache
  writes went mostly to the 1-hour cache gets ``tokens.cache_ttl: 1h``;
- internal compaction transcripts (``agent-acompact-*``) are no tasks: a compaction call is the agent's
  own call and counts as work of the turn of its session during which it ran (one typed as ``/compact``
  between turns: the next turn, whose context it prepared). It is marked with a ``progress_update``
  (``compaction: true``) and counted in the cycle's ``compaction_calls`` and ``compactions``.

Usage

- counted once per API response: the lines of one streamed response share ``message.id`` and
  ``requestId`` and their usage grows as it streams, so each field's largest value counts, once, even
  when another file repeats the response; ``usage.cache_creation`` splits cache writes between the
  5-minute and the 1-hour cache the same way. Subagent transcripts keep each response's usage as it was
  when streaming began: the Task result's ``usage`` gives the last one's final figures;
- each call is priced with its own model: 5-minute cache writes at 1.25x input, 1-hour writes at 2x,
  cache reads at 0.1x.

Time: the agent clock

Inside a turn (from its prompt to its last record), time is work, blocked, or waiting on a person:

- waiting on a person: (a) an ``AskUserQuestion`` tool call until its result (cause ``question``); (b) an
  ``ExitPlanMode`` tool call until its result (plan approval, ``plan_approval``); (c) a tool call whose
  result says the user rejected it ("User rejected tool use", "The user doesn't want to proceed with this
  tool use"), from the call to the result (``permission``); (d) a gap longer than :data:`IDLE_GAP_S`
  from a record carrying tool results (the last, when several results come in) to the next assistant
  record, the whole gap (``idle``), unless that record opens with a thinking block (the model was
  thinking, and writes its thoughts only when done). A permission the user granted leaves no mark in a
  transcript and counts as work;
- blocked: from a Task tool call until its result the session waits for its subagent (the union when
  several run at once). Blocking and compaction prevail over a person wait they overlap;
- the rest is work, compaction calls included.

The trace runs on the agent clock, which advances only while at least one agent works or is blocked on
its subagents: the stretches in which every agent waits on a person, or no turn is open, are cut out
(the header says ``clock: agent``), so that :func:`cycleplan.core.metrics.metrics` measures agent time (its
``person_wait_min`` and ``blocked_min`` sum the cycles' figures). Each ``cycle_completed`` carries
``duration_ms`` (the turn's own work: its time on the agent clock less its person waits and blocked
time), ``wall_ms`` (its wall-clock span), ``person_wait_ms`` and ``person_waits`` (per cause),
``blocked_ms``, ``calls`` and ``compaction_calls``, and one row per call in ``api_calls`` and
``compactions``: ``[duration_ms, input_tokens, cache_write_5m, cache_write_1h, cache_read,
output_tokens]``, a compaction's row with one more number: how many of the turn's calls came before
it. A call lasts from the previous call's first record (the turn's start for the first call) to its own
first record, the turn's tail after the last call going to the last call, blocked time and compactions
left out; a compaction lasts the time the turn spent on it; so the rows add up to ``duration_ms``.

Unreadable lines are skipped with a warning naming FILE:LINE; input with nothing to measure raises
:class:`~cycleplan.workflows.importers.run.TraceImportError`. This module writes nothing.
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cycleplan.core.loading import FileError
from cycleplan.core.metrics import MS_PER_MIN, USAGE_FIELDS
from cycleplan.core.model import Role, Scenario, Spawn, Task, TokenModel
from cycleplan.core.prices import cost_usd, resolve
from cycleplan.core.wording import counted
from cycleplan.workflows.importers.run import (
    IMPORT_AGENT,
    ImportedRun,
    TraceBuilder,
    TraceImportError,
    assign_lanes,
    identifier,
    parse_json,
    read_file,
)

KIND = "claude-code"
CACHE_WRITE_1H = "cache_creation_1h_input_tokens"
"""The share of ``cache_creation_input_tokens`` written to the 1-hour cache."""
MAX_FILE_BYTES = 1_000_000_000
"""Largest transcript read (Claude Code's own files rarely pass a few megabytes)."""
MAX_LINE_WARNINGS = 5
"""Unreadable lines reported one by one per file; the rest are counted in one more warning."""

_WHAT = (
    "give a session file (<id>.jsonl), a session folder (with subagents/) or a project folder under "
    "~/.claude/projects/"
)

MAX_MODEL_CHARS = 200
"""Longest model id kept (a scenario's limit)."""

LOW_OUTPUT_TOKENS = 5
"""A response recording this few output tokens was most likely written before it finished streaming."""

IDLE_GAP_S = 300.0
"""A gap longer than this (seconds) from a record carrying tool results to the next assistant record is
time the agent waited on a person (cause ``idle``), not work."""

PERSON_CAUSES = ("question", "plan_approval", "permission", "idle")
"""Why an agent waited on a person inside a turn, in the order they take precedence."""

TASK_TOOLS = frozenset({"Task", "Agent"})
"""Tools that launch a subagent and block the session until it returns."""
_ASKING_TOOLS = {"AskUserQuestion": "question", "ExitPlanMode": "plan_approval"}
_REJECTED = ("User rejected tool use", "The user doesn't want to proceed with this tool use")

_NOT_PROMPTS = ("<local-command-stdout>", "<local-command-stderr>", "<local-command-caveat>")

Span = tuple[float, float]
"""A stretch of wall-clock time, (from, to) in milliseconds since the epoch."""


@dataclass
class _Record:
    line: int
    data: dict[str, Any]
    time_ms: float | None


@dataclass
class _Response:
    """One API response, however many lines it was streamed over."""

    key: tuple[str, str]
    file: Path
    line: int
    index: int
    """Position of its first record in its transcript."""
    first_ms: float
    usage: dict[str, int] = field(default_factory=dict)
    has_usage: bool = False
    model: str = ""
    duplicate: bool = False

    def tokens(self) -> list[int]:
        """``[input, cache_write_5m, cache_write_1h, cache_read, output]``."""
        usage = self.usage
        written = usage.get("cache_creation_input_tokens", 0)
        hour = min(usage.get(CACHE_WRITE_1H, 0), written)
        return [
            usage.get("input_tokens", 0),
            written - hour,
            hour,
            usage.get("cache_read_input_tokens", 0),
            usage.get("output_tokens", 0),
        ]


@dataclass
class _ToolCall:
    """One tool call and its result, as a transcript records them."""

    name: str
    index: int
    """Position of the assistant record that made the call."""
    called_ms: float
    result_ms: float | None = None
    rejected: bool = False
    agent_id: str | None = None
    """The subagent a Task call launched, as its result names it."""


@dataclass
class _Turn:
    """One cycle: a prompt and the agent's work on it, background-task notifications included."""

    line: int
    kind: str
    spans: list[Span]
    """The stretches of wall-clock time the turn was open (a notification that resumes it adds one)."""
    segments: list[tuple[int, int]]
    """The records of each stretch (positions in the transcript, end excluded)."""
    interrupted: bool
    responses: list[_Response]
    compactions: list[_Compaction] = field(default_factory=list)
    waits: dict[str, list[Span]] = field(default_factory=dict)
    """Person waits by cause (disjoint)."""
    blocked: list[Span] = field(default_factory=list)
    active: list[Span] = field(default_factory=list)
    """Agent time: the spans less the person waits."""

    @property
    def start_ms(self) -> float:
        return self.spans[0][0]

    @property
    def end_ms(self) -> float:
        return self.spans[-1][1]

    @property
    def compaction_calls(self) -> list[_Response]:
        return [response for compaction in self.compactions for response in compaction.responses]

    def holds(self, index: int) -> bool:
        return any(begin <= index < end for begin, end in self.segments)


@dataclass
class _Transcript:
    file: Path
    session: str
    role: str
    agent_id: str | None
    compaction: bool
    records: list[_Record]
    final_usage: dict[str, int] | None = None
    """The usage of the subagent's last response as its session's Task result reports it."""
    partial: bool = False
    """Rebuilt from its session's copies of its records: calls may be missing."""
    responses: list[_Response] = field(default_factory=list)
    turns: list[_Turn] = field(default_factory=list)
    tools: list[_ToolCall] = field(default_factory=list)
    task_id: str = ""


@dataclass
class _Compaction:
    transcript: _Transcript
    span: Span
    responses: list[_Response]


@dataclass
class _Source:
    session: str
    main: Path | None
    subagents: list[Path]


# --------------------------------------------------------------------------------------------------
# Stretches of time


def _merge(spans: Iterable[Span]) -> list[Span]:
    """The union of ``spans``, sorted, overlapping and touching stretches joined."""
    merged: list[Span] = []
    for begin, end in sorted(span for span in spans if span[1] >= span[0]):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _minus(spans: list[Span], cut: list[Span]) -> list[Span]:
    """``spans`` with the time of ``cut`` taken out."""
    out: list[Span] = []
    cuts = _merge(cut)
    for begin, end in _merge(spans):
        at = begin
        for cut_begin, cut_end in cuts:
            if cut_end <= at or cut_begin >= end:
                continue
            if cut_begin > at:
                out.append((at, cut_begin))
            at = max(at, cut_end)
        if at < end:
            out.append((at, end))
    return out


def _within(spans: list[Span], bounds: list[Span]) -> list[Span]:
    """The time of ``spans`` that lies inside ``bounds``."""
    return _minus(spans, _minus(_merge(spans), bounds))


def _measure(spans: list[Span]) -> float:
    return sum(end - begin for begin, end in _merge(spans))


class _AgentClock:
    """Wall-clock time to agent time: only the stretches in which some agent works or is blocked count."""

    def __init__(self, active: list[Span], origin: float) -> None:
        self.spans = _merge(active)
        self.origin = origin
        self._starts = [begin for begin, _ in self.spans]
        self._before: list[float] = []
        total = 0.0
        for begin, end in self.spans:
            self._before.append(total)
            total += end - begin

    def __call__(self, wall_ms: float) -> float:
        """``origin`` plus the agent time before ``wall_ms``."""
        position = bisect.bisect_right(self._starts, wall_ms) - 1
        if position < 0:
            return self.origin
        begin, end = self.spans[position]
        return self.origin + self._before[position] + min(wall_ms, end) - begin


# --------------------------------------------------------------------------------------------------
# Finding the files


def _subagent_files(session_folder: Path) -> list[Path]:
    folder = session_folder / "subagents"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _discover(path: Path) -> list[_Source]:
    """The sessions under ``path``: a session file, session folder, subagent file, project folder, or a
    folder of project folders."""
    if not path.exists():
        raise TraceImportError([FileError(str(path), "no such file or folder; check the path")])
    if not path.is_dir() and not path.is_file():
        raise TraceImportError(
            [FileError(str(path), f"is not a regular file (a device, a pipe or a socket); {_WHAT}")]
        )
    if path.is_file():
        if path.parent.name == "subagents":
            return [_Source(path.parent.parent.name, None, [path])]
        return [_Source(path.stem, path, _subagent_files(path.parent / path.stem))]
    if path.name == "subagents":
        session = path.parent
        main = session.parent / f"{session.name}.jsonl"
        return [_Source(session.name, main if main.is_file() else None, sorted(path.glob("*.jsonl")))]
    if (path / "subagents").is_dir():
        main = path.parent / f"{path.name}.jsonl"
        return [_Source(path.name, main if main.is_file() else None, _subagent_files(path))]
    sources = [
        _Source(file.stem, file, _subagent_files(path / file.stem)) for file in sorted(path.glob("*.jsonl"))
    ]
    for folder in sorted(entry for entry in path.iterdir() if entry.is_dir()):
        if (folder / "subagents").is_dir() and not (path / f"{folder.name}.jsonl").is_file():
            sources.append(_Source(folder.name, None, _subagent_files(folder)))
    if not sources:
        # The projects folder itself (a run whose lanes worked in worktrees: one project each).
        for folder in sorted(entry for entry in path.iterdir() if entry.is_dir()):
            if any(folder.glob("*.jsonl")):
                sources += _discover(folder)
    if not sources:
        raise TraceImportError(
            [
                FileError(
                    str(path),
                    "no Claude Code transcripts here: give a session file (<id>.jsonl), a session folder "
                    "(with subagents/) or a project folder under ~/.claude/projects/",
                )
            ]
        )
    return sources


# --------------------------------------------------------------------------------------------------
# Reading lines


def _time_ms(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp() * 1000.0


def _read(path: Path, warnings: list[FileError]) -> list[_Record]:
    name = str(path)
    data = read_file(path, MAX_FILE_BYTES, _WHAT)
    lines = data.split(b"\n")
    records: list[_Record] = []
    bad: list[FileError] = []
    bad_times = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = parse_json(raw)
        except ValueError as exc:
            if number == len(lines):
                message = (
                    "truncated JSON record: the file ends mid-line (was it still being written?); skipped"
                )
            else:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or "not UTF-8 text"
                if isinstance(exc, UnicodeDecodeError):
                    reason = "not UTF-8 text"
                message = f"not a JSON record ({reason}); skipped"
            bad.append(FileError(name, message, line=number))
            continue
        if not isinstance(value, dict):
            bad.append(FileError(name, "not a JSON object; skipped", line=number))
            continue
        stamp = value.get("timestamp")
        time_ms = _time_ms(stamp)
        if stamp is not None and time_ms is None:
            bad_times += 1
            if bad_times == 1:
                bad.append(
                    FileError(
                        name, f"timestamp {str(stamp)[:40]!r} is not ISO 8601; record not timed", line=number
                    )
                )
        records.append(_Record(number, value, time_ms))
    warnings.extend(bad[:MAX_LINE_WARNINGS])
    if len(bad) > MAX_LINE_WARNINGS:
        warnings.append(
            FileError(name, f"{counted(len(bad) - MAX_LINE_WARNINGS, 'more unreadable line')} skipped")
        )
    if not records and data.strip():
        raise TraceImportError(
            [
                *bad[:MAX_LINE_WARNINGS],
                FileError(
                    name, "no line is a JSON record: this is not a Claude Code transcript (JSON Lines)"
                ),
            ]
        )
    return records


# --------------------------------------------------------------------------------------------------
# Prompts, responses, turns


def _blocks(record: dict[str, Any]) -> list[dict[str, Any]]:
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def _text(record: dict[str, Any]) -> str | None:
    """The text of a user record's message, or None when it carries tool results or no message."""
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    blocks = [block for block in content if isinstance(block, dict)]
    if any(block.get("type") == "tool_result" for block in blocks):
        return None
    return "\n".join(str(block.get("text", "")) for block in blocks if block.get("type") == "text")


def _carries_results(record: dict[str, Any]) -> bool:
    return record.get("type") == "user" and any(b.get("type") == "tool_result" for b in _blocks(record))


def _is_interruption(record: dict[str, Any]) -> bool:
    if record.get("type") != "user":
        return False
    text = _text(record)
    return text is not None and text.lstrip().startswith("[Request interrupted")


def _is_work(record: dict[str, Any]) -> bool:
    """Whether a record can end a turn: not the user's typing, a local command or the compaction
    bookkeeping (the compaction call itself is timed from its own transcript)."""
    kind = record.get("type")
    if kind == "system":
        return record.get("subtype") not in ("compact_boundary", "local_command")
    if kind == "user":
        if record.get("isCompactSummary") or record.get("isVisibleInTranscriptOnly"):
            return False
        text = _text(record)
        return text is None or not (text.lstrip().startswith(_NOT_PROMPTS) or "<command-name>" in text[:300])
    return kind in ("assistant", "progress")


def prompt_kind(record: dict[str, Any]) -> str | None:
    """What kind of turn a record starts: ``prompt``, ``command`` or ``notification``; None if none."""
    if record.get("type") != "user":
        return None
    if record.get("isMeta") or record.get("isCompactSummary") or record.get("isVisibleInTranscriptOnly"):
        return None
    text = _text(record)
    if text is None:
        return None
    stripped = text.lstrip()
    if stripped.startswith("[Request interrupted") or stripped.startswith(_NOT_PROMPTS):
        return None
    if stripped.startswith("<task-notification>"):
        return "notification"
    if "<command-name>" in stripped[:300]:
        return "command"
    return "prompt"


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    """The usage fields of one line (or one Task result) that hold counts, the 1-hour writes apart."""
    found = {name: value for name in USAGE_FIELDS if (value := _count(usage.get(name))) is not None}
    split = usage.get("cache_creation")
    if isinstance(split, dict):
        hour, minutes = (
            _count(split.get("ephemeral_1h_input_tokens")),
            _count(split.get("ephemeral_5m_input_tokens")),
        )
        if hour is not None:
            found[CACHE_WRITE_1H] = hour
        if "cache_creation_input_tokens" not in found and (hour is not None or minutes is not None):
            found["cache_creation_input_tokens"] = (hour or 0) + (minutes or 0)
    return found


def _responses(transcript: _Transcript) -> list[_Response]:
    found: dict[tuple[str, str], _Response] = {}
    for index, record in enumerate(transcript.records):
        data = record.data
        message = data.get("message")
        if data.get("type") != "assistant" or not isinstance(message, dict) or record.time_ms is None:
            continue
        message_id, request_id = message.get("id"), data.get("requestId")
        if isinstance(message_id, str) and isinstance(request_id, str):
            key = (message_id, request_id)
        else:
            key = ("line", f"{transcript.file}:{record.line}")
        response = found.get(key)
        if response is None:
            response = found[key] = _Response(key, transcript.file, record.line, index, record.time_ms)
            # A model id is a short name; a longer one is no model any price table knows.
            response.model = str(message.get("model") or "")[:MAX_MODEL_CHARS]
        usage = message.get("usage")
        if isinstance(usage, dict):
            for name, value in _usage(usage).items():
                response.usage[name] = max(response.usage.get(name, 0), value)
                response.has_usage = True
    return list(found.values())


def _turns(transcript: _Transcript) -> list[_Turn]:
    """The transcript's cycles: each prompt's records up to the next prompt, if an API response is
    among them. A background-task notification is no prompt of the user's: it resumes the turn before
    it (the time between the two is nobody's)."""
    records = transcript.records
    starts = [
        i for i, record in enumerate(records) if record.time_ms is not None and prompt_kind(record.data)
    ]
    kept = [response for response in transcript.responses if not response.duplicate]
    timed = [i for i, record in enumerate(records) if record.time_ms is not None]
    if kept and timed and (not starts or min(r.index for r in kept) < starts[0]):
        starts.insert(0, timed[0])  # work before any prompt: a turn from the first record
    turns: list[_Turn] = []
    for position, begin in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else len(records)
        inside = [response for response in kept if begin <= response.index < end]
        if not inside:
            continue
        segment = records[begin:end]
        start_ms = records[begin].time_ms
        assert start_ms is not None
        times = [r.time_ms for r in segment[1:] if r.time_ms is not None and _is_work(r.data)] or [start_ms]
        span = (start_ms, max(max(times), start_ms))
        interrupted = any(_is_interruption(record.data) for record in segment)
        kind = prompt_kind(records[begin].data) or "prompt"
        if kind == "notification" and turns:
            last = turns[-1]
            last.spans.append((max(span[0], last.end_ms), max(span[1], last.end_ms)))
            last.segments.append((begin, end))
            last.responses.extend(inside)
            last.interrupted = last.interrupted or interrupted
            continue
        turns.append(_Turn(records[begin].line, kind, [span], [(begin, end)], interrupted, inside))
    return turns


# --------------------------------------------------------------------------------------------------
# Tool calls: subagents launched, questions asked, permissions refused


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tool_calls(records: list[_Record]) -> list[_ToolCall]:
    """Every tool call of a transcript with the time of its result (None when none came)."""
    calls: dict[str, _ToolCall] = {}
    for index, record in enumerate(records):
        data = record.data
        if record.time_ms is None:
            continue
        if data.get("type") == "assistant":
            for block in _blocks(data):
                tool_id = block.get("id")
                if block.get("type") == "tool_use" and isinstance(tool_id, str) and tool_id not in calls:
                    calls[tool_id] = _ToolCall(str(block.get("name") or ""), index, record.time_ms)
            continue
        if not _carries_results(data):
            continue
        outcome = data.get("toolUseResult")
        for block in _blocks(data):
            call = calls.get(str(block.get("tool_use_id")))
            if block.get("type") != "tool_result" or call is None or call.result_ms is not None:
                continue
            call.result_ms = record.time_ms
            said = _result_text(block).lstrip()
            call.rejected = said.startswith(_REJECTED) or (
                isinstance(outcome, str) and outcome.lstrip().startswith(_REJECTED)
            )
            if isinstance(outcome, dict) and isinstance(outcome.get("agentId"), str):
                call.agent_id = outcome["agentId"]
    return list(calls.values())


def _thinks(record: dict[str, Any]) -> bool:
    """Whether an assistant record opens with a thinking block: the model spent the time before it."""
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return (
        isinstance(content, list)
        and bool(content)
        and isinstance(content[0], dict)
        and (content[0].get("type") in ("thinking", "redacted_thinking"))
    )


def _idle_gaps(records: list[_Record], segment: tuple[int, int]) -> list[Span]:
    """Gaps longer than :data:`IDLE_GAP_S` from the last record carrying tool results to the next
    assistant record, within one stretch of a turn; not when that record opens with a thinking block
    (the model thought all that time: extended thinking is written only when it ends)."""
    gaps: list[Span] = []
    results_at: float | None = None
    for record in records[segment[0] : segment[1]]:
        if record.time_ms is None:
            continue
        if _carries_results(record.data):
            results_at = record.time_ms
        elif record.data.get("type") == "assistant":
            if (
                results_at is not None
                and record.time_ms - results_at > IDLE_GAP_S * 1000.0
                and not _thinks(record.data)
            ):
                gaps.append((results_at, record.time_ms))
            results_at = None
    return gaps


def _time_turn(transcript: _Transcript, turn: _Turn) -> None:
    """Split a turn's time into person waits, blocked time and the rest (work)."""
    turn.spans = _merge([*turn.spans, *(c.span for c in turn.compactions)])
    asked: dict[str, list[Span]] = {cause: [] for cause in PERSON_CAUSES}
    blocked: list[Span] = []
    for call in transcript.tools:
        if call.result_ms is None or not turn.holds(call.index):
            continue
        span = (call.called_ms, call.result_ms)
        if call.name in _ASKING_TOOLS:  # a plan the user turns down reads as a rejected call too
            asked[_ASKING_TOOLS[call.name]].append(span)
        elif call.rejected:
            asked["permission"].append(span)
        elif call.name in TASK_TOOLS:
            blocked.append(span)
    for segment in turn.segments:
        asked["idle"].extend(_idle_gaps(transcript.records, segment))
    turn.blocked = _within(_merge(blocked), turn.spans)
    # Blocked time and compactions are agent time whatever else the records say; among person waits,
    # the explicit causes come before an idle gap.
    taken = [*turn.blocked, *(c.span for c in turn.compactions)]
    turn.waits = {}
    for cause in PERSON_CAUSES:
        spans = _minus(_within(_merge(asked[cause]), turn.spans), taken)
        if spans:
            turn.waits[cause] = spans
        taken.extend(spans)
    turn.active = _minus(turn.spans, [span for spans in turn.waits.values() for span in spans])


# --------------------------------------------------------------------------------------------------
# Sessions into transcripts


def _task_results(records: list[_Record]) -> dict[str, dict[str, int]]:
    """Subagent id -> the usage of its last response, from the session's Task tool results."""
    found: dict[str, dict[str, int]] = {}
    for record in records:
        result = record.data.get("toolUseResult")
        if (
            isinstance(result, dict)
            and isinstance(result.get("agentId"), str)
            and isinstance(result.get("usage"), dict)
        ):
            found[result["agentId"]] = _usage(result["usage"])
    return found


def _split_main(
    main: Path, session: str, records: list[_Record]
) -> tuple[_Transcript, dict[str, list[_Record]]]:
    """The session's own records, and the records it holds of subagents (inline or as progress copies)."""
    own: list[_Record] = []
    others: dict[str, list[_Record]] = {}
    for record in records:
        data = record.data
        if data.get("isSidechain") is True:
            others.setdefault(str(data.get("agentId") or "sidechain"), []).append(record)
            continue
        progress = data.get("data")
        if (
            data.get("type") == "progress"
            and isinstance(progress, dict)
            and progress.get("type") == "agent_progress"
        ):
            nested = progress.get("message")
            agent = progress.get("agentId")
            if isinstance(nested, dict) and isinstance(agent, str):
                time_ms = _time_ms(nested.get("timestamp"))
                others.setdefault(agent, []).append(
                    _Record(record.line, nested, time_ms if time_ms is not None else record.time_ms)
                )
            continue
        own.append(record)
    return _Transcript(main, session, "main", None, False, own), others


def _agent_id(file: Path) -> str:
    stem = file.stem
    return stem[len("agent-") :] if stem.startswith("agent-") else stem


def _transcripts(source: _Source, warnings: list[FileError]) -> list[_Transcript]:
    found: list[_Transcript] = []
    copies: dict[str, list[_Record]] = {}
    results: dict[str, dict[str, int]] = {}
    if source.main is not None:
        records = _read(source.main, warnings)
        results = _task_results(records)
        main, copies = _split_main(source.main, source.session, records)
        found.append(main)
    with_files = set()
    for file in source.subagents:
        agent = _agent_id(file)
        with_files.add(agent)
        records = _read(file, warnings)
        found.append(
            _Transcript(file, source.session, "subagent", agent, agent.startswith("acompact"), records)
        )
    for agent, records in copies.items():
        if agent in with_files or agent.startswith("acompact"):
            continue
        assert source.main is not None
        warnings.append(
            FileError(
                str(source.main),
                f"subagent {agent} has no transcript under {source.session}/subagents/; rebuilt from the "
                f"{len(records)} copies of its records in the session (they may miss responses)",
                line=records[0].line,
            )
        )
        found.append(
            _Transcript(source.main, source.session, "subagent", agent, False, records, partial=True)
        )
    for transcript in found:
        if transcript.agent_id is not None:
            transcript.final_usage = results.get(transcript.agent_id)
    return found


# --------------------------------------------------------------------------------------------------
# The run


def _response_cost(response: _Response, unpriced: Counter[str]) -> float:
    price = resolve(response.model)
    if price is None:
        if any(response.usage.values()):
            unpriced[response.model or "(no model)"] += 1
        return 0.0
    fresh, minutes, hour, read, output = response.tokens()
    return cost_usd(price, fresh, minutes, read, output, cache_write_1h_tokens=hour)


def import_claude_code(path: str | Path) -> ImportedRun:
    """Read Claude Code transcripts at ``path`` (session file, session folder, subagent file or project
    folder) into a complete run; raises :class:`TraceImportError` when there is nothing to measure."""
    root = Path(path)
    warnings: list[FileError] = []
    transcripts = [t for source in _discover(root) for t in _transcripts(source, warnings)]
    return _import(root, transcripts, warnings, KIND)


@dataclass(frozen=True)
class SessionRecords:
    """One Claude Code session's records in its transcripts' shape, from wherever they were read: the
    session's own (``main``) and each subagent's, by agent id; each record a ``(line, record)`` pair,
    the line numbering it within ``origin`` for warnings."""

    session: str
    origin: str
    """Where the records came from (a file), named in warnings."""
    main: list[tuple[int, dict[str, Any]]]
    subagents: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)


def import_session_records(root: str | Path, sessions: Iterable[SessionRecords], kind: str) -> ImportedRun:
    """A complete run from sessions' records in transcript shape, by the very rules that
    :func:`import_claude_code` applies to transcript files (turns, calls per turn, waiting on the person,
    subagents blocking their session, compactions); ``kind`` names the importer in the run. Raises
    :class:`TraceImportError` when there is nothing to measure."""
    transcripts: list[_Transcript] = []

    def records(rows: list[tuple[int, dict[str, Any]]]) -> list[_Record]:
        return [_Record(line, data, _time_ms(data.get("timestamp"))) for line, data in rows]

    for session in sessions:
        origin = Path(session.origin)
        if session.main:
            transcripts.append(
                _Transcript(origin, session.session, "main", None, False, records(session.main))
            )
        for agent, rows in sorted(session.subagents.items()):
            transcripts.append(
                _Transcript(
                    origin, session.session, "subagent", agent, agent.startswith("acompact"), records(rows)
                )
            )
    return _import(Path(root), transcripts, [], kind)


def _import(root: Path, transcripts: list[_Transcript], warnings: list[FileError], kind: str) -> ImportedRun:
    everything = [(response, t) for t in transcripts for response in _responses_into(t)]
    everything.sort(key=lambda item: (item[0].first_ms, str(item[0].file), item[0].line))
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for response, _ in everything:
        if response.key in seen:
            response.duplicate = True
            duplicates += 1
        seen.add(response.key)
    kept = [response for response, _ in everything if not response.duplicate]
    if not kept:
        raise TraceImportError(
            [
                FileError(
                    str(root),
                    "no API responses (type: assistant records with a timestamp): nothing to import",
                )
            ]
        )
    if not any(response.has_usage for response in kept):
        raise TraceImportError(
            [
                FileError(
                    str(root),
                    "no API response carries message.usage, so no tokens can be counted: is this a Claude "
                    "Code transcript, or was its usage stripped? Nothing was imported",
                )
            ]
        )
    without = Counter(str(r.file) for r in kept if not r.has_usage)
    for file, count in sorted(without.items()):
        first = min(r.line for r in kept if str(r.file) == file and not r.has_usage)
        warnings.append(
            FileError(
                file,
                f"{counted(count, 'API response')} {'carries' if count == 1 else 'carry'} no message.usage; "
                "their tokens count as zero",
                line=first,
            )
        )

    low = sum(1 for r in kept if r.has_usage and r.usage.get("output_tokens", 0) <= LOW_OUTPUT_TOKENS)
    if low > 0.05 * len(kept):
        warnings.append(
            FileError(
                str(root),
                f"{low} of {len(kept)} API responses record at most {LOW_OUTPUT_TOKENS} output tokens: "
                "Claude Code writes usage while a response streams, so their output tokens are a lower bound",
            )
        )
    work = [t for t in transcripts if not t.compaction]
    compactions = [t for t in transcripts if t.compaction]
    for transcript in transcripts:
        transcript.turns = _turns(transcript)
    for transcript in work:
        if not transcript.turns and transcript.records:
            warnings.append(
                FileError(str(transcript.file), "no turn with an API response: not a task of the run")
            )
    work = [t for t in work if t.turns]
    if not work and compactions:
        session = compactions[0].file.parent.parent
        raise TraceImportError(
            [
                FileError(
                    str(root),
                    "holds only an internal compaction session (agent-acompact-*), which is not work: import "
                    f"its session instead ({session.parent / session.name}.jsonl or {session})",
                )
            ]
        )
    if not work:
        raise TraceImportError(
            [FileError(str(root), "no user-prompt turn with an API response: nothing to import")]
        )
    return _build(root, work, compactions, warnings, duplicates, low, kind)


def _responses_into(transcript: _Transcript) -> list[_Response]:
    transcript.responses = _responses(transcript)
    final = transcript.final_usage
    if final:
        # Subagent transcripts keep each response's usage as it was when streaming began; the Task
        # result reports the last response's final figures, so that one at least is counted right.
        inputs = USAGE_FIELDS[:3]
        for response in reversed(transcript.responses):
            if all(response.usage.get(name) == final.get(name) for name in inputs):
                for name in ("output_tokens", CACHE_WRITE_1H):
                    if name in final:
                        response.usage[name] = max(response.usage.get(name, 0), final[name])
                break
    return transcript.responses


def _attach_compactions(
    compactions: list[_Transcript], work: list[_Transcript]
) -> list[tuple[_Compaction, _Transcript | None, int | None]]:
    """Each compaction call with the session (and turn number) it belongs to: the turn during which it
    ran, else (a ``/compact`` typed between turns) the next turn, else the last."""
    sessions = {t.session: t for t in work if t.role == "main"}
    attached: list[tuple[_Compaction, _Transcript | None, int | None]] = []
    for transcript in compactions:
        if not transcript.turns:
            continue
        last = transcript.turns[-1]
        compaction = _Compaction(transcript, (last.start_ms, last.end_ms), last.responses)
        owner = sessions.get(transcript.session)
        if owner is None:
            attached.append((compaction, None, None))
            continue
        end = compaction.span[1]
        number = next(
            (n for n, turn in enumerate(owner.turns, start=1) if turn.start_ms <= end <= turn.end_ms), None
        )
        if number is None:
            number = next(
                (n for n, turn in enumerate(owner.turns, start=1) if turn.start_ms >= end),
                len(owner.turns),
            )
        owner.turns[number - 1].compactions.append(compaction)
        attached.append((compaction, owner, number))
    return attached


def _spawns(work: list[_Transcript], warnings: list[FileError]) -> dict[str, Spawn]:
    """Each subagent's launch (its session's task and turn), found through the session's Task result."""
    launched: dict[tuple[str, str], tuple[_Transcript, int]] = {}
    for transcript in work:
        if transcript.role != "main":
            continue
        for call in transcript.tools:
            if call.name in TASK_TOOLS and call.agent_id is not None:
                number = next((n for n, t in enumerate(transcript.turns, 1) if t.holds(call.index)), None)
                if number is not None:
                    launched[(transcript.session, call.agent_id)] = (transcript, number)
    found: dict[str, Spawn] = {}
    for transcript in work:
        if transcript.role != "subagent":
            continue
        assert transcript.agent_id is not None
        parent = launched.get((transcript.session, transcript.agent_id))
        if parent is None:
            warnings.append(
                FileError(
                    str(transcript.file),
                    f"subagent {transcript.agent_id} of session {transcript.session}: no Task call of its "
                    "session names it (is the session transcript missing?); imported as an independent task",
                )
            )
            continue
        found[transcript.task_id] = Spawn(task=parent[0].task_id, cycle=parent[1])
    return found


def _dominant(responses: Iterable[_Response]) -> str:
    models = Counter(r.model for r in responses if r.model)
    return models.most_common(1)[0][0] if models else ""


def _lanes(
    work: list[_Transcript], spawns: dict[str, Spawn], spans: dict[str, tuple[float, float]]
) -> dict[str, str]:
    """Each task's lane: sessions on ``main-<n>`` and independent subagents on ``subagent-<n>``, so that
    tasks overlapping in agent time get separate lanes; a spawned subagent on a lane of its own beside
    its parent's (``main-1-sub1``), as the planner lays spawned subagents out."""
    lane_of = assign_lanes({t.task_id: spans[t.task_id] for t in work if t.role == "main"}, "main")
    alone = {t.task_id: spans[t.task_id] for t in work if t.role == "subagent" and t.task_id not in spawns}
    lane_of.update(assign_lanes(alone, "subagent"))
    under: dict[str, dict[str, tuple[float, float]]] = {}
    for task_id, spawn in spawns.items():
        under.setdefault(lane_of[spawn.task], {})[task_id] = spans[task_id]
    for parent_lane, children in under.items():
        for task_id, lane in assign_lanes(children, "sub").items():
            lane_of[task_id] = f"{parent_lane}-{lane.replace('-', '')}"
    return lane_of


def _roles(work: list[_Transcript], spans: dict[str, tuple[float, float]]) -> dict[str, Role]:
    """``main`` and ``subagent``: lanes for the most tasks that overlap, the most common model, and the
    cache most writes went to."""
    roles: dict[str, Role] = {}
    for role, about in (
        ("main", "Claude Code sessions: one task per session, one cycle per user-prompt turn"),
        ("subagent", "Claude Code subagents (Task tool): one task per subagent, one cycle per turn"),
    ):
        members = [t for t in work if t.role == role]
        if not members:
            continue
        calls = [r for t in members for turn in t.turns for r in turn.responses]
        written = [
            r.tokens() for t in members for turn in t.turns for r in [*turn.responses, *turn.compaction_calls]
        ]
        hour, minutes = sum(row[2] for row in written), sum(row[1] for row in written)
        peak = len(set(assign_lanes({t.task_id: spans[t.task_id] for t in members}, role).values()))
        roles[role] = Role(
            lanes=peak,
            model=_dominant(calls) or Role().model,
            description=about,
            tokens=TokenModel(cache_ttl="1h" if hour > minutes else "5m"),
        )
    return roles


def _scenario(
    root: Path,
    work: list[_Transcript],
    spawns: dict[str, Spawn],
    spans: dict[str, tuple[float, float]],
    kind: str = KIND,
) -> Scenario:
    roles = _roles(work, spans)
    tasks: list[Task] = []
    for t in sorted(work, key=lambda t: (spans[t.task_id][0], t.task_id)):
        model = roles[t.role].model
        cycle_models = {
            number: dominant
            for number, turn in enumerate(t.turns, start=1)
            if (dominant := _dominant(turn.responses)) and dominant != model
        }
        plural = "s" if len(t.turns) != 1 else ""
        what = (
            f"Claude Code session {t.session}"
            if t.role == "main"
            else f"subagent {t.agent_id} of {t.session}"
        )
        tasks.append(
            Task(
                id=t.task_id,
                role=t.role,
                cycles=len(t.turns),
                description=f"{what} ({len(t.turns)} turn{plural})",
                cycle_models=cycle_models,
                spawned_by=spawns.get(t.task_id),
            )
        )
    sessions = {t.session for t in work}
    label = min(sessions) if len(sessions) == 1 else root.name
    return Scenario(
        name=f"imported claude-code {label}"[:200],
        description=f"Imported from Claude Code {'transcripts' if kind == KIND else kind} at {root}: "
        f"{counted(len(sessions), 'session')}, "
        f"{counted(sum(1 for t in work if t.role == 'subagent'), 'subagent')}."[:10_000],
        roles=roles,
        tasks=tasks,
    )


def _build(
    root: Path,
    work: list[_Transcript],
    compactions: list[_Transcript],
    warnings: list[FileError],
    duplicates: int,
    low_output: int,
    kind: str = KIND,
) -> ImportedRun:
    taken: set[str] = set()
    for transcript in work:
        if transcript.role == "main":
            transcript.task_id = identifier(transcript.session, taken)
    for transcript in work:
        if transcript.role == "subagent":
            transcript.task_id = identifier(f"{transcript.session[:8]}.agent-{transcript.agent_id}", taken)
    for transcript in work:
        transcript.tools = _tool_calls(transcript.records)
    attached = _attach_compactions(compactions, work)
    for transcript in work:
        for turn in transcript.turns:
            _time_turn(transcript, turn)
    spawns = _spawns(work, warnings)
    start = min(t.turns[0].start_ms for t in work)
    end = max(t.turns[-1].end_ms for t in work)
    clock = _AgentClock([span for t in work for turn in t.turns for span in turn.active], start)
    spans = {t.task_id: (clock(t.turns[0].start_ms), clock(t.turns[-1].end_ms)) for t in work}
    lane_of = _lanes(work, spawns, spans)
    scenario = _scenario(root, work, spawns, spans, kind)
    from cycleplan.planner import plan as make_plan

    plan = make_plan(scenario, algorithm="list")

    builder = TraceBuilder()
    unpriced: Counter[str] = Counter()
    compaction_notes: list[dict[str, Any]] = []
    for compaction, owner, number in attached:
        note: dict[str, Any] = {
            "agent_id": compaction.transcript.agent_id,
            "session": compaction.transcript.session,
            "turn": number,
            "duration_ms": round(compaction.span[1] - compaction.span[0], 3),
            **_sum_usage(compaction.responses),
        }
        compaction_notes.append(note)
        if owner is not None:
            builder.add(
                lane_of[owner.task_id],
                owner.task_id,
                clock(compaction.span[1]),
                action="progress_update",
                compaction=True,
                **{k: v for k, v in note.items() if k != "session"},
            )

    totals: Counter[str] = Counter()
    waits_by_cause: Counter[str] = Counter()
    for transcript in work:
        lane = lane_of[transcript.task_id]
        first = transcript.turns[0].responses[0].tokens()
        started: dict[str, Any] = {
            "action": "task_started",
            "role": transcript.role,
            "cycles": len(transcript.turns),
            "context_tokens": first[0] + first[1] + first[2] + first[3],
            "source": str(transcript.file),
        }
        if transcript.partial:
            started["partial"] = True
        builder.add(lane, transcript.task_id, clock(transcript.turns[0].start_ms), **started)
        previous_end: float | None = None
        for number, turn in enumerate(transcript.turns, start=1):
            metadata = _cycle(transcript, turn, number, clock, previous_end, unpriced)
            totals.update(
                {
                    "calls": metadata["calls"],
                    "compaction_calls": metadata["compaction_calls"],
                    "blocked_ms": metadata["blocked_ms"],
                    "person_wait_ms": metadata["person_wait_ms"],
                }
            )
            waits_by_cause.update(metadata.get("person_waits", {}))
            builder.add(lane, transcript.task_id, clock(turn.end_ms), **metadata)
            previous_end = turn.end_ms
        builder.add(lane, transcript.task_id, clock(transcript.turns[-1].end_ms), action="task_complete")

    for model, count in sorted(unpriced.items()):
        warnings.append(
            FileError(
                str(root),
                f"no price for model {model!r} ({counted(count, 'response')}): their cost counts as zero; "
                "give its price under prices: in a scenario",
            )
        )
    lanes: dict[str, str | None] = {lane.lane: lane.role for lane in plan.lanes}
    roles_of = {t.task_id: t.role for t in work}
    for task_id, lane_name in lane_of.items():
        lanes.setdefault(lane_name, roles_of[task_id])
    waited = [span for t in work for turn in t.turns for s in turn.waits.values() for span in s]
    idle_ms = _measure(_minus([(start, end)], [*clock.spans, *waited]))
    details: dict[str, Any] = {
        "sessions": len({t.session for t in work}),
        "subagents": sum(1 for t in work if t.role == "subagent"),
        "compactions": len(compaction_notes),
        "turns": sum(len(t.turns) for t in work),
        "responses": sum(len(turn.responses) for t in work for turn in t.turns),
        "duplicate_responses": duplicates,
        "low_output_responses": low_output,
        "lanes": {role: spec.lanes for role, spec in scenario.roles.items()},
        "wall_min": round((end - start) / MS_PER_MIN, 4),
        "agent_min": round((clock(end) - clock(start)) / MS_PER_MIN, 4),
        "person_wait_min": round(totals["person_wait_ms"] / MS_PER_MIN, 4),
        "person_waits_min": {
            cause: round(waits_by_cause[cause] / MS_PER_MIN, 4)
            for cause in PERSON_CAUSES
            if waits_by_cause[cause] > 0
        },
        "idle_min": round(idle_ms / MS_PER_MIN, 4),
        "blocked_min": round(totals["blocked_ms"] / MS_PER_MIN, 4),
        "calls": totals["calls"],
        "compaction_calls": totals["compaction_calls"],
    }
    trace = builder.trace(
        lanes,
        scenario.all_tasks(),
        clock(start),
        clock(end),
        "complete",
        {
            "agent": IMPORT_AGENT,
            "time_scale": 1.0,
            "clock": "agent",
            "imported": {
                "kind": kind,
                "source": str(root),
                **details,
                "compaction_sessions": compaction_notes,
            },
        },
    )
    # A session was ready when its person started it, not at the run's start: waiting for that is no
    # wait for a lane (metrics read ``released``).
    header = dict(trace[0].metadata)
    header["tasks"] = {
        task_id: {**info, "released": spans[task_id][0]}
        if task_id in spans and "spawned_by" not in info
        else info
        for task_id, info in header["tasks"].items()
    }
    trace[0] = trace[0].model_copy(update={"metadata": header})
    return ImportedRun(kind, str(root), scenario, plan, trace, warnings, "complete", details)


def _cycle(
    transcript: _Transcript,
    turn: _Turn,
    number: int,
    clock: _AgentClock,
    previous_end: float | None,
    unpriced: Counter[str],
) -> dict[str, Any]:
    """One turn's ``cycle_completed`` metadata."""
    work = _minus(turn.active, turn.blocked)
    compacting = [c.span for c in turn.compactions]
    calling = _minus(work, compacting)
    # Each call owns the time from the previous call's first record to its own; the last also the tail.
    responses = sorted(turn.responses, key=lambda r: (r.first_ms, r.index))
    bounds = [turn.start_ms]
    for response in responses:
        bounds.append(max(bounds[-1], response.first_ms))
    durations = [_measure(_within(calling, [(a, b)])) for a, b in itertools.pairwise(bounds)]
    durations[-1] += _measure(_within(calling, [(bounds[-1], turn.end_ms)]))
    api_calls = [[round(ms, 3), *r.tokens()] for ms, r in zip(durations, responses, strict=True)]
    compaction_rows = [
        [
            round(_measure(_within(work, [c.span])) if n == 0 else 0.0, 3),
            *r.tokens(),
            sum(1 for call in responses if call.first_ms <= c.span[0]),
        ]
        for c in turn.compactions
        for n, r in enumerate(c.responses)
    ]
    every = [*responses, *turn.compaction_calls]
    waits = {cause: round(_measure(spans), 3) for cause, spans in turn.waits.items()}
    blocked = _measure(turn.blocked)
    worked = _measure(work)
    wall = turn.end_ms - turn.start_ms
    metadata: dict[str, Any] = {
        "action": "cycle_completed",
        "cycle": number,
        "attempt": 1,
        "failed": False,
        "started_at": clock(turn.start_ms),
        "duration_ms": round(worked, 3),
        "sync_wait_ms": 0.0,
        "sync_ms": 0.0,
        "rate_limit_wait_ms": 0.0,
        **_sum_usage(every),
        "cost_usd": sum(_response_cost(response, unpriced) for response in every),
        "model": _dominant(responses),
        "responses": len(responses),
        "calls": len(responses),
        "compaction_calls": len(compaction_rows),
        "api_calls": api_calls,
        "compactions": compaction_rows,
        "wall_ms": round(wall, 3),
        "wall_started_at": turn.start_ms,
        "person_wait_ms": round(sum(waits.values()), 3),
        "blocked_ms": round(blocked, 3),
        "prompt": turn.kind,
        "source_line": f"{transcript.file.name}:{turn.line}",
        "idle_before_ms": 0.0 if previous_end is None else round(max(turn.start_ms - previous_end, 0.0), 3),
    }
    if waits:
        metadata["person_waits"] = waits
    if compaction_rows:
        metadata["compaction_ms"] = round(sum(row[0] for row in compaction_rows), 3)
    between = wall - _measure(turn.spans)
    if between > 0:
        metadata["resumed"] = len(turn.spans) - 1
        metadata["idle_ms"] = round(between, 3)
    if turn.interrupted:
        metadata["user_interrupted"] = True
    without = sum(1 for r in responses if not r.has_usage)
    if without:
        metadata["responses_without_usage"] = without
    return metadata


def _sum_usage(responses: list[_Response]) -> dict[str, int]:
    fresh = minutes = hour = read = output = 0
    for response in responses:
        tokens = response.tokens()
        fresh, minutes, hour = fresh + tokens[0], minutes + tokens[1], hour + tokens[2]
        read, output = read + tokens[3], output + tokens[4]
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": minutes + hour,
        CACHE_WRITE_1H: hour,
        "cache_read_input_tokens": read,
        "output_tokens": output,
    }
