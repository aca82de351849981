"""Plain ``docker compose up``: compose.yaml exactly as users run it, on compose's default
bridge network, service names resolved by Docker's DNS, ports published on 127.0.0.1.

The engine runs in a network namespace of the test's own (docker_engine.network_namespace),
so its bridge, its addresses and its iptables rules exist only there: the subnets come from
a link-local pool (169.254.77.0/24), the host's network namespace gets no interface, address
or rule, and the published ports are that namespace's loopback, which the test reaches
with nsenter. Needs root, dockerd, docker-compose, debootstrap, iproute2 and nsenter; elsewhere
it is skipped and says why."""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Iterator

import pytest
import yaml
from compose_stack import Stack, running
from docker_engine import (
    LINK_LOCAL_POOL,
    Engine,
    docker_engine,
    missing_prerequisites,
    network_namespace,
)
from manifests import AGENT_CONTAINERS, REPO

COMPOSE = REPO / "compose.yaml"


@pytest.fixture(scope="module")
def bridge_engine() -> Iterator[Engine]:
    reason = missing_prerequisites()
    if reason is None and not (shutil.which("ip") and shutil.which("nsenter")):
        reason = "ip (iproute2) and nsenter (util-linux) are needed"
    if reason:
        pytest.skip(f"compose stack on a bridge not run: {reason}")
    with network_namespace() as namespace, docker_engine(namespace) as engine:
        yield engine


@pytest.fixture(scope="module")
def images(bridge_engine: Engine) -> None:
    """The images of the shared store (test_compose.py built them already, in CI)."""
    built = bridge_engine.run(str(REPO / "scripts" / "build-images"), "--local-base", timeout=1200)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]


def published(service: str, container_port: int) -> str:
    """The host address compose.yaml publishes ``service``'s port on, as a URL."""
    for mapping in yaml.safe_load(COMPOSE.read_text())["services"][service]["ports"]:
        address, host_port, port = mapping.split(":")
        if int(port) == container_port:
            return f"http://{address}:{host_port}"
    raise AssertionError(f"{service} publishes no port {container_port}")


def test_plain_compose_up_delivers_every_line_over_a_bridge_network(
    bridge_engine: Engine, images: None
) -> None:
    stack = Stack(
        bridge_engine,
        COMPOSE,
        receiver=published("receiver", 8000),
        health=published("health", 8080),
        lines=0,  # compose.yaml's writer writes until it is stopped
    )
    with running(stack):
        network = f"{stack.project}_default"
        inspected = yaml.safe_load(
            bridge_engine.run("docker", "network", "inspect", network).stdout
        )
        (details,) = inspected
        assert details["Driver"] == "bridge"
        (subnet,) = (ipaddress.ip_network(c["Subnet"]) for c in details["IPAM"]["Config"])
        assert subnet.subnet_of(ipaddress.ip_network(LINK_LOCAL_POOL))
        attached = {
            c["Name"].removeprefix(f"{stack.project}_").rsplit("_", 1)[0]
            for c in details["Containers"].values()
        }
        assert set(AGENT_CONTAINERS) <= attached

        stack.wait(lambda: stack.log_lines_stored() > 0, "demo lines at the receiver")
        stack.wait(lambda: stack.stats()["by_kind"]["metrics"]["unique_ids"], "node metrics")
        stack.wait(stack.ready, "/ready answering 200 on the published port")
        stack.compose("stop", "demo-log-writer")
        stack.audit_every_line_stored_once()
        assert stack.stats()["by_protocol"]["http/3"]["logs"]["unique_ids"] > 0
