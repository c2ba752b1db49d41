"""Golden tests: every shared real package parses, and its fields are what the file says."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from edxml.model import BusinessDocType, DocumentPackage, StatusCode, StatusPackage
from edxml.reader import read_package
from edxml.signature import DocumentDigester, verify_signature
from edxml.trust import TrustStore
from edxml.values import VN_TZ

from tests.samples import SAMPLES_DIR, sample


def read(name: str, tmp_path: Path):
    digester = DocumentDigester()
    result = read_package(sample(name), tmp_path, digester=digester)
    return result, verify_signature(result.signature, TrustStore(()))


def test_new_document_sample_matches_the_file(tmp_path):
    result, verdict = read("edoc_new.truncated.edxml", tmp_path)
    pkg = result.package
    assert isinstance(pkg, DocumentPackage) and result.kind == "edoc"
    h = pkg.message_header
    assert h.from_.organ_id == "002.00.20.H13"
    assert h.from_.organ_name == "UBND xã Hòa Tiến - UBND huyện Hòa Vang - Thành phố Đà Nẵng"
    assert h.from_.telephone == "8043100" and h.from_.website == "vpcp.vn"
    assert [t.organ_id for t in h.to] == ["28.22.H17"]
    assert h.to[0].organization_in_charge == " UBND xã Hòa Sơn - UBND huyện Hòa Vang - Thành phố Đà Nẵng"
    assert h.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert (h.code.code_number, h.code.code_notation) == ("74fass22", "VPCP-TTĐT")
    assert h.promulgation_info.place == "Hà Nội"
    assert h.promulgation_info.promulgation_date == date(2019, 1, 16)
    assert (h.document_type.type, h.document_type.type_detail, h.document_type.type_name) == (1, 0, "Công văn")
    assert h.subject == "V/v kết nối, liên thông phần mềm quản lý văn bản"
    assert h.signer_info.competence == "TL. BO TRUONG"
    assert h.signer_info.full_name == "Nguyen Thanh Phuc"
    assert h.due_date == date(2018, 9, 28)
    o = h.other_info
    assert (o.priority, o.typer_notation, o.promulgation_amount, o.page_amount, o.direction) == (0, "TVC", 2, 22, False)
    assert o.sphere_of_promulgation == "Liên thông văn bản quốc gia"
    assert o.appendixes == ("Công văn về việc kết nối, liên thông phần mềm quản lý văn bản",)
    assert h.steering_type == 1
    assert h.to_places == ("Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP")
    trace = pkg.trace_header_list
    assert [(t.organ_id, t.timestamp) for t in trace.trace_headers] == [
        ("000.00.00.G22", datetime(2018, 9, 28, 0, 0, 0, tzinfo=VN_TZ))]
    b = trace.business
    assert b.document_id == "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"  # impossible date, kept raw
    assert pkg.business_doc_type is BusinessDocType.NEW
    assert b.business_doc_reason == "Văn bản điện tử mới" and b.paper == 0
    assert b.staff_info.staff == "Nguyễn Thị Ngọc Trâm"
    assert b.staff_info.mobile == "84912000001"
    # the malformed recipient code is accepted with a warning
    assert ("edxml.value.organ_id", "MessageHeader/To[1]/OrganId") in {
        (w.code, w.where) for w in result.warnings}
    assert verdict.status == "placeholder"


@pytest.mark.parametrize("name", ["edoc_new.truncated.edxml", "edoc_revocation.truncated.edxml"])
def test_truncated_sample_attachment_is_reported_corrupt_and_header_still_read(name, tmp_path):
    result, _ = read(name, tmp_path)
    assert len(result.attachments) == 1
    report = result.attachments[0]
    assert not report.ok
    assert report.error.reason in ("edxml.attachment.base64", "edxml.attachment.truncated")
    assert report.attachment.content_id == "209"
    assert report.attachment.attachment_name == "1896_QD-TTg_m_294779.doc"
    assert report.attachment.content_type == "application/zip"
    assert result.package.message_header.subject
    assert list(tmp_path.iterdir()) == []  # nothing half-decoded is left behind


def test_revocation_sample_matches_the_file(tmp_path):
    result, verdict = read("edoc_revocation.truncated.edxml", tmp_path)
    pkg = result.package
    h = pkg.message_header
    assert h.from_.organ_id == "000.00.00.G22"
    assert [t.organ_id for t in h.to] == ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
    assert h.to[1].organ_name == "UBND Tỉnh Cao Bằng"
    assert (h.code.code_number, h.code.code_notation) == ("7816", "VPCP-TTĐT")
    assert pkg.business_doc_type is BusinessDocType.REVOKE
    assert pkg.trace_header_list.business.business_doc_reason == "Thu hồi văn bản điện tử"
    assert pkg.trace_header_list.business.document_id is None
    # ResponseFor in this file has DocumentId before PromulgationDate: order must not matter
    (rf,) = h.response_for
    assert (rf.organ_id, rf.code, rf.document_id, rf.promulgation_date) == (
        "000.00.00.H14", "267/VPCP-TTĐT", "000.00.04.G14,2012/08/06,267/VPCP-TTĐT", date(2018, 9, 28))
    assert verdict.status == "placeholder"


@pytest.mark.parametrize("name,code,description_start", [
    ("status_inbox_01.edxml", StatusCode.RECEIVED, "Văn thư - Phòng Văn thư - Lưu trữ: Đã đến"),
    ("status_rejection_02.edxml", StatusCode.REJECTED, None),
    ("status_acceptance_03.edxml", StatusCode.ACCEPTED, "Văn thư cơ - Phòng Văn thư - Lưu trữ: Tiếp nhận"),
    ("status_finish_06.edxml", StatusCode.FINISHED, None),
])
def test_status_samples_match_the_files(name, code, description_start, tmp_path):
    result, verdict = read(name, tmp_path)
    pkg = result.package
    assert isinstance(pkg, StatusPackage) and result.kind == "status"
    h = pkg.message_header
    assert h.status_code is code
    assert h.from_.organ_id == "000.00.00.H41"
    assert h.from_.organ_name == "UBND Tỉnh Nghệ An"
    assert h.response_for.organ_id == "000.00.00.G22"
    assert h.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert h.response_for.code == "7816/VPCP-TTĐT"
    assert h.staff_info.department == "Phong hanh chinh"
    assert h.timestamp.tzinfo is not None
    if description_start:
        assert h.description.startswith(description_start)
    raw = sample(name).read_text(encoding="utf-8")
    assert f"<edXML:StatusCode>{code.value}</edXML:StatusCode>" in raw
    assert verdict.status == "absent"


def test_every_shared_sample_is_covered():
    names = {p.name for p in SAMPLES_DIR.glob("*.edxml")}
    assert names == {"edoc_new.truncated.edxml", "edoc_revocation.truncated.edxml",
                     "status_inbox_01.edxml", "status_rejection_02.edxml",
                     "status_acceptance_03.edxml", "status_finish_06.edxml"}
