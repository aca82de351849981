"""compose.yaml run as one project on a test's Docker engine, and the checks every run ends
with (each demo line at the receiver exactly once).

`Stack` runs a compose file as it is; `CiStack` runs compose.yaml with compose.ci.yaml
(host networking, ports picked here) for an engine without networks of its own.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from docker_engine import Engine, free_port, get_json, http_status, stored_records

from kk_receiver.testing import wait_until

DEMO_LINES = 300
TOKEN = re.compile(r"token=(demo-\d+)")


def ci_environment(
    ports: dict[str, int] | None = None, lines: int = DEMO_LINES, interval: float = 0.05
) -> dict[str, str]:
    """The variables compose.ci.yaml reads (ports, the demo writer's lines and pace)."""
    ports = ports or {}
    return {
        "KK_CI_RECEIVER_PORT": str(ports.get("receiver", 18443)),
        "KK_CI_RECEIVER_HTTP_PORT": str(ports.get("receiver_http", 18000)),
        "KK_CI_HEALTH_PORT": str(ports.get("health", 18080)),
        "KK_CI_DEMO_LINES": str(lines),
        "KK_CI_DEMO_INTERVAL": str(interval),
    }


class Stack:
    """One compose project: ``file`` on ``engine``, the receiver's stats at ``receiver`` and
    the agent's health server at ``health`` (both as seen from the engine's network
    namespace); ``lines`` the demo writer writes (0: until stopped)."""

    def __init__(
        self, engine: Engine, file: Path, *, receiver: str, health: str, lines: int
    ) -> None:
        self.engine = engine
        self.file = file
        self.receiver = receiver
        self.health = health
        self.lines = lines
        self.project = f"kkci{uuid.uuid4().hex[:8]}"

    def compose(self, *args: str, timeout: float = 300, file: Path | None = None) -> str:
        command = ("docker-compose", "-p", self.project, "-f", str(file or self.file), *args)
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

    def stats(self) -> dict[str, Any]:
        return get_json(f"{self.receiver}/api/v1/stats", self.engine.namespace)

    def log_lines_stored(self) -> int:
        return self.stats()["by_kind"]["logs"]["unique_ids"]

    def ready(self) -> bool:
        return http_status(f"{self.health}/ready", self.engine.namespace) == 200

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
        records = stored_records(self.receiver, "logs", self.engine.namespace)
        tokens = Counter(TOKEN.search(r["record"]["message"]).group(1) for r in records)
        assert tokens == Counter(f"demo-{n}" for n in range(written))
        stats = self.stats()
        assert stats["duplicates"] == 0 and stats["rejected"] == 0, stats


class CiStack(Stack):
    """compose.yaml with compose.ci.yaml (and ``overrides``), on ports picked here.

    Host networking cannot publish ports, and Compose v1 cannot remove a list in an
    override, so the merged file (``docker-compose config``, which also resolves the
    variables and the relative paths) is written out without ``ports``: the only change.
    """

    def __init__(
        self,
        engine: Engine,
        directory: Path,
        lines: int,
        interval: float,
        overrides: tuple[Path, ...] = (),
    ) -> None:
        self.directory = directory
        self.ports = {"receiver": free_port(), "receiver_http": free_port(), "health": free_port()}
        ci_engine = Engine({**engine.environ, **ci_environment(self.ports, lines, interval)})
        super().__init__(
            ci_engine,
            self.merged_file(ci_engine, *overrides),
            receiver=f"http://127.0.0.1:{self.ports['receiver_http']}",
            health=f"http://127.0.0.1:{self.ports['health']}",
            lines=lines,
        )

    def merged_file(self, engine: Engine | None = None, *overrides: Path) -> Path:
        """compose.yaml, compose.ci.yaml and ``overrides`` merged, without ``ports``."""
        files = ["compose.yaml", "compose.ci.yaml", *(str(path) for path in overrides)]
        merged = (engine or self.engine).run(
            "docker-compose", *(arg for name in files for arg in ("-f", name)), "config"
        )
        assert merged.returncode == 0, merged.stderr
        document = yaml.safe_load(merged.stdout)
        for service in document["services"].values():
            service.pop("ports", None)
        path = self.directory / f"compose.ci-merged-{len(overrides)}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path


AnyStack = TypeVar("AnyStack", bound=Stack)


@contextlib.contextmanager
def running(stack: AnyStack) -> Iterator[AnyStack]:
    """``up -d``, then ``down -v`` whatever happens."""
    try:
        stack.compose("up", "-d")
        yield stack
    finally:
        stack.compose("down", "-v", "--timeout", "30")
