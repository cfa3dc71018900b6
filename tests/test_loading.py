"""The loader: YAML and JSON in, models or positioned errors out.

Covers what the malformed corpus (``test_malformed.py``) does not pin down one by one: positions deep
in nested structures, every problem reported in one go, the "did you mean" hints at each level, values
kept as written, the two YAML parsers agreeing, and plan files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cycleplan.core.checks import closest_name, did_you_mean
from cycleplan.core.loading import (
    FileError,
    LoadError,
    load_plan,
    load_scenario,
    load_scenario_or_plan,
    parse_scenario,
)
from cycleplan.core.model import Lane, Plan, PlannedTask, Scenario
from cycleplan.core.reading import Composer

VALID = """\
name: checkout
description: Payment page with a typed API
roles:
  backend:
    lanes: 2
    cycle: {median_min: 3, p90_min: 6}
    tokens:
      context_tokens: 9000
      output: {median: 700, p90: 1500}
    failure: {probability_per_cycle: 0.05, max_retries: 1}
  frontend: {lanes: 1, cycle: {kind: fixed, value_min: 4}}
resources:
  staging: {capacity: 1}
tasks:
  - id: schema
    role: backend
    cycles: 3
    emits: {schema_ready: 2}
  - id: ui
    role: frontend
    cycles: 4
    waits: {schema_ready: 2}
  - id: deploy
    role: backend
    cycles: 1
    after: [schema, ui]
    requires: {staging: 1}
"""


def errors_of(text: str) -> list[FileError]:
    with pytest.raises(LoadError) as caught:
        parse_scenario(text, "s.yaml")
    return caught.value.errors


def where(error: FileError) -> tuple[int | None, int | None, str]:
    return (error.line, error.column, error.field)


# --------------------------------------------------------------------------------------------------
# Valid input


def test_a_valid_scenario_loads(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text(VALID, encoding="utf-8")
    scenario = load_scenario(path)
    assert isinstance(scenario, Scenario)
    assert [task.id for task in scenario.tasks] == ["schema", "ui", "deploy"]
    assert scenario.roles["backend"].lanes == 2
    assert scenario.roles["backend"].tokens.output.median == 700
    assert scenario.roles["frontend"].cycle.nominal_min == 4
    assert scenario.tasks[1].waits == {"schema_ready": 2}
    assert load_scenario_or_plan(path) == scenario


def test_a_template_scenario_loads_and_its_roles_need_no_entry() -> None:
    scenario = parse_scenario(
        "template: one-100\ntasks:\n  - {id: docs-api, role: documenter, cycles: 2, after: [backend]}\n"
    )
    ids = [task.id for task in scenario.all_tasks()]
    assert ids[0] == "foundation" and ids[-1] == "docs-api"
    assert len(ids) == 13


def test_values_stay_as_written() -> None:
    scenario = parse_scenario(
        "name: 2024-05-01\ndescription: 'on'\nroles:\n  'on': {}\n"
        "tasks:\n  - {id: a, role: 'on', cycles: 1, phase: '1.0'}\n"
    )
    assert scenario.name == "2024-05-01"
    assert "on" in scenario.roles
    assert scenario.tasks[0].phase == "1.0"


def test_anchors_and_aliases_within_limits_work() -> None:
    scenario = parse_scenario(
        "roles:\n  backend: &agent {lanes: 3, cycle: {median_min: 2, p90_min: 4}}\n  frontend: *agent\n"
        "tasks:\n  - {id: a, role: backend, cycles: 1}\n  - {id: b, role: frontend, cycles: 1}\n"
    )
    assert scenario.roles["frontend"] == scenario.roles["backend"]


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_scenario(path).name == "checkout"


def test_both_yaml_parsers_build_the_same_values_and_positions() -> None:
    fast = Composer(VALID, "s.yaml", fast=True)
    slow = Composer(VALID, "s.yaml", fast=False)
    fast.run()
    slow.run()
    assert fast.root == slow.root
    assert fast.marks == slow.marks
    assert slow.marks[("tasks", 2, "requires", "staging")] == (27, 16)


# --------------------------------------------------------------------------------------------------
# Positions


@pytest.mark.parametrize(
    ("old", "new", "position"),
    [
        ("context_tokens: 9000", "context_tokens: -1", (8, 7, "roles.backend.tokens.context_tokens")),
        (
            "output: {median: 700, p90: 1500}",
            "output: {median: 700, p90: 15}",
            (9, 7, "roles.backend.tokens.output"),
        ),
        ("max_retries: 1}", "max_retries: -1}", (10, 44, "roles.backend.failure.max_retries")),
        ("value_min: 4}}", "value_min: 0}}", (11, 45, "roles.frontend.cycle.value_min")),
        ("staging: {capacity: 1}", "staging: {capacity: 0}", (13, 13, "resources.staging.capacity")),
        ("waits: {schema_ready: 2}", "waits: {schema_ready: 7}", (22, 13, "tasks.1.waits.schema_ready")),
        ("after: [schema, ui]", "after: [schema, uii]", (26, 21, "tasks.2.after.1")),
        ("requires: {staging: 1}", "requires: {staging: 2}", (27, 16, "tasks.2.requires.staging")),
    ],
    ids=["tokens", "spread", "failure", "fixed-cycle", "resource", "waits", "after-item", "requires"],
)
def test_errors_point_at_the_key_deep_in_the_file(old: str, new: str, position: tuple[int, int, str]) -> None:
    assert old in VALID
    (error,) = errors_of(VALID.replace(old, new))
    assert where(error) == position


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = (
        VALID.replace("lanes: 2", "lanes: 0")
        .replace("cycles: 4", "cycles: four")
        .replace("    cycles: 1\n", "    cycles: 1\n    colour: blue\n")
        .replace("name: checkout", "name: checkout\nname: again")
    )
    errors = errors_of(text)
    assert [(e.line, e.field) for e in errors] == [
        (2, "name"),
        (6, "roles.backend.lanes"),
        (22, "tasks.1.cycles"),
        (27, "tasks.2.colour"),
    ]
    assert "duplicate key 'name'" in errors[0].message


def test_cross_reference_problems_are_all_reported_too() -> None:
    text = (
        VALID.replace("role: frontend", "role: frontnd")
        .replace("after: [schema, ui]", "after: [schema, ui, deploy]")
        .replace("requires: {staging: 1}", "requires: {stage: 1}")
    )
    fields = [e.field for e in errors_of(text)]
    assert fields == ["tasks.1.role", "tasks.2.after.2", "tasks.2.requires.stage"]


def test_errors_print_as_file_line_column_field_message() -> None:
    (error,) = errors_of(VALID.replace("cycles: 3", "cycles: 0"))
    assert str(error) == "s.yaml:17:5: tasks.0.cycles: must be at least 1, got 0"
    assert str(FileError("s.yaml", "no such file; check the path")) == "s.yaml: no such file; check the path"
    assert str(LoadError([error, error])).count("\n") == 1


# --------------------------------------------------------------------------------------------------
# Hints


@pytest.mark.parametrize(
    ("old", "new", "hint"),
    [
        ("tasks:", "taks:", "did you mean 'tasks'?"),
        ("lanes: 2", "lane: 2", "did you mean 'lanes'?"),
        ("median_min: 3", "median_mn: 3", "did you mean 'median_min'?"),
        ("value_min: 4", "valu_min: 4", "did you mean 'value_min'?"),
        ("context_tokens: 9000", "context_tokns: 9000", "did you mean 'context_tokens'?"),
        ("output: {median: 700", "output: {mediann: 700", "did you mean 'median'?"),
        ("max_retries: 1", "max_retires: 1", "did you mean 'max_retries'?"),
        ("capacity: 1", "capcity: 1", "did you mean 'capacity'?"),
        ("emits: {schema_ready: 2}", "emit: {schema_ready: 2}", "did you mean 'emits'?"),
        ("waits: {schema_ready: 2}", "waits: {schema_redy: 2}", "did you mean 'schema_ready'?"),
        ("role: frontend", "role: fronted", "did you mean 'frontend'?"),
        ("after: [schema, ui]", "after: [schem, ui]", "did you mean 'schema'?"),
        ("requires: {staging: 1}", "requires: {stagin: 1}", "did you mean 'staging'?"),
    ],
)
def test_misspellings_get_a_did_you_mean(old: str, new: str, hint: str) -> None:
    assert old in VALID
    errors = errors_of(VALID.replace(old, new, 1))
    assert len(errors) == 1, errors  # the misspelt field is not also reported missing
    assert hint in errors[0].message


def test_a_key_with_no_close_match_lists_the_allowed_keys() -> None:
    (error,) = errors_of(VALID.replace("    cycles: 1\n", "    cycles: 1\n    zzz: 1\n"))
    assert error.message.startswith("unknown key 'zzz'; allowed here: id, role, cycles, after")


def test_did_you_mean_helpers() -> None:
    assert did_you_mean("backnd", ["backend", "frontend"]) == " (did you mean 'backend'?)"
    assert did_you_mean("zzz", ["backend"]) == ""
    assert closest_name("cylces", ["cycles", "role"]) == "cycles"
    assert closest_name("x", []) is None


@pytest.mark.parametrize(
    ("value", "read_as"), [("on", "the boolean true"), ("12", "a number"), ("null", "null (no value)")]
)
def test_names_that_yaml_reads_as_other_types_get_a_quoting_hint(value: str, read_as: str) -> None:
    (error,) = errors_of(VALID.replace("id: ui", f"id: {value}").replace("[schema, ui]", "[schema]"))
    assert error.field == "tasks.1.id"
    assert error.message == f"expected text, but YAML reads {value} as {read_as}; write '{value}' in quotes"


# --------------------------------------------------------------------------------------------------
# What the YAML reader refuses


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("a: 1\n? [x, y]\n: 2\n", (2, 3, "(top)"), "keys must be plain names"),
        ("roles: !!set {a, b}\n", (1, 8, "roles"), "tag '!!set' is not supported"),
        ("name: !!binary aGk=\n", (1, 7, "name"), "tag '!!binary' is not supported"),
        ("name: !!int abc\n", (1, 7, "name"), "cannot read 'abc' as int"),
        ("name: *nowhere\n", (1, 7, "name"), "alias '*nowhere' refers to no anchor"),
        ("roles:\n  a: &x {}\n  <<: *x\n", (3, 3, "roles"), "merge keys ('<<') are not supported"),
        ("a: 1\n...\nb: 2\n", (3, 1, "(top)"), "text after a '...' end-of-document line"),
        ("name: 'x\n", (1, 7, "name"), "quoted text is never closed"),
        ('name: "\\q"\n', (1, 9, "name"), "found unknown escape character 'q'"),
        ("name: @x\n", (1, 7, "name"), "'@' cannot start a value; put the value in quotes"),
    ],
)
def test_the_yaml_reader_refuses_with_a_position(
    text: str, position: tuple[int, int, str], fragment: str
) -> None:
    errors = errors_of(text)
    assert any(where(e) == position and fragment in e.message for e in errors), errors


def test_control_characters_are_refused_by_parse_scenario_too() -> None:
    (error,) = errors_of("name: demo\ndescription: ring \x07 bell\n")
    assert where(error) == (2, 19, "description")
    assert "control character U+0007" in error.message


def test_hostile_limits_hold_for_text_too() -> None:
    (error,) = errors_of("a: " + "[" * 200 + "]" * 200 + "\n")
    assert error.message.startswith("nested more than 48 levels deep")
    lines = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]" for i in range(6)
    ]
    (error,) = errors_of("\n".join(lines) + "\n")
    assert "alias bomb" in error.message
    (error,) = errors_of("a: [" + "1, " * 200_001 + "]\n")
    assert error.message.startswith("the file holds more than 200,000 values")


# --------------------------------------------------------------------------------------------------
# Plans (JSON)


def a_plan_json() -> str:
    """A small plan of VALID, made by hand so that these tests need no planner."""
    scenario = parse_scenario(VALID)
    spans = {"schema": (0.0, 9.0), "ui": (6.0, 22.0), "deploy": (22.0, 25.0)}
    lanes = []
    for task in scenario.tasks:
        start, finish = spans[task.id]
        planned = PlannedTask(
            task=task.id,
            role=task.role,
            cycles=task.cycles,
            start_min=start,
            finish_min=finish,
            start_cycle=start / 3,
            finish_cycle=finish / 3,
        )
        lanes.append(Lane(lane=f"{task.role}-{task.id}", role=task.role, tasks=[planned]))
    plan = Plan(
        scenario=scenario,
        algorithm="list",
        makespan_min=25.0,
        sequential_min=34.0,
        speedup=34.0 / 25.0,
        lower_bound_min=25.0,
        lower_bounds={"critical_path": 25.0},
        critical_path=["schema", "ui", "deploy"],
        wall_cycles=8.0,
        template_cycles=8,
        lanes=lanes,
    )
    return plan.model_dump_json(indent=1)


def test_a_plan_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(a_plan_json(), encoding="utf-8")
    loaded = load_plan(path)
    assert isinstance(loaded, Plan)
    assert loaded.scenario == parse_scenario(VALID)
    assert load_scenario_or_plan(path) == loaded


def test_bad_json_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{\n "algorithm": "list",\n "lanes": [1, 2,]\n}\n', encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_plan(path)
    (error,) = caught.value.errors
    assert (error.line, error.column) == (3, 17)
    assert error.field == "lanes"
    assert error.message.startswith("JSON syntax error: expecting value")


def test_plan_validation_errors_point_into_the_json(tmp_path: Path) -> None:
    text = a_plan_json()
    data = json.loads(text)
    data["scenario"]["tasks"][1]["cycles"] = 0
    data["makespan_min"] = "soon"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_plan(path)
    lines = json.dumps(data, indent=1).splitlines()
    by_field = {e.field: e for e in caught.value.errors}
    assert set(by_field) == {"makespan_min", "scenario.tasks.1.cycles"}
    makespan = by_field["makespan_min"]
    assert makespan.line is not None and '"makespan_min": "soon"' in lines[makespan.line - 1]
    cycles = by_field["scenario.tasks.1.cycles"]
    assert cycles.line is not None and '"cycles": 0' in lines[cycles.line - 1]


def _edited(data: dict[str, object], edit: str) -> None:
    lanes = data["lanes"]
    assert isinstance(lanes, list)
    if edit == "unplaced":
        lanes[0]["tasks"] = []
    elif edit == "unknown":
        lanes[0]["tasks"][0]["task"] = "shema"
    elif edit == "twice":
        lanes[1]["tasks"].append(lanes[0]["tasks"][0])
    elif edit == "lane-escapes":
        lanes[0]["lane"] = "../../.."
    elif edit == "lane-twice":
        lanes[1]["lane"] = lanes[0]["lane"]
    elif edit == "wrong-role":
        lanes[0]["tasks"][0]["role"] = "frontend"
    elif edit == "wrong-cycles":
        lanes[0]["tasks"][0]["cycles"] = 30


@pytest.mark.parametrize(
    ("edit", "field", "fragment"),
    [
        ("unplaced", "lanes", "task(s) schema are on no lane"),
        (
            "unknown",
            "lanes.0.tasks.0.task",
            "'shema' is no task of the plan's scenario (did you mean 'schema'?)",
        ),
        ("twice", "lanes.1.tasks.1.task", "'schema' is already placed at lanes.0.tasks.0"),
        ("lane-escapes", "lanes.0.lane", "'../../..' is not a valid name"),
        ("lane-twice", "lanes.1.lane", "is also lanes.0"),
        ("wrong-role", "lanes.0.tasks.0.role", "'schema' is a task of role 'backend', not 'frontend'"),
        ("wrong-cycles", "lanes.0.tasks.0.cycles", "'schema' has 3 cycles in the scenario, not 30"),
    ],
)
def test_a_hand_edited_plan_must_place_its_scenario(
    tmp_path: Path, edit: str, field: str, fragment: str
) -> None:
    """What `simulate` refused (or never saw) is refused wherever a plan is read: `execute` included."""
    data = json.loads(a_plan_json())
    _edited(data, edit)
    path = tmp_path / "plan.json"
    text = json.dumps(data, indent=1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_plan(path)
    by_field = {e.field: e for e in caught.value.errors}
    assert field in by_field, caught.value
    assert fragment in by_field[field].message
    assert by_field[field].line is not None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"makespan_min": ' + "9" * 5000 + "}", "got a number with 5,000 digits"),
        ('{"makespan_min": NaN}', "got NaN"),
        ("[" * 100_000, "nested more than 48 levels deep"),
    ],
    ids=["huge-int", "nan", "deep"],
)
def test_hostile_json_fails_cleanly(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_plan(path)
    assert any(fragment in e.message for e in caught.value.errors), caught.value
    assert all(e.line is not None for e in caught.value.errors)


def test_an_empty_plan_says_what_a_plan_is(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_plan(path)
    assert "cycleplan plan FILE -o plan.json" in caught.value.errors[0].message


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero on this system")
def test_devices_are_refused_and_pipes_read_without_hanging(tmp_path: Path) -> None:
    """/dev/zero would read without end: a device is refused before it is read. A pipe is read as the
    stream it is (``... | cycleplan plan /dev/stdin``); one with no writer reads as empty, never hangs."""
    import os

    with pytest.raises(LoadError) as caught:
        load_scenario(Path("/dev/zero"))
    assert "is a device or a socket" in caught.value.errors[0].message
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(LoadError) as caught:
        load_scenario(pipe)
    assert "empty" in caught.value.errors[0].message
    read_end, write_end = os.pipe()  # what a shell gives as /dev/stdin: its writer done, data waiting
    try:
        os.write(write_end, VALID.encode("utf-8"))
        os.close(write_end)
        scenario = load_scenario(Path(f"/dev/fd/{read_end}"))
    finally:
        os.close(read_end)
    assert scenario.tasks


def test_a_misspelt_model_is_refused_where_it_is_written() -> None:
    """A model no price is known for bills $0 in execute and cannot be simulated: validate says so."""
    text = (
        "roles:\n  backend: {model: claude-sonet-4-5}\n"
        "tasks:\n  - {id: a, role: backend, cycles: 2, cycle_models: {2: claude-hiaku-4-5}}\n"
    )
    with pytest.raises(LoadError) as caught:
        parse_scenario(text)
    assert [(e.field, e.line) for e in caught.value.errors] == [
        ("roles.backend.model", 2),
        ("tasks.0.cycle_models.2", 4),
    ]
    assert "did you mean 'claude-sonnet-4-5'?" in caught.value.errors[0].message
    assert "did you mean 'claude-haiku-4-5'?" in caught.value.errors[1].message
    priced = text + "prices:\n  claude-sonet-4-5: {input_per_mtok: 3, output_per_mtok: 15}\n"
    priced += "  claude-hiaku-4-5: {input_per_mtok: 1, output_per_mtok: 5}\n"
    assert parse_scenario(priced).roles["backend"].model == "claude-sonet-4-5"
