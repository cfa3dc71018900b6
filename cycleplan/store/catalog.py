"""What a run store holds, as a person looks through it: one row per run with the status a reader should
see and its tokens and cost, filtered by status and time; and runs removed with their folders.

A run's row says ``running`` until its executor ends it; a run whose executor is gone (killed, its lease
expired or provably dead) is shown as ``stopped``, and ``execute --resume`` finishes it. A run whose
stored events are damaged is shown, and selected, as ``damaged`` too. Everything here goes through
:class:`~cycleplan.store.runs.RunStore`; this module writes no SQL and knows nothing of the terminal.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cycleplan.store.runs import RunLiveError, RunRecord, RunStore, is_live

STATUSES = ("running", "stopped", "interrupted", "complete", "failed", "timeout", "damaged")
"""The statuses a listing shows: a run's own, and ``stopped`` and ``damaged`` as above."""

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "tokens_total")


@dataclass(frozen=True)
class RunRow:
    """One run as a listing shows it; the numbers come from the summary stored when the run ended, and
    are None for a run that has not ended."""

    run_id: str
    status: str
    """running, stopped, interrupted, complete, failed or timeout."""
    agent: str
    scenario: str
    source: str
    created_ms: float
    """When the run was recorded, in epoch milliseconds."""
    updated_ms: float
    """When its status last changed, in epoch milliseconds."""
    makespan_min: float | None
    input_tokens: int | None
    """Uncached input tokens, summed over the run's calls."""
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    tokens_total: int | None
    cost_usd: float | None
    damaged: str | None
    """What is wrong with the run's stored events (one line), or None when nothing is."""

    @property
    def statuses(self) -> set[str]:
        """The statuses the run answers to: its own, and ``damaged`` when it is."""
        return {self.status, "damaged"} if self.damaged else {self.status}

    @property
    def cache_tokens(self) -> int | None:
        """Cache reads and writes together."""
        if self.cache_read_tokens is None and self.cache_write_tokens is None:
            return None
        return (self.cache_read_tokens or 0) + (self.cache_write_tokens or 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Listing:
    """The runs a listing shows, newest first, and one line for each damaged run it shows or cannot
    read at all (a run whose row cannot be read has no status or time to filter by)."""

    rows: list[RunRow]
    damaged: dict[str, str]
    total: int
    """How many runs the store holds, whatever the filters."""


def shown_status(store: RunStore, record: RunRecord) -> str:
    """``record``'s status, or ``stopped`` for a run marked running that no executor holds."""
    if record.status == "running" and not is_live(store, record.run_id):
        return "stopped"
    return record.status


def _number(summary: dict[str, Any], name: str) -> Any:
    value = summary.get(name)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _row(store: RunStore, record: RunRecord, damaged: str | None) -> RunRow:
    summary = record.summary or {}
    tokens = {name: _number(summary, name) for name in TOKEN_FIELDS}
    return RunRow(
        run_id=record.run_id,
        status=shown_status(store, record),
        agent=record.agent,
        scenario=record.scenario,
        source=record.source,
        created_ms=record.created_ms,
        updated_ms=record.updated_ms,
        makespan_min=_number(summary, "makespan_min"),
        cost_usd=_number(summary, "cost_usd"),
        damaged=damaged,
        **tokens,
    )


def list_runs(
    store: RunStore,
    *,
    statuses: Collection[str] = (),
    since_ms: float | None = None,
    limit: int | None = None,
    run_ids: Collection[str] | None = None,
) -> Listing:
    """The store's runs, newest first: those with one of ``statuses`` (all when empty), recorded at or
    after ``since_ms``, among ``run_ids`` (when given), at most ``limit`` of them."""
    records, damaged = store.survey()
    rows: list[RunRow] = []
    for record in records:
        if since_ms is not None and record.created_ms < since_ms:
            continue
        if run_ids is not None and record.run_id not in run_ids:
            continue
        row = _row(store, record, damaged.get(record.run_id))
        if statuses and not row.statuses & set(statuses):
            continue
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    readable = {record.run_id for record in records}
    shown = {row.run_id for row in rows}
    reported = {run_id: line for run_id, line in damaged.items() if run_id in shown or run_id not in readable}
    return Listing(rows, reported, len(records) + len(set(damaged) - readable))


def prune_candidates(
    store: RunStore, *, statuses: Collection[str] = (), before_ms: float | None = None
) -> tuple[list[RunRow], list[RunRow]]:
    """The runs ``prune`` would remove (one of ``statuses``, when given, recorded before ``before_ms``,
    when given), and those it leaves because an executor holds them right now."""
    chosen = [
        row
        for row in list_runs(store, statuses=statuses).rows
        if before_ms is None or row.created_ms < before_ms
    ]
    live = {row.run_id for row in chosen if is_live(store, row.run_id)}
    return [row for row in chosen if row.run_id not in live], [row for row in chosen if row.run_id in live]


@dataclass(frozen=True)
class Removed:
    """A run taken out of the store, and what became of its folder."""

    run_id: str
    folder: str | None
    """The run's folder, when it had one."""
    note: str | None = None
    """Why the folder, or part of it, is still there; or what is left elsewhere (git worktrees)."""


def refuse_live(store: RunStore, run_ids: Iterable[str]) -> None:
    """:class:`~cycleplan.store.runs.RunLiveError` naming each of ``run_ids`` an executor holds right
    now, with its holder; nothing when none is held."""
    live = [run_id for run_id in dict.fromkeys(run_ids) if is_live(store, run_id)]
    if not live:
        return
    holders = []
    for run_id in live:
        lease = store.lease(run_id)
        holders.append(f"{run_id} ({lease.holder()})" if lease is not None else run_id)
    one = len(live) == 1
    raise RunLiveError(
        f"{'run' if one else 'runs'} {', '.join(holders)} {'is' if one else 'are'} being executed right now"
    )


def remove_runs(store: RunStore, run_ids: Iterable[str], *, force: bool = False) -> list[Removed]:
    """Remove each run (ids, as :meth:`RunStore.resolve` gives them) from the store, then its folder.

    Unless ``force``, nothing is removed while an executor holds any of them (:func:`refuse_live`).
    Each run's rows go in a transaction of their own, which checks again: an executor that took a run
    meanwhile stops the removal there."""
    chosen = list(dict.fromkeys(run_ids))
    if not force:
        refuse_live(store, chosen)
    removed: list[Removed] = []
    for run_id in chosen:
        store.remove_run(run_id, force=force)
        removed.append(_remove_folder(store, run_id))
    return removed


def _remove_folder(store: RunStore, run_id: str) -> Removed:
    """Remove the run's folder, when it has one of its own under the store's runs folder."""
    folder = store.run_folder(run_id)
    if Path(run_id).name != run_id or run_id in ("", ".", ".."):
        return Removed(run_id, None, f"its id is not a folder name: {folder} was left alone")
    if folder.is_symlink():
        folder.unlink()
        return Removed(run_id, str(folder), "its folder was a link: the link was removed, not its target")
    if not folder.is_dir():
        return Removed(run_id, None)
    note = None
    if (folder / "worktrees").is_dir():
        note = (
            f"its lanes' git branches (cycleplan/{run_id}/...) are kept; `git worktree prune` in the "
            "repository forgets their removed worktrees"
        )
    failures: list[str] = []

    def failed(_function: object, path: str, error: Any) -> None:
        exc = error[1] if isinstance(error, tuple) else error  # an exc_info tuple before Python 3.12
        failures.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=failed)
    else:
        shutil.rmtree(folder, onerror=failed)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        note = f"part of its folder could not be removed: {failures[0]}{more}"
    return Removed(run_id, str(folder), note)
