"""Importers: runs done elsewhere, read from their own records into the run store like executed runs.

    >>> from cycleplan.workflows.importers import import_claude_code, store_run
    >>> imported = import_claude_code("~/.claude/projects/my-project")
    >>> run_id, summary = store_run(imported, ".cycleplan/runs.db")

Each importer is a module with one function from a path to an :class:`ImportedRun` (the synthesised
scenario and plan, the trace in the executor's event schema, the warnings met): :mod:`.claude_code`
(Claude Code transcripts) and :mod:`.one_state` (the ONE platform's cycle state file). :mod:`.run` holds
what they share and writes a run into the store, all or nothing. Importers read files and never write
them; bad input raises :class:`TraceImportError` with positioned messages.
"""

from __future__ import annotations

from cycleplan.workflows.importers.claude_code import import_claude_code
from cycleplan.workflows.importers.one_state import DEFAULT_IDLE_AFTER_MIN, import_one_state
from cycleplan.workflows.importers.run import ImportedRun, TraceImportError, store_run

__all__ = [
    "DEFAULT_IDLE_AFTER_MIN",
    "ImportedRun",
    "TraceImportError",
    "import_claude_code",
    "import_one_state",
    "store_run",
]
