"""Building an :class:`AgentConfig` from a config file's text and the environment.

:func:`parse_config` is pure (no IO): tests and tools pass text and a mapping.
:func:`load_config` adds the one piece of IO, reading the file named by ``--config``,
``KILLKRILL_CONFIG`` or the default path.

The steps, in order: parse the YAML; expand ``${VAR}`` in string values; overlay the
environment variables; fill the node-specific defaults (the metric sources and the kubelet
URL); validate with
pydantic; run the cross-field checks. Problems from every step are collected and raised
together as one :class:`ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .checks import cross_field_problems
from .environment import (
    DEFAULT_CONFIG_PATH,
    SECRET_VARIABLE_NAMES,
    apply_environment,
    unknown_killkrill_variables,
)
from .errors import ConfigError, ConfigProblem
from .expand import expand_variables
from .metric_sources import fill_default_kubelet_url, fill_default_metric_sources
from .model import AgentConfig
from .paths import KeyPath
from .pydantic_errors import problems_from_validation_error
from .value_types import LICENSE_KEY_FORMAT
from .yaml_document import read_yaml_mapping

__all__ = ["config_file_path", "load_config", "parse_config"]

_SECTIONS = ("agent", "logs", "metrics", "performance", "shipper", "credentials")
_ENVIRONMENT_ONLY_SECTIONS = ("credentials",)
LICENSE_KEY_REQUIRED = ConfigProblem(
    "KILLKRILL_LICENSE_KEY",
    f"required: set it to the PenguinTech license key, {LICENSE_KEY_FORMAT}",
)


def parse_config(
    file_text: str | None,
    environ: Mapping[str, str],
    *,
    source: str = "<config>",
    require_license_key: bool = True,
) -> AgentConfig:
    """Validate a config file's text (None: no file) together with the environment.

    ``source`` names the file in problems about the file as a whole (syntax errors).
    ``require_license_key=False`` is for the containers that never talk to a receiver (logs,
    metrics, health: least privilege keeps the Secret from them); a key that is set is still
    validated. Raises :class:`ConfigError` listing every problem; never prints or logs.
    """
    problems: list[ConfigProblem] = []
    document: dict[str, Any] = {}
    failed_expansions: set[KeyPath] = set()
    if file_text is not None:
        parsed, yaml_problems = read_yaml_mapping(file_text, source)
        if yaml_problems:
            # Without a document, every other check would only add noise.
            raise ConfigError([*yaml_problems, *unknown_killkrill_variables(environ)])
        document, expansion = expand_variables(parsed, environ, forbidden=SECRET_VARIABLE_NAMES)
        problems += expansion.problems
        failed_expansions = expansion.failed_paths
        for section in _ENVIRONMENT_ONLY_SECTIONS:
            if section in document:
                del document[section]
                problems.append(
                    ConfigProblem(
                        section,
                        "secrets are not read from the config file: set "
                        f"{', '.join(sorted(SECRET_VARIABLE_NAMES))} (from a Kubernetes Secret)",
                    )
                )

    document, origins = apply_environment(document, environ)
    # A variable replaces a value whose expansion failed: its own value gets validated.
    failed_expansions -= set(origins)
    for section in _SECTIONS:
        # An empty section, so a missing required field is reported at its own path
        # ("agent.node_name: required") rather than as a missing section.
        document.setdefault(section, {})
    if require_license_key and "license_key" not in document["credentials"]:
        problems.append(LICENSE_KEY_REQUIRED)
    default_sources = fill_default_metric_sources(document)
    default_kubelet_url = fill_default_kubelet_url(document)

    config: AgentConfig | None = None
    validation_error: ValidationError | None = None
    try:
        config = AgentConfig.model_validate(document)
    except ValidationError as error:
        validation_error = error
    if validation_error is not None:
        # Translated outside the except block so that the ValidationError, whose text may
        # show inputs, is not chained onto the ConfigError.
        problems += problems_from_validation_error(
            validation_error, root=AgentConfig, origins=origins, skip=failed_expansions
        )
    problems += cross_field_problems(
        document,
        default_sources=default_sources,
        default_kubelet_url=default_kubelet_url,
        skip=failed_expansions,
    )
    problems += unknown_killkrill_variables(environ)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def config_file_path(
    environ: Mapping[str, str], explicit_path: str | os.PathLike[str] | None = None
) -> tuple[Path, str | None]:
    """The config file to read, and what named it (``--config``, ``KILLKRILL_CONFIG``).

    The second value is None for the default path, where a missing file is fine.
    """
    if explicit_path is not None:
        return Path(explicit_path), "--config"
    if environ.get("KILLKRILL_CONFIG"):
        return Path(environ["KILLKRILL_CONFIG"]), "KILLKRILL_CONFIG"
    return Path(DEFAULT_CONFIG_PATH), None


LOCAL_ONLY_STAND_INS: Mapping[str, str] = {
    "KILLKRILL_LICENSE_KEY": "PENG-0000-0000-0000-0000-0000",
    "KILLKRILL_LOG_RECEIVER_URL": "https://local-inspection.invalid",
    "KILLKRILL_METRICS_RECEIVER_URL": "https://local-inspection.invalid",
    "NODE_NAME": "local-inspection",
    "NODE_IP": "127.0.0.1",
}
"""What `load_config(local_only=True)` assumes for the variables a running service needs
but local inspection does not (never sent anywhere: such a config only opens local files)."""


def load_config(
    environ: Mapping[str, str] = os.environ,
    *,
    config_path: str | os.PathLike[str] | None = None,
    local_only: bool = False,
    require_license_key: bool = True,
) -> AgentConfig:
    """Read the config file and validate it with ``environ``.

    The file is ``config_path`` if given, else ``KILLKRILL_CONFIG``, else
    ``/etc/killkrill/config.yaml``. A missing file at the default path means built-in
    defaults plus environment; a missing file that was named explicitly is an error.

    ``local_only`` is for commands that only read the agent's own files (the shipper's
    dead letters, a replay): the license key, receiver URLs and node identity may be unset
    and get inert stand-ins (`LOCAL_ONLY_STAND_INS`); everything else (state directory,
    queue limits) is read and validated as the services read it. ``require_license_key``:
    see `parse_config`.
    """
    if local_only:
        environ = {**LOCAL_ONLY_STAND_INS, **{k: v for k, v in environ.items() if v}}
    path, named_by = config_file_path(environ, config_path)
    try:
        text: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named_by is not None:
            raise ConfigError([ConfigProblem(named_by, f"config file not found: {path}")]) from None
        text = None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(
            [ConfigProblem(str(path), f"cannot read the config file: {reason}")]
        ) from None
    return parse_config(text, environ, source=str(path), require_license_key=require_license_key)
