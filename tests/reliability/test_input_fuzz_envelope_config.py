"""No IPC message and no config file can end a process with a traceback.

* The envelope: any message of each type, with any field replaced by any JSON value, is read
  or refused with an `EnvelopeError` that has a reason and a message; and every message a
  writer can build reads back as itself. (tests/shipper/test_ingest_fuzz.py covers random
  frames and deep records; random bytes seldom reach the per-type readers, these do.)
* The config: any YAML text, and the shipped full config with any value replaced by any
  value, is an `AgentConfig` or a `ConfigError` listing problems with a path and a message;
  and the secrets in the environment never appear in that message.

Profiles: ``ci`` (default) and ``full`` (``KK_TEST_PROFILE=full``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from kk_common.config import AgentConfig, ConfigError, parse_config
from kk_common.envelope import (
    Ack,
    AckStatus,
    ComponentStatus,
    EncodedRecords,
    EnvelopeError,
    MetricSample,
    RecordBatch,
    Telemetry,
    decode,
    encode,
    encode_record_json,
)
from tests.hypothesis_profiles import profile
from tests.reliability.input_strategies import (
    json_documents,
    key_paths,
    replace_all,
    yaml_scalars,
)

PROFILE = profile("kk-reliability-envelope-config", ci=150, full=3000)

REPO = Path(__file__).resolve().parents[2]
FULL_CONFIG = yaml.safe_load((REPO / "tests/common/config/good_full.yaml").read_text())
LICENSE_KEY = "PENG-S3NT-1NEL-K3YS-0000-0001"
API_KEY = "sentinel-api-key-never-shown-0001"
ENVIRONMENT = {
    "NODE_NAME": "node-a",
    "NODE_IP": "10.1.2.3",
    "KILLKRILL_LICENSE_KEY": LICENSE_KEY,
    "KILLKRILL_API_KEY": API_KEY,
    "KILLKRILL_LOG_RECEIVER_URL": "https://killkrill-log-receiver:8443",
    "KILLKRILL_METRICS_RECEIVER_URL": "https://killkrill-metrics-receiver:8443",
}


# -- the envelope ------------------------------------------------------------------------------

text = st.text(max_size=12)
ids = st.text(min_size=1, max_size=12).filter(lambda s: "\n" not in s)
labels = st.dictionaries(text, text, max_size=3)
finite = st.floats(allow_nan=False, allow_infinity=False)

acks = st.builds(Ack, ids, st.sampled_from(list(AckStatus)), text, st.integers(0, 2**31))
telemetry = st.builds(
    Telemetry,
    component=text,
    node=text,
    sent_at_unix=finite,
    status=st.builds(ComponentStatus, st.booleans(), text, st.lists(text, max_size=3).map(tuple)),
    samples=st.lists(
        st.builds(MetricSample, text, st.sampled_from(["counter", "gauge"]), finite, labels, text),
        max_size=3,
    ).map(tuple),
)
# JSON inside v1 records, integers within 64 bits: orjson reads a larger one as a float (a
# v1 writer's -2**63-1 comes back as -9.223372036854776e+18). Left as it is: v1 is the previous
# producers' form and their records carry no such numbers.
record_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=15,
)
record_batches = st.builds(
    RecordBatch,
    text,
    text,
    st.sampled_from(["logs", "metrics"]),
    st.lists(st.builds(lambda i, extra: {"id": i, "extra": extra}, ids, record_values), max_size=3),
)


@st.composite
def encoded_records(draw: st.DrawFn) -> EncodedRecords:
    record_ids = draw(st.lists(ids, max_size=4))
    sources = draw(st.lists(text, min_size=1, max_size=3))
    source = st.integers(0, len(sources) - 1)
    positions = [(draw(source), draw(st.integers(0, 2**40))) for _ in record_ids]
    claims = [
        (s, start, start + draw(st.integers(0, 1000)))
        for s, start in draw(st.lists(st.tuples(source, st.integers(0, 2**40)), max_size=3))
    ]
    bodies = b"".join(
        encode_record_json({"id": i, "message": draw(text)}) + b"\n" for i in record_ids
    )
    return EncodedRecords(
        draw(text), draw(text), draw(st.sampled_from(["logs", "metrics"])),
        record_ids, bodies, sources, positions, claims,
    )  # fmt: skip


messages = acks | telemetry | record_batches | encoded_records()


@PROFILE
@given(messages)
def test_every_message_a_writer_builds_reads_back_as_itself(message: Any) -> None:
    decoded = decode(encode(message))
    assert type(decoded) is type(message)
    if isinstance(message, EncodedRecords):
        assert decoded.bodies == message.bodies
        assert list(decoded.ids) == list(message.ids)
        assert list(decoded.positions) == list(message.positions)
        assert list(decoded.claims) == list(message.claims)
        assert list(decoded.sources) == list(message.sources)
    else:
        assert decoded == message


@st.composite
def damaged_frames(draw: st.DrawFn) -> list[bytes]:
    """A message's frames with up to three fields of its payload replaced by any JSON, and a
    v2 records frame cut and extended anywhere."""
    frames = encode(draw(messages))
    payload = orjson.loads(frames[1])
    replacements = st.tuples(st.sampled_from(key_paths(payload)), json_documents)
    payload = replace_all(payload, draw(st.lists(replacements, min_size=1, max_size=3)))
    frames[1] = json.dumps(payload).encode()
    if len(frames) == 3 and draw(st.booleans()):
        cut = draw(st.integers(0, len(frames[2])))
        frames[2] = frames[2][:cut] + draw(st.binary(max_size=8))
    return frames


@PROFILE
@given(damaged_frames())
@example(  # "samples": null once raised TypeError out of decode and ended health's reader
    [
        b"kk.v1",
        b'{"type":"telemetry","component":"c","node":"n","sent_at_unix":1,'
        b'"status":{"ready":true},"samples":null}',
    ]
)
def test_any_field_of_any_message_replaced_by_any_json_is_read_or_refused(
    frames: list[bytes],
) -> None:
    try:
        decode(frames)
    except EnvelopeError as refused:  # anything else would end the reading process
        assert refused.reason in {"malformed", "unsupported_version"}
        assert str(refused)


# -- the config file ---------------------------------------------------------------------------


def assert_clear_config_error(error: ConfigError) -> None:
    shown = str(error)
    assert error.problems
    for problem in error.problems:
        assert problem.path and problem.message, problem
    assert LICENSE_KEY not in shown and API_KEY not in shown, shown


def load(text: str, environ: dict[str, str] = ENVIRONMENT) -> AgentConfig | ConfigError:
    try:
        return parse_config(text, environ, source="/etc/killkrill/config.yaml")
    except ConfigError as error:  # anything else would be a traceback at startup
        assert_clear_config_error(error)
        return error


yaml_text = st.lists(
    yaml_scalars | st.text(max_size=10) | st.sampled_from(["\n", ": ", "  ", "- ", "#"]),
    max_size=20,
).map("".join)


@PROFILE
@given(yaml_text | st.text(max_size=200))
@example("agent: &a {node_name: x}\nlogs: *a\n")
@example("agent:\n  node_name: !!binary aGVsbG8=\n")
@example("a: &x [*x]\n")  # a YAML alias that refers to itself
@example("? [a, b]\n: 1\n")  # an unhashable (list) key
@example("agent: {log_level: {a: 1}}\n")
def test_any_yaml_text_is_a_config_or_a_clear_error(text: str) -> None:
    load(text)


odd_values = (
    json_documents
    | yaml_scalars
    | st.sampled_from(
        [-1, 0, 2**63, 1e400, "${KILLKRILL_LICENSE_KEY}", "${NOT_SET}", "$$", "10 parsecs", "1e3ms"]
    )
)


@PROFILE
@given(
    st.lists(st.tuples(st.sampled_from(key_paths(FULL_CONFIG)), odd_values), min_size=1, max_size=4)
)
def test_the_full_config_with_any_values_replaced_is_a_config_or_a_clear_error(
    replacements: list[tuple[tuple, object]],
) -> None:
    load(yaml.safe_dump(replace_all(FULL_CONFIG, replacements)))


@PROFILE
@given(
    st.dictionaries(
        st.sampled_from(
            ["NODE_NAME", "NODE_IP", "CLUSTER_NAME", "LOG_LEVEL", "METRICS_INTERVAL",
             "KILLKRILL_LOG_RECEIVER_URL", "KILLKRILL_METRICS_RECEIVER_URL", "KILLKRILL_IPC_DIR",
             "KILLKRILL_STATE_DIR", "KILLKRILL_LOG_RECIEVER_URL"]
        ),
        st.text(max_size=30) | yaml_scalars,
        max_size=4,
    ),
    st.sampled_from([LICENSE_KEY, "PENG-S3NT-1NEL-" + "x" * 40, "S3NT1NEL-not-a-key"]),
)  # fmt: skip
def test_any_environment_is_a_config_or_a_clear_error_that_never_shows_a_secret(
    variables: dict[str, str], license_key: str
) -> None:
    environ = {**ENVIRONMENT, **variables, "KILLKRILL_LICENSE_KEY": license_key}
    result = load(yaml.safe_dump(FULL_CONFIG), environ)
    if isinstance(result, ConfigError):
        assert license_key not in str(result)
