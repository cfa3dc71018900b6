"""The simulator: a Plan and its stochastic model in, a Prediction with error bars out.

    >>> from cycleplan.sim import simulate
    >>> prediction = simulate(plan, replications=1000, seed=7)
    >>> prediction.summary("speedup").p50

Modules: :mod:`.layout` (what runs, from the Plan), :mod:`.programs` (each task's work, from its
draws), :mod:`.engine` (one replication in SimPy), :mod:`.fast` (every replication at once, as a
max-plus recursion, where the model is static), :mod:`.records` (what the engines record, measured as
arrays, and the trace they stand for), :mod:`.curves`
(cumulative tokens and cost over time), :mod:`.simulation` (the lifecycle over replications),
:mod:`.forecast` (the rest of a run from where it stands, on the fast engine's recursion),
:mod:`.race` (that rest under rate limits, every replication's race for the buckets at once),
:mod:`.sweep` (many configurations, on local processes or Dask), :mod:`.stats` (summaries) and
:mod:`.prediction` (the result). The draws live in
:mod:`cycleplan.core.draws`, the rate limits' buckets in :mod:`cycleplan.core.buckets` and the measuring
in :mod:`cycleplan.core.metrics`, shared with the executor,
which this package never imports. SimPy is imported only when a simulation is run, not by
``import cycleplan.sim`` or :mod:`.prediction`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cycleplan.sim.layout import SimulationError
    from cycleplan.sim.prediction import Prediction
    from cycleplan.sim.shape import DISPATCH_MODES
    from cycleplan.sim.simulation import ENGINES, ReplicationRun, cycle_minutes, run_replication, simulate
    from cycleplan.sim.stats import Summary

__all__ = [
    "DISPATCH_MODES",
    "ENGINES",
    "Prediction",
    "ReplicationRun",
    "SimulationError",
    "Summary",
    "cycle_minutes",
    "run_replication",
    "simulate",
]

_HOMES = {
    "DISPATCH_MODES": "cycleplan.sim.shape",
    "Prediction": "cycleplan.sim.prediction",
    "SimulationError": "cycleplan.sim.layout",
    "Summary": "cycleplan.sim.stats",
    "simulate": "cycleplan.sim.simulation",
    "ENGINES": "cycleplan.sim.simulation",
    "run_replication": "cycleplan.sim.simulation",
    "cycle_minutes": "cycleplan.sim.simulation",
    "ReplicationRun": "cycleplan.sim.simulation",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'cycleplan.sim' has no attribute {name!r}")
