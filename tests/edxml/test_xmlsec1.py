"""Interoperability with xmlsec1 (libxmlsec1 + OpenSSL), an independent XMLDSig implementation.

Our packages verify under `xmlsec1 --verify` (also after the axis appends a TraceHeader, and not
when tampered with), and packages xmlsec1 signs from a template verify under our code.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from edxml.pki import TestPki
from edxml.signature import RSA_SHA1, SHA1, Signer, VerificationPolicy, sign_bytes, sign_file, verify_bytes
from edxml.trust import TrustStore
from tests.edxml.conftest import build_tiny_package
from tests.edxml.test_signature import append_trace_header

XMLSEC1 = shutil.which("xmlsec1")
pytestmark = pytest.mark.skipif(XMLSEC1 is None, reason="the xmlsec1 binary is not installed "
                                                        "(Debian package xmlsec1; .ci/run installs it)")


def xmlsec_verify(path: Path, pki: TestPki) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XMLSEC1, "--verify", "--trusted-pem", str(pki.root_cert),  # type: ignore[list-item]
                           "--untrusted-pem", str(pki.ca_cert), str(path)],
                          capture_output=True, text=True, timeout=60)


def test_package_signed_in_memory_verifies_under_xmlsec1(tmp_path: Path, agency_signer: Signer,
                                                         test_pki: TestPki) -> None:
    path = tmp_path / "signed.edxml"
    path.write_bytes(sign_bytes(build_tiny_package(slot="placeholder"), agency_signer))
    result = xmlsec_verify(path, test_pki)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout + result.stderr


def test_package_signed_as_a_stream_verifies_under_xmlsec1(tmp_path: Path, agency_signer: Signer,
                                                           test_pki: TestPki) -> None:
    src, dst = tmp_path / "in.edxml", tmp_path / "out.edxml"
    # a comment keeps every code path honest: sign_file never uses the in-memory shortcut anyway
    src.write_bytes(build_tiny_package().replace(b"<edXML:To>", b"<!-- n\xc6\xa1i nh\xe1\xba\xadn --><edXML:To>"))
    sign_file(src, dst, agency_signer)
    result = xmlsec_verify(dst, test_pki)
    assert result.returncode == 0, result.stderr


def test_trace_header_appended_in_transit_still_verifies_under_xmlsec1(tmp_path: Path, agency_signer: Signer,
                                                                       test_pki: TestPki) -> None:
    path = tmp_path / "relayed.edxml"
    path.write_bytes(append_trace_header(append_trace_header(sign_bytes(build_tiny_package(), agency_signer))))
    result = xmlsec_verify(path, test_pki)
    assert result.returncode == 0, result.stderr


def test_tampered_package_fails_under_xmlsec1(tmp_path: Path, agency_signer: Signer, test_pki: TestPki) -> None:
    signed = sign_bytes(build_tiny_package(), agency_signer)
    tampered = signed.replace(b"<edXML:OrganId>000.00.00.G22</edXML:OrganId>",
                              b"<edXML:OrganId>000.00.00.G23</edXML:OrganId>", 1)
    assert tampered != signed
    path = tmp_path / "tampered.edxml"
    path.write_bytes(tampered)
    result = xmlsec_verify(path, test_pki)
    assert result.returncode != 0
    assert "FAIL" in result.stdout + result.stderr


TEMPLATE = """
      <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:SignedInfo>
          <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
          <ds:SignatureMethod Algorithm="{sig}"/>
          <ds:Reference URI="">
            <ds:Transforms>
              <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>{xpath}
              <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
            </ds:Transforms>
            <ds:DigestMethod Algorithm="{digest}"/>
            <ds:DigestValue/>
          </ds:Reference>
        </ds:SignedInfo>
        <ds:SignatureValue/>
        <ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>
      </ds:Signature>
"""
XPATH = """
              <ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">
                <ds:XPath xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
                  not(ancestor-or-self::edXML:TraceHeader)
                  and not(self::text() and parent::edXML:TraceHeaderList)
                </ds:XPath>
              </ds:Transform>"""


def _xmlsec_sign(tmp_path: Path, signer: Signer, *, xpath: bool, sha1: bool = False) -> bytes:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_bytes(signer.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    cert.write_bytes(signer.certificate.public_bytes(serialization.Encoding.PEM))
    template = TEMPLATE.format(sig=RSA_SHA1 if sha1 else "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                               digest=SHA1 if sha1 else "http://www.w3.org/2001/04/xmlenc#sha256",
                               xpath=XPATH if xpath else "")
    unsigned = build_tiny_package(slot="none").replace(
        b"    </edXML:edXMLHeader>", template.lstrip("\n").encode() + b"    </edXML:edXMLHeader>")
    src, out = tmp_path / "template.edxml", tmp_path / "xmlsec-signed.edxml"
    src.write_bytes(unsigned)
    result = subprocess.run([XMLSEC1, "--sign", "--privkey-pem", f"{key},{cert}",  # type: ignore[list-item]
                             "--output", str(out), str(src)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def test_xmlsec1_signature_with_our_trace_filter_verifies_here(tmp_path: Path, agency_signer: Signer,
                                                               trust_store: TrustStore) -> None:
    # Signed by another implementation, with the XPath spread over lines (whitespace is normalised).
    data = _xmlsec_sign(tmp_path, agency_signer, xpath=True)
    verdict = verify_bytes(data, trust_store)
    assert verdict.valid and verdict.trace_filter is True, verdict
    assert verify_bytes(append_trace_header(data), trust_store).valid
    tampered = data.replace(b"<edXML:Paper>0<", b"<edXML:Paper>1<")
    assert verify_bytes(tampered, trust_store).reason == "edxml.signature.digest_mismatch"


def test_xmlsec1_rsa_sha1_plain_signature_verifies_here(tmp_path: Path, agency_signer: Signer,
                                                        trust_store: TrustStore) -> None:
    data = _xmlsec_sign(tmp_path, agency_signer, xpath=False, sha1=True)
    verdict = verify_bytes(data, trust_store, VerificationPolicy(legacy_sha1_senders=frozenset({"000.00.00.H55"})))
    assert verdict.valid and verdict.signature_method == RSA_SHA1 and verdict.trace_filter is False, verdict
