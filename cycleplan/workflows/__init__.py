"""The workflows on top of the planner, simulator, executor and run store: compare a run with its
prediction (:mod:`.comparison`, :mod:`.verdict`, :mod:`.bands`), calibrate a scenario from runs
(:mod:`.calibration`, :mod:`.loop_fit`, :mod:`.posterior`, writing it back with :mod:`.rewriting`),
backtest (:mod:`.backtest`), forecast a running run (:mod:`.forecast`), sweep lane counts
(:mod:`.sweep`), and import outside work as runs or scenarios (:mod:`.importers`, :mod:`.psplib`).
They return data; presentation draws it.
"""
