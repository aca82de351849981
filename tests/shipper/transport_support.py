"""Shared pieces of the transport tests: batches, requests, an event-loop runner and Caddy.

Loaded by the ``test_transport_*`` modules from their own directory (pytest's importlib
mode puts no test directory on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kk_receiver.testing import ReceiverProcess, h3_request, wait_until
from kk_shipper.types import HttpRequest

T = TypeVar("T")

LICENSE_KEY = "PENG-7A3F-1B2C-9D8E-4F5A-6B7C"
CADDY_MISSING = (
    "caddy is not installed: run scripts/install-system-packages (as root) to install it"
)


def run(story: Coroutine[Any, Any, T], limit: float = 20.0) -> T:
    """Run one test story in a fresh event loop, with a hard upper bound on its duration."""

    async def bounded() -> T:
        async with asyncio.timeout(limit):
            return await story

    return asyncio.run(bounded())


def new_ids(count: int, prefix: str = "rec") -> list[str]:
    """Record ids unique to this call (tests share one receiver per module)."""
    tag = uuid.uuid4().hex[:12]
    return [f"{prefix}-{tag}-{index}" for index in range(count)]


def log_batch(ids: list[str]) -> bytes:
    """A gzip-compressed log batch in the receiver contract's shape (receiver-api.md)."""
    document = {
        "source": "cluster-a/node-1",
        "application": "killkrill-k8s-agent",
        "logs": [
            {
                "id": record_id,
                "timestamp": "2026-11-26T10:00:00.123456789Z",
                "log_level": "info",
                "message": f"GET /api/items 200 12ms ({record_id})",
                "service_name": "checkout",
                "hostname": "node-1",
                "ecs_version": "8.0",
                "labels": {"k8s_namespace": "shop", "stream": "stdout"},
                "tags": [],
            }
            for record_id in ids
        ],
    }
    return gzip.compress(json.dumps(document).encode())


def logs_request(base_url: str, ids: list[str], *, key: str = "") -> HttpRequest:
    """``POST {base_url}/api/v1/logs`` carrying ``ids``, with the contract's headers."""
    return HttpRequest(
        url=f"{base_url}/api/v1/logs",
        headers=(
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Authorization", f"Bearer {LICENSE_KEY}"),
            ("Idempotency-Key", key or ids[0]),
            ("X-Batch-Size", str(len(ids))),
            ("User-Agent", "killkrill-agent/test"),
        ),
        body=log_batch(ids),
    )


def protocol_requests(receiver: ReceiverProcess, protocol: str) -> int:
    """Ingest requests the receiver has counted over ``protocol`` (``http/3``/``http/1.1``)."""
    return int(receiver.stats()["by_protocol"][protocol]["requests"])


def free_tcp_udp_port() -> int:
    """A loopback port number free for both TCP and UDP (HTTPS and HTTP/3 share it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


class CaddyProxy:
    """Caddy (quic-go) as a TLS + HTTP/3 reverse proxy in front of a plain HTTP upstream.

    Configured as in test-recipes section 1: admin off, storage and autosave in a temp dir,
    no trust-store changes, internal CA, no :80 redirect listener, loopback only, a JSON
    access log. ``root_ca`` is Caddy's local CA certificate, for clients to trust.
    """

    def __init__(self, upstream_port: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="kkcaddy-", dir="/tmp"))
        self.port = free_tcp_udp_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.access_log = self.directory / "access.log"
        self.root_ca = self.directory / "data/pki/authorities/local/root.crt"
        self._upstream_port = upstream_port
        self._process: subprocess.Popen[bytes] | None = None

    def caddyfile(self) -> str:
        """The configuration, as in test-recipes section 1."""
        return f"""{{
\tadmin off
\tstorage file_system {self.directory}/data
\tskip_install_trust
\tlocal_certs
\tauto_https disable_redirects
\tservers {{
\t\tprotocols h1 h2 h3
\t}}
}}
https://127.0.0.1:{self.port} {{
\tbind 127.0.0.1
\ttls internal
\tlog {{
\t\toutput file {self.access_log}
\t\tformat json
\t}}
\treverse_proxy 127.0.0.1:{self._upstream_port}
}}
"""

    def start(self) -> CaddyProxy:
        """Start Caddy and wait until it answers over HTTP/1.1 and HTTP/3."""
        config = self.directory / "Caddyfile"
        config.write_text(self.caddyfile())
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.directory / "cfg"),
            "XDG_DATA_HOME": str(self.directory / "xdg-data"),
            "HOME": str(self.directory),
        }
        with open(self.directory / "caddy.log", "ab") as log:
            self._process = subprocess.Popen(
                ["caddy", "run", "--config", str(config), "--adapter", "caddyfile"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_until(self._ready, timeout=15, message=f"caddy ready\n{self.log_tail()}")
        return self

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"caddy exited with {self._process.returncode}\n{self.log_tail()}")
        if not self.root_ca.exists():
            return False
        try:
            response = asyncio.run(
                h3_request("GET", f"{self.url}/healthz", ca_file=self.root_ca, timeout=1.0)
            )
        except (OSError, TimeoutError):
            return False
        return response.status == 200

    def access_entries(self) -> list[dict[str, Any]]:
        """The JSON access-log lines written so far."""
        if not self.access_log.exists():
            return []
        lines = self.access_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def log_tail(self, lines: int = 30) -> str:
        """The end of Caddy's own log (for failure messages)."""
        with contextlib.suppress(FileNotFoundError):
            text = (self.directory / "caddy.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return "(no log)"

    def close(self) -> None:
        """Stop Caddy (by PID: the admin API is off) and remove its directory."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> CaddyProxy:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def closed_tcp_port() -> Iterator[int]:
    """A loopback TCP port with nothing listening (bound, never listened: connect is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
