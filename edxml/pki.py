"""Build a throw-away test PKI shaped like the Ban Cơ yếu Chính phủ one.

Used by ``pki init DIR``, by the tests and by the demo; keys are generated at run time and never
committed. The hierarchy mirrors the real "chữ ký số chuyên dùng công vụ" one (root
"Cơ quan chứng thực số chuyên dùng Chính phủ (RootCA)", issuing CA "Cơ quan chứng thực số Chính
phủ", O = Ban Cơ yếu Chính phủ, C = VN), every name suffixed with TEST, RSA-2048 everywhere:

- one certificate per agency (CN and O the agency's name, UID its OrganId, a CRL distribution
  point and an OCSP responder URL under ``.invalid``);
- for the first agency also an expired certificate, a revoked one (listed in the issuing CA's
  CRL) and one issued by a root nobody trusts.

:func:`build_test_pki` returns the objects (fast fixtures); :func:`init_test_pki` also writes
them as PEM files (keys mode 0600) plus ``manifest.json``::

    DIR/trust/root.pem, DIR/trust/ca.pem        the trust store (root + intermediate)
    DIR/crl/ca.crl, DIR/crl/root.crl            CRLs (PEM)
    DIR/agencies/<OrganId>/key.pem, cert.pem, chain.pem   (chain = issuing CA)
    DIR/special/{expired,revoked,untrusted}/key.pem, cert.pem, chain.pem
    DIR/untrusted-root.pem
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

if TYPE_CHECKING:
    from edxml.signature import Signer

ROOT_NAME = "Cơ quan chứng thực số chuyên dùng Chính phủ (RootCA) TEST"
CA_NAME = "Cơ quan chứng thực số Chính phủ TEST"
ISSUER_ORG = "Ban Cơ yếu Chính phủ"
CRL_URL = "http://crl.test-pki.invalid/ca.crl"
OCSP_URL = "http://ocsp.test-pki.invalid/"
CA_ISSUERS_URL = "http://ca.test-pki.invalid/ca.crt"

DEFAULT_AGENCIES: tuple[tuple[str, str], ...] = (
    ("000.00.00.H55", "UBND tỉnh Thái Nguyên"),
    ("000.00.00.G22", "Văn phòng Chính phủ"),
)

KEY_BITS = 2048

# Same filter as edxml.trust: cryptography counts the CA names' UTF-8 bytes, RFC 5280 characters.
warnings.filterwarnings("ignore", message=r"Attribute's length must be >= 1 and <= 64", category=UserWarning)


@dataclass(frozen=True)
class Credential:
    """A private key, its certificate and the intermediates up to (not including) the root."""

    name: str
    organ_id: str | None
    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)

    def signer(self) -> Signer:
        from edxml.signature import Signer
        return Signer(self.key, self.certificate, self.chain)


@dataclass(frozen=True)
class TestPkiMaterial:
    """The whole test PKI in memory."""

    __test__ = False

    root: Credential
    ca: Credential
    agencies: dict[str, Credential]
    expired: Credential
    revoked: Credential
    untrusted: Credential
    untrusted_root: Credential
    crl: x509.CertificateRevocationList = field(repr=False)
    root_crl: x509.CertificateRevocationList = field(repr=False)
    now: datetime


@dataclass(frozen=True)
class CredentialFiles:
    key: Path
    cert: Path
    chain: Path


@dataclass(frozen=True)
class TestPki:
    """Where :func:`init_test_pki` wrote everything (and the objects themselves)."""

    __test__ = False

    directory: Path
    trust_dir: Path
    root_cert: Path
    ca_cert: Path
    crl: Path
    root_crl: Path
    untrusted_root_cert: Path
    agencies: dict[str, CredentialFiles]
    expired: CredentialFiles
    revoked: CredentialFiles
    untrusted: CredentialFiles
    manifest: Path
    material: TestPkiMaterial = field(repr=False)

    def describe(self) -> list[str]:
        """One line per file group, for people (paths relative to the directory)."""
        def rel(p: Path) -> str:
            return p.relative_to(self.directory).as_posix()

        lines = [f"trust store: {rel(self.trust_dir)}/ (root {rel(self.root_cert)}, issuing CA {rel(self.ca_cert)})",
                 f"CRLs: {rel(self.crl)} (lists the revoked certificate), {rel(self.root_crl)}"]
        for organ_id, files in self.agencies.items():
            name = self.material.agencies[organ_id].name
            lines.append(f"{organ_id} {name}: key {rel(files.key)}, cert {rel(files.cert)}, chain {rel(files.chain)}")
        for label in ("expired", "revoked", "untrusted"):
            files = getattr(self, label)
            lines.append(f"{label} certificate: key {rel(files.key)}, cert {rel(files.cert)}")
        lines.append(f"manifest: {rel(self.manifest)}")
        return lines


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute:
    # RFC 5280 bounds CN and O at 64 *characters*; cryptography counts UTF-8 bytes, which the
    # real Vietnamese CA names exceed. Skip its check, keep the RFC's.
    if len(value) > 64:
        raise ValueError(f"name attribute longer than 64 characters: {value!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x509.NameAttribute(oid, value, _validate=False)


def _name(cn: str, org: str, organ_id: str | None = None) -> x509.Name:
    attrs = [_attr(NameOID.COUNTRY_NAME, "VN"), _attr(NameOID.ORGANIZATION_NAME, org),
             _attr(NameOID.COMMON_NAME, cn)]
    if organ_id:
        attrs.append(_attr(NameOID.USER_ID, organ_id))
    return x509.Name(attrs)


def _ca_cert(key: rsa.RSAPrivateKey, subject: x509.Name, issuer: Credential | None, *,
             not_before: datetime, not_after: datetime, path_length: int | None) -> x509.Certificate:
    issuer_name = issuer.certificate.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def issue_certificate(issuer: Credential, organ_id: str, name: str, *, not_before: datetime,
                      not_after: datetime, key: rsa.RSAPrivateKey | None = None) -> Credential:
    """An agency signing certificate issued by ``issuer``."""
    key = key or _key()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(name, name, organ_id)).issuer_name(issuer.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                           critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(CRL_URL)], relative_name=None,
                reasons=None, crl_issuer=None)]), critical=False)
            .add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(OCSP_URL)),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier(CA_ISSUERS_URL))]), critical=False)
            .sign(issuer.key, hashes.SHA256()))
    chain = (issuer.certificate,) + issuer.chain if issuer.certificate.subject != issuer.certificate.issuer else ()
    return Credential(name, organ_id, key, cert, chain)


def issue_crl(issuer: Credential, revoked: Sequence[tuple[int, datetime]] = (), *,
              last_update: datetime, next_update: datetime) -> x509.CertificateRevocationList:
    """A CRL signed by ``issuer`` listing ``(serial, revocation date)`` pairs."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.certificate.subject)
               .last_update(last_update).next_update(next_update))
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    return builder.sign(issuer.key, hashes.SHA256())


def build_test_pki(agencies: Sequence[tuple[str, str]] = DEFAULT_AGENCIES, *,
                   now: datetime | None = None) -> TestPkiMaterial:
    """Generate the whole test PKI in memory (a few RSA-2048 keys: well under a few seconds)."""
    if not agencies:
        raise ValueError("at least one agency is needed")
    now = now or datetime.now(timezone.utc)
    day = timedelta(days=1)
    root_key = _key()
    # the CAs predate every agency certificate, the expired one included
    root_cert = _ca_cert(root_key, _name(ROOT_NAME, ISSUER_ORG), None,
                         not_before=now - 1825 * day, not_after=now + 3650 * day, path_length=1)
    root = Credential(ROOT_NAME, None, root_key, root_cert)
    ca_key = _key()
    ca_cert = _ca_cert(ca_key, _name(CA_NAME, ISSUER_ORG), root,
                       not_before=now - 1460 * day, not_after=now + 1825 * day, path_length=0)
    ca = Credential(CA_NAME, None, ca_key, ca_cert)

    issued = {organ_id: issue_certificate(ca, organ_id, name, not_before=now - day, not_after=now + 730 * day)
              for organ_id, name in agencies}
    first_id, first_name = agencies[0]
    expired = issue_certificate(ca, first_id, first_name, not_before=now - 400 * day, not_after=now - 30 * day)
    revoked = issue_certificate(ca, first_id, first_name, not_before=now - day, not_after=now + 730 * day)
    crl = issue_crl(ca, [(revoked.certificate.serial_number, now - timedelta(hours=1))],
                    last_update=now - timedelta(hours=1), next_update=now + 7 * day)
    root_crl = issue_crl(root, last_update=now - timedelta(hours=1), next_update=now + 30 * day)

    other_key = _key()
    other_name = "Untrusted Root TEST"
    other_root = Credential(other_name, None, other_key,
                            _ca_cert(other_key, _name(other_name, "Nobody TEST"), None,
                                     not_before=now - day, not_after=now + 3650 * day, path_length=0))
    untrusted = issue_certificate(other_root, first_id, first_name, not_before=now - day, not_after=now + 730 * day)
    return TestPkiMaterial(root, ca, issued, expired, revoked, untrusted, other_root, crl, root_crl, now)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_credential(directory: Path, cred: Credential) -> CredentialFiles:
    """key.pem (unencrypted PKCS#8, mode 0600), cert.pem, chain.pem (intermediates)."""
    files = CredentialFiles(directory / "key.pem", directory / "cert.pem", directory / "chain.pem")
    _write(files.key, cred.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), 0o600)
    _write(files.cert, _pem(cred.certificate))
    _write(files.chain, b"".join(_pem(c) for c in cred.chain))
    return files


def init_test_pki(directory: str | os.PathLike[str], agencies: Sequence[tuple[str, str]] = DEFAULT_AGENCIES,
                  *, now: datetime | None = None) -> TestPki:
    """Generate the test PKI and write it under ``directory`` (created if missing)."""
    d = Path(directory)
    m = build_test_pki(agencies, now=now)
    _write(d / "trust" / "root.pem", _pem(m.root.certificate))
    _write(d / "trust" / "ca.pem", _pem(m.ca.certificate))
    _write(d / "crl" / "ca.crl", m.crl.public_bytes(serialization.Encoding.PEM))
    _write(d / "crl" / "root.crl", m.root_crl.public_bytes(serialization.Encoding.PEM))
    _write(d / "untrusted-root.pem", _pem(m.untrusted_root.certificate))
    agency_files = {oid: write_credential(d / "agencies" / oid, c) for oid, c in m.agencies.items()}
    special = {k: write_credential(d / "special" / k, getattr(m, k)) for k in ("expired", "revoked", "untrusted")}

    def rel(p: Path) -> str:
        return p.relative_to(d).as_posix()

    def files(f: CredentialFiles, cred: Credential) -> dict[str, str]:
        return {"key": rel(f.key), "cert": rel(f.cert), "chain": rel(f.chain), "name": cred.name,
                "organ_id": cred.organ_id or "", "serial_hex": format(cred.certificate.serial_number, "x"),
                "not_after": cred.certificate.not_valid_after_utc.isoformat()}

    manifest = {
        "generated_at": m.now.isoformat(),
        "trust_dir": "trust",
        "root": "trust/root.pem",
        "ca": "trust/ca.pem",
        "crls": ["crl/ca.crl", "crl/root.crl"],
        "untrusted_root": "untrusted-root.pem",
        "agencies": {oid: files(f, m.agencies[oid]) for oid, f in agency_files.items()},
        "special": {k: files(f, getattr(m, k)) for k, f in special.items()},
    }
    _write(d / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
    return TestPki(d, d / "trust", d / "trust" / "root.pem", d / "trust" / "ca.pem", d / "crl" / "ca.crl",
                   d / "crl" / "root.crl", d / "untrusted-root.pem", agency_files, special["expired"],
                   special["revoked"], special["untrusted"], d / "manifest.json", m)
