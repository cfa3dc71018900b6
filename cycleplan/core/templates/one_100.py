"""``one-100``: the ONE platform's 100-cycle feature template, task for task.

Phases, cycle ranges and owners come from the ONE platform's todo template; the dependencies and the one
sync point (frontend waits for ``schema_ready``, which backend emits after its 2nd cycle, template cycle
12) from its own words on parallelism. With unit-length cycles and one lane per role the critical path is
65 cycles; a second backend lane brings it to 57.
"""

from __future__ import annotations

from cycleplan.core.model import Phase, Task, Template


def _task(
    task_id: str,
    first: int,
    last: int,
    phase: str,
    role: str,
    after: list[str],
    **sync: dict[str, int],
) -> Task:
    return Task(
        id=task_id,
        role=role,
        cycles=last - first + 1,
        after=after,
        phase=phase,
        template_cycles=(first, last),
        description=f"{phase} (template cycles {first}-{last})",
        **sync,
    )


_ROWS = [
    _task("foundation", 1, 10, "Foundation & Setup", "director", []),
    _task(
        "backend", 11, 20, "Backend Schema & Services", "backend", ["foundation"], emits={"schema_ready": 2}
    ),
    _task(
        "frontend",
        21,
        30,
        "Frontend Pages & Components",
        "frontend",
        ["foundation"],
        waits={"schema_ready": 1},
    ),
    _task("integration", 31, 40, "Integration & Connections", "integration", ["backend", "frontend"]),
    _task("auth", 41, 50, "Authentication & Authorization", "backend", ["backend"]),
    # The template names no owner for Knowledge & RAG; its work is backend work.
    _task("knowledge", 51, 60, "Knowledge & RAG", "backend", ["backend"]),
    _task("quality", 61, 70, "Quality & Testing", "quality", ["integration", "auth", "knowledge"]),
    _task("design", 71, 80, "Design & Wireframes", "designer", ["frontend"]),
    _task("performance", 81, 90, "Performance & Optimization", "ops", ["quality", "design"]),
    _task("deploy", 91, 94, "Deployment", "ops", ["performance"]),
    _task("docs", 95, 99, "Documentation", "documenter", ["foundation"]),
    _task("complete", 100, 100, "Mark feature complete", "ops", ["deploy", "docs"]),
]

ONE_100 = Template(
    name="one-100",
    description="The ONE platform's 100-cycle feature template: 10 phases of 10 cycles, from foundation "
    "to a completed feature.",
    claim="A cycle takes 2-5 minutes and under 3,000 tokens; parallel execution turns 100 cycles into 80.",
    phases=[
        Phase(name=task.phase, first_cycle=task.template_cycles[0], last_cycle=task.template_cycles[1])
        for task in _ROWS
        if task.template_cycles is not None
    ],
    tasks=_ROWS,
)
