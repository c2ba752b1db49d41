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
from gateway.lab import THAI_NGUYEN, AgencyClient
from tests.gateway.conftest import running_lab

pytestmark = pytest.mark.kafka

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 120 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def lab(kafka_bootstrap, kafka_broker, tmp_path_factory):
    # Per-agency topics, SCRAM principals and ACLs, as in production.
    yield from running_lab(tmp_path_factory, kafka_bootstrap, broker=kafka_broker)


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
    # The simulator counts every package sendEdoc accepted: none was added by the refusal.
    assert "received_total" in after["counters"]
    assert after["counters"]["received_total"] == before["counters"]["received_total"]


@pytest.mark.parametrize("claim", ["from", "ce_agency"])
async def test_an_agency_cannot_send_in_another_agencys_name(lab, thai_nguyen, claim):
    """On its own outbound topic, agency A publishes a document (or a receipt) in the name of
    agency B of the same gateway: refused as event.sender_mismatch, nothing is sent, and the
    outcome goes to A, the agency that really published it."""
    so_noi_vu = AgencyClient(lab, THAI_NGUYEN, "000.00.02.H55")
    doc = so_noi_vu.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="66",
                             notation="SNV-VP", subject="Văn bản mạo danh",
                             attachments=[thai_nguyen.attachment("x.pdf", PDF)])
    if claim == "ce_agency":
        doc["message_header"]["from"]["organ_id"] = "000.00.00.H55"
    key = doc["message_header"]["document_id"]
    sent_id = await thai_nguyen.publish(events.DOCUMENT_SEND, doc, key=key,
                                        ce_agency="000.00.02.H55")
    (failed,) = await thai_nguyen.wait_for("delivery", _for(sent_id))
    assert failed.type == events.DELIVERY_FAILED
    assert failed.data["reason"] == "event.sender_mismatch"
    assert failed.data["sender"] == "000.00.00.H55"
    assert failed.extensions["agency"] == "000.00.00.H55"
    (letter,) = await thai_nguyen.wait_for(
        "deadletter", lambda e: e.data.get("reason") == "event.sender_mismatch"
        and events.original_record(e).header("ce_id") == sent_id.encode())
    assert letter.data["original"]["topic"] == thai_nguyen.topics["outbound_documents"]
    # A receipt in B's name is refused the same way.
    receipt = so_noi_vu.receipt(document=doc, code="01", description="Đã đến")
    receipt_id = await thai_nguyen.publish(events.RECEIPT_SEND, receipt, key=key)
    (failed,) = await thai_nguyen.wait_for("delivery", _for(receipt_id))
    assert failed.data["reason"] == "event.sender_mismatch"
    boxes = await lab.admin("GET", "/admin/mailboxes")
    assert not [m for box in boxes.values() for m in box
                if m["document_id"] == key or m["from_code"] == "000.00.02.H55"]
    # B hears nothing of it.
    assert not [e for e in await so_noi_vu.read("delivery")
                if (e.data or {}).get("event_id") in (sent_id, receipt_id)]


async def test_revoke_with_13_and_15(thai_nguyen, nghe_an):
    doc = thai_nguyen.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="202",
                               notation="UBND-VP", subject="V/v văn bản sẽ thu hồi",
                               attachments=[thai_nguyen.attachment("a.pdf", PDF)])
    key = doc["message_header"]["document_id"]
    first = await thai_nguyen.publish(events.DOCUMENT_SEND, doc, key=key)
    await thai_nguyen.wait_for("delivery", _for(first))
    await nghe_an.wait_for("inbound_documents",
                           lambda e: e.data["package"]["message_header"]["document_id"] == key)

    # The sender asks for the document back (13) and sends the revocation package.
    ask = thai_nguyen.receipt(document=doc, code="13", description="Đề nghị lấy lại văn bản")
    ask["message_header"]["response_for"]["organ_id"] = "000.00.00.H55"
    ask["recipients"] = ["000.00.00.H41"]
    ask_id = await thai_nguyen.publish(events.RECEIPT_SEND, ask, key=key)
    revoke = thai_nguyen.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="202",
                                  notation="UBND-VP", subject="V/v văn bản sẽ thu hồi",
                                  attachments=[thai_nguyen.attachment("a.pdf", PDF)],
                                  business={"business_doc_type": 1, "document_id": key,
                                            "business_doc_reason": "Thu hồi văn bản điện tử"})
    revoke_id = await thai_nguyen.publish(events.DOCUMENT_SEND, revoke, key=key)
    for event_id in (ask_id, revoke_id):
        (outcome,) = await thai_nguyen.wait_for("delivery", _for(event_id))
        assert outcome.type == events.DELIVERY_ACCEPTED, outcome.data

    arrived = await nghe_an.wait_for(
        "inbound_documents", lambda e: e.data["package"]["message_header"]["document_id"] == key,
        count=2)
    flows = sorted(e.data["package"]["trace_header_list"].get("business", {})
                   .get("business_doc_type", 0) for e in arrived)
    assert flows == [0, 1]
    await nghe_an.wait_for("inbound_receipts", lambda e: e.data["message_header"]["status_code"]
                           == "13" and e.data["message_header"]["response_for"]["document_id"] == key)

    agree = nghe_an.receipt(document=doc, code="15", description="Đồng ý thu hồi")
    await nghe_an.publish(events.RECEIPT_SEND, agree, key=key)
    await thai_nguyen.wait_for("inbound_receipts", lambda e: e.data["message_header"]["status_code"]
                               == "15" and e.data["message_header"]["response_for"]["document_id"] == key)


async def test_bad_event_is_dead_lettered_then_replayed_after_the_fix(lab, thai_nguyen, nghe_an):
    content = PDF + b"replay"
    attachment = thai_nguyen.attachment("late.pdf", content)
    missing = Path(attachment["uri"].removeprefix("file://"))
    held = missing.with_suffix(".held")
    missing.rename(held)  # the agency's file is not on the shared volume yet
    doc = thai_nguyen.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="303",
                               notation="UBND-VP", subject="V/v tệp đính kèm đến muộn",
                               attachments=[attachment])
    key = doc["message_header"]["document_id"]
    event_id = await thai_nguyen.publish(events.DOCUMENT_SEND, doc, key=key)
    (failed,) = await thai_nguyen.wait_for("delivery", _for(event_id))
    assert (failed.type, failed.data["reason"]) == (events.DELIVERY_FAILED, "store.missing")
    await thai_nguyen.wait_for("deadletter", lambda e: e.data.get("reason") == "store.missing")

    held.rename(missing)  # the fix
    proc = await asyncio.create_subprocess_exec(
        *_cli(), "dlq", "replay", "--bootstrap", lab.bootstrap,
        "--topic", thai_nguyen.topics["deadletter"], "--reason", "store.missing",
        "--audit-topic", thai_nguyen.topics["audit"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)
    outcomes = await thai_nguyen.wait_for("delivery", _for(event_id), count=2)
    assert outcomes[-1].type == events.DELIVERY_ACCEPTED
    (arrived,) = await nghe_an.wait_for(
        "inbound_documents", lambda e: e.data["package"]["message_header"]["document_id"] == key)
    assert arrived.data["attachments"][0]["sha256"] == hashlib.sha256(content).hexdigest()


async def test_audit_chain_verifies_and_an_altered_record_is_found(lab, thai_nguyen):
    settings = KafkaSettings(bootstrap_servers=lab.bootstrap)
    report = await verify_topic(settings, thai_nguyen.topics["audit"])
    assert report.ok and report.records > 0, report.as_dict()

    # Copy the chain to another topic with one record's outcome changed, as a tamperer would.
    from connectors.kafka import EventProducer, TopicSpec, ensure_topics, read_topic

    records = await read_topic(settings, thai_nguyen.topics["audit"])
    copy = thai_nguyen.topics["audit"] + ".tampered"
    await ensure_topics(settings, [TopicSpec(copy, partitions=3)])
    victim = len(records) // 2
    async with EventProducer(settings) as producer:
        for i, record in enumerate(records):
            value = record.value
            if i == victim:
                data = json.loads(value)
                data["outcome"] = "ok" if data.get("outcome") != "ok" else "failed"
                value = json.dumps(data, ensure_ascii=False).encode()
            await producer.send_record(copy, type(record)(record.key, value, record.headers),
                                       partition=record.partition)
    proc = await asyncio.create_subprocess_exec(
        *_cli(), "audit", "verify", "--bootstrap", lab.bootstrap, "--topic", copy, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 1, (out, err)
    assert json.loads(out)["broken"]["kind"] == "altered"


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "gateway.cli"]


def _http_url(gateway) -> str:
    for line in gateway.log.read_text(errors="replace").splitlines():
        if '"gateway.starting"' in line:
            return json.loads(line)["http"]
    raise AssertionError("no gateway.starting line")


async def test_metrics_health_and_readiness_of_a_running_gateway(lab, thai_nguyen):
    import aiohttp

    gateway = next(gw for gw in lab.gateways if gw.province is THAI_NGUYEN)
    url = _http_url(gateway)
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/healthz") as resp:
            assert resp.status == 200
        async with session.get(url + "/readyz") as resp:
            assert resp.status == 200, await resp.text()
        async with session.get(url + "/metrics") as resp:
            text = await resp.text()
    assert 'edoc_gateway_messages_total{flow="document",outcome="ok",reason="none"}' in text
    assert 'edoc_gateway_axis_request_seconds_count{operation="sendEdoc",outcome="ok"}' in text
    assert 'edoc_gateway_certificate_not_after_timestamp_seconds{agency="000.00.00.H55"}' in text
    assert "edoc_gateway_crl_next_update_timestamp_seconds{crl=" in text
    assert "edoc_gateway_up 1.0" in text


async def test_sigterm_stops_cleanly_with_exit_code_0(lab):
    extra = lab.start_gateway(THAI_NGUYEN, name="gw-term")
    for _ in range(100):
        if '"gateway.ready"' in extra.log.read_text(errors="replace"):
            break
        await asyncio.sleep(0.2)
    assert await asyncio.to_thread(extra.terminate) == 0
    assert '"gateway.stopped"' in extra.log.read_text()
