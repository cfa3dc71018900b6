"""The vocabulary every part speaks, and reading it from files.

:mod:`.model` (scenarios, plans, events), :mod:`.checks` (what a scenario must satisfy), :mod:`.rules`
(what a waiting task holds), :mod:`.templates`, :mod:`.prices`, :mod:`.draws` (duration distributions),
:mod:`.metrics` (one measurer for simulated and executed traces), :mod:`.wording` (counts, minutes and
percentiles in words); :mod:`.reading` and :mod:`.loading` read YAML with file and line positions.
Imports nothing above itself: no planner, simulator, executor, store, rich, plotly or typer.
"""
