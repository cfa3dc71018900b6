"""Presentation: text on a terminal (:mod:`.terminal`, :mod:`.render`, :mod:`.render_runs`), the live view of
a run (:mod:`.live`) and the interactive reports (:mod:`.report`). The only layer that imports rich and
plotly; it draws what the workflows and the parts below return and decides nothing about them.
"""
