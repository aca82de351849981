"""OutputSettings: derived protocol rules, validation, secrets kept out of sight."""

from __future__ import annotations

import dataclasses

import pytest

from kk_common.config import parse_config
from kk_shipper import __version__
from kk_shipper.core import OutputSettings, RetrySettings

LICENSE_KEY = "PENG-A1B2-C3D4-E5F6-G7H8-J9K0"
API_KEY = "api-key-0123456789-secret"


def settings(**overrides: object) -> OutputSettings:
    values: dict[str, object] = {
        "kind": "logs",
        "url": "https://recv:8443/api/v1/logs",
        "license_key": LICENSE_KEY,
        "api_key": API_KEY,
        "source": "prod/node-a",
        "cluster_name": "prod",
        "node_name": "node-a",
    }
    values.update(overrides)
    return OutputSettings(**values)  # type: ignore[arg-type]


def test_the_keys_never_appear_in_repr_or_str() -> None:
    shown = repr(settings()) + str(settings())
    assert LICENSE_KEY not in shown
    assert API_KEY not in shown
    assert "prod/node-a" in shown  # the repr still says something useful


@pytest.mark.parametrize(
    ("output_type", "url", "enabled", "reason"),
    [
        ("http3", "https://recv:8443/api/v1/logs", True, None),
        ("http3", "http://recv:8080/api/v1/logs", False, "http://"),
        ("http", "https://recv:8443/api/v1/logs", False, "type is http"),
    ],
)
def test_http3_needs_type_http3_and_an_https_url(
    output_type: str, url: str, enabled: bool, reason: str | None
) -> None:
    output = settings(output_type=output_type, url=url)
    assert output.http3_enabled is enabled
    if reason is None:
        assert output.http3_unavailable_reason is None
    else:
        assert reason in (output.http3_unavailable_reason or "")


def test_http11_goes_to_the_fallback_url_when_one_is_configured() -> None:
    assert settings().h1_url == "https://recv:8443/api/v1/logs"
    fallback = "http://recv-tcp:8080/api/v1/logs"
    assert settings(fallback_url=fallback).h1_url == fallback


def test_single_mode_is_uncompressed_whatever_the_compression_says() -> None:
    assert settings(compression="gzip").content_encoding == "gzip"
    assert settings(compression="gzip").effective_compression_level == 6
    assert settings(compression="zstd").effective_compression_level == 3
    assert settings(compression="zstd", compression_level=9).effective_compression_level == 9
    single = settings(mode="single", compression="gzip")
    assert (single.content_encoding, single.effective_compression_level) == ("none", None)


def test_the_default_user_agent_names_the_version() -> None:
    assert settings().user_agent == f"killkrill-agent/{__version__}"


def test_the_hold_limit_is_two_rounds_of_requests() -> None:
    assert settings(batch_size=100, max_in_flight=4).hold_limit == 800
    assert settings(mode="single", batch_size=100, max_in_flight=4).hold_limit == 8


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_size": 0},
        {"max_in_flight": 0},
        {"compression": "brotli"},
        {"compression": "gzip", "compression_level": 10},
        {"mode": "bulk"},
        {"output_type": "h2"},
        {"max_request_bytes": 10},
        {"probe_interval_s": 0},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid output settings"):
        settings(**overrides)


def test_invalid_retry_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="initial_backoff_s"):
        RetrySettings(initial_backoff_s=10, max_backoff_s=1)
    with pytest.raises(ValueError, match="pause_s"):
        RetrySettings(pause_s=600, max_pause_s=300)


def test_the_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings().batch_size = 5  # type: ignore[misc]


def test_from_config_resolves_urls_and_secrets() -> None:
    config = parse_config(
        None,
        {
            "NODE_NAME": "node-a",
            "CLUSTER_NAME": "prod",
            "NODE_IP": "10.1.2.3",
            "KILLKRILL_LICENSE_KEY": LICENSE_KEY,
            "KILLKRILL_API_KEY": API_KEY,
            "KILLKRILL_LOG_RECEIVER_URL": "https://logs:8443",
            "KILLKRILL_METRICS_RECEIVER_URL": "http://metrics:8080/ingest",
        },
    )
    logs = OutputSettings.from_config(config, "logs")
    assert logs.url == "https://logs:8443/api/v1/logs"
    assert (logs.license_key, logs.api_key) == (LICENSE_KEY, API_KEY)
    assert (logs.source, logs.cluster_name, logs.node_name) == ("prod/node-a", "prod", "node-a")
    assert (logs.batch_size, logs.flush_interval_s) == (1000, 5.0)
    assert logs.http3_enabled
    metrics = OutputSettings.from_config(config, "metrics")
    assert metrics.url == "http://metrics:8080/ingest"
    assert not metrics.http3_enabled
    assert (metrics.batch_size, metrics.flush_interval_s) == (500, 30.0)
