"""What `gateway.work.read_and_verify` hands the inbound pipeline about a package's signer."""

from __future__ import annotations

from pathlib import Path

import pytest

from edxml.pki import init_test_pki
from edxml.signature import Signer, sign_bytes
from gateway import work
from tests.edxml.hostile import make_corpus


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return init_test_pki(tmp_path_factory.mktemp("pki"))


def test_verdict_carries_the_signers_organ_id_and_fingerprint(pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = pki.agencies["000.00.00.H55"]
    signer = Signer.from_pem(files.key, files.cert, chain_path=files.chain)
    path = tmp_path / "in.edxml"
    path.write_bytes(sign_bytes(make_corpus.document().encode("utf-8"), signer))
    work.init_worker(work.WorkerSetup(keys=(), trust_paths=(str(pki.trust_dir),),
                                      crl_files=(str(pki.crl), str(pki.root_crl))))
    result = work.read_and_verify(str(path), str(tmp_path / "out"))
    sig = result["signature"]
    assert (sig["status"], sig["signer_organ_id"]) == ("valid", "000.00.00.H55"), sig
    assert len(sig["signer"]["sha256"]) == 64


def test_certificate_mapping_and_legacy_senders_pass_through_the_worker_setup(pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.edxml.test_signature import sign_plain_with_lxml

    files = pki.agencies["000.00.00.H55"]
    signer = Signer.from_pem(files.key, files.cert, chain_path=files.chain)
    path = tmp_path / "sha1.edxml"
    path.write_bytes(sign_plain_with_lxml(make_corpus.document().encode("utf-8"), signer, sha1=True))
    base = dict(keys=(), trust_paths=(str(pki.trust_dir),), crl_files=(str(pki.crl), str(pki.root_crl)))
    work.init_worker(work.WorkerSetup(**base))  # type: ignore[arg-type]
    assert work.read_and_verify(str(path), str(tmp_path / "a"))["signature"]["reason"] == \
        "edxml.signature.weak_algorithm"
    work.init_worker(work.WorkerSetup(**base, legacy_sha1_senders=("000.00.00.H55",)))  # type: ignore[arg-type]
    assert work.read_and_verify(str(path), str(tmp_path / "b"))["signature"]["status"] == "valid"
