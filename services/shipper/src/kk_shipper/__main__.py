"""killkrill-shipper: run the shipper, or inspect and replay its dead letters.

    killkrill-shipper [run]                      run until SIGTERM/SIGINT
    killkrill-shipper dead-letters [--kind K]    list dead-lettered records (JSON lines)
    killkrill-shipper replay [--kind K]          move dead letters back into the queue

Configuration comes from the environment and the config file (``kk_common.config``).
``dead-letters`` and ``replay`` only read and write the local queue: they need the state
directory and the queue's limits from the configuration, not the license key or a receiver.
Exit status: 0 after a clean stop, 2 for a configuration problem, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial

import zmq.asyncio

from kk_common.config import AgentConfig, tls_file_problems
from kk_common.jsonlog import log_event
from kk_common.startup import (
    CONFIG_EXIT_STATUS,
    add_command,
    command_parser,
    serve,
    start_service,
)
from kk_shipper import __version__
from kk_shipper.app import build, queue_path
from kk_shipper.storage import DurableQueue, QueueError, QueueFull
from kk_shipper.types import Kind

_log = logging.getLogger("kk.shipper")


async def _run(config: AgentConfig, context: zmq.asyncio.Context, stop: asyncio.Event) -> None:
    await build(config, context=context).run(stop)


def _open_queue(config: AgentConfig) -> DurableQueue:
    """The queue as the running shipper opens it: the same limits and dedup window."""
    shipper = config.shipper
    return DurableQueue(
        queue_path(config),
        max_bytes=shipper.queue_max_size,
        dedup_window_s=shipper.dedup_window,
        dedup_max_sources=shipper.dedup_max_sources,
        dead_letter_max_bytes=shipper.dead_letter_max_size,
    )


LOCAL_COMMANDS = frozenset({"dead-letters", "replay"})

REPLAY_CHUNK = 1000
"""Dead letters replayed per transaction: a running shipper gets the write lock between."""


def _replay(config: AgentConfig, kind: Kind | None) -> int:
    """Replay in short transactions; a full queue stops it with what is left said."""
    moved = 0
    with _open_queue(config) as queue:
        try:
            while step := queue.replay_dead_letters(kind, now=time.time(), limit=REPLAY_CHUNK):
                moved += step
        except QueueFull as full:
            left = len(queue.dead_letters(kind, limit=1_000_000))
            print(
                f"replayed {moved} dead-lettered records into the queue; {left} remain: the "
                f"queue is full ({full}). Replay again once deliveries have freed space.",
                file=sys.stderr,
            )
            return 1
    print(f"replayed {moved} dead-lettered records into the queue")
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = command_parser(
        "killkrill-shipper",
        "Run the shipper, or inspect and replay its dead letters.",
        version=__version__,
    )
    commands = parser.add_subparsers(dest="command")
    add_command(commands, "run", "run the shipper until SIGTERM (the default)")
    listing = add_command(commands, "dead-letters", "list dead-lettered records (JSON lines)")
    listing.add_argument("--kind", choices=["logs", "metrics"])
    listing.add_argument("--limit", type=int, default=1000)
    replay = add_command(commands, "replay", "move dead letters back into the queue")
    replay.add_argument("--kind", choices=["logs", "metrics"])
    args = parser.parse_args(argv)

    try:
        config = start_service(
            "shipper",
            config_path=args.config,
            environ=environ,
            local_only=args.command in LOCAL_COMMANDS,
        )
    except SystemExit as exit_:
        return int(exit_.code or 0)

    if args.command == "dead-letters":
        with _open_queue(config) as queue:
            for letter in queue.dead_letters(args.kind, limit=args.limit):
                print(
                    json.dumps(
                        {
                            "kind": letter.kind,
                            "id": letter.record_id,
                            "reason": letter.reason,
                            "dead_lettered_at": letter.dead_lettered_at,
                            "record": json.loads(letter.body),
                        },
                        ensure_ascii=False,
                    )
                )
        return 0
    if args.command == "replay":
        return _replay(config, args.kind)
    # Before anything opens a socket: a missing or unreadable CA, certificate or key is a
    # configuration problem (named by its key path), not a traceback at the first request.
    file_problems = tls_file_problems(config)
    if file_problems:
        listed = "\n".join(str(problem) for problem in file_problems)
        print(f"killkrill-shipper: invalid configuration:\n{listed}", file=sys.stderr)
        for problem in file_problems:
            log_event(
                _log, logging.ERROR, "config_invalid", path=problem.path, detail=problem.message
            )
        return CONFIG_EXIT_STATUS
    return serve(partial(_run, config), fatal={QueueError: "queue_unusable"})


if __name__ == "__main__":
    sys.exit(main())
