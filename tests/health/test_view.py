"""The status view's text for a given ``/status`` document."""

from __future__ import annotations

import io
from textwrap import dedent

from telemetry_support import IDENTITY, Clock, logs_telemetry, shipper_telemetry

from kk_health.__main__ import show_status
from kk_health.book import AgentHealth
from kk_health.status import status_document
from kk_health.view import render_status


def agent_at(clock: Clock) -> AgentHealth:
    health = AgentHealth(expected=("shipper", "logs", "metrics"), stale_after_s=30.0)
    start = clock.now - 10
    health.receive(
        shipper_telemetry(at=start, sent=1000, received=1000, responses=[0.1]), now=start
    )
    health.receive(logs_telemetry(at=start, records=1000, acknowledged=1000), now=start)
    health.receive(
        shipper_telemetry(
            at=clock.now,
            sent=13_000,
            received=13_300,
            responses=[0.1],
            buffer_size=125,
            protocol="http/1.1",
            oldest_age_s=125.0,
        ),
        now=clock.now - 2,
    )
    health.receive(
        logs_telemetry(
            at=clock.now,
            records=13_500,
            acknowledged=13_300,
            lag={("shop", "checkout-7d9f"): 1_258_291, ("kube-system", "coredns-1"): 900},
            problems=["120 bytes of log files were lost before being read"],
        ),
        now=clock.now,
    )
    return health


def test_the_table_shows_state_rates_protocol_queue_and_lagging_pods() -> None:
    clock = Clock(now=1_795_687_200.0)
    text = render_status(status_document(agent_at(clock), IDENTITY, now=clock.now))
    assert text == dedent(
        """\
        KillKrill agent 9.9.9 on node-a (cluster prod): NOT READY    2026-11-26 10:00:00Z

        COMPONENT  STATE     IN/s  OUT/s  PROTOCOL       QUEUE  OLDEST  VERSION  UPTIME  REPORTED
        shipper    ready    1,230  1,200  logs http/1.1  12.5%   2m05s  -             -    2s ago
        logs       ready    1,250  1,230  -                  -       -  -             -    0s ago
        metrics    missing      -      -  -                  -       -  -             -     never

        Not ready because:
          - metrics: no telemetry received yet
          note: logs: 120 bytes of log files were lost before being read

        Top lagging pods (bytes written, not read yet):
        POD                        LAG
        shop/checkout-7d9f     1.2 MiB
        kube-system/coredns-1    900 B
        """
    )


def test_status_prints_once_to_a_pipe_and_says_when_the_server_is_unreachable(capsys) -> None:
    out = io.StringIO()
    # Nothing listens on port 9 of the loopback (discard, never served here).
    code = show_status("http://127.0.0.1:9", out, live=False, interval=0.1, as_json=False)
    assert code == 1
    assert out.getvalue() == ""
    assert capsys.readouterr().err.startswith("cannot read the status from http://127.0.0.1:9:")
