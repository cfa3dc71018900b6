"""The one way in for files: scenario YAML (and plan JSON) to validated models, or errors that name the
file, line, column and field.

YAML is read event by event from PyYAML's parser (never its recursive composer), and plain Python values
are built here, iteratively, so that every key and item keeps its position and hostile input costs
little: files are capped in size, nesting in depth, alias expansion in values, numbers in digits, and a
second YAML document, a duplicate key, a tag or a merge key is refused with its position. Names stay as
written (``on`` is a string). pydantic validates the result; its errors and the scenario's
cross-reference problems (:mod:`cycleplan.checks`) are mapped back to positions, and every problem found
is reported at once. Nothing here prints or exits: callers get :class:`LoadError`.
"""

from __future__ import annotations

import contextlib
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cycleplan.checks import ScenarioProblems, closest_name, did_you_mean
from cycleplan.model import Plan, Scenario

MAX_FILE_BYTES = 2_000_000
"""Largest scenario or plan file read, in bytes."""
MAX_DEPTH = 48
"""Deepest nesting of lists and mappings (a scenario needs about 6 levels, a plan about 8)."""
MAX_NODES = 200_000
"""Most values a file may hold, counting every value an alias repeats."""
MAX_NUMBER_DIGITS = 400
"""Longest number read; anything longer is refused before Python converts it."""

Loc = tuple[str | int, ...]
"""A path into the file's structure: keys and list indexes (``("tasks", 3, "after", 0)``)."""
Pos = tuple[int, int]
"""A position in a file: line and column, both from 1."""
TOP = "(top)"
"""The field named by errors about the file as a whole."""


@dataclass(frozen=True)
class FileError:
    """One problem with an input file, at a position when it has one.

    Prints as ``FILE:LINE:COL: field: message``, or ``FILE: message`` when the file cannot be read at all
    (missing, a directory, too large).
    """

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


def _pos(mark: Any) -> Pos:
    """The position of a PyYAML mark (pure-Python or libyaml)."""
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _dotted(loc: Loc) -> str:
    parts = [str(part) if len(str(part)) <= 60 else str(part)[:57] + "..." for part in loc]
    if len(parts) > 10:
        parts = [*parts[:8], "..."]
    return ".".join(parts) or TOP


# --------------------------------------------------------------------------------------------------
# Reading


_EMPTY_HINT = {
    "scenario": "a scenario needs 'tasks' or a 'template' (start from 'cycleplan init NAME')",
    "plan": "a plan is the JSON that 'cycleplan plan FILE -o plan.json' writes",
}


def _read_bytes(path: Path, what: str) -> bytes:
    name = str(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise LoadError([FileError(name, "no such file; check the path")]) from None
    except IsADirectoryError:
        raise LoadError(
            [FileError(name, f"is a directory; give the path of a {what} file inside it")]
        ) from None
    except PermissionError:
        raise LoadError([FileError(name, "cannot be read: permission denied")]) from None
    except OSError as exc:
        raise LoadError([FileError(name, f"cannot be read: {_one_line(exc.strerror or str(exc))}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise LoadError(
            [
                FileError(
                    name,
                    f"is larger than {MAX_FILE_BYTES:,} bytes, the limit for a {what} file; "
                    "check that this is the right file",
                )
            ]
        )
    return data


_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters YAML does not allow in a file (PyYAML's own rule)."""


def _line_column(text: str, index: int) -> Pos:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError(
            [FileError(name, "is UTF-16 text; save it as UTF-8", 1, 1, TOP)],
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start].decode("utf-8", "replace")) + 1
        where = _locate(data.decode("utf-8", "replace"), line, column)
        raise LoadError(
            [
                FileError(
                    name,
                    f"is not UTF-8 text (byte 0x{data[exc.start]:02x} here); save the file as UTF-8",
                    line,
                    column,
                    _dotted(where),
                )
            ]
        ) from None
    _check_printable(text, name)
    return text


def _check_printable(text: str, name: str) -> None:
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line, column = _line_column(text, bad.start())
        where = _locate(_NOT_PRINTABLE.sub("\ufffd", text), line, column)
        raise LoadError(
            [
                FileError(
                    name,
                    f"contains the control character U+{ord(bad.group()):04X}, which YAML does not allow; "
                    "delete it",
                    line,
                    column,
                    _dotted(where),
                )
            ]
        )


def _read_text(path: Path, what: str) -> str:
    """The file's text, or a LoadError for a file that is missing, unreadable, too large, not UTF-8 or
    empty."""
    name = str(path)
    text = _decode(_read_bytes(path, what), name)
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise LoadError([FileError(name, f"is empty; {_EMPTY_HINT[what]}", 1, 1, TOP)])
    return text


# --------------------------------------------------------------------------------------------------
# Parsing YAML into plain values with positions


@dataclass
class _Document:
    """A parsed document: plain values, where each key and item was written, and what was refused."""

    data: Any
    marks: dict[Loc, Pos] = field(default_factory=dict)
    errors: list[tuple[Loc, FileError]] = field(default_factory=list)
    written: dict[Loc, str] = field(default_factory=dict)
    """How unquoted values that YAML read as numbers, booleans or null were written (``on``, ``1.0``)."""


@dataclass
class _Frame:
    """A list or mapping being built."""

    loc: Loc
    value: Any
    start: Pos
    anchor: str | None
    as_key: bool = False
    """Written where a mapping expects a key (refused: keys are plain names)."""
    pending: str | None = None
    """A mapping's key whose value comes next."""
    skip_value: bool = False
    """The next value belongs to a refused key and is dropped."""
    size: int = 1


_YAML_TAG = "tag:yaml.org,2002:"
_MAP_TAG = _YAML_TAG + "map"
_SEQ_TAG = _YAML_TAG + "seq"
_SCALAR_TAGS = {_YAML_TAG + kind for kind in ("str", "int", "float", "bool", "null", "timestamp")}
_NUMBER_TAGS = {_YAML_TAG + "int", _YAML_TAG + "float"}

_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML has it: the same events and marks, some thirty times faster. Syntax
errors are read again with the pure-Python parser, whose messages say more."""


def _tag(tag: object) -> str:
    return str(tag).replace(_YAML_TAG, "!!")


class _Stop(Exception):  # noqa: N818 (control flow, never leaves this module)
    """Raised to stop reading at a position (see :func:`_locate`)."""


class _Composer:
    """Builds plain values from PyYAML's event stream, iteratively, recording positions and limits."""

    def __init__(self, text: str, name: str, fast: bool = True) -> None:
        self.name = name
        self.text = text
        self.fast = fast and _FAST_LOADER is not yaml.SafeLoader
        self.loader = (_FAST_LOADER if self.fast else yaml.SafeLoader)(text)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.marks: dict[Loc, Pos] = {}
        self.errors: list[tuple[Loc, FileError]] = []
        self.written: dict[Loc, str] = {}
        self.total = 0
        self.repeated = 0
        """Values that aliases repeat, included in ``total``."""
        self.root: Any = None
        self.root_pos: Pos | None = None

    # -- errors

    def _error_at(self, pos: Pos, loc: Loc, message: str) -> FileError:
        return FileError(self.name, _one_line(message), pos[0], pos[1], _dotted(loc))

    def _refuse(self, pos: Pos, loc: Loc, message: str) -> None:
        self.errors.append((loc, self._error_at(pos, loc, message)))

    def _fatal(self, pos: Pos, loc: Loc, message: str) -> LoadError:
        return LoadError([error for _, error in self.errors] + [self._error_at(pos, loc, message)])

    # -- where we are

    def _awaiting_key(self) -> bool:
        if not self.stack:
            return False
        top = self.stack[-1]
        return isinstance(top.value, dict) and top.pending is None and not top.skip_value

    def _child_loc(self) -> Loc:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.loc, len(top.value))
        return (*top.loc, top.pending) if top.pending is not None else top.loc

    def here(self) -> Loc:
        """The field being read: the open collection, and the key whose value comes next."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, dict) and top.pending is not None:
            return (*top.loc, top.pending)
        return top.loc

    # -- reading

    def run(self, until: Pos | None = None) -> None:
        """Read every event; with ``until``, stop at the first event that reaches that position."""
        loader = self.loader
        documents = 0
        try:
            while loader.check_event():
                event = loader.get_event()  # type: ignore[no-untyped-call]
                start = _pos(event.start_mark)
                if until is not None:
                    self._stop_at(event, start, until)
                if isinstance(event, yaml.DocumentStartEvent):
                    documents += 1
                    if documents > 1:
                        raise self._fatal(
                            start,
                            (),
                            "a second YAML document starts here; a scenario file holds one document: "
                            "delete this '---' line or split the file",
                        )
                elif isinstance(event, yaml.ScalarEvent):
                    self._scalar(event, start)
                elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                    self._start(event, start)
                elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                    self._end()
                elif isinstance(event, yaml.AliasEvent):
                    self._alias(str(event.anchor), start)
        finally:
            loader.dispose()

    def _stop_at(self, event: yaml.Event, start: Pos, until: Pos) -> None:
        if start >= until:
            raise _Stop
        if isinstance(event, yaml.ScalarEvent) and _pos(event.end_mark) > until:
            # The position is inside this scalar: a key names itself, a value its key or item.
            if self._awaiting_key():
                self.stack[-1].pending = event.value
            elif self.stack and isinstance(self.stack[-1].value, list):
                self.stack.append(_Frame(self._child_loc(), None, start, None))
            raise _Stop

    def _count(self, size: int, pos: Pos, repeated: bool = False) -> None:
        self.total += size
        if repeated:
            self.repeated += size
        if self.total > MAX_NODES:
            message = (
                f"aliases expand the file to more than {MAX_NODES:,} values (an alias bomb?); "
                "write the values out instead of repeating aliases"
                if self.repeated > self.total // 2
                else f"the file holds more than {MAX_NODES:,} values, far more than a scenario needs; "
                "check that this is the right file"
            )
            raise self._fatal(pos, self._child_loc(), message)

    def _key(self, key: str, pos: Pos) -> None:
        top = self.stack[-1]
        loc = (*top.loc, key)
        if key == "<<":
            self._refuse(pos, top.loc, "merge keys ('<<') are not supported; write the fields out")
            top.skip_value = True
        elif key in top.value:
            line, column = self.marks[loc]
            self._refuse(
                pos,
                loc,
                f"duplicate key '{key}' (first at line {line}, column {column}); "
                "each key may appear once: merge the two or delete one",
            )
            top.skip_value = True
        else:
            self.marks[loc] = pos
            top.pending = key

    def _add(self, value: Any, size: int, pos: Pos) -> None:
        if not self.stack:
            self.root, self.root_pos = value, pos
            self.marks[()] = pos
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            self.marks[(*top.loc, len(top.value))] = pos
            top.value.append(value)
        else:
            if top.pending is not None:
                top.value[top.pending] = value
            top.pending, top.skip_value = None, False

    def _scalar(self, event: yaml.ScalarEvent, pos: Pos) -> None:
        self._count(1, pos)
        if self._awaiting_key():
            if event.tag not in (None, "!", _YAML_TAG + "str"):
                self._refuse(pos, self.here(), f"tag '{_tag(event.tag)}' is not supported; remove it")
            if event.anchor is not None:
                self.anchors[event.anchor] = (event.value, 1)
            self._key(event.value, pos)
            return
        loc = self._child_loc()
        value = self._construct(event, pos, loc)
        if not isinstance(value, str) and event.value:
            self.written[loc] = event.value
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        self._add(value, 1, pos)

    def _construct(self, event: yaml.ScalarEvent, pos: Pos, loc: Loc) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            resolve: Callable[..., str] = self.loader.resolve
            tag = resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag not in _SCALAR_TAGS:
            self._refuse(pos, loc, f"tag '{_tag(tag)}' is not supported; remove it")
            return None
        if tag == _YAML_TAG + "timestamp":
            return event.value  # dates stay text
        if tag in _NUMBER_TAGS and len(event.value) > MAX_NUMBER_DIGITS:
            self._refuse(
                pos,
                loc,
                f"a number with {len(event.value):,} characters is far too large; "
                "write a number of sensible size",
            )
            return None
        node = yaml.ScalarNode(tag, event.value, style=event.style)
        try:
            return yaml.SafeLoader.yaml_constructors[tag](self.loader, node)
        except (ValueError, yaml.YAMLError):
            self._refuse(pos, loc, f"cannot read {event.value[:40]!r} as {_tag(tag)[2:]}")
            return None

    def _start(self, event: yaml.SequenceStartEvent | yaml.MappingStartEvent, pos: Pos) -> None:
        self._count(1, pos)
        as_key = self._awaiting_key()
        loc = self.here() if as_key else self._child_loc()
        if len(self.stack) >= MAX_DEPTH:
            raise self._fatal(
                pos,
                loc,
                f"nested more than {MAX_DEPTH} levels deep; a scenario needs only a few levels: "
                "check for unbalanced brackets or runaway indentation",
            )
        is_map = isinstance(event, yaml.MappingStartEvent)
        if event.tag not in (None, "!", _MAP_TAG if is_map else _SEQ_TAG):
            self._refuse(pos, loc, f"tag '{_tag(event.tag)}' is not supported; remove it")
        self.stack.append(_Frame(loc, {} if is_map else [], pos, event.anchor, as_key))

    def _end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.value, frame.size)
        if frame.as_key:
            parent = self.stack[-1]
            self._refuse(
                frame.start,
                parent.loc,
                "keys must be plain names, not lists or mappings; check the indentation",
            )
            parent.skip_value = True
            parent.size += frame.size
            return
        self._add(frame.value, frame.size, frame.start)

    def _alias(self, anchor: str, pos: Pos) -> None:
        if anchor not in self.anchors:
            self._count(1, pos)
            self._refuse(
                pos,
                self._child_loc(),
                f"alias '*{anchor}' refers to no anchor '&{anchor}' written before it; "
                "define the anchor first",
            )
            value, size = None, 1
        else:
            value, size = self.anchors[anchor]
            self._count(size, pos, repeated=True)
        if self._awaiting_key():
            if isinstance(value, str):
                self._key(value, pos)
            else:
                self._refuse(pos, self.here(), "keys must be plain names, not lists or mappings")
                self.stack[-1].skip_value = True
            return
        self._add(value, size, pos)


_SYNTAX_HINTS: list[tuple[str, str]] = [
    (
        "found character '\\t' that cannot start any token",
        "a tab character here; YAML indents with spaces only: replace the tab with spaces",
    ),
    (
        "mapping values are not allowed here",
        "unexpected ':' here; if the value contains ': ', put it in quotes, otherwise check the indentation",
    ),
    (
        "expected <block end>",
        "the indentation here does not match the lines above; align this line with the keys or items "
        "it belongs with",
    ),
    (
        "could not find expected ':'",
        "a line without ':' inside a mapping; write 'key: value' (the line above may be the one to fix)",
    ),
    (
        "expected '<document start>'",
        "text after a '...' end-of-document line; delete the '...' line",
    ),
]


def _syntax_error(exc: yaml.MarkedYAMLError, composer: _Composer) -> FileError:
    problem = _one_line(exc.problem or "invalid YAML")
    context = _one_line(exc.context or "")
    pos = _pos(exc.problem_mark or exc.context_mark)
    message = f"YAML syntax error: {problem}"
    for fragment, hint in _SYNTAX_HINTS:
        if fragment in problem:
            message = f"YAML syntax error: {hint}"
            break
    else:
        found = re.fullmatch(r"found character '(.)' that cannot start any token", problem)
        if found:
            message = f"YAML syntax error: '{found.group(1)}' cannot start a value; put the value in quotes"
        elif exc.context_mark is not None and exc.problem_mark is not None:
            line, column = _pos(exc.problem_mark)
            opened = _pos(exc.context_mark)
            if context.startswith("while parsing a flow"):
                bracket, closer = ("[", "]") if "sequence" in context else ("{", "}")
                pos = opened
                message = (
                    f"YAML syntax error: this '{bracket}' is not closed ({problem} at line {line}, column "
                    f"{column}); add the missing '{closer}' or ','"
                )
            elif context.startswith("while scanning a quoted scalar") and "end of stream" in problem:
                pos = opened
                message = "YAML syntax error: this quoted text is never closed; add the closing quote"
            elif context:
                message = f"YAML syntax error: {problem} ({context} at line {opened[0]})"
    return FileError(composer.name, message, pos[0], pos[1], _dotted(_field_on_line(composer, pos)))


def _field_on_line(composer: _Composer, pos: Pos) -> Loc:
    """The field a syntax error at ``pos`` belongs to.

    The parser reads ahead, so the event stream may stop short of the error's line; the text up to the
    error then tells which key or item that line starts (the innermost written before the error on the
    same line), and otherwise the open collection does.
    """
    lines = composer.text.split("\n")
    if pos[0] > len(lines):
        return composer.here()
    before = "\n".join([*lines[: pos[0] - 1], lines[pos[0] - 1][: pos[1] - 1]])
    try:
        partial = _Composer(before, composer.name)
    except yaml.YAMLError:
        return composer.here()
    with contextlib.suppress(yaml.YAMLError, LoadError):
        partial.run()
    on_line = [(at, len(loc), loc) for loc, at in partial.marks.items() if at[0] == pos[0] and at <= pos]
    if not on_line:
        return composer.here()
    return max(on_line, key=lambda found: (found[0], found[1]))[2]


def _parse_yaml(text: str, name: str) -> _Document:
    """Plain values and positions of a one-document YAML text whose top level is a mapping."""
    _check_printable(text, name)
    composer = _Composer(text, name)
    try:
        composer.run()
    except yaml.MarkedYAMLError as exc:
        syntax = exc
        if composer.fast:
            slow = _Composer(text, name, fast=False)
            try:
                slow.run()
            except yaml.MarkedYAMLError as slow_exc:
                composer, syntax = slow, slow_exc
            except LoadError as error:
                # libyaml refuses some hostile input (deep nesting) before our own limits see it.
                raise error from None
            except yaml.YAMLError:
                pass
        earlier = [error for _, error in composer.errors]
        raise LoadError([*earlier, _syntax_error(syntax, composer)]) from None
    except yaml.YAMLError as exc:
        raise LoadError([FileError(name, f"YAML error: {_one_line(str(exc))}", 1, 1, TOP)]) from None
    root, pos = composer.root, composer.root_pos
    if pos is None or root is None:
        raise LoadError([FileError(name, f"is empty; {_EMPTY_HINT['scenario']}", 1, 1, TOP)])
    if not isinstance(root, dict):
        kind = "a list" if isinstance(root, list) else f"the single value {_describe(root)}"
        raise LoadError(
            [error for _, error in composer.errors]
            + [
                FileError(
                    name,
                    f"the top level is {kind}; a scenario is a mapping of keys such as "
                    "'name', 'roles' and 'tasks' (see 'cycleplan init')",
                    pos[0],
                    pos[1],
                    TOP,
                )
            ]
        )
    return _Document(root, composer.marks, composer.errors, composer.written)


def _locate(text: str, line: int, column: int) -> Loc:
    """The field being written at (line, column): where a problem found before parsing belongs."""
    try:
        composer = _Composer(text, "")
    except yaml.YAMLError:
        return ()
    with contextlib.suppress(_Stop, yaml.YAMLError, LoadError):
        composer.run(until=(line, column))
    return composer.here()


def _yaml_marks(text: str) -> dict[Loc, Pos]:
    """Positions of keys and items in a JSON text (JSON is YAML), as far as it can be read."""
    try:
        composer = _Composer(text, "")
    except yaml.YAMLError:
        return {}
    with contextlib.suppress(yaml.YAMLError, LoadError):
        composer.run()
    return composer.marks


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


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


def _message(error: Any, model: type[BaseModel], document: _Document, loc: Loc) -> str:
    kind = error["type"]
    value = error.get("input")
    data = document.data
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = _allowed_keys(model, data, loc)
        hint = did_you_mean(key, allowed)
        listing = f"; allowed here: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown key '{_describe(key)[1:-1]}'{hint}{listing}"
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
        return f"{_PLAIN[kind]}, got {_describe(value)}{hint}"
    if kind == "value_error":
        return _one_line(str(error["ctx"]["error"]))
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
        bound = error["ctx"][key]
        if isinstance(bound, float) and bound.is_integer() and abs(bound) < 1e15:
            bound = int(bound)
        return f"{words} {bound}, got {_describe(value)}"
    text = _one_line(str(error["msg"]))
    return text[:1].lower() + text[1:]


def _under(loc: Loc, refused: list[Loc]) -> bool:
    return any(loc[: len(prefix)] == prefix for prefix in refused)


def _validate(
    model: type[BaseModel],
    document: _Document,
    name: str,
    marks: Callable[[], dict[Loc, Pos]] | None = None,
) -> Any:
    """``model`` validated from the document, or LoadError with every problem (the document's own
    refusals included). ``marks`` computes positions lazily when the document has none."""
    errors = [error for _, error in document.errors]
    refused = [loc for loc, _ in document.errors]
    try:
        result = model.model_validate(document.data)
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
        for error in found:
            cause = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
            base = _file_loc(document.data, tuple(error["loc"]), error["type"] == "missing")
            if _under(base, refused):
                continue  # already reported where the file was read
            if error["type"] == "missing" and base in meant:
                continue
            if isinstance(cause, ScenarioProblems):
                for problem in cause.problems:
                    loc = (*base, *problem.path)
                    line, column = _position(positions, loc)
                    errors.append(FileError(name, _one_line(problem.message), line, column, _dotted(loc)))
                continue
            line, column = _position(positions, base)
            message = _message(error, model, document, base)
            errors.append(FileError(name, message, line, column, _dotted(base)))
    if errors:
        errors.sort(key=lambda e: (e.line or 0, e.column or 0))
        raise LoadError(errors)
    return result


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
    return parse_scenario(_read_text(path, "scenario"), str(path))


class _Unreadable:
    """A JSON number or constant refused before conversion; pydantic then reports it at its field."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text if len(self.text) <= 20 else f"a number with {len(self.text):,} digits"


def _json_int(text: str) -> int | _Unreadable:
    return int(text) if len(text) <= MAX_NUMBER_DIGITS else _Unreadable(text)


def _json_depth_position(text: str) -> Pos:
    """Where a JSON text first nests deeper than :data:`MAX_DEPTH`."""
    depth = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        symbol = token.group()
        if symbol in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _line_column(text, token.start())
        elif symbol in "]}":
            depth -= 1
    return (1, 1)


def load_plan(path: str | Path) -> Plan:
    """A Plan written by ``cycleplan plan -o plan.json``, or :class:`LoadError` naming every problem."""
    path = Path(path)
    text = _read_text(path, "plan")
    name = str(path)
    try:
        data = json.loads(text, parse_int=_json_int, parse_constant=_Unreadable)
    except json.JSONDecodeError as exc:
        where = _dotted(_locate(text, exc.lineno, exc.colno))
        problem = exc.msg[:1].lower() + exc.msg[1:]
        raise LoadError(
            [FileError(name, f"JSON syntax error: {problem}", exc.lineno, exc.colno, where)]
        ) from None
    except RecursionError:
        line, column = _json_depth_position(text)
        raise LoadError(
            [FileError(name, f"nested more than {MAX_DEPTH} levels deep; is this a plan?", line, column, TOP)]
        ) from None
    except ValueError as exc:
        raise LoadError([FileError(name, f"cannot read: {_one_line(str(exc))}", 1, 1, TOP)]) from None
    plan: Plan = _validate(Plan, _Document(data), name, marks=lambda: _yaml_marks(text))
    return plan


def load_scenario_or_plan(path: str | Path) -> Scenario | Plan:
    """A Plan for ``*.json`` files, else a Scenario: what ``simulate`` and ``execute`` accept."""
    path = Path(path)
    return load_plan(path) if path.suffix.lower() == ".json" else load_scenario(path)
