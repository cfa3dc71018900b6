"""Escaping of untrusted text (task names, descriptions, prompts) before it is shown.

Plotly renders a subset of HTML inside labels and hover text, and the page embeds text in HTML; both
get the escaped form, so a task called ``<script>`` shows as that text and never runs. A credential
pasted into a scenario's text is shown as ``[redacted]`` (:mod:`cycleplan.core.redaction`).
"""

from __future__ import annotations

import html

from cycleplan.core.redaction import redact_secrets


def safe(text: object) -> str:
    """``text`` with credentials redacted and HTML special characters escaped (quotes included)."""
    return html.escape(redact_secrets(str(text)), quote=True)
