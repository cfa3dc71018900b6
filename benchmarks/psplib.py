"""The planner against the literature: PSPLIB single-mode RCPSP sets, optimum or best-known makespans.

    .venv/bin/python benchmarks/psplib.py --set j30 --algorithm list
    .venv/bin/python benchmarks/psplib.py --set j30 --algorithm improve --schedules 5000
    .venv/bin/python benchmarks/psplib.py --set j120 --algorithm improve --limit 60 --jobs 2
    .venv/bin/python benchmarks/psplib.py --set j30 --algorithm cpsat --time-limit 10

Reads the instances from ``../shared/data/psplib`` (relative to the repository root; ``--data`` to point
elsewhere) and exits with a message when they are absent. For each instance: the makespan, its deviation
from the optimum (j30, ``j30opt.sm``) or best known makespan (``jXXhrs.sm``) and from the critical-path
lower bound, and the algorithm's time (the ``schedule`` call alone, not reading the file). Prints a table
on stdout; ``--csv FILE`` also writes one row per instance. ``--limit N`` takes every k-th instance so
that the subset spreads over all parameter classes; ``--instances j3013_2,j3029_3`` runs only the named
ones; ``--verbose`` also prints one line per instance.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "psplib"
KNOWN = {"j30": "j30opt.sm", "j60": "j60hrs.sm", "j90": "j90hrs.sm", "j120": "j120hrs.sm"}


@dataclass(frozen=True)
class Row:
    instance: str
    makespan: float
    known: int | None
    critical_path: float
    seconds: float
    """Wall-clock time of the ``schedule`` call."""
    cpu_seconds: float
    """CPU time of the ``schedule`` call, all threads (steadier than wall time on a busy machine)."""
    proven_optimal: bool | None

    @property
    def above_known(self) -> float | None:
        return None if self.known is None else (self.makespan - self.known) / self.known

    @property
    def above_critical_path(self) -> float:
        return (self.makespan - self.critical_path) / self.critical_path


def instance_files(folder: Path, limit: int | None, names: Sequence[str] = ()) -> list[Path]:
    from cycleplan.workflows.psplib import instance_key

    files = sorted(folder.glob("*.sm"), key=lambda path: instance_key(path) or (0, 0))
    if names:
        missing = set(names) - {path.stem for path in files}
        if missing:
            raise SystemExit(f"--instances: not in {folder}: {', '.join(sorted(missing))}")
        files = [path for path in files if path.stem in set(names)]
    if limit is not None and limit < len(files):
        step = len(files) / limit
        files = [files[int(k * step)] for k in range(limit)]
    return files


def solve_one(
    path: Path, algorithm: str, rule: str | None, options: dict[str, Any], known: int | None
) -> Row:
    from cycleplan.planner import ALGORITHMS
    from cycleplan.planner.priority import passes
    from cycleplan.planner.problem import Problem, nominal_durations
    from cycleplan.workflows.psplib import psplib_to_scenario

    scenario = psplib_to_scenario(path)
    problem = Problem.from_scenario(scenario)
    began, began_cpu = time.perf_counter(), time.process_time()
    schedule = ALGORITHMS[algorithm](problem, rule, **options)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - began_cpu
    makespan = max(placed.end for placed in schedule.minutes.values())
    bound = passes(problem, nominal_durations(scenario)).critical_path_min
    return Row(path.stem, makespan, known, bound, seconds, cpu_seconds, schedule.proven_optimal)


def _solve_packed(args: tuple[Path, str, str | None, dict[str, Any], int | None]) -> Row:
    return solve_one(*args)


def summary(rows: Sequence[Row]) -> dict[str, float]:
    known = [row for row in rows if row.known is not None]
    result = {
        "instances": float(len(rows)),
        "above_critical_path_pct": 100 * statistics.fmean(row.above_critical_path for row in rows),
        "mean_s": statistics.fmean(row.seconds for row in rows),
        "median_s": statistics.median(row.seconds for row in rows),
        "max_s": max(row.seconds for row in rows),
        "mean_cpu_s": statistics.fmean(row.cpu_seconds for row in rows),
        "max_cpu_s": max(row.cpu_seconds for row in rows),
    }
    if known:
        result["above_known_pct"] = 100 * statistics.fmean(row.above_known or 0.0 for row in known)
        result["max_above_known_pct"] = 100 * max(row.above_known or 0.0 for row in known)
        result["at_known_pct"] = 100 * sum(row.makespan <= (row.known or 0) for row in known) / len(known)
    proven = [row for row in rows if row.proven_optimal is not None]
    if proven:
        result["proven_optimal"] = float(sum(bool(row.proven_optimal) for row in proven))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--set", dest="instance_set", default="j30", choices=sorted(KNOWN))
    parser.add_argument("--algorithm", default="list")
    parser.add_argument("--rule", default=None)
    parser.add_argument("--limit", type=int, default=None, help="at most N instances, spread over the set")
    parser.add_argument("--instances", default="", help="only these, by name (j3013_2,j3029_3)")
    parser.add_argument("--verbose", action="store_true", help="also print one line per instance")
    parser.add_argument("--schedules", type=int, default=None, help="schedule budget (improve)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per instance")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="instances solved side by side")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--csv", type=Path, default=None, help="write one row per instance")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from cycleplan.planner import ALGORITHMS
    from cycleplan.workflows.psplib import instance_key, read_known_makespans

    folder = args.data / args.instance_set
    if not folder.is_dir():
        print(
            f"skipped: no PSPLIB data at {folder} (expected ../shared/data/psplib from the repository root)"
        )
        return 0
    if args.algorithm not in ALGORITHMS:
        parser.error(f"--algorithm: choose one of {', '.join(ALGORITHMS)}")
    table_path = args.data / KNOWN[args.instance_set]
    known = read_known_makespans(table_path) if table_path.exists() else {}
    options: dict[str, Any] = {}
    if args.schedules is not None:
        options["schedules"] = args.schedules
    if args.time_limit is not None:
        options["time_limit_s"] = args.time_limit
    if args.seed is not None:
        options["seed"] = args.seed

    files = instance_files(folder, args.limit, [name for name in args.instances.split(",") if name])
    jobs = [
        (path, args.algorithm, args.rule, options, known.get(instance_key(path) or (0, 0))) for path in files
    ]
    rows: list[Row] = []
    began = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(_solve_packed, jobs))
    else:
        rows = [solve_one(*job) for job in jobs]
    wall = time.perf_counter() - began

    if args.csv is not None:
        with args.csv.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(
                handle, fieldnames=[*asdict(rows[0]), "above_known", "above_critical_path"]
            )
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {
                        **asdict(row),
                        "above_known": row.above_known,
                        "above_critical_path": row.above_critical_path,
                    }
                )

    if args.verbose:
        for row in rows:
            gap = "" if row.known is None else f" (known {row.known})"
            print(
                f"{row.instance:<12} makespan {row.makespan:g}{gap} {row.seconds:.2f} s"
                f" cpu {row.cpu_seconds:.2f} s proven {row.proven_optimal}"
            )
        print()
    result = summary(rows)
    reference = "optimum" if args.instance_set == "j30" else "best known"
    label = f"{args.algorithm}" + (f" ({args.rule})" if args.rule else "")
    if options:
        label += " " + " ".join(f"{key}={value}" for key, value in options.items())
    lines = [
        f"PSPLIB {args.instance_set}: {label}, {len(rows)} instances, {wall:.1f} s wall, {args.jobs} job(s)",
        "",
        f"{'measure':<34}{'value':>10}",
        f"{'-' * 34}{'-' * 10}",
    ]
    if "above_known_pct" in result:
        lines += [
            f"{'mean above ' + reference + ' (%)':<34}{result['above_known_pct']:>10.2f}",
            f"{'max above ' + reference + ' (%)':<34}{result['max_above_known_pct']:>10.2f}",
            f"{'at the ' + reference + ' (%)':<34}{result['at_known_pct']:>10.1f}",
        ]
    lines += [
        f"{'mean above critical path (%)':<34}{result['above_critical_path_pct']:>10.2f}",
        f"{'mean time per instance (s)':<34}{result['mean_s']:>10.3f}",
        f"{'median time per instance (s)':<34}{result['median_s']:>10.3f}",
        f"{'max time per instance (s)':<34}{result['max_s']:>10.3f}",
        f"{'mean CPU time per instance (s)':<34}{result['mean_cpu_s']:>10.3f}",
        f"{'max CPU time per instance (s)':<34}{result['max_cpu_s']:>10.3f}",
    ]
    if "proven_optimal" in result:
        lines.append(f"{'proven optimal':<34}{int(result['proven_optimal']):>10d}")
        solved = [row.seconds for row in rows if row.proven_optimal]
        if solved:
            lines.append(f"{'mean time when proven (s)':<34}{statistics.fmean(solved):>10.3f}")
            lines.append(f"{'median time when proven (s)':<34}{statistics.median(solved):>10.3f}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
