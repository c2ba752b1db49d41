"""The package commands of `edoc-gateway`, run as a real process: pki init, build, inspect,
validate, sign, verify. Exit codes: 0 ok, 1 the package/spec/signature is bad, 2 usage error.

One test PKI and one pair of built packages per module; every command is a subprocess of the
installed console script (`python -m gateway.cli`, the entry point's module).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.samples import sample

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "document.json"
EXAMPLE_PDF = REPO / "examples" / "cong-van.pdf"
HOSTILE = REPO / "tests" / "data" / "hostile"
SENDER, RECIPIENT = "000.00.00.H55", "000.00.00.H41"


def run(*args: Any, check_clean: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `edoc-gateway ARGS...` with umask 022; never a Python traceback on stderr."""
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, encoding="utf-8", timeout=120,
                          umask=0o022)
    if check_clean:
        assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def run_many(argvs: dict[str, list[Any]]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Independent commands run side by side (each is a process start-up of a few 100 ms)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {name: pool.submit(run, *argv, check_clean=False) for name, argv in argvs.items()}
    return {name: f.result() for name, f in futures.items()}


def run_json(*args: Any) -> tuple[int, Any]:
    proc = run(*args)
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    directory = tmp_path_factory.mktemp("cli") / "pki"
    proc = run("pki", "init", directory)
    assert proc.returncode == 0, proc.stderr
    return directory, proc


@pytest.fixture(scope="module")
def pki_dir(pki: tuple[Path, Any]) -> Path:
    return pki[0]


def key_args(pki_dir: Path, who: str = SENDER) -> list[str]:
    base = pki_dir / ("agencies/" + who if who.startswith("000.") else "special/" + who)
    return ["--key", str(base / "key.pem"), "--cert", str(base / "cert.pem")]


def trust_args(pki_dir: Path) -> list[str]:
    return ["--trust", str(pki_dir / "trust"), "--crl", str(pki_dir / "crl" / "ca.crl"),
            "--crl", str(pki_dir / "crl" / "root.crl")]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("packages")


@pytest.fixture(scope="module")
def signed(pki_dir: Path, work: Path) -> Path:
    out = work / "signed.edxml"
    proc = run("build", EXAMPLE, out, *key_args(pki_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out} (signed)"
    return out


@pytest.fixture(scope="module")
def unsigned(work: Path) -> Path:
    out = work / "unsigned.edxml"
    proc = run("build", EXAMPLE, out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


# -- pki init ---------------------------------------------------------------------------------


def test_pki_init_writes_a_hierarchy_with_private_keys_readable_only_by_their_owner(pki):
    directory, proc = pki
    assert "not secret" in proc.stdout
    for rel in ("trust/root.pem", "trust/ca.pem", "crl/ca.crl", "crl/root.crl",
                "untrusted-root.pem", "manifest.json"):
        assert (directory / rel).is_file(), rel
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["agencies"]) == {SENDER, RECIPIENT}
    assert manifest["agencies"][RECIPIENT]["name"] == "UBND tỉnh Nghệ An"
    keys = sorted(directory.glob("**/key.pem"))
    assert len(keys) == 5  # two agencies, expired, revoked, untrusted
    for key in keys:
        assert (key.stat().st_mode & 0o777) == 0o600, key
        assert key.with_name("cert.pem").is_file()
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_pki_init_refuses_an_agency_that_is_not_an_organ_id(tmp_path):
    proc = run("pki", "init", tmp_path / "p", "--agency", "H55-BAD=Tỉnh lạ")
    assert proc.returncode == 2
    assert "H55-BAD" in proc.stderr
    assert not (tmp_path / "p").exists()


# -- build + inspect ---------------------------------------------------------------------------


def test_signed_build_inspects_with_header_attachment_facts_and_a_valid_signature(
        signed, pki_dir, example):
    code, report = run_json("inspect", signed, "--json", *trust_args(pki_dir))
    assert code == 0
    assert report["ok"] is True and report["kind"] == "edoc"
    assert report["size"] == signed.stat().st_size
    assert report["sha256"] == hashlib.sha256(signed.read_bytes()).hexdigest()
    header = report["package"]["message_header"]
    assert header["from"]["organ_id"] == SENDER
    assert header["from"]["organ_name"] == "UBND tỉnh Thái Nguyên"
    assert [t["organ_id"] for t in header["to"]] == [RECIPIENT]
    assert header["code"] == {"code_number": "123", "code_notation": "UBND-VP"}
    assert header["document_id"] == "000.00.00.H55,2024/12/20,123/UBND-VP"
    assert header["subject"] == example["message_header"]["subject"]
    assert header["promulgation_info"]["promulgation_date"] == "2024-12-20"
    assert report["business_flow"] == "new"
    pdf = EXAMPLE_PDF.read_bytes()
    [att] = report["attachments"]
    assert att == {"content_id": "1", "name": "123-UBND-VP.pdf", "declared_type": "application/pdf",
                   "detected_type": "application/pdf", "size": len(pdf),
                   "sha256": hashlib.sha256(pdf).hexdigest(), "unwrapped_from_zip": False,
                   "error": None}
    assert "path" not in report["package"]["attachments"][0]  # no temporary paths leak out
    sig = report["signature"]
    assert sig["status"] == "valid" and sig["reason"] is None
    assert "UID=000.00.00.H55" in sig["signer"]["subject"]
    assert "UBND tỉnh Thái Nguyên" in sig["signer"]["subject"]
    assert "Cơ quan chứng thực số Chính phủ TEST" in sig["signer"]["issuer"]
    assert sig["signature_method"].endswith("rsa-sha256")


def test_inspect_for_people_shows_number_subject_attachment_and_signer(signed, pki_dir, example):
    proc = run("inspect", signed, *trust_args(pki_dir))
    assert proc.returncode == 0
    assert "number:  123/UBND-VP  dated 2024-12-20" in proc.stdout
    assert example["message_header"]["subject"] in proc.stdout
    assert re.search(r"attachment 1: 123-UBND-VP\.pdf \[application/pdf\] \d+ bytes ok", proc.stdout)
    assert "signature: valid by UID=000.00.00.H55" in proc.stdout


def test_inspect_without_trust_reports_a_real_signature_as_untrusted_but_not_as_a_defect(signed):
    code, report = run_json("inspect", signed, "--json")
    assert code == 0 and report["ok"] is True
    assert report["signature"]["status"] == "invalid"
    assert report["signature"]["reason"] == "edxml.signature.untrusted"


def test_build_without_a_key_writes_an_unsigned_package_readable_by_everyone(unsigned):
    assert (unsigned.stat().st_mode & 0o777) == 0o644
    code, report = run_json("inspect", unsigned, "--json")
    assert code == 0
    assert report["signature"]["status"] == "absent"
    assert report["package"]["message_header"]["from"]["organ_id"] == SENDER


def test_inspect_of_the_revocation_sample_shows_the_header_and_names_the_corrupt_attachment():
    code, report = run_json("inspect", sample("edoc_revocation.truncated.edxml"), "--json")
    assert code == 1
    assert report["ok"] is False
    assert report["business_flow"] == "revoke"
    assert report["package"]["message_header"]["from"]["organ_id"] == "000.00.00.G22"
    [att] = report["attachments"]
    assert att["error"]["reason"] == "edxml.attachment.base64"
    assert att["size"] is None and att["sha256"] is None
    assert report["signature"]["status"] == "placeholder"


def test_inspect_of_an_unsigned_status_sample_shows_the_receipt():
    code, report = run_json("inspect", sample("status_finish_06.edxml"), "--json")
    assert code == 0
    assert report["kind"] == "status" and report["attachments"] == []
    assert report["package"]["message_header"]["status_code"] == "06"
    assert report["signature"]["status"] == "absent"


def test_inspect_of_the_new_document_sample_calls_its_signature_a_placeholder():
    code, report = run_json("inspect", sample("edoc_new.truncated.edxml"), "--json")
    assert code == 1  # its attachment is truncated
    assert report["signature"]["status"] == "placeholder"
    assert report["signature"]["message"].startswith("placeholder signature:")


def test_inspect_of_a_hostile_file_exits_1_with_the_reason_in_json():
    code, report = run_json("inspect", HOSTILE / "dtd-billion-laughs-10-levels-subject-ref.edxml",
                            "--json")
    assert code == 1
    assert report == {"ok": False, "error": {"reason": "edxml.xml.dtd",
                                             "message": report["error"]["message"],
                                             "where": report["error"]["where"]}}


# -- validate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("xsd", [[], ["--xsd"]], ids=["reader", "reader+xsd"])
def test_validate_accepts_what_build_writes(signed, unsigned, xsd):
    for package in (signed, unsigned):
        proc = run("validate", package, *xsd)
        assert proc.returncode == 0, proc.stdout
        assert proc.stdout.strip().splitlines()[-1] == "valid edoc package"


@pytest.mark.parametrize("xsd", [[], ["--xsd"]], ids=["reader", "reader+xsd"])
def test_validate_refuses_a_hostile_file_with_its_reason(xsd):
    proc = run("validate", HOSTILE / "dtd-external-entity-file-subject-alt.edxml", *xsd)
    assert proc.returncode == 1
    assert "invalid: edxml.xml.dtd" in proc.stdout


def _rewrap_base64(package: bytes) -> bytes:
    """MIME-style 76-character lines inside ContentTransferEncoded: the reader accepts it, the
    schema (single-line base64) does not."""
    def wrap(m: re.Match[bytes]) -> bytes:
        body = m.group(2)
        return m.group(1) + b"\n".join(body[i:i + 76] for i in range(0, len(body), 76)) + m.group(3)
    return re.sub(rb"(<edXML:ContentTransferEncoded[^>]*>)([A-Za-z0-9+/=]+)(</)", wrap, package)


@pytest.fixture(scope="module")
def big_spec(work: Path, example: dict[str, Any]) -> Path:
    """The example with a 100 KB attachment: its base64 is past the schema's fast-path size."""
    data = hashlib.sha256(b"seed").digest() * (100_000 // 32)
    (work / "big.bin").write_bytes(data)
    spec = dict(example, attachments=[{"content_id": "2", "attachment_name": "phu-luc.bin",
                                       "content_type": "application/octet-stream",
                                       "path": "big.bin"}])
    path = work / "big.json"
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("size", ["small", "big"])
def test_validate_xsd_finds_what_only_the_schema_refuses(unsigned, big_spec, work, size):
    source = unsigned
    if size == "big":
        source = work / "big.edxml"
        assert run("build", big_spec, source).returncode == 0
        assert run("validate", "--xsd", source).returncode == 0
    wrapped = work / f"wrapped-{size}.edxml"
    wrapped.write_bytes(_rewrap_base64(source.read_bytes()))
    assert run("validate", wrapped).returncode == 0  # the reader tolerates line breaks
    proc = run("validate", "--xsd", wrapped)
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("invalid: xsd:")]
    assert "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded" in line
    assert re.search(r"line \d+", line)


def test_xsd_validation_is_skipped_with_one_line_for_a_file_over_the_size_limit(signed):
    from edxml.schema import MAX_XSD_BYTES, validate_file

    assert MAX_XSD_BYTES == 64 * 1024 * 1024
    [line] = validate_file(signed, max_bytes=1024)
    assert "skipped for size" in line and str(signed.stat().st_size) in line
    assert validate_file(signed) == []


def test_xsd_problems_come_in_document_order_and_are_capped():
    from edxml.schema import validate_file

    every = validate_file(sample("edoc_new.truncated.edxml"))
    lines = [int(re.match(r"line (\d+),", p).group(1)) for p in every]  # type: ignore[union-attr]
    assert len(lines) == 3 and lines == sorted(lines)
    first, rest = validate_file(sample("edoc_new.truncated.edxml"), max_problems=1)
    assert first in every and rest == "... and 2 more schema problem(s)"


def test_xsd_reads_a_big_attachment_as_xsd_does_around_a_comment(work, big_spec):
    from edxml.schema import validate_file

    source = work / "big-for-comment.edxml"
    assert run("build", big_spec, source).returncode == 0
    data = source.read_bytes()
    start = data.index(b">", data.index(b"<edXML:ContentTransferEncoded")) + 1
    cut = start + 4 * 10_000
    commented = work / "big-commented.edxml"
    commented.write_bytes(data[:cut] + b"<!-- split -->" + data[cut:])
    assert validate_file(commented) == []
    broken = work / "big-broken.edxml"
    broken.write_bytes(data[:cut] + b"!" + data[cut + 1:])
    [line] = validate_file(broken)
    assert "Base64OneLine" in line


def test_xsd_validation_of_a_hostile_file_is_one_line_from_the_hardened_parser():
    from edxml.schema import validate_file

    [line] = validate_file(HOSTILE / "dtd-billion-laughs-10-levels-subject-ref.edxml")
    assert "edxml.xml.dtd" in line


# -- sign + verify ------------------------------------------------------------------------------


def test_sign_an_unsigned_package_then_verify_with_trust_and_crls(unsigned, pki_dir, work):
    out = work / "signed-later.edxml"
    proc = run("sign", unsigned, out, *key_args(pki_dir))
    assert proc.returncode == 0, proc.stderr
    assert (out.stat().st_mode & 0o777) == 0o644
    proc = run("verify", out, *trust_args(pki_dir))
    assert proc.returncode == 0
    assert proc.stdout.startswith("valid; signer: UID=000.00.00.H55")
    code, verdict = run_json("verify", out, "--json", *trust_args(pki_dir))
    assert code == 0 and verdict["status"] == "valid"
    assert verdict["signer"]["subject"].startswith("UID=000.00.00.H55")


def test_sign_in_place_keeps_the_package_and_signs_it(unsigned, pki_dir, work):
    target = work / "in-place.edxml"
    target.write_bytes(unsigned.read_bytes())
    assert run("sign", target, target, *key_args(pki_dir)).returncode == 0
    assert run("verify", target, *trust_args(pki_dir)).returncode == 0
    assert not list(work.glob(".edoc-sign-*"))


def test_resigning_replaces_the_old_signature(signed, pki_dir, work):
    out = work / "resigned.edxml"
    assert run("sign", signed, out, *key_args(pki_dir, RECIPIENT)).returncode == 0
    code, verdict = run_json("verify", out, "--json", *trust_args(pki_dir))
    assert code == 0 and "UID=000.00.00.H41" in verdict["signer"]["subject"]
    assert out.read_bytes().count(b"<SignatureValue>") == 1


@pytest.fixture(scope="module")
def expired_signed(unsigned: Path, pki_dir: Path, work: Path) -> Path:
    """Signed with the expired certificate while it was still valid (the CLI refuses it now)."""
    from edxml.signature import Signer, sign_file

    base = pki_dir / "special" / "expired"
    signer = Signer.from_pem(base / "key.pem", base / "cert.pem")
    out = work / "expired.edxml"
    sign_file(unsigned, out, signer, now=signer.certificate.not_valid_before_utc + timedelta(days=1))
    return out


@pytest.mark.parametrize("who, reason", [("expired", "edxml.signature.cert_expired"),
                                         ("revoked", "edxml.signature.cert_revoked"),
                                         ("untrusted", "edxml.signature.untrusted")])
def test_verify_refuses_expired_revoked_and_untrusted_signers_with_their_reason(
        who, reason, unsigned, expired_signed, pki_dir, work):
    package = expired_signed
    if who != "expired":
        package = work / f"{who}.edxml"
        assert run("sign", unsigned, package, *key_args(pki_dir, who)).returncode == 0
    proc = run("verify", package, *trust_args(pki_dir))
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"invalid {reason}: ")
    code, report = run_json("inspect", package, "--json", *trust_args(pki_dir))
    assert code == 1 and report["signature"]["reason"] == reason


def test_verify_notices_a_package_changed_after_signing(signed, pki_dir, work):
    tampered = work / "tampered.edxml"
    data = signed.read_bytes()
    assert data.count("123/UBND-VP".encode()) >= 1
    tampered.write_bytes(data.replace("123/UBND-VP".encode(), "124/UBND-VP".encode()))
    proc = run("verify", tampered, *trust_args(pki_dir))
    assert proc.returncode == 1
    assert "edxml.signature.digest_mismatch" in proc.stdout
    assert run("inspect", tampered).returncode == 1  # broken, trusted or not


def test_verify_of_an_unsigned_package_says_absent(unsigned, pki_dir):
    proc = run("verify", unsigned, *trust_args(pki_dir))
    assert proc.returncode == 1
    assert proc.stdout.startswith("absent: ")


def test_sign_refuses_an_expired_signing_certificate_before_writing(unsigned, pki_dir, work):
    out = work / "never.edxml"
    proc = run("sign", unsigned, out, *key_args(pki_dir, "expired"))
    assert proc.returncode == 2
    assert "edxml.signature.signer_not_valid" in proc.stderr
    assert not out.exists()


# -- usage errors and bad specs ------------------------------------------------------------------


USAGE_CASES = {
    "inspect a missing file": (["inspect", "{work}/missing.edxml"], "missing.edxml"),
    "validate a directory": (["validate", "{work}"], "cannot read"),
    "verify without --trust": (["verify", "{work}/unsigned.edxml"], "--trust"),
    "unknown option": (["inspect", "{work}/unsigned.edxml", "--frobnicate"], "--frobnicate"),
    "no command": ([], "COMMAND"),
    "sign without --cert": (["sign", "{work}/unsigned.edxml", "{work}/x.edxml", "--key",
                             "{pki}/agencies/000.00.00.H55/key.pem"], "--cert"),
    "sign with another agency's key": (
        ["sign", "{work}/unsigned.edxml", "{work}/x.edxml",
         "--key", "{pki}/agencies/000.00.00.H41/key.pem",
         "--cert", "{pki}/agencies/000.00.00.H55/cert.pem"], "edxml.signature.key_mismatch"),
    "sign a missing file": (["sign", "{work}/missing.edxml", "{work}/x.edxml", "--key",
                             "{pki}/agencies/000.00.00.H55/key.pem", "--cert",
                             "{pki}/agencies/000.00.00.H55/cert.pem"], "missing.edxml"),
    "trust store missing": (["verify", "{work}/unsigned.edxml", "--trust", "{work}/nowhere"],
                            "edxml.trust.unreadable"),
    "trust store without a root": (["verify", "{work}/unsigned.edxml", "--trust", "{work}"],
                                   "no self-signed root"),
    "crl that is not a crl": (["verify", "{work}/unsigned.edxml", "--trust", "{pki}/trust",
                               "--crl", "{pki}/trust/ca.pem"], "not a CRL"),
    "crl without trust": (["inspect", "{work}/unsigned.edxml", "--crl", "{pki}/crl/ca.crl"],
                          "--crl needs --trust"),
    "build to a missing directory": (["build", str(EXAMPLE), "{work}/nowhere/x.edxml"], "nowhere"),
    "build with --cert but no --key": (["build", str(EXAMPLE), "{work}/x.edxml", "--cert",
                                        "{pki}/agencies/000.00.00.H55/cert.pem"], "--key"),
    "build from a missing spec": (["build", "{work}/missing.json", "{work}/x.edxml"],
                                  "missing.json"),
    "pki init over a file": (["pki", "init", "{work}/unsigned.edxml"], "cannot write"),
}


@pytest.fixture(scope="module")
def usage_results(unsigned: Path, pki_dir: Path, work: Path) -> dict[str, Any]:
    return run_many({case: [a.format(work=work, pki=pki_dir) for a in argv]
                     for case, (argv, _) in USAGE_CASES.items()})


@pytest.mark.parametrize("case", USAGE_CASES, ids=list(USAGE_CASES))
def test_usage_errors_exit_2_with_a_message_on_stderr(case, usage_results, work):
    proc = usage_results[case]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert USAGE_CASES[case][1] in proc.stderr
    assert not (work / "x.edxml").exists()


def _bad_spec(work: Path, example: dict[str, Any], name: str, change) -> Path:  # type: ignore[no-untyped-def]
    spec = json.loads(json.dumps(example))
    change(spec)
    path = work / f"{name}.json"
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    # attachments are relative to the spec's directory
    (work / "cong-van.pdf").write_bytes(EXAMPLE_PDF.read_bytes())
    return path


BAD_SPECS = {
    "unknown key": (lambda s: s["message_header"].update(subjekt="x"),
                    ["edxml.spec.invalid", "subjekt", "$.message_header"]),
    "bad sender OrganId": (lambda s: s["message_header"]["from"].update(organ_id="H55-BAD"),
                           ["edxml.value.organ_id", "H55-BAD", "MessageHeader/From/OrganId"]),
    "bad recipient OrganId": (lambda s: s["message_header"]["to"][0].update(organ_id="28.22.H17"),
                              ["edxml.value.organ_id", "MessageHeader/To[1]/OrganId"]),
    "date in wire format": (lambda s: s["message_header"]["promulgation_info"].update(
        promulgation_date="2024/12/20"), ["edxml.spec.invalid", "promulgation_date"]),
    "subject missing": (lambda s: s["message_header"].pop("subject"),
                        ["edxml.model.missing", "MessageHeader/Subject"]),
    "attachment file missing": (lambda s: s["attachments"][0].update(path="khong-co.pdf"),
                                ["edxml.attachment.unreadable", "Attachment[1]"]),
}


@pytest.fixture(scope="module")
def bad_spec_results(work: Path, example: dict[str, Any]) -> dict[str, Any]:
    argvs = {}
    for case, (change, _) in BAD_SPECS.items():
        name = case.replace(" ", "-")
        argvs[case] = ["build", _bad_spec(work, example, name, change), work / f"{name}.edxml"]
    return run_many(argvs)


@pytest.mark.parametrize("case", BAD_SPECS, ids=list(BAD_SPECS))
def test_build_refuses_a_bad_spec_with_exit_1_naming_the_field(case, bad_spec_results, work):
    proc = bad_spec_results[case]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
    for needle in BAD_SPECS[case][1]:
        assert needle in proc.stderr
    assert not (work / f"{case.replace(' ', '-')}.edxml").exists()
    assert not list(work.glob(".edxml-*"))  # no temporary file left behind


def test_build_refuses_a_spec_that_is_not_json(work):
    spec = work / "broken.json"
    spec.write_text('{"kind": "edoc",', encoding="utf-8")
    proc = run("build", spec, work / "broken.edxml")
    assert proc.returncode == 1
    assert "edxml.spec.invalid" in proc.stderr and "not JSON" in proc.stderr


def test_example_attachment_is_a_small_pdf():
    data = EXAMPLE_PDF.read_bytes()
    assert data.startswith(b"%PDF-1.4\n") and data.rstrip().endswith(b"%%EOF")
    assert 200 < len(data) < 2000
