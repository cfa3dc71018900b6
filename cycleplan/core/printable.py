"""Text that is safe to show on a terminal or write to a log: no escape sequences, no control characters.

Strings from outside cycleplan (a scenario's free text, a transcript's folder and session names, an
agent's or a command's output) may carry terminal escape sequences: OSC 52 writes the clipboard, OSC 8
hides a link, CSI moves the cursor and rewrites what was shown, BEL and NUL disturb logs. Before such a
string reaches a terminal or a log, :func:`printable` removes every escape sequence (CSI, OSC, DCS, SOS,
PM, APC and the two-character ones, in their 7-bit and 8-bit forms) and shows every other C0 or C1
control character, and DEL, as a visible escape (``\\x07``), so nothing is lost and nothing is obeyed.
Newlines and tabs stay unless ``one_line`` is asked for.

No package does all of this (``click.unstyle`` and rich strip only CSI colours, and only some controls),
so it is a pair of regular expressions here, tested against each kind of sequence.
"""

from __future__ import annotations

import re

_SEQUENCE = re.compile(
    r"""
    (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?      # CSI ... final byte
  | (?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])                 # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?                  # ... up to BEL or ST (or the end)
  | \x1b[\x20-\x2f]*[\x30-\x7e]?                             # two-character (and nF) sequences
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` without escape sequences and with other control characters shown as ``\\xNN``; with
    ``one_line``, newlines and tabs too."""
    if text.isprintable():
        return text
    stripped = _SEQUENCE.sub("", text)
    return (_CONTROL_ONE_LINE if one_line else _CONTROL).sub(_visible, stripped)
