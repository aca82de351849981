"""Kubernetes object metrics, leader election over a Lease, and (opt-in) events.

Sans-IO: ``objects`` (pods and counts into samples), ``election`` (the Lease algorithm),
``events`` (events into log records, each occurrence once), ``times``.
IO adapters: ``api`` (the official client: paged lists, counts, the Lease), ``leader``
(runs the election), ``event_watch`` (the events' watch and their commit to the spool),
``service`` (what the metrics service runs).
"""
