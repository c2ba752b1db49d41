"""The writer emits the reference layout exactly, refuses what must not travel, and streams."""

from __future__ import annotations

import dataclasses
import io
import tempfile
import tracemalloc
import unicodedata
from datetime import date, datetime
from pathlib import Path

import hashlib

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edxml.errors import EdxmlError
from edxml.model import (NS, Attachment, Code, DocumentPackage, DocumentType, MessageHeader, Organization,
                         PromulgationInfo, ResponseFor, StaffInfo, StatusCode, StatusHeader,
                         StatusPackage)
from edxml.reader import file_digest, read_package
from edxml.signature import DocumentDigester, VerificationPolicy, verify_signature
from edxml.text import encode_legacy
from edxml.values import VN_TZ
from edxml.writer import package_bytes, write_package_file

from tests.samples import sample

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "edxml.xsd"


def _normalised(root: etree._Element) -> bytes:
    """The element tree with whitespace-only text dropped and attachment content blanked."""
    for el in root.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
        if etree.QName(el).localname == "ContentTransferEncoded":
            el.text = "BASE64"
    return etree.tostring(root, encoding="utf-8")


def _strip_signature(root: etree._Element) -> None:
    for sig in root.iter("{*}Signature"):
        sig.getparent().remove(sig)


def test_revocation_sample_is_written_back_in_the_reference_layout(tmp_path):
    attachment_file = tmp_path / "qd.doc"
    attachment_file.write_bytes(b"\xd0\xcf\x11\xe0 a legacy Word file")
    read = read_package(sample("edoc_revocation.truncated.edxml"), tmp_path / "read")
    pkg = dataclasses.replace(read.package, attachments=(dataclasses.replace(
        read.package.attachments[0], path=attachment_file),))
    ours = etree.fromstring(package_bytes(pkg))

    theirs = etree.parse(str(sample("edoc_revocation.truncated.edxml"))).getroot()
    _strip_signature(theirs)
    # The sample lists ResponseFor's DocumentId before PromulgationDate; the spec's order (and
    # the status samples') is OrganId, Code, PromulgationDate, DocumentId, which we follow.
    for rf in theirs.iter(f"{{{NS}}}ResponseFor"):
        rf.append(rf.find(f"{{{NS}}}DocumentId"))
    assert _normalised(ours) == _normalised(theirs)


def test_output_uses_explicit_edxml_prefixes_and_unprefixed_attachments(tmp_path):
    data = package_bytes(_document(tmp_path)).decode("utf-8")
    assert data.startswith('<?xml version="1.0" encoding="UTF-8"?>\n'
                           f'<edXML xmlns="{NS}">\n'
                           f'  <edXML:edXMLEnvelope xmlns:edXML="{NS}">\n'
                           "    <edXML:edXMLHeader>\n      <edXML:MessageHeader>\n")
    assert "<edXML:PromulgationDate>2024/05/31</edXML:PromulgationDate>" in data
    assert "  <AttachmentEncoded>\n    <Attachment>\n      <ContentId>cid:1</ContentId>" in data
    assert f'<edXML:ContentTransferEncoded xmlns:edXML="{NS}">UEsDBA==' not in data
    assert "<edXML:ContentId>cid:1</edXML:ContentId>" in data
    body = data.split("<edXML:ContentTransferEncoded", 1)[1]
    base64_text = body.split(">", 1)[1].split("<", 1)[0]
    assert "\n" not in base64_text  # single-line base64


def test_new_document_without_a_business_flow_still_carries_bussiness_type_0(tmp_path):
    pkg = _document(tmp_path)
    assert pkg.trace_header_list.business is None
    root = etree.fromstring(package_bytes(pkg))
    (business,) = root.iter(f"{{{NS}}}Bussiness")
    assert etree.QName(business.getparent()).localname == "TraceHeaderList"
    assert business.findtext(f"{{{NS}}}BussinessDocType") == "0"
    # Software built on the reference library reads it; the round trip sees a new document.
    assert read_package(io.BytesIO(package_bytes(pkg)), tmp_path / "r").package \
        .trace_header_list.business.business_doc_type == 0


def test_written_packages_validate_against_the_xsd(tmp_path):
    schema = xmlschema.XMLSchema(str(SCHEMA_PATH))
    schema.validate(package_bytes(_document(tmp_path)).decode("utf-8"))
    schema.validate(package_bytes(_status()).decode("utf-8"))


def test_vietnamese_text_is_written_nfc(tmp_path):
    nfd = unicodedata.normalize("NFD", "Quyết định về việc")
    data = package_bytes(_document(tmp_path, subject=nfd)).decode("utf-8")
    assert unicodedata.normalize("NFC", nfd) in data and nfd not in data


@pytest.mark.parametrize("encoding,codec", [("tcvn3", "latin-1"), ("vni", "cp1252")])
def test_legacy_vietnamese_encoding_is_refused_naming_the_field(encoding, codec, tmp_path):
    subject = encode_legacy("Quyết định về việc phê duyệt kế hoạch", encoding).decode(codec)
    with pytest.raises(EdxmlError) as err:
        package_bytes(_document(tmp_path, subject=subject))
    assert err.value.reason == "edxml.text.legacy_encoding"
    assert "Subject" in (err.value.where or "") + err.value.message


def test_malformed_recipient_organ_id_is_refused_on_output(tmp_path):
    pkg = _document(tmp_path)
    bad = dataclasses.replace(pkg.message_header, to=(Organization(organ_id="28.22.H17"),))
    with pytest.raises(EdxmlError) as err:
        package_bytes(dataclasses.replace(pkg, message_header=bad))
    assert err.value.reason == "edxml.value.organ_id"
    assert err.value.where == "MessageHeader/To[1]/OrganId"


def test_missing_subject_is_refused(tmp_path):
    pkg = _document(tmp_path, subject="")
    with pytest.raises(EdxmlError) as err:
        package_bytes(pkg)
    assert (err.value.reason, err.value.where) == ("edxml.model.missing", "MessageHeader/Subject")


def test_duplicate_content_ids_are_refused(tmp_path):
    pkg = _document(tmp_path)
    twice = pkg.attachments + (dataclasses.replace(pkg.attachments[0], content_id="cid:1"),)
    with pytest.raises(EdxmlError) as err:
        package_bytes(dataclasses.replace(pkg, attachments=twice))
    assert err.value.reason == "edxml.model.invalid"


def test_unreadable_attachment_file_is_refused(tmp_path):
    pkg = _document(tmp_path)
    gone = dataclasses.replace(pkg.attachments[0], path=tmp_path / "nope.pdf")
    with pytest.raises(EdxmlError) as err:
        write_package_file(dataclasses.replace(pkg, attachments=(gone,)), tmp_path / "out.edxml")
    assert err.value.reason == "edxml.attachment.unreadable"
    assert not (tmp_path / "out.edxml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".edxml-")] == []


def test_large_attachment_is_streamed_in_bounded_memory(tmp_path):
    big = tmp_path / "scan.pdf"
    with open(big, "wb") as f:
        block = b"%PDF-1.7 " + bytes(range(256)) * 4096
        for _ in range(48):  # ~50 MB
            f.write(block)
    size = big.stat().st_size
    pkg = _document(tmp_path, attachment=big)
    tracemalloc.start()
    try:
        write_package_file(pkg, tmp_path / "big.edxml")
        _, peak_write = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = read_package(tmp_path / "big.edxml", tmp_path / "out")
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.attachments[0].attachment.size == size
    assert peak_write < size / 10 and peak_read < size / 10, (peak_write, peak_read, size)


# --- checked text is kept: the same answer as checking it again -------------------------------

_TEXTS = st.one_of(
    st.text(max_size=40),
    st.text(st.sampled_from("aăâbcdđeêoôơuưy ÀÁẢÃẠàáảãạ&<>\r\n\t\x00\x07\u202e\u200f\ud800"
                            "\u0301e\u0303"), max_size=30),
    st.sampled_from(["UBND tỉnh Thái Nguyên", "Công văn", "application/pdf"])
    .map(lambda v: encode_legacy(v, "vni").decode("latin-1") if "ô" in v else v),
    st.text(min_size=190, max_size=230))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_TEXTS, min_size=1, max_size=6))
def test_a_text_field_is_written_exactly_as_an_unkept_check_writes_it(values):
    """Every text written twice (the second time from what the writer kept) gives the same
    text, or the same refusal with the same reason, message and field, as checking it anew."""
    from edxml import text as text_module
    from edxml.model import Kind
    from edxml.writer import _escape, _format

    for value in values + values:
        where = f"MessageHeader/Subject[{len(value)}]"
        try:
            expected: object = _escape(text_module.normalize_text(value, where))
        except EdxmlError as exc:
            expected = (exc.reason, exc.message, exc.where)
        try:
            got: object = _format(Kind.TEXT, value, where)
        except EdxmlError as exc:
            got = (exc.reason, exc.message, exc.where)
        assert got == expected


@pytest.mark.parametrize("bad", ["Công\x07 văn", "UBND \u202etỉnh", "lone \ud800",
                                 encode_legacy("Công văn hỏa tốc", "vni").decode("latin-1")])
def test_a_refused_text_is_refused_every_time_naming_its_own_field(bad):
    from edxml.model import Kind
    from edxml.writer import _format

    _format(Kind.TEXT, "Công văn", "warm")       # a good text is kept; a bad one never is
    for where in ("MessageHeader/Subject", "MessageHeader/From/OrganName"):
        with pytest.raises(EdxmlError) as err:
            _format(Kind.TEXT, bad, where)
        assert err.value.where == where and err.value.reason.startswith("edxml.text.")


# --- write_package_file: held in memory or spooled, the same bytes ---------------------------

@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 6000), min_size=0, max_size=3),
       spool_limit=st.sampled_from([0, 1, 3000, 1 << 20]), seed=st.integers(0, 2 ** 32))
def test_a_written_file_is_the_package_bytes_and_reports_its_own_digest(
        tmp_path, agency_signer, sizes, spool_limit, seed):
    """Whether the body is held in memory or spooled to a file, the file written is the same
    bytes as the in-memory package, and the size and SHA-256 it reports are the file's own."""
    import random

    rnd = random.Random(seed)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    atts = []
    for i, size in enumerate(sizes, 1):
        path = work / f"a{i}.pdf"
        path.write_bytes(rnd.randbytes(size))
        atts.append(Attachment(content_id=str(i), attachment_name=f"a{i}.pdf",
                               content_type="application/pdf", path=path))
    pkg = dataclasses.replace(_document(work), attachments=tuple(atts))
    for signer in (agency_signer, None):
        dest = work / ("signed.edxml" if signer else "unsigned.edxml")
        written = write_package_file(pkg, dest, signer=signer, spool_limit=spool_limit)
        data = dest.read_bytes()
        assert data == package_bytes(pkg, signer=signer)
        assert (written.size, written.sha256) == file_digest(dest)
        assert [(a.size, a.sha256) for a in written.attachments] == [
            (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in (a.path for a in atts)]
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []


def test_a_spooled_signed_package_verifies(tmp_path, agency_signer, trust_store):
    pkg = _document(tmp_path)
    written = write_package_file(pkg, tmp_path / "out.edxml", signer=agency_signer, spool_limit=0)
    result = read_package(tmp_path / "out.edxml", tmp_path / "read", digester=DocumentDigester())
    verdict = verify_signature(result.signature, trust_store, VerificationPolicy())
    assert verdict.status == "valid", verdict
    assert (result.size, result.sha256) == (written.size, written.sha256)


@pytest.mark.parametrize("spool_limit", [0, 1 << 20])
def test_a_failed_signed_write_leaves_nothing_behind(tmp_path, agency_signer, spool_limit):
    pkg = _document(tmp_path)
    gone = dataclasses.replace(pkg.attachments[0], content_id="2", path=tmp_path / "nope.pdf")
    with pytest.raises(EdxmlError) as err:
        write_package_file(dataclasses.replace(pkg, attachments=(pkg.attachments[0], gone)),
                           tmp_path / "out.edxml", signer=agency_signer, spool_limit=spool_limit)
    assert err.value.reason == "edxml.attachment.unreadable"
    assert not (tmp_path / "out.edxml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".edxml-")] == []


def test_a_large_signed_package_is_spooled_in_bounded_memory(tmp_path, agency_signer):
    big = tmp_path / "scan.pdf"
    with open(big, "wb") as f:
        block = b"%PDF-1.7 " + bytes(range(256)) * 4096
        for _ in range(24):  # ~25 MB
            f.write(block)
    size = big.stat().st_size
    tracemalloc.start()
    try:
        written = write_package_file(_document(tmp_path, attachment=big), tmp_path / "big.edxml",
                                     signer=agency_signer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 5, (peak, size)
    assert (written.size, written.sha256) == file_digest(tmp_path / "big.edxml")


# --- builders -----------------------------------------------------------------------------------

def _document(tmp_path: Path, *, subject: str = "V/v triển khai liên thông văn bản",
              attachment: Path | None = None) -> DocumentPackage:
    if attachment is None:
        attachment = tmp_path / "cong-van.pdf"
        attachment.write_bytes(b"%PDF-1.4 test document\n" * 100)
    header = MessageHeader(
        from_=Organization(organ_id="000.00.00.H55", organ_name="UBND tỉnh Thái Nguyên"),
        to=(Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"),),
        document_id="000.00.00.H55,2024/05/31,123/UBND-VP",
        code=Code(code_number="123", code_notation="UBND-VP"),
        promulgation_info=PromulgationInfo(place="Thái Nguyên", promulgation_date=date(2024, 5, 31)),
        document_type=DocumentType(type=1, type_detail=0, type_name="Công văn"),
        subject=subject,
    )
    return DocumentPackage(header, attachments=(
        Attachment(content_id="1", attachment_name="cong-van.pdf", content_type="application/pdf",
                   path=attachment),))


def _status() -> StatusPackage:
    return StatusPackage(StatusHeader(
        from_=Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"),
        response_for=ResponseFor(organ_id="000.00.00.H55", code="123/UBND-VP",
                                 promulgation_date=date(2024, 5, 31),
                                 document_id="000.00.00.H55,2024/05/31,123/UBND-VP"),
        staff_info=StaffInfo(department="Văn phòng", staff="Nguyễn Văn A"),
        status_code=StatusCode.ACCEPTED,
        description="Tiếp nhận văn bản",
        timestamp=datetime(2024, 6, 1, 8, 30, tzinfo=VN_TZ),
    ))
