"""A run's result in numbers: its stored trace measured by :func:`cycleplan.core.metrics.metrics`.

The store keeps real times. A rehearsal at ``--time-scale X`` ran X times faster than the scenario's
clock, so :func:`scenario_trace` stretches its times back (timestamps from the run's start, and the
``*_ms`` fields of cycles) before measuring, so that an emulated run's minutes are the scenario's, as the
simulator's are. It also takes out the time a run stood stopped (Ctrl-C or a killed executor) before
``--resume`` picked it up: from the last event before each ``run_resumed`` to that event. Work a killed
executor did after its last recorded event is lost with it and counts as stopped time.

The sequential baseline, and so the speedup, counts every attempt's work and handoff once, on one lane,
subagents' included and race members that lost left out: what one agent doing everything would take.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from cycleplan.core.metrics import MS_PER_MIN, metrics
from cycleplan.core.model import Event, Plan
from cycleplan.core.wording import SEQUENTIAL_BASELINE, counted, minutes
from cycleplan.executor import events as ev
from cycleplan.store.runs import RunStore

SCALED_FIELDS = ("duration_ms", "sync_wait_ms", "sync_ms", "rate_limit_wait_ms", "latency_ms", "blocked_ms")


def stopped_spans(trace: Sequence[Event]) -> list[tuple[float, float]]:
    """``(from, to)`` timestamps of each stretch a run stood stopped: from the last event before each
    ``run_resumed`` to it."""
    spans: list[tuple[float, float]] = []
    for previous, event in itertools.pairwise(trace):
        if event.action == ev.RUN_RESUMED and event.timestamp > previous.timestamp:
            spans.append((previous.timestamp, event.timestamp))
    return spans


def running_ms(trace: Sequence[Event]) -> float:
    """Real milliseconds the run of ``trace`` was going, from its first event to its last, the stretches
    it stood stopped left out: where a resumed run's clock carries on from."""
    if not trace:
        return 0.0
    idle = sum(end - begin for begin, end in stopped_spans(trace))
    return trace[-1].timestamp - trace[0].timestamp - idle


def scenario_trace(trace: Sequence[Event], time_scale: float) -> list[Event]:
    """``trace`` on the scenario's clock: times since the first event, with the stopped stretches taken
    out, and cycle times, x ``time_scale``."""
    stopped = stopped_spans(trace)
    if (time_scale == 1.0 and not stopped) or not trace:
        return list(trace)
    origin = trace[0].timestamp

    def running_ms(timestamp: float) -> float:
        """Milliseconds the run was going between its start and ``timestamp``."""
        idle = sum(min(end, timestamp) - begin for begin, end in stopped if begin < timestamp)
        return timestamp - origin - idle

    scaled: list[Event] = []
    for event in trace:
        metadata = dict(event.metadata)
        if time_scale != 1.0:
            for name in SCALED_FIELDS:
                value = metadata.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metadata[name] = value * time_scale
        scaled.append(
            event.model_copy(
                update={"timestamp": origin + running_ms(event.timestamp) * time_scale, "metadata": metadata}
            )
        )
    return scaled


def sequential_min(trace: Sequence[Event]) -> float:
    """Minutes one lane would need for the same attempts: work and handoffs, race losers left out."""
    losers = {
        event.target_id
        for event in trace
        if event.action == ev.TASK_CANCELLED and event.metadata.get("reason") == "race_lost"
    }
    total = 0.0
    for event in trace:
        if event.action == ev.CYCLE_COMPLETED and event.target_id not in losers:
            meta = event.metadata
            total += float(meta.get("duration_ms", 0.0)) + float(meta.get("sync_ms", 0.0))
    return total / MS_PER_MIN


def run_summary(store: RunStore, run_id: str) -> dict[str, Any]:
    """The summary ``execute --json`` prints (and the store keeps with the run)."""
    record = store.run(run_id)
    plan = Plan.model_validate_json(record.plan_json)
    time_scale = float(record.options.get("time_scale", 1.0))
    trace = store.trace(run_id)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "status": record.status,
        "agent": record.agent,
        "scenario": record.scenario,
        "time_scale": time_scale,
        "events": len(trace),
    }
    if not trace or trace[0].action != ev.RUN_STARTED:
        return summary | {"makespan_min": 0.0, "speedup": None, "tokens_total": 0, "cost_usd": 0.0}
    scaled = scenario_trace(trace, time_scale)
    measured = metrics(scaled)
    sequential = sequential_min(scaled)
    ended = [e for e in trace if e.action in ev.TERMINAL]
    summary.update(
        {
            "makespan_min": measured.makespan_min,
            "sequential_min": sequential,
            "speedup": sequential / measured.makespan_min if measured.makespan_min > 0 else None,
            "planned_makespan_min": plan.makespan_min,
            "planned_speedup": plan.speedup,
            "tokens_total": measured.tokens_total,
            "input_tokens": measured.input_tokens,
            "cache_write_tokens": measured.cache_write_tokens,
            "cache_read_tokens": measured.cache_read_tokens,
            "output_tokens": measured.output_tokens,
            "cost_usd": measured.cost_usd,
            "tasks": {
                "total": len(plan.scenario.all_tasks()),
                "complete": sum(1 for e in ended if e.action == ev.TASK_COMPLETE),
                "failed": sum(1 for e in ended if e.action == ev.TASK_FAILED),
                "cancelled": sum(1 for e in ended if e.action == ev.TASK_CANCELLED),
            },
            "failed_cycles": measured.failed_cycles,
            "utilization": measured.utilization,
            "waits_min": measured.waits_min,
            "blocked_min": measured.blocked_min,
            "waste_min": measured.waste_min,
            "critical": measured.critical,
            "run_folder": str(store.run_folder(run_id)),
        }
    )
    landmarks = [e.action for e in trace if e.action in (ev.RUN_INTERRUPTED, ev.RUN_RESUMED, ev.RUN_COMPLETE)]
    if landmarks and landmarks[-1] == ev.RUN_INTERRUPTED:
        summary["resume"] = f"cycleplan execute --resume {run_id} --store {store.path}"
    return summary


def render_summary(summary: dict[str, Any]) -> str:
    """The few lines ``cycleplan execute`` prints when a run ends."""
    lines = [f"run {summary['run_id']}: {summary['status']}"]
    if "planned_makespan_min" in summary:
        speedup = summary.get("speedup")
        makespan = minutes(summary["makespan_min"])
        planned = minutes(summary["planned_makespan_min"])
        baseline = minutes(summary["sequential_min"])
        lines.append(f"  makespan   {makespan} (plan {planned})")
        if summary.get("status") == "complete":
            lines.append(
                f"  speedup    {'-' if speedup is None else f'{speedup:.2f}x'} "
                f"(plan {summary['planned_speedup']:.2f}x; {SEQUENTIAL_BASELINE} {baseline})"
            )
        else:
            # A run that stopped or failed part way did not do the work its speedup would be about.
            lines.append(
                f"  speedup    not measured: the run did not finish (plan {summary['planned_speedup']:.2f}x)"
            )
        lines.append(f"  tokens     {summary['tokens_total']:,}    cost ${summary['cost_usd']:,.4f}")
        tasks = summary["tasks"]
        lines.append(
            f"  tasks      {tasks['complete']} complete, {tasks['failed']} failed, "
            f"{tasks['cancelled']} cancelled of {tasks['total']}; "
            f"{counted(summary['failed_cycles'], 'failed attempt')}"
        )
        if summary.get("time_scale", 1.0) != 1.0:
            lines.append(
                f"  (a rehearsal at time scale {summary['time_scale']:g}: minutes are the scenario's)"
            )
        lines.append(f"  trace      cycleplan export {summary['run_id']} --format jsonl")
    stopped = summary.get("stopped_by")
    if isinstance(stopped, dict):
        lines.append(f"  stopped    by its {stopped.get('guard')}: {stopped.get('message', '')}")
    if "resume" in summary:
        more = ""
        if isinstance(stopped, dict):
            more = " --budget USD" if stopped.get("guard") == "budget" else " --deadline DURATION"
            more += "   (a larger one; without it, the run stops again)"
        lines.append(f"  continue   {summary['resume']}{more}")
    return "\n".join(lines)
