"""Fixtures for the edxml tests: one test PKI per session, signers, a trust store, tiny packages.

Keys are generated when the session starts (a few RSA-2048 keys, well under a second or two)
and written to a temporary directory; nothing secret is ever committed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from edxml.pki import TestPki, init_test_pki
from edxml.signature import Signer
from edxml.trust import TrustStore

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def pytest_configure(config: pytest.Config) -> None:
    # cryptography counts UTF-8 bytes against RFC 5280's 64-character bound and warns on the
    # Vietnamese CA names; edxml.trust silences it at run time, pytest resets filters per test.
    config.addinivalue_line("filterwarnings", "ignore:Attribute's length must be:UserWarning")
FIRST_AGENCY = "000.00.00.H55"


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """The test PKI written to disk: `.root_cert`, `.ca_cert`, `.crl`, `.agencies[organ_id]`, ..."""
    return init_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def trust_store(test_pki: TestPki) -> TrustStore:
    """Root + issuing CA trusted, both CRLs loaded."""
    return TrustStore.from_paths(test_pki.trust_dir, crl_files=[test_pki.crl, test_pki.root_crl])


@pytest.fixture(scope="session")
def crl_path(test_pki: TestPki) -> Path:
    """The issuing CA's CRL (lists the revoked certificate)."""
    return test_pki.crl


def _signer(files) -> Signer:  # type: ignore[no-untyped-def]
    return Signer.from_pem(files.key, files.cert, chain_path=files.chain)


@pytest.fixture(scope="session")
def agency_signers(test_pki: TestPki) -> dict[str, Signer]:
    """A valid signer per agency of the test PKI, keyed by OrganId."""
    return {organ_id: _signer(files) for organ_id, files in test_pki.agencies.items()}


@pytest.fixture(scope="session")
def agency_signer(agency_signers: dict[str, Signer]) -> Signer:
    """The valid signer of 000.00.00.H55 (UBND tỉnh Thái Nguyên)."""
    return agency_signers[FIRST_AGENCY]


@pytest.fixture(scope="session")
def expired_signer(test_pki: TestPki) -> Signer:
    """Same agency, certificate expired 30 days ago (sign with now= inside its validity)."""
    return _signer(test_pki.expired)


@pytest.fixture(scope="session")
def revoked_signer(test_pki: TestPki) -> Signer:
    """Same agency, certificate listed in the issuing CA's CRL."""
    return _signer(test_pki.revoked)


@pytest.fixture(scope="session")
def untrusted_signer(test_pki: TestPki) -> Signer:
    """Same agency name, certificate issued by a root nobody trusts."""
    return _signer(test_pki.untrusted)


def build_tiny_package(*, slot: str = "blank", attachment: bytes = b"%PDF-1.4\n% tiny test file\n",
                       subject: str = "V/v thử ký số &amp; kiểm tra &lt;chữ ký&gt;") -> bytes:
    """A small document package in the reference layout.

    ``slot``: "blank" (a blank line before </edXML:edXMLHeader>, as the writer leaves for the
    signer), "placeholder" (the samples' edXML-namespace Signature), "none" (nothing).
    """
    slots = {
        "blank": "      \n",
        "placeholder": ("      <Signature>\n        <SignedInfo>\n          <SignatureMethod "
                        'Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1" />\n        </SignedInfo>\n'
                        "        <SignatureValue>AAAA</SignatureValue>\n        <KeyInfo><X509Data>"
                        "<X509Certificate>MIIFqTCCBJG</X509Certificate></X509Data></KeyInfo>\n      </Signature>\n"),
        "none": "",
    }
    b64 = base64.b64encode(attachment).decode("ascii")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>000.00.00.H55</edXML:OrganId>
          <edXML:OrganName>UBND tỉnh Thái Nguyên</edXML:OrganName>
        </edXML:From>
        <edXML:To>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
        </edXML:To>
        <edXML:Subject>{subject}</edXML:Subject>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader>
          <edXML:OrganId>000.00.00.H55</edXML:OrganId>
          <edXML:Timestamp>2024/05/06 07:08:09</edXML:Timestamp>
        </edXML:TraceHeader>
        <edXML:Bussiness>
          <edXML:BussinessDocType>0</edXML:BussinessDocType>
          <edXML:Paper>0</edXML:Paper>
        </edXML:Bussiness>
      </edXML:TraceHeaderList>
{slots[slot]}    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:1</edXML:ContentId>
          <edXML:ContentType>application/pdf</edXML:ContentType>
          <edXML:AttachmentName>cong-van.pdf</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>cid:1</ContentId>
      <AttachmentName>cong-van.pdf</AttachmentName>
      <ContentType>application/pdf</ContentType>
      <edXML:ContentTransferEncoded xmlns:edXML="{NS}">{b64}</edXML:ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
""".encode("utf-8")


@pytest.fixture
def make_tiny_package() -> Callable[..., bytes]:
    """`make_tiny_package(slot="blank"|"placeholder"|"none", attachment=b"...")` -> package bytes."""
    return build_tiny_package
