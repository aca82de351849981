"""A receiver front that answers badly on cue: plain HTTP/1.1 on loopback, in a thread.

`BadAnswers` takes the shipper's requests. While its script lasts, each request gets the
next scripted answer (a huge body, garbage, truncated JSON, a lying Content-Length...) and
is *not* passed on; after the script, requests are forwarded to a real reference receiver
and its answer relayed, so the test can check by record id what finally arrived. It
counts, per scripted answer, how many body bytes it managed to write before the client
hung up.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["Answer", "BadAnswers"]

_CHUNK = b"\xfe\x00garbage " * 4096  # 36 KiB


@dataclass
class Answer:
    """One scripted answer: ``status``, then ``body_bytes`` of ``body`` (repeated), with a
    Content-Length unless ``chunked``; ``declared_length`` lies about it when set."""

    name: str
    status: int = 200
    body: bytes = b""
    body_bytes: int | None = None
    chunked: bool = False
    declared_length: int | None = None
    written: int = field(default=0, init=False)
    """Body bytes written before the client stopped reading (or all of them)."""

    def total(self) -> int:
        return len(self.body) if self.body_bytes is None else self.body_bytes

    def pieces(self) -> Iterator[bytes]:
        if self.body_bytes is None:
            yield self.body
            return
        left = self.body_bytes
        while left > 0:
            piece = _CHUNK[: min(left, len(_CHUNK))]
            left -= len(piece)
            yield piece


class BadAnswers:
    """See the module docstring. ``url`` is where the shipper should send."""

    def __init__(self, forward_to: str, script: list[Answer]) -> None:
        self.script = list(script)
        self.answered: list[Answer] = []
        self.forwarded = 0
        target = urlsplit(forward_to)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with owner._lock:
                    answer = owner.script.pop(0) if owner.script else None
                    if answer is not None:
                        owner.answered.append(answer)
                if answer is None:
                    self._forward(body)
                else:
                    self._answer(answer)

            def _answer(self, answer: Answer) -> None:
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                if answer.chunked:
                    self.send_header("transfer-encoding", "chunked")
                else:
                    length = answer.declared_length
                    self.send_header(
                        "content-length", str(answer.total() if length is None else length)
                    )
                self.send_header("connection", "close")
                self.end_headers()
                try:
                    for piece in answer.pieces():
                        if answer.chunked:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        else:
                            self.wfile.write(piece)
                        answer.written += len(piece)
                    if answer.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass  # the client hung up: what we wanted to see for huge bodies
                self.close_connection = True

            def _forward(self, body: bytes) -> None:
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                skip = {"host", "content-length", "connection"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                connection.request("POST", self.path, body=body, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
                connection.close()
                with owner._lock:
                    owner.forwarded += 1
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in {
                        "content-length",
                        "connection",
                        "transfer-encoding",
                        "date",
                        "server",
                    }:
                        self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> BadAnswers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def script_done(self) -> bool:
        with self._lock:
            return not self.script
