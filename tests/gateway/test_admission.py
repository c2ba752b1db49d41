"""The admission rules on read packages (gateway.admission), without a broker: the verdicts
come from the real worker function on packages signed with the test PKI."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway import admission, work
from tests.gateway.inbound_lab import (G22, H41, H55, H55_NOI_VU, PKI, document, placeholder,
                                       signed)


@pytest.fixture(scope="module", autouse=True)
def worker() -> None:
    work.init_worker(work.WorkerSetup(keys=(), trust_paths=(str(PKI.trust_dir),),
                                      crl_files=(str(PKI.crl),)))


def _read(data: bytes, tmp_path) -> dict:
    path = tmp_path / "package.edxml"
    path.write_bytes(data)
    return work.read_and_verify(str(path), str(tmp_path / "attachments"))


def _item(sender: str = H55, to: str = H41) -> SimpleNamespace:
    return SimpleNamespace(from_code=sender, to_code=to, doc_id="d")


def test_the_signer_organ_id_is_read_from_the_certificate_uid(tmp_path) -> None:
    result = _read(signed(document("1"), by=H41), tmp_path)
    sig = result["signature"]
    assert sig["status"] == "valid"
    assert admission.signer_organ_id(sig) == H41
    refusal = admission.signer_refusal(result)
    assert refusal is not None and refusal.reason == "signature.signer_mismatch"
    assert H41 in refusal.message and H55 in refusal.message


def test_the_verifiers_own_signer_organ_id_wins_over_the_subject() -> None:
    subject = {"subject": f"UID={H41},CN=x,O=y,C=VN"}
    assert admission.signer_organ_id({"signer": subject, "signer_organ_id": H55}) == H55
    assert admission.signer_organ_id({"signer": subject, "signer_organ_id": None}) is None
    assert admission.signer_organ_id({"signer": subject}) == H41
    assert admission.signer_organ_id({"signer": {"subject": "CN=tls.example,O=y"}}) is None
    two = {"subject": f"UID={H41}+UID={H55},CN=x"}
    assert admission.signer_organ_id({"signer": two}) is None


def test_a_valid_signature_by_the_sender_is_admitted(tmp_path) -> None:
    result = _read(signed(document("2"), by=H55), tmp_path)
    assert admission.binding_refusal(_item(), result, kind="edoc") is None
    assert admission.signer_refusal(result) is None
    assert admission.learned_signer(result) == H55


@pytest.mark.parametrize("item,reason", [
    (_item(sender=H55_NOI_VU), "package.sender_mismatch"),
    (_item(to=G22), "package.not_addressed"),
])
def test_the_package_must_agree_with_the_axis_list_entry(item, reason, tmp_path) -> None:
    result = _read(signed(document("3"), by=H55), tmp_path)
    refusal = admission.binding_refusal(item, result, kind="edoc")
    assert refusal is not None and refusal.reason == reason


def test_a_rejection_goes_only_to_the_listed_sender_when_the_package_agrees(tmp_path) -> None:
    result = _read(document("4"), tmp_path)
    assert admission.rejection_recipient(_item(), result) == H55
    assert admission.rejection_recipient(_item(sender=G22), result) is None
    assert admission.rejection_recipient(_item(sender=""), result) is None


@pytest.mark.parametrize("status", ["placeholder", "absent"])
def test_a_sender_that_signs_is_refused_a_downgrade(status, tmp_path) -> None:
    data = placeholder("5") if status == "placeholder" else document("5")
    result = _read(data, tmp_path)
    assert result["signature"]["status"] == status
    refusal = admission.downgrade_refusal(result, must_sign=True)
    assert refusal is not None and refusal.reason == "signature.downgrade"
    assert admission.downgrade_refusal(result, must_sign=False) is None


def test_sender_patterns_are_shell_style() -> None:
    policy = admission.SenderPolicy(admission.patterns_of(["000.00.00.G22", "*.H41", " "]))
    assert policy.configured(G22) and policy.configured(H41)
    assert not policy.configured(H55) and not policy.configured("000.00.00.G221")
