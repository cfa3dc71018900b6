"""The command line as a user meets it: help that teaches, exit status 2 for bad input, fast start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from support import SCENARIOS
from typer._click import Context
from typer.core import TyperGroup
from typer.testing import CliRunner

from cycleplan.cli import COMMANDS, app
from cycleplan.core.loading import load_plan, load_scenario
from cycleplan.planner import plan

runner = CliRunner()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help_has_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`cycleplan {command} --help` shows no example"
    assert f"cycleplan {command}" in result.output


def test_help_does_not_import_heavy_libraries() -> None:
    probe = (
        "import sys, json\n"
        "from cycleplan.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'plotly', 'simpy', 'anthropic', 'numpy', 'rich'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def _command_modules_loaded(*args: str) -> set[str]:
    """The command modules (and their shared helpers) that ``cycleplan ARGS`` imports, in a fresh process."""
    probe = (
        "import sys, json\n"
        f"sys.argv = ['cycleplan', *{list(args)!r}]\n"
        "from cycleplan.cli import COMMANDS, main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "modules = {entry.module for entry in COMMANDS.values()} | {'cycleplan.cli.common'}\n"
        "print(json.dumps(sorted(modules & set(sys.modules))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        ((), set()),
        (("--help",), set()),
        (("--version",), set()),
        (("plan", "--help"), {"cycleplan.cli.scenario", "cycleplan.cli.common"}),
        (("import", "--help"), {"cycleplan.cli.importing", "cycleplan.cli.common"}),
    ],
)
def test_help_imports_only_the_command_asked_for(args: tuple[str, ...], loaded: set[str]) -> None:
    assert _command_modules_loaded(*args) == loaded


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listed_help_is_the_commands_own_short_help(name: str) -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.get_command(Context(group, info_name="cycleplan"), name)
    assert command is not None
    assert command.name == name
    assert COMMANDS[name].help == command.get_short_help_str(limit=sys.maxsize)


def test_help_lists_every_command_in_order() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:\n", 1)[1].splitlines() if line]
    assert listed == list(COMMANDS)


@pytest.mark.parametrize(("typo", "suggestion"), [("plann", "'plan'"), ("simulat", "'simulate'")])
def test_unknown_command_exits_2_with_a_suggestion(typo: str, suggestion: str) -> None:
    result = runner.invoke(app, [typo])
    assert result.exit_code == 2
    assert f"No such command '{typo}'. Did you mean {suggestion}?" in result.output


def test_missing_file_exits_2_without_traceback(cli: str, tmp_path: Path) -> None:
    done = subprocess.run([cli, "plan", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "no such file" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("backend", "write ROLE=N"),
        ("backnd=2", "did you mean 'backend'"),
        ("backend=0", "whole number from 1 to 1000"),
        ("backend=two", "whole number from 1 to 1000"),
    ],
)
def test_bad_lanes_option_exits_2(option: str, message: str) -> None:
    result = runner.invoke(app, ["plan", str(SCENARIOS / "full-feature.yaml"), "--lanes", option])
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_algorithm_and_rule_exit_2() -> None:
    path = str(SCENARIOS / "course-crud.yaml")
    assert runner.invoke(app, ["plan", path, "--algorithm", "magic"]).exit_code == 2
    result = runner.invoke(app, ["plan", path, "--rule", "fastest"])
    assert result.exit_code == 2
    assert "lft" in result.output


def test_plan_output_file_round_trips(tmp_path: Path) -> None:
    target = tmp_path / "out" / "plan.json"
    result = runner.invoke(app, ["plan", str(SCENARIOS / "payment.yaml"), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "3.50x" in result.output
    assert load_plan(target) == plan(load_scenario(SCENARIOS / "payment.yaml"))


def test_plan_table_shows_lanes_and_claim() -> None:
    result = runner.invoke(app, ["plan", str(SCENARIOS / "course-crud.yaml")])
    assert result.exit_code == 0
    claim = "(the scenario's, from Parallel Agent Execution, Pattern 1)"
    for text in ("backend-1", "frontend-1", "quality-1", claim, "25 cycles -> 10"):
        assert text in result.output
    assert re.search(r"^speedup +2\.50x$", result.output, re.MULTILINE), result.output
    assert re.search(r"^sequential baseline +300 min", result.output, re.MULTILINE), result.output


def test_validate_reports_json_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tasks:\n  - id: a\n    role: x\n    cycles: 0\n")
    result = runner.invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert [(error["line"], error["field"]) for error in data["errors"]] == [
        (3, "tasks.0.role"),
        (4, "tasks.0.cycles"),
    ]


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", str(SCENARIOS / "course-crud.yaml")])
    assert result.exit_code == 0
    assert "valid: 3 tasks, 25 cycles" in result.output


@pytest.mark.parametrize("template", ["one-100", "blank"])
def test_init_writes_a_scenario_that_plans(tmp_path: Path, template: str) -> None:
    target = tmp_path / "mine.yaml"
    result = runner.invoke(app, ["init", "mine", "--template", template, "-o", str(target)])
    assert result.exit_code == 0, result.output
    scenario = load_scenario(target)
    assert plan(scenario).makespan_min > 0
    again = runner.invoke(app, ["init", "mine", "--template", template, "-o", str(target)])
    assert again.exit_code == 2
    assert "--force" in again.output


def test_init_given_a_yaml_file_writes_that_file(tmp_path: Path) -> None:
    target = tmp_path / "x.yaml"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "x.yaml.yaml").exists()
    assert load_scenario(target).name == "x"


def test_init_rejects_unknown_template(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "x", "--template", "nope", "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2


def test_schema_is_json_schema_of_the_scenario() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"tasks", "roles", "template", "max_parallel", "resources"} <= set(schema["properties"])


def test_templates_lists_one_100() -> None:
    result = runner.invoke(app, ["templates", "--json"])
    assert result.exit_code == 0
    (one,) = [t for t in json.loads(result.stdout) if t["name"] == "one-100"]
    assert one["cycles"] == 100
    assert one["tasks"][0] == "foundation" and one["tasks"][-1] == "complete"


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("cycleplan ")


def test_import_psplib_then_plan_reaches_the_known_optimum(tmp_path: Path) -> None:
    from support import ROOT

    target = tmp_path / "j301_1.yaml"
    result = runner.invoke(
        app, ["import", "psplib", str(ROOT / "tests/data/psplib/j301_1.sm"), "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    planned = runner.invoke(app, ["plan", str(target), "--json", "--schedules", "2000", "--seed", "1"])
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["makespan_min"] == 43  # j301_1's proven optimum


def test_import_psplib_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sm"
    bad.write_text("this is not a PSPLIB file\n")
    result = runner.invoke(app, ["import", "psplib", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--algorithm", "list", "--threads", "2"], "--threads: not an option of --algorithm list"),
        (["--schedules", "0"], "--schedules 0: must be at least 1"),
        (["--time-limit", "-1"], "--time-limit -1.0: must be a positive number"),
    ],
)
def test_bad_planner_options_exit_2(options: list[str], message: str) -> None:
    result = runner.invoke(app, ["plan", str(SCENARIOS / "course-crud.yaml"), *options])
    assert result.exit_code == 2
    assert message in result.output
