"""The Dockerfiles, read offline: one per image, the base image a build argument, only the
service's own projects installed, OCI labels with the version passed in, and the user the
DaemonSet runs the container as. (test_compose.py builds and runs them for real.)"""

from __future__ import annotations

import re
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest
from manifests import AGENT_CONTAINERS, REPO, agent_documents, container

DOCKERFILES = {name: REPO / "services" / name / "Dockerfile" for name in AGENT_CONTAINERS}
DOCKERFILES["reference-receiver"] = REPO / "tests" / "receiver" / "Dockerfile"
OCI_LABELS = {"title", "description", "version", "vendor", "base.name"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_base_image_is_a_build_argument(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    froms = [args for kind, args in steps if kind == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"], "multi-stage, one base"


@pytest.mark.parametrize("name", AGENT_CONTAINERS)
def test_an_agent_image_installs_only_common_and_its_service(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    copied = [args.split()[0] for kind, args in steps if kind == "COPY" and "--from" not in args]
    assert copied == ["requirements/dev.txt", "services/common", f"services/{name}"]
    (install,) = [args for kind, args in steps if kind == "RUN" and "pip install" in args]
    assert install.split("/src/common")[1].split()[0:1] == [f"/src/{name}"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_oci_labels_carry_the_version_passed_in(name: str) -> None:
    labels = " ".join(args for kind, args in instructions(DOCKERFILES[name]) if kind == "LABEL")
    found = set(re.findall(r"org\.opencontainers\.image\.([\w.]+)=", labels))
    assert found == OCI_LABELS
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


@pytest.mark.parametrize("name", AGENT_CONTAINERS)
def test_the_image_user_is_the_pods(name: str) -> None:
    (user,) = [args for kind, args in instructions(DOCKERFILES[name]) if kind == "USER"]
    uid = int(user.split(":")[0])
    assert uid == container(agent_documents(), name)["securityContext"]["runAsUser"]
    (entrypoint,) = [args for kind, args in instructions(DOCKERFILES[name]) if kind == "ENTRYPOINT"]
    assert entrypoint == f'["killkrill-{name}"]'


def build_script() -> ModuleType:
    loader = SourceFileLoader("build_images", str(REPO / "scripts" / "build-images"))
    module = ModuleType(loader.name)
    module.__file__ = loader.path
    loader.exec_module(module)
    return module


def test_the_build_script_tags_images_as_the_daemonset_names_them() -> None:
    """One place for a version: the service's pyproject.toml, read by the script."""
    script = build_script()
    assert {name: REPO / path for name, (path, _) in script.IMAGES.items()} == DOCKERFILES
    for name in AGENT_CONTAINERS:
        assert script.image_name(name) == container(agent_documents(), name)["image"]


def test_the_build_context_sends_what_the_dockerfiles_copy() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    kept = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for path in DOCKERFILES.values():
        for kind, args in instructions(path):
            if kind != "COPY" or "--from" in args:
                continue
            for source in (s.rstrip("/") for s in args.split()[:-1]):
                assert any(
                    k == source or k.startswith(source + "/") or source.startswith(k + "/")
                    for k in kept
                ), f"{path}: {source} is not in the build context"
