"""Inbound trust, end to end in one process: a package is what the axis says it is, signed by
whom it claims, and a refusal is told only to the sender the axis vouches for.

Real broker, the axis simulator over real HTTP, real worker processes and signatures. Each test
sends through the simulator as Thái Nguyên's system and runs Nghệ An's inbound pipeline once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway import events
from gateway.senders import SigningSenders
from tests.edxml.hostile import make_corpus as corpus
from tests.gateway.inbound_lab import (G22, H41, H55, H55_NOI_VU, document, inbound_lab,
                                       placeholder, signed, status)

pytestmark = pytest.mark.kafka


def _foreign_header(sender: str) -> str:
    """A MessageHeader in no namespace naming `sender`, to be placed before the real one: the
    axis routes by the real header, a lenient reader takes the first."""
    header = corpus.doc_header()
    header[0] = ["From", [["OrganId", sender], ["OrganName", "Văn phòng Chính phủ"]]]
    header = corpus.edit(header, set={"DocumentId": f"{sender},2026/12/01,99/VPCP-TTĐT"})
    return f'<MessageHeader xmlns="">\n{corpus.render(header, "", "  ")}</MessageHeader>\n'


@pytest.fixture
async def lab(tmp_path, kafka_settings, topic_factory):
    async with inbound_lab(tmp_path, kafka_settings, topic_factory) as lab:
        yield lab


@pytest.fixture
async def strict_lab(tmp_path, kafka_settings, topic_factory):
    async with inbound_lab(tmp_path, kafka_settings, topic_factory,
                           inbound={"signature_policy": "require-valid"}) as lab:
        yield lab


async def test_a_package_signed_by_its_sender_is_published_with_the_signer_bound(strict_lab):
    sent = await strict_lab.send(signed(document("101"), by=H55))
    assert await strict_lab.poll() == 1
    (arrived,) = await strict_lab.events("inbound_documents")
    assert arrived.data["signature"]["status"] == "valid"
    assert arrived.data["package"]["message_header"]["from"]["organ_id"] == H55
    assert await strict_lab.letters() == {}
    assert await strict_lab.axis_status(sent) == "done"


async def test_a_package_from_h55_signed_by_h41_is_refused_even_under_require_valid(strict_lab):
    """Case 2: any trusted certificate used to count, whoever the package said it was from."""
    sent = await strict_lab.send(signed(document("102"), by=H41))
    await strict_lab.poll()
    assert await strict_lab.events("inbound_documents") == []
    receiver = await strict_lab.receiver_doc_id(sent)
    assert (await strict_lab.letters())[receiver] == "signature.signer_mismatch"
    assert await strict_lab.axis_status(sent) == "done"


async def test_a_package_not_addressed_to_the_receiving_agency_is_quarantined(lab):
    """Case 8: the axis delivered it to H41, the package is for Sở Nội vụ Thái Nguyên."""
    sent = await lab.send(signed(document("103", to=(H55_NOI_VU,)), by=H55), to=(H41,))
    await lab.poll()
    assert await lab.events("inbound_documents") == []
    receiver = await lab.receiver_doc_id(sent)
    assert (await lab.letters())[receiver] == "package.not_addressed"


async def test_an_unsigned_package_claiming_g22_sends_no_status_to_g22(strict_lab):
    """Case 5: the package reads as From = Văn phòng Chính phủ; the axis lists it from H55.
    It is quarantined, and no status 02 goes to G22 (nor to anyone)."""
    data = document("104", message_before=_foreign_header(G22))
    sent = await strict_lab.send(data, from_organ=H55)
    await strict_lab.poll()
    assert await strict_lab.events("inbound_documents") == []
    receiver = await strict_lab.receiver_doc_id(sent)
    # The pipeline refuses the sender the axis does not vouch for; a reader that refuses the
    # second header first (edxml.ambiguous) is as good.
    assert (await strict_lab.letters())[receiver] in ("package.sender_mismatch",
                                                      "edxml.ambiguous")
    assert await strict_lab.events("outbound_receipts") == []
    assert await strict_lab.axis_status(sent) == "done"


async def test_a_refused_package_is_answered_with_02_to_the_sender_the_axis_lists(strict_lab):
    sent = await strict_lab.send(document("105"))          # unsigned, under require-valid
    await strict_lab.poll()
    receiver = await strict_lab.receiver_doc_id(sent)
    assert (await strict_lab.letters())[receiver] == "inbound.signature_required"
    (receipt,) = await strict_lab.events("outbound_receipts")
    assert receipt.type == events.RECEIPT_SEND
    header = receipt.data["message_header"]
    assert header["status_code"] == "02" and header["from"]["organ_id"] == H41
    assert header["response_for"]["organ_id"] == H55


# --- per-sender policy: no downgrade ---------------------------------------------------------


async def test_a_configured_signing_sender_cannot_send_a_placeholder(tmp_path, kafka_settings,
                                                                     topic_factory):
    async with inbound_lab(tmp_path, kafka_settings, topic_factory,
                           inbound={"signing_senders": ("000.00.00.H55",)}) as lab:
        refused = await lab.send(placeholder("111"))
        flowing = await lab.send(placeholder("112", sender=H55_NOI_VU), from_organ=H55_NOI_VU)
        await lab.poll()
        letters = await lab.letters()
        assert letters == {await lab.receiver_doc_id(refused): "signature.downgrade"}
        (arrived,) = await lab.events("inbound_documents")
        assert arrived.data["signature"]["status"] == "placeholder"
        assert arrived.data["package"]["message_header"]["from"]["organ_id"] == H55_NOI_VU
        assert await lab.axis_status(flowing) == "done"


async def test_a_sender_seen_signing_cannot_send_a_placeholder_afterwards(lab):
    """Senders never seen signing keep flowing with placeholders (the reference libraries);
    once a valid signature bound to a sender has arrived, a placeholder from it is a downgrade,
    and that is remembered in the senders topic."""
    before = await lab.send(placeholder("121"))
    await lab.poll()
    assert len(await lab.events("inbound_documents")) == 1          # flows: not seen signing
    await lab.send(signed(document("122"), by=H55))
    await lab.poll()
    assert lab.poller.senders.signs(H55, "edoc")
    after = await lab.send(placeholder("123"))
    await lab.poll()
    assert (await lab.letters()) == {await lab.receiver_doc_id(after): "signature.downgrade"}
    assert await lab.axis_status(before) == "done"
    reloaded = SigningSenders(lab.settings, lab.topics["senders"], None)
    await reloaded.reload()
    assert reloaded.signs(H55, "edoc") and not reloaded.signs(H55_NOI_VU, "edoc")
    # Receipts are remembered apart: the reference library writes none on status packages.
    assert not reloaded.signs(H55, "status")


# --- permanent vs transient: an arrived event larger than a Kafka record -----------------------


async def test_a_document_with_1_2_mb_of_content_arrives_with_its_content_by_reference(lab):
    """Case 7: the event would exceed the broker's 1 MB limit; it was deferred forever."""
    content = "Nội dung văn bản rất dài. " * 48_000            # about 1.3 MB of UTF-8
    assert len(content.encode()) > 1_200_000
    sent = await lab.send(signed(document("131", content=content), by=H55))
    assert await lab.poll() == 1
    (arrived,) = await lab.events("inbound_documents")
    events.validate_data(events.DOCUMENT_ARRIVED, arrived.data)
    assert "content" not in arrived.data["package"]["message_header"]
    ref = arrived.data["content_ref"]
    stored = Path(ref["uri"].removeprefix("file://")).read_bytes()
    assert stored.decode("utf-8") == content
    assert ref["sha256"] == hashlib.sha256(stored).hexdigest() and ref["size"] == len(stored)
    assert events.record_bytes(arrived, arrived.subject) < lab.ctx.config.inbound.max_event_bytes
    assert arrived.data["signature"]["status"] == "valid"
    assert await lab.axis_status(sent) == "done"


async def test_an_ordinary_document_keeps_its_content_inline(lab):
    await lab.send(signed(document("132"), by=H55))
    await lab.poll()
    (arrived,) = await lab.events("inbound_documents")
    assert "content_ref" not in arrived.data
    assert arrived.data["package"]["message_header"]["content"]


async def test_an_event_too_large_even_by_reference_is_quarantined_with_02(lab):
    """A huge Subject cannot go by reference: refused once, answered, never refetched."""
    data = corpus.document(corpus.REF, header=corpus.edit(corpus.doc_header(), set={
        "DocumentId": f"{H55},2026/12/01,133/UBND-VP", "Subject": "Trích yếu " * 120_000}))
    sent = await lab.send(signed(data.encode(), by=H55))
    await lab.poll()
    receiver = await lab.receiver_doc_id(sent)
    assert (await lab.letters())[receiver] == "inbound.event_too_large"
    (receipt,) = await lab.events("outbound_receipts")
    assert receipt.data["message_header"]["response_for"]["organ_id"] == H55
    assert await lab.axis_status(sent) == "done"
    assert await lab.poll() == 0


async def test_unsigned_receipts_keep_flowing_from_a_sender_seen_signing_documents(
        tmp_path, kafka_settings, topic_factory):
    """The reference library writes no signature on status packages, whatever the software
    does with its documents: signing is remembered per kind."""
    async with inbound_lab(tmp_path, kafka_settings, topic_factory,
                           inbound={"signature_policy": "allow-unsigned"}) as lab:
        await lab.send(signed(document("141"), by=H55))
        await lab.poll()
        receipt = await lab.send(status(sender=H55, about=H41), messagetype="status")
        downgraded = await lab.send(placeholder("142"))
        await lab.poll()
        (arrived,) = await lab.events("inbound_receipts")
        assert arrived.data["signature"]["status"] == "absent"
        assert await lab.axis_status(receipt, "status") == "done"
        assert await lab.letters() == {await lab.receiver_doc_id(downgraded):
                                       "signature.downgrade"}
        # Once a signed receipt has come from it, an unsigned one is a downgrade too.
        await lab.send(signed(status(sender=H55, about=H41, code="06"), by=H55),
                       messagetype="status")
        await lab.poll()
        assert lab.poller.senders.signs(H55, "status")
        late = await lab.send(status(sender=H55, about=H41, code="05"), messagetype="status")
        await lab.poll()
        letters = await lab.letters()
        assert letters[await lab.receiver_doc_id(late, "status")] == "signature.downgrade"


async def test_the_instance_that_takes_the_lease_knows_the_senders_learnt_before(lab):
    """Another instance learnt that H55 signs; the one taking the poller lease reloads the
    senders topic before its first poll, so H55's placeholder is still a downgrade there."""
    import asyncio
    from types import SimpleNamespace

    from gateway.inbound import InboundPoller

    await lab.send(signed(document("151"), by=H55))
    await lab.poll()
    successor = InboundPoller(ctx=lab.ctx, senders=SigningSenders(
        lab.settings, lab.topics["senders"], None))          # started before the learning
    assert not successor.senders.signs(H55, "edoc")
    late = await lab.send(placeholder("152"))
    stopping = asyncio.Event()
    first_poll = successor.poll_once

    async def poll_once_then_stop() -> int:
        try:
            return await first_poll()
        finally:
            stopping.set()

    successor.poll_once = poll_once_then_stop  # type: ignore[method-assign]
    held = asyncio.Event()
    held.set()
    await successor.run(SimpleNamespace(held=held), stopping)
    assert (await lab.letters())[await lab.receiver_doc_id(late)] == "signature.downgrade"
