"""endpoint_url and carries_http3: the one place receiver URLs are built."""

from __future__ import annotations

import pytest

from kk_common.urls import ENDPOINT_PATHS, carries_http3, endpoint_url


@pytest.mark.parametrize(
    ("base", "kind", "expected"),
    [
        ("https://rx:8443", "logs", "https://rx:8443/api/v1/logs"),
        ("https://rx:8443/", "logs", "https://rx:8443/api/v1/logs"),
        ("https://rx:8443", "metrics", "https://rx:8443/api/v1/metrics"),
        ("http://rx", "metrics", "http://rx/api/v1/metrics"),
        ("https://[fd00::1]:8443", "logs", "https://[fd00::1]:8443/api/v1/logs"),
    ],
)
def test_a_url_without_a_path_gets_the_endpoint_path(base: str, kind: str, expected: str) -> None:
    assert endpoint_url(base, kind) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "base",
    [
        "https://gateway/ingest/logs",
        "https://gateway/ingest/logs/",
        "https://gateway:9000/api/v1/logs",
        "https://gateway/custom?tenant=a&x=1",
    ],
)
def test_a_url_with_a_path_is_used_as_given(base: str) -> None:
    assert endpoint_url(base, "logs") == base
    assert endpoint_url(base, "metrics") == base


def test_a_query_string_is_kept_when_the_path_is_appended() -> None:
    assert (
        endpoint_url("https://rx:8443?tenant=a", "logs") == "https://rx:8443/api/v1/logs?tenant=a"
    )
    assert endpoint_url("https://rx:8443/?tenant=a", "metrics") == (
        "https://rx:8443/api/v1/metrics?tenant=a"
    )


def test_the_endpoint_paths_are_the_documented_ones() -> None:
    assert ENDPOINT_PATHS == {"logs": "/api/v1/logs", "metrics": "/api/v1/metrics"}


@pytest.mark.parametrize("base", ["rx:8443", "ftp://rx", "https://", ""])
def test_a_url_that_is_not_http_with_a_host_is_rejected(base: str) -> None:
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        endpoint_url(base, "logs")


def test_an_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown endpoint kind"):
        endpoint_url("https://rx", "traces")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://rx:8443", True),
        ("HTTPS://rx:8443/api/v1/logs", True),
        ("http://rx:8000", False),
        ("HTTP://rx:8000", False),
    ],
)
def test_only_https_can_carry_http3(url: str, expected: bool) -> None:
    assert carries_http3(url) is expected
