"""Run references (ids, unique beginnings, ``latest``) in every command that takes a RUN, and ``runs``:
its filters, columns, time zones, JSON, CSV and terminal table, its exit statuses, ``runs rm`` and
``runs prune``; all through the real command line, on a store of real runs (emulated, a command that
fails, and a run stopped by Ctrl-C)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from executor_support import wait_for
from support import cycleplan_executable
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import parse_scenario
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.planner import plan
from cycleplan.store import RunStore
from cycleplan.store.runs import LeaseLostError

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
runner = CliRunner()

EMULATED = """
    name: small
    roles:
      backend: {cycle: {median_min: 5, p90_min: 8}}
      frontend: {cycle: {median_min: 5, p90_min: 8}}
    tasks:
      - {id: backend, role: backend, cycles: 3, emits: {schema_ready: 1}}
      - {id: frontend, role: frontend, cycles: 2, waits: {schema_ready: 1}}
"""

COMMANDS = """
    name: commands
    roles: {ops: {failure: {max_retries: 0}}}
    tasks:
      - {id: build, role: ops, cycles: 1, command: ["sh", "-c", "exit ${STATUS:-0}"]}
      - {id: wait, role: ops, cycles: 1, after: [build], command: WAIT}
"""


def _commands(wait: str) -> str:
    return textwrap.dedent(COMMANDS).replace("WAIT", wait)


class Runs:
    """The store the tests copy, and its runs' ids, oldest first: emulated, failed, interrupted,
    emulated."""

    def __init__(self, store: Path, ids: list[str]) -> None:
        self.store = store
        self.ids = ids

    @property
    def emulated_old(self) -> str:
        return self.ids[0]

    @property
    def failed(self) -> str:
        return self.ids[1]

    @property
    def interrupted(self) -> str:
        return self.ids[2]

    @property
    def newest(self) -> str:
        return self.ids[3]


def _emulated(folder: Path, store: Path, seed: int) -> str:
    options = ExecuteOptions(agent="emulated", time_scale=5_000, seed=seed, workdir=str(folder))
    result = execute(plan(parse_scenario(textwrap.dedent(EMULATED))), options, store=store, progress="none")
    assert result.status == "complete"
    return result.run_id


def _only_new(store: Path, before: set[str]) -> str:
    with RunStore(store, read_only=True) as runs:
        (run_id,) = set(runs.run_ids()) - before
    return run_id


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("runs")
    store = folder / "store" / "runs.db"
    ids = [_emulated(folder, store, seed=1)]
    time.sleep(1.05)  # each run in a second of its own, for --since
    failing = plan(parse_scenario(_commands('["true"]')))
    os.environ["STATUS"] = "3"
    try:
        result = execute(
            failing,
            ExecuteOptions(agent="command", workdir=str(folder), pass_env=["STATUS"], retry_backoff_s=0),
            store=store,
            progress="none",
        )
    finally:
        del os.environ["STATUS"]
    assert result.status == "failed"
    ids.append(result.run_id)
    time.sleep(1.05)
    scenario = folder / "long.yaml"
    scenario.write_text(_commands('["sleep", "60"]'))
    before = set(ids)
    process = subprocess.Popen(
        [cycleplan_executable(), "execute", str(scenario), "--agent", "command", "--store", str(store)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _waiting(store, before), "the long task to start")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            process.kill()
    ids.append(_only_new(store, before))
    time.sleep(1.05)
    ids.append(_emulated(folder, store, seed=2))
    return Runs(store, ids)


def _waiting(store: Path, before: set[str]) -> bool:
    if not store.exists():
        return False
    with RunStore(store, read_only=True) as runs:
        new = set(runs.run_ids()) - before
        return bool(new) and any(
            event.action == "task_started" and event.target_id == "wait" for event in runs.trace(new.pop())
        )


@pytest.fixture
def runs(made: Runs, tmp_path: Path) -> Runs:
    """A copy of the made store (and its runs' folders) that a test may change."""
    shutil.copytree(made.store.parent, tmp_path / "store")
    return Runs(tmp_path / "store" / "runs.db", made.ids)


def _cli(*args: str, store: Path | None = None) -> Any:
    return runner.invoke(app, [*args, *(["--store", str(store)] if store is not None else [])])


def _common_beginning(ids: list[str]) -> str:
    """The longest beginning every id shares."""
    shared = ""
    for letters in zip(*ids, strict=False):
        if len(set(letters)) > 1:
            break
        shared += letters[0]
    return shared


def _listed(store: Path, *args: str) -> list[dict[str, Any]]:
    result = _cli("runs", *args, "--json", store=store)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


# --------------------------------------------------------------------------------------------------
# Run references


def test_the_fixture_made_runs_of_every_kind_newest_first(made: Runs) -> None:
    rows = _listed(made.store)
    assert [row["run_id"] for row in rows] == made.ids[::-1]
    assert [row["status"] for row in rows] == ["complete", "interrupted", "failed", "complete"]


def test_latest_names_the_newest_run_and_latest_n_the_ones_before(made: Runs) -> None:
    for ref, run_id in (("latest", made.newest), ("latest~1", made.interrupted), ("latest~3", made.ids[0])):
        checked = _cli("runs", "--check", ref, "--json", store=made.store)
        assert checked.exit_code == 0, checked.output
        assert json.loads(checked.stdout)["run_id"] == run_id
    beyond = _cli("runs", "--check", "latest~4", store=made.store)
    assert beyond.exit_code == 2
    assert "it holds 4 run(s), latest to latest~3" in beyond.stderr


def test_a_unique_beginning_of_an_id_names_its_run(made: Runs) -> None:
    run_id = made.failed
    prefix = next(
        run_id[:n]
        for n in range(1, len(run_id))
        if [i for i in made.ids if i.startswith(run_id[:n])] == [run_id]
    )
    whole = _cli("export", run_id, store=made.store)
    short = _cli("export", prefix, store=made.store)
    assert short.exit_code == 0, short.output
    assert short.stdout == whole.stdout and run_id in short.stdout


def test_an_ambiguous_beginning_exits_2_listing_every_run_it_begins(made: Runs) -> None:
    common = _common_beginning(made.ids)
    assert common, "runs made a few seconds apart share the beginning of their ids"
    for command in (["export", common], ["runs", "--check", common], ["compare", common, "-n", "5"]):
        done = _cli(*command, store=made.store)
        assert done.exit_code == 2, (command, done.output)
        (line,) = done.stderr.strip().splitlines()
        assert f"run '{common}' is ambiguous" in line and "give more of the id" in line
        assert all(run_id in line for run_id in made.ids)


def test_an_unknown_id_exits_2_with_the_nearest_ids(made: Runs) -> None:
    typo = made.failed[:-1] + ("0" if made.failed[-1] != "0" else "1")
    done = _cli("export", typo, store=made.store)
    assert done.exit_code == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"no run '{typo}' in {made.store}; nearest: {made.failed}")


def test_every_command_that_takes_a_run_resolves_it(made: Runs, tmp_path: Path) -> None:
    compared = _cli("compare", "latest", "-n", "20", "--json", store=made.store)
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["run_id"] == made.newest

    calibrated = _cli("calibrate", "latest", made.emulated_old[:-2], "latest", "--json", store=made.store)
    assert calibrated.exit_code == 0, calibrated.output
    assert json.loads(calibrated.stdout)["runs"] == [made.newest, made.emulated_old]

    backtested = _cli("backtest", "latest", "latest~3", "-n", "20", "--json", store=made.store)
    assert backtested.exit_code == 0, backtested.output
    assert [run["run_id"] for run in json.loads(backtested.stdout)["runs"]] == [
        made.newest,
        made.emulated_old,
    ]
    once = _cli("backtest", "latest", made.newest, store=made.store)
    assert once.exit_code == 2 and f"the runs given are all run {made.newest}" in once.stderr

    # A run that is over: resuming it does nothing and says which run it is.
    resumed = subprocess.run(
        [cycleplan_executable(), "execute", "--resume", "latest", "--store", str(made.store), "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["run_id"] == made.newest


# --------------------------------------------------------------------------------------------------
# Listing: filters, columns, formats


def test_status_filters_repeat_or_take_commas(made: Runs) -> None:
    assert [row["run_id"] for row in _listed(made.store, "--status", "failed")] == [made.failed]
    both = [made.interrupted, made.failed]
    assert [row["run_id"] for row in _listed(made.store, "--status", "failed,interrupted")] == both
    assert [
        row["run_id"] for row in _listed(made.store, "--status", "failed", "--status", "interrupted")
    ] == both
    wrong = _cli("runs", "--status", "complet", store=made.store)
    assert wrong.exit_code == 2 and "did you mean 'complete'?" in wrong.stderr


def test_since_takes_a_date_or_a_span_and_limit_keeps_the_newest(made: Runs) -> None:
    rows = _listed(made.store)
    middle = next(row for row in rows if row["run_id"] == made.interrupted)
    since = _listed(made.store, "--since", middle["created"])
    assert [row["run_id"] for row in since] == [made.newest, made.interrupted]
    assert len(_listed(made.store, "--since", "1h")) == 4
    tomorrow = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()
    assert _listed(made.store, "--since", tomorrow) == []
    assert [row["run_id"] for row in _listed(made.store, "--limit", "1")] == [made.newest]
    newest_complete = _listed(made.store, "--status", "complete", "--limit", "1")
    assert [row["run_id"] for row in newest_complete] == [made.newest]
    for args, message in (
        (["--since", "yesterdayish"], "--since yesterdayish: give a date or time"),
        (["--limit", "0"], "--limit 0: must be at least 1"),
        (["--json", "--csv"], "choose one"),
    ):
        done = _cli("runs", *args, store=made.store)
        assert done.exit_code == 2 and message in done.stderr, done.output


def test_tokens_and_cost_are_the_runs_own_sums(made: Runs) -> None:
    rows = {row["run_id"]: row for row in _listed(made.store)}
    with RunStore(made.store, read_only=True) as runs:
        summary = runs.run(made.newest).summary
    assert summary is not None
    newest = rows[made.newest]
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd"):
        assert newest[name] == summary[name]
    assert newest["tokens_total"] == sum(
        newest[name] for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    )
    assert newest["input_tokens"] > 0 and newest["cost_usd"] > 0
    # The table sums cache reads and writes in one column.
    table = _cli("runs", store=made.store).stdout.splitlines()
    header = table[0].split()
    assert header == [
        "run",
        "status",
        "agent",
        "created",
        "makespan",
        "input",
        "output",
        "cache",
        "cost",
        "scenario",
    ]
    line = next(row for row in table if row.startswith(made.newest))
    cache = newest["cache_read_tokens"] + newest["cache_write_tokens"]
    numbers = [f"{newest['input_tokens']:,}", f"{newest['output_tokens']:,}", f"{cache:,}"]
    assert line.split()[-5:-1] == [*numbers, f"${newest['cost_usd']:,.4f}"]


@pytest.mark.parametrize(("zone", "offset"), [("UTC0", "+00:00"), ("IST-5:30", "+05:30"), ("EST5", "-05:00")])
def test_times_carry_their_zone(made: Runs, zone: str, offset: str) -> None:
    def run(*args: str) -> str:
        done = subprocess.run(
            [cycleplan_executable(), "runs", "--store", str(made.store), *args],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TZ": zone},
        )
        return done.stdout

    rows = json.loads(run("--json"))
    assert all(row["created"].endswith(offset) and row["updated"].endswith(offset) for row in rows)
    with RunStore(made.store, read_only=True) as runs:
        created_ms = runs.run(made.newest).created_ms
    newest = datetime.datetime.fromisoformat(rows[0]["created"])
    assert abs(newest.timestamp() - created_ms / 1000) < 1  # the same instant, whatever the zone
    line = next(row for row in run().splitlines() if row.startswith(made.newest))
    assert newest.strftime("%Y-%m-%d %H:%M:%S ") + offset.replace(":", "") in line


def test_csv_has_a_header_and_every_field(made: Runs) -> None:
    done = _cli("runs", "--csv", store=made.store)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    as_json = _listed(made.store)
    assert [row["run_id"] for row in rows] == [row["run_id"] for row in as_json]
    assert list(rows[0]) == list(as_json[0])
    assert rows[0]["cost_usd"] == str(as_json[0]["cost_usd"]) and rows[0]["damaged"] == ""
    # Every column of a row that has not ended is empty, not "None".
    interrupted = next(row for row in rows if row["run_id"] == made.interrupted)
    assert interrupted["status"] == "interrupted" and "None" not in interrupted.values()


def _on_a_terminal(args: list[str], answer: str | None = None, columns: int = 200) -> tuple[int, str]:
    """Run the command with stdin, stdout and stderr on a pseudo-terminal; its exit status and all it
    wrote there. ``answer`` is typed once something was written."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [cycleplan_executable(), *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": str(columns), "TERM": "xterm"},
    )
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            seen += chunk
            if answer is not None and b"?" in seen:
                os.write(main, answer.encode())
                answer = None
        elif process.poll() is not None:
            break
    os.close(main)
    return process.wait(timeout=30), seen.decode(errors="replace")


def test_a_terminal_gets_a_drawn_table_and_a_pipe_plain_columns(made: Runs) -> None:
    status, drawn = _on_a_terminal(["runs", "--store", str(made.store)])
    assert status == 0
    assert "─" in drawn and all(run_id in drawn for run_id in made.ids)
    piped = _cli("runs", store=made.store).stdout
    assert "─" not in piped and "\x1b" not in piped
    assert [line.split()[0] for line in piped.splitlines()] == ["run", *made.ids[::-1]]


# --------------------------------------------------------------------------------------------------
# Exit status


def test_no_store_and_no_runs_are_not_errors(runs: Runs, tmp_path: Path) -> None:
    absent = tmp_path / "absent.db"
    for args, stdout in ((), ""), (("--json",), "[]\n"), (("--csv",), "run_id,status"):
        done = _cli("runs", *args, store=absent)
        assert done.exit_code == 0, done.output
        assert done.stdout.startswith(stdout) and (stdout or done.stdout == "")
        assert done.stderr.strip() == f"{absent}: no run store here yet (cycleplan execute creates it)"
    assert not absent.exists()

    removed = _cli("runs", "rm", *runs.ids, "--yes", store=runs.store)
    assert removed.exit_code == 0, removed.output
    for args, stdout in ((), ""), (("--json",), "[]\n"):
        done = _cli("runs", *args, store=runs.store)
        assert done.exit_code == 0 and done.stdout == stdout
        assert done.stderr.strip() == f"{runs.store}: no runs yet"
    # A run asked for by name is an error when it is not there: exit 2.
    for command in (["runs", "--check", "latest"], ["export", "latest"], ["runs", "rm", "latest"]):
        for store in (runs.store, absent):
            done = _cli(*command, store=store)
            assert done.exit_code == 2, (command, store, done.output)
            assert "no run store here" in done.stderr or "holds no runs yet" in done.stderr


def test_filters_that_match_nothing_exit_0_and_say_so(made: Runs) -> None:
    done = _cli("runs", "--status", "timeout", store=made.store)
    assert done.exit_code == 0 and done.stdout == ""
    assert done.stderr.strip() == f"{made.store}: none of its 4 run(s) match"


# --------------------------------------------------------------------------------------------------
# runs rm and runs prune


def test_rm_removes_the_runs_rows_and_folder(runs: Runs) -> None:
    folder = runs.store.parent / "runs" / runs.newest
    assert (folder / "log.txt").exists()
    done = _cli("runs", "rm", "latest", "--yes", store=runs.store)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == f"removed run {runs.newest} and {folder}"
    assert not folder.exists()
    assert [row["run_id"] for row in _listed(runs.store)] == runs.ids[2::-1]
    gone = _cli("export", runs.newest, store=runs.store)
    assert gone.exit_code == 2 and f"no run '{runs.newest}'" in gone.stderr
    # The store's own check still finds every other run whole.
    for run_id in runs.ids[:3]:
        assert _cli("runs", "--check", run_id, store=runs.store).exit_code == 0
    # --store may come before `rm`, as it does for the listing; the listing's own options may not.
    before = _cli("runs", "--store", str(runs.store), "rm", runs.failed, "--json")
    assert before.exit_code == 0, before.output
    assert [entry["run_id"] for entry in json.loads(before.stdout)["removed"]] == [runs.failed]
    misplaced = runner.invoke(app, ["runs", "--json", "rm", "latest", "--store", str(runs.store)])
    assert misplaced.exit_code == 2 and "--json: options of the listing" in misplaced.stderr


def test_rm_of_an_unknown_or_ambiguous_run_removes_nothing(runs: Runs) -> None:
    common = _common_beginning(runs.ids)
    for refs in ([runs.failed, "nope"], [runs.failed, common]):
        done = _cli("runs", "rm", *refs, "--yes", store=runs.store)
        assert done.exit_code == 2, done.output
        assert len(_listed(runs.store)) == 4


def test_rm_refuses_a_live_run_unless_forced(runs: Runs) -> None:
    # This process takes the interrupted run as a resuming executor does: its lease is live.
    with RunStore(runs.store) as owner:
        owner.take_lease(runs.interrupted)
        refused = _cli("runs", "rm", runs.failed, "latest~1", "--yes", store=runs.store)
        assert refused.exit_code == 2
        assert f"run {runs.interrupted} (pid {os.getpid()} on" in refused.stderr
        assert "--force" in refused.stderr and "nothing was removed" in refused.stderr
        assert len(_listed(runs.store)) == 4
        # prune leaves it, says so, and removes what it may.
        pruned = _cli("runs", "prune", "--status", "interrupted,failed", "--yes", store=runs.store)
        assert pruned.exit_code == 0, pruned.output
        assert f"left run {runs.interrupted}: an executor holds it right now" in pruned.stderr
        assert [row["run_id"] for row in _listed(runs.store)] == [runs.newest, runs.interrupted, runs.ids[0]]

        forced = _cli("runs", "rm", "latest~1", "--force", "--yes", store=runs.store)
        assert forced.exit_code == 0, forced.output
        assert runs.interrupted not in [row["run_id"] for row in _listed(runs.store)]
        # The executor that held it finds its lease gone at its next write, and stops.
        with pytest.raises(LeaseLostError):
            owner.renew_lease(runs.interrupted)


def test_prune_dry_run_shows_what_would_go_and_removes_nothing(runs: Runs) -> None:
    dry = _cli("runs", "prune", "--status", "interrupted,failed", "--dry-run", store=runs.store)
    assert dry.exit_code == 0, dry.output
    assert [line.split()[0] for line in dry.stdout.splitlines()] == ["run", runs.interrupted, runs.failed]
    assert "would remove 2 run(s)" in dry.stderr
    as_json = _cli("runs", "prune", "--status", "failed", "--dry-run", "--json", store=runs.store)
    assert json.loads(as_json.stdout) == {"dry_run": True, "removed": [], "would_remove": [runs.failed]}
    assert len(_listed(runs.store)) == 4

    old = _cli(
        "runs", "prune", "--status", "interrupted,failed", "--older-than", "30d", "--yes", store=runs.store
    )
    assert old.exit_code == 0 and "nothing to prune" in old.stderr and len(_listed(runs.store)) == 4

    chosen = ["--status", "failed", "--status", "interrupted", "--older-than", "0s"]
    done = _cli("runs", "prune", *chosen, "--yes", "--json", store=runs.store)
    assert done.exit_code == 0, done.output
    assert [entry["run_id"] for entry in json.loads(done.stdout)["removed"]] == [
        runs.interrupted,
        runs.failed,
    ]
    assert [row["run_id"] for row in _listed(runs.store)] == [runs.newest, runs.ids[0]]
    assert not (runs.store.parent / "runs" / runs.failed).exists()
    for args, message in (([], "say which runs to prune"), (["--older-than", "soon"], "--older-than soon")):
        refused = _cli("runs", "prune", *args, store=runs.store)
        assert refused.exit_code == 2 and message in refused.stderr


def test_on_a_terminal_rm_asks_first(runs: Runs) -> None:
    base = ["runs", "rm", "latest", "--store", str(runs.store)]
    status, seen = _on_a_terminal(base, answer="n\n")
    assert status == 1 and "Remove 1 run(s) and their folders?" in seen and "nothing was removed" in seen
    assert runs.newest in seen and len(_listed(runs.store)) == 4
    status, seen = _on_a_terminal(base, answer="y\n")
    assert status == 0 and f"removed run {runs.newest}" in seen
    assert runs.newest not in [row["run_id"] for row in _listed(runs.store)]
