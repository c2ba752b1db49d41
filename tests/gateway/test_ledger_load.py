"""The ledger is read again until it loads: a failed read must not leave it unready for good."""

from __future__ import annotations

import asyncio
import uuid

from connectors.cloudevents import KafkaRecord
from connectors.kafka import EventProducer, TopicSpec, delete_topics, ensure_topics
from gateway.ledger import INTENT, Ledger, LedgerEntry


async def test_a_ledger_whose_topic_is_missing_at_first_loads_once_it_is_there(kafka_settings) -> None:
    # The first reads fail (kafka.topic: the topic is not there yet, as a read fails while the
    # broker restarts); load keeps reading and returns once a read succeeds, with the entries.
    topic = f"ledger-load-{uuid.uuid4().hex[:12]}"
    ledger = Ledger(kafka_settings, topic, send=None)  # type: ignore[arg-type]
    ledger.invalidate()
    stopping = asyncio.Event()
    loading = asyncio.create_task(ledger.load(stopping, first_wait=0.05, max_wait=0.2))
    await asyncio.sleep(0.6)
    assert not loading.done()                     # still trying, not given up
    await ensure_topics(kafka_settings, [TopicSpec(topic, 1)])
    try:
        async with EventProducer(kafka_settings) as producer:
            entry = LedgerEntry(event_id="e-1", state=INTENT, flow="document",
                                sender="000.00.00.H41", document_id="d")
            await producer.send_record(topic, KafkaRecord(key=b"e-1", value=entry.to_bytes()))
        assert await asyncio.wait_for(loading, 30) is True
        await asyncio.wait_for(ledger.wait_ready(), 1)
        assert ledger.get("e-1") == entry
    finally:
        await delete_topics(kafka_settings, [topic])


async def test_loading_gives_up_when_the_gateway_stops(kafka_settings) -> None:
    ledger = Ledger(kafka_settings, f"ledger-none-{uuid.uuid4().hex[:12]}", send=None)  # type: ignore[arg-type]
    stopping = asyncio.Event()
    loading = asyncio.create_task(ledger.load(stopping, first_wait=0.05, max_wait=0.1))
    await asyncio.sleep(0.3)
    stopping.set()
    assert await asyncio.wait_for(loading, 10) is False
