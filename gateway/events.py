"""The event contract with agency software: types, JSON Schemas, checks, and the events we emit.

Agencies publish `document.send` and `receipt.send`; `parse_incoming` turns one into an
`OutboundDocument` or `OutboundReceipt` (the model parts plus attachment references) or raises
`EventError` with a stable reason (`REASONS`). The gateway answers with `delivery.accepted` /
`delivery.failed`, publishes `document.arrived` / `receipt.arrived` for recipients, and writes
audit records and dead letters; the builders below make those CloudEvents.

Every type has a JSON Schema (draft 2020-12) in `schemas/events/<type>.schema.json`, written for
vendors (every field described). Each file is self-contained: the parts that mirror the package
model (`MessageHeader`, `StatusHeader`, …) sit in its `$defs` and are generated from
`edxml.model`'s field table by `model_defs`, so the schemas cannot drift from the model (a test
compares them; `python -m gateway.events sync-schemas` rewrites them after a model change).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib.resources
import json
import re
import sys
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from connectors.cloudevents import CloudEvent, KafkaRecord
from edxml import model
from edxml.errors import EdxmlError, GatewayError
from edxml.roles import with_role
from edxml.jsonform import node_from_dict, package_to_dict
from edxml.model import (Attachment, Business, DocumentPackage, Kind, MessageHeader, StatusCode,
                         StatusHeader, StatusPackage, TraceHeader, TraceHeaderList, xml_fields)
from edxml.values import VN_TZ, BusinessDocType, DocumentId, OrganId

# --- types ------------------------------------------------------------------------------------

DOCUMENT_SEND = "vn.gov.edoc.document.send.v1"
RECEIPT_SEND = "vn.gov.edoc.receipt.send.v1"
DELIVERY_ACCEPTED = "vn.gov.edoc.delivery.accepted.v1"
DELIVERY_FAILED = "vn.gov.edoc.delivery.failed.v1"
DOCUMENT_ARRIVED = "vn.gov.edoc.document.arrived.v1"
RECEIPT_ARRIVED = "vn.gov.edoc.receipt.arrived.v1"
AUDIT_RECORD = "vn.gov.edoc.audit.record.v1"
DEADLETTER = "vn.gov.edoc.deadletter.v1"
DEADLETTER_REPLAYED = "vn.gov.edoc.deadletter.replayed.v1"

EVENT_TYPES = (DOCUMENT_SEND, RECEIPT_SEND, DELIVERY_ACCEPTED, DELIVERY_FAILED,
               DOCUMENT_ARRIVED, RECEIPT_ARRIVED, AUDIT_RECORD, DEADLETTER, DEADLETTER_REPLAYED)
INCOMING_TYPES = (DOCUMENT_SEND, RECEIPT_SEND)

SECRECY_LEVELS = ("none", "mat", "toi_mat", "tuyet_mat")  # độ mật: none, Mật, Tối mật, Tuyệt mật
SUPPORTED_SCHEMES = ("file",)

REASONS: dict[str, str] = {
    "event.type": "the event's ce_type is not one the gateway accepts (document.send, "
                  "receipt.send)",
    "event.schema": "the event data does not match the JSON Schema of its type; the message "
                    "gives the JSON path and the rule",
    "event.secret_document": "the document is declared secret (secrecy other than \"none\"); "
                             "state-secret documents are never sent through the axis",
    "event.unknown_sender": "the sending agency (message_header.from.organ_id) is not one this "
                            "gateway is configured for",
    "event.agency_mismatch": "the ce_agency attribute names another agency than "
                             "message_header.from.organ_id",
    "event.unknown_recipient": "a recipient agency is not known to the axis",
    "event.recipients": "an agency is listed more than once among the recipients",
    "event.attachment_ref": "an attachment reference is unusable: unsupported URI scheme, not an "
                            "absolute local file:// path, or a content_id used twice",
    "event.business": "a revoke, update or replace lacks the document it targets or the details "
                      "its type needs",
    "event.status_direction": "a receipt goes the wrong way: status 13 is sent by the "
                              "document's sender to its recipients, every other code by a "
                              "recipient to the sender",
}

# Flows as audit records and dead letters name them (gateway.audit.FLOWS).
FLOWS = ("document", "receipt", "inbound-document", "inbound-receipt", "dlq", "gateway")
MAX_MESSAGE_CHARS = 2000

_ID_NAMESPACE = uuid.UUID("0b7f6a52-6d1e-5c55-9d0f-4f1d2f7d8e21")


class EventError(GatewayError):
    """An agency's event cannot be used as it is (permanent: the same event fails again)."""

    transient = False


def gateway_source(systemid: str) -> str:
    """The `source` of the gateway's events: one per deployment, not per instance, so an event
    re-emitted by another instance after a crash is the same event (same source and id)."""
    return f"urn:edoc:gateway:{systemid}"


# --- schemas ------------------------------------------------------------------------------------

SCHEMA_ID_PREFIX = "urn:edoc:schema:"


def schema_id(event_type: str) -> str:
    """The schema's `$id`, also sent as the `dataschema` attribute of the gateway's events."""
    return SCHEMA_ID_PREFIX + event_type


def schema_file_name(event_type: str) -> str:
    return f"{event_type}.schema.json"


def schema_dir() -> Any:
    """`schemas/events/` of a source checkout, else the copy installed as package data."""
    here = Path(__file__).resolve().parent.parent / "schemas" / "events"
    if here.is_dir():
        return here
    return importlib.resources.files("schemas") / "events"


@functools.cache
def load_schemas() -> Mapping[str, Mapping[str, Any]]:
    """Every event type's JSON Schema, read once."""
    base = schema_dir()
    out = {}
    for event_type in EVENT_TYPES:
        text = (base / schema_file_name(event_type)).read_text(encoding="utf-8")
        out[event_type] = json.loads(text)
    return MappingProxyType(out)


@functools.cache
def _validator(event_type: str) -> Draft202012Validator:
    """The reference validator: it decides, and words every refusal (`best_match`)."""
    return Draft202012Validator(load_schemas()[event_type])


# The types agencies send are checked on every record, so they get a compiled validator
# (fastjsonschema generates one Python function per schema: 13 µs instead of 234 µs for the
# benchmark's document.send, bench/event_bench.py). It only ever lets through what the
# reference lets through: on JSON values it is as strict or stricter (`$` in a pattern means
# the very end, `1.0` is not an integer), and whatever it refuses is decided again, and worded,
# by the reference, so the verdict, reason, message and `where` stay the reference's
# (tests/gateway/test_event_validation.py compares both on generated events). Formats are not
# asserted by the reference, so not here either; defaults are never filled in (the data is
# not changed). The gateway's own event types keep the reference alone: the dead letter's
# `const: true` would accept 1 in a compiled check.
_FAST_TYPES = (DOCUMENT_SEND, RECEIPT_SEND)


@functools.cache
def _fast_validator(event_type: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(load_schemas()[event_type], use_default=False,
                                  use_formats=False)


def prepare_validators() -> None:
    """Read the schemas and compile the validators now (at start), not on the first event."""
    for event_type in EVENT_TYPES:
        _validator(event_type)
    for event_type in _FAST_TYPES:
        _fast_validator(event_type)


def _fast_valid(event_type: str, data: Any) -> bool:
    """True when the compiled validator accepts `data` (a JSON value, as decoded from a
    record); False means "ask the reference", never "invalid"."""
    if event_type not in _FAST_TYPES:
        return False
    check = _fast_validator(event_type)  # a schema it cannot compile is a bug: raise
    try:
        check(data)
    except Exception:  # noqa: BLE001 - any refusal or surprise: the reference decides
        return False
    return True


def validate_data(event_type: str, data: Any) -> None:
    """Check `data` (a JSON value) against the type's schema; raise `EventError`
    (`event.type`/`event.schema`) naming the JSON path of the most relevant error, never
    quoting the data."""
    if event_type not in EVENT_TYPES:
        raise EventError("event.type", f"unknown event type {event_type[:100]!r}", where="type")
    if _fast_valid(event_type, data):
        return
    error = best_match(_validator(event_type).iter_errors(data))
    if error is not None:
        raise _schema_error(error)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(str(part)):
            out += f".{part}"
        else:
            out += f"[{json.dumps(str(part)[:40], ensure_ascii=False)}]"
    return out


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}


def _words(types: Any) -> str:
    names = {"object": "an object", "array": "an array", "string": "a string",
             "boolean": "a boolean", "integer": "an integer", "number": "a number",
             "null": "null"}
    if isinstance(types, str):
        types = [types]
    return " or ".join(names.get(t, t) for t in types)


def _schema_error(error: ValidationError) -> EventError:
    path = _json_path(error.absolute_path)
    rule, expected, inst = error.validator, error.validator_value, error.instance
    if rule == "required":
        missing = [k for k in expected if isinstance(inst, dict) and k not in inst]
        message = f"missing required key {missing[0] if missing else expected[0]!r}"
    elif rule in ("additionalProperties", "unevaluatedProperties"):
        known = set(error.schema.get("properties", {}))
        extra = sorted(str(k)[:40] for k in inst if k not in known) if isinstance(inst, dict) else []
        message = (f"unknown key(s) {', '.join(repr(k) for k in extra[:5])}; known: "
                   f"{', '.join(sorted(known))}")
    elif rule == "type":
        message = f"expected {_words(expected)}, got {_JSON_TYPES.get(type(inst), 'a value')}"
    elif rule == "enum":
        message = "must be one of " + ", ".join(json.dumps(v, ensure_ascii=False)
                                                for v in expected)
    elif rule == "const":
        message = f"must be {json.dumps(expected, ensure_ascii=False)}"
    elif rule == "pattern":
        message = f"does not have the expected form (pattern {expected})"
    elif rule in ("minLength", "minItems", "minProperties"):
        message = "must not be empty" if expected == 1 else f"must have at least {expected} items"
    elif rule in ("maxLength", "maxItems"):
        message = f"is too long (at most {expected})"
    elif rule == "uniqueItems":
        message = "has repeated items"
    elif rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
                 "exclusiveMaximum": "less than"}[rule]
        message = f"must be {words} {expected}"
    elif rule in ("oneOf", "anyOf"):
        message = "matches none of the allowed forms"
    elif rule == "not":
        message = "has a combination of keys that is not allowed"
    else:
        message = f"fails the {rule} rule"
    return EventError("event.schema", f"{path}: {message}", where=path)


# --- model parts of the schemas, generated from edxml.model ------------------------------------

_DESCRIPTIONS: dict[str, str] = {
    # classes
    "Organization": "An agency (From / To). Only organ_id is reliably filled in real traffic.",
    "Code": "Số and ký hiệu of the document.",
    "PromulgationInfo": "Where and when the document was issued.",
    "DocumentType": "The administrative document type (Nghị định 30/2020 Điều 7). Type and "
                    "type_detail are kept as sent: their code list is not settled between "
                    "producers; type_name is the label people read (e.g. \"Công văn\").",
    "SignerInfo": "Who signed the document on paper/digitally (not the package signature).",
    "OtherInfo": "Other metadata of the document.",
    "ResponseFor": "A document this one answers (in a document), or the document a receipt is "
                   "about (in a receipt).",
    "MessageHeader": "MessageHeader of a document package: the document's metadata, keys in "
                     "edXML order (edxml.md §2).",
    "TraceHeader": "One hop: the system that handled the package, and when.",
    "BusinessStaffInfo": "The clerk behind a business flow.",
    "Receiver": "A recipient added or removed by an update.",
    "BusinessDocumentInfo": "What an update (business_doc_type 2) changes.",
    "ReplacementInfo": "Replace (business_doc_type 3): which document is replaced, for which "
                       "agencies.",
    "Business": "The business flow (the misspelt edXML element Bussiness): new, revoke, update "
                "or replace. Absent means a new document.",
    "TraceHeaderList": "Hops the package went through, and its business flow.",
    "StaffInfo": "The person who changed the status.",
    "StatusHeader": "MessageHeader of a status package (a receipt, edxml.md §1.2).",
    # fields, by Class.field, then by field
    "organ_id": "OrganId (mã định danh) of the agency, e.g. 000.00.00.H55 or H55.242.",
    "Organization.organization_in_charge": "The agency's managing body.",
    "Organization.organ_name": "The agency's name.",
    "Organization.organ_add": "The agency's address.",
    "email": "E-mail address.",
    "telephone": "Telephone number.",
    "fax": "Fax number.",
    "website": "Web site.",
    "MessageHeader.from": "The agency that issues and sends the document.",
    "MessageHeader.to": "The recipient agencies; the axis routes by their organ_id.",
    "MessageHeader.document_id": "DocumentId: {sender OrganId},{yyyy/MM/dd},{số}/{ký hiệu}, e.g. "
                                 "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT. Leave it out and the "
                                 "gateway composes it from from.organ_id, the promulgation date "
                                 "and the code.",
    "MessageHeader.code": "Số and ký hiệu.",
    "code_number": "Số (number), e.g. 7816 or 69/2024 for a legal normative document.",
    "code_notation": "Ký hiệu, e.g. VPCP-TTĐT or QĐ-UBND.",
    "MessageHeader.promulgation_info": "Place and date of issue.",
    "place": "Place of issue (địa danh).",
    "promulgation_date": "Date of issue (YYYY-MM-DD).",
    "MessageHeader.document_type": "Document type.",
    "type": "Document type code (integer) as the sender's system numbers it.",
    "type_detail": "Document type detail code (integer).",
    "type_name": "Document type label, e.g. Công văn, Quyết định.",
    "subject": "Trích yếu: what the document is about.",
    "content": "A summary of the content.",
    "MessageHeader.signer_info": "Who signed the document.",
    "competence": "Quyền hạn ký: KT., TL., TM., …",
    "position": "Position (chức vụ) of the signer.",
    "full_name": "Full name of the signer.",
    "due_date": "Hạn xử lý: the date by which the recipients should act (YYYY-MM-DD).",
    "MessageHeader.other_info": "Other metadata.",
    "priority": "Độ khẩn: 0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc, 4 hỏa tốc hẹn giờ.",
    "sphere_of_promulgation": "Phạm vi ban hành.",
    "typer_notation": "Ký hiệu người đánh máy.",
    "promulgation_amount": "Number of copies issued.",
    "page_amount": "Number of pages.",
    "reply_fors": "Documents this one replies to, as text.",
    "direction": "Chỉ đạo: true if the document gives direction.",
    "reference_codes": "Reference codes, as text.",
    "appendixes": "Names of the appendixes.",
    "MessageHeader.response_for": "Documents this one answers (phúc đáp).",
    "ResponseFor.code": "Số/ký hiệu of that document in one string, e.g. 7816/VPCP-TTĐT.",
    "ResponseFor.promulgation_date": "Its date of issue (YYYY-MM-DD).",
    "ResponseFor.document_id": "Its DocumentId.",
    "ResponseFor.organ_id": "OrganId of that document's sender.",
    "steering_type": "Steering type as the sender numbers it (values differ between producers).",
    "response_for_task": "Task codes this document reports on.",
    "application_type": "Application type; one-stop-shop systems write MCDT_DT.",
    "to_places": "Nơi nhận as text, including places that are not recipients.",
    "TraceHeader.timestamp": "When that system handled the package (ISO 8601 with offset).",
    "Business.document_id": "DocumentId of the document this revoke/update/replace is about.",
    "business_doc_type": "0 new, 1 revoke (thu hồi), 2 update (cập nhật), 3 replace (thay thế).",
    "business_doc_reason": "Why the document is revoked, updated or replaced.",
    "paper": "1 if a paper copy is also sent, 0 if not.",
    "Business.staff_info": "The clerk handling the flow.",
    "department": "Department (phòng ban).",
    "department_id": "Department identifier.",
    "staff": "Name of the person.",
    "staff_id": "Identifier of the person.",
    "mobile": "Mobile telephone number.",
    "business_document_info": "Update only: what changed.",
    "document_info": "1 if the metadata changed, else 0.",
    "document_receiver": "1 if the recipient list changed, else 0.",
    "receiver_list": "Recipients added or removed.",
    "receiver_type": "0 removed from the recipients, 1 added.",
    "replacement_info_list": "Replace only: the replaced documents.",
    "ReplacementInfo.document_id": "DocumentId of the replaced document.",
    "organ_id_list": "Agencies the replacement is for.",
    "trace_headers": "Hops, oldest first; the axis adds its own.",
    "TraceHeaderList.business": "The business flow.",
    "StatusHeader.from": "The agency sending the receipt: a recipient of the document (codes "
                         "01-06, 15, 16) or its sender (code 13).",
    "StatusHeader.response_for": "The document the receipt is about: organ_id is the document's "
                                 "sender, document_id its DocumentId.",
    "StatusHeader.staff_info": "The person who changed the status.",
    "status_code": "01 đã đến, 02 từ chối, 03 tiếp nhận, 04 phân công, 05 đang xử lý, "
                   "06 hoàn thành, 13 yêu cầu lấy lại, 15 đồng ý cập nhật/lấy lại, "
                   "16 từ chối cập nhật/lấy lại.",
    "description": "Free text: why, or what happened.",
    "StatusHeader.timestamp": "When the status changed (ISO 8601 with offset).",
}

_CLASS_NAMES = {"from_": "from"}
_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
_TIMESTAMP_PATTERN = (r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                      r"(Z|z|[+-]\d{2}:\d{2})$")
# Which model classes each schema embeds, how strictly, and per-file adjustments:
# (roots, strict, {"Class.field": required?}). A status code, a business flow's type and a
# receiver's added/removed flag have model defaults, but a sender must say them.
_MODEL_PARTS: dict[str, tuple[tuple[type, ...], bool, dict[str, bool]]] = {
    DOCUMENT_SEND: ((MessageHeader, Business), True, {"Business.business_doc_type": True,
                                                      "Receiver.receiver_type": True}),
    RECEIPT_SEND: ((StatusHeader,), True, {"StatusHeader.timestamp": False,
                                          "StatusHeader.status_code": True}),
    DOCUMENT_ARRIVED: ((MessageHeader, TraceHeaderList), False, {}),
    RECEIPT_ARRIVED: ((StatusHeader,), False, {}),
}


def _describe(cls: type, key: str) -> str | None:
    return _DESCRIPTIONS.get(f"{cls.__name__}.{key}") or _DESCRIPTIONS.get(key)


# Bounds on what an agency may send (strict schemas only: what arrives from the axis is relayed
# as read). Every text has a length, every list a count, every date a year in 1900-2200: an
# event is checked against them before any work is done for it.
MAX_TEXT_CHARS = 1000
_MAX_CHARS: dict[str, int] = {
    "organ_id": 64, "document_id": 300, "code_number": 64, "code_notation": 100, "code": 200,
    "subject": 4000, "content": 20000, "description": 4000, "business_doc_reason": 4000,
    "reply_fors": 4000, "reference_codes": 4000, "to_places": 500, "appendixes": 500,
}
MAX_LIST_ITEMS = 1000
_YEAR = r"(19\d{2}|2[01]\d{2}|2200)"
_STRICT_DATE_PATTERN = rf"^{_YEAR}-\d{{2}}-\d{{2}}$"
_STRICT_TIMESTAMP_PATTERN = (rf"^{_YEAR}-\d{{2}}-\d{{2}}[T ]\d{{2}}:\d{{2}}(:\d{{2}}(\.\d{{1,6}})?)?"
                             r"(Z|z|[+-]\d{2}:\d{2})$")


def _value_schema(xf: model.XmlField, kind: Kind, strict: bool,
                  key: str = "") -> dict[str, Any]:
    if kind is Kind.TEXT:
        if strict:
            return {"type": "string", "maxLength": _MAX_CHARS.get(key, MAX_TEXT_CHARS)}
        return {"type": "string"}
    if kind is Kind.INT:
        if strict and xf.allowed is not None:  # what arrives is relayed as read
            return {"type": "integer", "minimum": xf.allowed.start,
                    "maximum": xf.allowed.stop - 1}
        return {"type": "integer"}
    if kind is Kind.BOOL:
        return {"type": "boolean"}
    if kind is Kind.DATE:
        return {"type": "string", "format": "date",
                "pattern": _STRICT_DATE_PATTERN if strict else _DATE_PATTERN}
    if kind is Kind.TIMESTAMP:
        return {"type": "string", "format": "date-time",
                "pattern": _STRICT_TIMESTAMP_PATTERN if strict else _TIMESTAMP_PATTERN}
    if kind is Kind.STATUS:
        return {"type": "string", "enum": [c.value for c in StatusCode]}
    raise AssertionError(kind)


def model_defs(event_type: str) -> dict[str, dict[str, Any]]:
    """The `$defs` entries mirroring the package model for one event type's schema.

    Strict schemas (what agencies send) require what the writer requires: a mandatory node, and
    a mandatory value whose model default is empty; a mandatory value with a real default
    (Priority 0, BussinessDocType 0) may be left out. Lenient ones (what arrives) require nothing
    beyond the types, since other producers' packages are relayed as read.
    """
    roots, strict, adjust = _MODEL_PARTS[event_type]
    defs: dict[str, dict[str, Any]] = {}
    pending = list(roots)
    while pending:
        cls = pending.pop(0)
        if cls.__name__ in defs:
            continue
        properties: dict[str, Any] = {}
        required: list[str] = []
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for attr, xf in xml_fields(cls):
            key = _CLASS_NAMES.get(attr, attr)
            if xf.kind in (Kind.NODE, Kind.REPEAT) or (xf.kind is Kind.LIST
                                                        and xf.item_kind is Kind.NODE):
                assert xf.node is not None
                pending.append(xf.node)
                item: dict[str, Any] = {"$ref": f"#/$defs/{xf.node.__name__}"}
            else:
                item = _value_schema(xf, xf.item_kind if xf.kind is Kind.LIST else xf.kind,
                                     strict, key)
            mandatory = xf.required and (xf.kind is Kind.NODE
                                         or defaults[attr] in (None, "", ()))
            is_required = adjust.get(f"{cls.__name__}.{key}", strict and mandatory)
            if xf.kind in (Kind.REPEAT, Kind.LIST):
                prop: dict[str, Any] = {"type": "array", "items": item}
                if is_required:
                    prop["minItems"] = 1
                if strict:
                    prop["maxItems"] = MAX_LIST_ITEMS
            else:
                prop = dict(item)
                if is_required and xf.kind is Kind.TEXT:
                    prop["minLength"] = 1
            description = _describe(cls, key)
            if description:
                prop = {"description": description, **prop}
            properties[key] = prop
            if is_required:
                required.append(key)
        entry: dict[str, Any] = {"type": "object"}
        if _DESCRIPTIONS.get(cls.__name__):
            entry = {"description": _DESCRIPTIONS[cls.__name__], **entry}
        entry["properties"] = properties
        if required:
            entry["required"] = required
        entry["additionalProperties"] = False
        defs[cls.__name__] = entry
    return defs


def sync_schema_files(directory: Path | None = None) -> list[Path]:
    """Rewrite the model `$defs` of the schema files from the model; the files changed."""
    directory = Path(directory) if directory is not None else Path(str(schema_dir()))
    changed = []
    for event_type in _MODEL_PARTS:
        path = directory / schema_file_name(event_type)
        document = json.loads(path.read_text(encoding="utf-8"))
        defs = dict(document.get("$defs", {}))
        defs.update(model_defs(event_type))
        document["$defs"] = defs
        text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


# --- what agencies send -------------------------------------------------------------------------

@dataclass(frozen=True)
class AttachmentRef:
    """A `document.send` attachment: the manifest entry and where its bytes are (claim check)."""

    content_id: str
    attachment_name: str
    content_type: str
    uri: str
    sha256: str
    size: int
    description: str | None = None
    role: str | None = None  # digitised, original, appendix, other: carried in the Description

    def to_attachment(self, path: Path) -> Attachment:
        """The model attachment, its bytes at `path` (the file the store resolved)."""
        return Attachment(content_id=self.content_id, attachment_name=self.attachment_name,
                          content_type=self.content_type,
                          description=with_role(self.role, self.description),
                          path=Path(path), size=self.size, sha256=self.sha256)


@dataclass(frozen=True)
class OutboundDocument:
    """A checked `document.send`: what to build, sign and send, for whom."""

    event_id: str
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    message_header: MessageHeader
    business: Business | None
    attachments: tuple[AttachmentRef, ...]
    secrecy: str = "none"

    flow = "document"

    @property
    def key(self) -> str:
        """The record key of everything about this document."""
        return self.document_id

    @property
    def notation(self) -> str:
        """Số/ký hiệu as the axis lists it ("CodeNumber/CodeNotation")."""
        code = self.message_header.code
        return "/".join(p for p in (code.code_number, code.code_notation) if p)

    @property
    def title(self) -> str:
        return self.message_header.subject

    def package(self, paths: Sequence[Path], *, trace_organ_id: str,
                now: datetime) -> DocumentPackage:
        """The package model: attachments' bytes at `paths` (in `attachments` order), and our
        own TraceHeader (`trace_organ_id` at `now`)."""
        if len(paths) != len(self.attachments):
            raise ValueError(f"{len(paths)} paths for {len(self.attachments)} attachments")
        trace = TraceHeaderList(trace_headers=(TraceHeader(trace_organ_id, now),),
                                business=self.business)
        return DocumentPackage(self.message_header, trace,
                               tuple(ref.to_attachment(p) for ref, p in zip(self.attachments, paths)))

    def package_dict(self, paths: Sequence[Path], *, trace_organ_id: str,
                     now: datetime) -> dict[str, Any]:
        """`package()` in its JSON form (`edxml.jsonform`), for a worker process."""
        return package_to_dict(self.package(paths, trace_organ_id=trace_organ_id, now=now))


@dataclass(frozen=True)
class OutboundReceipt:
    """A checked `receipt.send`: the status package to send and to whom."""

    event_id: str
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    status_header: StatusHeader

    flow = "receipt"
    attachments: tuple[AttachmentRef, ...] = ()

    @property
    def key(self) -> str:
        return self.document_id

    @property
    def status_code(self) -> StatusCode:
        return self.status_header.status_code

    @property
    def notation(self) -> str | None:
        return self.status_header.response_for.code

    @property
    def title(self) -> str | None:
        return self.status_header.description

    def package(self, paths: Sequence[Path] = (), *, trace_organ_id: str | None = None,
                now: datetime | None = None) -> StatusPackage:
        """The status package (status packages carry no trace and no attachments)."""
        return StatusPackage(self.status_header)

    def package_dict(self, paths: Sequence[Path] = (), *, trace_organ_id: str | None = None,
                     now: datetime | None = None) -> dict[str, Any]:
        return package_to_dict(self.package())


Outbound = OutboundDocument | OutboundReceipt


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_incoming(ce: CloudEvent, *, agencies: Collection[str],
                   known_recipient: Callable[[str], bool] | None = None,
                   clock: Callable[[], datetime] = _utcnow,
                   schemes: Collection[str] = SUPPORTED_SCHEMES) -> Outbound:
    """Check an agency's event (schema, then business rules) and return what to send.

    `agencies` are the configured OrganIds (senders); `known_recipient`, if given, says whether
    the axis knows an agency. A receipt without a timestamp gets the event's time (else `clock()`),
    so building it again after a crash gives the same package.
    """
    if ce.type == DOCUMENT_SEND:
        return _parse_document(ce, agencies, known_recipient, schemes)
    if ce.type == RECEIPT_SEND:
        return _parse_receipt(ce, agencies, known_recipient, clock)
    raise EventError("event.type", f"{ce.type[:100]!r} is not an event the gateway accepts "
                     f"(expected {DOCUMENT_SEND} or {RECEIPT_SEND})", where="type")


def _model(cls: type, data: Any, where: str) -> Any:
    try:
        return node_from_dict(cls, data, where)
    except EdxmlError as exc:  # keep the model's own reason (edxml.spec.invalid)
        raise EventError(exc.reason, exc.message, where=exc.where) from None


def _check_sender(ce: CloudEvent, sender: str, agencies: Collection[str], where: str) -> None:
    agency = ce.extensions.get("agency")
    if agency is not None and agency != sender:
        raise EventError("event.agency_mismatch", f"ce_agency is {agency[:64]!r} but "
                         f"{where} is {sender[:64]!r}", where="agency")
    if sender not in agencies:
        raise EventError("event.unknown_sender", f"{sender[:64]!r} is not an agency this "
                         "gateway sends for", where=where)


def _check_recipients(recipients: Sequence[str], paths: Sequence[str],
                      known_recipient: Callable[[str], bool] | None) -> None:
    seen: set[str] = set()
    for organ_id, where in zip(recipients, paths):
        try:
            OrganId.parse(organ_id, strict=True)
        except EdxmlError as exc:
            raise EventError(exc.reason, exc.message, where=where) from None
        if organ_id in seen:
            raise EventError("event.recipients", f"{organ_id} is listed more than once",
                             where=where)
        seen.add(organ_id)
    if known_recipient is not None:
        unknown = [r for r in recipients if not known_recipient(r)]
        if unknown:
            raise EventError("event.unknown_recipient", f"not known to the axis: "
                             f"{', '.join(unknown[:5])}" + (" …" if len(unknown) > 5 else ""),
                             where="$.message_header.to")


def _parse_document(ce: CloudEvent, agencies: Collection[str],
                    known_recipient: Callable[[str], bool] | None,
                    schemes: Collection[str]) -> OutboundDocument:
    data = ce.data
    # Fail closed, before anything else reads (or quotes) the document: any secrecy other than
    # "none", even a misspelt one, refuses it.
    if isinstance(data, dict) and "secrecy" in data and data["secrecy"] != "none":
        raise EventError("event.secret_document", "the document is declared secret; "
                         "state-secret documents (Mật, Tối mật, Tuyệt mật) are never sent "
                         "through the axis", where="$.secrecy")
    validate_data(DOCUMENT_SEND, data)
    header: MessageHeader = _model(MessageHeader, data["message_header"], "$.message_header")
    business: Business | None = (_model(Business, data["business"], "$.business")
                                 if "business" in data else None)
    sender = header.from_.organ_id
    _check_sender(ce, sender, agencies, "$.message_header.from.organ_id")
    recipients = tuple(o.organ_id for o in header.to)
    _check_recipients(recipients, [f"$.message_header.to[{i}].organ_id"
                                   for i in range(len(recipients))], known_recipient)
    refs = tuple(_attachment_ref(a, f"$.attachments[{i}]", schemes)
                 for i, a in enumerate(data.get("attachments", [])))
    content_ids: set[str] = set()
    for i, ref in enumerate(refs):
        if ref.content_id in content_ids:
            raise EventError("event.attachment_ref", f"content_id {ref.content_id[:64]!r} is "
                             "used twice", where=f"$.attachments[{i}].content_id")
        content_ids.add(ref.content_id)
    if business is not None:
        _check_business(business)
    document_id = header.document_id
    if document_id is None:
        try:
            composed = DocumentId.compose(sender, header.promulgation_info.promulgation_date,
                                          header.code.code_number, header.code.code_notation)
        except EdxmlError as exc:
            raise EventError(exc.reason, f"cannot compose the DocumentId: {exc.message}",
                             where="$.message_header.document_id") from None
        document_id = composed.raw
        header = dataclasses.replace(header, document_id=document_id)
    return OutboundDocument(event_id=ce.id, sender=sender, recipients=recipients,
                            document_id=document_id, message_header=header, business=business,
                            attachments=refs, secrecy=data["secrecy"])


def _attachment_ref(data: dict[str, Any], where: str, schemes: Collection[str]) -> AttachmentRef:
    uri = data["uri"]
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise EventError("event.attachment_ref", f"URI scheme {scheme[:20]!r} is not supported "
                         f"(use {', '.join(s + '://' for s in schemes)})", where=f"{where}.uri")
    if scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/") or \
                parts.query or parts.fragment or "\x00" in path:
            raise EventError("event.attachment_ref", "a file:// URI must hold an absolute local "
                             "path (file:///…), without host, query or fragment",
                             where=f"{where}.uri")
    return AttachmentRef(content_id=data["content_id"], attachment_name=data["attachment_name"],
                         content_type=data["content_type"], uri=uri,
                         sha256=data["sha256"].lower(), size=data["size"],
                         description=data.get("description"), role=data.get("role"))


def _check_business(business: Business) -> None:
    kind = BusinessDocType(business.business_doc_type)
    if kind is BusinessDocType.NEW:
        return
    if not business.document_id:
        raise EventError("event.business", f"a {kind.name.lower()} (business_doc_type "
                         f"{kind.value}) must name the document it targets in "
                         "business.document_id", where="$.business.document_id")
    if kind is BusinessDocType.UPDATE and business.business_document_info is None:
        raise EventError("event.business", "an update (business_doc_type 2) must say what "
                         "changes in business.business_document_info",
                         where="$.business.business_document_info")
    if kind is BusinessDocType.REPLACE and not business.replacement_info_list:
        raise EventError("event.business", "a replace (business_doc_type 3) must list the "
                         "replaced documents in business.replacement_info_list",
                         where="$.business.replacement_info_list")


def _parse_receipt(ce: CloudEvent, agencies: Collection[str],
                   known_recipient: Callable[[str], bool] | None,
                   clock: Callable[[], datetime]) -> OutboundReceipt:
    data = ce.data
    validate_data(RECEIPT_SEND, data)
    header: StatusHeader = _model(StatusHeader, data["message_header"], "$.message_header")
    sender = header.from_.organ_id
    _check_sender(ce, sender, agencies, "$.message_header.from.organ_id")
    original_sender = header.response_for.organ_id
    code = header.status_code
    if code.from_receiver:
        if sender == original_sender:
            raise EventError("event.status_direction", f"status {code.value} is sent by a "
                             "recipient of the document to its sender, but from.organ_id is "
                             "the sender (response_for.organ_id)",
                             where="$.message_header.from.organ_id")
        recipients: tuple[str, ...] = (original_sender,)
        given = data.get("recipients")
        if given is not None and list(given) != [original_sender]:
            raise EventError("event.status_direction", f"status {code.value} goes to the "
                             f"document's sender {original_sender} only; leave recipients out",
                             where="$.recipients")
        paths = ["$.message_header.response_for.organ_id"]
    else:
        if sender != original_sender:
            raise EventError("event.status_direction", "status 13 (yêu cầu lấy lại) is sent by "
                             "the document's sender: from.organ_id must equal "
                             "response_for.organ_id", where="$.message_header.from.organ_id")
        recipients = tuple(data["recipients"])
        paths = [f"$.recipients[{i}]" for i in range(len(recipients))]
    _check_recipients(recipients, paths, known_recipient)
    if header.timestamp is None:
        header = dataclasses.replace(header, timestamp=ce.time or clock())
    document_id = header.response_for.document_id
    assert document_id  # required by the schema
    return OutboundReceipt(event_id=ce.id, sender=sender, recipients=recipients,
                           document_id=document_id, status_header=header)


def incoming_facts(ce: CloudEvent) -> dict[str, Any]:
    """Best-effort sender, recipients and DocumentId of an agency's event that failed its checks
    (for the delivery.failed answer); never raises, never returns document content."""
    data = ce.data if isinstance(ce.data, dict) else {}
    header = data.get("message_header") if isinstance(data.get("message_header"), dict) else {}
    sender = ce.extensions.get("agency")
    frm = header.get("from")
    if sender is None and isinstance(frm, dict) and isinstance(frm.get("organ_id"), str):
        sender = frm["organ_id"][:64]
    facts: dict[str, Any] = {"flow": "receipt" if ce.type == RECEIPT_SEND else "document",
                             "sender": sender, "recipients": [], "document_id": None}
    if ce.type == DOCUMENT_SEND and data.get("secrecy", "none") != "none":
        return facts  # a secret document: nothing about it is repeated anywhere
    if ce.type == RECEIPT_SEND:
        rf = header.get("response_for")
        if isinstance(rf, dict):
            if isinstance(rf.get("document_id"), str):
                facts["document_id"] = rf["document_id"][:300]
            if isinstance(rf.get("organ_id"), str) and header.get("status_code") != "13":
                facts["recipients"] = [rf["organ_id"][:64]]
        if isinstance(data.get("recipients"), list):
            facts["recipients"] = [r[:64] for r in data["recipients"][:100] if isinstance(r, str)]
    else:
        to = header.get("to")
        if isinstance(to, list):
            facts["recipients"] = [t["organ_id"][:64] for t in to[:100]
                                   if isinstance(t, dict) and isinstance(t.get("organ_id"), str)]
        if isinstance(header.get("document_id"), str):
            facts["document_id"] = header["document_id"][:300]
    return facts


# --- what the gateway emits ---------------------------------------------------------------------

def _derived_id(*parts: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)))


def _event(event_type: str, *, id: str, source: str, data: dict[str, Any], time: datetime | None,
           subject: str | None, agency: str | None) -> CloudEvent:
    return CloudEvent(id=id, source=source, type=event_type, data=data, time=time or _utcnow(),
                      subject=subject or None, dataschema=schema_id(event_type),
                      extensions={"agency": agency} if agency else {})


def delivery_accepted(event: CloudEvent, item: Outbound, *, axis_doc_id: str,
                      package_sha256: str, attempts: int, source: str,
                      time: datetime | None = None,
                      attachment_rules: Mapping[str, Any] | None = None) -> CloudEvent:
    """The axis took the package: tell the sending agency (publish keyed by `item.key`).

    The id is derived from the agency's event id, so answering again (after a crash, from the
    ledger) repeats the same event.
    """
    data = {"event_id": event.id, "flow": item.flow, "sender": item.sender,
            "recipients": list(item.recipients), "document_id": item.document_id,
            "axis_doc_id": axis_doc_id, "package_sha256": package_sha256, "attempts": attempts}
    if attachment_rules:
        data["attachment_rules"] = dict(attachment_rules)
    return _event(DELIVERY_ACCEPTED, id=_derived_id("delivery.accepted", event.id), source=source,
                  data=data, time=time, subject=item.document_id, agency=item.sender)


def delivery_failed(event: CloudEvent, item: Outbound | None, *, reason: str, message: str,
                    attempts: int, source: str, time: datetime | None = None,
                    axis_doc_id: str | None = None,
                    package_sha256: str | None = None,
                    sender: str | None = None) -> CloudEvent:
    """The event will not be delivered: tell the sending agency why.

    `item` is None when the event failed its own checks; sender, recipients and DocumentId are
    then taken from the event as far as they can be (never for a secret document). `sender`,
    when given, is the agency that really published the event (its topic's agency), which
    wins over what the event claims.
    """
    if item is not None:
        facts = {"flow": item.flow, "sender": item.sender, "recipients": list(item.recipients),
                 "document_id": item.document_id}
    else:
        facts = incoming_facts(event)
    if sender is not None:
        facts = {**facts, "sender": sender}
    data: dict[str, Any] = {"event_id": event.id, **facts, "reason": reason,
                            "message": message[:MAX_MESSAGE_CHARS], "attempts": attempts}
    if axis_doc_id is not None:
        data["axis_doc_id"] = axis_doc_id
    if package_sha256 is not None:
        data["package_sha256"] = package_sha256
    return _event(DELIVERY_FAILED, id=_derived_id("delivery.failed", event.id, reason),
                  source=source, data=data, time=time, subject=facts["document_id"],
                  agency=facts["sender"])


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _headers(headers: Iterable[tuple[str, bytes]]) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for name, value in headers:
        encoded = base64.b64encode(bytes(value or b"")).decode("ascii")
        previous = out.get(name)
        if previous is None:
            out[name] = encoded
        else:
            out[name] = (previous if isinstance(previous, list) else [previous]) + [encoded]
    return out


def _format_time(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dead_letter(record: KafkaRecord, *, reason: str, message: str, flow: str, attempts: int,
                first_failure: datetime, last_failure: datetime, instance: str,
                source: str) -> CloudEvent:
    """A record that failed for good, with its coordinates and bytes, for the dead-letter topic
    (publish keyed by the record's key); built by `gateway.dlq`, the one place that knows the
    format. The id comes from topic/partition/offset, so writing it twice yields one dead
    letter. A refused secret document's value is not copied."""
    from gateway.dlq import dead_letter_event

    return dead_letter_event(record, reason=reason, message=message, flow=flow,
                             attempts=max(1, attempts), first_failure=first_failure,
                             last_failure=last_failure, instance=instance, source=source)


def _header_text(record: KafkaRecord, name: str) -> str | None:
    value = record.header(name)
    try:
        return (value.decode("utf-8")[:300] or None) if value else None
    except UnicodeDecodeError:
        return None


def original_record(letter: CloudEvent) -> KafkaRecord:
    """The record a dead letter keeps (key, headers, value), ready to publish again."""
    original = letter.data["original"]
    headers: list[tuple[str, bytes]] = []
    for name, value in original["headers"].items():
        for item in value if isinstance(value, list) else [value]:
            headers.append((name, base64.b64decode(item)))
    return KafkaRecord(key=None if original["key"] is None else base64.b64decode(original["key"]),
                       value=None if original["value"] is None
                       else base64.b64decode(original["value"]),
                       headers=tuple(headers))


def quarantine_letter(*, item: Any, reason: str, message: str, flow: str, archived: Any,
                      instance: str, now: datetime, source: str, event_id: str,
                      package_sha256: str | None = None, attempts: int = 1) -> CloudEvent:
    """The dead letter of an axis message that failed verification (`item`: the axis list
    entry, with `doc_id` and `to_code`; `archived`: the package as archived, or None)."""
    original: dict[str, Any] = {"axis_doc_id": item.doc_id}
    if archived is not None:
        original["package_uri"] = archived.uri
        original["package_sha256"] = archived.sha256
    elif package_sha256 is not None:
        original["package_sha256"] = package_sha256
    data = {"reason": reason, "message": message[:MAX_MESSAGE_CHARS], "flow": flow,
            "attempts": attempts, "first_failure": _format_time(now),
            "last_failure": _format_time(now), "instance": instance, "original": original}
    event = _event(DEADLETTER, id=f"dl:inbound:{event_id}", source=source, data=data, time=now,
                   subject=None, agency=item.to_code)
    return dataclasses.replace(event, extensions={**event.extensions, "reason": reason,
                                                  "flow": flow})


def document_id_of(result: Mapping[str, Any]) -> str | None:
    """The DocumentId a read package is about (`gateway.work.read_and_verify` result): its own
    for a document, the answered document's for a receipt."""
    header = (result.get("package") or {}).get("message_header") or {}
    if result.get("kind") == "status":
        return (header.get("response_for") or {}).get("document_id") or None
    return header.get("document_id") or None


def document_key(result: Mapping[str, Any]) -> str:
    """The record key for events about a read package: its DocumentId, else its SHA-256."""
    return document_id_of(result) or str(result["sha256"])


def _signature(sig: Mapping[str, Any]) -> dict[str, Any]:
    out = {"status": sig["status"], "reason": sig.get("reason"), "message": sig.get("message", "")}
    if sig.get("signer"):
        out["signer"] = {k: v for k, v in sig["signer"].items() if v is not None}
    return out


def _warnings(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in w.items() if v is not None} for w in result.get("warnings", ())]


CONTENT_MEDIA_TYPE = "text/plain; charset=utf-8"


def record_bytes(event: CloudEvent, key: bytes | str | None) -> int:
    """How many bytes the event takes as a Kafka record (key, value and headers): what the
    broker's message limit is measured against, give or take the batch framing."""
    record = event.to_record(key)
    return (len(record.key or b"") + len(record.value or b"")
            + sum(len(name) + len(value) for name, value in record.headers))


def document_content(result: Mapping[str, Any]) -> str | None:
    """The document's Content (its summary) as read, if any."""
    header = (result.get("package") or {}).get("message_header") or {}
    content = header.get("content")
    return content if isinstance(content, str) and content else None


def document_arrived(*, event_id: str, item: Any, result: Mapping[str, Any],
                     stored: Sequence[Any], archived: Any, source: str,
                     time: datetime | None = None, content_ref: Any = None) -> CloudEvent:
    """A document arrived for `item.to_code`: the package (JSON form), each attachment by
    reference into the store (`stored`, in order of the attachments read without error), the
    signature verdict and the archived package.

    With `content_ref` (the document's Content put in the store, claim check), the package's
    `message_header.content` is left out and `content_ref` points to it (uri, sha256, size):
    the event then stays under the broker's message limit whatever the Content's size."""
    package = dict(result["package"])
    if content_ref is not None:
        header = dict(package.get("message_header") or {})
        header.pop("content", None)
        package["message_header"] = header
    package["attachments"] = [{k: v for k, v in a.items() if k != "path"}
                              for a in package.get("attachments", ())]
    refs = iter(stored)
    attachments = []
    for att in result["attachments"]:
        entry: dict[str, Any] = {"content_id": att["content_id"],
                                 "attachment_name": att["attachment_name"],
                                 "declared_type": att["declared_type"],
                                 "detected_type": att.get("detected_type")}
        if att.get("error"):
            entry["error"] = {"reason": att["error"]["reason"], "message": att["error"]["message"]}
        else:
            ref = next(refs)
            entry.update(uri=ref.uri, sha256=ref.sha256, size=ref.size)
        attachments.append(entry)
    data = {"axis_doc_id": item.doc_id, "recipient": item.to_code, "package": package,
            "attachments": attachments, "signature": _signature(result["signature"]),
            "package_uri": archived.uri, "package_sha256": result["sha256"],
            "warnings": _warnings(result)}
    if content_ref is not None:
        data["content_ref"] = {"uri": content_ref.uri, "sha256": content_ref.sha256,
                               "size": content_ref.size, "media_type": CONTENT_MEDIA_TYPE}
    if result.get("attachment_signatures") is not None:
        data["attachment_signatures"] = result["attachment_signatures"]
    return _event(DOCUMENT_ARRIVED, id=event_id, source=source, data=data, time=time,
                  subject=document_id_of(result), agency=item.to_code)


def receipt_arrived(*, event_id: str, item: Any, result: Mapping[str, Any], source: str,
                    archived: Any = None, time: datetime | None = None) -> CloudEvent:
    """A receipt (status package) arrived for `item.to_code`."""
    data: dict[str, Any] = {"axis_doc_id": item.doc_id, "recipient": item.to_code,
                            "message_header": result["package"]["message_header"],
                            "signature": _signature(result["signature"]),
                            "package_sha256": result["sha256"], "warnings": _warnings(result)}
    if archived is not None:
        data["package_uri"] = archived.uri
    return _event(RECEIPT_ARRIVED, id=event_id, source=source, data=data, time=time,
                  subject=document_id_of(result), agency=item.to_code)


def rejection_receipt(*, result: Mapping[str, Any], recipient_agency: str, reason: str,
                      message: str, source: str, answering: str,
                      time: datetime | None = None) -> CloudEvent | None:
    """A `receipt.send` with status 02 (từ chối) from `recipient_agency` to the sender of a
    refused package, for the outbound receipt flow; None if the package does not say who sent
    it or which document it is."""
    header = (result.get("package") or {}).get("message_header") or {}
    sender = (header.get("from") or {}).get("organ_id")
    document_id = header.get("document_id")
    if not sender or not document_id or sender == recipient_agency:
        return None
    response_for: dict[str, Any] = {"organ_id": sender, "document_id": document_id}
    code = header.get("code") or {}
    if code.get("code_number"):
        response_for["code"] = "/".join(p for p in (code.get("code_number"),
                                                    code.get("code_notation")) if p)
    promulgated = (header.get("promulgation_info") or {}).get("promulgation_date")
    if promulgated:
        response_for["promulgation_date"] = promulgated
    moment = time or _utcnow()
    data = {"message_header": {
        "from": {"organ_id": recipient_agency}, "response_for": response_for,
        "status_code": StatusCode.REJECTED.value,
        "description": f"{reason}: {message}"[:MAX_MESSAGE_CHARS],
        "timestamp": moment.astimezone(VN_TZ).isoformat()}}
    return _event(RECEIPT_SEND, id=_derived_id("rejection", answering), source=source, data=data,
                  time=moment, subject=document_id, agency=recipient_agency)


def audit(record: Mapping[str, Any], *, source: str) -> CloudEvent:
    """An audit record (gateway.audit builds and chains them) as its CloudEvent; publish keyed
    by `record["chain"]`."""
    moment = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
    return CloudEvent(id=record["hash"], source=source, type=AUDIT_RECORD, time=moment,
                      subject=record.get("document_id"), data=dict(record),
                      dataschema=schema_id(AUDIT_RECORD),
                      extensions={"agency": record["agency"]} if record.get("agency") else {})


# --- command line (maintenance of the schema files) ---------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["sync-schemas"] or len(args) > 2:
        print("usage: python -m gateway.events sync-schemas [DIR]", file=sys.stderr)
        return 2
    changed = sync_schema_files(Path(args[1]) if len(args) == 2 else None)
    for path in changed:
        print(f"rewrote {path}")
    return 0


__all__ = ["AUDIT_RECORD", "DEADLETTER", "DEADLETTER_REPLAYED", "DELIVERY_ACCEPTED",
           "DELIVERY_FAILED", "DOCUMENT_ARRIVED", "DOCUMENT_SEND", "EVENT_TYPES", "FLOWS",
           "INCOMING_TYPES", "RECEIPT_ARRIVED", "RECEIPT_SEND", "REASONS", "SECRECY_LEVELS",
           "AttachmentRef", "EventError", "Outbound", "OutboundDocument", "OutboundReceipt",
           "audit", "dead_letter", "delivery_accepted", "delivery_failed", "document_arrived",
           "document_id_of", "document_key", "gateway_source", "incoming_facts", "load_schemas",
           "model_defs", "original_record", "parse_incoming", "prepare_validators",
           "quarantine_letter",
           "receipt_arrived", "rejection_receipt", "schema_dir", "schema_id",
           "sync_schema_files", "validate_data"]

if __name__ == "__main__":
    raise SystemExit(main())
