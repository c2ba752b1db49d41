"""The outbound trust boundary, driven through `OutboundPipeline.handle` with real collaborators
(the run's Kafka broker, the axis simulator over HTTP, signing worker processes, the file store).

What an agency's software must not be able to do through its events: make the gateway read and
send a file that is not its own (a key swapped in after the check, another agency's file, an
archived package), learn the size or hash of a file it names, hijack another event's id, or
stop the gateway with one record.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import read_topic
from gateway import dlq, events
from tests.gateway.outbound_harness import (H55, RECIPIENT, SO_NOI_VU, OutboundHarness,
                                            attachment, document, kinds, reasons, send_event)

VN = timezone(timedelta(hours=7))


@pytest.fixture(scope="module")
def harness(kafka_settings, tmp_path_factory) -> OutboundHarness:
    h = OutboundHarness(tmp_path_factory.mktemp("outbound-boundary"), kafka_settings)
    yield h
    h.close()


def _key_bytes(harness: OutboundHarness) -> bytes:
    return Path(harness.pki.agencies[H55].key).read_bytes()


def _carries(packages: list[bytes], secret: bytes) -> bool:
    """Whether any package carries `secret` as (the start of) an attachment."""
    needle = base64.b64encode(secret[:300]).decode()[:400].encode()
    return any(needle in p for p in packages)


def _failed_only(harness: OutboundHarness, event_id: str) -> set[str]:
    outcomes = harness.outcomes(event_id)
    assert kinds(outcomes) == ["deadletter.v1", "delivery.failed.v1"], kinds(outcomes)
    return reasons(outcomes)


# -- case 1: a checked file swapped for a symlink to a key --------------------------------------

class SwappingPool:
    """The worker pool, with the swap an attacker makes between the gateway's check of the
    referenced file and its use (right before the package is built)."""

    def __init__(self, pool: Any, swap: Any) -> None:
        self._pool, self._swap = pool, swap

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._swap()
        return self._pool.submit(fn, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def test_a_file_swapped_for_a_symlink_to_a_key_after_the_check_is_never_sent(
        harness: OutboundHarness) -> None:
    key = Path(harness.pki.agencies[H55].key)
    secret = key.read_bytes()
    # A decoy of the key's size; the event claims the key's SHA-256 (which an earlier
    # delivery.failed used to tell the caller).
    ref = attachment(harness, H55, "decoy.pdf", b"%" * len(secret))
    ref["sha256"] = hashlib.sha256(secret).hexdigest()
    decoy = harness.root(H55) / "decoy.pdf"

    def swap() -> None:
        decoy.unlink()
        decoy.symlink_to(key)

    event = send_event(document(H55, number="101", attachments=[ref]))
    before = len(harness.sent_packages())
    pool = harness.ctx.pool
    harness.ctx.pool = SwappingPool(pool, swap)
    try:
        harness.handle(harness.record(event))
    finally:
        harness.ctx.pool = pool
    packages = harness.sent_packages()
    assert not _carries(packages, secret), "the private key was sent as an attachment"
    assert len(packages) == before
    assert _failed_only(harness, event.id) == {"store.hash_mismatch"}


def test_a_reference_raced_between_a_file_and_a_symlink_to_a_key_never_sends_the_key(
        harness: OutboundHarness) -> None:
    key = Path(harness.pki.agencies[H55].key)
    secret = key.read_bytes()
    root = harness.root(H55)
    stop = threading.Event()

    def race() -> None:
        # Replace the name atomically, over and over: a regular file, then a symlink to the key.
        i = 0
        while not stop.is_set():
            tmp = root / f".race-{i % 2}"
            if i % 2:
                tmp.write_bytes(b"%" * len(secret))
            else:
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(key)
            os.replace(tmp, root / "raced.pdf")
            i += 1

    (root / "raced.pdf").write_bytes(b"%" * len(secret))
    ref = {"content_id": "r1", "attachment_name": "raced.pdf", "content_type": "application/pdf",
           "uri": (root / "raced.pdf").as_uri(), "sha256": hashlib.sha256(secret).hexdigest(),
           "size": len(secret)}
    racer = threading.Thread(target=race, daemon=True)
    racer.start()
    ids = []
    try:
        for n in range(12):
            event = send_event(document(H55, number=f"2{n:02d}", attachments=[ref]))
            ids.append(event.id)
            harness.handle(harness.record(event))
    finally:
        stop.set()
        racer.join(10)
    assert not _carries(harness.sent_packages(), secret)
    for event_id in ids:
        assert _failed_only(harness, event_id) <= {"store.forbidden", "store.hash_mismatch",
                                                   "store.missing"}


def test_a_mismatch_never_tells_the_real_size_or_hash(harness: OutboundHarness) -> None:
    content = b"%PDF-1.7 the agency's own file\n" * 7
    real_sha, real_size = hashlib.sha256(content).hexdigest(), str(len(content))
    wrong_size = attachment(harness, H55, "size.pdf", content) | {"size": len(content) + 1000}
    wrong_hash = attachment(harness, H55, "hash.pdf", content) | {"sha256": "0" * 64}
    for ref, reason in ((wrong_size, "store.size_mismatch"), (wrong_hash, "store.hash_mismatch")):
        event = send_event(document(H55, number="102", attachments=[ref]))
        with capture_logs() as logs:
            harness.handle(harness.record(event))
        assert _failed_only(harness, event.id) == {reason}
        told = [e.data["message"] for _, e in harness.outcomes(event.id)]
        told += [str(entry) for entry in logs]
        for text in told:
            assert real_sha not in text and real_size not in text.replace(ref["uri"], ""), text


# -- case 3: another agency's files, the archive ------------------------------------------------

def test_an_agency_cannot_attach_another_agencys_file(harness: OutboundHarness) -> None:
    theirs = attachment(harness, H55, "h55-only.pdf", b"%PDF UBND tinh, not for So Noi vu\n")
    before = len(harness.sent_packages())
    event = send_event(document(SO_NOI_VU, number="103", attachments=[theirs]))
    harness.handle(harness.record(event))
    assert _failed_only(harness, event.id) == {"store.forbidden"}
    assert len(harness.sent_packages()) == before
    # Its own file under the same name pattern goes through.
    mine = attachment(harness, SO_NOI_VU, "snv.pdf", b"%PDF So Noi vu\n")
    ok = send_event(document(SO_NOI_VU, number="104", attachments=[mine]))
    harness.handle(harness.record(ok))
    assert kinds(harness.outcomes(ok.id)) == ["delivery.accepted.v1"]


def test_an_agency_cannot_attach_a_package_from_the_archive(harness: OutboundHarness) -> None:
    own = send_event(document(H55, number="105", attachments=[
        attachment(harness, H55, "own.pdf", b"%PDF own\n")]))
    harness.handle(harness.record(own))
    [(_, accepted)] = harness.outcomes(own.id)
    sha = accepted.data["package_sha256"]
    archived = harness.ctx.store.path_for("archive", sha)
    assert archived.exists()
    ref = {"content_id": "a1", "attachment_name": "archived.pdf",
           "content_type": "application/pdf", "uri": archived.as_uri(), "sha256": sha,
           "size": archived.stat().st_size}
    for sender in (H55, SO_NOI_VU):
        event = send_event(document(sender, number="106", attachments=[ref]))
        harness.handle(harness.record(event))
        assert _failed_only(harness, event.id) == {"store.forbidden"}


# -- case 4: an event id reused by another agency -----------------------------------------------

def test_an_id_delivered_for_one_agency_is_refused_for_another(harness: OutboundHarness) -> None:
    first = send_event(document(H55, number="107"))
    harness.handle(harness.record(first))
    assert kinds(harness.outcomes(first.id)) == ["delivery.accepted.v1"]
    sent = len(harness.sent_packages())
    hijack = send_event(document(SO_NOI_VU, number="108"), id=first.id)
    harness.handle(harness.record(hijack))
    outcomes = [(t, e) for t, e in harness.outcomes(first.id) if e.data.get("sender") == SO_NOI_VU
                or e.type == events.DEADLETTER]
    assert kinds(outcomes) == ["deadletter.v1", "delivery.failed.v1"]
    assert reasons(outcomes) == {"event.id_conflict"}
    assert len(harness.sent_packages()) == sent
    # The ledger still says what it said about the first agency's event.
    entry = harness.ledger.get(first.id)
    assert entry.sender == H55 and entry.state == "sent"
    # The same agency reusing its id for another document is refused too.
    other_doc = send_event(document(H55, number="109"), id=first.id)
    harness.handle(harness.record(other_doc))
    assert "event.id_conflict" in reasons(harness.outcomes(first.id))


def test_a_dead_letter_replayed_after_another_agency_reused_its_id_is_delivered(
        harness: OutboundHarness) -> None:
    """B's event fails (its file is not there yet) and is dead-lettered; A then publishes a
    document with B's ce_id; B puts the file in place and the operator replays B's dead letter.
    B's document must reach the axis, and A's must not be answered from B's entry."""
    missing = {"content_id": "m1", "attachment_name": "late.pdf",
               "content_type": "application/pdf",
               "uri": (harness.root(SO_NOI_VU) / "late.pdf").as_uri(),
               "sha256": hashlib.sha256(b"%PDF late\n").hexdigest(), "size": 10}
    b_event = send_event(document(SO_NOI_VU, number="110", attachments=[missing]))
    b_record = harness.record(b_event)
    harness.handle(b_record)
    assert _failed_only(harness, b_event.id) == {"store.missing"}
    [letter] = [e for t, e in harness.outcomes(b_event.id) if e.type == events.DEADLETTER]

    a_event = send_event(document(H55, number="111"), id=b_event.id)
    harness.handle(harness.record(a_event))
    a_outcomes = [e for _, e in harness.outcomes(b_event.id) if e.data.get("sender") == H55]
    assert [e.type for e in a_outcomes] == [events.DELIVERY_FAILED]
    assert a_outcomes[0].data["reason"] == "event.id_conflict"

    (harness.root(SO_NOI_VU) / "late.pdf").write_bytes(b"%PDF late\n")
    # The operator's replay (gateway.dlq): the original key, headers and value, unchanged, on
    # the original topic; read back from Kafka and handled.
    report = harness.run(dlq.replay(harness.kafka, harness.config.topics.deadletter,
                                    ids=[letter.id]))
    assert report.replayed == (letter.id,)
    [original] = [r for r in harness.run(read_topic(harness.kafka,
                                                    harness.config.topics.outbound_documents))
                  if r.header("ce_id") == b_event.id.encode()]
    sent_before = len(harness.sent_packages())
    harness.handle(original)
    accepted = [e for _, e in harness.outcomes(b_event.id)
                if e.type == events.DELIVERY_ACCEPTED and e.data["sender"] == SO_NOI_VU]
    assert len(accepted) == 1 and accepted[0].data["axis_doc_id"]
    assert len(harness.sent_packages()) == sent_before + 1
    assert harness.ledger.get(b_event.id).sender == SO_NOI_VU


# -- case 5: one record must not stop the gateway -----------------------------------------------

@pytest.mark.parametrize("event_type", [events.RECEIPT_SEND, events.DOCUMENT_SEND])
def test_a_time_in_year_1_is_a_dead_letter_not_a_crash(harness: OutboundHarness,
                                                       event_type: str) -> None:
    data: Any
    if event_type == events.RECEIPT_SEND:
        data = {"message_header": {
            "from": {"organ_id": H55},
            "response_for": {"organ_id": RECIPIENT, "code": "12/UBND-VP",
                             "promulgation_date": "2026-11-25",
                             "document_id": f"{RECIPIENT},2026/11/25,12/UBND-VP"},
            "status_code": "01", "description": "Đã đến"}}
    else:
        data = document(H55, number="112")
    good = send_event(data, type=event_type).to_record(key=b"doc")
    headers = [(k, v) for k, v in good.headers if k != "ce_time"]
    headers.append(("ce_time", b"0001-01-01T00:00:00+07:00"))
    record = harness.record(headers=headers, value=good.value)
    harness.handle(record)   # must return, not raise
    event_id = dict(good.headers)["ce_id"].decode()
    letters = [e for t, e in harness.outcomes(event_id) if e.type == events.DEADLETTER]
    assert len(letters) == 1 and letters[0].data["reason"] == "event.envelope"


def test_a_600_kb_id_is_refused_cheaply_and_not_kept(harness: OutboundHarness) -> None:
    good = send_event(document(H55, number="113")).to_record(key=b"doc")
    huge = b"x" * 600_000
    headers = [(k, huge if k == "ce_id" else v) for k, v in good.headers]
    entries = len(harness.ledger)
    published = len(harness.ctx.published)
    harness.handle(harness.record(headers=headers, value=good.value))
    new = harness.ctx.published[published:]
    assert [e.type for _, e in new] == [events.DEADLETTER]
    assert new[0][1].data["reason"] == "event.too_large"
    assert len(harness.ledger) == entries
    assert all(len(e.id) < 1000 for _, e in new)


def test_an_unexpected_exception_ends_as_an_internal_error_dead_letter(
        harness: OutboundHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug somewhere below the pipeline")

    event = send_event(document(H55, number="114"))
    monkeypatch.setattr(events, "parse_incoming", broken)
    counter = harness.metrics.internal_errors.labels("document")
    before = counter._value.get()
    with capture_logs() as logs:
        harness.handle(harness.record(event))   # must return, not raise
    outcomes = harness.outcomes(event.id)
    assert kinds(outcomes) == ["deadletter.v1", "delivery.failed.v1"]
    assert reasons(outcomes) == {"internal.error"}
    letter = next(e for _, e in outcomes if e.type == events.DEADLETTER)
    assert "ZeroDivisionError" in letter.data["message"]
    assert counter._value.get() == before + 1
    errors = [e for e in logs if e["event"] == "outbound.internal_error"]
    assert errors and errors[0]["error_type"] == "ZeroDivisionError" and errors[0]["exc_info"]


def test_an_exception_after_the_outcome_is_counted_but_does_not_contradict_it(
        harness: OutboundHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("a bug after the delivery was recorded")

    event = send_event(document(H55, number="115"))
    monkeypatch.setattr(harness.metrics, "message", broken)
    counter = harness.metrics.internal_errors.labels("document")
    before = counter._value.get()
    harness.handle(harness.record(event))   # must return, not raise
    assert kinds(harness.outcomes(event.id)) == ["delivery.accepted.v1"]
    assert counter._value.get() == before + 1


class BreakingAxis:
    """The axis client, with the scratch space failing once under the work: the signed
    package disappears right before the first send."""

    def __init__(self, axis: Any) -> None:
        self._axis, self.broken = axis, 0

    async def send_edoc(self, path: Path, **kwargs: Any) -> Any:
        if not self.broken:
            self.broken += 1
            Path(path).unlink()
        return await self._axis.send_edoc(path, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._axis, name)


def test_a_scratch_space_failing_under_the_work_is_built_again_not_an_internal_error(
        harness: OutboundHarness) -> None:
    event = send_event(document(H55, number="116", attachments=[
        attachment(harness, H55, "scratch.pdf", b"%PDF scratch\n")]))
    before = len(harness.sent_packages())
    axis = harness.ctx.axis
    harness.ctx.axis = breaking = BreakingAxis(axis)
    try:
        harness.handle(harness.record(event))
    finally:
        harness.ctx.axis = axis
    assert breaking.broken == 1
    assert kinds(harness.outcomes(event.id)) == ["delivery.accepted.v1"]
    assert len(harness.sent_packages()) == before + 1


def test_a_broken_worker_pool_stops_the_daemon_rather_than_dead_lettering_everything(
        harness: OutboundHarness) -> None:
    from concurrent.futures.process import BrokenProcessPool

    class DeadPool:
        def submit(self, *_args: Any, **_kwargs: Any) -> Any:
            raise BrokenProcessPool("a worker died")

    event = send_event(document(H55, number="117"))
    pool = harness.ctx.pool
    harness.ctx.pool = DeadPool()
    try:
        with pytest.raises(BrokenProcessPool):
            harness.handle(harness.record(event))
    finally:
        harness.ctx.pool = pool
    assert harness.outcomes(event.id) == []
