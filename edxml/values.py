"""Parse and format the edXML value formats: identifiers, dates, timestamps, enums, booleans.

Strict functions are for what we emit (QCVN 102:2016 formats exactly); lenient ones are for what
we receive from other producers and say what they tolerated through a `warning` instead of raising.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid as _uuid
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from edxml.errors import EdxmlError

__all__ = [
    "REASONS",
    "VN_TZ",
    "BusinessDocType",
    "DocumentId",
    "OrganId",
    "Parsed",
    "Priority",
    "format_bool",
    "format_date",
    "format_timestamp",
    "parse_bool",
    "parse_date",
    "parse_date_lenient",
    "parse_timestamp",
    "parse_timestamp_lenient",
    "split_code",
]

REASONS: dict[str, str] = {
    "edxml.value.organ_id": "an organization identifier (mã định danh) is empty, malformed or unsafe",
    "edxml.value.document_id": "a DocumentId is empty, or a part given to compose one is unusable",
    "edxml.value.date": "a date is not yyyy/MM/dd or is not a real calendar date",
    "edxml.value.timestamp": "a timestamp is not yyyy/MM/dd HH:mm:ss, or a datetime to format is naive",
    "edxml.value.priority": "a Priority (độ khẩn) is not one of 0..4",
    "edxml.value.business_doc_type": "a BussinessDocType is not one of 0..3",
    "edxml.value.bool": "a boolean is not true/false (or 1/0 on input)",
}

#: Vietnam local time. edXML timestamps carry no zone and mean this one (no DST in Vietnam).
VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")

T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """A leniently parsed value and what was tolerated to get it (None when the input was strict)."""

    value: T
    warning: str | None = None


def _has_control(s: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in s)


# --- Organization identifiers (mã định danh), spec §8 ------------------------------------------

_QCVN102_RE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
# Quyết định 20/2020/QĐ-TTg: groups of 0-9A-Z separated by ".", level 1 (one letter, two
# digits) on the left, at most 35 characters.
_QD20_RE = re.compile(r"^[A-Z]\d{2}(?:\.[0-9A-Z]+)*$")
_QD20_MAX = 35
_LENIENT_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_LENIENT_MAX = 64

OrganIdForm = Literal["qcvn102", "qd20", "nonstandard"]


@dataclass(frozen=True)
class OrganId:
    """An agency identifier in the QCVN 102 form (`000.00.00.H55`) or the QĐ20 form (`H55.242`).

    `nonstandard` values (`28.22.H17`, `vxp.saas.03`) exist in real traffic; they are accepted
    only by the lenient parse and carry a `warning`.
    """

    value: str
    form: OrganIdForm
    warning: str | None = None

    @classmethod
    def parse(cls, s: str, *, strict: bool) -> OrganId:
        if not isinstance(s, str):
            raise EdxmlError("edxml.value.organ_id", f"expected text, got {type(s).__name__}")
        value = s if strict else s.strip()
        if _QCVN102_RE.match(value):
            return cls(value, "qcvn102", _stripped_warning(s, value))
        if len(value) <= _QD20_MAX and _QD20_RE.match(value):
            return cls(value, "qd20", _stripped_warning(s, value))
        if strict:
            raise EdxmlError(
                "edxml.value.organ_id",
                f"{value!r} is neither a QCVN 102 identifier (AAA.BB.CC.Xnn, e.g. 000.00.00.H55) "
                f"nor a QĐ20 identifier (e.g. H55.242)")
        if not value:
            raise EdxmlError("edxml.value.organ_id", "organization identifier is empty")
        if len(value) > _LENIENT_MAX:
            raise EdxmlError("edxml.value.organ_id",
                             f"organization identifier is {len(value)} characters long "
                             f"(at most {_LENIENT_MAX} accepted)")
        if not _LENIENT_RE.match(value):
            bad = next(c for c in value if not _LENIENT_RE.match(c))
            raise EdxmlError("edxml.value.organ_id",
                             f"organization identifier contains {bad!r} (U+{ord(bad):04X}); only "
                             "letters, digits, '.', '-' and '_' are accepted")
        return cls(value, "nonstandard", f"{value!r} is not a QCVN 102 or QĐ20 identifier")

    @property
    def level1(self) -> str | None:
        """The level-1 body code (`H55`, `G22`); None for a nonstandard identifier."""
        if self.form == "qcvn102":
            return self.value.rsplit(".", 1)[1]
        if self.form == "qd20":
            return self.value.split(".", 1)[0]
        return None

    @property
    def province_code(self) -> str | None:
        """The level-1 code when it is a province (`Hnn`), else None."""
        level1 = self.level1
        return level1 if level1 is not None and level1.startswith("H") else None

    @property
    def is_level1(self) -> bool:
        """True for the level-1 body itself (`000.00.00.H55` or bare `H55`)."""
        if self.form == "qcvn102":
            return self.value.startswith("000.00.00.")
        return self.form == "qd20" and "." not in self.value

    def __str__(self) -> str:
        return self.value


def _stripped_warning(original: str, value: str) -> str | None:
    return "surrounding whitespace removed" if original != value else None


# --- Dates and timestamps, spec §7 -------------------------------------------------------------

_DATE_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})$")
_TIMESTAMP_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_DATE_LOOSE_SLASH_RE = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")
_DATE_ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATE_ISO_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ]\S.*$")
_DATE_DMY_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _make_date(y: str, m: str, d: str, raw: str) -> dt.date:
    try:
        return dt.date(int(y), int(m), int(d))
    except ValueError as exc:
        raise EdxmlError("edxml.value.date", f"{raw!r} is not a calendar date ({exc})") from None


def parse_date(s: str) -> dt.date:
    """Parse a QCVN 102 date, exactly `yyyy/MM/dd`."""
    m = _DATE_RE.match(s) if isinstance(s, str) else None
    if not m:
        raise EdxmlError("edxml.value.date", f"{s!r} is not a date in the form yyyy/MM/dd")
    return _make_date(*m.groups(), raw=s)


def format_date(d: dt.date) -> str:
    """Format a date as `yyyy/MM/dd`. A datetime is refused: say which day you mean."""
    if isinstance(d, dt.datetime) or not isinstance(d, dt.date):
        raise EdxmlError("edxml.value.date",
                         f"expected a date, got {type(d).__name__} (convert to a Vietnam-time date first)")
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}"


def parse_date_lenient(s: str) -> Parsed[dt.date]:
    """Parse a date from any producer: `yyyy/MM/dd`, else `yyyy/M/d`, `yyyy-MM-dd`, an ISO
    timestamp (its date in Vietnam time) or `dd/MM/yyyy`, with a warning naming the form tolerated."""
    if not isinstance(s, str):
        raise EdxmlError("edxml.value.date", f"expected text, got {type(s).__name__}")
    raw = s.strip()
    parsed = _date_only_lenient(raw, s)
    if parsed is not None:
        return parsed
    if _DATE_ISO_TIME_RE.match(raw):
        try:
            ts = parse_timestamp_lenient(raw)
        except EdxmlError:
            raise EdxmlError("edxml.value.date", f"{s!r} is not a recognisable date") from None
        return Parsed(ts.value.date(), f"{s!r}: a timestamp where a date was expected (date in Vietnam time kept)")
    raise EdxmlError("edxml.value.date", f"{s!r} is not a recognisable date")


def _date_only_lenient(raw: str, original: str) -> Parsed[dt.date] | None:
    if m := _DATE_RE.match(raw):
        return Parsed(_make_date(*m.groups(), raw=original),
                      None if raw == original else "surrounding whitespace removed")
    if m := _DATE_LOOSE_SLASH_RE.match(raw):
        return Parsed(_make_date(*m.groups(), raw=original), f"{original!r}: month/day without leading zeros")
    if m := _DATE_ISO_RE.match(raw):
        return Parsed(_make_date(*m.groups(), raw=original),
                      f"{original!r}: ISO date yyyy-MM-dd instead of yyyy/MM/dd")
    if m := _DATE_DMY_RE.match(raw):
        d, mo, y = m.groups()
        return Parsed(_make_date(y, mo, d, raw=original),
                      f"{original!r}: day-first dd/MM/yyyy instead of yyyy/MM/dd")
    return None


def parse_timestamp(s: str) -> dt.datetime:
    """Parse `yyyy/MM/dd HH:mm:ss` as Vietnam local time; the result is timezone-aware."""
    m = _TIMESTAMP_RE.match(s) if isinstance(s, str) else None
    if not m:
        raise EdxmlError("edxml.value.timestamp", f"{s!r} is not a timestamp in the form yyyy/MM/dd HH:mm:ss")
    try:
        return dt.datetime(*(int(g) for g in m.groups()), tzinfo=VN_TZ)
    except ValueError as exc:
        raise EdxmlError("edxml.value.timestamp", f"{s!r} is not a real date and time ({exc})") from None


def format_timestamp(value: dt.datetime) -> str:
    """Format an aware datetime as `yyyy/MM/dd HH:mm:ss` in Vietnam time (sub-seconds dropped)."""
    if not isinstance(value, dt.datetime):
        raise EdxmlError("edxml.value.timestamp", f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise EdxmlError("edxml.value.timestamp",
                         "refusing a naive datetime: its time zone is unknown (use an aware datetime)")
    local = value.astimezone(VN_TZ)
    return (f"{local.year:04d}/{local.month:02d}/{local.day:02d} "
            f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}")


def parse_timestamp_lenient(s: str) -> Parsed[dt.datetime]:
    """Parse a timestamp from any producer. Besides the strict form: ISO 8601 (with or without a
    zone; no zone means Vietnam time), fractional seconds, a missing seconds field, or a bare
    date (midnight). The result is always aware and converted to Vietnam time."""
    if not isinstance(s, str):
        raise EdxmlError("edxml.value.timestamp", f"expected text, got {type(s).__name__}")
    raw = s.strip()
    if _TIMESTAMP_RE.match(raw):
        return Parsed(parse_timestamp(raw), None if raw == s else "surrounding whitespace removed")
    try:
        only_date = _date_only_lenient(raw, s)
    except EdxmlError as exc:
        raise EdxmlError("edxml.value.timestamp", exc.message) from None
    if only_date is not None:
        day = only_date.value
        return Parsed(dt.datetime(day.year, day.month, day.day, tzinfo=VN_TZ),
                      f"{s!r}: a date without time (midnight Vietnam time assumed)")
    candidate = raw.replace("/", "-", 2) if re.match(r"^\d{4}/\d{2}/\d{2}[ T]", raw) else raw
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(candidate)
    except ValueError:
        raise EdxmlError("edxml.value.timestamp", f"{s!r} is not a recognisable timestamp") from None
    if parsed.tzinfo is None:
        return Parsed(parsed.replace(tzinfo=VN_TZ),
                      f"{s!r}: not yyyy/MM/dd HH:mm:ss (read as Vietnam local time)")
    try:
        local = parsed.astimezone(VN_TZ)
    except (OverflowError, ValueError):
        raise EdxmlError("edxml.value.timestamp", f"{s!r} is out of the representable range") from None
    return Parsed(local, f"{s!r}: ISO timestamp with a zone (converted to Vietnam time)")


# --- Enumerations and booleans ------------------------------------------------------------------

def _small_int(s: str) -> int:
    # ASCII digits only: int() would also take "１", "+1" and "1_0".
    if not isinstance(s, str) or not re.fullmatch(r"[0-9]{1,3}", s.strip()):
        raise ValueError(s)
    return int(s.strip())


class Priority(enum.IntEnum):
    """OtherInfo/Priority (độ khẩn). One source lists only 0..3; 4 is read and written as is."""

    NORMAL = 0
    URGENT = 1
    VERY_URGENT = 2
    EXPRESS = 3
    EXPRESS_SCHEDULED = 4

    @property
    def label(self) -> str:
        """The Vietnamese name a clerk reads."""
        return _PRIORITY_LABELS[self]

    @property
    def wire(self) -> str:
        return str(int(self))

    @classmethod
    def parse(cls, s: str) -> Priority:
        try:
            return cls(_small_int(s))
        except ValueError:
            raise EdxmlError("edxml.value.priority",
                             f"{s!r} is not a priority (0 thường .. 4 hỏa tốc hẹn giờ)") from None


_PRIORITY_LABELS = {
    Priority.NORMAL: "Thường",
    Priority.URGENT: "Khẩn",
    Priority.VERY_URGENT: "Thượng khẩn",
    Priority.EXPRESS: "Hỏa tốc",
    Priority.EXPRESS_SCHEDULED: "Hỏa tốc hẹn giờ",
}


class BusinessDocType(enum.IntEnum):
    """TraceHeaderList/Bussiness/BussinessDocType: what the package does to a document."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3

    @property
    def label(self) -> str:
        return _BUSINESS_LABELS[self]

    @property
    def wire(self) -> str:
        return str(int(self))

    @classmethod
    def parse(cls, s: str) -> BusinessDocType:
        try:
            return cls(_small_int(s))
        except ValueError:
            raise EdxmlError("edxml.value.business_doc_type",
                             f"{s!r} is not a BussinessDocType (0 mới, 1 thu hồi, 2 cập nhật, 3 thay thế)") from None


_BUSINESS_LABELS = {
    BusinessDocType.NEW: "Mới",
    BusinessDocType.REVOKE: "Thu hồi",
    BusinessDocType.UPDATE: "Cập nhật",
    BusinessDocType.REPLACE: "Thay thế",
}

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def parse_bool(s: str) -> bool:
    """Read a boolean leniently: `true`/`false` in any case, or `1`/`0`."""
    v = s.strip().lower() if isinstance(s, str) else None
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise EdxmlError("edxml.value.bool", f"{s!r} is not a boolean (true/false)")


def format_bool(b: bool) -> str:
    if not isinstance(b, bool):
        raise EdxmlError("edxml.value.bool", f"expected a bool, got {type(b).__name__}")
    return "true" if b else "false"


# --- Số / ký hiệu and DocumentId ----------------------------------------------------------------

_YEAR_PREFIX_RE = re.compile(r"^(\d{4})/(.+)$")


def split_code(code: str) -> tuple[str, str]:
    """Split a "số/ký hiệu" string into (CodeNumber, CodeNotation).

    `7816/VPCP-TTĐT` gives ("7816", "VPCP-TTĐT"); a legal normative document's
    `69/2024/QĐ-UBND` gives ("69/2024", "QĐ-UBND"): the year stays with the number so the
    notation starts with the type abbreviation. Without "/" the whole string is the number.
    """
    number, sep, rest = code.partition("/")
    if not sep:
        return code, ""
    if m := _YEAR_PREFIX_RE.match(rest):
        return f"{number}/{m.group(1)}", m.group(2)
    return number, rest


_UUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$")
_DATE_SHAPED_RE = re.compile(r"^\d{4}[/-]\d{1,2}[/-]\d{1,2}$")

DocumentIdKind = Literal["composite", "uuid", "opaque"]


@dataclass(frozen=True)
class DocumentId:
    """MessageHeader/DocumentId: `{senderOrganId},{yyyy/MM/dd},{CodeNumber}/{CodeNotation}`.

    On input UUIDs (`kind="uuid"`) and anything else (`kind="opaque"`) are kept as they are;
    a composite value whose date is impossible (`2014/02/30` occurs) keeps the raw date with a
    warning. `str()` is always the value as received or composed.
    """

    raw: str
    kind: DocumentIdKind
    sender: str | None = None
    date_text: str | None = None
    date: dt.date | None = None
    code: str | None = None
    warning: str | None = None

    @classmethod
    def compose(cls, sender: OrganId | str, date: dt.date, number: str, notation: str) -> DocumentId:
        """Build the composite id we emit; every part is checked strictly."""
        try:
            sender = OrganId.parse(sender.value if isinstance(sender, OrganId) else sender, strict=True)
        except EdxmlError as exc:
            raise EdxmlError("edxml.value.document_id", f"sender: {exc.message}") from None
        try:
            date_text = format_date(date)
        except EdxmlError as exc:
            raise EdxmlError("edxml.value.document_id", f"date: {exc.message}") from None
        for label, part in (("number", number), ("notation", notation)):
            if not isinstance(part, str) or not part:
                raise EdxmlError("edxml.value.document_id", f"{label} is empty")
            if part != part.strip():
                raise EdxmlError("edxml.value.document_id", f"{label} {part!r} has surrounding whitespace")
            if "," in part:
                raise EdxmlError("edxml.value.document_id",
                                 f"{label} {part!r} contains ',' (the DocumentId separator)")
            if _has_control(part):
                raise EdxmlError("edxml.value.document_id", f"{label} {part!r} contains a control character")
        code = f"{number}/{notation}"
        return cls(f"{sender.value},{date_text},{code}", "composite", sender.value, date_text, date, code)

    @classmethod
    def parse(cls, s: str) -> DocumentId:
        """Read a DocumentId from any producer; only an empty value is refused."""
        if not isinstance(s, str) or not s.strip():
            raise EdxmlError("edxml.value.document_id", "DocumentId is empty")
        raw = s.strip()
        if _UUID_RE.match(raw):
            return cls(raw, "uuid")
        parts = raw.split(",", 2)
        if len(parts) == 3 and parts[0].strip() and _DATE_SHAPED_RE.match(parts[1].strip()) and parts[2].strip():
            sender, date_text, code = (p.strip() for p in parts)
            warnings = []
            try:
                organ = OrganId.parse(sender, strict=False)
                if organ.warning:
                    warnings.append(f"sender {organ.warning}")
            except EdxmlError as exc:
                warnings.append(f"sender: {exc.message}")
            try:
                parsed = parse_date_lenient(date_text)
                date = parsed.value
                if parsed.warning:
                    warnings.append(f"date {parsed.warning}")
            except EdxmlError:
                date = None
                warnings.append(f"date {date_text!r} is not a calendar date (kept as text)")
            return cls(raw, "composite", sender, date_text, date, code, "; ".join(warnings) or None)
        return cls(raw, "opaque", warning="not a composite {sender},{yyyy/MM/dd},{số/ký hiệu} DocumentId or a UUID")

    @property
    def code_number(self) -> str | None:
        return split_code(self.code)[0] if self.code else None

    @property
    def code_notation(self) -> str | None:
        return split_code(self.code)[1] if self.code else None

    @property
    def as_uuid(self) -> _uuid.UUID | None:
        return _uuid.UUID(self.raw) if self.kind == "uuid" else None

    def __str__(self) -> str:
        return self.raw
