"""Secrets by their shape: keys and tokens that must not be kept or shown, wherever they were pasted.

A key pasted into a scenario (a prompt, a command, a description) would otherwise travel into the run
store's copy of the scenario and plan, the run's options and the HTML reports. :func:`redact_secrets`
replaces every value that looks like a known kind of credential, and any ``also`` value given (the live
key of the environment, which the executor adds), with :data:`REDACTED`; :func:`find_secret` names the
first kind found, for refusing an input outright.

The shapes are those the providers document for their keys (they are built to be recognisable); a value
of some other shape is not found, so the executor also redacts the live key by value. A redacted value
keeps JSON valid: the shapes hold no quotes or backslashes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

SECRET_SHAPES: dict[str, re.Pattern[str]] = {
    "an Anthropic API key": re.compile(r"sk-ant-[A-Za-z0-9_-]{16,}"),
    "an OpenAI API key": re.compile(r"sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{32,}"),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "a Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "a private key": re.compile(  # up to its END line, or to the end of the string it sits in
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[^\"-]|-(?!----END))*(?:-----END [A-Z ]*PRIVATE KEY-----)?"
    ),
}
"""Each kind of credential, by the shape its provider gives it."""

MIN_SECRET_LENGTH = 8
"""Shorter ``also`` values are not redacted (they would blank out ordinary words)."""


def find_secret(text: str) -> str | None:
    """The kind of the first credential-shaped value in ``text`` (``"an Anthropic API key"``), or None."""
    for kind, shape in SECRET_SHAPES.items():
        if shape.search(text):
            return kind
    return None


def redact_secrets(text: str, also: Iterable[str] = ()) -> str:
    """``text`` with every credential-shaped value, and each of ``also``, replaced by ``[redacted]``."""
    for value in sorted((v for v in also if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    for shape in SECRET_SHAPES.values():
        text = shape.sub(REDACTED, text)
    return text
