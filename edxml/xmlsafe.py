"""Parse untrusted XML as a bounded stream of namespace-aware events.

Every package the gateway reads, signs or verifies goes through :class:`SafeParser`: one expat
parser with namespace processing, fed in chunks, so memory stays bounded whatever the file size
(a text node of any length arrives as several ``text`` events). It refuses what a package never
needs and an attacker would use: DTDs, entity declarations, external or undefined entity
references, non-UTF-8 input, absurd nesting or element/attribute counts.

API
---

``SafeParser(handler, limits=Limits())``
    ``feed(chunk: bytes)`` any number of times, then ``close()``. ``parse(source)`` does both
    for bytes, a path or a binary stream (read in 64 KiB chunks). Errors are raised as
    :class:`edxml.errors.EdxmlError` with the reasons in :data:`REASONS` and ``where`` set to
    ``"line L, column C (byte B)"``. After an error the parser must not be fed again.

The handler is any object with these methods (called in document order)::

    start(uri: str, local: str, prefix: str, attrs: list[tuple[str, str, str, str]],
          byte_offset: int) -> None
        An element starts. ``uri`` is "" for no namespace, ``prefix`` is "" when the name has
        none. ``attrs`` is ``[(uri, local, prefix, value), ...]`` in document order, with the
        namespace declarations (``xmlns``, ``xmlns:p``) removed. ``byte_offset`` is the offset
        of the ``<`` of the start tag in the input.
    end(uri: str, local: str, prefix: str, byte_offset: int) -> None
        The element ends. ``byte_offset`` is the offset of ``</`` for an end tag, and the
        offset just past ``/>`` for an empty-element tag (expat's convention).
    text(data: str) -> None
        Character data (CDATA sections included, entities and line ends already resolved).
        One text node may arrive as several calls.
    pi(target: str, data: str) -> None
        A processing instruction (the XML declaration is not one).

A handler whose ``text`` and ``pi`` attributes change with its state says so with a true
``switches_text`` attribute: the parser then looks them up at each event instead of once (it
always does for the handlers of a two-handler ``FanOut``).

and optionally::

    start_ns(prefix: str, uri: str) -> None
        A namespace declaration of the element whose ``start`` comes next (``prefix`` "" for
        the default namespace, ``uri`` "" for ``xmlns=""``). Needed only by code that must
        know in-scope declarations (signature capture).

Comments and whitespace outside the document element are not reported. ``FanOut(h1, h2, ...)``
forwards every event to several handlers (the reader and the signature digester, for instance),
so a package is parsed once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, Protocol
from xml.parsers import expat

from edxml.errors import EdxmlError

CHUNK_SIZE = 64 * 1024
"""Bytes read per ``feed`` when parsing a stream (also expat's text buffer size)."""

XML_NS = "http://www.w3.org/XML/1998/namespace"

REASONS: dict[str, str] = {
    "edxml.xml.malformed": "the input is not well-formed XML",
    "edxml.xml.encoding": "the input is not UTF-8 (declared otherwise, a UTF-16/32 byte order, or invalid bytes)",
    "edxml.xml.dtd": "the input contains a document type declaration (refused)",
    "edxml.xml.entity": "the input declares or references an entity other than the five predefined ones",
    "edxml.xml.too_deep": "elements are nested deeper than the configured limit",
    "edxml.xml.too_many_elements": "the document has more elements than the configured limit",
    "edxml.xml.too_many_attributes": "one element has more attributes than the configured limit",
    "edxml.xml.token_too_large": "one tag, comment or processing instruction is larger than the configured limit",
    "edxml.xml.too_many_namespaces": "one element, or the whole document, declares more namespaces than the "
                                     "configured limit",
}

_SEP = "\x01"  # not allowed anywhere in an XML 1.0 document, so it cannot occur in a name or URI

_ENTITY_ERRORS = {
    expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY],
    expat.errors.codes[expat.errors.XML_ERROR_RECURSIVE_ENTITY_REF],
    expat.errors.codes[expat.errors.XML_ERROR_ASYNC_ENTITY],
    expat.errors.codes[expat.errors.XML_ERROR_BINARY_ENTITY_REF],
    expat.errors.codes[expat.errors.XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF],
    expat.errors.codes[expat.errors.XML_ERROR_EXTERNAL_ENTITY_HANDLING],
    expat.errors.codes[expat.errors.XML_ERROR_ENTITY_DECLARED_IN_PE],
}
_ENCODING_ERRORS = {
    expat.errors.codes[expat.errors.XML_ERROR_UNKNOWN_ENCODING],
    expat.errors.codes[expat.errors.XML_ERROR_INCORRECT_ENCODING],
    expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR],
}
_INVALID_TOKEN = expat.errors.codes[expat.errors.XML_ERROR_INVALID_TOKEN]
_UNCLOSED_TOKEN = expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN]

_UTF8_NAMES = {"utf-8", "utf8"}
_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\x00<", b"<\x00")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one document may contain."""

    max_depth: int = 64
    max_elements: int = 2_000_000
    max_attributes: int = 256
    """Attributes on one element (namespace declarations not counted)."""
    max_token_bytes: int = 8 * 1024 * 1024
    """How far expat may buffer without producing an event (one huge tag or comment)."""
    max_namespace_declarations: int = 1024
    """Namespace declarations on one element (each one costs memory while it is in scope)."""
    max_namespace_declarations_total: int = 20_000
    """Namespace declarations in the whole document (a real package has a few per attachment)."""


class Handler(Protocol):
    def start(self, uri: str, local: str, prefix: str,
              attrs: list[tuple[str, str, str, str]], byte_offset: int) -> None: ...
    def end(self, uri: str, local: str, prefix: str, byte_offset: int) -> None: ...
    def text(self, data: str) -> None: ...
    def pi(self, target: str, data: str) -> None: ...


_NAMES: dict[str, tuple[str, str, str]] = {}
"""Split expat names, shared by all parsers (names repeat across packages); bounded below."""
_NAMES_MAX = 4096


def _split(name: str) -> tuple[str, str, str]:
    parts = name.split(_SEP)
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return parts[0], parts[1], ""
    return parts[0], parts[1], parts[2]


def _name(name: str) -> tuple[str, str, str]:
    split = _split(name)
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = split
    return split


class SafeParser:
    """A hardened, chunk-fed expat parser that reports events to ``handler``."""

    def __init__(self, handler: Any, limits: Limits = Limits()) -> None:
        self.limits = limits
        self._handler = handler
        self._fed = 0
        self._head = b""  # first bytes, for the byte-order check
        self._checked_head = False
        self._chunk = b""
        self._chunk_base = 0
        self._failed = False
        self._finished = False

        p = expat.ParserCreate(encoding="UTF-8", namespace_separator=_SEP)
        p.namespace_prefixes = True
        p.ordered_attributes = True
        p.buffer_text = True
        p.buffer_size = CHUNK_SIZE
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartDoctypeDeclHandler = self._on_doctype
        p.EntityDeclHandler = self._on_entity_decl
        p.UnparsedEntityDeclHandler = self._on_entity_decl
        p.ExternalEntityRefHandler = self._on_external_entity
        p.XmlDeclHandler = self._on_xml_decl
        self._parser = p
        self._install(handler, limits)

    def _install(self, handler: Any, limits: Limits) -> None:
        """Bind the element, text and namespace events to ``handler``.

        Every element and text run of a package passes through here, so the limits are counted
        in closure variables and the handler's methods are called directly (for the reader and
        the signature digester side by side, without FanOut's loop)."""
        p = self._parser
        fail = self._fail
        names = _NAMES
        max_depth, max_elements = limits.max_depth, limits.max_elements
        max_attribute_items = 2 * limits.max_attributes
        max_ns, max_ns_total = limits.max_namespace_declarations, limits.max_namespace_declarations_total
        depth = elements = 0
        ns_element = 0  # declarations of the element whose start comes next
        ns_total = 0

        pair = isinstance(handler, FanOut) and len(handler.handlers) == 2
        if pair:
            first, second = handler.handlers
            # Looked up at each event, not bound once: a handler may switch its own ``text``
            # as its state changes (the signature digester does).

            def text(data: str) -> None:
                first.text(data)
                second.text(data)

            p.CharacterDataHandler = text
            p.ProcessingInstructionHandler = handler.pi
            start1, start2, end1, end2 = first.start, second.start, first.end, second.end
        else:
            if getattr(handler, "switches_text", False):
                p.CharacterDataHandler = lambda data: handler.text(data)
                p.ProcessingInstructionHandler = lambda target, data: handler.pi(target, data)
            else:
                p.CharacterDataHandler = handler.text
                p.ProcessingInstructionHandler = handler.pi
            start1, end1 = handler.start, handler.end

        def on_start(name: str, attrs: list[str]) -> None:
            nonlocal depth, elements, ns_element
            ns_element = 0
            depth += 1
            elements += 1
            if depth > max_depth:
                fail("edxml.xml.too_deep", f"elements nested deeper than {max_depth}")
            if elements > max_elements:
                fail("edxml.xml.too_many_elements", f"more than {max_elements} elements")
            uri, local, prefix = names.get(name) or _name(name)
            out: list[tuple[str, str, str, str]] = []
            if attrs:
                if len(attrs) > max_attribute_items:
                    fail("edxml.xml.too_many_attributes",
                         f"more than {limits.max_attributes} attributes on one element")
                for i in range(0, len(attrs), 2):
                    a = attrs[i]
                    s = names.get(a) or _name(a)
                    out.append((s[0], s[1], s[2], attrs[i + 1]))
            offset = p.CurrentByteIndex
            start1(uri, local, prefix, out, offset)
            if pair:
                start2(uri, local, prefix, out, offset)

        def on_end(name: str) -> None:
            nonlocal depth
            depth -= 1
            uri, local, prefix = names.get(name) or _name(name)
            offset = p.CurrentByteIndex
            end1(uri, local, prefix, offset)
            if pair:
                end2(uri, local, prefix, offset)

        # Declarations are counted whoever listens: 990 000 of them in 23 MB once cost 659 MiB.
        start_ns = getattr(handler, "start_ns", None)

        def on_ns(prefix: str | None, uri: str | None) -> None:
            nonlocal ns_element, ns_total
            ns_element += 1
            ns_total += 1
            if ns_element > max_ns:
                fail("edxml.xml.too_many_namespaces",
                     f"more than {max_ns} namespace declarations on one element")
            if ns_total > max_ns_total:
                fail("edxml.xml.too_many_namespaces", f"more than {max_ns_total} namespace declarations")
            if start_ns is not None:
                start_ns(prefix or "", uri or "")

        p.StartElementHandler = on_start
        p.EndElementHandler = on_end
        p.StartNamespaceDeclHandler = on_ns

    # -- public ---------------------------------------------------------------------------

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        """Parse the next chunk; ``final`` says it is the last one (then :meth:`close` has
        nothing left to do, and expat parses it faster than a chunk followed by the end)."""
        if self._failed:
            raise EdxmlError("edxml.xml.malformed", "parser used after an error")
        if self._finished:
            raise EdxmlError("edxml.xml.malformed", "data after the end of the input")
        if not self._checked_head:
            self._head += chunk[:4]
            if len(self._head) >= 4 or not chunk or final:
                self._check_head()
        self._chunk = chunk
        self._chunk_base = self._fed
        self._fed += len(chunk)
        if final:
            self._finished = True
            self._parse(chunk, True)
            return
        self._parse(chunk, False)
        if self._fed - max(self._parser.CurrentByteIndex, 0) > self.limits.max_token_bytes + CHUNK_SIZE:
            self._fail("edxml.xml.token_too_large",
                       f"more than {self.limits.max_token_bytes} bytes without a complete token")

    def close(self) -> None:
        if self._failed:
            raise EdxmlError("edxml.xml.malformed", "parser used after an error")
        if self._finished:
            return
        if not self._checked_head:
            self._check_head()
        self._chunk = b""
        self._chunk_base = self._fed
        self._finished = True
        self._parse(b"", True)

    def parse(self, source: bytes | str | os.PathLike[str] | IO[bytes]) -> None:
        """Parse a whole document: bytes, a file path, or a binary stream read in chunks."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            step = CHUNK_SIZE * 16
            for i in range(0, len(data), step):
                self.feed(data[i:i + step], final=i + step >= len(data))
            self.close()
        elif isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as stream:
                self.parse(stream)
        else:
            for chunk in iter_chunks(source):
                self.feed(chunk)
            self.close()

    @property
    def byte_offset(self) -> int:
        """Offset of the current event (inside a handler) or of the last one."""
        return self._parser.CurrentByteIndex

    def where(self) -> str:
        p = self._parser
        return f"line {p.CurrentLineNumber}, column {p.CurrentColumnNumber + 1} (byte {p.CurrentByteIndex})"

    # -- internals ------------------------------------------------------------------------

    def _parse(self, data: bytes, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            self._failed = True
            where = f"line {exc.lineno}, column {exc.offset + 1} (byte {self._parser.ErrorByteIndex})"
            message = expat.ErrorString(exc.code)
            if exc.code == _UNCLOSED_TOKEN and final and self._fed - max(self._parser.ErrorByteIndex, 0) \
                    > self.limits.max_token_bytes + CHUNK_SIZE:
                # The input ends inside a token longer than the limit: the same verdict whether
                # the chunk it ends in was fed as the last one or not.
                raise EdxmlError("edxml.xml.token_too_large",
                                 f"more than {self.limits.max_token_bytes} bytes without a complete token",
                                 where=where) from None
            if exc.code in _ENTITY_ERRORS:
                raise EdxmlError("edxml.xml.entity", message, where=where) from None
            if exc.code in _ENCODING_ERRORS or (exc.code == _INVALID_TOKEN and self._bad_utf8_at(
                    self._parser.ErrorByteIndex)):
                raise EdxmlError("edxml.xml.encoding", f"{message}: not valid UTF-8",
                                 where=where) from None
            raise EdxmlError("edxml.xml.malformed", message, where=where) from None
        except EdxmlError:
            self._failed = True
            raise

    def _bad_utf8_at(self, index: int) -> bool:
        i = index - self._chunk_base
        if not 0 <= i < len(self._chunk):
            return False
        piece = self._chunk[i:i + 4]
        try:
            piece.decode("utf-8")
            return False
        except UnicodeDecodeError as exc:
            return exc.start == 0 and not (exc.reason == "unexpected end of data"
                                           and len(piece) < 4 and i + len(piece) == len(self._chunk))

    def _check_head(self) -> None:
        self._checked_head = True
        head = self._head
        if head.startswith(b"\xef\xbb\xbf"):
            return
        for bom in _BOMS:
            if head.startswith(bom):
                self._failed = True
                raise EdxmlError("edxml.xml.encoding",
                                 "the input is UTF-16 or UTF-32; packages must be UTF-8", where="byte 0")

    def _fail(self, reason: str, message: str) -> None:
        self._failed = True
        raise EdxmlError(reason, message, where=self.where())

    def _on_doctype(self, *args: object) -> None:
        self._fail("edxml.xml.dtd", "document type declarations are not accepted")

    def _on_entity_decl(self, *args: object) -> None:
        self._fail("edxml.xml.entity", "entity declarations are not accepted")

    def _on_external_entity(self, *args: object) -> int:
        self._fail("edxml.xml.entity", "external entities are not accepted")
        return 0

    def _on_xml_decl(self, version: str | None, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower() not in _UTF8_NAMES:
            self._fail("edxml.xml.encoding", f"declared encoding {encoding!r}; packages must be UTF-8")


class FanOut:
    """A handler that forwards every event to several handlers, in order."""

    def __init__(self, *handlers: Any) -> None:
        self._handlers = handlers
        self.handlers = handlers
        self._ns = [h.start_ns for h in handlers if hasattr(h, "start_ns")]
        if self._ns:
            self.start_ns = self._start_ns

    def _start_ns(self, prefix: str, uri: str) -> None:
        for f in self._ns:
            f(prefix, uri)

    def start(self, uri: str, local: str, prefix: str, attrs: list[tuple[str, str, str, str]],
              byte_offset: int) -> None:
        for h in self._handlers:
            h.start(uri, local, prefix, attrs, byte_offset)

    def end(self, uri: str, local: str, prefix: str, byte_offset: int) -> None:
        for h in self._handlers:
            h.end(uri, local, prefix, byte_offset)

    def text(self, data: str) -> None:
        for h in self._handlers:
            h.text(data)

    def pi(self, target: str, data: str) -> None:
        for h in self._handlers:
            h.pi(target, data)


def iter_chunks(stream: IO[bytes], size: int = CHUNK_SIZE) -> Iterable[bytes]:
    """Read a binary stream in chunks of ``size`` bytes."""
    read: Callable[[int], bytes] = stream.read
    while True:
        chunk = read(size)
        if not chunk:
            return
        yield chunk


def tag_end(data: bytes | memoryview, offset: int) -> int:
    """Offset just past the ``>`` closing the tag that starts at ``offset`` (quotes respected)."""
    quote = 0
    n = len(data)
    i = offset
    while i < n:
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x3E:
            return i + 1
        i += 1
    raise EdxmlError("edxml.xml.malformed", "tag is not closed", where=f"byte {offset}")
