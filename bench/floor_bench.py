"""The floor: what the libraries the gateway stands on cost per document, before any of its code.

Run by hand from the repository root (never part of the test suite; about a minute):

    .venv/bin/python bench/floor_bench.py
    .venv/bin/python bench/floor_bench.py --documents 4000 --batch 8

An outbound 30 KiB document costs the gateway's main process, at the very least, what its
design asks of asyncio, aiokafka, aiohttp, the file system and the worker pool: one record
consumed, five records produced and acknowledged (ledger intent, `signed` audit, ledger sent,
delivery event, `delivered` audit), a share of an offset commit, one sendEdoc POST of the
package over a kept-alive connection, the file work the guarantees need (the attachment copied
into a private directory, the package written and made durable, linked into the archive, the
directory removed) and a hand-off to a worker process and back. This script does exactly that
with the bare libraries, batched the way the gateway batches (8 records of a lane produced
together, acknowledged once, one commit, one pool submission and one trip to a thread per
batch), with no validation, no model, no audit chain, no request signature, no metrics and no
logs, and divides the process's own CPU time by the documents. Beside it, in the same process
and run, the core library's build+sign of the same package (the yardstick of
`bench/e2e_bench.py`).

The sum is a lower bound of the gateway's CPU per document on this stack: the issue's target of
at most 3 x the core build+sign can only be met if the floor is well under it.

Starts its own local Kafka broker (deploy/kafka/localkafka.py, no authentication: SASL costs per
connection, not per record) unless KAFKA_BOOTSTRAP_SERVERS names one, and a minimal HTTP/1.1
server in a child process (its CPU is not counted) that reads each request's body and answers
the axis's small JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import asyncio
import concurrent.futures
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from types import SimpleNamespace
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from edxml_bench import SMALL_ATTACHMENT, make_attachment, make_keys, make_package, measure

from edxml.writer import package_bytes

# Sizes of what the gateway moves for one 30 KiB document, rounded from a lab run: the
# document.send event as published by an agency, the records the gateway produces for it, and
# the axis's answer to sendEdoc.
EVENT_BYTES = 1400
PRODUCED_BYTES = (420, 900, 380, 700, 900)    # intent, signed audit, sent, delivery, delivered
ANSWER = b'{"status":"OK","ErrorDesc":"","DocId":"00000000-0000-0000-0000-000000000000"}'


# --- the HTTP peer: reads the body, answers; runs in a child process ------------------------------

class _Peer(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: " + str(len(ANSWER)).encode() + b"\r\n\r\n"
                                 + ANSWER)


def _serve(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Peer, sock=sock)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# --- the worker: takes a batch, answers a batch ---------------------------------------------------

def _worker_batch(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"sha256": "0" * 64, "path": item["out"], "size": 41000} for item in items]


def _worker_one(item: dict[str, Any]) -> dict[str, Any]:
    return _worker_batch([item])[0]


def _warm() -> int:
    return os.getpid()


# --- measuring ------------------------------------------------------------------------------------

async def cpu_per(n: int, step: Callable[[], Awaitable[int]]) -> float:
    """Process CPU milliseconds per document of `step` (which says how many documents it
    handled) run until n documents are handled."""
    await step()                                   # connections and caches warm
    done = 0
    start = time.process_time()
    while done < n:
        done += await step()
    return (time.process_time() - start) * 1000 / done


async def kafka_floor(bootstrap: str, n: int, batch: int) -> tuple[float, float]:
    """(consume + produce 5 acknowledged per batch + commit per batch, produce alone)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    run = uuid.uuid4().hex[:8]
    source, sink = f"floor-{run}-in", f"floor-{run}-out"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, 1, 1), NewTopic(sink, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    event = os.urandom(EVENT_BYTES // 2).hex().encode()
    payloads = [os.urandom(size // 2).hex().encode() for size in PRODUCED_BYTES]
    total = n + 2 * batch
    try:
        for start in range(0, total, 500):
            await asyncio.gather(*[await producer.send(source, event, key=str(i).encode())
                                   for i in range(start, min(total, start + 500))])
        consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"floor-{run}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            async def produce(records: list[Any]) -> None:
                futures = [await producer.send(sink, payload, key=r.key)
                           for r in records for payload in payloads]
                await asyncio.gather(*futures)

            async def handle() -> int:
                got = await consumer.getmany(timeout_ms=1000, max_records=batch)
                records = [r for part in got.values() for r in part]
                await produce(records)
                await consumer.commit()
                return len(records)

            both = await cpu_per(n, handle)
            stand_ins = [SimpleNamespace(key=str(i).encode()) for i in range(batch)]

            async def produce_only() -> int:
                await produce(stand_ins)
                return batch

            alone = await cpu_per(n, produce_only)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    return both, alone


async def http_floor(port: int, n: int, batch: int, body: bytes) -> float:
    import aiohttp

    headers = {"Content-Type": "application/octet-stream", "servicetype": "eDoc",
               "messagetype": "edoc", "from": "000.00.00.G22", "to": "000.00.00.H41",
               "token": "0" * 64, "datetime": "2026-12-02T00:00:00+07:00", "docid": ""}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        url = f"http://127.0.0.1:{port}/sendEdoc"

        async def sends() -> int:
            for _ in range(batch):
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.json()
            return batch
        return await cpu_per(n, sends)


async def pool_floor(n: int, batch: int, per_document: bool) -> float:
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        await asyncio.gather(*[loop.run_in_executor(pool, _warm) for _ in range(4)])
        items = [{"agency": "000.00.00.G22", "package": {"subject": "x" * 200, "to": ["a"] * 3},
                  "out": f"/scratch/{i}/package.edxml"} for i in range(batch)]

        async def hand_off() -> int:
            if per_document:
                await asyncio.gather(*[loop.run_in_executor(pool, _worker_one, item)
                                       for item in items])
            else:
                await loop.run_in_executor(pool, _worker_batch, items)
            return batch
        return await cpu_per(n, hand_off)


def _files(root: Path, attachment: Path, body: bytes, batch: int) -> None:
    """What a batch's documents ask of the file system at the least: the attachment copied from
    the agency's root into a private directory, the package written and made durable, linked
    into the archive under its hash and the archive's directory made durable, the private
    directory removed."""
    for _ in range(batch):
        private = Path(tempfile.mkdtemp(dir=root / "tmp"))
        fd = os.open(attachment, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            data = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
        (private / "attachment").write_bytes(data)
        package = private / "package.edxml"
        fd = os.open(package, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body)
            os.fchmod(fd, 0o444)
            os.fsync(fd)
        finally:
            os.close(fd)
        sha = hashlib.sha256(body + uuid.uuid4().bytes).hexdigest()
        final = root / "archive" / sha[:2]
        final.mkdir(exist_ok=True)
        os.link(package, final / sha)
        fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for name in ("attachment", "package.edxml"):
            os.unlink(private / name)
        os.rmdir(private)


async def files_floor(root: Path, attachment: Path, body: bytes, n: int, batch: int) -> float:
    for area in ("tmp", "archive"):
        (root / area).mkdir(parents=True, exist_ok=True)

    async def batch_files() -> int:
        await asyncio.to_thread(_files, root, attachment, body, batch)
        return batch
    return await cpu_per(n, batch_files)


def start_kafka(state: Path) -> tuple[str, Any]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"].strip(), None
    from gateway.lab import load_localkafka

    broker = load_localkafka().start_local_kafka(state)
    return broker.bootstrap, broker


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--documents", type=int, default=2000, help="documents per measurement")
    ap.add_argument("--batch", type=int, default=8, help="documents per batch ([gateway] batch)")
    ap.add_argument("--rounds", type=int, default=3, help="repeats; medians are printed")
    args = ap.parse_args(argv)
    import logging
    logging.getLogger("aiokafka").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="floor-bench-") as tmp:
        work = Path(tmp)
        keys = make_keys(work)
        attachment = work / "small.pdf"
        make_attachment(attachment, SMALL_ATTACHMENT)
        body = package_bytes(make_package(attachment), signer=keys.signer)

        def core() -> float:
            rate = measure(lambda: package_bytes(make_package(attachment), signer=keys.signer),
                           rounds=5, round_seconds=1.0).cpu
            return 1000 / rate

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        peer = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,),
                                                           daemon=True)
        peer.start()
        bootstrap, broker = start_kafka(work / "kafka")
        try:
            rows: dict[str, list[float]] = {}

            def add(name: str, value: float) -> None:
                rows.setdefault(name, []).append(value)

            for _ in range(args.rounds):
                add("core build+sign (the yardstick)", core())
                both, alone = asyncio.run(kafka_floor(bootstrap, args.documents, args.batch))
                add("kafka: consume 1 + produce 5, acked per batch, commit per batch", both)
                add("kafka: the 5 produces alone", alone)
                add("aiohttp: one sendEdoc POST, kept-alive", asyncio.run(
                    http_floor(port, args.documents, args.batch, body)))
                add("files: attachment copy, package durable, archived, removed", asyncio.run(
                    files_floor(work / "store", attachment, body, args.documents, args.batch)))
                add("pool: one hand-off per batch", asyncio.run(
                    pool_floor(args.documents, args.batch, per_document=False)))
                add("pool: one hand-off per document", asyncio.run(
                    pool_floor(args.documents, args.batch, per_document=True)))
        finally:
            peer.terminate()
            if broker is not None:
                broker.stop()

    med = {name: statistics.median(values) for name, values in rows.items()}
    core_ms = med["core build+sign (the yardstick)"]
    print(f"floor per document, {args.documents} documents in batches of {args.batch}, "
          f"{len(body)} bytes of package, "
          f"median of {args.rounds} (process CPU ms per document)")
    for name, value in med.items():
        print(f"    {name:<66} {value:6.3f} ms  {value / core_ms:5.2f}x core")
    main_floor = (med["kafka: consume 1 + produce 5, acked per batch, commit per batch"]
                  + med["aiohttp: one sendEdoc POST, kept-alive"]
                  + med["files: attachment copy, package durable, archived, removed"]
                  + med["pool: one hand-off per batch"])
    print(f"    {'main process floor (kafka + aiohttp + files + pool per batch)':<66} "
          f"{main_floor:6.3f} ms"
          f"  {main_floor / core_ms:5.2f}x core")
    total = main_floor + core_ms
    print(f"    {'floor with the worker doing only the core build+sign':<66} {total:6.3f} ms"
          f"  {total / core_ms:5.2f}x core  (target of issue 14: <= 3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
