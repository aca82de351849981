"""The KillKrill agent's logs service: finds and tails container log files, parses CRI
and docker json-file lines, enriches records with Kubernetes metadata and hands record
batches to the shipper, committing file offsets only after the shipper has them."""

__version__ = "0.1.0"
