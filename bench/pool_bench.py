"""Does the process pool pay? Build+sign on the event loop, in a thread, in worker processes.

Run by hand from the repository root (never part of the test suite):

    .venv/bin/python bench/pool_bench.py               # 1000 calls, 30 KiB attachment
    .venv/bin/python bench/pool_bench.py --calls 200 --size 1M

The gateway's rule is that CPU-bound work never runs on the event loop. This measures what the
rule buys. An asyncio loop runs a heartbeat task that asks to wake every 10 ms and records how
late it woke (its scheduling delay: what every Kafka poll, HTTP answer and axis call on that
loop would also wait). Meanwhile the same N build+sign calls (`gateway.work.build_and_sign`:
package from its JSON form, signed, written to a file, hashed) run

  (a) inline: called directly from the coroutines on the loop;
  (b) `asyncio.to_thread`: on the loop's default thread pool;
  (c) the gateway's process pool (`gateway.work.make_pool`), 1 worker and 2 workers,
      `loop.run_in_executor(pool, work.build_and_sign, ...)`.

Each mode runs the calls from 8 "lanes" (coroutines doing one call after another and yielding
between two, as the gateway's lanes do while they wait for Kafka).

Printed for each: calls per second (wall clock) and the heartbeat's p50/p99/max delay.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from edxml_bench import (
    SENDER,
    SMALL_ATTACHMENT,
    make_attachment,
    make_package,
    parse_size,
)

from edxml.jsonform import package_to_dict
from edxml.pki import init_test_pki
from gateway import work

TICK = 0.010            # the heartbeat's period
CONCURRENCY = 8         # lanes, each one call after another, like the gateway's lanes


def package_json(attachment: Path) -> dict[str, Any]:
    """The JSON form `build_and_sign` takes (`edxml.jsonform`), as the outbound pipeline
    hands it to a worker."""
    return package_to_dict(make_package(attachment))


class Heartbeat:
    """Wakes every TICK seconds and records how late each wake-up was."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK
            await asyncio.sleep(TICK)
            self.delays.append(max(0.0, loop.time() - due))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def summary(self) -> tuple[float, float, float]:
        d = sorted(self.delays) or [0.0]
        return (statistics.median(d), d[min(len(d) - 1, int(0.99 * len(d)))], d[-1])


async def run_mode(name: str, calls: int, call: Callable[[int], Awaitable[dict[str, Any]]],
                   concurrency: int) -> tuple[str, float, tuple[float, float, float]]:
    beat = Heartbeat()
    beat.start()
    await asyncio.sleep(0.2)          # the heartbeat is running before the work starts
    beat.delays.clear()
    numbers = iter(range(calls))

    async def lane() -> None:
        # Like one of the gateway's lanes: one document after another.
        for i in numbers:
            result = await call(i)
            if "error" in result:
                raise SystemExit(f"{name}: build_and_sign failed: {result['error']}")
            # Between two documents a lane always yields (it awaits Kafka), so the loop gets
            # a turn; inline work blocks it for the length of one call at a time.
            await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    await asyncio.sleep(3 * TICK)     # a wake-up that was due during the last call is counted
    await beat.stop()
    return name, calls / seconds, beat.summary()


async def main_async(args: argparse.Namespace, tmp: Path) -> None:
    pki = init_test_pki(tmp / "pki", agencies=[SENDER])
    files = pki.agencies[SENDER[0]]
    setup = work.WorkerSetup(keys=(work.KeySpec(SENDER[0], key=str(files.key),
                                                cert=str(files.cert), chain=str(files.chain)),))
    work.init_worker(setup)          # this process too, for (a) and (b)
    attachment = tmp / "att.pdf"
    make_attachment(attachment, args.size)
    out = tmp / "out"
    out.mkdir()
    loop = asyncio.get_running_loop()

    def target(i: int) -> str:
        return str(out / f"{i % 64}.edxml")

    async def inline(i: int) -> dict[str, Any]:
        return work.build_and_sign(SENDER[0], package_json(attachment), target(i))

    async def threaded(i: int) -> dict[str, Any]:
        return await asyncio.to_thread(work.build_and_sign, SENDER[0],
                                       package_json(attachment), target(i))

    inline_result = await inline(0)  # warm up imports in this process
    if "error" in inline_result:
        raise SystemExit(f"build_and_sign failed: {inline_result['error']}")
    rows = [await run_mode("(a) inline on the loop", args.calls, inline, CONCURRENCY),
            await run_mode("(b) asyncio.to_thread", args.calls, threaded, CONCURRENCY)]
    for workers in (1, 2):
        pool = work.make_pool(setup, workers)
        try:
            async def pooled(i: int, pool: Any = pool) -> dict[str, Any]:
                return await loop.run_in_executor(pool, work.build_and_sign, SENDER[0],
                                                  package_json(attachment), target(i))

            # Warm up: spawn every worker (they start on demand) and load the keys there.
            await asyncio.gather(*(pooled(i) for i in range(workers * 2)))
            rows.append(await run_mode(f"(c) process pool, {workers} worker"
                                       f"{'s' if workers > 1 else ''}", args.calls, pooled,
                                       CONCURRENCY))
        finally:
            pool.shutdown(wait=True)

    print(f"\n{args.calls} build+sign calls (gateway.work.build_and_sign, {args.size} bytes "
          f"attachment, package written and hashed); heartbeat every {TICK * 1000:.0f} ms; "
          f"{CONCURRENCY} lanes, each yielding between two calls")
    print(f"    {'mode':28} {'calls/s':>8} {'beat p50':>9} {'beat p99':>9} {'beat max':>9}")
    for name, rate, (p50, p99, worst) in rows:
        print(f"    {name:28} {rate:8.1f} {p50 * 1000:7.1f}ms {p99 * 1000:7.1f}ms "
              f"{worst * 1000:7.1f}ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--size", type=parse_size, default=SMALL_ATTACHMENT,
                    help="attachment size (default 30K)")
    ap.add_argument("--tmpdir", type=Path, default=None)
    args = ap.parse_args(argv)
    print(f"process-pool benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs ({work.cpu_count()} usable)")
    with tempfile.TemporaryDirectory(prefix="pool-bench-", dir=args.tmpdir) as tmp:
        asyncio.run(main_async(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
