"""Importers as hardened as the scenario loader: whatever file they are given, a run or one line that
says why not (exit status 2), never a traceback, never an unbounded read or a hang.

Regression cases: nesting 200,000 deep, a lone surrogate, /dev/zero, a pipe, a folder, negative PSPLIB
durations. The fuzz test over mutations of every kind of input is ``test_fuzz_inputs.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import ROOT
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.workflows.importers import import_claude_code
from cycleplan.workflows.psplib import PsplibError, parse_instance

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
        from cycleplan.workflows.psplib import instance_to_scenario

        instance_to_scenario(parse_instance("\n".join(rows), "huge"))
