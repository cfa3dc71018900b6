"""The API key and the environment: the key read from the environment only, handed to the SDK only,
written nowhere; agent processes given only the variables they need.

:func:`api_key` reads ``ANTHROPIC_API_KEY`` (a missing key is a one-line :class:`BackendUnavailableError`).
:func:`child_environment` builds the environment of agent processes from an allowlist, never a copy of
the executor's own: :data:`PASSED_VARIABLES` (and ``LC_*``), the ``CYCLEPLAN_*`` variables of the cycle,
the variables a user names with ``execute --pass-env NAME``, and for Claude Code (which needs the key)
``ANTHROPIC_*`` and ``CLAUDE_*``. :func:`hidden_environment` is the same list for a client that copies
the whole environment itself (the SDK): every other variable set empty. :func:`redact` is the last line
of defence: everything the executor writes (events, artifacts, logs, the summary, the run's stored
options, scenario and plan) passes through it, so even an agent that echoes the key leaves
``[redacted]`` behind, and so does a key pasted into a scenario (:mod:`cycleplan.core.redaction`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cycleplan.core.redaction import MIN_SECRET_LENGTH, REDACTED, redact_secrets
from cycleplan.executor.backend import BackendUnavailableError

SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
"""Environment variables whose values are secrets."""

PASSED_VARIABLES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ",
        "TMPDIR", "TMP", "TEMP", "VIRTUAL_ENV", "CI",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip
"""Variables every agent process gets from the executor's environment (with ``LC_*``): where programs
are, who and where the user is, the locale and terminal, temporary files, certificates and proxies."""

AGENT_PREFIXES = ("ANTHROPIC_", "CLAUDE_")
"""Prefixes of the variables an agent that calls the API itself (Claude Code) gets as well."""


def api_key(variable: str = "ANTHROPIC_API_KEY") -> str:
    """The API key from ``variable``, or a one-line error saying how to provide it."""
    key = os.environ.get(variable, "").strip()
    if not key:
        raise BackendUnavailableError(
            f"{variable} is not set; export your Anthropic API key in it "
            "(or rehearse offline with --agent emulated)"
        )
    return key


def passes(name: str, *, agent: bool = False, passed: Iterable[str] = ()) -> bool:
    """Whether variable ``name`` reaches an agent process (``agent``: one that calls the API itself)."""
    return (
        name in PASSED_VARIABLES
        or name.startswith("LC_")
        or name in passed
        or (agent and name.startswith(AGENT_PREFIXES))
    )


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values present in the environment, longest first."""
    environ = os.environ if environ is None else environ
    values = {environ.get(name, "").strip() for name in SECRET_VARIABLES}
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret value (the environment's, or ``secrets``) and every credential-shaped
    value replaced by ``[redacted]``."""
    return redact_secrets(text, secret_values() if secrets is None else secrets)


def child_environment(
    extra: Mapping[str, str], *, keep_secrets: bool = False, passed: Iterable[str] = ()
) -> dict[str, str]:
    """The environment of an agent process: the allowed variables of ours (``keep_secrets``: an agent
    that calls the API itself, with the key), the ones named in ``passed``, then ``extra``."""
    names = frozenset(passed)
    env = {
        name: value for name, value in os.environ.items() if passes(name, agent=keep_secrets, passed=names)
    }
    env.update(extra)
    return env


def hidden_environment(extra: Mapping[str, str], *, passed: Iterable[str] = ()) -> dict[str, str]:
    """For a client that starts its process with a copy of our whole environment and ``extra`` over it
    (the SDK): ``extra``, and every variable Claude Code would not get from :func:`child_environment`
    set empty."""
    names = frozenset(passed)
    env = {name: "" for name in os.environ if not passes(name, agent=True, passed=names)}
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
