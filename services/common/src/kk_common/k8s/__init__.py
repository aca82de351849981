"""Kubernetes pods (and Services) of this node, kept current: shared by the logs and metrics
services, which both label what they collect with the pod and workload it came from.

Pure parts: ``model`` (typed pods/services from the wire JSON), ``events`` (watch events),
``cache`` (the pod watch cache), ``services`` (Services per namespace), ``workload`` (the
workload that owns a pod), ``times`` (Kubernetes timestamps), ``backoff``. IO adapters
(they need the ``kubernetes`` client, which only the services that use them install):
``connect`` (the one API connection, and the configured pod source), ``watcher`` (the
list+watch loop: this node's pods, Services, and the metrics service's events) and
``kubelet`` (the kubelet's ``/pods``, polled).
"""
