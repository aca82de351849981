"""``metrics.kubernetes``: Kubernetes object metrics, leader election and events.

Kept apart from ``model.py`` because it is one self-contained section; ``MetricsConfig``
holds it as ``metrics.kubernetes``. The services that use it: ``kk_metrics.cluster``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .value_types import CUSTOM_ERROR_TYPE, NonEmptyText, Seconds

__all__ = [
    "CLUSTER_OBJECTS_SOURCE",
    "KUBERNETES_SOURCE_NAMES",
    "NODE_OBJECTS_SOURCE",
    "KubernetesEventsConfig",
    "KubernetesObjectsConfig",
]

NODE_OBJECTS_SOURCE = "kubernetes_node"
"""The ``source`` label of this node's pod and container metrics."""
CLUSTER_OBJECTS_SOURCE = "kubernetes_cluster"
"""The ``source`` label of the cluster-wide counts (the leader's)."""
KUBERNETES_SOURCE_NAMES = (NODE_OBJECTS_SOURCE, CLUSTER_OBJECTS_SOURCE)
"""Names no listed metrics source may take while metrics.kubernetes is enabled."""

ELECTION_JITTER = 1.2
"""Followers retry after up to 1.2 retry periods (client-go's jitter factor)."""


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, hide_input_in_errors=True
    )


class KubernetesEventsConfig(_Section):
    """``metrics.kubernetes.events``: Kubernetes events as log records (the leader only)."""

    enabled: bool = False
    """Send each Kubernetes event once as a log record (the leader; needs the log output)."""


class KubernetesObjectsConfig(_Section):
    """``metrics.kubernetes``: object metrics from the API server."""

    enabled: bool = True
    """Report this node's pods by phase and containers by state and restarts (every agent)."""
    cluster_counts: bool = True
    """Report cluster-wide object counts from exactly one agent, chosen by a Lease."""
    lease_name: NonEmptyText = "killkrill-agent-leader"
    """Name of the coordination.k8s.io Lease the agents elect their leader with."""
    lease_namespace: NonEmptyText | None = None
    """Namespace of the Lease; none: the agent's own (from its service account)."""
    identity: NonEmptyText | None = None
    """This agent's name in the Lease; none: the pod's name (its hostname)."""
    lease_duration: Seconds = 15.0
    """A leader that stops renewing is replaced after this long (client-go's default)."""
    renew_deadline: Seconds = 10.0
    """The leader stops acting as one when it could not renew for this long."""
    retry_period: Seconds = 2.0
    """Time between two tries to renew or acquire the Lease."""
    events: KubernetesEventsConfig = Field(default_factory=KubernetesEventsConfig)
    """Kubernetes events as log records."""

    @model_validator(mode="after")
    def _one_leader_at_a_time(self) -> KubernetesObjectsConfig:
        # client-go's rule: the leader must give up (renew_deadline) before anyone may take
        # over (lease_duration), and must get a few tries (retry_period) before it gives up.
        problems = []
        if not self.lease_duration > self.renew_deadline:
            problems.append("lease_duration must be longer than renew_deadline")
        if not self.renew_deadline > ELECTION_JITTER * self.retry_period:
            problems.append(f"renew_deadline must be longer than {ELECTION_JITTER} x retry_period")
        if problems:
            message = "; ".join(problems) + (
                f" (got lease_duration {self.lease_duration:g}s, renew_deadline "
                f"{self.renew_deadline:g}s, retry_period {self.retry_period:g}s)"
            )
            raise PydanticCustomError(CUSTOM_ERROR_TYPE, "{message}", {"message": message})
        return self
