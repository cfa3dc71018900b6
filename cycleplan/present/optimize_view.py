"""What ``optimize`` prints: the chosen configuration and its prediction, the runner-up and whether the
two differ beyond noise, the Pareto front of P90 makespan against mean cost, the choice at other budgets
(or deadlines), and how many replications the search spent.

A function from an :class:`~cycleplan.workflows.optimize.OptimizeResult` to a rich renderable, shown by
:mod:`cycleplan.present.terminal`; it computes nothing the result does not hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from cycleplan.core.wording import counted, duration
from cycleplan.present.terminal import CHOSEN, Verbosity, facts, heading, legend, styled, table

if TYPE_CHECKING:
    from cycleplan.workflows.optimize import ConfigurationEstimate, OptimizeResult

BLANK = Text("")


def _roles(estimate: ConfigurationEstimate) -> str:
    return ", ".join(
        f"{role} {estimate.lanes[role]}x {model.removeprefix('claude-')}"
        for role, model in estimate.models.items()
    )


def _bands(estimate: ConfigurationEstimate) -> str:
    makespan, cost = estimate.makespan_min, estimate.cost_usd
    chances = estimate.chances()
    return (
        f"makespan P50 {duration(makespan.p50)} [P10 {makespan.p10:,.0f} - P90 {makespan.p90:,.0f} min], "
        f"cost P50 ${cost.p50:,.2f} [P10 ${cost.p10:,.2f} - P90 ${cost.p90:,.2f}], mean ${cost.mean:,.2f}"
        + (f"; {chances}" if chances else "")
        + f" ({counted(estimate.replications, 'replication')})"
    )


def optimize_view(result: OptimizeResult, verbosity: Verbosity = Verbosity.NORMAL) -> RenderableType:
    """The choice, its bands, the runner-up, the Pareto front, the choice against the limit and the
    replications spent."""
    verbose = verbosity is Verbosity.VERBOSE
    goal = "P90 makespan" if result.objective == "makespan" else "mean cost"
    limits = []
    if result.budget_usd is not None:
        limits.append(f"P(cost > ${result.budget_usd:,.2f}) <= {result.risk:g}")
    if result.deadline_min is not None:
        limits.append(f"P(makespan > {duration(result.deadline_min)}) <= {result.risk:g}")
    parts: list[RenderableType] = [
        heading(
            f"{result.scenario or 'scenario'}: the least {goal}"
            + (f" with {' and '.join(limits)}" if limits else "")
            + f", over {counted(result.configurations, 'configuration')} of lanes and models"
        ),
        BLANK,
        facts(
            [
                ("chosen", styled(result.chosen.label, CHOSEN)),
                ("every role", _roles(result.chosen)),
                ("prediction", _bands(result.chosen)),
            ]
        ),
    ]
    if result.runner_up is not None:
        rows: list[tuple[str, RenderableType]] = [("runner-up", result.runner_up.label)]
        rows.append(("its prediction", _bands(result.runner_up)))
        versus = result.versus_runner_up
        if versus is not None:
            unit = "min" if versus.metric == "makespan_p90_min" else "USD"
            what = "P90 makespan" if versus.metric == "makespan_p90_min" else "mean cost"
            verdict = (
                "distinguishable: the chosen one is better beyond the noise"
                if versus.distinguishable
                else "not distinguishable: a statistical tie"
            )
            rows.append(
                (
                    "difference",
                    f"{what} {versus.difference:+,.2f} {unit} (95% CI {versus.ci95_low:+,.2f} to "
                    f"{versus.ci95_high:+,.2f}, paired bootstrap over "
                    f"{counted(versus.replications, 'common replication')}): {verdict}",
                )
            )
        parts += [BLANK, facts(rows)]
    front = table(["Pareto front", "makespan P90", "cost mean", "replications"], right={1, 2, 3})
    for estimate in result.pareto:
        mark = " *" if estimate.label == result.chosen.label else ""
        front.add_row(
            styled(estimate.label + mark, CHOSEN if mark else None),
            f"{estimate.makespan_min.p90:,.1f} min",
            f"${estimate.cost_usd.mean:,.2f}",
            str(estimate.replications),
        )
    parts += [BLANK, front]
    if result.by_limit:
        name = "budget" if result.objective == "makespan" else "deadline"
        moves = table([name, "choice", "makespan P90", "cost mean"], right={0, 2, 3})
        for choice in result.by_limit:
            moves.add_row(
                f"${choice.limit:,.2f}" if name == "budget" else duration(choice.limit),
                choice.label or "(nothing keeps it)",
                "" if choice.makespan_p90_min is None else f"{choice.makespan_p90_min:,.1f} min",
                "" if choice.cost_mean_usd is None else f"${choice.cost_mean_usd:,.2f}",
            )
        parts += [BLANK, moves]
    rounds = ", ".join(f"{each.kept}/{each.configurations} at {each.replications}" for each in result.rounds)
    share = result.replications_used / result.replications_exhaustive
    spent = [
        (
            "replications",
            f"{result.replications_used:,} of an exhaustive {result.replications_exhaustive:,} "
            f"({share:.1%}); {result.search} on common random numbers (seed {result.seed}), "
            f"{result.engine} engine",
        )
    ]
    if verbose:
        spent.append(("rounds (kept/tried at replications)", rounds))
        spent.append(
            ("ran on", f"{result.backend}, {counted(result.workers, 'worker')}, {result.runtime_s:.2f} s")
        )
    parts += [BLANK, facts(spent)]
    if verbosity is not Verbosity.QUIET:
        parts.append(
            legend(
                "* chosen. Pareto front: no other configuration is both faster (P90) and cheaper (mean), "
                "from the replications each got (the search gives few to the configurations it drops)."
            )
        )
    return Group(*parts)


__all__ = ["optimize_view"]
