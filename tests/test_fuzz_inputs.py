"""Every kind of input cycleplan reads, mutated at random: it loads, or it is refused with the reader's
own error (which the CLI prints as one line per problem and exit status 2); never another exception, and
never more than :data:`MEMORY_BOUND` bytes of Python allocations while it is read.

The inputs are real files, line-mutated (lines dropped, cut, copied or blanked, hostile tokens inserted):
a scenario (YAML, with a template), a plan (JSON, as ``plan -o`` writes it), a Claude Code transcript, a
ONE cycle state file and a PSPLIB instance.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ROOT

from cycleplan.core.loading import load_plan, load_scenario, load_scenario_or_plan
from cycleplan.core.reading import LoadError
from cycleplan.planner import plan
from cycleplan.workflows.importers import TraceImportError, import_claude_code, import_one_state
from cycleplan.workflows.psplib import PsplibError, psplib_to_scenario

DATA = ROOT / "tests" / "data"

MEMORY_BOUND = 64 * 1024 * 1024
"""Peak Python allocations while one mutated input (each is under 100 KB) is read."""

MUTATIONS = [
    "-3",
    "0",
    "99999999999999999999",
    "x",
    "\u0000",
    "\ud800",
    "\x1b]52;c;SGVsbG8=\x07",
    "[" * 2000,
    "{" * 500,
    "{}",
    "null",
    "1e999",
    "*a",
    "&a [*a, *a, *a]",
    ": :",
    '"',
]


def _mutated(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "cut", "token", "copy", "blank"]))
        if action == "drop":
            del lines[index]
        elif action == "cut":
            lines[index] = lines[index][: data.draw(st.integers(0, max(len(lines[index]) - 1, 0)))]
        elif action == "token":
            at = data.draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:at] + data.draw(st.sampled_from(MUTATIONS)) + lines[index][at:]
        elif action == "copy":
            lines.insert(index, lines[data.draw(st.integers(0, len(lines) - 1))])
        else:
            lines[index] = ""
        if not lines:
            lines = [""]
    return "\n".join(lines)


def _plan_json() -> str:
    return plan(load_scenario(ROOT / "scenarios" / "course-crud.yaml")).model_dump_json(indent=1)


SOURCES = {
    "scenario": lambda: (ROOT / "scenarios" / "agent-session.yaml").read_text(encoding="utf-8"),
    "template scenario": lambda: (ROOT / "scenarios" / "full-feature.yaml").read_text(encoding="utf-8"),
    "plan": _plan_json,
    "transcript": lambda: (DATA / "claude-code" / "short.jsonl").read_text(encoding="utf-8"),
    "state": lambda: (DATA / "one-state" / "cycle-405b946017.json").read_text(encoding="utf-8"),
    "psplib": lambda: (DATA / "psplib" / "j301_1.sm").read_text(encoding="latin-1"),
}
SUFFIXES = {"plan": ".json", "transcript": ".jsonl", "state": ".json", "psplib": ".sm"}
TEXTS: dict[str, str] = {}


def _read(kind: str, path: Path) -> None:
    """Read ``path`` as ``kind`` the way the command that takes it does."""
    if kind in ("scenario", "template scenario"):
        load_scenario_or_plan(path)
    elif kind == "plan":
        load_plan(path)
    elif kind == "transcript":
        import_claude_code(path)
    elif kind == "state":
        import_one_state(path)
    else:
        psplib_to_scenario(path)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_mutated_inputs_load_or_are_refused_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(SOURCES)))
    if kind not in TEXTS:
        TEXTS[kind] = SOURCES[kind]()
    target = tmp_path / f"mutated{SUFFIXES.get(kind, '.yaml')}"
    target.write_bytes(_mutated(TEXTS[kind], data).encode("utf-8", "surrogatepass"))
    tracemalloc.start()
    try:
        _read(kind, target)
    except (LoadError, TraceImportError, PsplibError):
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= MEMORY_BOUND, f"{kind}: {peak / 2**20:.0f} MiB while reading"
