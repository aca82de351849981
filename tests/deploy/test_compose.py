"""compose.yaml: the pod on one machine. Offline, it is checked against the code like the
DaemonSet (variables, mounts, users, probes) and by docker-compose's own validation; for
real, the images are built from a locally built base, the stack runs on a Docker engine of
the test's own, and every line the demo writer wrote arrives at the receiver exactly once,
also when the shipper and then the logs container are upgraded alone while lines flow, and
when a logs container of the previous envelope version (kk.v1) hands its lines to today's
shipper and is then upgraded. These runs use host networking (compose.ci.yaml); the plain
file on a bridge network is test_compose_bridge.py.

The real run needs root, dockerd, docker-compose and debootstrap (CI installs them with
scripts/install-system-packages); elsewhere it is skipped and says why."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_stack import DEMO_LINES, CiStack, ci_environment, running
from docker_engine import Engine, docker_engine, missing_prerequisites
from manifests import AGENT_CONTAINERS, REPO, agent_documents, container

from kk_common.config import parse_config
from kk_common.config.environment import ENVIRONMENT_VARIABLES
from kk_common.heartbeat import probe_command
from kk_common.startup import LICENSE_KEY_HOLDERS

COMPOSE = REPO / "compose.yaml"
COMPOSE_CI = REPO / "compose.ci.yaml"
COMPOSE_CONFIG = REPO / "deploy" / "compose" / "config.yaml"
SERVICES = yaml.safe_load(COMPOSE.read_text())["services"]


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


def test_compose_delivers_every_demo_line_exactly_once(
    engine: Engine, images: None, tmp_path: Path
) -> None:
    with running(CiStack(engine, tmp_path, DEMO_LINES, 0.05)) as stack:
        stack.audit_every_line_stored_once()
        stats = stack.stats()
        assert stats["by_protocol"]["http/3"]["logs"]["unique_ids"] == DEMO_LINES
        # The node metrics (host /proc) made it too, and the pod's probes pass in the images.
        stack.wait(
            lambda: stack.stats()["by_kind"]["metrics"]["unique_ids"],
            "node metrics at the receiver",
        )
        for name in AGENT_CONTAINERS:
            stack.wait(lambda name=name: stack.healthy(name), f"{name} healthy")
        stack.wait(stack.ready, "/ready answering 200")


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
    with running(CiStack(engine, tmp_path, lines=0, interval=0.05)) as stack:
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


# The previous envelope version ------------------------------------------------------------

PREVIOUS_ENVELOPE_COMMIT = "c3a4855e89fa66d8c3d507607f2bb3cfe18af1b2"
"""The last commit whose logs service writes records as ``kk.v1`` (RecordBatch); the next
one, 0912932, brought the v2 envelope (kk_common/envelope.py)."""
PREVIOUS_LOGS_IMAGE = "killkrill/logs:previous-envelope"
PREVIOUS_LOGS_OVERRIDE = (
    REPO / "tests" / "deploy" / "previous_envelope" / "compose.previous-logs.yaml"
)


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=False)


@pytest.fixture(scope="module")
def previous_logs_image(
    engine: Engine, images: None, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """killkrill/logs built from PREVIOUS_ENVELOPE_COMMIT's services/common and services/logs
    with today's Dockerfile, wheels and pins (that release's dependencies are the same)."""
    envelope = git("show", f"{PREVIOUS_ENVELOPE_COMMIT}:services/common/src/kk_common/envelope.py")
    if envelope.returncode != 0:
        pytest.skip(
            f"commit {PREVIOUS_ENVELOPE_COMMIT[:7]} is not in this clone (a shallow clone?): "
            "the previous envelope version cannot be built"
        )
    # The pinned commit really is the previous version: it writes and reads kk.v1 only.
    assert b"SUPPORTED_MAJORS = frozenset({1})" in envelope.stdout
    context = tmp_path_factory.mktemp("previous-logs")
    archive = git(
        "archive", "--format=tar", PREVIOUS_ENVELOPE_COMMIT, "services/common", "services/logs"
    )
    assert archive.returncode == 0, archive.stderr
    subprocess.run(["tar", "-x", "-C", str(context)], input=archive.stdout, check=True)
    (context / "requirements").mkdir()
    shutil.copy2(REPO / "requirements" / "dev.txt", context / "requirements" / "dev.txt")
    shutil.copytree(
        REPO / "deploy" / "images", context / "deploy" / "images", copy_function=os.link
    )
    shutil.copy2(
        REPO / "services" / "logs" / "Dockerfile", context / "services" / "logs" / "Dockerfile"
    )
    command = ["docker", "build", "--quiet", "--file", "services/logs/Dockerfile"]
    command += [
        "--build-arg",
        "BASE_IMAGE=local/python-base:bookworm",
        "--build-arg",
        "PIP_NO_INDEX=1",
    ]
    command += ["--build-arg", "VERSION=previous-envelope", "--tag", PREVIOUS_LOGS_IMAGE, "."]
    built = subprocess.run(
        command,
        cwd=context,
        env={**engine.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return PREVIOUS_LOGS_IMAGE


def test_a_logs_container_of_the_previous_envelope_version_then_upgraded_loses_nothing(
    engine: Engine, previous_logs_image: str, tmp_path: Path
) -> None:
    """Upgrade order of envelope.py: the shipper first. The stack starts with today's
    shipper and a logs container of the previous release, which hands its batches over as
    kk.v1; its lines arrive. Then the logs container alone is recreated from today's image
    while the pods log; it goes on from the previous release's offsets, and at the end every
    line is at the receiver exactly once."""
    overrides = (PREVIOUS_LOGS_OVERRIDE,)
    with running(CiStack(engine, tmp_path, 0, 0.05, overrides)) as stack:
        labels = stack.inspect("logs")["Config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == "previous-envelope"
        stack.wait(lambda: stack.log_lines_stored() > 50, "lines from the previous logs container")
        old_container = stack.container("logs")
        stack.compose("up", "-d", "--no-deps", "--force-recreate", "logs", file=stack.merged_file())
        assert stack.container("logs") != old_container
        current = container(agent_documents(), "logs")["image"]
        assert stack.inspect("logs")["Config"]["Image"] == current
        moved = stack.log_lines_stored()
        stack.wait(
            lambda: stack.log_lines_stored() > moved, "lines from the upgraded logs container"
        )
        stack.compose("stop", "demo-log-writer")
        stack.audit_every_line_stored_once()
