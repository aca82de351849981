"""The fast path of the exposition parser reads every page exactly as prometheus-client does.

The reference is prometheus-client's own ``text_string_to_metric_families``, flattened the
way the service flattens it (the service's first parser): the same samples, names, kinds,
value types (int stays int), labels, timestamps and help, in the same order; and a page one
refuses, the other refuses too.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metrics_kubelet import cadvisor_page
from prometheus_client.parser import text_string_to_metric_families

from kk_metrics.exposition import (
    FAMILY_SAMPLES_HELD,
    MalformedExposition,
    _kind,
    parse_exposition,
)

KUBELET_PAGE = """\
# HELP apiserver_audit_event_total [ALPHA] Counter of audit events generated and sent to the audit backend.
# TYPE apiserver_audit_event_total counter
apiserver_audit_event_total 0
# HELP kubelet_pleg_relist_duration_seconds [ALPHA] Duration in seconds for relisting pods in PLEG.
# TYPE kubelet_pleg_relist_duration_seconds histogram
kubelet_pleg_relist_duration_seconds_bucket{le="0.005"} 12
kubelet_pleg_relist_duration_seconds_bucket{le="0.01"} 4006
kubelet_pleg_relist_duration_seconds_bucket{le="+Inf"} 4011
kubelet_pleg_relist_duration_seconds_sum 31.6
kubelet_pleg_relist_duration_seconds_count 4011
# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.3302e-05
go_gc_duration_seconds{quantile="1"} NaN
go_gc_duration_seconds_sum 0.0105
go_gc_duration_seconds_count 85
# HELP kubernetes_build_info [ALPHA] A metric with a constant '1' value.
# TYPE kubernetes_build_info gauge
kubernetes_build_info{build_date="2026-11-01T00:00:00Z",compiler="gc",git_version="v1.34.2",platform="linux/amd64"} 1
# HELP rest_client_requests_total [ALPHA] Number of HTTP requests, partitioned by status code, method, and host.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="10.0.0.1:6443",method="GET"} 1.7e+06
rest_client_requests_total{code="<error>",host="10.0.0.1:6443",method="GET"} 3
# TYPE storage_operation_errors counter
storage_operation_errors{volume_plugin="kubernetes.io/csi:ebs.csi.aws.com"} 2
# TYPE escaped gauge
escaped{path="C:\\\\temp\\"x\\"",note="line\\nbreak"} 1 1700000000000
escaped{path="tab\there",note="a"}\t7
spaced { a="1" , b = "2" }   3   1700000000001
trailing{a="1",} 4
exemplar_total{a="1"} 5 # {trace_id="abc"} 1.0
container_start_time_seconds{container="",id="/",image="",name="",namespace="",pod=""} 1.7e+09 1764000000000
# TYPE stateful stateset
stateful{stateful="a"} 1
# TYPE created_things counter
created_things_total 4
created_things_created 1.7e+09
# TYPE interleaved gauge
interleaved 1
other_family 2
interleaved 3
"""  # noqa: E501 - real kubelet lines are long


def reference(text: str) -> list[tuple[object, ...]]:
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            stamp = None if sample.timestamp is None else float(sample.timestamp)
            kind = _kind(family.type, family.name, sample.name)
            help_text = family.documentation
            out.append((sample.name, kind, sample.value, sample.labels, stamp, help_text))
    return [_comparable(sample) for sample in out]


def _comparable(sample: tuple[object, ...]) -> tuple[object, ...]:
    name, kind, value, labels, stamp, help_text = sample
    assert isinstance(value, int | float)
    # repr keeps int and float apart (1 vs 1.0) and makes NaN equal to itself.
    shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
    return name, kind, shown, labels, stamp, help_text


def ours(text: str) -> list[tuple[object, ...]]:
    return [_comparable(tuple(s)) for s in parse_exposition(text.splitlines(keepends=True))]


def outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except (MalformedExposition, ValueError, IndexError, KeyError, TypeError):
        return "refused"


def test_a_kubelet_page_with_every_kind_of_line_reads_as_prometheus_client_reads_it() -> None:
    expected = reference(KUBELET_PAGE)
    assert len(expected) == 26
    assert ours(KUBELET_PAGE) == expected


def test_a_cadvisor_page_reads_as_prometheus_client_reads_it() -> None:
    page = cadvisor_page(40)
    expected = reference(page)
    assert len(expected) == 40 * 12
    assert ours(page) == expected


@pytest.mark.parametrize(
    "line",
    [
        'dup{a="1",a="2"} 1',
        "noquote{a=1} 1",
        "bad_value 1_000",
        "bad_value 0x10",
        'x{a="1"} 1 2 3',
        '{__name__="named",a="1"} 4',
        'x{__reserved="1"} 1',
        'x{a="1"b="2"} 1',
        'x{a="v=\\"q\\""} 1',
        "# TYPE only_name",
        "# TYPE bad_type nonsense\nbad_type 1",
    ],
)
def test_odd_lines_are_read_or_refused_as_prometheus_client_does(line: str) -> None:
    text = f"# TYPE before gauge\nbefore 1\n{line}\nafter 2\n"
    assert outcome(ours, text) == outcome(reference, text)


_NAMES = st.sampled_from(["m", "m_total", "m_bucket", "m_sum", "m_count", "m_created", "n"])
_LABEL_NAMES = st.sampled_from(["a", "le", "quantile", "__x", "b_2", "1bad"])
_VALUE_TEXT = st.text(alphabet=st.sampled_from('ab =,{}"\\\n\t/é'), max_size=6)
_NUMBERS = st.sampled_from(["1", "-2", "1.5", "1e3", "NaN", "+Inf", "-Inf", "1_0", "0x1", "x"])
_TYPES = st.sampled_from(["counter", "gauge", "histogram", "summary", "untyped", "info", "?"])


@st.composite
def _lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["sample", "sample", "sample", "type", "help", "blank"]))
    if kind == "type":
        return f"# TYPE {draw(_NAMES)} {draw(_TYPES)}"
    if kind == "help":
        return f"# HELP {draw(_NAMES)} {draw(_VALUE_TEXT)}"
    if kind == "blank":
        return draw(st.sampled_from(["", "   ", "# a comment"]))
    labels = draw(st.lists(st.tuples(_LABEL_NAMES, _VALUE_TEXT), max_size=3))
    inner = ",".join(f'{key}="{value}"' for key, value in labels)
    label_part = draw(st.sampled_from(["", "{}", f"{{{inner}}}", f"{{{inner},}}"]))
    stamp = draw(st.sampled_from(["", " 1700000000000", "  17", " x"]))
    separator = draw(st.sampled_from([" ", "  ", "\t"]))
    return f"{draw(_NAMES)}{label_part}{separator}{draw(_NUMBERS)}{stamp}"


@settings(max_examples=400, deadline=None)
@given(st.lists(_lines(), min_size=1, max_size=8))
def test_generated_pages_read_or_fail_as_prometheus_client_does(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    assert outcome(ours, text) == outcome(reference, text)


def test_a_family_longer_than_what_is_held_reads_as_prometheus_client_reads_it() -> None:
    pods = FAMILY_SAMPLES_HELD // 3 + 20  # cadvisor_page: 3 series per pod in each family
    page = cadvisor_page(pods)
    expected = reference(page)
    assert len(expected) == pods * 12
    assert ours(page) == expected


def _long_family(after: str) -> str:
    samples = "".join(f'big{{i="{i}"}} {i}\n' for i in range(FAMILY_SAMPLES_HELD + 1))
    return f"# HELP big Old help.\n# TYPE big gauge\n{samples}{after}"


def test_a_late_help_line_applies_to_a_short_family_as_in_prometheus_client() -> None:
    page = '# TYPE small gauge\nsmall{i="1"} 1\n# HELP small Late help.\n'
    assert ours(page) == reference(page)
    assert ours(page)[0][-1] == "Late help."


def test_a_late_line_that_would_change_a_long_family_already_out_is_malformed() -> None:
    with pytest.raises(MalformedExposition, match=r"a HELP line for 'big' after more than"):
        list(parse_exposition(_long_family("# HELP big New help.\n").splitlines(True)))
    with pytest.raises(MalformedExposition, match=r"a TYPE line for 'big' after more than"):
        list(parse_exposition(_long_family("# TYPE big counter\n").splitlines(True)))


def test_a_late_line_that_changes_nothing_in_a_long_family_is_accepted() -> None:
    page = _long_family("# HELP big Old help.\n# TYPE big gauge\n")
    assert ours(page) == reference(page)


def test_a_label_value_that_starts_with_an_equals_sign_is_not_a_repeated_name() -> None:
    # Found by tests/reliability/test_input_fuzz_metrics.py: `a="="` was counted as two labels.
    page = '# TYPE f gauge\nf{a="=",b="=x"} 1\n'
    assert ours(page) == reference(page)
    assert [s[3] for s in ours(page)] == [{"a": "=", "b": "=x"}]
