"""${VAR} expansion: values only, defaults, $$, and errors that name the key path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kk_common.config import ConfigError, parse_config
from kk_common.config.expand import expand_variables

SECRETS = frozenset({"KILLKRILL_LICENSE_KEY"})


def expand(document: object, **environ: str) -> tuple[object, list[str]]:
    result, report = expand_variables(document, environ, forbidden=SECRETS)
    return result, [str(problem) for problem in report.problems]


def test_a_set_variable_is_substituted() -> None:
    assert expand({"url": "https://${HOST}:8443"}, HOST="rx") == ({"url": "https://rx:8443"}, [])


def test_the_default_is_used_when_the_variable_is_unset_or_empty() -> None:
    document = {"a": "${MISSING:-fallback}", "b": "${EMPTY:-fallback}", "c": "${SET:-fallback}"}
    expanded, problems = expand(document, EMPTY="", SET="value")
    assert expanded == {"a": "fallback", "b": "fallback", "c": "value"}
    assert problems == []


def test_an_empty_default_is_allowed() -> None:
    assert expand({"a": "x${MISSING:-}y"}) == ({"a": "xy"}, [])


def test_a_set_but_empty_variable_without_default_expands_to_empty() -> None:
    assert expand({"a": "[${EMPTY}]"}, EMPTY="") == ({"a": "[]"}, [])


def test_double_dollar_is_a_literal_dollar_and_is_not_expanded_further() -> None:
    assert expand({"a": "cost $$5 and $${HOME}"}, HOME="/root") == (
        {"a": "cost $5 and ${HOME}"},
        [],
    )


def test_a_lone_dollar_not_followed_by_a_name_is_kept() -> None:
    assert expand({"a": "5$ or $ or $1"}) == ({"a": "5$ or $ or $1"}, [])


def test_an_undefined_variable_is_an_error_naming_the_key_path_and_the_variable() -> None:
    _, problems = expand({"metrics": {"sources": [{"url": "https://${KUBELET_HOST}"}]}})
    assert problems == [
        "metrics.sources[0].url: ${KUBELET_HOST} is not set and has no default "
        "(write ${KUBELET_HOST:-value} for one)"
    ]


def test_a_name_without_braces_is_an_error() -> None:
    _, problems = expand({"a": "$HOME/x"}, HOME="/root")
    assert problems == ["a: '$HOME' is not expanded: write '${HOME}' (or '$$' for '$')"]


@pytest.mark.parametrize("text", ["${", "${A", "${1A}", "${A-x}", "${A:?x}", "${}"])
def test_malformed_references_are_errors(text: str) -> None:
    _, problems = expand({"a": text}, A="set")
    assert len(problems) == 1
    assert problems[0].startswith("a: ")


def test_expansion_cannot_change_the_structure_of_the_document() -> None:
    expanded, _ = expand({"logs": {"paths": ["${P}"]}}, P="[/a, /b]\nevil: true")
    assert expanded == {"logs": {"paths": ["[/a, /b]\nevil: true"]}}


def test_keys_and_non_strings_are_not_expanded() -> None:
    document = {"${KEY}": 5, "list": [True, None, 1.5]}
    assert expand(document, KEY="x") == (document, [])


def test_secret_variables_cannot_be_referenced() -> None:
    _, problems = expand({"a": "${KILLKRILL_LICENSE_KEY}"}, KILLKRILL_LICENSE_KEY="PENG-X")
    assert problems == [
        "a: ${KILLKRILL_LICENSE_KEY} is a secret and cannot be used in the config file"
    ]


def test_expanded_strings_are_validated_like_literals() -> None:
    """A number or a flag coming from a variable is accepted as text."""
    text = "logs:\n  output:\n    batch_size: ${BATCH:-250}\n  enabled: ${LOGS_ON}\n"
    environ = {
        "NODE_NAME": "node-a",
        "NODE_IP": "10.0.0.1",
        "KILLKRILL_LICENSE_KEY": "PENG-AAAA-BBBB-CCCC-DDDD-EEEE",
        "KILLKRILL_LOG_RECEIVER_URL": "https://logs",
        "KILLKRILL_METRICS_RECEIVER_URL": "https://metrics",
        "LOGS_ON": "false",
    }
    config = parse_config(text, environ)
    assert (config.logs.output.batch_size, config.logs.enabled) == (250, False)


def test_a_failed_expansion_is_reported_once_not_again_as_a_bad_value() -> None:
    environ = {
        "NODE_NAME": "node-a",
        "NODE_IP": "10.0.0.1",
        "KILLKRILL_LICENSE_KEY": "PENG-AAAA-BBBB-CCCC-DDDD-EEEE",
        "KILLKRILL_METRICS_RECEIVER_URL": "https://metrics",
    }
    with pytest.raises(ConfigError) as caught:
        parse_config("logs:\n  output:\n    url: ${LOG_URL}\n", environ)
    assert [str(problem) for problem in caught.value.problems] == [
        "logs.output.url: ${LOG_URL} is not set and has no default "
        "(write ${LOG_URL:-value} for one)"
    ]


def test_a_variable_overriding_a_failed_expansion_is_still_validated() -> None:
    environ = {
        "NODE_NAME": "node-a",
        "NODE_IP": "10.0.0.1",
        "KILLKRILL_LICENSE_KEY": "PENG-AAAA-BBBB-CCCC-DDDD-EEEE",
        "KILLKRILL_LOG_RECEIVER_URL": "https://logs",
        "KILLKRILL_METRICS_RECEIVER_URL": "https://metrics",
        "METRICS_INTERVAL": "30",
    }
    with pytest.raises(ConfigError) as caught:
        parse_config("metrics:\n  interval: ${SCRAPE_EVERY}\n", environ)
    assert [str(problem) for problem in caught.value.problems] == [
        "metrics.interval: ${SCRAPE_EVERY} is not set and has no default "
        "(write ${SCRAPE_EVERY:-value} for one)",
        "METRICS_INTERVAL: expected a duration with a unit (ms, s, m or h), got '30'; "
        "write e.g. '30s'",
    ]


@given(st.text())
def test_doubling_every_dollar_gives_back_the_literal_text(text: str) -> None:
    assert expand({"a": text.replace("$", "$$")}) == ({"a": text}, [])


@given(st.text(alphabet=st.characters(blacklist_characters="$")))
def test_text_without_a_dollar_is_unchanged(text: str) -> None:
    assert expand({"a": text, "b": [text]}) == ({"a": text, "b": [text]}, [])
