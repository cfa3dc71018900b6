"""Claude Code transcripts into runs: tasks per session and subagent, cycles per user-prompt turn, usage
counted once per API response, compactions marked, and bad input refused or warned about."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, SHARED_DATA

from cycleplan.importers import ImportedRun, TraceImportError, import_claude_code
from cycleplan.importers.claude_code import USAGE_FIELDS, prompt_kind
from cycleplan.metrics import metrics

DATA = ROOT / "tests" / "data" / "claude-code"
SESSION = "258c7280-ae70-4798-800f-63464d01a85d"
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


def _cycles(imported: ImportedRun) -> list[dict[str, Any]]:
    return [e.metadata for e in imported.trace if e.action == "cycle_completed"]


def test_a_session_with_its_subagent_and_compaction() -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    tasks = {task.id: task for task in imported.scenario.all_tasks()}
    assert tasks[SESSION].role == "main"
    subagent = "258c7280.agent-a881341"
    assert tasks[subagent].role == "subagent" and tasks[subagent].cycles == 1
    # Two user prompts; the background-task notifications resume the first turn instead of starting one.
    assert tasks[SESSION].cycles == 2
    assert "acompact" not in " ".join(tasks)
    compaction = [e for e in imported.trace if e.action == "progress_update"]
    assert len(compaction) == 1 and compaction[0].metadata["compaction"] is True
    measured = metrics(imported.trace)
    assert measured.completed
    assert set(measured.busy_min_by_lane) == {"main-1", "subagent-1"}
    # The subagent ran while the session waited for it: a parallel lane.
    spans = measured.tasks
    assert spans[SESSION].start_min < spans[subagent].start_min < spans[SESSION].finish_min


def test_usage_is_counted_once_per_response() -> None:
    imported = import_claude_code(DATA / f"{SESSION}.jsonl")
    main = _deduped_usage(DATA / f"{SESSION}.jsonl")
    counted = {name: 0 for name in USAGE_FIELDS}
    for cycle in _cycles(imported):
        if cycle["source_line"].startswith(SESSION):
            for name in USAGE_FIELDS:
                counted[name] += int(cycle[name])
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
    imported = import_claude_code(DATA / "short.jsonl")
    (cycle,) = _cycles(imported)
    # The /model command at 21:16 gets no response: the turn is the 6 seconds before the interruption.
    assert cycle["duration_ms"] == pytest.approx(5634.0)
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
    assert any("carry no message.usage" in w.message for w in imported.warnings)


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
