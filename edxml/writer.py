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
import errno
import functools
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

from edxml import text, values
from edxml.errors import EdxmlError
from edxml.model import (NS, Attachment, Business, DocumentPackage, Kind, StatusCode,
                         StatusPackage, TraceHeaderList, XmlField, xml_fields)

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
    """What was written: per-attachment sizes and SHA-256 (of the raw file bytes) and, for a
    package written to a file (`write_package_file`), the size and SHA-256 of that file, taken
    from the bytes as they were written."""

    attachments: tuple[WrittenAttachment, ...] = ()
    size: int | None = None
    sha256: str | None = None


def _escape(value: str) -> str:
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        # A bare CR would be folded into LF by the receiving parser. Written as c14n writes
        # it, so our own output is its canonical form byte for byte (see _Head).
        value = value.replace("\r", "&#xD;")
    return value


# Names of agencies, places, document types and content types come back in package after
# package: their checked, escaped form is kept (the check depends on the text alone; a refusal
# is never kept, so it is made again naming its field).
_CACHED_TEXT_LENGTH = 200


@functools.lru_cache(maxsize=4096)
def _written_text(value: str) -> str:
    return _escape(text.normalize_text(value, ""))


@functools.lru_cache(maxsize=64)
def _fields(cls: type) -> tuple[tuple[str, XmlField], ...]:
    return tuple(xml_fields(cls))


def _format(kind: Kind, value: object, where: str, allowed: range | None = None) -> str:
    if kind is Kind.TEXT:
        if not isinstance(value, str):
            raise EdxmlError("edxml.model.invalid", f"expected text, got {type(value).__name__}",
                             where=where)
        if len(value) <= _CACHED_TEXT_LENGTH:
            try:
                return _written_text(value)
            except EdxmlError:
                pass            # refused again below, naming the field
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
    if any(c in value for c in "\r\n\t"):
        raise EdxmlError("edxml.value.document_id", "DocumentId contains a line break or tab",
                         where=where)
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
    for attr, xf in _fields(type(obj)):
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


_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
_HEAD = (
    _DECL +
    f'<edXML xmlns="{NS}">\n'
    f'  <edXML:edXMLEnvelope xmlns:edXML="{NS}">\n'
    "    <edXML:edXMLHeader>\n"
    "      <edXML:MessageHeader>\n"
)
# With a signature slot the whitespace before </edXMLHeader> holds a blank line: the Signature is
# spliced into it, which leaves the signed digest unchanged and the result indented.
_SLOT_INDENT = "      "
_HEADER_END = "    </edXML:edXMLHeader>\n"


@dataclass(frozen=True)
class _Head:
    """Everything before the first attachment's content, split where a Signature goes.

    `canonical` is the same text as exclusive c14n renders it with our signature's transforms
    applied (no XML declaration; TraceHeaders and the whitespace directly inside
    TraceHeaderList left out, since the axis appends TraceHeaders in transit). Our layout is
    otherwise already canonical: namespaces declared where first used, no empty-element tags, no
    attributes but one, text escaped as c14n escapes it. tests/edxml/test_writer.py checks the
    result against the general canonicalizer.
    """

    before_slot: str
    after_slot: str
    canonical: str

    def unsigned(self) -> str:
        return self.before_slot + self.after_slot


def _document_head(pkg: DocumentPackage) -> _Head:
    message: list[str] = [_HEAD]
    _emit_node(message, pkg.message_header, "        ", "MessageHeader", "MessageHeader")
    message.append("      </edXML:MessageHeader>\n      <edXML:TraceHeaderList>")
    trace = pkg.trace_header_list
    hops: list[str] = []
    _emit_node(hops, TraceHeaderList(trace_headers=trace.trace_headers), "        ",
               "TraceHeaderList", "TraceHeaderList")
    business: list[str] = []
    # Always written: the reference library writes Bussiness in every document package (type 0
    # for a new document), and software built on it gets null from getBussiness() without it.
    _emit_node(business, TraceHeaderList(business=trace.business or Business()), "        ",
               "TraceHeaderList", "TraceHeaderList")
    _check_attachments(pkg.attachments)
    tail = ("\n" + _HEADER_END + _manifest(pkg.attachments)
            + "  </edXML:edXMLEnvelope>\n  <AttachmentEncoded>\n")
    head = "".join(message)
    business_text = "".join(business)
    before = (head + "\n" + "".join(hops) + business_text
              + "      </edXML:TraceHeaderList>\n" + _SLOT_INDENT)
    canonical = (head[len(_DECL):] + business_text.strip(" \n")
                 + "</edXML:TraceHeaderList>\n" + _SLOT_INDENT + tail)
    return _Head(before, tail, canonical)


def _status_head(pkg: StatusPackage) -> _Head:
    rf = pkg.message_header.response_for
    if not (rf.document_id or rf.code):
        # A receipt names its document by sender + DocumentId (or số/ký hiệu), never by axis id.
        raise EdxmlError("edxml.model.missing", "ResponseFor needs DocumentId or Code",
                         where="MessageHeader/ResponseFor")
    message: list[str] = [_HEAD]
    _emit_node(message, pkg.message_header, "        ", "MessageHeader", "MessageHeader")
    message.append("      </edXML:MessageHeader>\n" + _SLOT_INDENT)
    before = "".join(message)
    tail = "\n" + _HEADER_END + "  </edXML:edXMLEnvelope>\n</edXML>\n"
    return _Head(before, tail, before[len(_DECL):] + tail[:-1])


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


_ATTACHMENT_END = b"</edXML:ContentTransferEncoded>\n    </Attachment>\n"
_DOCUMENT_END = b"  </AttachmentEncoded>\n</edXML>\n"


def _stream_base64(att: Attachment, out: Callable[[bytes], Any], where: str) -> WrittenAttachment:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(att.path, "rb") as f:  # type: ignore[arg-type]
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out(base64.b64encode(chunk))
    except OSError as exc:
        raise EdxmlError("edxml.attachment.unreadable",
                         f"cannot read attachment file: {exc.strerror}", where=where) from exc
    return WrittenAttachment(att.content_id.removeprefix("cid:"), size, digest.hexdigest())


def _write_body(pkg: DocumentPackage, out: Callable[[bytes], Any]) -> WrittenPackage:
    """Attachments and the closing tags: the same bytes in the package and in its c14n form,
    except for the final newline, which the caller leaves out of a digest."""
    written = []
    for i, att in enumerate(pkg.attachments, 1):
        where = f"Attachment[{i}]"
        out(_attachment_head(att, where).encode("utf-8"))
        written.append(_stream_base64(att, out, where))
        out(_ATTACHMENT_END)
    out(_DOCUMENT_END)
    return WrittenPackage(tuple(written))


class _Tee:
    """Writes to a sink and feeds the canonical digest, holding back the last byte (the newline
    after the root element, which is outside the canonical form)."""

    def __init__(self, write: Callable[[bytes], Any], digest: Any) -> None:
        self._write = write
        self._digest = digest
        self._held = b""

    def __call__(self, data: bytes) -> None:
        self._write(data)
        if data:
            self._digest.update(self._held)
            self._digest.update(data[:-1])
            self._held = data[-1:]


def write_document(pkg: DocumentPackage, out: BinaryIO, *,
                   signature_slot: bool = False) -> WrittenPackage:
    """Write a document package to a binary stream, streaming attachments from their files."""
    head = _document_head(pkg)
    text = head.before_slot + head.after_slot if signature_slot else \
        head.before_slot[:-len(_SLOT_INDENT)] + head.after_slot[1:]
    out.write(text.encode("utf-8"))
    return _write_body(pkg, out.write)


def write_status(pkg: StatusPackage, out: BinaryIO, *, signature_slot: bool = False) -> WrittenPackage:
    """Write a status package (a receipt) to a binary stream."""
    head = _status_head(pkg)
    text = head.before_slot + head.after_slot if signature_slot else \
        head.before_slot[:-len(_SLOT_INDENT)] + head.after_slot[1:]
    out.write(text.encode("utf-8"))
    return WrittenPackage()


def write_package(pkg: DocumentPackage | StatusPackage, out: BinaryIO, *,
                  signature_slot: bool = False) -> WrittenPackage:
    if isinstance(pkg, StatusPackage):
        return write_status(pkg, out, signature_slot=signature_slot)
    return write_document(pkg, out, signature_slot=signature_slot)


def _head(pkg: DocumentPackage | StatusPackage) -> _Head:
    return _status_head(pkg) if isinstance(pkg, StatusPackage) else _document_head(pkg)


def package_bytes(pkg: DocumentPackage | StatusPackage, *, signer: Signer | None = None) -> bytes:
    """The package as bytes, signed when a signer is given. For packages small enough to hold.

    Signing needs no parse: the writer knows its own canonical form (`_Head`), so the digest is
    taken while the bytes are produced and the Signature is put into the slot it left.
    """
    head = _head(pkg)
    if signer is None:
        parts: list[bytes] = [(head.before_slot[:-len(_SLOT_INDENT)] + head.after_slot[1:]).encode()]
        if isinstance(pkg, DocumentPackage):
            _write_body(pkg, parts.append)
        return b"".join(parts)
    from edxml.signature import signature_for_digest

    digest = hashlib.sha256(head.canonical.encode("utf-8"))
    body: list[bytes] = []
    if isinstance(pkg, DocumentPackage):
        _write_body(pkg, _Tee(body.append, digest))
    signature = signature_for_digest(signer, digest.digest(), indent=_SLOT_INDENT)
    return b"".join([head.before_slot.encode("utf-8"), signature,
                     head.after_slot.encode("utf-8"), *body])


# A signed package's body (the attachments' base64) is held in memory up to this size and
# written once, after the header it is signed under; a larger one goes to a temporary file
# first, so a 1 GiB attachment never sits in memory (docs/performance.md, peak RSS).
SPOOL_LIMIT = 1024 * 1024


class _Spool:
    """Keeps what is written in memory until it passes `limit` bytes, then in a private
    temporary file in `directory` (removed by `close`)."""

    def __init__(self, directory: Path, limit: int) -> None:
        self._directory = directory
        self._limit = limit
        self.parts: list[bytes] = []
        self._held = 0
        self.file: BinaryIO | None = None
        self.path: Path | None = None

    def write(self, data: bytes) -> None:
        if self.file is not None:
            self.file.write(data)
            return
        self.parts.append(data)
        self._held += len(data)
        if self._held > self._limit:
            fd, name = tempfile.mkstemp(prefix=".edxml-body-", dir=self._directory)
            self.path = Path(name)
            self.file = os.fdopen(fd, "w+b")
            for part in self.parts:
                self.file.write(part)
            self.parts = []

    def copy_to(self, out: Callable[[bytes], Any]) -> None:
        """Everything written, in order, to `out`."""
        if self.file is None:
            for part in self.parts:
                out(part)
            return
        self.file.flush()
        self.file.seek(0)
        while chunk := self.file.read(_COPY_CHUNK):
            out(chunk)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


_COPY_CHUNK = 1024 * 1024


class _Digesting:
    """Writes to a file and takes the SHA-256 and size of what it wrote."""

    def __init__(self, f: BinaryIO) -> None:
        self._write = f.write
        self._digest = hashlib.sha256()
        self.size = 0

    def __call__(self, data: bytes) -> None:
        self._write(data)
        self._digest.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _create_beside(dest: Path) -> tuple[int, Path]:
    """A new file next to `dest`, under a name nobody else uses, with the usual mode (0o666
    less the umask: a package is not a secret) and no symlink followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = dest.parent / f".edxml-{os.urandom(8).hex()}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", str(dest.parent))


def write_package_file(pkg: DocumentPackage | StatusPackage, dest: str | os.PathLike[str], *,
                       signer: Signer | None = None,
                       spool_limit: int = SPOOL_LIMIT) -> WrittenPackage:
    """Write the package to `dest` in bounded memory, signed when a signer is given.

    Signed, the body (attachments) is produced first while its canonical digest is taken: held
    in memory when it is at most `spool_limit` bytes, otherwise in a temporary file beside
    `dest`; then the header with its Signature is written and the body after it. The size and
    SHA-256 of the file are taken from the bytes as they are written (`WrittenPackage.size`,
    `.sha256`), so nobody needs to read the file again for them. The file appears complete or
    not at all: it is written beside `dest` and renamed.
    """
    dest = Path(dest)
    head = _head(pkg)
    fd, tmp = _create_beside(dest)
    spool: _Spool | None = None
    done = False
    try:
        with os.fdopen(fd, "wb") as f:
            out = _Digesting(f)
            if signer is None:
                out((head.before_slot[:-len(_SLOT_INDENT)] + head.after_slot[1:]).encode())
                written = _write_body(pkg, out) if isinstance(pkg, DocumentPackage) \
                    else WrittenPackage()
            else:
                from edxml.signature import signature_for_digest

                digest = hashlib.sha256(head.canonical.encode("utf-8"))
                written = WrittenPackage()
                spool = _Spool(dest.parent, spool_limit)
                if isinstance(pkg, DocumentPackage):
                    written = _write_body(pkg, _Tee(spool.write, digest))
                signature = signature_for_digest(signer, digest.digest(), indent=_SLOT_INDENT)
                out(b"".join([head.before_slot.encode("utf-8"), signature,
                              head.after_slot.encode("utf-8"), *spool.parts]))
                if spool.file is not None:
                    spool.copy_to(out)
        os.replace(tmp, dest)
        done = True
        return WrittenPackage(written.attachments, size=out.size, sha256=out.hexdigest())
    finally:
        if not done:
            tmp.unlink(missing_ok=True)
        if spool is not None:
            spool.close()
