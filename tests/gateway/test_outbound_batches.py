"""Outbound batches: a lane's queued records handled together keep every promise of one by one.

`OutboundPipeline.handle_batch` writes a batch's ledger intents in one acknowledged round before
any send and its outcomes in one round after; these tests hand it batches with the real
collaborators (tests/gateway/outbound_harness.py: the run's Kafka, the axis simulator over
HTTP, signing workers) and check what reached the axis and Kafka.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.cloudevents import KafkaRecord
from edxml.jsonform import package_to_dict
from edxml.model import Attachment
from gateway import work
from gateway.ledger import INTENT, SENT
from tests.gateway.outbound_harness import (H55, init_signing_worker, SO_NOI_VU, OutboundHarness, attachment,
                                            document, kinds, reasons, send_event)


@pytest.fixture(scope="module")
def harness(kafka_settings, tmp_path_factory) -> OutboundHarness:
    h = OutboundHarness(tmp_path_factory.mktemp("outbound-batches"), kafka_settings)
    yield h
    h.close()


def valid(harness: OutboundHarness, sender: str = H55, *, id: str | None = None,
          number: str | None = None) -> KafkaRecord:
    ref = attachment(harness, sender, "to-trinh.pdf", b"%PDF-1.4 batch test\n")
    data = document(sender, number=number or uuid.uuid4().hex[:8], attachments=[ref])
    return harness.record(send_event(data, id=id or uuid.uuid4().hex))


def invalid(harness: OutboundHarness) -> KafkaRecord:
    return harness.record(send_event({"message_header": {"from": {"organ_id": H55}}}))


def handle_batch(harness: OutboundHarness, records: list[KafkaRecord]) -> None:
    harness.run(harness.pipeline.handle_batch(records))


def event_ids(records: list[KafkaRecord]) -> list[str]:
    return [r.header("ce_id").decode() for r in records]


def test_every_intent_of_a_batch_is_acknowledged_before_its_first_send(
        harness: OutboundHarness) -> None:
    calls: list[tuple[str, str]] = []
    ledger, axis = harness.ctx.ledger, harness.ctx.axis
    write, send = ledger.write, axis.send_edoc

    async def spy_write(entry: Any) -> None:
        await write(entry)
        calls.append(("ledger", entry.state))

    async def spy_send(*args: Any, **kwargs: Any) -> Any:
        calls.append(("axis", "send"))
        return await send(*args, **kwargs)

    records = [valid(harness), valid(harness, SO_NOI_VU), valid(harness)]
    before = len(harness.sent_packages())
    ledger.write, axis.send_edoc = spy_write, spy_send
    try:
        handle_batch(harness, records)
    finally:
        ledger.write, axis.send_edoc = write, send
    assert len(harness.sent_packages()) == before + 3
    assert calls[:4] == [("ledger", INTENT)] * 3 + [("axis", "send")]
    assert calls[4:] == [("axis", "send")] * 2 + [("ledger", SENT)] * 3
    for event_id in event_ids(records):
        assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"]
        assert harness.ctx.ledger.get(event_id).state == SENT


def test_a_repeated_event_in_one_batch_is_sent_once_and_answered_twice(
        harness: OutboundHarness) -> None:
    first = valid(harness)
    again = harness.record(value=first.value, headers=first.headers)
    other = valid(harness)
    broken = invalid(harness)
    before = len(harness.sent_packages())
    handle_batch(harness, [first, broken, again, other])
    assert len(harness.sent_packages()) == before + 2
    first_id, broken_id, _, other_id = event_ids([first, broken, again, other])
    assert kinds(harness.outcomes(first_id)) == ["delivery.accepted.v1"] * 2
    assert kinds(harness.outcomes(other_id)) == ["delivery.accepted.v1"]
    assert kinds(harness.outcomes(broken_id)) == ["deadletter.v1", "delivery.failed.v1"]


def test_an_id_reused_for_another_document_in_the_same_batch_is_refused(
        harness: OutboundHarness) -> None:
    shared = uuid.uuid4().hex
    first, second = valid(harness, id=shared), valid(harness, id=shared)
    before = len(harness.sent_packages())
    handle_batch(harness, [first, second])
    assert len(harness.sent_packages()) == before + 1
    outcomes = harness.outcomes(shared)
    assert kinds(outcomes) == ["deadletter.v1", "delivery.accepted.v1", "delivery.failed.v1"]
    assert any(e.data.get("reason") == "event.id_conflict" for _, e in outcomes)


def test_a_record_whose_earlier_attempt_left_an_intent_is_reconciled_not_resent(
        harness: OutboundHarness) -> None:
    # The first record was sent by an attempt that died before recording it: its intent is in
    # the ledger and the axis has the package. In a batch it goes through reconciliation.
    earlier = valid(harness)
    handle_batch(harness, [earlier])
    event_id = event_ids([earlier])[0]
    entry = harness.ctx.ledger.get(event_id)
    harness.run(harness.ctx.ledger.write(replace(entry, state=INTENT, axis_doc_id=None)))
    before = len(harness.sent_packages())
    handle_batch(harness, [earlier, valid(harness)])
    assert len(harness.sent_packages()) == before + 1
    assert harness.ctx.ledger.get(event_id).state == SENT
    assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"] * 2


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["valid", "other-agency", "invalid", "repeat", "reuse-id"]),
                min_size=2, max_size=8))
def test_any_batch_sends_each_distinct_document_once_and_answers_every_record(
        harness: OutboundHarness, plan: list[str]) -> None:
    records: list[KafkaRecord] = []
    valid_ones: list[bool] = []
    for step in plan:
        if step == "repeat" and records:
            records.append(harness.record(value=records[-1].value,
                                          headers=records[-1].headers))
            valid_ones.append(valid_ones[-1])
        elif step == "reuse-id" and records:
            records.append(valid(harness, id=event_ids(records[:1])[0]))
            valid_ones.append(True)
        elif step == "invalid":
            records.append(invalid(harness))
            valid_ones.append(False)
        else:
            records.append(valid(harness, SO_NOI_VU if step == "other-agency" else H55))
            valid_ones.append(True)
    before = len(harness.sent_packages())
    handle_batch(harness, records)
    # What deserves a send: the first valid document under each event id; an exact repeat is
    # answered from the ledger, another document under a used id refused.
    deserving = {event_id for event_id, ok in zip(event_ids(records), valid_ones) if ok}
    assert len(harness.sent_packages()) == before + len(deserving)
    for event_id in event_ids(records):
        assert harness.outcomes(event_id), "every record has an outcome"


# -- the batch's hand-off to the worker pool ---------------------------------------------------

class HandOffs:
    """The harness's pool, watched: what was submitted, and a way to change what comes back."""

    def __init__(self, pool: Any, *, fail_first_many: BaseException | None = None,
                 rewrite: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
                 ) -> None:
        self.pool = pool
        self.submitted: list[tuple[str, int]] = []
        self._fail = fail_first_many
        self._rewrite = rewrite

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        name = fn.__name__
        self.submitted.append((name, len(args[1]) if name == "build_and_sign_many" else 1))
        if name == "build_and_sign_many" and self._fail is not None:
            failed: Future[Any] = Future()
            failed.set_exception(self._fail)
            self._fail = None
            return failed
        inner = self.pool.submit(fn, *args)
        if name != "build_and_sign_many" or self._rewrite is None:
            return inner
        outer: Future[Any] = Future()
        rewrite, self._rewrite = self._rewrite, None
        inner.add_done_callback(lambda done: outer.set_result(rewrite(done.result())))
        return outer


def with_pool(harness: OutboundHarness, pool: HandOffs, records: list[KafkaRecord]) -> None:
    real = harness.ctx.pool
    harness.ctx.pool = pool
    try:
        handle_batch(harness, records)
    finally:
        harness.ctx.pool = real


def retries(harness: OutboundHarness, reason: str) -> float:
    return harness.metrics.registry.get_sample_value(
        "edoc_gateway_retries_total",
        {"flow": "document", "reason": harness.metrics.reason(reason)}) or 0.0


def test_a_batch_is_handed_to_the_workers_once_per_agency_and_worker(
        harness: OutboundHarness) -> None:
    pool = HandOffs(harness.ctx.pool)
    records = [valid(harness), valid(harness, SO_NOI_VU), valid(harness), valid(harness)]
    before = len(harness.sent_packages())
    with_pool(harness, pool, records)
    # The harness runs one worker: one hand-off per agency, none per document.
    assert sorted(pool.submitted) == [("build_and_sign_many", 1), ("build_and_sign_many", 3)]
    assert len(harness.sent_packages()) == before + 4
    for event_id in event_ids(records):
        assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"]


def test_a_worker_dying_under_a_batch_hand_off_retries_each_record_as_if_alone(
        harness: OutboundHarness) -> None:
    # Alone: a record whose build dies with its worker counts one retry and is delivered.
    pool = HandOffs(harness.ctx.pool)
    alone = valid(harness)
    died = work.WorkerDied("a worker process died while running build_and_sign")
    before_retries = retries(harness, "gateway.worker_died")
    failing_single = _FailFirst(harness.ctx.pool, died)
    harness.ctx.pool, real = failing_single, harness.ctx.pool
    try:
        harness.handle(alone)
    finally:
        harness.ctx.pool = real
    assert retries(harness, "gateway.worker_died") == before_retries + 1
    # In a batch: the one hand-off dies; each of its three records counts its own retry, is
    # built again alone and delivered once, as it would have been alone.
    pool = HandOffs(harness.ctx.pool, fail_first_many=work.WorkerDied(
        "a worker process died while running build_and_sign_many"))
    records = [valid(harness), valid(harness), valid(harness)]
    before = len(harness.sent_packages())
    with_pool(harness, pool, records)
    assert retries(harness, "gateway.worker_died") == before_retries + 1 + 3
    assert pool.submitted == [("build_and_sign_many", 3)] + [("build_and_sign", 1)] * 3
    assert len(harness.sent_packages()) == before + 3
    for event_id in event_ids(records + [alone]):
        assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"]


def test_one_refused_and_one_unwritable_package_in_a_hand_off_leave_the_others_sent(
        harness: OutboundHarness) -> None:
    def rewrite(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        refused = {"error": {"reason": "store.hash_mismatch", "where": "to-trinh.pdf",
                             "message": "to-trinh.pdf does not match the sha256 in the event"}}
        return [results[0], refused, {"os_error": "OSError: disk gone"}, results[3]]

    pool = HandOffs(harness.ctx.pool, rewrite=rewrite)
    records = [valid(harness) for _ in range(4)]
    before = len(harness.sent_packages())
    with_pool(harness, pool, records)
    ok, refused, unwritable, last = event_ids(records)
    # The unwritable one is built again alone (a new scratch space), as `handle` would.
    assert len(harness.sent_packages()) == before + 3
    for event_id in (ok, unwritable, last):
        assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"]
    assert kinds(harness.outcomes(refused)) == ["deadletter.v1", "delivery.failed.v1"]
    assert reasons(harness.outcomes(refused)) == {"store.hash_mismatch"}
    assert harness.ctx.ledger.get(refused).state == "failed"


class _FailFirst(HandOffs):
    """The first `build_and_sign` fails (a record handed off alone)."""

    def __init__(self, pool: Any, exc: BaseException) -> None:
        super().__init__(pool)
        self._first = exc

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        if self._first is not None and fn.__name__ == "build_and_sign":
            failed: Future[Any] = Future()
            failed.set_exception(self._first)
            self._first = None
            return failed
        return super().submit(fn, *args)


def test_build_and_sign_many_answers_each_package_as_build_and_sign_would(tmp_path) -> None:
    init_signing_worker(tmp_path, H55, "UBND tỉnh Thái Nguyên")
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4 the bytes on disk")
    sha = hashlib.sha256(pdf.read_bytes()).hexdigest()

    def package(**claim: Any) -> dict[str, Any]:
        att = Attachment("1", "a.pdf", "application/pdf", path=pdf, **claim)
        return package_to_dict(replace(_model(), attachments=(att,)))

    items = [(package(size=len(pdf.read_bytes()), sha256=sha), str(tmp_path / "1.edxml")),
             (package(size=1, sha256=sha), str(tmp_path / "2.edxml")),
             (package(size=len(pdf.read_bytes()), sha256=sha), str(tmp_path / "no" / "3.edxml")),
             (package(size=len(pdf.read_bytes()), sha256=sha), str(tmp_path / "4.edxml"))]
    many = work.build_and_sign_many(H55, items)
    assert many[1] == work.build_and_sign(H55, *items[1])
    assert many[1]["error"]["reason"] == "store.size_mismatch"
    with pytest.raises(OSError):
        work.build_and_sign(H55, *items[2])
    assert set(many[2]) == {"os_error"}
    for index in (0, 3):
        assert many[index]["size"] == Path(items[index][1]).stat().st_size
        assert many[index]["sha256"] == hashlib.sha256(
            Path(items[index][1]).read_bytes()).hexdigest()


def _model() -> Any:
    from datetime import date

    from edxml.model import (Code, DocumentPackage, DocumentType, MessageHeader, Organization,
                             PromulgationInfo)

    header = MessageHeader(
        from_=Organization(organ_id=H55), to=(Organization(organ_id=SO_NOI_VU),),
        code=Code(code_number="1", code_notation="UBND-VP"),
        promulgation_info=PromulgationInfo(place="Thái Nguyên",
                                           promulgation_date=date(2024, 5, 17)),
        document_type=DocumentType(type=1, type_name="Công văn"), subject="V/v thử")
    return DocumentPackage(header)


def test_scratch_directories_are_removed_without_following_a_link(tmp_path) -> None:
    from gateway.outbound import _remove_scratch

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.pdf").write_bytes(b"not ours")
    plain, nested, linked = (tmp_path / name for name in ("plain", "nested", "linked"))
    for directory in (plain, nested, linked):
        directory.mkdir()
        (directory / "package.edxml").write_bytes(b"<edXML/>")
    (nested / "sub").mkdir()
    (nested / "sub" / "copy.pdf").write_bytes(b"%PDF")
    (linked / "to-outside").symlink_to(outside, target_is_directory=True)
    (linked / "file-link").symlink_to(outside / "keep.pdf")
    _remove_scratch((plain, nested, linked, tmp_path / "gone-already"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"]
    assert (outside / "keep.pdf").read_bytes() == b"not ours"


def test_a_worker_killed_for_real_under_a_hand_off_loses_and_duplicates_nothing(
        harness: OutboundHarness) -> None:
    # The daemon's self-healing pool, its one worker stopped (SIGSTOP) so that the batch's
    # hand-off cannot finish before the SIGKILL, whatever the machine's speed.
    import asyncio
    import os
    import signal
    import time

    from gateway.daemon import worker_setup

    pool = work.WorkerPool(worker_setup(harness.config), 1)
    real = harness.ctx.pool
    try:
        pid = pool.submit(os.getpid).result(120)
        os.kill(pid, signal.SIGSTOP)
        records = [valid(harness), valid(harness, SO_NOI_VU), valid(harness)]
        before_sent = len(harness.sent_packages())
        before_retries = retries(harness, "gateway.worker_died")
        harness.ctx.pool = pool
        running = asyncio.run_coroutine_threadsafe(harness.pipeline.handle_batch(records),
                                                   harness._loop)
        deadline = time.monotonic() + 120     # a safety net, not an assertion about time
        while pool.in_flight == 0:
            assert not running.done() and time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        running.result(300)
    finally:
        harness.ctx.pool = real
        pool.shutdown(wait=True, cancel_futures=True)
    assert pool.recreated == 1
    # Each record of the dead hand-offs counted its retry and was built again, alone.
    assert retries(harness, "gateway.worker_died") == before_retries + 3
    assert len(harness.sent_packages()) == before_sent + 3
    for event_id in event_ids(records):
        assert kinds(harness.outcomes(event_id)) == ["delivery.accepted.v1"]
        assert harness.ctx.ledger.get(event_id).state == SENT
