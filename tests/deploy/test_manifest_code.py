"""deploy/killkrill-agent.yaml against the code: the variables and keys it sets are the ones
the agent reads (and the other way round), its config.yaml is valid, every path the config
names is mounted, the probes are the ones the services keep alive, the ports and paths exist,
and every container is locked down as deploy/README.md says."""

from __future__ import annotations

import copy
import fnmatch
import posixpath
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from manifests import (
    AGENT_CONTAINERS,
    REPO,
    agent_config,
    agent_documents,
    container,
    daemonset,
    find,
    mounts_by_path,
    pod_spec,
    secret_references,
    volume,
)
from prometheus_client import CollectorRegistry

from kk_common.config import ConfigError
from kk_common.config.environment import DEFAULT_CONFIG_PATH, ENVIRONMENT_VARIABLES
from kk_common.config.metric_sources import SERVICE_ACCOUNT_TOKEN_FILE
from kk_common.heartbeat import probe_command
from kk_common.startup import LICENSE_KEY_HOLDERS
from kk_health.app import create_app
from kk_health.book import AgentHealth, AgentIdentity

DOCS = agent_documents()
CONFIG_MAP = find(DOCS, "ConfigMap", "killkrill-agent-config")
SECRET = find(DOCS, "Secret", "killkrill-license")
SEED_CONFIG_MAP_KEYS = {
    "log-receiver-url",
    "metrics-receiver-url",
    "cluster-name",
    "log-level",
    "metrics-interval",
    "config.yaml",
}
NOT_SET_BY_THE_MANIFEST = {
    "KILLKRILL_CONFIG": "the ConfigMap's config.yaml is mounted at the default path",
}
SERVICE_SOURCES = {name: REPO / "services" / name / "src" for name in AGENT_CONTAINERS}
SECRET_VARIABLES = {v.name for v in ENVIRONMENT_VARIABLES if v.secret}


def test_every_variable_the_manifest_sets_is_read_by_the_agent() -> None:
    known = {variable.name for variable in ENVIRONMENT_VARIABLES}
    for name in AGENT_CONTAINERS:
        set_here = {variable["name"] for variable in container(DOCS, name)["env"]}
        assert set_here <= known, f"{name}: not read by the agent: {set_here - known}"


def test_every_variable_the_agent_reads_is_set_or_deliberately_left_out() -> None:
    for name in AGENT_CONTAINERS:
        set_here = {variable["name"] for variable in container(DOCS, name)["env"]}
        missing = {v.name for v in ENVIRONMENT_VARIABLES} - set_here
        left_out = set(NOT_SET_BY_THE_MANIFEST)
        if name not in LICENSE_KEY_HOLDERS:
            left_out |= SECRET_VARIABLES
        assert missing == left_out, name


def test_every_container_gets_the_shippers_environment_less_the_secret() -> None:
    """Every container loads and validates the whole configuration (kk_common.config), so
    each needs the same values: one container with a stale variable would disagree. Only
    the shipper, which talks to the receivers, gets the Secret."""
    shipper = container(DOCS, "shipper")["env"]
    without_secret = [v for v in shipper if "secretKeyRef" not in v.get("valueFrom", {})]
    assert len(without_secret) < len(shipper)
    for name in AGENT_CONTAINERS:
        expected = shipper if name in LICENSE_KEY_HOLDERS else without_secret
        assert container(DOCS, name)["env"] == expected, name


def test_only_the_shipper_can_read_the_license_secret() -> None:
    """Least privilege: the logs, metrics and health containers never see the key."""
    references = secret_references(pod_spec(DOCS))
    assert set(references) == LICENSE_KEY_HOLDERS, references


@pytest.mark.parametrize(
    "leak",
    [
        {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        {"envFrom": [{"secretRef": {"name": "killkrill-license"}}]},
        {"volumeMounts": [{"name": "license", "mountPath": "/license"}]},
    ],
    ids=["env", "envFrom", "volume"],
)
def test_a_secret_given_to_another_container_is_caught(leak: dict[str, Any]) -> None:
    """The check can fail, for each way a container can be handed a Secret."""
    pod = copy.deepcopy(pod_spec(DOCS))
    pod["volumes"].append({"name": "license", "secret": {"secretName": "killkrill-license"}})
    health = next(spec for spec in pod["containers"] if spec["name"] == "health")
    for key, items in leak.items():
        # A new list: the YAML aliases make the containers share their env list.
        health[key] = [*health.get(key, []), *items]
    assert set(secret_references(pod)) == LICENSE_KEY_HOLDERS | {"health"}


@pytest.mark.parametrize("name", AGENT_CONTAINERS)
def test_each_container_starts_with_what_it_is_given(name: str) -> None:
    """Without the Secret, the logs, metrics and health configuration is still valid."""
    config = agent_config(name=name)
    assert config.agent.node_name == "node-a"
    has_key = config.credentials.license_key is not None
    assert has_key is (name in LICENSE_KEY_HOLDERS), name


def test_the_config_map_has_the_seeds_keys_and_each_is_used() -> None:
    assert set(CONFIG_MAP["data"]) == SEED_CONFIG_MAP_KEYS
    env = container(DOCS, "shipper")["env"]
    from_env = {
        v["valueFrom"]["configMapKeyRef"]["key"]
        for v in env
        if "configMapKeyRef" in v.get("valueFrom", {})
    }
    config_volume = volume(DOCS, "config")["configMap"]
    assert config_volume["name"] == CONFIG_MAP["metadata"]["name"]
    from_volume = {item["key"] for item in config_volume["items"]}
    assert from_env | from_volume == SEED_CONFIG_MAP_KEYS
    assert not from_env & from_volume


def test_secret_references_name_the_secret_and_its_key() -> None:
    for variable in container(DOCS, "shipper")["env"]:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        assert ref["name"] == SECRET["metadata"]["name"]
        assert ref["key"] in SECRET["stringData"] or ref.get("optional") is True, ref


def test_the_config_is_mounted_where_the_agent_looks_for_it() -> None:
    config_dir, config_file = posixpath.split(DEFAULT_CONFIG_PATH)
    assert [item["path"] for item in volume(DOCS, "config")["configMap"]["items"]] == [config_file]
    for name in AGENT_CONTAINERS:
        mount = mounts_by_path(DOCS, name)[config_dir]
        assert (mount["name"], mount["readOnly"]) == ("config", True)


def test_the_shipped_configuration_is_valid_once_the_license_key_is_set() -> None:
    config = agent_config()
    assert config.agent.node_name == "node-a"
    assert str(config.agent.node_ip) == "10.0.0.7"
    assert config.logs.output.url == CONFIG_MAP["data"]["log-receiver-url"]
    assert config.metrics.output.url == CONFIG_MAP["data"]["metrics-receiver-url"]


def test_the_placeholder_license_key_stops_the_agent_with_a_clear_error() -> None:
    """A forgotten patch of the Secret must be loud, not a key that happens to parse."""
    with pytest.raises(ConfigError) as raised:
        agent_config(SECRET["stringData"])
    paths = [problem.path for problem in raised.value.problems]
    assert paths == ["KILLKRILL_LICENSE_KEY"]


def test_the_ipc_directory_is_one_pod_emptydir_in_every_container() -> None:
    ipc_dir = agent_config().agent.ipc_dir
    assert "emptyDir" in volume(DOCS, "ipc")
    for name in AGENT_CONTAINERS:
        mount = mounts_by_path(DOCS, name)[ipc_dir]
        assert mount["name"] == "ipc" and not mount.get("readOnly", False), name


def test_the_state_directory_is_the_nodes_and_writable_where_it_is_used() -> None:
    state_dir = agent_config().agent.state_dir
    assert volume(DOCS, "state")["hostPath"]["path"] == state_dir
    for name in ("shipper", "logs", "metrics"):
        mount = mounts_by_path(DOCS, name)[state_dir]
        assert mount["name"] == "state" and not mount.get("readOnly", False), name
    assert state_dir not in mounts_by_path(DOCS, "health")


def host_path_behind(name: str, path: str) -> str | None:
    """The host path that ``path`` in container ``name`` shows, or None."""
    for mount_path, mount in sorted(mounts_by_path(DOCS, name).items(), reverse=True):
        if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
            source = volume(DOCS, mount["name"]).get("hostPath")
            if source is None:
                return None
            return source["path"] + path[len(mount_path) :]
    return None


def test_the_log_paths_are_the_hosts_and_read_only() -> None:
    config = agent_config()
    for pattern in config.logs.paths:
        static_prefix = pattern.split("*", 1)[0].rstrip("/")
        assert host_path_behind("logs", static_prefix) == static_prefix, pattern
    mounts = mounts_by_path(DOCS, "logs")
    assert mounts["/var/log"]["readOnly"] is True
    assert mounts["/var/lib/docker/containers"]["readOnly"] is True
    assert host_path_behind("logs", "/var/lib/docker/containers") == "/var/lib/docker/containers"


def test_node_metrics_read_the_hosts_proc_and_sys_read_only() -> None:
    node = agent_config().metrics.node
    assert host_path_behind("metrics", node.proc_path) == "/proc"
    assert host_path_behind("metrics", node.sys_path) == "/sys"
    mounts = mounts_by_path(DOCS, "metrics")
    assert mounts[node.proc_path]["readOnly"] is True
    assert mounts[node.sys_path]["readOnly"] is True
    # Not the host's /: a uid-0 container could read root-owned 0600 files on it
    # (deploy/README.md); filesystem usage is then skipped, as the metrics README says.
    assert host_path_behind("metrics", node.rootfs_path) is None


def test_the_kubernetes_sources_find_the_service_account_token() -> None:
    config = agent_config()
    assert pod_spec(DOCS)["automountServiceAccountToken"] is True
    assert config.logs.kubernetes.token_file == SERVICE_ACCOUNT_TOKEN_FILE
    for source in config.metrics.sources:
        assert source.bearer_token_file == SERVICE_ACCOUNT_TOKEN_FILE, source.name


@pytest.mark.parametrize("name", ["shipper", "logs", "metrics"])
def test_heartbeat_probes_read_the_file_the_service_touches(name: str) -> None:
    ipc_dir = agent_config().agent.ipc_dir
    expected = probe_command(ipc_dir, name)
    spec = container(DOCS, name)
    assert spec["livenessProbe"]["exec"]["command"] == expected
    assert spec["readinessProbe"]["exec"]["command"] == expected
    touched = re.compile(rf'touch_heartbeat\([^)]*"{name}"\)')
    sources = SERVICE_SOURCES[name].rglob("*.py")
    assert any(touched.search(path.read_text()) for path in sources), name


def health_routes() -> set[str]:
    app = create_app(
        AgentHealth(expected=(), stale_after_s=30.0),
        AgentIdentity(version="0", node="n", cluster="c", started_at=0.0),
        CollectorRegistry(),
        clock=lambda: 0.0,
    )
    return {route.path for route in app.routes}


def test_the_health_container_serves_its_probes_and_the_metrics_service() -> None:
    port = agent_config().health.port
    spec = container(DOCS, "health")
    (declared,) = spec["ports"]
    assert declared["containerPort"] == port
    routes = health_routes()
    for probe in ("livenessProbe", "readinessProbe"):
        get = spec[probe]["httpGet"]
        assert get["port"] == port and get["path"] in routes, probe
    assert {"/healthz", "/ready", "/metrics"} <= routes

    service = find(DOCS, "Service", "killkrill-agent-metrics")
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == 8080
    assert service_port["targetPort"] == declared["name"]
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] in routes
    labels = daemonset(DOCS)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_troubleshooting_label_selects_the_agent_pods() -> None:
    """README: kubectl logs -l app=killkrill-agent ..."""
    ds = daemonset(DOCS)
    assert ds["spec"]["selector"]["matchLabels"] == {"app": "killkrill-agent"}
    assert ds["spec"]["template"]["metadata"]["labels"]["app"] == "killkrill-agent"


def test_the_grace_period_outlasts_the_shippers_drain() -> None:
    drain = agent_config().shipper.drain_timeout
    grace = pod_spec(DOCS)["terminationGracePeriodSeconds"]
    assert grace >= drain + 10, (grace, drain)


def test_images_are_tagged_with_their_services_version() -> None:
    for name in AGENT_CONTAINERS:
        project = tomllib.loads((REPO / "services" / name / "pyproject.toml").read_text())
        version = project["project"]["version"]
        assert container(DOCS, name)["image"] == f"killkrill/{name}:{version}"


def test_every_container_is_locked_down() -> None:
    assert pod_spec(DOCS)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for name in AGENT_CONTAINERS:
        context = container(DOCS, name)["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["privileged"] is False, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
    spec = pod_spec(DOCS)
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host_namespace, False), host_namespace


def test_only_containers_that_need_root_owned_host_files_run_as_uid_0() -> None:
    """logs: root-owned 0640 pod logs; logs, shipper, metrics: the root-owned hostPath state
    directory. health touches neither and runs as an ordinary user."""
    for name in AGENT_CONTAINERS:
        context = container(DOCS, name)["securityContext"]
        needs_host_files = host_path_behind(name, agent_config().agent.state_dir) is not None
        assert (context["runAsUser"] == 0) is needs_host_files, name
        assert context["runAsNonRoot"] is (not needs_host_files), name


def test_the_ipc_sockets_group_is_the_pods_fs_group() -> None:
    assert pod_spec(DOCS)["securityContext"]["fsGroup"] > 0


def test_every_container_has_requests_and_limits() -> None:
    for name in AGENT_CONTAINERS:
        resources = container(DOCS, name)["resources"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, (name, kind)


def test_it_runs_on_every_node_and_rolls_out_one_node_in_ten() -> None:
    spec = pod_spec(DOCS)
    assert spec["tolerations"] == [{"operator": "Exists"}]
    priority = find(DOCS, "PriorityClass", spec["priorityClassName"])
    assert priority["value"] > 0 and priority["globalDefault"] is False
    rolling = daemonset(DOCS)["spec"]["updateStrategy"]["rollingUpdate"]
    assert rolling == {"maxUnavailable": "10%", "maxSurge": 0}


def test_service_links_are_off() -> None:
    """Unknown KILLKRILL_* variables are errors; service links would inject some."""
    assert pod_spec(DOCS)["enableServiceLinks"] is False


def test_the_log_globs_match_kubelet_paths() -> None:
    """A sanity check that the mounted globs match what the kubelet writes."""
    paths = agent_config().logs.paths
    kubelet_file = "/var/log/pods/shop_cart-5c6d_0f1e/app/0.log"
    assert any(fnmatch.fnmatch(kubelet_file, pattern) for pattern in paths)


def test_nothing_in_the_manifest_names_a_path_outside_the_repository() -> None:
    """Comments in deploy/killkrill-agent.yaml cite repository files: they exist."""
    text = (REPO / "deploy" / "killkrill-agent.yaml").read_text()
    cited = set(re.findall(r"\b((?:deploy|docs|tests|services)/[\w./-]*\w)", text))
    missing = sorted(path for path in cited if not (REPO / Path(path)).exists())
    assert missing == []
