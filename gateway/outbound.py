"""Outbound: an agency's event becomes a signed package on the axis, exactly once.

    record → envelope → validate → (ledger: already sent?) → fetch attachments → build + sign
           → ledger intent → sendEdoc (retry transient, reconcile before resending)
           → ledger sent → archive → delivery event + audit → (commit, by the lane runner)

Every input problem ends as an outcome, never as an exception: permanent ones as a dead letter
plus a `delivery.failed` event for the sender, transient ones retried with capped, jittered
backoff. Only the failure to record an outcome in Kafka itself is retried without end (the
offset is not committed until it is recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import os
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog
from tenacity import (AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt,
                      stop_after_delay, wait_exponential_jitter)

from connectors.axis.client import MessageType
from connectors.cloudevents import CloudEvent, EnvelopeError, KafkaRecord
from connectors.kafka import KafkaConnectorError
from edxml.errors import GatewayError
from edxml.values import VN_TZ
from gateway import events, pdfcheck, work
from connectors.store import unavailable
from gateway.lanes import Abandoned
from gateway.ledger import FAILED, INTENT, SENT, LedgerEntry, conflicts, identity_of
from gateway.tracing import step

log = structlog.get_logger(__name__)

# How much earlier than our intent the axis may have stamped a send (clocks differ).
RECONCILE_SKEW_SECONDS = 120

# When the retry budget runs out, the dead letter carries the last transient reason
# (axis.unavailable, store.unavailable ...): it says what to fix before a replay.
REASONS: dict[str, str] = {
    "event.id_conflict": "the event's ce_id is already recorded for another agency or another "
                         "document; it is refused, never answered from that record (use a new, "
                         "unique ce_id)",
    "internal.error": "handling the record raised an unexpected exception (a bug, not a "
                      "problem of the event); the dead letter names the exception type, the "
                      "gateway log has the traceback; replay after the fix",
    "event.sender_mismatch": "the event names (in message_header.from or ce_agency) another "
                             "agency than the one whose outbound topic it was published to; an "
                             "agency sends only in its own name",
}


class ScratchLost(GatewayError):
    """The record's scratch space failed under the work (its package or copies cannot be read
    or written): not retried step by step, but by building again in a new scratch directory."""

    def __init__(self, exc: OSError, doing: str) -> None:
        self.cause = unavailable(exc, doing, "the scratch space")
        super().__init__(self.cause.reason, self.cause.message, where=self.cause.where,
                         transient=False)

    def transient_error(self) -> GatewayError:
        return self.cause


def check_topic_sender(topic_agency: str | None, claimed: str | None, where: str) -> None:
    """The sending agency is the agency of the topic the event came from, never what the event
    says: the topic is what the broker's ACLs let only that agency's principal write. In the
    shared layout (`topic_agency` None) any configured agency may send."""
    if topic_agency is None or claimed is None or claimed == topic_agency:
        return
    raise GatewayError("event.sender_mismatch", f"published to the outbound topic of "
                       f"{topic_agency} but {where} is {claimed[:64]!r}: an agency sends only in "
                       "its own name", where=where)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    initial_seconds: float = 0.5
    max_seconds: float = 60.0
    total_seconds: float = 900.0

    def first_wait(self) -> float:
        """The wait before the first retry: the policy's first exponential step, jittered
        (as `wait_exponential_jitter` draws it)."""
        return min(self.max_seconds, self.initial_seconds + random.uniform(0, 1))

    def retrying(self, on_retry: Callable[[Any], None]) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.total_seconds),
            wait=wait_exponential_jitter(initial=self.initial_seconds, max=self.max_seconds),
            retry=retry_if_exception(lambda e: isinstance(e, GatewayError) and e.transient),
            before_sleep=on_retry,
            reraise=True,
        )


class OutboundPipeline:
    def __init__(self, *, ctx: Any) -> None:
        # ctx: gateway.daemon.Context — config, producer, axis, store, ledger, pool, audit,
        # metrics, publish (acknowledged publish with retry), agencies.
        self.ctx = ctx
        self._attachment_rules: dict[str, dict[str, Any]] = {}  # event id -> rules reported

    # -- entry point ------------------------------------------------------------------------

    async def handle(self, record: KafkaRecord) -> None:
        """Handle one record to its outcome. Whatever goes wrong while doing so ends as that
        record's outcome (an `internal.error` dead letter for an unexpected exception), never
        as an exception that stops the consumer: one record must not stop the gateway."""
        await self._guarded(record, [], lambda: self._handle(record))

    async def _guarded(self, record: KafkaRecord, recorded: list[bool],
                       step: Callable[[], Awaitable[Any]]) -> Any:
        """Run one step of one record's handling. An unexpected exception ends as the record's
        outcome (`internal.error`) and `_HANDLED` is returned; `recorded` (shared by the record's
        steps) says whether its outcome is already in Kafka."""
        token = _OUTCOME_RECORDED.set(recorded)
        try:
            return await step()
        except (Abandoned, asyncio.CancelledError):
            raise
        except BrokenExecutor:
            # The worker pool itself is gone (a worker killed, out of memory): every record
            # would fail the same way, so the daemon stops and its restart starts a new pool;
            # the record stays uncommitted.
            raise
        except KafkaConnectorError:
            # The outcome itself could not be recorded (publish_retrying gave up: the daemon
            # stops, or Kafka refuses for good); the record stays uncommitted.
            raise
        except Exception as exc:  # noqa: BLE001 - the point: any exception, not only ours
            if recorded:
                # The record already has its outcome (accepted or dead-lettered): a second,
                # contradicting one would be worse than the bug; log and count it only.
                self._log_internal_error(record, exc, "receipt" if _is_receipt(record)
                                         else "document", after_outcome=True)
                return _HANDLED
            await self._internal_error(record, exc)
            recorded.append(True)
            return _HANDLED
        finally:
            _OUTCOME_RECORDED.reset(token)

    def _log_internal_error(self, record: KafkaRecord, exc: Exception, flow: str,
                            **fields: Any) -> None:
        log.error("outbound.internal_error", flow=flow, error_type=type(exc).__name__,
                  topic=record.topic, partition=record.partition, offset=record.offset,
                  exc_info=(type(exc), exc, exc.__traceback__), **fields)
        self.ctx.metrics.internal_errors.labels(flow).inc()

    async def _internal_error(self, record: KafkaRecord, exc: Exception) -> None:
        kind = type(exc).__name__
        event: CloudEvent | None
        try:
            event = CloudEvent.from_record(record)
        except Exception:  # noqa: BLE001 - best effort: the letter is written either way
            event = None
        flow = "receipt" if event is not None and event.type == events.RECEIPT_SEND \
            else "document"
        self._log_internal_error(record, exc, flow,
                                 event_id=event.id if event is not None else None)
        error = GatewayError("internal.error", f"unexpected {kind[:80]} while handling this "
                             "record (a gateway bug, not a problem of the event); the gateway "
                             "log has the traceback; replay after the fix")
        # No ledger entry is written: an intent already there (a send that may have reached
        # the axis) must stay, so a replay reconciles instead of sending again.
        try:
            await self._dead_letter(record, event, error, flow=flow, attempts=0)
        except KafkaConnectorError:
            raise
        except Exception as again:  # noqa: BLE001 - the answer to the agency failed too
            if event is None:
                raise
            log.error("outbound.internal_error", flow=flow, error_type=type(again).__name__,
                      step="dead-letter", exc_info=(type(again), again, again.__traceback__))
            await self._dead_letter(record, None, error, flow=flow, attempts=0)

    async def _admit(self, record: KafkaRecord) -> _Admitted | None:
        """Read the record and decide whether it is to be sent: None when it already has its
        outcome (a dead letter, or an answer from the ledger for an event delivered before)."""
        started = time.monotonic()
        ctx = self.ctx
        try:
            event = CloudEvent.from_record(record)
        except EnvelopeError as exc:
            await self._dead_letter(record, None, exc, flow="document", attempts=0)
            return None
        flow = "receipt" if event.type == events.RECEIPT_SEND else "document"
        bound = log.bind(event_id=event.id, flow=flow, offset=record.offset,
                         partition=record.partition)
        topic_agency = ctx.config.topic_agency(record.topic)
        try:
            # Before anything reads the event further: who it claims to be, against who sent it.
            check_topic_sender(topic_agency, event.extensions.get("agency"), "agency")
            check_topic_sender(topic_agency, _claimed_sender(event),
                               "$.message_header.from.organ_id")
            work_item = events.parse_incoming(event, agencies=ctx.agencies,
                                              known_recipient=ctx.known_recipient)
            check_topic_sender(topic_agency, work_item.sender, "$.message_header.from.organ_id")
        except GatewayError as exc:
            await self._dead_letter(record, event, exc, flow=flow, attempts=0)
            return None
        bound = bound.bind(agency=work_item.sender, document_id=work_item.document_id)
        await ctx.ledger.wait_ready()
        entry = ctx.ledger.get(event.id)
        identity = _identity(work_item)
        if entry is not None and conflicts(entry, flow=work_item.flow, sender=work_item.sender,
                                           document_id=work_item.document_id,
                                           identity=identity):
            # Another agency's (or another document's) id: neither answer from its entry nor
            # overwrite it; the ledger keeps what it says about the other event.
            bound.warning("outbound.id_conflict")
            await self._dead_letter(record, event, GatewayError(
                "event.id_conflict", "this ce_id is already used by another event (another "
                "agency or another document); send the event with a new, unique ce_id",
                where="id"), flow=flow, attempts=0, item=work_item)
            return None
        if entry is not None and entry.state == SENT:
            # Delivered before a crash or rebalance: answer again from the ledger, send nothing.
            bound.info("outbound.already_delivered", axis_doc_id=entry.axis_doc_id)
            await self._delivered(event, work_item, entry.axis_doc_id, entry.package_sha256, 0,
                                  replayed=True)
            return None
        # A FAILED entry does not stop the event: it is either a dead letter replayed after a
        # fix, or a redelivery that fails again the same way (same dead-letter id).
        return _Admitted(record, event, work_item, entry, bound, started)

    async def _handle(self, record: KafkaRecord) -> None:
        admitted = await self._admit(record)
        if admitted is None:
            return
        ctx = self.ctx
        event, work_item, entry, bound = (admitted.event, admitted.item, admitted.entry,
                                          admitted.bound)
        flow = work_item.flow
        rounds = 0
        deadline = time.monotonic() + ctx.retry.total_seconds
        while True:
            scratch: Path | None = None
            try:
                scratch = await self._retry(flow, self._scratch)
                doc_id, sha, attempts = await self._deliver(admitted, entry, scratch)
                break
            except ScratchLost as exc:
                # The scratch space broke under the work (disk replaced, directory gone): build
                # again in a new one once it works. Our own intent, if written, is reconciled
                # first, so a document is not sent twice.
                rounds += 1
                if rounds >= ctx.retry.max_attempts or time.monotonic() > deadline:
                    await self._failed(record, event, work_item, exc.transient_error(), bound)
                    return
                ctx.metrics.retry(flow, exc.reason)
                bound.warning("outbound.scratch_lost", round=rounds, error=exc.message)
                entry = ctx.ledger.get(event.id)
                await asyncio.sleep(min(ctx.retry.max_seconds,
                                        ctx.retry.initial_seconds * 2 ** min(rounds, 16)))
            except GatewayError as exc:
                await self._failed(record, event, work_item, exc, bound)
                return
            finally:
                if scratch is not None:
                    _remove_later(scratch)
        await self._delivered(event, work_item, doc_id, sha, attempts)
        self._log_delivered(admitted, doc_id, attempts)

    def _log_delivered(self, admitted: _Admitted, doc_id: str, attempts: int) -> None:
        event, flow = admitted.event, admitted.item.flow
        since = (datetime.now(timezone.utc) - event.time).total_seconds() if event.time else None
        self.ctx.metrics.event_to_axis_seconds.labels(flow).observe(
            since if since is not None and since >= 0 else time.monotonic() - admitted.started)
        admitted.bound.info("outbound.delivered", axis_doc_id=doc_id, attempts=attempts,
                            seconds=round(time.monotonic() - admitted.started, 3))

    # -- batches ----------------------------------------------------------------------------

    async def handle_batch(self, records: list[KafkaRecord]) -> None:
        """Handle a lane's records, in order, with one acknowledged Kafka round for the batch's
        ledger intents (before any of its sends) and one for its outcomes (after them).

        1. admit each record (dead letters and answers from the ledger are recorded at once);
           an event id seen earlier in the batch ends the batch there: the rest is the next
           batch, so a repeated event is judged on the ledger after the first one's outcome;
        2. build and sign the admitted documents (side by side, in the worker pool);
        3. write every intent, the `signed` audit records and the archive copies, and await
           them together;
        4. send, one after another in the lane's order (a send that has to be retried first
           records the outcomes of those before it);
        5. record every outcome (ledger `sent`/`failed`, delivery event, audit) together.
        The lane runner commits the batch's offsets only after this returns. Anything unusual
        for one record (an intent left by an earlier attempt, a scratch space lost under the
        work) sends that record through `handle` at its place in the order."""
        if len(records) == 1:
            await self.handle(records[0])
            return
        batch: list[_Batched] = []
        seen: set[str] = set()
        for index, record in enumerate(records):
            recorded: list[bool] = []
            admitted = await self._guarded(record, recorded, lambda r=record: self._admit(r))
            if admitted is None or admitted is _HANDLED:
                continue
            if admitted.event.id in seen:
                await self._run_batch(batch)
                await self.handle_batch(records[index:])
                return
            seen.add(admitted.event.id)
            entry = admitted.entry
            single = entry is not None and entry.state == INTENT and admitted.item.flow == \
                "document"
            batch.append(_Batched(admitted, recorded, single=single))
        await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Batched]) -> None:
        try:
            await self._batch_steps(batch)
        finally:
            _remove_later(*(one.scratch for one in batch if one.scratch is not None))

    async def _batch_steps(self, batch: list[_Batched]) -> None:
        ctx = self.ctx
        work = [b for b in batch if not b.single]

        async def prepare(one: _Batched) -> None:
            item = one.admitted.item
            try:
                one.scratch = await self._retry(item.flow, self._scratch)
                one.out = one.scratch / "package.edxml"
                one.package = await self._prepare(one.admitted, one.scratch)
            except ScratchLost:
                one.single = True
            except GatewayError as exc:
                one.error = exc

        await asyncio.gather(*(self._step(one, prepare) for one in work))
        work = [b for b in work if not b.done and not b.single and b.error is None]
        await self._build_batch(work)
        work = [b for b in work if not b.done and not b.single and b.error is None]
        for one in work:
            if not ctx.owns(one.admitted.record):
                raise Abandoned(one.admitted.record)

        async def intend(one: _Batched) -> None:
            admitted, item = one.admitted, one.admitted.item
            assert one.out is not None and one.sha is not None
            one.intent = LedgerEntry(admitted.event.id, INTENT, item.flow, item.sender,
                                     document_id=item.document_id, notation=item.notation,
                                     title=item.title, package_sha256=one.sha,
                                     instance=ctx.instance_id, identity=_identity(item))
            out, intent = one.out, one.intent
            archived, audited, intended = await asyncio.gather(
                self._archived(item.flow, out),
                self._audit(admitted.event, item, step="signed", outcome="ok",
                            package_sha256=one.sha),
                ctx.publish_retrying(lambda: ctx.ledger.write(intent)),
                return_exceptions=True)
            for result in (audited, intended):
                if isinstance(result, BaseException):
                    raise result
            if isinstance(archived, BaseException) and not isinstance(archived, GatewayError):
                raise archived
            if isinstance(archived, ScratchLost):
                one.single = True
            elif isinstance(archived, GatewayError):
                one.error = archived

        await asyncio.gather(*(self._step(one, intend) for one in work))
        flushed = 0

        async def flush(upto: int) -> None:
            nonlocal flushed
            done = [b for b in batch[flushed:upto] if not b.done and not b.single]
            flushed = upto
            await asyncio.gather(*(self._step(one, self._finish) for one in done))

        for index, one in enumerate(batch):
            if one.done:
                continue
            if one.single:
                await flush(index)
                await self._guarded(one.admitted.record, one.recorded,
                                    lambda r=one.admitted.record: self._handle(r))
                one.done = True
                continue
            if one.error is not None:
                continue

            async def send(one: _Batched = one, index: int = index) -> None:
                try:
                    one.doc_id, one.attempts = await self._send(
                        one.admitted, one.intent, one.out, one.sha,
                        before_retry=lambda: flush(index))
                except ScratchLost:
                    await flush(index)
                    await self._handle(one.admitted.record)
                    one.done = True
                except GatewayError as exc:
                    one.error = exc

            await self._step(one, send)
        await flush(len(batch))

    async def _step(self, one: _Batched, step: Callable[[_Batched], Awaitable[None]]) -> None:
        """One batch step for one record; an unexpected exception ends as its outcome."""
        if one.done:
            return
        result = await self._guarded(one.admitted.record, one.recorded, lambda: step(one))
        if result is _HANDLED:
            one.done = True

    async def _finish(self, one: _Batched) -> None:
        """Record a batched record's outcome: delivered, or failed with its error."""
        admitted = one.admitted
        if one.error is not None:
            await self._failed(admitted.record, admitted.event, admitted.item, one.error,
                               admitted.bound)
        else:
            assert one.doc_id is not None and one.sha is not None
            await asyncio.gather(
                self._record_sent(admitted.event, admitted.item, one.doc_id, one.sha),
                self._delivered(admitted.event, admitted.item, one.doc_id, one.sha,
                                one.attempts))
            self._log_delivered(admitted, one.doc_id, one.attempts)
        one.done = True

    # -- the steps --------------------------------------------------------------------------

    async def _scratch(self) -> Path:
        """A private work directory on the store's file system (a failing disk is transient)."""
        def make() -> Path:
            try:
                return Path(tempfile.mkdtemp(prefix="out-", dir=self.ctx.store.scratch()))
            except OSError as exc:
                raise unavailable(exc, "create a work directory in", "the store") from None

        return await asyncio.to_thread(make)

    async def _deliver(self, admitted: _Admitted, entry: LedgerEntry | None,
                       scratch: Path) -> tuple[str, str, int]:
        """One record, one by one: build, archive, reconcile a left intent, write the intent,
        send, record it sent. `entry` is the ledger's entry as it stands now."""
        ctx = self.ctx
        record, event, item, bound = (admitted.record, admitted.event, admitted.item,
                                      admitted.bound)
        flow = item.flow
        out = scratch / "package.edxml"
        sha = await self._build(admitted, scratch, out)
        # Archived before it is sent: once the axis has it, nothing may turn the outcome into a
        # failure (a dead letter replayed later would deliver it twice). The audit record goes to
        # Kafka meanwhile.
        await asyncio.gather(
            self._audit(event, item, step="signed", outcome="ok", package_sha256=sha),
            self._archived(flow, out))

        if entry is not None and entry.state == INTENT and flow == "document":
            await self._let_foreign_send_finish(entry, bound)
            doc_id = await self._retry(flow, lambda: self._reconcile(entry))
            if doc_id is not None:
                bound.info("outbound.reconciled", axis_doc_id=doc_id)
                await self._record_sent(event, item, doc_id, sha)
                return doc_id, sha, 0
        if not ctx.owns(record):
            raise Abandoned(record)
        intent = LedgerEntry(event.id, INTENT, flow, item.sender, document_id=item.document_id,
                             notation=item.notation, title=item.title, package_sha256=sha,
                             instance=ctx.instance_id, identity=_identity(item))
        await ctx.publish_retrying(lambda: ctx.ledger.write(intent))
        doc_id, attempts = await self._send(admitted, intent, out, sha)
        await self._record_sent(event, item, doc_id, sha)
        return doc_id, sha, attempts

    async def _build(self, admitted: _Admitted, scratch: Path, out: Path) -> str:
        """Copy the attachments, check them, build and sign the package into `out`; its
        SHA-256."""
        package = await self._prepare(admitted, scratch)
        return await self._sign(admitted, package, out)

    async def _prepare(self, admitted: _Admitted, scratch: Path) -> dict[str, Any]:
        """Copy the attachments into `scratch` and check them; the package's JSON form."""
        ctx = self.ctx
        item, event = admitted.item, admitted.event
        package = await self._retry(item.flow, lambda: self._materialise(item, scratch))
        # Refuses an unsigned PDF or a missing original per agency; what is only reported goes
        # into the delivery event.
        rules = pdfcheck.delivery_rules(await pdfcheck.outbound_check(ctx, item, package))
        if rules:
            self._attachment_rules[event.id] = rules
        return package

    async def _sign(self, admitted: _Admitted, package: dict[str, Any], out: Path, *,
                    first_failure: GatewayError | None = None) -> str:
        """Build and sign `package` into `out` in the worker pool; its SHA-256.
        `first_failure`: the first attempt was made (in a batch's hand-off) and failed so."""
        ctx = self.ctx
        item = admitted.item
        begun = time.monotonic()
        # A worker that dies under the build (gateway.worker_died, transient) is replaced by
        # the pool; the build runs again. A scratch space that fails under it is built anew.
        async def build() -> dict[str, Any]:
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    ctx.pool, work.build_and_sign, item.sender, package, str(out))
            except OSError as exc:  # the worker could not read a copy or write the package
                raise ScratchLost(exc, "build the package in") from None

        with step(ctx, "edoc.build_sign"):
            built = await self._retry(item.flow, build, first_failure=first_failure)
        ctx.metrics.package_seconds.labels("build_sign").observe(time.monotonic() - begun)
        return _built_sha(built)

    async def _build_batch(self, batch: list[_Batched]) -> None:
        """Build and sign a batch's prepared packages with one hand-off to the worker pool per
        agency and worker (rather than one per document: pickling, the pool's thread wake-ups
        and the answer cost the main process about as much as a third of a build).

        Each record ends as `_sign` would end it alone: its sha, its error, or `single` for a
        scratch space lost under the build. When a hand-off fails as a whole (a worker died
        under it: `gateway.worker_died`, or anything unexpected), each of its records goes on
        alone through `_sign`, a transient failure counted as its first attempt, so retries,
        waits and outcomes are the ones a record handed off alone would have had."""
        if not batch:
            return
        ctx = self.ctx
        groups: dict[str, list[_Batched]] = {}
        for one in batch:
            groups.setdefault(one.admitted.item.sender, []).append(one)
        workers = max(1, int(getattr(ctx.config.gateway, "workers", 1) or 1))
        chunks: list[list[_Batched]] = []
        for group in groups.values():
            # As many hand-offs as there are workers, so the batch is built side by side.
            n = min(workers, len(group))
            size, extra = divmod(len(group), n)
            start = 0
            for k in range(n):
                end = start + size + (1 if k < extra else 0)
                chunks.append(group[start:end])
                start = end

        async def hand_off(chunk: list[_Batched]) -> None:
            sender = chunk[0].admitted.item.sender
            items = [(one.package, str(one.out)) for one in chunk]
            begun = time.monotonic()
            try:
                with step(ctx, "edoc.build_sign", documents=len(chunk)):
                    results = await asyncio.get_running_loop().run_in_executor(
                        ctx.pool, work.build_and_sign_many, sender, items)
            except BrokenExecutor:
                raise     # the pool itself is gone: as for one record (see `_guarded`)
            except Exception as exc:  # noqa: BLE001 - each record goes on alone
                first = exc if isinstance(exc, GatewayError) and exc.transient else None
                if isinstance(exc, work.WorkerDied):
                    # Worded as for the record's own task, as the record's outcome would be.
                    first = work.WorkerDied(exc.message.replace("build_and_sign_many",
                                                                "build_and_sign"))
                await asyncio.gather(*(self._step(one, lambda one, first=first: self._sign_one(
                    one, first)) for one in chunk))
                return
            seconds = time.monotonic() - begun
            for one, built in zip(chunk, results, strict=True):
                ctx.metrics.package_seconds.labels("build_sign").observe(seconds)
                await self._step(one, lambda one, built=built: self._take_built(one, built))

        await asyncio.gather(*(hand_off(chunk) for chunk in chunks))

    async def _sign_one(self, one: _Batched, first: GatewayError | None) -> None:
        assert one.package is not None and one.out is not None
        try:
            one.sha = await self._sign(one.admitted, one.package, one.out, first_failure=first)
        except ScratchLost:
            one.single = True
        except GatewayError as exc:
            one.error = exc

    async def _take_built(self, one: _Batched, built: dict[str, Any]) -> None:
        failure = built.get("os_error")
        if failure is not None:   # the worker could not read a copy or write the package
            one.single = True     # as `_sign`'s ScratchLost: built again, alone
            return
        try:
            one.sha = _built_sha(built)
        except GatewayError as exc:
            one.error = exc

    async def _archived(self, flow: str, out: Path) -> Any:
        ctx = self.ctx
        return await self._retry(flow, lambda: asyncio.to_thread(_archive, ctx.store, out))

    async def _send(self, admitted: _Admitted, intent: LedgerEntry | None, out: Path | None,
                    sha: str | None, *,
                    before_retry: Callable[[], Awaitable[None]] | None = None
                    ) -> tuple[str, int]:
        """sendEdoc with retries, reconciling before a resend; the axis DocId and attempts."""
        ctx = self.ctx
        record, item, bound = admitted.record, admitted.item, admitted.bound
        flow = item.flow
        assert intent is not None and out is not None and sha is not None
        attempts = 0

        async def attempt() -> str:
            nonlocal attempts
            if not ctx.owns(record):
                # The partition moved on (a rebalance, or this instance was presumed dead): its
                # new owner reconciles this intent; sending now could deliver twice.
                raise Abandoned(record)
            attempts += 1
            if attempts > 1 and flow == "document":
                # The last attempt may have reached the axis with only the answer lost.
                found = await self._reconcile(intent)
                if found is not None:
                    bound.info("outbound.reconciled", axis_doc_id=found, attempts=attempts)
                    return found
            # A receipt names its addressee explicitly: a status package only says which
            # document it is about, and for 13 (sent by the document's sender) that is not the
            # addressee.
            try:
                result = await ctx.axis.send_edoc(
                    out, from_organ=item.sender,
                    messagetype=MessageType.STATUS if flow == "receipt" else MessageType.EDOC,
                    to=item.recipients if flow == "receipt" else (), sha256=sha)
            except OSError as exc:  # the signed package in the scratch space is unreadable
                raise ScratchLost(exc, "read the signed package from") from None
            return result.doc_id

        doc_id = await self._retry(flow, attempt, before_retry=before_retry)
        return doc_id, attempts

    async def _let_foreign_send_finish(self, entry: LedgerEntry, bound: Any) -> None:
        """An intent another instance wrote may belong to a send still under way there (that
        instance lost the partition without knowing yet). Wait until such a send must have
        ended - the axis call timeout - before asking the axis what it holds."""
        ctx = self.ctx
        if entry.instance in (None, ctx.instance_id):
            return
        settle = entry.time + ctx.config.axis.timeout_seconds + 2 - time.time()
        if settle > 0:
            bound.info("outbound.waiting_for_previous_owner", seconds=round(settle, 1),
                       previous=entry.instance)
            await asyncio.sleep(settle)

    async def _materialise(self, item: Any, scratch: Path) -> dict[str, Any]:
        """The JSON form of the package, its attachments private copies in `scratch`.

        Each referenced file is opened once, beneath the sending agency's own roots, and copied
        from that open file into the scratch directory with its size and SHA-256 checked on the
        bytes copied; the worker reads only the copies, so nothing the agency swaps or changes
        afterwards can reach the package (one read of the agency's file, constant memory)."""
        ctx = self.ctx
        copies = []
        for ref in item.attachments:
            # A fresh name per attempt: a retry after a transient failure starts a new copy.
            copy = await asyncio.to_thread(ctx.store.copy_reference, ref, item.sender, scratch)
            copies.append(copy)
        return item.package_dict(copies, trace_organ_id=item.sender,
                                 now=datetime.now(timezone.utc))

    async def _reconcile(self, entry: LedgerEntry) -> str | None:
        """Find a message the axis accepted for this intent (sent list: same sender, same
        số/ký hiệu and subject, sent after the intent, not claimed by another event)."""
        ctx = self.ctx
        items = await ctx.axis.get_sent_edoc_list(messagetype=MessageType.EDOC)
        claimed = ctx.ledger.claimed_doc_ids()
        not_before = entry.time - RECONCILE_SKEW_SECONDS
        for sent in items:
            if sent.from_code != entry.sender or sent.sender_doc_id in claimed:
                continue
            if (entry.notation or "") != sent.notation or (entry.title or "") != sent.title:
                continue
            when = _axis_time(sent.sent_time)
            if when is not None and when.timestamp() < not_before:
                continue
            return sent.sender_doc_id
        return None

    async def _record_sent(self, event: CloudEvent, item: Any, doc_id: str, sha: str) -> None:
        ctx = self.ctx
        entry = LedgerEntry(event.id, SENT, item.flow, item.sender, document_id=item.document_id,
                            notation=item.notation, title=item.title, package_sha256=sha,
                            axis_doc_id=doc_id, identity=_identity(item))
        await ctx.publish_retrying(lambda: ctx.ledger.write(entry))

    async def _retry(self, flow: str, step: Callable[[], Awaitable[Any]], *,
                     before_retry: Callable[[], Awaitable[None]] | None = None,
                     first_failure: GatewayError | None = None) -> Any:
        """`step()`, retried on a transient GatewayError by the retry policy. The first attempt
        runs without the retry machinery (it is the common case); `before_retry` is awaited
        once, before the first retry. `first_failure`: the first attempt was made elsewhere
        (a batch's hand-off) and failed with this transient error; the retries follow."""
        ctx = self.ctx
        begun = time.monotonic()
        if first_failure is not None:
            if ctx.retry.max_attempts <= 1:
                raise first_failure
            first = first_failure
        else:
            try:
                return await step()
            except GatewayError as exc:
                if not exc.transient or ctx.retry.max_attempts <= 1:
                    raise
                first = exc
        self._on_retry(flow, first, 1)
        if before_retry is not None:
            await before_retry()
        policy = ctx.retry
        await asyncio.sleep(policy.first_wait())
        later = dataclasses.replace(
            policy, max_attempts=policy.max_attempts - 1,
            initial_seconds=policy.initial_seconds * 2,
            total_seconds=max(0.0, policy.total_seconds - (time.monotonic() - begun)))
        try:
            async for attempt in later.retrying(
                    lambda state: self._on_retry(flow, state.outcome.exception(),
                                                 state.attempt_number + 1)):
                with attempt:
                    return await step()
        except RetryError as exc:  # pragma: no cover - reraise=True makes this unreachable
            raise exc.last_attempt.exception() from None
        raise AssertionError("unreachable")

    def _on_retry(self, flow: str, exc: BaseException | None, number: int) -> None:
        reason = getattr(exc, "reason", "other")
        self.ctx.metrics.retry(flow, reason)
        log.warning("outbound.retry", flow=flow, reason=reason, attempt=number,
                    error=getattr(exc, "message", str(exc)))

    # -- outcomes ---------------------------------------------------------------------------

    async def _delivered(self, event: CloudEvent, item: Any, doc_id: str | None,
                         sha: str | None, attempts: int, replayed: bool = False) -> None:
        ctx = self.ctx
        outcome = events.delivery_accepted(event, item, axis_doc_id=doc_id, package_sha256=sha,
                                           attempts=attempts, source=ctx.source,
                                           attachment_rules=self._attachment_rules.pop(event.id, None))
        # Both must be in Kafka before the offset is committed; neither has to wait for the other.
        await asyncio.gather(
            ctx.publish_retrying(lambda: ctx.publish_event(
                ctx.config.topics.delivery_topic(item.sender), outcome, key=item.key)),
            self._audit(event, item, step="delivered", outcome="ok", axis_doc_id=doc_id,
                        package_sha256=sha))
        _mark_recorded()
        if not replayed:
            ctx.metrics.message(item.flow, "ok", None, agency=item.sender)
            if item.flow == "document":
                ctx.sent_unreceipted[item.document_id] = time.time()

    async def _failed(self, record: KafkaRecord, event: CloudEvent, item: Any,
                      exc: GatewayError, bound: Any) -> None:
        ctx = self.ctx
        reason = exc.reason
        self._attachment_rules.pop(event.id, None)
        bound.warning("outbound.failed", reason=reason, error=exc.message,
                      transient=exc.transient)
        entry = LedgerEntry(event.id, FAILED, item.flow, item.sender,
                            document_id=item.document_id, reason=reason,
                            identity=_identity(item))
        await ctx.publish_retrying(lambda: ctx.ledger.write(entry))
        await self._dead_letter(record, event, exc, flow=item.flow, attempts=0, item=item)

    async def _dead_letter(self, record: KafkaRecord, event: CloudEvent | None,
                           exc: GatewayError, *, flow: str, attempts: int, item: Any = None) -> None:
        ctx = self.ctx
        now = datetime.now(timezone.utc)
        letter = events.dead_letter(record, reason=exc.reason, message=exc.message, flow=flow,
                                    attempts=attempts, first_failure=now, last_failure=now,
                                    instance=ctx.instance_id, source=ctx.source)
        await ctx.publish_retrying(lambda: ctx.publish_event(ctx.config.topics.deadletter, letter,
                                                             key=record.key))
        # The outcome goes to the agency that published the record (its topic's agency), never
        # to one the record merely names.
        topic_agency = ctx.config.topic_agency(record.topic)
        if event is not None:
            failed = events.delivery_failed(event, item, reason=exc.reason, message=exc.message,
                                            attempts=attempts, source=ctx.source,
                                            sender=topic_agency)
            key = item.key if item is not None else record.key
            recipient = topic_agency or (item.sender if item is not None else None)
            topic = _delivery_topic(ctx.config, recipient)
            if topic is not None:
                await ctx.publish_retrying(lambda: ctx.publish_event(topic, failed, key=key))
        _mark_recorded()
        sender = getattr(item, "sender", None) or topic_agency
        await ctx.audit_record(flow=flow, step="dead-lettered", outcome="failed",
                               agency=sender,
                               document_id=getattr(item, "document_id", None),
                               event_id=event.id if event else None, reason=exc.reason)
        ctx.metrics.message(flow, "failed", exc.reason, agency=sender)
        ctx.metrics.dead_letter(flow, exc.reason)
        log.warning("outbound.dead_lettered", flow=flow, reason=exc.reason, error=exc.message,
                    event_id=event.id if event else None, offset=record.offset)

    async def _audit(self, event: CloudEvent, item: Any, **fields: Any) -> None:
        await self.ctx.audit_record(flow=item.flow, agency=item.sender,
                                    document_id=item.document_id, event_id=event.id, **fields)


# Set by `handle` for the record it works on: whether its outcome is already in Kafka.
_OUTCOME_RECORDED: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "outbound_outcome_recorded", default=None)


def _archive(store: Any, package: Path) -> Any:
    try:
        os.stat(package)
    except OSError as exc:  # gone with a broken scratch space: build it again
        raise ScratchLost(exc, "read the signed package from") from None
    return store.archive_package(package)


def _built_sha(built: dict[str, Any]) -> str:
    """The SHA-256 of a package a worker built, or its refusal as a GatewayError."""
    if "error" in built:
        err = built["error"]
        raise GatewayError(err["reason"], err["message"], where=err.get("where"))
    return built["sha256"]


def _mark_recorded() -> None:
    recorded = _OUTCOME_RECORDED.get()
    if recorded is not None:
        recorded.append(True)


def _is_receipt(record: KafkaRecord) -> bool:
    return record.header("ce_type") == events.RECEIPT_SEND.encode()


def _identity(item: Any) -> str:
    status = item.status_code.value if item.flow == "receipt" else None
    return identity_of(item.flow, item.sender, item.document_id, status)


def _claimed_sender(event: CloudEvent) -> str | None:
    """message_header.from.organ_id as the event states it, if it is a string at all."""
    data = event.data if isinstance(event.data, dict) else {}
    header = data.get("message_header")
    frm = header.get("from") if isinstance(header, dict) else None
    organ_id = frm.get("organ_id") if isinstance(frm, dict) else None
    return organ_id if isinstance(organ_id, str) else None


def _delivery_topic(config: Any, agency: str | None) -> str | None:
    """The delivery topic for `agency`; None when it is per agency and the agency unknown."""
    template = config.topics.delivery
    if "{agency}" not in template:
        return template
    if agency is None or agency not in config.agency_ids:
        return None
    return config.topics.delivery_topic(agency)


def _axis_time(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%d/%m/%Y %H:%M:%S"):
        with contextlib.suppress(ValueError, TypeError):
            return datetime.strptime(text, fmt).replace(tzinfo=VN_TZ)
    return None


# What `_guarded` returns when the step ended in an `internal.error` outcome.
_HANDLED: Any = object()


@dataclasses.dataclass
class _Admitted:
    """A record read, checked and found to need a send."""

    record: KafkaRecord
    event: CloudEvent
    item: Any
    entry: LedgerEntry | None     # the ledger's entry for the event id (FAILED, INTENT or none)
    bound: Any                    # the logger bound to the record
    started: float                # monotonic time the handling began


@dataclasses.dataclass
class _Batched:
    """One record's state through a batch."""

    admitted: _Admitted
    recorded: list[bool]
    single: bool = False          # handled by `handle` at its place in the order
    done: bool = False            # its outcome is recorded
    scratch: Path | None = None
    out: Path | None = None
    package: dict[str, Any] | None = None   # the JSON form handed to the worker
    sha: str | None = None
    intent: LedgerEntry | None = None
    doc_id: str | None = None
    attempts: int = 0
    error: GatewayError | None = None


def _remove_later(*paths: Path) -> None:
    """Remove records' scratch directories off the event loop (one trip to a thread for a
    batch's), without waiting for it."""
    if paths:
        asyncio.get_running_loop().run_in_executor(None, _remove_scratch, paths)


def _remove_scratch(paths: tuple[Path, ...]) -> None:
    """Remove scratch directories, quietly. A record's holds only the files the pipeline put
    there (the package, the attachments' copies): they are unlinked one by one, which costs
    less than `shutil.rmtree`'s general walk; anything else (a subdirectory, an error) is left
    to `shutil.rmtree`. The directory is the gateway's own (mkdtemp, mode 0700): nobody else
    can put a link in it, and a link would be unlinked itself, never followed."""
    for path in paths:
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        raise IsADirectoryError(entry.path)
                    os.unlink(entry.path)
            os.rmdir(path)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
