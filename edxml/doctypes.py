"""The 29 administrative document types of Nghị định 30/2020/NĐ-CP and their ký hiệu rules.

The edXML `DocumentType/Type` code list is not settled between producers (spec §2); the type
*name* and the abbreviation at the head of the ký hiệu are what a clerk recognises, so those are
what this module knows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from edxml.values import split_code

__all__ = [
    "DOC_TYPES",
    "DocType",
    "by_abbreviation",
    "by_name",
    "by_name_lenient",
    "check_code",
    "check_notation",
]


@dataclass(frozen=True)
class DocType:
    """One type of administrative document.

    `position` is its place in the list of Điều 7 (Công văn is 18th); one edXML library writes it
    as DocumentType/Type, another writes 1 for Công văn, so it is not the wire code.
    """

    position: int
    name: str
    abbreviation: str | None


# Điều 7 order. Abbreviations from Phụ lục III; Công văn and Thư công have none (a công văn's
# ký hiệu is the issuing body plus the drafting unit, e.g. UBND-VP).
DOC_TYPES: tuple[DocType, ...] = tuple(
    DocType(i, name, abbr) for i, (name, abbr) in enumerate((
        ("Nghị quyết", "NQ"),
        ("Quyết định", "QĐ"),
        ("Chỉ thị", "CT"),
        ("Quy chế", "QC"),
        ("Quy định", "QyĐ"),
        ("Thông cáo", "TC"),
        ("Thông báo", "TB"),
        ("Hướng dẫn", "HD"),
        ("Chương trình", "CTr"),
        ("Kế hoạch", "KH"),
        ("Phương án", "PA"),
        ("Đề án", "ĐA"),
        ("Dự án", "DA"),
        ("Báo cáo", "BC"),
        ("Biên bản", "BB"),
        ("Tờ trình", "TTr"),
        ("Hợp đồng", "HĐ"),
        ("Công văn", None),
        ("Công điện", "CĐ"),
        ("Bản ghi nhớ", "BGN"),
        ("Bản thỏa thuận", "BTT"),
        ("Giấy ủy quyền", "GUQ"),
        ("Giấy mời", "GM"),
        ("Giấy giới thiệu", "GGT"),
        ("Giấy nghỉ phép", "GNP"),
        ("Phiếu gửi", "PG"),
        ("Phiếu chuyển", "PC"),
        ("Phiếu báo", "PB"),
        ("Thư công", None),
    ), start=1)
)

_BY_ABBR = {t.abbreviation: t for t in DOC_TYPES if t.abbreviation}
_BY_NAME = {t.name: t for t in DOC_TYPES}
# Nghị quyết and Quyết định are "cá biệt" (individual) in Điều 7; the legal normative kinds share
# the name and abbreviation.
_BY_NAME.update({f"{t.name} (cá biệt)": t for t in DOC_TYPES if t.abbreviation in ("NQ", "QĐ")})


def by_abbreviation(abbreviation: str) -> DocType | None:
    """Exact, case-sensitive: `QyĐ` is Quy định, `QĐ` Quyết định; `CTr` and `CT` differ too."""
    return _BY_ABBR.get(unicodedata.normalize("NFC", abbreviation))


def by_name(name: str) -> DocType | None:
    """Exact name with its diacritics (`Quyết định`); `(cá biệt)` accepted for NQ and QĐ."""
    return _BY_NAME.get(unicodedata.normalize("NFC", name))


# New-style tone placement ("hoà", "thoả", "uỷ") against Nghị định 30's old style ("hòa",
# "thỏa", "ủy"): in an open syllable the tone moves from the second vowel to the first.
_NEW_STYLE_RE = re.compile(r"([ou])([aey])([\u0300\u0301\u0303\u0309\u0323])(?![\w\u0300-\u036f])")


def _lenient_key(name: str) -> str:
    text = " ".join(name.split()).casefold()
    text = re.sub(r"\s*\(\s*cá biệt\s*\)$", "", unicodedata.normalize("NFC", text))
    decomposed = unicodedata.normalize("NFD", text)
    decomposed = _NEW_STYLE_RE.sub(lambda m: m.group(1) + m.group(3) + m.group(2), decomposed)
    return unicodedata.normalize("NFC", decomposed)


_BY_LENIENT = {_lenient_key(t.name): t for t in DOC_TYPES}


def by_name_lenient(name: str) -> DocType | None:
    """Like by_name, ignoring case, extra spaces, `(cá biệt)` and new-style tone placement
    (`Bản thoả thuận`, `GIẤY UỶ QUYỀN`)."""
    return _BY_LENIENT.get(_lenient_key(name))


_YEAR_RE = re.compile(r"^(?:19|20)\d{2}$")
_UNACCENTED = {
    "QD": "QĐ", "HD": "HĐ", "CD": "CĐ", "DA": "ĐA", "QyD": "QyĐ",
}


def check_notation(type_name: str, notation: str) -> list[str]:
    """Problems with a ký hiệu (CodeNotation) for a document type; empty when it fits.

    A typed document's ký hiệu starts with its type's abbreviation and a "-", then the issuing
    body (`QĐ-UBND`); a công văn's has no type abbreviation (`UBND-VP`). A legal normative
    document's year may sit in front (`2024/QĐ-UBND`, when the number was split off alone).
    The first "-" segment is compared whole, so `QyĐ` never passes for `QĐ`, nor `CTr` for `CT`.
    """
    doc_type = by_name(type_name) or by_name_lenient(type_name)
    if doc_type is None:
        return [f"unknown document type {type_name!r} (not one of the 29 of Nghị định 30/2020)"]
    notation = unicodedata.normalize("NFC", notation.strip())
    if not notation:
        return [f"ký hiệu is empty for {doc_type.name}"]
    problems: list[str] = []
    head, slash, rest = notation.partition("/")
    if slash:
        if _YEAR_RE.match(head):
            notation = rest
        else:
            problems.append(f"ký hiệu {notation!r} contains '/': only a leading year (2024/QĐ-UBND) is expected")
    first, dash, issuer = notation.partition("-")
    if doc_type.abbreviation is None:
        other = by_abbreviation(first)
        if other is not None:
            problems.append(
                f"ký hiệu {notation!r} of a {doc_type.name} starts with {first!r}, the abbreviation of "
                f"{other.name}: check the document type (a {doc_type.name}'s ký hiệu names the issuing "
                f"body and drafting unit, e.g. UBND-VP)")
        elif first in _UNACCENTED:
            problems.append(
                f"ký hiệu {notation!r} of a {doc_type.name} starts with {first!r}, which looks like "
                f"{_UNACCENTED[first]} ({by_abbreviation(_UNACCENTED[first]).name}) without its Đ")
        return problems
    expected = doc_type.abbreviation
    if first != expected:
        other = by_abbreviation(first)
        if other is not None:
            problems.append(f"ký hiệu {notation!r} starts with {first!r} ({other.name}); "
                            f"a {doc_type.name} uses {expected!r}")
        elif _UNACCENTED.get(first) == expected:
            problems.append(f"ký hiệu {notation!r} starts with {first!r}: write {expected!r} (with Đ)")
        elif first.casefold() == expected.casefold():
            problems.append(f"ký hiệu {notation!r} starts with {first!r}: the abbreviation is {expected!r}")
        else:
            problems.append(f"ký hiệu {notation!r} does not start with {expected!r}, "
                            f"the abbreviation of {doc_type.name}")
        return problems
    if not dash or not issuer.strip("-"):
        problems.append(f"ký hiệu {notation!r} lacks the issuing body after '{expected}-' (e.g. {expected}-UBND)")
    return problems


def check_code(type_name: str, code: str) -> list[str]:
    """Like check_notation for a whole "số/ký hiệu" (`69/2024/QĐ-UBND`, `123/UBND-VP`)."""
    number, notation = split_code(code.strip())
    problems = []
    if not number:
        problems.append(f"số/ký hiệu {code!r} has no number")
    return problems + check_notation(type_name, notation)
