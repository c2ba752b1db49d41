"""Record every state change of every message as a hash-chained audit record, and check chains.

Each gateway instance writes one chain (`chain` = its instance id). A record is a flat JSON
object; `hash` is the SHA-256 (hex) of the canonical JSON of the record without `hash` (keys
sorted, no whitespace, UTF-8, non-ASCII kept as is), and `prev` is the previous record's hash
(64 zeros for the first), `seq` counts 0, 1, 2, ... So changing, dropping or reordering a record
breaks the chain at a place `verify_records` can point to:

    {"chain": "gw-1", "seq": 7, "prev": "3f0a…", "hash": "9b1c…", "time": "2024-05-17T02:30:00.120Z",
     "flow": "document", "step": "sent", "outcome": "ok", "agency": "000.00.00.H55",
     "document_id": "…", "event_id": "…", "axis_doc_id": "…", "package_sha256": "…"}

Records travel as CloudEvents `vn.gov.edoc.audit.record.v1` (binary mode) keyed by the chain
id, so one chain stays in one partition, in order. A chain starts with a `chain-opened` record
and ends, at a graceful stop, with `chain-closed`; a chain without its closing record is *open*
(the instance is running or crashed), which is not an error. An instance that restarts under
the same id starts a new run of the chain at seq 0 (`chain-opened`, prev = 64 zeros).

The topic's partition count must not change while chains are being written: a chain whose key
moves to another partition can no longer be read back in order.

    audit = AuditLog("gw-1", producer_sender(producer, "edoc.audit"))
    async with audit:
        await audit.record(flow="document", step="sent", outcome="ok", document_id=...)

`edoc-gateway audit verify` (see `register_cli`) reads the topic and reports the first broken
link; see docs/audit.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import KafkaConnectorError, KafkaSettings, read_topic
from edxml.errors import GatewayError
from gateway.ops.version import gateway_version

if TYPE_CHECKING:
    from connectors.kafka import EventProducer
    from gateway.metrics import GatewayMetrics

AUDIT_EVENT_TYPE = "vn.gov.edoc.audit.record.v1"
DEFAULT_AUDIT_TOPIC = "edoc.audit"
GENESIS = "0" * 64

FLOWS = ("document", "receipt", "inbound-document", "inbound-receipt", "dlq", "gateway")

#: Steps in use; `step` is checked against a pattern, not this list, so a new step needs no
#: change here, but please add it with its meaning.
STEPS: dict[str, str] = {
    "received": "an event or axis message was taken in",
    "validated": "the event passed schema and business rules",
    "signed": "the package was built and signed",
    "sent": "the axis accepted the package (axis_doc_id set)",
    "delivered": "the delivery event was published for the sender agency",
    "failed": "the message failed (reason set)",
    "dead-lettered": "the message went to the dead-letter topic (reason set)",
    "fetched": "an inbound package was downloaded from the axis",
    "verified": "an inbound package was read and its signature checked (signature set)",
    "published": "an inbound event was published for the recipient agency",
    "quarantined": "an inbound package failed verification and was kept aside (reason set)",
    "marked-done": "the axis message was marked done",
    "marked-fail": "the axis message was marked fail: the gateway gave up on it (reason in the "
                   "quarantine record before it)",
    "replayed": "a dead letter was published again to its original topic",
    "chain-opened": "first record of a chain run",
    "chain-closed": "last record of a chain run, written at a graceful stop",
}

#: Optional fields a record may carry, besides chain/seq/prev/hash/time/flow/step/outcome.
OPTIONAL_FIELDS = ("agency", "document_id", "event_id", "axis_doc_id", "package_sha256",
                   "signature", "reason", "version", "attachment_signatures")

REASONS: dict[str, str] = {
    "audit.record.invalid": "an audit record was asked for with a missing or malformed field "
                            "(a bug in the caller)",
    "audit.closed": "an audit record was asked for after the chain was closed",
}

#: What `verify_records` can find; the `kind` of a `BrokenLink`.
BREAK_KINDS: dict[str, str] = {
    "unparseable": "the record is not a JSON object with chain, seq, prev and hash",
    "altered": "the record's hash does not match its content: the record was changed",
    "broken-link": "the record's prev is not the hash of the chain's previous record: the "
                   "previous record was changed (and re-hashed) or this one was forged",
    "missing": "seq jumps: one or more records of the chain are missing",
    "reordered": "seq jumps, and the skipped record comes later in the topic: records are out "
                 "of order",
    "bad-start": "a seq-0 record is not a chain-opened record with prev = 64 zeros",
    "after-close": "the chain goes on after its chain-closed record",
}

_WORD = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Sender = Callable[[bytes, bytes, Sequence[tuple[str, bytes]]], Awaitable[object]]
Clock = Callable[[], datetime]


class AuditError(GatewayError):
    """An audit record could not be made (bad fields, closed chain)."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`: `2024-05-17T02:30:00.120Z`."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def canonical_json(record: dict[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no whitespace, UTF-8, non-ASCII kept."""
    return _CANONICAL_JSON.encode(record).encode("utf-8")


#: json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
#: allow_nan=False), its encoder made once instead of per call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   allow_nan=False)


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of `record` without its `hash` field."""
    body = {name: value for name, value in record.items() if name != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def producer_sender(producer: EventProducer, topic: str) -> Sender:
    """A `send` for `AuditLog` that writes through an `EventProducer` and waits for the ack.

    It also has `enqueue` (see `AuditLog`): the record takes its place in the producer's queue
    and the acknowledgement is awaited afterwards, so records are sent pipelined, in order."""
    from connectors.kafka import acknowledged

    class _Send:
        async def __call__(self, key: bytes, value: bytes,
                           headers: Sequence[tuple[str, bytes]]) -> object:
            return await producer.send_record(topic, KafkaRecord(key=key, value=value,
                                                                 headers=tuple(headers)))

        async def enqueue(self, key: bytes, value: bytes,
                          headers: Sequence[tuple[str, bytes]]) -> Awaitable[object]:
            future = await producer.enqueue_record(topic, KafkaRecord(
                key=key, value=value, headers=tuple(headers)))
            return _Ack(future, topic, acknowledged)

    return _Send()


class _Ack:
    """The acknowledgement of one enqueued record: awaited once by its writer, inspected (done,
    failed) by the chain before the next record."""

    __slots__ = ("future", "topic", "_wait")

    def __init__(self, future: asyncio.Future[Any], topic: str,
                 wait: Callable[[asyncio.Future[Any], str], Awaitable[object]]) -> None:
        self.future = future
        self.topic = topic
        self._wait = wait

    def __await__(self) -> Any:
        return self._wait(self.future, self.topic).__await__()

    def done(self) -> bool:
        return self.future.done()

    def failed(self) -> bool:
        return self.future.done() and (self.future.cancelled()
                                       or self.future.exception() is not None)


@dataclass
class _Unacked:
    record: dict[str, Any]
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    ack: _Ack


class AuditLog:
    """One instance's audit chain. Does not own a producer: `send(key, value, headers)` does.

    `record` appends under a lock, so records are numbered and sent in one order and a chain
    never forks. If `send` fails the record stays pending and is sent again, byte for byte,
    before the next one (Kafka may have stored it after all; `verify_records` accepts an exact
    repeat), and the error propagates to the caller's retry policy.

    When `send` has an `enqueue` (as `producer_sender`'s has), the lock is held only while a
    record is built and put in the producer's queue, not across its acknowledgement: records
    are pipelined, and each writer then awaits its own record's acknowledgement. The order is
    still the chain's: the idempotent producer stores a partition's records in the order they
    were enqueued, and never a record whose predecessor it did not store. So when an
    acknowledgement fails, the records after it that were acknowledged prove it stored; the
    failed ones after the last acknowledged record are sent again, in order, one by one, before
    the next record, as in the unpipelined case. A crash between enqueuing and storing leaves the
    chain without its tail, which `verify_records` reports as an open chain, as before.
    """

    def __init__(self, chain: str, send: Sender, *, source: str | None = None,
                 clock: Clock = _utcnow, metrics: GatewayMetrics | None = None,
                 version: str | None = None) -> None:
        if not isinstance(chain, str) or not chain.strip() or len(chain) > 200:
            raise AuditError("audit.record.invalid", "the chain id must be a non-empty string "
                             "of at most 200 characters", where="chain")
        self.chain = chain
        self.version = version or gateway_version()
        self.source = source or f"urn:edoc:gateway:{chain}"
        self._send = send
        self._clock = clock
        self._metrics = metrics
        # The lock protects seq/prev/pending: the next record is built only after the previous
        # one was acknowledged, which is what keeps the chain linear.
        self._lock = asyncio.Lock()
        self._seq = 0
        self._prev = GENESIS
        self._pending: tuple[dict[str, Any], bytes, bytes, tuple[tuple[str, bytes], ...]] | None \
            = None
        self._opened = False
        self._closed = False
        self._enqueue = getattr(send, "enqueue", None)
        self._unacked: list[_Unacked] = []   # pipelined records not yet known to be stored

    @property
    def next_seq(self) -> int:
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._prev

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> AuditLog:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> dict[str, Any] | None:
        """Write the `chain-opened` record (done by the first `record` if not called)."""
        async with self._lock:
            if self._opened:
                return None
            return await self._append(flow="gateway", step="chain-opened", outcome="ok")

    async def close(self) -> dict[str, Any] | None:
        """Write `chain-closed` (graceful stop). Later `record` calls raise `audit.closed`."""
        async with self._lock:
            if self._closed:
                return None
            await self._settle(wait=True)
            if not self._opened:
                await self._append(flow="gateway", step="chain-opened", outcome="ok")
            result = await self._append(flow="gateway", step="chain-closed", outcome="ok")
            self._closed = True
            return result

    async def record(self, *, flow: str, step: str, outcome: str, agency: str | None = None,
                     document_id: str | None = None, event_id: str | None = None,
                     axis_doc_id: str | None = None, package_sha256: str | None = None,
                     signature: str | None = None, reason: str | None = None,
                     attachment_signatures: str | None = None) -> dict[str, Any]:
        """Append one record and wait until `send` acknowledged it; returns the record."""
        fields = {"agency": agency, "document_id": document_id, "event_id": event_id,
                  "axis_doc_id": axis_doc_id, "package_sha256": package_sha256,
                  "signature": signature, "reason": reason,
                  "attachment_signatures": attachment_signatures}
        if self._enqueue is not None:
            return await self._record_pipelined(flow=flow, step=step, outcome=outcome, **fields)
        async with self._lock:
            if self._closed:
                raise AuditError("audit.closed", f"chain {self.chain} is closed; no record "
                                 f"for {flow}/{step} can be added")
            if not self._opened:
                await self._append(flow="gateway", step="chain-opened", outcome="ok")
            return await self._append(flow=flow, step=step, outcome=outcome, **fields)

    async def _record_pipelined(self, **fields: Any) -> dict[str, Any]:
        async with self._lock:
            if self._closed:
                raise AuditError("audit.closed", f"chain {self.chain} is closed; no record "
                                 f"for {fields['flow']}/{fields['step']} can be added")
            await self._settle(wait=False)
            opened = None
            if not self._opened:
                opened = await self._enqueued(flow="gateway", step="chain-opened", outcome="ok")
            mine = await self._enqueued(**fields)
        # Outside the lock: the next writer enqueues its record while this one is in flight.
        if opened is not None:
            await opened.ack
        await mine.ack
        self._acknowledged(mine)
        return mine.record

    async def _enqueued(self, *, flow: str, step: str, outcome: str,
                        **optional: str | None) -> _Unacked:
        """Build the next record and put it in the producer's queue (inside the lock)."""
        assert self._enqueue is not None
        if step == "chain-opened":
            optional["version"] = self.version
        record, key, value, headers = self._make(flow=flow, step=step, outcome=outcome,
                                                 **optional)
        ack = await self._enqueue(key, value, headers)
        entry = _Unacked(record, key, value, headers, ack)
        self._unacked.append(entry)
        self._seq += 1
        self._prev = record["hash"]
        if step == "chain-opened":
            self._opened = True
        return entry

    def _acknowledged(self, entry: _Unacked) -> None:
        if self._metrics is not None:
            self._metrics.audit_records.labels(flow=entry.record["flow"]).inc()
        # Stored, and so is every record enqueued before it: forget them.
        for index, other in enumerate(self._unacked):
            if other is entry:
                del self._unacked[:index + 1]
                return

    async def _settle(self, *, wait: bool) -> None:
        """Before the next record (inside the lock): if an acknowledgement failed, send the
        records that may not be stored again, in order, one by one. With `wait`, first let
        every record in flight be acknowledged (closing the chain)."""
        if not self._unacked:
            return
        if wait or any(e.ack.failed() for e in self._unacked):
            await asyncio.gather(*(e.ack.future for e in self._unacked),
                                 return_exceptions=True)
        last_ok = -1
        for index, entry in enumerate(self._unacked):
            if entry.ack.done() and not entry.ack.failed():
                last_ok = index
        if not any(e.ack.failed() for e in self._unacked[last_ok + 1:]):
            if all(e.ack.done() for e in self._unacked):
                self._unacked.clear()
            return
        # Everything up to the last acknowledged record is stored; what failed after it is not
        # known to be: send it again (an exact repeat is what verify_records accepts).
        del self._unacked[:last_ok + 1]
        while self._unacked:
            entry = self._unacked[0]
            await self._send(entry.key, entry.value, entry.headers)
            del self._unacked[0]
            if self._metrics is not None:
                self._metrics.audit_records.labels(flow=entry.record["flow"]).inc()

    # -- inside the lock -------------------------------------------------------------------

    async def _append(self, *, flow: str, step: str, outcome: str,
                      **optional: str | None) -> dict[str, Any]:
        if self._pending is not None:
            await self._deliver()
        if step == "chain-opened":
            # Which gateway version wrote the chain: an auditor reads it off the first record.
            optional["version"] = self.version
        # From here on the record owns its seq: it is sent now or, if that fails, before the
        # next one, never replaced by a different record with the same seq.
        self._pending = self._make(flow=flow, step=step, outcome=outcome, **optional)
        record = self._pending[0]
        self._seq += 1
        self._prev = record["hash"]
        if step == "chain-opened":
            self._opened = True
        await self._deliver()
        return record

    def _make(self, *, flow: str, step: str, outcome: str, **optional: str | None
              ) -> tuple[dict[str, Any], bytes, bytes, tuple[tuple[str, bytes], ...]]:
        """The next record and its Kafka form (key, value, headers)."""
        record = self._build(flow=flow, step=step, outcome=outcome, **optional)
        moment = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        extensions = {"agency": record["agency"]} if "agency" in record else {}
        event = CloudEvent(id=record["hash"], source=self.source, type=AUDIT_EVENT_TYPE,
                           time=moment, subject=record.get("document_id"), data=record,
                           extensions=extensions)
        kafka_record = event.to_record(self.chain)
        assert kafka_record.key is not None and kafka_record.value is not None
        return record, kafka_record.key, kafka_record.value, kafka_record.headers

    async def _deliver(self) -> None:
        assert self._pending is not None
        record, key, value, headers = self._pending
        await self._send(key, value, headers)
        self._pending = None
        if self._metrics is not None:
            self._metrics.audit_records.labels(flow=record["flow"]).inc()

    def _build(self, *, flow: str, step: str, outcome: str,
               **optional: str | None) -> dict[str, Any]:
        if flow not in FLOWS:
            raise AuditError("audit.record.invalid", f"flow {str(flow)[:40]!r} is not one of "
                             f"{', '.join(FLOWS)}", where="flow")
        for name, value in (("step", step), ("outcome", outcome)):
            if not isinstance(value, str) or not _WORD.match(value):
                raise AuditError("audit.record.invalid", f"{name} {str(value)[:40]!r} must be "
                                 "a lowercase word (letters, digits, '-')", where=name)
        record: dict[str, Any] = {"chain": self.chain, "seq": self._seq, "prev": self._prev,
                                  "time": format_time(self._clock()), "flow": flow,
                                  "step": step, "outcome": outcome}
        for name in OPTIONAL_FIELDS:
            value = optional.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value or len(value) > 1000:
                raise AuditError("audit.record.invalid", f"{name} must be a non-empty string "
                                 "of at most 1000 characters", where=name)
            if name == "package_sha256" and not _SHA256.match(value):
                raise AuditError("audit.record.invalid", "package_sha256 must be 64 lowercase "
                                 "hex digits", where=name)
            record[name] = value
        record["hash"] = record_hash(record)
        return record


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class AuditEntry:
    """One record of the audit topic as read back: where it is and its value bytes."""

    partition: int
    offset: int
    value: bytes | None

    @classmethod
    def from_record(cls, record: KafkaRecord) -> AuditEntry:
        return cls(record.partition, record.offset, record.value)


@dataclass(frozen=True)
class BrokenLink:
    """The first place a chain stops being verifiable."""

    kind: str
    partition: int
    offset: int
    chain: str | None
    seq: int | None
    message: str
    expected_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "partition": self.partition, "offset": self.offset,
                "chain": self.chain, "seq": self.seq, "expected_seq": self.expected_seq,
                "message": self.message}


@dataclass(frozen=True)
class ChainSummary:
    """One run of one chain: from its seq-0 record to its last record read."""

    chain: str
    run: int
    partition: int
    records: int
    last_seq: int
    state: str  # "closed" | "open" | "broken"

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "run": self.run, "partition": self.partition,
                "records": self.records, "last_seq": self.last_seq, "state": self.state}


@dataclass(frozen=True)
class AuditReport:
    """What `verify_records` found. `broken` is the first break in (partition, offset) order;
    `breaks` has the first break of every broken chain."""

    records: int
    chains: int
    closed_chains: int
    open_chains: int
    duplicates: int
    breaks: tuple[BrokenLink, ...] = ()
    summaries: tuple[ChainSummary, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def broken(self) -> BrokenLink | None:
        return self.breaks[0] if self.breaks else None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "chains": self.chains,
                "closed_chains": self.closed_chains, "open_chains": self.open_chains,
                "duplicates": self.duplicates,
                "broken": self.broken.as_dict() if self.broken else None,
                "breaks": [b.as_dict() for b in self.breaks],
                "summaries": [s.as_dict() for s in self.summaries]}


@dataclass
class _Run:
    chain: str
    run: int
    partition: int
    next_seq: int
    last_hash: str
    records: int = 1
    closed: bool = False
    broken: bool = False


@dataclass(frozen=True)
class _Parsed:
    entry: AuditEntry
    record: dict[str, Any]
    chain: str
    seq: int


def _parse(entry: AuditEntry) -> _Parsed | str:
    """The record, or why it cannot be read as one."""
    if entry.value is None:
        return "the record has no value"
    try:
        record = json.loads(entry.value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "the value is not UTF-8 JSON"
    if not isinstance(record, dict):
        return "the value is not a JSON object"
    chain, seq = record.get("chain"), record.get("seq")
    if not isinstance(chain, str) or not chain:
        return "chain is missing or not a string"
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return "seq is missing or not a non-negative integer"
    for name in ("prev", "hash"):
        if not isinstance(record.get(name), str) or not _SHA256.match(record[name]):
            return f"{name} is missing or not 64 lowercase hex digits"
    return _Parsed(entry, record, chain, seq)


def _mark_broken(runs: dict[str, _Run], finished: list[_Run], chain: str, run: _Run | None,
                 partition: int, *, new_run: bool = False) -> None:
    """Stop checking this run of `chain` (a seq-0 record that is not an opening starts a new,
    broken run: the earlier run is kept as it was)."""
    if run is None or new_run:
        if run is not None:
            finished.append(run)
        runs[chain] = _Run(chain, run.run + 1 if run else 0, partition, 0, GENESIS,
                           records=0, broken=True)
    else:
        run.broken = True


def verify_records(records: Iterable[AuditEntry]) -> AuditReport:
    """Check every chain in `records`: hashes, prev links, seq continuity, nothing after close.

    Entries are taken in (partition, offset) order, whatever order they come in. Each chain
    is checked up to its first break; other chains are still checked.
    """
    entries = sorted(records, key=lambda e: (e.partition, e.offset))
    parsed: list[_Parsed | tuple[AuditEntry, str]] = []
    for entry in entries:
        result = _parse(entry)
        parsed.append(result if isinstance(result, _Parsed) else (entry, result))
    # For telling "missing" from "reordered": where each (chain, seq) occurs.
    positions: dict[tuple[str, int], list[int]] = {}
    for index, item in enumerate(parsed):
        if isinstance(item, _Parsed):
            positions.setdefault((item.chain, item.seq), []).append(index)

    runs: dict[str, _Run] = {}
    finished: list[_Run] = []
    breaks: list[BrokenLink] = []
    duplicates = 0
    count = 0

    def brk(kind: str, entry: AuditEntry, chain: str | None, seq: int | None, message: str,
            expected: int | None = None) -> None:
        breaks.append(BrokenLink(kind, entry.partition, entry.offset, chain, seq, message,
                                 expected))

    for index, item in enumerate(parsed):
        count += 1
        if not isinstance(item, _Parsed):
            entry, why = item
            brk("unparseable", entry, None, None, f"record at partition {entry.partition} "
                f"offset {entry.offset} is unreadable: {why}")
            continue
        entry, record, chain, seq = item.entry, item.record, item.chain, item.seq
        run = runs.get(chain)
        if record_hash(record) != record["hash"]:
            if run is None or not run.broken:
                brk("altered", entry, chain, seq, f"chain {chain} seq {seq}: the hash does not "
                    "match the record's content")
                _mark_broken(runs, finished, chain, run, entry.partition)
            continue
        if run is not None and seq == run.next_seq - 1 and record["hash"] == run.last_hash:
            duplicates += 1  # the same record sent again after an unacknowledged send
            continue
        if seq == 0:
            if record.get("step") == "chain-opened" and record["prev"] == GENESIS:
                # A new run of this chain: the first start, or a restart under the same id.
                if run is not None:
                    finished.append(run)
                runs[chain] = _Run(chain, run.run + 1 if run else 0, entry.partition, 1,
                                   record["hash"])
            else:
                brk("bad-start", entry, chain, seq, f"chain {chain} seq 0 is not a "
                    "chain-opened record with prev = 64 zeros")
                _mark_broken(runs, finished, chain, run, entry.partition, new_run=True)
            continue
        if run is not None and run.broken:
            continue
        expected = 0 if run is None else run.next_seq
        if run is not None and run.closed:
            brk("after-close", entry, chain, seq, f"chain {chain} goes on with seq {seq} "
                "after its chain-closed record")
            run.broken = True
            continue
        if seq != expected:
            if seq > expected:
                later = any(i > index for i in positions.get((chain, expected), ()))
                kind = "reordered" if later else "missing"
                message = f"chain {chain}: expected seq {expected}, found seq {seq}; " \
                          f"seq {expected} {'comes later' if later else 'is missing'}"
            else:
                kind = "reordered"
                message = f"chain {chain}: expected seq {expected}, found seq {seq}, " \
                          "which belongs earlier"
            brk(kind, entry, chain, seq, message, expected)
            _mark_broken(runs, finished, chain, run, entry.partition)
            continue
        assert run is not None
        if record["prev"] != run.last_hash:
            brk("broken-link", entry, chain, seq, f"chain {chain} seq {seq}: prev is not the "
                f"hash of seq {seq - 1}; seq {seq - 1} was altered or this record is forged")
            run.broken = True
            continue
        run.next_seq += 1
        run.last_hash = record["hash"]
        run.records += 1
        if record.get("step") == "chain-closed":
            run.closed = True

    finished.extend(runs.values())
    summaries = tuple(
        ChainSummary(r.chain, r.run, r.partition, r.records, r.next_seq - 1,
                     "broken" if r.broken else "closed" if r.closed else "open")
        for r in sorted(finished, key=lambda r: (r.chain, r.run)))
    ordered = tuple(sorted(breaks, key=lambda b: (b.partition, b.offset)))
    return AuditReport(records=count, chains=len(summaries),
                       closed_chains=sum(s.state == "closed" for s in summaries),
                       open_chains=sum(s.state == "open" for s in summaries),
                       duplicates=duplicates, breaks=ordered, summaries=summaries)


async def verify_topic(settings: KafkaSettings, topic: str = DEFAULT_AUDIT_TOPIC, *,
                       idle_timeout_s: float = 30.0) -> AuditReport:
    """Read the whole audit topic (as of now) and verify it."""
    records = await read_topic(settings, topic, idle_timeout_s=idle_timeout_s)
    return verify_records(AuditEntry.from_record(r) for r in records)


# ---------------------------------------------------------------------------------------------
# Command line (shared with gateway.dlq)

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2


class CliUsageError(Exception):
    """Bad options or settings; the command exits with 2."""


def add_kafka_arguments(parser: argparse.ArgumentParser, *, topic_default: str,
                        topic_help: str) -> None:
    """--bootstrap / --config / --topic, the same for every Kafka-reading command."""
    parser.add_argument("--bootstrap", metavar="HOST:PORT[,...]",
                        help="Kafka bootstrap servers (default: from --config, else "
                             "KAFKA_BOOTSTRAP_SERVERS); security settings from KAFKA_*")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="the gateway's TOML configuration, for Kafka settings and topics")
    parser.add_argument("--topic", help=f"{topic_help} (default: from --config, "
                                        f"else {topic_default})")


def _load_config(path: Path, env: Mapping[str, str]) -> Any:
    try:
        from gateway.config import load_config
    except ImportError:
        raise CliUsageError("--config is not available in this installation; give "
                            "--bootstrap and --topic") from None
    try:
        return load_config(path, env)
    except GatewayError as exc:
        raise CliUsageError(f"configuration {path}: {exc.reason}: {exc.message}") from None
    except OSError as exc:
        raise CliUsageError(f"cannot read {path}: {exc.strerror}") from None


def kafka_target(args: argparse.Namespace, *, client_id: str,
                 topics: Mapping[str, tuple[str | None, str]],
                 env: Mapping[str, str] | None = None) -> tuple[KafkaSettings, dict[str, str]]:
    """Kafka settings and topic names for a command.

    Settings: --bootstrap (with the KAFKA_* security variables), else the --config file, else
    the KAFKA_* variables. `topics` maps a topic's name in the configuration's [topics] table
    (`audit`, `deadletter`) to (the value given on the command line or None, the default).
    """
    env = dict(os.environ if env is None else env)
    config = _load_config(args.config, env) if getattr(args, "config", None) else None
    names: dict[str, str] = {}
    for name, (given, default) in topics.items():
        configured = getattr(getattr(config, "topics", None), name, None)
        names[name] = given or configured or default
    try:
        if args.bootstrap:
            env["KAFKA_BOOTSTRAP_SERVERS"] = args.bootstrap
            return KafkaSettings.from_env(env, client_id=client_id), names
        if config is not None:
            return config.kafka.settings(), names
        if env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
            return KafkaSettings.from_env(env, client_id=client_id), names
    except KafkaConnectorError as exc:
        raise CliUsageError(f"Kafka settings: {exc.message}") from None
    raise CliUsageError("no Kafka bootstrap servers: give --bootstrap or --config, or set "
                        "KAFKA_BOOTSTRAP_SERVERS")


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _print_report(report: AuditReport, topic: str) -> None:
    state = "intact" if report.ok else "BROKEN"
    print(f"audit topic {topic}: {state}; {report.records} records, {report.chains} chain runs "
          f"({report.closed_chains} closed, {report.open_chains} open"
          + (f", {len(report.breaks)} broken" if report.breaks else "") + ")"
          + (f", {report.duplicates} repeated records" if report.duplicates else ""))
    for link in report.breaks:
        print(f"  {link.kind} at partition {link.partition} offset {link.offset}: "
              f"{link.message}")
    for summary in report.summaries:
        print(f"  chain {summary.chain} run {summary.run} (partition {summary.partition}): "
              f"{summary.records} records, last seq {summary.last_seq}, {summary.state}")


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """`audit verify`: 0 intact, 1 broken, 2 bad options or Kafka unreadable."""
    try:
        settings, topics = kafka_target(args, client_id="edoc-gateway-audit",
                                        topics={"audit": (args.topic, DEFAULT_AUDIT_TOPIC)})
        topic = topics["audit"]
        report = asyncio.run(verify_topic(settings, topic))
    except CliUsageError as exc:
        print(f"edoc-gateway audit verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaConnectorError as exc:
        print(f"edoc-gateway audit verify: cannot read the audit topic: {exc.reason}: "
              f"{exc.message}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _print_json({"topic": topic, **report.as_dict()})
    else:
        _print_report(report, topic)
    return EXIT_OK if report.ok else EXIT_BROKEN


def register_cli(subparsers: Any) -> None:
    """Add `audit verify` to the `edoc-gateway` command's subparsers."""
    parser = subparsers.add_parser("audit", help="check the audit trail")
    audit_sub = parser.add_subparsers(dest="audit_command", metavar="AUDIT_COMMAND")
    audit_sub.required = True
    verify = audit_sub.add_parser(
        "verify", help="read the audit topic and check every hash chain",
        description="Read the whole audit topic and check every chain: hashes, links and "
                    "sequence. Exit 0 intact, 1 broken, 2 bad options or Kafka unreachable.")
    add_kafka_arguments(verify, topic_default=DEFAULT_AUDIT_TOPIC, topic_help="audit topic")
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.set_defaults(func=cmd_audit_verify)


__all__ = ["AUDIT_EVENT_TYPE", "AuditEntry", "AuditError", "AuditLog", "AuditReport",
           "BREAK_KINDS", "BrokenLink", "ChainSummary", "DEFAULT_AUDIT_TOPIC", "FLOWS",
           "GENESIS", "OPTIONAL_FIELDS", "REASONS", "STEPS", "canonical_json", "format_time",
           "kafka_target", "producer_sender", "record_hash", "register_cli", "verify_records",
           "verify_topic"]
