"""Claude Code transcripts as runs: sessions and subagents become tasks, user-prompt turns become cycles.

Reads the JSON Lines files Claude Code writes under ``~/.claude/projects/<project>/``: a session file
``<id>.jsonl`` with its ``<id>/subagents/agent-<id>.jsonl``, a session folder, one subagent file, or a
whole project folder (every session in it). How they map onto a run:

- one task per session (role ``main``) and per subagent (role ``subagent``); tasks that overlap in time
  go on separate lanes of their role, so a project's parallel sessions and a session's subagents run on
  parallel lanes;
- one cycle per user-prompt turn: a ``type: user`` record that is a real prompt (typed text, a slash
  command or a background-task notification; not a tool result, meta text, a compaction summary or an
  interruption marker) starts a cycle, which ends at the last record before the next prompt. A prompt
  no API response follows (``/mcp``, ``/compact``, an instant interruption) is no turn of work;
- usage is counted once per API response: the lines of one streamed response share ``message.id`` and
  ``requestId`` and their usage grows as it streams, so each field's largest value counts, once, even
  when another file repeats the response;
- internal compaction sessions (``agent-acompact-*``) are marked (a ``progress_update`` with
  ``compaction: true`` and their tokens) and not counted as work: the time a turn spent waiting for one
  is taken out of the turn's duration;
- a subagent whose transcript file is missing is rebuilt from the ``agent_progress`` records its
  session keeps of it, with a warning (those copies may miss responses).

Unreadable lines are skipped with a warning naming FILE:LINE; input with nothing to measure raises
:class:`~cycleplan.importers.run.TraceImportError`. This module writes nothing.
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cycleplan.importers.run import (
    IMPORT_AGENT,
    ImportedRun,
    TraceBuilder,
    TraceImportError,
    assign_lanes,
    identifier,
)
from cycleplan.loading import FileError
from cycleplan.model import Role, Scenario, Task
from cycleplan.prices import cost_usd, resolve

KIND = "claude-code"
USAGE_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
MAX_FILE_BYTES = 1_000_000_000
"""Largest transcript read (Claude Code's own files rarely pass a few megabytes)."""
MAX_LINE_WARNINGS = 5
"""Unreadable lines reported one by one per file; the rest are counted in one more warning."""

LOW_OUTPUT_TOKENS = 5
"""A response recording this few output tokens was most likely written before it finished streaming."""

_NOT_PROMPTS = ("<local-command-stdout>", "<local-command-stderr>", "<local-command-caveat>")


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


@dataclass
class _Turn:
    """One cycle: a prompt and the agent's work on it, background-task notifications included."""

    line: int
    kind: str
    spans: list[tuple[float, float]]
    """The stretches of time the agent worked (a notification that resumes the turn adds one)."""
    interrupted: bool
    responses: list[_Response]

    @property
    def start_ms(self) -> float:
        return self.spans[0][0]

    @property
    def end_ms(self) -> float:
        return self.spans[-1][1]


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
    responses: list[_Response] = field(default_factory=list)
    turns: list[_Turn] = field(default_factory=list)
    task_id: str = ""


@dataclass
class _Source:
    session: str
    main: Path | None
    subagents: list[Path]


# --------------------------------------------------------------------------------------------------
# Finding the files


def _subagent_files(session_folder: Path) -> list[Path]:
    folder = session_folder / "subagents"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _discover(path: Path) -> list[_Source]:
    """The sessions under ``path``: a session file, session folder, subagent file or project folder."""
    if not path.exists():
        raise TraceImportError([FileError(str(path), "no such file or folder; check the path")])
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
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TraceImportError(
                [FileError(name, f"is {size:,} bytes, more than a transcript holds; check the path")]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise TraceImportError([FileError(name, f"cannot be read: {exc.strerror or exc}")]) from None
    lines = data.split(b"\n")
    records: list[_Record] = []
    bad: list[FileError] = []
    bad_times = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError as exc:
            if number == len(lines):
                message = (
                    "truncated JSON record: the file ends mid-line (was it still being written?); skipped"
                )
            else:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
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
        warnings.append(FileError(name, f"{len(bad) - MAX_LINE_WARNINGS} more unreadable line(s) skipped"))
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


def _is_interruption(record: dict[str, Any]) -> bool:
    if record.get("type") != "user":
        return False
    text = _text(record)
    return text is not None and text.lstrip().startswith("[Request interrupted")


def _is_work(record: dict[str, Any]) -> bool:
    """Whether a record's time is the agent's: not the user's typing, local commands or compaction."""
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
            response.model = str(message.get("model") or "")
        usage = message.get("usage")
        if isinstance(usage, dict):
            for name in USAGE_FIELDS:
                value = usage.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    response.usage[name] = max(response.usage.get(name, 0), value)
                    response.has_usage = True
    return list(found.values())


def _turns(transcript: _Transcript) -> list[_Turn]:
    """The transcript's cycles: each prompt's records up to the next prompt, if an API response is
    among them. A background-task notification is no prompt of the user's: it resumes the turn before
    it (the time between the two is not work)."""
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
            last.responses.extend(inside)
            last.interrupted = last.interrupted or interrupted
            continue
        turns.append(_Turn(records[begin].line, kind, [span], interrupted, inside))
    return turns


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
            usage = result["usage"]
            found[result["agentId"]] = {
                name: value
                for name in USAGE_FIELDS
                if isinstance(value := usage.get(name), int) and value >= 0
            }
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
        found.append(_Transcript(source.main, source.session, "subagent", agent, False, records))
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
    usage = response.usage
    return cost_usd(
        price,
        usage.get("input_tokens", 0),
        usage.get("cache_creation_input_tokens", 0),
        usage.get("cache_read_input_tokens", 0),
        usage.get("output_tokens", 0),
    )


def _overlap(start: float, end: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


def import_claude_code(path: str | Path) -> ImportedRun:
    """Read Claude Code transcripts at ``path`` (session file, session folder, subagent file or project
    folder) into a complete run; raises :class:`TraceImportError` when there is nothing to measure."""
    root = Path(path)
    warnings: list[FileError] = []
    transcripts = [t for source in _discover(root) for t in _transcripts(source, warnings)]

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
                f"{count} API response(s) carry no message.usage; their tokens count as zero",
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
    return _build(root, work, compactions, warnings, duplicates, low)


def _responses_into(transcript: _Transcript) -> list[_Response]:
    transcript.responses = _responses(transcript)
    final = transcript.final_usage
    if final:
        # Subagent transcripts keep each response's usage as it was when streaming began; the Task
        # result reports the last response's full output, so that one at least is counted right.
        inputs = USAGE_FIELDS[:3]
        for response in reversed(transcript.responses):
            if all(response.usage.get(name) == final.get(name) for name in inputs):
                response.usage["output_tokens"] = max(
                    response.usage.get("output_tokens", 0), final.get("output_tokens", 0)
                )
                break
    return transcript.responses


def _compaction_span(transcript: _Transcript) -> tuple[float, float] | None:
    """From the compaction's request (its last prompt) to its last record."""
    if not transcript.turns:
        return None
    return transcript.turns[-1].start_ms, transcript.turns[-1].end_ms


def _build(
    root: Path,
    work: list[_Transcript],
    compactions: list[_Transcript],
    warnings: list[FileError],
    duplicates: int,
    low_output: int,
) -> ImportedRun:
    taken: set[str] = set()
    for transcript in work:
        if transcript.role == "main":
            transcript.task_id = identifier(transcript.session, taken)
    for transcript in work:
        if transcript.role == "subagent":
            transcript.task_id = identifier(f"{transcript.session[:8]}.agent-{transcript.agent_id}", taken)

    spans = {t.task_id: (t.turns[0].start_ms, t.turns[-1].end_ms) for t in work}
    lane_of: dict[str, str] = {}
    roles: dict[str, Role] = {}
    for role, about in (
        ("main", "Claude Code sessions: one task per session, one cycle per user-prompt turn"),
        ("subagent", "Claude Code subagents (Task tool): one task per subagent, one cycle per turn"),
    ):
        members = [t for t in work if t.role == role]
        if not members:
            continue
        lane_of.update(assign_lanes({t.task_id: spans[t.task_id] for t in members}, role))
        models = Counter(r.model for t in members for turn in t.turns for r in turn.responses if r.model)
        used = len({lane_of[t.task_id] for t in members})
        model = models.most_common(1)[0][0] if models else Role().model
        roles[role] = Role(lanes=used, model=model, description=about)

    tasks = [
        Task(
            id=t.task_id,
            role=t.role,
            cycles=len(t.turns),
            description=(
                f"Claude Code session {t.session}"
                if t.role == "main"
                else f"subagent {t.agent_id} of {t.session}"
            )
            + f" ({len(t.turns)} turn{'s' if len(t.turns) != 1 else ''})",
        )
        for t in sorted(work, key=lambda t: (spans[t.task_id][0], t.task_id))
    ]
    sessions = sorted({t.session for t in work})
    label = sessions[0] if len(sessions) == 1 else root.name
    scenario = Scenario(
        name=f"imported claude-code {label}"[:200],
        description=f"Imported from Claude Code transcripts at {root}: {len(sessions)} session(s), "
        f"{sum(1 for t in work if t.role == 'subagent')} subagent(s)."[:10_000],
        roles=roles,
        tasks=tasks,
    )
    from cycleplan.planner import plan as make_plan

    plan = make_plan(scenario, algorithm="list")

    compaction_spans: dict[str, list[tuple[float, float]]] = {}
    compaction_notes: list[dict[str, Any]] = []
    builder = TraceBuilder()
    main_task = {t.session: t for t in work if t.role == "main"}
    for transcript in compactions:
        span = _compaction_span(transcript)
        if span is None:
            continue
        compaction_spans.setdefault(transcript.session, []).append(span)
        usage = _sum_usage([r for turn in transcript.turns for r in turn.responses])
        note = {
            "agent_id": transcript.agent_id,
            "session": transcript.session,
            "duration_ms": round(span[1] - span[0], 3),
            **usage,
        }
        compaction_notes.append(note)
        owner = main_task.get(transcript.session)
        if owner is not None:
            builder.add(
                lane_of[owner.task_id],
                owner.task_id,
                span[1],
                action="progress_update",
                compaction=True,
                **{k: v for k, v in note.items() if k != "session"},
            )

    unpriced: Counter[str] = Counter()
    cycles = 0
    for transcript in work:
        lane = lane_of[transcript.task_id]
        first = transcript.turns[0].responses[0].usage
        builder.add(
            lane,
            transcript.task_id,
            transcript.turns[0].start_ms,
            action="task_started",
            role=transcript.role,
            cycles=len(transcript.turns),
            context_tokens=sum(first.get(name, 0) for name in USAGE_FIELDS[:3]),
            source=str(transcript.file),
        )
        previous_end: float | None = None
        waits = compaction_spans.get(transcript.session, []) if transcript.role == "main" else []
        for number, turn in enumerate(transcript.turns, start=1):
            wall = turn.end_ms - turn.start_ms
            worked = sum(end - begin for begin, end in turn.spans)
            compaction_ms = min(sum(_overlap(begin, end, waits) for begin, end in turn.spans), worked)
            cost = sum(_response_cost(response, unpriced) for response in turn.responses)
            models = Counter(r.model for r in turn.responses if r.model)
            metadata: dict[str, Any] = {
                "action": "cycle_completed",
                "cycle": number,
                "attempt": 1,
                "failed": False,
                "started_at": turn.start_ms,
                "duration_ms": round(worked - compaction_ms, 3),
                "sync_wait_ms": 0.0,
                "sync_ms": 0.0,
                "rate_limit_wait_ms": 0.0,
                **_sum_usage(turn.responses),
                "cost_usd": cost,
                "model": models.most_common(1)[0][0] if models else "",
                "responses": len(turn.responses),
                "prompt": turn.kind,
                "source_line": f"{transcript.file.name}:{turn.line}",
                "idle_before_ms": 0.0
                if previous_end is None
                else round(max(turn.start_ms - previous_end, 0.0), 3),
            }
            if compaction_ms > 0:
                metadata["compaction_ms"] = round(compaction_ms, 3)
            if wall - worked > 0:
                metadata["resumed"] = len(turn.spans) - 1
                metadata["idle_ms"] = round(wall - worked, 3)
            if turn.interrupted:
                metadata["user_interrupted"] = True
            without = sum(1 for r in turn.responses if not r.has_usage)
            if without:
                metadata["responses_without_usage"] = without
            builder.add(lane, transcript.task_id, turn.end_ms, **metadata)
            previous_end = turn.end_ms
            cycles += 1
        builder.add(lane, transcript.task_id, transcript.turns[-1].end_ms, action="task_complete")

    for model, count in sorted(unpriced.items()):
        warnings.append(
            FileError(
                str(root),
                f"no price for model {model!r} ({count} response(s)): their cost counts as zero; "
                "give its price under prices: in a scenario",
            )
        )
    lanes: dict[str, str | None] = {lane.lane: lane.role for lane in plan.lanes}
    for task_id, lane_name in lane_of.items():
        lanes.setdefault(lane_name, next(t.role for t in work if t.task_id == task_id))
    start = min(span[0] for span in spans.values())
    end = max(span[1] for span in spans.values())
    details = {
        "sessions": len(sessions),
        "subagents": sum(1 for t in work if t.role == "subagent"),
        "compactions": len(compaction_notes),
        "turns": cycles,
        "responses": sum(len(turn.responses) for t in work for turn in t.turns),
        "duplicate_responses": duplicates,
        "low_output_responses": low_output,
        "lanes": {role: spec.lanes for role, spec in roles.items()},
    }
    trace = builder.trace(
        lanes,
        scenario.all_tasks(),
        start,
        end,
        "complete",
        {
            "agent": IMPORT_AGENT,
            "time_scale": 1.0,
            "imported": {
                "kind": KIND,
                "source": str(root),
                **details,
                "compaction_sessions": compaction_notes,
            },
        },
    )
    return ImportedRun(KIND, str(root), scenario, plan, trace, warnings, "complete", details)


def _sum_usage(responses: list[_Response]) -> dict[str, int]:
    return {name: sum(r.usage.get(name, 0) for r in responses) for name in USAGE_FIELDS}
