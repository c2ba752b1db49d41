"""The trace index: what the gateway recorded about each document, in a local SQLite file.

`edoc-gateway trace` and the status console answer "where is document X?" from here, not by
scanning topics: a query is a few indexed lookups whatever the size of the topics. The index
is a cache, never a source of truth. It is filled from the topics the gateway already writes
(audit, ledger, delivery outcomes, dead letters, and the agencies' and the gateway's event
topics), remembers how far it read each partition, and on each `update` reads only what is new.
Deleting the file only costs one full read.

Each record becomes at most one *fact*: a row with the identifiers a query can name
(DocumentId, số/ký hiệu, event id, axis DocId), the document it refers to (a revocation or
replacement names the original), a status code for receipts, a reason for failures, a time.

    index = TraceIndex(Path("var/trace.sqlite"))
    await index.update(settings, sources)         # sources: TopicSource per gateway/province
    facts = index.lookup("V/v thử nghiệm")       # every fact about the matching documents
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from connectors.cloudevents import CloudEvent, EnvelopeError, KafkaRecord
from connectors.kafka import KafkaConnectorError, KafkaSettings, translate_error
from edxml.errors import GatewayError

REASONS: dict[str, str] = {
    "trace.index": "the trace index file cannot be opened or written (path, permissions, disk)",
}

#: Topic roles a source may name (the `[topics]` names of the configuration).
ROLES = ("outbound_documents", "outbound_receipts", "delivery", "inbound_documents",
         "inbound_receipts", "audit", "deadletter", "ledger")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS facts (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    source TEXT NOT NULL, time TEXT NOT NULL, kind TEXT NOT NULL,
    flow TEXT, step TEXT, outcome TEXT,
    document_id TEXT, ref_document_id TEXT, event_id TEXT, axis_doc_id TEXT, notation TEXT,
    agency TEXT, status_code TEXT, reason TEXT, detail TEXT,
    UNIQUE (topic, partition, offset));
CREATE INDEX IF NOT EXISTS facts_document ON facts (document_id);
CREATE INDEX IF NOT EXISTS facts_ref ON facts (ref_document_id);
CREATE INDEX IF NOT EXISTS facts_event ON facts (event_id);
CREATE INDEX IF NOT EXISTS facts_axis ON facts (axis_doc_id);
CREATE INDEX IF NOT EXISTS facts_notation ON facts (notation);
CREATE INDEX IF NOT EXISTS facts_kind_time ON facts (kind, time);
"""

_COLUMNS = ("topic", "partition", "offset", "source", "time", "kind", "flow", "step", "outcome",
            "document_id", "ref_document_id", "event_id", "axis_doc_id", "notation", "agency",
            "status_code", "reason", "detail")

#: Queries name a document by these columns.
_QUERY_COLUMNS = ("document_id", "event_id", "axis_doc_id", "notation")


class TraceIndexError(GatewayError):
    """The index file cannot be used (`trace.index`)."""


@dataclass(frozen=True)
class TopicSource:
    """One gateway deployment's topics (a province): `label` is shown on each line of a
    timeline (the axis systemid by default), `topics` maps a role of `ROLES` to a topic name."""

    label: str
    topics: Mapping[str, str]

    @classmethod
    def from_config(cls, config: Any, label: str | None = None) -> TopicSource:
        t = config.topics
        # Shared topics by their role; per-agency ones (a `{agency}` template) once per agency.
        topics = {role: name for role in ROLES
                  if (name := getattr(t, role, None)) and "{agency}" not in name}
        for topic, (kind, _agency) in config.outbound_topics().items():
            topics.setdefault(f"outbound_{kind}:{topic}", topic)
        for topic in config.delivery_topics():
            topics.setdefault(f"delivery:{topic}", topic)
        for topic, kind in config.inbound_topics().items():
            topics.setdefault(f"inbound_{kind}:{topic}", topic)
        return cls(label or config.axis.systemid, topics)

    def topic_roles(self) -> dict[str, str]:
        """topic name -> role (without the per-agency suffix)."""
        return {topic: role.split(":", 1)[0] for role, topic in self.topics.items()}


@dataclass(frozen=True)
class Fact:
    """One thing that happened to a document, as one record told it."""

    topic: str
    partition: int
    offset: int
    source: str
    time: str                    # ISO 8601 UTC, `...Z`
    kind: str                    # audit, document.send, receipt.send, delivery.accepted, ...
    flow: str | None = None
    step: str | None = None
    outcome: str | None = None
    document_id: str | None = None
    ref_document_id: str | None = None   # the original a revocation/replacement names
    event_id: str | None = None
    axis_doc_id: str | None = None
    notation: str | None = None          # số/ký hiệu, e.g. 101/UBND-VP
    agency: str | None = None
    status_code: str | None = None
    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> tuple[Any, ...]:
        values = {name: getattr(self, name) for name in _COLUMNS if name != "detail"}
        values["detail"] = json.dumps(dict(self.detail), ensure_ascii=False,
                                      separators=(",", ":")) if self.detail else None
        return tuple(values[name] for name in _COLUMNS)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Fact:
        values = {name: row[name] for name in _COLUMNS}
        values["detail"] = json.loads(values["detail"]) if values["detail"] else {}
        return cls(**values)

    @property
    def moment(self) -> datetime:
        return parse_time(self.time) or datetime.fromtimestamp(0, timezone.utc)

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _COLUMNS if name != "detail"}
        out["detail"] = dict(self.detail)
        return {k: v for k, v in out.items() if v not in (None, {}, "")}


# ---------------------------------------------------------------------------------------------
# Records -> facts (pure)

def format_time(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _text(value: Any, limit: int = 300) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        return None
    return value[:limit]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def notation_of(header: Mapping[str, Any]) -> str | None:
    """số/ký hiệu (`101/UBND-VP`) of a message header's `code`, or of a `response_for`."""
    code = header.get("code")
    if isinstance(code, str):
        return _text(code)
    code = _obj(code)
    parts = [p for p in (code.get("code_number"), code.get("code_notation"))
             if isinstance(p, str) and p]
    return "/".join(parts) or None


def _record_time(record: KafkaRecord) -> str:
    if record.timestamp_ms:
        return format_time(datetime.fromtimestamp(record.timestamp_ms / 1000, timezone.utc))
    return format_time(datetime.fromtimestamp(0, timezone.utc))


def fact_of(record: KafkaRecord, role: str, source: str) -> Fact | None:
    """The fact a record tells, or None for a record that says nothing about a document (or is
    not readable: the index never fails on a record, it skips it)."""
    base = {"topic": record.topic, "partition": record.partition, "offset": record.offset,
            "source": source}
    if role == "ledger":
        return _ledger_fact(record, base)
    try:
        event = CloudEvent.from_record(record)
    except (EnvelopeError, ValueError, TypeError):
        return None
    data = _obj(event.data)
    when = format_time(event.time) if event.time else _record_time(record)
    agency = _text(event.extensions.get("agency")) if event.extensions else None
    kind = event.type.removeprefix("vn.gov.edoc.").removesuffix(".v1")
    common = {**base, "time": when, "kind": kind, "agency": agency}
    try:
        return _event_fact(kind, event, data, common)
    except (AttributeError, TypeError, ValueError):
        return None


def _event_fact(kind: str, event: CloudEvent, data: dict[str, Any],
                common: dict[str, Any]) -> Fact | None:
    if kind == "audit.record":
        if not data.get("document_id") and not data.get("event_id") \
                and not data.get("axis_doc_id"):
            return None  # chain-opened, started, chain-closed: about the gateway, not a document
        return Fact(**{**common, "time": _text(data.get("time")) or common["time"],
                       "agency": _text(data.get("agency")) or common["agency"]},
                    flow=_text(data.get("flow")), step=_text(data.get("step")),
                    outcome=_text(data.get("outcome")),
                    document_id=_text(data.get("document_id")),
                    event_id=_text(data.get("event_id")),
                    axis_doc_id=_text(data.get("axis_doc_id")),
                    reason=_text(data.get("reason")),
                    detail={k: data[k] for k in ("chain", "seq", "signature") if k in data})
    if kind in ("document.send", "document.arrived"):
        package = _obj(data.get("package")) if kind == "document.arrived" else data
        header = _obj(package.get("message_header"))
        business = _obj(_obj(package.get("trace_header_list")).get("business")) \
            or _obj(data.get("business"))
        recipients = [_text(_obj(t).get("organ_id")) for t in header.get("to") or ()
                      if isinstance(t, dict)]
        detail = {"subject": _text(header.get("subject"), 200),
                  "from": _text(_obj(header.get("from")).get("organ_id")),
                  "to": [r for r in recipients if r]}
        if business.get("business_doc_type") not in (None, 0, "0"):
            detail["business_doc_type"] = business.get("business_doc_type")
        if data.get("secrecy") not in (None, "none"):
            # The gateway refuses secret documents, and nothing of their content is kept: not
            # even the subject goes into the index (or onto the console).
            detail = {"from": detail.get("from"), "to": detail.get("to"), "secret": True}
        return Fact(**common, flow="document" if kind == "document.send" else "inbound-document",
                    document_id=_text(header.get("document_id")) or _text(event.subject),
                    ref_document_id=_text(business.get("document_id")),
                    event_id=event.id, axis_doc_id=_text(data.get("axis_doc_id")),
                    notation=notation_of(header), detail={k: v for k, v in detail.items() if v})
    if kind in ("receipt.send", "receipt.arrived"):
        header = _obj(data.get("message_header"))
        answered = _obj(header.get("response_for"))
        return Fact(**common, flow="receipt" if kind == "receipt.send" else "inbound-receipt",
                    document_id=_text(answered.get("document_id")) or _text(event.subject),
                    event_id=event.id, axis_doc_id=_text(data.get("axis_doc_id")),
                    status_code=_text(header.get("status_code"), 4),
                    detail={k: v for k, v in {
                        "from": _text(_obj(header.get("from")).get("organ_id")),
                        "description": _text(header.get("description"), 200)}.items() if v})
    if kind in ("delivery.accepted", "delivery.failed"):
        return Fact(**common, flow=_text(data.get("flow")),
                    document_id=_text(data.get("document_id")) or _text(event.subject),
                    event_id=_text(data.get("event_id")),
                    axis_doc_id=_text(data.get("axis_doc_id")),
                    reason=_text(data.get("reason")),
                    outcome="ok" if kind == "delivery.accepted" else "failed",
                    detail={k: v for k, v in {"message": _text(data.get("message"), 300),
                                              "attempts": data.get("attempts")}.items()
                            if v is not None})
    if kind == "deadletter":
        original = _obj(data.get("original"))
        headers = _obj(original.get("headers"))
        ce_id = _b64_text(headers.get("ce_id"))
        subject = _b64_text(headers.get("ce_subject"))
        key = event.subject or None
        return Fact(**{**common, "time": _text(data.get("last_failure")) or common["time"]},
                    flow=_text(data.get("flow")), document_id=subject or _text(key),
                    event_id=ce_id, axis_doc_id=_text(original.get("axis_doc_id")),
                    reason=_text(data.get("reason")), outcome="failed",
                    detail={k: v for k, v in {"deadletter_id": event.id,
                                              "message": _text(data.get("message"), 300),
                                              "topic": _text(original.get("topic"))}.items()
                            if v})
    if kind == "deadletter.replayed":
        return Fact(**common, flow="dlq", step="replayed",
                    detail={"deadletter_id": _text(data.get("deadletter_id"))})
    return None


def _b64_text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    if not isinstance(value, str):
        return None
    try:
        return _text(base64.b64decode(value, validate=True))
    except ValueError:
        return None


def _ledger_fact(record: KafkaRecord, base: dict[str, Any]) -> Fact | None:
    if record.value is None or record.key is None:
        return None
    try:
        raw = json.loads(record.value)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    moment = raw.get("time")
    when = format_time(datetime.fromtimestamp(moment, timezone.utc)) \
        if isinstance(moment, (int, float)) else _record_time(record)
    notation = _text(raw.get("notation"))
    return Fact(**base, time=when, kind="ledger", flow=_text(raw.get("flow")),
                step=_text(raw.get("state")), document_id=_text(raw.get("document_id")),
                event_id=_text(record.key), axis_doc_id=_text(raw.get("axis_doc_id")),
                notation=notation, agency=_text(raw.get("sender")),
                reason=_text(raw.get("reason")))


def normalise_query(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# The SQLite file

class TraceIndex:
    """The index file. Not thread-safe: one connection, used from one thread at a time."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            # WAL: the console reads while the updater writes.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise TraceIndexError("trace.index", f"cannot open the trace index {self.path}: "
                                  f"{exc}", transient=False) from None

    def close(self) -> None:
        self._db.close()

    # -- writing ----------------------------------------------------------------------------

    def positions(self) -> dict[tuple[str, int], int]:
        return {(r["topic"], r["partition"]): r["next_offset"]
                for r in self._db.execute("SELECT * FROM positions")}

    def add(self, facts: Iterable[Fact], positions: Mapping[tuple[str, int], int]) -> int:
        """Store facts and the positions read up to, in one transaction."""
        rows = [f.row() for f in facts]
        try:
            with self._db:
                self._db.executemany(
                    f"INSERT OR IGNORE INTO facts ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _COLUMNS)})", rows)
                self._db.executemany(
                    "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?) "
                    "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                    [(t, p, o) for (t, p), o in positions.items()])
        except sqlite3.Error as exc:
            raise TraceIndexError("trace.index", f"cannot write the trace index {self.path}: "
                                  f"{exc}", transient=False) from None
        return len(rows)

    async def update(self, settings: KafkaSettings, sources: Sequence[TopicSource], *,
                     idle_timeout_s: float = 30.0, batch: int = 5000) -> int:
        """Read what is new on every source's topics (up to their end as of now); returns how
        many facts were added. A topic that does not exist yet is skipped."""
        roles: dict[str, tuple[str, str]] = {}
        for source in sources:
            for topic, role in source.topic_roles().items():
                roles.setdefault(topic, (role, source.label))
        added = 0
        async for facts, positions in _read_new(settings, roles, self.positions(),
                                                idle_timeout_s=idle_timeout_s, batch=batch):
            added += await asyncio.to_thread(self.add, facts, positions)
        return added

    # -- reading ----------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM facts").fetchone()[0])

    def _facts(self, sql: str, args: Sequence[Any] = ()) -> list[Fact]:
        return [Fact.from_row(r) for r in self._db.execute(sql, tuple(args))]

    def documents_matching(self, query: str) -> list[str]:
        """DocumentIds a query names: a DocumentId, an event id, an axis DocId or a số/ký
        hiệu (exact, after collapsing spaces)."""
        q = normalise_query(query)
        if not q:
            return []
        found: list[str] = []
        for column in _QUERY_COLUMNS:
            rows = self._db.execute(
                f"SELECT DISTINCT document_id, event_id, axis_doc_id FROM facts "
                f"WHERE {column} = ? LIMIT 200", (q,)).fetchall()
            for row in rows:
                if row["document_id"]:
                    found.append(row["document_id"])
                    continue
                # A fact without the DocumentId (marked-done, a receipt's delivery): find it
                # through its event id or axis DocId.
                for other in ("event_id", "axis_doc_id"):
                    if row[other]:
                        found += [r[0] for r in self._db.execute(
                            f"SELECT DISTINCT document_id FROM facts WHERE {other} = ? AND "
                            "document_id IS NOT NULL LIMIT 50", (row[other],))]
        return list(dict.fromkeys(found))

    def lookup(self, query: str) -> tuple[list[str], list[Fact]]:
        """(the documents the query names, every fact about them and the documents that
        revoke or replace them), facts in time order."""
        seeds = self.documents_matching(query)
        if not seeds:
            return [], []
        documents = set(seeds)
        # Revocations and replacements name the original; follow both ways, one step.
        for doc in list(documents):
            for row in self._db.execute("SELECT DISTINCT document_id FROM facts WHERE "
                                        "ref_document_id = ? LIMIT 50", (doc,)):
                if row[0]:
                    documents.add(row[0])
        marks = ",".join("?" for _ in documents)
        ids = self._db.execute(f"SELECT DISTINCT event_id, axis_doc_id FROM facts WHERE "
                               f"document_id IN ({marks})", tuple(documents)).fetchall()
        events = {r["event_id"] for r in ids if r["event_id"]}
        axis = {r["axis_doc_id"] for r in ids if r["axis_doc_id"]}
        facts: dict[int, Fact] = {}
        for column, values in (("document_id", documents), ("event_id", events),
                               ("axis_doc_id", axis)):
            values = list(values)
            for start in range(0, len(values), 500):
                chunk = values[start:start + 500]
                for row in self._db.execute(
                        f"SELECT * FROM facts WHERE {column} IN "
                        f"({','.join('?' for _ in chunk)})", tuple(chunk)):
                    facts[row["id"]] = Fact.from_row(row)
        # Replay markers name the dead letter, not the document.
        letters = {f.detail.get("deadletter_id") for f in facts.values()
                   if f.kind == "deadletter" and f.detail.get("deadletter_id")}
        for letter in letters:
            for row in self._db.execute("SELECT * FROM facts WHERE kind = 'deadletter.replayed' "
                                        "AND detail LIKE ?", (f'%"deadletter_id":{json.dumps(letter)}%',)):
                facts[row["id"]] = Fact.from_row(row)
        ordered = sorted(facts.values(), key=lambda f: (f.time, f.topic, f.offset))
        return seeds, ordered

    def recent_documents(self, limit: int = 50) -> list[Fact]:
        """The latest document sends and arrivals (for the console's front page)."""
        return self._facts("SELECT * FROM facts WHERE kind IN ('document.send', "
                           "'document.arrived') ORDER BY time DESC LIMIT ?", (limit,))

    def sent_documents_since(self, since: str, limit: int = 500) -> list[Fact]:
        return self._facts("SELECT * FROM facts WHERE kind = 'delivery.accepted' AND "
                           "flow = 'document' AND time >= ? ORDER BY time LIMIT ?",
                           (since, limit))

    def has_receipt(self, document_id: str, codes: Sequence[str]) -> bool:
        marks = ",".join("?" for _ in codes)
        row = self._db.execute(f"SELECT 1 FROM facts WHERE document_id = ? AND status_code IN "
                               f"({marks}) LIMIT 1", (document_id, *codes)).fetchone()
        return row is not None

    def dead_letters(self, limit: int = 100) -> list[tuple[Fact, bool]]:
        """The latest dead letters, each with whether it was replayed."""
        letters = self._facts("SELECT * FROM facts WHERE kind = 'deadletter' ORDER BY time DESC "
                              "LIMIT ?", (limit,))
        replayed = {Fact.from_row(r).detail.get("deadletter_id") for r in self._db.execute(
            "SELECT * FROM facts WHERE kind = 'deadletter.replayed'")}
        return [(f, f.detail.get("deadletter_id") in replayed) for f in letters]

    def last_traffic(self) -> dict[str, str]:
        """agency -> time of the last fact naming it."""
        return {r[0]: r[1] for r in self._db.execute(
            "SELECT agency, max(time) FROM facts WHERE agency IS NOT NULL GROUP BY agency")}


async def _partitions(settings: KafkaSettings, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist (a gateway creates its topics at start)."""
    from connectors.kafka import _admin

    names = sorted(topics)
    async with _admin(settings) as admin:
        described = await admin.describe_topics(names)
    return [TopicPartition(d["topic"], p["partition"]) for d in described
            if d["error_code"] == 0 for p in sorted(d["partitions"], key=lambda p: p["partition"])]


async def _read_new(settings: KafkaSettings, roles: Mapping[str, tuple[str, str]],
                    positions: Mapping[tuple[str, int], int], *, idle_timeout_s: float,
                    batch: int) -> Any:
    """Yield (facts, positions) in batches: every record of `roles`' topics from the stored
    positions to each partition's end as of the call."""
    partitions = await _partitions(settings, roles)
    if not partitions:
        return
    consumer = AIOKafkaConsumer(**settings.client_kwargs(), group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed",
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
    except (kafka_errors.KafkaError, OSError) as exc:
        await consumer.stop()
        raise translate_error(exc, "read topics for the trace index") from exc
    try:
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
        except kafka_errors.KafkaError as exc:
            raise translate_error(exc, "read topics for the trace index") from exc
        remaining = set()
        for tp in partitions:
            start = max(positions.get((tp.topic, tp.partition), 0), starts[tp])
            if start < ends[tp]:
                consumer.seek(tp, start)
                remaining.add(tp)
        facts: list[Fact] = []
        done_at: dict[tuple[str, int], int] = {}
        last_progress = time.monotonic()
        while remaining:
            try:
                batches = await consumer.getmany(*remaining, timeout_ms=200, max_records=batch)
            except kafka_errors.KafkaError as exc:
                raise translate_error(exc, "read topics for the trace index") from exc
            for tp, messages in batches.items():
                role, label = roles[tp.topic]
                for message in messages:
                    if message.offset >= ends[tp]:
                        continue
                    record = KafkaRecord(
                        key=message.key, value=message.value,
                        headers=tuple((n, bytes(v or b"")) for n, v in message.headers or ()),
                        topic=message.topic, partition=message.partition,
                        offset=message.offset, timestamp_ms=message.timestamp)
                    fact = fact_of(record, role, label)
                    if fact is not None:
                        facts.append(fact)
                    done_at[(tp.topic, tp.partition)] = message.offset + 1
            finished = set()
            for tp in remaining:
                if await consumer.position(tp) >= ends[tp]:
                    finished.add(tp)
                    done_at[(tp.topic, tp.partition)] = ends[tp]
            if batches or finished:
                last_progress = time.monotonic()
                remaining -= finished
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise KafkaConnectorError("kafka.unavailable", "reading topics for the trace "
                                          f"index made no progress for {idle_timeout_s:.0f} s",
                                          transient=True)
            if len(facts) >= batch or not remaining:
                yield facts, dict(done_at)
                facts, done_at = [], {}
    finally:
        await consumer.stop()


__all__ = ["Fact", "REASONS", "ROLES", "TopicSource", "TraceIndex", "TraceIndexError",
           "fact_of", "format_time", "notation_of", "parse_time"]
