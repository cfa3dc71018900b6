"""Fidelity on real agent work: ``cycleplan backtest`` over the five full Claude Code sessions.

Imports the five full sessions of ``../shared/data/traces/claude-code`` (each a main transcript with its
subagents folder) into a scratch run store, then backtests them: each session is predicted from its own
structure (tasks, turns, subagents, models) with every role calibrated on the four others, and its
actual cost, cache reads, output tokens and agent time, and every turn's agent time, are placed in the
predicted distributions. Prints, per session, each actual beside its predicted P10/P50/P90 and
percentile; then the figures the targets are stated in:

- cost inside P10-P90 for at least 4 of 5 sessions, and the median |P50 - actual| / actual at most 40%;
- the cache reads' P50 within 2x of the actual for at least 4 of 5;
- per-turn agent time inside P10-P90 60-90% of the time, with a median P90/P10 of at most 15.

Beside the importer's actuals it prints what a recount straight from the raw JSON lines gives (unique
responses, cache reads, cost; code that shares nothing with the importer), so that the table does not
rest on the importer alone.

    .venv/bin/python benchmarks/real_fidelity.py
    .venv/bin/python benchmarks/real_fidelity.py -n 4000 --seed 3 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cycleplan.workflows.backtest import QUANTITIES, Backtest, backtest, backtest_json
from cycleplan.workflows.importers import import_claude_code, store_run

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT.parent / "shared" / "data" / "traces" / "claude-code"
SESSIONS = ("258c7280", "4d5611e5", "8463c716", "ae4a77f8", "fa812bfe")
PRICES = {"opus": (5.0, 25.0), "sonnet": (3.0, 15.0), "haiku": (1.0, 5.0)}
"""USD per million input and output tokens of the models these sessions used."""


def recount(session: Path) -> dict[str, float]:
    """Responses, cache reads and cost of a session and its subagents, from the raw lines alone: each
    (message id, request id) once, each usage field's largest value; 5-minute writes at 1.25x input,
    1-hour writes at 2x, reads at 0.1x. Subagent lines keep the usage at stream start, so a subagent's
    last response is taken at the figures its Task result reports, as the importer does."""
    files = [session, *sorted((session.parent / session.stem / "subagents").glob("*.jsonl"))]
    final: dict[str, dict[str, Any]] = {}
    for line in session.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        result = record.get("toolUseResult")
        if isinstance(result, dict) and result.get("agentId") and isinstance(result.get("usage"), dict):
            final[str(result["agentId"])] = result["usage"]
    responses: dict[tuple[str, str], dict[str, Any]] = {}
    for path in files:
        agent = path.stem.removeprefix("agent-")
        last: tuple[str, str] | None = None
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            message = record.get("message")
            if record.get("type") != "assistant" or not isinstance(message, dict):
                continue
            key = (str(message.get("id")), str(record.get("requestId")))
            seen = responses.setdefault(key, {"model": message.get("model", "")})
            usage = message.get("usage") or {}
            for name in ("input_tokens", "cache_read_input_tokens", "output_tokens"):
                seen[name] = max(seen.get(name, 0), int(usage.get(name) or 0))
            split = usage.get("cache_creation") or {}
            hour = int(split.get("ephemeral_1h_input_tokens") or 0)
            total = int(usage.get("cache_creation_input_tokens") or 0)
            seen["write_1h"] = max(seen.get("write_1h", 0), hour)
            seen["write_5m"] = max(seen.get("write_5m", 0), total - hour)
            last = key
        if agent in final and last is not None:
            responses[last]["output_tokens"] = max(
                responses[last]["output_tokens"], int(final[agent].get("output_tokens") or 0)
            )
    cost = reads = 0.0
    for seen in responses.values():
        family = next((name for name in PRICES if name in str(seen["model"])), "opus")
        price_in, price_out = PRICES[family]
        reads += seen["cache_read_input_tokens"]
        cost += (
            seen["input_tokens"] * price_in
            + seen["write_5m"] * price_in * 1.25
            + seen["write_1h"] * price_in * 2.0
            + seen["cache_read_input_tokens"] * price_in * 0.1
            + seen["output_tokens"] * price_out
        ) / 1e6
    return {"responses": float(len(responses)), "cache_read_tokens": reads, "cost_usd": cost}


def show(result: Backtest, names: dict[str, str], raw: dict[str, dict[str, float]], seconds: float) -> str:
    units = {"cost_usd": "$", "cache_read_tokens": "M", "output_tokens": "k", "makespan_min": "min"}

    def value(name: str, number: float) -> str:
        if name == "cost_usd":
            return f"${number:.2f}"
        if name == "cache_read_tokens":
            return f"{number / 1e6:.2f}M"
        if name == "output_tokens":
            return f"{number / 1e3:.1f}k"
        return f"{number:.1f}"

    lines = [
        f"real fidelity: {len(result.runs)} Claude Code sessions, each predicted from the other "
        f"{len(result.runs) - 1} ({result.replications:,} replications, seed {result.seed}; {seconds:.1f} s)",
        "",
        f"{'session':<9} {'quantity':<22} {'actual':>9} {'P10':>9} {'P50':>9} {'P90':>9} {'pct':>5}  in  "
        f"{'raw recount':>11}",
    ]
    for run in result.runs:
        session = names[run.run_id]
        for name in QUANTITIES:
            band = run.quantities[name]
            recounted = raw[session].get(name)
            lines.append(
                f"{session:<9} {name + ' (' + units[name] + ')':<22} {value(name, band.actual):>9} "
                f"{value(name, band.p10):>9} {value(name, band.p50):>9} {value(name, band.p90):>9} "
                f"{band.percentile:>5.0f}  {'yes' if band.inside else 'NO ':<3} "
                f"{'' if recounted is None else value(name, recounted):>11}"
            )
        inside = sum(turn.inside for turn in run.turns)
        turns = ", ".join(
            f"{turn.actual_min:.1f} [{turn.p10_min:.1f}-{turn.p90_min:.1f}]" for turn in run.turns
        )
        lines.append(f"{session:<9} turns (min)            {inside}/{len(run.turns)} inside: {turns}")
    cost = [run.quantities["cost_usd"] for run in result.runs]
    reads = [run.quantities["cache_read_tokens"] for run in result.runs]
    within = sum(0.5 <= band.p50 / band.actual <= 2.0 for band in reads)
    checks = [
        (
            f"cost inside P10-P90: {sum(b.inside for b in cost)} of {len(cost)} (target: at least 4 of 5)",
            sum(b.inside for b in cost) >= 4,
        ),
        (
            f"median |P50 - actual| / actual of cost: {result.median_error['cost_usd']:.0%} "
            "(target: at most 40%)",
            result.median_error["cost_usd"] <= 0.40,
        ),
        (
            f"cache reads' P50 within 2x of actual: {within} of {len(reads)} (target: at least 4 of 5)",
            within >= 4,
        ),
        (
            f"turns inside P10-P90: {result.coverage['turn_duration']:.0%} of "
            f"{sum(len(run.turns) for run in result.runs)} (target: 60-90%)",
            0.60 <= result.coverage["turn_duration"] <= 0.90,
        ),
        (
            f"median turn P90/P10: {result.turn_ratio_median:.1f} (target: at most 15)",
            result.turn_ratio_median <= 15,
        ),
    ]
    lines.append("")
    lines.extend(f"  {'met ' if ok else 'MISSED'}  {text}" for text, ok in checks)
    lines.append(
        "  also   inside P10-P90: "
        + ", ".join(f"{name} {result.coverage[name]:.0%}" for name in QUANTITIES)
        + "; median |P50 - actual| / actual: "
        + ", ".join(f"{name} {result.median_error[name]:.0%}" for name in QUANTITIES)
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--replications", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the backtest's JSON instead of the table")
    args = parser.parse_args()
    if not TRACES.is_dir():
        print(f"skipped: the Claude Code transcripts are not here ({TRACES})")
        return
    began = time.perf_counter()
    names: dict[str, str] = {}
    raw: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "runs.db"
        for session in SESSIONS:
            path = next(TRACES.glob(f"{session}-*.jsonl"))
            run_id, _ = store_run(import_claude_code(path), store)
            names[run_id] = session
            raw[session] = recount(path)
        result = backtest(store, list(names), replications=args.replications, seed=args.seed)
    seconds = time.perf_counter() - began
    if args.json:
        json.dump(backtest_json(result), sys.stdout, indent=1)
        print()
        return
    print(show(result, names, raw, seconds))


if __name__ == "__main__":
    main()
