"""Headless Chromium for report tests: load a page from a file with the network off, and read back the
rendered DOM, the console, a screenshot, or what a script run in the drawn page returns. Tests skip with
the reason when Chromium is missing."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def load(page: Path, width: int = 1280, height: int = 900) -> Loaded:
    """The page's DOM after its scripts ran in a ``width`` x ``height`` window, and Chromium's log (console
    messages included)."""
    browser = chromium_path()
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                browser,
                *_flags(profile),
                f"--window-size={width},{height}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
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


_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  let out;
  try { out = {value: (function () { PROBE_SCRIPT })()}; }
  catch (error) { out = {error: String((error && error.stack) || error)}; }
  const pre = document.createElement("pre");
  pre.id = "cycleplan-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 100));
</script>"""


def probe(page: Path, script: str, width: int = 1280, height: int = 900) -> Any:
    """Run ``script`` (the body of a JavaScript function) in a copy of ``page`` once it has loaded and
    plotly has drawn, in a ``width`` x ``height`` window, and return what it returns (as JSON). A script
    error fails the test with the script's stack."""
    text = page.read_text(encoding="utf-8")
    end = text.rindex("</body>")
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / page.name
        copy.write_text(text[:end] + _PROBE.replace("PROBE_SCRIPT", script) + text[end:], encoding="utf-8")
        loaded = load(copy, width, height)
    found = re.search(r'<pre id="cycleplan-probe">(.*?)</pre>', loaded.dom, re.S)
    assert found is not None, f"the probe did not run: {loaded.console_errors() or loaded.log[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert "error" not in result, result["error"]
    return result["value"]
