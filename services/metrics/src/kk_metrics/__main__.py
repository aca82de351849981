"""killkrill-metrics: scrape the node's metrics and hand them to the shipper until SIGTERM.

Configuration comes from the environment and the config file (``kk_common.config``).
Exit status: 0 after a clean stop (or with metrics disabled), 2 for a configuration
problem, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping, Sequence
from functools import partial

import zmq.asyncio

from kk_common.config import AgentConfig
from kk_common.jsonlog import log_event
from kk_common.startup import (
    command_parser,
    serve,
    start_service,
)
from kk_metrics import __version__
from kk_metrics.app import MetricsService

_log = logging.getLogger("kk.metrics")


async def _run(config: AgentConfig, context: zmq.asyncio.Context, stop: asyncio.Event) -> None:
    await MetricsService(config, context=context).run(stop)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = command_parser(
        "killkrill-metrics",
        "Scrape the node's metrics and hand them to the shipper until SIGTERM.",
        version=__version__,
    )
    args = parser.parse_args(argv)
    try:
        config = start_service("metrics", config_path=args.config, environ=environ)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if not config.metrics.enabled:
        log_event(_log, logging.WARNING, "metrics_disabled", detail="metrics.enabled is false")
        return 0
    return serve(partial(_run, config), fatal={OSError: "state_dir_unusable"})


if __name__ == "__main__":
    sys.exit(main())
