"""The one way in for files: scenario YAML (and plan JSON) to validated models, or errors that name the
file, line, column and field.

:mod:`cycleplan.core.reading` turns a file into plain values that remember where each key and item was written
(and refuses hostile or malformed input with its position). pydantic validates those values here; its
errors and the scenario's cross-reference problems (:mod:`cycleplan.core.checks`) are mapped back to
positions, and every problem found is reported at once: when some fields of a scenario fail, the
cross-reference checks still run on the parts that validated, skipping what rests on a failed field.
Nothing here prints or exits: callers get :class:`LoadError`.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from cycleplan.core.checks import (
    NAME,
    Problem,
    ScenarioProblems,
    Unvalidated,
    closest_name,
    did_you_mean,
    model_problems,
    scenario_problems,
)
from cycleplan.core.model import MAX_CYCLES, MAX_LANES, Plan, Resource, Role, Scenario, Task
from cycleplan.core.reading import (
    Document,
    FileError,
    LoadError,
    Loc,
    Pos,
    describe,
    dotted,
    one_line,
    parse_json,
    parse_yaml,
    read_text,
    yaml_marks,
)

__all__ = [
    "FileError",
    "LoadError",
    "load_plan",
    "load_scenario",
    "load_scenario_or_plan",
    "parse_scenario",
]


# --------------------------------------------------------------------------------------------------
# Mapping validation errors back to the file


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


def _position(marks: dict[Loc, Pos], loc: Loc) -> Pos:
    for end in range(len(loc), 0, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return marks.get((), (1, 1))


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
                    and "kind" in m.model_fields
                    and kind in typing.get_args(m.model_fields["kind"].annotation)
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


_PLAIN = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_parsing_size": "expected a whole number of sensible size",
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


def _allowed_keys(model: type[BaseModel], data: Any, loc: Loc) -> list[str]:
    owner = _model_at(model, loc, data)
    return list(owner.model_fields) if owner is not None else []


def _message(error: Any, model: type[BaseModel], document: Document, loc: Loc) -> str:
    kind = error["type"]
    value = error.get("input")
    data = document.data
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = _allowed_keys(model, data, loc)
        hint = did_you_mean(key, allowed)
        listing = f"; allowed here: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown key '{describe(key)[1:-1]}'{hint}{listing}"
    if kind == "missing":
        return f"missing required field '{loc[-1]}'; add it" if loc else "missing required field"
    if kind == "string_type" and loc in document.written:
        written = document.written[loc]
        if isinstance(value, bool):
            read = f"the boolean {str(value).lower()}"
        elif value is None:
            read = "null (no value)"
        else:
            read = "a number"
        return f"expected text, but YAML reads {written} as {read}; write '{written}' in quotes"
    if kind in _PLAIN:
        if value is None:
            return f"has no value; {_PLAIN[kind]}"
        hint = ""
        if kind == "list_type" and isinstance(value, str | int | float):
            hint = f"; write [{value}] for a list of one"
        return f"{_PLAIN[kind]}, got {describe(value)}{hint}"
    if kind == "value_error":
        return one_line(str(error["ctx"]["error"]))
    if kind == "string_pattern_mismatch":
        return (
            f"{describe(value)} is not a valid name; use letters, digits and '_ . -', "
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
        bound = error["ctx"][key]
        if isinstance(bound, float) and bound.is_integer() and abs(bound) < 1e15:
            bound = int(bound)
        return f"{words} {bound}, got {describe(value)}"
    text = one_line(str(error["msg"]))
    return text[:1].lower() + text[1:]


def _under(loc: Loc, refused: list[Loc]) -> bool:
    return any(loc[: len(prefix)] == prefix for prefix in refused)


@dataclass
class _Checked:
    """What validating a document found: the model (None when validation failed), every problem as a
    file error, the fields that failed or were refused, and whether the model's own cross-reference
    checks ran."""

    result: Any
    errors: list[FileError]
    failed: set[Loc]
    cross_checked: bool = False


def _check(
    model: type[BaseModel],
    document: Document,
    name: str,
    marks: Callable[[], dict[Loc, Pos]] | None = None,
) -> _Checked:
    """``model`` validated from the document, with every problem (the document's own refusals included).
    ``marks`` computes positions lazily when the document has none."""
    errors = [error for _, error in document.errors]
    refused = [loc for loc, _ in document.errors]
    checked = _Checked(None, errors, set(refused))
    try:
        checked.result = model.model_validate(document.data)
        checked.cross_checked = True
    except ValidationError as exc:
        positions = document.marks if marks is None else marks()
        found = exc.errors(include_url=False)
        # A misspelt key and the field it was meant to be are one mistake: "did you mean 'cycles'?"
        # says it all, so the field's "missing" error is left out.
        meant: set[Loc] = set()
        for error in found:
            if error["type"] == "extra_forbidden":
                base = _file_loc(document.data, tuple(error["loc"]))
                close = (
                    closest_name(str(base[-1]), _allowed_keys(model, document.data, base)) if base else None
                )
                if close is not None:
                    meant.add((*base[:-1], close))
        # The field a misspelt key was meant to be failed too: what the file holds for it is not there.
        checked.failed.update(meant)
        for error in found:
            cause = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
            base = _file_loc(document.data, tuple(error["loc"]), error["type"] == "missing")
            if isinstance(cause, ScenarioProblems):
                checked.cross_checked = True
            else:
                checked.failed.add((*base, NAME) if error["loc"][-1:] == (NAME,) else base)
            if _under(base, refused):
                continue  # already reported where the file was read
            if error["type"] == "missing" and base in meant:
                continue
            if isinstance(cause, ScenarioProblems):
                errors.extend(_located(cause.problems, base, positions, name))
                continue
            line, column = _position(positions, base)
            message = _message(error, model, document, base)
            errors.append(FileError(name, message, line, column, dotted(base)))
    return checked


def _located(problems: list[Problem], base: Loc, positions: dict[Loc, Pos], name: str) -> list[FileError]:
    """Cross-reference problems as file errors, at ``base`` + each problem's path."""
    errors = []
    for problem in problems:
        loc = (*base, *problem.path)
        line, column = _position(positions, loc)
        errors.append(FileError(name, one_line(problem.message), line, column, dotted(loc)))
    return errors


def _raise_any(errors: list[FileError]) -> None:
    """LoadError with ``errors`` in file order, each once, if there are any."""
    if errors:
        unique = list(dict.fromkeys(errors))
        unique.sort(key=lambda e: (e.line or 0, e.column or 0))
        raise LoadError(unique)


def _validate(
    model: type[BaseModel],
    document: Document,
    name: str,
    marks: Callable[[], dict[Loc, Pos]] | None = None,
) -> Any:
    """``model`` validated from the document, or LoadError with every problem (the document's own
    refusals included). ``marks`` computes positions lazily when the document has none."""
    checked = _check(model, document, name, marks)
    _raise_any(checked.errors)
    return checked.result


# --------------------------------------------------------------------------------------------------
# The parts of a scenario that validated, for the checks when others did not


@functools.cache
def _field_adapter(model: type[BaseModel], field: str) -> TypeAdapter[Any]:
    """Validates one field of ``model`` on its own (its type and constraints; not the model's
    validators, which ran on the whole document)."""
    info = model.model_fields[field]
    annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotation)


def _validated_fields(model: type[BaseModel], raw: Any, loc: Loc, unvalidated: Unvalidated) -> dict[str, Any]:
    """The fields of ``raw`` (a mapping for ``model`` at ``loc``) that validated, with their values."""
    if not isinstance(raw, dict):
        return {}
    return {
        key: _field_adapter(model, key).validate_python(value)
        for key, value in raw.items()
        if key in model.model_fields and unvalidated.intact(*loc, key)
    }


def _partial_scenario(data: dict[str, Any], unvalidated: Unvalidated) -> Scenario | None:
    """A Scenario of the parts of ``data`` that validated, every failed field at its default (or a
    stand-in the checks know to skip), built without validation: for :mod:`cycleplan.core.checks` only,
    never returned to a caller. None when even the parts cannot be told apart."""
    try:
        fields = _validated_fields(Scenario, data, (), unvalidated)
        parts: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
            ("roles", Role, {}),
            ("resources", Resource, {"capacity": MAX_LANES}),
        ]
        for key, model, stand_in in parts:
            entries = data.get(key)
            if key not in fields and unvalidated.present(key) and isinstance(entries, dict):
                fields[key] = {
                    str(entry): model.model_construct(
                        **{**stand_in, **_validated_fields(model, raw, (key, entry), unvalidated)}
                    )
                    for entry, raw in entries.items()
                }
        items = data.get("tasks")
        if "tasks" not in fields and unvalidated.present("tasks") and isinstance(items, list):
            fields["tasks"] = [_partial_task(raw, index, unvalidated) for index, raw in enumerate(items)]
        return Scenario.model_construct(**fields)
    except ValidationError:  # a field that validated within the document but not alone: check nothing more
        return None


def _partial_task(raw: Any, index: int, unvalidated: Unvalidated) -> Task:
    """The task at ``tasks.index`` with its failed fields at their defaults; a failed id becomes one no
    reference can name, and a failed role or cycles a stand-in the checks skip."""
    stand_in = {"id": f"(tasks.{index})", "role": "(unvalidated)", "cycles": MAX_CYCLES}
    return Task.model_construct(**{**stand_in, **_validated_fields(Task, raw, ("tasks", index), unvalidated)})


def _partial_problems(document: Document, checked: _Checked, name: str) -> list[FileError]:
    """The cross-reference and model problems of the parts of a scenario that validated, when some did
    not (the schema errors alone would hide them until fixed)."""
    unvalidated = Unvalidated(frozenset(checked.failed))
    partial = _partial_scenario(document.data, unvalidated)
    if partial is None:
        return []
    problems = [] if checked.cross_checked else scenario_problems(partial, unvalidated)
    problems += model_problems(partial, unvalidated)
    return _located(problems, (), document.marks, name)


# --------------------------------------------------------------------------------------------------
# Entry points


def parse_scenario(text: str, name: str = "<scenario>") -> Scenario:
    """A Scenario from YAML text; ``name`` is used in error messages.

    Every problem is reported at once: schema errors, and the cross-reference problems (unknown roles,
    tasks and models, dependency loops, waits never met) of the parts that did validate.
    """
    document = parse_yaml(text, name)
    checked = _check(Scenario, document, name)
    if checked.errors:
        _raise_any(checked.errors + _partial_problems(document, checked, name))
    scenario: Scenario = checked.result
    _raise_any(_located(model_problems(scenario), (), document.marks, name))
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """The Scenario in a YAML file, or :class:`LoadError` naming every problem with its line and field."""
    path = Path(path)
    return parse_scenario(read_text(path, "scenario"), str(path))


def load_plan(path: str | Path) -> Plan:
    """A Plan written by ``cycleplan plan -o plan.json``, or :class:`LoadError` naming every problem."""
    path = Path(path)
    text = read_text(path, "plan")
    name = str(path)
    data = parse_json(text, name)
    plan: Plan = _validate(Plan, Document(data), name, marks=lambda: yaml_marks(text))
    return plan


def load_scenario_or_plan(path: str | Path) -> Scenario | Plan:
    """A Plan for ``*.json`` files, else a Scenario: what ``simulate`` and ``execute`` accept."""
    path = Path(path)
    return load_plan(path) if path.suffix.lower() == ".json" else load_scenario(path)
