"""The inbound worker call (`gateway.work.receive`) decides exactly what the two calls it
replaces decided: read+verify, then the PDF reports on the files the reader wrote."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edxml.model import (Attachment, Code, DocumentPackage, DocumentType, MessageHeader,
                         Organization, PromulgationInfo)
from edxml import pdfsig
from edxml.pdfsig import PdfLimits, PdfTrust, analyse_pdf
from edxml.pki import TestPki, init_test_pki
from edxml.writer import write_package_file
from gateway import pdfcheck, work
from gateway.config import AttachmentsSection
from tests.edxml.pdfsig_fixtures import FIRST, make_signed_pdfs
from tests.edxml.test_pdfsig_hostile import CASES

MAX = 2 * 1024 ** 3


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return init_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def pdf_files(test_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of PDF the reports know: good, signed in every bad way, and hostile."""
    pdfs = make_signed_pdfs(test_pki.material)
    d = tmp_path_factory.mktemp("pdfs")
    made = {name: getattr(pdfs, name) for name in (
        "unsigned", "valid", "timestamped", "two_signatures", "changed_after_signing",
        "tampered", "expired", "revoked", "untrusted")}
    made.update({name: make(pdfs) for name, (make, _reason) in CASES.items()})
    made["random-after-header"] = b"%PDF-1.7\n" + bytes(range(256)) * 120
    out = {}
    for name, data in made.items():
        out[name] = d / f"{name}.pdf"
        out[name].write_bytes(data)
    return out


@pytest.fixture(autouse=True)
def worker(test_pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(work, "_SETUP", work.WorkerSetup(
        keys=(), trust_paths=(str(test_pki.trust_dir),), crl_files=(str(test_pki.crl),)))
    monkeypatch.setattr(work, "_PDF_TRUST", None)
    work.init_worker(work._SETUP)


def _by_path(path: Path, test_pki: TestPki, max_bytes: int = MAX) -> dict[str, Any]:
    """The report as it was made before: pyHanko reading the file through its path."""
    trust = PdfTrust.from_paths((str(test_pki.trust_dir),), (str(test_pki.crl),))
    return analyse_pdf(path, trust, limits=PdfLimits(max_bytes=max_bytes)).as_dict()


@pytest.mark.parametrize("max_bytes", [MAX, 1000])
def test_reports_made_from_memory_are_the_reports_made_from_the_file(
        pdf_files: dict[str, Path], test_pki: TestPki, max_bytes: int) -> None:
    names = sorted(pdf_files)
    got = work.pdf_reports([str(pdf_files[n]) for n in names], max_bytes)
    expected = [_by_path(pdf_files[n], test_pki, max_bytes) for n in names]
    for name, new, old in zip(names, got, expected, strict=True):
        assert new == old, name
    # Not vacuous: the set covers valid, bad and unreadable reports alike.
    if max_bytes == MAX:
        assert {r["status"] for r in got} >= {"signed", "unsigned", "unreadable"}
        verdicts = {s["verdict"] for r in got for s in r["signatures"]}
        assert verdicts >= {"valid", "invalid", "revoked", "untrusted", "modified"}
    else:
        assert "pdf.too_large" in {r.get("reason") for r in got}


def test_only_a_small_pdf_is_read_into_memory(pdf_files: dict[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = analyse_pdf

    def spy(source: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr("edxml.pdfsig.analyse_pdf", spy)
    valid = pdf_files["valid"]
    work.pdf_reports([str(valid)], MAX)
    monkeypatch.setattr(work, "PDF_IN_MEMORY_BYTES", valid.stat().st_size - 1)
    work.pdf_reports([str(valid), str(pdf_files["empty"])], MAX)
    work.pdf_reports([str(valid.parent / "gone.pdf")], MAX)
    assert seen[0] == valid.read_bytes()
    assert seen[1] == str(valid)                       # one byte over: read through its path
    assert seen[2] == str(pdf_files["empty"])          # empty: the path says so itself
    assert seen[3] == str(valid.parent / "gone.pdf")   # unreadable: the path reports it


def _package(test_pki: TestPki, tmp_path: Path, files: dict[str, bytes]) -> Path:
    attachments = []
    for i, (name, data) in enumerate(files.items()):
        path = tmp_path / name
        path.write_bytes(data)
        attachments.append(Attachment(content_id=str(i + 1), attachment_name=name,
                                      content_type="application/octet-stream", path=path,
                                      description="role=digitised" if i == 0 else None))
    header = MessageHeader(
        from_=Organization(organ_id=FIRST, organ_name="UBND tỉnh Thái Nguyên"),
        to=(Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"),),
        document_id=f"{FIRST},2024/05/31,7/UBND-VP",
        code=Code(code_number="7", code_notation="UBND-VP"),
        promulgation_info=PromulgationInfo(place="Thái Nguyên", promulgation_date=date(2024, 5, 31)),
        document_type=DocumentType(type=1, type_detail=0, type_name="Công văn"),
        subject="V/v thử một lượt đọc")
    out = tmp_path / "in.edxml"
    write_package_file(DocumentPackage(message_header=header, attachments=tuple(attachments)),
                       out, signer=test_pki.material.agencies[FIRST].signer())
    return out


def _ctx(**rules: Any) -> Any:
    return SimpleNamespace(pool=None, config=SimpleNamespace(attachments=AttachmentsSection(**rules)))


@pytest.mark.parametrize("rules", [{}, {"issuer_require": (FIRST,)}, {"issuer_policy": "off"}])
async def test_one_trip_decides_what_two_trips_decided(test_pki: TestPki, pdf_files: dict[str, Path],
                                                     tmp_path: Path, rules: dict[str, Any]) -> None:
    package = _package(test_pki, tmp_path, {
        "qd.pdf": pdf_files["valid"].read_bytes(),
        "phu-luc.PDF": pdf_files["tampered"].read_bytes(),
        "scan.pdf": pdf_files["random-after-header"].read_bytes(),
        "bomb.pdf": pdf_files["xref-stream-bomb"].read_bytes(),
        "ghi-chu.txt": b"khong phai PDF"})
    out = tmp_path / "attachments"
    ctx = _ctx(**rules)
    # Before: read+verify in one call, the reports in a second one.
    before = await pdfcheck.with_inbound_report(ctx, work.read_and_verify_bounded(str(package), str(out)))
    shutil.rmtree(out)
    received = work.receive(str(package), str(out), ctx.config.attachments.max_pdf_bytes)
    assert len(received["pdf_reports"]) == 4
    after = await pdfcheck.with_inbound_report(ctx, received)
    assert "pdf_reports" not in after
    assert after == before
    assert pdfcheck.inbound_refusal(after) == pdfcheck.inbound_refusal(before)
    assert pdfcheck.audit_text(after) == pdfcheck.audit_text(before)
    statuses = [e.get("status") for e in after["attachment_signatures"]["attachments"]]
    assert statuses == ["signed", "signed", "unreadable", "unreadable", None]


def test_no_reports_for_a_refused_package_or_a_status_package(tmp_path: Path) -> None:
    broken = tmp_path / "broken.edxml"
    broken.write_bytes(b"<not-edxml/>")
    result = work.receive(str(broken), str(tmp_path / "out"), MAX)
    assert "error" in result and "pdf_reports" not in result
    status = {"kind": "status", "attachments": [
        {"attachment_name": "a.pdf", "path": "/x/a.pdf", "error": None,
         "detected_type": "application/pdf", "declared_type": None}]}
    assert pdfcheck.inbound_pdfs(status) == []
    assert pdfcheck.inbound_pdfs({**status, "kind": "edoc"}) == status["attachments"]


def test_trust_loaded_once_decides_what_trust_loaded_per_signature_decided(
        pdf_files: dict[str, Path], test_pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    """The roots and CRLs are loaded once per trust and reused by every validation; the reports
    are those of loading them for every signature, whichever trust was used last."""
    trusted = PdfTrust.from_paths((str(test_pki.trust_dir),), (str(test_pki.crl),))
    nothing = PdfTrust()
    names = sorted(pdf_files)
    pdfsig._loaded.cache_clear()
    reused = [[analyse_pdf(pdf_files[n], trust).as_dict() for n in names]
              for trust in (trusted, nothing, trusted, nothing)]
    assert pdfsig._loaded.cache_info().misses == 2          # loaded once per trust
    monkeypatch.setattr(pdfsig, "_loaded", pdfsig._loaded.__wrapped__)
    fresh = [[analyse_pdf(pdf_files[n], trust).as_dict() for n in names]
             for trust in (trusted, nothing)]
    for got, expected in zip(reused, fresh * 2, strict=True):
        for name, new, old in zip(names, got, expected, strict=True):
            assert new == old, name
    verdicts = [{s["verdict"] for r in run for s in r["signatures"]} for run in fresh]
    assert verdicts[0] >= {"valid", "revoked", "invalid"} and "valid" not in verdicts[1]


# -- a file without %%EOF, decided without pyHanko's byte-at-a-time search ------------------------

def _pyhanko_error(data: bytes) -> str | None:
    """What pyHanko's reader itself raises on `data` (None when it reads it)."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        PdfFileReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


_TAILS = st.lists(st.one_of(
    st.sampled_from([b"\n", b"\r", b"\r\n", b"\n\r", b"\r\r\n", b"\n\n", b"%%EO", b"F", b"x"]),
    st.binary(min_size=0, max_size=400)), max_size=40).map(b"".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=st.sampled_from([b"%PDF-1.7\n", b"%PDF-1.4\r\n", b"junk%PDF-1.7\n", b"%PDF-x\n"]),
       filler=st.integers(0, 3000), tail=_TAILS)
def test_a_file_without_eof_marker_is_decided_as_pyhanko_decides(head: bytes, filler: int,
                                                                  tail: bytes) -> None:
    data = head + bytes(range(256)) * (filler // 256) + tail
    decided = pdfsig._certain_eof_failure(data)
    if decided is not None:
        assert b"%%EOF" not in data
        assert f"{type(decided).__name__}: {decided}" == _pyhanko_error(data)
    fast = analyse_pdf(data, PdfTrust())
    with mock.patch.object(pdfsig, "_certain_eof_failure", lambda raw: None):
        slow = analyse_pdf(data, PdfTrust())
    assert fast == slow


def test_the_cheap_decision_is_taken_for_random_bytes_and_never_with_a_marker() -> None:
    import random

    rng = random.Random(14)
    decided = 0
    for size in (1100, 2000, 30_000):
        for _ in range(20):
            data = b"%PDF-1.7\n" + rng.randbytes(size)
            if b"%%EOF" in data:
                continue
            got = pdfsig._certain_eof_failure(data)
            decided += got is not None
            if got is not None:
                assert f"{type(got).__name__}: {got}" == _pyhanko_error(data)
    assert decided >= 55       # not vacuous: random bytes after a header are decided cheaply
    signed_with_marker = b"%PDF-1.7\n" + rng.randbytes(3000) + b"\n%%EOF\n"
    assert pdfsig._certain_eof_failure(signed_with_marker) is None
