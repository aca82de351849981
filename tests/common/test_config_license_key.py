"""Only the shipper needs the license key: it is the one process that talks to receivers.

Least privilege keeps the license Secret out of the logs, metrics and health containers
(deploy/README.md), so their configuration must load without the key, while the shipper's
still refuses to start without it. A key that is given is validated everywhere."""

from __future__ import annotations

import pytest

from kk_common.config import ConfigError, parse_config
from kk_common.startup import (
    CONFIG_EXIT_STATUS,
    LICENSE_KEY_HOLDERS,
    secrets_of,
    start_service,
)

KEY = "PENG-AB12-CD34-EF56-GH78-IJ90"
WITHOUT_SECRETS = {
    "NODE_NAME": "node-a",
    "NODE_IP": "10.1.2.3",
    "KILLKRILL_LOG_RECEIVER_URL": "https://logs:8443",
    "KILLKRILL_METRICS_RECEIVER_URL": "https://metrics:8443",
    "KILLKRILL_CONFIG": "",  # the default path, missing here: defaults and environment
}
REQUIRED = (
    "KILLKRILL_LICENSE_KEY: required: set it to the PenguinTech license key, "
    "PENG-XXXX-XXXX-XXXX-XXXX-XXXX (X = uppercase letter or digit)"
)


pytestmark = pytest.mark.usefixtures("restored_logging")


def test_the_key_is_required_unless_the_caller_says_it_does_not_talk_to_receivers() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(None, WITHOUT_SECRETS)
    assert [str(problem) for problem in raised.value.problems] == [REQUIRED]

    config = parse_config(None, WITHOUT_SECRETS, require_license_key=False)
    assert config.credentials.license_key is None
    assert config.logs.output.url == "https://logs:8443"


def test_an_empty_key_counts_as_unset() -> None:
    environ = {**WITHOUT_SECRETS, "KILLKRILL_LICENSE_KEY": ""}
    with pytest.raises(ConfigError) as raised:
        parse_config(None, environ)
    assert [str(problem) for problem in raised.value.problems] == [REQUIRED]
    assert parse_config(None, environ, require_license_key=False).credentials.license_key is None


def test_a_malformed_key_is_an_error_even_where_it_is_not_required() -> None:
    """A container that got a key by mistake still says it is wrong (and never shows it)."""
    environ = {**WITHOUT_SECRETS, "KILLKRILL_LICENSE_KEY": "PENG-secret-typo"}
    with pytest.raises(ConfigError) as raised:
        parse_config(None, environ, require_license_key=False)
    (problem,) = raised.value.problems
    assert problem.path == "KILLKRILL_LICENSE_KEY"
    assert "PENG-secret-typo" not in str(raised.value)


def test_only_the_shipper_holds_the_key() -> None:
    assert {"shipper"} == LICENSE_KEY_HOLDERS


@pytest.mark.parametrize("component", ["logs", "metrics", "health"])
def test_producers_and_health_start_without_the_key(
    component: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = start_service(component, config_path=None, environ=WITHOUT_SECRETS)
    assert config.credentials.license_key is None
    assert secrets_of(config) == []
    assert "invalid configuration" not in capsys.readouterr().err


def test_the_shipper_does_not_start_without_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        start_service("shipper", config_path=None, environ=WITHOUT_SECRETS)
    assert stopped.value.code == CONFIG_EXIT_STATUS
    err = capsys.readouterr().err
    assert err == f"killkrill-shipper: invalid configuration:\n{REQUIRED}\n"


def test_a_key_that_is_given_is_still_redacted_in_any_container() -> None:
    environ = {**WITHOUT_SECRETS, "KILLKRILL_LICENSE_KEY": KEY}
    config = start_service("logs", config_path=None, environ=environ)
    assert secrets_of(config) == [KEY]
