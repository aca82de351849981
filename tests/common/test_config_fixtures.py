"""One test per fixture in tests/common/config/.

``bad_*.yaml`` and ``bad_*.env`` declare, in ``# expect:`` comment lines, the exact
problem lines the loader must report: no more, no fewer. ``good_*.yaml`` must load.
Fixtures adjust the base environment (``base.env``) with ``# env: NAME=value`` and
``# unset: A, B`` lines; ``.env`` fixtures also take plain ``NAME=value`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kk_common.config import ConfigError, parse_config

FIXTURES = Path(__file__).parent / "config"


@dataclass(frozen=True)
class Fixture:
    """A fixture file, split into the config text, the environment and the expectations."""

    path: Path
    file_text: str | None
    environ: dict[str, str]
    expected: list[str]


def read_env_lines(lines: list[str]) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {name.strip(): value for name, value in pairs}


def load_fixture(path: Path) -> Fixture:
    lines = path.read_text(encoding="utf-8").splitlines()
    environ = read_env_lines((FIXTURES / "base.env").read_text(encoding="utf-8").splitlines())
    expected: list[str] = []
    for line in lines:
        directive, _, value = line.partition(":")
        if directive == "# expect":
            expected.append(value.strip())
        elif directive == "# env":
            environ.update(read_env_lines([value.strip()]))
        elif directive == "# unset":
            for name in value.split(","):
                environ.pop(name.strip(), None)
    if path.suffix == ".env":
        environ.update(read_env_lines(lines))
        return Fixture(path, None, environ, expected)
    return Fixture(path, "\n".join(lines) + "\n", environ, expected)


BAD = sorted(FIXTURES.glob("bad_*.*"))
GOOD = sorted(FIXTURES.glob("good_*.yaml"))


def test_there_is_a_fixture_for_every_required_case() -> None:
    names = {path.name for path in BAD}
    assert {
        "bad_unknown_key.yaml",
        "bad_misspelt_variable.env",
        "bad_license_key.env",
        "bad_missing_license_key.env",
        "bad_url.yaml",
        "bad_duration.yaml",
        "bad_size.yaml",
        "bad_compression.yaml",
        "bad_duplicate_sources.yaml",
        "bad_many.yaml",
        "bad_backoff.yaml",
        "bad_client_certificate.yaml",
        "bad_compression_level.yaml",
        "bad_compression_level_none.yaml",
        "bad_unknown_delivery_key.yaml",
        "bad_shipper_size.yaml",
        "bad_kubelet_source.yaml",
        "bad_exclude_path.yaml",
        "bad_max_line_size.yaml",
        "bad_window_key.yaml",
        "bad_kubernetes_objects.yaml",
    } <= names


@pytest.mark.parametrize("path", BAD, ids=[path.name for path in BAD])
def test_bad_fixture_reports_exactly_its_expected_problems(path: Path) -> None:
    fixture = load_fixture(path)
    assert fixture.expected, f"{path.name} declares no '# expect:' line"
    with pytest.raises(ConfigError) as caught:
        parse_config(fixture.file_text, fixture.environ, source=path.name)
    reported = str(caught.value).splitlines()
    assert sorted(reported) == sorted(fixture.expected)
    assert [str(problem) for problem in caught.value.problems] == reported


@pytest.mark.parametrize("path", BAD, ids=[path.name for path in BAD])
def test_bad_fixture_errors_never_contain_a_secret(path: Path) -> None:
    fixture = load_fixture(path)
    with pytest.raises(ConfigError) as caught:
        parse_config(fixture.file_text, fixture.environ, source=path.name)
    text = str(caught.value) + repr(caught.value)
    secrets = [
        fixture.environ.get("KILLKRILL_LICENSE_KEY"),
        fixture.environ.get("KILLKRILL_API_KEY"),
    ]
    for secret in filter(None, secrets):
        assert secret not in text
    assert "hunter2" not in text  # the password in bad_url.env's URL


def test_the_many_errors_fixture_reports_more_than_ten_problems_at_once() -> None:
    fixture = load_fixture(FIXTURES / "bad_many.yaml")
    with pytest.raises(ConfigError) as caught:
        parse_config(fixture.file_text, fixture.environ)
    assert len(caught.value.problems) == len(fixture.expected) >= 10


@pytest.mark.parametrize("path", GOOD, ids=[path.name for path in GOOD])
def test_good_fixture_loads(path: Path) -> None:
    fixture = load_fixture(path)
    assert not fixture.expected
    parse_config(fixture.file_text, fixture.environ, source=path.name)
