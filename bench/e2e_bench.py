"""The gateway end to end: Kafka → gateway → axis simulator and back, on this one machine.

Run by hand from the repository root (never part of the test suite; takes a few minutes):

    .venv/bin/python bench/e2e_bench.py                        # everything, 1 GiB run included
    .venv/bin/python bench/e2e_bench.py --big-size 64M         # the memory run with a smaller file
    .venv/bin/python bench/e2e_bench.py --only outbound --profile-dir var/profile
    .venv/bin/python bench/e2e_bench.py --only outbound --settled-repeat 5   # the gateway's own cost, median of 5

Starts a local Kafka broker (deploy/kafka/localkafka.py) unless KAFKA_BOOTSTRAP_SERVERS names
one, then a `gateway.lab.Lab` (axis simulator + gateways as separate `gateway.cli run`
processes) in a temporary directory, and prints:

  [1] the ceiling: raw RSA-2048 signatures/s and the core library's build+sign rate;
  [2] inbound: packages/s from a pre-loaded simulator mailbox to `document.arrived` events,
      signature verification included;
  [3] outbound: documents/s from pre-published events to `delivery.accepted`, 1 and 2 gateway
      instances in one consumer group, 30 KB and 1 MB attachments;
  [4] latency event → axis (p50/p99) at a fixed offered load of half the measured maximum;
  [5] peak RSS (VmHWM) of the gateway process and of its worker processes while a 1 GiB
      attachment goes out;
  and the targets, met or missed. bench/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import structlog

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from edxml_bench import (
    SMALL_ATTACHMENT,
    make_attachment,
    make_keys,
    make_package,
    measure,
    openssl_rsa2048,
    parse_size,
)

from connectors.axis import AxisClient, AxisClientConfig
from connectors.cloudevents import CloudEvent
from connectors.kafka import (
    EventProducer,
    KafkaSettings,
    TopicSpec,
    ensure_topics,
    read_topic,
)
from edxml.model import Code
from edxml.writer import package_bytes, write_package_file
from gateway import events
from gateway.daemon import PER_AGENCY_PARTITIONS
from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, GatewayProcess, Lab
from gateway.work import cpu_count

RECIPIENT = ("000.00.00.H41", "UBND tỉnh Nghệ An")
SENDERS = tuple(organ for organ, _ in THAI_NGUYEN.agencies)      # both Thái Nguyên agencies
TARGET_RSA_SHARE = 0.30        # end-to-end outbound >= 30 % of raw RSA signing, per gateway core
TARGET_SCALE = 1.7             # 2 instances >= 1.7 x one
TARGET_CPU_RATIO = 3.0        # gateway CPU per document ≤ 3 x the core build+sign (issue 14)
TARGET_P99 = 0.250             # seconds, at half the measured maximum
TARGET_RSS = 256 * 1024 ** 2   # bytes, gateway process and each worker, 1 GiB document


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


# --- processes -----------------------------------------------------------------------------------

def vmhwm(pid: int) -> int | None:
    """Peak resident set of another process (VmHWM), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, role) of a process's direct children: pool workers and the resource tracker."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                role = ("worker" if "spawn_main" in cmd else
                        "resource-tracker" if "resource_tracker" in cmd else "other")
                out.append((int(child), role))
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def attachment_ref(path: Path, size: int) -> dict[str, Any]:
    """The event's reference to a file on the shared volume (hashed in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"content_id": "1", "attachment_name": path.name, "content_type": "application/pdf",
            "uri": path.as_uri(), "sha256": digest.hexdigest(), "size": size}


def start_kafka(state: Path) -> tuple[str, Any]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"].strip(), None
    from gateway.lab import LAB_SUPER_USERS, lab_scram_users, load_localkafka

    # SCRAM users and ACLs on: the gateways log in as 'gateway' over SASL, as in production.
    broker = load_localkafka().start_local_kafka(state, scram_users=lab_scram_users(),
                                                 super_users=LAB_SUPER_USERS)
    return broker.bootstrap, broker


# --- the lab, one fresh set of topics per scenario -----------------------------------------------

_CPU_PROFILE = """
import cProfile, runpy, sys, time
sys.argv = {argv!r}
profile = cProfile.Profile(time.thread_time)
profile.enable()
try:
    runpy.run_module("gateway.cli", run_name="__main__")
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats({out!r})
"""


class Bench:
    def __init__(self, lab: Lab, workers: int) -> None:
        self.lab = lab
        self.workers = workers
        self.settings = KafkaSettings(bootstrap_servers=lab.bootstrap)
        self.clients = {organ: AgencyClient(lab, THAI_NGUYEN, organ) for organ in SENDERS}
        self.files: dict[int, dict[str, Any]] = {}
        self.scenario = 0
        self.kafka_pid: int | None = None
        self.core_ms: float | None = None     # core build+sign CPU ms per document, this run

    def fresh(self) -> None:
        """New topics and consumer group for the next scenario (the simulator stays)."""
        self.scenario += 1
        self.lab.run_id = uuid.uuid4().hex[:8]
        for province in self.lab.provinces:
            self.lab.write_config(province)
        for organ, client in self.clients.items():
            client.topics = self.lab.topics(THAI_NGUYEN, organ)
        self.lab.ensure_acls()

    async def create_topics(self) -> None:
        specs = []
        for organ in SENDERS:
            t = self.lab.topics(THAI_NGUYEN, organ)
            # As many as the daemon creates (the lab has created them already).
            specs += [TopicSpec(t["outbound_documents"], partitions=PER_AGENCY_PARTITIONS),
                      TopicSpec(t["outbound_receipts"], partitions=PER_AGENCY_PARTITIONS),
                      TopicSpec(t["delivery"], partitions=PER_AGENCY_PARTITIONS)]
        await ensure_topics(self.settings, specs)

    def attachment(self, size: int) -> dict[str, Any]:
        """One attachment file of `size` bytes in the agencies' inbox, shared by the events."""
        if size not in self.files:
            path = self.lab.inbox(THAI_NGUYEN) / f"bench-{size}.pdf"
            make_attachment(path, size)
            self.files[size] = attachment_ref(path, size)
        return self.files[size]

    def own_copy(self, organ: str, attachment: dict[str, Any]) -> dict[str, Any]:
        """The attachment in `organ`'s own inbox directory (the only place the gateway reads
        that agency's files from): a hard link to the shared bench file, made once."""
        src = Path(attachment["uri"].removeprefix("file://"))
        own = self.lab.inbox(THAI_NGUYEN, organ)
        if src.parent == own:
            return attachment
        dst = own / src.name
        if not dst.exists():
            os.link(src, dst)
        return {**attachment, "uri": dst.as_uri()}

    def event(self, i: int, attachment: dict[str, Any]) -> CloudEvent:
        """Event number i: alternating senders, a distinct key (document) each."""
        organ = SENDERS[i % len(SENDERS)]
        attachment = self.own_copy(organ, attachment)
        data = self.clients[organ].document(
            to=[RECIPIENT], number=str(100000 + i), notation=f"B{self.scenario}-UBND",
            subject=f"V/v đo hiệu năng liên thông, văn bản số {i}", attachments=[attachment])
        return CloudEvent(id=str(uuid.uuid4()), source=f"urn:qlvb:{organ}",
                          type=events.DOCUMENT_SEND, data=data, time=datetime.now(UTC),
                          subject=data["message_header"]["document_id"],
                          extensions={"agency": organ})

    async def publish(self, producer: EventProducer, event: CloudEvent) -> None:
        # Each sender's own outbound topic (the benchmark's producer is the operator's).
        organ = event.extensions["agency"]
        await producer.publish(self.lab.topics(THAI_NGUYEN, organ)["outbound_documents"], event,
                               key=event.subject)

    def start(self, province: Any, n: int, profile_dir: Path | None = None) -> list[GatewayProcess]:
        gws = []
        for k in range(n):
            name = f"s{self.scenario}-gw{k + 1}"
            if profile_dir is None:
                gws.append(self.lab.start_gateway(province, name=name))
                continue
            base = self.lab.province_dir(province)
            log = base / f"{name}.log"
            cpu = os.environ.get("EDOC_BENCH_PROFILER") == "cpu"
            out = profile_dir / (f"{name}.prof" if cpu else f"{name}.pyinstrument.txt")
            env = dict(os.environ,
                       EDOC_GATEWAY__GATEWAY__INSTANCE_ID=f"{province.prefix}-{name}")
            command = ["gateway.cli", "run", "--config", str(base / "gateway.toml")]
            if cpu:
                # cProfile timed by the main thread's own CPU clock: what the event loop spends,
                # without the waits (and without GIL hand-offs counted as the caller's time).
                runner = _CPU_PROFILE.format(out=str(out), argv=command)
                argv = [sys.executable, "-c", runner]
            else:
                argv = [sys.executable, "-m", "pyinstrument", "-o", str(out), "-m", *command]
            with open(log, "ab") as sink:
                popen = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
            gw = GatewayProcess(province, base / "gateway.toml", popen, log)
            self.lab.gateways.append(gw)
            gws.append(gw)
        return gws

    def stop(self, gws: list[GatewayProcess]) -> None:
        for gw in gws:
            code = gw.terminate(60)
            if code != 0:
                print(f"    (gateway {gw.log.name} exited {code})")
            self.lab.gateways.remove(gw)

    async def counters(self) -> dict[str, Any]:
        return (await self.lab.admin("GET", "/admin/counters"))["counters"]

    async def received(self) -> int:
        return int((await self.counters()).get("received_total", {}).get("edoc", 0))

    async def wait_received(self, target: int, gws: list[GatewayProcess],
                            timeout: float) -> list[tuple[float, int]]:
        """Poll the simulator's sendEdoc counter until `target`; (monotonic, count) samples."""
        samples = []
        deadline = time.monotonic() + timeout
        while True:
            n = await self.received()
            samples.append((time.monotonic(), n))
            if n >= target:
                return samples
            if time.monotonic() > deadline or not any(gw.alive() for gw in gws):
                raise RuntimeError(f"simulator received {n} of {target}; see "
                                   + ", ".join(str(gw.log) for gw in gws))
            await asyncio.sleep(0.25)

    async def deliveries(self, ids: set[str], timeout: float = 60) -> dict[str, CloudEvent]:
        """The delivery.accepted event for every event id in `ids`."""
        topics = [self.lab.topics(THAI_NGUYEN, organ)["delivery"] for organ in SENDERS]
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, CloudEvent] = {}
            failed = 0
            records = [r for topic in topics
                       for r in await read_topic(self.settings, topic, idle_timeout_s=10)]
            for record in records:
                event = CloudEvent.from_record(record)
                sent_id = (event.data or {}).get("event_id")
                if sent_id in ids:
                    if event.type == events.DELIVERY_ACCEPTED:
                        found.setdefault(sent_id, event)
                    else:
                        failed += 1
            if failed:
                raise RuntimeError(f"{failed} delivery.failed events in the benchmark")
            if len(found) == len(ids) or time.monotonic() > deadline:
                if len(found) != len(ids):
                    raise RuntimeError(f"{len(found)} of {len(ids)} deliveries accepted")
                return found
            await asyncio.sleep(0.5)


async def step_means(gws: list[GatewayProcess]) -> dict[str, tuple[float, int]]:
    """Mean seconds and count of the gateways' own step histograms, from their /metrics."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {("edoc_gateway_package_seconds", "operation", "build_sign"): "build+sign via pool",
              ("edoc_gateway_axis_request_seconds", "operation", "sendEdoc"): "sendEdoc call"}
    sums: dict[str, list[float]] = {}
    async with aiohttp.ClientSession() as session:
        for gw in gws:
            url = None
            for line in gw.log.read_text(errors="replace").splitlines():
                if '"gateway.starting"' in line:
                    url = json.loads(line).get("http")
            if not url:
                continue
            async with session.get(url.rstrip("/") + "/metrics") as resp:
                text = await resp.text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    for (name, label, value), title in wanted.items():
                        if sample.name in (name + "_sum", name + "_count") \
                                and sample.labels.get(label) == value:
                            acc = sums.setdefault(title, [0.0, 0.0])
                            acc[0 if sample.name.endswith("_sum") else 1] += sample.value
    return {title: (total / count, int(count)) for title, (total, count) in sums.items() if count}


def delivered_log(log: Path) -> list[tuple[datetime, float]]:
    """(time, handling seconds) of each `outbound.delivered` line of a gateway's JSON log."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"outbound.delivered"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError):
            entry = json.loads(line)
            out.append((datetime.fromisoformat(entry["timestamp"]),
                        float(entry["seconds"])))
    return sorted(out)


def _secs(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def window_rate(times: list[datetime], lo: float = 0.1, hi: float = 0.9) -> float:
    """Rate between the lo and hi quantiles of the completion times (start-up and tail cut)."""
    times = sorted(times)
    i, j = int(lo * (len(times) - 1)), int(hi * (len(times) - 1))
    return (j - i) / max(_secs(times[i], times[j]), 1e-9)


# --- [1] the ceiling -----------------------------------------------------------------------------

def core_build_sign_rate(work: Path) -> float:
    """Packages per CPU second the core library builds and signs in memory (30 KiB attachment):
    the yardstick the gateway's CPU per document is compared with, measured in the same run."""
    work = work / "core"
    work.mkdir(exist_ok=True)
    keys = make_keys(work)
    attachment = work / "small.pdf"
    make_attachment(attachment, SMALL_ATTACHMENT)
    return measure(lambda: package_bytes(make_package(attachment), signer=keys.signer),
                   rounds=5, round_seconds=1.0).cpu


def ceiling(work: Path, openssl_seconds: int) -> tuple[float, float]:
    sign_raw, _verify, version = openssl_rsa2048(openssl_seconds)
    core = core_build_sign_rate(work)
    print("\n[1] ceiling (per CPU second of one process)")
    print(f"    raw RSA-2048 sign, `openssl speed -seconds {openssl_seconds} rsa2048` "
          f"({version}): {sign_raw:9.1f} /s")
    print(f"    core library build+sign, {SMALL_ATTACHMENT // 1024} KiB attachment, in memory: "
          f"{core:9.1f} /s")
    return sign_raw, core


# --- [2] inbound ---------------------------------------------------------------------------------

INBOUND_WARMUP = 10   # packages received before the measured ones: workers spawned, caches warm


def core_read_verify(lab: Lab, package: Path, out_dir: Path) -> float:
    """CPU seconds per package of the core library reading and verifying `package` in this
    process (read_package + DocumentDigester + verify_signature against the gateway's own trust
    store and CRL), as `ceiling` measures build+sign."""
    from edxml_bench import Keys, read_and_verify_op

    from edxml.trust import TrustStore

    trust = TrustStore.from_paths(lab.pki.trust_dir, crl_files=[lab.pki.crl])
    out_dir.mkdir(exist_ok=True)
    op = read_and_verify_op(package.read_bytes(), out_dir, Keys(signer=None, trust=trust))  # type: ignore[arg-type]
    return 1 / measure(op, rounds=5, round_seconds=1.0).cpu


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU seconds of one thread of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


async def inbound(bench: Bench, m: int, profile_dir: Path | None = None) -> float:
    """A warmed-up gateway (INBOUND_WARMUP packages received first) receives `m` packages
    that wait in its mailbox: the simulator answers getReceivedEdocList with 503 while they are
    loaded, and the gateway's CPU is counted from the moment the mailbox opens."""
    lab = bench.lab
    bench.fresh()
    assert lab.simulator is not None
    work = lab.workdir / "inbound-packages"
    work.mkdir(exist_ok=True)
    attachment = work / "att.pdf"
    make_attachment(attachment, SMALL_ATTACHMENT)
    signer = lab.pki.material.agencies[SENDERS[0]].signer()
    base = make_package(attachment)
    paths = []
    for i in range(INBOUND_WARMUP + m):
        notation = "BENCH-IN" if i >= INBOUND_WARMUP else "BENCH-WARM"
        header = dataclasses.replace(
            base.message_header, code=Code(code_number=str(i + 1), code_notation=notation),
            document_id=f"{SENDERS[0]},{date.today():%Y/%m/%d},{i + 1}/{notation}")
        path = work / f"p{i}.edxml"
        write_package_file(dataclasses.replace(base, message_header=header), path, signer=signer)
        paths.append(path)
    config = AxisClientConfig(endpoint=lab.simulator.url, systemid=THAI_NGUYEN.systemid,
                              secret=lab.secrets_[THAI_NGUYEN.systemid])

    async def done_count() -> int:
        return int((await bench.counters()).get("status_updates_total", {}).get("done", 0))

    async def wait_done(target: int) -> None:
        while await done_count() < target:
            if not gw.alive():
                raise RuntimeError(f"the Nghệ An gateway stopped; see {gw.log}")
            await asyncio.sleep(0.1)

    async with AxisClient(config) as axis:
        for path in paths[:INBOUND_WARMUP]:
            await axis.send_edoc(path, from_organ=SENDERS[0])
        done_before = await done_count()
        (gw,) = bench.start(NGHE_AN, 1, profile_dir)
        try:
            await wait_done(done_before + INBOUND_WARMUP)
            # The mailbox closed while the measured packages are loaded.
            await lab.admin("PUT", "/admin/faults", {"rules": [
                {"kind": "error", "status": 503, "operations": ["getReceivedEdocList"]}]})
            for path in paths[INBOUND_WARMUP:]:
                await axis.send_edoc(path, from_organ=SENDERS[0])
            workers = [pid for pid, role in children(gw.popen.pid) if role == "worker"]
            workers_before = {p: cpu_seconds(p) for p in workers}
            cpu_before = (cpu_seconds(gw.popen.pid), sum(workers_before.values()))
            loop_before = thread_cpu_seconds(gw.popen.pid, gw.popen.pid)
            await lab.admin("DELETE", "/admin/faults")
            opened = time.monotonic()
            await wait_done(done_before + INBOUND_WARMUP + m)
            wall = time.monotonic() - opened
            workers = [pid for pid, role in children(gw.popen.pid) if role == "worker"]
            cpu_main = cpu_seconds(gw.popen.pid) - cpu_before[0]
            cpu_loop = thread_cpu_seconds(gw.popen.pid, gw.popen.pid) - loop_before
            cpu_workers = sum(cpu_seconds(p) for p in workers) - cpu_before[1]
            # A worker started during the run (a pool recreated after a death) counts in full,
            # its start-up included: say so rather than hide it in the figure.
            started = [p for p in workers if p not in workers_before]
            topic = lab.topics(NGHE_AN, RECIPIENT[0])["inbound_documents"]
            arrived = [CloudEvent.from_record(r) for r in await read_topic(bench.settings, topic)]
            arrived = [e for e in arrived if e.type == events.DOCUMENT_ARRIVED
                       and e.data["package"]["message_header"]["code"]["code_notation"]
                       == "BENCH-IN"]
            valid = sum(e.data["signature"]["status"] == "valid" for e in arrived)
        finally:
            bench.stop([gw])
    core = core_read_verify(lab, paths[-1], work / "core-out")
    times = sorted(e.time for e in arrived if e.time is not None)
    rate = (len(times) - 1) / max(_secs(times[0], times[-1]), 1e-9)
    gateway_ms = (cpu_main + cpu_workers) * 1000 / m
    ratio = gateway_ms / (core * 1000)
    print(f"\n[2] inbound: {m} signed packages ({SMALL_ATTACHMENT // 1024} KiB attachment) "
          f"waiting in Nghệ An's mailbox, 1 gateway warmed up by {INBOUND_WARMUP}, "
          f"{bench.workers} workers")
    print(f"    {len(arrived)} document.arrived events, {valid} with a valid signature")
    print(f"    first→last arrived: {rate:8.1f} packages/s   10–90 %: {window_rate(times):8.1f}/s"
          f"   from the mailbox opening: {m / wall:.1f}/s ({wall:.1f} s)")
    print(f"    CPU ms per package: gateway main {cpu_main * 1000 / m:.2f} (its event loop's "
          f"thread {cpu_loop * 1000 / m:.2f}), gateway workers "
          f"{cpu_workers * 1000 / m:.2f}; core read+verify in this process "
          f"{core * 1000:.2f} ({1 / core:.0f}/s per CPU second)")
    if started:
        print(f"    {len(started)} worker(s) started during the run: their start-up is in the "
              "workers' figure")
    print(f"    gateway CPU per package / core read+verify CPU per package: {ratio:.2f}x "
          f"(target ≤ 3x: {verdict(ratio <= 3)})")
    return rate


# --- [3] outbound throughput ---------------------------------------------------------------------

@dataclasses.dataclass
class Throughput:
    size: int
    instances: int
    n: int
    rate: float
    steady: float
    counter_rate: float
    prepublish: bool
    duplicates: int
    gateway_cpu_ms: float = float("nan")   # main + workers, CPU ms per document
    main_ms: float = float("nan")          # the gateways' main processes, CPU ms per document
    loop_ms: float = float("nan")          # their event loops' threads
    workers_ms: float = float("nan")       # their workers


async def settled(gws: list[GatewayProcess], quiet: float = 4.0, timeout: float = 90) -> None:
    """Until every gateway has loaded its ledger and no assignment changed for `quiet` s."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        texts = [gw.log.read_text(errors="replace") if gw.log.exists() else "" for gw in gws]
        changes = sum(t.count('"kafka.partitions.') for t in texts)
        if changes != last:
            last, since = changes, time.monotonic()
        if (all('"gateway.ledger_loaded"' in t for t in texts)
                and time.monotonic() - since >= quiet):
            return
        if not all(gw.alive() for gw in gws):
            raise RuntimeError("a gateway stopped while starting; see "
                               + ", ".join(str(gw.log) for gw in gws))
        await asyncio.sleep(0.25)
    raise RuntimeError("the consumer group did not settle")


async def outbound(bench: Bench, size: int, instances: int, n: int, *, prepublish: bool,
                   profile_dir: Path | None = None) -> Throughput:
    """Pre-published: N events wait on the topic, then the gateway(s) start (start-up and the
    group's first rebalance fall inside the run). Settled group: the gateway(s) start, the
    group settles, a few warm-up documents go through, then N events are published in one
    burst (the steady state: its CPU per document is the figure compared with the core)."""
    bench.fresh()
    await bench.create_topics()
    attachment = bench.attachment(size)
    received_before = await bench.received()
    duplicates_before = (await bench.lab.admin("GET", "/admin/duplicates"))["count"]
    others = {"simulator": bench.lab.simulator.pid if bench.lab.simulator else None,
              "kafka": bench.kafka_pid, "this script": os.getpid()}
    evs = [bench.event(i, attachment) for i in range(n)]
    gws: list[GatewayProcess] = []
    if not prepublish:
        gws = bench.start(THAI_NGUYEN, instances, profile_dir)
        await settled(gws)
        # Warm-up: a few documents through every gateway, so that the workers have started
        # (spawning one costs ~0.2 s of CPU) before the CPU clocks are read.
        warm = [bench.event(n + i, attachment) for i in range(4 * bench.workers * instances)]
        async with EventProducer(bench.settings) as producer:
            await asyncio.gather(*(bench.publish(producer, e) for e in warm))
        await bench.wait_received(received_before + len(warm), gws, timeout=120)
        received_before += len(warm)
    before = {name: cpu_seconds(pid) for name, pid in others.items() if pid}
    gateway_before = sum(cpu_seconds(gw.popen.pid) for gw in gws)
    loop_before = sum(thread_cpu_seconds(gw.popen.pid, gw.popen.pid) for gw in gws)
    # Workers already started (settled group) count from here, not from their imports.
    workers_before = {pid: cpu_seconds(pid) for gw in gws
                      for pid, role in children(gw.popen.pid) if role == "worker"}
    async with EventProducer(bench.settings) as producer:
        for k in range(0, n, 200):
            await asyncio.gather(*(bench.publish(producer, e) for e in evs[k:k + 200]))
    if prepublish:
        before = {name: cpu_seconds(pid) for name, pid in others.items() if pid}
        gws = bench.start(THAI_NGUYEN, instances, profile_dir)
    try:
        samples = await bench.wait_received(received_before + n, gws, timeout=60 + n * 2.0)
        accepted = await bench.deliveries({e.id for e in evs})
        # CPU from gateway start (imports and connecting included) to the last delivery.
        # The event loop's own thread (the rest of the main process: its thread pool, the
        # worker pool's threads).
        loop_cpu = sum(thread_cpu_seconds(gw.popen.pid, gw.popen.pid) for gw in gws) - loop_before
        cpu = {"gateway main": sum(cpu_seconds(gw.popen.pid) for gw in gws) - gateway_before,
               "gateway workers": sum(cpu_seconds(pid) - workers_before.get(pid, 0.0)
                                      for gw in gws
                                      for pid, role in children(gw.popen.pid)
                                      if role == "worker")}
        cpu.update({name: cpu_seconds(others[name]) - t for name, t in before.items()})
        steps = await step_means(gws)
        duplicates = (await bench.lab.admin("GET", "/admin/duplicates"))["count"] \
            - duplicates_before
    finally:
        bench.stop(gws)
    times = sorted(e.time for e in accepted.values() if e.time is not None)
    rate = (len(times) - 1) / max(_secs(times[0], times[-1]), 1e-9)
    # Counter samples every 0.25 s: the rate between the first sample that saw a send and the
    # one that saw the last (nan when one sample saw them all).
    first = next((t, c) for t, c in samples if c > received_before)
    counter_rate = ((samples[-1][1] - first[1]) / (samples[-1][0] - first[0])
                    if samples[-1][0] > first[0] else float("nan"))
    label = f"{size // 1024} KiB" if size < 1 << 20 else f"{size / (1 << 20):.0f} MiB"
    mode = "pre-published" if prepublish else "settled group"
    print(f"    {label:>7} {instances} instance{'s' if instances > 1 else ' '} {mode:13} N={n:<4}"
          f" first→last {rate:7.1f}/s   10–90 % {window_rate(times):7.1f}/s"
          f"   simulator counter {counter_rate:7.1f}/s")
    print(f"          sendEdoc calls {samples[-1][1] - received_before} for {n} events; "
          f"duplicate deliveries counted by the simulator: {duplicates}")
    print("          CPU ms per document: " + ", ".join(
        f"{name} {seconds * 1000 / n:.1f}"
        + (f" (its event loop's thread {loop_cpu * 1000 / n:.1f})" if name == "gateway main"
           else "") for name, seconds in cpu.items()))
    gateway_ms = (cpu["gateway main"] + cpu["gateway workers"]) * 1000 / n
    if bench.core_ms is not None and size == SMALL_ATTACHMENT:
        print(f"          gateway CPU per document (main + workers) {gateway_ms:.2f} ms = "
              f"{gateway_ms / bench.core_ms:.1f}x the core build+sign "
              f"({bench.core_ms:.3f} ms at the start of this run; [6] takes the faster of two)"
              + ("; includes start-up" if prepublish else ""))
    print("          gateway step means: " + ", ".join(
        f"{title} {mean * 1000:.0f} ms" for title, (mean, _n) in steps.items()))
    t_first = times[0]
    for gw in gws:
        handled = delivered_log(gw.log)
        if not handled:
            print(f"          {gw.log.stem}: 0 delivered")
            continue
        secs = [h for _, h in handled]
        print(f"          {gw.log.stem}: {len(handled)} delivered between "
              f"+{_secs(t_first, handled[0][0]):.1f} s and +{_secs(t_first, handled[-1][0]):.1f} s;"
              f" handling time per document mean {statistics.mean(secs) * 1000:.0f} ms, "
              f"p50 {statistics.median(secs) * 1000:.0f} ms")
    return Throughput(size, instances, n, rate, window_rate(times), counter_rate, prepublish,
                      duplicates, gateway_ms, cpu["gateway main"] * 1000 / n,
                      loop_cpu * 1000 / n, cpu["gateway workers"] * 1000 / n)


async def settled_repeat(bench: Bench, n: int, times: int) -> None:
    """The figure that matters for the gateway's own cost, alone and repeated: the 30 KiB
    settled-group run of one instance, `times` times, and the medians of its CPU per document
    (on shared cores one run moves by 10-15 %; the median of several, side by side with
    another tree's, is what a change is judged by)."""
    runs = [await outbound(bench, SMALL_ATTACHMENT, 1, n, prepublish=False)
            for _ in range(times)]
    core_ms = min(bench.core_ms or float("inf"),
                  1000 / core_build_sign_rate(bench.lab.workdir))

    def median(name: str) -> float:
        return statistics.median(getattr(r, name) for r in runs)

    print(f"\n    30 KiB, 1 instance, settled group, {times} runs of {n}: median CPU ms per "
          f"document: gateway main {median('main_ms'):.2f} (its event loop's thread "
          f"{median('loop_ms'):.2f}), workers {median('workers_ms'):.2f}, main + workers "
          f"{median('gateway_cpu_ms'):.2f} = {median('gateway_cpu_ms') / core_ms:.1f}x the core "
          f"build+sign ({core_ms:.3f} ms, the faster of two measurements); duplicate "
          f"deliveries {sum(r.duplicates for r in runs)}")
    print("    each run, main / loop thread / workers: " + "; ".join(
        f"{r.main_ms:.2f} / {r.loop_ms:.2f} / {r.workers_ms:.2f}" for r in runs))


# --- [4] latency at a fixed offered load ---------------------------------------------------------

async def latency(bench: Bench, rate: float, seconds: float) -> tuple[float, float, float]:
    bench.fresh()
    await bench.create_topics()
    attachment = bench.attachment(SMALL_ATTACHMENT)
    received_before = await bench.received()
    (gw,) = bench.start(THAI_NGUYEN, 1)
    try:
        async with EventProducer(bench.settings) as producer:
            # Warm-up: workers spawned, partitions assigned, connections open.
            warm = [bench.event(i, attachment) for i in range(10)]
            await asyncio.gather(*(bench.publish(producer, e) for e in warm))
            await bench.wait_received(received_before + len(warm), [gw], timeout=120)
            await bench.deliveries({e.id for e in warm})
            count = int(rate * seconds)
            sent: list[CloudEvent] = []
            tasks = []
            t0 = time.monotonic()
            for i in range(count):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                e = bench.event(1000 + i, attachment)   # ce time = now, at the offer
                sent.append(e)
                tasks.append(asyncio.create_task(bench.publish(producer, e)))
            await asyncio.gather(*tasks)
            offered = count / (time.monotonic() - t0)
        await bench.wait_received(received_before + len(warm) + count, [gw], timeout=120)
        accepted = await bench.deliveries({e.id for e in sent})
    finally:
        bench.stop([gw])
    lat = sorted(_secs(e.time, accepted[e.id].time) for e in sent
                 if e.time and accepted[e.id].time)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print("\n[4] latency event → axis acceptance (delivery.accepted time − event ce_time), "
          "30 KiB, 1 instance")
    print(f"    offered {offered:.1f} events/s for {seconds:.0f} s ({count} events): "
          f"p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms   max {lat[-1] * 1000:.0f} ms")
    return p50, p99, lat[-1]


# --- [5] memory with a 1 GiB attachment ----------------------------------------------------------

async def big(bench: Bench, size: int) -> dict[str, int]:
    bench.fresh()
    await bench.create_topics()
    t0 = time.monotonic()
    path = bench.lab.inbox(THAI_NGUYEN) / f"big-{uuid.uuid4().hex}.pdf"
    try:
        make_attachment(path, size)
        attachment = attachment_ref(path, size)
        made = time.monotonic() - t0
        received_before = await bench.received()
        (gw,) = bench.start(THAI_NGUYEN, 1)
        peaks: dict[str, int] = {}
        roles: dict[int, str] = {}
        try:
            async with EventProducer(bench.settings) as producer:
                e = bench.event(0, attachment)
                await bench.publish(producer, e)
            begun = time.monotonic()
            deadline = begun + 1800
            while await bench.received() < received_before + 1:
                for pid, role in children(gw.popen.pid):
                    roles[pid] = role
                if not gw.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the 1 GiB document did not go out; see {gw.log}")
                await asyncio.sleep(0.5)
            await bench.deliveries({e.id})
            took = time.monotonic() - begun
            for pid, role in [*children(gw.popen.pid), *roles.items()]:
                roles[pid] = role
            peaks["gateway"] = vmhwm(gw.popen.pid) or 0
            for pid, role in sorted(roles.items()):
                peak = vmhwm(pid)
                if peak is not None and role == "worker":
                    peaks[f"worker {pid}"] = peak
        finally:
            bench.stop([gw])
    finally:
        path.unlink(missing_ok=True)
        (bench.lab.inbox(THAI_NGUYEN, SENDERS[0]) / path.name).unlink(missing_ok=True)
    print(f"\n[5] peak RSS (VmHWM) with a {size}-byte attachment ({mib(size)}, made in "
          f"{made:.1f} s), 1 gateway, {bench.workers} workers; event → accepted in {took:.1f} s")
    for name, peak in peaks.items():
        print(f"    {name:16} {mib(peak):>12}  {verdict(peak <= TARGET_RSS)} (≤ {mib(TARGET_RSS)})")
    return peaks


# --- the run -------------------------------------------------------------------------------------

async def run(args: argparse.Namespace, lab: Lab, sign_raw: float | None,
              core_rate: float | None, kafka_pid: int | None) -> None:
    bench = Bench(lab, args.workers)
    bench.kafka_pid = kafka_pid
    only = set(args.only or ("inbound", "outbound", "latency", "memory"))
    if core_rate is None and only & {"outbound", "latency"}:
        core_rate = core_build_sign_rate(lab.workdir)
        print(f"\n    core library build+sign, {SMALL_ATTACHMENT // 1024} KiB attachment, in "
              f"memory, this run: {core_rate:.1f} /s per CPU second "
              f"({1000 / core_rate:.3f} ms per document)")
    bench.core_ms = 1000 / core_rate if core_rate else None
    if "inbound" in only:
        await inbound(bench, args.inbound, args.profile_dir)
    results: list[Throughput] = []
    if "outbound" in only or "latency" in only:
        print(f"\n[3] outbound throughput: {len(SENDERS)} senders, keys spread over "
              f"{len(SENDERS)} x {PER_AGENCY_PARTITIONS} "
              f"partitions, rate from delivery.accepted times; {args.workers} workers each")
        for size, n in ((SMALL_ATTACHMENT, args.small), (1 << 20, args.large)):
            if args.settled_repeat:
                await settled_repeat(bench, n, args.settled_repeat)
                return
            if size != SMALL_ATTACHMENT and "outbound" not in only:
                continue
            for instances, prepublish in ((1, True), (2, True), (1, False), (2, False)):
                if "outbound" not in only and (instances, prepublish) != (1, True):
                    continue
                profile = (args.profile_dir if (size, instances, prepublish)
                           == (SMALL_ATTACHMENT, 1, True) else None)
                results.append(await outbound(bench, size, instances, n, prepublish=prepublish,
                                              profile_dir=profile))
    one = next((r for r in results if r.size == SMALL_ATTACHMENT and r.instances == 1
                and r.prepublish), None)
    p99 = None
    if "latency" in only and one is not None:
        _p50, p99, _max = await latency(bench, one.steady / 2, args.latency_seconds)
    peaks = await big(bench, args.big_size) if "memory" in only else None

    cores = cpu_count()
    print(f"\n[6] ratios and targets ({cores} cores, shared by Kafka, the simulator, the "
          f"gateway(s) and this script; load average now {_load()})")
    if one is not None:
        per_core = one.steady / args.workers
        if sign_raw:
            share = per_core / sign_raw
            print(f"    outbound 30 KiB, 1 instance: {one.steady:.1f}/s = {per_core:.1f}/s per "
                  f"gateway core = {share:.2%} of raw RSA sign "
                  f"(target ≥ {TARGET_RSA_SHARE:.0%}: {verdict(share >= TARGET_RSA_SHARE)})")
        if core_rate:
            print(f"    end-to-end / core library build+sign (per core): "
                  f"{per_core / core_rate:.2%}")
        for size in (SMALL_ATTACHMENT, 1 << 20):
            for prepublish in (True, False):
                pair = [r for r in results if r.size == size and r.prepublish == prepublish]
                if len(pair) == 2:
                    scale = pair[1].steady / pair[0].steady
                    label = "30 KiB" if size == SMALL_ATTACHMENT else "1 MiB"
                    mode = "pre-published" if prepublish else "settled group"
                    print(f"    2 instances / 1, {label}, {mode}: {scale:.2f}x "
                          f"(target ≥ {TARGET_SCALE}x: {verdict(scale >= TARGET_SCALE)})")
        core_ms = bench.core_ms
        if core_ms is not None and any(r.size == SMALL_ATTACHMENT for r in results):
            # The core measured again now: on shared cores a CPU second buys more or less
            # (another process on the sibling hyperthread, frequency), and the start's figure
            # alone moved the ratio by half between runs. The faster of the two is the yardstick,
            # so the ratio is never flattered by a slow core measurement.
            again = 1000 / core_build_sign_rate(bench.lab.workdir)
            core_ms = min(core_ms, again)
            print(f"    core build+sign per document: {bench.core_ms:.3f} ms at the start, "
                  f"{again:.3f} ms now; the ratios below use {core_ms:.3f} ms")
        for r in results:
            if r.size == SMALL_ATTACHMENT and core_ms:
                mode = "pre-published, start-up included" if r.prepublish else "settled group"
                ratio = r.gateway_cpu_ms / core_ms
                print(f"    gateway CPU per document / core build+sign, 30 KiB, {r.instances} "
                      f"instance{'s' if r.instances > 1 else ''}, {mode}: {ratio:.1f}x "
                      f"(target ≤ {TARGET_CPU_RATIO:.0f}x: {verdict(ratio <= TARGET_CPU_RATIO)})")
        dup = sum(r.duplicates for r in results)
        print(f"    duplicate deliveries to the axis over all outbound runs: {dup} "
              f"(exactly once: {verdict(dup == 0)})")
    if p99 is not None:
        print(f"    p99 at half load: {p99 * 1000:.0f} ms "
              f"(target ≤ {TARGET_P99 * 1000:.0f} ms: {verdict(p99 <= TARGET_P99)})")
    if peaks:
        worst = max(peaks.values())
        print(f"    peak RSS at {mib(args.big_size)}: largest {mib(worst)} "
              f"(target ≤ {mib(TARGET_RSS)}: {verdict(worst <= TARGET_RSS)})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=cpu_count(),
                    help="[gateway] workers of each gateway (default: number of cores)")
    ap.add_argument("--small", type=int, default=400, help="events for the 30 KiB runs")
    ap.add_argument("--large", type=int, default=300, help="events for the 1 MiB runs")
    ap.add_argument("--inbound", type=int, default=200, help="packages for the inbound run")
    ap.add_argument("--latency-seconds", type=float, default=25)
    ap.add_argument("--big-size", type=parse_size, default=1 << 30,
                    help="attachment of the memory run (default 1G)")
    ap.add_argument("--openssl-seconds", type=int, default=3)
    ap.add_argument("--only", action="append",
                    choices=("ceiling", "inbound", "outbound", "latency", "memory"))
    ap.add_argument("--profile-dir", type=Path, default=None,
                    help="run the 30 KiB one-instance outbound gateway and the inbound "
                         "gateway under pyinstrument (or, with EDOC_BENCH_PROFILER=cpu, "
                         "cProfile on its CPU clock) and write their profiles here")
    ap.add_argument("--workdir", type=Path, default=None, help="where the lab goes (temp dir)")
    ap.add_argument("--settled-repeat", type=int, default=0, metavar="N",
                    help="with --only outbound: run only the 30 KiB one-instance settled-group "
                         "scenario, N times, and print the medians of its CPU per document")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    # aiokafka logs (and retries) NotLeaderForPartition while new topics elect leaders.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    if args.profile_dir:
        args.profile_dir = args.profile_dir.resolve()
        args.profile_dir.mkdir(parents=True, exist_ok=True)

    print(f"edoc-gateway end-to-end benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs "
          f"({cpu_count()} usable), {os.uname().machine}, {_cpu_model()}; "
          f"load average {_load()} at start")
    with tempfile.TemporaryDirectory(prefix="e2e-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        sign_raw = core_rate = None
        if not args.only or "ceiling" in args.only:
            sign_raw, core_rate = ceiling(work, args.openssl_seconds)
        if args.only and set(args.only) == {"ceiling"}:
            return 0
        bootstrap, broker = start_kafka(work / "kafka")
        lab = Lab(work / "lab", bootstrap, broker=broker, gateway_overrides={
            THAI_NGUYEN.code: {"gateway": {"workers": args.workers},
                               "axis": {"poll": False},
                               "retry": {"initial_seconds": 0.05, "max_seconds": 1}},
            NGHE_AN.code: {"gateway": {"workers": args.workers}}})
        try:
            lab.start()
            print(f"    lab: Kafka {'(local broker)' if broker else bootstrap}, axis simulator, "
                  f"gateways as `python -m gateway.cli run` processes")
            asyncio.run(run(args, lab, sign_raw, core_rate, broker.pid if broker else None))
        finally:
            lab.stop()
            if broker is not None:
                broker.stop()
    return 0


def _load() -> str:
    """The 1-minute load average and the other runnable work it implies (on a shared host the
    figures move with it)."""
    return f"{os.getloadavg()[0]:.2f}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
