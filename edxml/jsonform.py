"""The package model as plain JSON data, for build specs, events and `inspect --json`.

Keys are the model's snake_case names (`from` for From); dates are ISO `YYYY-MM-DD`, timestamps
ISO 8601 with an offset (Vietnam time when written), status codes their two digits. Unknown keys
are refused rather than ignored, so a vendor's typo does not silently drop a field.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import date, datetime
from pathlib import Path
from typing import Any

from edxml import values
from edxml.errors import EdxmlError
from edxml.model import (Attachment, DocumentPackage, Kind, MessageHeader, StatusCode,
                         StatusHeader, StatusPackage, TraceHeaderList, XmlField, xml_fields)

REASONS = {
    "edxml.spec.invalid": "a document description (JSON) has a wrong key, type or value",
}

_RENAMES = {"from_": "from"}


def _key(attr: str) -> str:
    return _RENAMES.get(attr, attr)


# A model class's fields never change: read them once per class, not once per object (every
# event and every package goes through here).
@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, XmlField], ...]:
    """(attribute, JSON key, XmlField) of a model class, in wire order."""
    return tuple((attr, _key(attr), xf) for attr, xf in xml_fields(cls))


@functools.cache
def _by_key(cls: type) -> dict[str, tuple[str, XmlField]]:
    """JSON key -> (attribute, XmlField), in wire order."""
    return {key: (attr, xf) for attr, key, xf in _fields(cls)}


def _value_to_json(kind: Kind, value: Any) -> Any:
    if kind is Kind.DATE:
        return value.isoformat()
    if kind is Kind.TIMESTAMP:
        return value.astimezone(values.VN_TZ).isoformat()
    if kind is Kind.STATUS:
        return value.value
    return value


def node_to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, key, xf in _fields(type(obj)):
        value = getattr(obj, attr)
        if value is None:
            continue
        if xf.kind is Kind.NODE:
            out[key] = node_to_dict(value)
        elif xf.kind is Kind.REPEAT or (xf.kind is Kind.LIST and xf.item_kind is Kind.NODE):
            out[key] = [node_to_dict(v) for v in value]
        elif xf.kind is Kind.LIST:
            out[key] = list(value)
        else:
            out[key] = _value_to_json(xf.kind, value)
    return out


def _fail(where: str, message: str) -> EdxmlError:
    return EdxmlError("edxml.spec.invalid", message, where=where)


def _value_from_json(kind: Kind, value: Any, where: str) -> Any:
    try:
        if kind is Kind.TEXT:
            if not isinstance(value, str):
                raise _fail(where, f"expected a string, got {type(value).__name__}")
            return value
        if kind is Kind.INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(where, f"expected an integer, got {value!r}")
            return value
        if kind is Kind.BOOL:
            if not isinstance(value, bool):
                raise _fail(where, f"expected true or false, got {value!r}")
            return value
        if kind is Kind.DATE:
            if not isinstance(value, str):
                raise _fail(where, "expected a date string YYYY-MM-DD")
            return date.fromisoformat(value)
        if kind is Kind.TIMESTAMP:
            if not isinstance(value, str):
                raise _fail(where, "expected an ISO 8601 timestamp with offset")
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise _fail(where, f"timestamp {value!r} has no UTC offset")
            return parsed
        if kind is Kind.STATUS:
            return StatusCode(value)
    except ValueError as exc:
        raise _fail(where, str(exc)) from None
    raise AssertionError(kind)


def node_from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise _fail(where, f"expected an object, got {type(data).__name__}")
    fields = _by_key(cls)
    unknown = sorted(set(data) - fields.keys())
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for key, raw in data.items():
        attr, xf = fields[key]
        path = f"{where}.{key}"
        if raw is None:
            continue
        if xf.kind is Kind.NODE:
            kwargs[attr] = node_from_dict(xf.node, raw, path)  # type: ignore[arg-type]
        elif xf.kind in (Kind.REPEAT, Kind.LIST):
            if not isinstance(raw, list):
                raise _fail(path, "expected a list")
            if xf.kind is Kind.REPEAT or xf.item_kind is Kind.NODE:
                kwargs[attr] = tuple(node_from_dict(xf.node, v, f"{path}[{i}]")  # type: ignore[arg-type]
                                     for i, v in enumerate(raw))
            else:
                kwargs[attr] = tuple(_value_from_json(Kind.TEXT, v, f"{path}[{i}]")
                                     for i, v in enumerate(raw))
        else:
            kwargs[attr] = _value_from_json(xf.kind, raw, path)
    return cls(**kwargs)


_ATTACHMENT_KEYS = {"content_id", "attachment_name", "content_type", "description", "path",
                    "size", "sha256"}


def attachment_to_dict(att: Attachment) -> dict[str, Any]:
    out = {k: getattr(att, k) for k in ("content_id", "attachment_name", "content_type",
                                         "description", "size", "sha256")}
    if att.path is not None:
        out["path"] = str(att.path)
    return {k: v for k, v in out.items() if v is not None}


def attachment_from_dict(data: Any, where: str, base_dir: Path | None = None) -> Attachment:
    if not isinstance(data, dict):
        raise _fail(where, "expected an object")
    unknown = sorted(set(data) - _ATTACHMENT_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}")
    for key in ("content_id", "attachment_name"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _fail(f"{where}.{key}", "a non-empty string is required")
    path = data.get("path")
    if path is not None:
        path = Path(path)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
    return Attachment(content_id=data["content_id"], attachment_name=data["attachment_name"],
                      content_type=data.get("content_type", "application/octet-stream"),
                      description=data.get("description"), path=path, size=data.get("size"),
                      sha256=data.get("sha256"))


def package_to_dict(pkg: DocumentPackage | StatusPackage) -> dict[str, Any]:
    if isinstance(pkg, StatusPackage):
        return {"kind": "status", "message_header": node_to_dict(pkg.message_header)}
    return {"kind": "edoc",
            "message_header": node_to_dict(pkg.message_header),
            "trace_header_list": node_to_dict(pkg.trace_header_list),
            "attachments": [attachment_to_dict(a) for a in pkg.attachments]}


def package_from_dict(data: Any, *, base_dir: Path | None = None) -> DocumentPackage | StatusPackage:
    """Build a package model from a JSON description (`kind`: `edoc` or `status`)."""
    if not isinstance(data, dict):
        raise _fail("$", "expected a JSON object")
    kind = data.get("kind", "edoc")
    if kind not in ("edoc", "status"):
        raise _fail("$.kind", f"kind must be 'edoc' or 'status', not {str(kind)[:40]!r}")
    allowed = {"kind", "message_header"} | ({"trace_header_list", "attachments"}
                                            if kind == "edoc" else set())
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail("$", f"unknown key(s) {', '.join(unknown)}")
    if kind == "status":
        return StatusPackage(node_from_dict(StatusHeader, data.get("message_header"),
                                            "$.message_header"))
    header = node_from_dict(MessageHeader, data.get("message_header"), "$.message_header")
    trace = node_from_dict(TraceHeaderList, data.get("trace_header_list", {}),
                           "$.trace_header_list")
    raw_atts = data.get("attachments", [])
    if not isinstance(raw_atts, list):
        raise _fail("$.attachments", "expected a list")
    atts = tuple(attachment_from_dict(a, f"$.attachments[{i}]", base_dir)
                 for i, a in enumerate(raw_atts))
    return DocumentPackage(header, trace, atts)


def without_file_facts(pkg: DocumentPackage | StatusPackage) -> DocumentPackage | StatusPackage:
    """The package with attachments' path/size/sha256 cleared (to compare what travels)."""
    if isinstance(pkg, StatusPackage):
        return pkg
    return dataclasses.replace(pkg, attachments=tuple(
        dataclasses.replace(a, path=None, size=None, sha256=None) for a in pkg.attachments))
