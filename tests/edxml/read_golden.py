"""Every outcome of reading and verifying a fixed set of packages, recorded once, compared always.

The inbound path (reader + signature digester + verification) decides on untrusted input; a
faster path must decide exactly as the old one did. This module reads and verifies

- every file under tests/data (the reference samples, the hostile corpus with its designed
  limits, the fuzz regressions, the reference layouts), and
- every one of them the signer accepts, signed with the test PKI, as signed and damaged in the
  ways an attacker or a careless relay would (Subject changed, SignatureValue damaged, a
  certificate removed, a TraceHeader added, the Signature moved out of the header, wrapping
  attacks, a comment or PI inserted, attributes reordered, prefixes changed, CRLF line ends, a
  BOM, an entity declaration),

and records what came out: the error (reason, message, where), or the package model, the
attachments (hash, size, type, error), the warnings, what the digester saw and the verdict.
Nothing recorded depends on the test PKI's random keys, so the file is stable across runs.

``tests/edxml/test_read_golden.py`` asserts that the reader produces exactly
``tests/edxml/read_golden.json``. Regenerate it (only when a change of outcome is intended, and
say why in the commit) with::

    .venv/bin/python -m tests.edxml.read_golden
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from edxml.errors import EdxmlError
from edxml.pki import TestPki, init_test_pki
from edxml.reader import ReadLimits, read_package
from edxml.signature import DocumentDigester, Signer, sign_bytes, verify_signature
from edxml.trust import TrustStore
from edxml.xmlsafe import Limits

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
GOLDEN = Path(__file__).with_name("read_golden.json")
EXPECTED = DATA / "hostile" / "expected.json"
SIGNER_ORGAN = "000.00.00.H55"


def _h(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """A JSON form of a model value (paths by name only: they depend on the output directory)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return value.name
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


_CERT_TEXT = re.compile(rb"<X509Certificate>([^<]*)</X509Certificate>")
_BYTE = re.compile(r"byte (\d+)")


def _offsets(data: bytes, signed: bool) -> Callable[[int], int]:
    """Byte offsets as if every certificate's base64 were empty: the keys of the test PKI are
    random, so a certificate's DER may be a byte shorter or longer from one run to the next."""
    if not signed:
        return lambda o: o
    spans = [(m.start(1), m.end(1)) for m in _CERT_TEXT.finditer(data)]

    def shift(o: int) -> int:
        return o - sum(min(end, o) - start for start, end in spans if start < o)
    return shift


def _error(exc: EdxmlError | None, shift: Callable[[int], int] = lambda o: o) -> list[Any] | None:
    if exc is None:
        return None
    return [type(exc).__name__, exc.reason, _at(exc.message, shift), _at(exc.where, shift)]


def _at(text: str | None, shift: Callable[[int], int]) -> str | None:
    return None if text is None else _BYTE.sub(lambda m: f"byte {shift(int(m.group(1)))}", text)


def outcome(data: bytes, trust: TrustStore, out_dir: Path, limits: ReadLimits | None = None, *,
            signed: bool = False) -> dict[str, Any]:
    """What reading and verifying ``data`` gives, as a small JSON-able dict (for a ``signed``
    package without its size and hash: the certificates' lengths vary with the random keys)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shift = _offsets(data, signed)
    digester = DocumentDigester()
    try:
        result = read_package(io.BytesIO(data), out_dir, limits=limits, digester=digester)
    except EdxmlError as exc:
        left = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
        return {"error": _error(exc, shift), "left": left}
    except Exception as exc:  # recorded too: a new path must not change even a crash
        return {"crash": [type(exc).__name__, str(exc)[:200]]}
    out: dict[str, Any] = {
        "kind": result.kind,
        "size": None if signed else result.size,
        "sha256": None if signed else result.sha256[:16],
        "package": _h(json.dumps(_plain(result.package), sort_keys=True, ensure_ascii=False)),
        "warnings": [[w.code, _at(w.message, shift), _at(w.where, shift)] for w in result.warnings],
        "attachments": [[r.attachment.content_id, r.attachment.attachment_name, r.attachment.content_type,
                         r.attachment.size, (r.attachment.sha256 or "")[:16],
                         r.attachment.path.name if r.attachment.path else None,
                         r.detected_type, r.unwrapped_from_zip, r.zip_member_name, _error(r.error, shift)]
                        for r in result.attachments],
    }
    sig = result.signature
    out["digester"] = {
        "signatures": [[c.uri, c.local, shift(c.byte_offset), c.too_large, c.nested_signature]
                       for c in sig.signatures],
        "digests": sorted([alg, filt] for alg, filt in sig.digests),
        "misplaced": [_at(m, shift) for m in sig.misplaced],
        "disguised": [_at(m, shift) for m in sig.disguised],
    }
    try:
        verdict = verify_signature(sig, trust)
    except Exception as exc:
        out["verdict_crash"] = [type(exc).__name__, str(exc)[:200]]
    else:
        out["verdict"] = [verdict.status, verdict.reason, _at(verdict.message, shift), verdict.signature_method,
                          verdict.digest_method, verdict.trace_filter, verdict.signer_organ_id,
                          verdict.signer.subject if verdict.signer else None]
    return out


# -- damaged variants of a signed package ---------------------------------------------------

_SIGNATURE = re.compile(rb"<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">.*?</Signature>", re.S)
_SUBJECT = re.compile(rb"(<(?:edXML:)?Subject>)([^<]*)(</(?:edXML:)?Subject>)")
_VALUE = re.compile(rb"(<SignatureValue>)([^<]{20})")
_CERT = re.compile(rb"\s*<X509Certificate>[^<]*</X509Certificate>")
_MESSAGE_HEADER_END = re.compile(rb"</(?:edXML:)?MessageHeader>")
_ENVELOPE_END = re.compile(rb"</(?:edXML:)?edXMLEnvelope>")
_TRACE_LIST = re.compile(rb"<(edXML:)?TraceHeaderList>")
_OPEN_MESSAGE = re.compile(rb"<((?:edXML:)?MessageHeader)>")

_TRACE = (b"<edXML:TraceHeader xmlns:edXML=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">"
          b"<edXML:OrganId>000.00.00.G22</edXML:OrganId>"
          b"<edXML:Timestamp>2024/06/01 08:00:00</edXML:Timestamp></edXML:TraceHeader>")


def _once(pattern: re.Pattern[bytes], data: bytes, repl: Callable[[re.Match[bytes]], bytes]) -> bytes | None:
    out, n = pattern.subn(repl, data, count=1)
    return out if n else None


def _move_signature(data: bytes, where: re.Pattern[bytes]) -> bytes | None:
    m = _SIGNATURE.search(data)
    if m is None:
        return None
    rest = data[:m.start()] + data[m.end():]
    return _once(where, rest, lambda e: m.group(0) + e.group(0))


def _trace_added(data: bytes) -> bytes | None:
    added = _once(_TRACE_LIST, data, lambda m: m.group(0) + _TRACE)
    if added is not None:
        return added
    return _once(_MESSAGE_HEADER_END, data, lambda m: m.group(0)
                 + b"<edXML:TraceHeaderList xmlns:edXML=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">"
                 + _TRACE + b"</edXML:TraceHeaderList>")


def _wrapped(data: bytes) -> bytes | None:
    """The signed MessageHeader kept inside an Object of the Signature, a forged one shown."""
    m = _SIGNATURE.search(data)
    s = _SUBJECT.search(data)
    h = re.search(rb"<((?:edXML:)?MessageHeader)>.*?</\1>", data, re.S)
    if m is None or s is None or h is None:
        return None
    obj = (b'<Object><Wrap xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016" '
           b'xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">' + h.group(0) + b"</Wrap></Object>")
    sig = m.group(0)[:-len(b"</Signature>")] + obj + b"</Signature>"
    forged = data[:m.start()] + sig + data[m.end():]
    return forged[:s.start(2)] + b"forged " + forged[s.start(2):]


def _attributes(data: bytes, reverse: bool) -> bytes | None:
    attrs = b' b="2" a="1" xml:lang="vi"' if reverse else b' a="1" xml:lang="vi" b="2"'
    return _once(_OPEN_MESSAGE, data, lambda m: b"<" + m.group(1) + attrs + b">")


def _prefixes(data: bytes) -> bytes:
    return data.replace(b"edXML:", b"e:").replace(b"xmlns:edXML=", b"xmlns:e=")


def variants(signed: bytes) -> Iterator[tuple[str, bytes | None]]:
    yield "signed", signed
    yield "subject-changed", _once(_SUBJECT, signed, lambda m: m.group(1) + b"x" + m.group(2) + m.group(3))
    yield "signature-value-damaged", _once(
        _VALUE, signed, lambda m: m.group(1) + (b"A" if m.group(2)[:1] != b"A" else b"B") + m.group(2)[1:])
    yield "first-certificate-removed", _once(_CERT, signed, lambda m: b"")
    certs = list(_CERT.finditer(signed))
    yield "last-certificate-removed", (signed[:certs[-1].start()] + signed[certs[-1].end():]) if certs else None
    yield "all-certificates-removed", _CERT.sub(b"", signed) if certs else None
    yield "trace-header-added", _trace_added(signed)
    yield "signature-in-envelope", _move_signature(signed, _ENVELOPE_END)
    yield "signature-in-message-header", _move_signature(signed, _MESSAGE_HEADER_END)
    m = _SIGNATURE.search(signed)
    yield "signature-twice", (signed[:m.end()] + m.group(0) + signed[m.end():]) if m else None
    yield "signature-wrapping-object", _wrapped(signed)
    yield "comment-inserted", _once(_OPEN_MESSAGE, signed, lambda m: m.group(0) + b"<!-- a comment -->")
    yield "pi-inserted", _once(_OPEN_MESSAGE, signed, lambda m: m.group(0) + b"<?gateway mark?>")
    yield "prefixes-changed", _prefixes(signed)
    yield "crlf", signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    yield "bom", b"\xef\xbb\xbf" + signed
    head = signed.find(b"?>") + 2 if signed.startswith(b"<?xml") else 0
    yield "entity-declaration", signed[:head] + b"<!DOCTYPE edXML [<!ENTITY x \"y\">]>" + signed[head:]


def attribute_pair(data: bytes, signer: Signer) -> Iterator[tuple[str, bytes | None]]:
    """The same package signed with attributes in one order, then shown in another."""
    with_attrs = _attributes(data, reverse=False)
    if with_attrs is None:
        return
    try:
        signed = sign_bytes(with_attrs, signer)
    except EdxmlError:
        return
    yield "attributes-signed", signed
    yield "attributes-reordered", _once(re.compile(rb' a="1" xml:lang="vi" b="2"'), signed,
                                        lambda m: b' b="2" a="1" xml:lang="vi"')


# -- the whole set ----------------------------------------------------------------------------


def _limits_of(spec: dict[str, Any] | None) -> ReadLimits | None:
    if not spec:
        return None
    spec = dict(spec)
    parser = spec.pop("parser", None)
    return ReadLimits(**spec, **({"parser": Limits(**parser)} if parser else {}))


def corpus() -> list[tuple[str, bytes, ReadLimits | None]]:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    out = []
    for path in sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix in (".edxml", ".bin", ".xml")):
        rel = path.relative_to(DATA).as_posix()
        spec = expected.get(path.name, {}).get("limits") if path.parent.name == "hostile" else None
        out.append((rel, path.read_bytes(), _limits_of(spec)))
    return out


def outcomes(pki: TestPki, work: Path) -> dict[str, Any]:
    trust = TrustStore.from_paths(pki.trust_dir, crl_files=[pki.crl, pki.root_crl])
    files = pki.agencies[SIGNER_ORGAN]
    signer = Signer.from_pem(files.key, files.cert, chain_path=files.chain)
    out_dir = work / "out"
    results: dict[str, Any] = {}
    for rel, data, limits in corpus():
        results[rel] = outcome(data, trust, out_dir, limits)
        if limits is not None:
            results[rel + " (default limits)"] = outcome(data, trust, out_dir)
        if len(data) > 64 * 1024:
            continue  # the large hostile cases test limits, not signatures
        try:
            signed = sign_bytes(data, signer)
        except EdxmlError as exc:
            results[rel + " [sign]"] = {"sign_error": _error(exc)}
            continue
        first = outcome(signed, trust, out_dir, signed=True)
        results[f"{rel} [signed]"] = first
        if "error" in first:
            continue  # refused before any signature check: its variants say nothing more
        for name, variant in list(variants(signed))[1:] + list(attribute_pair(data, signer)):
            if variant is not None:
                results[f"{rel} [{name}]"] = outcome(variant, trust, out_dir, signed=True)
    return results


def generate(work: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edxml-golden-") as tmp:
        base = Path(tmp) if work is None else work
        return outcomes(init_test_pki(base / "pki"), base)


def summary(one: dict[str, Any]) -> list[str]:
    """[what the case ended in, a hash of its whole outcome]: small enough to commit, and the
    first field says at a glance what a changed case used to be."""
    if "error" in one:
        head = "error " + one["error"][1]
    elif "verdict" in one:
        head = f"{one['verdict'][0]} {one['verdict'][1] or ''}".rstrip()
    else:
        head = next(iter(one))
    return [head, _h(json.dumps(one, ensure_ascii=False, sort_keys=True))]


def dump(results: dict[str, Any]) -> str:
    small = {name: summary(one) for name, one in results.items()}
    return "{\n" + ",\n".join(json.dumps(k, ensure_ascii=False) + ": " + json.dumps(v)
                               for k, v in sorted(small.items())) + "\n}\n"


if __name__ == "__main__":
    GOLDEN.write_text(dump(generate()), encoding="utf-8")
    print(f"wrote {GOLDEN.relative_to(ROOT)}")
