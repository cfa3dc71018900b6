"""Another revision of this repository beside this checkout, for benchmarks that time both in one run.

:func:`installed` checks out ``revision`` in a scratch git worktree and installs it and this checkout
each into a folder of its own (no dependencies: they come from the running environment); a benchmark
then runs its probe in a fresh process per side with ``PYTHONPATH`` set to that side's folder, alternating
the sides so that a busy machine slows both alike.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sides:
    """Where each side is installed, and where the old side's source (its own benchmarks) is."""

    old_site: Path
    new_site: Path
    old_source: Path
    scratch: Path


def _install(source: Path, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
    )  # fmt: skip


@contextmanager
def installed(revision: str) -> Iterator[Sides]:
    """``revision`` and this checkout, installed side by side in a scratch folder (removed afterwards)."""
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        worktree = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run(
            [*worktree, "add", "--detach", str(scratch / "old"), revision], check=True, capture_output=True
        )
        try:
            _install(scratch / "old", scratch / "old-site")
            _install(ROOT, scratch / "new-site")
            yield Sides(scratch / "old-site", scratch / "new-site", scratch / "old", scratch)
        finally:
            subprocess.run(
                [*worktree, "remove", "--force", str(scratch / "old")], check=False, capture_output=True
            )
