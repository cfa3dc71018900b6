"""Reading input files into plain values that remember where each key and item was written.

A scenario (YAML) or plan (JSON) file becomes UTF-8 text, then plain Python values with the line and column
of every key and item, or :class:`LoadError` with a :class:`FileError` that names the file, line, column
and field: a file that is missing, unreadable, too large, not UTF-8, empty or not valid YAML or JSON.

YAML is read event by event from PyYAML's parser (never its recursive composer), and plain Python values
are built here, iteratively, so that every key and item keeps its position and hostile input costs
little: files are capped in size, nesting in depth, alias expansion in values, numbers in digits, and a
second YAML document, a duplicate key, a tag or a merge key is refused with its position. Names stay as
written (``on`` is a string). Validating the values is :mod:`cycleplan.core.loading`'s work; nothing here
prints or exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

MAX_FILE_BYTES = 2_000_000
"""Largest scenario file read, in bytes."""
MAX_PLAN_BYTES = 64_000_000
"""Largest plan file read, in bytes: a plan repeats its scenario and adds a row per task, a sync point per
event and a lane per agent, so the largest scenarios (10,000 tasks) make plans of several MB; ``plan -o``
refuses to write one this limit would refuse to read."""
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


def one_line(text: str) -> str:
    return " ".join(text.split())


def dotted(loc: Loc) -> str:
    parts = [str(part) if len(str(part)) <= 60 else str(part)[:57] + "..." for part in loc]
    if len(parts) > 10:
        parts = [*parts[:8], "..."]
    return ".".join(parts) or TOP


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------------------------
# Reading


_EMPTY_HINT = {
    "scenario": "a scenario needs 'tasks' or a 'template' (start from 'cycleplan init NAME')",
    "plan": "a plan is the JSON that 'cycleplan plan FILE -o plan.json' writes",
}


READ_CHUNK = 1 << 20


def read_bounded(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``stream`` (one more than allowed tells a file too large), without
    setting aside ``limit`` bytes first as ``read(limit + 1)`` does: as many as the file holds, then (if it
    grew meanwhile) the rest a chunk at a time."""
    try:
        size = os.fstat(stream.fileno()).st_size
    except (OSError, ValueError):
        size = 0
    expected = min(size, limit)
    data = stream.read(expected + 1)
    if len(data) <= expected:
        return data  # it ended where its size said (or before)
    chunks, total = [data], len(data)
    while total <= limit:
        chunk = stream.read(min(READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _open(path: Path, *, fifo: bool) -> BinaryIO:
    """``path`` opened for reading; a pipe (``/dev/stdin`` in ``import ... | cycleplan plan /dev/stdin``)
    without waiting for a writer: one that has none reads as empty instead of hanging."""
    if not fifo:
        return path.open("rb")
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def _read_bytes(path: Path, what: str) -> bytes:
    name = str(path)
    limit = MAX_PLAN_BYTES if what == "plan" else MAX_FILE_BYTES
    mode = 0
    with contextlib.suppress(OSError):  # what cannot be stat'ed is reported by the open below
        mode = path.stat().st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise LoadError([FileError(name, f"is a device or a socket, not a file; give a {what} file")])
    try:
        with _open(path, fifo=stat.S_ISFIFO(mode)) as stream:
            data = read_bounded(stream, limit)
    except (FileNotFoundError, NotADirectoryError):
        raise LoadError([FileError(name, "no such file; check the path")]) from None
    except IsADirectoryError:
        raise LoadError(
            [FileError(name, f"is a directory; give the path of a {what} file inside it")]
        ) from None
    except PermissionError:
        raise LoadError([FileError(name, "cannot be read: permission denied")]) from None
    except OSError as exc:
        raise LoadError([FileError(name, f"cannot be read: {one_line(exc.strerror or str(exc))}")]) from None
    if len(data) > limit:
        raise LoadError(
            [
                FileError(
                    name,
                    f"is larger than {limit:,} bytes, the limit for a {what} file; "
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
                    dotted(where),
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
                    dotted(where),
                )
            ]
        )


def read_text(path: Path, what: str) -> str:
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
class Document:
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


class Composer:
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
        return FileError(self.name, one_line(message), pos[0], pos[1], dotted(loc))

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


def _syntax_error(exc: yaml.MarkedYAMLError, composer: Composer) -> FileError:
    problem = one_line(exc.problem or "invalid YAML")
    context = one_line(exc.context or "")
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
    return FileError(composer.name, message, pos[0], pos[1], dotted(_field_on_line(composer, pos)))


def _field_on_line(composer: Composer, pos: Pos) -> Loc:
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
        partial = Composer(before, composer.name)
    except yaml.YAMLError:
        return composer.here()
    with contextlib.suppress(yaml.YAMLError, LoadError):
        partial.run()
    on_line = [(at, len(loc), loc) for loc, at in partial.marks.items() if at[0] == pos[0] and at <= pos]
    if not on_line:
        return composer.here()
    return max(on_line, key=lambda found: (found[0], found[1]))[2]


def parse_yaml(text: str, name: str) -> Document:
    """Plain values and positions of a one-document YAML text whose top level is a mapping."""
    _check_printable(text, name)
    composer = Composer(text, name)
    try:
        composer.run()
    except yaml.MarkedYAMLError as exc:
        syntax = exc
        if composer.fast:
            slow = Composer(text, name, fast=False)
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
        raise LoadError([FileError(name, f"YAML error: {one_line(str(exc))}", 1, 1, TOP)]) from None
    root, pos = composer.root, composer.root_pos
    if pos is None or root is None:
        raise LoadError([FileError(name, f"is empty; {_EMPTY_HINT['scenario']}", 1, 1, TOP)])
    if not isinstance(root, dict):
        kind = "a list" if isinstance(root, list) else f"the single value {describe(root)}"
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
    return Document(root, composer.marks, composer.errors, composer.written)


def _locate(text: str, line: int, column: int) -> Loc:
    """The field being written at (line, column): where a problem found before parsing belongs."""
    try:
        composer = Composer(text, "")
    except yaml.YAMLError:
        return ()
    with contextlib.suppress(_Stop, yaml.YAMLError, LoadError):
        composer.run(until=(line, column))
    return composer.here()


def yaml_marks(text: str) -> dict[Loc, Pos]:
    """Positions of keys and items in a JSON text (JSON is YAML), as far as it can be read."""
    try:
        composer = Composer(text, "")
    except yaml.YAMLError:
        return {}
    with contextlib.suppress(yaml.YAMLError, LoadError):
        composer.run()
    return composer.marks


# --------------------------------------------------------------------------------------------------
# Parsing JSON


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


def parse_json(text: str, name: str) -> Any:
    """Plain values of a JSON text; a number too long to convert, or a constant such as ``NaN``, is kept as
    written for validation to refuse at its field."""
    try:
        data = json.loads(text, parse_int=_json_int, parse_constant=_Unreadable)
    except json.JSONDecodeError as exc:
        where = dotted(_locate(text, exc.lineno, exc.colno))
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
        raise LoadError([FileError(name, f"cannot read: {one_line(str(exc))}", 1, 1, TOP)]) from None
    return data
