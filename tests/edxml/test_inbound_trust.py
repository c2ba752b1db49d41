"""Inbound trust in the package core: one reading of the header, the signer bound to a certificate
that may sign, no downgrade of a signature to a placeholder.

Each test here is the regression test of one way a package could claim to be what it is not
(see docs/security-inbound-core.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import re
import shutil
import subprocess
from datetime import timedelta

from edxml.errors import EdxmlError
from edxml.pki import TestPki, issue_certificate
from edxml.reader import read_package_bytes
from edxml.signature import DocumentDigester, Signer, sign_bytes, verify_signature
from edxml.trust import TrustStore
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
