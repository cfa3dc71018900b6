"""Headless Chromium for report tests: load a page from a file with the network off, and read back the
rendered DOM, the console and a screenshot. Tests skip with the reason when Chromium is missing."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium); browser tests skipped")


@dataclass(frozen=True)
class Loaded:
    dom: str
    log: str

    def console_errors(self) -> list[str]:
        """Console messages the page logged at error level, and uncaught exceptions."""
        lines = [line for line in self.log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
        return [line for line in lines if "ERROR" in line or "Uncaught" in line or "Error" in line]


def _flags(profile: str) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        # Network off: no name resolves and every request goes to a closed local port.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=8000",
        "--allow-file-access-from-files",
    ]


def load(page: Path) -> Loaded:
    """The page's DOM after its scripts ran, and Chromium's log (console messages included)."""
    browser = chromium_path()
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, *_flags(profile), "--dump-dom", page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return Loaded(done.stdout, done.stderr)


def screenshot(page: Path, target: Path, width: int = 1280, height: int = 2400) -> Path:
    browser = chromium_path()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                *_flags(profile),
                f"--window-size={width},{height}",
                f"--screenshot={target}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    return target
