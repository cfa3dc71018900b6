"""The run store: one SQLite file (WAL mode) holding every executed run and its events.

Tables: ``runs`` (one row per run: its plan, options and status), ``events`` (the seed's event fields,
plus the run id, a sequence number and an idempotency key) and ``processes`` (process groups a run has
started and not yet reaped, so that a resumed run can stop the orphans of a killed executor).

Every :meth:`RunStore.append` commits before it returns, so nothing that follows an event can be seen
by anyone while the event itself is lost: with WAL and ``synchronous=NORMAL`` a committed transaction
survives the death of the process (``kill -9``); only a power cut may roll back the last ones. Each
event has a key unique within its run (``cycle_completed:backend:3``); appending a key twice stores it
once, which is what makes a resumed trace hold every event exactly once. This module knows SQLite and
the Event model; it knows nothing of plans being run, backends or the terminal.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cycleplan.model import Event

DEFAULT_STORE = Path(".cycleplan") / "runs.db"
"""Where runs are kept unless ``--store`` says otherwise (relative to the working directory)."""

SCHEMA_VERSION = 1

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
"""


class StoreError(Exception):
    """The store cannot be opened or does not hold what was asked for (an unknown run id)."""


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


def _now_ms() -> float:
    return round(time.time() * 1000, 3)


class RunStore:
    """A connection to one run store file. Use from one thread (the executor's event loop)."""

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the run store: {exc}") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the run store: {exc.strerror or exc}") from None
        self._next_seq: dict[str, int] = {}

    @property
    def runs_folder(self) -> Path:
        """Where each run keeps its artifacts and log: ``<store folder>/runs/<run id>/``."""
        return self.path.parent / "runs"

    def run_folder(self, run_id: str) -> Path:
        return self.runs_folder / run_id

    def close(self) -> None:
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
    ) -> None:
        now = _now_ms()
        with self._transaction():
            self._db.execute(
                "INSERT INTO runs (run_id, created_ms, updated_ms, status, agent, source, scenario, options,"
                " plan) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (run_id, now, now, agent, source, scenario, json.dumps(options), plan_json),
            )

    def set_status(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET status = ?, updated_ms = ?, summary = COALESCE(?, summary) WHERE run_id = ?",
                (status, _now_ms(), None if summary is None else json.dumps(summary), run_id),
            )

    def run(self, run_id: str) -> RunRecord:
        row = self._db.execute(
            "SELECT run_id, created_ms, updated_ms, status, agent, source, scenario, options, plan, summary "
            "FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            known = [r.run_id for r in self.runs()[:5]]
            hint = f"; recent runs: {', '.join(known)}" if known else "; the store holds no runs yet"
            raise StoreError(f"no run '{run_id}' in {self.path}{hint}")
        return _run_record(row)

    def runs(self) -> list[RunRecord]:
        """Every run, newest first."""
        rows = self._db.execute(
            "SELECT run_id, created_ms, updated_ms, status, agent, source, scenario, options, plan, summary "
            "FROM runs ORDER BY created_ms DESC, run_id DESC"
        ).fetchall()
        return [_run_record(row) for row in rows]

    # ----------------------------------------------------------------------------------------------
    # events

    def append(self, run_id: str, key: str, event: Event) -> StoredEvent | None:
        """Commit ``event`` under ``key``; None (and nothing stored) when the key is already there."""
        seq = self._next_seq.get(run_id)
        if seq is None:
            seq = self._max_seq(run_id) + 1
        metadata = json.dumps(event.metadata, separators=(",", ":"), default=str)
        try:
            cursor = self._insert(run_id, seq, key, event, metadata)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record an event: {exc}") from None
        if cursor.rowcount == 0:
            return None
        self._next_seq[run_id] = seq + 1
        return StoredEvent(seq, key, event)

    def _insert(self, run_id: str, seq: int, key: str, event: Event, metadata: str) -> sqlite3.Cursor:
        return self._db.execute(
            "INSERT INTO events (run_id, seq, key, type, actor_id, target_id, group_id, timestamp, action,"
            " metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO NOTHING",
            (
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
            ),
        )

    def has_event(self, run_id: str, key: str) -> bool:
        row = self._db.execute("SELECT 1 FROM events WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
        return row is not None

    def events(self, run_id: str) -> list[StoredEvent]:
        """The run's events in sequence order."""
        return list(self.iter_events(run_id))

    def iter_events(self, run_id: str) -> Iterator[StoredEvent]:
        cursor = self._db.execute(
            "SELECT seq, key, type, actor_id, target_id, group_id, timestamp, metadata FROM events "
            "WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        for seq, key, type_, actor, target, group, timestamp, metadata in cursor:
            event = Event.model_validate(
                {
                    "type": type_,
                    "actorId": actor,
                    "targetId": target,
                    "groupId": group,
                    "timestamp": timestamp,
                    "metadata": json.loads(metadata),
                }
            )
            yield StoredEvent(seq, key, event)

    def trace(self, run_id: str) -> list[Event]:
        """The run's trace: its events in order, as Event records."""
        return [stored.event for stored in self.iter_events(run_id)]

    def _max_seq(self, run_id: str) -> int:
        row = self._db.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ----------------------------------------------------------------------------------------------
    # process groups started by a run (so a resumed run can stop a killed executor's orphans)

    def add_process(self, run_id: str, pgid: int, start_ticks: int | None, task: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO processes (run_id, pgid, start_ticks, task) VALUES (?, ?, ?, ?)",
            (run_id, pgid, start_ticks, task),
        )

    def remove_process(self, run_id: str, pgid: int) -> None:
        self._db.execute("DELETE FROM processes WHERE run_id = ? AND pgid = ?", (run_id, pgid))

    def processes(self, run_id: str) -> list[tuple[int, int | None, str]]:
        rows = self._db.execute(
            "SELECT pgid, start_ticks, task FROM processes WHERE run_id = ?", (run_id,)
        ).fetchall()
        return [(int(pgid), None if ticks is None else int(ticks), str(task)) for pgid, ticks, task in rows]

    # ----------------------------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    run_id, created, updated, status, agent, source, scenario, options, plan, summary = row
    return RunRecord(
        run_id=run_id,
        created_ms=created,
        updated_ms=updated,
        status=status,
        agent=agent,
        source=source,
        scenario=scenario,
        options=json.loads(options),
        plan_json=plan,
        summary=None if summary is None else json.loads(summary),
    )


def export_jsonl(store: RunStore, run_id: str) -> Iterator[str]:
    """The run's trace as JSON lines, one Event a line, with the seed's field names."""
    store.run(run_id)
    for stored in store.iter_events(run_id):
        yield stored.event.model_dump_json(by_alias=True)
