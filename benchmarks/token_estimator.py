"""How far the emulator's token estimator is from what the API billed, on real Claude Code transcripts.

The emulator bills a real client's request from its content (:mod:`cycleplan.executor.billing`): each
content block costs ``ceil(characters / 2.7) + 25`` tokens. In a transcript, when a call's cache reads
are exactly the previous call's reads plus its writes (the conversation grew and nothing was evicted),
that call's cache writes plus its uncached input are the tokens of what was added since the previous
call: the previous answer and the tool results and messages after it. This benchmark estimates those
blocks and prints the error per call and in total, per session and over all of them. Answers holding
thinking are left out (the transcript keeps no thinking text, yet the model's thinking was billed).

The two constants were fitted on these same sessions, so the figures are in-sample; each session's own
line shows how much they vary from one session to another.

    .venv/bin/python benchmarks/token_estimator.py
    .venv/bin/python benchmarks/token_estimator.py --traces PATH --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

from cycleplan.executor.billing import CHARS_PER_TOKEN, estimate_tokens

SHARED = Path("/work/shared/data/traces/claude-code")


def pairs(path: Path) -> list[tuple[int, int]]:
    """(estimated, billed) tokens of what each clean call added, in one transcript file."""
    order: list[str] = []
    calls: dict[str, dict[str, Any]] = {}
    between: list[Any] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        message = record.get("message")
        if record.get("type") == "assistant" and isinstance(message, dict):
            key = str(message.get("id"))
            if key not in calls:
                calls[key] = {"usage": {}, "blocks": [], "before": between}
                order.append(key)
                between = []
            call = calls[key]
            for name, value in (message.get("usage") or {}).items():
                if isinstance(value, int):
                    call["usage"][name] = max(call["usage"].get(name, 0), value)
            call["blocks"] += message.get("content") or []
        elif record.get("type") == "user" and isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            between += list(content or [])
    found = []
    for earlier, later in itertools.pairwise(order):
        a, b = calls[earlier]["usage"], calls[later]["usage"]
        read_a, write_a = a.get("cache_read_input_tokens", 0), a.get("cache_creation_input_tokens", 0)
        read_b, write_b = b.get("cache_read_input_tokens", 0), b.get("cache_creation_input_tokens", 0)
        if read_b != read_a + write_a or write_b <= 0:
            continue  # not a clean extension of the cached conversation
        if any(block.get("type") == "thinking" for block in calls[earlier]["blocks"]):
            continue
        added = [*calls[earlier]["blocks"], *calls[later]["before"]]
        estimated = sum(estimate_tokens(block) for block in added)
        found.append((estimated, write_b + b.get("input_tokens", 0)))
    return found


def errors(found: list[tuple[int, int]]) -> dict[str, float]:
    relative = sorted(abs(estimated - billed) / billed for estimated, billed in found)
    estimated = sum(e for e, _ in found)
    billed = sum(b for _, b in found)
    return {
        "calls": len(found),
        "median_abs_error": statistics.median(relative),
        "p90_abs_error": relative[max(math.ceil(0.9 * len(relative)) - 1, 0)],
        "total_error": (estimated - billed) / billed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=SHARED)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    files = sorted(p for p in args.traces.rglob("*.jsonl") if "acompact" not in p.name)
    by_file = {path.relative_to(args.traces).as_posix(): pairs(path) for path in files}
    rows = {name: errors(found) for name, found in by_file.items() if found}
    overall = errors([pair for found in by_file.values() for pair in found])
    if args.json:
        print(json.dumps({"chars_per_token": CHARS_PER_TOKEN, "files": rows, "overall": overall}, indent=1))
        return
    print(f"estimator: ceil(chars / {CHARS_PER_TOKEN}) + 25 per block; what each clean call added")
    print(f"{'transcript':<58} {'calls':>6} {'median |err|':>13} {'p90 |err|':>10} {'total':>8}")
    for name, row in [*rows.items(), ("all", overall)]:
        print(
            f"{name[:58]:<58} {row['calls']:>6.0f} {row['median_abs_error']:>12.1%} "
            f"{row['p90_abs_error']:>10.1%} {row['total_error']:>+8.1%}"
        )


if __name__ == "__main__":
    main()
