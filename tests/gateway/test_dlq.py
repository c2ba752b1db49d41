"""Dead letters on the run's real Kafka: written, listed by reason, replayed byte for byte once."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from datetime import datetime, timezone

import pytest

from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import EventProducer, KafkaSettings, read_topic
from gateway.audit import AuditEntry, AuditLog, producer_sender, verify_records
from gateway.dlq import DEADLETTER_TYPE, TokenBucket, collect_dead_letters, dead_letter_event, \
    dead_letter_id, decode_headers, encode_headers, list_dead_letters, publish_dead_letter, \
    register_cli, replay

FAILED_AT = datetime(2024, 5, 17, 2, 30, tzinfo=timezone.utc)


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def original_record(n: int) -> KafkaRecord:
    # Binary values, a repeated header and a header that is not UTF-8: all must survive.
    return KafkaRecord(
        key=f"DOC-{n}".encode(),
        value=b'{"documentId":"DOC-%d","subject":"C\xc3\xb4ng v\xc4\x83n"}' % n,
        headers=(("ce_id", f"evt-{n}".encode()), ("ce_agency", b"000.00.00.H55"),
                 ("trace", b"\x00\x01"), ("trace", b"\xff\xfe"), ("content-type",
                                                                  b"application/json")))


async def dead_letter_originals(settings: KafkaSettings, source: str, dlq: str,
                                reasons: list[str]) -> list[KafkaRecord]:
    """Publish one original per reason, read them back (with coordinates), dead-letter them."""
    async with EventProducer(settings) as producer:
        for n in range(len(reasons)):
            await producer.send_record(source, original_record(n))
        originals = await read_topic(settings, source)
        for record, reason in zip(originals, reasons):
            await publish_dead_letter(producer, dlq, record, reason=reason,
                                      message=f"refused: {reason}", flow="document",
                                      attempts=1, first_failure=FAILED_AT,
                                      last_failure=FAILED_AT, instance="gw-1")
    return originals


# ---------------------------------------------------------------------------------------------
# Building


def test_dead_letter_event_carries_the_original_and_a_stable_id() -> None:
    record = KafkaRecord(key=b"DOC-1", value=b"{not json", headers=(("ce_id", b"evt-1"),),
                         topic="edoc.outbound.documents", partition=3, offset=1042)
    event = dead_letter_event(record, reason="event.json", message="not JSON", flow="document",
                              attempts=2, first_failure=FAILED_AT, last_failure=FAILED_AT,
                              instance="gw-1")
    again = dead_letter_event(record, reason="event.json", message="still not JSON",
                              flow="document", attempts=3, first_failure=FAILED_AT,
                              last_failure=FAILED_AT, instance="gw-2")
    assert event.id == again.id == dead_letter_id("edoc.outbound.documents", 3, 1042)
    assert event.type == DEADLETTER_TYPE
    assert event.extensions["reason"] == "event.json"
    original = event.data["original"]
    assert (original["topic"], original["partition"], original["offset"]) == \
        ("edoc.outbound.documents", 3, 1042)
    assert base64.b64decode(original["value"]) == b"{not json"
    assert base64.b64decode(original["key"]) == b"DOC-1"
    assert original["headers"] == {"ce_id": base64.b64encode(b"evt-1").decode()}
    assert event.data["attempts"] == 2 and event.data["first_failure"] == \
        "2024-05-17T02:30:00.000Z"


def test_a_record_not_read_from_kafka_cannot_be_dead_lettered() -> None:
    from gateway.dlq import DeadLetterError

    with pytest.raises(DeadLetterError) as error:
        dead_letter_event(KafkaRecord(key=b"k", value=b"v"), reason="event.json", message="m",
                          flow="document", attempts=1, first_failure=FAILED_AT,
                          last_failure=FAILED_AT, instance="gw-1")
    assert error.value.reason == "dlq.invalid"


def test_headers_round_trip_including_repeated_names() -> None:
    headers = original_record(0).headers
    encoded = encode_headers(headers)
    assert isinstance(encoded["trace"], list)
    assert decode_headers(json.loads(json.dumps(encoded))) == headers


def test_unreadable_records_on_the_topic_are_set_aside() -> None:
    good = dead_letter_event(KafkaRecord(key=b"k", value=b"v", topic="t", partition=0,
                                         offset=5),
                             reason="event.json", message="m", flow="document", attempts=1,
                             first_failure=FAILED_AT, last_failure=FAILED_AT, instance="gw-1")
    bad_data = CloudEvent(id="x", source="urn:x", type=DEADLETTER_TYPE,
                          data={"reason": "r", "original": {"topic": "t", "partition": 0,
                                                            "offset": 1, "value": "%%%"}})
    records = [replace_position(good.to_record(b"k"), 0),
               replace_position(KafkaRecord(key=None, value=b"junk"), 1),
               replace_position(bad_data.to_record(b"k"), 2)]
    index = collect_dead_letters(records)
    assert [letter.id for letter in index.letters] == [good.id]
    assert [(u.offset, u.reason) for u in index.unreadable] == [(1, "event.envelope"),
                                                               (2, "dlq.unreadable")]


def replace_position(record: KafkaRecord, offset: int) -> KafkaRecord:
    return KafkaRecord(key=record.key, value=record.value, headers=record.headers,
                       topic="edoc.deadletter", partition=0, offset=offset)


async def test_token_bucket_paces_acquisitions_by_the_injected_clock() -> None:
    time = FakeTime()
    bucket = TokenBucket(4, burst=2, clock=time.clock, sleep=time.sleep)
    for _ in range(6):
        await bucket.acquire()
    # two at once (the burst), then one every quarter second
    assert time.now - 1000.0 == pytest.approx(1.0)
    time.now += 10  # idle: the bucket refills, but only up to the burst
    start = time.now
    for _ in range(3):
        await bucket.acquire()
    assert time.now - start == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------
# Against the broker


async def test_list_filters_by_reason_and_shows_a_rewritten_dead_letter_once(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    source, dlq = await topic_factory("orig"), await topic_factory("dlq", partitions=2)
    originals = await dead_letter_originals(
        kafka_settings, source, dlq, ["event.schema", "axis.rejected", "event.schema",
                                      "axis.auth"])
    async with EventProducer(kafka_settings) as producer:
        # the same record dead-lettered again (a crash before its offset was committed)
        await publish_dead_letter(producer, dlq, originals[1], reason="axis.rejected",
                                  message="again", flow="document", attempts=2,
                                  first_failure=FAILED_AT, last_failure=FAILED_AT,
                                  instance="gw-1")

    everything = await list_dead_letters(kafka_settings, dlq)
    assert len(everything) == 4
    assert {letter.original.offset for letter in everything} == {0, 1, 2, 3}
    schema = await list_dead_letters(kafka_settings, dlq, reason="event.schema")
    assert sorted(letter.original.offset for letter in schema) == [0, 2]
    axis = await list_dead_letters(kafka_settings, dlq, reason="axis.*")
    assert {letter.reason for letter in axis} == {"axis.rejected", "axis.auth"}
    [rejected] = [letter for letter in axis if letter.reason == "axis.rejected"]
    assert (rejected.attempts, rejected.message) == (2, "again")
    assert not any(letter.replayed for letter in everything)


async def test_replay_republishes_originals_byte_identically_audited_and_only_once(
        kafka_settings: KafkaSettings, topic_factory) -> None:
    source, dlq, audit_topic = (await topic_factory("orig"), await topic_factory("dlq"),
                                await topic_factory("audit"))
    originals = await dead_letter_originals(kafka_settings, source, dlq,
                                            ["axis.unavailable", "event.schema",
                                             "axis.unavailable"])
    time = FakeTime()
    async with EventProducer(kafka_settings) as producer:
        async with AuditLog("gw-ops", producer_sender(producer, audit_topic)) as audit:
            report = await replay(kafka_settings, dlq, reason="axis.unavailable", audit=audit,
                                  clock=time.clock, sleep=time.sleep)
            again = await replay(kafka_settings, dlq, reason="axis.unavailable", audit=audit,
                                 clock=time.clock, sleep=time.sleep)

    expected_ids = [dead_letter_id(source, 0, originals[0].offset),
                    dead_letter_id(source, 0, originals[2].offset)]
    assert list(report.replayed) == expected_ids
    assert again.replayed == () and list(again.already_replayed) == expected_ids

    after = await read_topic(kafka_settings, source)
    replayed = after[len(originals):]
    assert len(replayed) == 2
    for copy, original in zip(replayed, (originals[0], originals[2])):
        assert (copy.key, copy.value, copy.headers) == \
            (original.key, original.value, original.headers)

    letters = {letter.id: letter for letter in await list_dead_letters(kafka_settings, dlq)}
    assert [letter_id for letter_id, letter in letters.items() if letter.replayed] == \
        expected_ids

    trail = await read_topic(kafka_settings, audit_topic)
    assert verify_records(AuditEntry.from_record(r) for r in trail).ok
    steps = [json.loads(r.value) for r in trail]
    assert [(s["step"], s.get("event_id"), s.get("reason")) for s in steps
            if s["step"] == "replayed"] == [("replayed", "evt-0", "axis.unavailable"),
                                            ("replayed", "evt-2", "axis.unavailable")]


async def test_replay_keeps_to_the_rate_by_the_injected_clock(kafka_settings: KafkaSettings,
                                                              topic_factory) -> None:
    source, dlq = await topic_factory("orig"), await topic_factory("dlq")
    await dead_letter_originals(kafka_settings, source, dlq, ["axis.unavailable"] * 5)
    time = FakeTime()
    report = await replay(kafka_settings, dlq, reason="axis.unavailable", rate_per_second=2,
                          clock=time.clock, sleep=time.sleep)
    assert len(report.replayed) == 5
    # the first goes at once, each of the other four waits half a second
    assert time.now - 1000.0 == pytest.approx(2.0)
    assert len(time.sleeps) == 4


async def test_replay_by_id_reports_ids_that_are_not_there(kafka_settings: KafkaSettings,
                                                           topic_factory) -> None:
    source, dlq = await topic_factory("orig"), await topic_factory("dlq")
    originals = await dead_letter_originals(kafka_settings, source, dlq,
                                            ["event.schema", "event.schema"])
    wanted = dead_letter_id(source, 0, originals[1].offset)
    time = FakeTime()
    report = await replay(kafka_settings, dlq, ids=[wanted, "dl:nope:0:0"], clock=time.clock,
                          sleep=time.sleep)
    assert report.replayed == (wanted,) and report.not_found == ("dl:nope:0:0",)
    after = await read_topic(kafka_settings, source)
    assert len(after) == 3 and after[2].value == originals[1].value


# ---------------------------------------------------------------------------------------------
# Command line


@pytest.fixture
def logs_to_stderr():
    """Logs on stderr, as the command sets them up, so --json output on stdout stays clean."""
    import logging
    import sys

    import structlog

    from gateway.logs import OWN_LOGGERS, configure_logging

    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in OWN_LOGGERS}
    root_level = root.level
    handler = configure_logging("json", "info", sys.stderr)
    yield
    root.removeHandler(handler)
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.reset_defaults()


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edoc-gateway")
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


async def test_cli_lists_and_replays(kafka_settings: KafkaSettings, topic_factory, capsys,
                                     monkeypatch, logs_to_stderr) -> None:
    if kafka_settings.security_protocol != "PLAINTEXT":
        pytest.skip("the CLI test passes only --bootstrap")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    source, dlq, audit_topic = (await topic_factory("orig"), await topic_factory("dlq"),
                                await topic_factory("audit"))
    originals = await dead_letter_originals(kafka_settings, source, dlq,
                                            ["event.schema", "axis.auth"])
    common = ["--bootstrap", kafka_settings.bootstrap_servers, "--topic", dlq]
    capsys.readouterr()

    assert await asyncio.to_thread(cli, ["dlq", "list", *common, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["reason"] for d in listed["dead_letters"]] == ["event.schema", "axis.auth"]
    assert listed["dead_letters"][0]["original"]["ce_id"] == "evt-0"

    assert await asyncio.to_thread(cli, ["dlq", "list", *common, "--reason", "axis.auth"]) == 0
    out = capsys.readouterr().out
    assert "axis.auth" in out and "event.schema" not in out

    assert await asyncio.to_thread(cli, ["dlq", "replay", *common]) == 2
    assert "--reason, --id or --all" in capsys.readouterr().err

    wanted = dead_letter_id(source, 0, originals[1].offset)
    code = await asyncio.to_thread(cli, ["dlq", "replay", *common, "--id", wanted, "--rate",
                                         "50", "--audit-topic", audit_topic, "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["replayed"] == [wanted]
    assert len(await read_topic(kafka_settings, source)) == 3
    trail = [json.loads(r.value) for r in await read_topic(kafka_settings, audit_topic)]
    assert [t["step"] for t in trail] == ["chain-opened", "replayed", "chain-closed"]


def test_quarantined_axis_messages_are_listed_but_not_replayable(tmp_path) -> None:
    from types import SimpleNamespace

    from connectors.store import FileStore
    from gateway import events
    from tests.samples import sample

    archived = FileStore(tmp_path).archive_package(sample("status_inbox_01.edxml"))
    letter = events.quarantine_letter(
        item=SimpleNamespace(doc_id="axis-1", to_code="000.00.00.H41"),
        reason="edxml.signature.invalid", message="digest mismatch", flow="inbound-document",
        archived=archived, instance="gw", now=datetime.now(timezone.utc), source="urn:test",
        event_id="e-1")
    index = collect_dead_letters([_record_of(letter)])
    assert index.unreadable == ()
    (listed,) = index.letters
    assert not listed.replayable
    assert listed.summary()["quarantined"]["axis_doc_id"] == "axis-1"
    assert listed.reason == "edxml.signature.invalid"


def _record_of(event):
    record = event.to_record(key=b"k")
    return type(record)(record.key, record.value, record.headers, topic="dlq", partition=0,
                        offset=7)
