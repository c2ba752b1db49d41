"""The outbound pipeline in this process, with its real collaborators.

`OutboundHarness` builds what `gateway.daemon.run_daemon` builds for `OutboundPipeline` - a
configuration loaded from a TOML file, the Kafka producer, ledger and audit log on the run's
real broker, the file store with per-agency attachment roots, a process pool of signing workers
holding a test PKI's keys, and the axis client talking HTTP to the axis simulator - and runs it
on an event loop of its own thread, so synchronous tests (hypothesis among them) can hand it
records one by one:

    harness.handle(record)            # OutboundPipeline.handle, to its end
    harness.outcomes(event_id)        # the delivery / dead-letter events Kafka acknowledged
    harness.sent_packages()           # every package the simulator accepted, as bytes

Nothing is mocked: the outcomes are observed after the real producer's acknowledgement.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
import threading
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from connectors.axis.client import AxisClient
from connectors.axis.simulator import SimulatorConfig, serve
from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import EventProducer, KafkaSettings, ensure_topics
from edxml.pki import init_test_pki
from gateway import events
from gateway.audit import AuditLog, producer_sender
from gateway.config import load_config
from gateway.daemon import Context, file_store, topic_specs, worker_setup
from gateway.ledger import Ledger
from gateway.metrics import GatewayMetrics, known_reasons
from gateway.outbound import OutboundPipeline, RetryPolicy
from gateway.work import make_pool

T = TypeVar("T")

SYSTEMID = "00.55.W00"
H55 = "000.00.00.H55"          # UBND tỉnh Thái Nguyên
SO_NOI_VU = "000.00.02.H55"     # Sở Nội vụ, another agency of the same gateway
RECIPIENT = "000.00.00.H41"     # UBND tỉnh Nghệ An, on another systemid
AGENCIES = ((H55, "UBND tỉnh Thái Nguyên"), (SO_NOI_VU, "Sở Nội vụ tỉnh Thái Nguyên"))


@dataclass
class ObservingContext(Context):
    """The daemon's context; every event Kafka acknowledged is also kept, by topic."""

    published: list[tuple[str, CloudEvent]] = field(default_factory=list)

    async def publish_event(self, topic: str, event: CloudEvent, *,
                            key: bytes | str | None) -> None:
        await super().publish_event(topic, event, key=key)
        self.published.append((topic, event))


class OutboundHarness:
    def __init__(self, directory: Path, kafka: KafkaSettings) -> None:
        self.dir = directory
        self.kafka = kafka
        self.pki = init_test_pki(directory / "pki", agencies=AGENCIES)
        self.exports = directory / "exports"
        for organ_id, _ in AGENCIES:
            (self.exports / organ_id).mkdir(parents=True)
        (directory / "store").mkdir()
        self._offsets = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="outbound-harness",
                                        daemon=True)
        self._thread.start()
        self.run(self._start())

    # -- running ----------------------------------------------------------------------------

    def run(self, coro: Awaitable[T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def root(self, organ_id: str) -> Path:
        """The agency's attachment root (its export share)."""
        return self.exports / organ_id

    def record(self, event: CloudEvent | None = None, *, headers: Any = None,
               value: bytes | None = None, key: bytes | None = b"doc") -> KafkaRecord:
        """A record as the consumer hands it out: coordinates on the outbound topic."""
        if event is not None:
            built = event.to_record(key=key)
            headers, value = built.headers, built.value
        return KafkaRecord(key=key, value=value, headers=tuple(headers or ()),
                           topic=self.config.topics.outbound_documents, partition=0,
                           offset=next(self._offsets))

    def handle(self, record: KafkaRecord) -> None:
        self.run(self.pipeline.handle(record))

    def outcomes(self, event_id: str | None = None) -> list[tuple[str, CloudEvent]]:
        """(topic, event) acknowledged on the delivery and dead-letter topics (for one event
        id: its delivery events, and dead letters whose original carries that ce_id)."""
        out = []
        for topic, event in self.ctx.published:
            if topic not in (self.config.topics.delivery, self.config.topics.deadletter):
                continue
            if event_id is not None and _event_id_of(event) != event_id:
                continue
            out.append((topic, event))
        return out

    def sent_packages(self) -> list[bytes]:
        """Every package the simulator accepted (its database lives on the harness's thread)."""
        sim = self.sim.simulator

        async def paths() -> list[str]:
            rows = sim.store._db.execute("SELECT path FROM messages ORDER BY rowid").fetchall()
            return [row["path"] for row in rows]

        return [(sim.data_dir / path).read_bytes() for path in self.run(paths())]

    def close(self) -> None:
        try:
            self.run(self._stop(), timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- building ---------------------------------------------------------------------------

    async def _start(self) -> None:
        secret = secrets.token_hex(16)
        self.sim = await serve(SimulatorConfig(db_path=self.dir / "axis.sqlite",
                                               clients={SYSTEMID: secret},
                                               shutdown_timeout=0.5))
        run = uuid.uuid4().hex[:8]
        topics = "\n".join(f'{name} = "edoc.test.{run}.{name}"' for name in (
            "outbound_documents", "outbound_receipts", "delivery", "inbound_documents",
            "inbound_receipts", "audit", "deadletter", "ledger", "poller", "senders"))
        # The shared layout: the harness hands the pipeline records of one outbound topic and
        # tests what an event's data can reach; which agency a topic belongs to (per-agency
        # topics and ACLs) is tested end to end in test_e2e.py and test_acl.py.
        topics += "\nper_agency = false"
        agencies = "\n".join(
            f'[[agencies]]\norgan_id = "{o}"\nname = "{n}"\nkey = "{self.pki.agencies[o].key}"\n'
            f'cert = "{self.pki.agencies[o].cert}"\n' for o, n in AGENCIES)
        text = f"""
[gateway]
instance_id = "harness-{run}"
workers = 1
[kafka]
bootstrap_servers = "{self.kafka.bootstrap_servers}"
group_id = "harness-{run}"
[topics]
{topics}
[axis]
endpoint = "{self.sim.url}"
systemid = "{SYSTEMID}"
secret_env = "HARNESS_AXIS_SECRET"
timeout_seconds = 20
[retry]
max_attempts = 2
initial_seconds = 0.01
max_seconds = 0.05
total_seconds = 5
[inbound]
trust_dir = "{self.pki.trust_dir}"
[store]
root = "{self.dir / 'store'}"
allowed_roots = ["{self.exports}"]
{agencies}"""
        (self.dir / "gateway.toml").write_text(text, encoding="utf-8")
        self.config = config = load_config(self.dir / "gateway.toml",
                                           {"HARNESS_AXIS_SECRET": secret})
        await ensure_topics(self.kafka, topic_specs(config))
        self.producer = producer = EventProducer(self.kafka, linger_ms=0)
        await producer.start()
        registry = CollectorRegistry()
        self.metrics = metrics = GatewayMetrics(
            registry, reasons=known_reasons(("gateway.outbound", "gateway.inbound",
                                             "gateway.events", "connectors.store",
                                             "connectors.cloudevents")),
            agencies=config.agency_ids)
        audit = AuditLog(config.gateway.instance_id, producer_sender(producer,
                                                                      config.topics.audit),
                         source=events.gateway_source(SYSTEMID), metrics=metrics)

        async def ledger_send(key: bytes, value: bytes) -> None:
            await producer.send_record(config.topics.ledger, KafkaRecord(key=key, value=value))

        self.ledger = Ledger(self.kafka, config.topics.ledger, ledger_send)
        await self.ledger.reload()
        self.pool = make_pool(worker_setup(config), 1)
        self.axis = AxisClient(config.axis.client_config())
        r = config.retry
        self.ctx = ObservingContext(
            config=config, producer=producer, axis=self.axis, store=file_store(config),
            ledger=self.ledger, pool=self.pool, audit=audit, metrics=metrics,
            stopping=asyncio.Event(),
            retry=RetryPolicy(r.max_attempts, r.initial_seconds, r.max_seconds, r.total_seconds))
        self.pipeline = OutboundPipeline(ctx=self.ctx)

    async def _stop(self) -> None:
        for step in (self.axis.aclose, self.producer.stop, self.sim.close):
            try:
                await step()
            except Exception:  # noqa: BLE001 - closing what is left
                pass
        self.pool.shutdown(wait=True, cancel_futures=True)


def init_signing_worker(tmp_path: Path, organ_id: str, name: str) -> Any:
    """Set this process up as a pool worker signing for `organ_id` with a fresh test PKI (for
    calling `gateway.work` functions in-process); the agency's credential files."""
    import signal

    from gateway import work

    files = init_test_pki(tmp_path / "pki", agencies=[(organ_id, name)]).agencies[organ_id]
    interrupt = signal.getsignal(signal.SIGINT)  # init_worker ignores Ctrl-C, as workers do
    try:
        work.init_worker(work.WorkerSetup(keys=(work.KeySpec(organ_id, key=str(files.key),
                                                             cert=str(files.cert)),)))
    finally:
        signal.signal(signal.SIGINT, interrupt)
    return files


def _event_id_of(event: CloudEvent) -> str | None:
    data = event.data if isinstance(event.data, dict) else {}
    if "event_id" in data:
        return data["event_id"]
    original = data.get("original") or {}
    raw = (original.get("headers") or {}).get("ce_id")
    if isinstance(raw, str):
        import base64

        return base64.b64decode(raw).decode("utf-8", "replace")
    return None


def attachment(harness: OutboundHarness, organ_id: str, name: str,
               content: bytes) -> dict[str, Any]:
    path = harness.root(organ_id) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return {"content_id": hashlib.sha256(name.encode()).hexdigest()[:8], "attachment_name": name,
            "content_type": "application/pdf", "uri": path.as_uri(),
            "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}


def document(sender: str, *, number: str = "12", attachments: list[dict[str, Any]] = (),
             subject: str = "V/v kiểm thử ranh giới dữ liệu") -> dict[str, Any]:
    return {"message_header": {
        "from": {"organ_id": sender},
        "to": [{"organ_id": RECIPIENT}],
        "code": {"code_number": number, "code_notation": "UBND-VP"},
        "promulgation_info": {"place": "Thái Nguyên", "promulgation_date": "2026-11-25"},
        "document_type": {"type": 1, "type_name": "Công văn"},
        "subject": subject},
        "attachments": list(attachments), "secrecy": "none"}


def send_event(data: Any, *, id: str | None = None, agency: str | None = None,
               type: str = events.DOCUMENT_SEND, **attrs: Any) -> CloudEvent:
    sender = agency or (data.get("message_header", {}).get("from", {}).get("organ_id")
                        if isinstance(data, dict) else None)
    return CloudEvent(id=id or uuid.uuid4().hex, source="urn:qlvb:test", type=type, data=data,
                      extensions={"agency": sender} if sender else {}, **attrs)


def kinds(outcomes: list[tuple[str, CloudEvent]]) -> list[str]:
    return sorted(e.type.removeprefix("vn.gov.edoc.") for _, e in outcomes)


def reasons(outcomes: list[tuple[str, CloudEvent]]) -> set[str]:
    return {e.data["reason"] for _, e in outcomes if "reason" in e.data}

