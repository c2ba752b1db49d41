"""How fast packages are built, signed, read and verified, and how much memory a 1 GiB one takes.

Run by hand from the repository root (never part of the test suite):

    .venv/bin/python bench/edxml_bench.py                 # everything, 1 GiB attachment
    .venv/bin/python bench/edxml_bench.py --size 64M      # the memory part with a smaller file
    .venv/bin/python bench/edxml_bench.py --profile       # where build+sign spends its time
    .venv/bin/python bench/edxml_bench.py --profile read  # where read+verify spends its time

bench/README.md says what each figure means. Rates are per CPU second of this one process
(pinned to one core), like `openssl speed`'s, so a busy machine changes them little; wall-clock
rates are printed beside them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edxml.model import (Attachment, Code, DocumentPackage, DocumentType,  # noqa: E402
                         MessageHeader, Organization, PromulgationInfo)
from edxml.pki import init_test_pki  # noqa: E402
from edxml.reader import read_package  # noqa: E402
from edxml.signature import (DocumentDigester, Signer, sign_file,  # noqa: E402
                             verify_signature)
from edxml.trust import TrustStore  # noqa: E402
from edxml.writer import package_bytes, write_package_file  # noqa: E402

SENDER = ("000.00.00.H55", "UBND tỉnh Thái Nguyên")
SMALL_ATTACHMENT = 30 * 1024
PHASES = ("baseline", "write", "sign", "read", "verify", "read+verify")
RSS_TARGET = 256 * 1024 * 1024
SIGN_TARGET = 0.5
READ_TARGET = 1.0  # read+verify rate / build+sign rate, both measured in the same run


# --- the package and the keys ------------------------------------------------------------------

def make_attachment(path: Path, size: int, *, chunk: int = 1 << 20) -> None:
    """`size` bytes that do not compress (a scanned PDF's look), written in chunks."""
    with open(path, "wb") as f:
        f.write(b"%PDF-1.7\n"[:size])
        left = size - min(size, 9)
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


def make_package(attachment: Path) -> DocumentPackage:
    """A one-attachment công văn from Thái Nguyên to Nghệ An, built from scratch each call."""
    header = MessageHeader(
        from_=Organization(organ_id=SENDER[0], organ_name=SENDER[1]),
        to=(Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"),),
        document_id=f"{SENDER[0]},2024/05/31,123/UBND-VP",
        code=Code(code_number="123", code_notation="UBND-VP"),
        promulgation_info=PromulgationInfo(place="Thái Nguyên", promulgation_date=date(2024, 5, 31)),
        document_type=DocumentType(type=1, type_detail=0, type_name="Công văn"),
        subject="V/v triển khai liên thông văn bản điện tử",
    )
    return DocumentPackage(header, attachments=(Attachment(
        content_id="1", attachment_name="cong-van.pdf", content_type="application/pdf",
        path=attachment),))


@dataclass(frozen=True)
class Keys:
    signer: Signer
    trust: TrustStore


def make_keys(directory: Path) -> Keys:
    """The test PKI, written under `directory` the first time, loaded from its files the way the
    gateway loads its own (so every child process of a run uses the same keys)."""
    pki = directory / "pki"
    if not (pki / "manifest.json").exists():
        init_test_pki(pki)
    agency = pki / "agencies" / SENDER[0]
    signer = Signer.from_pem(agency / "key.pem", agency / "cert.pem", chain_path=agency / "chain.pem")
    trust = TrustStore.from_paths(pki / "trust", crl_files=[pki / "crl" / "ca.crl",
                                                            pki / "crl" / "root.crl"])
    return Keys(signer, trust)


# --- openssl speed -------------------------------------------------------------------------------

def openssl_rsa2048(seconds: int = 3) -> tuple[float, float, str]:
    """(signatures/s, verifications/s, version) from `openssl speed -seconds N rsa2048`."""
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "rsa2048"],
                         capture_output=True, text=True, check=True).stdout
    return (*parse_openssl_speed(out), version)


def parse_openssl_speed(out: str) -> tuple[float, float]:
    """Read sign/s and verify/s from the summary table (1.1 and 3.x layouts)."""
    header: list[str] | None = None
    for line in out.splitlines():
        tokens = line.split()
        if "sign/s" in tokens and "verify/s" in tokens:
            header = tokens
        elif header and re.match(r"^rsa\s+2048\s+bits\s", line.strip()):
            values = tokens[3:]
            if len(values) != len(header):
                break
            cols = dict(zip(header, values))
            return float(cols["sign/s"]), float(cols["verify/s"])
    raise RuntimeError("could not find the rsa 2048 line in openssl speed's output:\n" + out)


# --- rates ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rate:
    cpu: float    # operations per CPU second of this process
    wall: float   # operations per wall-clock second
    rounds: int
    per_round: int


def measure(op: Callable[[], object], *, rounds: int, round_seconds: float) -> Rate:
    """Median rate over `rounds` rounds, each of as many calls as fill ~`round_seconds`."""
    return measure_side_by_side(op, rounds=rounds, round_seconds=round_seconds)[0]


def measure_side_by_side(*ops: Callable[[], object], rounds: int, round_seconds: float) -> list[Rate]:
    """Median rates of several operations whose rounds alternate (a round of the first, one of
    the second, ...), so that whatever else the machine does weighs on all of them alike."""
    per_round = []
    for op in ops:
        op()  # warm up: imports, caches, first allocation of buffers
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < 0.2:
            op()
            n += 1
        per_round.append(max(1, int(n * round_seconds / max(time.process_time() - t0, 1e-9))))
    cpu_rates: list[list[float]] = [[] for _ in ops]
    wall_rates: list[list[float]] = [[] for _ in ops]
    for _ in range(rounds):
        for i, op in enumerate(ops):
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(per_round[i]):
                op()
            c1, w1 = time.process_time(), time.perf_counter()
            cpu_rates[i].append(per_round[i] / max(c1 - c0, 1e-9))
            wall_rates[i].append(per_round[i] / max(w1 - w0, 1e-9))
    return [Rate(statistics.median(cpu_rates[i]), statistics.median(wall_rates[i]), rounds, per_round[i])
            for i in range(len(ops))]


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity here)"


# --- peak memory, one child process per phase ----------------------------------------------------

def peak_rss_bytes() -> int:
    """VmHWM (peak resident set) of this process; ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def child(phase: str, work: Path) -> dict[str, object]:
    """One phase of the large-package run, in this (fresh) process."""
    attachment = work / "attachment.pdf"
    unsigned, signed = work / "unsigned.edxml", work / "signed.edxml"
    out_dir = work / f"out-{phase.replace('+', '-')}"
    keys = make_keys(work) if phase in ("sign", "verify", "read+verify") else None
    t0 = time.perf_counter()
    detail = ""
    if phase == "write":
        write_package_file(make_package(attachment), unsigned)
        detail = f"{unsigned.stat().st_size} bytes written"
    elif phase == "sign":
        assert keys is not None
        sign_file(unsigned, signed, keys.signer)
        detail = f"{signed.stat().st_size} bytes written"
    elif phase == "read":
        result = read_package(signed, out_dir)
        detail = f"attachment {result.attachments[0].attachment.size} bytes decoded"
    elif phase == "verify":
        assert keys is not None
        from edxml.signature import verify_file
        verdict = verify_file(signed, keys.trust)
        detail = f"signature {verdict.status}"
        if not verdict.valid:
            raise SystemExit(f"verify: {verdict.status} {verdict.reason} {verdict.message}")
    elif phase == "read+verify":
        assert keys is not None
        digester = DocumentDigester()
        result = read_package(signed, out_dir, digester=digester)
        verdict = verify_signature(result.signature, keys.trust)
        detail = f"signature {verdict.status}, attachment {result.attachments[0].attachment.size} bytes"
        if not verdict.valid:
            raise SystemExit(f"read+verify: {verdict.status} {verdict.reason} {verdict.message}")
    seconds = time.perf_counter() - t0
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"phase": phase, "peak_rss": peak_rss_bytes(), "seconds": seconds, "detail": detail}


def run_child(phase: str, work: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", phase,
                           "--work", str(work)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([KMG]i?B?)?", text.strip(), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 64M, 30000)")
    unit = (m.group(2) or "").upper()[:1]
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


# --- the report ----------------------------------------------------------------------------------

def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=1 << 30,
                    help="attachment size for the peak-memory run (default 1G; e.g. 64M)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per rate (median is shown)")
    ap.add_argument("--round-seconds", type=float, default=1.0, help="CPU seconds per round")
    ap.add_argument("--openssl-seconds", type=int, default=3)
    ap.add_argument("--skip-openssl", action="store_true")
    ap.add_argument("--skip-rates", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--profile", nargs="?", const="build", choices=("build", "read"),
                    help="profile build+sign (default) or read+verify of the 30 KB package and "
                         "print the top functions")
    ap.add_argument("--tmpdir", type=Path, default=None, help="where the large files go")
    ap.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.work)))
        return 0

    print(f"edxml benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{pin_to_one_core()}")
    with tempfile.TemporaryDirectory(prefix="edxml-bench-", dir=args.tmpdir) as tmp:
        work = Path(tmp)
        if args.profile:
            return profile(work, args.profile)
        sign_raw = verify_raw = None
        if not args.skip_openssl:
            sign_raw, verify_raw, version = openssl_rsa2048(args.openssl_seconds)
            print(f"\n[1] raw RSA-2048, `openssl speed -seconds {args.openssl_seconds} rsa2048` "
                  f"({version}; per CPU second)")
            print(f"    sign    {sign_raw:10.1f} /s")
            print(f"    verify  {verify_raw:10.1f} /s")
        if not args.skip_rates:
            rates(work, sign_raw, verify_raw, args.rounds, args.round_seconds)
        if not args.skip_memory:
            memory(work, args.size)
    return 0


def rates(work: Path, sign_raw: float | None, verify_raw: float | None, rounds: int,
          round_seconds: float) -> None:
    keys = make_keys(work)
    attachment = work / "small.pdf"
    make_attachment(attachment, SMALL_ATTACHMENT)

    def build_and_sign() -> bytes:
        return package_bytes(make_package(attachment), signer=keys.signer)

    data = build_and_sign()
    read_and_verify = read_and_verify_op(data, work / "read-out", keys)
    read_and_verify()
    # Side by side, rounds alternating: the ratio of the two rates is what a busy machine
    # moves least.
    built, checked = measure_side_by_side(build_and_sign, read_and_verify, rounds=rounds,
                                          round_seconds=round_seconds)
    print(f"\n[2] build+sign, one {SMALL_ATTACHMENT // 1024} KiB attachment, package "
          f"{len(data)} bytes (median of {built.rounds} rounds x {built.per_round})")
    print(f"    {built.cpu:10.1f} packages per CPU second   ({built.wall:.1f} per wall second)")
    if sign_raw:
        ratio = built.cpu / sign_raw
        print(f"    {ratio:10.1%} of raw RSA signing         (target >= {SIGN_TARGET:.0%}: "
              f"{'met' if ratio >= SIGN_TARGET else 'NOT met'})")
    print(f"\n[3] read+verify, same package, DocumentDigester + verify_signature against the test "
          f"PKI (CRLs loaded) (median of {checked.rounds} rounds x {checked.per_round})")
    print(f"    {checked.cpu:10.1f} packages per CPU second   ({checked.wall:.1f} per wall second)")
    if verify_raw:
        print(f"    {checked.cpu / verify_raw:10.1%} of raw RSA verification")
    ratio = checked.cpu / built.cpu
    print(f"    {ratio:10.2f} x the build+sign rate of this run  (target >= {READ_TARGET:.1f}: "
          f"{'met' if ratio >= READ_TARGET else 'NOT met'})")


def read_and_verify_op(data: bytes, out_dir: Path, keys: Keys) -> Callable[[], None]:
    """What a receiver does with one package: read it (attachments decoded to files) and verify
    its signature against the trust store."""

    def read_and_verify() -> None:
        digester = DocumentDigester()
        result = read_package(io.BytesIO(data), out_dir, digester=digester)
        if not verify_signature(result.signature, keys.trust).valid:
            raise AssertionError("the benchmark package does not verify")
        # The receiver hands the decoded file on; rewriting the same file instead would time
        # the filesystem (ext4 flushes a file truncated and rewritten), not the reader.
        for report in result.attachments:
            if report.attachment.path is not None:
                report.attachment.path.unlink()

    return read_and_verify


def memory(work: Path, size: int) -> None:
    make_keys(work)  # once, before the children that load it
    t0 = time.perf_counter()
    make_attachment(work / "attachment.pdf", size)
    print(f"\n[4] peak RSS (VmHWM), one child process per phase, attachment {size} bytes "
          f"({mib(size)}, made in {time.perf_counter() - t0:.1f} s); target <= {mib(RSS_TARGET)}")
    print(f"    {'phase':12} {'peak RSS':>12} {'over baseline':>14} {'seconds':>9} {'MiB/s':>8}  detail")
    base = 0
    for phase in PHASES:
        r = run_child(phase, work)
        peak = int(r["peak_rss"])  # type: ignore[arg-type]
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        if phase == "baseline":
            base = peak
            print(f"    {phase:12} {mib(peak):>12} {'':>14} {'':>9} {'':>8}  interpreter + imports")
            continue
        verdict = "ok" if peak <= RSS_TARGET else "OVER"
        print(f"    {phase:12} {mib(peak):>12} {mib(peak - base):>14} {seconds:9.1f} "
              f"{size / (1 << 20) / max(seconds, 1e-9):8.1f}  {verdict}; {r['detail']}")


def profile(work: Path, what: str = "build", calls: int = 300, top: int = 30) -> int:
    keys = make_keys(work)
    attachment = work / "small.pdf"
    make_attachment(attachment, SMALL_ATTACHMENT)

    def build_and_sign() -> bytes:
        return package_bytes(make_package(attachment), signer=keys.signer)

    op: Callable[[], object] = build_and_sign
    title = "build+sign"
    if what == "read":
        op, title = read_and_verify_op(build_and_sign(), work / "read-out", keys), "read+verify"
    op()  # warm up
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        op()
    prof.disable()
    print(f"\n{title} of a {SMALL_ATTACHMENT // 1024} KiB-attachment package, {calls} calls, "
          f"top {top} by cumulative time:")
    pstats.Stats(prof, stream=sys.stdout).strip_dirs().sort_stats("cumulative").print_stats(top)
    print(f"top {top} by own time:")
    pstats.Stats(prof, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
