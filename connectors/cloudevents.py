"""Map CloudEvents 1.0 to and from Kafka records (the CloudEvents Kafka protocol binding).

Pure: no broker, no client library. Outgoing events use binary content mode: every attribute
is a `ce_<name>` header (UTF-8), `content-type` carries `datacontenttype`, the value is the
JSON data and the key is what the caller passes (the document key, so everything about one
document stays in one partition, in order). Incoming records may also be in structured mode
(`content-type: application/cloudevents+json`, the whole event as JSON in the value).

A record that cannot be read as an event raises `EnvelopeError` with one of `REASONS`; decoding
never raises anything else, so a consumer can route any record it cannot read to dead letters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Protocol

from edxml.errors import GatewayError

REASONS: dict[str, str] = {
    "event.envelope": "a required ce_ attribute is missing, repeated or invalid "
                      "(specversion, id, source, type, time, extension name)",
    "event.json": "the record value (or structured event) is not UTF-8 JSON",
    "event.content_type": "the data is not JSON (content-type other than application/json "
                          "or */*+json, or structured data_base64)",
    "event.too_large": "a header, an attribute or the number of headers exceeds its bound "
                       "(ce_id at most 200 bytes, other attributes 1000 bytes, at "
                       "most 64 headers); refused before anything else is read",
}

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
HEADER_PREFIX = "ce_"
CONTENT_TYPE_HEADER = "content-type"

# Attributes the binding carries as their own headers; everything else is an extension.
_CORE = ("specversion", "id", "source", "type", "time", "subject", "dataschema")
_RESERVED = frozenset(_CORE) | {"datacontenttype", "data", "data_base64"}
# CloudEvents 1.0: attribute names are lower-case ASCII letters and digits.
_NAME = re.compile(r"^[a-z0-9]{1,64}$")

# Bounds on what a record may carry, checked on the raw bytes before anything is decoded: an
# attribute is copied into every outcome, ledger entry, log line and metric of its event, so a
# hostile size must be refused before it costs memory anywhere.
MAX_ID_BYTES = 200
MAX_ATTRIBUTE_BYTES = 1000
MAX_HEADERS = 64
MAX_HEADER_NAME_CHARS = 80
# Times outside these years are no real event's and overflow date arithmetic (year 1 in +07:00
# is before datetime.min in UTC).
MIN_YEAR, MAX_YEAR = 1900, 2200


class EnvelopeError(GatewayError):
    """A Kafka record is not a usable CloudEvent (permanent: the same bytes fail again)."""

    transient = False


class RecordLike(Protocol):
    """What decoding needs from a record: aiokafka's ConsumerRecord and `KafkaRecord` fit."""

    key: bytes | None
    value: bytes | None
    headers: Iterable[tuple[str, bytes]]


@dataclass(frozen=True)
class KafkaRecord:
    """A record as it goes to or comes from Kafka; topic/partition/offset are set on reads."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp_ms: int | None = None

    def header(self, name: str) -> bytes | None:
        """The last value of header `name` (Kafka allows repeats), or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


def _is_json_content_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or (
        media.startswith("application/") and media.endswith("+json"))


#: `json.dumps(..., ensure_ascii=False, separators=(",", ":"), allow_nan=False)` with its
#: encoder made once (json.dumps builds a new one on every call given any option).
_DATA_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _format_time(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_time(text: str, where: str) -> datetime:
    if len(text) > 64:
        raise EnvelopeError("event.envelope", "time is not an RFC 3339 timestamp (too long)",
                            where=where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EnvelopeError("event.envelope", f"time {text[:40]!r} is not an RFC 3339 timestamp",
                            where=where) from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise EnvelopeError("event.envelope",
                            f"time {text[:40]!r} must be an RFC 3339 date-time with an offset",
                            where=where)
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise EnvelopeError("event.envelope", f"time {text[:40]!r} is outside the years "
                            f"{MIN_YEAR}-{MAX_YEAR}", where=where)
    try:
        moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # pragma: no cover - excluded by the year bounds
        raise EnvelopeError("event.envelope", f"time {text[:40]!r} cannot be converted to "
                            "UTC", where=where) from None
    return moment


@dataclass(frozen=True)
class CloudEvent:
    """One CloudEvents 1.0 event whose data is JSON (or absent)."""

    id: str
    source: str
    type: str
    data: Any = None
    time: datetime | None = None
    subject: str | None = None
    datacontenttype: str = JSON_CONTENT_TYPE
    dataschema: str | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)
    specversion: str = SPECVERSION

    def __post_init__(self) -> None:
        if self.specversion != SPECVERSION:
            raise EnvelopeError("event.envelope",
                                f"specversion {self.specversion[:20]!r} is not {SPECVERSION}",
                                where="specversion")
        for name in ("id", "source", "type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise EnvelopeError("event.envelope", f"{name} must be a non-empty string",
                                    where=name)
        for name in ("subject", "dataschema"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise EnvelopeError("event.envelope", f"{name} must be a non-empty string "
                                    "when present", where=name)
        if self.time is not None and (not isinstance(self.time, datetime)
                                      or self.time.tzinfo is None):
            raise EnvelopeError("event.envelope", "time must be a timezone-aware datetime",
                                where="time")
        if self.time is not None and not MIN_YEAR <= self.time.year <= MAX_YEAR:
            raise EnvelopeError("event.envelope", f"time must be within the years {MIN_YEAR}-"
                                f"{MAX_YEAR}", where="time")
        if not _is_json_content_type(self.datacontenttype):
            raise EnvelopeError("event.content_type",
                                f"datacontenttype {self.datacontenttype[:60]!r} is not JSON",
                                where="datacontenttype")
        extensions = dict(self.extensions)
        for name, value in extensions.items():
            if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED:
                raise EnvelopeError("event.envelope", f"extension name {str(name)[:40]!r} must be "
                                    "lower-case letters/digits and not a core attribute",
                                    where="extensions")
            if not isinstance(value, str):
                raise EnvelopeError("event.envelope", f"extension {name} must be a string",
                                    where=f"extensions.{name}")
        object.__setattr__(self, "extensions", MappingProxyType(extensions))

    # -- encoding --------------------------------------------------------------------------

    def data_bytes(self) -> bytes | None:
        if self.data is None:
            return None
        return _DATA_JSON.encode(self.data).encode("utf-8")

    def to_record(self, key: bytes | str | None = None) -> KafkaRecord:
        """Binary content mode. `key` defaults to the `partitionkey` extension, if any."""
        if key is None:
            key = self.extensions.get("partitionkey")
        if isinstance(key, str):
            key = key.encode("utf-8")
        headers: list[tuple[str, bytes]] = []
        for name in _CORE:
            value = getattr(self, name)
            if value is None:
                continue
            text = _format_time(value) if name == "time" else value
            headers.append((HEADER_PREFIX + name, text.encode("utf-8")))
        for name, value in sorted(self.extensions.items()):
            headers.append((HEADER_PREFIX + name, value.encode("utf-8")))
        value_bytes = self.data_bytes()
        if value_bytes is not None:
            headers.append((CONTENT_TYPE_HEADER, self.datacontenttype.encode("utf-8")))
        return KafkaRecord(key=key, value=value_bytes, headers=tuple(headers))

    def to_structured(self) -> dict[str, Any]:
        """The event in the JSON event format (used in structured mode and for dead letters)."""
        out: dict[str, Any] = {"specversion": self.specversion, "id": self.id,
                               "source": self.source, "type": self.type}
        if self.time is not None:
            out["time"] = _format_time(self.time)
        for name in ("subject", "dataschema"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out.update(self.extensions)
        if self.data is not None:
            out["datacontenttype"] = self.datacontenttype
            out["data"] = self.data
        return out

    def to_structured_record(self, key: bytes | str | None = None) -> KafkaRecord:
        """Structured content mode: the whole event as JSON in the value."""
        binary = self.to_record(key)
        value = _DATA_JSON.encode(self.to_structured()).encode("utf-8")
        return KafkaRecord(key=binary.key, value=value,
                           headers=((CONTENT_TYPE_HEADER, STRUCTURED_CONTENT_TYPE.encode()),))

    # -- decoding --------------------------------------------------------------------------

    @classmethod
    def from_record(cls, record: RecordLike) -> CloudEvent:
        """Read a binary- or structured-mode record; raise `EnvelopeError` if it is not one."""
        headers: dict[str, str] = {}
        raw_headers = list(record.headers or ())
        if len(raw_headers) > MAX_HEADERS:
            raise EnvelopeError("event.too_large", f"the record has {len(raw_headers)} headers "
                                f"(at most {MAX_HEADERS})", where="headers")
        for raw_name, raw_value in raw_headers:
            if not isinstance(raw_name, str) or len(raw_name) > MAX_HEADER_NAME_CHARS:
                raise EnvelopeError("event.too_large", "a header name is too long (at most "
                                    f"{MAX_HEADER_NAME_CHARS} characters)", where="headers")
            name = raw_name.lower()
            if not (name.startswith(HEADER_PREFIX) or name == CONTENT_TYPE_HEADER):
                continue
            if name in headers:
                raise EnvelopeError("event.envelope", f"header {name} appears more than once",
                                    where=name)
            _check_size(name[len(HEADER_PREFIX):] if name != CONTENT_TYPE_HEADER else name,
                        len(raw_value or b""), name)
            try:
                headers[name] = bytes(raw_value or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise EnvelopeError("event.envelope", f"header {name} is not UTF-8",
                                    where=name) from None
        content_type = headers.pop(CONTENT_TYPE_HEADER, None)
        if content_type is not None and content_type.split(";", 1)[0].strip().lower() == \
                STRUCTURED_CONTENT_TYPE:
            return cls._from_structured(record.value)
        attributes = {name[len(HEADER_PREFIX):]: value for name, value in headers.items()}
        if not attributes:
            raise EnvelopeError("event.envelope", "record has no ce_ headers and is not a "
                                "structured CloudEvent", where="headers")
        data = None
        if record.value:
            if content_type is not None and not _is_json_content_type(content_type):
                raise EnvelopeError("event.content_type",
                                    f"content-type {content_type[:60]!r} is not JSON",
                                    where=CONTENT_TYPE_HEADER)
            data = _parse_json(record.value, "value")
        return cls._from_attributes(attributes, data, content_type or JSON_CONTENT_TYPE,
                                    where_prefix=HEADER_PREFIX)

    @classmethod
    def _from_structured(cls, value: bytes | None) -> CloudEvent:
        document = _parse_json(value or b"", "value")
        if not isinstance(document, dict):
            raise EnvelopeError("event.envelope", "a structured CloudEvent must be a JSON object",
                                where="value")
        if "data_base64" in document:
            raise EnvelopeError("event.content_type", "binary data (data_base64) is not "
                                "accepted; events carry JSON data", where="data_base64")
        data = document.pop("data", None)
        content_type = document.pop("datacontenttype", None) or JSON_CONTENT_TYPE
        if not isinstance(content_type, str) or not _is_json_content_type(content_type):
            raise EnvelopeError("event.content_type",
                                f"datacontenttype {str(content_type)[:60]!r} is not JSON",
                                where="datacontenttype")
        attributes: dict[str, str] = {}
        for name, value in document.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, int):
                value = str(value)
            if not isinstance(value, str):
                raise EnvelopeError("event.envelope", f"attribute {str(name)[:40]} must be a "
                                    "string, integer or boolean", where=str(name)[:40])
            attributes[name] = value
        return cls._from_attributes(attributes, data, content_type, where_prefix="")

    @classmethod
    def _from_attributes(cls, attributes: dict[str, str], data: Any, content_type: str, *,
                         where_prefix: str) -> CloudEvent:
        if len(attributes) > MAX_HEADERS:
            raise EnvelopeError("event.too_large", f"the event has {len(attributes)} attributes "
                                f"(at most {MAX_HEADERS})", where=where_prefix + "attributes")
        for name, value in attributes.items():
            if not isinstance(name, str) or len(name) > MAX_HEADER_NAME_CHARS:
                raise EnvelopeError("event.too_large", "an attribute name is too long",
                                    where=where_prefix + "attributes")
            if not isinstance(value, str):
                continue  # reported by the checks below
            _check_size(name, len(value.encode("utf-8", "surrogatepass")), where_prefix + name)
        for name in ("specversion", "id", "source", "type"):
            if not attributes.get(name):
                raise EnvelopeError("event.envelope", f"required attribute {name} is missing "
                                    "or empty", where=where_prefix + name)
        time_text = attributes.pop("time", None)
        moment = _parse_time(time_text, where_prefix + "time") if time_text is not None else None
        extensions = {name: value for name, value in attributes.items()
                      if name not in _CORE}
        return cls(id=attributes["id"], source=attributes["source"], type=attributes["type"],
                   specversion=attributes["specversion"], data=data, time=moment,
                   subject=attributes.get("subject"), dataschema=attributes.get("dataschema"),
                   datacontenttype=content_type, extensions=extensions)


def _check_size(attribute: str, size: int, where: str) -> None:
    """Refuse an attribute longer than its bound (`size`: its length in UTF-8 bytes)."""
    limit = MAX_ID_BYTES if attribute == "id" else MAX_ATTRIBUTE_BYTES
    if size > limit:
        raise EnvelopeError("event.too_large", f"{where} is too long (at most {limit} bytes)",
                            where=where)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(bytes(raw).decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise EnvelopeError("event.json", f"not UTF-8 at byte {exc.start}", where=where) from None
    except json.JSONDecodeError as exc:
        raise EnvelopeError("event.json", f"not JSON: {exc.msg} at line {exc.lineno} column "
                            f"{exc.colno}", where=where) from None
    except RecursionError:
        raise EnvelopeError("event.json", "JSON nested too deeply", where=where) from None
    except ValueError as exc:  # NaN/Infinity, integers beyond Python's digit limit
        raise EnvelopeError("event.json", f"not JSON: {str(exc)[:120]}", where=where) from None


def record_summary(record: RecordLike) -> dict[str, Any]:
    """A loggable description of a record that could not be decoded: sizes, never content."""
    out: dict[str, Any] = {
        "key_bytes": None if record.key is None else len(record.key),
        "value_bytes": None if record.value is None else len(record.value),
        "headers": sorted({name for name, _ in record.headers or ()}),
    }
    for attr in ("topic", "partition", "offset"):
        if hasattr(record, attr):
            out[attr] = getattr(record, attr)
    return out


__all__ = ["CloudEvent", "EnvelopeError", "KafkaRecord", "REASONS", "RecordLike",
           "record_summary"]
