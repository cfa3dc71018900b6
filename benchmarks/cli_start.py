"""Cold start of ``cycleplan --help`` against a bare ``python -c "import typer"``; prints figures.

Both are fresh processes of the same interpreter (the virtualenv's), so both pay for the interpreter and
site-packages start-up; the difference is what cycleplan imports and builds before printing its help.
They alternate, ``--rounds`` times each after two warm-up rounds (so the files are in the page cache,
as for a user typing commands); the median, minimum and maximum wall times are printed, with the
ratio of medians and the load average seen. ``-X importtime`` shows what the CLI imports, slowest first.

Two settings, both printed: with bytecode cached (as after any install; the cache goes to a temporary
``PYTHONPYCACHEPREFIX``, so that the checkout is left as it was) and with ``PYTHONDONTWRITEBYTECODE=1``
as in some sandboxes, where an editable checkout without ``__pycache__`` compiles cycleplan's modules
from source at every start (typer's were compiled when pip installed it).

    .venv/bin/python benchmarks/cli_start.py
    .venv/bin/python benchmarks/cli_start.py --rounds 40 --imports
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - began


def measure(rounds: int, env: dict[str, str]) -> dict[str, list[float]]:
    cli = [str(BIN / "cycleplan"), "--help"]
    bare = [sys.executable, "-c", "import typer"]
    times: dict[str, list[float]] = {"cycleplan --help": [], "import typer": []}
    for round_number in range(rounds + 2):
        for name, command in (("cycleplan --help", cli), ("import typer", bare)):
            seconds = wall(command, env)
            if round_number >= 2:
                times[name].append(seconds)
    return times


def show(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    for name, values in times.items():
        print(
            f"  {name:<17} median {1000 * statistics.median(values):6.1f} ms  "
            f"(min {1000 * min(values):.1f}, max {1000 * max(values):.1f}, {len(values)} runs)"
        )
    ratio = statistics.median(times["cycleplan --help"]) / statistics.median(times["import typer"])
    best = min(times["cycleplan --help"]) / min(times["import typer"])
    print(f"  ratio of medians {ratio:.2f}x, of minima {best:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--imports", action="store_true", help="also list the CLI's slowest imports")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as cache:
        cached = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = cache
        show("bytecode cached (as installed):", measure(args.rounds, cached))
    uncached = {key: value for key, value in os.environ.items() if key != "PYTHONPYCACHEPREFIX"}
    uncached["PYTHONDONTWRITEBYTECODE"] = "1"
    present = any((Path(__file__).resolve().parent.parent / "cycleplan").glob("cli/__pycache__/*.pyc"))
    show(
        f"PYTHONDONTWRITEBYTECODE=1 ({'a' if present else 'no'} cycleplan bytecode in the checkout):",
        measure(args.rounds, uncached),
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.imports:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import sys; sys.argv = ['cycleplan', '--help']; "
             "from cycleplan.cli import main; main()"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        rows = []
        for line in done.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                _, cumulative, module = (
                    part.strip() for part in line.removeprefix("import time:").split("|")
                )
                if cumulative.isdigit():
                    rows.append((int(cumulative), module))
        print("slowest imports (cumulative microseconds):")
        for cumulative, module in sorted(rows, reverse=True)[:15]:
            print(f"  {cumulative:>8}  {module}")


if __name__ == "__main__":
    main()
