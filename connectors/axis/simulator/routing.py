"""Read what the axis routes on from a package's header, and write the relayed copy.

The header reader is a hardened streaming parser: expat with DTDs, entity declarations and
external entities refused, elements matched on namespace URI + local name (any prefix), and
parsing stopped at the end of `edXMLHeader`, so a 1 GiB package costs one small read.

The relayed copy is the uploaded file with one more TraceHeader spliced in as the last
TraceHeader of the TraceHeaderList, as the real axis does: right after the last TraceHeader
already there, wherever `Bussiness` stands (the reference library writes `Bussiness` first, ours
after the TraceHeaders); with no TraceHeader yet, before `Bussiness` or the end of the list.
The splice is byte-level at the offset expat reported; everything else is copied unchanged, and
the new element is written without surrounding whitespace because receivers' signatures
exclude TraceHeader elements but not whitespace text.
"""

from __future__ import annotations

import os
import shutil
import xml.parsers.expat
from dataclasses import dataclass
from xml.sax.saxutils import escape

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"

_READ_SIZE = 64 * 1024


class Unroutable(Exception):
    """The package cannot be routed: not edXML, unsafe XML, or routing fields missing."""


@dataclass(frozen=True)
class ResponseForRef:
    organ_id: str
    document_id: str


@dataclass(frozen=True)
class PackageHeader:
    """The routing fields of one package and where a new TraceHeader would go."""

    from_organ: str
    to_organs: tuple[str, ...]
    document_id: str
    subject: str
    notation: str                      # "CodeNumber/CodeNotation"
    response_for: tuple[ResponseForRef, ...]
    status_code: str
    has_trace_list: bool
    trace_prefix: str                  # prefix of TraceHeaderList ("" when unprefixed)
    insert_at: int | None              # byte offset after the last </TraceHeader>, else of
                                       # <Bussiness> or of </TraceHeaderList>
    self_closing_list: tuple[int, int] | None   # (start, end) of an empty <TraceHeaderList/>
    header_end: int                    # byte offset where parsing stopped


class _Stop(Exception):
    pass


def _refuse(what: str):
    def handler(*_args: object) -> None:
        raise Unroutable(f"{what} are not accepted in a package")
    return handler


_MH = ("edXML", "edXMLEnvelope", "edXMLHeader", "MessageHeader")
_TL = ("edXML", "edXMLEnvelope", "edXMLHeader", "TraceHeaderList")
_HEADER = ("edXML", "edXMLEnvelope", "edXMLHeader")
# Leaves of MessageHeader we keep, by path relative to it.
_WANTED = {
    ("From", "OrganId"): "from",
    ("To", "OrganId"): "to",
    ("DocumentId",): "document_id",
    ("Subject",): "subject",
    ("Code", "CodeNumber"): "code_number",
    ("Code", "CodeNotation"): "code_notation",
    ("ResponseFor", "OrganId"): "rf_organ",
    ("ResponseFor", "DocumentId"): "rf_document",
    ("StatusCode",): "status_code",
}


def read_package_header(path: str | os.PathLike[str], *,
                        max_header_bytes: int = 16 * 1024 * 1024,
                        max_depth: int = 64) -> PackageHeader:
    """Parse a package up to the end of its edXMLHeader; raise Unroutable if it cannot be."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.namespace_prefixes = True
    parser.buffer_text = True
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("DTDs")
    parser.EntityDeclHandler = _refuse("entity declarations")
    parser.UnparsedEntityDeclHandler = _refuse("entity declarations")
    parser.ExternalEntityRefHandler = _refuse("external entities")

    stack: list[str] = []              # local names; None-namespace elements get "!name"
    text: list[str] = []
    collecting: str | None = None
    found: dict[str, list[str]] = {key: [] for key in _WANTED.values()}
    rf_pairs: list[list[str]] = []
    trace: dict[str, object] = {}

    def xml_decl(_version: str, encoding: str | None, _standalone: int) -> None:
        if encoding and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise Unroutable(f"package encoding {encoding} is not UTF-8")

    def start(name: str, _attrs: object) -> None:
        nonlocal collecting
        parts = name.split(" ")
        local = parts[1] if len(parts) >= 2 and parts[0] == EDXML_NS else "!" + parts[-1]
        if not stack and local != "edXML":
            raise Unroutable(f"root element is {parts[-2] if len(parts) > 1 else name}, not edXML "
                             "in the QCVN 102 namespace")
        stack.append(local)
        if len(stack) > max_depth:
            raise Unroutable(f"elements nested deeper than {max_depth}")
        path = tuple(stack)
        if path == _TL:
            trace["prefix"] = parts[2] if len(parts) == 3 else ""
            trace["start"] = parser.CurrentByteIndex
        elif path == _TL + ("Bussiness",) and "insert_at" not in trace:
            trace["insert_at"] = parser.CurrentByteIndex
        elif path[:4] == _MH and len(path) > 4:
            key = _WANTED.get(path[4:])
            if key is not None:
                collecting = key
                text.clear()
            if path[4:] == ("ResponseFor",):
                rf_pairs.append(["", ""])

    def end(_name: str) -> None:
        nonlocal collecting
        path = tuple(stack)
        if collecting is not None and path[:4] == _MH and _WANTED.get(path[4:]) == collecting:
            value = "".join(text).strip()
            found[collecting].append(value)
            if collecting == "rf_organ" and rf_pairs:
                rf_pairs[-1][0] = value
            elif collecting == "rf_document" and rf_pairs:
                rf_pairs[-1][1] = value
            collecting = None
        if path == _TL:
            trace["end"] = parser.CurrentByteIndex
        elif path == _TL + ("TraceHeader",):
            trace["last_trace_end"] = parser.CurrentByteIndex   # where its end tag starts
        stack.pop()
        if path == _HEADER:
            raise _Stop

    def chars(data: str) -> None:
        if collecting is not None:
            text.append(data)

    parser.XmlDeclHandler = xml_decl
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars

    read = 0
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(_READ_SIZE)
                read += len(chunk)
                parser.Parse(chunk, not chunk)
                if not chunk:
                    break
                if read > max_header_bytes:
                    raise Unroutable(f"no end of edXMLHeader in the first {max_header_bytes} bytes")
        raise Unroutable("package has no edXMLHeader")
    except _Stop:
        header_end = parser.CurrentByteIndex
    except xml.parsers.expat.ExpatError as exc:
        raise Unroutable(f"package is not well-formed XML: {exc}") from None

    def first(key: str) -> str:
        return found[key][0] if found[key] else ""

    self_closing = None
    insert_at = trace.get("insert_at")
    if "last_trace_end" in trace:
        insert_at = _after_tag(path, int(trace["last_trace_end"]))
    if "start" in trace and insert_at is None:
        end_at = int(trace["end"])
        with open(path, "rb") as fh:
            fh.seek(end_at)
            closes_normally = fh.read(2) == b"</"
        if closes_normally:
            insert_at = end_at
        else:
            self_closing = (int(trace["start"]), end_at)
    number, notation = first("code_number"), first("code_notation")
    return PackageHeader(
        from_organ=first("from"),
        to_organs=tuple(dict.fromkeys(v for v in found["to"] if v)),
        document_id=first("document_id"),
        subject=first("subject"),
        notation="/".join(p for p in (number, notation) if p),
        response_for=tuple(ResponseForRef(o, d) for o, d in rf_pairs),
        status_code=first("status_code"),
        has_trace_list="start" in trace,
        trace_prefix=str(trace.get("prefix", "")),
        insert_at=None if insert_at is None else int(insert_at),
        self_closing_list=self_closing,
        header_end=header_end,
    )


def _after_tag(path: str | os.PathLike[str], offset: int) -> int:
    """The offset just past the tag that starts at `offset` (an end tag or an empty-element
    tag: no attribute values, so the first '>' closes it)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        tag = fh.read(4096)
    close = tag.find(b">")
    if close < 0:
        raise Unroutable("cannot find the end of the last TraceHeader")
    return offset + close + 1


def trace_header_bytes(prefix: str, organ_id: str, timestamp: str) -> bytes:
    p = f"{prefix}:" if prefix else ""
    return (f"<{p}TraceHeader><{p}OrganId>{escape(organ_id)}</{p}OrganId>"
            f"<{p}Timestamp>{escape(timestamp)}</{p}Timestamp></{p}TraceHeader>").encode("utf-8")


def write_relayed_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                       header: PackageHeader, *, organ_id: str, timestamp: str) -> bool:
    """Copy `src` to `dst` with one TraceHeader appended; return False (plain copy) when the
    package has no TraceHeaderList (status packages)."""
    if header.insert_at is None and header.self_closing_list is None:
        shutil.copyfile(src, dst)
        return False
    insert = trace_header_bytes(header.trace_prefix, organ_id, timestamp)
    with open(src, "rb") as fin, open(dst, "wb", buffering=0) as fout:
        if header.insert_at is not None:
            _copy_range(fin, fout, 0, header.insert_at)
            _write_all(fout, insert)
            tail = header.insert_at
        else:
            start, end = header.self_closing_list  # type: ignore[misc]
            _copy_range(fin, fout, 0, start)
            fin.seek(start)
            tag = fin.read(end - start)
            opening = tag.rstrip()
            if not opening.endswith(b"/>"):
                raise Unroutable("cannot find the end of the empty TraceHeaderList tag")
            name = tag[1:].split(None, 1)[0].rstrip(b"/>")
            _write_all(fout, opening[:-2].rstrip() + b">" + insert + b"</" + name + b">")
            tail = end
        size = os.fstat(fin.fileno()).st_size
        _copy_range(fin, fout, tail, size - tail)
    return True


def _copy_range(fin, fout, offset: int, count: int) -> None:
    """Copy `count` bytes of `fin` from `offset` to the current end of the unbuffered `fout`."""
    try:
        while count > 0:
            done = os.copy_file_range(fin.fileno(), fout.fileno(), count, offset)
            if done == 0:
                break
            offset += done
            count -= done
        if count > 0:
            raise OSError("source file shorter than expected")
        return
    except (AttributeError, OSError):
        pass
    fin.seek(offset)
    while count > 0:
        chunk = fin.read(min(count, 1024 * 1024))
        if not chunk:
            raise OSError("source file shorter than expected")
        _write_all(fout, chunk)
        count -= len(chunk)


def _write_all(fout, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[fout.write(view):]
