"""Outbound batches: a lane's queued records handled together keep every promise of one by one.

`OutboundPipeline.handle_batch` writes a batch's ledger intents in one acknowledged round before
any send and its outcomes in one round after; these tests hand it batches with the real
collaborators (tests/gateway/outbound_harness.py: the run's Kafka, the axis simulator over
HTTP, signing workers) and check what reached the axis and Kafka.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.cloudevents import KafkaRecord
from gateway.ledger import INTENT, SENT
from tests.gateway.outbound_harness import (H55, SO_NOI_VU, OutboundHarness, attachment,
                                            document, kinds, send_event)


@pytest.fixture(scope="module")
def harness(kafka_settings, tmp_path_factory) -> OutboundHarness:
    h = OutboundHarness(tmp_path_factory.mktemp("outbound-batches"), kafka_settings)
    yield h
    h.close()


def valid(harness: OutboundHarness, sender: str = H55, *, id: str | None = None,
          number: str | None = None) -> KafkaRecord:
    ref = attachment(harness, sender, "to-trinh.pdf", b"%PDF-1.4 batch test\n")
    data = document(sender, number=number or uuid.uuid4().hex[:8], attachments=[ref])
    return harness.record(send_event(data, id=id or uuid.uuid4().hex))


def invalid(harness: OutboundHarness) -> KafkaRecord:
    return harness.record(send_event({"message_header": {"from": {"organ_id": H55}}}))


def handle_batch(harness: OutboundHarness, records: list[KafkaRecord]) -> None:
    harness.run(harness.pipeline.handle_batch(records))


def event_ids(records: list[KafkaRecord]) -> list[str]:
    return [r.header("ce_id").decode() for r in records]


def test_every_intent_of_a_batch_is_acknowledged_before_its_first_send(
        harness: OutboundHarness) -> None:
    calls: list[tuple[str, str]] = []
    ledger, axis = harness.ctx.ledger, harness.ctx.axis
    write, send = ledger.write, axis.send_edoc

    async def spy_write(entry: Any) -> None:
        await write(entry)
        calls.append(("ledger", entry.state))

    async def spy_send(*args: Any, **kwargs: Any) -> Any:
        calls.append(("axis", "send"))
        return await send(*args, **kwargs)

    records = [valid(harness), valid(harness, SO_NOI_VU), valid(harness)]
    before = len(harness.sent_packages())
    ledger.write, axis.send_edoc = spy_write, spy_send
    try:
        handle_batch(harness, records)
    finally:
        ledger.write, axis.send_edoc = write, send
    assert len(harness.sent_packages()) == before + 3
    assert calls[:4] == [("ledger", INTENT)] * 3 + [("axis", "send")]
    assert calls[4:] == [("axis", "send")] * 2 + [("ledger", SENT)] * 3
    for event_id in event_ids(records):
        assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"]
        assert harness.ctx.ledger.get(event_id).state == SENT


def test_a_repeated_event_in_one_batch_is_sent_once_and_answered_twice(
        harness: OutboundHarness) -> None:
    first = valid(harness)
    again = harness.record(value=first.value, headers=first.headers)
    other = valid(harness)
    broken = invalid(harness)
    before = len(harness.sent_packages())
    handle_batch(harness, [first, broken, again, other])
    assert len(harness.sent_packages()) == before + 2
    first_id, broken_id, _, other_id = event_ids([first, broken, again, other])
    assert kinds(harness.outcomes(first_id)) == ["delivery.accepted.v1"] * 2
    assert kinds(harness.outcomes(other_id)) == ["delivery.accepted.v1"]
    assert kinds(harness.outcomes(broken_id)) == ["deadletter.v1", "delivery.failed.v1"]


def test_an_id_reused_for_another_document_in_the_same_batch_is_refused(
        harness: OutboundHarness) -> None:
    shared = uuid.uuid4().hex
    first, second = valid(harness, id=shared), valid(harness, id=shared)
    before = len(harness.sent_packages())
    handle_batch(harness, [first, second])
    assert len(harness.sent_packages()) == before + 1
    outcomes = harness.outcomes(shared)
    assert kinds(outcomes) == ["deadletter.v1", "delivery.accepted.v1", "delivery.failed.v1"]
    assert any(e.data.get("reason") == "event.id_conflict" for _, e in outcomes)


def test_a_record_whose_earlier_attempt_left_an_intent_is_reconciled_not_resent(
        harness: OutboundHarness) -> None:
    # The first record was sent by an attempt that died before recording it: its intent is in
    # the ledger and the axis has the package. In a batch it goes through reconciliation.
    earlier = valid(harness)
    handle_batch(harness, [earlier])
    event_id = event_ids([earlier])[0]
    entry = harness.ctx.ledger.get(event_id)
    from dataclasses import replace

    harness.run(harness.ctx.ledger.write(replace(entry, state=INTENT, axis_doc_id=None)))
    before = len(harness.sent_packages())
    handle_batch(harness, [earlier, valid(harness)])
    assert len(harness.sent_packages()) == before + 1
    assert harness.ctx.ledger.get(event_id).state == SENT
    assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"] * 2


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["valid", "other-agency", "invalid", "repeat", "reuse-id"]),
                min_size=2, max_size=8))
def test_any_batch_sends_each_distinct_document_once_and_answers_every_record(
        harness: OutboundHarness, plan: list[str]) -> None:
    records: list[KafkaRecord] = []
    valid_ones: list[bool] = []
    for step in plan:
        if step == "repeat" and records:
            records.append(harness.record(value=records[-1].value,
                                          headers=records[-1].headers))
            valid_ones.append(valid_ones[-1])
        elif step == "reuse-id" and records:
            records.append(valid(harness, id=event_ids(records[:1])[0]))
            valid_ones.append(True)
        elif step == "invalid":
            records.append(invalid(harness))
            valid_ones.append(False)
        else:
            records.append(valid(harness, SO_NOI_VU if step == "other-agency" else H55))
            valid_ones.append(True)
    before = len(harness.sent_packages())
    handle_batch(harness, records)
    # What deserves a send: the first valid document under each event id; an exact repeat is
    # answered from the ledger, another document under a used id refused.
    deserving = {event_id for event_id, ok in zip(event_ids(records), valid_ones) if ok}
    assert len(harness.sent_packages()) == before + len(deserving)
    for event_id in event_ids(records):
        assert harness.outcomes(event_id), "every record has an outcome"
