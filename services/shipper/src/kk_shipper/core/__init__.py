"""The shipper's sans-IO delivery core: batching, request building, outcomes, retry timing
and the per-output state machine (`OutputDelivery`).

Nothing here does IO: no sockets, files, clocks, asyncio or HTTP clients (a test scans the
imports). Time comes in as ``now`` (unix seconds) and randomness as an injected
`random.Random`; the app in ``kk_shipper.app`` drives it.
"""

from .delivery import (
    Attempt,
    BatchSplit,
    ContractMismatchDetected,
    DeliveryStatus,
    Effect,
    Http3ProbeFailed,
    OutputDelivery,
    OutputDown,
    OutputPaused,
    OutputRecovered,
    OutputResumed,
    OutputStillDown,
    ProtocolChanged,
    ReachabilityCheck,
    RecordsDeadLettered,
    RecordsDelivered,
    RecordsRejectedByReceiver,
    RetryScheduled,
)
from .settings import OutputSettings, RetrySettings

__all__ = [
    "Attempt",
    "BatchSplit",
    "ContractMismatchDetected",
    "DeliveryStatus",
    "Effect",
    "Http3ProbeFailed",
    "OutputDelivery",
    "OutputDown",
    "OutputPaused",
    "OutputRecovered",
    "OutputResumed",
    "OutputSettings",
    "OutputStillDown",
    "ProtocolChanged",
    "ReachabilityCheck",
    "RecordsDeadLettered",
    "RecordsDelivered",
    "RecordsRejectedByReceiver",
    "RetryScheduled",
    "RetrySettings",
]
