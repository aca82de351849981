"""A fake kubelet serving ``GET /pods`` over TLS with a bearer-token check.

The real endpoint (``https://<node>:10250/pods``) returns a ``PodList`` of the pods
bound to the node, with no list ``resourceVersion``; unauthenticated requests get 401.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.logs.fake_apiserver import TlsFiles, _Server, serve_in_thread

__all__ = ["FakeKubelet"]


class FakeKubelet:
    """Serves the pods set with ``set_pods``; counts requests; can fail on demand."""

    def __init__(self, *, tls: TlsFiles, token: str) -> None:
        self.tls = tls
        self.token = token
        self._lock = threading.Lock()
        self._pods: list[dict[str, Any]] = []
        self._fail_status: int | None = None
        self.requests: list[tuple[float, str, int]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeKubelet:
        self._server, self._thread = serve_in_thread(_KubeletHandler, self, self.tls)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>/pods``."""
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}/pods"

    def set_pods(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Replace the node's pods."""
        with self._lock:
            self._pods = [copy.deepcopy(dict(p)) for p in pods]

    def fail(self, status: int | None) -> None:
        """Answer every request with ``status`` (``None`` to heal)."""
        with self._lock:
            self._fail_status = status

    def _respond(self, auth: str, path: str) -> tuple[int, bytes]:
        with self._lock:
            if auth != f"Bearer {self.token}":
                status, body = 401, b"Unauthorized"
            elif self._fail_status is not None:
                status, body = self._fail_status, b"injected failure"
            elif path != "/pods":
                status, body = 404, b"404 page not found"
            else:
                doc = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self._pods}
                status, body = 200, json.dumps(doc).encode()
            self.requests.append((time.monotonic(), auth, status))
            return status, body


class _KubeletHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, body = self.server.fake._respond(
            self.headers.get("Authorization", ""), self.path.split("?")[0]
        )
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/json" if status == 200 else "text/plain; charset=utf-8"
        )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
