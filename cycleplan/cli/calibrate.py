"""``calibrate``: fit a scenario's per-role numbers from runs, against the scenario as a prior."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cycleplan.cli.common import (
    STORE_PATH,
    StoreOption,
    command_app,
    fail,
    load_scenario_file,
    note,
    output_option,
    show_result,
    write_atomically,
)

if TYPE_CHECKING:
    from cycleplan.present.terminal import Verbosity, View

app = command_app()


@app.command("calibrate")
def calibrate_command(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Runs to fit from: ids, unique beginnings of ids, or latest (see `cycleplan runs`).",
            metavar="RUN",
            show_default=False,
        ),
    ],
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            help="The scenario to calibrate (its values are the prior); default: the first run's own.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        output_option("Write the calibrated scenario here (YAML)."),
    ] = None,
    prior_weight: Annotated[
        float,
        typer.Option(
            "--prior-weight", help="How many observed cycles the scenario's values count for.", metavar="W"
        ),
    ] = 5.0,
    role_map: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Fit the runs' role FROM as the scenario's role TO, e.g. --role main=backend; repeatable.",
            metavar="FROM=TO",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = STORE_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fits as JSON.")] = False,
) -> None:
    """Fit each role's cycle duration, tokens per cycle and failure rate from runs, against a prior.

    Durations: lognormal, maximum likelihood, with the scenario's median and p90 as a prior worth
    --prior-weight cycles. Prints each value before and after, with its posterior sd and 90% interval,
    and writes the scenario with the fitted values in place: with --scenario, that file as it is written
    (comments, block text, key order, quoting) with only the fitted values changed.

    \b
    Examples:
      cycleplan calibrate 20250114-093012-3f9a1c -o calibrated.yaml
      cycleplan calibrate RUN1 RUN2 --scenario my.yaml --prior-weight 10 --role main=backend -o my-fit.yaml
    """
    import math

    from cycleplan.workflows.calibration import (
        CalibrationError,
        calibrate_runs,
        calibrated_yaml,
    )

    if not 0 <= prior_weight <= 1e9 or math.isnan(prior_weight):
        fail(f"--prior-weight {prior_weight:g}: must be zero (no prior) or more")
    renames: dict[str, str] = {}
    for spec in role_map or []:
        source, sep, target = spec.partition("=")
        if not sep or not source or not target:
            fail(f"--role {spec}: write FROM=TO, e.g. --role main=backend")
        renames[source] = target
    prior = load_scenario_file(scenario) if scenario is not None else None
    try:
        calibration = calibrate_runs(store, runs, prior, prior_weight, renames)
        text = None
        if output is not None:
            original = scenario.read_text(encoding="utf-8") if scenario is not None else None
            text = calibrated_yaml(calibration, original, str(output))
    except CalibrationError as exc:
        fail(str(exc))

    def view(verbosity: Verbosity) -> View:
        from cycleplan.present.render_calibration import calibration_view

        return calibration_view(calibration, verbosity)

    show_result(
        as_json,
        lambda: {
            "runs": calibration.runs,
            "prior_weight": calibration.prior_weight,
            "roles": {name: fit.model_dump(mode="json") for name, fit in calibration.roles.items()},
            "notes": calibration.notes,
            "written": None if output is None else str(output),
        },
        view,
    )
    if output is not None and text is not None:
        write_atomically(output, text)
        note(f"wrote {output}", err=as_json)
