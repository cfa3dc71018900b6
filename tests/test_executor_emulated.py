"""The anthropic backend (the official SDK) against the loopback emulator of the Messages API.

Runs go at a high time scale, so a plan of hours takes a second or two. Faults are injected by the
emulator: 429 storms, 500s, 529s, rate limits that bind, agents that hang.
"""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import SCENARIOS

from cycleplan.core.draws import Conversation, draw_task
from cycleplan.core.loading import load_scenario, parse_scenario
from cycleplan.core.metrics import metrics
from cycleplan.core.model import Event, Plan, Scenario
from cycleplan.executor import ExecuteOptions, ExecutionError, RunResult, execute
from cycleplan.executor import events as ev
from cycleplan.executor.anthropic_api import AnthropicBackend, retry_after_s
from cycleplan.executor.audit import trace_problems
from cycleplan.executor.backend import BackendOptions, CycleRequest
from cycleplan.executor.emulator import Emulator, Faults
from cycleplan.executor.summary import scenario_trace
from cycleplan.planner import plan
from cycleplan.store import RunStore

# The SDK warns about every call to a model it knows is deprecated; the scenarios name such models.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

FAST = 20_000.0
"""Time scale of these rehearsals: a scenario minute lasts 3 ms."""


def _plan(text: str) -> Plan:
    return plan(parse_scenario(textwrap.dedent(text)))


def _run(
    the_plan: Plan, tmp_path: Path, faults: Faults | None = None, **options: Any
) -> tuple[RunResult, list[Event]]:
    settings: dict[str, Any] = {"agent": "emulated", "time_scale": FAST, "retry_backoff_s": 0.0}
    settings.update(options)
    store = tmp_path / "runs.db"
    result = execute(the_plan, ExecuteOptions(**settings), store=store, progress="none", faults=faults)
    with RunStore(store) as runs:
        trace = runs.trace(result.run_id)
    assert trace_problems(the_plan, trace) == []
    return result, trace


def _ends(trace: list[Event]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {e.target_id: (e.action, e.metadata) for e in trace if e.action in ev.TERMINAL}


def _cycles(trace: list[Event]) -> list[Event]:
    return [e for e in trace if e.action == ev.CYCLE_COMPLETED]


SMALL = """
    name: small
    spec: "Feature: course CRUD. Acceptance: users can create courses."
    roles:
      backend: {lanes: 1, cycle: {median_min: 5, p90_min: 8}}
      frontend: {lanes: 1, cycle: {median_min: 5, p90_min: 8}}
    tasks:
      - {id: backend, role: backend, cycles: 4, emits: {schema_ready: 2}}
      - {id: frontend, role: frontend, cycles: 3, waits: {schema_ready: 2}}
      - {id: quality, role: backend, cycles: 2, after: [backend, frontend]}
"""


def test_one_100_completes_and_is_measured_by_the_simulators_metrics(tmp_path: Path) -> None:
    the_plan = plan(load_scenario(SCENARIOS / "full-feature.yaml"))
    # max_tokens above every drawn output, so that no answer is cut short of what the model draws.
    result, trace = _run(the_plan, tmp_path, max_output_tokens=100_000)
    assert (result.status, result.exit_code) == ("complete", 0)
    ends = _ends(trace)
    assert len(ends) == 12 and {action for action, _ in ends.values()} == {ev.TASK_COMPLETE}
    # The summary is metrics() of the trace on the scenario's clock: the simulator's own measure.
    measured = metrics(scenario_trace(trace, FAST))
    summary = result.summary
    assert summary["makespan_min"] == measured.makespan_min
    assert summary["tokens_total"] == measured.tokens_total
    assert summary["cost_usd"] == pytest.approx(measured.cost_usd)
    assert summary["speedup"] > 1.0
    # Durations come back on the scenario's clock: one-100 with 6-minute cycles takes hours, not seconds.
    assert 200 < summary["makespan_min"] < 2000
    # The emulator billed exactly what the scenario's token model draws (no failures in this scenario).
    scenario = the_plan.scenario
    expected = 0
    for task in scenario.all_tasks():
        role = scenario.role(task.role)
        draws = draw_task(task, role, 0, 0)
        conversation = Conversation(role.tokens.context_tokens, role.tokens.history_growth, role.tokens.cache)
        for cycle in range(task.cycles):
            extra = role.sync.handoff_tokens * sum(1 for c in task.waits.values() if c == cycle + 1)
            tokens = conversation.request(draws.fresh_input[0][cycle], draws.output[0][cycle], extra)
            conversation.commit(draws.fresh_input[0][cycle], draws.output[0][cycle], extra)
            expected += tokens.read + tokens.output_tokens
    assert summary["tokens_total"] == expected
    first = next(e for e in _cycles(trace) if e.target_id == "backend")
    assert first.metadata["cache_creation_input_tokens"] > 0
    later = [e for e in _cycles(trace) if e.target_id == "backend"][1]
    assert later.metadata["cache_read_input_tokens"] > 0


def test_the_same_seed_draws_the_same_tokens(tmp_path: Path) -> None:
    the_plan = _plan(SMALL)
    one, _ = _run(the_plan, tmp_path / "a", seed=7)
    two, _ = _run(the_plan, tmp_path / "b", seed=7)
    other, _ = _run(the_plan, tmp_path / "c", seed=8)
    assert one.summary["tokens_total"] == two.summary["tokens_total"] != other.summary["tokens_total"]


def test_a_429_storm_is_waited_out_and_recorded(tmp_path: Path) -> None:
    result, trace = _run(_plan(SMALL), tmp_path, Faults(rate_limit_storm=25))
    assert result.status == "complete"
    cycles = _cycles(trace)
    assert sum(e.metadata.get("rate_limited", 0) for e in cycles) == 25
    assert sum(e.metadata["rate_limit_wait_ms"] for e in cycles) > 0
    assert result.summary["waits_min"]["rate_limit"] > 0


def test_a_server_that_keeps_refusing_is_given_up_on_not_hammered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request answered 429 with a tiny retry-after: the waits grow from a doubling floor, and the
    attempt gives up after the most retries allowed (8 here, to keep the test short)."""
    from cycleplan.executor import anthropic_api

    monkeypatch.setattr(anthropic_api, "MAX_RATE_LIMIT_RETRIES", 8)
    the_plan = _plan("roles: {a: {failure: {max_retries: 0}}}\ntasks: [{id: t, role: a, cycles: 1}]")
    scale = 100.0
    result, trace = _run(
        the_plan, tmp_path, Faults(rate_limit_storm=10_000, storm_retry_after_s=0.0001), time_scale=scale
    )
    assert result.status == "failed"
    (cycle,) = _cycles(trace)
    assert cycle.metadata["rate_limited"] == 9
    assert "gave up after 8 retries in a row" in cycle.metadata["error"]
    floors = sum(anthropic_api.RATE_LIMIT_FLOOR_S * 2**k / scale for k in range(8))
    assert cycle.metadata["rate_limit_wait_ms"] >= floors * 1000


def test_overload_529s_are_waited_out(tmp_path: Path) -> None:
    result, trace = _run(_plan(SMALL), tmp_path, Faults(overloaded_rate=0.4, seed=3))
    assert result.status == "complete"
    assert sum(e.metadata.get("rate_limited", 0) for e in _cycles(trace)) > 0


def test_occasional_500s_are_retried_inside_the_cycle(tmp_path: Path) -> None:
    result, trace = _run(_plan(SMALL), tmp_path, Faults(server_error_rate=0.3, seed=1))
    assert result.status == "complete"
    assert sum(e.metadata.get("transient_errors", 0) for e in _cycles(trace)) > 0


def test_persistent_500s_fail_the_task_and_cancel_its_dependents(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        roles: {backend: {failure: {max_retries: 1}}}
        tasks:
          - {id: backend, role: backend, cycles: 2}
          - {id: quality, role: backend, cycles: 1, after: [backend]}
        """
    )
    result, trace = _run(the_plan, tmp_path, Faults(server_error_rate=1.0))
    assert result.status == "failed"
    ends = _ends(trace)
    assert ends["backend"][0] == ev.TASK_FAILED and "HTTP 500" in ends["backend"][1]["error"]
    assert ends["quality"][1]["reason"] == "dependency_failed"
    assert [(e.metadata["attempt"], e.metadata["failed"]) for e in _cycles(trace)] == [(1, True), (2, True)]


def test_binding_rate_limits_slow_the_run_but_it_completes(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        rate_limits: {requests_per_min: 2, input_tokens_per_min: 40000}
        roles: {backend: {lanes: 4, cycle: {median_min: 1, p90_min: 1.5}}}
        tasks:
          - {id: a, role: backend, cycles: 3}
          - {id: b, role: backend, cycles: 3}
          - {id: c, role: backend, cycles: 3}
          - {id: d, role: backend, cycles: 3}
        """
    )
    result, trace = _run(the_plan, tmp_path)
    assert result.status == "complete"
    assert sum(e.metadata.get("rate_limited", 0) for e in _cycles(trace)) > 0
    # 12 requests at 2 a minute (the bucket starts with 2): at least 5 minutes.
    assert result.summary["makespan_min"] >= 5.0


def test_failed_cycles_drawn_from_the_role_are_refusals_whose_tokens_count(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        roles: {backend: {failure: {probability_per_cycle: 0.4, max_retries: 8}}}
        tasks: [{id: flaky, role: backend, cycles: 6}]
        """
    )
    result, trace = _run(the_plan, tmp_path, seed=5)
    assert result.status == "complete"
    failed = [e for e in _cycles(trace) if e.metadata["failed"]]
    assert failed and all(e.metadata["stop_reason"] == "refusal" for e in failed)
    assert all(e.metadata["output_tokens"] > 0 for e in failed)
    assert result.summary["failed_cycles"] == len(failed)


def test_a_hung_agent_times_out_and_the_rest_completes(tmp_path: Path) -> None:
    the_plan = _plan(
        """
        roles: {backend: {lanes: 2}}
        tasks:
          - {id: stuck, role: backend, cycles: 2, timeout_min: 60}
          - {id: fine, role: backend, cycles: 2}
        """
    )
    result, trace = _run(the_plan, tmp_path, Faults(hang_tasks=frozenset({"stuck"})))
    ends = _ends(trace)
    assert ends["stuck"][0] == ev.TASK_FAILED and ends["stuck"][1]["timeout"] is True
    assert ends["fine"][0] == ev.TASK_COMPLETE
    assert result.status == "failed"


def test_the_sdk_sends_the_spec_as_a_cached_prefix_and_keeps_the_conversation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-emulator")
    scenario: Scenario = parse_scenario(textwrap.dedent(SMALL))
    task = next(t for t in scenario.all_tasks() if t.id == "frontend")

    async def two_cycles() -> tuple[list[dict[str, Any]], list[Any]]:
        async with Emulator(scenario, time_scale=FAST, keep_requests=True) as emulator:
            backend = AnthropicBackend(scenario, BackendOptions(base_url=emulator.url, time_scale=FAST))
            await backend.start()
            outcomes = []
            previous: dict[str, Any] | None = None
            for cycle in (1, 2):
                request = CycleRequest(
                    run_id="r",
                    lane="frontend-1",
                    task=task,
                    role_name="frontend",
                    role=scenario.role("frontend"),
                    cycle=cycle,
                    attempt=1,
                    spec=scenario.spec,
                    artifacts=tmp_path,
                    workdir=tmp_path,
                    previous=previous,
                )
                outcome = await backend.run_cycle(request)
                outcomes.append(outcome)
                previous = {"cycle": cycle}
            await backend.close()
            return emulator.requests, outcomes

    requests, outcomes = asyncio.run(two_cycles())
    assert all(outcome.ok for outcome in outcomes)
    body = requests[1]["body"]
    assert body["model"] == scenario.role("frontend").model
    assert body["system"][0]["text"].endswith(scenario.spec)
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    roles = [message["role"] for message in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert "schema_ready" in body["messages"][-1]["content"][0]["text"]
    # Untagged requests reach the real API; the emulator is told the cycle only by the emulated agent.
    assert requests[0]["headers"] == {}
    # Untagged, it is billed from what it sends: its newest turn is marked, so all of it is cached.
    usage = outcomes[1].usage
    assert usage.input_tokens + usage.cache_write_tokens > 0 and usage.output_tokens > 0
    assert (tmp_path / "cycle-002.attempt-1.json").exists()


def test_retry_after_headers_are_read_in_milliseconds_first() -> None:
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_a_missing_key_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: str) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ExecutionError, match=r"^ANTHROPIC_API_KEY is not set"):
        execute(_plan(SMALL), ExecuteOptions(agent="anthropic"), store=tmp_path / "runs.db", progress="none")
    scenario = tmp_path / "small.yaml"
    scenario.write_text(textwrap.dedent(SMALL))
    done = subprocess.run(
        [cli, "execute", str(scenario), "--agent", "anthropic", "--store", str(tmp_path / "runs.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "ANTHROPIC_API_KEY is not set" in done.stderr


def test_the_emulator_answers_like_the_api_with_rate_limit_headers() -> None:
    from anthropic import AsyncAnthropic, RateLimitError

    scenario = parse_scenario(
        textwrap.dedent(
            """
            rate_limits: {requests_per_min: 1}
            roles: {backend: {cycle: {kind: fixed, value_min: 0.001}}}
            tasks: [{id: a, role: backend, cycles: 1}]
            """
        )
    )

    async def two_requests() -> tuple[dict[str, str], Any, dict[str, str]]:
        async with Emulator(scenario) as emulator:
            client = AsyncAnthropic(api_key="test-key", base_url=emulator.url, max_retries=0)
            raw = await client.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
            )
            message = await raw.parse()
            with pytest.raises(RateLimitError) as refused:
                await client.messages.create(
                    model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "again"}]
                )
            await client.close()
            return dict(raw.headers), message, dict(refused.value.response.headers)

    headers, message, refused = asyncio.run(two_requests())
    assert message.stop_reason == "max_tokens"  # the drawn answer is longer than 100 tokens
    assert message.usage.output_tokens == 100 and message.usage.input_tokens > 0
    assert headers["anthropic-ratelimit-requests-limit"] == "1"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert "anthropic-ratelimit-requests-reset" in headers
    assert 30 < float(refused["retry-after"]) <= 60 and "retry-after-ms" in refused


def test_a_rehearsal_meets_the_simulators_own_replication(tmp_path: Path) -> None:
    """Same seed, same draws: the emulated run bills what the simulated replication bills, to the token."""
    from cycleplan.sim import run_replication

    the_plan = plan(load_scenario(SCENARIOS / "course-crud.yaml"))
    simulated = run_replication(the_plan, 0, seed=3)
    result, _ = _run(the_plan, tmp_path, seed=3, time_scale=5_000, max_output_tokens=100_000)
    summary = result.summary
    assert summary["tokens_total"] == simulated.metrics.tokens_total
    assert summary["cost_usd"] == pytest.approx(simulated.metrics.cost_usd)
    # Time is real: the executor's own overhead, stretched by the time scale, comes on top.
    assert simulated.metrics.makespan_min <= summary["makespan_min"] * 1.02
    assert summary["makespan_min"] <= simulated.metrics.makespan_min * 1.75
