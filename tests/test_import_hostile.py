"""Importers as hardened as the scenario loader: whatever file they are given, a run or one line that
says why not (exit status 2), never a traceback, never an unbounded read or a hang.

Regression cases (nesting 200,000 deep, a lone surrogate, /dev/zero, a pipe, a folder, negative PSPLIB
durations) and a fuzz test over mutations of real transcripts, state files and PSPLIB instances.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ROOT
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.importers import TraceImportError, import_claude_code, import_one_state
from cycleplan.psplib import PsplibError, parse_instance, psplib_to_scenario

DATA = ROOT / "tests" / "data"
runner = CliRunner()
DEEP = 200_000


def _refused(*args: str) -> str:
    done = runner.invoke(app, list(args))
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output
    return done.output


def test_nesting_two_hundred_thousand_deep_is_refused_in_one_line(tmp_path: Path) -> None:
    transcript = tmp_path / "deep.jsonl"
    transcript.write_text('{"type": "user", "message": ' + "[" * DEEP + "]" * DEEP + "}\n")
    assert "not a Claude Code transcript" in _refused(
        "import", "claude-code", str(transcript), "--store", str(tmp_path / "r.db")
    )
    state = tmp_path / "deep.json"
    state.write_text('{"lessons_learned": [], "deep": ' + "[" * DEEP + "]" * DEEP + "}")
    assert "nested too deeply" in _refused(
        "import", "one-state", str(state), "--store", str(tmp_path / "r.db")
    )


def test_a_lone_surrogate_becomes_a_replacement_character(tmp_path: Path) -> None:
    lines = [
        {"type": "user", "timestamp": "2026-01-01T00:00:00Z", "message": {"role": "user", "content": "hi"}},
        {
            "type": "assistant",
            "timestamp": "2026-01-01T00:00:05Z",
            "requestId": "r1",
            "message": {
                "id": "m1",
                "model": "claude-opus-4-6\ud800",
                "content": [{"type": "text", "text": "x"}],
                "usage": {"input_tokens": 1, "output_tokens": 2},
            },
        },
    ]
    transcript = tmp_path / "s.jsonl"
    transcript.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    imported = import_claude_code(transcript)
    assert imported.scenario.role("main").model == "claude-opus-4-6\ufffd"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero on this system")
def test_devices_pipes_and_folders_are_refused_before_they_are_read(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    store = str(tmp_path / "r.db")
    for path in ("/dev/zero", str(pipe)):
        for kind in ("claude-code", "one-state", "psplib"):
            args = ["import", kind, path] + ([] if kind == "psplib" else ["--store", store])
            assert "not a regular file" in _refused(*args), (kind, path)
    assert "is a folder" in _refused("import", "one-state", str(tmp_path), "--store", store)
    assert "is a folder" in _refused("import", "psplib", str(tmp_path))


def test_psplib_refuses_negative_numbers_and_what_cannot_be_planned() -> None:
    text = (DATA / "psplib" / "j301_1.sm").read_text(encoding="latin-1")
    rows = text.splitlines()
    at = next(i for i, line in enumerate(rows) if line.startswith("REQUESTS/DURATIONS")) + 4
    parts = rows[at].split()
    parts[2] = "-4"
    rows[at] = "  ".join(parts)
    with pytest.raises(PsplibError, match="negative duration or request"):
        parse_instance("\n".join(rows), "negative")
    parts[2] = "200000"
    rows[at] = "  ".join(parts)
    with pytest.raises(PsplibError, match="not a scenario cycleplan can plan"):
        from cycleplan.psplib import instance_to_scenario

        instance_to_scenario(parse_instance("\n".join(rows), "huge"))


MUTATIONS = ["-3", "0", "99999999999999999999", "x", "\u0000", "\ud800", "[" * 2000, "{}", "null", "1e999"]


def _mutated(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "cut", "token", "copy", "blank"]))
        if action == "drop":
            del lines[index]
        elif action == "cut":
            lines[index] = lines[index][: data.draw(st.integers(0, max(len(lines[index]) - 1, 0)))]
        elif action == "token":
            at = data.draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:at] + data.draw(st.sampled_from(MUTATIONS)) + lines[index][at:]
        elif action == "copy":
            lines.insert(index, lines[data.draw(st.integers(0, len(lines) - 1))])
        else:
            lines[index] = ""
        if not lines:
            lines = [""]
    return "\n".join(lines)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_mutated_files_import_or_are_refused_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    sources = {
        "transcript": (DATA / "claude-code" / "short.jsonl", "utf-8"),
        "state": (DATA / "one-state" / "cycle-405b946017.json", "utf-8"),
        "psplib": (DATA / "psplib" / "j301_1.sm", "latin-1"),
    }
    kind = data.draw(st.sampled_from(sorted(sources)))
    path, encoding = sources[kind]
    target = tmp_path / f"mutated{path.suffix}"
    target.write_bytes(_mutated(path.read_text(encoding=encoding), data).encode("utf-8", "surrogatepass"))
    try:
        if kind == "transcript":
            import_claude_code(target)
        elif kind == "state":
            import_one_state(target)
        else:
            psplib_to_scenario(target)
    except (TraceImportError, PsplibError):
        pass
