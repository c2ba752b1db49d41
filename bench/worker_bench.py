"""What one outbound document costs the worker, next to what the core library's build+sign costs.

Run by hand from the repository root (never part of the test suite):

    .venv/bin/python bench/worker_bench.py                  # 30 KiB attachment, 1000 calls
    .venv/bin/python bench/worker_bench.py --size 1M --calls 200
    .venv/bin/python bench/worker_bench.py --profile        # cProfile of the worker function

The e2e bench reports "gateway workers" CPU per document; this takes the same work apart, on
the same inputs (`bench/edxml_bench.py`'s package, each call with its own số/ký hiệu,
DocumentId and subject, in the JSON form the outbound pipeline hands to a worker), in one
process, measured by the thread's own CPU clock (`time.thread_time`), so other load on the
machine moves the figures little:

  core         `edxml.writer.package_bytes(pkg, signer=...)`: the core builds and signs in memory
  worker       `gateway.work.build_and_sign`: package from its JSON form, built, signed, written
               to a fresh file in its own directory (as the pipeline's scratch directory), with
               the size and SHA-256 the pipeline needs
  pool         the same call through `gateway.work.WorkerPool` with one worker: the CPU of the
               worker process (from /proc, so pickling and the pool's own work are in), per call,
               its start-up left out
  copy         `FileStore.copy_reference`: the main process's private copy of the attachment
               (opened beneath the agency's root, hashed while copied)
  hand-off     the main process's CPU (all its threads: the pool's own, pickling, the event
               loop's wake-ups) per document handed to a two-worker `WorkerPool` from an
               asyncio loop, a batch of 8 at a time: one submission per document, as before,
               and one `build_and_sign_many` per worker, as the outbound batch does now
  archive      `FileStore.archive_package`: the main process keeps the signed package (from
               the scratch directory, as the pipelines do; and the same package from outside
               the store, which is always copied, for comparison)

Each is run in rounds; the median of the rounds' per-call CPU is printed, with the ratio to
the core's (both from the same run). `--profile` prints the worker function's top functions by
cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from edxml_bench import SENDER, SMALL_ATTACHMENT, make_attachment, make_package, parse_size  # noqa: E402

from edxml.jsonform import package_to_dict  # noqa: E402
from edxml.pki import init_test_pki  # noqa: E402
from edxml.writer import package_bytes  # noqa: E402
from gateway import work  # noqa: E402


@dataclass(frozen=True)
class Ref:
    uri: str
    sha256: str
    size: int


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_call(fn: Callable[[int], Any], start: int, calls: int,
             setup: Callable[[int], Any] | None = None) -> float:
    """CPU seconds per call of `fn(i)` for i in start..start+calls-1 (this thread's clock);
    `setup(i)` runs before each call, outside the clock."""
    spent = 0.0
    for i in range(start, start + calls):
        if setup is not None:
            setup(i)
        t = time.thread_time()
        fn(i)
        spent += time.thread_time() - t
    return spent / calls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=parse_size, default=SMALL_ATTACHMENT,
                    help="attachment size (default 30K)")
    ap.add_argument("--profile", action="store_true", help="cProfile the worker function")
    ap.add_argument("--skip-pool", action="store_true")
    ap.add_argument("--tmpdir", type=Path, default=None)
    args = ap.parse_args(argv)
    print(f"worker benchmark — Python {sys.version.split()[0]}, {args.size} bytes attachment, "
          f"{args.rounds} rounds of {args.calls} calls, CPU per call (median of the rounds)")
    with tempfile.TemporaryDirectory(prefix="worker-bench-", dir=args.tmpdir) as tmp:
        run(args, Path(tmp))
    return 0


def run(args: argparse.Namespace, tmp: Path) -> None:
    from connectors.store import FileStore

    pki = init_test_pki(tmp / "pki", agencies=[SENDER])
    files = pki.agencies[SENDER[0]]
    setup = work.WorkerSetup(keys=(work.KeySpec(SENDER[0], key=str(files.key),
                                                cert=str(files.cert), chain=str(files.chain)),))
    work.init_worker(setup)
    signer = work._SIGNERS[SENDER[0]]
    share = tmp / "share"
    share.mkdir()
    attachment = share / "att.pdf"
    make_attachment(attachment, args.size)
    store = FileStore(tmp / "store", agency_roots={SENDER[0]: [share]})
    package = package_to_dict(make_package(attachment))

    def numbered(i: int) -> Any:
        # Each document its own số/ký hiệu, DocumentId and subject, as in real traffic: only
        # the names of agencies, places and types repeat from one package to the next.
        pkg = make_package(attachment)
        header = dataclasses.replace(
            pkg.message_header, document_id=f"{SENDER[0]},2024/05/31,{i}/UBND-VP",
            code=dataclasses.replace(pkg.message_header.code, code_number=str(i)),
            subject=f"{pkg.message_header.subject} (đợt {i})")
        return dataclasses.replace(pkg, message_header=header)

    models = {i: numbered(i) for i in range(-20, args.calls * (args.rounds + 1))}
    jsons = {i: package_to_dict(m) for i, m in models.items()}
    scratch = store.scratch()
    dirs: dict[int, Path] = {}

    def fresh_dir(i: int) -> None:
        # The pipeline builds each record in a new private directory and removes it after.
        old = dirs.pop(i - 1, None)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        dirs[i] = Path(tempfile.mkdtemp(prefix="out-", dir=scratch))

    def core(i: int) -> None:
        package_bytes(models[i], signer=signer)

    def worker(i: int) -> None:
        result = work.build_and_sign(SENDER[0], jsons[i], str(dirs[i] / "package.edxml"))
        if "error" in result:
            raise SystemExit(f"build_and_sign failed: {result['error']}")

    digest = work.build_and_sign(SENDER[0], package, str(tmp / "warm.edxml"))
    ref = Ref(attachment.as_uri(), _sha256(attachment), args.size)

    def copy(i: int) -> None:
        store.copy_reference(ref, SENDER[0], dirs[i])

    def build_only(i: int) -> None:
        work.build_and_sign(SENDER[0], package, str(dirs[i] / "package.edxml"))

    def archive(i: int) -> None:
        store.archive_package(dirs[i] / "package.edxml")

    def fresh_built(i: int) -> None:
        fresh_dir(i)
        build_only(i)
        # a new archive each time (the same bytes are archived once and then found)
        shutil.rmtree(store.root / "archive", ignore_errors=True)

    outside = tmp / "outside"
    outside.mkdir()

    def archive_outside(i: int) -> None:
        store.archive_package(outside / "package.edxml")

    def fresh_built_outside(i: int) -> None:
        # The same package written outside the store's scratch area: archived by a copy.
        work.build_and_sign(SENDER[0], package, str(outside / "package.edxml"))
        shutil.rmtree(store.root / "archive", ignore_errors=True)

    for fn in (core, worker):   # warm up
        for i in range(-20, 0):
            fresh_dir(i)
            fn(i)
    rows: dict[str, list[float]] = {}
    for r in range(args.rounds):   # interleaved, so a change in the machine's load hits all
        start = r * args.calls
        rows.setdefault("core build+sign (package_bytes)", []).append(
            per_call(core, start, args.calls))
        rows.setdefault("worker build_and_sign", []).append(
            per_call(worker, start, args.calls, fresh_dir))
        rows.setdefault("main: copy_reference", []).append(
            per_call(copy, start, args.calls, fresh_dir))
        rows.setdefault("main: archive_package", []).append(
            per_call(archive, start, max(1, args.calls // 4), fresh_built))
        rows.setdefault("  (same, package not in scratch)", []).append(
            per_call(archive_outside, start, max(1, args.calls // 4), fresh_built_outside))
    if not args.skip_pool:
        rows["pool: worker process CPU"] = pool_cpu(setup, jsons, tmp, args)
        one, many = hand_off_cpu(setup, jsons, tmp, args)
        rows["main: hand-off, one per document"] = one
        rows["main: hand-off, one per worker"] = many
    core_ms = statistics.median(rows["core build+sign (package_bytes)"]) * 1000
    print(f"    {'':34} {'ms/call':>8} {'× core':>7}   rounds")
    for name, values in rows.items():
        ms = statistics.median(values) * 1000
        print(f"    {name:34} {ms:8.3f} {ms / core_ms:7.2f}   "
              + " ".join(f"{v * 1000:.3f}" for v in values))
    print(f"    package: {digest['size']} bytes")
    if args.profile:
        profile(worker, fresh_dir, args.calls * args.rounds, args.calls)
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


def pool_cpu(setup: work.WorkerSetup, jsons: dict[int, dict[str, Any]], tmp: Path,
             args: argparse.Namespace) -> list[float]:
    """CPU of the one worker process per call, one call at a time as a lane makes them."""
    pool = work.WorkerPool(setup, 1)
    out_dir = tmp / "pool"
    out_dir.mkdir()
    try:
        pid = pool.submit(os.getpid).result()
        for i in range(20):
            pool.submit(work.build_and_sign, SENDER[0], jsons[i - 20],
                        str(out_dir / f"w{i}")).result()
        per_round = []
        for r in range(args.rounds):
            before = proc_cpu(pid)
            for i in range(args.calls):
                d = out_dir / f"{r}-{i}"
                d.mkdir()
                result = pool.submit(work.build_and_sign, SENDER[0], jsons[r * args.calls + i],
                                     str(d / "package.edxml")).result()
                if "error" in result:
                    raise SystemExit(f"build_and_sign failed: {result['error']}")
            per_round.append((proc_cpu(pid) - before) / args.calls)
            shutil.rmtree(out_dir)
            out_dir.mkdir()
        return per_round
    finally:
        pool.shutdown()


def hand_off_cpu(setup: work.WorkerSetup, jsons: dict[int, dict[str, Any]], tmp: Path,
                 args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Main-process CPU (all threads, `time.process_time`) per document handed to a two-worker
    pool in batches of 8 from an event loop: one submission per document against one
    `build_and_sign_many` per worker. Rounds interleave the two."""
    import asyncio

    batch, workers = 8, 2

    async def measure() -> tuple[list[float], list[float]]:
        loop = asyncio.get_running_loop()
        pool = work.WorkerPool(setup, workers)
        out_dir = tmp / "hand-off"
        try:
            out_dir.mkdir()
            for i in range(20):
                await loop.run_in_executor(pool, work.build_and_sign, SENDER[0], jsons[i - 20],
                                           str(out_dir / f"w{i}"))
            one, many = [], []
            calls = args.calls - args.calls % batch
            for r in range(args.rounds):
                base = r * args.calls
                begun = time.process_time()
                for b in range(0, calls, batch):
                    await asyncio.gather(*(loop.run_in_executor(
                        pool, work.build_and_sign, SENDER[0], jsons[base + b + k],
                        str(out_dir / f"o{b + k}")) for k in range(batch)))
                one.append((time.process_time() - begun) / calls)
                begun = time.process_time()
                for b in range(0, calls, batch):
                    step = batch // workers
                    await asyncio.gather(*(loop.run_in_executor(
                        pool, work.build_and_sign_many, SENDER[0],
                        [(jsons[base + b + k], str(out_dir / f"m{b + k}"))
                         for k in range(h, h + step)]) for h in range(0, batch, step)))
                many.append((time.process_time() - begun) / calls)
            return one, many
        finally:
            pool.shutdown()

    return asyncio.run(measure())


def profile(worker: Callable[[int], None], fresh_dir: Callable[[int], None], base: int,
            calls: int) -> None:
    prof = cProfile.Profile(time.thread_time)
    for i in range(base, base + calls):
        fresh_dir(i)
        prof.enable()
        worker(i)
        prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
    print(f"\nworker build_and_sign, {calls} calls, by cumulative CPU time (thread clock):")
    print(text.getvalue())


def _sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()  # type: ignore[arg-type]


if __name__ == "__main__":
    raise SystemExit(main())
