"""The one way in for files: scenario YAML (and plan JSON) to validated models, or errors that name the
file, line, column and field.

YAML is parsed with PyYAML's composer so that every value keeps its position; we then build plain Python
values ourselves, which lets us refuse duplicate keys, keep names as written (``on`` stays a string),
and bound what hostile input can cost (size, nesting depth, alias expansion, huge numbers). pydantic
validates the result; its errors and the scenario's cross-reference problems are mapped back to
positions. Nothing here prints or exits: callers get :class:`LoadError` with every problem found.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cycleplan.checks import ScenarioProblems, did_you_mean
from cycleplan.model import Plan, Scenario

MAX_FILE_BYTES = 2_000_000
MAX_DEPTH = 48
MAX_NODES = 200_000

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FileError:
    """One problem with an input file, at a position when it has one."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    field: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column or 1}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class LoadError(Exception):
    """An input file could not be turned into a model; ``errors`` holds every problem found."""

    def __init__(self, errors: list[FileError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


# --------------------------------------------------------------------------------------------------
# Reading and parsing


def _read_text(path: Path) -> str:
    name = str(path)
    if not path.exists():
        raise LoadError([FileError(name, "no such file; check the path")])
    if path.is_dir():
        raise LoadError([FileError(name, "is a directory; give the path of a scenario file inside it")])
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LoadError(
                [
                    FileError(
                        name, f"is {size:,} bytes; scenario and plan files are limited to {MAX_FILE_BYTES:,}"
                    )
                ]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError([FileError(name, f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError(
            [
                FileError(
                    name, f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8", line, column
                )
            ]
        ) from None
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise LoadError(
            [
                FileError(
                    name,
                    "is empty; a scenario needs at least 'tasks' or a 'template' (try 'cycleplan init')",
                    1,
                    1,
                )
            ]
        )
    return text


@dataclass
class _Document:
    """A parsed document: plain values, and where each key and item was written."""

    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)


class _Builder:
    """Turns a composed YAML node tree into plain values, recording positions and enforcing limits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes = 0
        self.marks: dict[Loc, tuple[int, int]] = {}
        self.errors: list[FileError] = []
        self._scalars = yaml.SafeLoader("")

    def _error(self, node: yaml.Node, loc: Loc, message: str) -> None:
        self.errors.append(
            FileError(self.name, message, node.start_mark.line + 1, node.start_mark.column + 1, _dotted(loc))
        )

    def build(self, node: yaml.Node, loc: Loc, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LoadError(
                [
                    FileError(
                        self.name,
                        f"expands to more than {MAX_NODES:,} values (an alias bomb?); "
                        "write the values out instead of repeating aliases",
                        node.start_mark.line + 1,
                        node.start_mark.column + 1,
                    )
                ]
            )
        if depth > MAX_DEPTH:
            raise LoadError(
                [
                    FileError(
                        self.name,
                        f"is nested more than {MAX_DEPTH} levels deep",
                        node.start_mark.line + 1,
                        node.start_mark.column + 1,
                    )
                ]
            )
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._error(key_node, loc, "keys must be plain names, not lists or mappings")
                    continue
                key = key_node.value
                if key == "<<":
                    self._error(key_node, loc, "merge keys ('<<') are not supported; write the fields out")
                    continue
                if key in result:
                    self._error(key_node, (*loc, key), f"duplicate key '{key}'; each key may appear once")
                    continue
                self.marks[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.build(value_node, (*loc, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.marks[(*loc, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                items.append(self.build(item, (*loc, index), depth + 1))
            return items
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.Node, loc: Loc) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and len(node.value) > 400:
            self._error(node, loc, f"number with {len(node.value)} digits is far too large")
            return None
        try:
            return self._scalars.construct_object(node)
        except (ValueError, yaml.constructor.ConstructorError) as exc:
            self._error(node, loc, f"cannot read this value: {exc}")
            return None


def _parse_yaml(text: str, name: str) -> _Document:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise LoadError([FileError(name, f"YAML syntax error: {problem}{context}", line, column)]) from None
    except yaml.YAMLError as exc:
        raise LoadError([FileError(name, f"YAML error: {exc}")]) from None
    except RecursionError:
        raise LoadError(
            [FileError(name, f"is nested too deeply to read (limit {MAX_DEPTH} levels)")]
        ) from None
    finally:
        loader.dispose()
    if root is None:
        raise LoadError(
            [FileError(name, "is empty; a scenario needs at least 'tasks' or a 'template'", 1, 1)]
        )
    builder = _Builder(name)
    try:
        data = builder.build(root, (), 0)
    except RecursionError:
        raise LoadError(
            [FileError(name, f"is nested too deeply to read (limit {MAX_DEPTH} levels)")]
        ) from None
    if builder.errors:
        raise LoadError(builder.errors)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the single value {data!r}"
        raise LoadError(
            [
                FileError(
                    name,
                    f"the top level is {kind}; a scenario is a mapping of keys such as "
                    "'name', 'roles' and 'tasks'",
                    root.start_mark.line + 1,
                    root.start_mark.column + 1,
                )
            ]
        )
    return _Document(data, builder.marks)


# --------------------------------------------------------------------------------------------------
# Mapping validation errors back to the file


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _file_loc(data: Any, loc: Loc, missing: bool = False) -> Loc:
    """pydantic's loc with the parts that are not in the file (union tags) dropped.

    The last part is kept when it names a missing field, which the file cannot hold.
    """
    kept: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            kept.append(part)
            current = current[part]
        elif last and missing:
            kept.append(part)
        # else: a tag pydantic adds for a union member; the file has no such level.
    return tuple(kept)


def _position(marks: dict[Loc, tuple[int, int]], loc: Loc) -> tuple[int, int]:
    for end in range(len(loc), 0, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return (1, 1)


def _model_at(model: type[BaseModel], loc: Loc, data: Any) -> type[BaseModel] | None:
    """The model class whose fields hold the last part of ``loc`` (for "did you mean" on keys)."""
    current: Any = model
    raw = data
    for part in loc[:-1]:
        current = _unwrap(current, raw)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return None
            current = info.annotation
        else:
            args = typing.get_args(current)
            current = args[-1] if args else None
        raw = (
            raw.get(part)
            if isinstance(raw, dict)
            else (raw[part] if isinstance(raw, list) and isinstance(part, int) and part < len(raw) else None)
        )
    current = _unwrap(current, raw)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any, raw: Any) -> Any:
    """Strip Annotated and Optional; pick the union member that ``raw``'s ``kind`` names."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            members = [
                typing.get_args(m)[0] if typing.get_origin(m) is typing.Annotated else m for m in members
            ]
            kind = raw.get("kind", "lognormal") if isinstance(raw, dict) else None
            chosen = next(
                (
                    m
                    for m in members
                    if isinstance(m, type)
                    and issubclass(m, BaseModel)
                    and m.model_fields.get("kind") is not None
                    and m.model_fields["kind"].default == kind
                ),
                None,
            )
            if chosen is None and len(members) == 1:
                chosen = members[0]
            if chosen is None:
                chosen = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
            return chosen
        else:
            return annotation


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_PLAIN = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "model_attributes_type": "expected a mapping of keys to values",
    "tuple_type": "expected a list",
}


def _message(error: Any, model: type[BaseModel], data: Any, loc: Loc) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        owner = _model_at(model, loc, data)
        allowed = list(owner.model_fields) if owner is not None else []
        hint = did_you_mean(key, allowed)
        listing = f"; allowed here: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown key '{key}'{hint}{listing}"
    if kind == "missing":
        return f"missing required field '{loc[-1]}'" if loc else "missing required field"
    if kind in _PLAIN:
        return f"{_PLAIN[kind]}, got {_describe(value)}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "string_pattern_mismatch":
        return (
            f"{_describe(value)} is not a valid name; use letters, digits and '_ . -', "
            "starting with a letter or digit"
        )
    bounds = {
        "greater_than": ("gt", "must be above"),
        "greater_than_equal": ("ge", "must be at least"),
        "less_than": ("lt", "must be below"),
        "less_than_equal": ("le", "must be at most"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        return f"{words} {error['ctx'][key]}, got {_describe(value)}"
    if kind in ("too_short", "too_long"):
        return f"{error['msg'].lower()}"
    text = str(error["msg"])
    return text[0].lower() + text[1:]


def _validate(model: type[BaseModel], document: _Document, name: str) -> Any:
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        errors: list[FileError] = []
        for error in exc.errors(include_url=False):
            cause = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
            base = _file_loc(document.data, tuple(error["loc"]), error["type"] == "missing")
            if isinstance(cause, ScenarioProblems):
                for problem in cause.problems:
                    loc = (*base, *problem.path)
                    line, column = _position(document.marks, loc)
                    errors.append(FileError(name, problem.message, line, column, _dotted(loc)))
                continue
            line, column = _position(document.marks, base)
            errors.append(
                FileError(
                    name, _message(error, model, document.data, base), line, column, _dotted(base) or "(top)"
                )
            )
        errors.sort(key=lambda e: (e.line or 0, e.column or 0))
        raise LoadError(errors) from None


# --------------------------------------------------------------------------------------------------
# Entry points


def parse_scenario(text: str, name: str = "<scenario>") -> Scenario:
    """A Scenario from YAML text; ``name`` is used in error messages."""
    document = _parse_yaml(text, name)
    scenario: Scenario = _validate(Scenario, document, name)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """The Scenario in a YAML file, or :class:`LoadError` naming every problem with its line and field."""
    path = Path(path)
    return parse_scenario(_read_text(path), str(path))


def load_plan(path: str | Path) -> Plan:
    """A Plan written by ``cycleplan plan -o plan.json``."""
    path = Path(path)
    text = _read_text(path)
    name = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError([FileError(name, f"JSON syntax error: {exc.msg}", exc.lineno, exc.colno)]) from None
    except RecursionError:
        raise LoadError([FileError(name, "is nested too deeply to read")]) from None
    plan: Plan = _validate(Plan, _Document(data), name)
    return plan


def load_scenario_or_plan(path: str | Path) -> Scenario | Plan:
    """A Plan for ``*.json`` files, else a Scenario: what ``simulate`` and ``execute`` accept."""
    path = Path(path)
    return load_plan(path) if path.suffix.lower() == ".json" else load_scenario(path)
