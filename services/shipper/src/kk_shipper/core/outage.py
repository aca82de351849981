"""An output that is down: what is known about the outage, and the effects that report it.

`OutputDelivery` (delivery.py) owns at most one `Outage` at a time and decides when it starts
and ends; this module holds the state, the operator-facing effects and the table of fixes.
Like the rest of the core it reads no clock: every time here was passed in as ``now``.

Why checks and a backoff both exist
-----------------------------------
Re-sending payloads during an outage follows the output's backoff, which grows to
``max_backoff`` (a minute by default): retrying megabytes every second against a dead
receiver helps nobody. But a receiver that is back should get its data within seconds, not
at the end of a one-minute wait. So while the receiver is *unreachable* (transport errors on
every protocol) the app also runs a `ReachabilityCheck` every ``check_interval_s`` (one
second by default): a TCP/TLS connect and a QUIC handshake (or PING on a live connection),
no payload. A check that passes releases one held batch at once as a trial; its delivery
ends the outage and releases the rest. Checks decide when to try, not over which protocol
(see `OutputDelivery.check_passed`). An outage where the receiver *answers* (5xx, 429)
has no checks: its answers already say when it is back, and checking would only tell us
that it can be reached, which we know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from ..types import Protocol

__all__ = [
    "FIXES",
    "Outage",
    "OutputDown",
    "OutputRecovered",
    "OutputStillDown",
    "ReachabilityCheck",
    "fix_for",
]

FIXES: MappingProxyType[str, str] = MappingProxyType(
    {
        "tls_verify_failed": (
            "set tls.ca_file to the CA that signed the receiver's certificate, and check that "
            "the URL's host name is one the certificate names"
        ),
        "handshake_failed": (
            "check that the URL's port serves TLS (HTTP/3 needs ALPN h3); for a client "
            "certificate, check tls.cert_file and tls.key_file"
        ),
        "http_401": "check KILLKRILL_LICENSE_KEY (and KILLKRILL_API_KEY)",
        "unexpected_success_body": (
            "the URL answers 2xx without the receiver's batch answer: it may point at a proxy, "
            "a login page or another service rather than a KillKrill receiver; check the "
            "output's url (and mode: single for receivers that take one record per request)"
        ),
        "http_403": "check KILLKRILL_LICENSE_KEY (and KILLKRILL_API_KEY)",
    }
)
"""What the operator can do, by cause (a transport reason or ``http_<status>``). Causes that
are not listed have no fix on the agent's side (the receiver is down or failing)."""


def fix_for(cause: str) -> str | None:
    """The fix for ``cause``, or None when there is nothing to change on the agent."""
    return FIXES.get(cause)


# -- the check the app runs ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReachabilityCheck:
    """Can ``protocol`` reach the receiver at ``url`` now? No payload; report back once with
    `OutputDelivery.check_passed` or `OutputDelivery.check_failed`."""

    check_id: int
    protocol: Protocol
    url: str
    started_at: float


# -- effects ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputDown:
    """Nothing gets through: the first failure of an outage (one per outage)."""

    cause: str
    """A stable code: a transport reason (``connect_failed``, ``tls_verify_failed``, ...) or
    ``http_<status>``."""
    detail: str
    fix: str | None
    since: float
    checking: bool
    """The receiver is unreachable: reachability checks run every ``check_interval_s``."""


@dataclass(frozen=True, slots=True)
class OutputStillDown:
    """A summary, every ``outage_summary_interval_s`` while the outage lasts."""

    cause: str
    detail: str
    fix: str | None
    since: float
    failures: int
    """Attempts that failed since the outage began (reachability checks not counted)."""
    records_held: int
    next_retry_at: float | None
    """When the next held batch is due to be re-sent (None: one is in flight)."""
    next_check_at: float | None
    """When the next reachability check runs (None: no checks, the receiver answers)."""


@dataclass(frozen=True, slots=True)
class OutputRecovered:
    """A delivery ended the outage."""

    cause: str
    since: float
    down_for_s: float
    failures: int
    protocol: Protocol
    """The protocol that delivered."""


# -- state --------------------------------------------------------------------------------


@dataclass(slots=True)
class Outage:
    """One outage of one output, from its first failure to the next delivery.

    While ``unreachable``, checks run in rounds (one check per protocol); a round ends when
    one passes (then one held batch goes out as the *trial*, and checks stop until it
    fails) or when all failed (the next round starts ``check_interval_s`` after this one
    began). A trial that fails at transport level although its check passed (the receiver
    accepts connections but not requests) delays the next round twice as long each time,
    so such a receiver gets one trial per interval that grows to ``max_backoff_s``.
    """

    since: float
    cause: str
    detail: str
    unreachable: bool
    """Transport errors on every protocol tried: reachability checks run."""
    next_summary_at: float
    failures: int = 1
    retry_at: float = 0.0
    """Held batches are not re-sent before this (the output's backoff; see delivery.py)."""
    next_check_at: float | None = None
    """When the next round of checks is due; None while a round runs or checks are off."""
    round: dict[Protocol, bool | None] = field(default_factory=dict)
    """This round's checks by protocol: None while in flight, then passed or failed."""
    round_checks: set[int] = field(default_factory=set)
    """Ids of this round's checks; answers to older rounds are ignored."""
    trial_out: bool = False
    """A check passed and released a trial; the next failure ends it."""
    trials_failed: int = 0

    def start_round(self, checks: dict[Protocol, int]) -> None:
        """``checks``: the id of the check just started for each protocol."""
        self.next_check_at = None
        self.round = dict.fromkeys(checks)
        self.round_checks = set(checks.values())

    def end_round(self, next_round_at: float | None) -> None:
        """Forget this round's checks; the next round is due at ``next_round_at``."""
        self.round, self.round_checks = {}, set()
        self.next_check_at = next_round_at

    def release_trial(self) -> None:
        """A check passed: the receiver looks reachable; the trial batch will tell."""
        self.end_round(None)
        self.unreachable = False
        self.trial_out = True

    def failed_again(
        self,
        cause: str,
        detail: str,
        *,
        unreachable: bool,
        now: float,
        check_interval: float,
        check_cap: float,
    ) -> None:
        """Another failure. The latest cause is the one to report, and checks follow the
        latest evidence: an HTTP answer proves the receiver is reachable."""
        self.failures += 1
        self.cause, self.detail = cause, detail
        trial_failed, self.trial_out = self.trial_out, False
        if not unreachable:
            self.end_round(None)
        elif not self.unreachable:
            if trial_failed:
                self.trials_failed += 1
                delay = check_interval * 2.0 ** min(self.trials_failed, 32)
                self.end_round(now + max(check_interval, min(check_cap, delay)))
            else:
                self.end_round(now)
        self.unreachable = unreachable
