"""What a Messages API request costs, computed from the request itself: its tokens, its prompt cache.

The emulator bills a request that does not say which cycle it is (a real client's: Claude Code, an SDK)
from what it actually sends, as the API would:

- **Tokens of a request**, estimated per content block (each tool definition, each system block, each
  content block of each message): ``ceil(characters / CHARS_PER_TOKEN) + BLOCK_OVERHEAD_TOKENS``, where
  the characters are a block's text (a text block's text, a tool call's name and JSON input, a tool
  result's text, a tool definition's name, description and JSON schema). The two constants were fitted
  on the five real Claude Code sessions in the shared data: for each pair of consecutive calls whose
  cache reads grew by exactly the earlier call's writes, the characters of what the later call added
  (the earlier answer and the tool results after it) against the later call's cache writes plus its
  uncached input. ``benchmarks/token_estimator.py`` prints the estimator's error on them.
- **Prompt caching** by the request's ``cache_control`` breakpoints. The prompt is the sequence tools,
  system, messages. Each breakpoint's prefix (everything up to and including the marked block) is written
  to the cache with the breakpoint's ``ttl`` (``5m``, the default, or ``1h``). A request reads the longest
  prefix, ending at a block boundary at most :data:`LOOKBACK_BLOCKS` blocks before one of its breakpoints,
  that is cached for the same model and not expired (a read refreshes the entry's lifetime); what lies
  between that prefix and the last breakpoint is written (each stretch at the lifetime of the breakpoint
  that ends it); what follows the last breakpoint is uncached input. A prefix shorter than
  :data:`MIN_CACHEABLE_TOKENS` is not cached. Times are scenario minutes (the emulator's clock).

:class:`Ledger` keeps one JSON line per answered request in the run's folder. This module knows no HTTP,
no scenario and no executor; its functions are pure but for the cache and the ledger file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

CHARS_PER_TOKEN = 2.7
"""Characters of a block's text per token (fitted on real Claude Code sessions; see the docstring)."""
BLOCK_OVERHEAD_TOKENS = 25
"""Tokens each content block costs beyond its text (its framing, its type, a tool call's id)."""
LOOKBACK_BLOCKS = 20
"""How far before a breakpoint the API looks for a cached prefix, in blocks."""
MIN_CACHEABLE_TOKENS = 1024
"""A prefix shorter than this is not cached (the API's minimum for most models)."""
TTL_MIN = {"5m": 5.0, "1h": 60.0}
"""Minutes a cache entry lives after it is written or read, by ``cache_control.ttl``."""


def block_chars(block: Any) -> int:
    """Characters of a content block's text (see the module docstring)."""
    if isinstance(block, str):
        return len(block)
    if not isinstance(block, dict):
        return len(json.dumps(block, ensure_ascii=False, default=str))
    kind = block.get("type")
    if kind == "text":
        return len(str(block.get("text", "")))
    if kind == "thinking":
        return len(str(block.get("thinking", "")))
    if kind == "redacted_thinking":
        return len(str(block.get("data", "")))
    if kind in ("tool_use", "server_tool_use"):
        return len(str(block.get("name", ""))) + len(json.dumps(block.get("input", {}), ensure_ascii=False))
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return sum(block_chars(item) for item in content)
        return len(str(content or ""))
    if kind == "image":
        return 0
    if "input_schema" in block or kind in (None, "custom"):
        # A tool definition: what the model reads of it.
        schema = json.dumps(block.get("input_schema", {}), ensure_ascii=False)
        return len(str(block.get("name", ""))) + len(str(block.get("description", ""))) + len(schema)
    return len(json.dumps(block, ensure_ascii=False, default=str))


def estimate_tokens(block: Any) -> int:
    """Estimated tokens of one content block: its characters over :data:`CHARS_PER_TOKEN`, plus
    :data:`BLOCK_OVERHEAD_TOKENS`."""
    return math.ceil(block_chars(block) / CHARS_PER_TOKEN) + BLOCK_OVERHEAD_TOKENS


@dataclass(frozen=True)
class PromptBlock:
    """One block of a request's prompt, in the order the cache sees them."""

    tokens: int
    prefix: bytes
    """Digest of the prompt up to and including this block (the model's name included): the cache key
    of that prefix. ``cache_control`` markers are left out, so a prefix keeps its key when the next
    request moves its breakpoint further on."""
    ttl: str | None = None
    """``5m`` or ``1h`` when the block is a cache breakpoint."""


def _ttl(block: Any) -> str | None:
    if not isinstance(block, dict):
        return None
    control = block.get("cache_control")
    if not isinstance(control, dict):
        return None
    return "1h" if control.get("ttl") == "1h" else "5m"


def _canonical(block: Any) -> bytes:
    if isinstance(block, dict):
        block = {key: value for key, value in block.items() if key != "cache_control"}
    return json.dumps(block, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")


def prompt_blocks(body: dict[str, Any]) -> list[PromptBlock]:
    """The blocks of a request's prompt: each tool, each system block, each content block of each
    message (a string counts as one text block)."""
    items: list[tuple[str, Any]] = []
    for tool in body.get("tools") or []:
        items.append(("tool", tool))
    system = body.get("system")
    if isinstance(system, str):
        items.append(("system", {"type": "text", "text": system}))
    elif isinstance(system, list):
        items.extend(("system", block) for block in system)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role", ""))
        content = message.get("content")
        if isinstance(content, str):
            items.append((role, {"type": "text", "text": content}))
        elif isinstance(content, list):
            items.extend((role, block) for block in content)
    digest = hashlib.blake2b(str(body.get("model", "")).encode("utf-8"), digest_size=16)
    blocks: list[PromptBlock] = []
    for where, block in items:
        digest.update(where.encode("utf-8") + b"\0" + _canonical(block) + b"\0")
        blocks.append(PromptBlock(estimate_tokens(block), digest.copy().digest(), _ttl(block)))
    return blocks


@dataclass(frozen=True)
class CacheBill:
    """A request's input tokens by how they are billed."""

    input_tokens: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    read_until: int = -1
    """Index of the last block of the prefix read (-1: none)."""

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def total(self) -> int:
        return self.input_tokens + self.cache_write + self.cache_read


@dataclass
class _Entry:
    tokens: int
    ttl: str
    expires_min: float


class PromptCache:
    """The prompt cache of one organization (every client of one emulator shares it)."""

    def __init__(self, min_tokens: int = MIN_CACHEABLE_TOKENS) -> None:
        self.min_tokens = min_tokens
        self._entries: dict[bytes, _Entry] = {}

    def bill(self, blocks: Sequence[PromptBlock], now_min: float) -> CacheBill:
        """How ``blocks`` are billed at ``now_min``; changes nothing (see :meth:`commit`)."""
        cumulative: list[int] = []
        total = 0
        for block in blocks:
            total += block.tokens
            cumulative.append(total)
        breakpoints = [
            i for i, block in enumerate(blocks) if block.ttl is not None and cumulative[i] >= self.min_tokens
        ]
        if not breakpoints:
            return CacheBill(total, 0, 0, 0)
        read_until = -1
        for point in breakpoints:
            for i in range(point, max(point - LOOKBACK_BLOCKS - 1, -1), -1):
                if i <= read_until:
                    break
                entry = self._entries.get(blocks[i].prefix)
                if entry is not None and entry.expires_min >= now_min:
                    read_until = i
                    break
        read = cumulative[read_until] if read_until >= 0 else 0
        written = {"5m": 0, "1h": 0}
        done = read
        for point in breakpoints:
            if cumulative[point] > done:
                written[blocks[point].ttl or "5m"] += cumulative[point] - done
                done = cumulative[point]
        return CacheBill(total - done, written["5m"], written["1h"], read, read_until)

    def commit(self, blocks: Sequence[PromptBlock], bill: CacheBill, now_min: float) -> None:
        """Remember what a billed request wrote, and refresh what it read."""
        if bill.read_until >= 0:
            entry = self._entries.get(blocks[bill.read_until].prefix)
            if entry is not None:
                entry.expires_min = max(entry.expires_min, now_min + TTL_MIN[entry.ttl])
        total = 0
        for block in blocks:
            total += block.tokens
            if block.ttl is None or total < self.min_tokens:
                continue
            expires = now_min + TTL_MIN[block.ttl]
            entry = self._entries.get(block.prefix)
            if entry is None or entry.expires_min < expires:
                self._entries[block.prefix] = _Entry(total, block.ttl, expires)

    def __len__(self) -> int:
        return len(self._entries)


LEDGER_FILE = "emulator.jsonl"
"""The emulator's ledger, in the run's folder."""
LEDGER_FIELDS = (
    "at_ms",
    "duration_ms",
    "status",
    "model",
    "message_id",
    "input_tokens",
    "cache_write_5m",
    "cache_write_1h",
    "cache_read_input_tokens",
    "output_tokens",
    "cost_usd",
)
"""What every ledger row holds (rows may hold more: the role, task, cycle, attempt and call, the stop
reason, whether it streamed, the client's session)."""


class Ledger:
    """The emulator's own account of every request it answered: one JSON object a line, appended and
    flushed as each answer goes out, so that it is complete whenever the run is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The rows of a ledger file, in order (unreadable lines skipped)."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
