"""The KillKrill agent's metrics container: scrape, turn into samples, hand to the shipper."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("killkrill-metrics")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
