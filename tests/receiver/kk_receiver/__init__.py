"""KillKrill reference receiver: the documented batch contract (plus HTTP/3) for tests and demos.

Layout (sans-IO core, thin asyncio adapters, as aioquic and h11 do it):

- ``messages``, ``core``, ``validation``, ``encoding``, ``faults``, ``stats``: protocol logic only,
  no sockets, files or clocks (time is passed in as ``now``).
- ``store``: SQLite persistence, injected into the core.
- ``http11`` (h11 over asyncio streams) and ``h3`` (aioquic): the network adapters.
- ``certs``: the receiver's own CA and server certificate.
- ``app`` and ``__main__``: wiring and the command line.
- ``testing``: helpers for the tests of every service (``ReceiverProcess``, ``h3_post``).

The wire contract is /work/shared/reference/receiver-api.md (copied into the repository docs).
"""

__version__ = "0.1.0"
