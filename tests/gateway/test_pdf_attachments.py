"""Signed PDF attachments through the gateway: `inspect`, and two provinces over real Kafka and
the axis simulator (the report in document.arrived, the issuer rule in and out, Điều 3.6).

PDFs are signed at run time with the lab's test PKI; the DOCX is a minimal valid one.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edxml.pdfmake import minimal_pdf, sign_pdf
from edxml.pki import Credential, init_test_pki
from gateway import events
from gateway.config import AttachmentsSection
from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, Lab
from tests.gateway.conftest import running_lab

from tests.gateway.test_config import confdir, error_of, load, minimal_toml  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def minimal_docx(text: str = "Quyết định") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"><Default Extension="rels" ContentType="application/'
                   'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
                   'ContentType="application/xml"/><Override PartName="/word/document.xml" '
                   f'ContentType="{DOCX}.main+xml"/></Types>')
        z.writestr("_rels/.rels",
                   '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
                   'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
                   'Target="word/document.xml"/></Relationships>')
        z.writestr("word/document.xml",
                   '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
                   'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
                   f'{text}</w:t></w:r></w:p></w:body></w:document>')
    return out.getvalue()


def signed_pdf(cred: Credential, text: str = "Quyet dinh") -> bytes:
    # pyHanko's synchronous API runs its own event loop: keep it off the test's.
    with ThreadPoolExecutor(1) as pool:
        out = pool.submit(sign_pdf, minimal_pdf(text), cred.key, cred.certificate, cred.chain).result()
    assert out is not None
    return out


# -- configuration ----------------------------------------------------------------------------


def test_attachment_rules_default_to_report_and_off_and_are_set_per_agency(confdir: Path) -> None:
    assert load(confdir).attachments == AttachmentsSection()
    config = load(confdir, minimal_toml(attachments='issuer_policy = "off"\n'
                                        'issuer_require = ["000.00.00.G22"]\n'
                                        'refuse_unsigned = ["000.00.00.H55"]\n'
                                        'original_digitised_report = ["000.00.00.H55"]'))
    rules = config.attachments
    assert rules.issuer_policy_for("000.00.00.G22") == "require"
    assert rules.issuer_policy_for("000.00.00.H41") == "off"
    assert rules.refuse_unsigned == ("000.00.00.H55",)
    assert rules.original_digitised_for("000.00.00.H55") == "report"
    assert rules.original_digitised_for("000.00.02.H55") == "off"
    err = error_of(confdir, minimal_toml(attachments='issuer_policy = "strict"'))
    assert err.reason == "config.invalid" and err.where == "attachments.issuer_policy"


# -- inspect ----------------------------------------------------------------------------------


def _cli(*args: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_inspect_reports_who_signed_each_pdf_and_the_roles(tmp_path: Path) -> None:
    pki = init_test_pki(tmp_path / "pki")
    sender = pki.material.agencies["000.00.00.H55"]
    (tmp_path / "qd.pdf").write_bytes(signed_pdf(sender))
    (tmp_path / "qd.docx").write_bytes(minimal_docx())
    document = json.loads((REPO / "examples" / "document.json").read_text(encoding="utf-8"))
    document["attachments"] = [
        {"content_id": "1", "attachment_name": "qd.pdf", "content_type": "application/pdf",
         "description": "role=digitised; Bản ký số", "path": "qd.pdf"},
        {"content_id": "2", "attachment_name": "qd.docx", "content_type": DOCX,
         "description": "role=original", "path": "qd.docx"}]
    (tmp_path / "doc.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    package = tmp_path / "p.edxml"
    files = pki.agencies["000.00.00.H55"]
    built = _cli("build", tmp_path / "doc.json", package, "--key", files.key, "--cert", files.cert)
    assert built.returncode == 0, built.stderr
    trust = ["--trust", pki.trust_dir, "--crl", pki.crl]

    report = json.loads(_cli("inspect", package, "--json", *trust).stdout)
    pdf, docx = report["attachment_signatures"]["attachments"]
    assert pdf["role"] == "digitised" and pdf["status"] == "signed"
    (sig,) = pdf["signatures"]
    assert sig["verdict"] == "valid" and sig["coverage"] == "whole_file"
    assert sig["signer"]["organ_id"] == "000.00.00.H55"
    assert sig["signer"]["serial"] == format(sender.certificate.serial_number, "x")
    assert docx == {"content_id": "2", "attachment_name": "qd.docx", "role": "original"}
    assert report["attachment_signatures"]["issuer"]["ok"] is True

    text = _cli("inspect", package, *trust).stdout
    assert "pdf qd.pdf (digitised): 1 signature(s)" in text
    assert "valid: UBND tỉnh Thái Nguyên [000.00.00.H55]" in text
    assert "issuer rule: ok" in text

    untrusted = json.loads(_cli("inspect", package, "--json").stdout)
    assert untrusted["attachment_signatures"]["attachments"][0]["signatures"][0]["verdict"] == "untrusted"


# -- two provinces ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(kafka_bootstrap, tmp_path_factory):
    yield from running_lab(tmp_path_factory, kafka_bootstrap, gateway_overrides={
        "H55": {"attachments": {"refuse_unsigned": ["000.00.00.H55"],
                                "original_digitised_require": ["000.00.00.H55"],
                                "original_digitised_report": ["000.00.02.H55"]}},
        "H41": {"attachments": {"issuer_require": ["000.00.02.H55"]}},
    })


def _for(event_id: str) -> Any:
    return lambda e: (e.data or {}).get("event_id") == event_id


def _doc(client: AgencyClient, number: str, attachments: list[dict[str, Any]]) -> dict[str, Any]:
    return client.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number=number,
                           notation="QĐ-UBND", subject="Quyết định thử nghiệm ký số tệp đính kèm",
                           attachments=attachments)


def _att(client: AgencyClient, name: str, data: bytes, role: str, content_type: str) -> dict[str, Any]:
    return {**client.attachment(name, data, content_type), "role": role}




@pytest.mark.kafka
async def test_signed_pdf_and_original_arrive_with_the_signer_reported(lab: Lab) -> None:
    h55 = AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")
    h41 = AgencyClient(lab, NGHE_AN, "000.00.00.H41")
    cred = lab.pki.material.agencies["000.00.00.H55"]
    doc = _doc(h55, "21", [_att(h55, "qd-21.pdf", signed_pdf(cred), "digitised", "application/pdf"),
                           _att(h55, "qd-21.docx", minimal_docx(), "original", DOCX)])
    key = doc["message_header"]["document_id"]
    sent = await h55.publish(events.DOCUMENT_SEND, doc, key=key)
    (accepted,) = await h55.wait_for("delivery", _for(sent))
    assert accepted.type == events.DELIVERY_ACCEPTED, accepted.data
    assert accepted.data["attachment_rules"] == {
        "issuer": {"policy": "require", "rule": "issuer", "ok": True},
        "original_digitised": {"policy": "require", "rule": "original_digitised", "ok": True}}

    (arrived,) = await h41.wait_for(
        "inbound_documents", lambda e: e.data["package"]["message_header"]["document_id"] == key)
    summary = arrived.data["attachment_signatures"]
    pdf, docx = summary["attachments"]
    assert pdf["role"] == "digitised" and docx["role"] == "original"
    (sig,) = pdf["signatures"]
    assert sig["verdict"] == "valid"
    assert sig["signer"]["organ_id"] == "000.00.00.H55"
    assert summary["issuer"] == {"policy": "report", "rule": "issuer", "ok": True}
    # The roles travelled in the package Description and were read back.
    assert arrived.data["package"]["attachments"][0]["description"].startswith("role=digitised")

    audit = await h41.wait_for("audit", lambda e: e.data.get("step") == "published"
                               and e.data.get("document_id") == key)
    assert "qd-21.pdf: valid 000.00.00.H55" in audit[0].data["attachment_signatures"]


@pytest.mark.kafka
async def test_unsigned_draft_is_refused_before_sending(lab: Lab) -> None:
    h55 = AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")
    doc = _doc(h55, "22", [_att(h55, "du-thao.pdf", minimal_pdf("du thao"), "digitised", "application/pdf"),
                           _att(h55, "du-thao.docx", minimal_docx(), "original", DOCX)])
    sent = await h55.publish(events.DOCUMENT_SEND, doc, key=doc["message_header"]["document_id"])
    (failed,) = await h55.wait_for("delivery", _for(sent))
    assert failed.type == events.DELIVERY_FAILED
    assert failed.data["reason"] == "attachment.unsigned"


@pytest.mark.kafka
async def test_document_without_its_original_is_refused_under_article_3_6(lab: Lab) -> None:
    h55 = AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")
    cred = lab.pki.material.agencies["000.00.00.H55"]
    doc = _doc(h55, "23", [_att(h55, "qd-23.pdf", signed_pdf(cred), "digitised", "application/pdf")])
    sent = await h55.publish(events.DOCUMENT_SEND, doc, key=doc["message_header"]["document_id"])
    (failed,) = await h55.wait_for("delivery", _for(sent))
    assert failed.type == events.DELIVERY_FAILED
    assert failed.data["reason"] == "attachment.roles"
    assert "original" in failed.data["message"]


@pytest.mark.kafka
async def test_receiver_requiring_the_senders_signature_quarantines_and_answers_02(lab: Lab) -> None:
    sender = AgencyClient(lab, THAI_NGUYEN, "000.00.02.H55")
    h41 = AgencyClient(lab, NGHE_AN, "000.00.00.H41")
    # Signed, validly, but by the province rather than by the department that sends it.
    other = lab.pki.material.agencies["000.00.00.H55"]
    doc = _doc(sender, "24", [_att(sender, "qd-24.pdf", signed_pdf(other), "digitised", "application/pdf")])
    key = doc["message_header"]["document_id"]
    sent = await sender.publish(events.DOCUMENT_SEND, doc, key=key)
    (accepted,) = await sender.wait_for("delivery", _for(sent))
    assert accepted.type == events.DELIVERY_ACCEPTED, accepted.data
    # Điều 3.6 is report-only for this sender: sent, and the missing original is told.
    rule = accepted.data["attachment_rules"]["original_digitised"]
    assert rule["policy"] == "report" and rule["ok"] is False and rule["reason"] == "attachment.roles"

    letters = await h41.wait_for("deadletter", lambda e: e.data.get("reason") == "attachment.unsigned")
    assert letters
    (receipt,) = await sender.wait_for(
        "inbound_receipts", lambda e: e.data["message_header"]["response_for"]["document_id"] == key)
    assert receipt.data["message_header"]["status_code"] == "02"
