"""Move one large package through the axis simulator and report memory: run by hand, not a test.

    python bench/axis_transfer.py                 # 1 GiB package
    python bench/axis_transfer.py --size 256M

Generates a minimal document package with one attachment whose base64 is written in chunks,
starts the axis simulator as a child process, sends the package with the client (sendEdoc),
fetches it back both ways (getEdoc: base64 inside JSON; downloadEdoc: raw stream), checks the
SHA-256 of what came back (the fetched copy is the sent one plus the simulator's TraceHeader),
and prints the peak RSS of this client process and of the simulator process.
Target: at most 256 MB each, whatever the package size.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import os
import re
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

import structlog

from connectors.axis import AxisClient, AxisClientConfig, sha256_file
from connectors.axis.simulator import start_simulator_process

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
SYSTEMS = {"00.55.W00": secrets.token_hex(16), "00.41.W00": secrets.token_hex(16)}
SENDER, RECIPIENT = "000.00.00.H55", "000.00.00.H41"
TARGET_BYTES = 256 * 1000 * 1000

HEAD = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>{SENDER}</edXML:OrganId><edXML:OrganName>UBND tỉnh Thái Nguyên</edXML:OrganName></edXML:From>
        <edXML:To><edXML:OrganId>{RECIPIENT}</edXML:OrganId><edXML:OrganName>UBND tỉnh Nghệ An</edXML:OrganName></edXML:To>
        <edXML:DocumentId>{SENDER},2026/11/25,1/BENCH</edXML:DocumentId>
        <edXML:Code><edXML:CodeNumber>1</edXML:CodeNumber><edXML:CodeNotation>BENCH</edXML:CodeNotation></edXML:Code>
        <edXML:PromulgationInfo><edXML:Place>Thái Nguyên</edXML:Place><edXML:PromulgationDate>2026/11/25</edXML:PromulgationDate></edXML:PromulgationInfo>
        <edXML:DocumentType><edXML:Type>1</edXML:Type><edXML:TypeDetail>0</edXML:TypeDetail><edXML:TypeName>Công văn</edXML:TypeName></edXML:DocumentType>
        <edXML:Subject>Gói tin lớn để đo bộ nhớ</edXML:Subject>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader><edXML:OrganId>{SENDER}</edXML:OrganId><edXML:Timestamp>2026/11/25 09:00:00</edXML:Timestamp></edXML:TraceHeader>
        <edXML:Bussiness><edXML:BussinessDocType>0</edXML:BussinessDocType><edXML:Paper>0</edXML:Paper></edXML:Bussiness>
      </edXML:TraceHeaderList>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference><edXML:ContentId>cid:1</edXML:ContentId><edXML:ContentType>application/octet-stream</edXML:ContentType><edXML:AttachmentName>big.bin</edXML:AttachmentName></edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment><ContentId>cid:1</ContentId><AttachmentName>big.bin</AttachmentName><ContentType>application/octet-stream</ContentType><edXML:ContentTransferEncoded xmlns:edXML="{NS}">""".encode()
TAIL = b"""</edXML:ContentTransferEncoded></Attachment>
  </AttachmentEncoded>
</edXML>
"""


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r}: use e.g. 1G, 256M, 5000000")
    unit = (match.group(2) or "B").upper().rstrip("B").rstrip("I")
    return int(float(match.group(1)) * {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[unit])


def write_package(path: Path, size: int) -> str:
    """A package of about `size` bytes; returns its SHA-256. Memory: one chunk at a time."""
    b64_len = max(4, (size - len(HEAD) - len(TAIL)) // 4 * 4)
    raw_left = b64_len // 4 * 3
    digest = hashlib.sha256()
    chunk_raw = 3 * 1024 * 1024
    with open(path, "wb") as out:
        for piece in (HEAD,):
            out.write(piece)
            digest.update(piece)
        while raw_left:
            take = min(chunk_raw, raw_left)
            encoded = base64.b64encode(os.urandom(take))
            out.write(encoded)
            digest.update(encoded)
            raw_left -= take
        out.write(TAIL)
        digest.update(TAIL)
    return digest.hexdigest()


def sha256_without(path: Path, marker: bytes, search_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file with the first occurrence of `marker` (in its head) cut out."""
    with open(path, "rb") as fh:
        head = fh.read(search_bytes)
        at = head.find(marker)
        if at < 0:
            raise SystemExit("the fetched package does not carry the simulator's TraceHeader")
        digest = hashlib.sha256(head[:at] + head[at + len(marker):])
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def peak_rss_self() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # Linux: KiB


def mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.1f} MB"


async def exchange(url: str, package: Path, workdir: Path) -> dict[str, object]:
    common = dict(endpoint=url, connect_timeout=10, read_timeout=120, total_timeout=120,
                  transfer_timeout=3600)
    results: dict[str, object] = {}
    async with AxisClient(AxisClientConfig(systemid="00.55.W00", secret=SYSTEMS["00.55.W00"],
                                           **common)) as sender, \
            AxisClient(AxisClientConfig(systemid="00.41.W00", secret=SYSTEMS["00.41.W00"],
                                        **common)) as receiver:
        started = time.monotonic()
        sent = await sender.send_edoc(package, from_organ=SENDER)
        results["send_s"] = time.monotonic() - started
        (item,) = await receiver.get_received_edoc_list()
        started = time.monotonic()
        results["get"] = await receiver.get_edoc(item.doc_id, workdir / "fetched-getEdoc.edxml")
        results["get_s"] = time.monotonic() - started
        started = time.monotonic()
        results["download"] = await receiver.download_edoc(
            item.doc_id, workdir / "fetched-downloadEdoc.edxml")
        results["download_s"] = time.monotonic() - started
        await receiver.update_status(item.doc_id, "done")
        results["sent"] = sent
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=1024 ** 3,
                        help="package size, e.g. 1G (default), 256M")
    parser.add_argument("--workdir", type=Path, help="where to put the files (default: a temp dir)")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

    with tempfile.TemporaryDirectory(prefix="axis-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        package = workdir / "package.edxml"
        started = time.monotonic()
        original_sha = write_package(package, args.size)
        size = package.stat().st_size
        print(f"package: {size} bytes ({size / 1024 ** 3:.2f} GiB) written in "
              f"{time.monotonic() - started:.1f} s, sha256 {original_sha}")

        with start_simulator_process(db=workdir / "sim.sqlite", clients=SYSTEMS,
                                     log_path=workdir / "sim.log") as sim:
            results = asyncio.run(exchange(sim.url, package, workdir))
            sim_peak = sim.peak_rss_bytes()
        client_peak = peak_rss_self()

        sent, got, down = results["sent"], results["get"], results["download"]
        with got.path.open("rb") as fh:
            marker = re.search(rb"<edXML:TraceHeader><edXML:OrganId>00\.55\.W00</edXML:OrganId>"
                               rb"<edXML:Timestamp>[0-9/: ]{19}</edXML:Timestamp>"
                               rb"</edXML:TraceHeader>", fh.read(1 << 20))
        checks = {
            "hash-file sent = package sha256": sent.sha256 == original_sha,
            "getEdoc sha256 = downloadEdoc sha256": got.sha256 == down.sha256,
            "getEdoc file hashes as reported": sha256_file(got.path) == got.sha256,
            "fetched minus simulator TraceHeader = package": marker is not None
            and sha256_without(got.path, marker.group(0)) == original_sha,
        }
        print(f"sendEdoc     {results['send_s']:7.1f} s  {size / results['send_s'] / 1e6:7.1f} MB/s"
              f"  (includes the client's SHA-256 pass)")
        print(f"getEdoc      {results['get_s']:7.1f} s  {got.size / results['get_s'] / 1e6:7.1f} MB/s"
              f"  ({got.size} bytes decoded from base64 JSON)")
        print(f"downloadEdoc {results['download_s']:7.1f} s  "
              f"{down.size / results['download_s'] / 1e6:7.1f} MB/s  ({down.size} bytes)")
        for name, ok in checks.items():
            print(f"check {'OK  ' if ok else 'FAIL'} {name}")
        print(f"peak RSS client process:    {mb(client_peak)}  (ru_maxrss)")
        print(f"peak RSS simulator process: {mb(sim_peak)}  (VmHWM)")
        within = all(p is not None and p <= TARGET_BYTES for p in (client_peak, sim_peak))
        print(f"target <= {mb(TARGET_BYTES)} each: {'met' if within else 'NOT met'}")
        return 0 if all(checks.values()) and within else 1


if __name__ == "__main__":
    sys.exit(main())
