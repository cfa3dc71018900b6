"""The vocabulary of real agent work: agent loops, cache lifetimes, posteriors, subagents, models per cycle.

Each is written the way a user writes it, in YAML, through the one loader; what it may not say is refused
with the field's position and what to do.
"""

from __future__ import annotations

import pytest

from cycleplan.core.loading import LoadError, parse_scenario
from cycleplan.core.model import ModelPrice, Role
from cycleplan.core.prices import cost_usd

AGENTS = """\
name: a session with a subagent
roles:
  main:
    model: claude-opus-4-6
    tokens: {context_tokens: 21000, cache_ttl: 1h}
    calls:
      per_cycle: {median: 60, p90: 150}
      growth: {median: 900, p90: 5000}
      output: {median: 120, p90: 900}
      minutes: {median_min: 0.12, p90_min: 0.4}
      compaction: {threshold_tokens: 167000, summary_tokens: 15000, minutes: 1.3}
    posterior: {runs: 4, dof: 3, log_sd: {calls.per_cycle: 0.4, calls.growth: 0.2}}
  explorer: {model: claude-haiku-4-5}
tasks:
  - id: session
    role: main
    cycles: 2
    cycle_models: {1: claude-haiku-4-5}
  - id: explore
    role: explorer
    cycles: 1
    spawned_by: {task: session, cycle: 1}
"""


def test_a_scenario_with_an_agent_loop_and_a_subagent_loads() -> None:
    scenario = parse_scenario(AGENTS, "agents.yaml")
    main = scenario.role("main")
    assert main.calls is not None and main.calls.compaction is not None
    assert main.calls.per_cycle.median == 60
    assert main.tokens.cache_ttl == "1h"
    assert main.posterior is not None and main.posterior.log_sd["calls.per_cycle"] == 0.4
    session, explore = scenario.all_tasks()
    assert explore.spawned_by is not None and explore.spawned_by.task == "session"
    assert session.model_of(main, 1) == "claude-haiku-4-5"
    assert session.model_of(main, 2) == "claude-opus-4-6"


def test_a_role_without_the_new_knobs_is_as_before() -> None:
    role = Role()
    assert role.calls is None and role.posterior is None and role.tokens.cache_ttl == "5m"


def _errors(text: str) -> list[str]:
    with pytest.raises(LoadError) as caught:
        parse_scenario(text, "bad.yaml")
    return [str(error) for error in caught.value.errors]


SPAWN = "spawned_by: {task: session, cycle: 1}"


@pytest.mark.parametrize(
    ("replacement", "where", "says"),
    [
        ("spawned_by: {task: sesion, cycle: 1}", "spawned_by.task", "unknown task 'sesion'"),
        ("spawned_by: {task: session, cycle: 3}", "spawned_by.cycle", "has only 2 cycles"),
        (SPAWN + "\n    after: [session]", "after", "takes no 'after'"),
        (SPAWN + "\n    race: r", "race", "runs in no race group"),
    ],
)
def test_subagents_are_checked_with_their_position(replacement: str, where: str, says: str) -> None:
    errors = _errors(AGENTS.replace(SPAWN, replacement))
    assert any(where in error and says in error for error in errors), errors


def test_nothing_may_come_after_a_subagent() -> None:
    text = AGENTS + "  - id: later\n    role: main\n    cycles: 1\n    after: [explore]\n"
    errors = _errors(text)
    assert any("tasks.2.after" in e and "is a subagent" in e and "depend on 'session'" in e for e in errors)


def test_a_subagent_spawns_no_subagents() -> None:
    text = (
        AGENTS
        + "  - id: deeper\n    role: explorer\n    cycles: 1\n    spawned_by: {task: explore, cycle: 1}\n"
    )
    errors = _errors(text)
    assert any("subagents spawn no subagents" in e for e in errors), errors


def test_bad_loops_posteriors_and_cycle_models_are_refused() -> None:
    assert any(
        "per_cycle" in e for e in _errors(AGENTS.replace("{median: 60, p90: 150}", "{median: 0, p90: 1}"))
    )
    assert any("log_sd" in e for e in _errors(AGENTS.replace("calls.growth: 0.2", "calls.growth: 11")))
    assert any(
        "calls.size" in e or "log_sd" in e for e in _errors(AGENTS.replace("calls.growth", "calls.size"))
    )
    assert any(
        "cycle_models" in e and "only 2 cycles" in e
        for e in _errors(AGENTS.replace("{1: claude", "{3: claude"))
    )
    assert any("cache_ttl" in e for e in _errors(AGENTS.replace("cache_ttl: 1h", "cache_ttl: 2h")))


def test_one_hour_cache_writes_cost_twice_the_input_price() -> None:
    price = ModelPrice(input_per_mtok=5.0, output_per_mtok=25.0)
    assert price.cache_write == pytest.approx(6.25)
    assert price.cache_write_1h == pytest.approx(10.0)
    assert price.for_ttl("1h").cache_write == pytest.approx(10.0)
    assert price.for_ttl("5m") is price
    assert cost_usd(price, 0, 1_000_000, 0, 0) == pytest.approx(6.25)
    assert cost_usd(price, 0, 0, 0, 0, cache_write_1h_tokens=1_000_000) == pytest.approx(10.0)
    given = ModelPrice(input_per_mtok=5.0, output_per_mtok=25.0, cache_write_1h_per_mtok=9.0)
    assert given.cache_write_1h == 9.0
