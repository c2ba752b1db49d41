"""Decide whether a signer's certificate chains to a trusted root, may sign, and is usable now.

A :class:`TrustStore` holds the roots we trust (self-signed certificates, e.g. the Ban Cơ yếu
Chính phủ root), known intermediates (the issuing CA) and a :class:`RevocationChecker`.
:meth:`TrustStore.check` has the certification path built and validated by
pyhanko-certvalidator (RFC 5280 path validation: issuer signatures, validity at the given time,
basic constraints and path length, name constraints, unknown critical extensions, certificate
policies), then checks that the leaf is a signing certificate (digitalSignature or
nonRepudiation key usage, not a CA, not a TLS-server-only certificate), then revocation through
the checker: CRL files (:class:`CrlChecker`, reloaded when a file changes or a CRL passes its
nextUpdate) and OCSP where a certificate names a responder (:class:`OcspChecker`, whose network
fetch is injected: nothing here opens a connection).

:func:`signer_organ_id` tells which agency a certificate belongs to: the subject's UID attribute
(OID 0.9.2342.19200300.100.1.1, as on Ban Cơ yếu Chính phủ certificates), or for certificates
without one a configured mapping from the certificate's SHA-256 fingerprint.

Layout read by :meth:`TrustStore.from_paths`: any number of PEM (several certificates per file
allowed) or DER files, or a directory of them (``*.pem``, ``*.crt``, ``*.cer``, ``*.der``);
CRL files PEM or DER.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID, NameOID

from edxml.errors import EdxmlError

REASONS: dict[str, str] = {
    "edxml.signature.untrusted": "the signer's certificate does not chain to a trusted root (or an issuer is not a CA)",
    "edxml.signature.cert_expired": "a certificate in the chain had expired at the time of checking",
    "edxml.signature.cert_not_yet_valid": "a certificate in the chain was not yet valid at the time of checking",
    "edxml.signature.key_usage": "the signer's certificate is not for digital signatures (it needs the "
                                 "digitalSignature or nonRepudiation key usage)",
    "edxml.signature.not_signing_certificate": "the signer's certificate is a CA certificate or a TLS-server-only "
                                               "certificate, not one that signs documents",
    "edxml.signature.path_invalid": "the certification path breaks a rule of RFC 5280 (an unknown critical extension, "
                                    "a name outside an issuer's name constraints, a disallowed algorithm, policy)",
    "edxml.signature.ocsp_invalid": "the OCSP answer for a certificate could not be trusted (bad signature, wrong "
                                    "responder, not for this certificate, out of date)",
    "edxml.signature.cert_revoked": "a certificate in the chain is listed in its issuer's CRL",
    "edxml.signature.crl_stale": "the CRL of an issuer is past its nextUpdate",
    "edxml.signature.crl_missing": "policy requires a CRL for an issuer and none is loaded",
    "edxml.trust.unreadable": "a trust-store or CRL file could not be read or parsed",
}

_CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}
_MAX_PATH = 8
_DER = Encoding.DER

# RFC 5280 bounds CN and O at 64 characters; cryptography counts UTF-8 bytes and warns on every
# Vietnamese name longer than that, e.g. "Cơ quan chứng thực số chuyên dùng Chính phủ (RootCA)".
warnings.filterwarnings("ignore", message=r"Attribute's length must be >= 1 and <= 64", category=UserWarning)


@dataclass(frozen=True)
class CertificateInfo:
    """What a clerk or a log needs to know about a certificate."""

    subject: str
    issuer: str
    serial_hex: str
    not_before: datetime
    not_after: datetime
    sha256_fingerprint: str

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> CertificateInfo:
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial_hex=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256_fingerprint=hashlib.sha256(cert.public_bytes(_DER)).hexdigest(),
        )


@dataclass(frozen=True)
class CertificateVerdict:
    """Result of :meth:`TrustStore.check`: ``ok`` or the first problem found."""

    ok: bool
    reason: str | None
    message: str
    path: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    """Signer first, trusted root last (as far as it could be built)."""


@dataclass(frozen=True)
class RevocationStatus:
    status: str  # good | revoked | stale | unknown
    message: str = ""


class RevocationChecker(Protocol):
    """Tells whether ``cert`` (issued by ``issuer``) was revoked as of ``at``."""

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationStatus: ...


def _load_crl(data: bytes, where: str) -> x509.CertificateRevocationList:
    try:
        if b"-----BEGIN X509 CRL-----" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise EdxmlError("edxml.trust.unreadable", f"not a CRL: {exc}", where=where) from None


@dataclass
class _CrlFile:
    path: Path
    stamp: tuple[int, int]
    crl: x509.CertificateRevocationList


class CrlChecker:
    """Revocation from CRLs; each CRL is used only if its issuer's key signed it.

    Built from files (:meth:`from_files`), it rereads a file when the file changes (modification
    time or size) or when the CRL it holds has passed its nextUpdate (a fresher one may have been
    dropped in place), at most once per ``recheck`` interval per call of :meth:`refresh`. A file
    that has become unreadable keeps its last good CRL (and so turns stale in time, which
    :meth:`next_updates` shows).
    """

    def __init__(self, crls: Iterable[x509.CertificateRevocationList] = (), *,
                 clock: Callable[[], datetime] | None = None,
                 recheck: timedelta = timedelta(seconds=30)) -> None:
        self._fixed = list(crls)
        self._files: list[_CrlFile] = []
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._recheck = recheck
        self._checked_at: datetime | None = None
        self._lock = threading.Lock()
        self._issuers: dict[tuple[int, x509.Certificate], tuple[x509.CertificateRevocationList, bool]] = {}

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]], **kwargs: Any) -> CrlChecker:
        checker = cls(**kwargs)
        for p in paths:
            path = Path(p)
            stamp = _stamp(path)
            checker._files.append(_CrlFile(path, stamp, _load_crl(_read(path), str(path))))
        checker._checked_at = checker._clock()
        return checker

    @property
    def crls(self) -> list[x509.CertificateRevocationList]:
        return self._fixed + [f.crl for f in self._files]

    def refresh(self, *, force: bool = False) -> list[str]:
        """Reread the CRL files that changed or whose CRL is past nextUpdate; the paths reread."""
        now = self._clock()
        with self._lock:
            if not force and self._checked_at is not None and now - self._checked_at < self._recheck:
                return []
            self._checked_at = now
            reread = []
            for f in self._files:
                try:
                    stamp = _stamp(f.path)
                except EdxmlError:
                    continue
                next_update = f.crl.next_update_utc
                if stamp == f.stamp and (next_update is None or next_update >= now):
                    continue
                try:
                    crl = _load_crl(_read(f.path), str(f.path))
                except EdxmlError:
                    continue
                f.stamp, f.crl = stamp, crl
                reread.append(str(f.path))
            return reread

    def next_updates(self) -> dict[str, datetime | None]:
        """nextUpdate of each CRL, keyed by its file (or ``crl[i]`` for CRLs given in memory):
        for the staleness finding of ``--check`` and the CRL metric."""
        self.refresh()
        out: dict[str, datetime | None] = {f"crl[{i}]": c.next_update_utc for i, c in enumerate(self._fixed)}
        out.update({str(f.path): f.crl.next_update_utc for f in self._files})
        return out

    def stale(self, at: datetime | None = None) -> list[str]:
        """The CRLs (as in :meth:`next_updates`) past their nextUpdate at ``at`` (default now)."""
        at = at or self._clock()
        return [k for k, v in self.next_updates().items() if v is not None and v < at]

    def _issued_by(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        """Whether ``issuer`` names and signed ``crl``; remembered per CRL object (a reread CRL
        is a new object) and issuer certificate, since checking costs an RSA verification."""
        key = (id(crl), issuer)
        known = self._issuers.get(key)
        if known is not None and known[0] is crl:
            return known[1]
        ok = crl.issuer == issuer.subject
        if ok:
            try:
                ok = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError):
                ok = False
        if len(self._issuers) >= 1024:
            self._issuers.clear()
        self._issuers[key] = (crl, ok)
        return ok

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationStatus:
        self.refresh()
        found = False
        stale = False
        for crl in self.crls:
            if not self._issued_by(crl, issuer):
                continue
            found = True
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and entry.revocation_date_utc <= at:
                return RevocationStatus(
                    "revoked", f"serial {cert.serial_number:x} revoked on "
                    f"{entry.revocation_date_utc:%Y-%m-%d} by {issuer.subject.rfc4514_string()}")
            next_update = crl.next_update_utc
            if next_update is not None and next_update < at:
                stale = True
            else:
                return RevocationStatus("good")
        if stale:
            return RevocationStatus("stale", f"the CRL of {issuer.subject.rfc4514_string()} is past its nextUpdate")
        return RevocationStatus("unknown" if not found else "good")


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise EdxmlError("edxml.trust.unreadable", exc.strerror or "cannot read", where=str(path)) from None
    return st.st_mtime_ns, st.st_size


OcspFetch = Callable[[str, bytes], bytes]
"""(responder URL, DER OCSPRequest) -> DER OCSPResponse; raises OSError when unreachable."""


class OcspChecker:
    """Revocation from OCSP, for certificates that name a responder (AIA id-ad-ocsp).

    The network is injected: ``fetch`` sends the request (a connector does, not the core), and
    ``responses`` may hold answers obtained beforehand. An answer counts only when signed by the
    issuer, or by a responder certificate the issuer issued for OCSP signing, for this very
    certificate, and current at the time of checking. Anything else is ``unknown`` (or
    ``invalid`` for an answer that is present but untrustworthy), so a CRL may still decide.
    """

    def __init__(self, fetch: OcspFetch | None = None, responses: Iterable[bytes] = (), *,
                 max_age: timedelta = timedelta(days=7)) -> None:
        self._fetch = fetch
        self._responses = [ocsp.load_der_ocsp_response(r) for r in responses]
        self._max_age = max_age

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationStatus:
        urls = _ocsp_urls(cert)
        if not urls:
            return RevocationStatus("unknown", "the certificate names no OCSP responder")
        candidates = list(self._responses)
        if self._fetch is not None:
            request = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
                       .public_bytes(serialization.Encoding.DER))
            for url in urls:
                try:
                    candidates.append(ocsp.load_der_ocsp_response(self._fetch(url, request)))
                    break
                except (OSError, ValueError):
                    continue
        problem = ""
        for response in candidates:
            verdict = _ocsp_verdict(response, cert, issuer, at, self._max_age)
            if verdict.status in ("good", "revoked"):
                return verdict
            if verdict.status == "invalid":
                problem = verdict.message
        if problem:
            return RevocationStatus("invalid", problem)
        return RevocationStatus("unknown", "no OCSP answer for the certificate")


def _ocsp_urls(cert: x509.Certificate) -> list[str]:
    aia = _extension(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    if aia is None:
        return []
    return [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def _ocsp_verdict(response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate,
                  at: datetime, max_age: timedelta) -> RevocationStatus:
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return RevocationStatus("unknown", f"OCSP responder answered {response.response_status.name}")
    single = None
    for one in response.responses:
        try:
            request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, one.hash_algorithm).build()
        except (ValueError, TypeError):
            continue
        if (one.serial_number == cert.serial_number and one.issuer_key_hash == request.issuer_key_hash
                and one.issuer_name_hash == request.issuer_name_hash):
            single = one
            break
    if single is None:
        return RevocationStatus("unknown", "the OCSP answer is about another certificate")
    signer = _ocsp_signer(response, issuer, at)
    if signer is None:
        return RevocationStatus("invalid", "the OCSP answer is not signed by the issuer or its OCSP responder")
    try:
        _verify_signed_by(signer, response.signature, response.tbs_response_bytes,
                          response.signature_hash_algorithm)
    except (InvalidSignature, ValueError, TypeError):
        return RevocationStatus("invalid", "the OCSP answer's signature does not verify")
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    if this_update > at + timedelta(minutes=5):
        return RevocationStatus("invalid", "the OCSP answer is dated in the future")
    if (next_update is not None and next_update < at) or (next_update is None and at - this_update > max_age):
        return RevocationStatus("invalid", "the OCSP answer is out of date")
    if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        when = single.revocation_time_utc
        if when is None or when <= at:
            return RevocationStatus("revoked", f"serial {cert.serial_number:x} revoked (OCSP)"
                                    + (f" on {when:%Y-%m-%d}" if when else ""))
        return RevocationStatus("good")
    if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
        return RevocationStatus("good")
    return RevocationStatus("unknown", "the OCSP responder does not know the certificate")


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, at: datetime) -> x509.Certificate | None:
    def named(c: x509.Certificate) -> bool:
        if response.responder_name is not None:
            return c.subject == response.responder_name
        key_hash = hashlib.sha1(c.public_key().public_bytes(
            Encoding.DER, serialization.PublicFormat.PKCS1)).digest()
        return key_hash == response.responder_key_hash

    if named(issuer):
        return issuer
    for delegate in response.certificates:
        if not named(delegate) or delegate.issuer != issuer.subject:
            continue
        try:
            delegate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        eku = _extension(delegate, ExtensionOID.EXTENDED_KEY_USAGE)
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            continue
        if not delegate.not_valid_before_utc <= at <= delegate.not_valid_after_utc:
            continue
        return delegate
    return None


def _verify_signed_by(signer: x509.Certificate, signature: bytes, data: bytes, algorithm: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    key = signer.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        raise TypeError("unsupported responder key")


class ChainedRevocation:
    """Asks each checker in turn (OCSP first, then CRLs); the first definite answer wins."""

    def __init__(self, *checkers: RevocationChecker) -> None:
        self.checkers = checkers

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationStatus:
        fallback = RevocationStatus("unknown")
        for checker in self.checkers:
            answer = checker.status(cert, issuer, at)
            if answer.status in ("good", "revoked"):
                return answer
            if answer.status != "unknown" and fallback.status == "unknown":
                fallback = answer  # the first problem (stale CRL, untrustworthy OCSP answer)
        return fallback


_UID = NameOID.USER_ID  # 0.9.2342.19200300.100.1.1


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: the key of a certificate → OrganId mapping."""
    return hashlib.sha256(cert.public_bytes(_DER)).hexdigest()


def signer_organ_id(cert: x509.Certificate, mapping: Mapping[str, str] | None = None) -> str | None:
    """The OrganId of the agency a signing certificate belongs to, or None when unknown.

    From the subject's single UID attribute (Ban Cơ yếu Chính phủ certificates carry the
    agency's mã định danh there); for a certificate without one, from ``mapping`` (SHA-256
    fingerprint in hex, any case, colons allowed → OrganId). Two different UIDs: unknown.
    """
    uids = {str(a.value).strip() for a in cert.subject.get_attributes_for_oid(_UID)}
    uids.discard("")
    if len(uids) == 1:
        return uids.pop()
    if uids:
        return None
    if mapping:
        fp = certificate_fingerprint(cert)
        for key, organ_id in mapping.items():
            if key.replace(":", "").strip().lower() == fp:
                return organ_id.strip() or None
    return None


FACTS_MAX = 4096                  # remembered facts per store
FACTS_MAX_BYTES = 4 * 1024 * 1024  # the bytes their keys hold, at most (each key's values twice
                                   # at worst: a certificate's text and its DER; a real one ~2 KB)


def _weight(key: Any) -> int:
    """The bytes a fact's key holds (its bytes and text, in nested tuples too)."""
    if isinstance(key, (bytes, str)):
        return len(key)
    if isinstance(key, tuple):
        return sum(_weight(k) for k in key)
    return 64


class TrustStore:
    """Trusted roots, known intermediates and a revocation checker."""

    def __init__(self, roots: Sequence[x509.Certificate], intermediates: Sequence[x509.Certificate] = (),
                 revocation: RevocationChecker | None = None) -> None:
        self.roots = tuple(roots)
        self.intermediates = tuple(intermediates)
        self.revocation = revocation
        self._root_der = {r.public_bytes(_DER) for r in self.roots}
        # Validated paths by (leaf, helpers): path validation costs milliseconds and its result
        # changes with time only through the validity windows, so a path is reused while the
        # time of checking stays inside all of them. Revocation is asked every time.
        # The path is kept with what the signer's certificate allows (key usage, CA or not),
        # which depends on its bytes alone.
        self._paths: dict[tuple[bytes, ...], tuple[list[x509.Certificate], tuple[str, str] | None,
                                                   tuple[tuple[datetime, datetime], ...]]] = {}
        # Facts that depend only on certificate bytes (parsed certificates, a chain's signer
        # candidates): a sender's chain repeats on every package it sends.
        self._facts: dict[Any, Any] = {}
        self._fact_bytes = 0

    def fact(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, remembered under ``key``: for what depends only on certificate bytes
        (``key`` must hold those bytes). Bounded in entries and in the bytes the keys hold (a
        sender chooses its certificates' bytes: packages with ever new, large certificates must
        not grow a worker); an exception is not remembered."""
        try:
            return self._facts[key]
        except KeyError:
            pass
        value = make()
        weight = _weight(key)
        if len(self._facts) >= FACTS_MAX or self._fact_bytes + weight > FACTS_MAX_BYTES:
            self._facts.clear()
            self._fact_bytes = 0
        self._facts[key] = value
        self._fact_bytes += weight
        return value

    def certificate(self, der: bytes) -> x509.Certificate:
        """The DER certificate ``der``, parsed once per store. Raises ValueError if it does not parse."""
        return self.fact(("der", der), lambda: x509.load_der_x509_certificate(der))

    @classmethod
    def from_paths(cls, trust: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                   crl_files: Iterable[str | os.PathLike[str]] = (), *,
                   ocsp: OcspChecker | None = None) -> TrustStore:
        """Load certificates from directories and/or files; self-signed ones become roots.

        With ``ocsp`` revocation asks OCSP first (for certificates naming a responder), then the
        CRLs. Raises EdxmlError ``edxml.trust.unreadable`` for a missing or unparsable file.
        """
        entries = [trust] if isinstance(trust, (str, os.PathLike)) else list(trust)
        files: list[Path] = []
        for entry in entries:
            p = Path(entry)
            if p.is_dir():
                files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in _CERT_SUFFIXES)
            else:
                files.append(p)
        roots, intermediates = [], []
        for f in files:
            for cert in load_certificates(_read(f), where=str(f)):
                (roots if _self_signed(cert) else intermediates).append(cert)
        crls = list(crl_files)
        checkers: list[RevocationChecker] = [c for c in (ocsp, CrlChecker.from_files(crls) if crls else None)
                                             if c is not None]
        revocation: RevocationChecker | None = (checkers[0] if len(checkers) == 1 else
                                                ChainedRevocation(*checkers) if checkers else None)
        return cls(roots, intermediates, revocation)

    def crl_next_updates(self) -> dict[str, datetime | None]:
        """nextUpdate per loaded CRL (see :meth:`CrlChecker.next_updates`); empty without CRLs."""
        out: dict[str, datetime | None] = {}
        for checker in _checkers(self.revocation):
            if isinstance(checker, CrlChecker):
                out.update(checker.next_updates())
        return out

    def stale_crls(self, at: datetime | None = None) -> list[str]:
        """The loaded CRLs past their nextUpdate: a finding for ``--check``."""
        at = at or datetime.now(timezone.utc)
        return [k for k, v in self.crl_next_updates().items() if v is not None and v < at]

    def check(self, chain: Sequence[x509.Certificate], at: datetime | None = None, *,
              require_crl: bool = False) -> CertificateVerdict:
        """Check ``chain[0]`` (the signer) using ``chain[1:]`` as untrusted helpers, at ``at``."""
        at = at or datetime.now(timezone.utc)
        if not chain:
            return CertificateVerdict(False, "edxml.signature.untrusted", "no certificate")
        leaf = chain[0]
        if not self.roots:
            return CertificateVerdict(False, "edxml.signature.untrusted",
                                      f"no trusted root: nothing can vouch for {leaf.subject.rfc4514_string()}",
                                      (leaf,))
        key = tuple(self.fact(("der-of", c), lambda c=c: c.public_bytes(_DER)) for c in chain)
        cached = self._paths.get(key)
        if cached is None or not all(before <= at <= after for before, after in cached[2]):
            outcome = _validate_path(leaf, list(chain[1:]) + list(self.intermediates), self.roots, at)
            if isinstance(outcome, CertificateVerdict):
                return outcome
            windows = tuple((c.not_valid_before_utc, c.not_valid_after_utc) for c in outcome)
            cached = (outcome, signing_certificate_problem(leaf), windows)
            if len(self._paths) >= 1024:
                self._paths.clear()
            self._paths[key] = cached
        path, problem, _windows = cached
        path_t = tuple(path)
        if problem is not None:
            reason, message = problem
            return CertificateVerdict(False, reason, message, path_t)
        for cert, issuer in zip(path, path[1:]):
            status = (self.revocation.status(cert, issuer, at) if self.revocation is not None
                      else RevocationStatus("unknown"))
            if status.status == "revoked":
                return CertificateVerdict(False, "edxml.signature.cert_revoked", status.message, path_t)
            if status.status == "stale":
                return CertificateVerdict(False, "edxml.signature.crl_stale", status.message, path_t)
            if status.status == "invalid":
                return CertificateVerdict(False, "edxml.signature.ocsp_invalid", status.message, path_t)
            if status.status == "unknown" and require_crl:
                return CertificateVerdict(False, "edxml.signature.crl_missing",
                                          f"no CRL loaded for {issuer.subject.rfc4514_string()}", path_t)
        return CertificateVerdict(True, None, "certificate chain trusted", path_t)


def _checkers(revocation: RevocationChecker | None) -> list[RevocationChecker]:
    if revocation is None:
        return []
    if isinstance(revocation, ChainedRevocation):
        return list(revocation.checkers)
    return [revocation]


def signing_certificate_problem(cert: x509.Certificate) -> tuple[str, str] | None:
    """(reason, message) when ``cert`` may not sign packages, else None.

    A signing certificate carries the digitalSignature or nonRepudiation key usage, is not a CA,
    and is not a TLS-server-only certificate (extended key usage serverAuth and nothing else).
    """
    name = cert.subject.rfc4514_string()
    bc = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if bc is not None and bc.ca:
        return "edxml.signature.not_signing_certificate", f"{name} is a CA certificate"
    eku = _extension(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if eku is not None and set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH}:
        return "edxml.signature.not_signing_certificate", f"{name} is a TLS server certificate"
    ku = _extension(cert, ExtensionOID.KEY_USAGE)
    if ku is None or not (ku.digital_signature or ku.content_commitment):
        return "edxml.signature.key_usage", f"{name} is not for digital signatures"
    return None


def _run(coro: Any) -> Any:
    """Run a pyhanko-certvalidator coroutine to completion from synchronous code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (a test, the simulator): run on a helper thread.
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _validate_path(leaf: x509.Certificate, others: list[x509.Certificate], roots: Sequence[x509.Certificate],
                   at: datetime) -> list[x509.Certificate] | CertificateVerdict:
    """RFC 5280 path validation by pyhanko-certvalidator; the path signer first, root last.

    Revocation is left to the store's own checker over the validated path (CRL files reloaded
    as they change, OCSP), which tells a stale CRL and a missing one apart as policy needs.
    """
    from asn1crypto import x509 as asn1_x509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator import errors as pv_errors

    def asn1(c: x509.Certificate) -> Any:
        return asn1_x509.Certificate.load(c.public_bytes(_DER))

    name = leaf.subject.rfc4514_string()
    try:
        context = ValidationContext(trust_roots=[asn1(r) for r in roots],
                                    other_certs=[asn1(c) for c in others],
                                    crls=[], ocsps=[], moment=at, allow_fetching=False,
                                    revocation_mode="soft-fail")
        validator = CertificateValidator(asn1(leaf), validation_context=context)
        path = _run(validator.async_validate_path())
    except pv_errors.RevokedError as exc:
        return CertificateVerdict(False, "edxml.signature.cert_revoked",
                                  f"{name} (serial {leaf.serial_number:x}): {exc}", (leaf,))
    except pv_errors.ExpiredError as exc:
        return CertificateVerdict(False, "edxml.signature.cert_expired", f"{name}: {exc}", (leaf,))
    except pv_errors.NotYetValidError as exc:
        return CertificateVerdict(False, "edxml.signature.cert_not_yet_valid", f"{name}: {exc}", (leaf,))
    except pv_errors.PathBuildingError as exc:
        return CertificateVerdict(False, "edxml.signature.untrusted",
                                  f"no path from {name} (issuer {leaf.issuer.rfc4514_string()}) to a trusted "
                                  f"root: {exc}", (leaf,))
    except pv_errors.PathValidationError as exc:
        return CertificateVerdict(False, _path_reason(str(exc)), f"{name}: {exc}", (leaf,))
    except (ValueError, TypeError) as exc:
        return CertificateVerdict(False, "edxml.signature.untrusted", f"{name}: {exc}", (leaf,))
    by_der = {c.public_bytes(_DER): c for c in [leaf, *others, *roots]}
    certs = [by_der.get(c.dump()) or x509.load_der_x509_certificate(c.dump())
             for c in path.iter_certs(include_root=True)]
    certs.reverse()
    return certs


def _path_reason(message: str) -> str:
    lowered = message.lower()
    if "not a ca" in lowered or "path length" in lowered or "ca certificate" in lowered:
        return "edxml.signature.untrusted"
    return "edxml.signature.path_invalid"


def load_certificates(data: bytes, *, where: str = "certificate") -> list[x509.Certificate]:
    """All certificates in PEM data (one or more blocks) or one DER certificate; none if empty."""
    if not data.strip():
        return []
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise EdxmlError("edxml.trust.unreadable", f"not a certificate: {exc}", where=where) from None


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise EdxmlError("edxml.trust.unreadable", exc.strerror or "cannot read", where=str(path)) from None


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier):  # type: ignore[no-untyped-def]
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None

