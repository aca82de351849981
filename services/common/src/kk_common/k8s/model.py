"""Typed, read-only views of the Kubernetes objects the metadata cache keeps.

The API server and the kubelet both return Pods as JSON in the Kubernetes wire
format (camelCase keys). ``pod_from_dict`` and ``service_from_dict`` turn that
JSON into small frozen dataclasses once, at the seam, so the rest of the
metadata code never touches raw dicts or the client's generated models (whose
strict validation would turn one odd field into a lost event).

Only the fields enrichment needs are kept: a node runs about a hundred pods,
but a full Pod object carries its whole spec, and the cache is long-lived. For the same
reason the ``last-applied-configuration`` annotation (a copy of the whole object that
``kubectl apply`` leaves) is dropped here, and the strings many pods repeat (label and
annotation keys and values, namespaces, images, owner kinds) are interned so the cache
holds one copy of each.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kk_common.k8s.times import parse_time

__all__ = [
    "ContainerMeta",
    "MetadataDecodeError",
    "OwnerRef",
    "PodMeta",
    "ServiceMeta",
    "pod_from_dict",
    "service_from_dict",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})

UNUSED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
"""Never useful in a log record, and often kilobytes: not kept."""


def _empty() -> Mapping[str, str]:
    return _EMPTY


class MetadataDecodeError(ValueError):
    """An object from the API server or kubelet lacks a field we key on (uid, name)."""


@dataclass(frozen=True)
class OwnerRef:
    """One ``metadata.ownerReferences`` entry."""

    kind: str
    name: str
    uid: str = ""
    controller: bool = False


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    """What the pod spec and status say about one container.

    ``container_id`` is the runtime id of the current instance (``status.containerStatuses``
    ``containerID`` without its ``containerd://`` style scheme); ``last_container_id`` is
    the previous instance's (``lastState.terminated``), which wrote ``<restart-1>.log``.
    """

    name: str
    image: str = ""
    container_id: str = ""
    restart_count: int = 0
    last_container_id: str = ""
    kind: str = "container"
    """``container``, ``init`` or ``ephemeral``: the spec list it came from."""
    state: str = ""
    """``running``, ``waiting`` or ``terminated`` (``status...state``); ``""`` while the
    pod's status does not list the container yet. A listed container without a state
    counts as ``waiting``."""
    state_reason: str = ""
    """The waiting or terminated state's reason (``CrashLoopBackOff``, ``OOMKilled``...)."""


@dataclass(frozen=True)
class PodMeta:
    """The metadata of one pod, as last seen from the API server or kubelet."""

    uid: str
    namespace: str
    name: str
    node_name: str = ""
    labels: Mapping[str, str] = field(default_factory=_empty)
    annotations: Mapping[str, str] = field(default_factory=_empty)
    owners: tuple[OwnerRef, ...] = ()
    containers: Mapping[str, ContainerMeta] = field(default_factory=lambda: MappingProxyType({}))
    resource_version: str = ""
    created_at: float | None = None
    """``metadata.creationTimestamp`` as Unix seconds (used to recognise CronJob Jobs)."""
    phase: str = ""
    """``status.phase``: ``Pending``, ``Running``, ``Succeeded``, ``Failed``, ``Unknown``."""
    ip: str = ""
    """``status.podIP`` (the node's IP for a host-network pod); empty until assigned."""

    def container(self, name: str) -> ContainerMeta | None:
        """The container called ``name`` (regular, init or ephemeral), if the pod has one."""
        return self.containers.get(name)

    @property
    def mirror_of(self) -> str:
        """For a mirror pod, the static pod's uid (the kubelet's config hash), else ``""``.

        The kubelet writes a static pod's logs under the static pod's own uid, while the
        API server shows a mirror pod with a different uid that carries the static uid in
        the ``kubernetes.io/config.mirror`` annotation.
        """
        return self.annotations.get("kubernetes.io/config.mirror", "")


@dataclass(frozen=True)
class ServiceMeta:
    """A Service's identity and pod selector."""

    namespace: str
    name: str
    uid: str = ""
    selector: Mapping[str, str] = field(default_factory=_empty)
    resource_version: str = ""


def _text(value: Any) -> str:
    return sys.intern(value if isinstance(value, str) else str(value))


def _str_map(value: Any, skip: frozenset[str] = frozenset()) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not value:
        return _EMPTY
    kept = {_text(k): "" if v is None else _text(v) for k, v in value.items() if str(k) not in skip}
    return MappingProxyType(kept) if kept else _EMPTY


def _strip_scheme(container_id: Any) -> str:
    # Container status ids look like "containerd://<64 hex>" or "cri-o://..."; the bare id
    # is what /var/log/containers file names and crictl show.
    if not isinstance(container_id, str):
        return ""
    return container_id.split("://", 1)[-1]


_CONTAINER_STATES = ("running", "waiting", "terminated")


def _state(status: Mapping[str, Any]) -> tuple[str, str]:
    """A container status's state and its reason (interned: a few values, many pods)."""
    state = status.get("state")
    if isinstance(state, Mapping):
        for name in _CONTAINER_STATES:
            detail = state.get(name)
            if isinstance(detail, Mapping):
                reason = detail.get("reason") if name != "running" else ""
                return name, _text(reason or "")
    # Listed, but the kubelet has not reported a state yet.
    return "waiting", ""


def _containers(spec: Mapping[str, Any], status: Mapping[str, Any]) -> Mapping[str, ContainerMeta]:
    statuses: dict[str, Mapping[str, Any]] = {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for st in status.get(key) or ():
            if isinstance(st, Mapping) and isinstance(st.get("name"), str):
                statuses[st["name"]] = st
    result: dict[str, ContainerMeta] = {}
    for key, kind in (
        ("containers", "container"),
        ("initContainers", "init"),
        ("ephemeralContainers", "ephemeral"),
    ):
        for ctr in spec.get(key) or ():
            if not isinstance(ctr, Mapping) or not isinstance(ctr.get("name"), str):
                continue
            name = ctr["name"]
            st = statuses.get(name, {})
            last = (st.get("lastState") or {}).get("terminated") or {}
            state, reason = _state(st) if st else ("", "")
            result[name] = ContainerMeta(
                name=name,
                # Status carries the image the runtime actually resolved; before the
                # container starts only the spec knows it.
                image=_text(st.get("image") or ctr.get("image") or ""),
                container_id=_strip_scheme(st.get("containerID")),
                restart_count=int(st.get("restartCount") or 0),
                last_container_id=_strip_scheme(last.get("containerID")),
                kind=kind,
                state=state,
                state_reason=reason,
            )
    return MappingProxyType(result)


def pod_from_dict(obj: Mapping[str, Any]) -> PodMeta:
    """Build a ``PodMeta`` from a Pod in Kubernetes JSON form.

    Raises ``MetadataDecodeError`` when ``metadata.uid``, ``name`` or ``namespace``
    is missing: without them the pod cannot be keyed or matched to a log path.
    """
    meta = obj.get("metadata") or {}
    uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace")
    if not (isinstance(uid, str) and uid and isinstance(name, str) and name):
        raise MetadataDecodeError(f"pod without metadata.uid/name: {name!r}")
    if not isinstance(namespace, str) or not namespace:
        raise MetadataDecodeError(f"pod {name!r} without metadata.namespace")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    owners = tuple(
        OwnerRef(
            kind=_text(ref.get("kind", "")),
            name=str(ref.get("name", "")),
            uid=str(ref.get("uid", "")),
            controller=bool(ref.get("controller", False)),
        )
        for ref in meta.get("ownerReferences") or ()
        if isinstance(ref, Mapping)
    )
    return PodMeta(
        uid=uid,
        namespace=_text(namespace),
        name=name,
        node_name=_text(spec.get("nodeName") or ""),
        labels=_str_map(meta.get("labels")),
        annotations=_str_map(meta.get("annotations"), skip=UNUSED_ANNOTATIONS),
        owners=owners,
        containers=_containers(spec, status),
        resource_version=str(meta.get("resourceVersion") or ""),
        created_at=parse_time(meta.get("creationTimestamp")),
        phase=_text(status.get("phase") or ""),
        ip=str(status.get("podIP") or ""),
    )


def service_from_dict(obj: Mapping[str, Any]) -> ServiceMeta:
    """Build a ``ServiceMeta`` from a Service in Kubernetes JSON form."""
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not (isinstance(name, str) and name and isinstance(namespace, str) and namespace):
        raise MetadataDecodeError(f"service without metadata.name/namespace: {name!r}")
    spec = obj.get("spec") or {}
    return ServiceMeta(
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        selector=_str_map(spec.get("selector")),
        resource_version=str(meta.get("resourceVersion") or ""),
    )
