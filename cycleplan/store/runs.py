"""The run store: one SQLite file (WAL mode) holding every executed run, its events, and who may write it.

Tables: ``runs`` (one row per run: its plan, options and status), ``events`` (the seed's event fields,
plus the run id, a sequence number and an idempotency key), ``processes`` (process groups a run has
started and not yet reaped, so that a resumed run can stop the orphans of a killed executor) and
``leases`` (which executor owns a run: owner id, epoch, expiry, and the pid and host that took it).

Every write commits before it returns, so nothing that follows an event can be seen by anyone while the
event itself is lost: with WAL and ``synchronous=NORMAL`` a committed transaction survives the death of
the process (``kill -9``); only a power cut may roll back the last ones.

One writer per run, enforced here (fencing). An executor owns a run through its lease, taken in a
transaction (:meth:`RunStore.create_run` with ``lease=True``, :meth:`RunStore.take_lease`) and renewed
while it works (:meth:`RunStore.renew_lease`; it lasts :data:`LEASE_S` seconds). Every write it makes
(events, status and summary, process rows) checks, in the same transaction, that the lease still names
it with the epoch it took: a writer whose epoch is stale gets :class:`LeaseLostError` and records nothing
more. A newcomer gets :class:`LeaseHeldError` until the lease has expired, or at once when the holder's pid
is provably dead (same host, boot and pid namespace, and that pid gone or reused). A run with a lease
row cannot be written by a connection that holds none; runs never leased (imports) can.

Each event has a key unique within its run (``cycle_completed:backend:3:1``): appending a key again with
the same result stores nothing (which makes a resumed trace hold every event once); with a different
result it is an error (:class:`DuplicateEventError`), never dropped. ``seq`` numbers a run's events 1, 2,
... without gaps: reading a trace (:meth:`RunStore.trace`) refuses a gap or an undecodable row
(:class:`TraceError`), and :meth:`RunStore.check` lists every such problem and every cycle not accounted
for. A store that cannot be written (a read-only file, folder or mount) opens read-only (SQLite's
``mode=ro``) for reading; writing to it is a :class:`StoreError`.

A run is named by a reference (:meth:`RunStore.resolve`): its id, any unique beginning of it, or
``latest`` (the newest run; ``latest~N`` the Nth before it). :meth:`RunStore.remove_run` deletes a run's
rows, refusing one an executor holds unless forced.

This module knows SQLite, the Event and Plan models and the executor's action names; it knows nothing of
plans being run, backends or the terminal.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import math
import os
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cycleplan.core.model import Event, Plan
from cycleplan.core.wording import counted

DEFAULT_STORE = Path(".cycleplan") / "runs.db"
"""Where runs are kept unless ``--store`` says otherwise (relative to the working directory)."""

SCHEMA_VERSION = 2
"""1: runs, events, processes; 2: leases."""

LEASE_S = 30.0
"""How long a run's lease lasts unless renewed (seconds); the executor renews it every sixth of that.
``CYCLEPLAN_LEASE_S`` overrides it (0.5 to 3600), for tests and for stores on slow shared disks."""

LEASE_ENV = "CYCLEPLAN_LEASE_S"

LATEST = "latest"
"""The reference to the newest run; ``latest~N`` names the Nth run before it."""

_LATEST = re.compile(r"latest(?:~(\d+))?")

_TIMING = frozenset(
    {"started_at", "duration_ms", "sync_wait_ms", "sync_ms", "blocked_ms", "rate_limit_wait_ms"}
)
"""Metadata that measures when and how long, not what happened: an event recorded again may differ there."""

_CYCLE_COMPLETED = "cycle_completed"
_TASK_STARTED = "task_started"
_TERMINAL = frozenset({"task_complete", "task_failed", "task_cancelled"})
_FINAL_STATUSES = frozenset({"complete", "failed", "timeout"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_ms REAL NOT NULL,
    updated_ms REAL NOT NULL,
    status TEXT NOT NULL,
    agent TEXT NOT NULL,
    source TEXT NOT NULL,
    scenario TEXT NOT NULL,
    options TEXT NOT NULL,
    plan TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    target_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    timestamp REAL NOT NULL,
    action TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, key)
);
CREATE TABLE IF NOT EXISTS processes (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    pgid INTEGER NOT NULL,
    start_ticks INTEGER,
    task TEXT NOT NULL,
    PRIMARY KEY (run_id, pgid)
);
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    owner TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_ms REAL NOT NULL,
    renewed_ms REAL NOT NULL,
    pid INTEGER NOT NULL,
    pid_start INTEGER,
    host TEXT NOT NULL,
    machine TEXT NOT NULL
);
"""


class StoreError(Exception):
    """The store cannot be opened or written, or does not hold what was asked for (an unknown run id)."""


class RunRefError(StoreError):
    """A run reference names no run of the store (``candidates``: the nearest ids, or the newest), or
    begins several (``candidates``: all of them)."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class RunLiveError(StoreError):
    """An executor holds the run right now (its lease is live): it may not be removed."""


class LeaseError(StoreError):
    """A write or a take-over the run's lease does not allow."""


class LeaseHeldError(LeaseError):
    """Another executor owns the run and its lease has not expired: a newcomer may not take it over."""


class LeaseLostError(LeaseError):
    """This writer's lease is stale (another executor took the run over): it must stop writing at once."""


class DuplicateEventError(StoreError):
    """An event's key is already stored with a different result."""


class TraceError(StoreError):
    """A run's stored events cannot be read back as a trace: a gap in ``seq`` or an undecodable row."""


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``: what was run, how, and how it ended (``status``)."""

    run_id: str
    created_ms: float
    updated_ms: float
    status: str
    """running, complete, failed, timeout, interrupted (Ctrl-C) or cancelled."""
    agent: str
    source: str
    scenario: str
    options: dict[str, Any]
    plan_json: str
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored: the Event plus its run-wide sequence number and idempotency key."""

    seq: int
    key: str
    event: Event


@dataclass(frozen=True)
class Lease:
    """One row of ``leases``: who owns a run, since which take-over (``epoch``), and until when."""

    run_id: str
    owner: str
    """A fresh id each time an executor takes the run."""
    epoch: int
    """1 for the executor that created the run, one more at each take-over."""
    expires_ms: float
    """Epoch milliseconds; 0 once released (the run ended, or its executor stopped cleanly)."""
    renewed_ms: float
    pid: int
    pid_start: int | None
    """The holder's start time in clock ticks since boot (Linux), to tell it from a reuse of its pid."""
    host: str
    machine: str
    """Host name, boot id and pid namespace: where ``pid`` means the holder."""

    @property
    def released(self) -> bool:
        return self.expires_ms <= 0

    def holder(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class TraceCheck:
    """What :meth:`RunStore.check` found in one run's stored trace (``problems`` empty: sound)."""

    run_id: str
    events: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _now_ms() -> float:
    return round(time.time() * 1000, 3)


def lease_seconds() -> float:
    """:data:`LEASE_S`, or ``CYCLEPLAN_LEASE_S`` when it holds a number from 0.5 to 3600."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            return LEASE_S
        if math.isfinite(value) and 0.5 <= value <= 3600:
            return value
    return LEASE_S


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _machine() -> str:
    """Where a pid means one process: this host, this boot, this pid namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return "|".join((socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), namespace))


def _stat(pid: int) -> tuple[str, int | None] | None:
    """(state, start ticks) of ``pid`` from ``/proc``; None when no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ("?", None)
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return (fields[0] if fields else "?"), None


def _start_ticks(pid: int) -> int | None:
    found = _stat(pid)
    return None if found is None else found[1]


def provably_dead(lease: Lease) -> bool:
    """Whether the lease's holder is certainly gone: it ran here (host, boot, pid namespace) and its pid
    is no process now, a zombie, or a later process that reused the pid. Anything else may be alive."""
    if lease.machine != _machine():
        return False
    if Path("/proc/self/stat").exists():
        found = _stat(lease.pid)
        if found is None:
            return True
        state, ticks = found
        if state in ("Z", "X"):
            return True
        return lease.pid_start is not None and ticks is not None and ticks != lease.pid_start
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _folder_writable(path: Path) -> bool:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        pass
    return os.access(path.parent, os.W_OK)


def _read_only_reason(path: Path) -> str | None:
    """Why ``path`` (an existing store) cannot be written here, or None when it can."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    if not os.access(path.parent, os.W_OK):
        return "its folder is read-only"
    return None


class RunStore:
    """A connection to one run store file. Use from one thread (the executor's event loop).

    ``read_only``: True opens with SQLite's ``mode=ro`` (for commands that only read); False insists on
    writing (the executor), a :class:`StoreError` when the store cannot be written; None (the default)
    writes when it can and reads only when the file, its folder or its mount is read-only.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, *, read_only: bool | None = None) -> None:
        self.path = Path(path)
        self._leases: dict[str, Lease] = {}
        self._lost: dict[str, str] = {}
        self._next_seq: dict[str, int] = {}
        """The seq this connection writes next, per run (counted from the store when it takes a run)."""
        exists = self.path.exists()
        reason = _read_only_reason(self.path) if exists else None
        if read_only is None:
            read_only = reason is not None
        if read_only is False and reason is not None:
            raise StoreError(
                f"{self.path}: the run store cannot be written ({reason}): runs, export and compare can "
                "read it; to execute, use a writable store (--store PATH)"
            )
        self.read_only = read_only
        self._read_only_reason = reason or "it was opened to read only"
        try:
            if read_only:
                if not exists:
                    raise StoreError(f"{self.path}: no run store here (pass --store PATH)")
                self._db = self._connect_read_only()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(_SCHEMA)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
                    (str(SCHEMA_VERSION), SCHEMA_VERSION),
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the run store: {exc}") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the run store: {exc.strerror or exc}") from None

    def _connect_read_only(self) -> sqlite3.Connection:
        """``mode=ro``. Where SQLite cannot share the write-ahead log (no ``-shm`` file, and none can be
        made in a read-only folder or mount) nobody can be writing either: read the file as immutable."""
        uri = self.path.absolute().as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            if _folder_writable(self.path):
                raise
        db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, timeout=30.0)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db

    @property
    def runs_folder(self) -> Path:
        """Where each run keeps its artifacts and log: ``<store folder>/runs/<run id>/``."""
        return self.path.parent / "runs"

    def run_folder(self, run_id: str) -> Path:
        return self.runs_folder / run_id

    def close(self) -> None:
        for run_id in list(self._leases):
            with contextlib.suppress(StoreError, sqlite3.Error):
                self.release_lease(run_id)
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------
    # runs

    def create_run(
        self,
        run_id: str,
        *,
        agent: str,
        source: str,
        scenario: str,
        options: dict[str, Any],
        plan_json: str,
        lease: bool = False,
    ) -> Lease | None:
        """Record a new run; with ``lease``, owned by this connection from the same transaction on."""
        now = _now_ms()
        taken = self._new_lease(run_id, 1, now) if lease else None
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO runs (run_id, created_ms, updated_ms, status, agent, source, scenario,"
                    " options, plan) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                    (run_id, now, now, agent, source, scenario, json.dumps(options), plan_json),
                )
                if taken is not None:
                    self._write_lease(taken)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record run {run_id}: {exc}") from None
        if taken is not None:
            self._leases[run_id] = taken
        return taken

    def set_status(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        try:
            with self._transaction():
                self._check_lease(run_id)
                self._db.execute(
                    "UPDATE runs SET status = ?, updated_ms = ?, summary = COALESCE(?, summary)"
                    " WHERE run_id = ?",
                    (status, _now_ms(), None if summary is None else json.dumps(summary), run_id),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record run {run_id}'s status: {exc}") from None

    def set_options(self, run_id: str, options: dict[str, Any]) -> None:
        """Replace the run's stored options (a resumed run given new guards keeps them for the next)."""
        try:
            with self._transaction():
                self._check_lease(run_id)
                self._db.execute(
                    "UPDATE runs SET options = ?, updated_ms = ? WHERE run_id = ?",
                    (json.dumps(options), _now_ms(), run_id),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record run {run_id}'s options: {exc}") from None

    def run(self, run_id: str) -> RunRecord:
        row = self._db.execute(
            "SELECT run_id, created_ms, updated_ms, status, agent, source, scenario, options, plan, summary "
            "FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise self._unknown(run_id, self.run_ids())
        return _run_record(row)

    def run_ids(self) -> list[str]:
        """Every run's id, newest first (by creation time; ids alike in time in reverse order)."""
        try:
            return [
                str(found)
                for (found,) in self._db.execute(
                    "SELECT run_id FROM runs ORDER BY created_ms DESC, run_id DESC"
                )
            ]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: the run store cannot be read: {exc}") from None

    def resolve(self, ref: str) -> str:
        """The id of the run ``ref`` names: an id, ``latest`` (the newest run), ``latest~N`` (the Nth run
        before the newest), or any beginning of an id that no other id shares. An id wins over the rest.
        :class:`RunRefError` when ``ref`` names no run (with the nearest ids) or begins several (with
        each of them)."""
        ids = self.run_ids()
        if ref in ids:
            return ref
        latest = _LATEST.fullmatch(ref)
        if latest is not None:
            back = int(latest.group(1) or 0)
            if back < len(ids):
                return ids[back]
            if not ids:
                raise RunRefError(f"no run '{ref}' in {self.path}: the store holds no runs yet", [])
            raise RunRefError(
                f"no run '{ref}' in {self.path}: it holds {len(ids)} run(s), "
                f"{LATEST} to {LATEST}~{len(ids) - 1}",
                ids[:5],
            )
        begun = [found for found in ids if ref and found.startswith(ref)]
        if len(begun) == 1:
            return begun[0]
        if begun:
            shown = ", ".join(begun[:10]) + (f", and {len(begun) - 10} more" if len(begun) > 10 else "")
            raise RunRefError(
                f"run '{ref}' is ambiguous in {self.path}: {len(begun)} runs begin so ({shown}); "
                "give more of the id",
                begun,
            )
        raise self._unknown(ref, ids)

    def _unknown(self, ref: str, ids: list[str]) -> RunRefError:
        """The error for a reference that names no run: the ids nearest to it, else the newest."""
        if not ids:
            return RunRefError(f"no run '{ref}' in {self.path}; the store holds no runs yet", [])
        nearest = difflib.get_close_matches(ref, ids, n=3, cutoff=0.6)
        if nearest:
            return RunRefError(f"no run '{ref}' in {self.path}; nearest: {', '.join(nearest)}", nearest)
        return RunRefError(f"no run '{ref}' in {self.path}; recent runs: {', '.join(ids[:5])}", ids[:5])

    def remove_run(self, run_id: str, *, force: bool = False) -> None:
        """Delete run ``run_id``: its events, its process notes, its lease and its row, in one transaction
        (its folder is the caller's to remove). :class:`RunLiveError` while an executor holds the run,
        unless ``force``: then that executor's next write finds its lease gone and it stops, recording
        nothing more. :class:`RunRefError` for an unknown run."""
        try:
            with self._transaction():
                if self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                    raise self._unknown(run_id, self.run_ids())
                if not force and is_live(self, run_id):
                    lease = self.lease(run_id)
                    holder = f" ({lease.holder()})" if lease is not None else ""
                    raise RunLiveError(f"run {run_id} is being executed{holder}: it cannot be removed now")
                self._delete_rows(run_id)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot remove run {run_id}: {exc}") from None

    def _delete_rows(self, run_id: str) -> None:
        """Delete every row of ``run_id`` (inside the caller's transaction)."""
        for table in ("events", "processes", "leases", "runs"):
            self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        self._leases.pop(run_id, None)
        self._next_seq.pop(run_id, None)

    def take_in(self, staged: str | Path, *, replacing: str | None = None) -> None:
        """Copy every run and event of the store at ``staged`` into this one, in one transaction: all of
        them or, on any failure, none. How an importer adds a run it built in a scratch store. With
        ``replacing``, that run (an imported one: no executor holds it) is deleted in the same
        transaction, so a reader sees either the old run or the new one, never both or neither."""
        self._require_writable()
        try:
            self._db.execute("ATTACH DATABASE ? AS staged", (str(staged),))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{staged}: cannot open the staged run store: {exc}") from None
        try:
            with self._transaction():
                if replacing is not None:
                    self._delete_rows(replacing)
                for table in ("runs", "events"):
                    names = ", ".join(
                        row[1] for row in self._db.execute(f"PRAGMA staged.table_info({table})")
                    )
                    self._db.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM staged.{table}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot write the imported run: {exc}") from None
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("DETACH DATABASE staged")

    def runs(self) -> list[RunRecord]:
        """Every run, newest first; :class:`StoreError` when a run's row cannot be read."""
        records, damaged = self.survey(events=False)
        if damaged:
            raise StoreError(next(iter(damaged.values())))
        return records

    def survey(self, *, events: bool = True) -> tuple[list[RunRecord], dict[str, str]]:
        """Every run whose row can be read, newest first, and one line for each run that is damaged: its
        row cannot be read or, with ``events``, its stored events have a gap in ``seq`` or a row whose
        metadata is not the JSON object of its action (checked in SQL, fast enough for any store;
        :meth:`check` looks at one run in full)."""
        try:
            rows = self._db.execute(
                "SELECT run_id, created_ms, updated_ms, status, agent, source, scenario, options, plan,"
                " summary FROM runs ORDER BY created_ms DESC, run_id DESC"
            ).fetchall()
            counts = (
                self._db.execute(
                    "SELECT run_id, COUNT(*), MIN(seq), MAX(seq), SUM(CASE WHEN NOT json_valid(metadata)"
                    " THEN 1 WHEN json_type(metadata) != 'object' THEN 1"
                    " WHEN json_extract(metadata, '$.action') IS NOT action THEN 1 ELSE 0 END)"
                    " FROM events GROUP BY run_id"
                ).fetchall()
                if events
                else []
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: the run store cannot be read: {exc}") from None
        records: list[RunRecord] = []
        damaged: dict[str, str] = {}
        for row in rows:
            try:
                records.append(_run_record(row))
            except StoreError as exc:
                damaged[str(row[0])] = str(exc)
        for run_id, count, first, last, undecodable in counts:
            what = []
            if first < 1:
                what.append(f"events numbered from {first}, not 1")
            elif last != count:
                what.append(f"{last - count} event(s) missing (seq runs to {last}, {count} stored)")
            if undecodable:
                what.append(f"{undecodable} event(s) cannot be decoded")
            if what and str(run_id) not in damaged:
                damaged[str(run_id)] = f"run {run_id}: {', '.join(what)}; {_see_check(str(run_id))}"
        return records, damaged

    # ----------------------------------------------------------------------------------------------
    # leases: one writer per run

    def lease(self, run_id: str) -> Lease | None:
        """The run's lease as stored (None: never leased, or a store from before leases)."""
        try:
            row = self._db.execute(
                "SELECT run_id, owner, epoch, expires_ms, renewed_ms, pid, pid_start, host, machine "
                "FROM leases WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        except sqlite3.OperationalError:  # no leases table: a store written before them, opened read-only
            return None
        return None if row is None else Lease(*row)

    def lease_live(self, lease: Lease) -> bool:
        """Whether ``lease`` keeps newcomers out: not released, not expired, its holder not provably dead."""
        return not lease.released and lease.expires_ms > _now_ms() and not provably_dead(lease)

    def holds_lease(self, run_id: str) -> bool:
        return run_id in self._leases and run_id not in self._lost

    def lease_lost(self, run_id: str) -> str | None:
        """Why this connection lost the run's lease (its :class:`LeaseLostError` message), or None."""
        return self._lost.get(run_id)

    @property
    def lease_renewal_s(self) -> float:
        """How often an owner renews its leases (seconds)."""
        return lease_seconds() / 6.0

    def take_lease(self, run_id: str) -> Lease:
        """Own ``run_id`` from now on; :class:`LeaseHeldError` while another executor's lease is live."""
        now = _now_ms()
        try:
            with self._transaction():
                current = self.lease(run_id)
                if current is not None and self.lease_live(current):
                    left = max((current.expires_ms - now) / 1000.0, 0.0)
                    ago = max(now - current.renewed_ms, 0.0) / 1000.0
                    raise LeaseHeldError(
                        f"run {run_id} is being executed by another executor ({current.holder()}, lease "
                        f"epoch {current.epoch}, renewed {ago:.0f} s ago, expires in {left:.0f} s unless "
                        "renewed): let it finish, or stop it and then resume"
                    )
                taken = self._new_lease(run_id, 1 if current is None else current.epoch + 1, now)
                self._write_lease(taken)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot take run {run_id}'s lease: {exc}") from None
        self._leases[run_id] = taken
        self._lost.pop(run_id, None)
        self._next_seq.pop(run_id, None)  # the executor that held the run before may have written since
        return taken

    def renew_lease(self, run_id: str) -> None:
        """Push the lease's expiry :data:`LEASE_S` ahead; :class:`LeaseLostError` once it is not ours."""
        held = self._leases.get(run_id)
        if held is None:
            raise LeaseError(f"run {run_id}: this connection holds no lease to renew")
        now = _now_ms()
        try:
            with self._transaction():
                self._check_lease(run_id)
                self._db.execute(
                    "UPDATE leases SET expires_ms = ?, renewed_ms = ? WHERE run_id = ? AND owner = ?"
                    " AND epoch = ?",
                    (now + lease_seconds() * 1000.0, now, run_id, held.owner, held.epoch),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot renew run {run_id}'s lease: {exc}") from None

    def release_lease(self, run_id: str) -> None:
        """Give the run up (a newcomer may take it at once); nothing is written once the lease is lost."""
        held = self._leases.pop(run_id, None)
        if held is None or run_id in self._lost:
            return
        try:
            with self._transaction():
                self._db.execute(
                    "UPDATE leases SET expires_ms = 0, renewed_ms = ? WHERE run_id = ? AND owner = ?"
                    " AND epoch = ?",
                    (_now_ms(), run_id, held.owner, held.epoch),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot release run {run_id}'s lease: {exc}") from None

    def _new_lease(self, run_id: str, epoch: int, now: float) -> Lease:
        pid = os.getpid()
        return Lease(
            run_id=run_id,
            owner=uuid.uuid4().hex,
            epoch=epoch,
            expires_ms=now + lease_seconds() * 1000.0,
            renewed_ms=now,
            pid=pid,
            pid_start=_start_ticks(pid),
            host=socket.gethostname(),
            machine=_machine(),
        )

    def _write_lease(self, lease: Lease) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO leases (run_id, owner, epoch, expires_ms, renewed_ms, pid, pid_start,"
            " host, machine) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                lease.run_id,
                lease.owner,
                lease.epoch,
                lease.expires_ms,
                lease.renewed_ms,
                lease.pid,
                lease.pid_start,
                lease.host,
                lease.machine,
            ),
        )

    def _check_lease(self, run_id: str) -> None:
        """Inside a write's transaction: may this connection write ``run_id``?"""
        lost = self._lost.get(run_id)
        if lost is not None:
            raise LeaseLostError(lost)
        held = self._leases.get(run_id)
        stored = self.lease(run_id)
        if held is None:
            if stored is not None:
                raise LeaseError(
                    f"run {run_id} is owned through its lease ({stored.holder()}, epoch {stored.epoch}); "
                    "this writer holds none"
                )
            return
        if stored is None or stored.owner != held.owner or stored.epoch != held.epoch:
            now_held = "its lease is gone" if stored is None else f"{stored.holder()}, epoch {stored.epoch}"
            message = (
                f"run {run_id}: another executor took this run over ({now_held}) after this one's lease "
                f"(epoch {held.epoch}) expired; this executor stopped and recorded nothing more"
            )
            self._lost[run_id] = message
            raise LeaseLostError(message)

    # ----------------------------------------------------------------------------------------------
    # events

    def append(self, run_id: str, key: str, event: Event) -> StoredEvent | None:
        """Commit ``event`` under ``key`` as the run's next event, the lease checked by the same statement
        that writes it. None, and nothing stored, when ``key`` is already there with the same result;
        :class:`DuplicateEventError` when it is there with another; :class:`LeaseLostError` when another
        executor has taken the run over."""
        metadata = json.dumps(event.metadata, separators=(",", ":"), default=str)
        lost = self._lost.get(run_id)
        if lost is not None:
            raise LeaseLostError(lost)
        self._require_writable()
        held = self._leases.get(run_id)
        owner: tuple[str | int, ...]
        if held is None:
            guard, owner = "NOT EXISTS (SELECT 1 FROM leases WHERE run_id = ?)", (run_id,)
        else:
            guard = "EXISTS (SELECT 1 FROM leases WHERE run_id = ? AND owner = ? AND epoch = ?)"
            owner = (run_id, held.owner, held.epoch)
        seq = self._next_seq.get(run_id)
        try:
            if seq is None:
                seq = self._max_seq(run_id) + 1
            # One statement is one transaction: the lease is checked where the row is written. The
            # next seq is this writer's own count (the lease makes it the only writer); a row already
            # numbered so, or nothing written at all, is settled below, where it is worth asking why.
            cursor = self._db.execute(
                f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE {guard}"
                " ON CONFLICT (run_id, key) DO NOTHING",
                (*_event_row(run_id, seq, key, event, metadata), *owner),
            )
            if cursor.rowcount == 1:
                self._next_seq[run_id] = seq + 1
                return StoredEvent(seq, key, event)
        except sqlite3.IntegrityError:
            pass  # that seq is taken: another writer (never one with the lease) added to the run
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record an event: {exc}") from None
        self._next_seq.pop(run_id, None)
        try:
            with self._transaction():
                self._check_lease(run_id)
                existing = self._db.execute(
                    "SELECT seq, actor_id, target_id, action, metadata FROM events"
                    " WHERE run_id = ? AND key = ?",
                    (run_id, key),
                ).fetchone()
                if existing is not None:
                    difference = _difference(existing[1:], event, metadata)
                    if difference is None:
                        return None
                    raise DuplicateEventError(
                        f"run {run_id}: event {key} is already stored (seq {existing[0]}) with a different "
                        f"result ({difference}); the store keeps the first and refuses the second"
                    )
                seq = self._max_seq(run_id) + 1
                self._insert(run_id, seq, key, event, metadata)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record an event: {exc}") from None
        self._next_seq[run_id] = seq + 1  # only once committed: a count ahead of the store leaves a gap
        return StoredEvent(seq, key, event)

    def _insert(self, run_id: str, seq: int, key: str, event: Event, metadata: str) -> sqlite3.Cursor:
        return self._db.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _event_row(run_id, seq, key, event, metadata),
        )

    def events(self, run_id: str) -> list[StoredEvent]:
        """The run's events in sequence order."""
        return list(self.iter_events(run_id))

    def iter_events(self, run_id: str, *, after: int = 0) -> Iterator[StoredEvent]:
        """The run's events in sequence order (those after ``seq`` ``after``: a reader that follows a run
        reads only what is new); :class:`TraceError` at the first gap in ``seq`` or row that cannot be
        decoded (``cycleplan runs --check RUN`` lists them all)."""
        expected = after + 1
        for row in self._rows(run_id, after):
            seq = row[0]
            if seq != expected:
                raise TraceError(f"run {run_id}: {_gap(expected, seq)}; {_see_check(run_id)}")
            decoded = _decode(row)
            if isinstance(decoded, str):
                raise TraceError(f"run {run_id}: {decoded}; {_see_check(run_id)}")
            expected = seq + 1
            yield decoded

    def trace(self, run_id: str) -> list[Event]:
        """The run's trace: its events in order, as Event records."""
        return [stored.event for stored in self.iter_events(run_id)]

    def check(self, run_id: str) -> TraceCheck:
        """Verify run ``run_id``'s stored trace: ``seq`` contiguous from 1, every row decodable, and every
        cycle accounted for (a task's successful cycles in order, each started task's cycles completed or
        the task ended, and the run's status as its trace says). :class:`StoreError` for an unknown run."""
        problems: list[str] = []
        row = self._db.execute(
            "SELECT run_id, created_ms, updated_ms, status, agent, source, scenario, options, plan, summary "
            "FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            self.run(run_id)  # names the run that is not there, and some that are
        record: RunRecord | None = None
        try:
            record = _run_record(row)
        except StoreError as exc:
            problems.append(str(exc))
        cycles: dict[str, int] = {}
        if record is not None:
            try:
                cycles = {
                    task.id: task.cycles
                    for task in Plan.model_validate_json(record.plan_json).scenario.all_tasks()
                }
            except (ValidationError, ValueError):
                problems.append("the run's stored plan cannot be read; cycle counts come from task_started")
        events: list[Event] = []
        expected = 1
        count = 0
        for row in self._rows(run_id):
            count += 1
            seq = row[0]
            if seq != expected:
                problems.append(_gap(expected, seq))
            expected = seq + 1
            decoded = _decode(row)
            if isinstance(decoded, str):
                problems.append(decoded)
            else:
                events.append(decoded.event)
        problems += _accounting(events, cycles, record.status if record is not None else None)
        return TraceCheck(run_id, count, problems)

    def _rows(self, run_id: str, after: int = 0) -> Iterator[tuple[Any, ...]]:
        try:
            cursor = self._db.execute(
                "SELECT seq, key, type, actor_id, target_id, group_id, timestamp, action, metadata"
                " FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after),
            )
            yield from cursor
        except sqlite3.DatabaseError as exc:
            raise TraceError(f"run {run_id}: its events cannot be read: {exc}") from None

    def _max_seq(self, run_id: str) -> int:
        row = self._db.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ----------------------------------------------------------------------------------------------
    # process groups started by a run (so a resumed run can stop a killed executor's orphans)

    def add_process(self, run_id: str, pgid: int, start_ticks: int | None, task: str) -> None:
        """Note a live process group; :class:`LeaseLostError` (nothing noted) once another executor owns
        the run: the group was started too late, and its starter stops it."""
        try:
            with self._transaction():
                self._check_lease(run_id)
                self._db.execute(
                    "INSERT OR REPLACE INTO processes (run_id, pgid, start_ticks, task) VALUES (?, ?, ?, ?)",
                    (run_id, pgid, start_ticks, task),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot note run {run_id}'s process group {pgid}: {exc}") from None

    def remove_process(self, run_id: str, pgid: int) -> None:
        """Forget a group that ended; nothing (and no error) once the lease is lost: the list is the new
        owner's now."""
        with contextlib.suppress(sqlite3.Error), self._transaction():
            if self._may_write(run_id):
                self._db.execute("DELETE FROM processes WHERE run_id = ? AND pgid = ?", (run_id, pgid))

    def processes(self, run_id: str) -> list[tuple[int, int | None, str]]:
        rows = self._db.execute(
            "SELECT pgid, start_ticks, task FROM processes WHERE run_id = ?", (run_id,)
        ).fetchall()
        return [(int(pgid), None if ticks is None else int(ticks), str(task)) for pgid, ticks, task in rows]

    def _may_write(self, run_id: str) -> bool:
        try:
            self._check_lease(run_id)
        except LeaseError:
            return False
        return True

    # ----------------------------------------------------------------------------------------------

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path}: the run store cannot be written here ({self._read_only_reason})")

    def _transaction(self) -> _Transaction:
        self._require_writable()
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            # Left open, the transaction would make every later BEGIN fail.
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise


_EVENT_COLUMNS = "run_id, seq, key, type, actor_id, target_id, group_id, timestamp, action, metadata"


def _event_row(run_id: str, seq: int, key: str, event: Event, metadata: str) -> tuple[Any, ...]:
    """An event's values in the order of :data:`_EVENT_COLUMNS`."""
    return (
        run_id,
        seq,
        key,
        event.type,
        event.actor_id,
        event.target_id,
        event.group_id,
        event.timestamp,
        event.action,
        metadata,
    )


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    run_id, created, updated, status, agent, source, scenario, options, plan, summary = row
    try:
        decoded_options = json.loads(options)
        decoded_summary = None if summary is None else json.loads(summary)
        if not isinstance(decoded_options, dict) or not (
            decoded_summary is None or isinstance(decoded_summary, dict)
        ):
            raise ValueError("not a JSON object")
        return RunRecord(
            run_id=str(run_id),
            created_ms=float(created),
            updated_ms=float(updated),
            status=str(status),
            agent=str(agent),
            source=str(source),
            scenario=str(scenario),
            options=decoded_options,
            plan_json=str(plan),
            summary=decoded_summary,
        )
    except (TypeError, ValueError) as exc:
        raise StoreError(f"run {run_id}: its row in the run store cannot be read ({_short(exc)})") from None


def _decode(row: tuple[Any, ...]) -> StoredEvent | str:
    """The stored event of ``row``, or what makes it undecodable (one line)."""
    seq, key, type_, actor, target, group, timestamp, action, metadata = row
    where = f"event {seq} ({key})"
    try:
        meta = json.loads(metadata)
    except (TypeError, ValueError) as exc:
        return f"{where} cannot be decoded: its metadata is not JSON ({_short(exc)})"
    try:
        event = Event.model_validate(
            {
                "type": type_,
                "actorId": actor,
                "targetId": target,
                "groupId": group,
                "timestamp": timestamp,
                "metadata": meta,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "event"
        return f"{where} cannot be decoded: {field}: {first['msg']}"
    if not isinstance(event.timestamp, float | int) or not math.isfinite(event.timestamp):
        return f"{where} cannot be decoded: its timestamp is not a finite number"
    if event.action != action:
        return f"{where} cannot be decoded: its action column says {action!r}, its metadata {event.action!r}"
    if event.action == _CYCLE_COMPLETED:
        for name in ("cycle", "attempt"):
            value = event.metadata.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return (
                    f"{where} cannot be decoded: cycle_completed needs a whole {name} from 1, got {value!r}"
                )
    return StoredEvent(int(seq), str(key), event)


def _difference(stored: tuple[Any, ...], event: Event, metadata: str) -> str | None:
    """How ``event`` differs from the stored row of the same key in what it says happened (its timing
    aside); None when it says the same."""
    actor, target, action, stored_metadata = stored
    try:
        before = json.loads(stored_metadata)
    except (TypeError, ValueError):
        return "the stored row cannot be decoded"
    after = json.loads(metadata)
    if (actor, target, action) != (event.actor_id, event.target_id, event.action):
        return (
            f"stored {action} by {actor} on {target}, "
            f"now {event.action} by {event.actor_id} on {event.target_id}"
        )
    if not isinstance(before, dict):
        return "the stored metadata is not an object"
    changed = sorted(
        name
        for name in set(before) | set(after)
        if name not in _TIMING and before.get(name) != after.get(name)
    )
    if not changed:
        return None
    shown = ", ".join(
        f"{name}: {_short(before.get(name))} -> {_short(after.get(name))}" for name in changed[:3]
    )
    return shown + (f", and {len(changed) - 3} more" if len(changed) > 3 else "")


def _gap(expected: int, seq: int) -> str:
    if seq < expected:
        return f"an event is numbered {seq} where {expected} was next"
    missing = f"event {expected}" if seq == expected + 1 else f"events {expected} to {seq - 1}"
    return (
        f"{missing} {'is' if seq == expected + 1 else 'are'} missing (seq jumps from {expected - 1} to {seq})"
    )


def _see_check(run_id: str) -> str:
    return f"the stored trace is damaged (`cycleplan runs --check {run_id}` lists what is wrong)"


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _accounting(events: list[Event], cycles: dict[str, int], status: str | None) -> list[str]:
    """Every cycle accounted for: one line per task (or run) whose events do not add up."""
    problems: list[str] = []
    if events and events[0].action != "run_started":
        problems.append(f"the trace opens with {events[0].action}, not run_started")
    over = [event for event in events if event.action == "run_complete"]
    started: set[str] = set()
    ended: dict[str, str] = {}
    done: dict[str, int] = {}
    for event in events:
        task, action = event.target_id, event.action
        if action == _TASK_STARTED:
            started.add(task)
            declared = event.metadata.get("cycles")
            if task not in cycles and isinstance(declared, int) and not isinstance(declared, bool):
                cycles[task] = declared
        elif action == _CYCLE_COMPLETED:
            cycle = int(event.metadata["cycle"])
            if task not in started:
                problems.append(f"{task}: cycle {cycle} recorded before task_started")
            if task in ended:
                problems.append(f"{task}: cycle {cycle} recorded after {ended[task]}")
            if event.metadata.get("failed"):
                continue
            so_far = done.get(task, 0)
            if cycle == so_far + 1:
                done[task] = cycle
            elif cycle <= so_far:
                problems.append(f"{task}: cycle {cycle} succeeded twice")
            else:
                problems.append(
                    f"{task}: cycle {cycle} succeeded after only {so_far} of the cycles before it"
                )
                done[task] = cycle
        elif action in _TERMINAL:
            if task in ended:
                problems.append(f"{task}: {action} after it had ended with {ended[task]}")
                continue
            ended[task] = action
            total = cycles.get(task)
            if action == "task_complete" and total is not None and done.get(task, 0) != total:
                after = f"{done.get(task, 0)} of {counted(total, 'cycle')}"
                problems.append(f"{task}: task_complete after {after}")
    if over:
        if len(over) > 1 or events[-1].action != "run_complete":
            problems.append("run_complete is not the last event, or is recorded more than once")
        for task in sorted(started - set(ended)):
            total = cycles.get(task)
            completed = done.get(task, 0)
            of_total = f"{completed} of {counted(total, 'cycle')}" if total is not None else None
            finished = of_total or counted(completed, "cycle")
            problems.append(f"{task}: started, {finished} completed, never ended, yet the run is over")
        recorded = str(over[-1].metadata.get("status", ""))
        if status is not None and status != "running" and recorded and status != recorded:
            problems.append(f"the run is marked {status} but its run_complete says {recorded}")
    elif status in _FINAL_STATUSES:
        problems.append(f"the run is marked {status} but its trace has no run_complete")
    return problems


def export_jsonl(store: RunStore, run_id: str) -> Iterator[str]:
    """The run's trace as JSON lines, one Event a line, with the seed's field names; ``run_id`` may be
    any reference :meth:`RunStore.resolve` takes."""
    run_id = store.resolve(run_id)
    for stored in store.iter_events(run_id):
        yield stored.event.model_dump_json(by_alias=True)


def is_live(store: RunStore, run_id: str) -> bool:
    """Whether some executor process holds ``run_id`` right now: its lease is live (for runs stored
    before leases, its lock file is held)."""
    lease = store.lease(run_id)
    if lease is not None:
        return store.lease_live(lease)
    path = store.run_folder(run_id) / "lock"
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False
