"""Command-line parsing and startup failures."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from kk_receiver.__main__ import build_parser, config_from_args
from kk_receiver.app import ServeConfig
from kk_receiver.testing import ReceiverProcess, ReceiverStartError, wait_until


def parse(*argv: str, environ: dict[str, str] | None = None) -> ServeConfig:
    args = build_parser().parse_args(["--data-dir", "/tmp/kkr-unused", *argv])
    return config_from_args(args, environ or {})


class TestConfig:
    def test_credentials_come_from_environment(self) -> None:
        """KK_RECEIVER_LICENSE_KEY / KK_RECEIVER_API_KEY keep keys out of argv."""
        config = parse(environ={"KK_RECEIVER_LICENSE_KEY": "PENG-X", "KK_RECEIVER_API_KEY": "k"})
        assert (config.settings.license_key, config.settings.api_key) == ("PENG-X", "k")

    def test_h3_defaults_to_the_https_port(self) -> None:
        """HTTP/3 shares the HTTPS port number unless --h3-port or --no-h3 says otherwise."""
        assert parse("--https-port", "9443").h3_port == 9443
        assert parse("--h3-port", "9444").h3_port == 9444
        assert parse("--no-h3").h3_port is None

    def test_bad_fault_file_is_a_startup_error(self, tmp_path: Path) -> None:
        """A malformed --faults file stops startup with a message naming the file."""
        faults = tmp_path / "faults.json"
        faults.write_text(json.dumps({"steps": [{"status": 1000}]}))
        with pytest.raises(ValueError, match=r"faults\.json: step 0"):
            parse("--faults", str(faults))

    def test_all_listeners_disabled_is_an_error(self) -> None:
        """A receiver with nothing to serve is refused."""
        with pytest.raises(ValueError, match="every listener is disabled"):
            parse("--no-http", "--no-https", "--no-h3")


class TestStartupFailure:
    def test_port_in_use_fails_fast_with_log(self) -> None:
        """A busy port makes the process exit; ReceiverProcess reports its log, not a hang."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            receiver = ReceiverProcess(extra_args=["--http-port", str(port)], startup_timeout=10)
            with pytest.raises(ReceiverStartError, match="cannot start"):
                receiver.start()
            receiver.close()
            wait_until(lambda: not receiver.data_dir.exists(), timeout=1)
