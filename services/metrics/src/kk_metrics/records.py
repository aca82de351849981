"""Samples into receiver-shaped metric records, encoded once (sans-IO).

Every record is the JSON object of receiver-api.md's metric batch body::

    {"id": ..., "name": ..., "type": "counter"|"gauge", "value": ..., "labels": {...},
     "timestamp": "2026-11-26T10:00:00.123Z", "help": ...}

* Every sample gets the labels ``k8s_node``, ``k8s_cluster`` and ``source``, and those an
  ``extra_labels`` function gives (a pod's namespace, name and workload). A label of the
  same name from the source is kept as ``exported_<name>`` (Prometheus' rule for
  ``honor_labels: false``), so nothing the source said is lost or overwritten.
* Names and label keys are made valid for the receiver (``[a-zA-Z_:][a-zA-Z0-9_:]*``; label
  keys without ``:``): any other character becomes ``_``. UTF-8 names are legal in newer
  exposition formats, so this is not hypothetical.
* NaN and ±Inf are not JSON: such samples are dropped and counted (``dropped_non_finite``).
* The id is `metric_record_id` of the series (name + every label, ours included) and the
  timestamp string: the same sample re-sent after a restart has the same id. The labels
  are encoded once (`metric_series_json`), for the id and the record.
* A scrape that gives more than its sample limit fails as a whole (`SampleLimitExceeded`):
  half a scrape would look like series disappearing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import orjson

from kk_common.envelope import encode_record_json, metric_record_id, metric_series_json
from kk_metrics.samples import RawSample

__all__ = ["OUR_LABELS", "ExtraLabels", "SampleLimitExceeded", "ScrapeEncoder", "rfc3339_ms"]

OUR_LABELS = ("k8s_node", "k8s_cluster", "source")

ExtraLabels = Callable[[Mapping[str, str]], Mapping[str, str]]
"""A sample's source labels -> labels to add (the pod's, `kk_metrics.pods`)."""

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_VALID_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_VALID_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

_TIMESTAMP_CACHE_LIMIT = 4096
_KEY_CACHE_LIMIT = 4096
"""Distinct label keys (and metric names) remembered per scrape; a page that has more
(a label key per series) is still right, only slower."""


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
    """``2026-11-26T10:00:00.123Z``: UTC, milliseconds (what exposition timestamps carry)."""
    moment = datetime.fromtimestamp(round(seconds, 3), UTC)
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
        extra_labels: ExtraLabels | None = None,
    ) -> None:
        self._ours = {"k8s_node": node, "k8s_cluster": cluster, "source": source}
        self._extra = extra_labels
        self._scrape_stamp = rfc3339_ms(scrape_time_s)
        self._limit = sample_limit
        self._stamps: dict[float, str] = {}
        self._keys: dict[str, str] = {}
        """Source label key -> our key (made valid, ``exported_`` when it is one of ours)."""
        self._names: dict[str, str] = {}
        self._key_sets: dict[tuple[str, ...], bool] = {}
        """Label keys of a series -> whether every one is kept as it is."""
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

    def _key(self, key: str) -> str:
        fixed = _label_key(key)
        if fixed in self._ours:
            fixed = f"exported_{fixed}"
        if len(self._keys) < _KEY_CACHE_LIMIT:
            self._keys[key] = fixed
        return fixed

    def _kept_as_they_are(self, keys: tuple[str, ...]) -> bool:
        kept = all((self._keys.get(key) or self._key(key)) == key for key in keys)
        if len(self._key_sets) < _KEY_CACHE_LIMIT:
            self._key_sets[keys] = kept
        return kept

    def _labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        # The series of a family share their label keys: whether they are valid and none of
        # ours is decided once per key set, and then the labels are copied as they are.
        key_set = tuple(labels)
        kept = self._key_sets.get(key_set)
        if kept is None:
            kept = self._kept_as_they_are(key_set)
        if kept:
            merged = dict(labels)
        else:
            keys = self._keys
            merged = {keys.get(key) or self._key(key): value for key, value in labels.items()}
        if self._extra is not None:
            extra = self._extra(labels)
            for key in extra:
                if key in merged:  # the source's own label of that name is kept aside
                    merged[f"exported_{key}"] = merged.pop(key)
            merged.update(extra)
        merged.update(self._ours)
        return merged

    def _name(self, name: str) -> str:
        fixed = self._names.get(name)
        if fixed is None:
            fixed = _metric_name(name)
            if len(self._names) < _KEY_CACHE_LIMIT:
                self._names[name] = fixed
        return fixed

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
        name = self._name(name)
        merged = self._labels(labels)
        stamp = self._stamp(timestamp_s)
        labels_json = metric_series_json(merged)
        record_id = metric_record_id(name, merged, stamp, labels_json=labels_json)
        record: dict[str, object] = {
            "id": record_id,
            "name": name,
            "type": kind,
            "value": value,
            "labels": orjson.Fragment(labels_json),  # encoded once, for the id and here
            "timestamp": stamp,
        }
        if help_text:
            record["help"] = help_text
        try:
            return record_id, orjson.dumps(record)
        except TypeError:  # a lone surrogate in the name or help: the careful encoder
            record["labels"] = merged
            return record_id, encode_record_json(record)
