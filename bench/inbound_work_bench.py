"""What a gateway worker spends on one received package, against the core's read+verify.

Run by hand from the repository root (never part of the test suite):

    .venv/bin/python bench/inbound_work_bench.py              # rates, side by side
    .venv/bin/python bench/inbound_work_bench.py --profile    # cProfile of the worker's calls

The inbound pipeline hands each package to a worker process (`gateway.work`), which reads and
verifies it and reports the signatures of its PDF attachments. This times, per CPU second of
this one process (pinned to one core), in alternating rounds so that the machine's other work
weighs on all alike:

  core         read_package + DocumentDigester + verify_signature (what `edxml_bench` times);
  worker       what the worker does for one package, with the pickling of its arguments and
               of its answer that the process pool adds: `work.read_and_verify_bounded`
               followed by `work.pdf_reports` on the attachment it wrote (the pool's two round
               trips) and, when it exists, `work.receive` (both in one call);

on the e2e benchmark's package: one 30 KiB attachment named .pdf, signed by a test agency.
"""

from __future__ import annotations

import argparse
import cProfile
import pickle
import pstats
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from edxml_bench import (
    SENDER,
    SMALL_ATTACHMENT,
    Keys,
    make_attachment,
    make_package,
    measure_side_by_side,
    pin_to_one_core,
    read_and_verify_op,
)

from edxml.pki import init_test_pki
from edxml.trust import TrustStore
from edxml.writer import write_package_file
from gateway import work

MAX_PDF_BYTES = 50 * 1024 * 1024


def through_pool(fn: Callable[..., object], *args: object) -> object:
    """Call `fn` as the pool does: arguments and answer pickled and unpickled."""
    call = pickle.loads(pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL))
    answer = call[0](*call[1])
    return pickle.loads(pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))


def setup(directory: Path) -> tuple[Path, Keys]:
    pki = init_test_pki(directory / "pki", agencies=[SENDER, ("000.00.00.H41", "UBND tỉnh Nghệ An")])
    work.init_worker(work.WorkerSetup(keys=(), trust_paths=(str(pki.trust_dir),),
                                      crl_files=(str(pki.crl),)))
    attachment = directory / "att.pdf"
    make_attachment(attachment, SMALL_ATTACHMENT)
    package = directory / "package.edxml"
    write_package_file(make_package(attachment), package,
                       signer=pki.material.agencies[SENDER[0]].signer())
    trust = TrustStore.from_paths(pki.trust_dir, crl_files=[pki.crl])
    return package, Keys(signer=None, trust=trust)  # type: ignore[arg-type]


def operations(directory: Path) -> dict[str, Callable[[], object]]:
    package, keys = setup(directory)
    out = directory / "out"
    ops: dict[str, Callable[[], object]] = {
        "core": read_and_verify_op(package.read_bytes(), directory / "core-out", keys)}
    (directory / "core-out").mkdir()

    def two_trips() -> None:
        result = through_pool(work.read_and_verify_bounded, str(package), str(out))
        paths = [a["path"] for a in result["attachments"]]   # type: ignore[index]
        through_pool(work.pdf_reports, paths, MAX_PDF_BYTES)
        shutil.rmtree(out)

    ops["worker, two trips"] = two_trips
    receive = getattr(work, "receive", None)
    if receive is not None:
        def one_trip() -> None:
            through_pool(receive, str(package), str(out), MAX_PDF_BYTES)
            shutil.rmtree(out)

        ops["worker, one trip"] = one_trip
    return ops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--round-seconds", type=float, default=1.0)
    ap.add_argument("--profile", action="store_true", help="cProfile 300 calls of each worker op")
    args = ap.parse_args(argv)
    pin_to_one_core()
    with tempfile.TemporaryDirectory(prefix="inbound-work-bench-") as tmp:
        ops = operations(Path(tmp))
        if args.profile:
            for name, op in ops.items():
                op()
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(300):
                    op()
                prof.disable()
                print(f"\n{name}: 300 calls, top 25 by cumulative time")
                pstats.Stats(prof, stream=sys.stdout).strip_dirs().sort_stats(
                    "cumulative").print_stats(25)
            return 0
        rates = measure_side_by_side(*ops.values(), rounds=args.rounds,
                                     round_seconds=args.round_seconds)
        core = rates[0].cpu
        print(f"30 KiB-attachment package, one core, median of {args.rounds} rounds "
              "(per CPU second of this process)")
        for name, rate in zip(ops, rates, strict=True):
            print(f"    {name:20} {rate.cpu:8.1f} /s   {1000 / rate.cpu:6.2f} ms   "
                  f"{core / rate.cpu:5.2f}x core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
