"""The API key: read from the environment only, handed to the SDK only, written nowhere.

:func:`api_key` reads ``ANTHROPIC_API_KEY`` (a missing key is a one-line :class:`BackendUnavailableError`).
:func:`child_environment` builds the environment of agent processes without the key unless the agent
needs it (Claude Code does; a scenario's own commands do not). :func:`redact` is the last line of
defence: everything the executor writes (events, artifacts, logs, the summary) passes through it, so even
an agent that echoes the key leaves ``[redacted]`` behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cycleplan.executor.backend import BackendUnavailableError

SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
"""Environment variables whose values are secrets."""

MIN_SECRET_LENGTH = 8
"""Shorter values are not redacted (they would blank out ordinary words)."""

REDACTED = "[redacted]"


def api_key(variable: str = "ANTHROPIC_API_KEY") -> str:
    """The API key from ``variable``, or a one-line error saying how to provide it."""
    key = os.environ.get(variable, "").strip()
    if not key:
        raise BackendUnavailableError(
            f"{variable} is not set; export your Anthropic API key in it "
            "(or rehearse offline with --agent emulated)"
        )
    return key


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values present in the environment, longest first."""
    environ = os.environ if environ is None else environ
    values = {environ.get(name, "").strip() for name in SECRET_VARIABLES}
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret value replaced by ``[redacted]``."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def child_environment(extra: Mapping[str, str], *, keep_secrets: bool = False) -> dict[str, str]:
    """The environment for an agent process: ours, plus ``extra``, without secrets unless asked."""
    env = dict(os.environ)
    if not keep_secrets:
        for name in SECRET_VARIABLES:
            env.pop(name, None)
    env.update(extra)
    return env


def redact_file(path: Path, secrets: Iterable[str] | None = None) -> None:
    """Rewrite ``path`` with every secret value replaced, if it holds any (agents' output files)."""
    values = [s.encode() for s in (secret_values() if secrets is None else secrets)]
    if not values:
        return
    try:
        data = path.read_bytes()
    except OSError:
        return
    cleaned = data
    for value in values:
        cleaned = cleaned.replace(value, REDACTED.encode())
    if cleaned != data:
        path.write_bytes(cleaned)
