"""File offsets: which to persist (`CheckpointTracker`, sans-IO) and where (`OffsetStore`).

How the app wires them (the shipper's `Ack` drives the tracker; the store persists)::

    store = OffsetStore(state_dir / "logs" / "offsets.db")
    resume = store.load()                      # identity -> StoredOffset; the tailer seeks
    tracker = CheckpointTracker({k: v.offset for k, v in resume.items()})
    ...
    tracker.emitted(batch.batch_id, safe_offsets_after_batch)   # in send order
    tracker.acknowledged(ack.batch_id)                 # "stored" acks only
    offsets = tracker.committable()
    if offsets:
        store.commit({f: (o, paths[f]) for f, o in offsets.items()}, now,
                     reset=tracker.rewound())
        tracker.mark_committed(offsets)        # only after the commit returned

See `kk_logs.offsets.checkpoint` for the theory of operation and
`kk_logs.offsets.store` for durability and format guarantees.
"""

from kk_logs.offsets.checkpoint import CheckpointStats, CheckpointTracker
from kk_logs.offsets.store import (
    APPLICATION_ID,
    CURRENT_VERSION,
    LOOK_MARK,
    CommitResult,
    OffsetCorruptError,
    OffsetFormatError,
    OffsetStore,
    OffsetStoreError,
    StoredOffset,
)

__all__ = [
    "APPLICATION_ID",
    "CURRENT_VERSION",
    "LOOK_MARK",
    "CheckpointStats",
    "CheckpointTracker",
    "CommitResult",
    "OffsetCorruptError",
    "OffsetFormatError",
    "OffsetStore",
    "OffsetStoreError",
    "StoredOffset",
]
