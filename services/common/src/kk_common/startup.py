"""What every service's entry point does first: read the configuration, set up logging.

Kept here so each container starts the same way: every configuration problem is printed at
once (no secret in it) with exit status 2; logs are JSON with the license key and API key
registered for redaction; configuration notes (warnings) are logged once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping

import zmq.asyncio

from kk_common.config import AgentConfig, ConfigError, config_notes, load_config
from kk_common.ipc import IpcSetupError
from kk_common.jsonlog import configure_logging, log_event

__all__ = [
    "CONFIG_EXIT_STATUS",
    "LICENSE_KEY_HOLDERS",
    "add_command",
    "add_config_argument",
    "command_parser",
    "run_until_signalled",
    "secrets_of",
    "serve",
    "start_service",
]

CONFIG_EXIT_STATUS = 2
"""Exit status of a service whose configuration is invalid."""

LICENSE_KEY_HOLDERS = frozenset({"shipper"})
"""The components that talk to the receivers: only they need (and get) the license Secret.
The others start without it (least privilege; deploy/README.md)."""

_log = logging.getLogger("kk.startup")


_CONFIG_HELP = "config file (default: $KILLKRILL_CONFIG or /etc/killkrill/config.yaml)"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--config`` option every service has."""
    parser.add_argument("--config", help=_CONFIG_HELP)


def command_parser(prog: str, summary: str, *, version: str) -> argparse.ArgumentParser:
    """The parser every ``killkrill-*`` command starts from: ``--version`` and ``--config``.

    Add subcommands with `add_command`, so that ``--config`` is accepted before or after
    the subcommand alike (one convention for every command of the agent).
    """
    parser = argparse.ArgumentParser(prog=prog, description=summary)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    add_config_argument(parser)
    return parser


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand that also takes ``--config`` after its name (see `command_parser`)."""
    command = commands.add_parser(name, help=summary, description=summary)
    # SUPPRESS: given before the subcommand, the top-level value stands.
    command.add_argument("--config", default=argparse.SUPPRESS, help=_CONFIG_HELP)
    return command


def start_service(
    component: str,
    *,
    config_path: str | None,
    environ: Mapping[str, str] | None = None,
    local_only: bool = False,
) -> AgentConfig:
    """Load and validate the configuration and configure logging for ``component``.

    ``local_only``: a command that only reads local files (see `load_config`).
    Raises ``SystemExit(2)`` after printing every problem when the configuration is invalid.
    """
    try:
        config = load_config(
            os.environ if environ is None else environ,
            config_path=config_path,
            local_only=local_only,
            require_license_key=component in LICENSE_KEY_HOLDERS,
        )
    except ConfigError as error:
        print(f"killkrill-{component}: invalid configuration:\n{error}", file=sys.stderr)
        raise SystemExit(CONFIG_EXIT_STATUS) from None
    secrets = secrets_of(config)
    configure_logging(
        component=component,
        node=config.agent.node_name,
        level=config.agent.log_level,
        secrets=secrets,
    )
    for note in config_notes(config):
        log_event(_log, logging.WARNING, "config_note", path=note.path, detail=note.message)
    return config


def secrets_of(config: AgentConfig) -> list[str]:
    """The values no log line, error or health problem may show (see `kk_common.redact`)."""
    credentials = config.credentials
    return [
        secret.get_secret_value()
        for secret in (credentials.license_key, credentials.api_key)
        if secret is not None
    ]


ServiceBody = Callable[[zmq.asyncio.Context, asyncio.Event], Awaitable[None]]


def run_until_signalled(body: ServiceBody) -> None:
    """Run ``body(context, stop)`` on a new event loop; SIGTERM/SIGINT set ``stop``.

    ``body`` owns its drain; the ZeroMQ context is terminated after it returns, so every
    socket it opened must be closed by then.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        context = zmq.asyncio.Context()
        try:
            await body(context, stop)
        finally:
            context.term()

    asyncio.run(main())


def serve(body: ServiceBody, *, fatal: Mapping[type[Exception], str]) -> int:
    """`run_until_signalled` with the exit statuses every service uses.

    0 after a clean stop; `CONFIG_EXIT_STATUS` (2) for an IPC socket that cannot be set up
    (``startup_failed``); 1 for one of the service's ``fatal`` errors, logged under the event
    ``fatal`` names for its type (e.g. ``QueueError`` -> ``queue_unusable``).
    """
    try:
        run_until_signalled(body)
    except IpcSetupError as error:
        log_event(_log, logging.ERROR, "startup_failed", detail=str(error))
        return CONFIG_EXIT_STATUS
    except tuple(fatal) as error:
        event = next(name for kind, name in fatal.items() if isinstance(error, kind))
        log_event(_log, logging.ERROR, event, detail=str(error))
        return 1
    return 0
