"""Escaping of untrusted text (task names, descriptions, prompts) before it is shown.

Plotly renders a subset of HTML inside labels and hover text, and the page embeds text in HTML; both
get the escaped form, so a task called ``<script>`` shows as that text and never runs.
"""

from __future__ import annotations

import html


def safe(text: object) -> str:
    """``text`` with HTML special characters escaped (quotes included)."""
    return html.escape(str(text), quote=True)
