"""One vocabulary of flags: every command's real click parameters, read from the lazy command registry,
hold each long flag to one kind of value and one short flag, each short flag to one long flag, and the
README's "Flags" table to what the commands take. Renamed flags still work, hidden, with a word on stderr."""

from __future__ import annotations

import json
import re
import typing
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from support import ROOT, SCENARIOS
from typer._click import Context
from typer.core import TyperGroup
from typer.testing import CliRunner

from cycleplan.cli import COMMANDS, app

runner = CliRunner()


def _commands() -> Iterator[tuple[str, object]]:
    """``(name, click command)`` for ``cycleplan`` itself and every command and sub-command, loaded
    through the root group as the CLI loads them."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    yield "cycleplan", group
    context = Context(group, info_name="cycleplan")
    for name in COMMANDS:
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, TyperGroup):
            if command.invoke_without_command:
                yield name, command  # a group that also acts alone (runs lists): its own options
            for sub, each in command.commands.items():
                yield f"{name} {sub}", each
        else:
            yield name, command


def _value_kind(param: typing.Any) -> str:
    """What an option takes: ``flag``, or its element type and metavar (``int S``)."""
    if param.is_flag:
        return "flag"
    annotation = param.type_descriptor.annotation
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    return f"{getattr(annotation, '__name__', annotation)} {param.metavar}"


def _options(hidden: bool) -> Iterator[tuple[str, str, list[str], typing.Any]]:
    """``(command, long flag, short flags, parameter)`` of every option, the hidden ones or the others."""
    for name, command in _commands():
        for param in command.params:  # type: ignore[attr-defined]
            if param.param_type_name != "option" or bool(param.hidden) != hidden:
                continue
            longs = [opt for opt in param.opts if opt.startswith("--")]
            assert len(longs) == 1, (name, param.opts)
            yield name, longs[0], sorted(opt for opt in param.opts if not opt.startswith("--")), param


def test_each_long_flag_takes_one_kind_of_value_everywhere() -> None:
    kinds: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for command, flag, _, param in _options(hidden=False):
        kinds[flag][_value_kind(param)].append(command)
    clashes = {flag: dict(seen) for flag, seen in kinds.items() if len(seen) > 1}
    assert not clashes, f"one flag, several kinds of value: {clashes}"


def test_each_short_flag_is_one_long_flag_and_back() -> None:
    longs_of: dict[str, set[str]] = defaultdict(set)
    shorts_of: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for _, flag, shorts, _ in _options(hidden=False):
        shorts_of[flag].add(tuple(shorts))
        for short in shorts:
            longs_of[short].add(flag)
    assert {short: longs for short, longs in longs_of.items() if len(longs) > 1} == {}
    assert {flag: shorts for flag, shorts in shorts_of.items() if len(shorts) > 1} == {}, (
        "a long flag with a short form in one command and another (or none) in the next"
    )


def test_a_hidden_flag_is_a_renamed_one_that_points_to_its_new_name() -> None:
    visible: dict[str, set[str]] = defaultdict(set)
    shorts: dict[str, str] = {}
    for command, flag, short, _ in _options(hidden=False):
        visible[command].add(flag)
        shorts.update(dict.fromkeys(short, flag))
    hidden = list(_options(hidden=True))
    assert hidden, "no renamed flag is left to check"
    for command, flag, short, param in hidden:
        assert flag not in visible[command], (command, flag)
        assert param.help.startswith("Deprecated: "), (command, flag, param.help)
        new = param.help.removeprefix("Deprecated: ").split()[0].rstrip(".")
        assert new in visible[command], (command, flag, new)
        for each in short:
            assert each not in shorts, f"{command} {flag}: {each} is {shorts[each]} elsewhere"


def _readme_flags() -> dict[str, tuple[str, str, set[str]]]:
    """The README's "Flags" table: flag -> (short, value, commands)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str, set[str]]] = {}
    for line in section.splitlines():
        if not line.startswith("| `--"):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        flag, short, value, _meaning, commands = cells
        listed = {name.strip() for name in commands.split(",")}
        if commands.startswith("every command"):
            listed = {name for name, _ in _commands() if name != "cycleplan"} | {"cycleplan"}
        elif commands == "`cycleplan`":
            listed = {"cycleplan"}
        rows[flag.strip("`")] = (short.strip("`"), value.strip("`"), listed)
    return rows


def test_the_readme_table_is_the_commands_flags() -> None:
    documented = _readme_flags()
    actual: dict[str, tuple[str, str, set[str]]] = {}
    for command, flag, shorts, param in _options(hidden=False):
        value = "" if param.is_flag else str(param.metavar)
        _, _, commands = actual.setdefault(flag, (" ".join(shorts), value, set()))
        commands.add(command)
    assert sorted(documented) == sorted(actual)
    for flag, row in actual.items():
        assert documented[flag] == row, flag


def _sweep_json(*options: str) -> tuple[dict[str, typing.Any], str]:
    path = str(SCENARIOS / "course-crud.yaml")
    done = runner.invoke(app, ["sweep", path, "-n", "20", "-w", "1", "--json", *options])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout), done.stderr


def test_the_old_sweep_flags_still_work_and_say_what_to_write() -> None:
    new, said = _sweep_json("--lanes", "backend=1..2", "--algorithm", "list", "--algorithm", "improve")
    assert said == ""
    old, warned = _sweep_json("--lanes", "1..2", "--role", "backend", "--algorithms", "list,improve")
    assert old == new
    assert "--role backend --lanes 1..2 is deprecated and will go: write --lanes backend=1..2" in warned
    assert "write --algorithm list,improve" in warned
    every, _ = _sweep_json("--lanes", "1..2")
    assert every["role"] is None and [c["total_lanes"] for c in every["configurations"]] == [3, 6]


def test_plan_threads_and_its_old_name() -> None:
    path = str(SCENARIOS / "course-crud.yaml")
    refused = runner.invoke(app, ["plan", path, "--threads", "2"])
    assert refused.exit_code == 2 and "--threads: not an option of --algorithm improve" in refused.output
    old = runner.invoke(app, ["plan", path, "--workers", "2"])
    assert (
        old.exit_code == 2 and "plan --workers 2 is deprecated and will go: write --threads 2" in old.stderr
    )


@pytest.mark.parametrize("command", ["plan", "simulate"])
def test_lanes_without_a_role_are_every_roles(command: str, tmp_path: Path) -> None:
    path = str(SCENARIOS / "course-crud.yaml")
    target = tmp_path / "out.json"
    extra = ["-n", "5"] if command == "simulate" else []
    done = runner.invoke(
        app, [command, path, "--lanes", "2", "--lanes", "quality=1", "-o", str(target), *extra]
    )
    assert done.exit_code == 0, done.output
    if command == "plan":
        lanes = [lane["lane"] for lane in json.loads(target.read_text())["lanes"]]
        assert sorted(lanes) == ["backend-1", "backend-2", "frontend-1", "frontend-2", "quality-1"]
    bad = runner.invoke(app, [command, path, "--lanes", "two"])
    assert bad.exit_code == 2 and "--lanes two: the lane count must be a whole number" in bad.stderr


_MINOR = {"with", "that", "this", "from", "each", "every", "more", "than", "what", "when", "into", "only"}


def _gist(text: str) -> set[str]:
    """The words of a help text that carry its meaning: four letters or more, lower case, no plural s."""
    words = re.findall(r"[a-z][a-z_-]{3,}", text.lower())
    return {word.removesuffix("s") for word in words} - _MINOR


def test_each_commands_help_of_a_flag_says_what_the_readme_says_it_means() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    meanings = {}
    for line in section.splitlines():
        if line.startswith("| `--"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            meanings[cells[0].strip("`")] = cells[3]
    strays = [
        (command, flag, param.help)
        for command, flag, _, param in _options(hidden=False)
        if not _gist(param.help or "") & _gist(meanings[flag])
    ]
    assert not strays, f"help that shares no word with the README's meaning of its flag: {strays}"
