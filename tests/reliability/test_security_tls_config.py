"""Certificate verification cannot be turned off by accident: only an explicit true for
``insecure_skip_verify`` (per output, or per metrics source) turns it off, and that is
said at startup; misspellings, misplacements, nulls, unset variables and values that are
neither true nor false are errors; no environment variable can do it; and every place in
the services' code that disables verification sits under that one setting.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest

from kk_common.config import ConfigError, config_notes, parse_config
from kk_metrics.fetch import _tls_context

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    "NODE_NAME": "node-a",
    "NODE_IP": "10.0.0.1",
    "KILLKRILL_LICENSE_KEY": "PENG-A1B2-C3D4-E5F6-G7H8-J9K0",
    "KILLKRILL_LOG_RECEIVER_URL": "https://rx:8443",
    "KILLKRILL_METRICS_RECEIVER_URL": "https://rx:8443",
}


def logs_tls(value: str) -> str:
    return f"logs: {{output: {{tls: {{insecure_skip_verify: {value}}}}}}}\n"


@pytest.mark.parametrize("text", ["", logs_tls("false"), logs_tls("'false'"), logs_tls("no"),
                                  logs_tls("'off'"), logs_tls("0")])  # fmt: skip
def test_verification_stays_on_by_default_and_for_every_way_of_writing_false(text: str) -> None:
    config = parse_config(text, ENVIRONMENT)
    assert config.logs.output.tls.insecure_skip_verify is False
    assert config.metrics.output.tls.insecure_skip_verify is False
    assert all(not source.insecure_skip_verify for source in config.metrics.sources)
    assert not [note for note in config_notes(config) if "insecure" in note.path]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (logs_tls("null"), "expected true or false, got nothing"),
        (logs_tls(""), "expected true or false, got nothing"),
        (logs_tls("maybe"), "expected true or false, got 'maybe'"),
        (logs_tls("disabled"), "expected true or false"),
        (logs_tls("2"), "expected true or false, got 2"),
        (logs_tls("'${KK_INSECURE}'"), "${KK_INSECURE} is not set"),
        (
            "logs: {output: {tls: {insecure_skip_verfy: true}}}",
            "did you mean 'insecure_skip_verify'",
        ),
        ("logs: {output: {insecure_skip_verify: true}}", "unknown key"),
        ("logs: {output: {tls: {verify: false}}}", "unknown key"),
        ("logs: {output: {tls: false}}", "expected a mapping"),
        ("logs: {output: {tls: null}}", "expected a mapping"),
        ("metrics: {sources: [{name: k, url: 'https://k:10250/metrics', insecure: 1}]}", "unknown"),
    ],
)
def test_anything_but_an_explicit_boolean_is_an_error_not_a_silent_default(
    text: str, complaint: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(text, ENVIRONMENT)
    assert complaint in str(refused.value)


@pytest.mark.parametrize(
    "variable",
    [
        "KILLKRILL_INSECURE_SKIP_VERIFY",
        "KILLKRILL_TLS_INSECURE",
        "KILLKRILL_LOGS_OUTPUT_TLS_INSECURE_SKIP_VERIFY",
    ],
)
def test_no_environment_variable_turns_verification_off(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable}: unknown KILLKRILL_"):
        parse_config("", {**ENVIRONMENT, variable: "true"})


def test_an_explicit_true_turns_it_off_and_is_said_at_startup() -> None:
    config = parse_config(
        logs_tls("true") + "metrics: {sources: [{name: k, url: 'https://10.0.0.1:10250/metrics', "
        "insecure_skip_verify: true}]}\n",
        ENVIRONMENT,
    )
    assert config.logs.output.tls.insecure_skip_verify is True
    assert config.metrics.output.tls.insecure_skip_verify is False  # per output, not global
    said = {note.path for note in config_notes(config)}
    assert {
        "logs.output.tls.insecure_skip_verify",
        "metrics.sources[0].insecure_skip_verify",
    } <= said


def test_a_plaintext_fallback_behind_https_needs_its_own_explicit_setting() -> None:
    text = "logs: {output: {url: 'https://rx:8443', fallback_url: 'http://rx:8080'}}\n"
    with pytest.raises(ConfigError, match="would send the license key unencrypted"):
        parse_config(text, ENVIRONMENT)


def test_metrics_sources_verify_by_default() -> None:
    config = parse_config("", ENVIRONMENT)
    assert config.metrics.sources, "the default kubelet sources"
    for source in config.metrics.sources:
        # The service account's CA is not on this machine: the system store stands in.
        context = _tls_context(source.model_copy(update={"ca_file": None}))
        assert isinstance(context, ssl.SSLContext), source.name
        assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


DISABLING = re.compile(
    r"CERT_NONE|check_hostname\s*=\s*False|verify\s*=\s*False|_create_unverified_context"
    r"|verify_ssl\s*=\s*False|return False"
)


def test_every_line_that_disables_verification_is_guarded_by_insecure_skip_verify() -> None:
    """A static look at the services' code: each construct that turns verification off
    (or a TLS helper's ``return False``, httpx's "do not verify") has the setting's name
    in the three lines before it."""
    found = []
    for path in sorted(REPO.glob("services/*/src/**/*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            code = line.split("#", 1)[0]
            if not DISABLING.search(code):
                continue
            if "return False" in code and "tls" not in "".join(lines[max(0, number - 3) : number]):
                continue  # an ordinary boolean function
            guarded = any(
                "insecure_skip_verify" in before for before in lines[max(0, number - 3) : number]
            )
            found.append((f"{path.relative_to(REPO)}:{number + 1}", guarded))
    assert found, "the scan sees the known guarded places"
    assert [place for place, guarded in found if not guarded] == []
