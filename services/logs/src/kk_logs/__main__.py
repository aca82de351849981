"""killkrill-logs: tail container logs and hand them to the shipper until SIGTERM.

Configuration comes from the environment and the config file (``kk_common.config``).
Exit status: 0 after a clean stop, 2 for a configuration problem, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import zmq.asyncio

from kk_common.config import AgentConfig
from kk_common.jsonlog import log_event
from kk_common.k8s.connect import pod_metadata_source
from kk_common.startup import (
    command_parser,
    serve,
    start_service,
)
from kk_logs import __version__
from kk_logs.app import LogsService
from kk_logs.metadata import PodCache, ServiceIndex
from kk_logs.offsets import OffsetStoreError
from kk_logs.tailing.descriptors import DESCRIPTOR_RESERVE, open_files_pool, raise_soft_limit

_log = logging.getLogger("kk.logs")


def metadata_source(config: AgentConfig, pods: PodCache, services: ServiceIndex | None) -> Any:
    """The configured source of pod metadata, or None when enrichment is off."""
    kube = config.logs.kubernetes
    if not kube.enabled:
        return None
    return pod_metadata_source(kube, config.agent.node_name, pods, services)


def open_files(config: AgentConfig) -> int:
    """The pool of log-file descriptors: from the descriptor limit (raised to the hard
    limit first) and ``logs.max_open_files`` (`kk_logs.tailing.descriptors`)."""
    pool = open_files_pool(
        raise_soft_limit(),
        config.logs.max_open_files,
        system_logs=config.logs.system_logs.enabled,
    )
    detail = (
        f"logs.max_open_files leaves fewer than {DESCRIPTOR_RESERVE} descriptors for sockets, "
        "SQLite and inotify: lowered; raise the container's RLIMIT_NOFILE"
        if pool.lowered
        else None
    )
    log_event(
        _log,
        logging.WARNING if pool.lowered else logging.INFO,
        "open_files_pool",
        max_open_files=pool.size,
        descriptor_limit=pool.limit,
        configured=pool.configured,
        detail=detail,
    )
    return pool.size


async def _run(config: AgentConfig, context: zmq.asyncio.Context, stop: asyncio.Event) -> None:
    pods = PodCache(retention_s=config.logs.kubernetes.deleted_pod_retention)
    services = ServiceIndex() if config.logs.kubernetes.services else None
    service = LogsService(
        config,
        context=context,
        metadata_source=metadata_source(config, pods, services),
        pods=pods,
        services=services,
        max_open_files=open_files(config),
    )
    await service.run(stop)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = command_parser(
        "killkrill-logs",
        "Tail container logs and hand them to the shipper until SIGTERM.",
        version=__version__,
    )
    args = parser.parse_args(argv)
    try:
        config = start_service("logs", config_path=args.config, environ=environ)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if not config.logs.enabled:
        log_event(_log, logging.WARNING, "logs_disabled", detail="logs.enabled is false")
        return 0
    return serve(partial(_run, config), fatal={OffsetStoreError: "offset_store_unusable"})


if __name__ == "__main__":
    sys.exit(main())
