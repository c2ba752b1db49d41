"""Trust store, chain building, CRLs, and the test PKI itself."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from edxml.errors import EdxmlError
from edxml.pki import CA_NAME, ROOT_NAME, Credential, TestPki, init_test_pki, issue_certificate, issue_crl
from edxml.trust import CertificateInfo, CrlChecker, TrustStore

NOW = datetime.now(timezone.utc)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_store_loads_roots_and_intermediates_from_a_directory(test_pki: TestPki) -> None:
    store = TrustStore.from_paths(test_pki.trust_dir)
    m = test_pki.material
    assert store.roots == (m.root.certificate,)
    assert store.intermediates == (m.ca.certificate,)
    assert store.revocation is None


def test_store_accepts_der_files_bundles_and_directories_in_a_list(tmp_path: Path, test_pki: TestPki) -> None:
    m = test_pki.material
    der = tmp_path / "root.der"
    der.write_bytes(m.root.certificate.public_bytes(serialization.Encoding.DER))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_pem(m.ca.certificate) + _pem(m.untrusted_root.certificate))
    store = TrustStore.from_paths([der, bundle])
    assert set(store.roots) == {m.root.certificate, m.untrusted_root.certificate}
    assert store.intermediates == (m.ca.certificate,)
    store = TrustStore.from_paths([test_pki.trust_dir], crl_files=[test_pki.crl])  # as the CLI passes it
    assert store.roots == (m.root.certificate,) and store.revocation is not None


def test_unreadable_trust_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(EdxmlError) as info:
        TrustStore.from_paths([tmp_path / "missing.pem"])
    assert info.value.reason == "edxml.trust.unreadable"
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(EdxmlError):
        TrustStore.from_paths([junk])
    with pytest.raises(EdxmlError) as info:
        TrustStore.from_paths([], crl_files=[junk])
    assert info.value.reason == "edxml.trust.unreadable"


def test_valid_agency_certificate_chains_to_the_root(trust_store: TrustStore, test_pki: TestPki) -> None:
    m = test_pki.material
    leaf = m.agencies["000.00.00.H55"].certificate
    verdict = trust_store.check([leaf], NOW)
    assert verdict.ok and verdict.reason is None
    assert verdict.path == (leaf, m.ca.certificate, m.root.certificate)


def test_intermediate_carried_by_the_signature_is_used(test_pki: TestPki) -> None:
    m = test_pki.material
    roots_only = TrustStore([m.root.certificate])
    leaf = m.agencies["000.00.00.H55"].certificate
    assert roots_only.check([leaf], NOW).reason == "edxml.signature.untrusted"
    assert roots_only.check([leaf, m.ca.certificate], NOW).ok


def test_validity_is_checked_at_the_given_time(trust_store: TrustStore, test_pki: TestPki) -> None:
    leaf = test_pki.material.agencies["000.00.00.H55"].certificate
    assert trust_store.check([leaf], NOW - timedelta(days=3)).reason == "edxml.signature.cert_not_yet_valid"
    assert trust_store.check([leaf], NOW + timedelta(days=3 * 365)).reason == "edxml.signature.cert_expired"


def test_expired_and_revoked_certificates_have_their_reasons(trust_store: TrustStore, test_pki: TestPki) -> None:
    m = test_pki.material
    assert trust_store.check([m.expired.certificate], NOW).reason == "edxml.signature.cert_expired"
    verdict = trust_store.check([m.revoked.certificate], NOW)
    assert verdict.reason == "edxml.signature.cert_revoked"
    assert format(m.revoked.certificate.serial_number, "x") in verdict.message
    assert TrustStore.from_paths(test_pki.trust_dir).check([m.revoked.certificate], NOW).ok  # no CRL, no news


def test_revocation_after_the_time_of_checking_does_not_count(trust_store: TrustStore, test_pki: TestPki) -> None:
    revoked = test_pki.material.revoked.certificate
    assert trust_store.check([revoked], NOW - timedelta(hours=3)).ok


def test_stale_crl_is_reported(test_pki: TestPki) -> None:
    m = test_pki.material
    stale = issue_crl(m.ca, last_update=NOW - timedelta(days=10), next_update=NOW - timedelta(days=1))
    store = TrustStore([m.root.certificate], [m.ca.certificate], CrlChecker([stale]))
    verdict = store.check([m.agencies["000.00.00.H55"].certificate], NOW)
    assert verdict.reason == "edxml.signature.crl_stale"


def test_crl_not_signed_by_the_issuer_is_ignored(test_pki: TestPki) -> None:
    m = test_pki.material
    leaf = m.agencies["000.00.00.H55"].certificate
    impostor_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    impostor = Credential(CA_NAME, None, impostor_key, m.ca.certificate)  # the CA's name, another key
    forged = issue_crl(impostor, [(leaf.serial_number, NOW - timedelta(days=1))],
                       last_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(days=1))
    store = TrustStore([m.root.certificate], [m.ca.certificate], CrlChecker([forged]))
    assert store.check([leaf], NOW).ok
    assert store.check([leaf], NOW, require_crl=True).reason == "edxml.signature.crl_missing"


def test_required_crl_must_exist_for_every_issuer(test_pki: TestPki) -> None:
    m = test_pki.material
    leaf = m.agencies["000.00.00.H55"].certificate
    both = TrustStore([m.root.certificate], [m.ca.certificate], CrlChecker([m.crl, m.root_crl]))
    assert both.check([leaf], NOW, require_crl=True).ok
    ca_only = TrustStore([m.root.certificate], [m.ca.certificate], CrlChecker([m.crl]))
    verdict = ca_only.check([leaf], NOW, require_crl=True)
    assert verdict.reason == "edxml.signature.crl_missing" and ROOT_NAME in verdict.message


def _leaf(issuer: Credential, *, key_usage: x509.KeyUsage | None = None, ca: bool = False) -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test leaf")]))
               .issuer_name(issuer.certificate.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer.key, hashes.SHA256())


def _ku(**on: bool) -> x509.KeyUsage:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def test_leaf_must_be_for_signatures(trust_store: TrustStore, test_pki: TestPki) -> None:
    ca = test_pki.material.ca
    assert trust_store.check([_leaf(ca, key_usage=_ku(key_encipherment=True))], NOW).reason == \
        "edxml.signature.key_usage"
    assert trust_store.check([_leaf(ca, key_usage=_ku(content_commitment=True))], NOW).ok
    # no keyUsage extension: not a certificate issued for signing documents
    assert trust_store.check([_leaf(ca)], NOW).reason == "edxml.signature.key_usage"


def test_issuer_that_is_not_a_ca_breaks_the_chain(trust_store: TrustStore, test_pki: TestPki) -> None:
    agency = test_pki.material.agencies["000.00.00.H55"]
    below_agency = _leaf(agency, key_usage=_ku(digital_signature=True))
    verdict = trust_store.check([below_agency, agency.certificate], NOW)
    assert verdict.reason == "edxml.signature.untrusted" and "not a CA" in verdict.message


def test_path_length_of_the_issuing_ca_is_enforced(trust_store: TrustStore, test_pki: TestPki) -> None:
    ca = test_pki.material.ca  # pathLen 0: it may issue only end-entity certificates
    sub_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sub_cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sub CA")]))
                .issuer_name(ca.certificate.subject).public_key(sub_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(ca.key, hashes.SHA256()))
    sub = Credential("sub CA", None, sub_key, sub_cert)
    verdict = trust_store.check([_leaf(sub, key_usage=_ku(digital_signature=True)), sub_cert], NOW)
    assert verdict.reason == "edxml.signature.untrusted" and "path length" in verdict.message


def test_certificate_from_another_root_is_untrusted(trust_store: TrustStore, test_pki: TestPki) -> None:
    m = test_pki.material
    verdict = trust_store.check([m.untrusted.certificate], NOW)
    assert verdict.reason == "edxml.signature.untrusted" and "Untrusted Root TEST" in verdict.message
    assert trust_store.check([m.untrusted.certificate, m.untrusted_root.certificate], NOW).reason == \
        "edxml.signature.untrusted"  # presenting the foreign root does not make it trusted


def test_certificate_info_describes_the_certificate(test_pki: TestPki) -> None:
    cert = test_pki.material.agencies["000.00.00.G22"].certificate
    info = CertificateInfo.from_certificate(cert)
    assert info.subject == "UID=000.00.00.G22,CN=Văn phòng Chính phủ,O=Văn phòng Chính phủ,C=VN"
    assert info.issuer == f"CN={CA_NAME},O=Ban Cơ yếu Chính phủ,C=VN"
    assert int(info.serial_hex, 16) == cert.serial_number
    assert info.not_before == cert.not_valid_before_utc and len(info.sha256_fingerprint) == 64


# -- the test PKI ------------------------------------------------------------------------


def test_test_pki_files_are_complete_and_keys_private(test_pki: TestPki) -> None:
    manifest = json.loads(test_pki.manifest.read_text(encoding="utf-8"))
    assert set(manifest["agencies"]) == {"000.00.00.H55", "000.00.00.G22"}
    assert set(manifest["special"]) == {"expired", "revoked", "untrusted"}
    for files in [*test_pki.agencies.values(), test_pki.expired, test_pki.revoked, test_pki.untrusted]:
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(files.key.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    for rel in [manifest["root"], manifest["ca"], *manifest["crls"], manifest["untrusted_root"]]:
        assert (test_pki.directory / rel).is_file()
    assert not any("PRIVATE" in p.read_text() for p in test_pki.trust_dir.iterdir())
    lines = test_pki.describe()
    assert any(line.startswith("000.00.00.H55 UBND tỉnh Thái Nguyên: key agencies/000.00.00.H55/key.pem")
               for line in lines)
    assert not any(str(test_pki.directory) in line for line in lines)


def test_agency_certificates_look_like_the_real_ones(test_pki: TestPki) -> None:
    m = test_pki.material
    root = m.root.certificate
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ROOT_NAME
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Ban Cơ yếu Chính phủ"
    cert = m.agencies["000.00.00.H55"].certificate
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    assert cert.subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == "000.00.00.H55"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "UBND tỉnh Thái Nguyên"
    cdp = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert cdp[0].full_name[0].value.endswith(".invalid/ca.crl")
    aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    ocsp = [a for a in aia if a.access_method == AuthorityInformationAccessOID.OCSP]
    assert ocsp and ".invalid" in ocsp[0].access_location.value
    assert m.crl.get_revoked_certificate_by_serial_number(m.revoked.certificate.serial_number) is not None


def test_init_test_pki_takes_the_agencies_to_issue_for(tmp_path: Path) -> None:
    pki = init_test_pki(tmp_path / "pki", agencies=[("000.00.00.H37", "UBND tỉnh Lạng Sơn")])
    assert list(pki.agencies) == ["000.00.00.H37"]
    cert = x509.load_pem_x509_certificate(pki.agencies["000.00.00.H37"].cert.read_bytes())
    assert "UBND tỉnh Lạng Sơn" in cert.subject.rfc4514_string()
    chain = x509.load_pem_x509_certificates(pki.agencies["000.00.00.H37"].chain.read_bytes())
    assert chain == [pki.material.ca.certificate]


def test_issue_certificate_builds_on_a_given_issuer(test_pki: TestPki, trust_store: TrustStore) -> None:
    cred = issue_certificate(test_pki.material.ca, "000.00.00.H29", "UBND TP Hồ Chí Minh",
                             not_before=NOW - timedelta(hours=1), not_after=NOW + timedelta(days=1))
    assert cred.chain == (test_pki.material.ca.certificate,)
    assert trust_store.check([cred.certificate], NOW).ok


def test_remembered_facts_are_bounded_by_the_bytes_their_keys_hold(test_pki: TestPki) -> None:
    # A sender chooses its certificates' bytes: ever new, large ones must not grow a worker.
    from edxml.trust import FACTS_MAX_BYTES, _weight

    store = TrustStore.from_paths(test_pki.trust_dir)
    made = []
    for i in range(3 * FACTS_MAX_BYTES // 16384):
        text = f"{i:08d}".ljust(16384, "A")
        assert store.fact(("b64", text), lambda i=i: made.append(i) or i) == i
        assert store._fact_bytes <= FACTS_MAX_BYTES
        assert sum(_weight(k) for k in store._facts) == store._fact_bytes
    assert len(store._facts) < FACTS_MAX_BYTES // 16384 + 1
    # what is remembered is answered without making it again
    last = f"{len(made) - 1:08d}".ljust(16384, "A")
    assert store.fact(("b64", last), lambda: -1) == len(made) - 1
