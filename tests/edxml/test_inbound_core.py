"""The inbound core's fast paths refuse what the slow ones refused.

Reading and verifying were made cheaper (docs/performance.md, "Inbound core: read and verify"):
base64 is validated in binascii's strict pass, a package that fits one chunk is parsed as
final, and the trust store remembers what depends only on certificate bytes. These tests hold
each shortcut to the verdicts of the code it replaced.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edxml.errors import EdxmlError
from edxml.model import (Attachment, Code, DocumentPackage, DocumentType, MessageHeader, Organization,
                         PromulgationInfo)
from edxml.pki import CA_NAME, Credential, TestPki, issue_crl
from edxml.reader import ReadLimits, read_package
from edxml.signature import DocumentDigester, Signer, verify_signature
from edxml.trust import CrlChecker, TrustStore
from edxml.writer import package_bytes
from edxml.xmlsafe import Limits, SafeParser

NOW = datetime.now(timezone.utc)
_CONTENT = re.compile(rb"(<edXML:ContentTransferEncoded[^>]*>)([^<]*)(</edXML:ContentTransferEncoded>)")


def _package(tmp_path: Path, content: bytes = b"%PDF-1.7\n" + bytes(range(256)) * 40,
             signer: Signer | None = None) -> bytes:
    attachment = tmp_path / "cong-van.pdf"
    attachment.write_bytes(content)
    header = MessageHeader(
        from_=Organization(organ_id="000.00.00.H55", organ_name="UBND tỉnh Thái Nguyên"),
        to=(Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"),),
        document_id="000.00.00.H55,2024/05/31,123/UBND-VP",
        code=Code(code_number="123", code_notation="UBND-VP"),
        promulgation_info=PromulgationInfo(place="Thái Nguyên", promulgation_date=date(2024, 5, 31)),
        document_type=DocumentType(type=1, type_detail=0, type_name="Công văn"),
        subject="V/v triển khai liên thông văn bản điện tử",
    )
    package = DocumentPackage(header, attachments=(Attachment(
        content_id="1", attachment_name="cong-van.pdf", content_type="application/pdf", path=attachment),))
    return package_bytes(package, signer=signer)


def _with_content(data: bytes, b64: bytes) -> bytes:
    out, n = _CONTENT.subn(lambda m: m.group(1) + b64 + m.group(3), data)
    assert n == 1
    return out


def _old_base64_verdict(text: bytes) -> bytes | None:
    """What the reader accepted before binascii's strict mode did the checking."""
    if b"=" in text[:-2] or not re.match(rb"^[A-Za-z0-9+/=]*$", text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


# Quads of the alphabet, padding in every place, bytes outside the alphabet.
_BASE64_CASES = [b"QUJD", b"QUI=", b"QQ==", b"QUJDQQ==", b"QQ==QUJD", b"QQ=A", b"Q===", b"====",
                 b"QUJDQ===", b"QUJD====", b"Q+Az====", b"=QUJ", b"QU=D", b"QUJ-", b"QUJ_", b"QUJ\x00",
                 b"QUJ\xc3\xa9QQ", b"QUJ*", b"QUJD\x85QUJD"]


@pytest.mark.parametrize("text", _BASE64_CASES, ids=[c.decode("latin-1") for c in _BASE64_CASES])
def test_attachment_base64_verdicts_are_those_of_the_old_check(tmp_path: Path, text: bytes) -> None:
    data = _with_content(_package(tmp_path), text)
    expected = _old_base64_verdict(text)
    try:
        result = read_package(io.BytesIO(data), tmp_path / "out")
    except EdxmlError as exc:  # bytes that are not XML text never reach the attachment
        assert expected is None and exc.reason in ("edxml.xml.encoding", "edxml.xml.malformed")
        return
    report = result.attachments[0]
    if expected is None:
        assert report.error is not None and report.error.reason in ("edxml.attachment.base64",
                                                                    "edxml.attachment.truncated")
    else:
        assert report.error is None
        assert report.attachment.path is not None and report.attachment.path.read_bytes() == expected


def test_data_after_padding_in_one_text_run_is_refused(tmp_path: Path) -> None:
    # binascii's strict mode alone accepts a whole quad followed by padding ("QQQQ===="): the
    # reader's own check refuses it, in one run of text as across two.
    data = _with_content(_package(tmp_path), base64.b64encode(b"ABC") + b"====")
    report = read_package(io.BytesIO(data), tmp_path / "out").attachments[0]
    assert report.error is not None and report.error.reason == "edxml.attachment.base64"


def test_a_package_in_one_chunk_is_read_like_one_fed_in_pieces(tmp_path: Path) -> None:
    data = _package(tmp_path)

    class Slow(io.BytesIO):
        def read(self, size: int = -1) -> bytes:  # a socket's way: a few hundred bytes at a time
            return super().read(min(size, 333) if size and size > 0 else 333)

    whole = read_package(io.BytesIO(data), tmp_path / "a")
    pieces = read_package(Slow(data), tmp_path / "b")
    assert whole.package.message_header == pieces.package.message_header
    assert [replace(a, path=None) for a in whole.package.attachments] == \
        [replace(a, path=None) for a in pieces.package.attachments]
    assert (whole.sha256, whole.size) == (pieces.sha256, pieces.size)
    assert whole.attachments[0].attachment.path.read_bytes() == pieces.attachments[0].attachment.path.read_bytes()


@pytest.mark.parametrize("tail", ["<!-- " + "x" * 100_000, '<a b="' + "x" * 100_000, "<?pi " + "x" * 100_000])
def test_an_unclosed_token_over_the_limit_is_too_large_even_in_the_last_chunk(tail: str) -> None:
    doc = ('<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><x>' + tail).encode()
    limits = Limits(max_token_bytes=16 * 1024)
    for final in (True, False):
        parser = SafeParser(DocumentDigester(), limits)
        with pytest.raises(EdxmlError) as err:
            parser.feed(doc, final=final)
            parser.close()
        assert err.value.reason == "edxml.xml.token_too_large"
    # and under the limit it is what it is: a document that ends early
    parser = SafeParser(DocumentDigester(), Limits())
    with pytest.raises(EdxmlError) as err:
        parser.feed(doc, final=True)
    assert err.value.reason == "edxml.xml.malformed"


def test_close_after_a_final_chunk_does_nothing_and_more_data_is_refused() -> None:
    parser = SafeParser(DocumentDigester())
    parser.feed(b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>', final=True)
    parser.close()
    with pytest.raises(EdxmlError):
        parser.feed(b"<more/>")


def _write_crl(path: Path, crl, stamp: int) -> None:  # type: ignore[no-untyped-def]
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.utime(path, ns=(stamp, stamp))  # a new modification time even within the clock's grain


def test_a_crl_replaced_in_its_file_is_judged_again(tmp_path: Path, test_pki: TestPki) -> None:
    """The CRL checker remembers that an issuer signed a CRL object; a CRL reread from its file is
    a new object and is checked again: a forged one (the CA's name, another key) counts for
    nothing although a genuine one for the same issuer was accepted before."""
    m = test_pki.material
    leaf = m.agencies["000.00.00.H55"].certificate
    day = timedelta(days=1)
    genuine = issue_crl(m.ca, last_update=NOW - day, next_update=NOW + day)
    impostor = Credential(CA_NAME, None, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                          m.ca.certificate)
    forged = issue_crl(impostor, [(leaf.serial_number, NOW - day)], last_update=NOW - day, next_update=NOW + day)
    revoking = issue_crl(m.ca, [(leaf.serial_number, NOW - day)], last_update=NOW - day, next_update=NOW + day)
    path = tmp_path / "ca.crl"
    _write_crl(path, genuine, 1_000_000_000_000_000_000)
    checker = CrlChecker.from_files([path])
    store = TrustStore([m.root.certificate], [m.ca.certificate], checker)
    assert store.check([leaf], NOW).ok
    assert store.check([leaf], NOW).ok  # the same chain again: from what the store remembers

    _write_crl(path, forged, 1_000_000_001_000_000_000)
    assert checker.refresh(force=True) == [str(path)]
    assert store.check([leaf], NOW).ok
    assert checker.status(leaf, m.ca.certificate, NOW).status == "unknown"

    _write_crl(path, revoking, 1_000_000_002_000_000_000)
    assert checker.refresh(force=True) == [str(path)]
    assert store.check([leaf], NOW).reason == "edxml.signature.cert_revoked"


def test_a_remembered_chain_is_judged_at_each_time_of_checking(tmp_path: Path, agency_signer: Signer,
                                                               trust_store: TrustStore) -> None:
    data = _package(tmp_path, signer=agency_signer)

    def verdict(at: datetime) -> str | None:
        digester = DocumentDigester()
        result = read_package(io.BytesIO(data), tmp_path / "out", digester=digester)
        return verify_signature(result.signature, trust_store, now=at).reason

    assert verdict(NOW) is None
    assert verdict(NOW) is None
    assert verdict(NOW + timedelta(days=3650)) == "edxml.signature.cert_expired"
    assert verdict(NOW) is None


def test_certificates_are_parsed_once_per_store_and_bad_ones_are_not_remembered(test_pki: TestPki) -> None:
    store = TrustStore([test_pki.material.root.certificate])
    der = test_pki.material.ca.certificate.public_bytes(serialization.Encoding.DER)
    assert store.certificate(der) is store.certificate(der)
    assert store.certificate(der) == test_pki.material.ca.certificate
    for _ in range(2):
        with pytest.raises(ValueError):
            store.certificate(der[:-10])


def test_a_partial_write_of_a_decoded_chunk_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The decoded attachment goes to an unbuffered file, whose write may take only part of a chunk.
    import edxml.reader as reader

    content = os.urandom(100_000)
    data = _package(tmp_path, content)

    class Trickle(io.FileIO):
        def write(self, b):  # type: ignore[no-untyped-def, override]
            return super().write(bytes(b)[:997])

    def trickle_open(path, mode="r", buffering=-1, *args, **kwargs):  # type: ignore[no-untyped-def]
        assert mode == "wb" and buffering == 0
        return Trickle(path, "wb")

    monkeypatch.setattr(reader, "open", trickle_open, raising=False)
    report = read_package(io.BytesIO(data), tmp_path / "out").attachments[0]
    assert report.ok
    assert report.attachment.path.read_bytes() == content
