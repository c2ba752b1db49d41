"""Inbound: what the axis holds for our agencies becomes events, or is quarantined with a reason.

    getReceivedEdocList (edoc, then status), handled in batches of BATCH_SIZE listed messages:
      → getEdoc → read + verify (one pass) and the PDF signature reports, in one worker call
        (work.receive), CONCURRENT_FETCHES packages at a time
      → admit (gateway.admission), in the order listed: From is the axis's sender, addressed to
        us, signed by From, a sender that signs has signed (earlier in the batch included)
      → archive the packages, store the accepted attachments (one trip to a thread)
      → accepted: arrived event + audit (+ a newly signing sender)
        refused:  dead letter (quarantine) → audit → status 02 to the sender the axis vouches
                  for, only when the package's own From agrees
        the outcomes of the whole batch produced together, their acknowledgements awaited once
    → updateStatus done, for each message only once its own outcome is acknowledged by Kafka
    → the audit records of the marks, produced together

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
from collections.abc import Awaitable, Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from connectors.axis.client import DeliveryStatus, MessageType, ReceivedItem
from connectors.kafka import EventConsumer, TopicPartition
from edxml.errors import GatewayError
from gateway import admission, events, pdfcheck, work
from gateway.senders import SigningSenders

log = structlog.get_logger(__name__)
T = TypeVar("T")

_NAMESPACE = uuid.UUID("6f1c3f5e-4a53-5d0a-9a52-6a6e3f1f0c55")

CONCURRENT_FETCHES = 4   # packages fetched and read at once (and so suspects of a worker's death)
BATCH_SIZE = 32         # listed messages whose outcomes are produced and acknowledged together
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


@dataclass
class _Received:
    """One listed message on its way through a batch."""

    item: ReceivedItem
    flow: str
    event_id: str
    bound: Any
    started: float
    scratch: Path
    mark: DeliveryStatus = DeliveryStatus.DONE
    result: dict[str, Any] = field(default_factory=dict)
    refusal: GatewayError | None = None
    learned: str | None = None        # a sender this message teaches us signs
    archived: Any = None
    stored: list[Any] = field(default_factory=list)
    event: Any = None                 # the arrived event, once built
    topic: str = ""
    key: bytes | None = None

    @property
    def package(self) -> Path:
        return self.scratch / "package.edxml"


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
            for start in range(0, len(items), BATCH_SIZE):
                handled += await self.handle_batch(items[start:start + BATCH_SIZE], messagetype)
        return handled

    async def handle_batch(self, items: Sequence[ReceivedItem], messagetype: MessageType) -> int:
        """Handle listed messages together; returns how many were marked on the axis.

        1. fetch and read each (CONCURRENT_FETCHES at a time, so that a worker's death makes
           no more suspects than before);
        2. decide each, in the order listed (a sender found signing earlier in the batch must
           sign later in it too);
        3. archive the packages and store the accepted attachments, in one trip to a thread;
        4. produce every outcome (arrived event + audit + a newly signing sender, or the
           quarantine records) and await their acknowledgements together;
        5. mark on the axis only the messages whose outcome Kafka acknowledged, then audit
           the marks together.
        A message that meets a transient error at any step is left unmarked for the next poll
        (`inbound.deferred`); the others go on.
        """
        flow = "inbound-receipt" if messagetype is MessageType.STATUS else "inbound-document"

        def defer(r: _Received, exc: GatewayError) -> None:
            # Transient: left on the axis, the next poll brings it back.
            log.warning("inbound.deferred", axis_doc_id=r.item.doc_id, reason=exc.reason,
                        error=exc.message)
            self.ctx.metrics.retry(f"inbound-{messagetype.value}", exc.reason)

        batch: list[_Received] = []
        try:
            for item in items:
                batch.append(self._received(item, flow))
            fetched = await _settled(self._fetch(r) for r in batch)
            live = self._drop_deferred(batch, fetched, defer)
            self._decide(live)
            live = self._drop_deferred(live, await asyncio.to_thread(self._file, live), defer)
            built = [await self._build_event(r) if r.refusal is None else None for r in live]
            live = self._drop_deferred(live, built, defer)
            outcomes = await _settled(self._record_outcome(r) for r in live)
            live = self._drop_deferred(live, outcomes, defer)
            marks = await _settled(self._mark(r) for r in live)
            live = self._drop_deferred(live, marks, defer)
            await _settled(self.ctx.audit_record(
                flow=r.flow, step=f"marked-{r.mark.value}", outcome="ok", agency=r.item.to_code,
                axis_doc_id=r.item.doc_id, event_id=r.event_id) for r in live)
            now = time.monotonic()
            for r in live:
                self.ctx.metrics.axis_to_kafka_seconds.labels(r.flow).observe(now - r.started)
            return len(live)
        finally:
            await asyncio.to_thread(_remove, [r.scratch for r in batch])

    def _received(self, item: ReceivedItem, flow: str) -> _Received:
        event_id = arrived_event_id(self.ctx.config.axis.systemid, item.doc_id)
        return _Received(item=item, flow=flow, event_id=event_id, started=time.monotonic(),
                         bound=log.bind(axis_doc_id=item.doc_id, flow=flow, agency=item.to_code,
                                        event_id=event_id),
                         scratch=Path(tempfile.mkdtemp(prefix="in-", dir=self.ctx.store.scratch())))

    @staticmethod
    def _drop_deferred(batch: list[_Received], errors: Sequence[GatewayError | None],
                       defer: Callable[[_Received, GatewayError], None]) -> list[_Received]:
        kept = []
        for r, error in zip(batch, errors, strict=True):
            if error is None:
                kept.append(r)
            else:
                defer(r, error)
        return kept

    async def _fetch(self, r: _Received) -> GatewayError | None:
        """getEdoc to the scratch directory, then read and verify in a worker (a package that
        killed workers twice is not read again: it becomes a `package.poison` refusal)."""
        doc_id = r.item.doc_id
        async with self._inflight:
            try:
                await self.ctx.axis.get_edoc(doc_id, r.package)
                try:
                    if self.deaths.get(doc_id, 0) >= POISON_AFTER_DEATHS:
                        raise work.WorkerDied("not read again")   # its mark failed last time
                    r.result = await self._read(r.item, r.package, r.scratch / "attachments")
                except work.WorkerDied:
                    if self.deaths.get(doc_id, 0) < POISON_AFTER_DEATHS:
                        raise                  # read again, alone, in the next poll
                    # Marked `fail` on the axis: the receiving side gave up on this message.
                    r.mark = DeliveryStatus.FAIL
                    r.result = {"error": {
                        "reason": "package.poison", "where": None,
                        "message": f"reading the package killed a worker process "
                                   f"{self.deaths[doc_id]} times; it is not read again"}}
            except GatewayError as exc:
                return exc
        return None

    def _decide(self, batch: list[_Received]) -> None:
        """Each message's refusal, in the order listed. A sender seen signing validly earlier
        in the batch counts as signing for the messages after it, as it would had they come
        in the next poll."""
        pending: set[tuple[str, str]] = set()
        for r in batch:
            r.refusal = self._refusal(r.item, r.result, pending)
            if r.refusal is None:
                r.learned = admission.learned_signer(r.result)
                if r.learned is not None:
                    pending.add((r.learned, _kind(r.result["kind"])))

    def _file(self, batch: list[_Received]) -> list[GatewayError | None]:
        """In a thread: archive every package, store the attachments of the accepted ones."""
        store = self.ctx.store
        errors: list[GatewayError | None] = []
        for r in batch:
            try:
                r.archived = store.archive_package(r.package)
                if r.refusal is None:
                    r.stored = [store.put(Path(att["path"]), att["attachment_name"], move=True)
                                for att in r.result["attachments"]]
            except GatewayError as exc:
                errors.append(exc)
                continue
            errors.append(None)
        return errors

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

    def must_sign(self, organ_id: str | None, kind: str,
                  pending: Set[tuple[str, str]] = frozenset()) -> bool:
        """Whether packages of this kind from this sender must carry a valid signature
        (configured, or a valid signature bound to it was received before, or earlier in the
        same batch: `pending`)."""
        return bool(organ_id) and (
            self.policy.configured(organ_id)  # type: ignore[arg-type]
            or self.senders.signs(organ_id, kind)  # type: ignore[arg-type]
            or (organ_id, _kind(kind)) in pending)

    def _refusal(self, item: ReceivedItem, result: dict[str, Any],
                 pending: Set[tuple[str, str]] = frozenset()) -> GatewayError | None:
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
            result, must_sign=self.must_sign(admission.from_organ_id(result), result["kind"],
                                             pending))
            or pdfcheck.inbound_refusal(result))

    async def _build_event(self, r: _Received) -> GatewayError | None:
        """Build the arrived event (`r.event`), or refuse the message (`r.refusal`) when it
        cannot be published whatever the retries (then it is quarantined); the transient
        error of storing its Content, if any."""
        try:
            r.refusal = await self._event_refusal(r)
        except GatewayError as exc:
            return exc
        if r.refusal is not None:
            r.learned = None
        return None

    async def _event_refusal(self, r: _Received) -> GatewayError | None:
        ctx, item, result = self.ctx, r.item, r.result
        r.key = events.document_key(result)
        limit = ctx.config.inbound.max_event_bytes
        if result["kind"] == "status":
            r.event = events.receipt_arrived(event_id=r.event_id, item=item, result=result,
                                             archived=r.archived, source=ctx.source)
            r.topic = ctx.config.topics.inbound_topic("receipts", item.to_code)
            size = events.record_bytes(r.event, r.key)
        else:
            r.event = events.document_arrived(event_id=r.event_id, item=item, result=result,
                                              stored=r.stored, archived=r.archived,
                                              source=ctx.source)
            r.topic = ctx.config.topics.inbound_topic("documents", item.to_code)
            content = events.document_content(result)
            size = events.record_bytes(r.event, r.key)
            if size > limit and content is not None:
                # Claim check: the large Content goes to the store, the event points to it.
                text = r.scratch / "content.txt"
                text.write_text(content, encoding="utf-8")
                content_ref = await asyncio.to_thread(ctx.store.put, text, "content.txt",
                                                      move=True)
                r.event = events.document_arrived(event_id=r.event_id, item=item,
                                                  result=result, stored=r.stored,
                                                  archived=r.archived, source=ctx.source,
                                                  content_ref=content_ref)
                r.bound.info("inbound.content_by_reference", size=content_ref.size)
                size = events.record_bytes(r.event, r.key)
        if size > limit:
            # Permanent: fetching the package again would build the same event.
            return GatewayError("inbound.event_too_large",
                                f"the arrived event would take {size} bytes, more than "
                                f"[inbound] max_event_bytes ({limit}), even with its Content "
                                "in the store")
        return None

    async def _record_outcome(self, r: _Received) -> GatewayError | None:
        """Publish or quarantine; the transient error that leaves the message unmarked."""
        try:
            if r.refusal is None:
                await self._publish(r)
            else:
                await self._quarantine(r.item, r.flow, r.event_id, r.result, r.archived,
                                       r.refusal, r.bound)
        except GatewayError as exc:
            return exc
        return None

    async def _publish(self, r: _Received) -> None:
        ctx, item, result, event = self.ctx, r.item, r.result, r.event
        # The event, the audit record and (the first time) the signing sender are produced
        # together, with those of the rest of the batch, and awaited at once: the message is
        # marked done only after all of its records are acknowledged. Should the event not be
        # acknowledged, the message stays unmarked and comes back with the same event id; its
        # audit then shows "published" once per attempt.
        writes = [ctx.publish_retrying(lambda: ctx.publish_event(r.topic, event, key=r.key)),
                  ctx.audit_record(flow=r.flow, step="published", outcome="ok",
                                   agency=item.to_code, axis_doc_id=item.doc_id,
                                   event_id=r.event_id, document_id=events.document_id_of(result),
                                   package_sha256=result["sha256"],
                                   signature=result["signature"]["status"],
                                   attachment_signatures=pdfcheck.audit_text(result))]
        learned = r.learned
        if learned is not None and not self.senders.signs(learned, result["kind"]):
            serial = ((result["signature"].get("signer") or {}).get("serial"))
            writes.append(ctx.publish_retrying(lambda: self.senders.learn(
                learned, result["kind"], axis_doc_id=item.doc_id, signer_serial=serial)))
        done = await asyncio.gather(*writes)
        if learned is not None and len(done) > 2 and done[2]:
            r.bound.info("inbound.sender_signs", sender=learned)
        ctx.metrics.message(r.flow, "ok", None, agency=item.to_code)
        if result["kind"] == "status":
            ref = result["package"]["message_header"].get("response_for", {})
            ctx.sent_unreceipted.pop(ref.get("document_id"), None)
        r.bound.info("inbound.published", topic=r.topic, signature=result["signature"]["status"],
                     **(pdfcheck.issuer_breach(result) or {}))

    async def _mark(self, r: _Received) -> GatewayError | None:
        try:
            await self.ctx.axis.update_status(r.item.doc_id, r.mark)
        except GatewayError as exc:
            return exc
        self.deaths.pop(r.item.doc_id, None)
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
        bound.warning("inbound.quarantined", reason=refusal.reason, error=refusal.message,
                      **(pdfcheck.issuer_breach(result) or {}))
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


async def _settled(steps: Iterable[Awaitable[T]]) -> list[T]:
    """Await every step of a batch; then raise the first unexpected error, if any, so that no
    step is still running when the batch's scratch directories are removed."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in tasks:
        error = task.exception()
        if error is not None:
            raise error
    return [task.result() for task in tasks]


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _kind(kind: str) -> str:
    """The kinds a sender is remembered signing (gateway.senders)."""
    return "status" if kind == "status" else "edoc"
