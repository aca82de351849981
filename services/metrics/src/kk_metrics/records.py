"""Samples into receiver-shaped metric records, encoded once (sans-IO).

Every record is the JSON object of receiver-api.md's metric batch body::

    {"id": ..., "name": ..., "type": "counter"|"gauge", "value": ..., "labels": {...},
     "timestamp": "2026-11-26T10:00:00.123Z", "help": ...}

* Every sample gets the labels ``k8s_node``, ``k8s_cluster`` and ``source``. A label of the
  same name from the source is kept as ``exported_<name>`` (Prometheus' rule for
  ``honor_labels: false``), so nothing the source said is lost or overwritten.
* Names and label keys are made valid for the receiver (``[a-zA-Z_:][a-zA-Z0-9_:]*``; label
  keys without ``:``): any other character becomes ``_``. UTF-8 names are legal in newer
  exposition formats, so this is not hypothetical.
* NaN and ±Inf are not JSON: such samples are dropped and counted (``dropped_non_finite``).
* The id is `metric_record_id` of the series (name + every label, ours included) and the
  timestamp string: the same sample re-sent after a restart has the same id.
* A scrape that gives more than its sample limit fails as a whole (`SampleLimitExceeded`):
  half a scrape would look like series disappearing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from kk_common.envelope import encode_record_json, metric_record_id
from kk_metrics.samples import RawSample

__all__ = ["OUR_LABELS", "SampleLimitExceeded", "ScrapeEncoder", "rfc3339_ms"]

OUR_LABELS = ("k8s_node", "k8s_cluster", "source")

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_VALID_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_VALID_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

_TIMESTAMP_CACHE_LIMIT = 4096


class SampleLimitExceeded(ValueError):
    """The scrape gave more samples than its limit; none of them is shipped."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"more than {limit:,} samples in one scrape (sample_limit): the scrape is dropped "
            "as a whole; raise metrics.sample_limit or the source's sample_limit if this is "
            "expected"
        )
        self.limit = limit


def rfc3339_ms(seconds: float) -> str:
    """``2026-11-26T10:00:00.123Z``: UTC, milliseconds (what exposition timestamps carry).

    Raises ValueError for a time no date can show: a page's ``1e400`` or ``-1e20`` would
    otherwise raise OverflowError or OSError, which a scrape does not expect from its data.
    """
    try:
        moment = datetime.fromtimestamp(round(seconds, 3), UTC)
    except (OverflowError, OSError):
        raise ValueError(f"timestamp {seconds!r} s is out of the range of dates") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _metric_name(name: str) -> str:
    if _VALID_NAME.fullmatch(name):
        return name
    fixed = _INVALID_NAME_CHARS.sub("_", name)
    return fixed if fixed and not fixed[0].isdigit() else f"_{fixed}"


def _label_key(key: str) -> str:
    if _VALID_LABEL.fullmatch(key):
        return key
    fixed = _INVALID_LABEL_CHARS.sub("_", key)
    return fixed if fixed and not fixed[0].isdigit() else f"_{fixed}"


class ScrapeEncoder:
    """Turns the samples of one scrape of one source into (id, JSON bytes) pairs."""

    def __init__(
        self,
        *,
        source: str,
        node: str,
        cluster: str,
        scrape_time_s: float,
        sample_limit: int,
    ) -> None:
        self._ours = {"k8s_node": node, "k8s_cluster": cluster, "source": source}
        self._scrape_stamp = rfc3339_ms(scrape_time_s)
        self._limit = sample_limit
        self._stamps: dict[float, str] = {}
        self.accepted = 0
        self.dropped_non_finite = 0

    def _stamp(self, timestamp_s: float | None) -> str:
        if timestamp_s is None:
            return self._scrape_stamp
        stamp = self._stamps.get(timestamp_s)
        if stamp is None:
            if len(self._stamps) >= _TIMESTAMP_CACHE_LIMIT:
                self._stamps.clear()
            stamp = self._stamps[timestamp_s] = rfc3339_ms(timestamp_s)
        return stamp

    def _labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        merged: dict[str, str] = {}
        for key, value in labels.items():
            key = _label_key(key)
            if key in self._ours:
                key = f"exported_{key}"
            merged[key] = value
        merged.update(self._ours)
        return merged

    def encode(self, sample: RawSample) -> tuple[str, bytes] | None:
        """The sample's record id and JSON; None when it is dropped (NaN, ±Inf).

        Raises `SampleLimitExceeded` on the first sample over the limit.
        """
        name, kind, value, labels, timestamp_s, help_text = sample
        if not math.isfinite(value):
            self.dropped_non_finite += 1
            return None
        if self.accepted >= self._limit:
            raise SampleLimitExceeded(self._limit)
        self.accepted += 1
        name = _metric_name(name)
        merged = self._labels(labels)
        stamp = self._stamp(timestamp_s)
        record_id = metric_record_id(name, merged, stamp)
        record: dict[str, object] = {
            "id": record_id,
            "name": name,
            "type": kind,
            "value": value,
            "labels": merged,
            "timestamp": stamp,
        }
        if help_text:
            record["help"] = help_text
        return record_id, encode_record_json(record)
