"""``status``: where a run stands and its latest forecast, read from the store (opened read-only) while
its executor may still be writing it; ``--watch`` reads it again every two seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cycleplan.cli.common import STORE_PATH, StoreOption, command_app, emit_json, fail, show

app = command_app()

WATCH_S = 2.0


@app.command("status")
def status_command(
    run: Annotated[
        str,
        typer.Argument(
            help="The run: its id, a unique beginning of it, or latest (see `cycleplan runs`).", metavar="RUN"
        ),
    ] = "latest",
    store: StoreOption = STORE_PATH,
    watch: Annotated[
        bool, typer.Option("--watch", help="Read the run again every 2 s until Ctrl-C (which exits 0).")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the state as JSON: status, tasks, cost_usd, forecast, ..."),
    ] = False,
) -> None:
    """Show where a run stands and its latest forecast of finish time and cost.

    For a running, stopped, interrupted or finished run, from any terminal: its status, tasks and lanes
    done, tokens, cost so far and elapsed time (scenario minutes), its budget and deadline when it has
    them, and the latest forecast its executor recorded: finish P10-P50-P90 (from the start, and from
    now), total cost P10-P50-P90, and the chance of staying within the budget and of finishing by the
    deadline. --json gives the same, with `forecast` null when none was recorded; with --watch, one JSON
    object a line. A run a guard stopped says which and why (`execute` exited 4).

    \b
    Examples:
      cycleplan status latest
      cycleplan status 20250114-0930 --json | jq .forecast.finish_min_from_start
      cycleplan status latest --watch
    """
    if not Path(store).exists():
        fail(f"{store}: no run store here (pass --store PATH)")
    try:
        while True:
            _show_once(store, run, as_json, compact=watch)
            if not watch:
                return
            time.sleep(WATCH_S)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _show_once(store: Path, run: str, as_json: bool, *, compact: bool) -> None:
    import json

    from cycleplan.cli.common import level, say
    from cycleplan.executor.status import StoreError, run_state
    from cycleplan.store import RunStore

    try:
        with RunStore(store, read_only=True) as runs:
            state = run_state(runs, run)
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        if compact:
            say(json.dumps(state))
        else:
            emit_json(state)
        return
    from cycleplan.present.status import status_view

    show(status_view(state, level()))
