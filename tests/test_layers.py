"""The house has layers, and each imports only those below it: read from the source's imports.

From the bottom: the vocabulary (``cycleplan.core``), the run store (``cycleplan.store``), the planner,
the simulator and the executor (``planner/``, ``sim/``, ``executor/``; the simulator and the executor
never import each other), the workflows (``cycleplan.workflows``), presentation (``cycleplan.present``)
and the command line (``cycleplan.cli``). Imports made only for type checking count too: a layer that
names a type from above it depends on it. rich and plotly are imported only in presentation, typer only
in the command line, SimPy only in the simulator.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TOP_LEVEL = {"planner": "cycleplan.planner", "sim": "cycleplan.sim", "executor": "cycleplan.executor"}
"""Folders at the repository's top level and the packages they install as."""

LAYERS: dict[str, int] = {
    "cycleplan.core": 0,
    "cycleplan.store": 1,
    "cycleplan.planner": 2,
    "cycleplan.sim": 3,
    "cycleplan.executor": 3,
    "cycleplan.workflows": 4,
    "cycleplan.present": 5,
    "cycleplan.cli": 6,
}
"""Each part's height: a module imports parts of its own height or lower only (the planner sits below
the simulator and the executor, which both plan; the two of them share a height and may not import each
other)."""

APART = {("cycleplan.sim", "cycleplan.executor"), ("cycleplan.executor", "cycleplan.sim")}

ONLY_IN = {
    "rich": "cycleplan.present",
    "plotly": "cycleplan.present",
    "typer": "cycleplan.cli",
    "simpy": "cycleplan.sim",
}
"""Libraries imported by one part only."""


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, dotted as installed."""
    target: str
    """What it imports, dotted (relative imports resolved)."""
    line: int
    path: Path


def _dotted(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] in TOP_LEVEL:
        parts = [*TOP_LEVEL[parts[0]].split("."), *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> list[Path]:
    folders = [ROOT / "cycleplan", *(ROOT / name for name in TOP_LEVEL)]
    return sorted(path for folder in folders for path in folder.rglob("*.py"))


def _imports(path: Path, text: str | None = None) -> list[Import]:
    module = _dotted(path)
    text = path.read_text(encoding="utf-8") if text is None else text
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, path) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base == "cycleplan" or node.module is None:
                # ``from cycleplan import x`` and ``from . import x`` name submodules.
                found += [Import(module, f"{base}.{alias.name}", node.lineno, path) for alias in node.names]
            else:
                found.append(Import(module, base, node.lineno, path))
    return found


def _part(dotted: str) -> str | None:
    for part in sorted(LAYERS, key=len, reverse=True):
        if dotted == part or dotted.startswith(part + "."):
            return part
    return None


ALL = [found for path in _sources() for found in _imports(path)]


def _where(found: Import) -> str:
    return f"{found.path.relative_to(ROOT)}:{found.line} imports {found.target}"


def test_every_module_belongs_to_a_layer() -> None:
    loose = sorted(
        {
            str(path.relative_to(ROOT))
            for path in _sources()
            if _part(_dotted(path)) is None and _dotted(path) != "cycleplan"
        }
    )
    assert loose == [], "modules outside every layer: " + ", ".join(loose)


def test_each_layer_imports_only_those_below_it() -> None:
    upward = []
    for found in ALL:
        here, there = _part(found.module), _part(found.target)
        if here is None or there is None or here == there:
            continue
        if LAYERS[there] > LAYERS[here] or (here, there) in APART:
            upward.append(_where(found))
    assert upward == [], "imports against the layers:\n" + "\n".join(upward)


def test_the_package_root_imports_no_part() -> None:
    # ``import cycleplan`` is the version and nothing more: every part can be imported alone.
    root = [found for found in ALL if found.module == "cycleplan" and found.target.startswith("cycleplan")]
    assert root == []


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_a_library_is_imported_by_its_layer_only(library: str) -> None:
    outside = [
        _where(found)
        for found in ALL
        if (found.target == library or found.target.startswith(library + "."))
        and _part(found.module) != ONLY_IN[library]
    ]
    assert outside == [], f"{library} outside {ONLY_IN[library]}:\n" + "\n".join(outside)


def test_the_reader_sees_upward_imports() -> None:
    # The checks above are only as good as the reading of imports: a plain upward import, a relative one
    # and a ``from cycleplan import`` one are all seen, and placed in their layers.
    text = "\n".join(
        [
            "import cycleplan.cli",
            "from ..store import runs",
            "from cycleplan import present",
            "from . import draws",
        ]
    )
    found = _imports(ROOT / "cycleplan" / "core" / "example.py", text)
    assert {f.module for f in found} == {"cycleplan.core.example"}
    assert [f.target for f in found] == [
        "cycleplan.cli",
        "cycleplan.store",
        "cycleplan.present",
        "cycleplan.core.draws",
    ]
    assert [_part(f.target) for f in found] == [
        "cycleplan.cli",
        "cycleplan.store",
        "cycleplan.present",
        "cycleplan.core",
    ]
