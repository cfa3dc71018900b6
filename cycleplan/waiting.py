"""What a task holds while it waits: the coordination rule the planner, both simulator engines and the
executor share.

A task takes what it needs when it starts: its lane (the agent running it), the units of the shared
resources it ``requires`` and, under ``max_parallel``, one of the run's parallel slots. It keeps all of
them until it ends (completes, fails or is cancelled). Waiting does not give anything back:

- **on an event** (a ``waits`` entry before a later cycle): the agent is mid-task, its session open and
  its resources in use, waiting for another agent's word, as the ONE platform's ``watchFor`` does;
- **on its subagents** (fork-join): the parent is blocked, not finished;
- **on a rate limit**: the call is paused, the work is not.

This is the resource-constrained scheduling rule (an activity holds its renewable resources from start
to finish) that the planner's schedules, lower bounds and critical paths are built on, so a plan is a
schedule the executor can follow as it is. Releasing at a wait would let a later task slip into the gap
and run the plan in an order nobody predicted.

:data:`WHILE_WAITING` states the rule as data; each part that schedules tasks reads it and refuses to
run under a rule it does not implement (:func:`require_holding`), so the rule can only change for all of
them at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Holding:
    """What a waiting task keeps."""

    lane: bool
    resources: bool
    parallel_slot: bool


HOLDS_EVERYTHING = Holding(lane=True, resources=True, parallel_slot=True)

WHILE_WAITING: dict[str, Holding] = {
    "event": HOLDS_EVERYTHING,
    "subagents": HOLDS_EVERYTHING,
    "rate_limit": HOLDS_EVERYTHING,
}
"""What a task keeps while it waits, by what it waits on (``event``, ``subagents``, ``rate_limit``)."""


def holds_while_waiting(cause: str) -> Holding:
    """What a task waiting on ``cause`` keeps (a KeyError for a cause the rule does not name)."""
    return WHILE_WAITING[cause]


def require_holding(part: str) -> None:
    """Stop ``part`` (a planner or engine written for the hold-everything rule) if the rule says
    otherwise: a part that implements only this rule must not predict under another."""
    for cause, holding in WHILE_WAITING.items():
        if holding != HOLDS_EVERYTHING:
            raise NotImplementedError(f"{part} holds everything while a task waits on {cause}")
