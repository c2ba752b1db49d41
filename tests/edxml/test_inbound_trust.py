"""Inbound trust in the package core: one reading of the header, the signer bound to a certificate
that may sign, no downgrade of a signature to a placeholder.

Each test here is the regression test of one way a package could claim to be what it is not
(see docs/security.md#inbound-trust-the-package-and-its-signature).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edxml.errors import EdxmlError
from edxml.pki import OCSP_URL, Credential, TestPki, issue_certificate, issue_crl
from edxml.reader import read_package_bytes
from edxml.signature import DocumentDigester, Signer, VerificationPolicy, sign_bytes, verify_bytes, verify_signature
from edxml.trust import (ChainedRevocation, CrlChecker, OcspChecker, TrustStore, certificate_fingerprint,
                         signer_organ_id)
from tests.edxml.conftest import build_tiny_package
from tests.edxml.hostile import make_corpus
from tests.samples import SAMPLES_DIR

def from_h41() -> bytes:
    """A complete document package sent by 000.00.00.H41 (UBND tỉnh Nghệ An) to 000.00.00.H55."""
    text = make_corpus.document().replace("000.00.00.H41", "@@").replace("000.00.00.H55", "000.00.00.H41")
    return text.replace("@@", "000.00.00.H55").encode("utf-8")


def fake_header() -> bytes:
    """The package's own MessageHeader in no namespace, claiming to come from H55."""
    data = from_h41()
    start = data.index(b"<edXML:MessageHeader>")
    end = data.index(b"</edXML:MessageHeader>") + len(b"</edXML:MessageHeader>")
    fake = data[start:end].replace(b"edXML:", b"").replace(b"000.00.00.H41", b"000.00.00.H55")
    return fake.replace(b"<MessageHeader>", b'<MessageHeader xmlns="">', 1) + b"\n      "


@pytest.fixture(scope="module")
def h41_signer(test_pki: TestPki) -> Signer:
    m = test_pki.material
    cred = issue_certificate(m.ca, "000.00.00.H41", "UBND tỉnh Nghệ An",
                             not_before=m.now - timedelta(days=1), not_after=m.now + timedelta(days=30))
    return cred.signer()


def read_and_verify(data: bytes, trust: TrustStore, tmp_path: Path):  # type: ignore[no-untyped-def]
    digester = DocumentDigester()
    result = read_package_bytes(data, tmp_path / "out", digester=digester)
    return result, verify_signature(result.signature, trust)


# -- case 1: header ambiguity ---------------------------------------------------------------


def test_no_namespace_message_header_before_the_real_one_is_ambiguous(
        h41_signer: Signer, trust_store: TrustStore, tmp_path: Path) -> None:
    honest = sign_bytes(from_h41(), h41_signer)
    result, verdict = read_and_verify(honest, trust_store, tmp_path / "honest")
    assert (result.package.message_header.from_.organ_id, verdict.status) == ("000.00.00.H41", "valid")
    # H41 signs its own package with a forged header in front of the real one: the axis routes
    # by the real From (H41), a reader taking the first MessageHeader would see H55.
    forged = from_h41().replace(b"<edXML:MessageHeader>", fake_header() + b"<edXML:MessageHeader>", 1)
    signed = sign_bytes(forged, h41_signer)
    with pytest.raises(EdxmlError) as err:
        read_and_verify(signed, trust_store, tmp_path)
    assert err.value.reason == "edxml.ambiguous"


def test_no_namespace_message_header_after_the_real_one_is_ambiguous(tmp_path: Path) -> None:
    forged = from_h41().replace(b"</edXML:MessageHeader>", b"</edXML:MessageHeader>" + fake_header(), 1)
    with pytest.raises(EdxmlError) as err:
        read_package_bytes(forged, tmp_path)
    assert err.value.reason == "edxml.ambiguous"


def test_two_message_headers_in_the_edxml_namespace_are_ambiguous(tmp_path: Path) -> None:
    data = from_h41()
    start = data.index(b"<edXML:MessageHeader>")
    end = data.index(b"</edXML:MessageHeader>") + len(b"</edXML:MessageHeader>")
    twice = data[:end] + b"\n      " + data[start:end] + data[end:]
    with pytest.raises(EdxmlError) as err:
        read_package_bytes(twice, tmp_path)
    assert err.value.reason == "edxml.ambiguous"


@pytest.mark.parametrize("element", [b"From", b"Subject", b"DocumentId"])
def test_a_field_given_twice_is_ambiguous(element: bytes, tmp_path: Path) -> None:
    data = from_h41()
    start = data.index(b"<edXML:" + element + b">")
    end = data.index(b"</edXML:" + element + b">") + len(b"</edXML:" + element + b">")
    twice = data[:end] + data[start:end] + data[end:]
    with pytest.raises(EdxmlError) as err:
        read_package_bytes(twice, tmp_path)
    assert err.value.reason == "edxml.ambiguous"


@pytest.mark.parametrize("namespace", [b"", b"urn:other"])
def test_from_in_another_namespace_beside_the_real_one_is_ambiguous(namespace: bytes, tmp_path: Path) -> None:
    data = from_h41().replace(
        b"<edXML:From>", b'<From xmlns="' + namespace + b'"><OrganId>000.00.00.H55</OrganId></From>'
        b"<edXML:From>", 1)
    with pytest.raises(EdxmlError) as err:
        read_package_bytes(data, tmp_path)
    assert err.value.reason == "edxml.ambiguous"


def test_unprefixed_and_prefixed_edxml_names_are_one_namespace(tmp_path: Path) -> None:
    data = from_h41().replace(b"<edXML:Subject>", b'<Subject xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">', 1) \
        .replace(b"</edXML:Subject>", b"</Subject>", 1)
    result = read_package_bytes(data, tmp_path)
    assert result.package.message_header.from_.organ_id == "000.00.00.H41"
    assert result.package.message_header.subject.startswith("V/v")


# -- case 3: no downgrade -------------------------------------------------------------------

DSIG_DECL = b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">'
SUBJECT = "V/v triển khai liên thông văn bản điện tử".encode("utf-8")


@pytest.fixture(scope="module")
def signed_h41(h41_signer: Signer) -> bytes:
    return sign_bytes(from_h41(), h41_signer)


def tampered(signed: bytes) -> bytes:
    """The signed package with its Subject changed after signing."""
    assert SUBJECT in signed
    return signed.replace(SUBJECT, "Công văn giả mạo".encode("utf-8"), 1)


def verdict_of(data: bytes, trust: TrustStore, tmp_path: Path):  # type: ignore[no-untyped-def]
    return read_and_verify(data, trust, tmp_path)[1]


def test_tampered_package_is_invalid_before_any_disguise(signed_h41: bytes, trust_store: TrustStore,
                                                          tmp_path: Path) -> None:
    assert verdict_of(signed_h41, trust_store, tmp_path / "a").status == "valid"
    verdict = verdict_of(tampered(signed_h41), trust_store, tmp_path / "b")
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.digest_mismatch")


@pytest.mark.parametrize("namespace", [b"http://www.mic.gov.vn/TBT/QCVN_102_2016", b"urn:other", b""])
def test_signature_moved_to_another_namespace_stays_invalid(namespace: bytes, signed_h41: bytes,
                                                            trust_store: TrustStore, tmp_path: Path) -> None:
    moved = tampered(signed_h41).replace(DSIG_DECL, b'<Signature xmlns="' + namespace + b'">', 1)
    verdict = verdict_of(moved, trust_store, tmp_path)
    assert verdict.status == "invalid", verdict


@pytest.mark.parametrize("namespace", [b"http://www.w3.org/2000/09/xmldsig#",
                                       b"http://www.mic.gov.vn/TBT/QCVN_102_2016"])
def test_signature_renamed_digital_signature_stays_invalid(namespace: bytes, signed_h41: bytes,
                                                           trust_store: TrustStore, tmp_path: Path) -> None:
    renamed = tampered(signed_h41).replace(DSIG_DECL, b'<DigitalSignature xmlns="' + namespace + b'">', 1) \
        .replace(b"</Signature>", b"</DigitalSignature>", 1)
    verdict = verdict_of(renamed, trust_store, tmp_path)
    assert verdict.status == "invalid", verdict


def test_emptied_signature_value_stays_invalid(signed_h41: bytes, trust_store: TrustStore,
                                               tmp_path: Path) -> None:
    emptied = re.sub(rb"<SignatureValue>[^<]*</SignatureValue>", b"<SignatureValue></SignatureValue>",
                     tampered(signed_h41), count=1)
    verdict = verdict_of(emptied, trust_store, tmp_path)
    assert verdict.status == "invalid", verdict


def test_empty_xmldsig_signature_is_not_a_placeholder(signed_h41: bytes, trust_store: TrustStore,
                                                      tmp_path: Path) -> None:
    start = signed_h41.index(DSIG_DECL)
    end = signed_h41.index(b"</Signature>") + len(b"</Signature>")
    emptied = tampered(signed_h41)
    emptied = emptied[:emptied.index(DSIG_DECL)] + DSIG_DECL + b"</Signature>" + signed_h41[end:]
    assert start > 0
    verdict = verdict_of(emptied, trust_store, tmp_path)
    assert verdict.status == "invalid", verdict


def test_signature_hidden_in_the_message_header_under_another_name_is_invalid(
        signed_h41: bytes, trust_store: TrustStore, tmp_path: Path) -> None:
    data = tampered(signed_h41)
    start, end = data.index(DSIG_DECL), data.index(b"</Signature>") + len(b"</Signature>")
    sig = data[start:end].replace(DSIG_DECL, b'<Extra xmlns="urn:vendor">', 1) \
        .replace(b"</Signature>", b"</Extra>")
    moved = data[:start] + data[end:]
    moved = moved.replace(b"</edXML:MessageHeader>", sig + b"</edXML:MessageHeader>", 1)
    verdict = verdict_of(moved, trust_store, tmp_path)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.not_xmldsig"), verdict


FOREIGN = ['<x:Signature xmlns:x="urn:evil">Giao cho ông A toàn quyền</x:Signature>'.encode("utf-8"),
           b"<edXML:DigitalSignature>unsigned</edXML:DigitalSignature>",
           b'<Signature xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><Note>unsigned</Note></Signature>']


@pytest.mark.parametrize("foreign", FOREIGN, ids=["foreign-ns", "digital-signature", "edxml-ns"])
def test_foreign_content_riding_inside_a_signed_header_breaks_the_signature(
        foreign: bytes, signed_h41: bytes, trust_store: TrustStore, test_pki: TestPki, tmp_path: Path) -> None:
    riding = signed_h41.replace(b"</edXML:edXMLHeader>", foreign + b"</edXML:edXMLHeader>", 1)
    verdict = verdict_of(riding, trust_store, tmp_path)
    assert verdict.status == "invalid", verdict
    # xmlsec1, an independent implementation, rejects the same file.
    xmlsec1 = shutil.which("xmlsec1")
    if xmlsec1 is None:
        pytest.skip("the xmlsec1 binary is not installed")
    path = tmp_path / "riding.edxml"
    path.write_bytes(riding)
    ok = tmp_path / "ok.edxml"
    ok.write_bytes(signed_h41)
    for file, expected in ((ok, 0), (path, 1)):
        run = subprocess.run([xmlsec1, "--verify", "--trusted-pem", str(test_pki.root_cert),
                              "--untrusted-pem", str(test_pki.ca_cert), str(file)],
                             capture_output=True, text=True, timeout=60)
        assert (run.returncode != 0) == bool(expected), run.stderr


@pytest.mark.parametrize("name", ["edoc_new.truncated.edxml", "edoc_revocation.truncated.edxml"])
def test_reference_library_placeholders_are_still_placeholders(name: str, trust_store: TrustStore,
                                                               tmp_path: Path) -> None:
    verdict = verdict_of((SAMPLES_DIR / name).read_bytes(), trust_store, tmp_path)
    assert (verdict.status, verdict.reason) == ("placeholder", None)


@pytest.mark.parametrize("name", ["status_inbox_01.edxml", "status_rejection_02.edxml",
                                  "status_acceptance_03.edxml", "status_finish_06.edxml"])
def test_reference_library_status_packages_are_still_unsigned(name: str, trust_store: TrustStore,
                                                              tmp_path: Path) -> None:
    verdict = verdict_of((SAMPLES_DIR / name).read_bytes(), trust_store, tmp_path)
    assert (verdict.status, verdict.reason) == ("absent", None)


def test_reference_placeholder_with_a_real_certificate_is_not_a_placeholder(
        signed_h41: bytes, trust_store: TrustStore, tmp_path: Path) -> None:
    sample = (SAMPLES_DIR / "edoc_new.truncated.edxml").read_bytes()
    cert = re.search(rb"<X509Certificate>([^<]+)</X509Certificate>", signed_h41).group(1)  # type: ignore[union-attr]
    with_cert = sample.replace(b"MIIFqTCCBJG", cert, 1)
    verdict = verdict_of(with_cert, trust_store, tmp_path)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.not_xmldsig"), verdict


# -- cases 2 and 4: the signer's certificate ------------------------------------------------

UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


def make_cert(issuer: Credential, subject: x509.Name, *, extensions: list[tuple[Any, bool]] | None = None,
              ca: bool = False, key: rsa.RSAPrivateKey | None = None) -> Credential:
    """A certificate issued by ``issuer``; the default extensions are those of a signing certificate."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = issuer.certificate.not_valid_before_utc + timedelta(days=400)
    if extensions is None:
        extensions = [(signing_key_usage(), True)]
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.certificate.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                              critical=False))
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    cert = builder.sign(issuer.key, hashes.SHA256())
    chain = (issuer.certificate, *issuer.chain) if issuer.certificate.subject != issuer.certificate.issuer else ()
    return Credential(subject.rfc4514_string(), None, key, cert, chain)


def signing_key_usage(**on: bool) -> x509.KeyUsage:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    on = on or {"digital_signature": True, "content_commitment": True}
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def agency_name(organ_id: str | None, org: str = "UBND tỉnh Nghệ An") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
             x509.NameAttribute(NameOID.COMMON_NAME, org)]
    if organ_id:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, organ_id))
    return x509.Name(attrs)


def signed_by(cred: Credential) -> bytes:
    return sign_bytes(from_h41(), cred.signer(), now=cred.certificate.not_valid_before_utc + timedelta(days=1))


def verify_at(data: bytes, cred: Credential, trust: TrustStore, policy: VerificationPolicy = VerificationPolicy()):  # type: ignore[no-untyped-def]
    return verify_bytes(data, trust, policy, now=cred.certificate.not_valid_before_utc + timedelta(days=1))


def test_valid_verdict_names_the_signers_organ_id(h41_signer: Signer, trust_store: TrustStore) -> None:
    verdict = verify_bytes(sign_bytes(from_h41(), h41_signer), trust_store)
    assert (verdict.status, verdict.signer_organ_id) == ("valid", "000.00.00.H41")


def test_signer_organ_id_comes_from_the_mapping_for_a_certificate_without_uid(
        test_pki: TestPki, trust_store: TrustStore) -> None:
    cred = make_cert(test_pki.material.ca, agency_name(None))
    data = signed_by(cred)
    assert verify_at(data, cred, trust_store).signer_organ_id is None
    fingerprint = certificate_fingerprint(cred.certificate).upper()
    mapped = verify_at(data, cred, trust_store,
                       VerificationPolicy(certificate_organ_ids={fingerprint: "000.00.00.H41"}))
    assert (mapped.status, mapped.signer_organ_id) == ("valid", "000.00.00.H41")
    assert signer_organ_id(cred.certificate, {"00" * 32: "000.00.00.G22"}) is None


def test_tls_server_certificate_without_uid_is_not_a_signer(test_pki: TestPki, trust_store: TrustStore) -> None:
    tls = make_cert(test_pki.material.ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edoc.nghean.gov.vn")]),
                    extensions=[(signing_key_usage(digital_signature=True, key_encipherment=True), True),
                                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
                                (x509.SubjectAlternativeName([x509.DNSName("edoc.nghean.gov.vn")]), False)])
    verdict = verify_at(signed_by(tls), tls, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.not_signing_certificate"), verdict
    assert verdict.signer_organ_id is None


def test_ca_certificate_is_not_a_signer(test_pki: TestPki, trust_store: TrustStore) -> None:
    sub_ca = make_cert(test_pki.material.root, agency_name("000.00.00.H41"), ca=True,
                       extensions=[(signing_key_usage(digital_signature=True, key_cert_sign=True), True)])
    verdict = verify_at(signed_by(sub_ca), sub_ca, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.not_signing_certificate"), verdict


def test_certificate_without_signing_key_usage_is_not_a_signer(test_pki: TestPki, trust_store: TrustStore) -> None:
    enc = make_cert(test_pki.material.ca, agency_name("000.00.00.H41"),
                    extensions=[(signing_key_usage(key_encipherment=True), True)])
    verdict = verify_at(signed_by(enc), enc, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.key_usage"), verdict


def test_leaf_with_an_unknown_critical_extension_is_refused(test_pki: TestPki, trust_store: TrustStore) -> None:
    odd = make_cert(test_pki.material.ca, agency_name("000.00.00.H41"),
                    extensions=[(signing_key_usage(), True),
                                (x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), True)])
    verdict = verify_at(signed_by(odd), odd, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.path_invalid"), verdict


def test_leaf_outside_the_intermediates_name_constraints_is_refused(test_pki: TestPki,
                                                                   trust_store: TrustStore) -> None:
    permitted = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND tỉnh Nghệ An")])
    constrained = make_cert(test_pki.material.root, x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ban Cơ yếu"),
        x509.NameAttribute(NameOID.COMMON_NAME, "CA chỉ cho Nghệ An")]), ca=True,
        extensions=[(signing_key_usage(key_cert_sign=True, crl_sign=True), True),
                    (x509.NameConstraints(permitted_subtrees=[x509.DirectoryName(permitted)],
                                          excluded_subtrees=None), True)])
    inside = make_cert(constrained, agency_name("000.00.00.H41"))
    assert verify_at(signed_by(inside), inside, trust_store).status == "valid"
    outside = make_cert(constrained, agency_name("000.00.00.H55", org="UBND tỉnh Thái Nguyên"))
    verdict = verify_at(signed_by(outside), outside, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.path_invalid"), verdict


def test_rsa_sha1_is_refused_by_default_and_allowed_for_a_legacy_sender(h41_signer: Signer,
                                                                        trust_store: TrustStore) -> None:
    from tests.edxml.test_signature import sign_plain_with_lxml

    data = sign_plain_with_lxml(from_h41(), h41_signer, sha1=True)
    verdict = verify_bytes(data, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.weak_algorithm")
    legacy = verify_bytes(data, trust_store, VerificationPolicy(legacy_sha1_senders=frozenset({"000.00.00.H41"})))
    assert (legacy.status, legacy.signer_organ_id) == ("valid", "000.00.00.H41")


# -- case 4: revocation that follows the world ---------------------------------------------


def write_crl(path: Path, crl: x509.CertificateRevocationList) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)


def test_crl_file_replaced_while_running_is_reread(test_pki: TestPki, tmp_path: Path) -> None:
    m = test_pki.material
    leaf = m.agencies["000.00.00.H55"].certificate
    path = tmp_path / "ca.crl"
    write_crl(path, issue_crl(m.ca, last_update=m.now - timedelta(hours=2), next_update=m.now + timedelta(days=7)))
    checker = CrlChecker.from_files([path], recheck=timedelta(0))
    store = TrustStore([m.root.certificate], [m.ca.certificate], checker)
    assert store.check([leaf], m.now).ok
    write_crl(path, issue_crl(m.ca, [(leaf.serial_number, m.now - timedelta(minutes=30))],
                              last_update=m.now - timedelta(minutes=20), next_update=m.now + timedelta(days=7)))
    verdict = store.check([leaf], m.now)
    assert (verdict.ok, verdict.reason) == (False, "edxml.signature.cert_revoked")


def test_crl_past_next_update_is_reread_and_reported_stale(test_pki: TestPki, tmp_path: Path) -> None:
    m = test_pki.material
    leaf = m.agencies["000.00.00.H55"].certificate
    path = tmp_path / "ca.crl"
    old_next = m.now + timedelta(hours=1)
    write_crl(path, issue_crl(m.ca, last_update=m.now - timedelta(hours=2), next_update=old_next))
    stamp = os.stat(path)
    clock = [m.now]
    checker = CrlChecker.from_files([path], clock=lambda: clock[0], recheck=timedelta(0))
    store = TrustStore([m.root.certificate], [m.ca.certificate], checker)
    assert store.crl_next_updates() == {str(path): old_next.replace(microsecond=0)}
    assert store.stale_crls(m.now) == []
    clock[0] = later = m.now + timedelta(hours=2)
    assert store.stale_crls(later) == [str(path)]
    assert store.check([leaf], later).reason == "edxml.signature.crl_stale"
    # A fresher CRL dropped in place with the same size and time stamp is still found: the
    # stale one is reread because its nextUpdate has passed.
    write_crl(path, issue_crl(m.ca, last_update=m.now, next_update=m.now + timedelta(days=7)))
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert store.check([leaf], later).ok
    assert store.stale_crls(later) == []


def ocsp_response(issuer: Credential, cert: x509.Certificate, status: ocsp.OCSPCertStatus, at: datetime, *,
                  signer: Credential | None = None) -> bytes:
    signer = signer or issuer
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer.certificate, algorithm=hashes.SHA1(), cert_status=status,
        this_update=at - timedelta(hours=1), next_update=at + timedelta(days=1),
        revocation_time=at - timedelta(hours=2) if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_ocsp_answer_decides_for_a_certificate_that_names_a_responder(test_pki: TestPki) -> None:
    m = test_pki.material
    leaf = m.agencies["000.00.00.H55"].certificate
    asked: list[str] = []

    def fetcher(answer: bytes):  # type: ignore[no-untyped-def]
        def fetch(url: str, request: bytes) -> bytes:
            assert ocsp.load_der_ocsp_request(request).serial_number == leaf.serial_number
            asked.append(url)
            return answer
        return fetch

    def store(answer: bytes) -> TrustStore:
        return TrustStore([m.root.certificate], [m.ca.certificate], OcspChecker(fetcher(answer)))

    good = ocsp_response(m.ca, leaf, ocsp.OCSPCertStatus.GOOD, m.now)
    assert store(good).check([leaf], m.now).ok
    assert asked == [OCSP_URL]
    revoked = ocsp_response(m.ca, leaf, ocsp.OCSPCertStatus.REVOKED, m.now)
    assert store(revoked).check([leaf], m.now).reason == "edxml.signature.cert_revoked"
    forged = ocsp_response(m.ca, leaf, ocsp.OCSPCertStatus.GOOD, m.now, signer=m.untrusted_root)
    assert store(forged).check([leaf], m.now).reason == "edxml.signature.ocsp_invalid"
    # Prefetched answers work without any network, and CRLs still decide when OCSP does not.
    both = TrustStore([m.root.certificate], [m.ca.certificate],
                      ChainedRevocation(OcspChecker(responses=[good]), CrlChecker([m.crl, m.root_crl])))
    assert both.check([leaf], m.now, require_crl=True).ok
    assert both.check([m.revoked.certificate], m.now).reason == "edxml.signature.cert_revoked"


@pytest.mark.parametrize("element", [b"AttachmentName", b"ContentId"])
def test_an_attachment_field_given_twice_is_ambiguous(element: bytes, tmp_path: Path) -> None:
    data = from_h41()
    start = data.index(b"<" + element + b">", data.index(b"<AttachmentEncoded>"))
    end = data.index(b"</" + element + b">", start) + len(b"</" + element + b">")
    twice = data[:end] + data[start:end].replace(b"cong-van", b"khac").replace(b"cid:1", b"cid:2") + data[end:]
    with pytest.raises(EdxmlError) as err:
        read_package_bytes(twice, tmp_path)
    assert err.value.reason == "edxml.ambiguous"
