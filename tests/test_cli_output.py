"""What the commands print, through the real CLI: plain text when piped, colour on a terminal unless
NO_COLOR, lines wrapped to COLUMNS, ``--quiet`` and ``--verbose``, one value for one replication, the
sequential baseline by that name, and counts that agree with their nouns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app

runner = CliRunner()
FULL = str(SCENARIOS / "full-feature.yaml")
CRUD = str(SCENARIOS / "course-crud.yaml")
PLAIN = {"FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None, "COLUMNS": None}
"""The environment of a pipe: nothing that asks for colour, no width."""
TERMINAL = {**PLAIN, "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "120"}
ESCAPE = "\x1b"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MISCOUNTED = re.compile(
    r"(?<![\d.,])1 (cycles|tasks|lanes|roles|replications|runs|events|calls|tokens|attempts|configurations)\b"
)

ONE = """
    name: one of each
    roles: {ops: {lanes: 1, cycle: {kind: fixed, value_min: 1}}}
    tasks:
      - {id: only, role: ops, cycles: 1, command: [sh, -c, "exit 0"]}
"""


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """A run store with one run of ONE, executed by the command agent with --quiet (nothing on stderr)."""
    folder = tmp_path_factory.mktemp("one")
    scenario = folder / "one.yaml"
    scenario.write_text(textwrap.dedent(ONE))
    store = str(folder / "runs.db")
    out, err = _run(["execute", str(scenario), "--agent", "command", "--store", store, "--quiet"])
    assert err == "" and "complete" in out and "sequential baseline" in out
    run_id = json.loads(_run(["runs", "--store", store, "--json"])[0])[0]["run_id"]
    return store, run_id, scenario


def _run(args: list[str], env: dict[str, str | None] | None = None) -> tuple[str, str]:
    done = runner.invoke(app, args, env=PLAIN if env is None else env)
    assert done.exit_code == 0, done.output
    return done.stdout, done.stderr


def test_piped_output_is_plain_text_one_row_a_line(cli: str) -> None:
    environment = {key: value for key, value in os.environ.items() if key not in PLAIN}
    done = subprocess.run([cli, "plan", FULL], capture_output=True, text=True, check=True, env=environment)
    out = done.stdout
    assert ESCAPE not in out and "─" not in out
    lines = out.splitlines()
    assert re.fullmatch(r"lane +task +cycles +minutes +wall cycles +wait min", lines[2]), lines[2]
    assert set(lines[3]) == {"-"}
    assert all(line == line.rstrip() for line in lines)
    critical = "critical path        foundation -> backend -> auth -> knowledge -> quality -> performance -> "
    assert any(line.startswith(critical) and line.endswith("complete") for line in lines), out


def test_a_terminal_gets_colour_and_the_same_words() -> None:
    coloured, _ = _run(["plan", FULL], TERMINAL)
    plain, _ = _run(["plan", FULL], {**PLAIN, "COLUMNS": "120"})
    assert ANSI.search(coloured) and "─" in coloured
    assert ANSI.sub("", coloured).replace("─", "-").split() == plain.split()


@pytest.mark.parametrize("command", [["plan", FULL], ["simulate", CRUD, "-n", "50"]])
def test_no_color_means_no_escape_sequence_even_on_a_terminal(command: list[str]) -> None:
    out, _ = _run(command, {**TERMINAL, "NO_COLOR": "1"})
    assert ESCAPE not in out
    assert "speedup" in out


def test_calibrate_prints_a_table_coloured_on_a_terminal_plain_when_piped_or_no_color(
    one_run: tuple[str, str, Path],
) -> None:
    # It printed columns padded by hand, the same on a terminal and in a pipe.
    store, run_id, scenario = one_run
    command = ["calibrate", run_id, "--store", store, "--scenario", str(scenario)]
    piped, _ = _run(command)
    assert ESCAPE not in piped and "─" not in piped
    lines = piped.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("role"))
    assert re.fullmatch(r"role +value +before +after +sd +90% interval +data", lines[header]), lines[header]
    assert set(lines[header + 1]) == {"-"}
    assert re.match(r"ops +cycle median \(min\) +1\.00 +\S+ +\S+ +\S+ - \S+ +1 cycle$", lines[header + 2])
    assert all(line == line.rstrip() for line in lines)
    coloured, _ = _run(command, TERMINAL)
    assert ANSI.search(coloured) and "─" in coloured
    plain, _ = _run(command, {**PLAIN, "COLUMNS": "120"})
    assert ANSI.sub("", coloured).replace("─", "-").split() == plain.split()
    no_color, _ = _run(command, {**TERMINAL, "NO_COLOR": "1"})
    assert ESCAPE not in no_color and "ops" in no_color
    quiet, _ = _run([*command, "--quiet"])
    assert "before: the scenario's value" in piped and "before: the scenario's value" not in quiet


def test_plan_minutes_are_rounded_to_a_tenth() -> None:
    # A fitted scenario's medians printed as 0-41.3836 beside the makespan's 41.4 min.
    out, _ = _run(["plan", str(SCENARIOS / "agent-session.yaml")])
    assert re.search(r"^main-1 +session +2 +0-41\.4 +0-3$", out, re.M), out
    assert not re.search(r"\d\.\d{2,}", out.split("makespan")[0]), out


def test_long_lines_wrap_to_the_columns_asked_for_with_their_indent() -> None:
    wide, _ = _run(["plan", FULL, "-v"], {**PLAIN, "COLUMNS": "200"})
    narrow, _ = _run(["plan", FULL, "-v"], {**PLAIN, "COLUMNS": "70"})
    assert max(map(len, wide.splitlines())) > 70
    assert max(map(len, narrow.splitlines())) <= 70
    assert narrow.split() == wide.split()  # the same words, only wrapped
    bounds = narrow.split("lower bounds", 1)[1].splitlines()
    assert bounds[1].startswith(" " * len("sequential baseline  ")), bounds[:2]


def test_the_verdict_and_its_note_wrap_under_their_label(one_run: tuple[str, str, Path]) -> None:
    store, run_id, _ = one_run
    out, _ = _run(["compare", run_id, "--store", store, "-n", "20"], {**PLAIN, "COLUMNS": "72"})
    data = json.loads(_run(["compare", run_id, "--store", store, "-n", "20", "--json"])[0])
    note = data["speedup_definition"]
    assert len(note) > 300
    lines = out.splitlines()
    assert max(map(len, lines)) <= 72
    start = next(index for index, line in enumerate(lines) if line.startswith("note "))
    said = lines[start:]
    assert " ".join(" ".join(said).split()) == "note " + " ".join(note.split())
    assert len(said) >= 5 and all(line.startswith(" " * len("verdict  ")) for line in said[1:])
    assert " ".join(data["verdict"]["headline"].split()) in " ".join(out.split())


def test_quiet_prints_results_only(tmp_path: Path) -> None:
    prediction = tmp_path / "prediction.json"
    out, err = _run(["simulate", CRUD, "-n", "50", "-o", str(prediction), "-q"])
    assert "speedup" in out and "P10 - P90" in out and prediction.exists()
    assert "wrote" not in out and "share of replications" not in out and err == ""
    loud, _ = _run(["simulate", CRUD, "-n", "50", "-o", str(prediction)])
    assert f"wrote {prediction}" in loud and "share of replications" in loud
    for args in (
        ["init", str(tmp_path / "mine.yaml")],
        ["schema", "-o", str(tmp_path / "schema.json")],
        ["report", str(prediction), "-o", str(tmp_path / "prediction.html")],
    ):
        assert _run(["-q", *args]) == ("", ""), args
        assert (tmp_path / Path(args[-1]).name).exists()


def test_execute_progress_goes_with_quiet(one_run: tuple[str, str, Path], tmp_path: Path) -> None:
    _, _, scenario = one_run  # executed with --quiet: its summary and nothing on stderr
    _, progress = _run(["execute", str(scenario), "--agent", "command", "--store", str(tmp_path / "r.db")])
    assert "started (1 cycle)" in progress and "1 lane, 1 task" in progress


def test_verbose_adds_timings_and_detail() -> None:
    out, err = _run(["plan", FULL, "--verbose"])
    assert re.search(r"^planned in \d+\.\d\d s$", err, re.MULTILINE) and "lower bounds" in out
    out, err = _run(["plan", FULL])
    assert err == "" and "lower bounds" not in out
    out, _ = _run(["simulate", CRUD, "-n", "50", "-v"])
    assert re.search(r"^engine +\w+; \d+\.\d\d s$", out, re.MULTILINE), out
    refused = runner.invoke(app, ["plan", FULL, "-q", "-v"])
    assert refused.exit_code == 2 and "choose one" in refused.output


def test_one_replication_shows_one_value_not_a_band() -> None:
    out, _ = _run(["simulate", CRUD, "--ideal", "-n", "1"])
    assert "P10" not in out and "P90" not in out and "95% CI" not in out
    assert re.search(r"^ +value$", out, re.MULTILINE), out
    assert re.search(r"^speedup +2\.50x$", out, re.MULTILINE), out
    assert "1 replication," in out
    assert re.search(r"^predicted +2\.50x; the claim is reached", out, re.MULTILINE), out
    several, _ = _run(["simulate", CRUD, "--ideal", "-n", "20"])
    assert "P10 - P90" in several and "20 replications," in several


def test_counts_agree_with_their_nouns_and_the_baseline_has_one_name(
    one_run: tuple[str, str, Path], tmp_path: Path
) -> None:
    store, run_id, scenario = one_run
    outputs = [
        _run(["validate", str(scenario)]),
        _run(["plan", str(scenario)]),
        _run(["simulate", str(scenario), "-n", "1"]),
        _run(["sweep", str(scenario), "--lanes", "1", "-n", "5", "-w", "1"]),
        _run(["templates"]),
        _run(["execute", str(scenario), "--agent", "command", "--store", str(tmp_path / "r.db")]),
        _run(["compare", run_id, "--store", store, "-n", "20"]),
    ]
    text = "\n".join(out + err for out, err in outputs)
    assert "valid: 1 task, 1 cycle, 1 role, 1 lane" in text
    assert not MISCOUNTED.search(text), MISCOUNTED.search(text)
    assert "(s)" not in text
    assert text.count("sequential baseline") >= 4  # plan, simulate, execute, compare
    for other in ("one-lane baseline", "one lane would take", "sequential     "):
        assert other not in text, other
