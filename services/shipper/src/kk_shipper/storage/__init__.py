"""The shipper's durable on-disk queue (SQLite): see :mod:`kk_shipper.storage.queue`."""

from kk_shipper.storage.errors import (
    QueueBusy,
    QueueCorruptError,
    QueueError,
    QueueFormatError,
    QueueFull,
)
from kk_shipper.storage.model import AppendResult, DeadLetter, KindStats, QueueStats
from kk_shipper.storage.queue import RECORD_OVERHEAD_BYTES, DurableQueue, record_size
from kk_shipper.storage.schema import CURRENT_VERSION

__all__ = [
    "CURRENT_VERSION",
    "RECORD_OVERHEAD_BYTES",
    "AppendResult",
    "DeadLetter",
    "DurableQueue",
    "KindStats",
    "QueueBusy",
    "QueueCorruptError",
    "QueueError",
    "QueueFormatError",
    "QueueFull",
    "QueueStats",
    "record_size",
]
