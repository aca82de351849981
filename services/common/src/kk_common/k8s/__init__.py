"""Kubernetes pods (and Services) of this node, kept current: shared by the logs and metrics
services, which both label what they collect with the pod and workload it came from.

Pure parts: ``model`` (typed pods/services from the wire JSON), ``events`` (watch events),
``cache`` (the pod watch cache), ``services`` (Services per namespace), ``workload`` (the
workload that owns a pod), ``backoff``. IO adapters (they need the ``kubernetes`` client,
which only the services that use them install): ``watcher`` (API server list+watch of this
node's pods) and ``kubelet`` (the kubelet's ``/pods``, polled).
"""
