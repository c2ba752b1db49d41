import unicodedata

import pytest

from edxml.doctypes import DOC_TYPES, by_abbreviation, by_name, by_name_lenient, check_code, check_notation


def test_there_are_29_types_in_the_order_of_dieu_7():
    assert len(DOC_TYPES) == 29
    assert [t.position for t in DOC_TYPES] == list(range(1, 30))
    assert DOC_TYPES[0].name == "Nghị quyết"
    assert by_name("Công văn").position == 18
    assert DOC_TYPES[-1].name == "Thư công"


def test_names_and_abbreviations_are_unique_and_nfc():
    names = [t.name for t in DOC_TYPES]
    abbreviations = [t.abbreviation for t in DOC_TYPES if t.abbreviation]
    assert len(set(names)) == 29
    assert len(set(abbreviations)) == 27
    assert all(unicodedata.is_normalized("NFC", s) for s in names + abbreviations)


def test_only_cong_van_and_thu_cong_have_no_abbreviation():
    assert {t.name for t in DOC_TYPES if t.abbreviation is None} == {"Công văn", "Thư công"}


@pytest.mark.parametrize("abbreviation, name", [
    ("QĐ", "Quyết định"), ("QyĐ", "Quy định"), ("CT", "Chỉ thị"), ("CTr", "Chương trình"),
    ("TB", "Thông báo"), ("TTr", "Tờ trình"), ("TC", "Thông cáo"), ("HĐ", "Hợp đồng"), ("HD", "Hướng dẫn"),
    ("ĐA", "Đề án"), ("DA", "Dự án"), ("CĐ", "Công điện"), ("BGN", "Bản ghi nhớ"), ("GUQ", "Giấy ủy quyền"),
    ("PB", "Phiếu báo"), ("NQ", "Nghị quyết"),
])
def test_abbreviation_lookup_is_exact(abbreviation, name):
    assert by_abbreviation(abbreviation).name == name
    assert by_name(name).abbreviation == abbreviation


@pytest.mark.parametrize("abbreviation", ["qđ", "QD", "Qyđ", "CTR", "Ttr", "UBND", ""])
def test_abbreviation_lookup_does_not_guess(abbreviation):
    assert by_abbreviation(abbreviation) is None


def test_name_lookup_is_exact_but_accepts_ca_biet():
    assert by_name("Quyết định (cá biệt)").abbreviation == "QĐ"
    assert by_name("Nghị quyết (cá biệt)").abbreviation == "NQ"
    assert by_name("quyết định") is None
    assert by_name("Quyet dinh") is None


def test_name_lookup_accepts_nfd_input():
    assert by_name(unicodedata.normalize("NFD", "Tờ trình")).abbreviation == "TTr"


@pytest.mark.parametrize("name, expected", [
    ("QUYẾT ĐỊNH", "Quyết định"),
    ("công văn", "Công văn"),
    ("  Tờ   trình ", "Tờ trình"),
    ("Bản thoả thuận", "Bản thỏa thuận"),
    ("Giấy uỷ quyền", "Giấy ủy quyền"),
    ("GIẤY UỶ QUYỀN", "Giấy ủy quyền"),
    ("Quyết định (cá biệt)", "Quyết định"),
])
def test_lenient_name_lookup_ignores_case_spacing_and_tone_placement(name, expected):
    assert by_name_lenient(name).name == expected


@pytest.mark.parametrize("name", ["Quyet dinh", "Văn bản", "Quyết"])
def test_lenient_name_lookup_still_needs_the_right_words(name):
    assert by_name_lenient(name) is None


@pytest.mark.parametrize("type_name, notation", [
    ("Quyết định", "QĐ-UBND"),
    ("Quyết định", "2024/QĐ-UBND"),
    ("Quy định", "QyĐ-UBND"),
    ("Chương trình", "CTr-UBND"),
    ("Chỉ thị", "CT-UBND"),
    ("Tờ trình", "TTr-SNV"),
    ("Thông báo", "TB-VPCP"),
    ("Kế hoạch", "KH-UBND"),
    ("Công văn", "UBND-VP"),
    ("Công văn", "VPCP-TTĐT"),
    ("Công văn", "HĐND-VP"),
    ("Thư công", "UBND"),
    ("Giấy mời", "GM-SNV"),
])
def test_matching_notation_has_no_problem(type_name, notation):
    assert check_notation(type_name, notation) == []


@pytest.mark.parametrize("type_name, notation, fragment", [
    ("Quyết định", "QyĐ-UBND", "Quy định"),
    ("Quy định", "QĐ-UBND", "Quyết định"),
    ("Chương trình", "CT-UBND", "Chỉ thị"),
    ("Chỉ thị", "CTr-UBND", "Chương trình"),
    ("Tờ trình", "TB-UBND", "Thông báo"),
    ("Thông báo", "TTr-UBND", "Tờ trình"),
    ("Quyết định", "QD-UBND", "with Đ"),
    ("Quyết định", "qđ-UBND", "'QĐ'"),
    ("Quyết định", "UBND-VP", "does not start with 'QĐ'"),
    ("Quyết định", "QĐ", "issuing body"),
    ("Quyết định", "QĐ-", "issuing body"),
    ("Công văn", "QĐ-UBND", "Quyết định"),
    ("Công văn", "TTr-UBND", "Tờ trình"),
    ("Công văn", "QD-UBND", "without its Đ"),
    ("Quyết định", "QĐ-UBND/VP", "'/'"),
    ("Quyết định", "", "empty"),
])
def test_mismatched_notation_is_reported(type_name, notation, fragment):
    problems = check_notation(type_name, notation)
    assert len(problems) == 1
    assert fragment in problems[0]


def test_unknown_type_is_reported():
    assert "unknown document type" in check_notation("Sắc lệnh", "SL-CTN")[0]


def test_lenient_type_name_is_enough_for_checking():
    assert check_notation("QUYẾT ĐỊNH", "QĐ-UBND") == []


@pytest.mark.parametrize("code, ok", [
    ("69/2024/QĐ-UBND", True),
    ("123/UBND-VP", False),
    ("/QĐ-UBND", False),
    ("15/QĐ-UBND", True),
])
def test_check_code_splits_number_and_notation_for_a_decision(code, ok):
    assert (check_code("Quyết định", code) == []) is ok


def test_check_code_for_a_cong_van():
    assert check_code("Công văn", "7816/VPCP-TTĐT") == []
    assert check_code("Công văn", "12/QĐ-UBND") != []
