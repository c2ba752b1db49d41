"""Dead letters: build them, list them, and replay them to their original topic after a fix.

A dead letter is a CloudEvent `vn.gov.edoc.deadletter.v1` on the dead-letter topic, keyed by
the original record's key, whose data is

    {"reason": "event.schema", "message": "…", "flow": "document", "attempts": 1,
     "first_failure": "2024-05-17T02:30:00.120Z", "last_failure": "2024-05-17T02:30:00.120Z",
     "instance": "gw-1",
     "original": {"topic": "edoc.outbound.documents", "partition": 3, "offset": 1042,
                  "key": "<base64>" | null, "headers": {"ce_id": "<base64>", …},
                  "value": "<base64>" | null}}

Its id is derived from the original topic/partition/offset (`dead_letter_id`), so writing the
same record to dead letters twice (a crash before the input offset was committed) gives the
same id, and listing shows it once. A header name that occurs more than once in the original
has a list of base64 values, in order.

Replaying publishes the original key, headers and value unchanged to the original topic, at a
limited rate, records an audit record (step `replayed`), then writes a marker
`vn.gov.edoc.deadletter.replayed.v1` with the dead letter's id to the dead-letter topic. A dead
letter with a marker is not replayed again. A crash between the publish and the marker can
replay one record twice; consumers dedupe on `ce_id`, which the replay keeps. Two people
replaying the same topic at the same moment is not guarded against.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import structlog

from connectors.cloudevents import CloudEvent, EnvelopeError, KafkaRecord
from connectors.kafka import EventProducer, KafkaConnectorError, KafkaSettings, RecordPosition, \
    read_topic
from edxml.errors import GatewayError
from gateway.audit import DEFAULT_AUDIT_TOPIC, EXIT_OK, EXIT_USAGE, FLOWS, AuditLog, \
    CliUsageError, add_kafka_arguments, format_time, kafka_target, producer_sender

log = structlog.get_logger(__name__)

DEADLETTER_TYPE = "vn.gov.edoc.deadletter.v1"
REPLAYED_TYPE = "vn.gov.edoc.deadletter.replayed.v1"
DEFAULT_DLQ_TOPIC = "edoc.deadletter"
DEFAULT_SOURCE = "urn:edoc:gateway"
MAX_MESSAGE_CHARS = 2000

REASONS: dict[str, str] = {
    "dlq.invalid": "a dead letter could not be built from what was given (a bug in the caller)",
    "dlq.unreadable": "a record on the dead-letter topic is not a readable dead letter or "
                      "replay marker; it is skipped by list and replay",
}


class DeadLetterError(GatewayError):
    """A dead letter could not be built or read."""


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The id of the dead letter of the record at topic/partition/offset (stable)."""
    # ':' cannot occur in a Kafka topic name, so the id reads back unambiguously.
    return f"dl:{topic}:{partition}:{offset}"


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: Any, where: str) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise DeadLetterError("dlq.unreadable", f"{where} is not a base64 string", where=where)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise DeadLetterError("dlq.unreadable", f"{where} is not valid base64",
                              where=where) from None


def encode_headers(headers: Iterable[tuple[str, bytes]]) -> dict[str, str | list[str]]:
    """Record headers as name → base64 value (a list of values for a repeated name)."""
    out: dict[str, str | list[str]] = {}
    for name, value in headers:
        encoded = base64.b64encode(bytes(value or b"")).decode("ascii")
        if name not in out:
            out[name] = encoded
        else:
            previous = out[name]
            out[name] = (previous if isinstance(previous, list) else [previous]) + [encoded]
    return out


def decode_headers(data: Any) -> tuple[tuple[str, bytes], ...]:
    """The inverse of `encode_headers`."""
    if not isinstance(data, dict):
        raise DeadLetterError("dlq.unreadable", "original.headers is not an object",
                              where="original.headers")
    out: list[tuple[str, bytes]] = []
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            decoded = _unb64(item, f"original.headers.{name}")
            out.append((name, decoded or b""))
    return tuple(out)


@dataclass(frozen=True)
class OriginalRecord:
    """The record that failed, exactly as it was read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes | None

    def header(self, name: str) -> bytes | None:
        return self.to_record().header(name)

    def to_record(self) -> KafkaRecord:
        """Key, headers and value as they go back to Kafka (no coordinates)."""
        return KafkaRecord(key=self.key, value=self.value, headers=self.headers)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": _b64(self.key), "headers": encode_headers(self.headers),
                "value": _b64(self.value)}


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as listed: what failed, why, and whether it was replayed."""

    id: str
    reason: str
    message: str
    flow: str
    attempts: int
    first_failure: str
    last_failure: str
    instance: str
    original: OriginalRecord | None   # None for a package quarantined from the axis
    partition: int = -1   # where the dead letter itself is stored
    offset: int = -1
    replayed: bool = False
    quarantined: dict[str, Any] | None = None  # axis_doc_id, package_uri, package_sha256

    @property
    def replayable(self) -> bool:
        """Only Kafka records can be replayed; a quarantined axis message is marked done on the
        axis, and its package is kept in the archive for inspection."""
        return self.original is not None

    def summary(self) -> dict[str, Any]:
        """For listings: everything but the original's bytes (sizes and header names only)."""
        o = self.original
        if o is None:
            return {"id": self.id, "reason": self.reason, "message": self.message,
                    "flow": self.flow, "attempts": self.attempts,
                    "first_failure": self.first_failure, "last_failure": self.last_failure,
                    "instance": self.instance, "replayed": False,
                    "deadletter": {"partition": self.partition, "offset": self.offset},
                    "quarantined": self.quarantined}
        ce_id = o.header("ce_id")
        return {"id": self.id, "reason": self.reason, "message": self.message,
                "flow": self.flow, "attempts": self.attempts,
                "first_failure": self.first_failure, "last_failure": self.last_failure,
                "instance": self.instance, "replayed": self.replayed,
                "deadletter": {"partition": self.partition, "offset": self.offset},
                "original": {"topic": o.topic, "partition": o.partition, "offset": o.offset,
                             "ce_id": ce_id.decode("utf-8", "replace") if ce_id else None,
                             "key_bytes": None if o.key is None else len(o.key),
                             "value_bytes": None if o.value is None else len(o.value),
                             "headers": [name for name, _ in o.headers]}}


def dead_letter_event(original: KafkaRecord, *, reason: str, message: str, flow: str,
                      attempts: int, first_failure: datetime, last_failure: datetime,
                      instance: str, source: str = DEFAULT_SOURCE) -> CloudEvent:
    """The dead letter for `original` (a record as read, with topic/partition/offset).

    Publish it keyed by `original.key` (see `publish_dead_letter`), so it stays with the other
    records about the same document.
    """
    if not original.topic or original.partition < 0 or original.offset < 0:
        raise DeadLetterError("dlq.invalid", "the original record has no topic/partition/"
                              "offset; dead letters are for records read from Kafka",
                              where="original")
    if flow not in FLOWS:
        raise DeadLetterError("dlq.invalid", f"flow {str(flow)[:40]!r} is not one of "
                              f"{', '.join(FLOWS)}", where="flow")
    if not reason or not isinstance(reason, str):
        raise DeadLetterError("dlq.invalid", "a dead letter needs a reason code", where="reason")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise DeadLetterError("dlq.invalid", "attempts must be a positive integer",
                              where="attempts")
    for name, moment in (("first_failure", first_failure), ("last_failure", last_failure)):
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            raise DeadLetterError("dlq.invalid", f"{name} must be a timezone-aware datetime",
                                  where=name)
    coordinates = OriginalRecord(original.topic, original.partition, original.offset,
                                 original.key, tuple(original.headers), original.value)
    copy = coordinates.as_dict()
    if reason == "event.secret_document":
        # A state-secret document is never written anywhere, not even into a dead letter.
        copy["value"] = None
        copy["redacted"] = True
    data = {"reason": reason, "message": message[:MAX_MESSAGE_CHARS], "flow": flow,
            "attempts": attempts, "first_failure": format_time(first_failure),
            "last_failure": format_time(last_failure), "instance": instance,
            "original": copy}
    extensions = {"reason": reason, "flow": flow}
    agency = original.header("ce_agency")
    if agency:
        try:
            extensions["agency"] = agency.decode("utf-8")
        except UnicodeDecodeError:
            pass
    subject = original.header("ce_subject")
    try:
        subject_text = subject.decode("utf-8") if subject else None
    except UnicodeDecodeError:
        subject_text = None
    return CloudEvent(id=dead_letter_id(original.topic, original.partition, original.offset),
                      source=source, type=DEADLETTER_TYPE, time=last_failure,
                      subject=subject_text or None, data=data, extensions=extensions)


async def publish_dead_letter(producer: EventProducer, topic: str, original: KafkaRecord, *,
                              reason: str, message: str, flow: str, attempts: int,
                              first_failure: datetime, last_failure: datetime, instance: str,
                              source: str = DEFAULT_SOURCE) -> RecordPosition:
    """Build the dead letter for `original` and publish it (waits for the broker's ack)."""
    event = dead_letter_event(original, reason=reason, message=message, flow=flow,
                              attempts=attempts, first_failure=first_failure,
                              last_failure=last_failure, instance=instance, source=source)
    return await producer.publish(topic, event, key=original.key)


# ---------------------------------------------------------------------------------------------
# Reading the topic


@dataclass(frozen=True)
class Unreadable:
    """A record on the dead-letter topic that list and replay skip."""

    partition: int
    offset: int
    reason: str
    message: str


@dataclass(frozen=True)
class DeadLetterIndex:
    """What is on the dead-letter topic: the dead letters (one per id, in the order first
    written), and the records that could not be read."""

    letters: tuple[DeadLetter, ...]
    unreadable: tuple[Unreadable, ...] = ()


def _letter_fields(data: dict[str, Any]) -> dict[str, Any]:
    text = {name: data.get(name) for name in ("reason", "message", "flow", "first_failure",
                                             "last_failure", "instance")}
    for name, value in text.items():
        if not isinstance(value, str):
            raise DeadLetterError("dlq.unreadable", f"{name} is missing or not a string",
                                  where=name)
    attempts = data.get("attempts")
    if not isinstance(attempts, int) or isinstance(attempts, bool):
        raise DeadLetterError("dlq.unreadable", "attempts is not an integer", where="attempts")
    return {**text, "attempts": attempts}


def _parse_quarantine(event: CloudEvent, record: KafkaRecord, data: dict[str, Any],
                      original: dict[str, Any]) -> DeadLetter:
    kept = {k: original.get(k) for k in ("axis_doc_id", "package_uri", "package_sha256")}
    return DeadLetter(id=event.id, partition=record.partition, offset=record.offset,
                      original=None, quarantined=kept, **_letter_fields(data))


def _parse_dead_letter(event: CloudEvent, record: KafkaRecord) -> DeadLetter:
    data = event.data
    if not isinstance(data, dict):
        raise DeadLetterError("dlq.unreadable", "data is not an object", where="data")
    original = data.get("original")
    if not isinstance(original, dict):
        raise DeadLetterError("dlq.unreadable", "original is missing", where="original")
    if isinstance(original.get("axis_doc_id"), str) and "topic" not in original:
        return _parse_quarantine(event, record, data, original)
    topic, partition, offset = (original.get("topic"), original.get("partition"),
                                original.get("offset"))
    if not isinstance(topic, str) or not topic or not isinstance(partition, int) \
            or not isinstance(offset, int):
        raise DeadLetterError("dlq.unreadable", "original topic/partition/offset are missing",
                              where="original")
    return DeadLetter(
        id=event.id, partition=record.partition, offset=record.offset,
        original=OriginalRecord(topic, partition, offset,
                                _unb64(original.get("key"), "original.key"),
                                decode_headers(original.get("headers", {})),
                                _unb64(original.get("value"), "original.value")),
        **_letter_fields(data))


def collect_dead_letters(records: Iterable[KafkaRecord]) -> DeadLetterIndex:
    """Read dead letters and replay markers (pure: records in, index out)."""
    letters: dict[str, DeadLetter] = {}
    replayed: set[str] = set()
    unreadable: list[Unreadable] = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            event = CloudEvent.from_record(record)
            if event.type == DEADLETTER_TYPE:
                letter = _parse_dead_letter(event, record)
                if letter.id in letters:
                    # Written again after a crash: keep the first position, the latest details.
                    first = letters[letter.id]
                    letter = replace(letter, partition=first.partition, offset=first.offset)
                letters[letter.id] = letter
            elif event.type == REPLAYED_TYPE:
                target = event.data.get("deadletter_id") if isinstance(event.data, dict) \
                    else None
                if not isinstance(target, str):
                    raise DeadLetterError("dlq.unreadable", "replay marker without "
                                          "deadletter_id", where="deadletter_id")
                replayed.add(target)
            else:
                raise DeadLetterError("dlq.unreadable", f"unexpected event type "
                                      f"{event.type[:80]}", where="ce_type")
        except (EnvelopeError, DeadLetterError) as exc:
            unreadable.append(Unreadable(record.partition, record.offset, exc.reason,
                                         exc.message))
    out = tuple(replace(letter, replayed=letter.id in replayed) for letter in letters.values())
    return DeadLetterIndex(out, tuple(unreadable))


def matches_reason(letter: DeadLetter, reason: str | None) -> bool:
    """`reason` exact, or a prefix when it ends with `*` (`axis.*`); None matches all."""
    if reason is None:
        return True
    if reason.endswith("*"):
        return letter.reason.startswith(reason[:-1])
    return letter.reason == reason


async def read_dead_letters(settings: KafkaSettings, topic: str = DEFAULT_DLQ_TOPIC) \
        -> DeadLetterIndex:
    index = collect_dead_letters(await read_topic(settings, topic))
    for item in index.unreadable:
        log.warning("dlq.record.unreadable", topic=topic, partition=item.partition,
                    offset=item.offset, reason=item.reason, detail=item.message)
    return index


def _settings(settings: KafkaSettings | str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=settings, client_id="edoc-gateway-dlq") \
        if isinstance(settings, str) else settings


async def list_dead_letters(settings: KafkaSettings | str, topic: str = DEFAULT_DLQ_TOPIC,
                            reason: str | None = None) -> list[DeadLetter]:
    """The dead letters on `topic` (a bootstrap string is accepted for plain clusters)."""
    index = await read_dead_letters(_settings(settings), topic)
    return [letter for letter in index.letters if matches_reason(letter, reason)]


# ---------------------------------------------------------------------------------------------
# Replaying

MonotonicClock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """At most `rate_per_second` acquisitions per second on average, `burst` at once.

    The clock and the sleep are injectable, so a test can check the pacing without waiting.
    """

    def __init__(self, rate_per_second: float, *, burst: int = 1,
                 clock: MonotonicClock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        if not rate_per_second > 0:
            raise ValueError("rate_per_second must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = float(rate_per_second)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()

    async def acquire(self) -> None:
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._sleep((1 - self._tokens) / self.rate)


@dataclass(frozen=True)
class ReplayReport:
    """Ids replayed now, skipped because replayed before, and asked for but not found."""

    replayed: tuple[str, ...] = ()
    already_replayed: tuple[str, ...] = ()
    not_found: tuple[str, ...] = ()
    unreadable: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"replayed": list(self.replayed), "already_replayed": list(self.already_replayed),
                "not_found": list(self.not_found), "unreadable": self.unreadable}


def _text(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def replay(settings: KafkaSettings | str, topic: str = DEFAULT_DLQ_TOPIC, *,
                 reason: str | None = None, ids: Sequence[str] | None = None,
                 rate_per_second: float = 5, audit: AuditLog | None = None,
                 instance: str = "edoc-gateway-dlq", source: str = DEFAULT_SOURCE,
                 producer: EventProducer | None = None, clock: MonotonicClock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> ReplayReport:
    """Publish the selected dead letters' originals again, unchanged, to their topics.

    Selection: `reason` (as in `matches_reason`) and/or `ids`; dead letters already replayed
    are skipped. Each replay is audited (if `audit` is given) and then marked on `topic`.
    A publish failure stops the replay with the error; what was done is marked, so running it
    again goes on where it stopped.
    """
    settings = _settings(settings)
    bucket = TokenBucket(rate_per_second, clock=clock, sleep=sleep)
    index = await read_dead_letters(settings, topic)
    wanted = set(ids) if ids is not None else None
    selected = [letter for letter in index.letters if matches_reason(letter, reason)
                and (wanted is None or letter.id in wanted)]
    found = {letter.id for letter in index.letters}
    not_found = tuple(sorted(wanted - found)) if wanted is not None else ()
    done: list[str] = []
    skipped = [letter.id for letter in selected if letter.replayed]
    # Quarantined axis messages are listed, not replayed: nothing on Kafka to send again, and
    # a redacted secret document has no bytes to send.
    todo = [letter for letter in selected if not letter.replayed and letter.replayable
            and letter.original.value is not None]

    own_producer = producer is None
    if producer is None:
        producer = EventProducer(settings)
        await producer.start()
    try:
        for letter in todo:
            await bucket.acquire()
            position = await producer.send_record(letter.original.topic,
                                                  letter.original.to_record())
            original = letter.original
            log.info("dlq.replayed", deadletter_id=letter.id, reason=letter.reason,
                     topic=position.topic, partition=position.partition,
                     offset=position.offset)
            if audit is not None:
                await audit.record(flow="dlq", step="replayed", outcome="ok",
                                   event_id=_text(original.header("ce_id")) or letter.id,
                                   document_id=_text(original.header("ce_subject")),
                                   agency=_text(original.header("ce_agency")),
                                   reason=letter.reason)
            marker = CloudEvent(
                id=f"replayed:{letter.id}:{uuid.uuid4().hex[:12]}", source=source,
                type=REPLAYED_TYPE, time=datetime.now(timezone.utc),
                data={"deadletter_id": letter.id, "instance": instance,
                      "replayed_at": format_time(datetime.now(timezone.utc)),
                      "target": {"topic": position.topic, "partition": position.partition,
                                 "offset": position.offset}})
            await producer.publish(topic, marker, key=original.key)
            done.append(letter.id)
    finally:
        if own_producer:
            await producer.stop()
    return ReplayReport(tuple(done), tuple(skipped), not_found, len(index.unreadable))


# ---------------------------------------------------------------------------------------------
# Command line


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _dlq_target(args: argparse.Namespace) -> tuple[KafkaSettings, dict[str, str]]:
    return kafka_target(args, client_id="edoc-gateway-dlq", topics={
        "deadletter": (args.topic, DEFAULT_DLQ_TOPIC),
        "audit": (getattr(args, "audit_topic", None), DEFAULT_AUDIT_TOPIC)})


def cmd_dlq_list(args: argparse.Namespace) -> int:
    try:
        settings, topics = _dlq_target(args)
        topic = topics["deadletter"]
        index = asyncio.run(read_dead_letters(settings, topic))
    except CliUsageError as exc:
        print(f"edoc-gateway dlq list: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaConnectorError as exc:
        print(f"edoc-gateway dlq list: cannot read {exc.reason}: {exc.message}",
              file=sys.stderr)
        return EXIT_USAGE
    letters = [letter for letter in index.letters if matches_reason(letter, args.reason)]
    if args.json:
        _print_json({"topic": topic, "dead_letters": [letter.summary() for letter in letters],
                     "unreadable": [item.__dict__ for item in index.unreadable]})
        return EXIT_OK
    for letter in letters:
        o = letter.original
        state = "replayed" if letter.replayed else "waiting"
        print(f"{letter.id}  {letter.reason}  {letter.flow}  attempts={letter.attempts}  "
              f"last={letter.last_failure}  {state}  from {o.topic}[{o.partition}]@{o.offset}")
        print(f"    {letter.message[:200]}")
    print(f"{len(letters)} dead letter(s) on {topic}"
          + (f"; {len(index.unreadable)} unreadable record(s) skipped"
             if index.unreadable else ""))
    return EXIT_OK


async def _replay_with_audit(settings: KafkaSettings, topic: str, audit_topic: str,
                             args: argparse.Namespace) -> ReplayReport:
    instance = f"edoc-gateway-dlq@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    async with EventProducer(settings) as producer:
        audit = AuditLog(instance, producer_sender(producer, audit_topic))
        async with audit:
            return await replay(settings, topic, reason=args.reason, ids=args.id,
                                rate_per_second=args.rate, audit=audit, instance=instance,
                                producer=producer)


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    if args.reason is None and not args.id and not args.all:
        print("edoc-gateway dlq replay: choose what to replay: --reason, --id or --all",
              file=sys.stderr)
        return EXIT_USAGE
    if not args.rate > 0:
        print("edoc-gateway dlq replay: --rate must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings, topics = _dlq_target(args)
        topic = topics["deadletter"]
        report = asyncio.run(_replay_with_audit(settings, topic, topics["audit"], args))
    except CliUsageError as exc:
        print(f"edoc-gateway dlq replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaConnectorError as exc:
        print(f"edoc-gateway dlq replay: stopped: {exc.reason}: {exc.message} (what was "
              "replayed is marked; run again to go on)", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _print_json({"topic": topic, **report.as_dict()})
    else:
        print(f"replayed {len(report.replayed)}, already replayed {len(report.already_replayed)}"
              + (f", not found: {', '.join(report.not_found)}" if report.not_found else ""))
    return EXIT_OK if not report.not_found else 1


def register_cli(subparsers: Any) -> None:
    """Add `dlq list` and `dlq replay` to the `edoc-gateway` command's subparsers."""
    parser = subparsers.add_parser("dlq", help="list and replay dead letters")
    dlq_sub = parser.add_subparsers(dest="dlq_command", metavar="DLQ_COMMAND")
    dlq_sub.required = True

    p = dlq_sub.add_parser("list", help="list dead letters (newest details, replay state)")
    add_kafka_arguments(p, topic_default=DEFAULT_DLQ_TOPIC, topic_help="dead-letter topic")
    p.add_argument("--reason", metavar="CODE", help="only this reason (a trailing * matches "
                                                    "a prefix: 'axis.*')")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_dlq_list)

    p = dlq_sub.add_parser(
        "replay", help="publish dead letters' original records again to their topics",
        description="Publish the selected dead letters' original records (same key, headers, "
                    "value) to their original topics, audited, at most --rate per second. "
                    "Dead letters replayed before are skipped. Exit 0 done, 1 an --id was not "
                    "found, 2 bad options or Kafka trouble.")
    add_kafka_arguments(p, topic_default=DEFAULT_DLQ_TOPIC, topic_help="dead-letter topic")
    p.add_argument("--reason", metavar="CODE", help="replay dead letters with this reason "
                                                    "(a trailing * matches a prefix)")
    p.add_argument("--id", action="append", metavar="ID", help="replay this dead letter "
                                                               "(repeatable)")
    p.add_argument("--all", action="store_true", help="replay every dead letter not yet "
                                                      "replayed")
    p.add_argument("--rate", type=float, default=5.0, metavar="N",
                   help="records per second (default 5)")
    p.add_argument("--audit-topic", help=f"where the replays are audited (default: from "
                                         f"--config, else {DEFAULT_AUDIT_TOPIC})")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_dlq_replay)


__all__ = ["DEADLETTER_TYPE", "DEFAULT_DLQ_TOPIC", "DeadLetter", "DeadLetterError",
           "DeadLetterIndex", "OriginalRecord", "REASONS", "REPLAYED_TYPE", "ReplayReport",
           "TokenBucket", "Unreadable", "collect_dead_letters", "dead_letter_event",
           "dead_letter_id", "decode_headers", "encode_headers", "list_dead_letters",
           "matches_reason", "publish_dead_letter", "read_dead_letters", "register_cli",
           "replay"]
