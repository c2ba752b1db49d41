"""Hypothesis strategies for the whole package model, derived from the model's field table."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

from hypothesis import strategies as st

from edxml.model import (Attachment, DocumentPackage, Kind, MessageHeader, StatusCode,
                         StatusHeader, StatusPackage, TraceHeaderList, xml_fields)
from edxml.values import VN_TZ

# Real words rather than letter soup: the legacy-encoding detector judges syllables, and
# random strings of Vietnamese letters are not text anyone writes.
_WORDS = ("Ủy ban nhân dân tỉnh Thái Nguyên Sở Thông tin và Truyền thông Quyết định về việc "
          "phê duyệt kế hoạch triển khai liên thông văn bản điện tử năm 2024 Công văn gửi các "
          "huyện thành phố thị xã Văn phòng Chính phủ đề nghị báo cáo tình hình thực hiện "
          "chữ ký số chuyên dùng hỏa tốc thượng khẩn Nghệ An Cao Bằng Lạng Sơn Hồ Chí Minh "
          "đồng ý từ chối tiếp nhận hoàn thành xử lý phân công Nguyễn Thị Ngọc Trâm Trần Văn "
          "Đức Phạm Hữu Lộc Lê Thị Thủy ĐT: 0208.3855.123 Số: 123/UBND-VP QĐ-UBND TTĐT "
          "https://thainguyen.gov.vn vanthu@thainguyen.gov.vn").split()
_ODD = ["&", "<", ">", "&amp;", "\"", "'", "%", "(1)", "A&B", "<b>", "x>y", "]]>", "7816/VPCP"]
_TOKENS = st.sampled_from(_WORDS) | st.sampled_from(_ODD) | st.from_regex(r"[A-Za-z0-9]{1,8}",
                                                                         fullmatch=True)

texts = st.lists(_TOKENS, min_size=1, max_size=8).map(" ".join)
multiline = st.lists(texts, min_size=1, max_size=3).map("\n".join)
organ_ids = st.builds(
    lambda a, b, c, x, n: f"{a:03d}.{b:02d}.{c:02d}.{x}{n:02d}",
    st.integers(0, 999), st.integers(0, 99), st.integers(0, 99),
    st.sampled_from("GHKT"), st.integers(1, 99))
dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31))
timestamps = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31)) \
    .map(lambda d: d.replace(microsecond=0, tzinfo=VN_TZ))
ints = st.integers(0, 10**6)


document_ids = st.builds(
    lambda sender, day, number, notation: f"{sender},{day:%Y/%m/%d},{number}/{notation}",
    organ_ids, dates, st.integers(1, 9999), st.sampled_from(["UBND-VP", "QĐ-UBND", "VPCP-TTĐT"])
) | st.uuids().map(str)


def _scalar(kind: Kind, name: str) -> st.SearchStrategy:
    if name == "OrganId":
        return organ_ids
    if name == "DocumentId":
        return document_ids
    return {
        Kind.TEXT: multiline if name in ("Content", "Description") else texts,
        Kind.INT: ints,
        Kind.DATE: dates,
        Kind.TIMESTAMP: timestamps,
        Kind.BOOL: st.booleans(),
        Kind.STATUS: st.sampled_from(list(StatusCode)),
    }[kind]


def model(cls: type) -> st.SearchStrategy:
    """Any instance of a model class: optional parts present or absent, lists of 1-3 items."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    fields = {}
    for attr, xf in xml_fields(cls):
        if xf.kind is Kind.NODE:
            strat = model(xf.node)  # type: ignore[arg-type]
        elif xf.kind is Kind.REPEAT:
            strat = st.lists(model(xf.node), min_size=1 if xf.required else 0,  # type: ignore[arg-type]
                             max_size=3).map(tuple)
        elif xf.kind is Kind.LIST:
            item = model(xf.node) if xf.item_kind is Kind.NODE else _scalar(Kind.TEXT, xf.item)  # type: ignore[arg-type]
            strat = st.lists(item, min_size=1, max_size=3).map(tuple)
        elif xf.kind is Kind.INT and xf.allowed is not None:
            strat = st.integers(xf.allowed.start, xf.allowed.stop - 1)
        else:
            strat = _scalar(xf.kind, xf.name)
        if not xf.required and xf.kind is not Kind.REPEAT:
            # absent is whatever the model's default is (None, or () for some lists)
            strat = st.just(defaults[attr]) | strat
        fields[attr] = strat
    return st.builds(cls, **fields)


def attachments(tmp_dir) -> st.SearchStrategy:
    counter = iter(range(10**9))

    def make(content: bytes, name: str, ctype: str, desc: str | None) -> Attachment:
        n = next(counter)
        path = tmp_dir / f"src-{n}"
        path.write_bytes(content)
        return Attachment(content_id=f"{n}", attachment_name=name, content_type=ctype,
                          description=desc, path=path)

    return st.builds(make, st.binary(max_size=3000), texts,
                     st.sampled_from(["application/pdf", "application/octet-stream",
                                      "application/vnd.openxmlformats-officedocument.wordprocessingml.document"]),
                     st.none() | texts)


def document_packages(tmp_dir) -> st.SearchStrategy:
    return st.builds(DocumentPackage, model(MessageHeader), model(TraceHeaderList),
                     st.lists(attachments(tmp_dir), max_size=3).map(tuple))


status_packages = st.builds(StatusPackage, model(StatusHeader)).filter(
    lambda p: bool(p.message_header.response_for.document_id or p.message_header.response_for.code))
