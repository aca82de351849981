"""ZeroMQ IPC between the agent's containers.

* Record batches: producer DEALER -> shipper ROUTER, answered by `Ack`s. A producer
  keeps every unacknowledged batch (`PendingBatches`) and re-sends it after a timeout
  or a reconnect, so a shipper restart loses nothing. While its window is full it stops
  reading; `ReadingPause` says when such a pause is worth reporting.
* Telemetry: PUB -> SUB, lossy on purpose (a lost sample costs nothing).
"""

from kk_common.ipc.paths import (
    IPC_PATH_LIMIT,
    SHIPPER_INGEST_SOCKET,
    TELEMETRY_SOCKET,
    IpcEndpointInUse,
    IpcPathTooLong,
    IpcSetupError,
    ipc_endpoint,
)
from kk_common.ipc.pause import PauseEnded, PauseStarted, ReadingPause
from kk_common.ipc.pending import PendingBatch, PendingBatches
from kk_common.ipc.sockets import (
    BatchReceiver,
    BatchSender,
    IncomingBatch,
    TelemetryPublisher,
    TelemetrySubscriber,
)

__all__ = [
    "IPC_PATH_LIMIT",
    "SHIPPER_INGEST_SOCKET",
    "TELEMETRY_SOCKET",
    "BatchReceiver",
    "BatchSender",
    "IncomingBatch",
    "IpcEndpointInUse",
    "IpcPathTooLong",
    "IpcSetupError",
    "PauseEnded",
    "PauseStarted",
    "PendingBatch",
    "PendingBatches",
    "ReadingPause",
    "TelemetryPublisher",
    "TelemetrySubscriber",
    "ipc_endpoint",
]
