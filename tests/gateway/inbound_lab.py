"""An inbound pipeline in the test's own process: the real broker, the axis simulator over real
HTTP, a real worker pool and store, and real cryptography (test PKI made at run time).

Thái Nguyên (system 00.55.W00) sends through the simulator; the pipeline under test is Nghệ An's
(system 00.41.W00, agency 000.00.00.H41). `poll()` runs one `InboundPoller.poll_once`, so a test
decides when the gateway looks at the axis and never waits on a clock.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from connectors.axis.client import AxisClient, AxisClientConfig
from connectors.axis.simulator import SimulatorConfig, serve
from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import EventProducer, KafkaSettings, read_topic
from connectors.store import FileStore
from edxml.pki import init_test_pki
from edxml.signature import Signer, sign_bytes
from gateway import events
from gateway.audit import AuditLog, producer_sender
from gateway.config import (AgencyConfig, AxisSection, GatewayConfig, GatewaySection,
                            HttpSection, InboundSection, KafkaSection, LogSection, RetrySection,
                            Secret, StoreSection, TopicsSection)
from gateway.daemon import PIPELINE_REASON_MODULES, Context, worker_setup
from gateway.inbound import InboundPoller
from gateway.ledger import Ledger
from gateway.metrics import GatewayMetrics, known_reasons
from gateway.outbound import RetryPolicy
from gateway.senders import SigningSenders
from gateway.work import WorkerPool
from tests.edxml.hostile import make_corpus as corpus

TN_SYSTEM, NA_SYSTEM = "00.55.W00", "00.41.W00"
H55, H55_NOI_VU, H41, G22 = "000.00.00.H55", "000.00.02.H55", "000.00.00.H41", "000.00.00.G22"
AGENCIES = ((H55, "UBND tỉnh Thái Nguyên"), (H55_NOI_VU, "Sở Nội vụ tỉnh Thái Nguyên"),
            (H41, "UBND tỉnh Nghệ An"))
TOPIC_NAMES = ("outbound_documents", "outbound_receipts", "delivery", "inbound_documents",
               "inbound_receipts", "audit", "deadletter", "ledger", "poller", "senders")

_PKI_DIR = Path(tempfile.mkdtemp(prefix="inbound-pki-"))
PKI = init_test_pki(_PKI_DIR, agencies=AGENCIES)


def signer(organ_id: str) -> Signer:
    files = PKI.agencies[organ_id]
    return Signer.from_pem(files.key, files.cert, chain_path=files.chain)


def document(number: str, *, sender: str = H55, to: Iterable[str] = (H41,),
             content: str | None = None, header_extra: str = "",
             message_before: str = "", d: corpus.Dialect = corpus.REF) -> bytes:
    """A document package from `sender` to `to` (the reference layout), unsigned."""
    header = corpus.doc_header()
    header[0] = ["From", [["OrganId", sender], ["OrganName", "Cơ quan gửi"]]]
    header[1:2] = [["To", [["OrganId", code], ["OrganName", "Cơ quan nhận"]]] for code in to]
    changes: dict[str, Any] = {"DocumentId": f"{sender},2026/12/01,{number}/UBND-VP",
                               "Code/CodeNumber": number}
    if content is not None:
        changes["Content"] = content
    text = corpus.document(d, header=corpus.edit(header, set=changes), header_extra=header_extra)
    if message_before:
        # Something placed before the real MessageHeader (the header-ambiguity attack).
        at = text.index(f"<{d.p}MessageHeader>")
        text = text[:at] + message_before + text[at:]
    return text.encode("utf-8")


def signed(data: bytes, by: str) -> bytes:
    return sign_bytes(data, signer(by))


def placeholder(number: str, **kw: Any) -> bytes:
    """The .NET reference dialect's placeholder: an empty DigitalSignature."""
    return document(number, d=corpus.DIALECTS["bare"],
                    header_extra="      <DigitalSignature/>\n", **kw)


def status(*, sender: str, about: str, code: str = "03") -> bytes:
    """An unsigned status package (as the reference library builds them) from `sender` about a
    document of `about`."""
    header = corpus.status_header(code)
    header[0] = ["From", [["OrganId", sender], ["OrganName", "Cơ quan trả lời"]]]
    header = corpus.edit(header, set={"ResponseFor/OrganId": about,
                                      "ResponseFor/DocumentId": f"{about},2026/12/01,1/UBND-VP"})
    return corpus.status(header=header).encode("utf-8")


@dataclass
class InboundLab:
    ctx: Context
    poller: InboundPoller
    sender: AxisClient
    settings: KafkaSettings
    topics: dict[str, str]
    simulator: Any
    sent: list[str] = field(default_factory=list)

    async def send(self, data: bytes, *, from_organ: str = H55, to: Iterable[str] = (H41,),
                   messagetype: str = "edoc") -> str:
        """Thái Nguyên's system sends `data` through the axis; the axis's DocId."""
        path = Path(tempfile.mkdtemp(prefix="send-")) / "package.edxml"
        path.write_bytes(data)
        result = await self.sender.send_edoc(path, from_organ=from_organ,
                                             messagetype=messagetype, to=list(to))
        return result.doc_id

    async def poll(self) -> int:
        return await self.poller.poll_once()

    async def events(self, name: str) -> list[CloudEvent]:
        records = await read_topic(self.settings, self.topics[name], idle_timeout_s=10)
        return [CloudEvent.from_record(r) for r in records]

    async def letters(self) -> dict[str, str]:
        """Quarantined messages: reason by the receiver's axis DocId."""
        return {e.data["original"]["axis_doc_id"]: e.data["reason"]
                for e in await self.events("deadletter")}

    async def axis_status(self, sender_doc_id: str, messagetype: str = "edoc") -> str:
        """What the axis says the receiver did with a message (initial, done, fail), as the
        sender sees it in getSentEdocList."""
        (item,) = [i for i in await self.sender.get_sent_edoc_list(
                messagetype=messagetype, doc_id=sender_doc_id)
                   if i.sender_doc_id == sender_doc_id]
        return item.receive_status

    async def receiver_doc_id(self, sender_doc_id: str, messagetype: str = "edoc") -> str:
        (item,) = [i for i in await self.sender.get_sent_edoc_list(
                messagetype=messagetype, doc_id=sender_doc_id)
                   if i.sender_doc_id == sender_doc_id]
        return item.receiver_doc_id


@contextlib.asynccontextmanager
async def inbound_lab(tmp_path: Path, settings: KafkaSettings, topic_factory: Any, *,
                      inbound: dict[str, Any] | None = None, workers: int = 1,
                      worker_memory_bytes: int = 0,
                      pool: WorkerPool | None = None) -> AsyncIterator[InboundLab]:
    topics = {}
    for name in TOPIC_NAMES:
        config = {"cleanup.policy": "compact"} if name in ("ledger", "senders") else None
        topics[name] = await topic_factory(prefix=f"in-{name.replace('_', '-')}", config=config)
    clients = {TN_SYSTEM: secrets.token_hex(16), NA_SYSTEM: secrets.token_hex(16)}
    sim = await serve(SimulatorConfig(db_path=tmp_path / "axis.sqlite", clients=clients,
                                      shutdown_timeout=0.5))
    (tmp_path / "store").mkdir()
    files = PKI.agencies[H41]
    config = GatewayConfig(
        gateway=GatewaySection(instance_id="test-na", workers=workers,
                               worker_memory_bytes=worker_memory_bytes),
        http=HttpSection(), log=LogSection(),
        kafka=KafkaSection(bootstrap_servers=settings.bootstrap_servers),
        topics=TopicsSection(**topics),
        axis=AxisSection(endpoint=sim.url, systemid=NA_SYSTEM,
                         secret=Secret(clients[NA_SYSTEM], "test")),
        retry=RetrySection(max_attempts=3, initial_seconds=0.01, max_seconds=0.05),
        inbound=InboundSection(trust_dir=PKI.trust_dir, crl_files=(PKI.crl,),
                               **(inbound or {})),
        store=StoreSection(root=tmp_path / "store"),
        agencies=(AgencyConfig(organ_id=H41, name="UBND tỉnh Nghệ An", key=files.key,
                               cert=files.cert),))
    producer = EventProducer(settings, linger_ms=0)
    await producer.start()
    metrics = GatewayMetrics(CollectorRegistry(), reasons=known_reasons(PIPELINE_REASON_MODULES),
                             agencies=config.agency_ids)

    async def ledger_send(key: bytes, value: bytes) -> None:
        await producer.send_record(topics["ledger"], KafkaRecord(key=key, value=value))

    async def senders_send(key: bytes, value: bytes) -> None:
        await producer.send_record(topics["senders"], KafkaRecord(key=key, value=value))

    pool = pool or WorkerPool(worker_setup(config), workers)
    axis = AxisClient(config.axis.client_config())
    sender = AxisClient(AxisClientConfig(endpoint=sim.url, systemid=TN_SYSTEM,
                                         secret=clients[TN_SYSTEM]))
    import asyncio

    ctx = Context(config=config, producer=producer, axis=axis,
                  store=FileStore(config.store.root), ledger=Ledger(settings, topics["ledger"],
                                                                   ledger_send),
                  pool=pool, audit=AuditLog("test-na", producer_sender(producer, topics["audit"]),
                                            source=events.gateway_source(NA_SYSTEM),
                                            metrics=metrics),
                  metrics=metrics, stopping=asyncio.Event(), retry=RetryPolicy(3, 0.01, 0.05, 5))
    senders = SigningSenders(settings, topics["senders"], senders_send)
    await senders.reload()
    lab = InboundLab(ctx=ctx, poller=InboundPoller(ctx=ctx, senders=senders), sender=sender,
                     settings=settings, topics=topics, simulator=sim)
    try:
        yield lab
    finally:
        await sender.aclose()
        await axis.aclose()
        await producer.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        await sim.close()


def with_inbound(config: GatewayConfig, **changes: Any) -> GatewayConfig:
    return replace(config, inbound=replace(config.inbound, **changes))
