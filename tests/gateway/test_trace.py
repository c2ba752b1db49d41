"""`edoc-gateway trace`: a document's history across both provinces, from what the gateways
really write (two gateway processes, the axis simulator, the real broker)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.kafka import KafkaSettings
from gateway import events
from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient
from tests.gateway.conftest import running_lab
from gateway.ops.index import Fact, TopicSource, TraceIndex
from gateway.ops.trace import awaiting_receipt, state_of, trace

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
TO_NGHE_AN = [("000.00.00.H41", "UBND tỉnh Nghệ An")]


# -- the state, from facts alone (fast) ----------------------------------------------------------

def _fact(kind: str, time: str, **fields) -> Fact:
    return Fact(topic="t", partition=0, offset=hash((kind, time)) % 10_000, source="s",
                time=time, kind=kind, **fields)


def test_a_sent_document_without_receipt_is_awaiting_01_with_its_age():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    facts = [_fact("document.send", "2026-12-02T09:00:00.000Z", document_id="D"),
             _fact("delivery.accepted", "2026-12-02T09:00:01.000Z", flow="document",
                   document_id="D", axis_doc_id="42")]
    state = state_of(facts, now)
    assert (state.state, state.summary, state.awaited) == \
        ("awaiting-01", "sent 2 h ago, no 01 yet", "01 (Đã đến)")


def test_a_dead_letter_is_the_state_until_it_is_replayed():
    letter = _fact("deadletter", "2026-12-02T09:00:00.000Z", flow="document", document_id="D",
                   reason="store.missing", detail={"deadletter_id": "dl:x:0:1"})
    assert state_of([letter]).state == "dead-lettered"
    replay = _fact("deadletter.replayed", "2026-12-02T09:05:00.000Z", flow="dlq",
                   step="replayed", detail={"deadletter_id": "dl:x:0:1"})
    assert state_of([letter, replay]).state == "replayed"


# -- against the real gateways -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(kafka_bootstrap, tmp_path_factory):
    yield from running_lab(tmp_path_factory, kafka_bootstrap)


def _configs(lab) -> list[Path]:
    return [lab.province_dir(p) / "gateway.toml" for p in (THAI_NGUYEN, NGHE_AN)]


async def _trace(lab, tmp_path, query):
    from gateway.config import load_config

    sources = [TopicSource.from_config(load_config(path, {})) for path in _configs(lab)]
    index = TraceIndex(tmp_path / "trace.sqlite")
    try:
        await index.update(KafkaSettings(bootstrap_servers=lab.bootstrap), sources)
        return trace(index, query)
    finally:
        index.close()


def _for(event_id):
    return lambda e: (e.data or {}).get("event_id") == event_id


async def _send(client, number, subject, **kwargs):
    doc = client.document(to=TO_NGHE_AN, number=number, notation="UBND-VP", subject=subject,
                          attachments=[client.attachment("a.pdf", PDF)], **kwargs)
    key = doc["message_header"]["document_id"]
    event_id = await client.publish(events.DOCUMENT_SEND, doc, key=key)
    return doc, key, event_id


async def _arrived(nghe_an, key, count=1):
    return await nghe_an.wait_for(
        "inbound_documents", lambda e: e.data["package"]["message_header"]["document_id"] == key,
        count=count)


@pytest.mark.kafka
async def test_a_sent_document_awaits_01_and_its_timeline_spans_both_provinces(
        lab, thai_nguyen, nghe_an, tmp_path):
    doc, key, event_id = await _send(thai_nguyen, "411", "V/v chờ biên nhận")
    (accepted,) = await thai_nguyen.wait_for("delivery", _for(event_id))
    (arrived,) = await _arrived(nghe_an, key)
    # The gateway marks the axis message done after publishing: wait for its audit record. (The
    # recipient's axis DocId is not the sender's: the axis gives each side its own.)
    await nghe_an.wait_for("audit", lambda e: e.data.get("step") == "marked-done"
                           and e.data.get("axis_doc_id") == arrived.data["axis_doc_id"])

    result = await _trace(lab, tmp_path, key)
    assert result.state.state == "awaiting-01", result.text()
    assert "no 01 yet" in result.state.summary
    sources = {fact.source for fact, _ in result.lines}
    assert sources == {THAI_NGUYEN.systemid, NGHE_AN.systemid}, result.text()
    kinds = [fact.kind for fact, _ in result.lines]
    assert kinds.index("document.send") < kinds.index("delivery.accepted") \
        < kinds.index("document.arrived")
    steps = {(f.source, f.step) for f, _ in result.lines if f.kind == "audit.record"}
    assert {(THAI_NGUYEN.systemid, "signed"), (THAI_NGUYEN.systemid, "delivered"),
            (NGHE_AN.systemid, "published"), (NGHE_AN.systemid, "marked-done")} <= steps

    # The same document by its số/ký hiệu, its event id and its axis DocId.
    for query in ("411/UBND-VP", event_id, accepted.data["axis_doc_id"]):
        other = await _trace(lab, tmp_path, query)
        assert other.documents == (key,), query

    # Listed among the documents without any receipt (threshold 0 s).
    index = TraceIndex(tmp_path / "trace.sqlite")
    try:
        waiting = awaiting_receipt(index, timedelta(0))
    finally:
        index.close()
    assert key in {fact.document_id for fact, _ in waiting}


@pytest.mark.kafka
async def test_receipts_01_03_06_make_a_document_completed(lab, thai_nguyen, nghe_an, tmp_path):
    doc, key, event_id = await _send(thai_nguyen, "412", "V/v hoàn thành")
    await thai_nguyen.wait_for("delivery", _for(event_id))
    await _arrived(nghe_an, key)
    for code in ("01", "03", "06"):
        await nghe_an.publish(events.RECEIPT_SEND, nghe_an.receipt(document=doc, code=code,
                                                                   description="ok"), key=key)
    await thai_nguyen.wait_for(
        "inbound_receipts",
        lambda e: e.data["message_header"]["response_for"]["document_id"] == key, count=3)

    result = await _trace(lab, tmp_path, key)
    assert result.state.state == "completed", result.text()
    assert result.state.receipts == ("01", "03", "06")
    arrived = [(f.source, f.status_code) for f, _ in result.lines if f.kind == "receipt.arrived"]
    assert sorted(arrived) == [(THAI_NGUYEN.systemid, c) for c in ("01", "03", "06")]
    asked = [(f.source, f.status_code) for f, _ in result.lines if f.kind == "receipt.send"]
    assert sorted(asked) == [(NGHE_AN.systemid, c) for c in ("01", "03", "06")]


@pytest.mark.kafka
async def test_a_dead_lettered_then_replayed_document_shows_both_and_goes_on(
        lab, thai_nguyen, nghe_an, tmp_path):
    attachment = thai_nguyen.attachment("late.pdf", PDF + b"late")
    missing = Path(attachment["uri"].removeprefix("file://"))
    held = missing.with_suffix(".held")
    missing.rename(held)
    doc = thai_nguyen.document(to=TO_NGHE_AN, number="413", notation="UBND-VP",
                               subject="V/v tệp đến muộn", attachments=[attachment])
    key = doc["message_header"]["document_id"]
    event_id = await thai_nguyen.publish(events.DOCUMENT_SEND, doc, key=key)
    await thai_nguyen.wait_for("delivery", _for(event_id))
    await thai_nguyen.wait_for("audit", lambda e: e.data.get("step") == "dead-lettered"
                               and e.data.get("event_id") == event_id)

    before = await _trace(lab, tmp_path, key)
    assert before.state.state == "dead-lettered", before.text()
    assert "store.missing" in before.state.summary

    held.rename(missing)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "dlq", "replay", "--bootstrap", lab.bootstrap,
        "--topic", thai_nguyen.topics["deadletter"], "--reason", "store.missing",
        "--audit-topic", thai_nguyen.topics["audit"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)
    await thai_nguyen.wait_for("delivery", _for(event_id), count=2)
    await _arrived(nghe_an, key)

    after = await _trace(lab, tmp_path, key)
    kinds = [f.kind for f, _ in after.lines]
    assert "deadletter" in kinds and "deadletter.replayed" in kinds, after.text()
    assert kinds.index("deadletter") < kinds.index("deadletter.replayed") \
        < kinds.index("document.arrived")
    assert any(f.step == "replayed" for f, _ in after.lines if f.kind == "audit.record")
    assert after.state.state == "awaiting-01", after.text()


@pytest.mark.kafka
async def test_a_revoked_document_is_traced_with_13_the_revocation_and_15(
        lab, thai_nguyen, nghe_an, tmp_path):
    doc, key, first = await _send(thai_nguyen, "414", "V/v văn bản sẽ thu hồi")
    await thai_nguyen.wait_for("delivery", _for(first))
    await _arrived(nghe_an, key)
    ask = thai_nguyen.receipt(document=doc, code="13", description="Đề nghị lấy lại văn bản")
    ask["message_header"]["response_for"]["organ_id"] = "000.00.00.H55"
    ask["recipients"] = ["000.00.00.H41"]
    await thai_nguyen.publish(events.RECEIPT_SEND, ask, key=key)
    await _send(thai_nguyen, "414", "V/v văn bản sẽ thu hồi",
                business={"business_doc_type": 1, "document_id": key,
                          "business_doc_reason": "Thu hồi văn bản điện tử"})
    await _arrived(nghe_an, key, count=2)
    await nghe_an.wait_for("inbound_receipts", lambda e: e.data["message_header"]["status_code"]
                           == "13" and e.data["message_header"]["response_for"]["document_id"]
                           == key)
    middle = await _trace(lab, tmp_path, key)
    assert middle.state.state == "revocation-requested", middle.text()

    await nghe_an.publish(events.RECEIPT_SEND, nghe_an.receipt(document=doc, code="15",
                                                               description="Đồng ý thu hồi"),
                          key=key)
    await thai_nguyen.wait_for("inbound_receipts", lambda e: e.data["message_header"]
                               ["status_code"] == "15" and e.data["message_header"]
                               ["response_for"]["document_id"] == key)
    result = await _trace(lab, tmp_path, key)
    assert result.state.state == "revoked", result.text()
    texts = "\n".join(text for _, text in result.lines)
    assert "revocation asked by 000.00.00.H55" in texts
    assert "receipt 15" in texts


@pytest.mark.kafka
async def test_trace_command_reads_both_configs_and_answers_as_json(lab, thai_nguyen, nghe_an,
                                                                    tmp_path):
    doc, key, event_id = await _send(thai_nguyen, "415", "V/v dòng lệnh")
    await thai_nguyen.wait_for("delivery", _for(event_id))
    await _arrived(nghe_an, key)
    configs = [arg for path in _configs(lab) for arg in ("--config", str(path))]
    index = tmp_path / "cli.sqlite"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "trace", "415/UBND-VP", *configs, "--index",
        str(index), "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)
    answer = json.loads(out)
    assert answer["documents"] == [key]
    assert answer["state"] == "awaiting-01"
    assert {line["source"] for line in answer["timeline"]} >= {THAI_NGUYEN.systemid}

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "trace", "no-such-document", *configs, "--index",
        str(index), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 1, (out, err)
    assert b"no document matches" in out


@pytest.mark.kafka
async def test_the_index_reads_only_what_is_new(lab, thai_nguyen, tmp_path):
    from gateway.config import load_config

    sources = [TopicSource.from_config(load_config(p, {})) for p in _configs(lab)]
    settings = KafkaSettings(bootstrap_servers=lab.bootstrap)
    index = TraceIndex(tmp_path / "incremental.sqlite")
    try:
        await index.update(settings, sources)
        count = index.count()
        assert await index.update(settings, sources) == 0
        assert index.count() == count
        doc, key, event_id = await _send(thai_nguyen, "416", "V/v cập nhật chỉ mục")
        await thai_nguyen.wait_for("delivery", _for(event_id))
        added = await index.update(settings, sources)
        assert added >= 3  # the send event, its audit records and its delivery outcome
        assert index.documents_matching(key) == [key]
    finally:
        index.close()


def test_an_unusable_index_file_is_reported_with_its_reason(tmp_path):
    from gateway.ops.index import TraceIndexError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TraceIndexError) as caught:
        TraceIndex(blocker / "index.sqlite")
    assert caught.value.reason == "trace.index"


def test_a_secret_document_s_subject_is_not_indexed():
    from connectors.cloudevents import CloudEvent
    from gateway.ops.index import fact_of

    data = {"message_header": {"document_id": "D", "subject": "Tài liệu mật",
                               "from": {"organ_id": "000.00.00.H55"},
                               "code": {"code_number": "7", "code_notation": "UBND-VP"}},
            "secrecy": "mat"}
    event = CloudEvent(id="e", source="urn:x", type="vn.gov.edoc.document.send.v1", data=data,
                       time=datetime(2026, 12, 2, tzinfo=timezone.utc))
    record = event.to_record(b"D")
    fact = fact_of(type(record)(record.key, record.value, record.headers, topic="t",
                                partition=0, offset=1), "outbound_documents", "s")
    assert fact is not None and fact.document_id == "D" and fact.notation == "7/UBND-VP"
    assert "Tài liệu mật" not in json.dumps(fact.as_dict(), ensure_ascii=False)
