"""A stand-in shipper process for the IPC tests: binds the batch socket, writes every
received batch id to a file (one per line, flushed), and acknowledges the first
``--ack-first`` batches it receives (all of them when omitted)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import zmq.asyncio

from kk_common.envelope import Ack, AckStatus
from kk_common.ipc import BatchReceiver


async def serve(endpoint: str, log_path: str, ack_first: int | None) -> None:
    receiver = BatchReceiver(zmq.asyncio.Context.instance(), endpoint)
    received = 0
    with open(log_path, "a", encoding="utf-8") as log:
        print("ready", flush=True)
        while True:
            incoming = await receiver.receive()
            received += 1
            log.write(incoming.batch.batch_id + "\n")
            log.flush()
            if ack_first is None or received <= ack_first:
                receiver.acknowledge(
                    incoming, Ack(batch_id=incoming.batch.batch_id, status=AckStatus.STORED)
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("log")
    parser.add_argument("--ack-first", type=int)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.endpoint, args.log, args.ack_first))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
