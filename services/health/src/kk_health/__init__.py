"""The KillKrill agent's health container: how operators and Kubernetes see the agent.

It binds the telemetry channel, keeps the latest report of every component
(`AgentHealth`), and serves ``/healthz``, ``/ready``, ``/metrics`` and ``/status``
(`create_app`); ``killkrill-health status`` shows ``/status`` as a table.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("killkrill-health")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
