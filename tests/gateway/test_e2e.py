"""End to end: two provinces' gateways exchange documents through the axis simulator over real
Kafka, as separate processes. Slow-ish (seconds each); they share one lab per module."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from connectors.kafka import KafkaSettings
from gateway import events
from gateway.audit import verify_topic
from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, Lab

pytestmark = pytest.mark.kafka

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 120 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def lab(kafka_bootstrap, tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lab"), kafka_bootstrap)
    lab.start()
    lab.start_gateway(THAI_NGUYEN)
    lab.start_gateway(NGHE_AN)
    yield lab
    lab.stop()
    for gw in lab.gateways:
        print(f"--- {gw.log}\n" + gw.log.read_text(errors="replace")[-4000:])


@pytest.fixture
def thai_nguyen(lab):
    return AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")


@pytest.fixture
def nghe_an(lab):
    return AgencyClient(lab, NGHE_AN, "000.00.00.H41")


def _for(event_id):
    return lambda e: (e.data or {}).get("event_id") == event_id


async def test_document_flows_to_the_other_province_and_receipts_flow_back(thai_nguyen, nghe_an):
    attachment = thai_nguyen.attachment("cong-van.pdf", PDF)
    doc = thai_nguyen.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="101",
                               notation="UBND-VP", subject="V/v thử nghiệm liên thông văn bản",
                               attachments=[attachment])
    key = doc["message_header"]["document_id"]
    sent_id = await thai_nguyen.publish(events.DOCUMENT_SEND, doc, key=key)

    (accepted,) = await thai_nguyen.wait_for("delivery", _for(sent_id))
    assert accepted.type == events.DELIVERY_ACCEPTED
    assert accepted.data["axis_doc_id"]

    (arrived,) = await nghe_an.wait_for(
        "inbound_documents", lambda e: e.data["package"]["message_header"]["document_id"] == key)
    assert arrived.type == events.DOCUMENT_ARRIVED
    assert arrived.data["recipient"] == "000.00.00.H41"
    assert arrived.data["signature"]["status"] == "valid"
    assert "000.00.00.H55" in arrived.data["signature"]["signer"]["subject"] or \
        arrived.data["signature"]["signer"]["subject"]
    (att,) = arrived.data["attachments"]
    assert att["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert att["detected_type"] == "application/pdf"
    stored = Path(att["uri"].removeprefix("file://"))
    assert stored.read_bytes() == PDF

    for code, text in (("01", "Đã đến"), ("03", "Tiếp nhận"), ("06", "Hoàn thành")):
        await nghe_an.publish(events.RECEIPT_SEND, nghe_an.receipt(document=doc, code=code,
                                                                   description=text), key=key)
    receipts = await thai_nguyen.wait_for(
        "inbound_receipts",
        lambda e: e.data["message_header"]["response_for"]["document_id"] == key, count=3)
    assert sorted(r.data["message_header"]["status_code"] for r in receipts) == ["01", "03", "06"]


async def test_secret_document_is_refused_and_nothing_is_sent(lab, thai_nguyen):
    doc = thai_nguyen.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="7",
                               notation="UBND-VP", subject="Tài liệu mật",
                               attachments=[thai_nguyen.attachment("mat.pdf", PDF)], secrecy="mat")
    before = await lab.admin("GET", "/admin/counters")
    sent_id = await thai_nguyen.publish(events.DOCUMENT_SEND, doc,
                                        key=doc["message_header"]["document_id"])
    (failed,) = await thai_nguyen.wait_for("delivery", _for(sent_id))
    assert failed.type == events.DELIVERY_FAILED
    assert failed.data["reason"] == "event.secret_document"
    letters = await thai_nguyen.wait_for("deadletter", lambda e: e.data.get("reason") ==
                                         "event.secret_document")
    assert letters
    after = await lab.admin("GET", "/admin/counters")
    assert json.dumps(after.get("received"), sort_keys=True) == \
        json.dumps(before.get("received"), sort_keys=True)
