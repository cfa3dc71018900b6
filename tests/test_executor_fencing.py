"""One writer per run, enforced by the store: the run's lease, through the real command line and in the
store itself; a duplicate event key with another result; ``runs --check``; read-only stores.

The attacks: delete the run's lock file, or reach ``runs.db`` through a symlink from another folder,
then ``execute --resume`` a live run; pause an executor past its lease and resume the run elsewhere;
delete or corrupt event rows; put the store on a read-only mount.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from executor_support import DEADLINE_S, wait_for

from cycleplan.core.loading import load_scenario
from cycleplan.executor import ExecuteOptions, ExecutionError, execute, resume
from cycleplan.executor import events as ev
from cycleplan.planner import plan
from cycleplan.store.runs import (
    DuplicateEventError,
    Lease,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    RunStore,
    StoreError,
    TraceError,
)

TASKS = {"alpha": 6, "beta": 5}


def _rows(store: Path, query: str) -> list[tuple[object, ...]]:
    """Rows of ``query``, read beside the executors as an onlooker would (empty while there is nothing)."""
    if not store.exists():
        return []
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return list(db.execute(query))
    except sqlite3.OperationalError:
        return []


def _scenario(tmp_path: Path, step_s: float = 0.3) -> Path:
    """Two lanes of cycles that each sleep, then log that they ran (a cycle stopped midway logs nothing)."""
    log = tmp_path / "work.log"
    step = f"sleep {step_s}; echo $CYCLEPLAN_TASK $CYCLEPLAN_CYCLE >> {log}"
    scenario = {
        "name": "fenced",
        "roles": {"backend": {"lanes": 2}},
        "tasks": [
            {"id": task, "role": "backend", "cycles": cycles, "shell": True, "command": [step]}
            for task, cycles in TASKS.items()
        ],
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def _start(cli: str, scenario: Path, store: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [cli, "execute", str(scenario), "--agent", "command", "--store", str(store), "--progress", "none"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _resume(
    cli: str, run_id: str, store: Path, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli, "execute", "--resume", run_id, "--store", str(store), "--json", "--progress", "none"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _pause_outside_a_write(process: subprocess.Popen[str], store: Path) -> None:
    """SIGSTOP ``process``, where it holds no write transaction (a writer paused inside one would keep
    everyone out of the store, lease or not)."""
    while True:
        process.send_signal(signal.SIGSTOP)
        db = sqlite3.connect(store, timeout=0.05, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            db.close()


def _assert_every_cycle_once(store: Path, log: Path) -> None:
    """In the store, one successful cycle_completed per task and cycle; in the world, one run of each."""
    stored = Counter(
        (str(task), int(json.loads(str(meta))["cycle"]))
        for task, meta in _rows(
            store, "SELECT target_id, metadata FROM events WHERE action = 'cycle_completed'"
        )
        if not json.loads(str(meta)).get("failed")
    )
    expected = {(task, cycle) for task, cycles in TASKS.items() for cycle in range(1, cycles + 1)}
    assert set(stored) == expected and set(stored.values()) == {1}, stored
    ran = Counter(tuple(line.split()) for line in log.read_text().splitlines())
    assert set(ran) == {(task, str(cycle)) for task, cycle in expected} and set(ran.values()) == {1}, ran


@pytest.mark.parametrize("attack", ["lock file deleted", "store reached through a symlinked folder"])
def test_a_second_executor_on_a_live_run_is_refused_by_the_store(
    cli: str, tmp_path: Path, attack: str
) -> None:
    scenario = _scenario(tmp_path)
    store = tmp_path / "store" / "runs.db"
    env = dict(os.environ)
    first = _start(cli, scenario, store, tmp_path, env)
    try:
        wait_for(
            lambda: len(_rows(store, "SELECT 1 FROM events WHERE action = 'cycle_completed'")) >= 2,
            "the first executor's first cycles",
            first,
        )
        ((run_id,),) = _rows(store, "SELECT run_id FROM runs")
        lock = store.parent / "runs" / str(run_id) / "lock"
        if attack == "lock file deleted":
            lock.unlink()
            reached = store
        else:
            other = tmp_path / "elsewhere"
            other.mkdir()
            (other / "runs.db").symlink_to(store)
            reached = other / "runs.db"
        second = _resume(cli, str(run_id), reached, tmp_path, env)
        assert first.poll() is None, "the first executor must still be running"
        assert second.returncode == 2, second.stderr
        message = second.stderr.strip()
        assert "is being executed by another executor" in message and f"pid {first.pid}" in message
        assert len(message.splitlines()) == 1 and "Traceback" not in second.stderr
        _, stderr = first.communicate(timeout=DEADLINE_S)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    assert _rows(store, "SELECT status FROM runs") == [("complete",)]
    assert _rows(store, "SELECT epoch, expires_ms FROM leases") == [(1, 0.0)]  # never taken over; released
    _assert_every_cycle_once(store, tmp_path / "work.log")
    checked = subprocess.run(
        [cli, "runs", "--store", str(store), "--check", str(run_id)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout


def test_an_executor_paused_past_its_lease_is_taken_over_and_stops_recording_nothing(
    cli: str, tmp_path: Path
) -> None:
    scenario = _scenario(tmp_path)
    store = tmp_path / "store" / "runs.db"
    env = {**os.environ, "CYCLEPLAN_LEASE_S": "2"}
    first = _start(cli, scenario, store, tmp_path, env)
    try:
        wait_for(
            lambda: len(_rows(store, "SELECT 1 FROM events WHERE action = 'cycle_completed'")) >= 2,
            "the first executor's first cycles",
            first,
        )
        _pause_outside_a_write(first, store)
        ((run_id,),) = _rows(store, "SELECT run_id FROM runs")
        (store.parent / "runs" / str(run_id) / "lock").unlink()
        ((expires_ms,),) = _rows(store, "SELECT expires_ms FROM leases")
        # Alive but silent: its lease keeps the newcomer out until it expires, not one moment less.
        second = _resume(cli, str(run_id), store, tmp_path, env)
        if second.returncode == 2:
            message = second.stderr.strip()
            assert "being executed by another executor" in message and f"pid {first.pid}" in message
            assert "expires in" in message and len(message.splitlines()) == 1
            assert _rows(store, "SELECT epoch FROM leases") == [(1,)]
            time.sleep(max(float(expires_ms) / 1000 - time.time(), 0.0) + 0.1)
            second = _resume(cli, str(run_id), store, tmp_path, env)
        assert second.returncode == 0, second.stderr
        # A machine too slow to try before the lease expired took over at once; never before expiry.
        ((resumed_at,),) = _rows(store, "SELECT timestamp FROM events WHERE action = 'run_resumed'")
        assert float(resumed_at) >= float(expires_ms)
        assert json.loads(second.stdout)["status"] == "complete"
        after_second = _rows(store, "SELECT seq, key, metadata FROM events ORDER BY seq")
        first.send_signal(signal.SIGCONT)
        _, stderr = first.communicate(timeout=DEADLINE_S)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
    # The stale executor stopped at once, with one line, and wrote nothing more.
    assert first.returncode == 3, stderr
    assert "another executor took this run over" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert _rows(store, "SELECT seq, key, metadata FROM events ORDER BY seq") == after_second
    assert _rows(store, "SELECT status FROM runs") == [("complete",)]
    assert [row[0] for row in _rows(store, "SELECT epoch FROM leases")] == [2]
    stored = Counter(
        (str(task), int(json.loads(str(meta))["cycle"]))
        for task, meta in _rows(
            store, "SELECT target_id, metadata FROM events WHERE action = 'cycle_completed'"
        )
        if not json.loads(str(meta)).get("failed")
    )
    assert set(stored.values()) == {1} and len(stored) == sum(TASKS.values())
    with RunStore(store) as runs:
        assert runs.check(str(run_id)).problems == []


# --------------------------------------------------------------------------------------------------
# the store alone


def _event(action: str, target: str = "t", **metadata: object) -> ev.Event:
    return ev.make_event("lane-1", target, "r", time.time() * 1000, action=action, **metadata)


def _new_run(store: RunStore, run_id: str = "r", *, lease: bool = True) -> None:
    store.create_run(run_id, agent="command", source="", scenario="", options={}, plan_json="{}", lease=lease)


def test_a_duplicate_key_with_another_result_is_an_error_never_dropped(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        _new_run(store)
        key = "cycle_completed:t:3:1"
        stopped = _event(ev.CYCLE_COMPLETED, cycle=3, attempt=1, failed=True, duration_ms=5.0)
        assert store.append("r", key, stopped) is not None
        # The same result again (its timing aside) stores nothing, as a resumed run re-records it.
        again = _event(ev.CYCLE_COMPLETED, cycle=3, attempt=1, failed=True, duration_ms=9.0)
        assert store.append("r", key, again) is None
        succeeded = _event(ev.CYCLE_COMPLETED, cycle=3, attempt=1, failed=False, duration_ms=5.0)
        with pytest.raises(
            DuplicateEventError, match=r"cycle_completed:t:3:1 is already stored .*failed: True"
        ):
            store.append("r", key, succeeded)
        assert [stored.event.metadata["failed"] for stored in store.events("r")] == [True]


def test_the_lease_refuses_a_newcomer_until_it_expires_then_fences_the_old_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CYCLEPLAN_LEASE_S", "0.5")
    path = tmp_path / "runs.db"
    with RunStore(path) as old, RunStore(path) as newcomer:
        _new_run(old)
        old.append("r", "run_started", _event(ev.RUN_STARTED, "r"))
        with pytest.raises(LeaseHeldError, match=r"being executed by another executor \(pid \d+ on "):
            newcomer.take_lease("r")
        # A connection without the lease cannot write a leased run either.
        with pytest.raises(LeaseError, match="holds none"):
            newcomer.append("r", "x", _event("x"))
        time.sleep(0.6)  # the old writer's process is alive (it is this one): only expiry lets anyone in
        taken = newcomer.take_lease("r")
        assert taken.epoch == 2
        with pytest.raises(LeaseLostError, match=r"another executor took this run over .*epoch 2"):
            old.append("r", "task_started:t", _event(ev.TASK_STARTED))
        for write in (
            lambda: old.append("r", "task_started:t", _event(ev.TASK_STARTED)),
            lambda: old.set_status("r", "complete"),
            lambda: old.renew_lease("r"),
        ):
            with pytest.raises(LeaseLostError):
                write()
        with pytest.raises(LeaseLostError):  # a group started too late is not noted: its starter stops it
            old.add_process("r", 12345, None, "t")
        old.remove_process("r", 12345)  # unwinding: nothing written, and no error
        assert old.processes("r") == []
        assert [stored.key for stored in newcomer.events("r")] == ["run_started"]
        newcomer.append("r", "task_started:t", _event(ev.TASK_STARTED))
        newcomer.release_lease("r")
        assert old.lease("r") is not None and old.lease("r").released  # type: ignore[union-attr]


def test_a_holder_whose_pid_is_provably_dead_is_taken_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        _new_run(store)
        lease = store.lease("r")
        assert lease is not None and store.lease_live(lease)
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        )
        dead_pid = int(gone.stdout)
    with sqlite3.connect(path) as db:  # as if that process had taken the lease, then been killed (-9)
        db.execute(
            "UPDATE leases SET pid = ?, pid_start = NULL, expires_ms = ?", (dead_pid, time.time() * 1e3 + 6e5)
        )
    with RunStore(path) as newcomer:
        stale = newcomer.lease("r")
        assert stale is not None and not newcomer.lease_live(stale)
        assert newcomer.take_lease("r").epoch == 2
    # On another machine the same pid proves nothing: wait for the lease to expire.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE leases SET machine = 'elsewhere', expires_ms = ?", (time.time() * 1e3 + 6e5,))
    with RunStore(path) as newcomer, pytest.raises(LeaseHeldError):
        newcomer.take_lease("r")


# --------------------------------------------------------------------------------------------------
# runs --check, and reading a damaged trace


@pytest.fixture
def sound(tmp_path: Path) -> tuple[Path, str]:
    """A completed run's store: tasks a (3 cycles) and b (2) on two lanes, 11 events."""
    scenario = tmp_path / "two.yaml"
    scenario.write_text(
        "roles: {backend: {lanes: 2}}\n"
        "tasks:\n"
        "  - {id: a, role: backend, cycles: 3, command: ['true']}\n"
        "  - {id: b, role: backend, cycles: 2, command: ['true']}\n"
    )
    store = tmp_path / "store" / "runs.db"
    options = ExecuteOptions(agent="command", retry_backoff_s=0, workdir=str(tmp_path))
    result = execute(plan(load_scenario(scenario)), options, store=store, progress="none")
    assert result.status == "complete"
    with RunStore(store) as runs:
        assert runs.check(result.run_id).ok
    return store, result.run_id


@pytest.fixture
def damaged(sound: tuple[Path, str]) -> tuple[Path, str]:
    """The completed run's store with event 4 deleted and event 6's metadata cut short."""
    store, run_id = sound
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM events WHERE seq = 4")
        db.execute("UPDATE events SET metadata = '{\"action\": ' WHERE seq = 6")
    return store, run_id


def test_runs_check_lists_a_deleted_and_a_corrupted_row_and_exits_1(
    cli: str, damaged: tuple[Path, str], tmp_path: Path
) -> None:
    store, run_id = damaged
    shown = subprocess.run(
        [cli, "runs", "--store", str(store), "--check", run_id], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 1, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "event 4 is missing (seq jumps from 3 to 5)"
    assert lines[1].startswith("event 6 (") and "cannot be decoded: its metadata is not JSON" in lines[1]
    as_json = subprocess.run(
        [cli, "runs", "--store", str(store), "--check", run_id, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["problems"] == lines and report["events"] == 10
    unknown = subprocess.run(
        [cli, "runs", "--store", str(store), "--check", "nope"], capture_output=True, text=True, check=False
    )
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr


DAMAGE = {
    "an event deleted": ("DELETE FROM events WHERE seq = 4", "event 4 is missing (seq jumps from 3 to 5)"),
    "an undecodable row": (
        "UPDATE events SET metadata = '{\"action\": ' WHERE seq = 6",
        "cannot be decoded: its metadata is not JSON",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_reader_reports_a_damaged_trace_in_one_line(
    cli: str, sound: tuple[Path, str], tmp_path: Path, damage: str
) -> None:
    store, run_id = sound
    statement, reported = DAMAGE[damage]
    with sqlite3.connect(store) as db:
        db.execute(statement)

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *command, "--store", str(store)], capture_output=True, text=True, check=False, cwd=tmp_path
        )

    checked = run("runs", "--check", run_id)
    assert checked.returncode == 1 and reported in checked.stdout.splitlines()[0], checked.stdout
    # The listing shows the run as damaged, says so in one line on stderr, and exits 1.
    listed = run("runs")
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    (line,) = [row.split() for row in listed.stdout.splitlines() if row.startswith(run_id)]
    assert line[1] == "damaged", listed.stdout
    assert listed.stderr.strip().splitlines() == [listed.stderr.strip()]
    assert listed.stderr.startswith(f"run {run_id}: ") and f"runs --check {run_id}" in listed.stderr
    as_json = run("runs", "--json")
    assert as_json.returncode == 1
    assert [row["damaged"] is not None for row in json.loads(as_json.stdout)] == [True]
    # Reading the trace says what is wrong in one line, exit 2, never a traceback.
    for command in (
        ["export", run_id],
        ["compare", run_id, "-n", "5"],
        ["calibrate", run_id, "-o", str(tmp_path / "calibrated.yaml")],
        ["execute", "--resume", run_id],
    ):
        failed = run(*command)
        assert failed.returncode == 2, (command, failed.stderr)
        message = failed.stderr.strip()
        assert len(message.splitlines()) == 1 and "Traceback" not in message, command
        assert reported in message and f"runs --check {run_id}" in message, command


def test_a_run_whose_row_cannot_be_read_is_reported_and_the_others_listed(
    cli: str, sound: tuple[Path, str], tmp_path: Path
) -> None:
    store, run_id = sound
    with sqlite3.connect(store) as db:
        db.execute(
            "INSERT INTO runs (run_id, created_ms, updated_ms, status, agent, source, scenario, options,"
            " plan) VALUES ('broken', 1, 1, 'complete', 'command', '', '', '{not json', '{}')"
        )
    listed = subprocess.run(
        [cli, "runs", "--store", str(store), "--json"], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert [row["run_id"] for row in json.loads(listed.stdout)] == [run_id]
    (message,) = listed.stderr.strip().splitlines()
    assert message.startswith("run broken: its row in the run store cannot be read (Expecting property name")


def test_the_check_accounts_for_every_cycle(sound: tuple[Path, str], tmp_path: Path) -> None:
    store, run_id = sound
    with RunStore(store) as runs:
        record = runs.run(run_id)
        stored = runs.events(run_id)
    # The same events, contiguous and decodable, less a's second cycle and b's ending.
    missing = {"cycle_completed:a:2:1", "task_complete:b"}
    copy = tmp_path / "copy.db"
    with RunStore(copy) as runs:
        runs.create_run(
            run_id,
            agent=record.agent,
            source=record.source,
            scenario=record.scenario,
            options=record.options,
            plan_json=record.plan_json,
        )
        for event in stored:
            if event.key not in missing:
                runs.append(run_id, event.key, event.event)
        runs.set_status(run_id, "complete")
        assert runs.check(run_id).problems == [
            "a: cycle 3 succeeded after only 1 of the cycles before it",
            "b: started, 2 of 2 cycles completed, never ended, yet the run is over",
        ]
        assert len(runs.trace(run_id)) == len(stored) - 2  # analysis may read it; the check says what is off


def test_resume_refuses_a_damaged_trace(damaged: tuple[Path, str]) -> None:
    store, run_id = damaged
    with pytest.raises(
        ExecutionError, match=rf"cannot be resumed: .*event 4 is missing.*runs --check {run_id}"
    ):
        resume(run_id, store=store, progress="none")
    with RunStore(store) as runs, pytest.raises(TraceError):
        runs.trace(run_id)


# --------------------------------------------------------------------------------------------------
# read-only stores


def test_a_read_only_store_can_be_read_not_written(damaged: tuple[Path, str]) -> None:
    store, run_id = damaged
    with RunStore(store, read_only=True) as runs:
        assert [record.run_id for record in runs.runs()] == [run_id]
        with pytest.raises(StoreError, match="cannot be written"):
            runs.set_status(run_id, "failed")
        with pytest.raises(StoreError, match="cannot be written"):
            runs.take_lease(run_id)


def test_a_store_on_a_read_only_mount_is_listed_and_refuses_execute(cli: str, tmp_path: Path) -> None:
    scenario = tmp_path / "one.yaml"
    scenario.write_text(
        "roles: {backend: {lanes: 1}}\ntasks:\n  - {id: a, role: backend, cycles: 1, command: ['true']}\n"
    )
    folder = tmp_path / "store"
    options = ExecuteOptions(agent="command", retry_backoff_s=0, workdir=str(tmp_path))
    result = execute(plan(load_scenario(scenario)), options, store=folder / "runs.db", progress="none")
    store = folder / "runs.db"
    script = " && ".join(
        [
            f"mount --bind -o ro {folder} {folder}",
            f"{cli} runs --store {store} --json > {tmp_path}/runs.json",
            f"{cli} export {result.run_id} --store {store} > {tmp_path}/trace.jsonl",
            f"{cli} runs --store {store} --check {result.run_id}",
            f"({cli} execute --resume {result.run_id} --store {store} 2> {tmp_path}/resume.err; "
            f"echo $? > {tmp_path}/resume.rc)",
            f"({cli} execute {scenario} --agent command --store {store} 2> {tmp_path}/execute.err; "
            f"echo $? > {tmp_path}/execute.rc)",
        ]
    )
    probe = f"mount --bind -o ro {folder} {folder} && ! touch {folder}/probe 2>/dev/null"
    try:
        mountable = subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        mountable = None
    if mountable is None or mountable.returncode != 0:
        pytest.skip("cannot mount a folder read-only here (unshare -rm, mount --bind -o ro)")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [row["run_id"] for row in json.loads((tmp_path / "runs.json").read_text())] == [result.run_id]
    assert len((tmp_path / "trace.jsonl").read_text().splitlines()) == result.summary["events"]
    for name in ("resume", "execute"):
        assert (tmp_path / f"{name}.rc").read_text().strip() == "2"
        message = (tmp_path / f"{name}.err").read_text()
        assert (
            "cannot be written (it is on a read-only file system)" in message and "Traceback" not in message
        )


def test_lease_rows_name_their_holder(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        _new_run(store)
        lease = store.lease("r")
        assert isinstance(lease, Lease)
        assert lease.pid == os.getpid() and lease.epoch == 1 and not lease.released
        assert store.holds_lease("r")
        unleased = RunStore(tmp_path / "other.db")
        _new_run(unleased, lease=False)  # an import: never leased, written without one
        unleased.append("r", "run_started", _event(ev.RUN_STARTED, "r"))
        assert unleased.lease("r") is None
        unleased.close()


@pytest.mark.parametrize("fenced", [True, False])
def test_an_executor_that_lost_its_run_stops_its_own_agent_and_nothing_found_by_marks(
    tmp_path: Path, fenced: bool
) -> None:
    """The new owner's agent for the same cycle and attempt carries the same marks as the stale one's:
    only an executor that still owns the run may stop processes by their marks."""
    import asyncio

    from cycleplan.executor.processes import ProcessRegistry, run_in_group

    marks = {"CYCLEPLAN_RUN_ID": "r", "CYCLEPLAN_TASK": "t", "CYCLEPLAN_CYCLE": "1", "CYCLEPLAN_ATTEMPT": "1"}
    env = {"PATH": os.environ["PATH"], **marks}
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        _new_run(store)
        registry = ProcessRegistry(store, "r")
        other = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
        try:

            async def scenario() -> int:
                own = asyncio.create_task(
                    run_in_group(
                        ["sleep", "60"],
                        cwd=tmp_path,
                        env=env,
                        stdout=tmp_path / "out",
                        stderr=tmp_path / "err",
                        registry=registry,
                        task="t",
                        grace_s=0.5,
                    )
                )
                while not registry.alive:
                    await asyncio.sleep(0.01)
                (pid,) = registry.alive
                if fenced:
                    with sqlite3.connect(path) as db:  # another executor took the run over
                        db.execute("UPDATE leases SET owner = 'newcomer', epoch = 2")
                    with pytest.raises(LeaseLostError):
                        store.renew_lease("r")
                own.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await own
                return pid

            pid = asyncio.run(scenario())
            assert registry.fenced is fenced
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # its own agent is stopped either way
            if not fenced:
                other.wait(timeout=5)
            assert (other.poll() is None) is fenced, "only the run's owner stops processes by their marks"
        finally:
            if other.poll() is None:
                other.kill()
                other.wait()


def test_an_agent_started_after_the_take_over_is_stopped_at_once(tmp_path: Path) -> None:
    import asyncio

    from cycleplan.executor.processes import ProcessRegistry, run_in_group

    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        _new_run(store)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE leases SET owner = 'newcomer', epoch = 2")
        registry = ProcessRegistry(store, "r")
        marker = tmp_path / "ran"
        started = time.monotonic()
        with pytest.raises(LeaseLostError):
            asyncio.run(
                run_in_group(
                    ["sh", "-c", f"sleep 2; touch {marker}"],
                    cwd=tmp_path,
                    env={"PATH": os.environ["PATH"]},
                    stdout=tmp_path / "out",
                    stderr=tmp_path / "err",
                    registry=registry,
                    task="t",
                    grace_s=0.5,
                )
            )
        assert time.monotonic() - started < 1.5  # stopped at once, not after the command's two seconds
        time.sleep(max(0.0, started + 2.5 - time.monotonic()))
        assert not marker.exists() and registry.alive == {} and store.processes("r") == []
