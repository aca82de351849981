"""Builds a `MetricsService` against a fake kubelet for in-process tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
import zmq.asyncio
from e2e_support import LICENSE_KEY, merge

from kk_common.config import AgentConfig, parse_config
from kk_common.envelope import EncodedRecords
from kk_metrics.app import MetricsService

TOKEN = "kubelet-reader-token"


def metrics_config(
    directory: Path,
    sources: list[dict[str, Any]],
    *,
    logs: dict[str, Any] | None = None,
    **metrics: Any,
) -> AgentConfig:
    document = {
        "agent": {
            "node_name": "node-a",
            "cluster_name": "test",
            "ipc_dir": str(directory / "ipc"),
            "state_dir": str(directory / "state"),
        },
        "logs": logs or {"enabled": False},
        "metrics": merge(
            {
                "interval": "30s",
                "sources": sources,
                "node": {"enabled": False},
                "pods": {"enabled": False},
                "output": {"url": "https://metrics.invalid:8443"},
            },
            metrics,
        ),
    }
    (directory / "ipc").mkdir(exist_ok=True)
    return parse_config(yaml.safe_dump(document), {"KILLKRILL_LICENSE_KEY": LICENSE_KEY})


def kubelet_source(name: str, url: str, directory: Path, ca: Path, **extra: Any) -> dict:
    token_file = directory / "token"
    if not token_file.exists():
        token_file.write_text(TOKEN + "\n")
    return {
        "name": name,
        "url": url,
        "bearer_token_file": str(token_file),
        "ca_file": str(ca),
        **extra,
    }


@contextmanager
def running_service(
    config: AgentConfig, **more: Any
) -> Iterator[tuple[MetricsService, asyncio.AbstractEventLoop]]:
    """A service on a private event loop (no shipper: batches stay spooled)."""
    loop = asyncio.new_event_loop()
    context = zmq.asyncio.Context()

    async def build() -> MetricsService:
        return MetricsService(config, context=context, jitter=0.0, **more)

    service = loop.run_until_complete(build())
    try:
        yield service, loop
    finally:

        async def close() -> None:
            service.executor.shutdown(wait=True)
            for source in service.sources.values():
                if source.fetcher is not None:
                    await source.fetcher.close()
            service.sender.close()
            service.telemetry.close()

        loop.run_until_complete(close())
        context.term()
        loop.close()


def spooled_records(service: MetricsService) -> list[EncodedRecords]:
    batches = [service.spool.load(batch) for batch in service.outbox]
    assert all(batch is not None for batch in batches)
    return batches  # type: ignore[return-value]
