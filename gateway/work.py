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
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from edxml.errors import EdxmlError, GatewayError

REASONS = {
    "gateway.worker_died": (True, "a worker process died under the task (signal, OOM killer, "
                                  "crash); the pool is recreated and the task runs again"),
    "package.memory_limit": (False, "reading the package needed more memory than a worker may "
                                    "use ([gateway] worker_memory_bytes)"),
}


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
    allow_sha1: bool = False
    max_attachment_bytes: int = 2 * 1024 ** 3
    legacy_sha1_senders: tuple[str, ...] = ()
    certificate_organ_ids: tuple[tuple[str, str], ...] = ()
    """(SHA-256 fingerprint, OrganId) for signing certificates without a UID."""
    require_crl: bool = False
    memory_limit_bytes: int | None = None
    """RLIMIT_AS of each worker: a package that needs more fails in its worker (MemoryError,
    or the worker dies), never in the gateway's main process."""


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
    _exit_with_parent()
    if setup.memory_limit_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (setup.memory_limit_bytes,
                                                setup.memory_limit_bytes))
    _SETUP = setup
    _SIGNERS.clear()
    for spec in setup.keys:
        _SIGNERS[spec.organ_id] = load_signer(spec)
    _TRUST = (TrustStore.from_paths(list(setup.trust_paths), crl_files=list(setup.crl_files))
              if setup.trust_paths else TrustStore(()))


def _exit_with_parent(interval_seconds: float = 1.0) -> None:
    """End this worker when the gateway that started it is gone.

    A gateway killed with SIGKILL (or by the OOM killer) cannot stop its pool, and a spawned
    worker waiting for its next task never learns of it: it would live on, holding the
    agencies' signing keys, with nobody to answer to. Once the parent is gone the worker is
    re-parented, so a changed parent pid means it is time to go. The parent's pid is the one
    multiprocessing was started with, not the current parent's: a gateway killed while this
    worker was still starting has already left it re-parented by now.
    """
    started_by = multiprocessing.parent_process()
    parent = started_by.pid if started_by is not None and started_by.pid else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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
    # Size and SHA-256 of the bytes as they were written: the file is not read again.
    return {"sha256": written.sha256, "size": written.size}


def build_and_sign_many(agency: str, items: list[tuple[dict[str, Any], str]]
                        ) -> list[dict[str, Any]]:
    """`build_and_sign` for several packages of one agency in one trip to a worker: one
    hand-off (pickling, a wake-up of the pool's threads, one answer) for a batch's documents
    instead of one each. The results are in the order of `items`, each as `build_and_sign`'s;
    a package whose copies cannot be read or whose output cannot be written (an OSError, which
    `build_and_sign` alone raises) gives `{"os_error": "..."}` and the others are still built."""
    results = []
    for package, out_path in items:
        try:
            results.append(build_and_sign(agency, package, out_path))
        except OSError as exc:
            results.append({"os_error": f"{type(exc).__name__}: {exc.strerror or exc}"})
    return results


def _attachment_mismatch(pkg: Any, written: Any) -> dict[str, Any] | None:
    """The attachment bytes that went into the package against the agency's claim (size and
    SHA-256 from the event): the claim check is made on the bytes actually sent. The message
    says only that they differ, never what the bytes really are."""
    for expected, got in zip(getattr(pkg, "attachments", ()), written.attachments, strict=True):
        if expected.size is not None and got.size != expected.size:
            return {"reason": "store.size_mismatch", "where": expected.attachment_name,
                    "message": f"{expected.attachment_name} does not match the size in the "
                               "event"}
        if expected.sha256 is not None and got.sha256 != expected.sha256.lower():
            return {"reason": "store.hash_mismatch", "where": expected.attachment_name,
                    "message": f"{expected.attachment_name} does not match the sha256 in the "
                               "event"}
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
    policy = VerificationPolicy(allow_sha1=setup.allow_sha1, require_crl=setup.require_crl,
                                legacy_sha1_senders=frozenset(setup.legacy_sha1_senders),
                                certificate_organ_ids=dict(setup.certificate_organ_ids))
    verdict = verify_signature(result.signature, _TRUST if _TRUST is not None else _empty_trust(),
                               policy)
    signer = None
    if verdict.signer is not None:
        s = verdict.signer
        signer = {"subject": s.subject, "issuer": s.issuer, "serial": s.serial_hex,
                  "not_before": s.not_before.isoformat(), "not_after": s.not_after.isoformat(),
                  "sha256": s.sha256_fingerprint}
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
                      "message": verdict.message, "signer": signer,
                      # who signed, as an agency: the inbound pipeline requires it to be From
                      "signer_organ_id": verdict.signer_organ_id},
        "warnings": [{"code": w.code, "message": w.message, "where": w.where}
                     for w in result.warnings],
        "sha256": result.sha256,
        "size": result.size,
    }


def read_and_verify_bounded(path: str, attachments_dir: str) -> dict[str, Any]:
    """`read_and_verify` under the worker's memory limit (RLIMIT_AS, set at start).

    A package that needs more memory than a worker may use fails here with MemoryError; the
    same package would fail the same way again, so it is a refusal (`package.memory_limit`),
    not a retry. What the reader had written is removed.
    """
    try:
        return read_and_verify(path, attachments_dir)
    except MemoryError:
        import shutil

        shutil.rmtree(attachments_dir, ignore_errors=True)
        return {"error": {"reason": "package.memory_limit", "where": None,
                          "message": "reading the package needed more memory than a worker "
                                     "may use ([gateway] worker_memory_bytes)"}}

_PDF_TRUST: Any = None
PDF_IN_MEMORY_BYTES = 8 * 1024 * 1024
"""A PDF up to this size is analysed from its bytes in memory: pyHanko reads a file a byte at
a time in places (the end-of-file search, the tokenizer), which costs several times more
through a buffered file than from a bytes buffer. The verdict is the same (the same bytes); a
larger file is analysed from its path, so the worker's memory stays bounded."""


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
    return [analyse_pdf(_small_file(path) or path, _PDF_TRUST, limits=limits).as_dict()
            for path in paths]


def _small_file(path: str) -> bytes | None:
    """The file's bytes when it is at most PDF_IN_MEMORY_BYTES long, else None (also when it
    cannot be read: the analysis of the path then reports that itself)."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > PDF_IN_MEMORY_BYTES:
                return None
            data = f.read(PDF_IN_MEMORY_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= PDF_IN_MEMORY_BYTES else None


def receive(path: str, attachments_dir: str, max_pdf_bytes: int) -> dict[str, Any]:
    """What the inbound pipeline needs of a received package, in one trip to a worker:
    `read_and_verify_bounded`, and for a document the signature reports of its PDF
    attachments (`pdf_reports`, one per `gateway.pdfcheck.inbound_pdfs` entry, in that order,
    as `result["pdf_reports"]`), made from the files the reader has just written."""
    from gateway.pdfcheck import inbound_pdfs

    result = read_and_verify_bounded(path, attachments_dir)
    pdfs = inbound_pdfs(result)
    if pdfs:
        result["pdf_reports"] = pdf_reports([a["path"] for a in pdfs], max_pdf_bytes)
    return result


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


class WorkerDied(GatewayError):
    """A worker process died under a task (killed by a signal, the OOM killer, a crash).

    Transient for the task (the pool is recreated and the task may run again); the inbound
    pipeline counts deaths per package and quarantines one that kills workers twice.
    """

    transient = True

    def __init__(self, message: str) -> None:
        super().__init__("gateway.worker_died", message)


class WorkerPool(Executor):
    """A process pool that heals itself: when a worker dies, the broken pool is replaced.

    `concurrent.futures.ProcessPoolExecutor` marks itself broken for good when one worker dies
    (every pending and later task fails with BrokenProcessPool). This executor fails only the
    tasks that were in the broken pool, with `WorkerDied`, and runs later tasks in a new pool.
    It gives up (`failed`) after `max_consecutive_breaks` breaks with no task finishing in
    between: a pool that cannot even start (a bad key file, no memory) does not loop; the
    daemon then reports not ready and exits for its supervisor.
    """

    def __init__(self, setup: WorkerSetup, workers: int, *,
                 factory: Callable[[WorkerSetup, int], ProcessPoolExecutor] | None = None,
                 max_consecutive_breaks: int = 5) -> None:
        self._setup = setup
        self._workers = workers
        self._factory = factory or make_pool
        # Re-entrant: shutting a broken pool down cancels its futures, whose callbacks (settle)
        # run at once in the same thread and take the lock again.
        self._lock = threading.RLock()
        self._pool = self._factory(setup, workers)
        self._broken: ProcessPoolExecutor | None = None
        self._consecutive = 0
        self._max_consecutive = max_consecutive_breaks
        self.recreated = 0
        self.failed: str | None = None
        self._closed = False
        self._in_flight = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        outer: Future[Any] = Future()
        with self._lock:
            if self.failed is not None:
                raise WorkerDied(self.failed)
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            pool = self._current()
            try:
                inner = pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                self._broken = pool
                pool = self._current()
                inner = pool.submit(fn, *args, **kwargs)
            self._in_flight += 1

        def settle(done: Future[Any]) -> None:
            with self._lock:
                self._in_flight -= 1
            if done.cancelled():
                if self._closed:
                    outer.cancel()
                else:    # cancelled with its broken pool: it never ran
                    outer.set_exception(WorkerDied("a worker process died before the task "
                                                   "could run"))
                return
            exc = done.exception()
            if isinstance(exc, BrokenProcessPool):
                with self._lock:
                    if self._broken is None and pool is self._pool:
                        self._broken = pool
                outer.set_exception(WorkerDied(f"a worker process died while running "
                                               f"{getattr(fn, '__name__', 'a task')}"))
            elif exc is not None:
                outer.set_exception(exc)
            else:
                with self._lock:
                    self._consecutive = 0
                outer.set_result(done.result())

        inner.add_done_callback(settle)
        return outer

    def _current(self) -> ProcessPoolExecutor:
        """The pool to use, replacing a broken one (called with the lock held)."""
        if self._broken is not None and self._broken is self._pool:
            self._broken.shutdown(wait=False, cancel_futures=True)
            self._consecutive += 1
            if self._consecutive > self._max_consecutive:
                self.failed = (f"the worker pool broke {self._consecutive} times in a row with "
                               "no task finishing")
                raise WorkerDied(self.failed)
            self._pool = self._factory(self._setup, self._workers)
            self.recreated += 1
        self._broken = None
        return self._pool

    @property
    def in_flight(self) -> int:
        """Tasks submitted and not finished."""
        return self._in_flight

    @property
    def broken(self) -> bool:
        return self._broken is not None or self.failed is not None

    def heal(self) -> bool:
        """Replace a broken pool now rather than at the next task; False once given up."""
        with self._lock:
            if self.failed is None and self._broken is not None:
                try:
                    self._current()
                except WorkerDied:
                    pass
        return self.failed is None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
