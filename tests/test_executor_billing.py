"""The emulator bills any client as the API would: tokens from the request, a prompt cache by its
breakpoints, streamed answers, and agent loops driven by the scenario's draws."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Scenario
from cycleplan.executor.billing import (
    BLOCK_OVERHEAD_TOKENS,
    CHARS_PER_TOKEN,
    PromptCache,
    estimate_tokens,
    prompt_blocks,
    read_ledger,
)
from cycleplan.executor.emulator import SUBAGENT_MARK, TURN_HEADER, Emulator, read_turn, sse_events

LOOP = """
    name: loop
    roles:
      main:
        model: claude-sonnet-4-5
        calls:
          per_cycle: {median: 3, p90: 3}
          growth: {median: 300, p90: 300}
          output: {median: 90, p90: 90}
          minutes: {median_min: 0.001, p90_min: 0.001}
      helper: {model: claude-haiku-4-5, cycle: {kind: fixed, value_min: 0.001}}
    tasks:
      - {id: lead, role: main, cycles: 1}
      - {id: scout, role: helper, cycles: 1, spawned_by: {task: lead, cycle: 1}}
"""

READ_TOOL = {
    "name": "Read",
    "description": "Reads a file.",
    "input_schema": {
        "type": "object",
        "properties": {
            "file_path": {"type": "string"},
            "offset": {"type": "integer"},
            "limit": {"type": "integer"},
        },
        "required": ["file_path"],
    },
}
AGENT_TOOL = {
    "name": "Agent",
    "description": "Launch a new agent.",
    "input_schema": {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "prompt": {"type": "string"},
            "subagent_type": {"type": "string"},
            "model": {"type": "string", "enum": ["sonnet", "opus", "haiku"]},
            "run_in_background": {"type": "boolean"},
        },
        "required": ["description", "prompt"],
        "additionalProperties": False,
    },
}


def _scenario(text: str = LOOP) -> Scenario:
    return parse_scenario(textwrap.dedent(text))


def _text(chars: int) -> str:
    return ("lorem ipsum " * (chars // 12 + 1))[:chars]


def _body(system: str, messages: list[dict[str, Any]], *, ttl: str | None = None) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "system": [{"type": "text", "text": system, "cache_control": control}],
        "messages": messages,
    }


def _marked(text: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}],
    }


def test_the_estimator_counts_characters_and_a_cost_per_block() -> None:
    assert estimate_tokens({"type": "text", "text": "x" * 270}) == round(270 / CHARS_PER_TOKEN) + 25
    call = {"type": "tool_use", "id": "t", "name": "Read", "input": {"file_path": "/a"}}
    assert estimate_tokens(call) > BLOCK_OVERHEAD_TOKENS
    result = {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "y" * 27}]}
    assert estimate_tokens(result) == 10 + BLOCK_OVERHEAD_TOKENS
    assert estimate_tokens(READ_TOOL) > estimate_tokens({"type": "text", "text": "Reads a file."})


def test_a_read_is_the_longest_cached_prefix_and_the_rest_is_written() -> None:
    cache = PromptCache()
    system = _text(8_000)
    first = prompt_blocks(_body(system, [_marked("hello")]))
    bill = cache.bill(first, 0.0)
    assert bill.cache_read == 0 and bill.input_tokens == 0
    assert bill.cache_write == sum(block.tokens for block in first)
    cache.commit(first, bill, 0.0)
    # The next call moves its breakpoint to its newest block: it reads the earlier prefix, writes the rest.
    second_messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        _marked("more " * 50),
    ]
    second = prompt_blocks(_body(system, second_messages))
    again = cache.bill(second, 1.0)
    assert again.cache_read == sum(block.tokens for block in first)
    assert again.cache_write == sum(block.tokens for block in second) - again.cache_read
    cache.commit(second, again, 1.0)
    # Past its five minutes (counted from the last read), the prefix is written again.
    later = cache.bill(second, 1.0 + 5.01)
    assert later.cache_read == 0 and later.cache_write_5m == sum(block.tokens for block in second)


def test_the_one_hour_cache_lives_an_hour_and_writes_apart() -> None:
    cache = PromptCache()
    body = _body(_text(8_000), [_marked("hello")], ttl="1h")
    blocks = prompt_blocks(body)
    bill = cache.bill(blocks, 0.0)
    system_tokens = blocks[0].tokens
    assert (bill.cache_write_1h, bill.cache_write_5m) == (system_tokens, blocks[1].tokens)
    cache.commit(blocks, bill, 0.0)
    assert cache.bill(blocks, 30.0).cache_read == system_tokens
    assert cache.bill(blocks, 61.0).cache_read == 0


def test_short_prefixes_are_not_cached_and_the_text_after_the_last_breakpoint_is_input() -> None:
    cache = PromptCache()
    short = prompt_blocks(_body("You help.", [{"role": "user", "content": "hi"}]))
    bill = cache.bill(short, 0.0)
    assert bill.cache_write == bill.cache_read == 0 and bill.input_tokens == sum(b.tokens for b in short)
    long = prompt_blocks(_body(_text(8_000), [{"role": "user", "content": "hi"}]))
    bill = cache.bill(long, 0.0)
    assert bill.cache_write == long[0].tokens and bill.input_tokens == long[1].tokens


def test_a_cached_prefix_more_than_twenty_blocks_back_is_not_found() -> None:
    cache = PromptCache()
    system = _text(8_000)
    opening: list[dict[str, Any]] = [{"type": "text", "text": f"part {i}"} for i in range(3)]
    first = prompt_blocks(
        _body(
            system,
            [
                {
                    "role": "user",
                    "content": [*opening[:-1], {**opening[-1], "cache_control": {"type": "ephemeral"}}],
                }
            ],
        )
    )
    cache.commit(first, cache.bill(first, 0.0), 0.0)

    def later(extra: int) -> int:
        more: list[dict[str, Any]] = [{"type": "text", "text": f"more {i}"} for i in range(extra)]
        more[-1] = {**more[-1], "cache_control": {"type": "ephemeral"}}
        blocks = prompt_blocks(_body(system, [{"role": "user", "content": [*opening, *more]}]))
        return cache.bill(blocks, 1.0).cache_read

    assert later(20) == sum(block.tokens for block in first)
    # Beyond the lookback only the system prompt, a breakpoint of its own, is found.
    assert later(21) == first[0].tokens


def test_a_turn_is_read_from_its_messages() -> None:
    tool_call = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
    }
    tool_result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}
    opening = {"role": "user", "content": "Primary working directory: /tmp/work\nDo it."}
    first = read_turn({"messages": [opening]})
    third = read_turn({"messages": [opening, tool_call, tool_result, tool_call, tool_result]})
    assert (first.calls_before, third.calls_before) == (0, 2)
    assert first.key == third.key and first.cwd == "/tmp/work"
    answer = {"role": "assistant", "content": [{"type": "text", "text": "done"}]}
    nxt = read_turn(
        {"messages": [opening, tool_call, tool_result, answer, {"role": "user", "content": "Next."}]}
    )
    assert nxt.calls_before == 0 and nxt.key != first.key
    sub = read_turn({"messages": [{"role": "user", "content": f"Look.\n\n{SUBAGENT_MARK}scout]"}]})
    assert sub.subagent == "scout"


def test_streamed_answers_are_the_apis_events_in_order() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [
            {"type": "text", "text": "reading"},
            {"type": "tool_use", "id": "t", "name": "Read", "input": {"file_path": "/a"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 3,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 7,
            "output_tokens": 40,
        },
    }
    events = [chunk.decode() for chunk in sse_events(message)]
    names = [chunk.split("\n", 1)[0].removeprefix("event: ") for chunk in events]
    assert names == [
        "message_start",
        "ping",
        *["content_block_start", "content_block_delta", "content_block_stop"] * 2,
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(chunk.split("data: ", 1)[1]) for chunk in events]
    assert data[0]["message"]["usage"]["output_tokens"] == 1 and data[0]["message"]["content"] == []
    assert data[6]["delta"] == {"type": "input_json_delta", "partial_json": '{"file_path": "/a"}'}
    assert data[-2]["delta"]["stop_reason"] == "tool_use" and data[-2]["usage"]["output_tokens"] == 40


def _client_loop(
    emulator: Emulator, workdir: Path, *, stream: bool, headers: dict[str, str] | None = None
) -> list[Any]:
    """A client's agent loop on the official SDK: call, run the tool asked for (a stub), call again."""
    from anthropic import Anthropic

    client = Anthropic(api_key="test-key", base_url=emulator.url, max_retries=0, default_headers=headers)
    system = [
        {
            "type": "text",
            "text": f"Primary working directory: {workdir}\n{_text(6_000)}",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Work on it."}]
    answers = []
    for _ in range(10):
        arguments: dict[str, Any] = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 2000,
            "system": system,
            "tools": [READ_TOOL, AGENT_TOOL],
            "messages": messages,
        }
        if stream:
            with client.messages.stream(**arguments) as streamed:
                answer = streamed.get_final_message()
        else:
            answer = client.messages.create(**arguments)
        answers.append(answer)
        if answer.stop_reason != "tool_use":
            break
        messages.append({"role": "assistant", "content": [block.model_dump() for block in answer.content]})
        results = [
            {"type": "tool_result", "tool_use_id": block.id, "content": "ok"}
            for block in answer.content
            if block.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})
    client.close()
    return answers


@pytest.mark.parametrize("stream", [False, True])
def test_a_clients_loop_runs_the_drawn_calls_and_is_billed_in_the_ledger(
    tmp_path: Path, stream: bool
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("line\n" * 200)
    ledger = tmp_path / "emulator.jsonl"

    async def run() -> list[Any]:
        # Cache entries live 5 scenario minutes: 30 s of wall time at this scale, so a busy machine's
        # pauses between calls cannot expire them (at 1000x they lived 0.3 s).
        async with Emulator(_scenario(), time_scale=10, ledger=ledger) as emulator:
            return await asyncio.to_thread(_client_loop, emulator, workdir, stream=stream)

    answers = asyncio.run(run())
    assert [answer.stop_reason for answer in answers] == ["tool_use", "tool_use", "end_turn"]
    read = next(block for block in answers[0].content if block.type == "tool_use")
    assert read.name == "Read" and read.input["file_path"] == str(workdir / "notes.txt")
    assert read.input["limit"] == int(300 * CHARS_PER_TOKEN / 60)
    assert sum(answer.usage.output_tokens for answer in answers) == 270  # 3 calls of 90
    rows = read_ledger(ledger)
    assert [row["call"] for row in rows] == [1, 2, 3] and {row["role"] for row in rows} == {"main"}
    for row, answer in zip(rows, answers, strict=True):
        usage = answer.usage
        assert row["message_id"] == answer.id and row["stream"] is stream
        assert row["input_tokens"] == usage.input_tokens
        assert row["cache_write_5m"] + row["cache_write_1h"] == usage.cache_creation_input_tokens
        assert row["cache_read_input_tokens"] == usage.cache_read_input_tokens
        assert row["output_tokens"] == usage.output_tokens and row["cost_usd"] > 0
    # Later calls read the system prompt the first wrote; the conversation after it (not marked for the
    # cache by this client) is uncached input, and grows.
    assert answers[0].usage.cache_creation_input_tokens == answers[1].usage.cache_read_input_tokens > 1024
    assert answers[2].usage.cache_read_input_tokens == answers[1].usage.cache_read_input_tokens
    assert answers[2].usage.input_tokens > answers[1].usage.input_tokens > answers[0].usage.input_tokens


def test_a_tagged_turn_asks_for_its_planned_subagents_and_knows_their_requests(tmp_path: Path) -> None:
    scenario = _scenario()
    ledger = tmp_path / "emulator.jsonl"

    async def run() -> tuple[list[Any], list[Any]]:
        async with Emulator(scenario, time_scale=1_000, ledger=ledger) as emulator:
            lead = await asyncio.to_thread(
                _client_loop, emulator, tmp_path, stream=True, headers={TURN_HEADER: "lead:1:1"}
            )
            spawn = next(block for block in lead[0].content if block.type == "tool_use")
            from anthropic import AsyncAnthropic

            client = AsyncAnthropic(api_key="k", base_url=emulator.url, max_retries=0)
            scout = await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=5_000,
                messages=[{"role": "user", "content": spawn.input["prompt"]}],
                extra_headers={TURN_HEADER: "lead:1:1"},
            )
            await client.close()
            return lead, [spawn, scout]

    lead, (spawn, scout) = asyncio.run(run())
    assert spawn.name == "Agent"
    assert spawn.input["description"] == "scout" and spawn.input["run_in_background"] is False
    assert spawn.input["model"] == "haiku" and spawn.input["prompt"].endswith(f"{SUBAGENT_MARK}scout]")
    assert lead[-1].stop_reason == "end_turn" and len(lead) == 3
    assert scout.stop_reason == "end_turn"
    rows = read_ledger(ledger)
    assert [(row["task"], row.get("subagent", False)) for row in rows][-1] == ("scout", True)
    assert rows[-1]["role"] == "helper"


def test_the_same_seed_plays_the_same_turns(tmp_path: Path) -> None:
    def outputs(seed: int) -> list[int]:
        async def run() -> list[Any]:
            async with Emulator(_scenario(), seed=seed, time_scale=1_000) as emulator:
                return await asyncio.to_thread(_client_loop, emulator, tmp_path, stream=False)

        return [answer.usage.output_tokens for answer in asyncio.run(run())]

    assert outputs(4) == outputs(4)


def test_count_tokens_answers_with_the_estimate() -> None:
    from anthropic import Anthropic

    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x" * 270}]}

    async def run() -> int:
        async with Emulator(_scenario()) as emulator:
            client = Anthropic(api_key="k", base_url=emulator.url, max_retries=0)
            counted = await asyncio.to_thread(client.messages.count_tokens, **body)
            client.close()
            return int(counted.input_tokens)

    assert asyncio.run(run()) == sum(block.tokens for block in prompt_blocks(body))


def test_a_compacting_client_gets_a_summary_and_its_tagged_turn_goes_on(tmp_path: Path) -> None:
    scenario = _scenario(
        """
        roles:
          main:
            model: claude-sonnet-4-5
            calls:
              per_cycle: {median: 3, p90: 3}
              growth: {median: 300, p90: 300}
              output: {median: 90, p90: 90}
              compaction: {threshold_tokens: 100000, summary_tokens: 500, output_tokens: 700, minutes: 0.001}
        tasks: [{id: lead, role: main, cycles: 1}]
        """
    )
    ledger = tmp_path / "emulator.jsonl"
    tools = [READ_TOOL]

    def turn(url: str) -> list[Any]:
        from anthropic import Anthropic

        client = Anthropic(
            api_key="k", base_url=url, max_retries=0, default_headers={TURN_HEADER: "lead:1:1"}
        )
        ask: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 4000, "tools": tools}
        opening: list[dict[str, Any]] = [{"role": "user", "content": "Work on it."}]
        first = client.messages.create(**ask, messages=opening)
        so_far = [
            *opening,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": first.content[-1].id, "content": "ok"}],
            },
        ]
        summary = client.messages.create(
            **ask,
            messages=[
                *so_far[:-1],
                {
                    "role": "user",
                    "content": [
                        *so_far[-1]["content"],
                        {
                            "type": "text",
                            "text": "Your task is to create a detailed summary of the conversation so far.",
                        },
                    ],
                },
            ],
        )
        # After compacting, the conversation starts again from the summary; the turn goes on.
        fresh = [{"role": "user", "content": summary.content[0].text}]
        second = client.messages.create(**ask, messages=fresh)
        so_far = [
            *fresh,
            {"role": "assistant", "content": [block.model_dump() for block in second.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": second.content[-1].id, "content": "ok"}],
            },
        ]
        third = client.messages.create(**ask, messages=so_far)
        client.close()
        return [first, summary, second, third]

    async def run() -> list[Any]:
        async with Emulator(scenario, time_scale=1_000, ledger=ledger) as emulator:
            return await asyncio.to_thread(turn, emulator.url)

    first, summary, second, third = asyncio.run(run())
    assert [m.stop_reason for m in (first, summary, second, third)] == [
        "tool_use",
        "end_turn",
        "tool_use",
        "end_turn",
    ]
    assert [block.type for block in summary.content] == ["text"] and summary.usage.output_tokens == 700
    rows = read_ledger(ledger)
    assert [(row["call"], row.get("compaction", False)) for row in rows] == [
        (1, False),
        (1, True),
        (2, False),
        (3, False),
    ]
