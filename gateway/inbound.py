"""Inbound: what the axis holds for our agencies becomes events, or is quarantined with a reason.

    getReceivedEdocList (edoc, then status) → getEdoc → read + verify (one pass, worker process)
      → accepted: store attachments → archive package → publish arrived event → audit
      → refused:  archive package → dead letter (quarantine) → audit → status 02 to the sender
    → updateStatus done, only once the outcome is acknowledged by Kafka

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
from gateway import events, work

log = structlog.get_logger(__name__)

_NAMESPACE = uuid.UUID("6f1c3f5e-4a53-5d0a-9a52-6a6e3f1f0c55")

CONCURRENT_FETCHES = 4

REASONS = {
    "inbound.signature_required": "policy requires a valid signature; the package has none or a placeholder",
    "inbound.unknown_recipient": "the axis delivered a message for an agency this gateway does not serve",
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


class InboundPoller:
    def __init__(self, *, ctx: Any) -> None:
        self.ctx = ctx
        self._inflight = asyncio.Semaphore(CONCURRENT_FETCHES)

    async def run(self, lease: PollerLease, stopping: asyncio.Event) -> None:
        interval = self.ctx.config.axis.poll_interval_seconds
        while not stopping.is_set():
            if lease.held.is_set():
                try:
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
            begun = time.monotonic()
            result = await asyncio.get_running_loop().run_in_executor(
                ctx.pool, work.read_and_verify, str(package), str(scratch / "attachments"))
            ctx.metrics.package_seconds.labels("read_verify").observe(time.monotonic() - begun)
            archived = await asyncio.to_thread(ctx.store.archive_package, package)
            refusal = self._refusal(item, result)
            if refusal is None:
                await self._accept(item, flow, event_id, result, archived, bound)
            else:
                await self._quarantine(item, flow, event_id, result, archived, refusal, bound)
            await ctx.axis.update_status(item.doc_id, DeliveryStatus.DONE)
            await ctx.audit_record(flow=flow, step="marked-done", outcome="ok",
                                   agency=item.to_code, axis_doc_id=item.doc_id,
                                   event_id=event_id)
            ctx.metrics.axis_to_kafka_seconds.labels(flow).observe(time.monotonic() - started)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _refusal(self, item: ReceivedItem, result: dict[str, Any]) -> GatewayError | None:
        ctx = self.ctx
        if "error" in result:
            err = result["error"]
            return GatewayError(err["reason"], err["message"], where=err.get("where"))
        if item.to_code not in ctx.agencies:
            return GatewayError("inbound.unknown_recipient",
                                f"message for {item.to_code}, which this gateway does not serve")
        for att in result["attachments"]:
            if att["error"]:
                return GatewayError(att["error"]["reason"],
                                    f"attachment {att['content_id']}: {att['error']['message']}")
        sig = result["signature"]
        policy = ctx.config.inbound.signature_policy
        if sig["status"] == "invalid":
            return GatewayError(sig["reason"] or "edxml.signature.malformed", sig["message"])
        if sig["status"] == "placeholder" and policy == "require-valid":
            return GatewayError("inbound.signature_required",
                                "the package carries a placeholder signature")
        if sig["status"] == "absent" and policy != "allow-unsigned":
            return GatewayError("inbound.signature_required", "the package is not signed")
        return None

    async def _accept(self, item: ReceivedItem, flow: str, event_id: str, result: dict[str, Any],
                      archived: Any, bound: Any) -> None:
        ctx = self.ctx
        refs = []
        for att in result["attachments"]:
            stored = await asyncio.to_thread(ctx.store.put, Path(att["path"]),
                                             att["attachment_name"], move=True)
            refs.append(stored)
        if result["kind"] == "status":
            event = events.receipt_arrived(event_id=event_id, item=item, result=result,
                                           archived=archived, source=ctx.source)
            topic = ctx.config.topics.inbound_topic("receipts", item.to_code)
        else:
            event = events.document_arrived(event_id=event_id, item=item, result=result,
                                            stored=refs, archived=archived, source=ctx.source)
            topic = ctx.config.topics.inbound_topic("documents", item.to_code)
        key = events.document_key(result)
        await ctx.publish_retrying(lambda: ctx.publish_event(topic, event, key=key))
        await ctx.audit_record(flow=flow, step="published", outcome="ok", agency=item.to_code,
                               axis_doc_id=item.doc_id, event_id=event_id,
                               document_id=events.document_id_of(result),
                               package_sha256=result["sha256"],
                               signature=result["signature"]["status"])
        ctx.metrics.message(flow, "ok", None, agency=item.to_code)
        if result["kind"] == "status":
            ref = result["package"]["message_header"].get("response_for", {})
            ctx.sent_unreceipted.pop(ref.get("document_id"), None)
        bound.info("inbound.published", topic=topic, signature=result["signature"]["status"])

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
                               signature=(result.get("signature") or {}).get("status"))
        ctx.metrics.message(flow, "quarantined", refusal.reason, agency=item.to_code)
        ctx.metrics.dead_letter(flow, refusal.reason)
        bound.warning("inbound.quarantined", reason=refusal.reason, error=refusal.message)
        if (flow == "inbound-document" and ctx.config.inbound.reject_with_status
                and "package" in result and item.to_code in ctx.agencies):
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
