"""Decide whether a signer's certificate chains to a trusted root and is usable right now.

A :class:`TrustStore` holds the roots we trust (self-signed certificates, e.g. the Ban Cơ yếu
Chính phủ root), known intermediates (the issuing CA) and a :class:`RevocationChecker` (CRLs
today; OCSP can implement the same protocol later). :meth:`TrustStore.check` builds a path from
the signer's certificate through the certificates the signature carried and the store's
intermediates to a root, and checks every link: the issuer's signature, CA basic constraints
and path length on issuers, validity at the given time, key usage on the signer, revocation.

Layout read by :meth:`TrustStore.from_paths`: any number of PEM (several certificates per file
allowed) or DER files, or a directory of them (``*.pem``, ``*.crt``, ``*.cer``, ``*.der``);
CRL files PEM or DER.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from edxml.errors import EdxmlError

REASONS: dict[str, str] = {
    "edxml.signature.untrusted": "the signer's certificate does not chain to a trusted root (or an issuer is not a CA)",
    "edxml.signature.cert_expired": "a certificate in the chain had expired at the time of checking",
    "edxml.signature.cert_not_yet_valid": "a certificate in the chain was not yet valid at the time of checking",
    "edxml.signature.key_usage": "the signer's certificate is not for digital signatures",
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


class CrlChecker:
    """Revocation from CRL files; each CRL is used only if its issuer's key signed it."""

    def __init__(self, crls: Iterable[x509.CertificateRevocationList]) -> None:
        self._crls = list(crls)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> CrlChecker:
        crls = []
        for p in paths:
            data = _read(p)
            try:
                if b"-----BEGIN X509 CRL-----" in data:
                    crls.append(x509.load_pem_x509_crl(data))
                else:
                    crls.append(x509.load_der_x509_crl(data))
            except ValueError as exc:
                raise EdxmlError("edxml.trust.unreadable", f"not a CRL: {exc}", where=str(p)) from None
        return cls(crls)

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationStatus:
        found = False
        stale = False
        for crl in self._crls:
            if crl.issuer != issuer.subject:
                continue
            try:
                if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    continue
            except (TypeError, ValueError):
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


class TrustStore:
    """Trusted roots, known intermediates and a revocation checker."""

    def __init__(self, roots: Sequence[x509.Certificate], intermediates: Sequence[x509.Certificate] = (),
                 revocation: RevocationChecker | None = None) -> None:
        self.roots = tuple(roots)
        self.intermediates = tuple(intermediates)
        self.revocation = revocation
        self._root_der = {r.public_bytes(_DER) for r in self.roots}

    @classmethod
    def from_paths(cls, trust: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                   crl_files: Iterable[str | os.PathLike[str]] = ()) -> TrustStore:
        """Load certificates from directories and/or files; self-signed ones become roots.

        Raises EdxmlError ``edxml.trust.unreadable`` for a missing or unparsable file.
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
        return cls(roots, intermediates, CrlChecker.from_files(crls) if crls else None)

    def check(self, chain: Sequence[x509.Certificate], at: datetime | None = None, *,
              require_crl: bool = False) -> CertificateVerdict:
        """Check ``chain[0]`` (the signer) using ``chain[1:]`` as untrusted helpers, at ``at``."""
        at = at or datetime.now(timezone.utc)
        if not chain:
            return CertificateVerdict(False, "edxml.signature.untrusted", "no certificate")
        leaf = chain[0]
        path = self._build_path(leaf, list(chain[1:]))
        if path is None:
            return CertificateVerdict(
                False, "edxml.signature.untrusted",
                f"no path from {leaf.subject.rfc4514_string()} (issuer {leaf.issuer.rfc4514_string()}) "
                "to a trusted root", (leaf,))
        path_t = tuple(path)
        # issuers must be CAs, with path length respected
        for depth, issuer in enumerate(path[1:]):
            bc = _extension(issuer, ExtensionOID.BASIC_CONSTRAINTS)
            if bc is None or not bc.ca:
                return CertificateVerdict(False, "edxml.signature.untrusted",
                                          f"{issuer.subject.rfc4514_string()} is not a CA", path_t)
            if bc.path_length is not None and depth > bc.path_length:
                return CertificateVerdict(False, "edxml.signature.untrusted",
                                          f"path length exceeded under {issuer.subject.rfc4514_string()}", path_t)
            ku = _extension(issuer, ExtensionOID.KEY_USAGE)
            if ku is not None and not ku.key_cert_sign:
                return CertificateVerdict(False, "edxml.signature.untrusted",
                                          f"{issuer.subject.rfc4514_string()} may not sign certificates", path_t)
        for cert in path:
            if at < cert.not_valid_before_utc:
                return CertificateVerdict(False, "edxml.signature.cert_not_yet_valid",
                                          f"{cert.subject.rfc4514_string()} is valid only from "
                                          f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z", path_t)
            if at > cert.not_valid_after_utc:
                return CertificateVerdict(False, "edxml.signature.cert_expired",
                                          f"{cert.subject.rfc4514_string()} expired on "
                                          f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z", path_t)
        ku = _extension(leaf, ExtensionOID.KEY_USAGE)
        if ku is not None and not (ku.digital_signature or ku.content_commitment):
            return CertificateVerdict(False, "edxml.signature.key_usage",
                                      f"{leaf.subject.rfc4514_string()} is not for digital signatures", path_t)
        for cert, issuer in zip(path, path[1:]):
            status = (self.revocation.status(cert, issuer, at) if self.revocation is not None
                      else RevocationStatus("unknown"))
            if status.status == "revoked":
                return CertificateVerdict(False, "edxml.signature.cert_revoked", status.message, path_t)
            if status.status == "stale":
                return CertificateVerdict(False, "edxml.signature.crl_stale", status.message, path_t)
            if status.status == "unknown" and require_crl:
                return CertificateVerdict(False, "edxml.signature.crl_missing",
                                          f"no CRL loaded for {issuer.subject.rfc4514_string()}", path_t)
        return CertificateVerdict(True, None, "certificate chain trusted", path_t)

    def _build_path(self, leaf: x509.Certificate, extras: list[x509.Certificate]) -> list[x509.Certificate] | None:
        candidates = extras + list(self.intermediates) + list(self.roots)
        path = [leaf]
        cert = leaf
        while len(path) <= _MAX_PATH:
            if cert.public_bytes(_DER) in self._root_der:
                return path
            issuer = None
            # prefer a trusted root, then any issuer that really signed this certificate
            for cand in sorted(candidates, key=lambda c: c.public_bytes(_DER) not in self._root_der):
                if cand.subject != cert.issuer or any(cand is p for p in path):
                    continue
                try:
                    cert.verify_directly_issued_by(cand)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                issuer = cand
                break
            if issuer is None:
                return None
            path.append(issuer)
            cert = issuer
        return None


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

