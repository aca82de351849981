"""The shipper's HTTP transports: HTTP/3 over QUIC (aioquic) and HTTP/1.1 (httpx).

Both implement :class:`kk_shipper.types.Transport`: ``await send(request, timeout=...)``
returns an :class:`~kk_shipper.types.HttpResponse` for any HTTP status and raises
:class:`~kk_shipper.types.TransportError` (with a stable ``reason``) when there is none.
TLS settings are turned into client configuration in :mod:`.tls` only.
"""

from .h1 import H1Transport
from .h3 import H3Transport
from .tls import quic_configuration, ssl_context, verification_skipped

__all__ = [
    "H1Transport",
    "H3Transport",
    "quic_configuration",
    "ssl_context",
    "verification_skipped",
]
