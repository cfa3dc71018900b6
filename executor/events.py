"""The executor's event vocabulary: action names, what each carries, and each one's idempotency key.

Every event is the seed's record (:class:`cycleplan.core.model.Event`): ``type`` "task_event", ``actorId`` the
lane (``backend-1``; ``cycleplan`` for run-wide events), ``targetId`` the task id (the run id for
run-wide events), ``groupId`` the run id, ``timestamp`` in epoch milliseconds, and ``metadata.action``:

====================  ==========================================================================
run_started           the run begins (agent, time_scale, lanes, tasks)
run_resumed           ``--resume`` picks the run up again (``resume``: 1, 2, ...)
task_started          a lane starts a task (role, cycles, planned start); a subagent's lane when
                      its parent spawns it
task_resumed          a resumed run continues a task that was running (``cycle``: the next one)
cycle_completed       an attempt at a cycle ended (cycle, attempt, failed, started_at, duration_ms,
                      sync_wait_ms, sync_ms, rate_limit_wait_ms, the Messages API usage fields,
                      cost_usd; error when failed; interrupted when it was stopped; on the first
                      attempt at a cycle that spawns subagents, blocked_ms; for an agent loop,
                      calls and compaction_calls; from claude-code, api_calls, and with
                      spawned_within the subagents ran within the cycle)
<event name>          a task's ``emits`` after its cycle (``schema_ready``...; ``cycle``)
task_complete         every cycle done
task_failed           retries exhausted, timed out or the backend refused (``error``,
                      ``shouldCancelParallel``)
task_cancelled        never ran or was stopped (``reason``: dependency_failed, race_lost,
                      cancel_parallel, stalled, run_timeout, not_spawned; ``cause``: the task)
progress_update       what an agent did within a cycle, as its backend reported it: a tool call
                      (cycle, attempt, ``tool``, ``tool_use_id``, ``started_at``, ``duration_ms``;
                      ``failed`` when it did)
run_interrupted       Ctrl-C or SIGTERM stopped this executor (``resume``: 0, 1, ...), or a guard
                      did (``guard``: budget or deadline, :mod:`.guards`); the tasks it stopped
                      stay unfinished and ``--resume`` continues them
forecast_updated      a live forecast of the run's finish and cost (``actorId`` cycleplan; the
                      forecast's JSON: ``at_min``, ``finish_min_from_start``, ``cost_usd_total``,
                      ... as :mod:`.guards` describes); about the run, not part of its work, so
                      metrics and the trace checks pass over it
run_complete          the run is over (``status``: complete, failed, timeout)
====================  ==========================================================================

The key of an event is unique within its run, so re-recording it after a crash stores nothing new.
Runs stored before ``run_interrupted`` existed may end with ``run_complete`` of status ``interrupted``
and tasks cancelled with reason ``interrupted``; such a run is over.
"""

from __future__ import annotations

from typing import Any

from cycleplan.core.model import STANDARD_ACTIONS, Event

RUN_ACTOR = "cycleplan"
"""``actorId`` of run-wide events."""

RUN_STARTED = "run_started"
RUN_RESUMED = "run_resumed"
TASK_STARTED = "task_started"
TASK_RESUMED = "task_resumed"
CYCLE_COMPLETED = "cycle_completed"
TASK_COMPLETE = "task_complete"
TASK_FAILED = "task_failed"
TASK_CANCELLED = "task_cancelled"
RUN_INTERRUPTED = "run_interrupted"
RUN_COMPLETE = "run_complete"
PROGRESS_UPDATE = "progress_update"
FORECAST_UPDATED = "forecast_updated"

INTERRUPTED = "interrupted"
"""Why an executor stops on Ctrl-C or SIGTERM; what it stops is left unfinished, to be resumed."""

TERMINAL = frozenset({TASK_COMPLETE, TASK_FAILED, TASK_CANCELLED})
"""Actions that end a task."""

RESERVED = STANDARD_ACTIONS
"""Actions a scenario's own emitted events may not be called."""


def make_event(actor: str, target: str, run_id: str, timestamp_ms: float, **metadata: Any) -> Event:
    """An Event with ``metadata`` (which must include ``action``)."""
    return Event.model_validate(
        {
            "type": "task_event",
            "actorId": actor,
            "targetId": target,
            "groupId": run_id,
            "timestamp": timestamp_ms,
            "metadata": metadata,
        }
    )


def key_for(event: Event, *, resume: int = 0) -> str:
    """The idempotency key of ``event``: what makes it the same event when recorded again.

    ``resume`` is the run's resume count, for events that may legitimately happen once per resume.
    """
    action = event.action
    task = event.target_id
    meta = event.metadata
    if action in (RUN_STARTED, RUN_COMPLETE):
        return action
    if action in (RUN_RESUMED, RUN_INTERRUPTED):
        return f"{action}:{resume}"
    if action in (TASK_STARTED, TASK_COMPLETE, TASK_FAILED, TASK_CANCELLED):
        return f"{action}:{task}"
    if action == TASK_RESUMED:
        return f"{action}:{task}:{resume}"
    if action == CYCLE_COMPLETED:
        return f"{action}:{task}:{meta['cycle']}:{meta['attempt']}"
    if action == FORECAST_UPDATED:
        # Many per run, one at a time: the moment it was recorded tells them apart.
        return f"{action}:{resume}:{event.timestamp}"
    if action == PROGRESS_UPDATE:
        return f"{action}:{task}:{meta.get('cycle')}:{meta.get('attempt')}:{meta.get('tool_use_id')}"
    return f"emit:{task}:{action}"
