"""Rewriting a user's scenario file: the values a command changes, and nothing else.

ruamel.yaml's round trip reads a file into mappings and lists that remember their comments, key order,
quoting, flow or block style, block scalars (``spec: |``) and anchors. :func:`put` changes a value in
place (a mapping is merged into the one already there, so its style and comments stay), :func:`own`
gives one entry its own copy of what an alias shares, and :meth:`ScenarioText.text` writes the file
again with the indentation the file itself uses: lines whose values did not change come out as they
went in. Its limits: one indentation for the whole file (the first nested mapping and block list set
it), and a flow collection written over several lines comes out on one.

Reading a scenario to validate it stays :mod:`cycleplan.core.reading`'s work (positions, limits, refusals);
text given here has been read there first, and what comes out is read there again. Nothing here prints
or validates.
"""

from __future__ import annotations

import copy
import io
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import LiteralScalarString

WIDTH = 4096
"""Lines are never folded: a long line the user wrote stays one line."""


@dataclass(frozen=True)
class Layout:
    """How a file indents: mappings by ``mapping`` columns, block list items by ``sequence`` columns with
    their dash ``offset`` columns in (ruamel.yaml's terms). The default is the one cycleplan writes."""

    mapping: int = 2
    sequence: int = 4
    offset: int = 2


def _float(representer: RoundTripRepresenter, value: float) -> Any:
    """A new float as every YAML reader takes it for one: ``1.0e-05``, not ``1e-05`` (a string to a
    YAML 1.1 reader such as PyYAML, which the loader is)."""
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent[0] not in "+-":
            exponent = "+" + exponent
        text = f"{mantissa}e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _yaml(layout: Layout) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = WIDTH
    yaml.indent(mapping=layout.mapping, sequence=layout.sequence, offset=layout.offset)
    yaml.representer.add_representer(float, _float)
    return yaml


def _block(value: Any) -> bool:
    flow = getattr(value, "fa", None)
    return isinstance(value, CommentedMap | CommentedSeq) and flow is not None and not flow.flow_style()


def _layout(root: Any) -> Layout:
    """The indentation of the first nested block mapping and block list in ``root``, as read."""
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    stack: list[Any] = [root]
    while stack and (mapping is None or sequence is None):
        parent = stack.pop()
        if not _block(parent):
            continue
        children = parent.values() if isinstance(parent, CommentedMap) else parent
        for child in children:
            if not _block(child):
                continue
            stack.append(child)
            if not isinstance(parent, CommentedMap):
                continue
            if isinstance(child, CommentedMap) and mapping is None and child.lc.col > parent.lc.col:
                mapping = child.lc.col - parent.lc.col
            elif isinstance(child, CommentedSeq) and sequence is None and len(child) > 0:
                item_col = child.lc.item(0)[1]
                dash_col = child.lc.col
                if item_col > dash_col >= parent.lc.col:
                    sequence = (item_col - parent.lc.col, dash_col - parent.lc.col)
    default = Layout()
    return Layout(
        mapping if mapping is not None else default.mapping,
        sequence[0] if sequence is not None else default.sequence,
        sequence[1] if sequence is not None else default.offset,
    )


class RewriteError(ValueError):
    """The round trip cannot read a text (one that :mod:`cycleplan.core.reading` read)."""


class ScenarioText:
    """A scenario file read for rewriting: change :attr:`data` (with :func:`put` and :func:`own`), then
    write :meth:`text`. Raises :class:`RewriteError` for text the round trip cannot read."""

    def __init__(self, text: str) -> None:
        try:
            self.data: Any = _yaml(Layout()).load(text)
        except YAMLError as exc:
            raise RewriteError(" ".join(str(exc).split())) from None
        self.layout = _layout(self.data)

    def text(self) -> str:
        """The file again, with the changes made to :attr:`data`."""
        out = io.StringIO()
        _yaml(self.layout).dump(self.data, out)
        return out.getvalue()


def new_text(data: Any) -> str:
    """Plain values (a scenario's ``model_dump``) as a new YAML file in cycleplan's layout, text of
    several lines as block scalars (``spec: |``)."""
    out = io.StringIO()
    _yaml(Layout()).dump(_blocks(data), out)
    return out.getvalue()


def _blocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _blocks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_blocks(item) for item in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def put(target: MutableMapping[Any, Any], key: Any, value: Any) -> None:
    """``target[key] = value``, changing no more than that: a mapping is merged into the mapping already
    at ``key`` (its keys updated where they are, new ones added at the end, the ones ``value`` lacks
    removed), so that a read file keeps the style and comments of what did not change; a value equal to
    the one there is left as written (``3.0`` stays ``3.0``)."""
    current = target.get(key)
    if isinstance(value, dict) and isinstance(current, dict):
        for stale in [name for name in current if name not in value]:
            del current[stale]
        for name, item in value.items():
            put(current, name, item)
    elif isinstance(value, dict) and _flat(value) and _flow_siblings(target):
        target[key] = _flow(value)
    elif key not in target or current != value or isinstance(current, bool) != isinstance(value, bool):
        target[key] = value


def _flow_siblings(target: MutableMapping[Any, Any]) -> bool:
    """Whether the mappings ``target`` holds are all written in flow style (``{median: 1, p90: 2}``): a
    new short one there is written so too."""
    siblings = [value for value in target.values() if isinstance(value, CommentedMap)]
    return bool(siblings) and all(value.fa.flow_style() for value in siblings)


def _flat(value: dict[Any, Any]) -> bool:
    """Whether ``value`` is a short mapping of plain values, one a flow style suits."""
    return bool(value) and not any(isinstance(item, dict | list) for item in value.values())


def _flow(value: dict[Any, Any]) -> CommentedMap:
    """``value`` as a mapping written in flow style."""
    mapping = CommentedMap(value)
    mapping.fa.set_flow_style()
    return mapping


def own(target: MutableMapping[Any, Any], key: Any) -> Any:
    """The value at ``key``, made ``target``'s own: a copy, so that changing it changes no other place
    that shares it through a YAML alias (``backend: *six-minute-cycles``); what it copies keeps its
    comments and style."""
    value = copy.deepcopy(target[key])
    target[key] = value
    return value
