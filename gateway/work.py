"""CPU-bound steps, run in worker processes so the event loop keeps Kafka and HTTP moving.

Building and signing a package and reading and verifying one are the expensive steps (RSA,
base64, hashing and canonicalising whole files). They run in a process pool whose workers load
the agencies' signing keys and the trust store once, at start; calls pass only paths and plain
data. Errors come back as data (`{"error": {...}}`) rather than exceptions, since the gateway's
errors carry keyword arguments that do not survive pickling.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from edxml.errors import EdxmlError
from edxml.reader import file_digest


@dataclass(frozen=True)
class KeySpec:
    """Where one agency's signing key is; loaded inside each worker."""

    organ_id: str
    key: str | None = None
    cert: str | None = None
    chain: str | None = None
    pkcs12: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class WorkerSetup:
    keys: tuple[KeySpec, ...]
    trust_paths: tuple[str, ...] = ()
    crl_files: tuple[str, ...] = ()
    allow_sha1: bool = True
    max_attachment_bytes: int = 2 * 1024 ** 3


_SIGNERS: dict[str, Any] = {}
_TRUST: Any = None
_SETUP: WorkerSetup | None = None


def load_signer(spec: KeySpec) -> Any:
    from edxml.signature import Signer

    if spec.pkcs12:
        return Signer.from_pkcs12(spec.pkcs12, spec.password)
    return Signer.from_pem(spec.key, spec.cert, spec.password,  # type: ignore[arg-type]
                           chain_path=spec.chain)


def init_worker(setup: WorkerSetup) -> None:
    """Runs once in every worker process."""
    global _TRUST, _SETUP
    import signal

    from edxml.trust import TrustStore

    # Ctrl-C in a terminal reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _SETUP = setup
    _SIGNERS.clear()
    for spec in setup.keys:
        _SIGNERS[spec.organ_id] = load_signer(spec)
    _TRUST = (TrustStore.from_paths(list(setup.trust_paths), crl_files=list(setup.crl_files))
              if setup.trust_paths else TrustStore(()))


def _error(exc: EdxmlError) -> dict[str, Any]:
    return {"error": {"reason": exc.reason, "message": exc.message, "where": exc.where}}


def build_and_sign(agency: str, package: dict[str, Any], out_path: str) -> dict[str, Any]:
    """Build the package described by `package` (JSON form), sign it as `agency`, write it."""
    from edxml.jsonform import package_from_dict
    from edxml.writer import write_package_file

    signer = _SIGNERS.get(agency)
    if signer is None:
        return {"error": {"reason": "event.unknown_sender",
                          "message": f"no signing key is configured for {agency}", "where": None}}
    try:
        pkg = package_from_dict(package)
        written = write_package_file(pkg, out_path, signer=signer)
    except EdxmlError as exc:
        return _error(exc)
    mismatch = _attachment_mismatch(pkg, written)
    if mismatch is not None:
        Path(out_path).unlink(missing_ok=True)
        return {"error": mismatch}
    size, sha = file_digest(out_path)
    return {"sha256": sha, "size": size}


def _attachment_mismatch(pkg: Any, written: Any) -> dict[str, Any] | None:
    """The attachment bytes that went into the package against the agency's claim (size and
    SHA-256 from the event): the claim check is made on the bytes actually sent."""
    for expected, got in zip(getattr(pkg, "attachments", ()), written.attachments, strict=True):
        if expected.size is not None and got.size != expected.size:
            return {"reason": "store.size_mismatch", "where": expected.attachment_name,
                    "message": f"{expected.attachment_name} has {got.size} bytes, the event "
                               f"says {expected.size}"}
        if expected.sha256 is not None and got.sha256 != expected.sha256.lower():
            return {"reason": "store.hash_mismatch", "where": expected.attachment_name,
                    "message": f"{expected.attachment_name} has SHA-256 {got.sha256}, the event "
                               f"says {expected.sha256[:64]}"}
    return None


def read_and_verify(path: str, attachments_dir: str) -> dict[str, Any]:
    """Read a received package in one pass and classify its signature; JSON-ready result."""
    from edxml.jsonform import package_to_dict
    from edxml.reader import ReadLimits, read_package
    from edxml.signature import DocumentDigester, VerificationPolicy, verify_signature

    setup = _SETUP or WorkerSetup(keys=())
    digester = DocumentDigester()
    try:
        result = read_package(path, attachments_dir, digester=digester,
                              limits=ReadLimits(max_attachment_bytes=setup.max_attachment_bytes))
    except EdxmlError as exc:
        return _error(exc)
    verdict = verify_signature(result.signature, _TRUST if _TRUST is not None else _empty_trust(),
                               VerificationPolicy(allow_sha1=setup.allow_sha1))
    signer = None
    if verdict.signer is not None:
        s = verdict.signer
        signer = {"subject": s.subject, "issuer": s.issuer, "serial": s.serial_hex,
                  "not_before": s.not_before.isoformat(), "not_after": s.not_after.isoformat()}
    return {
        "kind": result.kind,
        "package": package_to_dict(result.package),
        "attachments": [{
            "content_id": r.attachment.content_id,
            "attachment_name": r.attachment.attachment_name,
            "declared_type": r.attachment.content_type,
            "detected_type": r.detected_type,
            "path": str(r.attachment.path) if r.attachment.path else None,
            "sha256": r.attachment.sha256,
            "size": r.attachment.size,
            "error": ({"reason": r.error.reason, "message": r.error.message}
                      if r.error else None),
        } for r in result.attachments],
        "signature": {"status": verdict.status, "reason": verdict.reason,
                      "message": verdict.message, "signer": signer},
        "warnings": [{"code": w.code, "message": w.message, "where": w.where}
                     for w in result.warnings],
        "sha256": result.sha256,
        "size": result.size,
    }


_PDF_TRUST: Any = None


def pdf_reports(paths: list[str], max_bytes: int) -> list[dict[str, Any]]:
    """Who signed each PDF (`edxml.pdfsig` reports, JSON form), judged against the worker's
    trust roots and CRLs; the trust material is read once per worker, on first use."""
    from edxml.pdfsig import PdfLimits, PdfTrust, analyse_pdf

    global _PDF_TRUST
    if _PDF_TRUST is None:
        setup = _SETUP or WorkerSetup(keys=())
        try:
            _PDF_TRUST = PdfTrust.from_paths(setup.trust_paths, setup.crl_files)
        except (OSError, ValueError):  # the package trust store reports the same files itself
            _PDF_TRUST = PdfTrust()
    limits = PdfLimits(max_bytes=max_bytes)
    return [analyse_pdf(path, _PDF_TRUST, limits=limits).as_dict() for path in paths]


def _empty_trust() -> Any:
    from edxml.trust import TrustStore

    return TrustStore(())


def make_pool(setup: WorkerSetup, workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers hold the keys and trust store.

    Workers are spawned, not forked: the parent runs asyncio, aiokafka and aiohttp threads that a
    fork would copy in an unknown state.
    """
    return ProcessPoolExecutor(max_workers=max(1, workers),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(setup,))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
