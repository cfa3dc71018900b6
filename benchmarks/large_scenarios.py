"""Wall time and peak memory of ``cycleplan plan`` and ``cycleplan simulate`` on large generated
scenarios; prints a table and checks the targets.

Scenarios, written to a scratch folder:

- ``after`` chains of 1,000 to 10,000 tasks: each task comes after the one before (4 roles of 2 lanes,
  3 cycles a task);
- event chains of the same sizes: each task waits, before its 2nd cycle, for the event the one before
  emits after its 2nd cycle;
- ``wide``: 10,000 tasks of 100 cycles (a million cycles a replication), 8 roles of 8 lanes, random
  dependencies on recent tasks, one task in ten publishing an event and about one in ten waiting for
  one, 1% failures per cycle and 3 retries (four attempts drawn per cycle; about one replication in
  a hundred has a task run out of retries, and those the fast engine hands to SimPy).

Every command runs in its own process: wall time from the clock, peak memory (RSS) from ``os.wait4``;
each chain is planned ``--repeats`` times and the medians are shown.
``plan`` writes its plan with ``-o``; ``simulate`` reads that file back (plans of 10,000 tasks take
several MB, more than a scenario file may), so the table also shows that what ``plan -o`` writes is read.

Targets: ``simulate`` of the wide plan at 1,000 replications stays under its default memory limit
(2 GB); ``plan`` on the chains grows no worse than n log n in time and memory: the cost per n log n at
10,000 tasks is at most :data:`GROWTH_LIMIT` times that at 1,000, time measured as ``plan()`` in this
process (a process's start-up would hide the growth at 1,000 tasks), memory as the process's peak above
a 10-task chain's (the interpreter and imports). ``--quick`` simulates 256 replications instead of 1,000.

    .venv/bin/python benchmarks/large_scenarios.py
    .venv/bin/python benchmarks/large_scenarios.py --quick
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cycleplan.core.loading import load_scenario
from cycleplan.planner import plan

SIZES = (1_000, 2_000, 5_000, 10_000)
GROWTH_LIMIT = 1.5
"""The most the cost per n log n may grow from 1,000 to 10,000 tasks: 1 is n log n exactly, the rest is
room for timing noise on a shared machine; n^2 growth would show 7.5, n^1.5 about 2.4."""
MEMORY_TARGET_BYTES = 2_000_000_000
CLI = str(Path(sys.executable).with_name("cycleplan"))


def chain(tasks: int, kind: str) -> dict[str, Any]:
    """An ``after`` chain or an event chain of ``tasks`` tasks."""
    listed: list[dict[str, Any]] = []
    for index in range(tasks):
        task: dict[str, Any] = {"id": f"t{index}", "role": f"r{index % 4}", "cycles": 3}
        if kind == "after" and index:
            task["after"] = [f"t{index - 1}"]
        if kind == "event":
            if index + 1 < tasks:
                task["emits"] = {f"e{index}": 2}
            if index:
                task["waits"] = {f"e{index - 1}": 2}
        listed.append(task)
    roles = {f"r{number}": {"lanes": 2} for number in range(4)}
    return {"name": f"{kind} chain of {tasks}", "roles": roles, "tasks": listed}


def wide(tasks: int = 10_000, cycles: int = 100, seed: int = 7) -> dict[str, Any]:
    """``tasks`` tasks of ``cycles`` cycles on 8 roles of 8 lanes, random dependencies and sync points."""
    rng = np.random.default_rng(seed)
    roles = {
        f"role{number}": {
            "lanes": 8,
            "cycle": {"median_min": 4, "p90_min": 9},
            "failure": {"probability_per_cycle": 0.01, "max_retries": 3},
        }
        for number in range(8)
    }
    listed: list[dict[str, Any]] = []
    emitted: list[str] = []
    for index in range(tasks):
        task: dict[str, Any] = {"id": f"t{index}", "role": f"role{int(rng.integers(0, 8))}", "cycles": cycles}
        if index:
            picks = int(rng.integers(0, 3))
            after = sorted({f"t{int(rng.integers(max(0, index - 30), index))}" for _ in range(picks)})
            if after:
                task["after"] = after
        if rng.random() < 0.1:
            event = f"e{index}"
            task["emits"] = {event: int(rng.integers(1, cycles))}
            emitted.append(event)
        elif emitted and rng.random() < 0.1:
            task["waits"] = {emitted[int(rng.integers(0, len(emitted)))]: int(rng.integers(1, cycles + 1))}
        listed.append(task)
    return {"name": f"wide {tasks}x{cycles}", "roles": roles, "tasks": listed}


def run(arguments: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS in bytes of one ``cycleplan`` process; exits when it fails."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [CLI, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read() if process.stderr is not None else ""
    if process.returncode != 0:
        sys.exit(f"cycleplan {' '.join(arguments)} exited {process.returncode}: {errors.strip()}")
    return wall, usage.ru_maxrss * 1024


def median_run(arguments: list[str], repeats: int) -> tuple[float, int]:
    """The median wall seconds and peak RSS of ``repeats`` runs."""
    runs = [run(arguments) for _ in range(repeats)]
    return statistics.median(wall for wall, _ in runs), int(statistics.median(peak for _, peak in runs))


def plan_seconds(path: Path, repeats: int) -> float:
    """The median seconds of ``plan()`` on the scenario in ``path``, in this process (no start-up)."""
    scenario = load_scenario(path)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        plan(scenario)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def write(folder: Path, name: str, scenario: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    return path


def growth(values: dict[int, float]) -> float:
    """Cost per n log n at the largest size over that at the smallest."""
    small, large = min(values), max(values)
    return (values[large] / (large * math.log(large))) / (values[small] / (small * math.log(small)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="simulate 256 replications, not 1,000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="plan each chain this many times (median)")
    args = parser.parse_args()
    replications = 256 if args.quick else 1_000
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        tiny = write(folder, "tiny", chain(10, "after"))
        base = median_run(["plan", str(tiny), "-o", str(folder / "tiny.json")], args.repeats)
        print(f"\n{'command':<44} {'tasks':>7} {'wall s':>8} {'peak MB':>8} {'plan MB':>8}")
        for kind in ("after", "event"):
            rows: dict[int, tuple[float, int]] = {}
            inside: dict[int, float] = {}
            for size in SIZES:
                source = write(folder, f"{kind}-{size}", chain(size, kind))
                target = folder / f"{kind}-{size}.json"
                rows[size] = median_run(["plan", str(source), "-o", str(target)], args.repeats)
                inside[size] = plan_seconds(source, args.repeats)
                label = f"plan -o ({kind} chain)"
                megabytes = target.stat().st_size / 1e6
                wall, peak = rows[size]
                print(f"{label:<44} {size:>7,} {wall:>8.2f} {peak / 1e6:>8.0f} {megabytes:>8.1f}")
            time_ratio = growth(inside)
            memory_ratio = growth({size: max(peak - base[1], 1) for size, (_, peak) in rows.items()})
            print(
                f"  {kind} chain: plan() alone {inside[min(SIZES)]:.2f} s at {min(SIZES):,}, "
                f"{inside[max(SIZES)]:.2f} s at {max(SIZES):,}; cost per n log n at {max(SIZES):,} over "
                f"{min(SIZES):,}: time {time_ratio:.2f}, memory above start-up {memory_ratio:.2f} "
                f"(target <= {GROWTH_LIMIT})"
            )
            if time_ratio > GROWTH_LIMIT or memory_ratio > GROWTH_LIMIT:
                failed.append(f"plan of {kind} chains grows faster than n log n")
            if rows[max(SIZES)][0] > 60:
                failed.append(f"plan of a {max(SIZES):,}-task {kind} chain takes over a minute")
        source = write(folder, "wide", wide())
        target = folder / "wide.json"
        wall, peak = run(["plan", str(source), "-o", str(target)])
        megabytes = target.stat().st_size / 1e6
        label = "plan -o (wide, 100 cycles a task)"
        print(f"{label:<44} {10_000:>7,} {wall:>8.2f} {peak / 1e6:>8.0f} {megabytes:>8.1f}")
        wall, peak = run(
            [
                "simulate",
                str(target),
                "-n",
                str(replications),
                "--seed",
                str(args.seed),
                "-o",
                str(folder / "p.json"),
            ]
        )
        label = f"simulate -n {replications:,} (wide plan file)"
        print(f"{label:<44} {10_000:>7,} {wall:>8.2f} {peak / 1e6:>8.0f}")
        if peak > MEMORY_TARGET_BYTES:
            failed.append(
                f"simulate peaked at {peak / 1e6:,.0f} MB, above {MEMORY_TARGET_BYTES / 1e6:,.0f} MB"
            )
    print("\n" + ("targets met" if not failed else "targets missed: " + "; ".join(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
