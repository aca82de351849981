"""Every service starts the same way: all config problems at once (exit 2), JSON logging
with the secrets redacted."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kk_common.ipc import IpcPathTooLong
from kk_common.startup import CONFIG_EXIT_STATUS, serve, start_service

KEY = "PENG-AB12-CD34-EF56-GH78-IJ90"
GOOD = {
    "NODE_NAME": "node-a",
    "KILLKRILL_LICENSE_KEY": KEY,
    "KILLKRILL_LOG_RECEIVER_URL": "https://logs:8443",
    "KILLKRILL_METRICS_RECEIVER_URL": "https://metrics:8443",
    "NODE_IP": "10.1.2.3",
    "KILLKRILL_CONFIG": "/nonexistent/default-is-fine.yaml",
}


pytestmark = pytest.mark.usefixtures("restored_logging")


def test_invalid_configuration_exits_2_listing_every_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"KILLKRILL_LICENSE_KEY": "PENG-nope", "KILLKRILL_LOG_RECIEVER_URL": "x"}
    with pytest.raises(SystemExit) as stopped:
        start_service("shipper", config_path=None, environ=environ)
    assert stopped.value.code == CONFIG_EXIT_STATUS
    err = capsys.readouterr().err
    assert err.startswith("killkrill-shipper: invalid configuration:")
    assert "NODE_NAME" in err
    assert "KILLKRILL_LOG_RECIEVER_URL" in err
    assert "KILLKRILL_LICENSE_KEY" in err
    assert "PENG-nope" not in err


def test_valid_configuration_sets_up_redacting_json_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {**GOOD, "KILLKRILL_CONFIG": ""}
    config = start_service("logs", config_path=None, environ=environ)
    assert config.agent.node_name == "node-a"
    logging.getLogger("kk.test").error("leaked %s", KEY)
    out = capsys.readouterr().out
    assert '"component": "logs"' in out
    assert KEY not in out
    assert "[REDACTED]" in out


def test_serve_maps_how_a_service_ends_to_its_exit_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def clean(context: object, stop: object) -> None:
        return None

    def failing(error: Exception) -> Any:
        async def body(context: object, stop: object) -> None:
            raise error

        return body

    fatal = {OSError: "state_dir_unusable"}
    assert serve(clean, fatal=fatal) == 0
    with caplog.at_level("ERROR", logger="kk.startup"):
        assert serve(failing(IpcPathTooLong("path too long")), fatal=fatal) == 2
        assert serve(failing(PermissionError("denied")), fatal=fatal) == 1
    assert [r.getMessage() for r in caplog.records] == ["startup_failed", "state_dir_unusable"]
    with pytest.raises(ValueError, match="not fatal"):
        serve(failing(ValueError("not fatal")), fatal=fatal)
