"""Agent processes: each started in a session (process group) of its own, the whole group stopped on cancel.

:func:`run_in_group` runs an argument list with ``start_new_session=True`` and its output sent straight to
files (never held in memory). When the coroutine is cancelled (a timeout, a lost race, Ctrl-C) the group
gets SIGTERM, then SIGKILL after a grace period, so that nothing an agent spawned outlives it; processes
that left the group (``setsid``, a daemon's double fork) are found by the ``CYCLEPLAN_*`` marks of the
cycle their environment inherited (:func:`marked_processes`, Linux's ``/proc``) and stopped with it. Each live
group is noted in the run store through :class:`ProcessRegistry`; a resumed run calls
:func:`kill_orphans` to stop the groups a killed executor left behind. An executor whose run was taken
over (its lease lost) stops only its own groups, never processes found by their marks. POSIX only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cycleplan.executor.secrets import redact_file

if TYPE_CHECKING:
    from cycleplan.store.runs import RunStore

GRACE_S = 2.0
"""Seconds a cancelled group gets between SIGTERM and SIGKILL."""


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell it from a later reuse of its id."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


class ProcessRegistry:
    """The process groups a run has alive, mirrored in the run store."""

    def __init__(self, store: RunStore | None = None, run_id: str = "") -> None:
        self._store = store
        self._run_id = run_id
        self.alive: dict[int, str] = {}

    def add(self, pgid: int, task: str) -> None:
        """Note a group just started; the store's :class:`~cycleplan.store.runs.LeaseLostError` once
        another executor owns the run (the group is then not noted anywhere)."""
        if self._store is not None:
            self._store.add_process(self._run_id, pgid, start_ticks(pgid), task)
        self.alive[pgid] = task

    @property
    def fenced(self) -> bool:
        """Whether another executor has taken the run over: the marks of this executor's attempts may
        now be on the new owner's agents too, so nothing is stopped by its marks."""
        return self._store is not None and self._store.lease_lost(self._run_id) is not None

    def remove(self, pgid: int) -> None:
        self.alive.pop(pgid, None)
        if self._store is not None:
            self._store.remove_process(self._run_id, pgid)


MARKS = ("CYCLEPLAN_RUN_ID", "CYCLEPLAN_TASK", "CYCLEPLAN_CYCLE", "CYCLEPLAN_ATTEMPT")
"""The variables that tell which attempt at which cycle a process was started for."""


def marked_processes(env: Mapping[str, str], names: Sequence[str] = MARKS) -> list[int]:
    """Processes (other than this one) whose environment holds the same values of ``names`` (all of
    :data:`MARKS`: every process started for one attempt; ``CYCLEPLAN_RUN_ID`` alone: for a run) as
    ``env``, whatever session or parent they have now. Empty without ``/proc`` or without the marks."""
    marks = [f"{name}={env[name]}".encode() for name in names if name in env]
    if not names or len(marks) < len(names):
        return []
    found = []
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            variables = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if all(mark in variables for mark in marks):
            found.append(int(entry.name))
    return found


def kill_marked(env: Mapping[str, str], names: Sequence[str] = MARKS) -> None:
    """SIGKILL every process :func:`marked_processes` finds for ``env``."""
    for pid in marked_processes(env, names):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_orphans(store: RunStore, run_id: str) -> list[str]:
    """SIGKILL the groups a previous executor of ``run_id`` left running; the tasks they belonged to."""
    stopped: list[str] = []
    for pgid, ticks, task in store.processes(run_id):
        alive_ticks = start_ticks(pgid)
        if alive_ticks is not None and (ticks is None or ticks == alive_ticks):
            kill_group(pgid)
            stopped.append(task)
        store.remove_process(run_id, pgid)
    kill_marked({"CYCLEPLAN_RUN_ID": run_id}, ["CYCLEPLAN_RUN_ID"])  # those that had left their groups
    return stopped


async def run_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    registry: ProcessRegistry,
    task: str,
    grace_s: float = GRACE_S,
) -> int:
    """Run ``argv`` in its own process group with output to files; its exit status (negative: signal).

    Raises :class:`FileNotFoundError` / :class:`PermissionError` when the program cannot be started.
    """
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            registry.add(process.pid, task)
        except BaseException:
            # Started after the run was taken over (or not noted for another reason): it must not run.
            await _stop(process, grace_s)
            raise
        try:
            return await process.wait()
        except BaseException:
            await _stop(process, grace_s)
            if not registry.fenced:
                kill_marked(env)
            raise
        finally:
            registry.remove(process.pid)
            # An agent may print what its environment holds; the files it leaves must not keep secrets.
            redact_file(stdout)
            redact_file(stderr)


async def _stop(process: asyncio.subprocess.Process, grace_s: float) -> None:
    kill_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(process.wait()), grace_s)
    # The leader may be gone while children it spawned in the group still run.
    kill_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(process.wait()), grace_s)
