"""Inbound trust in the package core: one reading of the header, the signer bound to a certificate
that may sign, no downgrade of a signature to a placeholder.

Each test here is the regression test of one way a package could claim to be what it is not
(see docs/security-inbound-core.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from datetime import timedelta

from edxml.errors import EdxmlError
from edxml.pki import TestPki, issue_certificate
from edxml.reader import read_package_bytes
from edxml.signature import DocumentDigester, Signer, sign_bytes, verify_signature
from edxml.trust import TrustStore
from tests.edxml.conftest import build_tiny_package
from tests.edxml.hostile import make_corpus

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
