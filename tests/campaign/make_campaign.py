"""Generate the hostile-input campaign against running gateways (not hand-listed).

Inbound: packages a province receives from the axis. They are built from the reader's hostile
corpus (`tests.edxml.hostile.make_corpus`: every case whose limits are the defaults; the packages
the reader accepts are signed with the sender's real key, so that only the hostile part decides)
and from families of their own: signature attacks, attachment attacks, encoding and identifier
attacks. Each `InboundCase` says what the receiving gateway must do with it: publish it
(`PUBLISHED`) or quarantine it with a reason code. A few cases are meant to be refused by the
axis itself (`expect` starting with `axis:`); the others may be refused by the axis only when
`axis_may_refuse` (hostile XML that the axis's own header parser refuses before routing).

Outbound: events an agency's software publishes to the gateway (`OutboundCase`): raw Kafka
records (headers and value), each expected to end as a dead letter plus, when the record was a
readable CloudEvent, a `delivery.failed` with that reason; good events (`DELIVERED`) are
interleaved.

Signed cases need keys, which are generated at run time and never committed, so the cases are
built when the campaign runs (deterministic apart from the signatures themselves).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from edxml.signature import RSA_SHA1, RSA_SHA256, Signer, sign_bytes
from edxml.text import encode_legacy
from tests.edxml.hostile import make_corpus as corpus

PUBLISHED = "published"
DELIVERED = "delivered"

SENDER = "000.00.00.H55"          # Thái Nguyên's provincial committee (systemid 00.55.W00)
SENDER_2 = "000.00.02.H55"        # another Thái Nguyên agency the H55 gateway serves
RECIPIENT = "000.00.00.H41"       # Nghệ An's provincial committee (the H41 gateway)
DSIG = "http://www.w3.org/2000/09/xmldsig#"
ESCAPE_MARK = "campaign-escape"
BOMB = 1 + 258 * 16_000            # ~4 MB of zeros (the hand-built deflate needs 1 + 258k)   # in every path-traversal name: must never appear on disk


@dataclass(frozen=True)
class InboundCase:
    name: str
    family: str
    about: str
    data: bytes = field(repr=False)
    expect: str                           # PUBLISHED, a reason code, or "axis:<reason>"
    messagetype: str = "edoc"             # edoc | status
    axis_may_refuse: bool = False
    document_id: str | None = None        # when unique to this case (rejection 02 is checked)
    send_sha256: str | None = None        # a wrong hash-file header, for the axis's own check
    known_bug: str | None = None          # the expectation is the design; the code misses it


@dataclass(frozen=True)
class Credentials:
    """Signers for the campaign (from the lab's test PKI)."""

    sender: Signer                        # the sending agency's valid key
    other_agency: Signer                  # another trusted agency (the recipient's)
    expired: Signer
    revoked: Signer
    untrusted: Signer
    pki_now: datetime                     # when the PKI was made (expired cert was valid before)


# --- signing helpers -------------------------------------------------------------------------

def sign(data: bytes, signer: Signer, *, now: datetime | None = None) -> bytes:
    return sign_bytes(data, signer, now=now)


def _signature_span(data: bytes) -> tuple[int, int]:
    start = data.index(b'<Signature xmlns="' + DSIG.encode() + b'"')
    end = data.index(b"</Signature>", start) + len(b"</Signature>")
    return start, end


def resign(data: bytes, signer: Signer, *, method: str = RSA_SHA1) -> bytes:
    """Change the SignatureMethod of a signed package and compute a real SignatureValue for it
    (the SignedInfo canonicalised from the changed bytes, signed with the matching hash)."""
    data = data.replace(f'Algorithm="{RSA_SHA256}"'.encode(), f'Algorithm="{method}"'.encode(), 1)
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True,
                                                  remove_blank_text=False))
    signed_info = root.find(f".//{{{DSIG}}}SignedInfo")
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    algorithm = hashes.SHA1() if method == RSA_SHA1 else hashes.SHA256()  # noqa: S303 - the attack
    value = base64.b64encode(signer.private_key.sign(canonical, padding.PKCS1v15(), algorithm))
    return re.sub(rb"<SignatureValue>[^<]*</SignatureValue>",
                  b"<SignatureValue>" + value + b"</SignatureValue>", data, count=1)


def _cert_b64(signer: Signer) -> bytes:
    return signer._certs_b64[0].encode()  # noqa: SLF001 - the attack swaps exactly this text


# --- package builders ---------------------------------------------------------------------------

def _doc_id(n: str) -> str:
    return f"{SENDER},2024/05/31,{n}/UBND-VP"


def _document(number: str, *, d: corpus.Dialect = corpus.REF, subject: str = corpus.SUBJECT,
              atts: tuple[corpus.Att, ...] = (corpus.Att(),), header_set: dict[str, Any] | None
              = None, **kw: Any) -> str:
    changes = {"DocumentId": _doc_id(number), "Code/CodeNumber": number, "Subject": subject}
    changes.update(header_set or {})
    return corpus.document(d, header=corpus.edit(corpus.doc_header(), set=changes), atts=atts,
                           **kw)


# --- the reader corpus, as received packages ----------------------------------------------------

def _swap_status_parties(data: bytes) -> bytes:
    """The corpus's status packages come from the recipient; make them come from the sender."""
    a, b = corpus.FROM_ID.encode(), corpus.TO_ID.encode()
    return data.replace(a, b"\x00SWAP\x00").replace(b, a).replace(b"\x00SWAP\x00", b)


def reader_corpus_cases(creds: Credentials) -> Iterator[InboundCase]:
    built = corpus.build()
    for file_name, case in sorted(built.cases.items()):
        exp = case.expect
        if "limits" in exp:      # these need smaller limits than a gateway runs with
            continue
        name = "reader-" + file_name.removesuffix(".edxml")
        data = case.data
        is_status = exp.get("kind") == "status" or b"StatusCode>" in data or \
            (b"ResponseFor>" in data and b"<edXML:To>" not in data and b"<To>" not in data
             and b"<q:To>" not in data)
        if is_status:
            data = _swap_status_parties(data)
        messagetype = "status" if is_status else "edoc"
        about = f"reader corpus ({exp.get('attack')}): {exp.get('about')}"
        if exp["outcome"] == "refused":
            yield InboundCase(name, f"xml/{exp.get('attack')}", about, data, exp["reason"],
                              messagetype, axis_may_refuse=True)
            continue
        errors = [a["error"] for a in exp.get("attachments", []) if a.get("error")]
        if not is_status and RECIPIENT.encode() not in data:
            # Read, but not addressed to the agency the axis delivers it to.
            errors = ["package.not_addressed"]
        expect = errors[0] if errors else PUBLISHED
        try:
            signed = sign(data, creds.sender)
        except Exception:  # noqa: BLE001 - unsignable as it is: sent unsigned
            yield InboundCase(name + "-unsigned", f"xml/{exp.get('attack')}", about, data,
                              errors[0] if errors else "inbound.signature_required",
                              messagetype, axis_may_refuse=True)
            continue
        yield InboundCase(name + "-signed", f"xml/{exp.get('attack')}", about + " (signed)",
                          signed, expect, messagetype, axis_may_refuse=True)


# --- signature attacks ----------------------------------------------------------------------------

def signature_cases(creds: Credentials) -> Iterator[InboundCase]:
    n = 0

    def case(label: str, about: str, build: Callable[[str, corpus.Dialect], bytes], expect: str,
             dialects: tuple[str, ...] = ("ref", "bare", "alt")) -> Iterator[InboundCase]:
        nonlocal n
        for dname in dialects:
            n += 1
            number = f"9{n:03d}"
            data = build(number, corpus.DIALECTS[dname])
            # a changed DocumentId is answered under the changed one
            yield InboundCase(f"sig-{label}-{dname}", "signature", about, data, expect,
                              document_id=None if label == "document-id-changed"
                              else _doc_id(number))

    def signed(number: str, d: corpus.Dialect, **kw: Any) -> bytes:
        return sign(_document(number, d=d, **kw).encode(), creds.sender)

    def edit_signature(fn: Callable[[bytes], bytes]) -> Callable[[str, corpus.Dialect], bytes]:
        def build(number: str, d: corpus.Dialect) -> bytes:
            data = signed(number, d)
            s, e = _signature_span(data)
            return data[:s] + fn(data[s:e]) + data[e:]
        return build

    yield from case("valid", "a correctly signed package (control)", signed, PUBLISHED)
    yield from case("stripped", "the Signature element removed after signing",
                    edit_signature(lambda sig: b""), "inbound.signature_required")
    yield from case("placeholder-edxml-ns", "an empty placeholder Signature in the edXML namespace",
                    lambda num, d: _document(num, d=d, header_extra=(
                        f'      <Signature xmlns="{corpus.NS}"></Signature>\n')).encode(),
                    "inbound.signature_required")
    yield from case("placeholder-digital", "a DigitalSignature placeholder",
                    lambda num, d: _document(num, d=d, header_extra=(
                        f'      <DigitalSignature xmlns="{corpus.NS}">abc</DigitalSignature>\n'))
                    .encode(), "inbound.signature_required")
    yield from case("subject-changed", "Subject changed after signing",
                    lambda num, d: signed(num, d).replace(corpus.SUBJECT.encode(),
                                                          b"V/v chuyen tien gap"),
                    "edxml.signature.digest_mismatch")
    yield from case("document-id-changed", "DocumentId changed after signing",
                    lambda num, d: signed(num, d).replace(f"{num}/UBND-VP".encode(),
                                                          f"{num}1/UBND-VP".encode(), 1),
                    "edxml.signature.digest_mismatch")
    yield from case("attachment-changed", "one attachment byte changed after signing",
                    lambda num, d: signed(num, d).replace(
                        corpus.b64(corpus.PDF)[:12].encode(), b"JVBERi0xLjUK", 1),
                    "edxml.signature.digest_mismatch")
    yield from case("to-added", "a recipient added after signing",
                    lambda num, d: signed(num, d).replace(
                        f"<{d.p}To>".encode(), f"<{d.p}To><{d.p}OrganId>000.00.00.G22</{d.p}OrganId>"
                        f"</{d.p}To><{d.p}To>".encode(), 1), "edxml.signature.digest_mismatch")

    def moved_to_envelope(number: str, d: corpus.Dialect) -> bytes:
        data = signed(number, d)
        s, e = _signature_span(data)
        sig = data[s:e]
        data = data[:s] + data[e:]
        marker = f"</{d.p}edXMLEnvelope>".encode()
        return data.replace(marker, sig + marker, 1)

    yield from case("moved-to-envelope", "the Signature moved out of edXMLHeader (wrapping)",
                    moved_to_envelope, "edxml.signature.wrapping")

    def moved_into_message_header(number: str, d: corpus.Dialect) -> bytes:
        data = signed(number, d)
        s, e = _signature_span(data)
        sig = data[s:e]
        data = data[:s] + data[e:]
        marker = f"</{d.p}MessageHeader>".encode()
        return data.replace(marker, sig + marker, 1)

    yield from case("moved-into-message-header", "the Signature inside MessageHeader",
                    moved_into_message_header, "edxml.signature.wrapping", ("ref",))
    yield from case("twice", "the same Signature twice in edXMLHeader",
                    edit_signature(lambda sig: sig + b"\n" + sig), "edxml.signature.wrapping")
    yield from case("object", "an Object carrying a copy of the header inside the Signature",
                    edit_signature(lambda sig: sig.replace(
                        b"</Signature>", b"<Object><MessageHeader>fake</MessageHeader></Object>"
                        b"</Signature>")), "edxml.signature.wrapping")
    yield from case("nested", "a Signature inside the Signature",
                    edit_signature(lambda sig: sig.replace(b"</KeyInfo>", b"</KeyInfo>" + sig, 1)),
                    "edxml.signature.wrapping", ("ref",))
    yield from case("second-reference", "a second Reference to an element id",
                    edit_signature(lambda sig: sig.replace(
                        b"</SignedInfo>", b'<Reference URI="#x"><DigestMethod Algorithm='
                        b'"http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue>AAAA'
                        b"</DigestValue></Reference></SignedInfo>")), "edxml.signature.wrapping")
    yield from case("retrieval-method", "KeyInfo fetches its key through RetrievalMethod",
                    edit_signature(lambda sig: sig.replace(
                        b"<KeyInfo>", b'<KeyInfo><RetrievalMethod URI="http://evil.invalid/k"/>')),
                    "edxml.signature.wrapping", ("ref", "bare"))
    yield from case("certificate-swapped", "KeyInfo carries another trusted agency's certificate",
                    edit_signature(lambda sig: sig.replace(_cert_b64(creds.sender),
                                                           _cert_b64(creds.other_agency))),
                    "edxml.signature.bad_value")
    yield from case("certificate-removed", "KeyInfo without X509Certificate",
                    edit_signature(lambda sig: re.sub(
                        rb"\s*<X509Certificate>[^<]*</X509Certificate>", b"", sig)),
                    "edxml.signature.no_certificate", ("ref", "bare"))
    yield from case("certificate-garbage", "an X509Certificate that is not DER",
                    edit_signature(lambda sig: sig.replace(_cert_b64(creds.sender), b"AAAAAAAA")),
                    # an XMLDSig block with a junk certificate is a broken real signature
                    "edxml.signature.malformed", ("ref",))
    yield from case("value-not-base64", "SignatureValue is not base64",
                    edit_signature(lambda sig: re.sub(
                        rb"<SignatureValue>[^<]*</SignatureValue>",
                        b"<SignatureValue>!!!not base64!!!</SignatureValue>", sig)),
                    "edxml.signature.malformed", ("ref",))
    yield from case("value-wrong", "a SignatureValue of the right size made by another key",
                    lambda num, d: _swap_value(signed(num, d), sign(
                        _document(num, d=d, subject="khác").encode(), creds.sender)),
                    "edxml.signature.bad_value", ("ref", "bare"))
    yield from case("value-missing", "SignatureValue removed",
                    edit_signature(lambda sig: re.sub(
                        rb"\s*<SignatureValue>[^<]*</SignatureValue>", b"", sig)),
                    "edxml.signature.malformed", ("ref",))
    yield from case("rsa-sha1", "a real rsa-sha1 signature; this gateway forbids SHA-1",
                    lambda num, d: resign(signed(num, d), creds.sender),
                    "edxml.signature.weak_algorithm")
    yield from case("unknown-transform", "an unknown Transform in the Reference",
                    edit_signature(lambda sig: sig.replace(
                        b"</Transforms>", b'<Transform Algorithm="urn:x-evil:xslt"/></Transforms>')),
                    "edxml.signature.unsupported_transform", ("ref", "bare"))
    yield from case("md5-digest", "DigestMethod MD5",
                    edit_signature(lambda sig: sig.replace(
                        b"http://www.w3.org/2001/04/xmlenc#sha256",
                        b"http://www.w3.org/2001/04/xmldsig-more#md5")),
                    "edxml.signature.unsupported_algorithm", ("ref",))
    yield from case("unknown-c14n", "an unknown CanonicalizationMethod",
                    edit_signature(lambda sig: sig.replace(
                        b'<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"',
                        b'<CanonicalizationMethod Algorithm="urn:x-evil:c14n"', 1)),
                    "edxml.signature.unsupported_algorithm", ("ref",))
    yield from case("expired", "signed with an expired certificate (while it was valid)",
                    lambda num, d: sign(_document(num, d=d).encode(), creds.expired,
                                        now=creds.pki_now - timedelta(days=200)),
                    "edxml.signature.cert_expired")
    yield from case("revoked", "signed with a certificate listed in the CRL",
                    lambda num, d: sign(_document(num, d=d).encode(), creds.revoked),
                    "edxml.signature.cert_revoked")
    yield from case("untrusted", "signed with a certificate from an untrusted root",
                    lambda num, d: sign(_document(num, d=d).encode(), creds.untrusted),
                    "edxml.signature.untrusted")
    # Valid but odd: what the signature deliberately leaves out, or what c14n ignores.
    yield from case("trace-header-added", "a TraceHeader added after signing (excluded by design)",
                    lambda num, d: signed(num, d).replace(
                        f"<{d.p}Bussiness>".encode(),
                        f"<{d.p}TraceHeader><{d.p}OrganId>000.00.00.G22</{d.p}OrganId>"
                        f"<{d.p}Timestamp>2024/05/31 09:00:00</{d.p}Timestamp></{d.p}TraceHeader>"
                        f"<{d.p}Bussiness>".encode(), 1), PUBLISHED)
    yield from case("comment-added", "a comment added after signing (c14n without comments)",
                    lambda num, d: signed(num, d).replace(
                        f"<{d.p}Subject>".encode(), f"<!-- x --><{d.p}Subject>".encode(), 1),
                    PUBLISHED, ("ref",))
    # The signer is the sender: a valid signature by another agency binds nothing to From.
    yield from case("signed-by-other-agency", "validly signed by another trusted agency than From",
                    lambda num, d: sign(_document(num, d=d).encode(), creds.other_agency),
                    "signature.signer_mismatch", ("ref",))


def _swap_value(target: bytes, donor: bytes) -> bytes:
    value = re.search(rb"<SignatureValue>[^<]*</SignatureValue>", donor)
    assert value is not None
    return re.sub(rb"<SignatureValue>[^<]*</SignatureValue>", value.group(0), target, count=1)


# --- attachment attacks ---------------------------------------------------------------------------

def attachment_cases(creds: Credentials) -> Iterator[InboundCase]:
    zeros = corpus.zeros_member
    stored = corpus.stored
    pdf = corpus.PDF
    # Wrappers as the reference library writes them: declared application/zip under the
    # wrapped file's own name (an attachment named *.zip is a ZIP file, never unwrapped).
    zip_type = "application/zip"
    escape = ESCAPE_MARK.encode()
    cases: list[tuple[str, str, tuple[corpus.Att, ...], str]] = [
        ("zip-bomb-4mib", "a ZIP-wrapped attachment that inflates 4 MiB of zeros",
         (corpus.Att(name="bom.pdf", ctype=zip_type,
                     content=corpus.zip_bytes([zeros(b"a.pdf", BOMB)])),),
         "edxml.attachment.zip_bomb"),
        ("zip-bomb-lies-about-size", "a ZIP member declaring 10 bytes that inflates 4 MiB: "
         "a damaged ZIP", (corpus.Att(name="bom.pdf", ctype=zip_type, content=corpus.zip_bytes(
             [zeros(b"a.pdf", BOMB, declared=10)])),), "edxml.attachment.truncated"),
        ("zip-declares-1tib", "a ZIP64 member declaring 1 TiB",
         (corpus.Att(name="huge.pdf", ctype=zip_type, content=corpus.zip_bytes(
             [zeros(b"a.pdf", 1 + 258 * 4, zip64_size=1 << 40)])),), "edxml.attachment.zip_bomb"),
        ("zip-bomb-second-attachment", "the second of two attachments is a ZIP bomb",
         (corpus.Att(), corpus.Att(cid="cid:2", name="b.pdf", ctype=zip_type,
                                   content=corpus.zip_bytes([zeros(b"b", BOMB)]))),
         "edxml.attachment.zip_bomb"),
        ("zip-truncated", "a declared ZIP cut in the middle",
         (corpus.Att(name="cut.pdf", ctype=zip_type,
                     content=corpus.zip_bytes([stored(b"a.pdf", pdf)], cut=200)),),
         "edxml.attachment.truncated"),
        ("duplicate-content-id", "two attachments with one ContentId",
         (corpus.Att(), corpus.Att(name="2.pdf")), "edxml.attachment.duplicate_id"),
        ("base64-garbage", "attachment content that is not base64",
         (corpus.Att(b64="%%%%" + corpus.b64(pdf)),), "edxml.attachment.base64"),
        ("name-control-char", "an AttachmentName with a control character",
         (corpus.Att(name="a\x9b.pdf"),), "edxml.text.control"),
        ("name-bidi", "an AttachmentName with a right-to-left override (fdp.exe)",
         (corpus.Att(name="cong-van\u202efdp.exe"),), "edxml.text.bidi"),
    ]
    for i, member in enumerate((b"../../../../../../tmp/" + escape + b"-zip.pdf",
                                b"/tmp/" + escape + b"-abs.pdf",
                                b"..\\..\\..\\" + escape + b"-win.pdf",
                                b"a/../../" + escape + b"-mixed.pdf",
                                b"C:/Windows/" + escape + b".pdf")):
        cases.append((f"zip-slip-{i}", f"a ZIP-wrapped attachment whose member is {member!r}: the "
                      "name is recorded, never used as a path",
                      (corpus.Att(name="goi.pdf", ctype=zip_type,
                                  content=corpus.zip_bytes([stored(member, pdf + bytes([i]))])),),
                      PUBLISHED))
    cases.append(("zip-slip-two-members", "a ZIP of two traversal members is kept as a ZIP",
                  (corpus.Att(name="goi.pdf", ctype=zip_type, content=corpus.zip_bytes(
                      [stored(b"../../" + escape + b"-1.pdf", pdf),
                       stored(b"../../" + escape + b"-2.pdf", pdf + b"2")])),), PUBLISHED))
    for i, name in enumerate(("../../../../../../tmp/" + ESCAPE_MARK + "-name.pdf",
                              "/etc/cron.d/" + ESCAPE_MARK, "..\\..\\" + ESCAPE_MARK + ".pdf",
                              "con.pdf", "a" * 250 + ".pdf", ".htaccess", "~/" + ESCAPE_MARK)):
        cases.append((f"name-traversal-{i}", f"AttachmentName {name[:40]!r}: stored by content, "
                      "never by name", (corpus.Att(name=name, content=pdf + b"n%d" % i),),
                      PUBLISHED))
    cases.append(("manifest-lists-missing", "the manifest lists an attachment nobody carries",
                  (corpus.Att(),), PUBLISHED))
    for j, (label, about, atts, expect) in enumerate(cases):
        number = f"8{j:03d}"
        extra = {"manifest_extra": ("cid:missing",)} if label == "manifest-lists-missing" else {}
        text = _document(number, atts=atts, **extra)
        yield InboundCase(f"att-{label}", "attachment", about, sign(text.encode(), creds.sender),
                          expect, document_id=_doc_id(number))
    # The axis checks the package hash it is given: a mismatch never reaches a gateway.
    for j, wrong in enumerate(("0" * 64, hashlib.sha256(b"other").hexdigest())):
        number = f"87{j:02d}"
        data = sign(_document(number).encode(), creds.sender)
        yield InboundCase(f"att-package-hash-mismatch-{j}", "attachment",
                          "the hash-file header does not match the package", data,
                          "axis:package.hash_mismatch", send_sha256=wrong)


# --- encoding attacks ---------------------------------------------------------------------------

def encoding_cases(creds: Credentials) -> Iterator[InboundCase]:
    n = 0

    def doc(number: str, **kw: Any) -> str:
        return _document(number, **kw)

    def add(label: str, about: str, data: bytes, expect: str, *, signed: bool = True,
            axis_may_refuse: bool = False, number: str) -> InboundCase:
        return InboundCase(f"enc-{label}", "encoding", about,
                           sign(data, creds.sender) if signed else data, expect,
                           axis_may_refuse=axis_may_refuse, document_id=_doc_id(number))

    overlongs = {"slash-2": b"\xc0\xaf", "slash-3": b"\xe0\x80\xaf", "slash-4": b"\xf0\x80\x80\xaf",
                 "lt-2": b"\xc0\xbc", "nul-2": b"\xc0\x80", "surrogate": b"\xed\xa0\x80",
                 "cesu-pair": b"\xed\xa0\xbd\xed\xb8\x80", "bare-continuation": b"\x80\x80",
                 "fe-ff": b"\xfe\xff", "over-max": b"\xf4\x90\x80\x80"}
    for label, raw in overlongs.items():
        n += 1
        number = f"7{n:03d}"
        # in the Subject (the axis reads the header too), and in an attachment's name, which
        # only the gateway reads
        yield add(f"overlong-subject-{label}", f"invalid UTF-8 ({label}) in the Subject",
                  corpus.splice(doc(number, subject="V/v " + corpus.MARK), raw),
                  "edxml.xml.encoding", signed=False, axis_may_refuse=True, number=number)
        n += 1
        number = f"7{n:03d}"
        yield add(f"overlong-attachment-name-{label}",
                  f"invalid UTF-8 ({label}) in an AttachmentName (past the header)",
                  corpus.splice(doc(number, atts=(corpus.Att(name="a" + corpus.MARK + ".pdf"),)),
                                raw), "edxml.xml.encoding", signed=False, number=number)
    legacy = corpus.LEGACY_TEXT
    for enc in ("tcvn3", "vni"):
        n += 1
        number = f"7{n:03d}"
        mojibake = encode_legacy(legacy, enc).decode("latin-1")
        yield add(f"legacy-{enc}-subject", f"{enc} bytes read as Latin-1 in the Subject",
                  doc(number, subject=mojibake).encode(), "edxml.text.legacy_encoding",
                  number=number)
        n += 1
        number = f"7{n:03d}"
        yield add(f"legacy-{enc}-raw-bytes", f"raw {enc} bytes (not UTF-8) in the Subject",
                  corpus.splice(doc(number, subject=corpus.MARK), encode_legacy(legacy, enc)),
                  "edxml.xml.encoding", signed=False, axis_may_refuse=True, number=number)
    for label, char in (("c1-0x85", "\x85"), ("c1-0x9b", "\x9b"), ("del", "\x7f"),
                        ("noncharacter-fffe", "&#xFFFE;"), ("noncharacter-fdd0", "\ufdd0"),
                        ("noncharacter-1fffe", "\U0001fffe"), ("noncharacter-ffff", "\uffff"),
                        ("vertical-tab-ref", "&#xB;"), ("nul-ref", "&#0;")):
        n += 1
        number = f"7{n:03d}"
        expect = "edxml.xml.malformed" if label in ("vertical-tab-ref", "nul-ref", "noncharacter-ffff",
                                                    "noncharacter-fffe") else "edxml.text.control"
        data = doc(number, subject=f"V/v {char} trích yếu").encode()
        bug = None
        yield replace(add(f"control-{label}", f"control character {label} in the Subject", data, expect,
                  signed=expect != "edxml.xml.malformed",
                  axis_may_refuse=expect == "edxml.xml.malformed", number=number),
                      known_bug=bug)
    for label, char in (("rlo", "\u202e"), ("lre", "\u202a"), ("rli", "\u2067"),
                        ("pdf", "\u202c"), ("fsi", "\u2068")):
        n += 1
        number = f"7{n:03d}"
        yield add(f"bidi-subject-{label}", f"bidi control {label} in the Subject",
                  doc(number, subject=f"V/v {char}gnáht 01 neyuhc{char} tiền").encode(),
                  "edxml.text.bidi", number=number)
    n += 1
    number = f"7{n:03d}"
    yield add("bidi-from-name", "a right-to-left override in From/OrganName",
              doc(number, header_set={"From/OrganName": "UBND \u202etỉnh"}).encode(),
              "edxml.text.bidi", number=number)
    # valid but odd
    import unicodedata
    n += 1
    number = f"7{n:03d}"
    yield add("nfd-subject", "decomposed (NFD) Vietnamese in the Subject",
              doc(number, subject=unicodedata.normalize("NFD", "V/v Nghệ An tiếp nhận")).encode(),
              PUBLISHED, number=number)
    n += 1
    number = f"7{n:03d}"
    yield add("bom", "a UTF-8 byte order mark before the XML declaration",
              b"\xef\xbb\xbf" + doc(number).encode(), PUBLISHED, number=number)
    n += 1
    number = f"7{n:03d}"
    yield add("zero-width", "zero-width joiners in the Subject",
              doc(number, subject="V/v liên\u200bthông\u200d").encode(), PUBLISHED, number=number)


# --- identifier attacks ---------------------------------------------------------------------------

def identifier_cases(creds: Credentials) -> Iterator[InboundCase]:
    n = 0
    doc_ids = {
        "newline": (f"{SENDER},2024/05/31,1/UBND&#10;VP", "edxml.value.document_id"),
        "tab": (f"{SENDER},2024/05/31,1/UBND&#9;VP", "edxml.value.document_id"),
        "cr": (f"{SENDER},2024/05/31,1/UBND&#13;VP", "edxml.value.document_id"),
        "extra-commas": (f"{SENDER},2024/05/31,1,2,3/UBND-VP", PUBLISHED),
        "semicolons": (f"{SENDER};2024/05/31;1/UBND-VP", PUBLISHED),
        "pipes": (f"{SENDER}|2024/05/31|1/UBND-VP", PUBLISHED),
        "path": (f"{SENDER},2024/05/31,../../../etc/passwd", PUBLISHED),
        "uuid": (str(uuid.UUID(int=0x1234)), PUBLISHED),
        "sql": (f"{SENDER},2024/05/31,1'; DROP TABLE docs;--", PUBLISHED),
        "json": (f'{SENDER},2024/05/31,1"}},{{"x":"', PUBLISHED),
        "huge": (f"{SENDER},2024/05/31,{'9' * 5000}/UBND-VP", PUBLISHED),
    }
    for label, (value, expect) in doc_ids.items():
        n += 1
        number = f"6{n:03d}"
        data = _document(number, header_set={"DocumentId": value}).encode()
        yield InboundCase(f"id-document-id-{label}", "identifier",
                          f"DocumentId with {label}", sign(data, creds.sender), expect)
    # The reader is lenient with OrganIds that are merely odd (a warning), strict with unsafe
    # ones; the pipeline then requires the receiving agency, exactly, among To.
    for label, value, expect in (("lowercase", "000.00.00.h41", "package.not_addressed"),
                                 ("short", "000.00.H41", "package.not_addressed"),
                                 ("unicode-digits", "٠٠٠.٠٠.٠٠.H41", "package.not_addressed"),
                                 ("spaces", "000 00 00 H41", "edxml.value.organ_id"),
                                 ("path", "../../H41", "edxml.value.organ_id"),
                                 ("sql", "000.00.00.H41' OR '1'='1", "edxml.value.organ_id"),
                                 ("empty", "", "edxml.value.organ_id")):
        n += 1
        number = f"6{n:03d}"
        data = _document(number, header_set={"To/OrganId": value}).encode()
        yield InboundCase(f"id-to-organ-{label}", "identifier", f"To/OrganId {value!r}",
                          sign(data, creds.sender), expect, axis_may_refuse=True)


def inbound_cases(creds: Credentials) -> list[InboundCase]:
    out: list[InboundCase] = []
    for family in (reader_corpus_cases, signature_cases, attachment_cases, encoding_cases,
                   identifier_cases):
        out.extend(family(creds))
    names = [c.name for c in out]
    assert len(names) == len(set(names)), "case names must be unique"
    return out


# =================================================================================================
# Outbound: events from an agency's software
# =================================================================================================

@dataclass(frozen=True)
class OutboundCase:
    name: str
    family: str
    about: str
    topic: str                               # outbound_documents | outbound_receipts
    headers: tuple[tuple[str, bytes], ...]
    value: bytes | None = field(repr=False)
    expect: str                              # DELIVERED or a reason code
    delivery_failed: bool = True             # False when the record is not a readable event
    event_id: str | None = None
    known_bug: str | None = None             # the expectation is the design; the code misses it
    live: bool = True                        # False: would take a gateway lane down (known bug)
    # What a running gateway answers instead, when it differs: there the record arrives on the
    # sending agency's own topic, which decides the sender (event.sender_mismatch).
    live_expect: str | None = None


@dataclass
class OutboundEnv:
    """What the outbound cases refer to: the sending province's inbox (an allowed root) and a
    directory outside every allowed root, both on this machine."""

    inbox: Path
    outside: Path
    run: str

    def file(self, name: str, content: bytes) -> tuple[Path, dict[str, Any]]:
        name = re.sub(r"[^A-Za-z0-9.-]", "_", name)
        path = self.inbox / f"{self.run}-{name}"
        path.write_bytes(content)
        return path, {"content_id": name[:20], "attachment_name": name,
                      "content_type": "application/pdf", "uri": path.as_uri(),
                      "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}


def _headers(event_id: str, ce_type: str, *, agency: str | None = SENDER,
             extra: tuple[tuple[str, bytes], ...] = (), subject: str = "campaign"
             ) -> tuple[tuple[str, bytes], ...]:
    out = [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()),
           ("ce_source", f"urn:qlvb:{agency or SENDER}".encode()), ("ce_type", ce_type.encode()),
           ("ce_time", b"2026-01-01T00:00:00Z"), ("content-type", b"application/json"),
           ("ce_subject", subject.encode())]
    if agency is not None:
        out.append(("ce_agency", agency.encode()))
    return tuple(out) + extra


def good_document(number: str, attachment: dict[str, Any], *, sender: str = SENDER,
                  to: str = RECIPIENT) -> dict[str, Any]:
    return {
        "message_header": {
            "from": {"organ_id": sender, "organ_name": "UBND tỉnh Thái Nguyên"},
            "to": [{"organ_id": to, "organ_name": "UBND tỉnh Nghệ An"}],
            "code": {"code_number": number, "code_notation": "UBND-VP"},
            "promulgation_info": {"place": "Thái Nguyên", "promulgation_date": "2026-01-05"},
            "document_type": {"type": 1, "type_detail": 0, "type_name": "Công văn"},
            "subject": f"V/v chiến dịch kiểm thử {number}",
        },
        "attachments": [attachment],
        "secrecy": "none",
    }


def good_receipt(code: str = "03", *, sender: str = SENDER, original: str = RECIPIENT
                 ) -> dict[str, Any]:
    return {"message_header": {
        "from": {"organ_id": sender},
        "response_for": {"organ_id": original, "code": "1/UBND-VP",
                         "promulgation_date": "2026-01-05",
                         "document_id": f"{original},2026/01/05,1/UBND-VP"},
        "staff_info": {"department": "Văn thư", "staff": "Nguyễn Thị Lan"},
        "status_code": code, "description": "Tiếp nhận"}}


def _set(data: Any, path: str, value: Any) -> Any:
    """A copy of `data` with the dotted `path` set (or removed when value is _DROP)."""
    data = json.loads(json.dumps(data))
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is _DROP:
        if isinstance(node, list):
            del node[int(last)]
        else:
            del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DROP = object()

_DOC_REQUIRED = ("message_header.from", "message_header.from.organ_id", "message_header.to",
                 "message_header.code", "message_header.code.code_number",
                 "message_header.promulgation_info",
                 "message_header.promulgation_info.promulgation_date",
                 "message_header.document_type", "message_header.subject", "message_header",
                 "attachments.0.uri", "attachments.0.sha256", "attachments.0.size",
                 "attachments.0.content_id", "attachments.0.attachment_name",
                 "attachments.0.content_type")
_WRONG_TYPES = {"message_header.subject": (123, None, ["x"], {"a": 1}, True),
                "message_header.to": ("000.00.00.H41", {"organ_id": RECIPIENT}, 5, None),
                "message_header.from.organ_id": (55, None, ["000.00.00.H55"]),
                "message_header.document_type.type": ("1", 1.5, None),
                "message_header.promulgation_info.promulgation_date": (20260105, "05/01/2026",
                                                                       "2026-1-5", ""),
                "attachments": ({"uri": "x"}, "file:///x", None),
                "attachments.0.size": ("12", -1, 1.5, None),
                "attachments.0.sha256": ("abc", "Z" * 64, 64),
                "secrecy": (0, False)}
_UNKNOWN_KEYS = ("x_extra", "message_header.x_extra", "message_header.from.x_extra",
                 "attachments.0.x_extra", "message_header.code.code_numbr")
_SECRECY = ("mat", "toi_mat", "tuyet_mat", "Mật", "MẬT", "Tối mật", "Tuyệt mật", "MAT", "Mat",
            "mật", "secret", "confidential", "None", "NONE", " none", "none ", "không", "",
            None, True, 1, ["none"], {"level": "none"}, "nonе")  # last: Cyrillic е
_BAD_ORGAN_IDS = ("abc", "000.00.00.h41", "000.00.00.H41 ", " 000.00.00.H41", "000.00.00",
                  "../../etc/passwd", "000.00.00.H41;DROP TABLE", "000.00.00.H41\u202e",
                  "000.00.00.H41\x00", "0000.00.00.H41", "000.00.00.H4", "H41.",
                  "000.00.00.H41\n000.00.00.H55")


def outbound_cases(env: OutboundEnv) -> list[OutboundCase]:
    out: list[OutboundCase] = []
    counter = 0

    def next_id() -> str:
        nonlocal counter
        counter += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"campaign/{env.run}/{counter}"))

    def number() -> str:
        return f"{counter + 5000}"

    pdf = corpus.PDF

    def doc_case(name: str, family: str, about: str, data: Any, expect: str, *,
                 ce_type: str = "vn.gov.edoc.document.send.v1", agency: str | None = SENDER,
                 raw: bytes | None = None, headers: tuple[tuple[str, bytes], ...] | None = None,
                 delivery_failed: bool = True, topic: str = "outbound_documents",
                 live_expect: str | None = None) -> None:
        event_id = next_id()
        value = raw if raw is not None else json.dumps(data, ensure_ascii=False).encode()
        out.append(OutboundCase(name, family, about, topic,
                                headers if headers is not None else
                                _headers(event_id, ce_type, agency=agency), value, expect,
                                delivery_failed, event_id, live_expect=live_expect))

    def base(tag: str) -> dict[str, Any]:
        _, att = env.file(f"{tag}.pdf", pdf + tag.encode())
        return good_document(number(), att)

    good_every = 20

    def maybe_good() -> None:
        if len(out) % good_every == 0:
            doc_case(f"good-{len(out)}", "good", "a correct document (interleaved)",
                     base(f"good{len(out)}"), DELIVERED)

    # envelope and JSON
    envelope: list[tuple[str, tuple[tuple[str, bytes], ...], bytes | None, str]] = []
    ok_value = json.dumps(base("env")).encode()
    eid = "envelope-"
    envelope += [
        ("no-ce-headers", (("content-type", b"application/json"),), ok_value, "event.envelope"),
        ("no-headers-at-all", (), ok_value, "event.envelope"),
        ("missing-id", tuple(h for h in _headers(eid + "1", "vn.gov.edoc.document.send.v1")
                             if h[0] != "ce_id"), ok_value, "event.envelope"),
        ("missing-type", tuple(h for h in _headers(eid + "2", "x") if h[0] != "ce_type"),
         ok_value, "event.envelope"),
        ("missing-source", tuple(h for h in _headers(eid + "3", "vn.gov.edoc.document.send.v1")
                                 if h[0] != "ce_source"), ok_value, "event.envelope"),
        ("bad-specversion", tuple((k, b"0.3" if k == "ce_specversion" else v) for k, v in
                                  _headers(eid + "4", "vn.gov.edoc.document.send.v1")),
         ok_value, "event.envelope"),
        ("repeated-id", _headers(eid + "5", "vn.gov.edoc.document.send.v1") +
         (("ce_id", b"other"),), ok_value, "event.envelope"),
        ("header-not-utf8", _headers(eid + "6", "vn.gov.edoc.document.send.v1") +
         (("ce_x", b"\xff\xfe"),), ok_value, "event.envelope"),
        ("bad-time", tuple((k, b"yesterday" if k == "ce_time" else v) for k, v in
                           _headers(eid + "7", "vn.gov.edoc.document.send.v1")),
         ok_value, "event.envelope"),
        ("structured-not-object", (("content-type", b"application/cloudevents+json"),),
         b"[1,2,3]", "event.envelope"),
        ("structured-data-base64", (("content-type", b"application/cloudevents+json"),),
         json.dumps({"specversion": "1.0", "id": "s1", "source": "urn:x", "type":
                     "vn.gov.edoc.document.send.v1", "data_base64": "AAAA"}).encode(),
         "event.content_type"),
        ("content-type-xml", tuple((k, b"application/xml" if k == "content-type" else v)
                                   for k, v in _headers(eid + "8", "vn.gov.edoc.document.send.v1")),
         b"<x/>", "event.content_type"),
    ]
    for label, headers, value, expect in envelope:
        doc_case(f"envelope-{label}", "envelope", f"CloudEvent envelope: {label}", None, expect,
                 raw=value or b"", headers=headers, delivery_failed=False)
    for label, raw in (("truncated", ok_value[:-10]), ("trailing-garbage", ok_value + b"}}"),
                       ("latin1", json.dumps(base("l1"), ensure_ascii=False)
                        .encode("utf-8").replace("ă".encode(), b"\xe3")),
                       ("overlong-utf8", b'{"secrecy": "\xc0\xae"}'),
                       ("nan", b'{"secrecy": NaN}'), ("single-quotes", b"{'a': 1}"),
                       ("utf16", json.dumps(base("u16")).encode("utf-16")),
                       ("deep-nesting", b"[" * 100_000 + b"]" * 100_000),
                       ("only-bom", b"\xef\xbb\xbf"), ("empty-object-and-more", b"{} {}"),
                       ("huge-number", b'{"secrecy": 1' + b"0" * 5000 + b"}")):
        doc_case(f"json-{label}", "json", f"record value is not JSON: {label}", None,
                 "event.json", raw=raw, delivery_failed=False)
        maybe_good()
    # wrong event type
    for label, ce_type in (("unknown", "vn.gov.edoc.document.delete.v1"),
                           ("arrived", "vn.gov.edoc.document.arrived.v1"),
                           ("empty-ish", "x"), ("case", "VN.GOV.EDOC.DOCUMENT.SEND.V1")):
        doc_case(f"type-{label}", "type", f"ce_type {ce_type!r}", base(f"t{label}"), "event.type",
                 ce_type=ce_type)
    # data of the wrong shape
    for label, data in (("null", None), ("array", [1]), ("string", "document"), ("number", 5),
                        ("empty-object", {})):
        doc_case(f"data-{label}", "schema", f"data is {label}", data, "event.schema",
                 raw=json.dumps(data).encode() if data is not None else b"null")
    for path in _DOC_REQUIRED:
        doc_case(f"missing-{path}", "schema", f"required {path} missing",
                 _set(base("m"), path, _DROP), "event.schema")
        maybe_good()
    for path, wrongs in _WRONG_TYPES.items():
        for i, value in enumerate(wrongs):
            expect = "event.secret_document" if path == "secrecy" else "event.schema"
            doc_case(f"type-{path}-{i}", "schema", f"{path} = {value!r}",
                     _set(base("w"), path, value), expect)
            maybe_good()
    for path in _UNKNOWN_KEYS:
        doc_case(f"unknown-key-{path}", "schema", f"unknown key at {path}",
                 _set(base("u"), path, "x"), "event.schema")
    doc_case("empty-to", "schema", "no recipients", _set(base("e"), "message_header.to", []),
             "event.schema")
    doc_case("empty-subject", "schema", "empty subject",
             _set(base("e2"), "message_header.subject", ""), "event.schema")
    # secret documents, every spelling (fail closed)
    for i, value in enumerate(_SECRECY):
        doc_case(f"secrecy-{i}", "secrecy", f"secrecy {value!r}", _set(base("s"), "secrecy", value),
                 "event.secret_document")
        maybe_good()
    doc_case("secrecy-hidden-in-business", "secrecy", "secrecy and a bad schema: secrecy wins",
             _set(_set(base("s2"), "secrecy", "mat"), "message_header", 1), "event.secret_document")
    # senders and recipients
    doc_case("sender-unknown", "sender", "from another province's agency",
             _set(base("snd"), "message_header.from.organ_id", RECIPIENT), "event.agency_mismatch",
             live_expect="event.sender_mismatch")
    doc_case("sender-unknown-matching-ce-agency", "sender", "from an agency this gateway does "
             "not serve (ce_agency agrees)",
             _set(base("snd2"), "message_header.from.organ_id", "000.00.00.G22"),
             "event.unknown_sender", agency="000.00.00.G22", live_expect="event.sender_mismatch")
    doc_case("sender-no-ce-agency", "sender", "no ce_agency, unknown sender",
             _set(base("snd3"), "message_header.from.organ_id", "000.00.00.G22"),
             "event.unknown_sender", agency=None, live_expect="event.sender_mismatch")
    doc_case("agency-mismatch", "sender", "ce_agency names another served agency",
             base("mm"), "event.agency_mismatch", agency=SENDER_2,
             live_expect="event.sender_mismatch")
    for i, organ in enumerate(_BAD_ORGAN_IDS):
        doc_case(f"to-bad-organ-{i}", "identifier", f"recipient OrganId {organ!r}",
                 _set(base("bo"), "message_header.to.0.organ_id", organ), "edxml.value.organ_id")
        maybe_good()
    for i, organ in enumerate(_BAD_ORGAN_IDS[:6]):
        doc_case(f"from-bad-organ-{i}", "identifier", f"sender OrganId {organ!r}",
                 _set(base("fo"), "message_header.from.organ_id", organ),
                 "event.agency_mismatch", live_expect="event.sender_mismatch")
    for i, organ in enumerate(("000.00.99.H41", "000.00.00.H99", "000.00.00.A01", "H41.99")):
        doc_case(f"to-unknown-{i}", "recipient", f"recipient {organ} not on the axis",
                 _set(base("uk"), "message_header.to.0.organ_id", organ), "event.unknown_recipient")
    dup = base("dup")
    dup["message_header"]["to"] = dup["message_header"]["to"] * 2
    doc_case("to-duplicate", "recipient", "one recipient listed twice", dup, "event.recipients")
    doc_case("document-id-newline", "identifier", "DocumentId with a line break",
             _set(base("di"), "message_header.document_id", f"{SENDER},2026/01/05,1/UBND\nVP"),
             "edxml.value.document_id")
    doc_case("document-id-huge", "odd", "a 400-character code in the DocumentId (over the "
             "schema's 300-character bound)",
             _set(base("di2"), "message_header.document_id", f"{SENDER},2026/01/05,{'9' * 400}"),
             "event.schema")
    # attachment references
    def att_case(label: str, about: str, mutate: Callable[[dict[str, Any]], None],
                 expect: str) -> None:
        data = base(f"a-{label}")
        mutate(data["attachments"][0])
        doc_case(f"attachment-{label}", "attachment", about, data, expect)
        maybe_good()

    secret = env.outside / f"{env.run}-outside.pdf"
    secret.write_bytes(pdf + b"outside")
    secret_sha, secret_size = hashlib.sha256(secret.read_bytes()).hexdigest(), secret.stat().st_size

    def to(uri: str, sha: str | None = None, size: int | None = None) -> Callable[[dict], None]:
        def mutate(a: dict[str, Any]) -> None:
            a["uri"] = uri
            if sha is not None:
                a["sha256"] = sha
            if size is not None:
                a["size"] = size
        return mutate

    passwd = Path("/etc/passwd")
    p_sha = hashlib.sha256(passwd.read_bytes()).hexdigest() if passwd.is_file() else "0" * 64
    p_size = passwd.stat().st_size if passwd.is_file() else 1
    att_case("etc-passwd", "file:///etc/passwd (hash and size right)",
             to("file:///etc/passwd", p_sha, p_size), "store.forbidden")
    att_case("outside-root", "a real file outside the allowed roots",
             to(secret.as_uri(), secret_sha, secret_size), "store.forbidden")
    att_case("dotdot", "'..' climbing out of the inbox",
             to(f"file://{env.inbox}/../../../../../etc/passwd", p_sha, p_size), "store.forbidden")
    att_case("dotdot-encoded", "%2e%2e climbing out of the inbox",
             to(f"file://{env.inbox}/%2e%2e/%2e%2e/%2e%2e/etc/passwd", p_sha, p_size),
             "store.forbidden")
    link = env.inbox / f"{env.run}-link-out.pdf"
    link.symlink_to(secret)
    att_case("symlink-out", "a symlink in the inbox pointing outside",
             to(link.as_uri(), secret_sha, secret_size), "store.forbidden")
    dlink = env.inbox / f"{env.run}-dirlink"
    dlink.symlink_to(env.outside, target_is_directory=True)
    att_case("symlinked-dir-out", "a path through a symlinked directory leading outside",
             to((dlink / secret.name).as_uri(), secret_sha, secret_size), "store.forbidden")
    loop = env.inbox / f"{env.run}-loop"
    loop.symlink_to(loop)
    att_case("symlink-loop", "a symlink to itself", to(loop.as_uri()), "store.forbidden")
    for k, scheme_uri in enumerate(("http://127.0.0.1:1/x.pdf", "https://example.invalid/x.pdf",
                       "ftp://example.invalid/x.pdf", "data:application/pdf;base64,JVBERg==",
                       "s3://bucket/x.pdf", "smb://host/share/x.pdf", "jar:file:///x!/y",
                       "/etc/passwd", "x.pdf", "file:relative.pdf", "file://remotehost/etc/passwd",
                       "file:///etc/passwd?x=1", "file:///etc/passwd#frag",
                       "file:///tmp/a%00.pdf", "FILE://evil.invalid/x")):
        att_case(f"uri-{k}-{scheme_uri[:18]}", f"attachment URI {scheme_uri!r}", to(scheme_uri),
                 "event.schema" if scheme_uri == "x.pdf" else "event.attachment_ref")
    att_case("missing-file", "a file that does not exist in the inbox",
             to((env.inbox / f"{env.run}-nope.pdf").as_uri()), "store.missing")
    att_case("directory", "the inbox directory itself", to(env.inbox.as_uri()), "store.missing")
    fifo = env.inbox / f"{env.run}-fifo"
    os.mkfifo(fifo)
    att_case("fifo", "a FIFO in the inbox (must not hang)", to(fifo.as_uri(), size=0),
             "store.missing")
    att_case("hash-mismatch", "sha256 of other bytes",
             lambda a: a.update(sha256=hashlib.sha256(b"x").hexdigest()), "store.hash_mismatch")
    att_case("hash-uppercase-wrong", "an upper-case sha256 of other bytes",
             lambda a: a.update(sha256=hashlib.sha256(b"y").hexdigest().upper()),
             "store.hash_mismatch")
    att_case("size-mismatch", "size one byte short",
             lambda a: a.update(size=a["size"] - 1), "store.size_mismatch")
    att_case("size-huge", "size 1 TiB", lambda a: a.update(size=1 << 40), "store.size_mismatch")
    dup = base("dupcid")
    _, second = env.file("dupcid2.pdf", pdf + b"second")
    second["content_id"] = dup["attachments"][0]["content_id"]
    dup["attachments"].append(second)
    doc_case("attachment-duplicate-content-id", "attachment", "two attachments, one content_id",
             dup, "event.attachment_ref")
    # text attacks (the writer refuses what it will not put into a package)
    for label, value, expect in (
            ("bidi-rlo", "V/v \u202egnáht\u202c tiền", "edxml.text.bidi"),
            ("bidi-isolate", "V/v \u2066x\u2069", "edxml.text.bidi"),
            ("control-soh", "V/v \x01", "edxml.text.control"),
            ("control-esc", "V/v \x1b[31m đỏ", "edxml.text.control"),
            ("control-c1", "V/v \x85", "edxml.text.control"),
            ("nul", "V/v \x00", "edxml.text.control"),
            ("lone-surrogate", "V/v \ud800", "edxml.text.encoding"),
            ("tcvn3", encode_legacy(corpus.LEGACY_TEXT, "tcvn3").decode("latin-1"),
             "edxml.text.legacy_encoding"),
            ("vni", encode_legacy(corpus.LEGACY_TEXT, "vni").decode("latin-1"),
             "edxml.text.legacy_encoding")):
        for where in ("message_header.subject", "message_header.from.organ_name",
                      "attachments.0.attachment_name"):
            data = _set(base("tx"), where, value)
            raw = json.dumps(data, ensure_ascii=True).encode()
            doc_case(f"text-{label}-{where.split('.')[-1]}", "text", f"{label} in {where}",
                     None, expect, raw=raw)
            maybe_good()
    # business flows
    for label, business, expect in (
            ("revoke-without-target", {"business_doc_type": 1}, "event.business"),
            ("update-without-info", {"business_doc_type": 2,
                                     "document_id": f"{SENDER},2026/01/05,1/UBND-VP"},
             "event.business"),
            ("replace-without-list", {"business_doc_type": 3,
                                      "document_id": f"{SENDER},2026/01/05,1/UBND-VP"},
             "event.business"),
            ("type-7", {"business_doc_type": 7}, "event.schema"),
            ("type-string", {"business_doc_type": "1"}, "event.schema"),
            ("no-type", {"document_id": "x"}, "event.schema")):
        doc_case(f"business-{label}", "business", f"business {label}",
                 _set(base("b"), "business", business), expect)
    # receipts
    rtype = "vn.gov.edoc.receipt.send.v1"

    def receipt_case(label: str, data: Any, expect: str, family: str = "receipt",
                     agency: str | None = SENDER, live_expect: str | None = None) -> None:
        doc_case(f"receipt-{label}", family, f"receipt: {label}", data, expect, ce_type=rtype,
                 topic="outbound_receipts", agency=agency, live_expect=live_expect)
        maybe_good()

    for code in ("00", "07", "2", "99", "", "02 ", "14", 3, None):
        receipt_case(f"status-{code!r}",
                     _set(good_receipt(), "message_header.status_code", code), "event.schema")
    receipt_case("13-without-recipients", good_receipt("13"), "event.schema")
    to_self = good_receipt("13")
    to_self["recipients"] = [RECIPIENT]
    receipt_case("13-from-recipient", to_self, "event.status_direction")
    receipt_case("03-from-sender", good_receipt("03", original=SENDER), "event.status_direction")
    wrong_to = good_receipt("03")
    wrong_to["recipients"] = ["000.00.00.G22"]
    receipt_case("03-with-other-recipient", wrong_to, "event.status_direction")
    receipt_case("missing-response-for", _set(good_receipt(), "message_header.response_for",
                                              _DROP), "event.schema")
    receipt_case("unknown-key", _set(good_receipt(), "message_header.x", 1), "event.schema")
    receipt_case("bidi-description", _set(good_receipt(), "message_header.description",
                                          "Tiếp \u202enhận"), "edxml.text.bidi")
    receipt_case("unknown-sender", _set(good_receipt(), "message_header.from.organ_id",
                                        "000.00.00.G22"), "event.unknown_sender",
                 agency="000.00.00.G22", live_expect="event.sender_mismatch")
    receipt_case("bad-original", _set(good_receipt(), "message_header.response_for.organ_id",
                                      "../H41"), "edxml.value.organ_id")
    receipt_case("as-document-type", good_receipt(), "event.schema")  # fixed below
    # the last one is a receipt sent with the document type: schema of document.send fails
    last = out[-1]
    out[-1] = replace(last, headers=_headers(last.event_id or "", "vn.gov.edoc.document.send.v1"),
                      topic="outbound_documents", about="a receipt's data as a document.send")
    # huge strings: a long subject is valid up to the schema's bound (4000 characters), one
    # beyond it is refused before any work
    doc_case("long-subject", "odd", "a 4000-character subject (the bound)",
             _set(base("ls"), "message_header.subject", "V/v " + "ạ" * 3996), DELIVERED)
    doc_case("huge-subject", "odd", "a 20 000-character subject (over the bound)",
             _set(base("hs"), "message_header.subject", "V/v " + "ạ" * 20000), "event.schema")
    doc_case("good-last", "good", "a correct document after everything", base("last"), DELIVERED)
    names = [c.name for c in out]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    return out
