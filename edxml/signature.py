"""Sign packages with XMLDSig and classify the signature of every package we receive.

What we emit (docs/signatures.md says why): an enveloped ``<Signature>`` in the XMLDSig
namespace as the last child of ``edXML:edXMLHeader``, RSA-SHA256 over an exclusive-c14n
SignedInfo holding one ``Reference URI=""`` whose transforms are enveloped-signature, an XPath
filter that leaves out ``edXML:TraceHeader`` elements and the whitespace between them (the axis
appends its own TraceHeader in transit), and exclusive c14n; SHA-256 digest; KeyInfo with the
signer's subject and certificate (then the intermediates).

Signing (:func:`sign_bytes`, :func:`sign_file`) is one streaming pass that digests the package
(any placeholder Signature/DigitalSignature of the header left out) and notes byte offsets,
then a copy of the input with the Signature spliced into the whitespace before
``</edXML:edXMLHeader>``. Splicing inside a text node does not change the digest: once the
enveloped transform removes the Signature the two halves of the text rejoin.

Verification is built against signature wrapping: the package is parsed once, and the bytes
digested are exactly the events read (:class:`DocumentDigester` receives the same
:class:`edxml.xmlsafe.SafeParser` events as the reader); only a Signature that is a child of
edXMLHeader counts, with exactly one ``Reference URI=""``, no Object, no RetrievalMethod.
:func:`verify_signature` turns what the digester saw into a :class:`SignatureVerdict`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree

from edxml.c14n import DSIG_NS, EDXML_NS, ExcC14N, escape_attr, escape_text
from edxml.errors import EdxmlError
from edxml.trust import CertificateInfo, TrustStore, load_certificates, signer_organ_id
from edxml.xmlsafe import CHUNK_SIZE, Limits, SafeParser, tag_end

# -- algorithm identifiers (the exact wire URIs) ------------------------------------------

C14N_EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_EXC_WITH_COMMENTS = C14N_EXC + "WithComments"
C14N_INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_INCLUSIVE_WITH_COMMENTS = C14N_INCLUSIVE + "#WithComments"
ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH_FILTER = "http://www.w3.org/TR/1999/REC-xpath-19991116"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"

TRACE_FILTER_XPATH = ("not(ancestor-or-self::edXML:TraceHeader) and "
                      "not(self::text() and parent::edXML:TraceHeaderList)")
"""Keeps everything but the TraceHeaders and the whitespace between them (the axis appends one)."""

_SIGNATURE_METHODS = {RSA_SHA256: hashes.SHA256, RSA_SHA1: hashes.SHA1}
_DIGEST_METHODS = {SHA256: "sha256", SHA1: "sha1"}
_SIGNEDINFO_C14N = {C14N_EXC: (True, False), C14N_EXC_WITH_COMMENTS: (True, True),
                    C14N_INCLUSIVE: (False, False), C14N_INCLUSIVE_WITH_COMMENTS: (False, True)}
_HEADER = (EDXML_NS, "edXMLHeader")
_ENVELOPE = (EDXML_NS, "edXMLEnvelope")
_SIGNATURE_NAMES = ("Signature", "DigitalSignature")
_DSIG_STRUCTURE = frozenset({"SignedInfo", "SignatureValue", "X509Certificate"})
"""Local names that make an element a signature whatever its namespace or its parent's name."""
_DS = "{%s}" % DSIG_NS
_WATCHED = frozenset({"Signature"}) | _DSIG_STRUCTURE
"""Local names the digester notes outside the header signature (misplaced or disguised)."""


def _ignore(*_args: object) -> None:
    pass

_PARSERS = threading.local()  # lxml parsers serialize callers on a lock: one per thread


def _lxml_parser() -> Any:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, collect_ids=False,
            remove_comments=False, remove_pis=False, remove_blank_text=False)
    return parser


REASONS: dict[str, str] = {
    "edxml.signature.wrapping": "the signature is placed or built in a way that could make it cover other content "
                                "than the package (misplaced or repeated Signature, other References, Object, "
                                "RetrievalMethod)",
    "edxml.signature.unsupported_transform": "the whole-document Reference uses transforms we do not accept",
    "edxml.signature.unsupported_algorithm": "an unknown canonicalization, signature or digest algorithm",
    "edxml.signature.weak_algorithm": "an SHA-1 based signature or digest from a signer not in the configured "
                                      "legacy senders",
    "edxml.signature.digest_mismatch": "the package was changed after signing (the digest does not match)",
    "edxml.signature.bad_value": "the SignatureValue does not verify with the certificate's key",
    "edxml.signature.malformed": "the Signature element lacks a required part or has undecodable values",
    "edxml.signature.not_xmldsig": "XMLDSig structure (SignedInfo, SignatureValue, X509Certificate) outside an "
                                   "XMLDSig Signature element (another namespace or name): judged as a signature, "
                                   "which cannot verify",
    "edxml.signature.no_certificate": "the signature carries no X509Certificate to verify it with",
    "edxml.signature.no_header": "signing: the package has no single non-empty edXMLHeader to carry the signature",
    "edxml.signature.signer_not_valid": "signing: the signer's certificate is not valid at the signing time",
    "edxml.signature.key_mismatch": "signing: the private key does not belong to the certificate",
    "edxml.signature.unsupported_key": "signing: the key is not an RSA key",
    "edxml.signature.key_unreadable": "signing: the key or certificate file could not be loaded",
}


# -- signer --------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False, eq=False)
class Signer:
    """An RSA private key with its certificate and intermediates; never shows the key."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise EdxmlError("edxml.signature.unsupported_key", "only RSA keys can sign packages")
        if self.private_key.public_key().public_numbers() != self.certificate.public_key().public_numbers():
            raise EdxmlError("edxml.signature.key_mismatch",
                             f"the key does not belong to {self.certificate.subject.rfc4514_string()}")
        object.__setattr__(self, "chain", tuple(self.chain))

    def __repr__(self) -> str:
        return (f"Signer(subject={self.certificate.subject.rfc4514_string()!r}, "
                f"serial={self.certificate.serial_number:x})")

    @classmethod
    def from_pem(cls, key_path: str | os.PathLike[str], cert_path: str | os.PathLike[str],
                 password: bytes | str | None = None, *,
                 chain_path: str | os.PathLike[str] | None = None) -> Signer:
        """Key (PKCS#8/PKCS#1 PEM), certificate file (leaf first, intermediates may follow)."""
        pw = password.encode() if isinstance(password, str) else password
        try:
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), pw)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
            raise EdxmlError("edxml.signature.key_unreadable",
                             "cannot load the private key (missing file, wrong password or format)",
                             where=str(key_path)) from None
        try:
            certs = load_certificates(Path(cert_path).read_bytes(), where=str(cert_path))
            if not certs:
                raise EdxmlError("edxml.trust.unreadable", "no certificate in the file", where=str(cert_path))
            if chain_path is not None:
                certs += load_certificates(Path(chain_path).read_bytes(), where=str(chain_path))
        except OSError as exc:
            raise EdxmlError("edxml.signature.key_unreadable", exc.strerror or "cannot read",
                             where=str(cert_path)) from None
        except EdxmlError as exc:
            raise EdxmlError("edxml.signature.key_unreadable", exc.message, where=exc.where) from None
        return cls(key, certs[0], tuple(certs[1:]))  # type: ignore[arg-type]

    @classmethod
    def from_pkcs12(cls, path: str | os.PathLike[str], password: bytes | str | None) -> Signer:
        pw = password.encode() if isinstance(password, str) else password
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(Path(path).read_bytes(), pw)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
            raise EdxmlError("edxml.signature.key_unreadable",
                             "cannot load the PKCS#12 file (missing, wrong password or format)",
                             where=str(path)) from None
        if key is None or cert is None:
            raise EdxmlError("edxml.signature.key_unreadable", "the PKCS#12 file has no key or no certificate",
                             where=str(path))
        return cls(key, cert, tuple(extra or ()))  # type: ignore[arg-type]

    @cached_property
    def _subject_xml(self) -> str:
        return escape_text(self.certificate.subject.rfc4514_string())

    @cached_property
    def _certs_b64(self) -> tuple[str, ...]:
        return tuple(base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
                     for c in (self.certificate, *self.chain))

    def _check_valid(self, now: datetime | None) -> None:
        now = now or datetime.now(timezone.utc)
        c = self.certificate
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise EdxmlError("edxml.signature.signer_not_valid",
                             f"the certificate of {c.subject.rfc4514_string()} is valid from "
                             f"{c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d}, "
                             f"not at {now:%Y-%m-%d %H:%M}")


# -- what we emit --------------------------------------------------------------------------


def _signed_info(digest_b64: str, nl: str, step: str, *, canonical: bool) -> str:
    """SignedInfo as written in the package, or (``canonical``) as exclusive c14n renders it."""
    i2, i3, i4, i5 = (nl + step * n for n in (2, 3, 4, 5))

    def empty(tag: str, algorithm: str) -> str:
        return (f'<{tag} Algorithm="{algorithm}"></{tag}>' if canonical
                else f'<{tag} Algorithm="{algorithm}"/>')

    xmlns = f' xmlns="{DSIG_NS}"' if canonical else ""
    # exclusive c14n drops xmlns:edXML here: the prefix is not visibly utilized by <XPath>.
    xpath_ns = "" if canonical else f' xmlns:edXML="{EDXML_NS}"'
    return (f"<SignedInfo{xmlns}>"
            f"{i2}{empty('CanonicalizationMethod', C14N_EXC)}"
            f"{i2}{empty('SignatureMethod', RSA_SHA256)}"
            f'{i2}<Reference URI="">'
            f"{i3}<Transforms>"
            f"{i4}{empty('Transform', ENVELOPED_SIGNATURE)}"
            f'{i4}<Transform Algorithm="{XPATH_FILTER}">'
            f"{i5}<XPath{xpath_ns}>{TRACE_FILTER_XPATH}</XPath>"
            f"{i4}</Transform>"
            f"{i4}{empty('Transform', C14N_EXC)}"
            f"{i3}</Transforms>"
            f"{i3}{empty('DigestMethod', SHA256)}"
            f"{i3}<DigestValue>{digest_b64}</DigestValue>"
            f"{i2}</Reference>"
            f"{nl + step}</SignedInfo>")


def _signature_element(signer: Signer, digest: bytes, nl: str, step: str) -> bytes:
    digest_b64 = base64.b64encode(digest).decode("ascii")
    canonical = _signed_info(digest_b64, nl, step, canonical=True).encode("utf-8")
    value = signer.private_key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
    i1, i2, i3 = (nl + step * n for n in (1, 2, 3))
    certs = "".join(f"{i3}<X509Certificate>{b64}</X509Certificate>" for b64 in signer._certs_b64)
    return (f'<Signature xmlns="{DSIG_NS}">'
            f"{i1}{_signed_info(digest_b64, nl, step, canonical=False)}"
            f"{i1}<SignatureValue>{base64.b64encode(value).decode('ascii')}</SignatureValue>"
            f"{i1}<KeyInfo>{i2}<X509Data>"
            f"{i3}<X509SubjectName>{signer._subject_xml}</X509SubjectName>{certs}"
            f"{i2}</X509Data>{i1}</KeyInfo>"
            f"{nl}</Signature>").encode("utf-8")


# -- signing -------------------------------------------------------------------------------


class _SignPass:
    """Handler for the signing pass: filtered SHA-256 digest, placeholder and header offsets."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        update = self.hasher.update
        self.c14n = ExcC14N(lambda data, _filtered: update(data), drop_filtered=True)
        self._c_start = self.c14n.start
        self._c_end = self.c14n.end
        self.text = self._text
        self.pi = self._pi
        self._path: list[tuple[str, str]] = []
        self._skip = 0
        self._cut_start = 0
        self.cuts: list[tuple[int, int]] = []  # (start tag offset, end event offset) of placeholders
        self.header_start = -1
        self.header_end = -1
        self.headers = 0

    def _text(self, data: str) -> None:
        if not self._skip:
            self.c14n.text(data)

    def _pi(self, target: str, data: str) -> None:
        if not self._skip:
            self.c14n.pi(target, data)

    def start(self, uri: str, local: str, prefix: str, attrs: list[tuple[str, str, str, str]],
              byte_offset: int) -> None:
        if self._skip:
            self._skip += 1
            return
        path = self._path
        if len(path) == 2 and uri == EDXML_NS and local == "edXMLHeader" and path[1] == _ENVELOPE:
            self.header_start = byte_offset
        elif len(path) == 3 and local in _SIGNATURE_NAMES and path[2] == _HEADER and path[1] == _ENVELOPE:
            self._skip = 1
            self._cut_start = byte_offset
            return
        path.append((uri, local))
        self._c_start(uri, local, prefix, attrs, byte_offset)

    def end(self, uri: str, local: str, prefix: str, byte_offset: int) -> None:
        if self._skip:
            self._skip -= 1
            if not self._skip:
                self.cuts.append((self._cut_start, byte_offset))
            return
        path = self._path
        if len(path) == 3 and path[2] == _HEADER and path[1] == _ENVELOPE:
            self.header_end = byte_offset
            self.headers += 1
        path.pop()
        self._c_end(uri, local, prefix, byte_offset)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read(self, start: int, end: int) -> bytes:
        return self.data[start:end]

    def tag_end(self, offset: int) -> int:
        return tag_end(self.data, offset)


class _File:
    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f = f
        self.size = size

    def read(self, start: int, end: int) -> bytes:
        self.f.seek(start)
        return self.f.read(end - start)

    def tag_end(self, offset: int) -> int:
        window = 4096
        while True:
            data = self.read(offset, min(offset + window, self.size))
            try:
                return offset + tag_end(data, 0)
            except EdxmlError:
                if offset + window >= self.size:
                    raise
                window *= 4


_WS = frozenset(b" \t\r\n")


def _resolve_cuts(src: _Bytes | _File, cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start tag offset, end event offset) of placeholders -> byte ranges to leave out."""
    out = []
    for start, end_event in cuts:
        stag_end = src.tag_end(start)
        if src.read(stag_end - 2, stag_end) == b"/>":
            out.append((start, stag_end))
        else:
            out.append((start, src.tag_end(end_event)))
    return out


def _check_header(src: _Bytes | _File, sp: _SignPass) -> int:
    if sp.headers != 1 or sp.header_end < 0:
        raise EdxmlError("edxml.signature.no_header",
                         "the package needs exactly one edXML:edXMLHeader (in edXML:edXMLEnvelope) to sign")
    stag_end = src.tag_end(sp.header_start)
    if src.read(stag_end - 2, stag_end) == b"/>":
        raise EdxmlError("edxml.signature.no_header", "edXML:edXMLHeader is empty")
    return sp.header_end


def _splice_point(src: _Bytes | _File, header_end: int, cuts: list[tuple[int, int]]) -> tuple[int, str, str]:
    """Where to insert the Signature, and the newline+indent and indent step to format it with.

    Looks at the whitespace before ``</edXML:edXMLHeader>`` as the output will have it
    (placeholders removed): with two line breaks in it, the Signature goes after the first one
    and its indentation; otherwise right before the end tag.
    """
    cut_by_end = {e: s for s, e in cuts}
    run: list[tuple[int, int]] = []  # (offset, byte), collected backwards
    pos = header_end
    window_start, window = pos, b""
    while len(run) < 4096:
        if pos in cut_by_end:
            pos = cut_by_end[pos]
            continue
        if pos == 0:
            break
        if pos - 1 < window_start:
            window_start = max(0, pos - 512)
            window = src.read(window_start, pos)
        b = window[pos - 1 - window_start]
        if b not in _WS:
            break
        run.append((pos - 1, b))
        pos -= 1
    run.reverse()
    newlines = [i for i, (_o, b) in enumerate(run) if b == 0x0A]
    if len(newlines) >= 2:
        i = newlines[0] + 1
        while run[i][1] in (0x20, 0x09):
            i += 1
        indent = bytes(b for _o, b in run[newlines[0] + 1:i]).decode("ascii")
        return run[i][0], "\n" + indent, "  "
    if newlines:
        indent = bytes(b for _o, b in run[newlines[-1] + 1:]).decode("ascii")
        return header_end, "\n" + indent, "  "
    return header_end, "", ""


def _pieces(size: int, cuts: list[tuple[int, int]], insert_at: int) -> list[tuple[int, int] | None]:
    """Byte ranges to copy, in order, with None where the Signature goes."""
    out: list[tuple[int, int] | None] = []
    pos = 0
    inserted = False
    for start, end in sorted(cuts) + [(size, size)]:
        if not inserted and insert_at <= start:
            if pos < insert_at:
                out.append((pos, insert_at))
            out.append(None)
            inserted = True
            pos = max(pos, insert_at)
        if pos < start:
            out.append((pos, start))
        pos = max(pos, end)
    return out


# The in-memory fast path. Canonicalizing through Python parser callbacks costs ~0.3 ms for a
# 30 KB package, more than the RSA signature itself; libxml2 does it in C in a fraction of that.
# It is used only when every "<" in the input is a real tag (no comment, CDATA, PI or DOCTYPE),
# so the splice offsets can be found by searching the bytes, and only when each searched name
# is unique; anything else takes the streaming path, which is exact for every input. Both
# paths compute the same digest (tests/edxml/test_signature.py checks it on generated packages).

_FAST_MAX = 8 * 1024 * 1024
_XML_DECL = re.compile(rb"\A(?:\xef\xbb\xbf)?<\?xml[ \t\r\n][^>]*\?>")
_DECL_ENCODING = re.compile(rb"""encoding[ \t\r\n]*=[ \t\r\n]*["']([^"']*)["']""")
_HEADER_PATH = "{%s}edXMLEnvelope/{%s}edXMLHeader" % (EDXML_NS, EDXML_NS)
_TRACE_TAG = "{%s}TraceHeader" % EDXML_NS
_TRACE_LIST_TAG = "{%s}TraceHeaderList" % EDXML_NS


def _remove_keeping_tail(el: Any) -> None:
    parent = el.getparent()
    tail = el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


def _qname(el: Any) -> bytes:
    local = el.tag.rsplit("}", 1)[-1]
    return (f"{el.prefix}:{local}" if el.prefix else local).encode("utf-8")


def _unique_qname(root: Any, el: Any) -> bool:
    local = el.tag.rsplit("}", 1)[-1]
    return sum(1 for e in root.iter("{*}" + local) if e.prefix == el.prefix) == 1


_SPECIAL_MARKUP = re.compile(rb"<[!?]")  # comment, CDATA, DOCTYPE, PI (faster than two `in` scans)
_NAME_END = frozenset(b" \t\r\n/>")


def _find_tag(data: bytes, opening: bytes, start: int = 0) -> int:
    """Offset of the first ``opening`` (e.g. ``</edXML:edXMLHeader``) that ends the name there."""
    n = len(opening)
    pos = data.find(opening, start)
    while pos >= 0 and pos + n < len(data) and data[pos + n] not in _NAME_END:
        pos = data.find(opening, pos + 1)
    return pos


def _fast_plan(data: bytes) -> tuple[bytes, list[tuple[int, int]], int] | None:
    """(digest, cuts, header end offset) via libxml2, or None when the input needs the slow path."""
    if len(data) > _FAST_MAX or data[:1] in (b"\x00", b"\xff", b"\xfe"):
        return None
    decl = _XML_DECL.match(data)
    body = 0
    if decl is not None:
        enc = _DECL_ENCODING.search(decl.group())
        if enc is not None and enc.group(1).lower() not in (b"utf-8", b"utf8"):
            return None
        body = decl.end()
    if _SPECIAL_MARKUP.search(data, body) is not None:
        return None
    try:
        root = etree.fromstring(data, _lxml_parser())
    except etree.XMLSyntaxError:
        return None
    headers = root.findall(_HEADER_PATH)
    if len(headers) != 1 or not _unique_qname(root, headers[0]):
        return None
    header = headers[0]
    # every "<" is a tag and no other element has this name: the first match is the end tag
    header_end = _find_tag(data, b"</" + _qname(header))
    if header_end < 0:
        return None
    cuts = []
    placeholders = [c for c in header if isinstance(c.tag, str) and c.tag.rsplit("}", 1)[-1] in _SIGNATURE_NAMES]
    for p in placeholders:
        if not _unique_qname(root, p):
            return None
        qname = _qname(p)
        start = _find_tag(data, b"<" + qname)
        if start < 0:
            return None
        stag_end = tag_end(data, start)
        if data[stag_end - 2:stag_end] == b"/>":
            cuts.append((start, stag_end))
        else:
            close = _find_tag(data, b"</" + qname, stag_end)
            if close < 0:
                return None
            cuts.append((start, tag_end(data, close)))
    # now the tree may be changed: what remains is what the signature's Reference covers
    for p in placeholders:
        _remove_keeping_tail(p)
    for trace_list in root.iter(_TRACE_LIST_TAG):
        trace_list.text = None
        for child in trace_list:
            child.tail = None
    for trace in list(root.iter(_TRACE_TAG)):
        if next(trace.iterancestors(_TRACE_TAG), None) is None:
            _remove_keeping_tail(trace)
    canonical = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    return hashlib.sha256(canonical).digest(), cuts, header_end


def signature_for_digest(signer: Signer, digest: bytes, *, indent: str,
                         now: datetime | None = None) -> bytes:
    """Our Signature element for a document whose filtered exclusive-c14n SHA-256 is `digest`.

    For a writer that knows its own canonical form (edxml.writer) and so needs no parse; the
    element is laid out as `sign_bytes` lays it out at indentation `indent`.
    """
    signer._check_valid(now)
    return _signature_element(signer, digest, "\n" + indent, "  ")


def sign_bytes(data: bytes, signer: Signer, *, now: datetime | None = None,
               limits: Limits = Limits()) -> bytes:
    """The package with our Signature as the last child of edXMLHeader (placeholders replaced).

    Raises EdxmlError (``edxml.xml.*`` for unreadable input, ``edxml.signature.no_header``,
    ``edxml.signature.signer_not_valid`` when the certificate is not valid at ``now``).
    """
    signer._check_valid(now)
    src = _Bytes(data)
    plan = _fast_plan(data)
    if plan is None:
        digest, cuts, header_end = _streaming_plan(data, src, limits)
    else:
        digest, cuts, header_end = plan
    insert_at, nl, step = _splice_point(src, header_end, cuts)
    signature = _signature_element(signer, digest, nl, step)
    return b"".join(signature if p is None else data[p[0]:p[1]] for p in _pieces(len(data), cuts, insert_at))


def _streaming_plan(source: Any, src: _Bytes | _File, limits: Limits) -> tuple[bytes, list[tuple[int, int]], int]:
    sp = _SignPass()
    parser = SafeParser(sp, limits)
    if isinstance(src, _File):
        src.f.seek(0)
        while chunk := src.f.read(CHUNK_SIZE):
            parser.feed(chunk)
        parser.close()
    else:
        parser.parse(source)
    sp.c14n.flush()
    header_end = _check_header(src, sp)
    return sp.hasher.digest(), _resolve_cuts(src, sp.cuts), header_end


def sign_file(src: str | os.PathLike[str], dst: str | os.PathLike[str] | IO[bytes], signer: Signer, *,
              now: datetime | None = None, limits: Limits = Limits()) -> None:
    """Stream-sign the file ``src`` into ``dst`` (a path or a writable binary stream), bounded memory.

    A path ``dst`` is written beside itself and renamed into place, so it may be ``src`` itself
    and never holds half a package."""
    signer._check_valid(now)
    if isinstance(dst, (str, os.PathLike)):
        target = Path(dst)
        fd, tmp_name = tempfile.mkstemp(prefix=".signing-", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "wb") as tmp:
                sign_file(src, tmp, signer, now=now, limits=limits)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_name, 0o666 & ~umask)
            os.replace(tmp_name, target)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        fsrc = _File(f, size)
        digest, cuts, header_end = _streaming_plan(None, fsrc, limits)
        insert_at, nl, step = _splice_point(fsrc, header_end, cuts)
        signature = _signature_element(signer, digest, nl, step)
        for piece in _pieces(size, cuts, insert_at):
            if piece is None:
                dst.write(signature)
                continue
            f.seek(piece[0])
            remaining = piece[1] - piece[0]
            while remaining:
                block = f.read(min(remaining, 1 << 20))
                if not block:
                    raise EdxmlError("edxml.xml.malformed", "the file changed while it was being signed",
                                     where=str(src))
                dst.write(block)
                remaining -= len(block)


# -- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationPolicy:
    """What a receiver accepts beyond RSA-SHA256 over our own transform list."""

    allow_sha1: bool = False
    """Accept rsa-sha1/sha1 from every sender (off: refused with ``edxml.signature.weak_algorithm``)."""
    legacy_sha1_senders: frozenset[str] = frozenset()
    """OrganIds (of the signer's certificate) still allowed to sign with rsa-sha1/sha1."""
    certificate_organ_ids: Mapping[str, str] = field(default_factory=dict)
    """SHA-256 fingerprint (hex) of a signing certificate without a UID → the OrganId it signs for."""
    require_crl: bool = False
    """Every issuer in the chain must have a loaded CRL (else ``edxml.signature.crl_missing``)."""
    accept_unfiltered: bool = True
    """Accept the plain [enveloped, exc-c14n] transform list other senders use."""


@dataclass(frozen=True)
class SignatureVerdict:
    """How a received package is signed. ``status``: valid | invalid | placeholder | absent."""

    status: str
    reason: str | None
    message: str
    signer: CertificateInfo | None = None
    signature_method: str | None = None
    digest_method: str | None = None
    trace_filter: bool | None = None
    """True when the signature leaves TraceHeaders out (our form), False for the plain form."""
    signer_organ_id: str | None = None
    """The OrganId the signing certificate belongs to (its subject UID, or the configured mapping
    for a certificate without one); None when unknown. The inbound pipeline compares it with From."""

    @property
    def valid(self) -> bool:
        return self.status == "valid"


@dataclass(frozen=True)
class CapturedSignature:
    """A Signature/DigitalSignature child of edXMLHeader as read, re-serialized with its context.

    ``xml`` declares on its root every namespace in scope where the element stood, so SignedInfo
    canonicalizes here exactly as in the package (inclusive c14n needs the ancestors' ones).
    """

    uri: str
    local: str
    xml: bytes = field(repr=False)
    byte_offset: int
    too_large: bool = False
    nested_signature: bool = False

    @property
    def is_xmldsig(self) -> bool:
        return self.uri == DSIG_NS and self.local == "Signature"

    @cached_property
    def element(self) -> Any:
        return etree.fromstring(self.xml, _lxml_parser())

    @cached_property
    def whole_reference(self) -> tuple[Any, bool | None] | None:
        """The single ``Reference URI=""`` of SignedInfo and its transform form
        (:func:`_transform_form`), or None: asked while reading and again when verifying."""
        ref = _whole_document_reference(self.element)
        return None if ref is None else (ref, _transform_form(ref))



@dataclass(frozen=True)
class DigestResult:
    """What :class:`DocumentDigester` saw: header signatures, digests, misplaced signatures."""

    signatures: tuple[CapturedSignature, ...]
    digests: dict[tuple[str, bool], bytes] = field(repr=False)
    """(digest method URI, TraceHeader filter applied) -> digest of the canonical document."""
    misplaced: tuple[str, ...] = ()
    """Where XMLDSig Signature elements appeared outside edXMLHeader."""
    disguised: tuple[str, ...] = ()
    """Where XMLDSig structure (SignedInfo, SignatureValue, X509Certificate, any namespace) appeared
    outside every captured header signature: a signature under another name, judged as one."""


class _Capture:
    """Serializes the events of one small subtree back to XML."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.depth = 0
        self.limit = limit
        self.too_large = False
        self.nested_signature = False

    def _add(self, s: str) -> None:
        if self.too_large:
            return
        self.size += len(s)
        if self.size > self.limit:
            self.too_large = True
            self.parts.clear()
        else:
            self.parts.append(s)

    def start(self, uri: str, local: str, prefix: str, attrs: list[tuple[str, str, str, str]],
              decls: Sequence[tuple[str, str]]) -> None:
        if self.depth and uri == DSIG_NS and local == "Signature":
            self.nested_signature = True
        self.depth += 1
        parts = ["<", f"{prefix}:{local}" if prefix else local]
        for p, u in decls:
            parts.append(f' xmlns:{p}="{escape_attr(u)}"' if p else f' xmlns="{escape_attr(u)}"')
        for _u, a_local, a_prefix, value in attrs:
            parts.append(f' {a_prefix}:{a_local}="{escape_attr(value)}"' if a_prefix
                         else f' {a_local}="{escape_attr(value)}"')
        parts.append(">")
        self._add("".join(parts))

    def end(self, prefix: str, local: str) -> None:
        self.depth -= 1
        self._add(f"</{prefix}:{local}>" if prefix else f"</{local}>")

    def text(self, data: str) -> None:
        self._add(escape_text(data))

    def pi(self, target: str, data: str) -> None:
        self._add(f"<?{target} {data}?>" if data else f"<?{target}?>")


class DocumentDigester:
    """A SafeParser handler computing what the header signature of a package needs.

    Forward it every event of the package (with :class:`edxml.xmlsafe.FanOut` next to the
    reader's own handler, ``start_ns`` included), then call :meth:`result`. Until the header
    Signature has been read it keeps four digests (SHA-1/SHA-256, with and without the
    TraceHeader filter); then only the one the signature names; none at all when the header
    holds no real XMLDSig signature. It captures the header Signature (bounded) and notes any
    XMLDSig Signature elsewhere.
    """

    switches_text = True  # see _route

    def __init__(self, *, max_signature_bytes: int = 512 * 1024) -> None:
        self._max_capture = max_signature_bytes
        self._hashers: dict[tuple[str, bool], Any] = {
            (SHA1, False): hashlib.sha1(), (SHA1, True): hashlib.sha1(),
            (SHA256, False): hashlib.sha256(), (SHA256, True): hashlib.sha256()}
        self._targets = [(h.update, filt) for (_alg, filt), h in self._hashers.items()]
        self._c14n: ExcC14N | None = ExcC14N(self._sink)
        self._path: list[tuple[str, str]] = []
        self._ns_counts: list[int] = []
        self._ns_decls: list[tuple[str, str]] = []
        self._pending: list[tuple[str, str]] = []
        self._capture: _Capture | None = None
        self._capture_at = (0, "", "")
        self._signatures: list[CapturedSignature] = []
        self._misplaced: list[str] = []
        self._disguised: list[str] = []
        self._selected = False
        self._capture_digested = False  # the captured element is not the one being verified
        self._route()

    def _route(self) -> None:
        """Point ``text`` and ``pi`` at whoever needs them now: the parser calls them for every
        text run, so outside a captured signature they go straight to the c14n (or nowhere)."""
        if self._capture is not None:
            self.text, self.pi = self._capture_text, self._capture_pi
        elif self._c14n is not None:
            self.text, self.pi = self._c14n.text, self._c14n.pi
        else:
            self.text, self.pi = _ignore, _ignore

    def _sink(self, data: bytes, filtered: bool) -> None:
        for update, filt in self._targets:
            if not (filtered and filt):
                update(data)

    def start_ns(self, prefix: str, uri: str) -> None:
        self._pending.append((prefix, uri))

    def start(self, uri: str, local: str, prefix: str, attrs: list[tuple[str, str, str, str]],
              byte_offset: int) -> None:
        decls = self._pending
        if decls:
            self._pending = []
            self._ns_decls.extend(decls)
        self._ns_counts.append(len(decls))
        path = self._path
        capture = self._capture
        if capture is not None:
            capture.start(uri, local, prefix, attrs, decls)
            if self._capture_digested and self._c14n is not None:
                self._c14n.start(uri, local, prefix, attrs, byte_offset)
        elif (len(path) == 3 and local in _SIGNATURE_NAMES and path[2] == _HEADER and path[1] == _ENVELOPE):
            in_scope: dict[str, str] = {}
            for p, u in self._ns_decls:
                in_scope[p] = u
            if in_scope.get("") == "":
                del in_scope[""]
            self._capture = capture = _Capture(self._max_capture)
            self._capture_at = (byte_offset, uri, local)
            capture.start(uri, local, prefix, attrs, sorted(in_scope.items()))
            # Only an XMLDSig Signature can be the enveloped signature its own digest leaves
            # out; anything else in the header (a placeholder, a signature under another name
            # or namespace) is part of what a real signature covers.
            self._capture_digested = not (uri == DSIG_NS and local == "Signature")
            if self._capture_digested and self._c14n is not None:
                self._c14n.start(uri, local, prefix, attrs, byte_offset)
            self._route()
        else:
            if local in _WATCHED:
                if uri == DSIG_NS and local == "Signature":
                    where = "/".join(lc for _u, lc in path) + "/" + local
                    self._misplaced.append(f"{where} (byte {byte_offset})")
                elif local in _DSIG_STRUCTURE and len(self._disguised) < 10:
                    where = "/".join(lc for _u, lc in path) + "/" + local
                    self._disguised.append(f"{where} (byte {byte_offset})")
            if self._c14n is not None:
                self._c14n.start(uri, local, prefix, attrs, byte_offset)
        path.append((uri, local))

    def end(self, uri: str, local: str, prefix: str, byte_offset: int) -> None:
        n = self._ns_counts.pop()
        if n:
            del self._ns_decls[-n:]
        path = self._path
        path.pop()
        capture = self._capture
        if capture is not None:
            capture.end(prefix, local)
            if self._capture_digested and self._c14n is not None:
                self._c14n.end(uri, local, prefix, byte_offset)
            if capture.depth == 0:
                self._capture = None
                self._capture_digested = False
                offset, c_uri, c_local = self._capture_at
                captured = CapturedSignature(c_uri, c_local, "".join(capture.parts).encode("utf-8"), offset,
                                             capture.too_large, capture.nested_signature)
                self._signatures.append(captured)
                if captured.is_xmldsig and not self._selected:
                    self._select(captured)
                self._route()
            return
        if self._c14n is not None:
            self._c14n.end(uri, local, prefix, byte_offset)
        if len(path) == 2 and local == "edXMLHeader" and uri == EDXML_NS and path[1] == _ENVELOPE \
                and not self._selected:
            self._stop_hashing()  # the header held no real signature: nothing will need a digest

    def _capture_text(self, data: str) -> None:
        self._capture.text(data)  # type: ignore[union-attr]
        if self._capture_digested and self._c14n is not None:
            self._c14n.text(data)

    def _capture_pi(self, target: str, data: str) -> None:
        self._capture.pi(target, data)  # type: ignore[union-attr]
        if self._capture_digested and self._c14n is not None:
            self._c14n.pi(target, data)

    def _stop_hashing(self) -> None:
        self._c14n = None
        self._hashers = {}
        self._targets = []
        self._route()

    def _select(self, captured: CapturedSignature) -> None:
        """Keep only the digest this signature needs (none if it cannot be a real signature)."""
        self._selected = True
        needed = None
        if not captured.too_large:
            try:
                whole = None if _placeholder_reason(captured) is not None else captured.whole_reference
                if whole is not None:
                    ref, form = whole
                    method = ref.find(_DS + "DigestMethod")
                    alg = method.get("Algorithm") if method is not None else None
                    if alg in _DIGEST_METHODS and form is not None:
                        needed = (alg, form)
            except etree.XMLSyntaxError:
                needed = None
        if needed is None:
            self._stop_hashing()
            return
        if self._c14n is not None:
            self._c14n.flush()  # what is buffered so far belongs to every digest still kept
        self._hashers = {needed: self._hashers[needed]}
        self._targets = [(self._hashers[needed].update, needed[1])]

    def result(self) -> DigestResult:
        """Call once the parser is closed."""
        if self._c14n is not None:
            self._c14n.flush()
        return DigestResult(tuple(self._signatures), {k: h.digest() for k, h in self._hashers.items()},
                            tuple(self._misplaced), tuple(self._disguised))


def _whole_document_reference(sig: Any) -> Any:
    signed_info = sig.find(_DS + "SignedInfo")
    if signed_info is None:
        return None
    refs = [r for r in signed_info.findall(_DS + "Reference") if r.get("URI") == ""]
    return refs[0] if len(refs) == 1 else None


def _normalize_space(s: str | None) -> str:
    return " ".join((s or "").split())


def _transform_form(ref: Any) -> bool | None:
    """True for our [enveloped, TraceHeader XPath, exc-c14n], False for [enveloped, exc-c14n]."""
    transforms = ref.find(_DS + "Transforms")
    if transforms is None:
        return None
    items = [t for t in transforms if isinstance(t.tag, str)]
    if any(t.tag != _DS + "Transform" for t in items):
        return None
    algs = [t.get("Algorithm") for t in items]
    if algs == [ENVELOPED_SIGNATURE, C14N_EXC]:
        return False if _no_children(items[0]) and _no_children(items[1]) else None
    if algs == [ENVELOPED_SIGNATURE, XPATH_FILTER, C14N_EXC]:
        if not (_no_children(items[0]) and _no_children(items[2])):
            return None
        xpath = [c for c in items[1] if isinstance(c.tag, str)]
        if (len(xpath) != 1 or xpath[0].tag != _DS + "XPath" or len(xpath[0])
                or _normalize_space(xpath[0].text) != TRACE_FILTER_XPATH
                or xpath[0].nsmap.get("edXML") != EDXML_NS):
            return None
        return True
    return None


def _no_children(el: Any) -> bool:
    return not any(isinstance(c.tag, str) for c in el)


def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


_EDXML = "{%s}" % EDXML_NS
_JAVA_PLACEHOLDER_LAYOUT = ("SignedInfo", "SignatureValue", "KeyInfo")


def _has_certificate(el: Any) -> bool:
    """Whether any X509Certificate (any namespace) below ``el`` holds a DER certificate."""
    for cert in el.iter("{*}X509Certificate"):
        try:
            x509.load_der_x509_certificate(_b64(cert.text))
            return True
        except (ValueError, binascii.Error):
            continue
    return False


def _placeholder_reason(captured: CapturedSignature) -> str | None:
    """Why this header element is one of the reference libraries' placeholders, or None.

    Only two exact shapes are placeholders (docs/signatures.md): the .NET dialect's empty
    ``edXML:DigitalSignature``, and the reference Java library's ``Signature`` in the edXML
    namespace, laid out as SignedInfo, SignatureValue, KeyInfo (in that order, some may be
    missing) and carrying no certificate (the library writes an 11-character stub), so that no
    one can be its signer. An XMLDSig Signature is never a placeholder, even when empty.
    """
    if captured.uri != EDXML_NS or captured.too_large:
        return None
    el = captured.element
    children = [c for c in el if isinstance(c.tag, str)]
    if captured.local == "DigitalSignature":
        if not children and not (el.text or "").strip():
            return "the .NET dialect's empty edXML DigitalSignature"
        return None
    names = [c.tag[len(_EDXML):] if c.tag.startswith(_EDXML) else None for c in children]
    if None in names or not names:
        return None
    layout = [n for n in _JAVA_PLACEHOLDER_LAYOUT if n in names]
    if names != layout or _has_certificate(el):
        return None
    return "the reference library's Signature outside the XMLDSig namespace, without a certificate"


def _signature_like(captured: CapturedSignature) -> bool:
    """Whether a header element that is not an XMLDSig Signature carries XMLDSig structure."""
    if captured.too_large:
        return True
    return any(isinstance(el.tag, str) and etree.QName(el).localname in _DSIG_STRUCTURE
               for el in captured.element.iter())


def _invalid(reason: str, message: str, **kw: Any) -> SignatureVerdict:
    return SignatureVerdict("invalid", reason, message, **kw)


def verify_signature(result: DigestResult, trust: TrustStore, policy: VerificationPolicy = VerificationPolicy(),
                     now: datetime | None = None) -> SignatureVerdict:
    """Classify and check the header signature a :class:`DocumentDigester` captured.

    No downgrade: an XMLDSig Signature is judged as a signature even when empty; anything else
    carrying XMLDSig structure (in another namespace, or named otherwise) is a signature that
    cannot verify, so ``invalid``; only the reference libraries' exact placeholder shapes are
    ``placeholder``; any other header content is covered by the digest like the rest.
    """
    now = now or datetime.now(timezone.utc)
    if result.misplaced:
        return _invalid("edxml.signature.wrapping",
                        "an XMLDSig Signature outside edXMLHeader: " + "; ".join(result.misplaced[:3]))
    if result.disguised:
        return _invalid("edxml.signature.not_xmldsig",
                        "XMLDSig structure outside an XMLDSig Signature: " + "; ".join(result.disguised[:3]))
    real = [c for c in result.signatures if c.is_xmldsig]
    placeholders = []
    for c in result.signatures:
        if c.is_xmldsig:
            continue
        try:
            reason = _placeholder_reason(c)
            if reason is None and _signature_like(c):
                return _invalid("edxml.signature.not_xmldsig",
                                f"a {c.local} in namespace {c.uri or '(none)'!r} carries signature structure "
                                "but is not an XMLDSig Signature: it cannot be verified")
        except etree.XMLSyntaxError:  # pragma: no cover - our own serialization always parses
            return _invalid("edxml.signature.malformed", f"the {c.local} element could not be re-read")
        if reason is not None:
            placeholders.append(reason)
    if len(real) > 1:
        return _invalid("edxml.signature.wrapping", f"{len(real)} XMLDSig Signature elements in edXMLHeader")
    if not real:
        if placeholders:
            return SignatureVerdict("placeholder", None, f"placeholder signature: {placeholders[0]}")
        return SignatureVerdict("absent", None, "the package has no signature")
    captured = real[0]
    if captured.too_large:
        return _invalid("edxml.signature.malformed", "the Signature element is unreasonably large")
    if captured.nested_signature:
        return _invalid("edxml.signature.wrapping", "a Signature inside the Signature")
    if not any(isinstance(c.tag, str) for c in captured.element):
        return _invalid("edxml.signature.malformed",
                        "an empty XMLDSig Signature: a signature that signs nothing is not a placeholder")
    return _verify_xmldsig(captured.element, result, trust, policy, now, captured)


def _verify_xmldsig(sig: Any, result: DigestResult, trust: TrustStore, policy: VerificationPolicy,
                    now: datetime, captured: CapturedSignature | None = None) -> SignatureVerdict:
    # iter() walks the tree in C and makes a Python element only for a match (the Signature
    # itself is neither); ".//" in ElementPath made one for every element.
    if next(sig.iter(_DS + "Object"), None) is not None:
        return _invalid("edxml.signature.wrapping", "the Signature carries an Object element")
    if next(sig.iter(_DS + "RetrievalMethod"), None) is not None:
        return _invalid("edxml.signature.wrapping", "KeyInfo uses RetrievalMethod")
    children = [c for c in sig if isinstance(c.tag, str)]
    if not children or children[0].tag != _DS + "SignedInfo":
        return _invalid("edxml.signature.malformed", "SignedInfo is not the first child of Signature")
    signed_info = children[0]
    value_el = sig.find(_DS + "SignatureValue")
    c14n_el = signed_info.find(_DS + "CanonicalizationMethod")
    method_el = signed_info.find(_DS + "SignatureMethod")
    if value_el is None or c14n_el is None or method_el is None:
        return _invalid("edxml.signature.malformed",
                        "SignedInfo needs CanonicalizationMethod and SignatureMethod, Signature a SignatureValue")
    sig_method = method_el.get("Algorithm")
    info: dict[str, Any] = {"signature_method": sig_method}

    refs = signed_info.findall(_DS + "Reference")
    whole = [r for r in refs if r.get("URI") == ""]
    others = [r.get("URI") for r in refs if r.get("URI") != ""]
    if len(whole) != 1:
        return _invalid("edxml.signature.wrapping",
                        "the signature must have exactly one Reference URI=\"\" (whole package)", **info)
    bad = [u for u in others if u is None or not u.startswith("cid:")]
    if bad:
        return _invalid("edxml.signature.wrapping", f"Reference to {bad[0]!r}: only URI=\"\" is accepted", **info)
    ref = whole[0]
    digest_el = ref.find(_DS + "DigestMethod")
    digest_method = digest_el.get("Algorithm") if digest_el is not None else None
    info["digest_method"] = digest_method

    if c14n_el.get("Algorithm") not in _SIGNEDINFO_C14N:
        return _invalid("edxml.signature.unsupported_algorithm",
                        f"SignedInfo canonicalization {c14n_el.get('Algorithm')!r}", **info)
    if sig_method not in _SIGNATURE_METHODS:
        return _invalid("edxml.signature.unsupported_algorithm", f"signature method {sig_method!r}", **info)
    if digest_method not in _DIGEST_METHODS:
        return _invalid("edxml.signature.unsupported_algorithm", f"digest method {digest_method!r}", **info)
    # the same Reference the digester chose its digest by (SignedInfo is the first child)
    known = captured.whole_reference if captured is not None else None
    form = known[1] if known is not None and known[0] is ref else _transform_form(ref)
    if form is None or (form is False and not policy.accept_unfiltered):
        algs = [t.get("Algorithm") for t in ref.iterfind(f"{_DS}Transforms/{_DS}Transform")]
        return _invalid("edxml.signature.unsupported_transform", f"transforms {algs}", **info)
    info["trace_filter"] = form

    digest = result.digests.get((digest_method, form))
    if digest is None:  # pragma: no cover - DocumentDigester always keeps the one it selected
        return _invalid("edxml.signature.digest_mismatch", "no digest was computed for this reference", **info)
    try:
        expected = _b64(ref.findtext(_DS + "DigestValue"))
        signature_value = _b64(value_el.text)
    except (ValueError, binascii.Error):
        return _invalid("edxml.signature.malformed", "DigestValue or SignatureValue is not base64", **info)
    if expected != digest:
        return _invalid("edxml.signature.digest_mismatch",
                        "the package content does not match the signed digest (changed after signing)", **info)

    ders = []
    certs = []
    for el in sig.iterfind(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate"):
        try:
            # A sender's certificates repeat on every package it sends: their text is decoded
            # once per store, and the same DER object keys the facts below (its hash is kept).
            # Only certificate-sized texts are remembered (the store keeps 4096 facts).
            b64 = el.text
            der = (trust.fact(("b64", b64), lambda b64=b64: _b64(b64)) if b64 and len(b64) <= 16384
                   else _b64(b64))
            certs.append(trust.certificate(der))  # parsed once per store, like the chain below
        except (ValueError, binascii.Error):
            return _invalid("edxml.signature.malformed", "an X509Certificate does not parse", **info)
        ders.append(der)
    if not certs:
        return _invalid("edxml.signature.no_certificate", "KeyInfo carries no X509Certificate", **info)

    exclusive, with_comments = _SIGNEDINFO_C14N[c14n_el.get("Algorithm")]
    prefixes = None
    if exclusive:
        incl = c14n_el.find("{%s}InclusiveNamespaces" % C14N_EXC)
        if incl is not None:
            prefixes = [p if p != "#default" else "" for p in (incl.get("PrefixList") or "").split()] or None
    canonical = etree.tostring(signed_info, method="c14n", exclusive=exclusive, with_comments=with_comments,
                               inclusive_ns_prefixes=prefixes)
    hash_cls = _SIGNATURE_METHODS[sig_method]

    # The candidates with their public keys, loaded once per chain: a key is a function of the
    # certificate's bytes, and loading it (and asking the key ABC what it is) is not free.
    candidates = trust.fact(("signer-keys", tuple(ders)), lambda: [
        (c, key, isinstance(key, rsa.RSAPublicKey)) for c in _signer_candidates(certs)
        for key in (c.public_key(),)])
    ordered = [c for c, _key, _rsa in candidates]
    leaf = None
    for cand, key, is_rsa in candidates:
        if not is_rsa:
            continue
        try:
            key.verify(signature_value, canonical, padding.PKCS1v15(), hash_cls())
        except InvalidSignature:
            continue
        leaf = cand
        break
    if leaf is None:
        return _invalid("edxml.signature.bad_value", "the SignatureValue does not verify with the certificate's key",
                        signer=CertificateInfo.from_certificate(ordered[0]), **info)
    leaf_der = ders[certs.index(leaf)]
    signer = trust.fact(("info", leaf_der), lambda: CertificateInfo.from_certificate(leaf))
    mapping = policy.certificate_organ_ids
    organ_id = trust.fact(("organ-id", leaf_der, tuple(sorted(mapping.items()))),
                          lambda: signer_organ_id(leaf, mapping))
    info["signer_organ_id"] = organ_id
    verdict = trust.check([leaf] + [c for c in certs if c is not leaf], now, require_crl=policy.require_crl)
    if not verdict.ok:
        return _invalid(verdict.reason or "edxml.signature.untrusted", verdict.message, signer=signer, **info)
    if (sig_method == RSA_SHA1 or digest_method == SHA1) and not policy.allow_sha1 \
            and organ_id not in policy.legacy_sha1_senders:
        return _invalid("edxml.signature.weak_algorithm",
                        f"SHA-1 signatures are accepted only from the configured legacy senders, not from "
                        f"{organ_id or 'a certificate without an OrganId'}", signer=signer, **info)
    unchecked = len(others)
    message = f"signed by {signer.subject}"
    if unchecked:
        message += f" ({unchecked} attachment reference(s) not dereferenced; the whole-package reference covers them)"
    return SignatureVerdict("valid", None, message, signer=signer, **info)


def _signer_candidates(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """The certificates of KeyInfo, those that issue another one of them last."""
    issuers = {c.issuer for c in certs}
    return sorted(certs, key=lambda c: c.subject in issuers and c.subject != c.issuer)


def digest_events(source: bytes | str | os.PathLike[str] | IO[bytes], *, limits: Limits = Limits()) -> DigestResult:
    """Run a :class:`DocumentDigester` over a whole package (bytes, path or binary stream)."""
    digester = DocumentDigester()
    SafeParser(digester, limits).parse(source)
    return digester.result()


def verify_file(source: str | os.PathLike[str] | IO[bytes], trust: TrustStore,
                policy: VerificationPolicy = VerificationPolicy(), *, now: datetime | None = None,
                limits: Limits = Limits()) -> SignatureVerdict:
    """Parse a package once (streamed) and classify its signature."""
    return verify_signature(digest_events(source, limits=limits), trust, policy, now)


def verify_bytes(data: bytes, trust: TrustStore, policy: VerificationPolicy = VerificationPolicy(), *,
                 now: datetime | None = None, limits: Limits = Limits()) -> SignatureVerdict:
    return verify_signature(digest_events(data, limits=limits), trust, policy, now)

