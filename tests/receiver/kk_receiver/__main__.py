"""Command line: ``killkrill-reference-receiver`` / ``python -m kk_receiver``.

Credentials come preferably from KK_RECEIVER_LICENSE_KEY and KK_RECEIVER_API_KEY, so they do
not show up in ``ps``; the flags exist for convenience and win when both are given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from .app import ServeConfig, run
from .core import MiB, ReceiverSettings
from .faults import FaultScript, InvalidFaultScript, parse_fault_script
from .jsonlog import configure_logging
from .store import DEFAULT_REQUEST_LOG_LIMIT

log = logging.getLogger("kk_receiver")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="killkrill-reference-receiver",
        description="A KillKrill-compatible log and metrics receiver (HTTP/1.1 and HTTP/3) "
        "for tests and local runs.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="database, TLS files (tls/ca.crt) and ready.json live here",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--https-port",
        type=int,
        default=8443,
        help="HTTP/1.1 over TLS on TCP; HTTP/3 uses the same number over UDP "
        "unless --h3-port is given; 0 = a port free on both (default %(default)s)",
    )
    parser.add_argument(
        "--h3-port", type=int, default=None, help="HTTP/3 UDP port (default: same as --https-port)"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=8080,
        help="plain HTTP/1.1 on TCP; 0 = ephemeral (default %(default)s)",
    )
    parser.add_argument("--no-http", action="store_true", help="disable plain HTTP")
    parser.add_argument("--no-https", action="store_true", help="disable HTTP/1.1 over TLS")
    parser.add_argument("--no-h3", action="store_true", help="disable HTTP/3")
    parser.add_argument(
        "--mode",
        choices=("batch", "single"),
        default="batch",
        help="batch: the documented contract; single: today's one-record "
        "receivers (default %(default)s)",
    )
    parser.add_argument(
        "--license-key",
        default=None,
        help="require Authorization: Bearer <key> (prefer the env var KK_RECEIVER_LICENSE_KEY)",
    )
    parser.add_argument(
        "--api-key", default=None, help="require X-API-Key (prefer the env var KK_RECEIVER_API_KEY)"
    )
    parser.add_argument(
        "--faults",
        type=Path,
        default=None,
        help="JSON fault script to install at startup (see kk_receiver.faults)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=10 * MiB,
        help="largest body as received, else 413 (default %(default)s)",
    )
    parser.add_argument(
        "--max-decoded-bytes",
        type=int,
        default=64 * MiB,
        help="largest body after decoding, else 413 (default %(default)s)",
    )
    parser.add_argument(
        "--max-batch-records",
        type=int,
        default=None,
        help="largest record count per batch, else 413 (default: no limit)",
    )
    parser.add_argument(
        "--request-log-limit",
        type=int,
        default=DEFAULT_REQUEST_LOG_LIMIT,
        help="ingest requests kept for GET /api/v1/requests (default %(default)s)",
    )
    parser.add_argument(
        "--tls-san",
        action="append",
        default=[],
        metavar="HOST",
        help="extra DNS name or IP for the server certificate (repeatable)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    return parser


def config_from_args(args: argparse.Namespace, environ: dict[str, str]) -> ServeConfig:
    """Turn parsed arguments (and the credential env vars) into a :class:`ServeConfig`.

    Raises:
        ValueError: for contradictory options or an unreadable fault script.
    """
    faults = FaultScript()
    if args.faults is not None:
        try:
            faults = parse_fault_script(json.loads(args.faults.read_text()))
        except (OSError, ValueError, InvalidFaultScript) as exc:
            raise ValueError(f"--faults {args.faults}: {exc}") from exc
    for name in ("max_body_bytes", "max_decoded_bytes", "request_log_limit"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_batch_records is not None and args.max_batch_records < 1:
        raise ValueError("--max-batch-records must be at least 1")
    h3_port = args.https_port if args.h3_port is None else args.h3_port
    config = ServeConfig(
        data_dir=args.data_dir,
        settings=ReceiverSettings(
            mode=args.mode,
            license_key=args.license_key or environ.get("KK_RECEIVER_LICENSE_KEY") or None,
            api_key=args.api_key or environ.get("KK_RECEIVER_API_KEY") or None,
            max_body_bytes=args.max_body_bytes,
            max_decoded_bytes=args.max_decoded_bytes,
            max_batch_records=args.max_batch_records,
        ),
        host=args.host,
        http_port=None if args.no_http else args.http_port,
        https_port=None if args.no_https else args.https_port,
        h3_port=None if args.no_h3 else h3_port,
        tls_hosts=tuple(args.tls_san),
        faults=faults,
        request_log_limit=args.request_log_limit,
    )
    if config.http_port is None and config.https_port is None and config.h3_port is None:
        raise ValueError("every listener is disabled")
    return config


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until SIGTERM or SIGINT; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = config_from_args(args, dict(os.environ))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        log.error("cannot start", extra={"fields": {"error": str(exc)}})
        return 1
    return 0


async def _serve(config: ServeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run(config, stop)


if __name__ == "__main__":
    sys.exit(main())
