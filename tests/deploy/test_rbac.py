"""The ClusterRole grants exactly what the code calls, read-only.

The API calls are found in the services' source: every method of the official client's
``*Api`` classes that the code names (``core.list_pod_for_all_namespaces``), mapped through the
client's own request path (``/api/v1/pods``) to a resource. The kubelet endpoints come from
the shipped configuration (``metrics.sources``, ``logs.kubernetes.source``), mapped to the
``nodes/<subresource>`` the kubelet checks, as the kubelet's authorization documentation
describes. A new call in the code fails here until the role allows it; a rule no code needs
fails too."""

from __future__ import annotations

import inspect
import re
from functools import cache
from urllib.parse import urlsplit

import kubernetes.client
from manifests import REPO, agent_config, agent_documents, find

from kk_common.config.metric_sources import KUBELET_PORT, default_metric_sources

Permission = tuple[str, str, str]
"""(API group, resource, verb), as a ClusterRole rule grants it."""

SERVICE_SOURCES = sorted((REPO / "services").glob("*/src/**/*.py"))
_VERBS = {"list": "list", "read": "get", "create": "create", "patch": "patch"}
_VERBS |= {"replace": "update", "delete": "delete", "connect": "get"}
_RESOURCE_PATH = re.compile(r"resource_path='([^']*)'")
# The kubelet's authorization: which nodes/<subresource> a request path needs.
_KUBELET_SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"))
_KUBELET_SUBRESOURCES += (("/spec", "spec"), ("/checkpoint", "checkpoint"))


@cache
def client_methods() -> dict[str, str]:
    """Every API method of the official client, with its request path."""
    methods = {}
    for class_name in dir(kubernetes.client):
        api = getattr(kubernetes.client, class_name)
        if not (class_name.endswith("Api") and inspect.isclass(api)):
            continue
        for name, _ in inspect.getmembers(api, inspect.isfunction):
            serialize = getattr(api, f"_{name}_serialize", None)
            if serialize is None:
                continue
            path = _RESOURCE_PATH.search(inspect.getsource(serialize))
            if path:
                methods[name] = path.group(1)
    return methods


def resource_of(path: str) -> tuple[str, str]:
    """``/api/v1/namespaces/{namespace}/pods`` -> ("", "pods"); subresources as ``nodes/proxy``."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if len(rest) > 2 and rest[0] == "namespaces" and rest[1] == "{namespace}":
        rest = rest[2:]
    names = [part for part in rest if not part.startswith("{")]
    return group, "/".join(names)


def code_permissions() -> set[Permission]:
    """What the services' calls through the official client need."""
    methods = client_methods()
    used: set[Permission] = set()
    for source in SERVICE_SOURCES:
        text = source.read_text()
        # A list method handed to the shared list+watch loop is watched too.
        watches = "watch.Watch(" in text or "ListWatch(" in text
        for name in set(re.findall(r"\.([a-z_]+)\b", text)) & methods.keys():
            group, resource = resource_of(methods[name])
            verb = _VERBS[name.split("_", 1)[0]]
            used.add((group, resource, verb))
            if verb == "list" and watches:
                used.add((group, resource, "watch"))
    return used


def kubelet_subresource(path: str) -> str:
    for prefix, subresource in _KUBELET_SUBRESOURCES:
        if path == prefix or path.startswith(prefix + "/"):
            return f"nodes/{subresource}"
    return "nodes/proxy"


def kubelet_permissions(urls: list[str]) -> set[Permission]:
    return {
        ("", kubelet_subresource(urlsplit(url).path), "get")
        for url in urls
        if urlsplit(url).port == KUBELET_PORT
    }


def configured_kubelet_permissions() -> set[Permission]:
    """What the shipped configuration scrapes or polls on the kubelet."""
    config = agent_config()
    urls = [source.url for source in config.metrics.sources if source.enabled]
    if config.logs.kubernetes.enabled and config.logs.kubernetes.source == "kubelet":
        urls.append(f"{config.logs.kubernetes.kubelet_url}/pods")
    return kubelet_permissions(urls)


def rules_of(kind: str, name: str) -> set[Permission]:
    role = find(agent_documents(), kind, name)
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def cluster_role() -> set[Permission]:
    return rules_of("ClusterRole", "killkrill-agent")


def leader_election_role() -> set[Permission]:
    """The namespaced Role of the metrics' leader election (its Lease)."""
    return rules_of("Role", "killkrill-agent-leader-election")


def granted() -> set[Permission]:
    return cluster_role() | leader_election_role()


def test_the_source_scan_finds_the_pod_and_service_watches() -> None:
    """The scan can fail: it sees the calls the logs service is known to make."""
    assert {("", "pods", "list"), ("", "pods", "watch"), ("", "services", "watch")} <= (
        code_permissions()
    )
    assert resource_of("/api/v1/nodes/{name}/proxy/{path}") == ("", "nodes/proxy")
    assert resource_of("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases") == (
        "coordination.k8s.io",
        "leases",
    )


def test_the_role_allows_every_api_call_the_code_makes() -> None:
    assert code_permissions() - granted() == set()


def test_the_role_allows_every_kubelet_endpoint_the_configuration_uses() -> None:
    needed = configured_kubelet_permissions()
    assert {("", "nodes/metrics", "get"), ("", "nodes/stats", "get")} <= needed
    assert needed - granted() == set()


def test_the_role_allows_nothing_the_code_does_not_use() -> None:
    assert granted() - code_permissions() - configured_kubelet_permissions() == set()


def test_the_role_only_reads_and_never_secrets() -> None:
    assert {verb for _, _, verb in cluster_role()} <= {"get", "list", "watch"}
    assert not any(resource.startswith("secrets") for _, resource, _ in granted())


def test_the_only_write_is_the_lease_in_the_agents_namespace() -> None:
    assert leader_election_role() == {
        ("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")
    }
    role = find(agent_documents(), "Role", "killkrill-agent-leader-election")
    binding = find(agent_documents(), "RoleBinding", "killkrill-agent-leader-election")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "killkrill-system"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "killkrill-agent", "namespace": "killkrill-system"}
    ]


def test_the_kubelet_pods_source_would_need_nodes_proxy() -> None:
    """logs.kubernetes.source: kubelet is opt-in because /pods is behind nodes/proxy, which
    the base role does not grant (deploy/README.md says how to add it)."""
    every_default = [source["url"] for source in default_metric_sources("10.0.0.7")]
    assert ("", "nodes/proxy", "get") not in kubelet_permissions(every_default)
    pods = kubelet_permissions([f"https://10.0.0.7:{KUBELET_PORT}/pods"])
    assert pods == {("", "nodes/proxy", "get")}
    assert not pods <= granted()
