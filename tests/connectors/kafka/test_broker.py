"""The Kafka connector against the run's real broker: events, commits, topics, reading to end."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from connectors.cloudevents import CloudEvent, EnvelopeError, KafkaRecord
from connectors.kafka import EventConsumer, EventProducer, KafkaConnectorError, KafkaSettings, \
    TopicPartition, TopicSpec, delete_topics, ensure_topics, read_topic

pytestmark = pytest.mark.kafka


def event(n: int, key: str = "DOC-1") -> CloudEvent:
    return CloudEvent(id=f"evt-{uuid.uuid4()}", source="urn:edoc:agency:000.00.00.G22",
                      type="vn.gov.edoc.document.outbound.v1", subject=key,
                      time=datetime(2024, 5, 17, 2, 30, n % 60, tzinfo=timezone.utc),
                      data={"documentId": key, "n": n},
                      extensions={"agency": "000.00.00.G22"})


def group() -> str:
    return f"test-group-{uuid.uuid4().hex[:8]}"


async def poll_until(consumer: EventConsumer, count: int, rounds: int = 100) -> list[KafkaRecord]:
    """Poll until `count` records arrived (or give up after `rounds` polls of up to 200 ms)."""
    records: list[KafkaRecord] = []
    for _ in range(rounds):
        records += await consumer.poll(timeout_ms=200)
        if len(records) >= count:
            break
    return records


async def test_event_round_trip_keeps_headers_key_and_data(
        kafka_settings: KafkaSettings, fresh_topic: str) -> None:
    sent = event(1, key="DOC-2024-0001")
    async with EventProducer(kafka_settings) as producer:
        position = await producer.publish(fresh_topic, sent, key="DOC-2024-0001")
    assert (position.topic, position.partition, position.offset) == (fresh_topic, 0, 0)

    async with EventConsumer(kafka_settings, [fresh_topic], group_id=group()) as consumer:
        [record] = await poll_until(consumer, 1)
    assert record.key == b"DOC-2024-0001"
    assert record.header("ce_id") == sent.id.encode()
    assert record.header("ce_type") == b"vn.gov.edoc.document.outbound.v1"
    assert record.header("content-type") == b"application/json"
    assert (record.topic, record.partition, record.offset) == (fresh_topic, 0, 0)
    assert CloudEvent.from_record(record) == sent


async def test_events_with_the_same_key_stay_in_one_partition_in_order(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    topic = await topic_factory(partitions=4)
    keys = [f"DOC-{i}" for i in range(6)]
    async with EventProducer(kafka_settings) as producer:
        # interleave keys and send concurrently: the idempotent producer keeps per-partition order
        await asyncio.gather(*(producer.publish(topic, event(n, key), key=key)
                               for n in range(10) for key in keys))

    records = await read_topic(kafka_settings, topic)
    assert len(records) == 60
    for key in keys:
        mine = [r for r in records if r.key == key.encode()]
        assert len({r.partition for r in mine}) == 1
        numbers = [CloudEvent.from_record(r).data["n"] for r in sorted(mine,
                                                                        key=lambda r: r.offset)]
        assert numbers == list(range(10))
    assert len({r.partition for r in records}) > 1  # the keys did spread


async def test_malformed_records_are_classified_and_consuming_continues(
        kafka_settings: KafkaSettings, fresh_topic: str) -> None:
    good = event(7)
    good_record = good.to_record(key="DOC-1")
    headers = dict(good_record.headers)
    bad = [
        (KafkaRecord(b"k1", b'{"plain": "json"}', ()), "event.envelope"),
        (KafkaRecord(b"k2", b"\x00\x01 not json",
                     tuple(good_record.headers)), "event.json"),
        (KafkaRecord(b"k3", good_record.value,
                     tuple((n, b"0.3" if n == "ce_specversion" else v)
                           for n, v in good_record.headers)), "event.envelope"),
        (KafkaRecord(b"k4", b"<xml/>", tuple({**headers,
                                             "content-type": b"text/xml"}.items())),
         "event.content_type"),
        (KafkaRecord(None, b"", ()), "event.envelope"),
    ]
    async with EventProducer(kafka_settings) as producer:
        for record, _ in bad:
            await producer.send_record(fresh_topic, record)
        await producer.publish(fresh_topic, good, key="DOC-1")

    async with EventConsumer(kafka_settings, [fresh_topic], group_id=group()) as consumer:
        records = await poll_until(consumer, len(bad) + 1)
        reasons: list[str] = []
        decoded: list[CloudEvent] = []
        for record in records:
            try:
                decoded.append(CloudEvent.from_record(record))
            except EnvelopeError as exc:
                reasons.append(exc.reason)
        await consumer.commit_processed(records)
        tp = TopicPartition(fresh_topic, 0)
        assert await consumer.committed(tp) == len(bad) + 1
    assert reasons == [reason for _, reason in bad]
    assert decoded == [good]


async def test_uncommitted_records_are_redelivered_to_the_next_consumer_in_the_group(
        kafka_settings: KafkaSettings, fresh_topic: str) -> None:
    sent = [event(n) for n in range(5)]
    async with EventProducer(kafka_settings) as producer:
        for e in sent:
            await producer.publish(fresh_topic, e, key="DOC-1")
    group_id = group()

    async with EventConsumer(kafka_settings, [fresh_topic], group_id=group_id) as first:
        records = await poll_until(first, 5)
        assert len(records) == 5
        await first.commit_processed(records[:2])  # only the first two were handled
    # "crash": the first consumer is gone with three records read but not committed

    async with EventConsumer(kafka_settings, [fresh_topic], group_id=group_id) as second:
        again = await poll_until(second, 3)
    assert [CloudEvent.from_record(r).id for r in again] == [e.id for e in sent[2:]]
    assert [r.offset for r in again] == [2, 3, 4]


async def test_explicit_offsets_are_committed_per_partition(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    topic = await topic_factory(partitions=2)
    async with EventProducer(kafka_settings) as producer:
        for n in range(4):
            await producer.publish(topic, event(n), partition=0)
            await producer.publish(topic, event(n), partition=1)
    group_id = group()
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async with EventConsumer(kafka_settings, [topic], group_id=group_id) as consumer:
        assert len(await poll_until(consumer, 8)) == 8
        await consumer.commit({p0: 3, p1: 1})
        assert (await consumer.committed(p0), await consumer.committed(p1)) == (3, 1)

    async with EventConsumer(kafka_settings, [topic], group_id=group_id) as consumer:
        again = await poll_until(consumer, 4)
    assert sorted((r.partition, r.offset) for r in again) == [(0, 3), (1, 1), (1, 2), (1, 3)]


async def test_rebalance_hooks_see_partitions_move_between_members(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    topic = await topic_factory(partitions=2)
    group_id = group()
    seen: dict[str, list[tuple[str, frozenset[TopicPartition]]]] = {"a": [], "b": []}

    def hooks(name: str) -> dict:
        async def assigned(partitions: frozenset[TopicPartition]) -> None:
            seen[name].append(("assigned", partitions))

        async def revoked(partitions: frozenset[TopicPartition]) -> None:
            seen[name].append(("revoked", partitions))
        return {"on_assigned": assigned, "on_revoked": revoked}

    fast = {"heartbeat_interval_ms": 100, "session_timeout_ms": 6000}
    both = frozenset({TopicPartition(topic, 0), TopicPartition(topic, 1)})
    async with EventConsumer(kafka_settings, [topic], group_id=group_id, **fast,
                             **hooks("a")) as a:
        for _ in range(100):
            await a.poll(timeout_ms=100)
            if a.assignment() == both:
                break
        assert seen["a"] == [("assigned", both)]
        async with EventConsumer(kafka_settings, [topic], group_id=group_id, **fast,
                                 **hooks("b")) as b:
            for _ in range(200):
                await asyncio.gather(a.poll(timeout_ms=100), b.poll(timeout_ms=100))
                if len(a.assignment()) == 1 and len(b.assignment()) == 1:
                    break
            assert a.assignment() | b.assignment() == both
            assert ("revoked", both) in seen["a"]
            assert seen["b"] and seen["b"][-1] == ("assigned", b.assignment())


async def test_commit_of_a_partition_not_owned_is_refused_as_rebalanced(
        kafka_settings: KafkaSettings, fresh_topic: str) -> None:
    async with EventConsumer(kafka_settings, [fresh_topic], group_id=group()) as consumer:
        for _ in range(50):
            await consumer.poll(timeout_ms=100)
            if consumer.assignment():
                break
        with pytest.raises(KafkaConnectorError) as caught:
            await consumer.commit({TopicPartition(fresh_topic, 5): 1})
    assert caught.value.reason == "kafka.commit.rebalanced"
    assert caught.value.transient is False


async def test_ensure_topics_creates_once_then_reports_existing(
        kafka_settings: KafkaSettings) -> None:
    name = f"test-ledger-{uuid.uuid4().hex[:12]}"
    specs = [TopicSpec(name, partitions=3, config={"cleanup.policy": "compact"})]
    try:
        assert await ensure_topics(kafka_settings, specs) == {name: "created"}
        assert await ensure_topics(kafka_settings, specs) == {name: "exists"}
        # concurrent callers (several gateway instances starting) all succeed
        results = await asyncio.gather(*(ensure_topics(kafka_settings, specs) for _ in range(3)))
        assert results == [{name: "exists"}] * 3
        # the compaction setting really is on the topic: asking for "delete" is a mismatch
        with pytest.raises(KafkaConnectorError) as caught:
            await ensure_topics(kafka_settings, [TopicSpec(name, 3,
                                                           {"cleanup.policy": "delete"})])
        assert caught.value.reason == "kafka.topic"
        assert "cleanup.policy=compact" in caught.value.message
    finally:
        await delete_topics(kafka_settings, [name])


async def test_ensure_topics_refuses_an_existing_topic_with_fewer_partitions(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    topic = await topic_factory(partitions=1)
    with pytest.raises(KafkaConnectorError) as caught:
        await ensure_topics(kafka_settings, [TopicSpec(topic, partitions=4)])
    assert caught.value.reason == "kafka.topic"
    assert "has 1 partitions, needs 4" in caught.value.message


async def test_ensure_topics_rejects_an_invalid_config_value(
        kafka_settings: KafkaSettings) -> None:
    name = f"test-bad-{uuid.uuid4().hex[:12]}"
    with pytest.raises(KafkaConnectorError) as caught:
        await ensure_topics(kafka_settings, [TopicSpec(name, config={"cleanup.policy": "never"})])
    assert caught.value.reason == "kafka.rejected"


async def test_read_topic_returns_everything_up_to_the_current_end(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    topic = await topic_factory(partitions=3)
    assert await read_topic(kafka_settings, topic) == []
    async with EventProducer(kafka_settings) as producer:
        for n in range(9):
            await producer.publish(topic, event(n, f"DOC-{n}"), key=f"DOC-{n}")
        first = await read_topic(kafka_settings, topic)
        await producer.publish(topic, event(9, "DOC-9"), key="DOC-9")
        second = await read_topic(kafka_settings, topic)
    assert sorted(CloudEvent.from_record(r).data["n"] for r in first) == list(range(9))
    assert sorted(CloudEvent.from_record(r).data["n"] for r in second) == list(range(10))
    assert second == sorted(second, key=lambda r: (r.partition, r.offset))


async def test_read_topic_of_a_missing_topic_is_a_topic_error(
        kafka_settings: KafkaSettings) -> None:
    with pytest.raises(KafkaConnectorError) as caught:
        await read_topic(kafka_settings, f"test-missing-{uuid.uuid4().hex[:12]}")
    assert caught.value.reason == "kafka.topic"


async def test_aborted_transaction_is_invisible_and_committed_one_is_read(
        kafka_settings: KafkaSettings, fresh_topic: str) -> None:
    transactional_id = f"test-tx-{uuid.uuid4().hex[:8]}"
    async with EventProducer(kafka_settings, transactional_id=transactional_id) as producer:
        async with producer.transaction():
            await producer.publish(fresh_topic, event(1))
            await producer.publish(fresh_topic, event(2))
        with pytest.raises(RuntimeError, match="changed my mind"):
            async with producer.transaction():
                await producer.publish(fresh_topic, event(3))
                raise RuntimeError("changed my mind")
        async with producer.transaction():
            await producer.publish(fresh_topic, event(4))

    committed = await read_topic(kafka_settings, fresh_topic)
    assert [CloudEvent.from_record(r).data["n"] for r in committed] == [1, 2, 4]
    everything = await read_topic(kafka_settings, fresh_topic, isolation_level="read_uncommitted")
    assert [CloudEvent.from_record(r).data["n"] for r in everything] == [1, 2, 3, 4]


async def test_input_offsets_commit_together_with_the_output_transaction(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    source, sink = await topic_factory("in"), await topic_factory("out")
    async with EventProducer(kafka_settings) as plain:
        for n in range(3):
            await plain.publish(source, event(n))
    group_id = group()
    tp = TopicPartition(source, 0)
    async with EventConsumer(kafka_settings, [source], group_id=group_id) as consumer, \
            EventProducer(kafka_settings, transactional_id=f"test-tx-{uuid.uuid4().hex[:8]}") \
            as producer:
        records = await poll_until(consumer, 3)
        with pytest.raises(RuntimeError):
            async with producer.transaction():
                await producer.publish(sink, event(100))
                await producer.send_offsets_to_transaction({tp: 3}, group_id)
                raise RuntimeError("crash before commit")
        assert await consumer.committed(tp) is None  # aborted: input not committed either
        async with producer.transaction():
            for record in records:
                data = CloudEvent.from_record(record).data
                await producer.publish(sink, event(data["n"] + 10))
            await producer.send_offsets_to_transaction({tp: 3}, group_id)
        # the coordinator writes the commit markers just after the transaction ends
        committed = None
        for _ in range(100):
            committed = await consumer.committed(tp)
            if committed is not None:
                break
            await asyncio.sleep(0.05)
        assert committed == 3
    out = await read_topic(kafka_settings, sink)
    assert [CloudEvent.from_record(r).data["n"] for r in out] == [10, 11, 12]
