"""Built-in templates: reusable plans of work that a scenario names with ``template: NAME``.

Each template lives in its own module and is registered in :data:`TEMPLATES`. Templates are plain
:class:`cycleplan.core.model.Template` values; nothing here reads files.
"""

from __future__ import annotations

from cycleplan.core.model import Template
from cycleplan.core.templates.one_100 import ONE_100

TEMPLATES: dict[str, Template] = {ONE_100.name: ONE_100}


def get_template(name: str) -> Template:
    """The built-in template called ``name`` (KeyError when there is none)."""
    return TEMPLATES[name]
