"""Audit chains: written to the run's real Kafka, read back, verified; tampering is located."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import EventProducer, KafkaConnectorError, KafkaSettings, read_topic
from gateway.audit import AUDIT_EVENT_TYPE, GENESIS, AuditEntry, AuditError, AuditLog, \
    kafka_target, producer_sender, record_hash, register_cli, verify_records

SHA = "a" * 64


class StepClock:
    """Audit time that moves one second per record (readable, deterministic records)."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 17, 2, 30, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class ListSink:
    """A `send` that keeps what it is given, in order, as the broker would store it."""

    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []

    async def __call__(self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        self.records.append(KafkaRecord(key=key, value=value, headers=tuple(headers),
                                        partition=0, offset=len(self.records)))

    def entries(self) -> list[AuditEntry]:
        return [AuditEntry.from_record(r) for r in self.records]


async def write_document_trail(audit: AuditLog, document_id: str) -> None:
    await audit.record(flow="document", step="received", outcome="ok", document_id=document_id,
                       agency="000.00.00.H55", event_id=f"evt-{document_id}")
    await audit.record(flow="document", step="signed", outcome="ok", document_id=document_id,
                       package_sha256=SHA)
    await audit.record(flow="document", step="sent", outcome="ok", document_id=document_id,
                       axis_doc_id="4711")


def tamper(entry: AuditEntry, **changes: object) -> AuditEntry:
    record = json.loads(entry.value)
    record.update(changes)
    return replace(entry, value=json.dumps(record).encode())


async def sample_chain(records: int = 4) -> list[AuditEntry]:
    sink = ListSink()
    async with AuditLog("gw-1", sink, clock=StepClock()) as audit:
        for n in range(records):
            await audit.record(flow="document", step="sent", outcome="ok",
                               document_id=f"DOC-{n}")
    return sink.entries()


# ---------------------------------------------------------------------------------------------
# Against the broker


async def test_chains_written_to_kafka_read_back_intact(kafka_settings: KafkaSettings,
                                                        topic_factory) -> None:
    topic = await topic_factory("audit", partitions=3)
    async with EventProducer(kafka_settings) as producer:
        send = producer_sender(producer, topic)
        first = AuditLog("gw-1", send)
        second = AuditLog("gw-2", send)
        async with first:
            await asyncio.gather(write_document_trail(first, "DOC-A"),
                                 write_document_trail(second, "DOC-B"),
                                 write_document_trail(first, "DOC-C"))
        # gw-2 is not closed: it stands for an instance still running (or crashed)

    records = await read_topic(kafka_settings, topic)
    assert len(records) == 2 + 6 + 1 + 3
    by_chain = {r.key for r in records}
    assert by_chain == {b"gw-1", b"gw-2"}
    for chain in by_chain:
        assert len({r.partition for r in records if r.key == chain}) == 1
    event = CloudEvent.from_record(records[0])
    assert event.type == AUDIT_EVENT_TYPE and event.id == event.data["hash"]

    report = verify_records(AuditEntry.from_record(r) for r in records)
    assert report.ok, report.breaks
    assert (report.records, report.chains, report.closed_chains, report.open_chains) == \
        (12, 2, 1, 1)
    states = {s.chain: (s.state, s.records) for s in report.summaries}
    assert states == {"gw-1": ("closed", 8), "gw-2": ("open", 4)}


async def test_an_altered_record_read_back_from_kafka_is_reported_at_its_offset(
        kafka_settings: KafkaSettings, fresh_topic: str) -> None:
    async with EventProducer(kafka_settings) as producer:
        async with AuditLog("gw-1", producer_sender(producer, fresh_topic)) as audit:
            await write_document_trail(audit, "DOC-A")
    entries = [AuditEntry.from_record(r) for r in await read_topic(kafka_settings, fresh_topic)]
    assert verify_records(entries).ok

    entries[2] = tamper(entries[2], package_sha256="b" * 64)
    report = verify_records(entries)
    assert not report.ok
    assert (report.broken.kind, report.broken.offset, report.broken.seq) == ("altered", 2, 2)
    assert report.broken.chain == "gw-1"


async def test_a_send_that_failed_after_storing_repeats_the_record_and_the_chain_holds(
        kafka_settings: KafkaSettings, fresh_topic: str) -> None:
    async with EventProducer(kafka_settings) as producer:
        store = producer_sender(producer, fresh_topic)
        calls = 0

        async def flaky(key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
            # The broker stores the second record, but the acknowledgement is lost.
            nonlocal calls
            calls += 1
            await store(key, value, headers)
            if calls == 2:
                raise KafkaConnectorError("kafka.unavailable", "ack lost", transient=True)

        audit = AuditLog("gw-1", flaky)
        with pytest.raises(KafkaConnectorError):
            await audit.record(flow="document", step="received", outcome="ok")
        await audit.record(flow="document", step="sent", outcome="ok")
        await audit.close()
    records = await read_topic(kafka_settings, fresh_topic)
    seqs = [json.loads(r.value)["seq"] for r in records]
    assert seqs == [0, 1, 1, 2, 3]
    report = verify_records(AuditEntry.from_record(r) for r in records)
    assert report.ok and report.duplicates == 1 and report.closed_chains == 1


# ---------------------------------------------------------------------------------------------
# The record and the chain


async def test_records_hash_the_canonical_json_and_link_to_the_previous_hash() -> None:
    sink = ListSink()
    audit = AuditLog("gw-1", sink, clock=StepClock())
    record = await audit.record(flow="inbound-document", step="verified", outcome="ok",
                                agency="000.00.00.H55", document_id="Công văn 12/UBND",
                                signature="valid")
    opened, stored = (json.loads(r.value) for r in sink.records)
    assert stored == record
    assert opened["step"] == "chain-opened" and opened["seq"] == 0 and opened["prev"] == GENESIS
    assert (record["seq"], record["prev"]) == (1, opened["hash"])
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
    assert "Công văn".encode() in canonical
    assert record["hash"] == hashlib.sha256(canonical).hexdigest() == record_hash(record)
    assert record["time"] == "2024-05-17T02:30:02.000Z"
    assert sink.records[1].key == b"gw-1"
    assert dict(sink.records[1].headers)["ce_agency"] == b"000.00.00.H55"


async def test_close_writes_chain_closed_and_later_records_are_refused() -> None:
    sink = ListSink()
    audit = AuditLog("gw-1", sink)
    await audit.open()
    await audit.close()
    assert [json.loads(r.value)["step"] for r in sink.records] == ["chain-opened",
                                                                   "chain-closed"]
    with pytest.raises(AuditError) as error:
        await audit.record(flow="document", step="sent", outcome="ok")
    assert error.value.reason == "audit.closed"


@pytest.mark.parametrize("fields, where", [
    ({"flow": "email"}, "flow"),
    ({"step": "Sent!"}, "step"),
    ({"package_sha256": "not-a-hash"}, "package_sha256"),
    ({"agency": ""}, "agency"),
])
async def test_malformed_fields_are_refused_without_using_a_seq(fields, where) -> None:
    sink = ListSink()
    audit = AuditLog("gw-1", sink)
    with pytest.raises(AuditError) as error:
        await audit.record(**{"flow": "document", "step": "sent", "outcome": "ok", **fields})
    assert (error.value.reason, error.value.where) == ("audit.record.invalid", where)
    await audit.record(flow="document", step="sent", outcome="ok")
    assert verify_records(sink.entries()).ok


async def test_a_failed_send_is_retried_byte_for_byte_before_the_next_record() -> None:
    sink = ListSink()
    failing = True

    async def send(key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        if failing and json.loads(value)["seq"] == 1:
            raise KafkaConnectorError("kafka.unavailable", "broker down", transient=True)
        await sink(key, value, headers)

    audit = AuditLog("gw-1", send)
    with pytest.raises(KafkaConnectorError):
        await audit.record(flow="document", step="received", outcome="ok", document_id="D1")
    failing = False
    await audit.record(flow="document", step="sent", outcome="ok", document_id="D1")
    steps = [(json.loads(r.value)["seq"], json.loads(r.value)["step"]) for r in sink.records]
    assert steps == [(0, "chain-opened"), (1, "received"), (2, "sent")]
    assert verify_records(sink.entries()).ok


async def test_concurrent_records_form_one_linear_chain() -> None:
    sink = ListSink()
    audit = AuditLog("gw-1", sink)
    await asyncio.gather(*(audit.record(flow="receipt", step="sent", outcome="ok",
                                        document_id=f"D{n}") for n in range(50)))
    assert [json.loads(r.value)["seq"] for r in sink.records] == list(range(51))
    assert verify_records(sink.entries()).ok


class PipelinedSink(ListSink):
    """A `send` with `enqueue`, as `producer_sender`'s: each enqueued record waits for the test
    to store it (`ack`), lose it (`fail`), or store it and lose only the answer
    (`fail(stored=True)`); `send` (used for repeats) stores at once."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[tuple[asyncio.Future[None], bytes, bytes, tuple]] = []

    async def enqueue(self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]):
        from gateway.audit import _Ack

        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append((future, key, value, tuple(headers)))

        async def wait(f: asyncio.Future[None], _topic: str) -> None:
            await f

        return _Ack(future, "audit", wait)

    async def ack(self, count: int = 1) -> None:
        for _ in range(count):
            future, key, value, headers = self.queue.pop(0)
            await self(key, value, headers)
            future.set_result(None)
        await asyncio.sleep(0)

    async def fail(self, *, stored: bool = False) -> None:
        future, key, value, headers = self.queue.pop(0)
        if stored:
            await self(key, value, headers)
        future.set_exception(KafkaConnectorError("kafka.unavailable", "lost", transient=True))
        await asyncio.sleep(0)


async def test_pipelined_records_do_not_wait_for_each_others_acknowledgement() -> None:
    sink = PipelinedSink()
    audit = AuditLog("gw-1", sink)
    writers = [asyncio.create_task(audit.record(flow="document", step="sent", outcome="ok",
                                                document_id=f"D{n}")) for n in range(5)]
    await asyncio.sleep(0.01)
    # Every record is enqueued although none was acknowledged: the lock is not held across it.
    assert len(sink.queue) == 6 and not any(w.done() for w in writers)
    await sink.ack(6)
    await asyncio.gather(*writers)
    assert [json.loads(r.value)["seq"] for r in sink.records] == list(range(6))
    assert verify_records(sink.entries()).ok


@pytest.mark.parametrize("stored", [False, True])
async def test_a_failed_pipelined_record_is_sent_again_in_order_before_the_next(stored) -> None:
    sink = PipelinedSink()
    audit = AuditLog("gw-1", sink)
    first = asyncio.create_task(audit.record(flow="document", step="received", outcome="ok"))
    await asyncio.sleep(0.01)
    await sink.ack()            # chain-opened stored
    await sink.fail(stored=stored)
    with pytest.raises(KafkaConnectorError):
        await first
    later = asyncio.create_task(audit.record(flow="document", step="sent", outcome="ok"))
    await asyncio.sleep(0.01)
    await sink.ack()
    await later
    steps = [(json.loads(r.value)["seq"], json.loads(r.value)["step"]) for r in sink.records]
    expected = [(0, "chain-opened"), (1, "received")] + ([(1, "received")] if stored else []) \
        + [(2, "sent")]
    assert steps == expected
    report = verify_records(sink.entries())
    assert report.ok and report.duplicates == (1 if stored else 0)


async def test_a_failure_followed_by_an_acknowledged_record_is_not_sent_again() -> None:
    # The idempotent producer stores nothing after a record it did not store: a later record
    # acknowledged proves the failed one stored, and repeating it would reorder the chain.
    sink = PipelinedSink()
    audit = AuditLog("gw-1", sink)
    writers = [asyncio.create_task(audit.record(flow="document", step="sent", outcome="ok",
                                                document_id=f"D{n}")) for n in range(2)]
    await asyncio.sleep(0.01)
    await sink.ack()
    await sink.fail(stored=True)
    await sink.ack()
    results = await asyncio.gather(*writers, return_exceptions=True)
    assert isinstance(results[0], KafkaConnectorError) and isinstance(results[1], dict)
    last = asyncio.create_task(audit.record(flow="document", step="sent", outcome="ok",
                                            document_id="D2"))
    await asyncio.sleep(0.01)
    assert [json.loads(r.value)["seq"] for r in sink.records] == [0, 1, 2]
    await sink.ack()
    await last
    assert [json.loads(r.value)["seq"] for r in sink.records] == [0, 1, 2, 3]
    assert verify_records(sink.entries()).ok


async def test_pipelined_chain_through_the_broker_stays_linear(kafka_settings: KafkaSettings,
                                                              fresh_topic: str) -> None:
    async with EventProducer(kafka_settings, linger_ms=0) as producer:
        async with AuditLog("gw-1", producer_sender(producer, fresh_topic)) as audit:
            await asyncio.gather(*(audit.record(flow="receipt", step="sent", outcome="ok",
                                                document_id=f"D{n}") for n in range(60)))
    records = await read_topic(kafka_settings, fresh_topic)
    assert [json.loads(r.value)["seq"] for r in records] == list(range(62))
    report = verify_records(AuditEntry.from_record(r) for r in records)
    assert report.ok and report.closed_chains == 1 and report.duplicates == 0


# ---------------------------------------------------------------------------------------------
# Verification


async def test_a_changed_and_rehashed_record_breaks_the_next_link() -> None:
    entries = await sample_chain()
    record = json.loads(entries[2].value)
    record["outcome"] = "failed"
    record["hash"] = record_hash(record)
    entries[2] = replace(entries[2], value=json.dumps(record).encode())
    report = verify_records(entries)
    assert (report.broken.kind, report.broken.offset, report.broken.seq) == ("broken-link", 3, 3)


async def test_a_removed_record_is_reported_as_missing_at_the_next_offset() -> None:
    entries = await sample_chain()
    del entries[2]
    report = verify_records(entries)
    broken = report.broken
    assert (broken.kind, broken.offset, broken.seq, broken.expected_seq) == ("missing", 3, 3, 2)
    assert report.summaries[0].state == "broken"


async def test_two_swapped_records_are_reported_as_reordered_at_the_first() -> None:
    entries = await sample_chain()
    entries[1], entries[3] = (replace(entries[1], value=entries[3].value),
                              replace(entries[3], value=entries[1].value))
    broken = verify_records(entries).broken
    assert (broken.kind, broken.offset, broken.seq, broken.expected_seq) == \
        ("reordered", 1, 3, 1)


async def test_entries_are_checked_in_offset_order_whatever_order_they_come_in() -> None:
    entries = await sample_chain()
    assert verify_records(reversed(entries)).ok


async def test_a_removed_first_record_is_missing_and_a_removed_last_one_leaves_the_chain_open(
        ) -> None:
    entries = await sample_chain()
    broken = verify_records(entries[1:]).broken
    assert (broken.kind, broken.offset, broken.expected_seq) == ("missing", 1, 0)
    report = verify_records(entries[:-1])
    assert report.ok and report.open_chains == 1 and report.closed_chains == 0


async def test_unreadable_values_are_reported_as_unparseable() -> None:
    entries = await sample_chain()
    entries.append(AuditEntry(0, len(entries), b"\xff not json"))
    entries.append(AuditEntry(0, len(entries), json.dumps({"chain": "x"}).encode()))
    report = verify_records(entries)
    assert [(b.kind, b.offset) for b in report.breaks] == [("unparseable", 6),
                                                          ("unparseable", 7)]


async def test_records_after_chain_closed_break_the_chain() -> None:
    sink = ListSink()
    audit = AuditLog("gw-1", sink)
    await audit.close()
    audit._closed = False  # a forger appending to a finished chain
    await audit.record(flow="document", step="sent", outcome="ok")
    broken = verify_records(sink.entries()).broken
    assert (broken.kind, broken.offset, broken.seq) == ("after-close", 2, 2)


async def test_a_restart_under_the_same_chain_id_starts_a_new_run() -> None:
    sink = ListSink()
    crashed = AuditLog("gw-1", sink)
    await crashed.record(flow="document", step="received", outcome="ok")
    restarted = AuditLog("gw-1", sink)
    async with restarted:
        await restarted.record(flow="document", step="received", outcome="ok")
    report = verify_records(sink.entries())
    assert report.ok
    assert [(s.run, s.state) for s in report.summaries] == [(0, "open"), (1, "closed")]


async def test_a_forged_first_record_is_a_bad_start() -> None:
    entries = await sample_chain()
    record = json.loads(entries[0].value)
    record["step"] = "received"
    record["hash"] = record_hash(record)
    entries[0] = replace(entries[0], value=json.dumps(record).encode())
    broken = verify_records(entries).broken
    assert (broken.kind, broken.offset) == ("bad-start", 0)


async def test_a_broken_chain_does_not_hide_another_chains_break() -> None:
    sink = ListSink()
    one, two = AuditLog("gw-1", sink), AuditLog("gw-2", sink)
    for _ in range(3):
        await one.record(flow="document", step="sent", outcome="ok")
        await two.record(flow="document", step="sent", outcome="ok")
    entries = sink.entries()
    entries[5] = tamper(entries[5], outcome="refused")   # gw-2 seq 2
    del entries[4]   # gw-1 seq 2
    report = verify_records(entries)
    # in offset order: gw-2's edited seq 2 (offset 5) before gw-1's gap, seen at offset 6
    assert [(b.chain, b.kind, b.offset) for b in report.breaks] == [("gw-2", "altered", 5),
                                                                   ("gw-1", "missing", 6)]


# ---------------------------------------------------------------------------------------------
# Command line


def cli(argv: list[str]) -> tuple[argparse.Namespace, int]:
    parser = argparse.ArgumentParser(prog="edoc-gateway")
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args, args.func(args)


async def test_cli_exit_codes_intact_broken_and_usage(kafka_settings: KafkaSettings,
                                                      topic_factory, capsys,
                                                      monkeypatch) -> None:
    intact, broken = await topic_factory("audit"), await topic_factory("audit")
    sink = ListSink()
    async with AuditLog("gw-1", sink) as audit:
        await write_document_trail(audit, "DOC-A")
    async with EventProducer(kafka_settings) as producer:
        for n, record in enumerate(sink.records):
            await producer.send_record(intact, record)
            value = record.value
            if n == 3:  # a copy of the trail in which one record was edited
                value = value.replace(b'"outcome":"ok"', b'"outcome":"failed"')
            await producer.send_record(broken, replace(record, value=value))
    bootstrap = kafka_settings.bootstrap_servers
    if kafka_settings.security_protocol != "PLAINTEXT":
        pytest.skip("the CLI test passes only --bootstrap")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)

    _, code = await asyncio.to_thread(cli, ["audit", "verify", "--bootstrap", bootstrap,
                                            "--topic", intact])
    assert code == 0
    assert "intact" in capsys.readouterr().out

    _, code = await asyncio.to_thread(cli, ["audit", "verify", "--bootstrap", bootstrap,
                                            "--topic", broken, "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert (report["broken"]["kind"], report["broken"]["offset"]) == ("altered", 3)

    _, code = await asyncio.to_thread(cli, ["audit", "verify", "--topic", intact])
    assert code == 2
    assert "bootstrap" in capsys.readouterr().err

    _, code = await asyncio.to_thread(cli, ["audit", "verify", "--config",
                                            "no-such-gateway.toml"])
    assert code == 2
    assert "no-such-gateway.toml" in capsys.readouterr().err

    _, code = await asyncio.to_thread(cli, ["audit", "verify", "--bootstrap", bootstrap,
                                            "--topic", intact + "-does-not-exist"])
    assert code == 2
    assert "kafka.topic" in capsys.readouterr().err


def test_cli_takes_the_bootstrap_from_the_environment() -> None:
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["audit", "verify"])
    settings, topics = kafka_target(args, client_id="t",
                                    topics={"audit": (args.topic, "edoc.audit")},
                                    env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092"})
    assert (settings.bootstrap_servers, topics) == ("127.0.0.1:19092", {"audit": "edoc.audit"})
