"""Prometheus text through prometheus-client's parser, flattened and typed for the receiver."""

from __future__ import annotations

import pytest

from kk_metrics.exposition import MalformedExposition, parse_exposition

PAGE = """\
# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05",path="/a\\"b\\\\c\\nd"} 24054
http_request_duration_seconds_bucket{le="+Inf",path="/a\\"b\\\\c\\nd"} 144320
http_request_duration_seconds_sum{path="/a\\"b\\\\c\\nd"} 53423
http_request_duration_seconds_count{path="/a\\"b\\\\c\\nd"} 144320
# HELP rpc_duration_seconds RPC latency.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 0.012
rpc_duration_seconds{quantile="0.99"} NaN
rpc_duration_seconds_sum 17560473
rpc_duration_seconds_count 2693
# TYPE requests_total counter
requests_total{code="200"} 1027 1395066363000
# TYPE temperature gauge
temperature -Inf
no_type_line 7
"""


def test_histograms_and_summaries_are_flattened_and_typed() -> None:
    samples = list(parse_exposition(PAGE.splitlines(keepends=True)))
    typed = [(s.name, s.kind) for s in samples]
    assert typed == [
        ("http_request_duration_seconds_bucket", "counter"),
        ("http_request_duration_seconds_bucket", "counter"),
        ("http_request_duration_seconds_sum", "counter"),
        ("http_request_duration_seconds_count", "counter"),
        ("rpc_duration_seconds", "gauge"),
        ("rpc_duration_seconds", "gauge"),
        ("rpc_duration_seconds_sum", "counter"),
        ("rpc_duration_seconds_count", "counter"),
        ("requests_total", "counter"),
        ("temperature", "gauge"),
        ("no_type_line", "gauge"),
    ]
    bucket = samples[0]
    assert bucket.labels == {"le": "0.05", "path": '/a"b\\c\nd'}
    assert bucket.help == "Request latency."
    assert samples[8].timestamp_s == 1395066363.0
    assert samples[0].timestamp_s is None


def test_a_malformed_line_names_its_number_and_text() -> None:
    page = "# TYPE ok gauge\nok 1\nbroken{a=b} 1\nlater 2\n"
    with pytest.raises(MalformedExposition, match=r"line 3: .*broken\{a=b\} 1"):
        list(parse_exposition(page.splitlines(keepends=True)))


def test_a_repeated_label_name_is_named_even_when_a_later_line_is_broken_too() -> None:
    # A family's label sets are split only when the family is complete (memory): the first
    # refused line is still the one named, as prometheus-client names it.
    page = '# TYPE f gauge\nf{a="1"} 1\nf{a="1",a="2"} 2\nf{a="3"} 3\nf{a=broken} 4\n'
    with pytest.raises(MalformedExposition, match=r'line 3: .*f\{a="1",a="2"\} 2'):
        list(parse_exposition(page.splitlines(keepends=True)))


def test_a_repeated_label_name_at_the_end_of_a_family_names_its_line() -> None:
    page = '# TYPE f gauge\nf{a="1"} 1\nf{b="1",b="2"} 2\n# TYPE g gauge\ng 1\n'
    with pytest.raises(MalformedExposition, match=r"line 3: .*Invalid labels"):
        list(parse_exposition(page.splitlines(keepends=True)))


def test_a_value_that_is_not_a_number_is_malformed() -> None:
    with pytest.raises(MalformedExposition, match="line 2"):
        list(parse_exposition(["# TYPE x counter\n", "x_total abc\n"]))


def test_long_label_sets_are_kept_whole() -> None:
    labels = ",".join(f'label_{i}="{"v" * 200}{i}"' for i in range(120))
    (sample,) = parse_exposition([f"wide{{{labels}}} 1\n"])
    assert len(sample.labels) == 120
    assert sample.labels["label_119"] == "v" * 200 + "119"
