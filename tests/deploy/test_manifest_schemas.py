"""Every manifest in deploy/ is valid Kubernetes for 1.28 to 1.33, checked offline against the
published schemas in strict mode (an unknown or misspelt field is an error), and applies in
an order the API server accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from manifests import (
    AGENT_MANIFEST,
    BASE,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    OVERLAYS,
    agent_documents,
    kustomize,
    pod_spec,
    secret_references,
)

from kk_common.startup import LICENSE_KEY_HOLDERS

CLUSTER_SCOPED = {"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding"}


def assert_valid(documents: list[dict[str, Any]], version: str) -> None:
    """Fails, naming every object and field, unless all validate in strict mode."""
    problems = []
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_one_file_install_is_valid_in_strict_mode(version: str) -> None:
    assert_valid(agent_documents(), version)


def test_a_misspelt_field_is_caught() -> None:
    """The check can fail: strict mode rejects a field Kubernetes does not know."""
    documents = agent_documents()
    ds = next(doc for doc in documents if doc["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(AssertionError, match="readinesProbe"):
        assert_valid([ds], KUBERNETES_VERSIONS[-1])


def test_objects_come_in_apply_order() -> None:
    """The namespace and the cluster-wide objects first, then what lives in the namespace,
    with the ConfigMap and Secret before the DaemonSet that reads them."""
    kinds = [doc["kind"] for doc in agent_documents()]
    assert kinds == [
        "Namespace",
        "PriorityClass",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "DaemonSet",
        "Service",
    ]
    for doc in agent_documents():
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_the_kustomize_base_is_the_one_file_install() -> None:
    """Kustomize only reads files inside a base's directory, so the base holds a copy."""
    copy = BASE / AGENT_MANIFEST.name
    assert copy.read_bytes() == AGENT_MANIFEST.read_bytes(), (
        f"{copy} differs from {AGENT_MANIFEST}: cp deploy/killkrill-agent.yaml deploy/base/"
    )


def test_the_base_renders_to_the_same_objects() -> None:
    rendered = kustomize(BASE)
    key = lambda doc: (doc["kind"], doc["metadata"]["name"])  # noqa: E731
    assert sorted(rendered, key=key) == sorted(agent_documents(), key=key)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.name)
def test_each_overlay_renders_and_is_valid(overlay: Path) -> None:
    rendered = kustomize(overlay)
    assert {doc["kind"] for doc in rendered} >= {"DaemonSet", "ConfigMap", "Secret"}
    # An overlay's patches keep the license Secret with the shipper alone.
    assert set(secret_references(pod_spec(rendered))) == LICENSE_KEY_HOLDERS
    for version in KUBERNETES_VERSIONS:
        assert_valid(rendered, version)


def test_there_is_an_overlay() -> None:
    assert [path.name for path in OVERLAYS] == ["large-nodes"]
