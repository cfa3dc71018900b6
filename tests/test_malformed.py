"""Bad input fails cleanly: every malformed scenario, and every hostile file, ends with exit status 2 and
messages that name the file, line, column and field, never with a traceback.

The malformed scenarios live in ``tests/malformed/``, one problem each (a few hold several, to show that
every problem is reported at once). Each file opens with one ``# expect: LINE FIELD | FRAGMENT`` line
per problem: the line the error must point at, the field it must name and a piece of its message. The
corpus runs through the CLI in-process, for speed; the hostile inputs are generated here (none is
committed) and run through the installed ``cycleplan`` command in a real subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import cycleplan_executable
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import LoadError, load_scenario

MALFORMED = Path(__file__).parent / "malformed"
CASES = sorted(MALFORMED.glob("*.yaml"))
EXPECT = re.compile(r"# expect: (?P<line>\d+) (?P<field>\S+) \| (?P<fragment>.+)")
POSITIONED = re.compile(r"(?P<line>\d+):(?P<column>\d+): (?P<field>\S+): (?P<message>.+)")


@dataclass(frozen=True)
class Expected:
    line: int
    field: str
    fragment: str


@dataclass(frozen=True)
class Reported:
    line: int
    column: int
    field: str
    message: str


def expectations(path: Path) -> list[Expected]:
    """The ``# expect:`` lines that open a corpus file."""
    found = []
    for text in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.fullmatch(text.strip())
        if match is None:
            break
        found.append(Expected(int(match["line"]), match["field"], match["fragment"].strip()))
    return found


def reported(stderr: str, file: Path | str) -> list[Reported]:
    """Every ``FILE:LINE:COL: field: message`` line about ``file``."""
    prefix = f"{file}:"
    errors = []
    for text in stderr.splitlines():
        if text.startswith(prefix):
            match = POSITIONED.fullmatch(text[len(prefix) :])
            assert match is not None, f"not FILE:LINE:COL: field: message: {text!r}"
            errors.append(
                Reported(int(match["line"]), int(match["column"]), match["field"], match["message"])
            )
    return errors


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str


def run_validate(path: Path) -> Run:
    """``cycleplan validate PATH`` in a real subprocess."""
    done = subprocess.run(
        [cycleplan_executable(), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def invoke_validate(path: Path) -> Run:
    """``cycleplan validate PATH`` in this process."""
    result = CliRunner().invoke(app, ["validate", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def assert_clean_failure(run: Run) -> None:
    assert run.status == 2, run.stdout + run.stderr
    output = run.stdout + run.stderr
    assert "Traceback" not in output
    assert not re.search(r"^\w*(Error|Exception)\b", output, re.MULTILINE), output


# --------------------------------------------------------------------------------------------------
# The corpus


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert all(expectations(case) for case in CASES), "every corpus file opens with '# expect:' lines"


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_malformed_scenario_is_reported_at_its_line_and_field(case: Path) -> None:
    expected = expectations(case)
    assert expected, f"{case.name} has no '# expect:' line"
    run = invoke_validate(case)
    assert_clean_failure(run)
    errors = reported(run.stderr, case)
    for want in expected:
        matching = [e for e in errors if e.line == want.line and e.field == want.field]
        assert matching, f"no error at line {want.line} for {want.field}; got:\n{run.stderr}"
        assert any(want.fragment in e.message for e in matching), (
            f"no message with {want.fragment!r} at line {want.line}, {want.field}; got:\n{run.stderr}"
        )
    assert len(errors) == len(expected), f"expected {len(expected)} problem(s), got:\n{run.stderr}"


@pytest.mark.parametrize(
    "name",
    [
        "several-field-problems.yaml",
        "several-reference-problems.yaml",
        "loop-through-race.yaml",
        "several-kinds-at-once.yaml",
    ],
)
def test_the_installed_command_reports_the_same(name: str) -> None:
    case = MALFORMED / name
    run = run_validate(case)
    assert_clean_failure(run)
    lines = [(e.line, e.field) for e in reported(run.stderr, case)]
    assert lines == [(want.line, want.field) for want in expectations(case)]


def test_json_output_lists_every_problem() -> None:
    case = MALFORMED / "several-reference-problems.yaml"
    result = CliRunner().invoke(app, ["validate", "--json", str(case)])
    assert result.exit_code == 2
    assert '"valid": false' in result.stdout
    assert result.stdout.count('"line"') == len(expectations(case))


# A schema error, an unknown role, a dependency loop and a misspelt model in one file.
EVERY_KIND = MALFORMED / "several-kinds-at-once.yaml"


def test_every_kind_of_problem_is_reported_in_one_run() -> None:
    run = run_validate(EVERY_KIND)
    assert_clean_failure(run)
    found = [(e.line, e.field, e.message) for e in reported(run.stderr, EVERY_KIND)]
    assert [(line, field) for line, field, _ in found] == [
        (8, "roles.backend.model"),
        (13, "tasks.0.cycles"),
        (19, "tasks.2.role"),
        (21, "tasks.2.after.0"),
    ]
    messages = [message for _, _, message in found]
    assert "unknown model 'claude-sonet-4-5' (did you mean 'claude-sonnet-4-5'?)" in messages[0]
    assert messages[1] == "must be at least 1, got -1"
    assert messages[2].startswith("unknown role 'fronted' (did you mean 'frontend'?)")
    assert messages[3].startswith("dependency loop: api -> ui -> api")
    assert run.stderr.splitlines()[-1] == f"4 problems in {EVERY_KIND}"


def test_every_kind_of_problem_is_listed_in_json() -> None:
    done = subprocess.run(
        [cycleplan_executable(), "validate", "--json", str(EVERY_KIND)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    result = json.loads(done.stdout)
    assert result["valid"] is False
    assert [(e["line"], e["field"]) for e in result["errors"]] == [
        (want.line, want.field) for want in expectations(EVERY_KIND)
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["plan"],
        ["simulate", "-n", "10"],
        ["execute", "--agent", "emulated", "--store", "{tmp}/runs.db"],
        ["sweep", "--lanes", "1..2", "-n", "10"],
    ],
    ids=lambda command: command[0],
)
def test_every_command_that_loads_a_scenario_reports_every_problem(
    command: list[str], tmp_path: Path
) -> None:
    arguments = [command[0], str(EVERY_KIND), *(part.format(tmp=tmp_path) for part in command[1:])]
    result = CliRunner().invoke(app, arguments)
    run = Run(result.exit_code, result.stdout, result.stderr)
    assert_clean_failure(run)
    lines = [(e.line, e.field) for e in reported(run.stderr, EVERY_KIND)]
    assert lines == [(want.line, want.field) for want in expectations(EVERY_KIND)]
    assert not (tmp_path / "runs.db").exists()


def test_the_checks_of_a_file_with_thousands_of_failed_fields_take_linear_time(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    tasks = [f"  - {{id: t{i}, role: b, cycles: 0, after: [t{max(i - 1, 0)}]}}" for i in range(10_000)]
    path.write_text("roles: {b: {}}\ntasks:\n" + "\n".join(tasks) + "\n", encoding="utf-8")
    started = time.process_time()  # CPU time: other processes on the machine do not count
    with pytest.raises(LoadError) as caught:
        load_scenario(path)
    # Some 1.5 s; checks that asked about every failed field for every field took minutes.
    assert time.process_time() - started < 20
    fields = [error.field for error in caught.value.errors]
    assert fields.count("tasks.0.after.0") == 1  # the loop t0 -> t0, beside the 10,000 cycles refused
    assert len(fields) == 10_001


# --------------------------------------------------------------------------------------------------
# Hostile input, generated here


def one_error(run: Run, path: Path) -> str:
    """The single line of stderr about ``path`` (the command may add a summary line of its own)."""
    assert_clean_failure(run)
    about = [line for line in run.stderr.splitlines() if line.startswith(f"{path}:")]
    assert len(about) == 1, run.stderr
    return about[0]


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(LoadError) as caught:
        load_scenario(path)
    assert time.perf_counter() - started < 1.0
    assert "alias bomb" in str(caught.value)
    line = one_error(run_validate(path), path)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: a\d\.\d+: aliases expand the file to more than", line)


def test_many_repeated_aliases_that_fit_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "roles:\n  backend: &role {lanes: 2}\n  frontend: *role\n"
        "tasks:\n  - {id: a, role: backend, cycles: 2}\n  - {id: b, role: frontend, cycles: 1, after: [a]}\n",
        encoding="utf-8",
    )
    assert load_scenario(path).roles["frontend"].lanes == 2


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("9" * 10_000, "a number with 10,000 characters is far too large"),
        ("-" + "1" * 5_000, "a number with 5,001 characters is far too large"),
        ("1" + "0" * 401 + ".5", "is far too large"),
    ],
    ids=["10000-digit-integer", "negative-5000-digits", "long-float"],
)
def test_huge_numbers_are_refused_before_conversion(tmp_path: Path, value: str, fragment: str) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(
        f"roles:\n  b: {{}}\ntasks:\n  - id: a\n    role: b\n    cycles: {value}\n", encoding="utf-8"
    )
    line = one_error(run_validate(path), path)
    assert line.startswith(f"{path}:6:13: tasks.0.cycles: ")
    assert fragment in line


@pytest.mark.parametrize("value", ["1.0e+999", "1e999", "-.inf", ".inf", ".nan"])
def test_infinite_and_undefined_floats_are_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "inf.yaml"
    path.write_text(
        f"roles:\n  b:\n    cycle: {{kind: fixed, value_min: {value}}}\n"
        "tasks:\n  - {id: a, role: b, cycles: 1}\n",
        encoding="utf-8",
    )
    with pytest.raises(LoadError) as caught:
        load_scenario(path)
    (error,) = caught.value.errors
    assert (error.line, error.field) == (3, "roles.b.cycle.value_min")
    assert "finite number" in error.message or "must be above 0" in error.message


DEEP = 10_000


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("tasks: " + "[" * DEEP + "]" * DEEP + "\n", "tasks.0.0.0.0.0.0.0...."),
        ("tasks: " + "[" * DEEP + "\n", "tasks.0.0.0.0.0.0.0...."),
        ("tasks:\n" + "- " * DEEP + "x\n", "tasks.0.0.0.0.0.0.0...."),
        ("{a: " * DEEP + "1" + "}" * DEEP + "\n", "a.a.a.a.a.a.a.a...."),
        ("".join(" " * level + "k:\n" for level in range(1_000)), "k.k.k.k.k.k.k.k...."),
    ],
    ids=["flow-lists", "flow-unclosed", "block-lists", "flow-mappings", "block-mappings"],
)
def test_deep_nesting_is_refused_at_its_position(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    line = one_error(run_validate(path), path)
    assert re.match(
        rf"{re.escape(str(path))}:\d+:\d+: {re.escape(field)}: nested more than 48 levels deep", line
    )


def test_non_utf8_bytes_name_their_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: demo\nroles:\n  b: {}\ntasks:\n  - id: caf\xe9\n    role: b\n    cycles: 1\n")
    line = one_error(run_validate(path), path)
    assert line == f"{path}:5:12: tasks.0.id: is not UTF-8 text (byte 0xe9 here); save the file as UTF-8"


def test_utf16_is_named(tmp_path: Path) -> None:
    path = tmp_path / "utf16.yaml"
    path.write_bytes("roles:\n  b: {}\n".encode("utf-16"))
    assert one_error(run_validate(path), path) == f"{path}:1:1: (top): is UTF-16 text; save it as UTF-8"


def test_control_characters_name_their_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "nul.yaml"
    path.write_bytes(b'name: demo\nroles:\n  b: {description: "a\x00b"}\n')
    line = one_error(run_validate(path), path)
    assert line.startswith(f"{path}:3:22: roles.b.description: contains the control character U+0000")


@pytest.mark.parametrize(
    "content", ["", "\n\n   \n", "# just a comment\n   # and another\n", "---\n", "~\n"], ids=repr
)
def test_empty_files_say_what_a_scenario_needs(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(content, encoding="utf-8")
    line = one_error(run_validate(path), path)
    assert line.startswith(f"{path}:1:1: (top): is empty; a scenario needs 'tasks' or a 'template'")


def test_a_directory_is_not_a_scenario(tmp_path: Path) -> None:
    line = one_error(run_validate(tmp_path), tmp_path)
    assert line == f"{tmp_path}: is a directory; give the path of a scenario file inside it"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "missing.yaml"
    assert one_error(run_validate(path), path) == f"{path}: no such file; check the path"


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("# padding\n" * 300_000, encoding="utf-8")  # 3 MB
    started = time.perf_counter()
    with pytest.raises(LoadError):
        load_scenario(path)
    assert time.perf_counter() - started < 1.0
    line = one_error(run_validate(path), path)
    assert line == (
        f"{path}: is larger than 2,000,000 bytes, the limit for a scenario file; "
        "check that this is the right file"
    )


def test_several_yaml_documents_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "roles:\n  b: {}\ntasks:\n  - {id: a, role: b, cycles: 1}\n---\nroles: {}\n", encoding="utf-8"
    )
    line = one_error(run_validate(path), path)
    assert line.startswith(f"{path}:5:1: (top): a second YAML document starts here")


def test_a_python_tag_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "tag.yaml"
    path.write_text(
        f'name: !!python/object/apply:os.system ["touch {marker}"]\n'
        "roles: {b: {}}\ntasks: [{id: a, role: b, cycles: 1}]\n",
        encoding="utf-8",
    )
    line = one_error(run_validate(path), path)
    assert "tag '!!python/object/apply:os.system' is not supported" in line
    assert not marker.exists()
