"""Kubernetes object metrics, leader election over a Lease, and (opt-in) events.

Sans-IO: ``objects`` (pods and counts into samples), ``election`` (the Lease algorithm).
IO adapters: ``api`` (the official client: paged lists, counts, the Lease), ``leader``
(runs the election), ``service`` (the two scrape sources of the metrics service).
"""
