"""Interactive reports: pure functions from results to plotly Figures, and one page writer.

:mod:`.plan_figures` draws a Plan, :mod:`.prediction_figures` a Prediction, :mod:`.compare_figures` an
actual trace against its prediction; :mod:`.page` assembles figures and headline numbers into one
self-contained HTML file. Figures compute nothing new: every number comes from the result they draw.
Scenario text is untrusted; :func:`.text.safe` escapes it before it reaches a figure or the page.
"""
