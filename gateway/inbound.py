"""Inbound: what the axis holds for our agencies becomes events, or is quarantined with a reason.

    getReceivedEdocList (edoc, then status) → getEdoc → read + verify (one pass) and the PDF
        signature reports, in one worker call (work.receive) → archive package
      → admit (gateway.admission): From is the axis's sender, addressed to us, signed by From,
        a sender that signs has signed
      → accepted: store attachments → arrived event + audit (+ a newly signing sender),
                  produced together and acknowledged
      → refused:  archive package → dead letter (quarantine) → audit → status 02 to the sender
                  the axis vouches for, only when the package's own From agrees
    → updateStatus done, only once the outcome is acknowledged by Kafka

A package that kills the worker reading it is read again alone; if it kills a worker a second
time it is quarantined as `package.poison` and marked `fail` on the axis. A refusal that would
come back the same on every fetch (an arrived event too large for Kafka even with its Content
in the store) is quarantined, never deferred.

A fetched message that could not be handled for a transient reason (axis, store, Kafka) is left
unmarked and comes back in the next poll. The event id of an arrived message is derived from the
systemid and the axis DocId, so fetching it twice (a crash before `done`, two pollers during a
lease hand-over) yields the same event id, which consumers dedupe on.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from connectors.axis.client import DeliveryStatus, MessageType, ReceivedItem
from connectors.kafka import EventConsumer, TopicPartition
from edxml.errors import GatewayError
from gateway import admission, events, pdfcheck, work
from gateway.senders import SigningSenders

log = structlog.get_logger(__name__)

_NAMESPACE = uuid.UUID("6f1c3f5e-4a53-5d0a-9a52-6a6e3f1f0c55")

CONCURRENT_FETCHES = 4
POISON_AFTER_DEATHS = 2   # a package that kills this many workers is not read again

REASONS = {
    "inbound.signature_required": "policy requires a valid signature; the package has none or a placeholder",
    "inbound.unknown_recipient": "the axis delivered a message for an agency this gateway does not serve",
    "package.poison": "reading the package killed a worker process twice; it is not read again",
    "inbound.event_too_large": "the arrived event exceeds the broker's message limit even with "
                               "the document's Content in the store",
}


def arrived_event_id(systemid: str, doc_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{systemid}/{doc_id}"))


class PollerLease:
    """Only the member that owns partition 0 of the poller topic polls the axis.

    Kafka's group coordinator is the lease: when the holder dies, its session times out and the
    partition (and with it the right to poll) moves to another instance.
    """

    def __init__(self, settings: Any, topic: str, group_id: str, *,
                 session_timeout_ms: int = 10_000) -> None:
        self.held = asyncio.Event()
        self._consumer = EventConsumer(settings, [topic], group_id=group_id,
                                       session_timeout_ms=session_timeout_ms,
                                       heartbeat_interval_ms=max(500, session_timeout_ms // 5),
                                       on_assigned=self._assigned, on_revoked=self._revoked)
        self._task: asyncio.Task[None] | None = None

    async def _assigned(self, partitions: frozenset[TopicPartition]) -> None:
        if any(tp.partition == 0 for tp in partitions):
            log.info("inbound.lease.acquired")
            self.held.set()

    async def _revoked(self, partitions: frozenset[TopicPartition]) -> None:
        if any(tp.partition == 0 for tp in partitions):
            log.info("inbound.lease.released")
            self.held.clear()

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._keep_alive(), name="poller-lease")

    async def _keep_alive(self) -> None:
        while True:  # polling keeps the membership alive (max.poll.interval)
            with contextlib.suppress(GatewayError):
                await self._consumer.poll(timeout_ms=1000)

    async def stop(self) -> None:
        self.held.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


class _SoloGate:
    """Many reads at once, or one suspect read alone.

    When a worker dies, every read in the pool at that moment fails; a read that was there is a
    suspect, and runs again alone, so that a second death is its own doing.
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._running = 0
        self._solo = False
        self._solo_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def hold(self, *, solo: bool) -> Any:
        if not solo:
            async with self._cond:
                await self._cond.wait_for(lambda: not self._solo)
                self._running += 1
            try:
                yield
            finally:
                async with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
            return
        async with self._solo_lock:
            async with self._cond:
                self._solo = True
                await self._cond.wait_for(lambda: self._running == 0)
            try:
                yield
            finally:
                async with self._cond:
                    self._solo = False
                    self._cond.notify_all()


class InboundPoller:
    def __init__(self, *, ctx: Any, senders: SigningSenders | None = None) -> None:
        self.ctx = ctx
        self._inflight = asyncio.Semaphore(CONCURRENT_FETCHES)
        self.senders = senders if senders is not None else SigningSenders(None, None, None)
        self.policy = admission.SenderPolicy(
            admission.patterns_of(ctx.config.inbound.signing_senders))
        self.deaths: dict[str, int] = {}     # axis DocId -> workers its reading killed
        self._gate = _SoloGate()

    async def run(self, lease: PollerLease, stopping: asyncio.Event) -> None:
        interval = self.ctx.config.axis.poll_interval_seconds
        loaded = False
        while not stopping.is_set():
            if not lease.held.is_set():
                loaded = False
            else:
                try:
                    if not loaded:
                        # The previous lease holder may have learned senders since our start.
                        await self.senders.reload()
                        loaded = True
                    await self.poll_once()
                except GatewayError as exc:
                    log.warning("inbound.poll_failed", reason=exc.reason, error=exc.message)
                except Exception:  # noqa: BLE001 - a bug must not stop receiving for good
                    # Nothing is lost: unmarked messages stay on the axis for the next poll.
                    log.exception("inbound.poll_crashed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)

    async def poll_once(self) -> int:
        """One round over both mailboxes; returns how many messages were handled."""
        ctx = self.ctx
        handled = 0
        for messagetype in (MessageType.EDOC, MessageType.STATUS):
            try:
                items = await ctx.axis.get_received_edoc_list(messagetype)
            except GatewayError as exc:
                ctx.metrics.inbound_poll(messagetype.value, exc.reason)
                raise
            ctx.metrics.inbound_poll(messagetype.value)
            results = await asyncio.gather(*(self._guarded(item, messagetype) for item in items))
            handled += sum(results)
        return handled

    async def _guarded(self, item: ReceivedItem, messagetype: MessageType) -> bool:
        async with self._inflight:
            try:
                await self.handle(item, messagetype)
                return True
            except GatewayError as exc:
                # Transient: leave it on the axis; the next poll brings it back.
                log.warning("inbound.deferred", axis_doc_id=item.doc_id, reason=exc.reason,
                            error=exc.message)
                self.ctx.metrics.retry(f"inbound-{messagetype.value}", exc.reason)
                return False

    async def handle(self, item: ReceivedItem, messagetype: MessageType) -> None:
        ctx = self.ctx
        flow = "inbound-receipt" if messagetype is MessageType.STATUS else "inbound-document"
        event_id = arrived_event_id(ctx.config.axis.systemid, item.doc_id)
        bound = log.bind(axis_doc_id=item.doc_id, flow=flow, agency=item.to_code, event_id=event_id)
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix="in-", dir=ctx.store.scratch()))
        try:
            package = scratch / "package.edxml"
            await ctx.axis.get_edoc(item.doc_id, package)
            mark = DeliveryStatus.DONE
            try:
                if self.deaths.get(item.doc_id, 0) >= POISON_AFTER_DEATHS:
                    raise work.WorkerDied("not read again")   # its mark failed last time
                result = await self._read(item, package, scratch / "attachments")
            except work.WorkerDied:
                if self.deaths.get(item.doc_id, 0) < POISON_AFTER_DEATHS:
                    raise                  # read again, alone, in the next poll
                # Marked `fail` on the axis: the receiving side gave up on this message.
                mark = DeliveryStatus.FAIL
                result = {"error": {
                    "reason": "package.poison", "where": None,
                    "message": f"reading the package killed a worker process "
                               f"{self.deaths[item.doc_id]} times; it is not read again"}}
            archived = await asyncio.to_thread(ctx.store.archive_package, package)
            refusal = self._refusal(item, result)
            if refusal is None:
                refusal = await self._accept(item, flow, event_id, result, archived, bound,
                                             scratch)
            if refusal is not None:
                await self._quarantine(item, flow, event_id, result, archived, refusal, bound)
            await ctx.axis.update_status(item.doc_id, mark)
            self.deaths.pop(item.doc_id, None)
            await ctx.audit_record(flow=flow, step=f"marked-{mark.value}", outcome="ok",
                                   agency=item.to_code, axis_doc_id=item.doc_id,
                                   event_id=event_id)
            ctx.metrics.axis_to_kafka_seconds.labels(flow).observe(time.monotonic() - started)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    async def _read(self, item: ReceivedItem, package: Path,
                    attachments: Path) -> dict[str, Any]:
        """Read and verify in a worker; a read that was in the pool when a worker died runs
        alone the next time, so that a second death is its own."""
        ctx = self.ctx
        deaths = self.deaths.get(item.doc_id, 0)
        async with self._gate.hold(solo=deaths > 0):
            begun = time.monotonic()
            try:
                # The PDF signature reports are made in the same worker call, on the files the
                # reader wrote: a PDF that kills a worker counts towards poison like the
                # package itself.
                result = await asyncio.get_running_loop().run_in_executor(
                    ctx.pool, work.receive, str(package), str(attachments),
                    ctx.config.attachments.max_pdf_bytes)
                result = await pdfcheck.with_inbound_report(ctx, result)
            except work.WorkerDied:
                shutil.rmtree(attachments, ignore_errors=True)
                if getattr(ctx.pool, "failed", None):
                    raise    # the pool is given up (the daemon is stopping): not this package
                self.deaths[item.doc_id] = deaths + 1
                ctx.metrics.retry("inbound-worker", "gateway.worker_died")
                log.warning("inbound.worker_died", axis_doc_id=item.doc_id,
                            deaths=deaths + 1, alone=deaths > 0)
                raise
        ctx.metrics.package_seconds.labels("read_verify").observe(time.monotonic() - begun)
        return result

    def must_sign(self, organ_id: str | None, kind: str) -> bool:
        """Whether packages of this kind from this sender must carry a valid signature
        (configured, or a valid signature bound to it was received before)."""
        return bool(organ_id) and (self.policy.configured(organ_id)  # type: ignore[arg-type]
                                   or self.senders.signs(organ_id, kind))  # type: ignore[arg-type]

    def _refusal(self, item: ReceivedItem, result: dict[str, Any]) -> GatewayError | None:
        ctx = self.ctx
        if "error" in result:
            err = result["error"]
            return GatewayError(err["reason"], err["message"], where=err.get("where"))
        if item.to_code not in ctx.agencies:
            return GatewayError("inbound.unknown_recipient",
                                f"message for {item.to_code}, which this gateway does not serve")
        binding = admission.binding_refusal(item, result, kind=result.get("kind", ""))
        if binding is not None:
            return binding
        for att in result["attachments"]:
            if att["error"]:
                return GatewayError(att["error"]["reason"],
                                    f"attachment {att['content_id']}: {att['error']['message']}")
        sig = result["signature"]
        policy = ctx.config.inbound.signature_policy
        if sig["status"] == "invalid":
            return GatewayError(sig["reason"] or "edxml.signature.malformed", sig["message"])
        signer = admission.signer_refusal(result)
        if signer is not None:
            return signer
        if sig["status"] == "placeholder" and policy == "require-valid":
            return GatewayError("inbound.signature_required",
                                "the package carries a placeholder signature")
        if sig["status"] == "absent" and policy != "allow-unsigned" and not (
                result["kind"] == "status" and policy == "allow-placeholder"):
            # Under the default policy a receipt may come unsigned: the reference library
            # builds status packages with no signature element at all, so refusing them would
            # lose every receipt from a province using it. Its verdict travels in the event.
            return GatewayError("inbound.signature_required", "the package is not signed")
        return (admission.downgrade_refusal(
            result, must_sign=self.must_sign(admission.from_organ_id(result), result["kind"]))
            or pdfcheck.inbound_refusal(result))

    async def _accept(self, item: ReceivedItem, flow: str, event_id: str, result: dict[str, Any],
                      archived: Any, bound: Any, scratch: Path) -> GatewayError | None:
        """Publish the arrived event; a refusal if it cannot be published whatever the retries
        (then the caller quarantines)."""
        ctx = self.ctx
        refs = []
        for att in result["attachments"]:
            stored = await asyncio.to_thread(ctx.store.put, Path(att["path"]),
                                             att["attachment_name"], move=True)
            refs.append(stored)
        key = events.document_key(result)
        limit = ctx.config.inbound.max_event_bytes
        if result["kind"] == "status":
            event = events.receipt_arrived(event_id=event_id, item=item, result=result,
                                           archived=archived, source=ctx.source)
            topic = ctx.config.topics.inbound_topic("receipts", item.to_code)
            size = events.record_bytes(event, key)
        else:
            event = events.document_arrived(event_id=event_id, item=item, result=result,
                                            stored=refs, archived=archived, source=ctx.source)
            topic = ctx.config.topics.inbound_topic("documents", item.to_code)
            content = events.document_content(result)
            size = events.record_bytes(event, key)
            if size > limit and content is not None:
                # Claim check: the large Content goes to the store, the event points to it.
                text = scratch / "content.txt"
                text.write_text(content, encoding="utf-8")
                content_ref = await asyncio.to_thread(ctx.store.put, text, "content.txt",
                                                      move=True)
                event = events.document_arrived(event_id=event_id, item=item, result=result,
                                                stored=refs, archived=archived,
                                                source=ctx.source, content_ref=content_ref)
                bound.info("inbound.content_by_reference", size=content_ref.size)
                size = events.record_bytes(event, key)
        if size > limit:
            # Permanent: fetching the package again would build the same event.
            return GatewayError("inbound.event_too_large",
                                f"the arrived event would take {size} bytes, more than "
                                f"[inbound] max_event_bytes ({limit}), even with its Content "
                                "in the store")
        # The event, the audit record and (the first time) the signing sender are produced
        # together and awaited once: the caller marks the message done only after all of them.
        # Should the event not be acknowledged, the message stays unmarked and comes back with
        # the same event id; its audit then shows "published" once per attempt.
        writes = [ctx.publish_retrying(lambda: ctx.publish_event(topic, event, key=key)),
                  ctx.audit_record(flow=flow, step="published", outcome="ok",
                                   agency=item.to_code, axis_doc_id=item.doc_id,
                                   event_id=event_id, document_id=events.document_id_of(result),
                                   package_sha256=result["sha256"],
                                   signature=result["signature"]["status"],
                                   attachment_signatures=pdfcheck.audit_text(result))]
        learned = admission.learned_signer(result)
        if learned is not None and not self.senders.signs(learned, result["kind"]):
            serial = ((result["signature"].get("signer") or {}).get("serial"))
            writes.append(ctx.publish_retrying(lambda: self.senders.learn(
                learned, result["kind"], axis_doc_id=item.doc_id, signer_serial=serial)))
        done = await asyncio.gather(*writes)
        if learned is not None and len(done) > 2 and done[2]:
            bound.info("inbound.sender_signs", sender=learned)
        ctx.metrics.message(flow, "ok", None, agency=item.to_code)
        if result["kind"] == "status":
            ref = result["package"]["message_header"].get("response_for", {})
            ctx.sent_unreceipted.pop(ref.get("document_id"), None)
        bound.info("inbound.published", topic=topic, signature=result["signature"]["status"])
        return None

    async def _quarantine(self, item: ReceivedItem, flow: str, event_id: str,
                          result: dict[str, Any], archived: Any, refusal: GatewayError,
                          bound: Any) -> None:
        ctx = self.ctx
        now = datetime.now(timezone.utc)
        letter = events.quarantine_letter(item=item, reason=refusal.reason,
                                          message=refusal.message, flow=flow, archived=archived,
                                          instance=ctx.instance_id, now=now, source=ctx.source,
                                          event_id=event_id)
        await ctx.publish_retrying(lambda: ctx.publish_event(ctx.config.topics.deadletter, letter,
                                                             key=item.doc_id.encode()))
        await ctx.audit_record(flow=flow, step="quarantined", outcome="refused",
                               agency=item.to_code, axis_doc_id=item.doc_id, event_id=event_id,
                               package_sha256=result.get("sha256"), reason=refusal.reason,
                               signature=(result.get("signature") or {}).get("status"),
                               attachment_signatures=pdfcheck.audit_text(result))
        ctx.metrics.message(flow, "quarantined", refusal.reason, agency=item.to_code)
        ctx.metrics.dead_letter(flow, refusal.reason)
        bound.warning("inbound.quarantined", reason=refusal.reason, error=refusal.message)
        # A 02 goes only to the sender the axis vouches for, and only when the package's own
        # From agrees: a package naming someone else must not make us write into their mailbox.
        told = admission.rejection_recipient(item, result)
        if (flow == "inbound-document" and ctx.config.inbound.reject_with_status
                and "package" in result and item.to_code in ctx.agencies
                and told is not None):
            # The rejection (02) goes out through the normal receipt flow: ledger, signing,
            # retries and delivery events all apply to it.
            receipt = events.rejection_receipt(result=result, recipient_agency=item.to_code,
                                               reason=refusal.reason, message=refusal.message,
                                               source=ctx.source, answering=event_id)
            if receipt is not None:
                # On the refusing agency's own outbound topic: the receipt is sent in its name.
                await ctx.publish_retrying(lambda: ctx.publish_event(
                    ctx.config.topics.outbound_topic("receipts", item.to_code), receipt,
                    key=events.document_key(result)))
                bound.info("inbound.rejection_queued")
