"""Run the fault scenarios at full size and print the table.

    python -m tests.faults.run [--only NAME ...] [--documents N] [--short] [--json FILE]

Uses the broker named by KAFKA_BOOTSTRAP_SERVERS, or starts a local one (deploy/kafka); the
broker-restart scenario always starts its own (and is skipped with an external cluster).
Exit status 0 when every scenario that ran kept every guarantee.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.faults.scenarios import FULL, NAMES, SHORT, Report, run_scenario

COLUMNS = ("scenario", "documents", "faults injected", "delivered", "dead-lettered",
           "inbound published / quarantined", "lost", "duplicated", "audit chain OK", "seconds")


def table(reports: list[Report]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in reports:
        if r.skipped:
            lines.append(f"| {r.scenario} | skipped: {r.skipped} |" + " |" * (len(COLUMNS) - 2))
            continue
        row = r.row()
        lines.append("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    size = SHORT if args.short else FULL
    if args.documents:
        size = dataclasses.replace(size, documents=args.documents)
    names = args.only or list(NAMES)
    for name in names:
        if name not in NAMES:
            print(f"unknown scenario {name}; one of {', '.join(NAMES)}", file=sys.stderr)
            return 2
    base = Path(tempfile.mkdtemp(prefix="edoc-faults-"))
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
    if bootstrap is None and any(n != "broker-restart" for n in names):
        from tests.faults.scenarios import _start_secured

        broker = await asyncio.to_thread(_start_secured, base / "kafka")
        bootstrap = broker.bootstrap
    reports = []
    try:
        for i, name in enumerate(names):
            print(f"== {name} ...", file=sys.stderr, flush=True)
            report = await run_scenario(name, bootstrap, base / name, size, seed=args.seed + i,
                                        broker=broker)
            reports.append(report)
            status = "skipped" if report.skipped else ("ok" if report.ok else "FAILED")
            print(f"== {name}: {status} in {report.seconds:.0f} s", file=sys.stderr, flush=True)
            for problem in report.problems[:20]:
                print(f"   - {problem}", file=sys.stderr)
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    print(table(reports))
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(r) for r in reports],
                                              indent=2, ensure_ascii=False))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"work directory kept: {base}", file=sys.stderr)
    return 0 if all(r.ok or r.skipped for r in reports) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(NAMES)}")
    parser.add_argument("--documents", type=int, help="documents per scenario")
    parser.add_argument("--short", action="store_true", help="the short sizes of the test suite")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="FILE", help="also write the reports as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
