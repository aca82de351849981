"""The agent's environment variables: the one list of names, and how they override the file.

Precedence is built-in defaults < config file (after ``${VAR}`` expansion) < these
variables. A variable set to the empty string counts as unset, so a templated manifest
that renders ``value: ""`` falls back to the file or the default instead of failing.

Every ``KILLKRILL_*`` name the agent knows is in :data:`ENVIRONMENT_VARIABLES`; any other
``KILLKRILL_*`` variable is reported as a probable misspelling. Kubernetes' service-link
variables (``KILLKRILL_LOG_RECEIVER_SERVICE_HOST``, ``..._PORT_8443_TCP``, ...), which the
kubelet injects for every Service in the namespace unless ``enableServiceLinks: false``,
are not misspellings and are ignored.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigProblem
from .paths import KeyPath

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENVIRONMENT_VARIABLES",
    "KILLKRILL_PREFIX",
    "SECRET_VARIABLE_NAMES",
    "EnvironmentVariable",
    "apply_environment",
    "unknown_killkrill_variables",
    "variable_for_path",
]

KILLKRILL_PREFIX = "KILLKRILL_"
DEFAULT_CONFIG_PATH = "/etc/killkrill/config.yaml"


@dataclass(frozen=True, slots=True)
class EnvironmentVariable:
    """One environment variable the agent reads."""

    name: str
    config_path: KeyPath | None
    """The config key it overrides, or None (KILLKRILL_CONFIG only picks the file)."""
    description: str
    secret: bool = False
    """Secrets are never shown and cannot be referenced as ``${VAR}`` in the file."""


ENVIRONMENT_VARIABLES: tuple[EnvironmentVariable, ...] = (
    EnvironmentVariable("NODE_NAME", ("agent", "node_name"), "this node's name"),
    EnvironmentVariable("NODE_IP", ("agent", "node_ip"), "this node's IP address"),
    EnvironmentVariable("CLUSTER_NAME", ("agent", "cluster_name"), "the cluster's name"),
    EnvironmentVariable("LOG_LEVEL", ("agent", "log_level"), "the agent's own log level"),
    EnvironmentVariable("METRICS_INTERVAL", ("metrics", "interval"), "time between scrapes"),
    EnvironmentVariable(
        "KILLKRILL_LOG_RECEIVER_URL", ("logs", "output", "url"), "the log receiver's URL"
    ),
    EnvironmentVariable(
        "KILLKRILL_METRICS_RECEIVER_URL",
        ("metrics", "output", "url"),
        "the metrics receiver's URL",
    ),
    EnvironmentVariable(
        "KILLKRILL_LICENSE_KEY",
        ("credentials", "license_key"),
        "the PenguinTech license key (required by the shipper)",
        secret=True,
    ),
    EnvironmentVariable(
        "KILLKRILL_API_KEY", ("credentials", "api_key"), "an optional API key", secret=True
    ),
    EnvironmentVariable("KILLKRILL_IPC_DIR", ("agent", "ipc_dir"), "the ZeroMQ socket directory"),
    EnvironmentVariable("KILLKRILL_STATE_DIR", ("agent", "state_dir"), "the state directory"),
    EnvironmentVariable("KILLKRILL_CONFIG", None, "the config file to read"),
)
"""Every environment variable the agent reads. Add a new one here and nowhere else."""

SECRET_VARIABLE_NAMES = frozenset(v.name for v in ENVIRONMENT_VARIABLES if v.secret)
_KNOWN_KILLKRILL_NAMES = sorted(
    v.name for v in ENVIRONMENT_VARIABLES if v.name.startswith(KILLKRILL_PREFIX)
)
# Kubernetes service links: <SVC>_SERVICE_HOST, <SVC>_SERVICE_PORT[_<NAME>], <SVC>_PORT,
# <SVC>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR].
_SERVICE_LINK = re.compile(
    r"[A-Z0-9_]+_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?"
    r"|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)"
)


def unknown_killkrill_variables(environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Report every ``KILLKRILL_*`` variable the agent doesn't know (values are not shown)."""
    problems = []
    for name in sorted(environ):
        if not name.startswith(KILLKRILL_PREFIX) or name in _KNOWN_KILLKRILL_NAMES:
            continue
        if _SERVICE_LINK.fullmatch(name):
            continue
        close = difflib.get_close_matches(name, _KNOWN_KILLKRILL_NAMES, n=1, cutoff=0.75)
        known = ", ".join(_KNOWN_KILLKRILL_NAMES)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {known}"
        problems.append(ConfigProblem(name, f"unknown {KILLKRILL_PREFIX}* variable{hint}"))
    return problems


def apply_environment(
    document: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """Overlay the set variables onto a copy of the document.

    Returns the new document and, for each overridden key path, the variable's name, so
    that an invalid value is reported under the variable (``METRICS_INTERVAL: ...``).
    A section that is not a mapping in the file is left alone: its own error says why.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(document))
    origins: dict[KeyPath, str] = {}
    for variable in ENVIRONMENT_VARIABLES:
        value = environ.get(variable.name)
        if variable.config_path is None or not value:
            continue
        *parents, leaf = variable.config_path
        target: Any = merged
        for key in parents:
            target = target.setdefault(key, {}) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target[leaf] = value
            origins[variable.config_path] = variable.name
    return merged, origins


def variable_for_path(path: KeyPath) -> EnvironmentVariable | None:
    """The variable that overrides ``path``, if any."""
    for variable in ENVIRONMENT_VARIABLES:
        if variable.config_path == path:
            return variable
    return None
