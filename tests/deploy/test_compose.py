"""compose.yaml: the pod on one machine. Offline, it is checked against the code like the
DaemonSet (variables, mounts, users, probes) and by docker-compose's own validation; for
real, the images are built from a locally built base, the stack runs on a Docker engine of
the test's own, and every line the demo writer wrote arrives at the receiver exactly once,
also when the shipper and then the logs container are upgraded alone while lines flow.

The real run needs root, dockerd, docker-compose and debootstrap (CI installs them with
scripts/install-system-packages); elsewhere it is skipped and says why."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
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
from manifests import AGENT_CONTAINERS, REPO, agent_documents, container

from kk_common.config import parse_config
from kk_common.config.environment import ENVIRONMENT_VARIABLES
from kk_common.heartbeat import probe_command
from kk_common.startup import LICENSE_KEY_HOLDERS
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
    return parse_config(
        COMPOSE_CONFIG.read_text(),
        environ,
        source=str(COMPOSE_CONFIG),
        require_license_key=service in LICENSE_KEY_HOLDERS,
    )


def test_the_agent_services_set_only_variables_the_agent_reads() -> None:
    known = {variable.name for variable in ENVIRONMENT_VARIABLES}
    for name in AGENT_CONTAINERS:
        assert set(SERVICES[name]["environment"]) <= known, name


def test_only_the_shipper_is_given_the_license_key() -> None:
    """As in the pod: the same environment everywhere, the secrets for the shipper alone."""
    secrets = {variable.name for variable in ENVIRONMENT_VARIABLES if variable.secret}
    shipper = SERVICES["shipper"]["environment"]
    assert "KILLKRILL_LICENSE_KEY" in shipper
    without_secrets = {k: v for k, v in shipper.items() if k not in secrets}
    for name in AGENT_CONTAINERS:
        environment = SERVICES[name]["environment"]
        given = secrets & set(environment)
        assert bool(given) is (name in LICENSE_KEY_HOLDERS), (name, given)
        assert {k: v for k, v in environment.items() if k not in secrets} == without_secrets


@pytest.mark.parametrize("name", AGENT_CONTAINERS)
def test_each_agent_service_starts_with_what_it_is_given(name: str) -> None:
    assert compose_config(name).agent.node_name == "compose-node"


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


def ci_environment(
    ports: dict[str, int] | None = None, lines: int = DEMO_LINES, interval: float = 0.05
) -> dict[str, str]:
    ports = ports or {}
    return {
        "KK_CI_RECEIVER_PORT": str(ports.get("receiver", 18443)),
        "KK_CI_RECEIVER_HTTP_PORT": str(ports.get("receiver_http", 18000)),
        "KK_CI_HEALTH_PORT": str(ports.get("health", 18080)),
        "KK_CI_DEMO_LINES": str(lines),
        "KK_CI_DEMO_INTERVAL": str(interval),
    }


def test_docker_compose_accepts_the_files() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    engine = Engine({**os.environ, **ci_environment()})
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
    """compose.yaml with compose.ci.yaml, run as one project on ports picked here.

    Host networking cannot publish ports, and Compose v1 cannot remove a list in an
    override, so the merged file (``docker-compose config``, which also resolves the
    variables and the relative paths) is written out without ``ports``: the only change.
    """

    def __init__(self, engine: Engine, directory: Path, lines: int, interval: float) -> None:
        self.lines = lines
        self.ports = {"receiver": free_port(), "receiver_http": free_port(), "health": free_port()}
        self.receiver = f"http://127.0.0.1:{self.ports['receiver_http']}"
        self.project = f"kkci{uuid.uuid4().hex[:8]}"
        self.engine = Engine({**engine.environ, **ci_environment(self.ports, lines, interval)})
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

    def healthy(self, service: str) -> bool:
        return self.inspect(service)["State"].get("Health", {}).get("Status") == "healthy"

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40")

    def log_lines_stored(self) -> int:
        return get_json(f"{self.receiver}/api/v1/stats")["by_kind"]["logs"]["unique_ids"]

    def wait(self, condition: Callable[[], object], what: str, timeout: float = 120) -> None:
        try:
            wait_until(condition, timeout=timeout, interval=0.5, message=what)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from error

    def audit_every_line_stored_once(self) -> None:
        """The writer has finished and each of its lines is at the receiver exactly once."""
        writer = self.container("demo-log-writer")
        exit_code = self.engine.run("docker", "wait", writer, timeout=300).stdout.strip()
        assert exit_code == "0", self.logs()
        report = self.compose("logs", "--no-color", "demo-log-writer")
        written = int(re.findall(r"demo-log-writer: wrote (\d+) lines", report)[-1])
        assert written == self.lines or self.lines == 0, report
        self.wait(lambda: self.log_lines_stored() >= written, f"all {written} demo lines stored")
        records = stored_records(self.receiver, "logs")
        tokens = Counter(TOKEN.search(r["record"]["message"]).group(1) for r in records)
        assert tokens == Counter(f"demo-{n}" for n in range(written))
        stats = get_json(f"{self.receiver}/api/v1/stats")
        assert stats["duplicates"] == 0 and stats["rejected"] == 0, stats


@contextlib.contextmanager
def running_stack(
    engine: Engine, directory: Path, lines: int = DEMO_LINES, interval: float = 0.05
) -> Iterator[Stack]:
    stack = Stack(engine, directory, lines, interval)
    try:
        stack.compose("up", "-d")
        yield stack
    finally:
        stack.compose("down", "-v", "--timeout", "30")


def test_compose_delivers_every_demo_line_exactly_once(
    engine: Engine, images: None, tmp_path: Path
) -> None:
    with running_stack(engine, tmp_path) as stack:
        stack.audit_every_line_stored_once()
        stats = get_json(f"{stack.receiver}/api/v1/stats")
        assert stats["by_protocol"]["http/3"]["logs"]["unique_ids"] == DEMO_LINES
        # The node metrics (host /proc) made it too, and the pod's probes pass in the images.
        stack.wait(
            lambda: get_json(f"{stack.receiver}/api/v1/stats")["by_kind"]["metrics"]["unique_ids"],
            "node metrics at the receiver",
        )
        for name in AGENT_CONTAINERS:
            stack.wait(lambda name=name: stack.healthy(name), f"{name} healthy")
        ready = f"http://127.0.0.1:{stack.ports['health']}/ready"
        stack.wait(lambda: http_status(ready) == 200, "/ready answering 200")


def rebuild(engine: Engine, name: str) -> str:
    """Build ``name``'s image again under the same tag as a new image (another version
    label), the way a fix for one container ships; returns the new image's id."""
    image = container(agent_documents(), name)["image"]
    command = ["docker", "build", "--quiet", "--file", f"services/{name}/Dockerfile"]
    command += ["--build-arg", "BASE_IMAGE=local/python-base:bookworm"]
    command += ["--build-arg", "PIP_NO_INDEX=1", "--build-arg", "VERSION=rebuilt-by-test"]
    builder = Engine({**engine.environ, "DOCKER_BUILDKIT": "0"})
    built = builder.run(*command, "--tag", image, ".")
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip().splitlines()[-1]


def test_one_container_upgraded_at_a_time_loses_and_repeats_nothing(
    engine: Engine, images: None, tmp_path: Path
) -> None:
    """While the demo pods log, the shipper and then the logs container are recreated from
    rebuilt images, each alone (the DaemonSet's per-container upgrade); then the writer is
    stopped, and the receiver holds every line it wrote exactly once."""
    with running_stack(engine, tmp_path, lines=0, interval=0.05) as stack:
        for name in ("shipper", "logs"):
            before = stack.log_lines_stored()
            stack.wait(lambda b=before: stack.log_lines_stored() > b, "records flowing")
            old_container = stack.container(name)
            new_image = rebuild(engine, name)
            stack.compose("up", "-d", "--no-deps", "--force-recreate", name)
            assert stack.container(name) != old_container
            assert stack.inspect(name)["Image"] == new_image
            moved = stack.log_lines_stored()
            stack.wait(lambda m=moved: stack.log_lines_stored() > m, f"records after {name}")
        stack.compose("stop", "demo-log-writer")
        stack.audit_every_line_stored_once()
