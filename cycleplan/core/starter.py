"""Commented starter scenarios that ``cycleplan init`` writes: the scenario format taught by example.

Each starter is YAML text that validates as it is; a test keeps it so.
"""

from __future__ import annotations

_HEADER = """\
# {name}: a cycleplan scenario.
# Check it:   cycleplan validate {name}.yaml
# Plan it:    cycleplan plan {name}.yaml            (add --lanes backend=2 to try more agents)
# Editors:    cycleplan schema -o cycleplan.schema.json, then point your YAML language server at it.

name: {name}
description: What this piece of work delivers, in a sentence.

# The shared specification every agent receives (the feature, its ontology, its acceptance criteria).
spec: |
  Feature: ...
  Acceptance: ...

# Optional: what a guide or a colleague promises, shown beside the plan and the prediction.
# claim: {{sequential_min: 300, parallel_min: 120, source: "the team's estimate"}}

# Optional: never run more than this many agents at once, whatever the roles allow.
# max_parallel: 4
"""

_ROLES = """
# A role is a kind of agent. lanes = how many agents of that kind run at once.
# Every field but lanes may be left out; the defaults are the ONE template's figures:
#   cycle: lognormal with median 3 min and 90% of cycles under 5 min (a cycle = one agent turn)
#   tokens: 12,000 tokens of context loaded per task (cached), ~1,200 fresh input and ~800 output per cycle
#   failure: no failures, 2 retries
roles:
  backend:
    lanes: 1
    model: claude-sonnet-4-5
    # cycle may also be {kind: gamma, mean_min: 3, cv: 0.4} or {kind: fixed, value_min: 3}
    cycle: {median_min: 3, p90_min: 5}
    tokens:
      context_tokens: 12000
      fresh_input: {median: 1200, p90: 2400}
      output: {median: 800, p90: 1800}
      cache: true
    failure: {probability_per_cycle: 0.02, max_retries: 2, cancel_parallel: false}
  frontend:
    lanes: 1
"""

_ONE_100 = """
# The ONE platform's 100-cycle template: foundation, backend (emits schema_ready after its 2nd cycle),
# frontend (waits for it), integration, auth, knowledge, quality, design, performance, deploy, docs.
# `cycleplan templates` shows every task. Roles the template uses and `roles` leaves out get one lane.
template: one-100

# Extra renewable resources: things tasks share besides agents.
resources:
  staging: {capacity: 1, description: the one staging server}

# Tasks listed here are added to the template's; one with a template task's id replaces it.
tasks:
  - id: load-test
    role: backend
    cycles: 3
    after: [deploy]
    requires: {staging: 1}
    prompt: Run the load test against staging and report p95 latency.
"""

_BLANK = """
resources:
  staging: {capacity: 1, description: the one staging server}

# A task: one role's agent works through `cycles` turns.
#   after:    tasks that must finish first
#   emits:    {event: N} publishes the event after the task's cycle N
#   waits:    {event: N} holds the agent before cycle N until the event arrives
#   race:     a group name; tasks of one race start together, the first to finish wins
#   requires: units of extra resources held while the task runs
#   prompt / command: what `cycleplan execute` runs (command is an argument list; shell: true for a string)
tasks:
  - id: schema
    role: backend
    cycles: 6
    emits: {schema_ready: 2}
    prompt: Design the database schema and the service layer.
  - id: pages
    role: frontend
    cycles: 6
    waits: {schema_ready: 1}
    prompt: Build the pages against the generated types.
  - id: smoke-test
    role: backend
    cycles: 2
    after: [schema, pages]
    requires: {staging: 1}
    command: [python, -c, "print('smoke test passed')"]
"""

STARTERS = {"one-100": _ONE_100, "blank": _BLANK}


def starter_text(template: str, name: str) -> str:
    """The starter scenario ``template`` (one of :data:`STARTERS`) for a scenario called ``name``."""
    return _HEADER.format(name=name) + _ROLES + STARTERS[template]
