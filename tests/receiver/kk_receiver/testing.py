"""Helpers for the tests of every service: a receiver subprocess and a small HTTP/3 client.

Typical use::

    with ReceiverProcess(license_key="PENG-...") as receiver:
        ...point the agent at receiver.https_url with receiver.ca_file...
        wait_until(lambda: receiver.stats()["unique_ids"] >= 100, timeout=10)
        assert [r["id"] for r in receiver.records("logs")] == expected_ids

Nothing here sleeps for a fixed time: waiting is always polling a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset

T = TypeVar("T")

__all__ = [
    "H3ConnectionLost",
    "H3HandshakeFailed",
    "H3Response",
    "H3TransportError",
    "ReceiverProcess",
    "ReceiverStartError",
    "h3_post",
    "h3_post_sync",
    "h3_request",
    "wait_until",
    "wait_until_async",
]


# waiting ---------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises:
        TimeoutError: when ``timeout`` seconds pass first; names the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{message or 'condition'} not met within {timeout}s (last value: {result!r})"
            )
        time.sleep(interval)  # a poll interval, not a guess at how long something takes


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Like :func:`wait_until` inside an event loop; ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{message or 'condition'} not met within {timeout}s (last value: {result!r})"
            )
        await asyncio.sleep(interval)


# the receiver process --------------------------------------------------------------------------


class ReceiverStartError(RuntimeError):
    """The receiver exited or did not write ready.json in time; the message has its log tail."""


class ReceiverProcess:
    """A reference receiver in a subprocess, with a fresh short data dir under /tmp.

    Every listener binds 127.0.0.1 on a free port; HTTP/1.1-over-TLS and HTTP/3 share one
    port number, as a real receiver does. After :meth:`start` the attributes ``http_url``,
    ``https_url``, ``h3_url``, ``h3_port``, ``ca_file`` and ``pid`` are set. :meth:`restart`
    and ``start()`` after ``stop()`` reuse the same ports and data dir, so a client configured
    with the URLs keeps working and the receiver keeps its records and counters.

    Args:
        mode: ``batch`` or ``single``.
        license_key: Require this bearer token (passed through the environment, not argv).
        api_key: Require this X-API-Key.
        faults: A fault script (``{"steps": [...], "poison": [...]}``) installed at startup.
        http: Serve plain HTTP. https: Serve HTTP/1.1 over TLS. h3: Serve HTTP/3.
        extra_args: More command-line options (e.g. ``["--max-batch-records", "5"]``).
        startup_timeout: How long to wait for ready.json.
        keep_data_dir: Leave the data dir behind on exit (for debugging).
    """

    def __init__(
        self,
        *,
        mode: str = "batch",
        license_key: str | None = None,
        api_key: str | None = None,
        faults: Mapping[str, Any] | None = None,
        http: bool = True,
        https: bool = True,
        h3: bool = True,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
        keep_data_dir: bool = False,
    ) -> None:
        self.mode = mode
        self._license_key = license_key
        self._api_key = api_key
        self._faults = faults
        self._listeners = {"http": http, "https": https, "h3": h3}
        self._extra_args = list(extra_args)
        self._startup_timeout = startup_timeout
        self._keep_data_dir = keep_data_dir
        self.data_dir = Path(tempfile.mkdtemp(prefix="kkr-", dir="/tmp"))
        self.log_file = self.data_dir / "receiver.log"
        self.ready: dict[str, Any] = {}
        self._ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None

    # lifecycle

    def __enter__(self) -> ReceiverProcess:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> ReceiverProcess:
        """Start the process and wait until every listener is bound (ready.json exists)."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError("receiver already running")
        ready_path = self.data_dir / "ready.json"
        ready_path.unlink(missing_ok=True)
        env = dict(os.environ)
        env.pop("KK_RECEIVER_LICENSE_KEY", None)
        env.pop("KK_RECEIVER_API_KEY", None)
        if self._license_key is not None:
            env["KK_RECEIVER_LICENSE_KEY"] = self._license_key
        if self._api_key is not None:
            env["KK_RECEIVER_API_KEY"] = self._api_key
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        process = self._process

        def ready_or_exited() -> bool:
            if process.poll() is not None:
                return True
            try:
                document = json.loads(ready_path.read_text())
            except (FileNotFoundError, ValueError):
                return False
            return document.get("pid") == process.pid

        try:
            wait_until(ready_or_exited, self._startup_timeout, message="receiver ready.json")
        except TimeoutError:
            self._terminate()
            raise ReceiverStartError(f"receiver not ready in time:\n{self.log_tail()}") from None
        if process.poll() is not None:
            raise ReceiverStartError(
                f"receiver exited with {process.returncode}:\n{self.log_tail()}"
            )
        self.ready = json.loads(ready_path.read_text())
        for name, key in (("http", "http_url"), ("https", "https_url"), ("h3", "h3_url")):
            if self.ready.get(key):
                self._ports[name] = int(urlsplit(self.ready[key]).port or 0)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process and wait for it; returns its exit code (None if not started)."""
        return self._terminate(timeout)

    def kill(self) -> None:
        """SIGKILL the process (a crash: no clean shutdown)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)

    def restart(self) -> ReceiverProcess:
        """Stop and start again on the same ports with the same data dir."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the process and remove the data dir (unless ``keep_data_dir``)."""
        self._terminate()
        if not self._keep_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        """The running process id."""
        return self._process.pid if self._process is not None else None

    @property
    def http_url(self) -> str | None:
        """``http://127.0.0.1:<port>`` (plain HTTP/1.1), or None when disabled."""
        return self.ready.get("http_url")

    @property
    def https_url(self) -> str | None:
        """``https://127.0.0.1:<port>`` (HTTP/1.1 over TLS), or None when disabled."""
        return self.ready.get("https_url")

    @property
    def h3_url(self) -> str | None:
        """``https://127.0.0.1:<port>`` for HTTP/3, or None when disabled."""
        return self.ready.get("h3_url")

    @property
    def h3_port(self) -> int | None:
        """The UDP port of HTTP/3."""
        return self.ready.get("h3_port")

    @property
    def ca_file(self) -> str:
        """The CA certificate clients must trust (PEM)."""
        return str(self.ready.get("ca_file") or self.data_dir / "tls" / "ca.crt")

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this receiver's CA (for httpx ``verify=``)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the receiver's JSON log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # control API

    def stats(self) -> dict[str, Any]:
        """``GET /api/v1/stats`` (see kk_receiver.stats for the shape)."""
        return self._control("GET", "/api/v1/stats")

    def records(self, kind: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        """Stored records in arrival order: ``[{"seq", "kind", "id", "protocol",
        "received_at", "record"}]``."""
        query = {"after": after, **({"kind": kind} if kind else {})}
        return self._control("GET", f"/api/v1/records?{urlencode(query)}")["records"]

    def record_ids(self, kind: str | None = None) -> list[str]:
        """Ids of the stored records, in arrival order."""
        return [record["id"] for record in self.records(kind)]

    def requests(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Metadata of the last ``limit`` ingest requests, oldest first."""
        return self._control("GET", f"/api/v1/requests?limit={limit}")["requests"]

    def set_faults(
        self, steps: Iterable[Mapping[str, Any]] = (), poison: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Replace the fault script (see kk_receiver.faults for the step format)."""
        script = {"steps": list(steps), "poison": list(poison)}
        return self._control("PUT", "/api/v1/faults", script)

    def clear_faults(self) -> dict[str, Any]:
        """Remove every pending fault step and the poison list."""
        return self._control("DELETE", "/api/v1/faults")

    # internals

    def _command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "kk_receiver",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--mode",
            self.mode,
        ]
        if self._listeners["http"]:
            args += ["--http-port", str(self._ports.get("http", 0))]
        else:
            args.append("--no-http")
        if self._listeners["https"]:
            args += ["--https-port", str(self._ports.get("https", 0))]
        else:
            args.append("--no-https")
        if self._listeners["h3"]:
            # Default: HTTP/3 on the HTTPS port number. Explicit when restarting on known ports
            # or when HTTPS is off (then the default would be 8443).
            if "h3" in self._ports or not self._listeners["https"]:
                args += ["--h3-port", str(self._ports.get("h3", 0))]
        else:
            args.append("--no-h3")
        if self._faults is not None:
            faults_file = self.data_dir / "faults.json"
            faults_file.write_text(json.dumps(self._faults))
            args += ["--faults", str(faults_file)]
        return args + self._extra_args

    def _terminate(self, timeout: float = 10.0) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        return process.returncode

    def _control(self, method: str, path: str, document: Any = None) -> Any:
        base = self.http_url or self.https_url
        if base is None:
            raise RuntimeError("the control API needs the http or https listener")
        data = None if document is None else json.dumps(document).encode()
        request = urllib.request.Request(  # noqa: S310 (our own http(s) URL)
            base + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        handlers: list[Any] = [urllib.request.ProxyHandler({})]  # loopback: never via a proxy
        if base.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context()))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from exc


# the HTTP/3 test client ------------------------------------------------------------------------


@dataclass(frozen=True)
class H3Response:
    """An HTTP/3 response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class H3TransportError(ConnectionError):
    """HTTP/3 failed below HTTP: no status was received."""


class H3HandshakeFailed(H3TransportError):
    """The QUIC/TLS handshake failed (untrusted certificate, wrong ALPN, refused)."""


class H3ConnectionLost(H3TransportError):
    """The QUIC connection ended before the response was complete."""


class _H3ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._responses: dict[int, tuple[asyncio.Future[H3Response], list[Any], bytearray]] = {}
        self.termination: str | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.termination = f"error {event.error_code:#x} {event.reason_phrase!r}"
            # aioquic itself does not wake stream waiters when the connection dies.
            for future, _, _ in self._responses.values():
                if not future.done():
                    future.set_exception(
                        H3ConnectionLost(
                            f"QUIC connection closed: error {event.error_code:#x} "
                            f"{event.reason_phrase!r}"
                        )
                    )
            self._responses.clear()
            return
        if isinstance(event, StreamReset) and event.stream_id in self._responses:
            future, _, _ = self._responses.pop(event.stream_id)
            if not future.done():
                future.set_exception(H3ConnectionLost(f"stream reset: {event.error_code:#x}"))
        for h3_event in self._h3.handle_event(event):
            self._h3_event_received(h3_event)

    def _h3_event_received(self, event: H3Event) -> None:
        if not isinstance(event, HeadersReceived | DataReceived):
            return
        pending = self._responses.get(event.stream_id)
        if pending is None:
            return
        future, headers, body = pending
        if isinstance(event, HeadersReceived):
            headers.extend(event.headers)
        else:
            body.extend(event.data)
        if event.stream_ended:
            del self._responses[event.stream_id]
            fields = {k.decode(): v.decode("latin-1") for k, v in headers}
            status = int(fields.pop(":status", "0"))
            if not future.done():
                future.set_result(H3Response(status=status, headers=fields, body=bytes(body)))

    async def request(
        self,
        method: str,
        authority: str,
        path: str,
        body: bytes,
        headers: Sequence[tuple[str, str]],
    ) -> H3Response:
        stream_id = self._quic.get_next_available_stream_id()
        future: asyncio.Future[H3Response] = asyncio.get_running_loop().create_future()
        self._responses[stream_id] = (future, [], bytearray())
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        fields += [(k.lower().encode(), v.encode()) for k, v in headers]
        if body or method not in ("GET", "HEAD", "DELETE"):
            fields.append((b"content-length", str(len(body)).encode()))
        self._h3.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self._h3.send_data(stream_id, body, end_stream=True)
        self.transmit()
        return await future


async def h3_request(
    method: str,
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    *,
    ca_file: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,  # mandatory: aioquic has no deadline
) -> H3Response:
    """Send one HTTP/3 request on a new QUIC connection and return the response.

    ``timeout`` covers the handshake and the request: aioquic's ``connect`` has no deadline of
    its own (a blocked UDP port would hang until the 60 s idle timeout).

    Raises:
        TimeoutError: nothing complete within ``timeout`` (e.g. UDP blocked or closed).
        H3HandshakeFailed: the handshake failed (e.g. untrusted certificate).
        H3ConnectionLost: the connection was closed before the response was complete.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"HTTP/3 needs an https:// URL, got {url!r}")
    host, port = parts.hostname, parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    if ca_file is not None:
        configuration.load_verify_locations(cafile=os.fspath(ca_file))
    created: list[_H3ClientProtocol] = []

    def create_protocol(*args: Any, **kwargs: Any) -> _H3ClientProtocol:
        created.append(_H3ClientProtocol(*args, **kwargs))
        return created[-1]

    async with asyncio.timeout(timeout):
        try:
            async with connect(
                host, port, configuration=configuration, create_protocol=create_protocol
            ) as client:
                assert isinstance(client, _H3ClientProtocol)
                return await client.request(method, authority, path, body, header_list)
        except H3TransportError:
            raise
        except ConnectionError as exc:
            # aioquic raises a bare ConnectionError(); the reason is only in the close event.
            reason = created[0].termination if created else None
            message = f"QUIC handshake failed: {reason or 'no reason given'}"
            raise H3HandshakeFailed(message) from exc


async def h3_post(
    url: str,
    body: bytes,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    ca_file: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,  # mandatory: aioquic has no deadline
) -> H3Response:
    """POST ``body`` to ``url`` over HTTP/3 (see :func:`h3_request` for errors)."""
    return await h3_request("POST", url, body, headers, ca_file=ca_file, timeout=timeout)


def h3_post_sync(
    url: str,
    body: bytes,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    ca_file: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,
) -> H3Response:
    """:func:`h3_post` for synchronous tests (runs its own event loop)."""
    with contextlib.closing(asyncio.new_event_loop()) as loop:
        return loop.run_until_complete(h3_post(url, body, headers, ca_file, timeout))
