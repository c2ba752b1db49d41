"""Signing packages and classifying received signatures: valid, invalid (with reason), placeholder, absent."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import os
import re
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edxml.c14n import canonicalize_bytes, is_header_signature
from edxml.errors import EdxmlError
from edxml.pki import TestPki
from edxml.signature import (C14N_EXC, C14N_INCLUSIVE, ENVELOPED_SIGNATURE, RSA_SHA1, RSA_SHA256, SHA1, SHA256,
                             DocumentDigester, Signer, VerificationPolicy, sign_bytes, sign_file, verify_bytes,
                             verify_file, verify_signature)
from edxml.trust import TrustStore
from edxml.xmlsafe import FanOut, SafeParser
from tests.edxml.conftest import NS, build_tiny_package
from tests.samples import SAMPLES_DIR

DS = "http://www.w3.org/2000/09/xmldsig#"
APPENDED_TRACE = (b"<edXML:TraceHeader><edXML:OrganId>000.00.00.G22</edXML:OrganId>"
                  b"<edXML:Timestamp>2024/05/06 08:00:00</edXML:Timestamp></edXML:TraceHeader>")


def append_trace_header(data: bytes) -> bytes:
    """What the axis does when it relays a package: a bare TraceHeader after the last one."""
    i = data.rindex(b"</edXML:TraceHeader>") + len(b"</edXML:TraceHeader>")
    return data[:i] + APPENDED_TRACE + data[i:]


def signature_xml(data: bytes) -> bytes:
    start = data.index(b"<Signature xmlns=")
    end = data.index(b"</Signature>") + len(b"</Signature>")
    return data[start:end]


def sign_plain_with_lxml(data: bytes, signer: Signer, *, sha1: bool = False, prefix: str | None = "ds",
                         signed_info_c14n: str = C14N_EXC, reference_uri: str = "") -> bytes:
    """An independent signer (lxml's c14n) of the plain form other senders use:
    Reference URI="" with [enveloped-signature, exc-c14n]."""
    root = etree.fromstring(data)
    header = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader")
    for old in [c for c in header if etree.QName(c).localname in ("Signature", "DigitalSignature")]:
        prev = old.getprevious()
        if old.tail:
            prev.tail = (prev.tail or "") + old.tail
        header.remove(old)
    digest_alg, sig_alg, hash_cls = ("sha1", RSA_SHA1, hashes.SHA1) if sha1 else ("sha256", RSA_SHA256, hashes.SHA256)
    digest = hashlib.new(digest_alg, etree.tostring(root.getroottree(), method="c14n", exclusive=True)).digest()
    q = lambda local: f"{{{DS}}}{local}"  # noqa: E731
    sig = etree.SubElement(header, q("Signature"), nsmap={prefix: DS})
    si = etree.SubElement(sig, q("SignedInfo"))
    etree.SubElement(si, q("CanonicalizationMethod"), Algorithm=signed_info_c14n)
    etree.SubElement(si, q("SignatureMethod"), Algorithm=sig_alg)
    ref = etree.SubElement(si, q("Reference"), URI=reference_uri)
    transforms = etree.SubElement(ref, q("Transforms"))
    etree.SubElement(transforms, q("Transform"), Algorithm=ENVELOPED_SIGNATURE)
    etree.SubElement(transforms, q("Transform"), Algorithm=C14N_EXC)
    etree.SubElement(ref, q("DigestMethod"), Algorithm=SHA1 if sha1 else SHA256)
    etree.SubElement(ref, q("DigestValue")).text = base64.b64encode(digest).decode()
    exclusive = signed_info_c14n == C14N_EXC
    canonical = etree.tostring(si, method="c14n", exclusive=exclusive)
    value = signer.private_key.sign(canonical, padding.PKCS1v15(), hash_cls())
    etree.SubElement(sig, q("SignatureValue")).text = base64.b64encode(value).decode()
    x509data = etree.SubElement(etree.SubElement(sig, q("KeyInfo")), q("X509Data"))
    etree.SubElement(x509data, q("X509SubjectName")).text = signer.certificate.subject.rfc4514_string()
    etree.SubElement(x509data, q("X509Certificate")).text = base64.b64encode(
        signer.certificate.public_bytes(serialization.Encoding.DER)).decode()
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


@pytest.fixture(scope="module")
def signed(agency_signer: Signer) -> bytes:
    return sign_bytes(build_tiny_package(), agency_signer)


# -- what we emit --------------------------------------------------------------------------


def test_signed_package_verifies_with_signer_details(signed: bytes, trust_store: TrustStore,
                                                     agency_signer: Signer) -> None:
    verdict = verify_bytes(signed, trust_store)
    assert verdict.status == "valid" and verdict.valid and verdict.reason is None
    assert verdict.signature_method == RSA_SHA256 and verdict.digest_method == SHA256
    assert verdict.trace_filter is True
    assert verdict.signer is not None
    assert "UID=000.00.00.H55" in verdict.signer.subject and "CN=UBND tỉnh Thái Nguyên" in verdict.signer.subject
    assert "CN=Cơ quan chứng thực số Chính phủ TEST" in verdict.signer.issuer
    assert verdict.signer.serial_hex == format(agency_signer.certificate.serial_number, "x")
    assert verdict.signer.sha256_fingerprint == hashlib.sha256(
        agency_signer.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert verdict.signer.not_before < datetime.now(timezone.utc) < verdict.signer.not_after


def test_signature_is_spliced_into_the_blank_line_as_last_child_of_the_header(signed: bytes) -> None:
    unsigned = build_tiny_package()
    assert b"</edXML:TraceHeaderList>\n      <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\n" in signed
    assert b"\n      </Signature>\n    </edXML:edXMLHeader>\n    <edXML:edXMLBody>" in signed
    sig = signature_xml(signed)
    assert signed.replace(sig, b"") == unsigned  # nothing else in the package changed


def test_splicing_inside_the_text_node_leaves_the_digested_content_unchanged(signed: bytes) -> None:
    unsigned = build_tiny_package()
    for trace_filter in (False, True):
        assert (canonicalize_bytes(signed, exclude=is_header_signature, trace_filter=trace_filter)
                == canonicalize_bytes(unsigned, exclude=is_header_signature, trace_filter=trace_filter))


def test_emitted_signature_layout(signed: bytes) -> None:
    sig = etree.fromstring(signature_xml(signed))
    assert sig.tag == f"{{{DS}}}Signature" and sig.prefix is None
    assert [etree.QName(c).localname for c in sig] == ["SignedInfo", "SignatureValue", "KeyInfo"]
    si = sig[0]
    assert si.find(f"{{{DS}}}CanonicalizationMethod").get("Algorithm") == C14N_EXC
    assert si.find(f"{{{DS}}}SignatureMethod").get("Algorithm") == RSA_SHA256
    (ref,) = si.findall(f"{{{DS}}}Reference")
    assert ref.get("URI") == ""
    transforms = ref.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    assert [t.get("Algorithm") for t in transforms] == [
        ENVELOPED_SIGNATURE, "http://www.w3.org/TR/1999/REC-xpath-19991116", C14N_EXC]
    xpath = transforms[1].find(f"{{{DS}}}XPath")
    assert xpath.text == ("not(ancestor-or-self::edXML:TraceHeader) and "
                          "not(self::text() and parent::edXML:TraceHeaderList)")
    assert xpath.nsmap["edXML"] == NS
    assert ref.find(f"{{{DS}}}DigestMethod").get("Algorithm") == SHA256
    x509data = sig.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data")
    assert x509data[0].tag == f"{{{DS}}}X509SubjectName"
    assert x509data[0].text.startswith("UID=000.00.00.H55,CN=UBND tỉnh Thái Nguyên")
    assert len(x509data.findall(f"{{{DS}}}X509Certificate")) == 2  # signer, then the issuing CA


def test_signed_info_as_written_canonicalizes_to_what_was_signed(signed: bytes, agency_signer: Signer) -> None:
    root = etree.fromstring(signed)
    si = root.find(f".//{{{DS}}}SignedInfo")
    canonical = etree.tostring(si, method="c14n", exclusive=True)
    value = base64.b64decode(root.find(f".//{{{DS}}}SignatureValue").text)
    agency_signer.certificate.public_key().verify(value, canonical, padding.PKCS1v15(), hashes.SHA256())


def test_placeholder_signature_is_replaced(make_tiny_package: Callable[..., bytes], agency_signer: Signer,
                                          trust_store: TrustStore) -> None:
    out = sign_bytes(make_tiny_package(slot="placeholder"), agency_signer)
    assert b"MIIFqTCCBJG" not in out and len(re.findall(rb"<Signature[ >]", out)) == 1
    assert b"</edXML:TraceHeaderList>\n      <Signature xmlns=" in out
    assert verify_bytes(out, trust_store).status == "valid"


def test_package_without_blank_line_gets_the_signature_before_the_end_tag(
        make_tiny_package: Callable[..., bytes], agency_signer: Signer, trust_store: TrustStore) -> None:
    out = sign_bytes(make_tiny_package(slot="none"), agency_signer)
    assert b"</edXML:TraceHeaderList>\n    <Signature xmlns=" in out
    assert b"</Signature></edXML:edXMLHeader>" in out
    assert verify_bytes(out, trust_store).status == "valid"


@pytest.mark.parametrize("name", ["status_inbox_01.edxml", "edoc_new.truncated.edxml"])
def test_real_sample_layouts_sign_and_verify(name: str, agency_signer: Signer, trust_store: TrustStore) -> None:
    data = (SAMPLES_DIR / name).read_bytes()
    out = sign_bytes(data, agency_signer)
    assert verify_bytes(out, trust_store).status == "valid"
    assert verify_bytes(append_trace_header(out) if b"TraceHeader>" in out else out, trust_store).valid


@st.composite
def packages(draw: st.DrawFn) -> bytes:
    subject = draw(st.text(st.sampled_from(list("aăâđêôơư ÁỆ&<>\"'\t\n\r]")), max_size=30))
    subject = subject.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    data = build_tiny_package(slot=draw(st.sampled_from(["blank", "placeholder", "none"])),
                              attachment=draw(st.binary(max_size=3000)), subject=subject)
    if draw(st.booleans()):  # a comment takes the streaming path in sign_bytes too
        data = data.replace(b"<edXML:To>", b"<!-- recipients --><edXML:To>")
    if draw(st.booleans()):
        data = data.replace(b"<edXML:Bussiness>", b"<edXML:TraceHeader/>\n<edXML:Bussiness>")
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=packages())
def test_in_memory_and_streaming_signing_give_identical_packages(data: bytes, agency_signer: Signer,
                                                                 tmp_path: Path, trust_store: TrustStore) -> None:
    in_memory = sign_bytes(data, agency_signer)
    src, dst = tmp_path / "in.edxml", tmp_path / "out.edxml"
    src.write_bytes(data)
    sign_file(src, dst, agency_signer)
    assert dst.read_bytes() == in_memory  # RSA PKCS#1 v1.5 is deterministic: same digest, same bytes
    assert verify_bytes(in_memory, trust_store).valid


def test_sign_file_writes_to_a_stream(tmp_path: Path, agency_signer: Signer, trust_store: TrustStore) -> None:
    src = tmp_path / "p.edxml"
    src.write_bytes(build_tiny_package())
    out = io.BytesIO()
    sign_file(src, out, agency_signer)
    assert verify_bytes(out.getvalue(), trust_store).valid


# -- tampering -----------------------------------------------------------------------------


def _text_offsets(data: bytes) -> list[int]:
    """Offsets of letters/digits in text content the signature covers (not in the Signature,
    not in a TraceHeader)."""
    excluded = [(data.index(b"<Signature xmlns="), data.index(b"</Signature>"))]
    excluded += [(m.start(), m.end()) for m in re.finditer(rb"<edXML:TraceHeader>.*?</edXML:TraceHeader>", data, re.S)]
    excluded += [(m.start(), m.end()) for m in re.finditer(rb"&#?\w+;", data)]  # keep entity names intact
    out = []
    for m in re.finditer(rb">([^<]+)<", data):
        for i in range(m.start(1), m.end(1)):
            if data[i] < 0x80 and chr(data[i]).isalnum() and not any(a <= i < b for a, b in excluded):
                out.append(i)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changing_any_covered_character_makes_the_signature_invalid(data: st.DataObject, signed: bytes,
                                                                    trust_store: TrustStore) -> None:
    i = data.draw(st.sampled_from(_text_offsets(signed)))
    replacement = b"B" if signed[i:i + 1] != b"B" else b"C"
    tampered = signed[:i] + replacement + signed[i + 1:]
    verdict = verify_bytes(tampered, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.digest_mismatch")


def test_flipping_a_byte_of_the_attachment_base64_is_caught(signed: bytes, trust_store: TrustStore) -> None:
    start = signed.index(b'<edXML:ContentTransferEncoded xmlns:edXML="') + 100
    i = signed.index(b">", start - 60) + 5
    tampered = signed[:i] + (b"A" if signed[i:i + 1] != b"A" else b"B") + signed[i + 1:]
    assert verify_bytes(tampered, trust_store).reason == "edxml.signature.digest_mismatch"


def test_appending_a_trace_header_as_the_axis_does_keeps_the_signature_valid(signed: bytes,
                                                                             trust_store: TrustStore) -> None:
    relayed = append_trace_header(append_trace_header(signed))
    assert relayed.count(b"<edXML:TraceHeader>") == 3
    assert verify_bytes(relayed, trust_store).valid


def test_changing_an_element_next_to_the_trace_headers_is_caught(signed: bytes, trust_store: TrustStore) -> None:
    tampered = signed.replace(b"<edXML:BussinessDocType>0<", b"<edXML:BussinessDocType>1<")
    assert tampered != signed
    assert verify_bytes(tampered, trust_store).reason == "edxml.signature.digest_mismatch"
    extra = signed.replace(b"</edXML:TraceHeaderList>", b"<edXML:Note>x</edXML:Note></edXML:TraceHeaderList>")
    assert verify_bytes(extra, trust_store).reason == "edxml.signature.digest_mismatch"


def test_bad_signature_value_is_refused(signed: bytes, trust_store: TrustStore) -> None:
    m = re.search(rb"<SignatureValue>(.)", signed)
    assert m is not None
    i = m.start(1)
    tampered = signed[:i] + (b"A" if signed[i:i + 1] != b"A" else b"B") + signed[i + 1:]
    assert verify_bytes(tampered, trust_store).reason == "edxml.signature.bad_value"


def test_certificate_swapped_for_another_agency_is_refused(signed: bytes, agency_signers: dict[str, Signer],
                                                          trust_store: TrustStore) -> None:
    other = base64.b64encode(agency_signers["000.00.00.G22"].certificate.public_bytes(serialization.Encoding.DER))
    own = re.search(rb"<X509Certificate>([^<]+)</X509Certificate>", signed)
    assert own is not None
    swapped = signed.replace(own.group(1), other)
    verdict = verify_bytes(swapped, trust_store)
    assert verdict.reason == "edxml.signature.bad_value"


# -- certificates --------------------------------------------------------------------------


def test_expired_certificate_gives_its_own_reason(expired_signer: Signer, trust_store: TrustStore) -> None:
    when = expired_signer.certificate.not_valid_before_utc + timedelta(days=1)
    data = sign_bytes(build_tiny_package(), expired_signer, now=when)
    verdict = verify_bytes(data, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.cert_expired")
    assert verdict.signer is not None and "expired" in verdict.message
    assert verify_bytes(data, trust_store, now=when).valid  # it was fine back then


def test_revoked_certificate_is_rejected_with_reason(revoked_signer: Signer, trust_store: TrustStore) -> None:
    verdict = verify_bytes(sign_bytes(build_tiny_package(), revoked_signer), trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.cert_revoked")


def test_certificate_from_an_untrusted_root_is_rejected(untrusted_signer: Signer, trust_store: TrustStore) -> None:
    verdict = verify_bytes(sign_bytes(build_tiny_package(), untrusted_signer), trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.untrusted")


def test_missing_crl_matters_only_when_policy_requires_one(signed: bytes, test_pki: TestPki) -> None:
    no_crls = TrustStore.from_paths(test_pki.trust_dir)
    assert verify_bytes(signed, no_crls).valid
    verdict = verify_bytes(signed, no_crls, VerificationPolicy(require_crl=True))
    assert verdict.reason == "edxml.signature.crl_missing"


def test_empty_trust_store_reports_a_real_signature_as_untrusted(signed: bytes) -> None:
    verdict = verify_signature(_digest(signed), TrustStore(()))
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.untrusted")
    assert verdict.signer is not None


# -- other senders' forms and algorithms ----------------------------------------------------


def test_plain_enveloped_form_from_another_sender_verifies(agency_signer: Signer, trust_store: TrustStore) -> None:
    data = sign_plain_with_lxml(build_tiny_package(slot="placeholder"), agency_signer)
    assert b"<ds:Signature" in data
    verdict = verify_bytes(data, trust_store)
    assert verdict.valid and verdict.trace_filter is False
    refused = verify_bytes(data, trust_store, VerificationPolicy(accept_unfiltered=False))
    assert refused.reason == "edxml.signature.unsupported_transform"


def test_plain_form_does_not_survive_a_trace_header_append(agency_signer: Signer, trust_store: TrustStore) -> None:
    data = sign_plain_with_lxml(build_tiny_package(), agency_signer)
    assert verify_bytes(append_trace_header(data), trust_store).reason == "edxml.signature.digest_mismatch"


def test_rsa_sha1_package_verifies_only_from_a_legacy_sender(agency_signer: Signer,
                                                             trust_store: TrustStore) -> None:
    data = sign_plain_with_lxml(build_tiny_package(), agency_signer, sha1=True)
    legacy = VerificationPolicy(legacy_sha1_senders=frozenset({"000.00.00.H55"}))
    verdict = verify_bytes(data, trust_store, legacy)
    assert verdict.valid and verdict.signature_method == RSA_SHA1 and verdict.digest_method == SHA1
    refused = verify_bytes(data, trust_store)
    assert (refused.status, refused.reason) == ("invalid", "edxml.signature.weak_algorithm")
    other = verify_bytes(data, trust_store, VerificationPolicy(legacy_sha1_senders=frozenset({"000.00.00.G22"})))
    assert (other.status, other.reason) == ("invalid", "edxml.signature.weak_algorithm")


@pytest.mark.parametrize("prefix", ["ds", None])
def test_inclusive_c14n_of_signed_info_uses_the_namespaces_in_scope(prefix: str | None, agency_signer: Signer,
                                                                    trust_store: TrustStore) -> None:
    # Inclusive c14n renders every namespace in scope on SignedInfo (edXML's default and
    # prefixed ones from the ancestors): the captured Signature must carry them.
    data = sign_plain_with_lxml(build_tiny_package(), agency_signer, prefix=prefix,
                                signed_info_c14n=C14N_INCLUSIVE)
    assert verify_bytes(data, trust_store).valid


def test_unknown_signature_algorithm_is_reported(signed: bytes, trust_store: TrustStore) -> None:
    changed = signed.replace(RSA_SHA256.encode(), b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512")
    assert verify_bytes(changed, trust_store).reason == "edxml.signature.unsupported_algorithm"


def test_any_other_xpath_filter_is_refused(signed: bytes, trust_store: TrustStore) -> None:
    changed = signed.replace(b"not(ancestor-or-self::edXML:TraceHeader) and ", b"not(ancestor-or-self::edXML:From) and ")
    assert verify_bytes(changed, trust_store).reason == "edxml.signature.unsupported_transform"
    rebound = signed.replace(b'<XPath xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">',
                             b'<XPath xmlns:edXML="urn:elsewhere">')
    assert verify_bytes(rebound, trust_store).reason == "edxml.signature.unsupported_transform"


# -- wrapping ------------------------------------------------------------------------------


def test_second_signature_in_the_header_is_wrapping(signed: bytes, trust_store: TrustStore) -> None:
    sig = signature_xml(signed)
    doubled = signed.replace(sig, sig + b"\n      " + sig)
    assert verify_bytes(doubled, trust_store).reason == "edxml.signature.wrapping"


def test_signature_moved_out_of_the_header_is_wrapping(signed: bytes, trust_store: TrustStore) -> None:
    sig = signature_xml(signed)
    moved = signed.replace(sig, b"").replace(b"<edXML:edXMLBody>", b"<edXML:edXMLBody>" + sig)
    verdict = verify_bytes(moved, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.wrapping")
    extra = signed.replace(b"<AttachmentEncoded>", b"<AttachmentEncoded>" + sig)
    assert verify_bytes(extra, trust_store).reason == "edxml.signature.wrapping"


def test_reference_to_a_copied_header_is_wrapping(agency_signer: Signer, trust_store: TrustStore) -> None:
    # The classic attack: a genuine signature over an element with an Id (here a copy of the
    # original header tucked into the body) while the header the reader shows is different.
    root = etree.fromstring(build_tiny_package())
    header = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader")
    original = copy.deepcopy(header)
    original.set("Id", "orig")
    root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLBody").append(original)
    header.find(f".//{{{NS}}}Subject").text = "Nội dung đã bị thay"
    data = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    digest = hashlib.sha256(etree.tostring(original, method="c14n", exclusive=True)).digest()
    signed = sign_plain_with_lxml(data, agency_signer, reference_uri="#orig")
    signed = re.sub(rb"<ds:DigestValue>[^<]*<", b"<ds:DigestValue>" + base64.b64encode(digest) + b"<", signed)
    verdict = verify_bytes(signed, trust_store)
    assert (verdict.status, verdict.reason) == ("invalid", "edxml.signature.wrapping")


def test_object_element_in_the_signature_is_wrapping(signed: bytes, trust_store: TrustStore) -> None:
    # The enveloped transform removes the whole Signature, so an added Object leaves the digest and
    # the SignatureValue intact: only the structural check catches it.
    with_object = signed.replace(b"</KeyInfo>", b"</KeyInfo><Object><edXMLHeader>forged</edXMLHeader></Object>")
    assert verify_bytes(with_object, trust_store).reason == "edxml.signature.wrapping"


def test_retrieval_method_in_key_info_is_wrapping(signed: bytes, trust_store: TrustStore) -> None:
    changed = signed.replace(b"<KeyInfo>", b'<KeyInfo><RetrievalMethod URI="http://attacker.invalid/k"/>')
    assert verify_bytes(changed, trust_store).reason == "edxml.signature.wrapping"


def test_signature_nested_in_the_signature_is_wrapping(signed: bytes, trust_store: TrustStore) -> None:
    sig = signature_xml(signed)
    nested = signed.replace(b"</KeyInfo>", b"</KeyInfo>" + sig, 1)
    assert verify_bytes(nested, trust_store).reason == "edxml.signature.wrapping"


# -- placeholder and absent ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["edoc_new.truncated.edxml", "edoc_revocation.truncated.edxml"])
def test_shared_document_samples_have_placeholder_signatures(name: str, trust_store: TrustStore) -> None:
    verdict = verify_file(SAMPLES_DIR / name, trust_store)
    assert (verdict.status, verdict.reason) == ("placeholder", None)
    assert "XMLDSig namespace" in verdict.message


@pytest.mark.parametrize("name", ["status_inbox_01.edxml", "status_rejection_02.edxml",
                                  "status_acceptance_03.edxml", "status_finish_06.edxml"])
def test_shared_status_samples_carry_no_signature(name: str, trust_store: TrustStore) -> None:
    assert verify_file(SAMPLES_DIR / name, trust_store).status == "absent"


def test_package_without_signature_is_absent(make_tiny_package: Callable[..., bytes],
                                             trust_store: TrustStore) -> None:
    verdict = verify_bytes(make_tiny_package(slot="blank"), trust_store)
    assert (verdict.status, verdict.reason, verdict.signer) == ("absent", None, None)


def test_dotnet_digital_signature_is_a_placeholder_and_xmldsig_stubs_are_not(trust_store: TrustStore) -> None:
    sample = (SAMPLES_DIR / "edoc_new.truncated.edxml").read_bytes()
    start, end = sample.index(b"<Signature>"), sample.index(b"</Signature>") + len(b"</Signature>")
    dotnet = sample[:start] + b"<edXML:DigitalSignature />" + sample[end:]
    assert verify_bytes(dotnet, trust_store).status == "placeholder"
    stub = sample.replace(b"<Signature>", b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">')
    verdict = verify_bytes(stub, trust_store)
    # In the XMLDSig namespace the same dummy is a broken real signature, not a placeholder:
    # under the allow-placeholder policy it must not pass.
    assert verdict.status == "invalid", verdict
    # An empty XMLDSig Signature is never a placeholder either (it would be a downgrade path).
    empty = sample[:start] + b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>' + sample[end:]
    assert verify_bytes(empty, trust_store).status == "invalid"


# -- the digester as the reader uses it ----------------------------------------------------


class CountingHandler:
    def __init__(self) -> None:
        self.elements = 0

    def start(self, uri, local, prefix, attrs, byte_offset):  # type: ignore[no-untyped-def]
        self.elements += 1

    def end(self, uri, local, prefix, byte_offset):  # type: ignore[no-untyped-def]
        pass

    def text(self, data):  # type: ignore[no-untyped-def]
        pass

    def pi(self, target, data):  # type: ignore[no-untyped-def]
        pass


def _digest(data: bytes):  # type: ignore[no-untyped-def]
    digester = DocumentDigester()
    SafeParser(digester).parse(data)
    return digester.result()


def test_digester_next_to_another_handler_gives_the_same_verdict(signed: bytes, trust_store: TrustStore) -> None:
    other, digester = CountingHandler(), DocumentDigester()
    parser = SafeParser(FanOut(other, digester))
    for i in range(0, len(signed), 7):
        parser.feed(signed[i:i + 7])
    parser.close()
    result = digester.result()
    assert other.elements > 20
    assert verify_signature(result, trust_store) == verify_bytes(signed, trust_store)
    assert list(result.digests) == [(SHA256, True)]  # only the digest the signature needs is kept


def test_digester_stops_hashing_when_there_is_nothing_to_verify(trust_store: TrustStore) -> None:
    assert _digest(build_tiny_package()).digests == {}
    assert _digest(build_tiny_package(slot="placeholder")).digests == {}


# -- signers -------------------------------------------------------------------------------


def test_signer_never_shows_its_key(agency_signer: Signer) -> None:
    text = repr(agency_signer) + str(agency_signer)
    assert "000.00.00.H55" in text
    numbers = agency_signer.private_key.private_numbers()
    assert str(numbers.d)[:20] not in text and "PRIVATE" not in text


def test_signer_loads_from_pkcs12(tmp_path: Path, agency_signer: Signer, trust_store: TrustStore) -> None:
    p12 = pkcs12.serialize_key_and_certificates(
        b"agency", agency_signer.private_key, agency_signer.certificate, list(agency_signer.chain),
        serialization.BestAvailableEncryption(b"s3cret"))
    path = tmp_path / "agency.p12"
    path.write_bytes(p12)
    signer = Signer.from_pkcs12(path, "s3cret")
    assert verify_bytes(sign_bytes(build_tiny_package(), signer), trust_store).valid
    with pytest.raises(EdxmlError) as info:
        Signer.from_pkcs12(path, "wrong")
    assert info.value.reason == "edxml.signature.key_unreadable" and "s3cret" not in str(info.value)


def test_encrypted_pem_key_needs_its_password(tmp_path: Path, agency_signer: Signer) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(agency_signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw")))
    cert = tmp_path / "cert.pem"
    cert.write_bytes(agency_signer.certificate.public_bytes(serialization.Encoding.PEM))
    assert Signer.from_pem(key, cert, "pw").certificate == agency_signer.certificate
    with pytest.raises(EdxmlError) as info:
        Signer.from_pem(key, cert)
    assert info.value.reason == "edxml.signature.key_unreadable"


def test_key_of_another_certificate_is_refused(agency_signers: dict[str, Signer]) -> None:
    a, b = agency_signers["000.00.00.H55"], agency_signers["000.00.00.G22"]
    with pytest.raises(EdxmlError) as info:
        Signer(a.private_key, b.certificate)
    assert info.value.reason == "edxml.signature.key_mismatch"


def test_signing_with_an_expired_certificate_is_refused(expired_signer: Signer) -> None:
    with pytest.raises(EdxmlError) as info:
        sign_bytes(build_tiny_package(), expired_signer)
    assert info.value.reason == "edxml.signature.signer_not_valid"


def test_package_without_header_cannot_be_signed(agency_signer: Signer) -> None:
    for data in (f'<edXML xmlns="{NS}"/>'.encode(),
                 f'<edXML xmlns="{NS}"><edXMLEnvelope><edXMLHeader/></edXMLEnvelope></edXML>'.encode()):
        with pytest.raises(EdxmlError) as info:
            sign_bytes(data, agency_signer)
        assert info.value.reason == "edxml.signature.no_header"


def test_unreadable_package_is_refused_with_the_parser_reason(agency_signer: Signer) -> None:
    with pytest.raises(EdxmlError) as info:
        sign_bytes(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", agency_signer)
    assert info.value.reason == "edxml.xml.dtd"


# -- bounded memory ------------------------------------------------------------------------


def write_large_package(path: Path, raw_bytes: int) -> None:
    """A package whose attachment's base64 is written in chunks, never held whole."""
    marker = base64.b64encode(b"MARKER-MARKER-")
    template = build_tiny_package(attachment=b"MARKER-MARKER-")
    head, tail = template.split(marker)
    with open(path, "wb") as f:
        f.write(head)
        chunk = 3 * 256 * 1024
        written = 0
        while written < raw_bytes:
            f.write(base64.b64encode(os.urandom(min(chunk, raw_bytes - written))))
            written += chunk
        f.write(tail)


def test_fifty_megabyte_package_is_signed_and_verified_in_bounded_memory(
        tmp_path: Path, agency_signer: Signer, trust_store: TrustStore) -> None:
    src, dst = tmp_path / "big.edxml", tmp_path / "big.signed.edxml"
    write_large_package(src, 38 * 1024 * 1024)  # ~50 MB of base64
    size = src.stat().st_size
    assert size > 50_000_000
    tracemalloc.start()
    try:
        sign_file(src, dst, agency_signer)
        verdict = verify_file(dst, trust_store)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert verdict.valid
    assert peak < 20 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte package"
    with open(dst, "r+b") as f:  # one byte deep inside the attachment
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(b"A" if b != b"A" else b"B")
    assert verify_file(dst, trust_store).reason == "edxml.signature.digest_mismatch"


def test_sign_file_in_place_replaces_the_file_whole(tmp_path, agency_signer, trust_store,
                                                    make_tiny_package) -> None:
    from edxml.signature import sign_file

    path = tmp_path / "p.edxml"
    path.write_bytes(make_tiny_package())
    sign_file(path, path, agency_signer)
    assert verify_bytes(path.read_bytes(), trust_store).status == "valid"
    assert [p.name for p in tmp_path.iterdir()] == ["p.edxml"]
