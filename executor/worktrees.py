"""``--worktrees``: a git worktree per lane, so agents working side by side never edit one checkout.

Each lane gets ``<run folder>/worktrees/<lane>``, a worktree of the repository that holds the working
directory, on a branch of its own (``cycleplan/<run id>/<lane>``) started from ``HEAD``. A resumed run
reuses the worktrees it made. Merging the branches back is left to the people who review them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from cycleplan.executor.backend import BackendUnavailableError


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackendUnavailableError("--worktrees needs git, and git is not on PATH") from None
    if done.returncode != 0:
        message = " ".join(done.stderr.split()) or f"git {' '.join(args)} failed"
        raise BackendUnavailableError(f"--worktrees: {message}")
    return done.stdout.strip()


def prepare_worktrees(
    repository: Path, run_folder: Path, run_id: str, lanes: Iterable[str]
) -> dict[str, Path]:
    """A worktree per lane (made now, or found from an earlier part of the run); lane -> its folder."""
    try:
        root = Path(_git(["rev-parse", "--show-toplevel"], repository))
    except BackendUnavailableError:
        raise BackendUnavailableError(
            f"--worktrees needs a git repository, and {repository} is not inside one"
        ) from None
    _git(["rev-parse", "--verify", "HEAD"], root)
    folders: dict[str, Path] = {}
    for lane in lanes:
        folder = (run_folder / "worktrees" / lane).resolve()
        if not (folder / ".git").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            _git(
                ["worktree", "add", "--quiet", "-b", f"cycleplan/{run_id}/{lane}", str(folder), "HEAD"], root
            )
        folders[lane] = folder
    return folders
