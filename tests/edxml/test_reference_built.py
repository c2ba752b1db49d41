"""Packages built the reference library's way are read as their sender meant, and round-trip."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace

import pytest

from edxml.model import BusinessDocType, DocumentPackage, StatusCode, StatusPackage
from edxml.reader import read_package, read_package_bytes
from edxml.signature import DocumentDigester, verify_signature
from edxml.trust import TrustStore
from edxml.writer import package_bytes

from tests.edxml import reference_built as rb


def _read(name: str, tmp_path):
    return read_package(rb.corpus_path(name), tmp_path / "att", digester=DocumentDigester())


def test_corpus_files_are_what_the_builder_writes():
    for name, build in rb.FILES.items():
        assert rb.corpus_path(name).read_bytes() == build(), f"regenerate {name}"


def test_document_with_bussiness_first_reads_as_a_new_document(tmp_path):
    result = _read("edoc_new_h55_to_h41.edxml", tmp_path)
    pkg = result.package
    assert isinstance(pkg, DocumentPackage)
    assert pkg.message_header.from_.organ_id == rb.SENDER
    assert [t.organ_id for t in pkg.message_header.to] == [rb.RECIPIENT]
    assert pkg.business_doc_type is BusinessDocType.NEW
    assert pkg.trace_header_list.business.business_doc_reason == "Văn bản điện tử mới"
    assert [t.organ_id for t in pkg.trace_header_list.trace_headers] == [rb.SENDER]
    assert verify_signature(result.signature, TrustStore(())).status == "placeholder"


def test_wrapped_attachment_is_unwrapped_and_a_genuine_zip_stays_a_zip(tmp_path):
    result = _read("edoc_new_h55_to_h41.edxml", tmp_path)
    pdf, archive = result.attachments
    assert pdf.ok and archive.ok
    # application/zip named .pdf: the library's wrapper, unwrapped to the file it wraps.
    assert pdf.unwrapped_from_zip and pdf.zip_member_name == rb.PDF_NAME
    assert pdf.attachment.attachment_name == rb.PDF_NAME
    assert pdf.attachment.path.read_bytes() == rb.PDF
    # application/zip named .zip: the clerk attached a ZIP, and a ZIP is what arrives.
    assert not archive.unwrapped_from_zip and archive.zip_member_name is None
    assert archive.attachment.attachment_name == rb.ZIP_NAME
    assert archive.attachment.path.read_bytes() == rb.GENUINE_ZIP
    assert archive.attachment.sha256 == hashlib.sha256(rb.GENUINE_ZIP).hexdigest()
    with zipfile.ZipFile(archive.attachment.path) as zf:
        assert zf.namelist() == ["danh-muc-ho-so.txt"]


def test_status_package_without_signature_reads_as_unsigned(tmp_path):
    result = _read("status_03_h41_to_h55.edxml", tmp_path)
    pkg = result.package
    assert isinstance(pkg, StatusPackage) and result.kind == "status"
    assert pkg.message_header.status_code is StatusCode.ACCEPTED
    assert pkg.message_header.response_for.document_id == rb.DOCUMENT_ID
    assert verify_signature(result.signature, TrustStore(())).status == "absent"


def test_document_round_trips_through_our_writer(tmp_path):
    first = _read("edoc_new_h55_to_h41.edxml", tmp_path)
    attachments = tuple(r.attachment for r in first.attachments)
    ours = package_bytes(replace(first.package, attachments=attachments))
    # Our writer keeps Bussiness, after the TraceHeaders in our own layout.
    assert b"<edXML:Bussiness>" in ours
    again = read_package_bytes(ours, tmp_path / "again")
    assert again.package.message_header == first.package.message_header
    assert again.package.trace_header_list == first.package.trace_header_list
    assert [r.attachment.path.read_bytes() for r in again.attachments] == [rb.PDF, rb.GENUINE_ZIP]


@pytest.mark.parametrize("name", ["status_03_h41_to_h55.edxml"])
def test_status_round_trips_through_our_writer(tmp_path, name):
    first = _read(name, tmp_path)
    again = read_package_bytes(package_bytes(first.package), tmp_path / "again")
    assert again.package == first.package
