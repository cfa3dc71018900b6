"""Claude Code transcripts into runs: tasks per session and subagent (spawned by the turn that launched
it), cycles per user-prompt turn, usage counted once per API response with its cache split, time on the
agent clock with person waits and blocking apart, and bad input refused or warned about. The checks on the
full transcripts recount them from the raw lines, sharing no code with the importer."""

from __future__ import annotations

import datetime
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, SHARED_DATA

from cycleplan.core.metrics import MS_PER_MIN, metrics
from cycleplan.core.model import Spawn
from cycleplan.workflows.importers import ImportedRun, TraceImportError, import_claude_code
from cycleplan.workflows.importers.claude_code import IDLE_GAP_S, USAGE_FIELDS, prompt_kind

DATA = ROOT / "tests" / "data" / "claude-code"
SESSION = "258c7280-ae70-4798-800f-63464d01a85d"
SUBAGENT = "258c7280.agent-a881341"
FULL = SHARED_DATA / "traces" / "claude-code"
needs_full = pytest.mark.skipif(
    not FULL.is_dir(), reason=f"the full Claude Code transcripts are not here ({FULL}); tests/data has copies"
)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _deduped_usage(path: Path) -> dict[str, int]:
    """Each API response's usage once: the largest value of each field over its streamed lines."""
    responses: dict[tuple[str, str], dict[str, int]] = {}
    for record in _records(path):
        message = record.get("message")
        if record.get("type") != "assistant" or not isinstance(message, dict):
            continue
        key = (str(message["id"]), str(record["requestId"]))
        usage = responses.setdefault(key, {})
        for name in USAGE_FIELDS:
            usage[name] = max(usage.get(name, 0), int(message["usage"][name]))
    return {name: sum(usage[name] for usage in responses.values()) for name in USAGE_FIELDS}


def _cycles(imported: ImportedRun, task: str | None = None) -> list[dict[str, Any]]:
    return [
        e.metadata
        for e in imported.trace
        if e.action == "cycle_completed" and (task is None or e.target_id == task)
    ]


def _ms(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000.0


def _rewrite(source: Path, target: Path, change: Any) -> Path:
    """``source`` with ``change(line_number, record)`` applied to every record, written to ``target``."""
    records = _records(source)
    target.write_text("".join(json.dumps(change(n, r) or r) + "\n" for n, r in enumerate(records, 1)))
    return target


def test_a_session_with_its_subagent_and_compaction() -> None:
    """The subagent's lane is named after its parent's (``main-1-sub1``), as the planner names the lanes
    of spawned subagents."""
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    tasks = {task.id: task for task in imported.scenario.all_tasks()}
    assert tasks[SESSION].role == "main"
    subagent = SUBAGENT
    assert tasks[subagent].role == "subagent" and tasks[subagent].cycles == 1
    # Two user prompts; the background-task notifications resume the first turn instead of starting one.
    assert tasks[SESSION].cycles == 2
    assert "acompact" not in " ".join(tasks)
    compaction = [e for e in imported.trace if e.action == "progress_update"]
    assert len(compaction) == 1 and compaction[0].metadata["compaction"] is True
    measured = metrics(imported.trace)
    assert measured.completed
    assert set(measured.busy_min_by_lane) == {"main-1", "main-1-sub1"}
    # The subagent ran while the session waited for it: a parallel lane.
    spans = measured.tasks
    assert spans[SESSION].start_min < spans[subagent].start_min < spans[SESSION].finish_min


def test_usage_is_counted_once_per_response() -> None:
    """Counted over the session's own calls (``api_calls``): a cycle's totals now also hold the tokens of
    the compaction calls made during it."""
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    main = _deduped_usage(DATA / f"{SESSION}.jsonl")
    counted = {name: 0 for name in USAGE_FIELDS}
    for cycle in _cycles(imported, SESSION):
        for _, fresh, minutes, hour, read, output in cycle["api_calls"]:
            for name, value in zip(USAGE_FIELDS, (fresh, minutes + hour, read, output), strict=True):
                counted[name] += value
    assert counted == main
    streamed_lines = sum(1 for r in _records(DATA / f"{SESSION}.jsonl") if r.get("type") == "assistant")
    assert imported.details["responses"] < streamed_lines


def test_subagent_output_is_corrected_from_its_task_result() -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    (cycle,) = [c for c in _cycles(imported) if "agent-a881341" in str(c["source_line"])]
    recorded = _deduped_usage(DATA / SESSION / "subagents" / "agent-a881341.jsonl")
    # The transcript records 1 output token for the last response; the Task result says 997.
    assert cycle["output_tokens"] == recorded["output_tokens"] - 1 + 997


def test_cycles_carry_what_metrics_reads() -> None:
    imported = import_claude_code(DATA)
    for cycle in _cycles(imported):
        assert cycle["duration_ms"] > 0
        assert cycle["cost_usd"] > 0
        for name in (*USAGE_FIELDS, "sync_wait_ms", "sync_ms", "rate_limit_wait_ms", "attempt", "failed"):
            assert name in cycle
    measured = metrics(imported.trace)
    assert measured.cost_usd == pytest.approx(sum(float(c["cost_usd"]) for c in _cycles(imported)))
    starts = [e.timestamp for e in imported.trace]
    assert starts == sorted(starts)


def test_a_project_folder_puts_overlapping_work_on_parallel_lanes() -> None:
    imported = import_claude_code(DATA)
    assert imported.details["sessions"] == 4
    # subagent.jsonl has no subagents/ folder: its subagent is rebuilt from the session's copies.
    assert any("rebuilt from" in w.message and w.line == 37 for w in imported.warnings)
    measured = metrics(imported.trace)
    by_lane: dict[str, list[tuple[float, float]]] = {}
    for span in measured.tasks.values():
        by_lane.setdefault(span.lane, []).append((span.start_min, span.finish_min))
    for spans in by_lane.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert imported.plan.scenario == imported.scenario


def test_a_folder_of_project_folders_imports_every_project(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    for name in ("-work-lane-1", "-work-lane-2"):
        (projects / name).mkdir(parents=True)
    shutil.copy(DATA / f"{SESSION}.jsonl", projects / "-work-lane-1")
    shutil.copytree(DATA / SESSION, projects / "-work-lane-1" / SESSION)
    shutil.copy(DATA / "subagent.jsonl", projects / "-work-lane-2")
    imported = import_claude_code(projects)
    assert imported.details["sessions"] == 2 and imported.details["subagents"] >= 2


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        ({"type": "user", "message": {"content": "fix the login"}}, "prompt"),
        ({"type": "user", "message": {"content": [{"type": "text", "text": "and the tests"}]}}, "prompt"),
        ({"type": "user", "message": {"content": [{"type": "tool_result", "content": "ok"}]}}, None),
        (
            {
                "type": "user",
                "message": {"content": [{"type": "text", "text": "[Request interrupted by user]"}]},
            },
            None,
        ),
        ({"type": "user", "isMeta": True, "message": {"content": "<local-command-caveat>..."}}, None),
        ({"type": "user", "isCompactSummary": True, "message": {"content": "This session is..."}}, None),
        ({"type": "user", "message": {"content": "<local-command-stdout>done</local-command-stdout>"}}, None),
        ({"type": "user", "message": {"content": "<command-name>/review</command-name>"}}, "command"),
        (
            {"type": "user", "message": {"content": "<task-notification>\n<task-id>b1</task-id>"}},
            "notification",
        ),
        ({"type": "assistant", "message": {"content": "hello"}}, None),
    ],
)
def test_what_starts_a_turn(record: dict[str, object], kind: str | None) -> None:
    assert prompt_kind(record) == kind


def test_a_prompt_without_any_response_is_no_turn() -> None:
    """The turn's work is its 5.6 s less the 1.4 s the user took to reject its two tool calls, now a
    person wait (``permission``) and no longer work."""
    imported = import_claude_code(DATA / "short.jsonl")
    (cycle,) = _cycles(imported)
    # The /model command at 21:16 gets no response: the turn is the 6 seconds before the interruption.
    assert cycle["wall_ms"] == pytest.approx(5634.0)
    # Bash called at 21:12:01.117 and Glob at 01.669, both rejected at 02.480.
    assert cycle["person_waits"] == {"permission": pytest.approx(1363.0)}
    assert cycle["duration_ms"] == pytest.approx(5634.0 - 1363.0)
    assert cycle["user_interrupted"] is True


def test_a_truncated_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    text = (DATA / "tool_heavy.jsonl").read_text(encoding="utf-8")
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 200], encoding="utf-8")
    imported = import_claude_code(cut)
    lines = text[: len(text) - 200].count("\n") + 1
    (warning,) = [w for w in imported.warnings if "truncated" in w.message]
    assert (warning.file, warning.line) == (str(cut), lines)
    assert str(warning).startswith(f"{cut}:{lines}:")


def test_a_bad_line_in_the_middle_is_skipped_with_its_line(tmp_path: Path) -> None:
    lines = (DATA / "short.jsonl").read_text(encoding="utf-8").splitlines()
    lines.insert(2, "{not json")
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = import_claude_code(broken)
    assert [w.line for w in imported.warnings] == [3]


def test_a_transcript_without_usage_is_refused(tmp_path: Path) -> None:
    stripped = tmp_path / "stripped.jsonl"
    with stripped.open("w", encoding="utf-8") as out:
        for record in _records(DATA / "short.jsonl"):
            if isinstance(record.get("message"), dict):
                record["message"].pop("usage", None)
            out.write(json.dumps(record) + "\n")
    with pytest.raises(TraceImportError, match=r"no API response carries message\.usage"):
        import_claude_code(stripped)


def test_some_responses_without_usage_are_warned_about(tmp_path: Path) -> None:
    records = _records(DATA / "tool_heavy.jsonl")
    first = next(r for r in records if r.get("type") == "assistant")
    first["message"].pop("usage")
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    imported = import_claude_code(partial)
    assert any("1 API response carries no message.usage" in w.message for w in imported.warnings)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("this is not json\nnor this\n", "not a Claude Code transcript"),
        (
            '{"type": "user", "message": {"content": "hi"}, "timestamp": "2026-01-01T00:00:00Z"}\n',
            "no API responses",
        ),
    ],
)
def test_unusable_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(TraceImportError, match=message):
        import_claude_code(bad)


def test_missing_paths_and_empty_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceImportError, match="no such file"):
        import_claude_code(tmp_path / "nope.jsonl")
    with pytest.raises(TraceImportError, match="no Claude Code transcripts here"):
        import_claude_code(tmp_path)


def test_a_repeated_response_in_another_file_counts_once(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(DATA / "tool_heavy.jsonl", tmp_path / name)
    once = import_claude_code(DATA / "tool_heavy.jsonl")
    twice = import_claude_code(tmp_path)
    assert metrics(twice.trace).tokens_total == metrics(once.trace).tokens_total
    assert twice.details["duplicate_responses"] == once.details["responses"]


# --------------------------------------------------------------------------------------------------
# Subagents, the agent clock, compactions and the cache split


def test_a_subagent_is_spawned_by_the_turn_that_launched_it() -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    tasks = {task.id: task for task in imported.scenario.all_tasks()}
    # The Task call at 21:24:19 is in the first turn (resumed by background-task notifications).
    assert tasks[SUBAGENT].spawned_by == Spawn(task=SESSION, cycle=1)
    assert tasks[SESSION].spawned_by is None
    assert imported.trace[0].metadata["tasks"][SUBAGENT]["spawned_by"] == [SESSION, 1]


def test_the_trace_runs_on_the_agent_clock() -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    measured = metrics(imported.trace)
    details = imported.details
    # One session: the agent works or is blocked exactly while its turns are open and not waiting on
    # the person, and the clock runs then only.
    active_ms = sum(
        c["wall_ms"] - c["person_wait_ms"] - c.get("idle_ms", 0.0) for c in _cycles(imported, SESSION)
    )
    assert measured.makespan_min * MS_PER_MIN == pytest.approx(active_ms, abs=1.0)
    assert measured.makespan_min == pytest.approx(details["agent_min"], abs=1e-3)
    assert details["wall_min"] == pytest.approx(
        details["agent_min"] + details["person_wait_min"] + details["idle_min"], abs=1e-3
    )
    assert details["agent_min"] < details["wall_min"]
    assert measured.person_wait_min == pytest.approx(details["person_wait_min"], abs=1e-3)
    # On the clock, a turn of the only session lasts its work and blocked time.
    for event in imported.trace:
        if event.action == "cycle_completed" and event.target_id == SESSION:
            meta = event.metadata
            span = event.timestamp - meta["started_at"]
            assert span == pytest.approx(meta["duration_ms"] + meta["blocked_ms"], abs=0.01)
    # A turn is its work, its blocked time, its person waits and the gaps between its stretches.
    for cycle in _cycles(imported):
        parts = cycle["duration_ms"] + cycle["blocked_ms"] + cycle["person_wait_ms"] + cycle.get("idle_ms", 0)
        assert parts == pytest.approx(cycle["wall_ms"], abs=0.01)


def test_blocked_time_is_the_task_calls_span() -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    records = _records(DATA / f"{SESSION}.jsonl")
    (called,) = [
        (r["timestamp"], block["id"])
        for r in records
        if r.get("type") == "assistant"
        for block in r["message"]["content"]
        if block.get("type") == "tool_use" and block.get("name") == "Task"
    ]
    (returned,) = [
        r["timestamp"]
        for r in records
        if r.get("type") == "user"
        and isinstance(r["message"]["content"], list)
        and any(block.get("tool_use_id") == called[1] for block in r["message"]["content"])
    ]
    first, second = _cycles(imported, SESSION)
    assert first["blocked_ms"] == pytest.approx(_ms(returned) - _ms(called[0])) == pytest.approx(32_860.0)
    assert second["blocked_ms"] == 0
    assert metrics(imported.trace).blocked_min * MS_PER_MIN == pytest.approx(32_860.0)
    # While the session is blocked its subagent works: the subagent's span lies inside the Task call.
    span = metrics(imported.trace).tasks[SUBAGENT]
    assert (span.finish_min - span.start_min) * MS_PER_MIN <= 32_860.0


def test_compaction_tokens_and_time_are_the_turns() -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    first, _ = _cycles(imported, SESSION)
    compacted = _deduped_usage(DATA / SESSION / "subagents" / "agent-acompact-fffbd0.jsonl")
    assert first["compaction_calls"] == 1 and len(first["compactions"]) == 1
    (row,) = first["compactions"]
    assert [row[1], row[2] + row[3], row[4], row[5]] == [compacted[name] for name in USAGE_FIELDS]
    # The compaction call ran from 21:17:14.555 to 21:18:41.098, all of it work of the turn.
    assert row[0] == pytest.approx(86_543.0)
    rows = [*first["api_calls"], *first["compactions"]]
    for column, name in ((1, "input_tokens"), (4, "cache_read_input_tokens"), (5, "output_tokens")):
        assert first[name] == sum(r[column] for r in rows)
    assert first["cache_creation_input_tokens"] == sum(r[2] + r[3] for r in rows)
    assert first["cache_creation_1h_input_tokens"] == sum(r[3] for r in rows)
    assert first["calls"] == len(first["api_calls"]) == first["responses"]
    (marker,) = [e for e in imported.trace if e.action == "progress_update"]
    assert marker.metadata["compaction"] is True and marker.metadata["turn"] == 1


def test_call_durations_add_up_to_the_turns_work() -> None:
    imported = import_claude_code(DATA)
    for cycle in _cycles(imported):
        rows = [*cycle["api_calls"], *cycle["compactions"]]
        assert sum(row[0] for row in rows) == pytest.approx(cycle["duration_ms"], abs=0.05)
        assert all(row[0] >= 0 for row in rows)
        assert len(cycle["api_calls"]) == cycle["calls"] >= 1


def test_one_hour_cache_writes_cost_twice_the_input_price(tmp_path: Path) -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    assert imported.scenario.roles["main"].tokens.cache_ttl == "1h"
    for cycle in _cycles(imported, SESSION):
        rows = [*cycle["api_calls"], *cycle["compactions"]]
        # claude-opus-4-6: $5 input, $25 output per Mtok; 1-hour writes $10, 5-minute $6.25, reads $0.50.
        expected = sum(r[1] * 5 + r[2] * 6.25 + r[3] * 10 + r[4] * 0.5 + r[5] * 25 for r in rows) / 1e6
        assert cycle["cost_usd"] == pytest.approx(expected)
        assert cycle["cache_creation_1h_input_tokens"] == cycle["cache_creation_input_tokens"] > 0

    def to_five_minutes(_: int, record: dict[str, Any]) -> None:
        split = (
            record.get("message", {}).get("usage", {}).get("cache_creation")
            if isinstance(record.get("message"), dict)
            else None
        )
        if isinstance(split, dict):
            split["ephemeral_5m_input_tokens"] = split.pop("ephemeral_1h_input_tokens", 0)

    hour = import_claude_code(DATA / "short.jsonl")
    minutes = import_claude_code(_rewrite(DATA / "short.jsonl", tmp_path / "short.jsonl", to_five_minutes))
    (written,) = [c["cache_creation_input_tokens"] for c in _cycles(hour)]
    assert written == 13_835
    difference = metrics(hour.trace).cost_usd - metrics(minutes.trace).cost_usd
    assert difference == pytest.approx(written * (10.0 - 6.25) / 1e6)
    assert minutes.scenario.roles["main"].tokens.cache_ttl == "5m"


def test_a_subagent_without_a_transcript_is_partial() -> None:
    imported = import_claude_code(DATA / "subagent.jsonl")
    started = {e.target_id: e.metadata for e in imported.trace if e.action == "task_started"}
    assert started["subagent.agent-afb92ff"]["partial"] is True
    assert "partial" not in started["subagent"]
    assert any("rebuilt from" in w.message for w in imported.warnings)


def test_person_waits_are_out_of_the_clock_by_cause() -> None:
    imported = import_claude_code(DATA / "subagent.jsonl")
    first, second = _cycles(imported, "subagent")
    # AskUserQuestion 21:55:43.858 -> 21:57:59.162; ExitPlanMode 21:59:19.841 -> 22:01:10.248;
    # Task 21:58:15.450 -> 21:58:54.253.
    assert first["person_waits"] == {
        "question": pytest.approx(135_304.0),
        "plan_approval": pytest.approx(110_407.0),
    }
    assert first["person_wait_ms"] == pytest.approx(245_711.0)
    assert first["blocked_ms"] == pytest.approx(38_803.0)
    assert "person_waits" not in second and second["person_wait_ms"] == 0
    tasks = {task.id: task for task in imported.scenario.all_tasks()}
    assert tasks["subagent.agent-afb92ff"].spawned_by == Spawn(task="subagent", cycle=1)
    measured = metrics(imported.trace)
    assert measured.person_wait_min * MS_PER_MIN == pytest.approx(245_711.0)
    assert measured.makespan_min == pytest.approx(imported.details["agent_min"], abs=1e-3)


@pytest.mark.parametrize(("shift_s", "idle"), [(IDLE_GAP_S + 100, True), (IDLE_GAP_S - 100, False)])
def test_a_long_gap_after_tool_results_is_idle(tmp_path: Path, shift_s: float, idle: bool) -> None:
    # In tool_heavy.jsonl the tool result of line 33 (22:59:33.333) is answered at line 34 (22:59:36.157).
    def delay(number: int, record: dict[str, Any]) -> None:
        if number >= 34 and "timestamp" in record:
            moved = _ms(record["timestamp"]) + shift_s * 1000
            record["timestamp"] = datetime.datetime.fromtimestamp(moved / 1000, datetime.UTC).isoformat()

    imported = import_claude_code(_rewrite(DATA / "tool_heavy.jsonl", tmp_path / "tool_heavy.jsonl", delay))
    original = _cycles(import_claude_code(DATA / "tool_heavy.jsonl"))[1]
    cycle = _cycles(imported)[1]
    gap = 2_824.0 + shift_s * 1000
    if idle:
        assert cycle["person_waits"] == {"idle": pytest.approx(gap)}
        assert cycle["duration_ms"] == pytest.approx(original["duration_ms"] - 2_824.0)
    else:
        assert "person_waits" not in cycle
        assert cycle["duration_ms"] == pytest.approx(original["duration_ms"] + shift_s * 1000)


def test_a_turn_on_another_model_is_listed(tmp_path: Path) -> None:
    # The session's second turn ("did you push?", line 1858) made to run on haiku, as a skill may.
    def haiku(number: int, record: dict[str, Any]) -> None:
        if number > 1858 and record.get("type") == "assistant":
            record["message"]["model"] = "claude-haiku-4-5-20251001"

    session = tmp_path / f"{SESSION}.jsonl"
    shutil.copytree(DATA / SESSION, tmp_path / SESSION)
    imported = import_claude_code(_rewrite(DATA / f"{SESSION}.jsonl", session, haiku))
    tasks = {task.id: task for task in imported.scenario.all_tasks()}
    assert imported.scenario.roles["main"].model == "claude-opus-4-6"
    assert tasks[SESSION].cycle_models == {2: "claude-haiku-4-5-20251001"}
    assert imported.scenario.roles["subagent"].model == "claude-sonnet-4-5-20250929"
    assert tasks[SUBAGENT].cycle_models == {}
    _, second = _cycles(imported, SESSION)
    ((_, fresh, minutes, hour, read, output),) = second["api_calls"]
    assert second["cost_usd"] == pytest.approx(
        (fresh + minutes * 1.25 + hour * 2 + read * 0.1 + output * 5) / 1e6
    )


def test_a_subagent_whose_session_is_missing_is_independent(tmp_path: Path) -> None:
    folder = tmp_path / SESSION / "subagents"
    folder.mkdir(parents=True)
    shutil.copy(DATA / SESSION / "subagents" / "agent-a881341.jsonl", folder)
    imported = import_claude_code(tmp_path / SESSION)
    (task,) = imported.scenario.all_tasks()
    assert task.spawned_by is None and task.role == "subagent"
    assert any("independent task" in w.message and "a881341" in w.message for w in imported.warnings)


# --------------------------------------------------------------------------------------------------
# The full set of real transcripts


def _full_paths() -> list[Path]:
    if not FULL.is_dir():
        return []
    files = sorted(FULL.glob("*.jsonl")) + sorted(FULL.glob("*/subagents/*.jsonl"))
    folders = sorted(path for path in FULL.iterdir() if path.is_dir())
    return [*files, *folders]


@needs_full
@pytest.mark.parametrize("path", _full_paths(), ids=lambda p: str(p.relative_to(FULL)))
def test_every_real_transcript_imports(path: Path) -> None:
    if "acompact" in path.name:
        with pytest.raises(TraceImportError, match="import its session instead"):
            import_claude_code(path)  # a compaction alone is no work; its session imports it
        return
    imported = import_claude_code(path)
    measured = metrics(imported.trace)
    assert measured.completed and measured.tokens_total > 0 and measured.work_min > 0


@needs_full
def test_the_whole_real_project_imports_as_one_run() -> None:
    imported = import_claude_code(FULL)
    assert imported.details["compactions"] == 5
    assert imported.details["lanes"] == {"main": 2, "subagent": 1}
    assert imported.scenario.roles["main"].lanes == 2
    assert metrics(imported.trace).completed


FULL_SESSIONS = {
    "258c7280": "258c7280-ae70-4798-800f-63464d01a85d",
    "4d5611e5": "4d5611e5-241a-462a-8d15-5122611a9569",
    "8463c716": "8463c716-a2ea-4c14-9efa-87158ebd9f20",
    "ae4a77f8": "ae4a77f8-aedd-4bc1-888f-c94edc91af04",
    "fa812bfe": "fa812bfe-b295-4cca-9c2f-fdf01028cb46",
}
PRICES_PER_MTOK = {
    "claude-opus-4-6": (5.0, 25.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
}


def _recount(session: str) -> dict[str, float]:
    """A session recounted from its raw lines (main file, subagents, compactions), without the importer:
    each API response once, with each field's largest value over its lines; a subagent's last response
    with the output its session's Task result reports."""
    main = FULL / f"{session}.jsonl"
    files = [main, *sorted((FULL / session / "subagents").glob("*.jsonl"))]
    final: dict[tuple[str, str], dict[str, Any]] = {}
    last_of: dict[str, tuple[str, str]] = {}
    for file in files:
        for record in _records(file):
            message = record.get("message")
            if record.get("type") != "assistant" or not isinstance(message, dict):
                continue
            key = (message["id"], record["requestId"])
            usage = message["usage"]
            split = usage.get("cache_creation") or {}
            seen = final.setdefault(key, {"model": message["model"]})
            for name, value in (
                ("input", usage["input_tokens"]),
                ("write_5m", split.get("ephemeral_5m_input_tokens", 0)),
                ("write_1h", split.get("ephemeral_1h_input_tokens", 0)),
                ("read", usage["cache_read_input_tokens"]),
                ("output", usage["output_tokens"]),
            ):
                seen[name] = max(seen.get(name, 0), value)
            last_of[file.stem] = key
    for record in _records(main):
        result = record.get("toolUseResult")
        if isinstance(result, dict) and "agentId" in result:
            seen = final[last_of[f"agent-{result['agentId']}"]]
            seen["output"] = max(seen["output"], result["usage"]["output_tokens"])
    cost = 0.0
    for seen in final.values():
        (fresh, out), *_ = [p for name, p in PRICES_PER_MTOK.items() if seen["model"].startswith(name)]
        cost += (
            seen["input"] * fresh
            + seen["write_5m"] * fresh * 1.25
            + seen["write_1h"] * fresh * 2
            + seen["read"] * fresh * 0.1
            + seen["output"] * out
        ) / 1e6
    return {"responses": len(final), "cache_read": sum(s["read"] for s in final.values()), "cost_usd": cost}


@needs_full
@pytest.mark.parametrize("short", FULL_SESSIONS)
def test_a_raw_recount_agrees_with_the_import(short: str) -> None:
    session = FULL_SESSIONS[short]
    imported = import_claude_code(FULL / f"{session}.jsonl")
    measured = metrics(imported.trace)
    recount = _recount(session)
    calls = imported.details["calls"] + imported.details["compaction_calls"]
    assert calls == pytest.approx(recount["responses"], rel=0.005)
    assert measured.cache_read_tokens == pytest.approx(recount["cache_read"], rel=0.005)
    assert measured.cost_usd == pytest.approx(recount["cost_usd"], rel=0.005)


@needs_full
def test_the_question_in_4d5611e5_is_a_person_wait() -> None:
    imported = import_claude_code(FULL / f"{FULL_SESSIONS['4d5611e5']}.jsonl")
    asked = [c for c in _cycles(imported) if "question" in c.get("person_waits", {})]
    (cycle,) = asked
    # AskUserQuestion at 20:39:57.304, answered at 20:58:52.926.
    assert cycle["person_waits"]["question"] / MS_PER_MIN == pytest.approx(18.9, abs=0.05)


def _wall_span_ms(session: str) -> float:
    files = [FULL / f"{session}.jsonl", *(FULL / session / "subagents").glob("*.jsonl")]
    stamps = [_ms(r["timestamp"]) for file in files for r in _records(file) if "timestamp" in r]
    return max(stamps) - min(stamps)


@needs_full
@pytest.mark.parametrize("short", FULL_SESSIONS)
def test_agent_time_is_bounded_by_wall_time_and_the_turns(short: str) -> None:
    session = FULL_SESSIONS[short]
    imported = import_claude_code(FULL / f"{session}.jsonl")
    makespan_ms = metrics(imported.trace).makespan_min * MS_PER_MIN
    turns = [e for e in imported.trace if e.action == "cycle_completed" and e.target_id == session]
    assert makespan_ms <= _wall_span_ms(session)
    assert makespan_ms <= sum(e.timestamp - e.metadata["started_at"] for e in turns) + 1.0


@needs_full
@pytest.mark.parametrize("short", FULL_SESSIONS)
def test_subagent_spans_agree_with_their_task_results(short: str) -> None:
    session = FULL_SESSIONS[short]
    imported = import_claude_code(FULL / f"{session}.jsonl")
    spans = metrics(imported.trace).tasks
    reported = {
        r["toolUseResult"]["agentId"]: r["toolUseResult"]["totalDurationMs"]
        for r in _records(FULL / f"{session}.jsonl")
        if isinstance(r.get("toolUseResult"), dict) and "agentId" in r["toolUseResult"]
    }
    assert reported
    for agent, total_ms in reported.items():
        span = spans[f"{short}.agent-{agent}"]
        assert (span.finish_min - span.start_min) * MS_PER_MIN == pytest.approx(total_ms, abs=10_000)


@needs_full
@pytest.mark.parametrize("short", FULL_SESSIONS)
def test_claude_codes_turn_durations_bound_the_turns(short: str) -> None:
    """Claude Code ends a turn with a ``system``/``turn_duration`` record (``durationMs``). Read against
    the five sessions, it runs from the turn's last prompt or background-task notification (258c7280's
    counts only the 45.5 min after the notification that resumed its turn, not the 14.4 min before) to
    the stop hooks, and leaves out the time spent waiting for the person's answers and plan approvals
    (4d5611e5's question, 18.9 min; 8463c716's plan approval, 7.6 min) but not subagent time, nor the
    7.2 min gap before a 28,000-character thinking block in 8463c716 (which the importer, too, counts
    as the model's time, not as an idle person). So it is at most the turn's wall time less its questions
    and plan approvals, and equals the time from that last prompt to the record less them within seconds."""
    session = FULL_SESSIONS[short]
    imported = import_claude_code(FULL / f"{session}.jsonl")
    turns = _cycles(imported, session)
    records = _records(FULL / f"{session}.jsonl")
    checked = 0
    last_prompt_ms: float | None = None
    for record in records:
        content = (
            record.get("message", {}).get("content") if isinstance(record.get("message"), dict) else None
        )
        if (
            record.get("type") == "user"
            and isinstance(content, str)
            and not record.get("isMeta")
            and not record.get("isCompactSummary")
            and not content.startswith(("<local-command", "<command-"))
        ):
            last_prompt_ms = _ms(record["timestamp"])
        if record.get("subtype") != "turn_duration":
            continue
        at = _ms(record["timestamp"])
        (turn,) = [
            t for t in turns if t["wall_started_at"] <= at <= t["wall_started_at"] + t["wall_ms"] + 1000
        ]
        waits = turn.get("person_waits", {})
        asked = waits.get("question", 0) + waits.get("plan_approval", 0)
        assert record["durationMs"] <= turn["wall_ms"] - asked + 1000
        assert last_prompt_ms is not None
        assert record["durationMs"] == pytest.approx(at - last_prompt_ms - asked, abs=2000)
        checked += 1
    assert checked >= 1


@needs_full
def test_a_long_gap_before_extended_thinking_is_the_models_time() -> None:
    """8463c716 waits 7.2 min after a tool result for a response opening with 28,000 characters of
    thinking: the model thought, nobody was idle; the turn's only person wait is its plan approval."""
    session = FULL_SESSIONS["8463c716"]
    (turn,) = _cycles(import_claude_code(FULL / f"{session}.jsonl"), session)
    assert set(turn["person_waits"]) == {"plan_approval"}
    assert turn["person_waits"]["plan_approval"] == pytest.approx(7.64 * 60_000, rel=0.01)


def test_sessions_started_later_waited_for_no_lane() -> None:
    """A project folder's sessions start when their person starts them: the time before is nobody's
    wait, neither for a lane nor for a dependency (each session carries its ``released`` moment)."""
    imported = import_claude_code(DATA)
    header = imported.trace[0].metadata["tasks"]
    sessions = [task for task, info in header.items() if "spawned_by" not in info]
    assert len(sessions) >= 3 and all("released" in header[task] for task in sessions)
    waits = metrics(imported.trace).waits_min
    assert waits["lane"] == 0.0 and waits["dependency"] == 0.0
