"""Every way the agent is deployed grants no privilege: in every manifest and patch under
deploy/ and in both compose files, no container (init and ephemeral ones included) is
privileged, adds a capability, may escalate or shares a host namespace beyond what its
file says; and no RBAC object anywhere grants ``secrets``, a wildcard or a verb that
writes, escalates or impersonates.

tests/deploy checks the one-file install's four agent containers field by field and its
ClusterRole against the code's API calls; this is the sweep over everything else, read
as raw YAML so a new file, overlay or container is covered the day it is added.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted(
    path
    for path in (REPO / "deploy").rglob("*.y*ml")
    if "prometheus" not in path.parts and "grafana" not in path.parts
)
COMPOSE_FILES = sorted(REPO.glob("compose*.yaml"))
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
READ_VERBS = {"get", "list", "watch"}


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in a YAML tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def containers(path: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for mapping in (m for doc in documents(path) for m in walk(doc)):
        for key in CONTAINER_LISTS:
            for container in mapping.get(key) or []:
                if isinstance(container, dict):
                    found.append(
                        (f"{path.relative_to(REPO)}: {key} {container.get('name')}", container)
                    )
    return found


def test_the_sweep_sees_the_manifests_and_their_containers() -> None:
    names = {path.name for path in MANIFESTS}
    assert {"killkrill-agent.yaml", "resources.yaml"} <= names
    seen = [where for path in MANIFESTS for where, _ in containers(path)]
    assert sum("deploy/killkrill-agent.yaml" in where for where in seen) >= 4, seen


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_container_is_privileged_or_adds_a_capability(path: Path) -> None:
    for where, container in containers(path):
        context = container.get("securityContext") or {}
        assert context.get("privileged") is not True, where
        assert not (context.get("capabilities") or {}).get("add"), where
        assert context.get("allowPrivilegeEscalation") is not True, where
    for mapping in (m for doc in documents(path) for m in walk(doc)):
        for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
            assert mapping.get(host_namespace) is not True, f"{path}: {host_namespace}"


LEASE_VERBS = {"get", "create", "update"}


def is_lease_rule(rule: dict) -> bool:
    return rule.get("apiGroups") == ["coordination.k8s.io"] and rule.get("resources") == ["leases"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_role_reads_secrets_or_grants_wildcards_or_writes(path: Path) -> None:
    for doc in documents(path):
        if doc.get("kind") in ("Role", "ClusterRole"):
            where = f"{path.relative_to(REPO)}: {doc['kind']} {doc['metadata']['name']}"
            assert not doc.get("aggregationRule"), where
            for rule in doc.get("rules") or []:
                resources = set(rule.get("resources") or [])
                assert not {r for r in resources if r.split("/")[0] == "secrets"}, where
                assert "*" not in resources | set(rule.get("apiGroups") or []), where
                verbs = set(rule.get("verbs") or [])
                if doc["kind"] == "Role" and is_lease_rule(rule):
                    # The one write: leader election's Lease, in the agent's own namespace.
                    assert verbs <= LEASE_VERBS, where
                else:
                    assert verbs <= READ_VERBS, where
                assert not rule.get("nonResourceURLs"), where
        if doc.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            assert doc["roleRef"]["name"] not in {"cluster-admin", "admin", "edit"}, path


def compose_services(path: Path) -> dict[str, dict[str, Any]]:
    return {name: spec or {} for name, spec in (documents(path)[0].get("services") or {}).items()}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_no_compose_service_is_privileged_or_adds_a_capability(path: Path) -> None:
    for name, service in compose_services(path).items():
        assert service.get("privileged") is not True, (path.name, name)
        assert not service.get("cap_add"), (path.name, name)
        assert service.get("pid") != "host" and service.get("ipc") != "host", (path.name, name)
        for volume in service.get("volumes") or []:
            assert "docker.sock" not in str(volume), (path.name, name)


def test_the_compose_agent_containers_drop_everything_as_the_pod_does() -> None:
    services = compose_services(REPO / "compose.yaml")
    for name in ("shipper", "logs", "metrics", "health"):
        service = services[name]
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["read_only"] is True, name
