"""The delivery loop with a real queue: a live batch stored behind a catch-up backlog is
sent in the next request, and both lanes are delivered whole, each record once."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from core_support import settings
from lanes_support import line_batch

from kk_shipper.core import OutputDelivery
from kk_shipper.ingest import StorageThread
from kk_shipper.pipeline import OutputPipeline
from kk_shipper.storage import DurableQueue
from kk_shipper.telemetry import ShipperMetrics
from kk_shipper.types import HttpRequest, HttpResponse, Protocol


class Receiver:
    """Answers every request with success once the test lets it (one request at a time)."""

    protocol = Protocol.H1

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.go = asyncio.Event()

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:
        await self.go.wait()
        ids = [record["id"] for record in json.loads(request.body)["logs"]]
        self.requests.append(ids)
        body = json.dumps({"status": "success", "processed": len(ids)}).encode()
        return HttpResponse(200, {}, body, Protocol.H1)

    async def check(self, url: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_live_batch_stored_behind_a_backlog_goes_in_the_next_request(tmp_path: Path) -> None:
    async def story() -> None:
        output = settings(url="http://recv/api/v1/logs", batch_size=50, max_in_flight=1)
        queue = DurableQueue(tmp_path / "queue.db")
        storage = StorageThread()
        receiver = Receiver()
        pipeline = OutputPipeline(
            "logs",
            OutputDelivery(output, rng=random.Random(1)),
            queue,
            storage,
            {Protocol.H1: receiver},
            request_timeout_s=5.0,
            metrics=ShipperMetrics(),
            clock=lambda: 1_700_000_000.0,
        )
        # A noisy file's backlog (1,000 records, twenty requests' worth) is stored first.
        for start in range(0, 10_000, 1_000):
            backlog = line_batch("noisy", range(start, start + 1_000, 10), catch_up=True)
            pipeline.records_stored((await storage.call(queue.append, "logs", backlog, now=0)).runs)
        running = asyncio.create_task(pipeline.run())
        receiver.go.set()
        await wait_for(lambda: len(receiver.requests) >= 3, "three requests")
        receiver.go.clear()  # hold the receiver while the quiet file's line is stored
        quiet = line_batch("quiet", range(0, 10, 10), catch_up=False)
        stored = await storage.call(queue.append, "logs", quiet, now=0)
        pipeline.records_stored(stored.runs)
        sent_before = len(receiver.requests)
        receiver.go.set()
        await wait_for(lambda: sum(map(len, receiver.requests)) >= 1_001, "every record sent")
        for _ in range(2000):  # the last completion reaches the queue after the answer
            if (await storage.call(queue.stats, now=0)).kinds["logs"].queued_records == 0:
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("delivered records are still queued")
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        storage.close()

        carrying = next(n for n, ids in enumerate(receiver.requests) if "quiet@0" in ids)
        # At most the request in flight when it was stored, and the next one it joins.
        assert carrying <= sent_before + 1, (carrying, sent_before)
        assert receiver.requests[carrying][0] == "quiet@0"  # live first in its request
        everything = Counter(i for ids in receiver.requests for i in ids)
        expected = [f"noisy@{o}" for o in range(0, 10_000, 10)] + ["quiet@0"]
        assert everything - Counter(expected) == Counter(), "sent twice"
        assert Counter(expected) - everything == Counter(), "never sent"
        queue.close()

    asyncio.run(story())
