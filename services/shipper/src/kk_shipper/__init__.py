"""The KillKrill agent's shipper: the only container that talks to receivers.

``core/`` is sans-IO (no sockets, files, clocks or asyncio); ``storage/`` is the durable
queue (SQLite); ``transport/`` holds the HTTP/3 (aioquic) and HTTP/1.1 (httpx) clients;
``app.py`` wires them together.
"""

__version__ = "0.1.0"
