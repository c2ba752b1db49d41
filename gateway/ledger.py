"""The idempotency ledger: what the gateway has sent to the axis, keyed by the event id.

A compacted Kafka topic holds one entry per outbound event (`ce_id`): *intent* is written and
acknowledged before `sendEdoc`, *sent* (with the axis DocId) or *failed* after. After a crash,
whichever instance handles the event again reads the entry and does not send twice: *sent* is
answered from the ledger, *intent* is reconciled against the axis's sent list (see
`gateway.outbound`). Each instance holds the ledger in memory and reloads it from the topic when
it is given partitions, so it sees the intents of the instance that held them before.

An entry binds its event id to the sender agency and a digest of the document identity
(`identity_of`): an event id is an agency's claim, and one agency reusing another's id (or its
own for another document) must not be answered from, or overwrite, the other's entry
(`event.id_conflict`, checked by the outbound pipeline with `conflicts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.cloudevents import KafkaRecord
from connectors.kafka import KafkaSettings, iter_topic

log = structlog.get_logger(__name__)

INTENT, SENT, FAILED = "intent", "sent", "failed"


#: json.dumps(..., ensure_ascii=False, separators=(",", ":")), its encoder made once.
_LEDGER_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

@dataclass(frozen=True)
class LedgerEntry:
    event_id: str
    state: str                       # intent | sent | failed
    flow: str                        # document | receipt
    sender: str
    document_id: str | None = None
    notation: str | None = None      # số/ký hiệu as the axis lists it
    title: str | None = None
    package_sha256: str | None = None
    axis_doc_id: str | None = None
    reason: str | None = None
    instance: str | None = None      # the gateway instance that wrote it
    time: float = field(default_factory=time.time)
    identity: str | None = None      # identity_of(...) of the event's document (or receipt)

    def to_bytes(self) -> bytes:
        # Flat fields: no need for asdict's deep copy.
        return _LEDGER_JSON.encode({name: getattr(self, name) for name in _FIELDS}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LedgerEntry | None:
        try:
            raw = json.loads(data)
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except (ValueError, TypeError, KeyError):
            return None  # an unreadable entry is treated as absent: reconciliation covers it


_FIELDS = tuple(LedgerEntry.__dataclass_fields__)


def identity_of(flow: str, sender: str, document_id: str | None,
                status_code: str | None = None) -> str:
    """SHA-256 (hex) of what an event is about: its flow, sending agency, DocumentId and, for a
    receipt, its status code. Two events with the same id and a different identity are two
    different things claiming one id."""
    parts = [flow, sender, document_id or "", status_code or ""]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def conflicts(entry: LedgerEntry, *, flow: str, sender: str, document_id: str | None,
              identity: str) -> bool:
    """Whether `entry` (the ledger's entry for an event id) belongs to something else than the
    event now carrying that id. Entries written before identities were recorded are compared on
    flow, sender and DocumentId."""
    if entry.sender != sender or entry.flow != flow:
        return True
    if entry.identity is not None:
        return entry.identity != identity
    return entry.document_id is not None and entry.document_id != document_id


Send = Callable[[bytes, bytes], Awaitable[Any]]


class Ledger:
    """In-memory view of the ledger topic plus acknowledged writes to it."""

    def __init__(self, settings: KafkaSettings, topic: str, send: Send) -> None:
        self._settings = settings
        self._topic = topic
        self._send = send
        self._entries: dict[str, LedgerEntry] = {}
        # Cleared while partitions change hands: aiokafka hands out a new partition's records
        # as soon as it is assigned, before our on_assigned callback has reloaded the ledger,
        # and a record must not be judged on a ledger that misses the previous owner's intents.
        self._ready = asyncio.Event()

    def invalidate(self) -> None:
        self._ready.clear()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, event_id: str) -> LedgerEntry | None:
        return self._entries.get(event_id)

    async def reload(self) -> None:
        """Read the whole topic (compacted, so one entry per event) into memory."""
        entries: dict[str, LedgerEntry] = {}
        async for record in iter_topic(self._settings, self._topic):
            self._apply(entries, record)
        # Writes made while reading (for partitions still being worked on) may be newer than
        # what the read saw: per event, the later entry wins.
        for key, mine in self._entries.items():
            theirs = entries.get(key)
            if theirs is None or mine.time > theirs.time:
                entries[key] = mine
        self._entries = entries
        self._ready.set()

    async def load(self, stopping: asyncio.Event, *, first_wait: float = 0.5,
                   max_wait: float = 10.0) -> bool:
        """`reload` until it succeeds (True) or `stopping` is set (False).

        Runs when partitions are assigned: a record is judged only on a loaded ledger, so a
        read that fails (the broker restarting, a slow start, a timeout) must not leave the
        ledger unready for good - every outbound record would wait for it forever. Each failure
        is logged and the read is made again, waiting longer each time up to `max_wait`."""
        wait = first_wait
        while True:
            try:
                await self.reload()
                return True
            except Exception as exc:  # noqa: BLE001 - whatever it was, read again
                log.warning("gateway.ledger_reload_failed", reason=getattr(exc, "reason", None)
                            or type(exc).__name__, error=str(exc), retry_in_seconds=wait)
            if stopping.is_set():
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)
            if stopping.is_set():
                return False
            wait = min(wait * 2, max_wait)

    @staticmethod
    def _apply(entries: dict[str, LedgerEntry], record: KafkaRecord) -> None:
        if record.key is None:
            return
        key = record.key.decode("utf-8", "replace")
        if record.value is None:
            entries.pop(key, None)
            return
        entry = LedgerEntry.from_bytes(record.value)
        if entry is not None:
            entries[key] = entry

    def claimed_doc_ids(self) -> set[str]:
        """Axis DocIds already recorded as the outcome of some event."""
        return {e.axis_doc_id for e in self._entries.values() if e.axis_doc_id}

    async def write(self, entry: LedgerEntry) -> None:
        """Record an entry; returns once Kafka has acknowledged it (acks=all)."""
        await self._send(entry.event_id.encode(), entry.to_bytes())
        self._entries[entry.event_id] = entry
