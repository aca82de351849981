"""Code shared by every KillKrill agent container: the wire envelope, the IPC helpers,
the configuration model and structured logging. Nothing here opens a socket or reads
the environment at import time."""
