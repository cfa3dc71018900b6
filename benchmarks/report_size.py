"""Size and generation time of the one-100 prediction report at 2,000 and 20,000 replications.

    .venv/bin/python benchmarks/report_size.py

Prints, for each replication count, the seconds the simulation took, the seconds the report took to
build and write, and the page's size with plotly.js embedded and linked from its CDN. The page must not
grow with the replication count beyond the fixed-size histograms.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from cycleplan.core.loading import load_scenario
from cycleplan.planner import plan
from cycleplan.present.report.page import write_page
from cycleplan.present.report.reports import prediction_report
from cycleplan.sim import simulate

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    the_plan = plan(load_scenario(ROOT / "scenarios" / "full-feature.yaml"))
    print(
        f"{'replications':>12}  {'simulate s':>10}  {'report s':>8}  "
        f"{'embedded bytes':>14}  {'cdn bytes':>10}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for replications in (2_000, 20_000):
            started = time.perf_counter()
            prediction = simulate(the_plan, replications=replications, seed=1)
            simulated = time.perf_counter() - started
            started = time.perf_counter()
            embedded = write_page(
                Path(folder) / "embedded.html", prediction_report(prediction, the_plan), "embed"
            )
            reported = time.perf_counter() - started
            cdn = write_page(Path(folder) / "cdn.html", prediction_report(prediction, the_plan), "cdn")
            print(f"{replications:>12,}  {simulated:>10.1f}  {reported:>8.2f}  {embedded:>14,}  {cdn:>10,}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
