"""Fan-out: one function over many picklable jobs, in this process, on a local process pool or on a Dask
cluster, the results in job order.

``sweep`` and ``optimize`` hand their configurations to a :class:`Runner` and get the outcomes back in the
order given, whatever ran them: a job's result depends only on the job, so every runner gives the same
numbers. Dask is an extra (``cycleplan[dask]``), imported only by :func:`open_dask`. This module knows
nothing of what the jobs are; it never imports the CLI.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

J = TypeVar("J")
O = TypeVar("O")  # noqa: E741 (the outcome's type)


class FanoutError(ValueError):
    """A backend that cannot be reached or used (``field`` names the option to fix)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class Runner(Protocol):
    """Runs ``work`` on every job and returns the results in job order."""

    backend: str
    """serial, local (a process pool) or dask."""
    workers: int

    def map(self, work: Callable[[J], O], jobs: Sequence[J]) -> list[O]: ...

    def close(self) -> None:
        """Let go of what the runner started (its processes); a runner handed in is closed by its owner."""


class SerialRunner:
    """Every job in this process, one after the other."""

    backend = "serial"
    workers = 1

    def map(self, work: Callable[[J], O], jobs: Sequence[J]) -> list[O]:
        return [work(job) for job in jobs]

    def close(self) -> None:
        pass


class LocalRunner:
    """A process pool of ``workers`` processes, one job per task. The pool starts at the first
    :meth:`map` and lives until :meth:`close`, so that what workers keep between jobs (plans, simulators)
    serves later calls too."""

    backend = "local"

    def __init__(self, workers: int, preload: Sequence[str] = ()) -> None:
        self.workers = workers
        self.preload = tuple(preload)
        """Modules to import before the pool forks, so that workers start with them loaded."""
        self._pool: ProcessPoolExecutor | None = None

    def map(self, work: Callable[[J], O], jobs: Sequence[J]) -> list[O]:
        if not jobs:
            return []
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            for module in self.preload:
                importlib.import_module(module)
            self._pool = ProcessPoolExecutor(max_workers=self.workers)
        return list(self._pool.map(work, jobs, chunksize=1))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class DaskRunner:
    """Jobs on a Dask cluster through ``client`` (a :class:`distributed.Client`)."""

    backend = "dask"

    def __init__(self, client: Any, workers: int = 0) -> None:
        self.client = client
        self.workers = workers or len(client.scheduler_info().get("workers", {}))

    def map(self, work: Callable[[J], O], jobs: Sequence[J]) -> list[O]:
        futures = self.client.map(work, list(jobs), pure=False)
        return list(self.client.gather(futures))

    def close(self) -> None:
        pass  # the client and its cluster belong to whoever opened them (open_dask)


def runner_for(workers: int | None, jobs: int, preload: Sequence[str] = ()) -> SerialRunner | LocalRunner:
    """This process for one worker (or one job), else a local pool of ``workers`` (default: every core),
    never more processes than jobs."""
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise FanoutError("workers", f"must be at least 1, got {count}")
    count = min(count, max(jobs, 1))
    return SerialRunner() if count == 1 else LocalRunner(count, preload)


def open_dask(address: str, workers: int | None = None) -> tuple[Any, Callable[[], None]]:
    """A Dask client for ``address`` (``tcp://host:8786``), or for a new LocalCluster (``local``) of
    ``workers`` single-threaded processes (default: every core), and a function that closes what was
    opened. Needs the ``dask`` extra."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise FanoutError(
            "dask", "Dask is not installed; pip install 'cycleplan[dask]' (dask[distributed])"
        ) from None
    if address == "local":
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        local = Client(cluster)  # type: ignore[no-untyped-call]

        def close_both() -> None:
            local.close()  # type: ignore[no-untyped-call]
            cluster.close()

        return local, close_both
    try:
        client = Client(address, timeout="10s")  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise FanoutError("dask", f"cannot reach the Dask scheduler at {address}: {exc}") from None
    return client, client.close


__all__ = ["DaskRunner", "FanoutError", "LocalRunner", "Runner", "SerialRunner", "open_dask", "runner_for"]
