"""Kubernetes events into log records, each occurrence once (sans-IO)."""

from __future__ import annotations

import json

from cluster_apiserver import make_event

from kk_metrics.cluster.events import Checkpoint, EventTracker, event_batch

NOW = 1_800_000_000.0


def tracker(node: str = "node-a") -> EventTracker:
    return EventTracker(cluster="prod", node=node)


def test_an_event_becomes_a_log_record_with_its_reason_object_count_and_times() -> None:
    event = make_event("checkout.1", count=3)

    record = tracker().record_for(event, NOW)

    assert record is not None
    body = json.loads(record.body)
    assert body["id"] == record.id
    assert body["message"] == "Back-off restarting failed container app"
    assert body["log_level"] == "warn"
    assert body["timestamp"] == "2026-12-02T10:00:00.000000Z"
    assert body["service_name"] == "kubernetes-events"
    assert body["hostname"] == "node-a"
    labels = body["labels"]
    assert labels["k8s_event_reason"] == "BackOff"
    assert labels["k8s_event_type"] == "Warning"
    assert labels["k8s_event_count"] == "3"
    assert labels["k8s_event_first_time"] == "2026-12-02T09:00:00.000000Z"
    assert labels["k8s_event_last_time"] == "2026-12-02T10:00:00.000000Z"
    assert (labels["k8s_object_kind"], labels["k8s_object_name"]) == ("Pod", "checkout-7d9f-abcde")
    assert labels["k8s_namespace"] == "shop" and labels["k8s_cluster"] == "prod"
    assert not any("." in key for key in labels)


def test_each_occurrence_is_sent_once_and_a_new_count_is_a_new_record() -> None:
    events = tracker()
    event = make_event("checkout.1", count=1)
    first = events.record_for(event, NOW)
    # The same occurrence again: a relist, a watch replay, an update of lastTimestamp only.
    again = events.record_for(event, NOW)
    touched = events.record_for({**event, "deprecatedLastTimestamp": "2026-12-02T10:00:05Z"}, NOW)
    repeated = events.record_for({**event, "deprecatedCount": 2}, NOW)
    stale = events.record_for(event, NOW)  # count 1 seen after count 2

    assert first is not None and repeated is not None
    assert (again, touched, stale) == (None, None, None)
    assert repeated.id != first.id and repeated.count == 2


def test_every_agent_gives_an_occurrence_the_same_id() -> None:
    event = make_event("checkout.1", count=4)
    here = tracker("node-a").record_for(event, NOW)
    there = tracker("node-b").record_for(event, NOW + 60)
    assert here is not None and there is not None
    assert here.id == there.id


def test_after_an_expired_checkpoint_only_events_since_its_time_are_sent() -> None:
    events = tracker()
    old = make_event("old", last="2026-12-02T09:59:59Z")
    new = make_event("new", last="2026-12-02T10:00:00Z")
    since = Checkpoint("12345", 1_796_205_600.0).time_s  # 2026-12-02T10:00:00Z

    assert events.record_for(old, NOW, since_s=since) is None
    assert events.record_for(new, NOW, since_s=since) is not None
    # The old one is remembered as sent: its next count is new, that one is not.
    assert events.record_for(old, NOW) is None
    assert events.record_for({**old, "deprecatedCount": 2}, NOW) is not None


def test_normal_events_are_info_and_overlong_messages_say_they_were_cut() -> None:
    event = make_event("big", type_="Normal", reason="Pulled", message="x" * 12_000)
    record = tracker().record_for(event, NOW)
    assert record is not None
    body = json.loads(record.body)
    assert body["log_level"] == "info"
    assert len(body["message"]) == 10_000
    assert body["labels"]["truncated_from"] == "12000"


def test_a_batch_claims_exactly_its_occurrences_for_the_shippers_dedup() -> None:
    events = tracker()
    a, b = make_event("a", count=2), make_event("b")
    records = [events.record_for(a, NOW), events.record_for(b, NOW)]
    records.append(events.record_for({**a, "deprecatedCount": 3}, NOW))
    assert all(r is not None for r in records)

    batch = event_batch(records, producer="metrics@node-a", batch_id="metrics@node-a:events@1")  # type: ignore[arg-type]

    assert batch.stream == "logs"
    assert batch.ids == [r.id for r in records]  # type: ignore[union-attr]
    uid_a, uid_b = a["metadata"]["uid"], b["metadata"]["uid"]
    assert batch.sources == [f"k8s-event:{uid_a}", f"k8s-event:{uid_b}"]
    assert batch.positions == [(0, 2), (1, 1), (0, 3)]
    assert batch.claims == [(0, 2, 3), (1, 1, 2), (0, 3, 4)]
    assert [json.loads(body)["id"] for body in batch.record_bodies()] == batch.ids


def test_a_checkpoint_survives_the_lease_annotation() -> None:
    checkpoint = Checkpoint("98765", 1_796_205_600.25)
    assert Checkpoint.decode(checkpoint.encode()) == checkpoint
    assert Checkpoint.decode("") is None
    assert Checkpoint.decode("12 not-a-time") is None


def test_an_event_in_the_core_v1_form_reads_the_same() -> None:
    modern = make_event("checkout.1", count=2)
    core = {
        "metadata": modern["metadata"],
        "involvedObject": modern["regarding"],
        "reason": modern["reason"],
        "message": modern["note"],
        "type": modern["type"],
        "count": 2,
        "firstTimestamp": modern["deprecatedFirstTimestamp"],
        "lastTimestamp": modern["deprecatedLastTimestamp"],
        "source": modern["deprecatedSource"],
    }
    from_modern = tracker().record_for(modern, NOW)
    from_core = tracker().record_for(core, NOW)
    assert from_modern is not None and from_core is not None
    assert from_core.body == from_modern.body
