"""killkrill-health: run the health container, or show the agent's status.

    killkrill-health [--config PATH] [run]     serve /healthz, /ready, /metrics, /status
    killkrill-health status [--url URL]        the status table (live on a terminal)

``status`` reads ``/status`` over HTTP and needs no configuration, so it works through
``kubectl exec <pod> -c health -- killkrill-health status``. On a terminal it redraws every
``--interval`` seconds until Ctrl-C; otherwise (a pipe, a file) it prints once, as plain
text. Exit status: 0 after a clean stop or a shown status, 2 for a configuration problem,
1 otherwise (the health server cannot be reached).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, TextIO

import httpx
import zmq.asyncio

from kk_common.config import AgentConfig
from kk_common.startup import (
    add_command,
    command_parser,
    serve,
    start_service,
)
from kk_health import __version__
from kk_health.service import build
from kk_health.view import render_status

_log = logging.getLogger("kk.health")

DEFAULT_URL = "http://127.0.0.1:8080"
_CLEAR_SCREEN = "\x1b[H\x1b[2J"


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
) -> int:
    parser = command_parser(
        "killkrill-health", "KillKrill agent health container and status view.", version=__version__
    )
    commands = parser.add_subparsers(dest="command")
    add_command(commands, "run", "serve /healthz, /ready, /metrics and /status (the default)")
    status = add_command(
        commands,
        "status",
        "show each component's state, rates, protocol, queue and lagging pods (reads /status "
        "from the health server; live on a terminal, once otherwise)",
    )
    status.add_argument("--url", default=DEFAULT_URL, help=f"health server (default {DEFAULT_URL})")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    status.add_argument("--once", action="store_true", help="print once even on a terminal")
    status.add_argument("--json", action="store_true", help="print the /status JSON instead")
    args = parser.parse_args(argv)
    out = stdout or sys.stdout

    if args.command == "status":
        live = out.isatty() and not args.once and not args.json
        return show_status(args.url, out, live=live, interval=args.interval, as_json=args.json)

    try:
        config = start_service("health", config_path=args.config, environ=environ)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return serve(partial(_run, config), fatal={OSError: "listen_failed"})


async def _run(config: AgentConfig, context: zmq.asyncio.Context, stop: asyncio.Event) -> None:
    await build(config, context=context).run(stop)


def fetch_status(url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """``GET <url>/status``; raises `httpx.HTTPError` when it cannot be read."""
    response = httpx.get(f"{url.rstrip('/')}/status", timeout=timeout)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def show_status(url: str, out: TextIO, *, live: bool, interval: float, as_json: bool) -> int:
    """Print the status once (exit 1 when unreadable), or redraw it until Ctrl-C."""
    try:
        return _show_status(url, out, live=live, interval=interval, as_json=as_json)
    except KeyboardInterrupt:
        return 0


def _show_status(url: str, out: TextIO, *, live: bool, interval: float, as_json: bool) -> int:
    while True:
        try:
            document = fetch_status(url)
            text = json.dumps(document, indent=2) + "\n" if as_json else render_status(document)
            failed = False
        except (httpx.HTTPError, ValueError) as error:
            text = f"cannot read the status from {url}: {error}\n"
            failed = True
        if not live:
            (sys.stderr if failed else out).write(text)
            return 1 if failed else 0
        out.write(_CLEAR_SCREEN + text)
        out.flush()
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
