"""cycleplan: plan, predict and run parallel AI-agent work.

The package holds the vocabulary (:mod:`cycleplan.core.model`), reading files with positions
(:mod:`cycleplan.core.reading`) and validating them (:mod:`cycleplan.core.loading`), built-in templates, text
rendering and the CLI; the planner, simulator and executor install as ``cycleplan.planner``,
``cycleplan.sim`` and ``cycleplan.executor``. Importing it imports nothing heavy.
"""

__version__ = "0.1.0"
