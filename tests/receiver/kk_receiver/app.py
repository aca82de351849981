"""Wiring: build the store, core and listeners from a :class:`ServeConfig` and run them.

``run`` owns the event loop's lifetime: it binds every listener first, then writes
``ready.json`` atomically (so a waiting test sees either nothing or the complete file), serves
until ``stop`` is set, and shuts down in reverse order, removing ``ready.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .certs import TlsFiles, ensure_certificates
from .core import ReceiverCore, ReceiverSettings
from .faults import FaultScript
from .h3 import H3Server
from .http11 import Http11Server
from .messages import Action, CloseConnection, Request
from .sockets import bind_tcp, bind_tcp_and_udp, bind_udp
from .store import DEFAULT_REQUEST_LOG_LIMIT, SqliteStore

log = logging.getLogger("kk_receiver")

READY_FILE = "ready.json"
DATABASE_FILE = "receiver.sqlite3"


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``run`` needs. A port of None disables that listener; 0 picks a free one.

    Attributes:
        data_dir: Holds the database, the TLS files and ready.json.
        settings: The core's mode, credentials and limits.
        host: The address every listener binds.
        http_port: Plain HTTP/1.1 (TCP).
        https_port: HTTP/1.1 over TLS (TCP).
        h3_port: HTTP/3 (UDP). When equal to ``https_port`` both use one port number, also
            when that number is 0 (then a port free on both TCP and UDP is chosen).
        tls_hosts: Extra DNS names / IPs for the server certificate.
        faults: The fault script installed at startup.
        request_log_limit: How many ingest requests ``GET /api/v1/requests`` can return.
    """

    data_dir: Path
    settings: ReceiverSettings = field(default_factory=ReceiverSettings)
    host: str = "127.0.0.1"
    http_port: int | None = 8080
    https_port: int | None = 8443
    h3_port: int | None = 8443
    tls_hosts: tuple[str, ...] = ()
    faults: FaultScript = field(default_factory=FaultScript)
    request_log_limit: int = DEFAULT_REQUEST_LOG_LIMIT


@dataclass
class _Sockets:
    http: socket.socket | None = None
    https: socket.socket | None = None
    h3: socket.socket | None = None

    def close(self) -> None:
        for sock in (self.http, self.https, self.h3):
            if sock is not None:
                sock.close()


def bind_listeners(config: ServeConfig) -> _Sockets:
    """Bind every enabled listener's socket (before anything is served)."""
    bound = _Sockets()
    try:
        if config.http_port is not None:
            bound.http = bind_tcp(config.host, config.http_port)
        if config.https_port is not None and config.https_port == config.h3_port:
            bound.https, bound.h3 = bind_tcp_and_udp(config.host, config.https_port)
        else:
            if config.https_port is not None:
                bound.https = bind_tcp(config.host, config.https_port)
            if config.h3_port is not None:
                bound.h3 = bind_udp(config.host, config.h3_port)
    except OSError:
        bound.close()
        raise
    return bound


async def run(config: ServeConfig, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set. Raises OSError when a port cannot be bound."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    ready_path = config.data_dir / READY_FILE
    ready_path.unlink(missing_ok=True)  # never let a waiter read the previous run's file
    tls = ensure_certificates(config.data_dir / "tls", config.tls_hosts)
    store = SqliteStore.open(config.data_dir / DATABASE_FILE, config.request_log_limit)
    core = ReceiverCore(config.settings, store, faults=config.faults)
    sockets = bind_listeners(config)
    dispatch = _logging_dispatch(core)
    servers: list[Http11Server] = []
    h3_server: H3Server | None = None
    try:
        if sockets.http is not None:
            servers.append(Http11Server(dispatch, core.max_body_bytes))
            await servers[-1].start(sockets.http)
        if sockets.https is not None:
            alt_svc = ()
            if sockets.h3 is not None:
                # RFC 9114 section 3.1.1: advertise HTTP/3 to HTTP/1.1 clients.
                alt_svc = (("alt-svc", f'h3=":{_port(sockets.h3)}"; ma=3600'),)
            servers.append(
                Http11Server(
                    dispatch, core.max_body_bytes, _tls_context(tls), extra_headers=alt_svc
                )
            )
            await servers[-1].start(sockets.https)
        if sockets.h3 is not None:
            h3_server = H3Server(dispatch, core.max_body_bytes, tls.server_cert, tls.server_key)
            await h3_server.start(sockets.h3)
        ready = _ready_document(config, sockets, tls)
        _write_json_atomically(ready_path, ready)
        log.info(
            "receiver ready",
            extra={
                "fields": {
                    **ready,
                    "license_key": "configured" if config.settings.license_key else "off",
                    "api_key": "configured" if config.settings.api_key else "off",
                }
            },
        )
        await stop.wait()
    finally:
        ready_path.unlink(missing_ok=True)
        if h3_server is not None:
            h3_server.close()
        for server in servers:
            await server.close()
        sockets.close()
        store.close()
        log.info("receiver stopped")


def _logging_dispatch(core: ReceiverCore) -> Any:
    """The adapters' dispatch: the core plus the wall clock, and one log line per request."""

    def dispatch(request: Request) -> Action:
        action = core.handle(request, time.time())
        log.info(
            "request",
            extra={
                "fields": {
                    "protocol": request.protocol,
                    "method": request.method,
                    "path": request.target,
                    "status": None if isinstance(action, CloseConnection) else action.status,
                    "closed": isinstance(action, CloseConnection),
                    "delay_s": action.delay_s,
                }
            },
        )
        return action

    return dispatch


def _tls_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.server_cert, tls.server_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _ready_document(config: ServeConfig, sockets: _Sockets, tls: TlsFiles) -> dict[str, Any]:
    url_host = {"0.0.0.0": "127.0.0.1", "::": "127.0.0.1"}.get(config.host, config.host)
    if ":" in url_host:
        url_host = f"[{url_host}]"
    http_port = _port(sockets.http) if sockets.http else None
    https_port = _port(sockets.https) if sockets.https else None
    h3_port = _port(sockets.h3) if sockets.h3 else None
    return {
        "pid": os.getpid(),
        "mode": config.settings.mode,
        "http_url": f"http://{url_host}:{http_port}" if http_port else None,
        "https_url": f"https://{url_host}:{https_port}" if https_port else None,
        "h3_port": h3_port,
        "h3_url": f"https://{url_host}:{h3_port}" if h3_port else None,
        "ca_file": str(tls.ca_cert),
        "data_dir": str(config.data_dir),
    }


def _write_json_atomically(path: Path, document: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)
