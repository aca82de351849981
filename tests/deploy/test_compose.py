"""compose.yaml: the pod on one machine. Offline, it is checked against the code like the
DaemonSet (variables, mounts, users, probes) and by docker-compose's own validation; for
real, the images are built from a locally built base, the stack runs on a Docker engine of
the test's own, and every line the demo writer wrote arrives at the receiver exactly once.

The real run needs root, dockerd, docker-compose and debootstrap (CI installs them with
scripts/install-system-packages); elsewhere it is skipped and says why."""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker_engine import (
    Engine,
    docker_engine,
    free_port,
    get_json,
    http_status,
    missing_prerequisites,
    stored_records,
)
from manifests import AGENT_CONTAINERS, REPO

from kk_common.config import parse_config
from kk_common.config.environment import ENVIRONMENT_VARIABLES
from kk_common.heartbeat import probe_command
from kk_receiver.testing import wait_until

COMPOSE = REPO / "compose.yaml"
COMPOSE_CI = REPO / "compose.ci.yaml"
COMPOSE_CONFIG = REPO / "deploy" / "compose" / "config.yaml"
SERVICES = yaml.safe_load(COMPOSE.read_text())["services"]
DEMO_LINES = 300
TOKEN = re.compile(r"token=(demo-\d+)")


def mounts(service: str) -> dict[str, str]:
    """Container path -> source of ``service``'s volumes."""
    pairs = (volume.split(":")[:2] for volume in SERVICES[service]["volumes"])
    return {target: source for source, target in pairs}


def compose_config(service: str = "shipper") -> Any:
    environ = dict(SERVICES[service]["environment"])
    return parse_config(COMPOSE_CONFIG.read_text(), environ, source=str(COMPOSE_CONFIG))


def test_the_agent_services_set_only_variables_the_agent_reads() -> None:
    known = {variable.name for variable in ENVIRONMENT_VARIABLES}
    environments = [SERVICES[name]["environment"] for name in AGENT_CONTAINERS]
    assert set(environments[0]) <= known
    assert all(env == environments[0] for env in environments)


def test_the_compose_configuration_is_valid() -> None:
    config = compose_config()
    assert config.logs.output.url == "https://receiver:8443"
    assert config.health.port == 8080


def test_the_containers_share_volumes_as_in_the_pod() -> None:
    config = compose_config()
    for name in AGENT_CONTAINERS:
        assert mounts(name)[config.agent.ipc_dir] == "ipc", name
        assert mounts(name)["/etc/killkrill/config.yaml"] == "./deploy/compose/config.yaml"
    for name in ("shipper", "logs", "metrics"):
        assert mounts(name)[config.agent.state_dir] == "state", name
    assert config.agent.state_dir not in mounts("health")
    assert mounts("logs")["/var/log/pods"] == mounts("demo-log-writer")["/var/log/pods"]
    ca_file = Path(config.logs.output.tls.ca_file)
    receiver_data = mounts("receiver")["/data"]
    assert mounts("shipper")[str(ca_file.parents[1])] == receiver_data


def test_the_containers_are_locked_down_as_in_the_pod() -> None:
    for name in AGENT_CONTAINERS:
        service = SERVICES[name]
        assert service["cap_drop"] == ["ALL"] and service["read_only"] is True, name
        expected_user = "65532:10001" if name == "health" else "0:10001"
        assert service["user"] == expected_user, name


@pytest.mark.parametrize("name", AGENT_CONTAINERS)
def test_healthchecks_are_the_pods_heartbeat_probes(name: str) -> None:
    command = [part.replace("$$", "$") for part in SERVICES[name]["healthcheck"]["test"]]
    assert command == ["CMD", *probe_command(compose_config().agent.ipc_dir, name)]


def ci_environment(**ports: int) -> dict[str, str]:
    return {
        "KK_CI_RECEIVER_PORT": str(ports.get("receiver", 18443)),
        "KK_CI_RECEIVER_HTTP_PORT": str(ports.get("receiver_http", 18000)),
        "KK_CI_HEALTH_PORT": str(ports.get("health", 18080)),
        "KK_CI_DEMO_LINES": str(DEMO_LINES),
    }


def test_docker_compose_accepts_the_files() -> None:
    engine = Engine({**os.environ, **ci_environment()})
    if engine.run("docker-compose", "version").returncode != 0:
        pytest.skip("docker-compose is not installed")
    alone = engine.run("docker-compose", "-f", "compose.yaml", "config", "-q")
    assert alone.returncode == 0, alone.stderr
    merged = engine.run("docker-compose", "-f", "compose.yaml", "-f", "compose.ci.yaml", "config")
    assert merged.returncode == 0, merged.stderr
    services = yaml.safe_load(merged.stdout)["services"]
    assert {service.get("network_mode") for service in services.values()} == {"host"}


# The real run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    reason = missing_prerequisites()
    if reason:
        pytest.skip(f"compose stack not run: {reason}")
    with docker_engine() as running:
        yield running


@pytest.fixture(scope="module")
def images(engine: Engine) -> None:
    built = engine.run(str(REPO / "scripts" / "build-images"), "--local-base", timeout=1200)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]


class Stack:
    """compose.yaml with compose.ci.yaml, run as one project.

    Host networking cannot publish ports, and Compose v1 cannot remove a list in an
    override, so the merged file (``docker-compose config``, which also resolves the
    variables and the relative paths) is written out without ``ports``: the only change.
    """

    def __init__(self, engine: Engine, environ: dict[str, str], directory: Path) -> None:
        self.project = f"kkci{uuid.uuid4().hex[:8]}"
        self.engine = Engine({**engine.environ, **environ})
        merged = self.engine.run(
            "docker-compose", "-f", "compose.yaml", "-f", "compose.ci.yaml", "config"
        )
        assert merged.returncode == 0, merged.stderr
        document = yaml.safe_load(merged.stdout)
        for service in document["services"].values():
            service.pop("ports", None)
        self.file = directory / "compose.ci-merged.yaml"
        self.file.write_text(yaml.safe_dump(document))

    def compose(self, *args: str, timeout: float = 300) -> str:
        command = ("docker-compose", "-p", self.project, "-f", str(self.file), *args)
        done = self.engine.run(*command, timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def inspect(self, service: str) -> dict[str, Any]:
        done = self.engine.run("docker", "inspect", self.container(service))
        return yaml.safe_load(done.stdout)[0]

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40")


def test_compose_delivers_every_demo_line_exactly_once(
    engine: Engine, images: None, tmp_path: Path
) -> None:
    ports = {"receiver": free_port(), "receiver_http": free_port(), "health": free_port()}
    stack = Stack(engine, ci_environment(**ports), tmp_path)
    receiver = f"http://127.0.0.1:{ports['receiver_http']}"
    try:
        stack.compose("up", "-d")
        writer = stack.container("demo-log-writer")
        exit_code = engine.run("docker", "wait", writer, timeout=120).stdout.strip()
        assert exit_code == "0", stack.logs()

        def logs_stored() -> int:
            return get_json(f"{receiver}/api/v1/stats")["by_kind"]["logs"]["unique_ids"]

        try:
            wait_until(lambda: logs_stored() >= DEMO_LINES, timeout=120, interval=0.5)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{stack.logs()}") from error
        records = stored_records(receiver, "logs")
        tokens = Counter(TOKEN.search(r["record"]["message"]).group(1) for r in records)
        assert tokens == Counter(f"demo-{n}" for n in range(DEMO_LINES))
        stats = get_json(f"{receiver}/api/v1/stats")
        assert stats["duplicates"] == 0 and stats["rejected"] == 0, stats
        assert stats["by_protocol"]["http/3"]["logs"]["unique_ids"] == DEMO_LINES
        # The node metrics (host /proc) made it too, and the pod's probes pass in the images.
        wait_until(
            lambda: get_json(f"{receiver}/api/v1/stats")["by_kind"]["metrics"]["unique_ids"],
            timeout=60,
            interval=0.5,
            message="node metrics at the receiver",
        )
        for name in AGENT_CONTAINERS:
            wait_until(
                lambda name=name: stack.inspect(name)["State"]["Health"]["Status"] == "healthy",
                timeout=60,
                interval=0.5,
                message=f"{name} healthy",
            )
        ready = f"http://127.0.0.1:{ports['health']}/ready"
        wait_until(lambda: http_status(ready) == 200, timeout=60, interval=0.5, message="/ready")
    finally:
        stack.compose("down", "-v", "--timeout", "30")
