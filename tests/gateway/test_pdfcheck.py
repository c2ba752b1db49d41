"""gateway/pdfcheck.py without Kafka: which PDFs are analysed, what the event and the audit get,
when a document is quarantined or refused. Hostile PDFs inside a received package end as
report entries, never as a failure of the inbound path."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edxml.errors import GatewayError
from edxml.pki import TestPki, init_test_pki
from gateway import pdfcheck, work
from gateway.config import AttachmentsSection
from tests.edxml.pdfsig_fixtures import FIRST, SECOND, make_signed_pdfs
from tests.edxml.test_pdfsig_hostile import xref_stream_bomb

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return init_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def files(test_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pdfs = make_signed_pdfs(test_pki.material)
    d = tmp_path_factory.mktemp("pdfcheck")
    out = {}
    for name, data in (("valid", pdfs.valid), ("unsigned", pdfs.unsigned),
                       ("bomb", xref_stream_bomb(pdfs)), ("docx", b"PK\x03\x04 docx")):
        out[name] = d / name
        out[name].write_bytes(data)
    return out


@pytest.fixture(autouse=True)
def worker_trust(test_pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker function reads the trust store named in the worker setup.
    monkeypatch.setattr(work, "_SETUP", work.WorkerSetup(keys=(), trust_paths=(str(test_pki.trust_dir),),
                                                         crl_files=(str(test_pki.crl),)))
    monkeypatch.setattr(work, "_PDF_TRUST", None)


def _ctx(**rules: Any) -> Any:
    audits: list[dict[str, Any]] = []

    async def audit_record(**fields: Any) -> None:
        audits.append(fields)

    return SimpleNamespace(pool=None, config=SimpleNamespace(attachments=AttachmentsSection(**rules)),
                           audit_record=audit_record, audits=audits)


def _received(sender: str, atts: list[tuple[str, Path, str, str | None]]) -> dict[str, Any]:
    return {"kind": "edoc",
            "package": {"message_header": {"from": {"organ_id": sender}},
                        "attachments": [{"content_id": str(i), "description": desc}
                                        for i, (_, _, _, desc) in enumerate(atts)]},
            "attachments": [{"content_id": str(i), "attachment_name": name, "path": str(path),
                             "detected_type": kind, "declared_type": kind, "error": None}
                            for i, (name, path, kind, _) in enumerate(atts)]}


async def test_inbound_report_names_the_signer_and_the_roles(files: dict[str, Path]) -> None:
    result = await pdfcheck.with_inbound_report(_ctx(), _received(FIRST, [
        ("qd.pdf", files["valid"], "application/pdf", "role=digitised; Bản ký số"),
        ("qd.docx", files["docx"], DOCX, "role=original")]))
    summary = result["attachment_signatures"]
    pdf, docx = summary["attachments"]
    assert pdf["role"] == "digitised" and pdf["signatures"][0]["signer"]["organ_id"] == FIRST
    assert docx == {"content_id": "1", "attachment_name": "qd.docx", "role": "original"}
    assert summary["issuer"] == {"policy": "report", "rule": "issuer", "ok": True}
    assert pdfcheck.inbound_refusal(result) is None
    assert pdfcheck.audit_text(result) == f"qd.pdf: valid {FIRST}; issuer rule (report): ok"


async def test_a_pdf_bomb_in_a_received_package_is_reported_not_raised(files: dict[str, Path]) -> None:
    result = await pdfcheck.with_inbound_report(_ctx(), _received(FIRST, [
        ("bom.pdf", files["bomb"], "application/pdf", None)]))
    (entry,) = result["attachment_signatures"]["attachments"]
    assert entry["status"] == "unreadable" and entry["reason"] == "pdf.bomb"
    assert result["attachment_signatures"]["issuer"]["ok"] is False


async def test_required_issuer_rule_quarantines_a_pdf_signed_by_someone_else(files: dict[str, Path]) -> None:
    result = await pdfcheck.with_inbound_report(_ctx(issuer_require=(SECOND,)), _received(SECOND, [
        ("qd.pdf", files["valid"], "application/pdf", None)]))
    refusal = pdfcheck.inbound_refusal(result)
    assert refusal is not None and refusal.reason == "attachment.unsigned"
    assert FIRST in refusal.message
    off = await pdfcheck.with_inbound_report(_ctx(issuer_policy="off"), _received(SECOND, [
        ("qd.pdf", files["valid"], "application/pdf", None)]))
    assert "issuer" not in off["attachment_signatures"]


def _item(sender: str, roles: list[str | None]) -> Any:
    return SimpleNamespace(flow="document", sender=sender, document_id="d",
                           attachments=[SimpleNamespace(role=r) for r in roles])


def _package(atts: list[tuple[str, Path, str]]) -> dict[str, Any]:
    return {"attachments": [{"content_id": str(i), "attachment_name": n, "content_type": t, "path": str(p)}
                            for i, (n, p, t) in enumerate(atts)]}


async def test_outbound_refuses_the_unsigned_draft_only_for_agencies_that_asked(files: dict[str, Path]) -> None:
    draft = _package([("qd.pdf", files["unsigned"], "application/pdf")])
    assert await pdfcheck.outbound_check(_ctx(), _item(FIRST, [None]), draft) is None
    with pytest.raises(GatewayError) as caught:
        await pdfcheck.outbound_check(_ctx(refuse_unsigned=(FIRST,)), _item(FIRST, [None]), draft)
    assert caught.value.reason == "attachment.unsigned"
    signed = _package([("qd.pdf", files["valid"], "application/pdf")])
    summary = await pdfcheck.outbound_check(_ctx(refuse_unsigned=(FIRST,)), _item(FIRST, [None]), signed)
    assert summary is not None and summary["issuer"]["ok"]


async def test_article_3_6_report_audits_and_require_refuses(files: dict[str, Path]) -> None:
    pdf_only = _package([("qd.pdf", files["valid"], "application/pdf")])
    ctx = _ctx(original_digitised="report")
    summary = await pdfcheck.outbound_check(ctx, _item(FIRST, ["digitised"]), pdf_only)
    assert summary is not None and summary["original_digitised"]["ok"] is False
    assert pdfcheck.delivery_rules(summary) == {"original_digitised": summary["original_digitised"]}
    assert ctx.audits and ctx.audits[0]["reason"] == "attachment.roles"
    with pytest.raises(GatewayError) as caught:
        await pdfcheck.outbound_check(_ctx(original_digitised_require=(FIRST,)), _item(FIRST, ["digitised"]),
                                      pdf_only)
    assert caught.value.reason == "attachment.roles"
    both = _package([("qd.pdf", files["valid"], "application/pdf"), ("qd.docx", files["docx"], DOCX)])
    ok = await pdfcheck.outbound_check(_ctx(original_digitised_require=(FIRST,)),
                                       _item(FIRST, ["digitised", "original"]), both)
    assert ok is not None and ok["original_digitised"]["ok"]


async def test_an_issuer_breach_is_told_on_the_packages_own_line_not_a_line_of_its_own(
        files: dict[str, Path]) -> None:
    from structlog.testing import capture_logs

    cases = {"unsigned": (_ctx(), FIRST, "unsigned"), "signed": (_ctx(), FIRST, "valid"),
             "require": (_ctx(issuer_require=(SECOND,)), SECOND, "valid"),
             "off": (_ctx(issuer_policy="off"), FIRST, "unsigned")}
    got = {}
    with capture_logs() as logs:
        for name, (ctx, sender, pdf) in cases.items():
            result = await pdfcheck.with_inbound_report(ctx, _received(sender, [
                ("qd.pdf", files[pdf], "application/pdf", None)]))
            got[name] = (pdfcheck.issuer_breach(result), result["attachment_signatures"])
    assert logs == []
    breach, summary = got["unsigned"]
    assert breach == {"attachment_unsigned": summary["issuer"]["message"],
                      "issuer_policy": "report", "sender": FIRST}
    assert got["signed"][0] is None and got["off"][0] is None
    breach, summary = got["require"]
    assert breach is not None and breach["issuer_policy"] == "require"
    assert FIRST in breach["attachment_unsigned"] and breach["sender"] == SECOND
    assert pdfcheck.issuer_breach({"error": {"reason": "edxml.malformed"}}) is None
