"""Where the agent's ZeroMQ sockets live.

The sockets are files in a directory shared by the pod's containers (an ``emptyDir``
mounted at ``KILLKRILL_IPC_DIR``). Unix socket paths are limited by
``sizeof(sockaddr_un.sun_path)``: libzmq refuses paths longer than 107 bytes with an
error that does not say which setting to change, so we check first.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "IPC_PATH_LIMIT",
    "SHIPPER_INGEST_SOCKET",
    "TELEMETRY_SOCKET",
    "IpcEndpointInUse",
    "IpcPathTooLong",
    "IpcSetupError",
    "ipc_endpoint",
]

IPC_PATH_LIMIT = 107
"""Longest usable socket path in bytes (sun_path is 108 bytes with the final NUL)."""

SHIPPER_INGEST_SOCKET = "shipper.sock"
"""Record batches and their acknowledgements (the shipper binds)."""

TELEMETRY_SOCKET = "telemetry.sock"
"""Telemetry for the health container (the health container binds)."""


class IpcSetupError(ValueError):
    """An IPC socket cannot be set up as configured; the message names the path and the fix."""


class IpcPathTooLong(IpcSetupError):
    """The socket path would exceed the operating system's limit."""


class IpcEndpointInUse(IpcSetupError):
    """Another live process is listening at the socket path (or the path is not a socket):
    binding would take the endpoint away from it, so it is refused."""


def ipc_endpoint(directory: str | Path, socket_name: str) -> str:
    """Return the ``ipc://`` endpoint of ``socket_name`` in ``directory``.

    Raises `IpcPathTooLong` naming the path, its length and the setting to change.
    """
    path = str(Path(directory) / socket_name)
    length = len(path.encode("utf-8"))
    if length > IPC_PATH_LIMIT:
        raise IpcPathTooLong(
            f"IPC socket path {path!r} is {length} bytes long; the operating system "
            f"allows at most {IPC_PATH_LIMIT}. Choose a shorter directory "
            f"(KILLKRILL_IPC_DIR / agent.ipc_dir)."
        )
    return f"ipc://{path}"
