"""The run store: the one part that reads and writes the SQLite file of executed runs.

:mod:`.runs` owns the file (its tables, leases, the trace check); :mod:`.catalog` lists and removes runs as
a person looks through them. The executor records runs through :class:`RunStore`, the importers take
staged runs in with :meth:`RunStore.take_in`, and the workflows read runs back; nothing else writes SQL
into the store. Importing it loads neither the executor nor the simulator.
"""

from cycleplan.store.runs import (
    DEFAULT_STORE,
    LATEST,
    DuplicateEventError,
    Lease,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    RunLiveError,
    RunRecord,
    RunRefError,
    RunStore,
    StoredEvent,
    StoreError,
    TraceCheck,
    TraceError,
    export_jsonl,
    is_live,
)

__all__ = [
    "DEFAULT_STORE",
    "LATEST",
    "DuplicateEventError",
    "Lease",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "RunLiveError",
    "RunRecord",
    "RunRefError",
    "RunStore",
    "StoreError",
    "StoredEvent",
    "TraceCheck",
    "TraceError",
    "export_jsonl",
    "is_live",
]
