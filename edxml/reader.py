"""Read packages of every dialect, streaming, and refuse hostile input with a reason.

One pass over the bytes does everything: the hardened parser (`edxml.xmlsafe`) feeds events to
this module's handler, which builds the small header tree, decodes each attachment's base64
straight into a file, and forwards the same events to the signature digester. What the signature
covers is therefore exactly what was read: there is no second parse a wrapping attack could
steer elsewhere.

Tolerance (edxml.md §9): elements are matched by namespace URI and local name, never by prefix,
in any order; `Signature` may be in the XMLDSig or the edXML namespace, or be
`DigitalSignature`, or be missing; `cid:` is stripped from ContentIds on both sides; ZIP-wrapped
attachments are unwrapped to the file inside; composite and UUID DocumentIds are both kept.

One reading of the truth: every dialect of §9 is the edXML namespace itself, written with a
prefix or as the default namespace, so an element is the standard's only when its namespace URI
is exactly the edXML one (a package wholly in no namespace is refused at its root). An element
that bears a name of the standard in another namespace (``xmlns=""`` included) where the
standard's elements stand, or a second element where the standard allows one, would let two
readers of the same bytes see two different packages (the axis routes by one `From`, a reader
taking the first occurrence by another): such a package is refused as `edxml.ambiguous`.

A bad attachment does not hide the header: it is reported on its own (`AttachmentReport.error`)
and the rest of the package is still returned.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import pybase64

from edxml import mime, text, values
from edxml.errors import AttachmentError, EdxmlError
from edxml.model import (NS, Attachment, DocumentPackage, Kind, MessageHeader,
                         StatusCode, StatusHeader, StatusPackage, TraceHeaderList, xml_fields)
from edxml.xmlsafe import FanOut, Limits, SafeParser

REASONS = {
    "edxml.structure.root": "the root element is not edXML in the QCVN 102 namespace",
    "edxml.structure.missing": "a mandatory element is missing or empty",
    "edxml.structure.kind": "the package is neither a document nor a status package",
    "edxml.structure.duplicate": "an element that may appear once appears more than once",
    "edxml.ambiguous": "the package can be read two ways: an element of the standard appears twice where it "
                       "may appear once, or under another namespace (or none) beside the edXML one",
    "edxml.structure.too_large": "the header, an attachment or the package exceeds its size limit",
    "edxml.structure.too_many": "more attachments or elements than allowed",
    "edxml.value.int": "a number element does not hold an integer",
    "edxml.value.date": "a date element does not hold yyyy/MM/dd",
    "edxml.value.timestamp": "a timestamp element does not hold yyyy/MM/dd HH:mm:ss",
    "edxml.status.unknown_code": "StatusCode is not one of 01-06, 13, 15, 16",
    "edxml.attachment.base64": "an attachment's content is not valid base64",
    "edxml.attachment.truncated": "an attachment's base64 or ZIP ends early",
    "edxml.attachment.duplicate_id": "two attachments share a ContentId",
    "edxml.attachment.missing": "the manifest names an attachment the package does not carry",
    "edxml.attachment.too_large": "an attachment is larger than the configured limit",
    "edxml.attachment.zip_bomb": "a ZIP-wrapped attachment expands beyond the limits",
    "edxml.attachment.zip_directory": "a ZIP attachment's central directory declares more entries or bytes than "
                                      "allowed (checked before it is read)",
    # warnings: the package is read, and these say what was tolerated
    "edxml.attachment.no_id": "warning: an attachment has no ContentId",
    "edxml.attachment.unlisted": "warning: an attachment is not listed in the manifest",
    "edxml.structure.unknown_element": "warning: an element the standard does not define was ignored",
}

_WS = b" \t\r\n"
_READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what a package may make the reader do. Defaults suit real traffic."""

    max_header_bytes: int = 4 * 1024 * 1024           # all text outside attachment content
    max_attachment_bytes: int = 2 * 1024 ** 3         # one decoded attachment
    max_package_bytes: int = 4 * 1024 ** 3            # the whole input
    max_attachments: int = 1000
    max_header_elements: int = 20_000                 # every element but attachment content
    max_zip_ratio: int = 200                          # uncompressed / compressed, zip bomb guard
    max_zip_entries: int = mime.MAX_ZIP_ENTRIES       # central directory, checked before reading
    max_zip_directory_bytes: int = mime.MAX_ZIP_DIRECTORY_BYTES
    parser: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Warning:
    """Something tolerated: an odd identifier, an unknown element, a lenient date."""

    code: str
    message: str
    where: str | None = None


@dataclass(frozen=True)
class AttachmentReport:
    """One attachment as read: the decoded file, what it really is, or why it is unusable."""

    attachment: Attachment
    detected_type: str | None = None     # sniffed from the bytes
    unwrapped_from_zip: bool = False
    zip_member_name: str | None = None   # as recorded in the ZIP; never used as a path
    error: EdxmlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ReadResult:
    package: DocumentPackage | StatusPackage
    attachments: tuple[AttachmentReport, ...]
    warnings: tuple[Warning, ...]
    signature: Any                        # edxml.signature.CapturedSignature (or None)
    size: int
    sha256: str

    @property
    def kind(self) -> str:
        """`edoc` or `status`, the axis's messagetype for this package."""
        return "status" if isinstance(self.package, StatusPackage) else "edoc"


def _known_elements() -> frozenset[str]:
    names = {"edXML", "edXMLEnvelope", "edXMLHeader", "MessageHeader", "TraceHeaderList",
             "edXMLBody", "edXMLManifest", "Reference", "ContentId", "ContentType", "Description",
             "AttachmentName", "AttachmentEncoded", "Attachment", "ContentTransferEncoded"}
    todo = [MessageHeader, StatusHeader, TraceHeaderList]
    seen: set[type] = set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for _, xf in xml_fields(cls):
            names.add(xf.name)
            if xf.item:
                names.add(xf.item)
            if xf.node is not None:
                todo.append(xf.node)
    return frozenset(names)


class _Node:
    __slots__ = ("uri", "local", "children", "parts")

    def __init__(self, uri: str, local: str) -> None:
        self.uri = uri
        self.local = local
        self.children: list[_Node] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def find_all(self, local: str) -> list[_Node]:
        return [c for c in self.children if c.local == local and c.uri == NS]


class _Base64Sink:
    """Decodes base64 text as it arrives into a file, hashing the decoded bytes."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        # Unbuffered: the decoder hands over whole decoded chunks (~48 KiB from a 64 KiB text
        # run), and a raw file skips the buffer object and its isatty/lseek calls.
        self.file: BinaryIO = open(path, "wb", buffering=0)
        self.pending = b""
        self.size = 0
        self.limit = limit
        self.digest = hashlib.sha256()
        self.head = b""  # the first decoded bytes, for sniffing the type without reopening
        self.error: EdxmlError | None = None
        self.finished = False  # padding seen: nothing may follow

    def feed(self, data: str) -> None:
        if self.error is not None:
            return
        raw = data.encode("ascii", "replace")
        if b" " in raw or b"\n" in raw or b"\r" in raw or b"\t" in raw:
            raw = raw.translate(None, _WS)
        if self.finished and raw:
            self._fail("edxml.attachment.base64", "data after the closing '=' padding")
            return
        buf = self.pending + raw if self.pending else raw
        cut = len(buf) - len(buf) % 4
        self.pending = buf[cut:]
        if cut:
            self._decode(buf[:cut] if cut < len(buf) else buf)

    def _decode(self, chunk: bytes) -> None:
        # Padding may only close the whole text; inside a chunk it means garbage: "=" before
        # the last two characters, or "=" followed by data ("AB=C"). What remains is the
        # alphabet check, which the decoder makes in the same pass (pybase64 decodes with SIMD,
        # some thirty times faster than binascii; tests/edxml/test_base64.py shows both decide
        # alike on every chunk the sink can give them).
        if chunk.find(b"=", 0, len(chunk) - 2) >= 0 or (chunk[-2] == 0x3D and chunk[-1] != 0x3D):
            self._fail("edxml.attachment.base64", "content is not valid base64")
            return
        try:
            decoded = pybase64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            self._fail("edxml.attachment.base64", "content is not valid base64")
            return
        if chunk[-1] == 0x3D:
            self.finished = True
        self.size += len(decoded)
        if self.size > self.limit:
            self._fail("edxml.attachment.too_large",
                       f"larger than the {self.limit}-byte limit")
            return
        if len(self.head) < mime.SNIFF_BYTES:
            self.head += decoded[:mime.SNIFF_BYTES - len(self.head)]
        self.digest.update(decoded)
        written = self.file.write(decoded)
        while written < len(decoded):  # a raw write may be partial
            written += self.file.write(memoryview(decoded)[written:])

    def _fail(self, reason: str, message: str) -> None:
        self.error = AttachmentError(reason, message)
        self.file.close()
        self.path.unlink(missing_ok=True)

    def element_inside(self) -> None:
        """Markup inside base64 content: another parser would read different bytes."""
        if self.error is None:
            self._fail("edxml.attachment.base64", "attachment content contains markup")

    def close(self) -> None:
        if self.error is None and self.pending:
            self._fail("edxml.attachment.truncated",
                       f"base64 ends with {len(self.pending)} stray characters (cut short?)")
        if self.error is None:
            self.file.close()


class _Handler:
    """Receives parser events; builds the header tree and streams attachments to files."""

    # Elements inside attachment content would be a wrapping trick; they are walked but ignored.

    def __init__(self, out_dir: Path, limits: ReadLimits) -> None:
        self.out_dir = out_dir
        self.limits = limits
        self.stack: list[_Node | None] = []
        self.root: _Node | None = None
        self.header_bytes = 0
        self.header_elements = 0
        self.unknown: list[str] = []
        self.attachment_nodes: list[tuple[_Node, _Base64Sink | None]] = []
        self.sink: _Base64Sink | None = None
        self.current_attachment: _Node | None = None

    # The element path decides what a node is: attachment content is the only text that is not
    # kept in memory.
    def start(self, uri: str | None, local: str, prefix: str | None, attrs: list, offset: int) -> None:
        depth = len(self.stack)
        if depth == 0:
            if local != "edXML" or uri != NS:
                raise EdxmlError("edxml.structure.root",
                                 f"root element is {{{uri}}}{local}, expected {{{NS}}}edXML")
            self.root = node = _Node(uri, local)
            self.stack.append(node)
            return
        parent = self.stack[-1]
        if parent is None or parent.local == "ContentTransferEncoded":
            # Inside attachment content no elements belong: refuse the attachment, keep nothing.
            if self.sink is not None:
                self.sink.element_inside()
            self.stack.append(None)
            return
        known = local in _KNOWN_ELEMENTS
        if uri != NS:
            if known:
                # A name of the standard in another namespace where the standard's elements
                # stand: whichever one a reader takes, another reader may take the other.
                raise EdxmlError("edxml.ambiguous",
                                 f"{local} in namespace {uri or '(none)'!r} beside the edXML "
                                 "namespace: the package can be read two ways",
                                 where=f"{parent.local}/{local}")
            # Nothing the model reads: walk it without keeping it (a flood of unknown elements
            # costs no memory). Signatures are the digester's business.
            self.stack.append(None)
            return
        if not known:
            if local not in ("Signature", "DigitalSignature") and len(self.unknown) < 50:
                self.unknown.append(f"{parent.local}/{local}")
            self.stack.append(None)
            return
        singles = _SINGLE_BLOCKS_IN.get(parent.local)
        if singles is not None and local in singles and parent.find_all(local):
            raise EdxmlError("edxml.ambiguous",
                             f"{parent.local} holds two {local} elements: the package can be "
                             "read two ways", where=f"{parent.local}/{local}")
        self.header_elements += 1
        if self.header_elements > self.limits.max_header_elements:
            raise EdxmlError("edxml.structure.too_many",
                             f"more than {self.limits.max_header_elements} elements outside "
                             "attachment content")
        node = _Node(uri, local)
        parent.children.append(node)
        self.stack.append(node)
        if local == "Attachment" and parent.local == "AttachmentEncoded" and depth == 2:
            if len(self.attachment_nodes) >= self.limits.max_attachments:
                raise EdxmlError("edxml.structure.too_many",
                                 f"more than {self.limits.max_attachments} attachments")
            self.current_attachment = node
            self.attachment_nodes.append((node, None))
        elif local == "ContentTransferEncoded" and parent is self.current_attachment:
            if self.sink is not None or self.attachment_nodes[-1][1] is not None:
                raise EdxmlError("edxml.structure.duplicate",
                                 "an Attachment has two ContentTransferEncoded elements")
            index = len(self.attachment_nodes)
            self.sink = _Base64Sink(self.out_dir / f"attachment-{index:04d}.bin",
                                    self.limits.max_attachment_bytes)
            self.attachment_nodes[-1] = (self.current_attachment, self.sink)

    def end(self, uri: str | None, local: str, prefix: str | None, offset: int) -> None:
        node = self.stack.pop()
        if node is not None and self.sink is not None and node.local == "ContentTransferEncoded":
            self.sink.close()
            self.sink = None
        elif node is self.current_attachment:
            self.current_attachment = None

    def text(self, data: str) -> None:
        stack = self.stack
        if not stack:
            return
        top = stack[-1]
        if top is None:
            return
        if self.sink is not None and top.local == "ContentTransferEncoded":
            self.sink.feed(data)
            return
        self.header_bytes += len(data)
        if self.header_bytes > self.limits.max_header_bytes:
            raise EdxmlError("edxml.structure.too_large",
                             f"more than {self.limits.max_header_bytes} bytes of header text")
        top.parts.append(data)

    def pi(self, target: str, data: str) -> None:
        pass


_KNOWN_ELEMENTS = _known_elements()
# The blocks of the package, each of which appears once in its parent.
_SINGLE_BLOCKS = frozenset({("edXML", "edXMLEnvelope"), ("edXML", "AttachmentEncoded"),
                            ("edXMLEnvelope", "edXMLHeader"), ("edXMLEnvelope", "edXMLBody"),
                            ("edXMLHeader", "MessageHeader"), ("edXMLHeader", "TraceHeaderList"),
                            ("edXMLBody", "edXMLManifest")})
_SINGLE_BLOCKS_IN: dict[str, frozenset[str]] = {
    parent: frozenset(child for p, child in _SINGLE_BLOCKS if p == parent) for parent, _ in _SINGLE_BLOCKS}


# --- tree → model -----------------------------------------------------------------------------

_FIELDS: dict[type, tuple[tuple[tuple[str, Any], ...], frozenset[str]]] = {}


def _fields(cls: type) -> tuple[tuple[tuple[str, Any], ...], frozenset[str]]:
    """The model class's (attribute, XmlField) pairs and element names, worked out once."""
    known = _FIELDS.get(cls)
    if known is None:
        fields = tuple(xml_fields(cls))
        known = _FIELDS[cls] = (fields, frozenset(xf.name for _, xf in fields))
    return known


# Enum members bound once: in Python 3.11 `Kind.TEXT` costs a lookup through the enum's
# metaclass (about 70 ns), and the builder asks it for every field of every package.
_BOOL = Kind.BOOL
_DATE = Kind.DATE
_INT = Kind.INT
_LIST = Kind.LIST
_NODE = Kind.NODE
_REPEAT = Kind.REPEAT
_STATUS = Kind.STATUS
_TEXT = Kind.TEXT


class _Builder:
    def __init__(self) -> None:
        self.warnings: list[Warning] = []

    def warn(self, code: str, message: str, where: str | None = None) -> None:
        if len(self.warnings) < 200:
            self.warnings.append(Warning(code, message, where))

    def value(self, kind: Kind, raw: str, where: str, required: bool) -> Any:
        if kind is _TEXT:
            return text.normalize_text(raw, where)
        stripped = raw.strip()
        if not stripped:
            return None
        if kind is _STATUS:
            try:
                return StatusCode(stripped)
            except ValueError:
                raise EdxmlError("edxml.status.unknown_code",
                                 f"StatusCode {stripped[:20]!r} is not one of 01-06, 13, 15, 16",
                                 where=where) from None
        try:
            if kind is _INT:
                try:
                    return int(stripped)
                except ValueError:
                    raise EdxmlError("edxml.value.int", f"{stripped[:40]!r} is not an integer") \
                        from None
            if kind is _BOOL:
                return values.parse_bool(stripped)
            parse = values.parse_date_lenient if kind is _DATE else \
                values.parse_timestamp_lenient
            parsed = parse(stripped)
            if parsed.warning:
                self.warn(f"edxml.value.{kind.value}", parsed.warning, where)
            return parsed.value
        except EdxmlError as exc:
            if required:
                raise EdxmlError(exc.reason, exc.message, where=where) from None
            self.warn(exc.reason, f"ignored: {exc.message}", where)
            return None

    def node(self, cls: type, node: _Node, where: str) -> Any:
        kwargs: dict[str, Any] = {}
        fields, known = _fields(cls)
        children: dict[str, list[_Node]] = {}
        for c in node.children:
            if c.uri == NS:
                children.setdefault(c.local, []).append(c)
        for attr, xf in fields:
            found = children.get(xf.name)
            if not found:
                continue
            path = f"{where}/{xf.name}"
            if xf.kind is _REPEAT:
                kwargs[attr] = tuple(self.node(xf.node, n, f"{path}[{i}]")  # type: ignore[arg-type]
                                     for i, n in enumerate(found, 1))
                continue
            if len(found) > 1:
                raise EdxmlError("edxml.ambiguous",
                                 f"{xf.name} appears {len(found)} times where it may appear once: "
                                 "the package can be read two ways", where=path)
            child = found[0]
            if xf.kind is _NODE:
                kwargs[attr] = self.node(xf.node, child, path)  # type: ignore[arg-type]
            elif xf.kind is _LIST:
                items = child.find_all(xf.item)  # type: ignore[arg-type]
                if xf.item_kind is _NODE:
                    kwargs[attr] = tuple(self.node(xf.node, n, f"{path}/{xf.item}[{i}]")  # type: ignore[arg-type]
                                         for i, n in enumerate(items, 1))
                else:
                    texts = [self.value(_TEXT, n.text, f"{path}/{xf.item}[{i}]", False)
                             for i, n in enumerate(items, 1)]
                    if xf.item == "OrganId":
                        texts = [self.organ_id(t, f"{path}/{xf.item}[{i}]")
                                 for i, t in enumerate(texts, 1)]
                    kwargs[attr] = tuple(texts)
            else:
                value = self.value(xf.kind, child.text, path, xf.required)
                if xf.name == "OrganId" and isinstance(value, str):
                    value = self.organ_id(value, path)
                elif xf.name == "DocumentId" and isinstance(value, str):
                    value = self.document_id(value, path)
                if value is not None:
                    kwargs[attr] = value
        for child in node.children:
            if child.local not in known and child.uri == NS:
                self.warn("edxml.structure.unknown_element",
                          f"element {child.local} does not belong here; ignored",
                          f"{where}/{child.local}")
        return cls(**kwargs)

    def document_id(self, value: str, where: str) -> str:
        """Kept as sent (UUIDs and odd composites occur), but never with line breaks or tabs:
        consumers split DocumentIds on "," and write them into logs and file names."""
        value = value.strip()
        if any(c in value for c in "\r\n\t"):
            raise EdxmlError("edxml.value.document_id",
                             "DocumentId contains a line break or tab", where=where)
        parsed = values.DocumentId.parse(value) if value else None
        if parsed is not None and parsed.warning:
            self.warn("edxml.value.document_id", parsed.warning, where)
        elif parsed is not None and parsed.kind == "composite" and "," in (parsed.code or ""):
            self.warn("edxml.value.document_id",
                      "DocumentId has more than two commas; consumers that split on ',' "
                      "will misread it", where)
        return value

    def organ_id(self, value: str, where: str) -> str:
        value = value.strip()
        organ = values.OrganId.parse(value, strict=False)
        if organ.warning:
            self.warn("edxml.value.organ_id", organ.warning, where)
        return str(organ)


def _require(condition: bool, what: str, where: str) -> None:
    if not condition:
        raise EdxmlError("edxml.structure.missing", f"{what} is missing or empty", where=where)


def _header(root: _Node) -> _Node:
    envelopes = root.find_all("edXMLEnvelope")
    _require(bool(envelopes), "edXMLEnvelope", "edXML")
    headers = envelopes[0].find_all("edXMLHeader")
    _require(bool(headers), "edXMLHeader", "edXMLEnvelope")
    messages = headers[0].find_all("MessageHeader")
    _require(bool(messages), "MessageHeader", "edXMLHeader")
    return messages[0]


def _build_status(b: _Builder, message: _Node) -> StatusPackage:
    codes = message.find_all("StatusCode")
    _require(bool(codes) and bool(codes[0].text.strip()), "StatusCode", "MessageHeader")
    header = b.node(StatusHeader, message, "MessageHeader")
    _require(bool(header.from_.organ_id), "From/OrganId", "MessageHeader/From")
    rf = header.response_for
    _require(bool(rf.organ_id), "ResponseFor/OrganId", "MessageHeader/ResponseFor")
    _require(bool(rf.document_id or rf.code), "ResponseFor/DocumentId or Code",
             "MessageHeader/ResponseFor")
    return StatusPackage(header)


def _build_document(b: _Builder, root: _Node, message: _Node,
                    attachments: tuple[Attachment, ...]) -> DocumentPackage:
    header: MessageHeader = b.node(MessageHeader, message, "MessageHeader")
    _require(bool(header.from_.organ_id), "From/OrganId", "MessageHeader/From")
    _require(bool(header.to), "To", "MessageHeader")
    _require(all(t.organ_id for t in header.to), "To/OrganId", "MessageHeader/To")
    _require(bool(header.subject.strip()), "Subject", "MessageHeader")
    # Present in every real package (edxml.md §2, "Seen 1"); without them a clerk cannot
    # register the document, so they are required on input too.
    _require(bool(header.code.code_number.strip()), "Code/CodeNumber", "MessageHeader/Code")
    _require(header.promulgation_info.promulgation_date is not None,
             "PromulgationInfo/PromulgationDate", "MessageHeader/PromulgationInfo")
    _require(bool(message.find_all("DocumentType")), "DocumentType", "MessageHeader")
    trace_nodes = root.find_all("edXMLEnvelope")[0].find_all("edXMLHeader")[0] \
        .find_all("TraceHeaderList")
    trace = (b.node(TraceHeaderList, trace_nodes[0], "TraceHeaderList") if trace_nodes
             else TraceHeaderList())
    return DocumentPackage(header, trace, attachments)


def _manifest(root: _Node, b: _Builder) -> list[dict[str, str | None]]:
    entries = []
    for body in root.find_all("edXMLEnvelope")[0].find_all("edXMLBody"):
        for manifest in body.find_all("edXMLManifest"):
            for i, ref in enumerate(manifest.find_all("Reference"), 1):
                entry = {}
                for name in ("ContentId", "ContentType", "Description", "AttachmentName"):
                    found = ref.find_all(name)
                    if len(found) > 1:
                        raise EdxmlError("edxml.ambiguous", f"{name} appears {len(found)} times in "
                                         "one manifest Reference: the package can be read two ways",
                                         where=f"edXMLManifest/Reference[{i}]")
                    entry[name] = found[0].text.strip() if found else None
                entries.append(entry)
    return entries


_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}


def _unwrap_zip(path: Path, limits: ReadLimits, declared_type: str,
                name: str = "") -> tuple[Path, str] | None:
    """If the file is a ZIP wrapping exactly one file (the Java library's habit), unpack it.

    The reference library's rule: only an attachment declared `application/zip` whose name
    does not end in `.zip` is a wrapper; a genuine `.zip` attachment is delivered as the ZIP it
    is, and so is a ZIP declared as anything else. The member's name is recorded, never used as
    a path. Expansion is bounded by size and ratio. A damaged wrapper is an error.
    """
    if declared_type.lower() not in _ZIP_TYPES or name.lower().rstrip().endswith(".zip"):
        return None
    with open(path, "rb") as f:
        if f.read(4) != mime.ZIP_MAGIC:
            return None
        # A ZIP reader loads the whole central directory: its declared size is checked first.
        too_large = mime.zip_directory_too_large(f, max_entries=limits.max_zip_entries,
                                                 max_bytes=limits.max_zip_directory_bytes)
    if too_large is not None:
        raise AttachmentError("edxml.attachment.zip_directory", too_large)
    try:
        with zipfile.ZipFile(path) as zf:
            if mime.container_type(zf) is not None:
                return None  # a .docx/.odt is a ZIP by nature, not a wrapper
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                return None
            member = members[0]
            packed = max(path.stat().st_size, 1)
            cap = min(limits.max_attachment_bytes, packed * limits.max_zip_ratio)
            if member.file_size > cap:
                raise AttachmentError("edxml.attachment.zip_bomb",
                                      f"ZIP member declares {member.file_size} bytes "
                                      f"from {packed} packed (limit {cap})")
            out = path.with_name(path.name + ".unzipped")
            total = 0
            with zf.open(member) as src, open(out, "wb") as dst:
                while chunk := src.read(1024 * 1024):
                    total += len(chunk)
                    if total > cap:
                        dst.close()
                        out.unlink(missing_ok=True)
                        raise AttachmentError("edxml.attachment.zip_bomb",
                                              f"ZIP member expands beyond {cap} bytes")
                    dst.write(chunk)
            return out, member.filename
    except AttachmentError:
        path.with_name(path.name + ".unzipped").unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError,
            RuntimeError, ValueError, OSError, zlib.error) as exc:
        path.with_name(path.name + ".unzipped").unlink(missing_ok=True)
        raise AttachmentError("edxml.attachment.truncated",
                              f"attachment is a damaged ZIP: {exc}") from None


def file_digest(path: str | os.PathLike[str]) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _attachments(handler: _Handler, b: _Builder, root: _Node,
                 limits: ReadLimits) -> tuple[AttachmentReport, ...]:
    manifest = {(e["ContentId"] or "").removeprefix("cid:"): e for e in _manifest(root, b)}
    reports: list[AttachmentReport] = []
    seen: set[str] = set()
    for i, (node, sink) in enumerate(handler.attachment_nodes, 1):
        where = f"AttachmentEncoded/Attachment[{i}]"

        def child(name: str) -> str | None:
            found = node.find_all(name)
            if len(found) > 1:
                raise EdxmlError("edxml.ambiguous", f"{name} appears {len(found)} times in one "
                                 "Attachment: the package can be read two ways", where=where)
            return found[0].text.strip() if found else None

        cid = (child("ContentId") or "").removeprefix("cid:").strip()
        entry = manifest.get(cid, {})
        name = child("AttachmentName") or entry.get("AttachmentName") or f"attachment-{i}"
        att = Attachment(
            content_id=cid,
            attachment_name=text.normalize_text(name, f"{where}/AttachmentName"),
            content_type=child("ContentType") or entry.get("ContentType")
            or "application/octet-stream",
            description=child("Description") or entry.get("Description"),
        )
        error: EdxmlError | None = None
        if not cid:
            b.warn("edxml.attachment.no_id", "attachment has no ContentId", where)
        elif cid in seen:
            error = AttachmentError("edxml.attachment.duplicate_id",
                                    f"ContentId {cid!r} is used by an earlier attachment",
                                    where=where)
        elif cid not in manifest:
            b.warn("edxml.attachment.unlisted", f"ContentId {cid!r} is not in the manifest", where)
        seen.add(cid)
        if sink is None and error is None:
            error = AttachmentError("edxml.attachment.missing",
                                    "Attachment has no ContentTransferEncoded", where=where)
        if sink is not None and sink.error is not None and error is None:
            error = AttachmentError(sink.error.reason, sink.error.message, where=where)
        if error is not None:
            if sink is not None:
                sink.path.unlink(missing_ok=True)
            reports.append(AttachmentReport(att, error=error))
            continue
        assert sink is not None
        path, size, sha = sink.path, sink.size, sink.digest.hexdigest()
        member = None
        try:
            unwrapped = _unwrap_zip(path, limits, att.content_type, att.attachment_name)
        except AttachmentError as exc:
            path.unlink(missing_ok=True)
            reports.append(AttachmentReport(att, error=AttachmentError(exc.reason, exc.message,
                                                                       where=where)))
            continue
        if unwrapped is not None:
            path.unlink()
            path, member = unwrapped
            size, sha = file_digest(path)
        detected = None if unwrapped is not None else mime.sniff_bytes(sink.head)
        if detected is None or detected == "application/zip":
            # a ZIP's type depends on its members (a .docx is one): read from the file
            with open(path, "rb") as f:
                detected = mime.sniff_file(f)
        reports.append(AttachmentReport(replace(att, path=path, size=size, sha256=sha),
                                        detected_type=detected,
                                        unwrapped_from_zip=unwrapped is not None,
                                        zip_member_name=member))
    for cid in manifest:
        if cid not in seen:
            b.warn("edxml.attachment.missing",
                   f"manifest lists {cid!r} but no attachment carries it", "edXMLManifest")
    return tuple(reports)


def read_package(source: str | os.PathLike[str] | BinaryIO, attachments_dir: str | os.PathLike[str],
                 *, limits: ReadLimits | None = None, digester: Any = None) -> ReadResult:
    """Read a package from a path or binary stream; attachments are decoded into `attachments_dir`.

    `digester` receives the same parser events (the signature check uses it; see
    `edxml.signature`). Raises EdxmlError when the package as a whole cannot be read; problems of
    single attachments are in the result's reports.
    """
    limits = limits or ReadLimits()
    out_dir = Path(attachments_dir)
    if not out_dir.is_dir():  # one stat, not a failing mkdir and a stat, when it is there
        out_dir.mkdir(parents=True, exist_ok=True)
    handler = _Handler(out_dir, limits)
    parser = SafeParser(handler if digester is None else FanOut(handler, digester), limits.parser)
    digest = hashlib.sha256()
    size = 0
    own = not hasattr(source, "read")
    stream: BinaryIO = open(source, "rb") if own else source  # type: ignore[arg-type, assignment]
    try:
        # One chunk is read ahead, so that the last one is parsed as final: expat parses a
        # package that fits one chunk about a third faster in one final call than fed and closed.
        chunk = stream.read(_READ_CHUNK)
        while chunk:
            size += len(chunk)
            if size > limits.max_package_bytes:
                raise EdxmlError("edxml.structure.too_large",
                                 f"package is larger than {limits.max_package_bytes} bytes")
            digest.update(chunk)
            following = stream.read(_READ_CHUNK)
            if following:
                parser.feed(chunk)
            else:
                parser.feed(chunk, final=True)
            chunk = following
        parser.close()
    except BaseException:
        for _, sink in handler.attachment_nodes:
            if sink is not None:
                sink.file.close()
                sink.path.unlink(missing_ok=True)
        raise
    finally:
        if own:
            stream.close()
    try:
        return _result(handler, limits, digester, size, digest.hexdigest())
    except BaseException:
        # A refused package leaves nothing behind: no decoded attachment, no unzipped copy.
        for _, sink in handler.attachment_nodes:
            if sink is not None:
                sink.path.unlink(missing_ok=True)
                sink.path.with_name(sink.path.name + ".unzipped").unlink(missing_ok=True)
        raise


def _result(handler: _Handler, limits: ReadLimits, digester: Any, size: int,
            sha256: str) -> ReadResult:
    root = handler.root
    assert root is not None
    b = _Builder()
    for path in handler.unknown:
        b.warn("edxml.structure.unknown_element", f"unknown element {path} ignored", path)
    message = _header(root)
    is_status = bool(message.find_all("StatusCode")) or bool(message.find_all("ResponseFor")) \
        and not message.find_all("To")
    if is_status:
        package: DocumentPackage | StatusPackage = _build_status(b, message)
        reports: tuple[AttachmentReport, ...] = ()
    else:
        reports = _attachments(handler, b, root, limits)
        package = _build_document(b, root, message, tuple(r.attachment for r in reports))
    signature = digester.result() if digester is not None else None
    return ReadResult(package, reports, tuple(b.warnings), signature, size, sha256)


def read_package_bytes(data: bytes, attachments_dir: str | os.PathLike[str] | None = None,
                       **kwargs: Any) -> ReadResult:
    """Read a package held in memory (tests, small status packages)."""
    import io

    if attachments_dir is None:
        attachments_dir = tempfile.mkdtemp(prefix="edxml-read-")
    return read_package(io.BytesIO(data), attachments_dir, **kwargs)
