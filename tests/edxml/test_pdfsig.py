"""Signatures inside PDF attachments: who signed, what the signature still covers, and the verdict.

Every PDF is made and signed at run time with the test PKI (tests/edxml/pdfsig_fixtures.py);
`pdfsig` from poppler-utils checks independently that a PDF signed here is a valid signature.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from edxml.pdfsig import (
    AttachmentFacts,
    PdfLimits,
    analyse_pdf,
    check_issuer,
    check_original_digitised,
    report_from_dict,
)
from edxml.pki import TestPki
from tests.edxml.pdfsig_fixtures import FIRST, SECOND, SignedPdfs, make_signed_pdfs

PDFSIG = shutil.which("pdfsig")


@pytest.fixture(scope="module")
def pdfs(test_pki: TestPki) -> SignedPdfs:
    return make_signed_pdfs(test_pki.material)


def test_valid_signature_names_the_agency_that_signed(pdfs: SignedPdfs, test_pki: TestPki) -> None:
    report = analyse_pdf(pdfs.valid, pdfs.trust)
    assert report.status == "signed" and len(report.signatures) == 1
    sig = report.signatures[0]
    assert sig.verdict == "valid" and sig.reason is None
    assert sig.coverage == "whole_file"
    assert sig.hash_algorithm == "sha256"
    assert sig.signer is not None
    assert sig.signer.organ_id == FIRST
    assert sig.signer.common_name == "UBND tỉnh Thái Nguyên"
    cert = test_pki.material.agencies[FIRST].certificate
    assert sig.signer.serial == format(cert.serial_number, "x")
    assert "Cơ quan chứng thực số Chính phủ TEST" in sig.signer.issuer
    assert sig.signing_time is not None
    assert abs(sig.signing_time - datetime.now(timezone.utc)) < timedelta(hours=1)
    assert sig.timestamp is None
    assert report.signed_by(FIRST) and not report.signed_by(SECOND)


def test_rfc3161_timestamp_is_reported(pdfs: SignedPdfs) -> None:
    sig = analyse_pdf(pdfs.timestamped, pdfs.trust).signatures[0]
    assert sig.verdict == "valid"
    assert sig.timestamp is not None and sig.timestamp.trusted
    assert sig.timestamp.authority and "TSA TEST" in sig.timestamp.authority


def test_two_signatures_are_both_reported_in_signing_order(pdfs: SignedPdfs) -> None:
    report = analyse_pdf(pdfs.two_signatures, pdfs.trust)
    first, second = report.signatures
    assert [first.verdict, second.verdict] == ["valid", "valid"]
    assert first.signer.organ_id == FIRST and second.signer.organ_id == SECOND  # type: ignore[union-attr]
    # The second signature was added after the first: an allowed update, not a modification.
    assert first.coverage == "allowed_updates"
    assert second.coverage == "whole_file"
    assert report.valid_signers() == [FIRST, SECOND]


def test_pdf_changed_after_signing_is_reported_as_modified(pdfs: SignedPdfs) -> None:
    sig = analyse_pdf(pdfs.changed_after_signing, pdfs.trust).signatures[0]
    assert sig.verdict == "modified"
    assert sig.reason == "pdf.signature.modified"
    assert sig.coverage == "any_change"
    assert sig.signer.organ_id == FIRST  # type: ignore[union-attr]


def test_tampered_signed_bytes_are_invalid(pdfs: SignedPdfs) -> None:
    sig = analyse_pdf(pdfs.tampered, pdfs.trust).signatures[0]
    assert sig.verdict == "invalid"
    assert sig.reason == "pdf.signature.digest_mismatch"


@pytest.mark.parametrize("kind, verdict", [("expired", "expired"), ("revoked", "revoked"),
                                           ("untrusted", "untrusted")])
def test_certificate_problems_have_their_own_verdict(pdfs: SignedPdfs, kind: str, verdict: str) -> None:
    report = analyse_pdf(getattr(pdfs, kind), pdfs.trust)
    sig = report.signatures[0]
    assert sig.verdict == verdict
    assert sig.reason == f"pdf.signature.{verdict}"
    assert sig.coverage == "whole_file"
    assert not report.signed_by(FIRST)


def test_no_trust_roots_means_untrusted_not_an_error(pdfs: SignedPdfs) -> None:
    from edxml.pdfsig import PdfTrust

    sig = analyse_pdf(pdfs.valid, PdfTrust()).signatures[0]
    assert sig.verdict == "untrusted"


def test_unsigned_pdf(pdfs: SignedPdfs) -> None:
    report = analyse_pdf(pdfs.unsigned, pdfs.trust)
    assert report.status == "unsigned" and report.signatures == ()


def test_file_path_and_stream_give_the_same_report(pdfs: SignedPdfs, tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(pdfs.two_signatures)
    with path.open("rb") as f:
        assert analyse_pdf(path, pdfs.trust) == analyse_pdf(f, pdfs.trust)


def test_report_json_form_round_trips(pdfs: SignedPdfs) -> None:
    for data in (pdfs.timestamped, pdfs.two_signatures, pdfs.revoked, pdfs.unsigned, b"%PDF-1.7 junk"):
        report = analyse_pdf(data, pdfs.trust)
        assert report_from_dict(report.as_dict()) == report


def test_size_limit_is_checked_before_reading(pdfs: SignedPdfs) -> None:
    report = analyse_pdf(pdfs.valid, pdfs.trust, limits=PdfLimits(max_bytes=1000))
    assert report.status == "unreadable" and report.reason == "pdf.too_large"


# -- the document rules ---------------------------------------------------------------------


def _facts(pdfs: SignedPdfs, data: bytes, name: str = "qd.pdf", role: str | None = None) -> AttachmentFacts:
    return AttachmentFacts(name, role, "application/pdf", analyse_pdf(data, pdfs.trust))


def test_issuer_rule_wants_a_valid_signature_by_the_sender(pdfs: SignedPdfs) -> None:
    assert check_issuer([_facts(pdfs, pdfs.valid)], FIRST).ok
    assert check_issuer([_facts(pdfs, pdfs.two_signatures)], SECOND).ok
    wrong = check_issuer([_facts(pdfs, pdfs.valid)], SECOND)
    assert not wrong.ok and wrong.reason == "attachment.unsigned" and FIRST in wrong.message
    for data in (pdfs.unsigned, pdfs.revoked, pdfs.changed_after_signing):
        assert check_issuer([_facts(pdfs, data)], FIRST).reason == "attachment.unsigned"
    assert not check_issuer([AttachmentFacts("a.docx")], FIRST).ok


def test_issuer_rule_reads_the_pdf_marked_digitised(pdfs: SignedPdfs) -> None:
    atts = [_facts(pdfs, pdfs.unsigned, "appendix.pdf", "appendix"),
            _facts(pdfs, pdfs.valid, "qd.pdf", "digitised")]
    assert check_issuer(atts, FIRST).ok
    assert not check_issuer(atts[:1], FIRST).ok


def test_original_plus_digitised_rule(pdfs: SignedPdfs) -> None:
    docx = AttachmentFacts("qd.docx", None, None)
    assert check_original_digitised([_facts(pdfs, pdfs.valid), docx]).ok
    assert check_original_digitised([_facts(pdfs, pdfs.valid, role="digitised"),
                                     AttachmentFacts("nguon.bin", "original")]).ok
    missing_original = check_original_digitised([_facts(pdfs, pdfs.valid)])
    assert not missing_original.ok and "original" in missing_original.message
    unsigned = check_original_digitised([_facts(pdfs, pdfs.unsigned), docx])
    assert not unsigned.ok and unsigned.reason == "attachment.roles"
    # a DOCX marked as an appendix is not the original
    assert not check_original_digitised([_facts(pdfs, pdfs.valid),
                                         AttachmentFacts("pl.docx", "appendix")]).ok


# -- an independent verifier ----------------------------------------------------------------


@pytest.mark.skipif(PDFSIG is None, reason="pdfsig is not installed (Debian package poppler-utils; "
                                           "scripts/bootstrap installs it)")
def test_pdf_signed_here_is_valid_under_poppler_pdfsig(pdfs: SignedPdfs, tmp_path: Path) -> None:
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdfs.two_signatures)
    out = subprocess.run([PDFSIG, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Signature is Valid.") == 2, out.stdout
    assert "000.00.00.H55" in out.stdout and "000.00.00.G22" in out.stdout
    assert "Total document signed" in out.stdout

    changed = tmp_path / "changed.pdf"
    changed.write_bytes(pdfs.tampered)
    out = subprocess.run([PDFSIG, str(changed)], capture_output=True, text=True, timeout=60)
    assert "Signature is Valid." not in out.stdout, out.stdout


def test_report_holds_only_plain_values(pdfs: SignedPdfs, tmp_path: Path) -> None:
    # Reports cross the worker-process boundary; pyHanko's objects hold the open file.
    import pickle

    path = tmp_path / "a.pdf"
    path.write_bytes(pdfs.two_signatures)
    report = analyse_pdf(path, pdfs.trust)
    assert pickle.loads(pickle.dumps(report.as_dict())) == report.as_dict()
    assert all(type(s.field) is str for s in report.signatures)
