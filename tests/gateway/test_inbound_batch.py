"""The inbound poller handles listed messages in batches: their outcomes are produced together
and acknowledged at once, and each message is marked on the axis only after its own outcome is
acknowledged. A transient error ends only the message it hit; the rest of the batch goes on.

Real broker, the axis simulator over real HTTP, real worker processes and signatures.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from connectors.kafka import read_topic
from gateway import inbound
from gateway.senders import SigningSenders
from tests.gateway.inbound_lab import H55, document, inbound_lab, placeholder, signed

pytestmark = pytest.mark.kafka


@pytest.fixture
async def lab(tmp_path, kafka_settings, topic_factory, monkeypatch):
    monkeypatch.setattr(inbound, "BATCH_SIZE", 3)
    async with inbound_lab(tmp_path, kafka_settings, topic_factory, workers=2) as lab:
        yield lab


async def _fault(lab, operation: str, count: int) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{lab.simulator.admin_url}/faults", json={"rules": [
                {"kind": "error", "status": 503, "operations": [operation],
                 "count": count}]}) as resp:
            assert resp.status == 200, await resp.text()


async def _audit_steps(lab) -> list[tuple[int, str, str]]:
    """(seq, axis DocId, step) of the inbound audit records, in chain order."""
    records = await lab.events("audit")
    steps = [(e.data["seq"], e.data.get("axis_doc_id"), e.data["step"]) for e in records
             if e.data["flow"] == "inbound-document"]
    return sorted(steps)


async def test_messages_of_several_batches_arrive_once_and_are_marked_after_their_records(lab):
    sent = [await lab.send(signed(document(str(500 + i)), by=H55)) for i in range(7)]
    assert await lab.poll() == 7                                   # batches of 3, 3 and 1
    arrived = await lab.events("inbound_documents")
    assert len(arrived) == 7 and len({e.id for e in arrived}) == 7
    assert [await lab.axis_status(s) for s in sent] == ["done"] * 7
    receivers = {await lab.receiver_doc_id(s) for s in sent}
    assert {e.data["axis_doc_id"] for e in arrived} == receivers
    # Each message: published, then marked done, in the audit chain's order.
    steps = await _audit_steps(lab)
    for doc_id in receivers:
        mine = [step for _, d, step in steps if d == doc_id]
        assert mine == ["published", "marked-done"], (doc_id, mine)
    assert await lab.poll() == 0


@pytest.mark.parametrize("operation", ["getEdoc", "updateStatus"])
async def test_a_transient_error_leaves_only_its_message_for_the_next_poll(lab, operation):
    sent = [await lab.send(signed(document(str(510 + i)), by=H55)) for i in range(3)]
    await _fault(lab, operation, count=1)
    assert await lab.poll() == 2
    statuses = [await lab.axis_status(s) for s in sent]
    assert sorted(statuses) == ["done", "done", "initial"]
    left = sent[statuses.index("initial")]
    assert await lab.poll() == 1
    assert await lab.axis_status(left) == "done"
    arrived = await lab.events("inbound_documents")
    # Every message arrived under one event id; one whose mark failed was published twice.
    assert len({e.id for e in arrived}) == 3
    assert len(arrived) == (4 if operation == "updateStatus" else 3)
    assert (await lab.letters()) == {}


async def test_a_sender_found_signing_earlier_in_a_batch_must_sign_later_in_it(lab):
    """Decided in the order listed, as if the messages had come one poll each."""
    first = await lab.send(signed(document("521"), by=H55))
    second = await lab.send(signed(document("522"), by=H55))
    downgraded = await lab.send(placeholder("523"))
    assert await lab.poll() == 3
    assert (await lab.letters()) == {await lab.receiver_doc_id(downgraded): "signature.downgrade"}
    assert [await lab.axis_status(s) for s in (first, second, downgraded)] == ["done"] * 3
    assert len(await lab.events("inbound_documents")) == 2
    # Learned once, although two packages of the batch taught it.
    learned = await read_topic(lab.settings, lab.topics["senders"], idle_timeout_s=5)
    assert [r.key for r in learned] == [f"edoc/{H55}".encode()]



async def test_a_bug_in_one_step_ends_the_batch_after_its_other_steps_unmarked(lab, monkeypatch):
    """An unexpected error (a bug) ends the poll, but only once every fetch of the batch has
    finished, so none runs on behind the removal of the scratch directories; nothing is
    marked, and the next poll handles every message."""
    sent = [await lab.send(signed(document(str(530 + i)), by=H55)) for i in range(3)]
    real = lab.ctx.axis.get_edoc
    calls: list[str] = []
    finished: list[str] = []

    async def get_edoc(doc_id, dest):
        calls.append(doc_id)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        await asyncio.sleep(0.3)
        result = await real(doc_id, dest)
        finished.append(doc_id)
        return result

    monkeypatch.setattr(lab.ctx.axis, "get_edoc", get_edoc)
    with pytest.raises(RuntimeError, match="a bug"):
        await lab.poll()
    assert len(finished) == 2
    assert list(lab.ctx.store.scratch().iterdir()) == []
    assert [await lab.axis_status(s) for s in sent] == ["initial"] * 3
    monkeypatch.setattr(lab.ctx.axis, "get_edoc", real)
    assert await lab.poll() == 3
    assert len(await lab.events("inbound_documents")) == 3

# --- SigningSenders: one write per new sender, however many packages teach it at once ---------

async def test_concurrent_learns_of_one_sender_write_once():
    writes: list[bytes] = []
    gate = asyncio.Event()

    async def send(key: bytes, value: bytes) -> None:
        writes.append(key)
        await gate.wait()

    senders = SigningSenders(None, None, send)
    tasks = [asyncio.create_task(senders.learn(H55, "edoc", axis_doc_id=str(i),
                                               signer_serial=None)) for i in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    assert sorted(await asyncio.gather(*tasks)) == [False, False, True]
    assert writes == [f"edoc/{H55}".encode()]
    assert senders.signs(H55, "edoc")


async def test_a_failed_learn_is_written_by_the_next_package_that_teaches_it():
    writes: list[bytes] = []
    gate = asyncio.Event()

    async def send(key: bytes, value: bytes) -> None:
        writes.append(key)
        if len(writes) == 1:
            await gate.wait()
            raise RuntimeError("broker gone")

    senders = SigningSenders(None, None, send)
    first = asyncio.create_task(senders.learn(H55, "edoc", axis_doc_id="1", signer_serial=None))
    second = asyncio.create_task(senders.learn(H55, "edoc", axis_doc_id="2", signer_serial=None))
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert await second is True
    assert writes == [f"edoc/{H55}".encode()] * 2
    assert senders.signs(H55, "edoc")


async def test_the_published_line_carries_the_issuer_breach_of_its_package(lab):
    from structlog.testing import capture_logs

    for i in range(2):
        await lab.send(signed(document(str(560 + i)), by=H55))
    with capture_logs() as logs:
        assert await lab.poll() == 2
    arrived = {e.id: e.data for e in await lab.events("inbound_documents")}
    published = [e for e in logs if e["event"] == "inbound.published"]
    assert len(published) == 2
    assert not [e for e in logs if e["event"] == "inbound.attachment_unsigned"]
    # Not vacuous: the lab's documents carry no signed PDF, so the (report) rule is breached.
    assert all("attachment_unsigned" in line for line in published)
    for line in published:
        issuer = arrived[line["event_id"]]["attachment_signatures"].get("issuer")
        if issuer is None or issuer["ok"]:
            assert "attachment_unsigned" not in line
        else:
            assert line["attachment_unsigned"] == issuer["message"]
            assert line["issuer_policy"] == issuer["policy"] and line["sender"] == H55
