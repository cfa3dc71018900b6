"""The wheel: planner/, sim/ and executor/ install inside cycleplan, never as top-level modules."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from support import ROOT


def _source_packages() -> list[str]:
    """Every package in the source tree, as its path inside the installed wheel."""
    found = []
    for top, installed in (
        ("cycleplan", "cycleplan"),
        ("planner", "cycleplan/planner"),
        ("sim", "cycleplan/sim"),
        ("executor", "cycleplan/executor"),
    ):
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / top)
            found.append(installed if relative == Path() else f"{installed}/{relative.as_posix()}")
    return sorted(found)


def test_wheel_installs_everything_under_cycleplan(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("cycleplan-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"cycleplan", next(t for t in tops if t.endswith(".dist-info"))}
    for module in ("planner", "sim", "executor"):
        assert f"cycleplan/{module}/__init__.py" in names
    for package in _source_packages():
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel (pyproject packages)"
    assert "cycleplan/py.typed" in names
    assert "cycleplan/planner/list_schedule.py" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import cycleplan.planner, cycleplan.sim, cycleplan.executor\n"
        "from cycleplan.core.loading import parse_scenario\n"
        "print(cycleplan.planner.__file__)\n"
        "print(cycleplan.planner.plan(parse_scenario('template: one-100')).wall_cycles)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    location, cycles = done.stdout.split()
    assert Path(location).is_relative_to(target)
    assert float(cycles) == 65
