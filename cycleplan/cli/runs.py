"""``runs``: what a run store holds, filtered and shown as a table, JSON or CSV; with ``--check RUN`` the
soundness of one run's stored trace; ``runs rm`` and ``runs prune`` take runs out.

Listing and checking open the store read-only. A listing with nothing to show (no store, an empty one,
filters that match nothing) is no error: exit status 0, with a line on stderr. Naming a run that is not
there is (exit status 2). Every run is read and removed through
:class:`~cycleplan.store.runs.RunStore` and :mod:`cycleplan.store.catalog`.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cycleplan.cli.common import STORE_HELP, STORE_PATH, StoreOption, emit_json, fail, say
from cycleplan.core.printable import printable
from cycleplan.core.wording import minutes

if TYPE_CHECKING:
    from cycleplan.store.catalog import RunRow
    from cycleplan.store.runs import RunStore

app = typer.Typer(
    name="runs",
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StatusOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        help="Only runs of this status: running, stopped, interrupted, complete, failed, timeout, damaged. "
        "Repeat it, or give several with commas.",
        metavar="STATUS",
        show_default=False,
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before removing, on a terminal.")]
SubStoreOption = Annotated[
    Path | None,
    typer.Option("--store", help=f"{STORE_HELP} [default: {STORE_PATH}]", metavar="PATH", show_default=False),
]

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)")
_SPAN_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_FIELDS = [
    "run_id",
    "status",
    "agent",
    "scenario",
    "source",
    "created",
    "updated",
    "makespan_min",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "tokens_total",
    "cost_usd",
    "damaged",
]
"""The fields of a run in --json and --csv, in order."""
_COLUMNS = ("run", "status", "agent", "created", "makespan", "input", "output", "cache", "cost", "scenario")
_RIGHT = {"makespan", "input", "output", "cache", "cost"}


@app.callback(invoke_without_command=True)
def runs_command(
    ctx: typer.Context,
    store: StoreOption = STORE_PATH,
    status: StatusOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only runs recorded since then: a date (2025-01-14, 2025-01-14T09:30) or a span back from "
            "now (30m, 3h, 2d, 1w).",
            metavar="WHEN",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="At most N runs (the newest).", metavar="N", show_default=False),
    ] = None,
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            help="Verify run RUN's stored trace instead of listing: seq contiguous, every row decodable, "
            "every cycle accounted for. Prints each problem on a line; exit status 1 when there is one.",
            metavar="RUN",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs (or the check) as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the runs as CSV, with a header.")] = False,
) -> None:
    """List the runs in a run store, newest first, with their tokens and cost; or remove runs.

    `runs rm RUN...` and `runs prune` remove runs. Columns: id, status, agent, when it was recorded
    (local time, with its offset from UTC), makespan, input, output and cache tokens (reads and writes)
    summed over the run, cost in USD, and scenario. On a terminal the runs are drawn as a table; piped,
    as plain columns. --json and --csv give every field (times in ISO 8601 with their offset; cache
    reads and writes apart).

    A run stopped by Ctrl-C shows as `interrupted`, one whose executor was killed as `stopped`:
    `cycleplan execute --resume RUN` finishes either. A run whose stored events have a gap in their
    sequence or a row that cannot be decoded shows as `damaged`, with a line on stderr, and the exit
    status is 1 (`--check RUN` lists what is wrong). No store, or no run to show, is not an error: a line
    on stderr says so, and the exit status is 0. The store is opened read-only, so a store on a
    read-only mount can be listed.

    Wherever a command takes a RUN (--check, compare, export, calibrate, backtest, execute --resume,
    runs rm), it may be the run's id, any beginning of it no other run shares, or `latest` (the newest
    run; `latest~1` the one before it).

    \b
    Examples:
      cycleplan runs --store .cycleplan/runs.db
      cycleplan runs --status failed,interrupted --since 2d --limit 10
      cycleplan runs --since 2025-01-01 --csv > runs.csv
      cycleplan runs --check latest --json
      cycleplan runs rm 20250114-0930
      cycleplan runs prune --status interrupted,failed --older-than 30d --dry-run
    """
    if ctx.invoked_subcommand is not None:
        given = [
            name
            for name, value in (
                ("--status", status),
                ("--since", since),
                ("--limit", limit),
                ("--check", check),
                ("--json", as_json),
                ("--csv", as_csv),
            )
            if value
        ]
        if given:
            sub = ctx.invoked_subcommand
            fail(f"{', '.join(given)}: options of the listing; give {sub}'s own options after `{sub}`")
        return
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    if check is not None:
        if status or since is not None or limit is not None or as_csv:
            fail("--check RUN verifies one run: leave out --status, --since, --limit and --csv")
        _check(store, check, as_json)
        return
    statuses = _statuses(status, "--status")
    since_ms = None if since is None else _moment_ms(since, "--since")
    if limit is not None and limit < 1:
        fail(f"--limit {limit}: must be at least 1")
    _list(store, statuses, since_ms, limit, "json" if as_json else "csv" if as_csv else "table")


def _list(store: Path, statuses: list[str], since_ms: float | None, limit: int | None, shape: str) -> None:
    from cycleplan.store.catalog import list_runs
    from cycleplan.store.runs import StoreError

    if not store.exists():
        _show([], shape)
        say(f"{store}: no run store here yet (cycleplan execute creates it)", err=True)
        return
    with _opened(store, read_only=True) as runs_store:
        try:
            listing = list_runs(runs_store, statuses=statuses, since_ms=since_ms, limit=limit)
        except StoreError as exc:
            fail(str(exc))
    _show(listing.rows, shape)
    if not listing.rows:
        if listing.total == 0:
            say(f"{store}: no runs yet", err=True)
        else:
            say(f"{store}: none of its {listing.total} run(s) match", err=True)
    for problem in listing.damaged.values():
        say(problem, err=True)
    if listing.damaged:
        raise typer.Exit(1)


def _check(store: Path, ref: str, as_json: bool) -> None:
    from cycleplan.store.runs import StoreError

    if not store.exists():
        fail(f"{store}: no run store here (pass --store PATH)")
    with _opened(store, read_only=True) as runs_store:
        try:
            checked = runs_store.check(runs_store.resolve(ref))
        except StoreError as exc:
            fail(str(exc))
    if as_json:
        emit_json(
            {
                "run_id": checked.run_id,
                "ok": checked.ok,
                "events": checked.events,
                "problems": checked.problems,
            }
        )
    elif checked.ok:
        say(f"run {checked.run_id}: {checked.events} events, seq contiguous, every cycle accounted for")
    else:
        for problem in checked.problems:
            say(problem)
        say(f"run {checked.run_id}: {len(checked.problems)} problem(s) in its stored trace", err=True)
    if not checked.ok:
        raise typer.Exit(1)


@app.command("rm")
def rm_command(
    ctx: typer.Context,
    runs: Annotated[
        list[str],
        typer.Argument(help="Runs to remove: ids, unique beginnings of ids, or latest.", metavar="RUN..."),
    ],
    store: SubStoreOption = None,
    yes: YesOption = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Remove a run even while an executor holds it (that executor then stops)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was removed as JSON.")] = False,
) -> None:
    """Remove runs from the run store: their events, and their folder beside the store.

    Asks first on a terminal (--yes does not). A run an executor holds right now is refused, and nothing
    is removed, unless --force: then that executor finds its lease gone at its next write and stops
    (exit status 3). Git branches a --worktrees run made are kept. A RUN that names no run, or begins
    several, exits 2 and removes nothing.

    \b
    Examples:
      cycleplan runs rm 20250114-093012-3f9a1c
      cycleplan runs rm latest --yes --store demo-output/runs.db
    """
    path = _sub_store(ctx, store)
    if not path.exists():
        fail(f"{path}: no run store here (pass --store PATH)")
    from cycleplan.store.runs import StoreError

    with _opened(path, read_only=None) as runs_store:
        try:
            chosen = list(dict.fromkeys(runs_store.resolve(ref) for ref in runs))
        except StoreError as exc:
            fail(str(exc))
        _remove(runs_store, chosen, yes=yes, force=force, as_json=as_json)


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    status: StatusOption = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Only runs recorded before then: a span back from now (30d, 12h, 2w) or a date.",
            metavar="WHEN",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the runs that would be removed; remove nothing.")
    ] = False,
    store: SubStoreOption = None,
    yes: YesOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was (or would be) removed as JSON.")
    ] = False,
) -> None:
    """Remove the runs of some statuses, or older than some age, with their folders.

    Give --status, --older-than or both. Runs an executor holds right now are left, with a line on
    stderr. Asks first on a terminal (--yes does not); --dry-run shows the runs that would go. Nothing to
    prune is not an error (exit status 0).

    \b
    Examples:
      cycleplan runs prune --status interrupted,failed --older-than 30d --dry-run
      cycleplan runs prune --status stopped --yes
    """
    if not status and older_than is None:
        fail(
            "say which runs to prune: --status STATUS, --older-than WHEN, or both "
            "(e.g. --status interrupted,failed --older-than 30d)"
        )
    statuses = _statuses(status, "--status")
    before_ms = None if older_than is None else _moment_ms(older_than, "--older-than")
    path = _sub_store(ctx, store)
    if not path.exists():
        if as_json:
            _pruned_json([], dry_run)
        say(f"{path}: no run store here: nothing to prune", err=True)
        return
    from cycleplan.store.catalog import prune_candidates
    from cycleplan.store.runs import StoreError

    with _opened(path, read_only=True if dry_run else None) as runs_store:
        try:
            chosen, live = prune_candidates(runs_store, statuses=statuses, before_ms=before_ms)
        except StoreError as exc:
            fail(str(exc))
        for row in live:
            say(f"left run {row.run_id}: an executor holds it right now", err=True)
        if not chosen:
            if as_json:
                _pruned_json([], dry_run)
            say(f"{path}: no run matches: nothing to prune", err=True)
            return
        if dry_run:
            if as_json:
                _pruned_json([row.run_id for row in chosen], dry_run)
            else:
                _show(chosen, "table")
            say(f"would remove {len(chosen)} run(s) and their folders (dry run: nothing removed)", err=True)
            return
        _remove(runs_store, [row.run_id for row in chosen], yes=yes, force=False, as_json=as_json)


def _remove(runs_store: RunStore, run_ids: list[str], *, yes: bool, force: bool, as_json: bool) -> None:
    """Ask (on a terminal, unless ``yes``), then remove the runs and their folders, and say so."""
    from cycleplan.store.catalog import list_runs, refuse_live, remove_runs
    from cycleplan.store.runs import RunLiveError, StoreError

    advice = "; let it finish (or stop it) first, or pass --force: its executor then stops"
    try:
        if not force:
            refuse_live(runs_store, run_ids)
        if not yes and sys.stdin.isatty():
            rows = {row.run_id: row for row in list_runs(runs_store, run_ids=set(run_ids)).rows}
            for run_id in run_ids:
                row = rows.get(run_id)
                cells = [run_id] if row is None else [*_fields(row)[:4], _fields(row)[-1]]
                say("  " + "  ".join(cells), err=True)
            if not typer.confirm(f"Remove {len(run_ids)} run(s) and their folders?", err=True):
                say("nothing was removed", err=True)
                raise typer.Exit(1)
        removed = remove_runs(runs_store, run_ids, force=force)
    except RunLiveError as exc:
        fail(f"{exc}{advice}; nothing was removed")
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"removed": [{"run_id": r.run_id, "folder": r.folder, "note": r.note} for r in removed]})
    else:
        for done in removed:
            say(f"removed run {done.run_id}" + (f" and {done.folder}" if done.folder else ""))
    for done in removed:
        if done.note:
            say(f"run {done.run_id}: {done.note}", err=True)


def _pruned_json(run_ids: list[str], dry_run: bool) -> None:
    emit_json(
        {
            "dry_run": dry_run,
            "removed": [] if dry_run else run_ids,
            "would_remove": run_ids if dry_run else [],
        }
    )


# --------------------------------------------------------------------------------------------------
# Options


def _sub_store(ctx: typer.Context, store: Path | None) -> Path:
    """A sub-command's --store, else the one given before it (``runs --store X rm RUN``)."""
    if store is not None:
        return store
    parent = ctx.parent.params.get("store") if ctx.parent is not None else None
    return parent if isinstance(parent, Path) else STORE_PATH


def _statuses(given: Sequence[str] | None, option: str) -> list[str]:
    """The statuses of a repeatable, comma-separated option, each checked."""
    from cycleplan.core.checks import did_you_mean
    from cycleplan.store.catalog import STATUSES

    statuses = [part.strip() for value in given or [] for part in value.split(",") if part.strip()]
    for name in statuses:
        if name not in STATUSES:
            known = ", ".join(STATUSES)
            fail(f"{option} {name}: no such status{did_you_mean(name, STATUSES)}; choose from {known}")
    return statuses


def _moment_ms(text: str, option: str) -> float:
    """Epoch milliseconds of a date or time (local unless it says its offset), or of a span back from now."""
    value = text.strip()
    span = _SPAN.fullmatch(value)
    if span is not None:
        seconds = float(span.group(1)) * _SPAN_S[span.group(2)]
        return (datetime.datetime.now().timestamp() - seconds) * 1000
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"{option} {text}: give a date or time (2025-01-14, 2025-01-14T09:30) or a span back from now "
            "(30m, 3h, 2d, 1w)"
        )
    return moment.astimezone().timestamp() * 1000


# --------------------------------------------------------------------------------------------------
# Output


def _opened(store: Path, *, read_only: bool | None) -> RunStore:
    from cycleplan.store.runs import RunStore, StoreError

    try:
        return RunStore(store, read_only=read_only)
    except StoreError as exc:
        fail(str(exc))


def _local(ms: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000).astimezone()


def _record(row: RunRow) -> dict[str, Any]:
    """A run as JSON and CSV give it: the fields of :data:`_FIELDS`, times in ISO 8601 with their offset."""
    values = row.as_dict() | {
        "created": _local(row.created_ms).isoformat(timespec="seconds"),
        "updated": _local(row.updated_ms).isoformat(timespec="seconds"),
    }
    return {name: values[name] for name in _FIELDS}


def _fields(row: RunRow) -> list[str]:
    """A run's cells in the order of :data:`_COLUMNS`."""

    def count(value: int | None) -> str:
        return "" if value is None else f"{value:,}"

    return [
        printable(row.run_id, one_line=True),
        "damaged" if row.damaged else row.status,
        printable(row.agent, one_line=True),
        _local(row.created_ms).strftime("%Y-%m-%d %H:%M:%S %z"),
        "" if row.makespan_min is None else minutes(row.makespan_min),
        count(row.input_tokens),
        count(row.output_tokens),
        count(row.cache_tokens),
        "" if row.cost_usd is None else f"${row.cost_usd:,.4f}",
        printable(row.scenario or row.source, one_line=True),
    ]


def _show(rows: list[RunRow], shape: str) -> None:
    if shape == "json":
        emit_json([_record(row) for row in rows])
    elif shape == "csv":
        records = [_record(row) for row in rows]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        say(buffer.getvalue(), nl=False)
    elif rows:
        from cycleplan.present.listing import show_table

        show_table(list(_COLUMNS), [_fields(row) for row in rows], _RIGHT, plain=say)
