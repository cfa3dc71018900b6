"""No escape sequence or control character from a scenario, a transcript or an agent's output reaches the
terminal or a log: :func:`cycleplan.core.printable.printable` on its own, then the real command end to end."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from cycleplan.core.printable import printable

OSC52 = "\x1b]52;c;SGVsbG8=\x07"
"""Writes "Hello" to the clipboard of a terminal that allows it."""


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text", "plain text"),
        (f"a{OSC52}b", "ab"),
        ("x\x1b[2J\x1b[Hy", "xy"),  # clear the screen, cursor home
        ("\x1b]8;;https://example.invalid\x1b\\link\x1b]8;;\x1b\\", "link"),  # a hidden hyperlink
        ("\x1bPdevice control\x1b\\after", "after"),
        ("8-bit \x9b31mCSI and \x9d0;title\x9c OSC", "8-bit CSI and  OSC"),
        ("bell\x07 nul\x00 del\x7f", "bell\\x07 nul\\x00 del\\x7f"),
        ("over\rwrite", "over\\x0dwrite"),
        ("a lone escape \x1b", "a lone escape "),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        ("naïve 漢字", "naïve 漢字"),
    ],
)
def test_printable_strips_sequences_and_shows_controls(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_one_line_shows_newlines_and_tabs_too() -> None:
    assert printable("a\nb\tc", one_line=True) == "a\\x0ab\\x09c"


SCENARIO = r"""
    name: "evil\e]52;c;SGVsbG8=\a\e[2J name"
    description: "bell\a"
    roles: {ops: {lanes: 1, failure: {max_retries: 0}}}
    tasks:
      - id: noisy
        role: ops
        cycles: 1
        command: [sh, -c, 'printf "boom \033]52;c;SGVsbG8=\007 \033[31mred\007" >&2; exit 3']
"""


def _shown(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def test_nothing_foreign_reaches_the_terminal_or_the_log(cli: str, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(textwrap.dedent(SCENARIO))
    env = {**os.environ, "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *args], cwd=tmp_path, capture_output=True, text=True, check=False, env=env
        )

    outputs = [run("validate", str(scenario)), run("plan", str(scenario))]
    executed = run("execute", str(scenario), "--agent", "command")
    assert executed.returncode == 1, executed.stderr
    assert "boom" in executed.stderr and "red" in executed.stderr  # the agent's error is shown, made safe
    outputs += [executed, run("runs")]
    logs = list((tmp_path / ".cycleplan" / "runs").glob("*/log.txt"))
    assert logs, "the run wrote no log"
    for text in [*map(_shown, outputs), *(log.read_text() for log in logs)]:
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(text)
    assert "evil" in outputs[1].stdout  # the scenario's name is shown, without its sequences
