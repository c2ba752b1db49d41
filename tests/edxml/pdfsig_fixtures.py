"""Signed PDFs for the attachment-signature tests, made at run time with the test PKI.

The test PKI (edxml.pki) already holds an expired, a revoked and an untrusted agency
certificate; this module adds a time-stamping authority under the same issuing CA and builds,
once per session, one PDF of each kind the reports must tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edxml.pdfmake import append_update, minimal_pdf, sign_pdf
from edxml.pdfsig import PdfTrust
from edxml.pki import Credential, TestPkiMaterial

FIRST = "000.00.00.H55"
SECOND = "000.00.00.G22"


def tsa_credential(pki: TestPkiMaterial) -> Credential:
    """A time-stamping authority certificate (critical EKU timeStamping) from the issuing CA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "TSA TEST")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(pki.ca.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(pki.now - timedelta(days=1)).not_valid_after(pki.now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.ca.key.public_key()),
                           critical=False)
            .sign(pki.ca.key, hashes.SHA256()))
    return Credential("TSA TEST", None, key, cert, (pki.ca.certificate,))


def timestamper(tsa: Credential):  # type: ignore[no-untyped-def]
    from pyhanko.sign.timestamps import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    def der(c: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    key = tsa.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return DummyTimeStamper(tsa_cert=der(tsa.certificate), tsa_key=asn1_keys.PrivateKeyInfo.load(key),
                            certs_to_embed=SimpleCertificateStore.from_certs([der(c) for c in tsa.chain]))


def signed_by(data: bytes, cred: Credential, **kw) -> bytes:  # type: ignore[no-untyped-def]
    out = sign_pdf(data, cred.key, cred.certificate, cred.chain, **kw)
    assert out is not None
    return out


@dataclass(frozen=True)
class SignedPdfs:
    trust: PdfTrust
    unsigned: bytes
    valid: bytes
    timestamped: bytes
    two_signatures: bytes
    changed_after_signing: bytes
    tampered: bytes
    expired: bytes
    revoked: bytes
    untrusted: bytes


def make_signed_pdfs(pki: TestPkiMaterial) -> SignedPdfs:
    plain = minimal_pdf("Quyet dinh so 1/QD-UBND")
    first = pki.agencies[FIRST]
    valid = signed_by(plain, first)
    # Flip one byte of the page content inside the signed range: the digest no longer matches.
    at = valid.index(b"(Quyet dinh")
    tampered = valid[:at + 1] + b"q" + valid[at + 2:]
    return SignedPdfs(
        trust=PdfTrust.from_objects([pki.root.certificate], [pki.ca.certificate], [pki.crl, pki.root_crl]),
        unsigned=plain,
        valid=valid,
        timestamped=signed_by(plain, first, timestamper=timestamper(tsa_credential(pki))),
        two_signatures=signed_by(valid, pki.agencies[SECOND]),
        changed_after_signing=append_update(valid),
        tampered=tampered,
        expired=signed_by(plain, pki.expired),
        revoked=signed_by(plain, pki.revoked),
        untrusted=signed_by(plain, pki.untrusted),
    )
