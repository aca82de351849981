"""The ``killkrill-agent`` command line.

``killkrill-agent status`` shows the agent's live status view: it runs
``killkrill-health status`` (the health container's command, which reads its ``/status``);
``kubectl exec -c health`` reaches it in a pod.

``killkrill-agent validate [--config PATH]`` reads the environment and the config file
exactly as the services will, then either prints a short summary of the effective
configuration (never a secret) and exits 0, or prints every problem to stderr, one
``path: message`` per line, and exits 2. The TLS files of the enabled outputs must exist,
be readable and parse (as the shipper checks at startup). Notes about a valid config go to stderr as
``warning: path: message``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TextIO

from kk_common.config import (
    AgentConfig,
    ConfigError,
    OutputConfig,
    config_file_path,
    config_notes,
    format_duration,
    format_size,
    load_config,
    tls_file_problems,
)
from kk_common.startup import add_command, command_parser
from kk_common.urls import carries_http3, endpoint_url

__all__ = ["EXIT_INVALID_CONFIG", "EXIT_OK", "main", "summarize"]

EXIT_OK = 0
EXIT_INVALID_CONFIG = 2
"""Also what argparse uses for a usage error: either way the agent can't start."""


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit code (arguments are injectable for tests)."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "status":
        return _status(arguments.status_args, stderr or sys.stderr)
    if arguments.command != "validate":
        parser.print_help(stderr or sys.stderr)
        return EXIT_INVALID_CONFIG
    return _validate(
        arguments.config,
        os.environ if environ is None else environ,
        stdout or sys.stdout,
        stderr or sys.stderr,
    )


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "killkrill-agent", "KillKrill Kubernetes agent tools.", version=_version()
    )
    commands = parser.add_subparsers(dest="command")
    add_command(
        commands,
        "validate",
        "check the configuration (environment + config file) and print a summary; exit 0 if "
        "it is valid, otherwise print every problem to stderr and exit 2",
    )
    status = add_command(
        commands,
        "status",
        "show the live status view (killkrill-health status; its options follow)",
    )
    status.add_argument(
        "status_args", nargs=argparse.REMAINDER, help="killkrill-health status options"
    )
    return parser


def _version() -> str:
    try:
        return version("killkrill-common")
    except PackageNotFoundError:  # a source tree without the package installed
        return "0.0.0"


def _status(arguments: Sequence[str], stderr: TextIO) -> int:
    health = shutil.which("killkrill-health")
    if health is None:
        print(
            "killkrill-agent status: killkrill-health is not installed in this container; run "
            "it in the health container: kubectl exec -n killkrill-system <pod> -c health -- "
            "killkrill-health status",
            file=stderr,
        )
        return EXIT_INVALID_CONFIG
    return subprocess.call([health, "status", *arguments])


def _validate(
    config_path: str | None, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO
) -> int:
    try:
        config = load_config(environ, config_path=config_path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=stderr)
        return EXIT_INVALID_CONFIG
    # The files the shipper will read (TLS CA, client certificate and key) must be there.
    file_problems = tls_file_problems(config)
    for problem in file_problems:
        print(problem, file=stderr)
    if file_problems:
        return EXIT_INVALID_CONFIG
    for note in config_notes(config):
        print(f"warning: {note}", file=stderr)
    path, _ = config_file_path(environ, config_path)
    file_state = "" if path.exists() else " (not found: built-in defaults and environment only)"
    print(f"config file: {path}{file_state}", file=stdout)
    for line in summarize(config):
        print(line, file=stdout)
    return EXIT_OK


def summarize(config: AgentConfig) -> list[str]:
    """A few lines describing the effective configuration; secrets appear only as set/unset."""
    agent, logs, metrics, performance = (
        config.agent,
        config.logs,
        config.metrics,
        config.performance,
    )
    lines = [
        f"agent: node {agent.node_name} ({agent.node_ip or 'no node IP'}), "
        f"cluster {agent.cluster_name}, log level {agent.log_level}",
        f"  ipc dir {agent.ipc_dir}, state dir {agent.state_dir}",
    ]
    if logs.enabled and logs.output.url:
        output = logs.output
        lines.append(
            f"logs: {endpoint_url(output.url, 'logs')} over {_protocols(output)}, "
            f"{output.mode} mode, "
            f"{output.batch_size} records or {format_duration(output.flush_interval)}, "
            f"compression {output.compression}"
        )
        lines.append(f"  paths: {', '.join(logs.paths)}")
        metadata = ", ".join(logs.kubernetes.pod_metadata) if logs.kubernetes.enabled else "off"
        lines.append(f"  kubernetes metadata: {metadata or 'none'}")
    else:
        lines.append("logs: disabled")
    if metrics.enabled and metrics.output.url:
        output = metrics.output
        lines.append(
            f"metrics: every {format_duration(metrics.interval)} -> "
            f"{endpoint_url(output.url, 'metrics')} over {_protocols(output)}, "
            f"{output.mode} mode, "
            f"{output.batch_size} samples or {format_duration(output.flush_interval)}, "
            f"compression {output.compression}"
        )
        for source in metrics.sources:
            state = "" if source.enabled else " (disabled)"
            lines.append(f"  source {source.name}: {source.url}{state}")
    else:
        lines.append("metrics: disabled")
    lines.append(
        f"performance: {performance.worker_threads} worker threads, "
        f"buffer {format_size(performance.buffer_size)}, queue {performance.queue_size}, "
        f"{performance.connection_pool_size} connections per receiver"
    )
    license_key, api_key = (
        "set" if secret is not None else "not set"
        for secret in (config.credentials.license_key, config.credentials.api_key)
    )
    lines.append(f"credentials: license key {license_key}, API key {api_key}")
    return lines


def _protocols(output: OutputConfig) -> str:
    if output.type == "http3" and output.url and carries_http3(output.url):
        return "HTTP/3 (HTTP/1.1 fallback)"
    return "HTTP/1.1"


if __name__ == "__main__":
    sys.exit(main())
