import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edxml.errors import EdxmlError
from edxml.values import (
    REASONS,
    VN_TZ,
    BusinessDocType,
    DocumentId,
    OrganId,
    Priority,
    format_bool,
    format_date,
    format_timestamp,
    parse_bool,
    parse_date,
    parse_date_lenient,
    parse_timestamp,
    parse_timestamp_lenient,
    split_code,
)


def reason_of(excinfo: pytest.ExceptionInfo[EdxmlError]) -> str:
    return excinfo.value.reason


# --- OrganId ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, level1", [
    ("000.00.00.H55", "H55"),   # UBND tỉnh Thái Nguyên
    ("000.00.00.G22", "G22"),   # Văn phòng Chính phủ
    ("002.00.20.H13", "H13"),
    ("000.00.04.G14", "G14"),
])
def test_qcvn102_identifier_is_accepted_strictly_with_level1_on_the_right(value, level1):
    organ = OrganId.parse(value, strict=True)
    assert organ.form == "qcvn102"
    assert organ.level1 == level1
    assert organ.warning is None
    assert str(organ) == value


@pytest.mark.parametrize("value, level1", [("H55.242", "H55"), ("G22", "G22"), ("H55.242.01.A7", "H55")])
def test_qd20_identifier_is_accepted_strictly_with_level1_on_the_left(value, level1):
    organ = OrganId.parse(value, strict=True)
    assert organ.form == "qd20"
    assert organ.level1 == level1


def test_province_code_is_given_only_for_provinces():
    assert OrganId.parse("000.00.00.H55", strict=True).province_code == "H55"
    assert OrganId.parse("H29.1", strict=True).province_code == "H29"
    assert OrganId.parse("000.00.00.G22", strict=True).province_code is None


def test_level1_body_is_recognised_in_both_forms():
    assert OrganId.parse("000.00.00.H55", strict=True).is_level1
    assert OrganId.parse("H55", strict=True).is_level1
    assert not OrganId.parse("000.00.20.H55", strict=True).is_level1
    assert not OrganId.parse("H55.242", strict=True).is_level1


@pytest.mark.parametrize("value", ["28.22.H17", "vxp.saas.03", "000.00.00.h55", "000.00.00.H5",
                                   "H55.", "H55..1", "h55.242", " 000.00.00.H55", "H55." + "1" * 40, ""])
def test_malformed_identifier_is_refused_for_output(value):
    with pytest.raises(EdxmlError) as excinfo:
        OrganId.parse(value, strict=True)
    assert reason_of(excinfo) == "edxml.value.organ_id"


@pytest.mark.parametrize("value", ["28.22.H17", "vxp.saas.03", "ORG_01-X"])
def test_malformed_identifier_is_accepted_on_input_with_a_warning(value):
    organ = OrganId.parse(value, strict=False)
    assert organ.form == "nonstandard"
    assert "not a QCVN 102 or QĐ20 identifier" in organ.warning
    assert organ.level1 is None
    assert str(organ) == value


def test_lenient_parse_strips_surrounding_whitespace_and_says_so():
    organ = OrganId.parse(" 000.00.00.H41\n", strict=False)
    assert organ.value == "000.00.00.H41"
    assert organ.form == "qcvn102"
    assert organ.warning == "surrounding whitespace removed"


@pytest.mark.parametrize("value", ["", "   ", "000 00", "a/b", "x\u0000y", "ủy.ban", "a" * 65, "a;b"])
def test_unsafe_identifier_is_refused_even_on_input(value):
    with pytest.raises(EdxmlError) as excinfo:
        OrganId.parse(value, strict=False)
    assert reason_of(excinfo) == "edxml.value.organ_id"


# --- DocumentId ---------------------------------------------------------------------------------

def test_document_id_is_composed_from_its_parts():
    doc_id = DocumentId.compose("000.00.00.G22", dt.date(2015, 9, 30), "7816", "VPCP-TTĐT")
    assert str(doc_id) == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert doc_id.kind == "composite"
    assert DocumentId.parse(str(doc_id)) == doc_id


def test_document_id_code_part_keeps_slashes_and_dashes():
    doc_id = DocumentId.parse("000.00.00.H55,2024/12/20,69/2024/QĐ-UBND")
    assert doc_id.sender == "000.00.00.H55"
    assert doc_id.date == dt.date(2024, 12, 20)
    assert doc_id.code == "69/2024/QĐ-UBND"
    assert (doc_id.code_number, doc_id.code_notation) == ("69/2024", "QĐ-UBND")


def test_document_id_code_part_may_contain_commas_after_the_second_separator():
    doc_id = DocumentId.parse("000.00.00.H55,2024/12/20,12/UBND-VP,KT")
    assert doc_id.code == "12/UBND-VP,KT"


def test_impossible_date_in_sample_document_id_is_kept_raw_with_a_warning():
    doc_id = DocumentId.parse("000.00.00.G22,2014/02/30,7806/VPCP-TTĐT")
    assert doc_id.kind == "composite"
    assert doc_id.date is None
    assert doc_id.date_text == "2014/02/30"
    assert "2014/02/30" in doc_id.warning
    assert str(doc_id) == "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"


def test_document_id_with_nonstandard_sender_is_kept_with_a_warning():
    doc_id = DocumentId.parse("28.22.H17,2019/01/16,12/UBND-VP")
    assert doc_id.kind == "composite"
    assert doc_id.sender == "28.22.H17"
    assert "not a QCVN 102" in doc_id.warning


@pytest.mark.parametrize("value", ["0f8fad5b-d9cb-469f-a165-70867728950e", "{0F8FAD5B-D9CB-469F-A165-70867728950E}"])
def test_uuid_document_id_is_accepted(value):
    doc_id = DocumentId.parse(value)
    assert doc_id.kind == "uuid"
    assert doc_id.as_uuid.hex == "0f8fad5bd9cb469fa16570867728950e"
    assert doc_id.code is None


@pytest.mark.parametrize("value", ["ABC-123", "000.00.00.G22,notadate,1/X", "a,b"])
def test_other_document_ids_are_kept_as_opaque(value):
    doc_id = DocumentId.parse(value)
    assert doc_id.kind == "opaque"
    assert str(doc_id) == value
    assert doc_id.warning


def test_empty_document_id_is_refused():
    with pytest.raises(EdxmlError) as excinfo:
        DocumentId.parse("  ")
    assert reason_of(excinfo) == "edxml.value.document_id"


@pytest.mark.parametrize("sender, number, notation", [
    ("000.00.00.H55", "12,3", "UBND-VP"),
    ("000.00.00.H55", "12", "UBND,VP"),
    ("000.00.00.H55", "12", "UBND\nVP"),
    ("000.00.00.H55", "", "UBND-VP"),
    ("000.00.00.H55", "12", ""),
    ("000.00.00.H55", " 12", "UBND-VP"),
    ("28.22.H17", "12", "UBND-VP"),
])
def test_composing_refuses_unusable_parts(sender, number, notation):
    with pytest.raises(EdxmlError) as excinfo:
        DocumentId.compose(sender, dt.date(2024, 1, 2), number, notation)
    assert reason_of(excinfo) == "edxml.value.document_id"


def test_composing_refuses_a_datetime_for_the_date():
    with pytest.raises(EdxmlError):
        DocumentId.compose("000.00.00.H55", dt.datetime(2024, 1, 2, tzinfo=VN_TZ), "1", "UBND-VP")


_notation_chars = st.sampled_from("ABCDĐHNQTUVPXyr-")
_number_chars = st.sampled_from("0123456789/ab")


@given(
    sender=st.from_regex(r"\A\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}\Z"),
    day=st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 12, 31)),
    number=st.text(_number_chars, min_size=1, max_size=8).filter(lambda s: s.strip() == s),
    notation=st.text(_notation_chars, min_size=1, max_size=12),
)
def test_composed_document_id_parses_back_to_the_same_parts(sender, day, number, notation):
    doc_id = DocumentId.compose(sender, day, number, notation)
    back = DocumentId.parse(str(doc_id))
    assert back.kind == "composite"
    assert (back.sender, back.date, back.code) == (sender, day, f"{number}/{notation}")
    assert back.warning is None


@pytest.mark.parametrize("code, parts", [
    ("7816/VPCP-TTĐT", ("7816", "VPCP-TTĐT")),
    ("69/2024/QĐ-UBND", ("69/2024", "QĐ-UBND")),
    ("123/UBND-VP", ("123", "UBND-VP")),
    ("74fass22", ("74fass22", "")),
])
def test_split_code_keeps_the_year_with_the_number(code, parts):
    assert split_code(code) == parts


# --- Dates and timestamps -----------------------------------------------------------------------

def test_date_round_trips_in_qcvn_format():
    assert parse_date("2015/09/30") == dt.date(2015, 9, 30)
    assert format_date(dt.date(2015, 9, 3)) == "2015/09/03"


@pytest.mark.parametrize("value", ["2015-09-30", "2015/9/30", "30/09/2015", "2014/02/30", "2015/09/30 ", ""])
def test_strict_date_refuses_anything_but_yyyy_mm_dd(value):
    with pytest.raises(EdxmlError) as excinfo:
        parse_date(value)
    assert reason_of(excinfo) == "edxml.value.date"


@pytest.mark.parametrize("value, expected", [
    ("2015/09/30", dt.date(2015, 9, 30)),
    ("2015-09-30", dt.date(2015, 9, 30)),
    ("2015/9/3", dt.date(2015, 9, 3)),
    ("30/09/2015", dt.date(2015, 9, 30)),
    ("2015-09-30T10:00:00", dt.date(2015, 9, 30)),
    ("2015-09-30T20:00:00+00:00", dt.date(2015, 10, 1)),  # 03:00 next day in Vietnam
])
def test_lenient_date_accepts_other_producers_forms(value, expected):
    parsed = parse_date_lenient(value)
    assert parsed.value == expected
    assert (parsed.warning is None) == (value == "2015/09/30")


@pytest.mark.parametrize("value", ["2014/02/30", "yesterday", "2015-13-01", "2015-09-30Tnoon"])
def test_lenient_date_still_refuses_impossible_dates(value):
    with pytest.raises(EdxmlError) as excinfo:
        parse_date_lenient(value)
    assert reason_of(excinfo) == "edxml.value.date"


def test_timestamp_is_read_as_vietnam_time():
    ts = parse_timestamp("2015/09/20 11:08:36")
    assert ts.utcoffset() == dt.timedelta(hours=7)
    assert ts.astimezone(dt.timezone.utc) == dt.datetime(2015, 9, 20, 4, 8, 36, tzinfo=dt.timezone.utc)


def test_timestamp_is_written_in_vietnam_time_from_any_zone():
    utc = dt.datetime(2024, 12, 31, 20, 30, 5, 999999, tzinfo=dt.timezone.utc)
    assert format_timestamp(utc) == "2025/01/01 03:30:05"


def test_naive_datetime_is_refused_when_writing_a_timestamp():
    with pytest.raises(EdxmlError) as excinfo:
        format_timestamp(dt.datetime(2024, 1, 1, 12, 0, 0))
    assert reason_of(excinfo) == "edxml.value.timestamp"


@pytest.mark.parametrize("value", ["2015-09-20 11:08:36", "2015/09/20 25:00:00", "2015/09/20 11:08", ""])
def test_strict_timestamp_refuses_other_forms(value):
    with pytest.raises(EdxmlError) as excinfo:
        parse_timestamp(value)
    assert reason_of(excinfo) == "edxml.value.timestamp"


@pytest.mark.parametrize("value, expected_utc", [
    ("2015/09/20 11:08:36", dt.datetime(2015, 9, 20, 4, 8, 36)),
    ("2015-09-20T11:08:36", dt.datetime(2015, 9, 20, 4, 8, 36)),
    ("2015-09-20T04:08:36Z", dt.datetime(2015, 9, 20, 4, 8, 36)),
    ("2015-09-20T11:08:36.250+07:00", dt.datetime(2015, 9, 20, 4, 8, 36, 250000)),
    ("2015/09/20 11:08", dt.datetime(2015, 9, 20, 4, 8, 0)),
    ("2015/09/20", dt.datetime(2015, 9, 19, 17, 0, 0)),
])
def test_lenient_timestamp_accepts_iso_and_warns(value, expected_utc):
    parsed = parse_timestamp_lenient(value)
    assert parsed.value.utcoffset() == dt.timedelta(hours=7)
    assert parsed.value.astimezone(dt.timezone.utc).replace(tzinfo=None) == expected_utc
    assert (parsed.warning is None) == (value == "2015/09/20 11:08:36")


@pytest.mark.parametrize("value", ["soon", "2015-02-30T10:00:00", "2015/02/30 10:00:00"])
def test_lenient_timestamp_refuses_nonsense(value):
    with pytest.raises(EdxmlError) as excinfo:
        parse_timestamp_lenient(value)
    assert reason_of(excinfo) == "edxml.value.timestamp"


@given(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9998, 12, 30),
                    timezones=st.sampled_from([dt.timezone.utc, VN_TZ, dt.timezone(dt.timedelta(hours=-9, minutes=-30))])))
def test_timestamp_round_trips_to_the_second(value):
    back = parse_timestamp(format_timestamp(value))
    assert back == value.replace(microsecond=0)


@given(st.dates(min_value=dt.date(1, 1, 1)))
def test_date_round_trips(value):
    assert parse_date(format_date(value)) == value


# --- Enums and booleans -------------------------------------------------------------------------

def test_priority_labels_are_vietnamese():
    assert [p.label for p in Priority] == ["Thường", "Khẩn", "Thượng khẩn", "Hỏa tốc", "Hỏa tốc hẹn giờ"]
    assert Priority.parse("3") is Priority.EXPRESS
    assert Priority.EXPRESS_SCHEDULED.wire == "4"


@pytest.mark.parametrize("value", ["5", "-1", "１", "+1", "", "x", "1_0"])
def test_unknown_priority_is_refused(value):
    with pytest.raises(EdxmlError) as excinfo:
        Priority.parse(value)
    assert reason_of(excinfo) == "edxml.value.priority"


def test_business_doc_type_labels_and_codes():
    assert [(b.wire, b.label) for b in BusinessDocType] == [
        ("0", "Mới"), ("1", "Thu hồi"), ("2", "Cập nhật"), ("3", "Thay thế")]
    assert BusinessDocType.parse(" 1 ") is BusinessDocType.REVOKE
    with pytest.raises(EdxmlError) as excinfo:
        BusinessDocType.parse("4")
    assert reason_of(excinfo) == "edxml.value.business_doc_type"


@pytest.mark.parametrize("value, expected", [
    ("true", True), ("false", False), ("True", True), ("FALSE", False), ("1", True), ("0", False), (" true ", True)])
def test_booleans_are_read_leniently(value, expected):
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["yes", "", "2", "t"])
def test_other_booleans_are_refused(value):
    with pytest.raises(EdxmlError) as excinfo:
        parse_bool(value)
    assert reason_of(excinfo) == "edxml.value.bool"


def test_booleans_are_written_in_lowercase():
    assert (format_bool(True), format_bool(False)) == ("true", "false")


def test_every_reason_raised_here_is_documented():
    assert set(REASONS) == {
        "edxml.value.organ_id", "edxml.value.document_id", "edxml.value.date", "edxml.value.timestamp",
        "edxml.value.priority", "edxml.value.business_doc_type", "edxml.value.bool"}
    assert all(reason.startswith("edxml.value.") and meaning for reason, meaning in REASONS.items())
