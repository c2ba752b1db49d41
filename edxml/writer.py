"""Write packages in the reference layout.

The layout is the one the reference Java library emits and the shared samples show: explicit
`edXML:` prefixes inside the envelope (the national side has rejected packages whose XML library
dropped the prefix), the §2 element order, unprefixed `AttachmentEncoded/Attachment` in the
default namespace, single-line base64, UTF-8, `yyyy/MM/dd` dates, two-space indentation.

The XML is written by hand from the model's field table rather than through a tree: the layout
must be exact, and an attachment's base64 is streamed from its file in chunks so a 1 GiB
attachment never sits in memory.

Text is checked on the way out (NFC, no legacy 8-bit Vietnamese, no control or bidi characters)
and identifiers strictly; a refusal names the field.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from edxml import text, values
from edxml.errors import EdxmlError
from edxml.model import (NS, Attachment, DocumentPackage, Kind, StatusCode, StatusPackage,
                         xml_fields)

if TYPE_CHECKING:
    from edxml.signature import Signer

REASONS = {
    "edxml.model.missing": "a mandatory element has no value",
    "edxml.model.invalid": "a value cannot be written (wrong type, bad attachment metadata)",
    "edxml.attachment.unreadable": "an attachment's file cannot be read",
}

# Base64 is written in chunks of whole 3-byte groups, so the chunks concatenate to one valid
# single-line base64 string.
_CHUNK = 3 * 256 * 1024
_P = "edXML:"

# Identifiers of the agencies a package is addressed from/to are written strictly; identifiers
# that point at other people's documents (ResponseFor, ReplacementInfo, trace hops) are echoed as
# received, so a receipt for a document from a legacy system can still be sent.
_STRICT_ORGAN_IDS = {"From", "To", "Receiver"}


@dataclass(frozen=True)
class WrittenAttachment:
    content_id: str
    size: int
    sha256: str


@dataclass(frozen=True)
class WrittenPackage:
    """What was written: per-attachment sizes and SHA-256 (of the raw file bytes)."""

    attachments: tuple[WrittenAttachment, ...] = ()


def _escape(value: str) -> str:
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        # A bare CR would be folded into LF by the receiving parser.
        value = value.replace("\r", "&#13;")
    return value


def _format(kind: Kind, value: object, where: str, allowed: range | None = None) -> str:
    if kind is Kind.TEXT:
        if not isinstance(value, str):
            raise EdxmlError("edxml.model.invalid", f"expected text, got {type(value).__name__}",
                             where=where)
        return _escape(text.normalize_text(value, where))
    if kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EdxmlError("edxml.model.invalid", f"expected an integer, got {value!r}",
                             where=where)
        if allowed is not None and value not in allowed:
            raise EdxmlError("edxml.model.invalid",
                             f"{value} is outside {allowed.start}..{allowed.stop - 1}", where=where)
        return str(value)
    if kind is Kind.DATE:
        if not isinstance(value, date) or isinstance(value, datetime):
            raise EdxmlError("edxml.model.invalid", f"expected a date, got {value!r}", where=where)
        return values.format_date(value)
    if kind is Kind.TIMESTAMP:
        if not isinstance(value, datetime):
            raise EdxmlError("edxml.model.invalid", f"expected a datetime, got {value!r}",
                             where=where)
        return values.format_timestamp(value)
    if kind is Kind.BOOL:
        return "true" if value else "false"
    if kind is Kind.STATUS:
        return StatusCode(value).value
    raise AssertionError(kind)


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and value == "") or value == ()


def _check_organ_id(value: str, element: str, where: str) -> None:
    if element in _STRICT_ORGAN_IDS:
        try:
            values.OrganId.parse(value, strict=True)
        except EdxmlError as exc:
            raise EdxmlError(exc.reason, exc.message, where=where) from None


_CANONICAL_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                             r"[0-9a-fA-F]{12}$")


def _check_document_id(value: str, where: str) -> None:
    """Emit only `{sender},{yyyy/MM/dd},{số/ký hiệu}` with a real date, or a canonical UUID."""
    if _CANONICAL_UUID.match(value):
        return
    try:
        parsed = values.DocumentId.parse(value)
    except EdxmlError as exc:
        raise EdxmlError(exc.reason, exc.message, where=where) from None
    if (parsed.kind != "composite" or parsed.date is None or value != value.strip()
            or any(c.isspace() for c in parsed.sender or " ") or parsed.code is None
            or not parsed.code.strip() or parsed.code != parsed.code.lstrip()
            or value.count(",") != 2):
        raise EdxmlError("edxml.value.document_id",
                         f"{value!r} is neither {{sender}},{{yyyy/MM/dd}},{{số/ký hiệu}} with a real "
                         "date nor a UUID", where=where)


def _emit_node(out: list[str], obj: object, indent: str, where: str, parent: str) -> None:
    inner = indent + "  "
    for attr, xf in xml_fields(type(obj)):
        value = getattr(obj, attr)
        path = f"{where}/{xf.name}"
        if _is_empty(value):
            if xf.required:
                raise EdxmlError("edxml.model.missing", f"{xf.name} is mandatory", where=path)
            continue
        if xf.kind is Kind.NODE:
            out.append(f"{indent}<{_P}{xf.name}>\n")
            _emit_node(out, value, inner, path, xf.name)
            out.append(f"{indent}</{_P}{xf.name}>\n")
        elif xf.kind is Kind.REPEAT:
            for i, item in enumerate(value, 1):
                out.append(f"{indent}<{_P}{xf.name}>\n")
                _emit_node(out, item, inner, f"{path}[{i}]", xf.name)
                out.append(f"{indent}</{_P}{xf.name}>\n")
        elif xf.kind is Kind.LIST:
            out.append(f"{indent}<{_P}{xf.name}>\n")
            for i, item in enumerate(value, 1):
                item_path = f"{path}/{xf.item}[{i}]"
                if xf.item_kind is Kind.NODE:
                    out.append(f"{inner}<{_P}{xf.item}>\n")
                    _emit_node(out, item, inner + "  ", item_path, xf.item)
                    out.append(f"{inner}</{_P}{xf.item}>\n")
                else:
                    if xf.item == "OrganId":
                        _check_organ_id(item, parent, item_path)
                    out.append(f"{inner}<{_P}{xf.item}>{_format(Kind.TEXT, item, item_path)}"
                               f"</{_P}{xf.item}>\n")
            out.append(f"{indent}</{_P}{xf.name}>\n")
        else:
            if xf.name == "OrganId":
                _check_organ_id(value, parent, path)
            elif xf.name == "DocumentId":
                _check_document_id(value, path)
            out.append(f"{indent}<{_P}{xf.name}>{_format(xf.kind, value, path, xf.allowed)}"
                       f"</{_P}{xf.name}>\n")


_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<edXML xmlns="{NS}">\n'
    f'  <edXML:edXMLEnvelope xmlns:edXML="{NS}">\n'
    "    <edXML:edXMLHeader>\n"
    "      <edXML:MessageHeader>\n"
)
# With a signature slot the whitespace before </edXMLHeader> holds a blank line: the signer
# splices the Signature into it, which leaves the signed digest unchanged and the result indented.
_HEADER_END = "    </edXML:edXMLHeader>\n"
_SLOT = "      \n"


def _check_attachments(attachments: tuple[Attachment, ...]) -> None:
    seen: set[str] = set()
    for i, att in enumerate(attachments, 1):
        where = f"Attachment[{i}]"
        cid = att.content_id.removeprefix("cid:")
        if not cid or any(c.isspace() for c in cid):
            raise EdxmlError("edxml.model.invalid", "ContentId must be non-empty, no spaces",
                             where=where)
        if cid in seen:
            raise EdxmlError("edxml.model.invalid", f"ContentId {cid!r} is used twice",
                             where=where)
        seen.add(cid)
        if att.path is None:
            raise EdxmlError("edxml.model.invalid", "attachment has no file to read", where=where)
        if not att.attachment_name:
            raise EdxmlError("edxml.model.missing", "AttachmentName is mandatory", where=where)


def _manifest(attachments: tuple[Attachment, ...]) -> str:
    out = ["    <edXML:edXMLBody>\n", '      <edXML:edXMLManifest version="1.0">\n']
    for i, att in enumerate(attachments, 1):
        where = f"edXMLManifest/Reference[{i}]"
        out.append("        <edXML:Reference>\n")
        out.append(f"          <edXML:ContentId>cid:{_escape(att.content_id.removeprefix('cid:'))}"
                   "</edXML:ContentId>\n")
        out.append(f"          <edXML:ContentType>{_format(Kind.TEXT, att.content_type, where)}"
                   "</edXML:ContentType>\n")
        if att.description is not None:
            out.append(f"          <edXML:Description>{_format(Kind.TEXT, att.description, where)}"
                       "</edXML:Description>\n")
        out.append(f"          <edXML:AttachmentName>"
                   f"{_format(Kind.TEXT, att.attachment_name, where)}</edXML:AttachmentName>\n")
        out.append("        </edXML:Reference>\n")
    out.append("      </edXML:edXMLManifest>\n")
    out.append("    </edXML:edXMLBody>\n")
    return "".join(out)


def _attachment_head(att: Attachment, where: str) -> str:
    parts = ["    <Attachment>\n",
             f"      <ContentId>cid:{_escape(att.content_id.removeprefix('cid:'))}</ContentId>\n",
             f"      <AttachmentName>{_format(Kind.TEXT, att.attachment_name, where)}"
             "</AttachmentName>\n"]
    if att.description is not None:
        parts.append(f"      <Description>{_format(Kind.TEXT, att.description, where)}"
                     "</Description>\n")
    parts.append(f"      <ContentType>{_format(Kind.TEXT, att.content_type, where)}</ContentType>\n")
    parts.append(f'      <edXML:ContentTransferEncoded xmlns:edXML="{NS}">')
    return "".join(parts)


def _stream_base64(att: Attachment, out: BinaryIO, where: str) -> WrittenAttachment:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(att.path, "rb") as f:  # type: ignore[arg-type]
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(base64.b64encode(chunk))
    except OSError as exc:
        raise EdxmlError("edxml.attachment.unreadable",
                         f"cannot read attachment file: {exc.strerror}", where=where) from exc
    return WrittenAttachment(att.content_id.removeprefix("cid:"), size, digest.hexdigest())


def write_document(pkg: DocumentPackage, out: BinaryIO, *,
                   signature_slot: bool = False) -> WrittenPackage:
    """Write a document package to a binary stream, streaming attachments from their files."""
    head: list[str] = [_HEAD]
    _emit_node(head, pkg.message_header, "        ", "MessageHeader", "MessageHeader")
    head.append("      </edXML:MessageHeader>\n")
    trace = pkg.trace_header_list
    head.append("      <edXML:TraceHeaderList>\n")
    _emit_node(head, trace, "        ", "TraceHeaderList", "TraceHeaderList")
    head.append("      </edXML:TraceHeaderList>\n")
    if signature_slot:
        head.append(_SLOT)
    head.append(_HEADER_END)
    _check_attachments(pkg.attachments)
    head.append(_manifest(pkg.attachments))
    head.append("  </edXML:edXMLEnvelope>\n")
    head.append("  <AttachmentEncoded>\n")
    out.write("".join(head).encode("utf-8"))
    written = []
    for i, att in enumerate(pkg.attachments, 1):
        where = f"Attachment[{i}]"
        out.write(_attachment_head(att, where).encode("utf-8"))
        written.append(_stream_base64(att, out, where))
        out.write(b"</edXML:ContentTransferEncoded>\n    </Attachment>\n")
    out.write(b"  </AttachmentEncoded>\n</edXML>\n")
    return WrittenPackage(tuple(written))


def write_status(pkg: StatusPackage, out: BinaryIO, *, signature_slot: bool = False) -> WrittenPackage:
    """Write a status package (a receipt) to a binary stream."""
    rf = pkg.message_header.response_for
    if not (rf.document_id or rf.code):
        # A receipt names its document by sender + DocumentId (or số/ký hiệu), never by axis id.
        raise EdxmlError("edxml.model.missing", "ResponseFor needs DocumentId or Code",
                         where="MessageHeader/ResponseFor")
    head: list[str] = [_HEAD]
    _emit_node(head, pkg.message_header, "        ", "MessageHeader", "MessageHeader")
    head.append("      </edXML:MessageHeader>\n")
    if signature_slot:
        head.append(_SLOT)
    head.append(_HEADER_END)
    head.append("  </edXML:edXMLEnvelope>\n</edXML>\n")
    out.write("".join(head).encode("utf-8"))
    return WrittenPackage()


def write_package(pkg: DocumentPackage | StatusPackage, out: BinaryIO, *,
                  signature_slot: bool = False) -> WrittenPackage:
    if isinstance(pkg, StatusPackage):
        return write_status(pkg, out, signature_slot=signature_slot)
    return write_document(pkg, out, signature_slot=signature_slot)


class _Buffer:
    """A write-only byte sink that keeps its pieces (cheaper than BytesIO's copies)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)


def package_bytes(pkg: DocumentPackage | StatusPackage, *, signer: Signer | None = None) -> bytes:
    """The package as bytes, signed when a signer is given. For packages small enough to hold."""
    buf = _Buffer()
    write_package(pkg, buf, signature_slot=signer is not None)  # type: ignore[arg-type]
    data = b"".join(buf.parts)
    if signer is None:
        return data
    from edxml.signature import sign_bytes

    return sign_bytes(data, signer)


def write_package_file(pkg: DocumentPackage | StatusPackage, dest: str | os.PathLike[str], *,
                       signer: Signer | None = None) -> WrittenPackage:
    """Write the package to `dest` in bounded memory, signed when a signer is given.

    The file appears complete or not at all: it is written beside `dest` and renamed into place.
    """
    dest = Path(dest)
    fd, tmp_name = tempfile.mkstemp(prefix=".edxml-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            written = write_package(pkg, f, signature_slot=signer is not None)  # type: ignore[arg-type]
        if signer is not None:
            from edxml.signature import sign_file

            signed = tmp.with_name(tmp.name + ".signed")
            try:
                sign_file(tmp, signed, signer)
                os.replace(signed, dest)
            finally:
                signed.unlink(missing_ok=True)
            tmp.unlink()
        else:
            os.replace(tmp, dest)
        return written
    finally:
        tmp.unlink(missing_ok=True)
