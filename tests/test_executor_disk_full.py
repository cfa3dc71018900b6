"""A run on a disk that fills up: every stage refuses in one line (exit status 2), never a traceback, and
a run cut short by a full disk finishes with ``--resume`` once there is room again.

The disk is a real one that fills: a small tmpfs mounted in a user namespace (``unshare -rm``), so SQLite
and the executor meet ``ENOSPC`` exactly as on a full laptop disk. Sizes are chosen so that the store
cannot be opened, the run cannot be recorded, and an event cannot be recorded, in turn.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import cycleplan_executable

from cycleplan.store import RunStore

SCENARIO = """\
roles: {a: {lanes: 1}}
tasks:
  - {id: t1, role: a, cycles: 2, command: ["true"]}
  - {id: t2, role: a, cycles: 2, after: [t1], command: ["true"]}
"""


def _mountable(folder: Path) -> bool:
    probe = f"mount -t tmpfs -o size=64k tmpfs {folder}"
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    folder = tmp_path / "disk"
    folder.mkdir()
    if not _mountable(folder):
        pytest.skip("cannot mount a small tmpfs here (unshare -rm, mount -t tmpfs)")
    return folder


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    command = ["unshare", "-rm", "sh", "-ec", script]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("size", "refusal"),
    [
        ("40k", "cannot open the run store: database or disk is full"),
        ("120k", "cannot record run"),
        ("200k", "cannot record an event: database or disk is full; once that is fixed, continue with"),
    ],
)
def test_a_full_disk_is_refused_in_one_line_at_every_stage(
    tmp_path: Path, disk: Path, size: str, refusal: str
) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    cli = cycleplan_executable()
    done = _in_namespace(
        f"mount -t tmpfs -o size={size} tmpfs {disk}\n"
        f"{cli} execute {tmp_path / 's.yaml'} --agent command --store {disk}/runs.db "
        f"|| echo $? > {tmp_path}/rc"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rc").read_text().strip() == "2"
    lines = done.stderr.strip().splitlines()
    assert refusal in lines[-1], done.stderr
    assert "Traceback" not in done.stderr and "Error:" not in done.stderr


def test_a_run_cut_short_by_a_full_disk_resumes_once_there_is_room(tmp_path: Path, disk: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    cli = cycleplan_executable()
    store = disk / "runs.db"
    done = _in_namespace(
        f"mount -t tmpfs -o size=200k tmpfs {disk}\n"
        f"{cli} execute {tmp_path / 's.yaml'} --agent command --store {store} 2> {tmp_path}/first.err "
        f"&& exit 9 || true\n"
        f"mount -o remount,size=4m {disk}\n"
        f"run=$(sed -n 's/.*--resume \\([0-9a-f-]*\\).*/\\1/p' {tmp_path}/first.err | tail -1)\n"
        f"{cli} execute --resume $run --store {store} > {tmp_path}/second.out\n"
        f"cp {store} {tmp_path}/kept.db\n"
    )
    assert done.returncode == 0, (done.stderr, (tmp_path / "first.err").read_text())
    with RunStore(tmp_path / "kept.db", read_only=True) as runs:
        (record,) = runs.runs()
        assert record.status == "complete"
        trace = runs.trace(record.run_id)
    cycles = [(e.target_id, e.metadata["cycle"]) for e in trace if e.metadata["action"] == "cycle_completed"]
    assert sorted(cycles) == [("t1", 1), ("t1", 2), ("t2", 1), ("t2", 2)]
