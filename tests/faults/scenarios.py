"""Fault scenarios: a stream of documents between two provinces while something breaks.

Each scenario builds a fresh `Lab` (its own simulator, gateways and `run_id`-prefixed topics),
sends documents Thái Nguyên (H55) → Nghệ An (H41) and some back, injects its fault mid-stream,
waits for the traffic to settle and then checks the ledger of outcomes:

- every accepted outbound event ended as exactly one outcome: a `delivery.accepted` for its event
  id (and the document in the recipient's axis mailbox once), or a dead letter with the reason
  the scenario expects (and a `delivery.failed` with the same reason when the event was readable);
- the axis saw no duplicate delivery (`/admin/duplicates` empty, `duplicates_total` 0);
- every copy the axis holds for the two provinces was published (`document.arrived` /
  `receipt.arrived` with the derived event id) or quarantined (a dead letter of flow
  `inbound-*`), marked `done`, and published under one event id only;
- each province's audit chain verifies.

`run_scenario(name, bootstrap, workdir, size=...)` runs one and returns a `Report`; the short
sizes are for the test suite, the full ones for `python -m tests.faults.run`.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.kafka import KafkaSettings
from gateway import events
from gateway.audit import verify_topic
from gateway.dlq import list_dead_letters
from gateway.inbound import arrived_event_id
from gateway.lab import (NGHE_AN, THAI_NGUYEN, AgencyClient, GatewayProcess, Lab, Province,
                         load_localkafka)

H55_ORGAN = "000.00.00.H55"
H41_ORGAN = "000.00.00.H41"
TO_H41 = [(H41_ORGAN, "UBND tỉnh Nghệ An")]
TO_H55 = [(H55_ORGAN, "UBND tỉnh Thái Nguyên")]
BACK_EVERY = 4          # every 4th document goes Nghệ An → Thái Nguyên


@dataclass(frozen=True)
class Size:
    """How big a run is: documents in the stream and the scale of each fault."""

    documents: int
    kills: int                 # gateway SIGKILLs in the kill scenario
    outage_seconds: float      # axis outage
    hold_seconds: float        # how long a broken store / stopped broker stays broken
    settle_seconds: float      # how long the traffic may take to settle afterwards
    gap_seconds: float         # pause between two published documents


SHORT = Size(documents=10, kills=3, outage_seconds=10, hold_seconds=6, settle_seconds=150,
             gap_seconds=0.1)
FULL = Size(documents=60, kills=12, outage_seconds=150, hold_seconds=45, settle_seconds=360,
            gap_seconds=0.3)


@dataclass
class Expected:
    event_id: str
    client: AgencyClient
    document_id: str
    recipient: str | None          # OrganId that must receive it (None for poison)
    reason: str | None = None      # expected dead-letter reason (None: must be delivered)
    readable: bool = True          # a delivery.failed is expected too


@dataclass
class Report:
    scenario: str
    documents: int = 0
    faults: list[str] = field(default_factory=list)
    delivered: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    inbound_published: int = 0
    inbound_quarantined: int = 0
    audit_ok: bool = False
    audit_records: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is None and not self.problems and self.lost == 0 \
            and self.duplicated == 0 and self.audit_ok

    def row(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "documents": self.documents,
                "faults injected": "; ".join(self.faults), "delivered": self.delivered,
                "dead-lettered": self.dead_lettered,
                "inbound published / quarantined":
                    f"{self.inbound_published} / {self.inbound_quarantined}",
                "lost": self.lost,
                "duplicated": self.duplicated,
                "audit chain OK": "yes" if self.audit_ok else "NO",
                "seconds": round(self.seconds), "ok": self.ok}


class Stream:
    """The agencies' side: publishes documents and remembers what each must end as."""

    def __init__(self, lab: Lab, seed: int) -> None:
        self.lab = lab
        self.h55 = AgencyClient(lab, THAI_NGUYEN, H55_ORGAN)
        self.h41 = AgencyClient(lab, NGHE_AN, H41_ORGAN)
        self.expected: list[Expected] = []
        self.rng = random.Random(seed)
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def _doc(self, client: AgencyClient, to: list[tuple[str, str]], n: int, **kw: Any) \
            -> dict[str, Any]:
        body = b"%PDF-1.4\n" + self.rng.randbytes(2000 + 300 * (n % 7)) + b"\n%%EOF\n"
        attachments = kw.pop("attachments", None)
        if attachments is None:
            attachments = [client.attachment(f"van-ban-{n}.pdf", body)]
        return client.document(to=to, number=str(1000 + n), notation="UBND-VP",
                               subject=f"V/v kiểm thử sự cố {self.lab.run_id} số {n}",
                               attachments=attachments, **kw)

    async def send(self) -> Expected:
        """One good document; every BACK_EVERY-th goes back from Nghệ An."""
        n = self._next()
        client, to, recipient = ((self.h41, TO_H55, H55_ORGAN) if n % BACK_EVERY == 0
                                 else (self.h55, TO_H41, H41_ORGAN))
        doc = self._doc(client, to, n)
        key = doc["message_header"]["document_id"]
        event_id = await client.publish(events.DOCUMENT_SEND, doc, key=key)
        exp = Expected(event_id, client, key, recipient)
        self.expected.append(exp)
        return exp

    async def send_many(self, count: int, gap: float) -> None:
        for _ in range(count):
            await self.send()
            await asyncio.sleep(gap)

    async def send_poison(self, kind: str) -> Expected:
        """A bad event from Thái Nguyên; `kind` names the dead-letter reason it must get."""
        n = self._next()
        client = self.h55
        content = b"%PDF-1.4 poison " + bytes([n % 256]) * 1500
        if kind == "event.json":
            key = f"{H55_ORGAN},poison,{n}"
            event_id = await client.publish(events.DOCUMENT_SEND, None, key=key,
                                            raw_value=b'{"message_header": {"from": ')
            exp = Expected(event_id, client, key, None, kind, readable=False)
            self.expected.append(exp)
            return exp
        if kind == "event.schema":
            doc = {"message_header": {"subject": 42, "to": "everyone"}, "attachments": "none"}
            key = f"{H55_ORGAN},poison,{n}"
        else:
            att = client.attachment(f"poison-{n}.pdf", content)
            to = TO_H41
            extra: dict[str, Any] = {}
            if kind == "store.missing":
                Path(att["uri"].removeprefix("file://")).unlink()
            elif kind == "store.hash_mismatch":
                att["sha256"] = "0" * 64
            elif kind == "event.secret_document":
                extra["secrecy"] = "mat"
            elif kind == "event.unknown_recipient":
                to = [("000.00.99.H99", "Cơ quan không có trong danh bạ")]
            else:
                raise ValueError(f"unknown poison {kind}")
            doc = self._doc(client, to, n, attachments=[att], **extra)
            key = doc["message_header"]["document_id"]
        event_id = await client.publish(events.DOCUMENT_SEND, doc, key=key)
        exp = Expected(event_id, client, key, None, kind)
        self.expected.append(exp)
        return exp


POISON_KINDS = ("event.json", "event.schema", "store.missing", "store.hash_mismatch",
                "event.secret_document", "event.unknown_recipient")


# -- the ledger of outcomes ------------------------------------------------------------------


async def _outcomes(client: AgencyClient) -> dict[str, list[Any]]:
    by_event: dict[str, list[Any]] = {}
    for e in await client.read("delivery"):
        if isinstance(e.data, dict) and e.data.get("event_id"):
            by_event.setdefault(e.data["event_id"], []).append(e)
    return by_event


async def _mailboxes(lab: Lab) -> list[dict[str, Any]]:
    boxes = await lab.admin("GET", "/admin/mailboxes")
    out = []
    for to_code, items in boxes.items():
        for item in items:
            out.append(dict(item, to_code=to_code))
    return out


async def wait_settled(lab: Lab, stream: Stream, timeout: float) -> bool:
    """Until every expected event has an outcome and the axis holds nothing pending."""
    deadline = time.monotonic() + timeout
    clients = (stream.h55, stream.h41)
    while time.monotonic() < deadline:
        try:
            outcomes: dict[str, list[Any]] = {}
            for client in clients:
                outcomes.update(await _outcomes(client))
            missing = [x for x in stream.expected if x.readable and x.event_id not in outcomes]
            counters = await lab.admin("GET", "/admin/counters")
            pending = sum(counters.get("pending", {}).values())
        except Exception:  # noqa: BLE001 - broker or simulator still coming back
            missing, pending = [None], 1
        if not missing and pending == 0:
            return True
        await asyncio.sleep(2)
    return False


async def check(lab: Lab, stream: Stream, report: Report) -> Report:
    """Fill `report` from what Kafka and the axis hold now."""
    settings = KafkaSettings(bootstrap_servers=lab.bootstrap)
    outcomes: dict[str, list[Any]] = {}
    letters: dict[str, list[Any]] = {}
    inbound_letters: dict[str, Any] = {}
    arrived: dict[str, set[str]] = {}      # arrived event id -> set of (topic) seen
    arrived_by_doc: dict[tuple[str, str, str], set[str]] = {}
    for client in (stream.h55, stream.h41):
        outcomes.update(await _outcomes(client))
        for letter in await list_dead_letters(settings, client.topics["deadletter"]):
            ce_id = letter.original.header("ce_id")
            if letter.flow.startswith("inbound-"):
                inbound_letters[letter.id] = letter
            elif ce_id:
                letters.setdefault(ce_id.decode(), []).append(letter)
        for name in ("inbound_documents", "inbound_receipts"):
            for e in await client.read(name):
                arrived.setdefault(e.id, set()).add(name)
                mh = ((e.data or {}).get("package") or e.data or {}).get("message_header") or {}
                doc = mh.get("document_id") or (mh.get("response_for") or {}).get("document_id")
                key = (client.province.code, name, f"{doc}|{mh.get('status_code', '')}")
                arrived_by_doc.setdefault(key, set()).add(e.id)

    report.documents = len(stream.expected)
    boxes = await _mailboxes(lab)
    copies: dict[tuple[str, str], int] = {}
    for item in boxes:
        if item.get("message_type") == "edoc":
            k = (item["to_code"], item["document_id"])
            copies[k] = copies.get(k, 0) + 1

    for exp in stream.expected:
        got = outcomes.get(exp.event_id, [])
        accepted = {e.id for e in got if e.type == events.DELIVERY_ACCEPTED}
        failed = [e for e in got if e.type == events.DELIVERY_FAILED]
        dls = letters.get(exp.event_id, [])
        label = f"event {exp.event_id[:8]} ({exp.document_id})"
        if exp.reason is None:
            if accepted and not failed and not dls:
                report.delivered += 1
                n = copies.get((exp.recipient, exp.document_id), 0)
                if n == 0:
                    report.lost += 1
                    report.problems.append(f"{label}: delivery.accepted but not on the axis")
                elif n > 1:
                    report.duplicated += 1
                    report.problems.append(f"{label}: {n} copies on the axis")
            elif dls or failed:
                report.dead_lettered += 1
                reasons = sorted({d.reason for d in dls} | {f.data.get("reason") for f in failed})
                on_axis = copies.get((exp.recipient, exp.document_id), 0)
                report.problems.append(f"{label}: dead-lettered ({', '.join(map(str, reasons))})"
                                       + (" after delivery.accepted" if accepted else "")
                                       + (f" although the axis holds {on_axis} copy(ies) for "
                                          "the recipient" if on_axis else ""))
            else:
                report.lost += 1
                report.problems.append(f"{label}: no outcome")
            if len(accepted) > 1:
                report.problems.append(f"{label}: {len(accepted)} different accepted outcomes")
        else:
            reasons = {d.reason for d in dls}
            if dls:
                report.dead_lettered += 1
            else:
                report.lost += 1
                report.problems.append(f"{label}: poison {exp.reason} has no dead letter")
                continue
            if reasons != {exp.reason}:
                report.problems.append(f"{label}: dead letter reason {sorted(reasons)}, "
                                       f"expected {exp.reason}")
            if accepted:
                report.problems.append(f"{label}: poison {exp.reason} was delivered")
            if exp.readable and not any(f.data.get("reason") == exp.reason for f in failed):
                report.problems.append(f"{label}: no delivery.failed with {exp.reason}")
            if exp.document_id in {d for (_, d) in copies}:
                report.problems.append(f"{label}: poison {exp.reason} reached the axis")

    # The axis: no duplicates, every copy for our provinces handled once.
    duplicates = await lab.admin("GET", "/admin/duplicates")
    counters = (await lab.admin("GET", "/admin/counters"))["counters"]
    dup_total = sum(counters.get("duplicates_total", {}).values())
    if duplicates["count"] or dup_total:
        report.duplicated += max(duplicates["count"], dup_total)
        report.problems.append(f"axis duplicates: {duplicates['count']} listed, "
                               f"duplicates_total {dup_total}")
    systemid_of = {organ: p.systemid for p in lab.provinces for organ, _ in p.agencies}
    for item in boxes:
        systemid = systemid_of.get(item["to_code"])
        if systemid is None:
            continue
        event_id = arrived_event_id(systemid, item["receiver_doc_id"])
        published = event_id in arrived
        quarantined = f"dl:inbound:{event_id}" in inbound_letters
        what = f"axis copy {item['receiver_doc_id']} for {item['to_code']}"
        if published and quarantined:
            report.problems.append(f"{what}: both published and quarantined")
        elif published:
            report.inbound_published += 1
        elif quarantined:
            report.inbound_quarantined += 1
        else:
            report.lost += 1
            report.problems.append(f"{what}: neither published nor quarantined")
        if item["status"] != "done":
            report.problems.append(f"{what}: left '{item['status']}' on the axis")
    for key, ids in arrived_by_doc.items():
        if len(ids) > 1:
            report.duplicated += 1
            report.problems.append(f"{key}: published under {len(ids)} event ids")

    report.audit_ok = True
    for client in (stream.h55, stream.h41):
        audit = await verify_topic(settings, client.topics["audit"])
        report.audit_records += audit.records
        if not audit.ok or audit.records == 0:
            report.audit_ok = False
            report.problems.append(f"audit {client.province.code}: {audit.as_dict()}")
    injected = counters.get("faults_injected_total", {})
    if injected:
        report.faults.append("axis " + ", ".join(f"{k} {v}" for k, v in sorted(injected.items())))
    return report


# -- running ---------------------------------------------------------------------------------


class Run:
    """One scenario's lab, stream and report, with helpers the scenarios share."""

    def __init__(self, name: str, bootstrap: str, workdir: Path, size: Size, seed: int,
                 broker: Any = None) -> None:
        self.name = name
        self.size = size
        # With a broker that has SCRAM users: authentication and ACLs on, as in production.
        self.lab = Lab(workdir, bootstrap, broker=broker)
        self.report = Report(name)
        self.seed = seed
        self.rng = random.Random(seed)
        self.stream: Stream | None = None
        self.gateways: dict[str, GatewayProcess] = {}

    def start(self, simulator_args: tuple[str, ...] = ()) -> Stream:
        self.lab.start(simulator_args=simulator_args)
        self.stream = Stream(self.lab, self.seed)
        return self.stream

    def gateway(self, province: Province, name: str) -> GatewayProcess:
        gw = self.lab.start_gateway(province, name=name)
        self.gateways[name] = gw
        return gw

    def start_both(self) -> None:
        self.gateway(THAI_NGUYEN, "h55-a")
        self.gateway(NGHE_AN, "h41-a")

    def died(self) -> list[GatewayProcess]:
        """Gateways that exited on their own (not killed or stopped by the scenario)."""
        return [gw for gw in self.gateways.values() if not gw.alive()]

    async def finish(self) -> Report:
        assert self.stream is not None
        for gw in self.died():
            code = gw.popen.returncode
            self.report.problems.append(f"gateway {gw.log.stem} exited by itself "
                                        f"(exit {code}); log tail: {_tail(gw.log)}")
        # A gateway that exited by itself will not finish its work: do not wait for it long.
        wait = min(10.0, self.size.settle_seconds) if self.died() else self.size.settle_seconds
        settled = await wait_settled(self.lab, self.stream, wait)
        if not settled:
            self.report.problems.append(f"not settled within {wait:.0f} s")
        for gw in self.died():
            msg = f"gateway {gw.log.stem} exited by itself"
            if not any(p.startswith(msg) for p in self.report.problems):
                self.report.problems.append(f"{msg} (exit {gw.popen.returncode}); log tail: "
                                            f"{_tail(gw.log)}")
        return await check(self.lab, self.stream, self.report)

    def stop(self) -> None:
        self.lab.stop()


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    interesting = [line for line in text if '"error"' in line or "Traceback" in line
                   or "task_failed" in line or "handler_failed" in line]
    return " | ".join((interesting or text)[-lines:])[-1500:]


Scenario = Callable[[Run], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn
    return register


@scenario("sigkill")
async def sigkill_repeated(run: Run) -> None:
    """Gateways (either province) SIGKILLed at random moments while the stream flows, and
    restarted; the axis also loses some answers to accepted sends."""
    stream = run.start(("--fault", "lose_response:ops=sendEdoc,rate=0.2",
                        "--fault-seed", str(run.seed)))
    run.start_both()
    sending = asyncio.create_task(stream.send_many(run.size.documents, run.size.gap_seconds))
    kills = 0
    while kills < run.size.kills:
        await asyncio.sleep(run.rng.uniform(1.0, 4.0))
        victim_name = run.rng.choice(["h55", "h55", "h41"])
        current = [n for n, gw in run.gateways.items() if n.startswith(victim_name)
                   and gw.alive()]
        name = current[-1]
        gw = run.gateways.pop(name)
        gw.kill()
        kills += 1
        run.gateway(gw.province, f"{victim_name}-k{kills}")
    await sending
    run.report.faults.append(f"{kills} SIGKILL")


@scenario("two-instances")
async def two_instances_one_killed(run: Run) -> None:
    """Two Thái Nguyên instances in one consumer group; the busier one is SIGKILLed mid-stream
    and the survivor takes over its partitions."""
    stream = run.start()
    first = run.gateway(THAI_NGUYEN, "h55-a")
    second = run.gateway(THAI_NGUYEN, "h55-b")
    run.gateway(NGHE_AN, "h41-a")
    half = max(2, run.size.documents // 2)
    await stream.send_many(half, run.size.gap_seconds)
    # Wait until both share the work (a delivery each) or a few seconds passed.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        busy = [gw for gw in (first, second) if '"outbound.delivered"' in gw.log.read_text()]
        if len(busy) == 2:
            break
        await asyncio.sleep(0.5)
    victim = max((first, second), key=lambda g: g.log.read_text().count('"outbound.delivered"'))
    survivor = second if victim is first else first
    victim.kill()
    before = survivor.log.read_text().count('"outbound.delivered"')
    run.gateways.pop(victim.log.stem)
    await stream.send_many(run.size.documents - half, run.size.gap_seconds)
    await wait_settled(run.lab, stream, run.size.settle_seconds)
    after = survivor.log.read_text().count('"outbound.delivered"')
    if after <= before and run.size.documents - half > 0:
        run.report.problems.append("the surviving instance delivered nothing after the kill")
    run.report.faults.append(f"SIGKILL of 1 of 2 instances ({victim.log.stem})")


@scenario("broker-restart")
async def broker_restart(run: Run) -> None:
    """The Kafka broker is stopped mid-stream and started again with its data."""
    raise NotImplementedError  # replaced by run_scenario (needs its own broker)


@scenario("axis-outage")
async def axis_outage(run: Run) -> None:
    """The axis answers 503 to everything for a while; the backlog drains afterwards and
    nothing is dead-lettered for it."""
    stream = run.start()
    run.start_both()
    half = run.size.documents // 2
    await stream.send_many(half, run.size.gap_seconds)
    await run.lab.admin("PUT", "/admin/faults", {"seed": run.seed, "rules": [
        {"kind": "outage", "start_in": 0, "duration": run.size.outage_seconds}]})
    began = time.monotonic()
    await stream.send_many(run.size.documents - half, run.size.gap_seconds)
    await asyncio.sleep(max(0.0, run.size.outage_seconds - (time.monotonic() - began)))
    run.report.faults.append(f"axis outage {run.size.outage_seconds:.0f} s")


@scenario("axis-flaky")
async def axis_flaky(run: Run) -> None:
    """20 % 503s, some timeouts, resets half-way through uploads, accepted sends whose
    answer is lost."""
    stream = run.start()
    run.start_both()
    await run.lab.admin("PUT", "/admin/faults", {"seed": run.seed, "rules": [
        {"kind": "error", "rate": 0.2, "status": 503},
        {"kind": "timeout", "rate": 0.05, "seconds": 9,
         "operations": ["sendEdoc", "getEdoc", "updateStatus", "getSentEdocList"]},
        {"kind": "reset", "rate": 0.1, "at": "request", "operations": ["sendEdoc"]},
        {"kind": "lose_response", "rate": 0.15, "operations": ["sendEdoc", "updateStatus"]},
    ]})
    await stream.send_many(run.size.documents, run.size.gap_seconds)
    await wait_settled(run.lab, stream, run.size.settle_seconds)
    await run.lab.admin("DELETE", "/admin/faults")


@scenario("poison")
async def poison_interleaved(run: Run) -> None:
    """Bad events of every kind between good ones."""
    stream = run.start()
    run.start_both()
    kinds = list(POISON_KINDS) * max(1, run.size.documents // 20)
    goods = run.size.documents
    order = ["good"] * goods + kinds
    run.rng.shuffle(order)
    for item in order:
        if item == "good":
            await stream.send()
        else:
            await stream.send_poison(item)
        await asyncio.sleep(run.size.gap_seconds)
    run.report.faults.append(f"{len(kinds)} poison events")


@scenario("rebalance-mid-send")
async def rebalance_mid_send(run: Run) -> None:
    """Sends are slow (latency on sendEdoc); a second instance joins while they are in flight,
    so partitions move mid-send (the first instance's grace runs out on queued lanes)."""
    stream = run.start()
    run.gateway(THAI_NGUYEN, "h55-a")
    run.gateway(NGHE_AN, "h41-a")
    await run.lab.admin("PUT", "/admin/faults", {"seed": run.seed, "rules": [
        {"kind": "latency", "ms": 6000, "operations": ["sendEdoc"]}]})
    await stream.send_many(run.size.documents, run.size.gap_seconds)
    # Wait for a send to be under way, then make the group rebalance.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        requests = await run.lab.admin("GET", "/admin/requests")
        if any(r.get("operation") == "sendEdoc" for r in requests):
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.0)
    run.gateway(THAI_NGUYEN, "h55-b")
    run.report.faults.append("6 s sendEdoc latency; second instance joined mid-send")
    await asyncio.sleep(15)
    await run.lab.admin("DELETE", "/admin/faults")
    released = run.gateways["h55-a"].log.read_text().count('"lanes.released_unfinished"')
    run.report.faults.append(f"{released} unfinished lane hand-over(s)")


def _break(path: Path) -> None:
    """A regular file where the store needs a directory: every write there fails (OSError).

    The gateway keeps writing while this runs (and may recreate the directory), so the
    directory is moved aside atomically and the file created exclusively, until it sticks."""
    for attempt in range(100):
        if path.is_dir():
            aside = path.with_name(f"{path.name}.broken-{attempt}")
            path.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except (FileExistsError, IsADirectoryError):
            if path.is_file():
                return
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(b"not a directory\n")
        return
    raise RuntimeError(f"could not replace {path} with a file")


def _repair(path: Path) -> None:
    if path.exists() and not path.is_dir():
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)


def _store_scenario(province: Province, areas: tuple[str, ...], what: str) -> Scenario:
    async def broken_store(run: Run) -> None:
        stream = run.start()
        run.start_both()
        half = run.size.documents // 2
        await stream.send_many(half, run.size.gap_seconds)
        root = run.lab.province_dir(province) / "store"
        for area in areas:
            _break(root / area)
        await stream.send_many(run.size.documents - half, run.size.gap_seconds)
        await asyncio.sleep(run.size.hold_seconds)
        for area in areas:
            _repair(root / area)
        run.report.faults.append(f"{province.code} store {'+'.join(areas)}/ unusable "
                                 f"for {run.size.hold_seconds:.0f} s ({what})")
    broken_store.__doc__ = f"The attachment store of {province.name} fails ({what}), then " \
                           "is repaired; the work that needed it is retried and completes."
    return broken_store


SCENARIOS["store-inbound"] = _store_scenario(NGHE_AN, ("objects",), "inbound attachments")
SCENARIOS["store-outbound-scratch"] = _store_scenario(THAI_NGUYEN, ("tmp",), "outbound scratch")
SCENARIOS["store-outbound-archive"] = _store_scenario(THAI_NGUYEN, ("archive",),
                                                      "outbound archive")


# -- the broker scenario runs on a broker of its own -----------------------------------------


async def _broker_restart(run: Run, state_dir: Path) -> None:
    stream = run.start()
    run.start_both()
    half = run.size.documents // 2
    await stream.send_many(half, run.size.gap_seconds)
    await asyncio.sleep(1.0)
    kafka = load_localkafka()
    await asyncio.to_thread(kafka.stop_local_kafka, state_dir)
    await asyncio.sleep(run.size.hold_seconds)
    await asyncio.to_thread(_start_secured, state_dir)
    run.report.faults.append(f"broker stopped for {run.size.hold_seconds:.0f} s, restarted")
    await stream.send_many(run.size.documents - half, run.size.gap_seconds)


def external_kafka() -> bool:
    return bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip())


def _start_secured(state_dir: Path) -> Any:
    from gateway.lab import LAB_SUPER_USERS, lab_scram_users

    return load_localkafka().start_local_kafka(state_dir, scram_users=lab_scram_users(),
                                               super_users=LAB_SUPER_USERS)


async def run_scenario(name: str, bootstrap: str | None, workdir: Path, size: Size = SHORT,
                       seed: int = 7, broker: Any = None) -> Report:
    """Run one scenario in `workdir` against the broker at `bootstrap` (the broker scenario
    starts and restarts its own and ignores it). `broker`, a local broker with SCRAM users,
    turns authentication and ACLs on."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "broker-restart":
        if external_kafka():
            return Report(name, skipped="KAFKA_BOOTSTRAP_SERVERS points to an external cluster; "
                          "this scenario stops and restarts a broker it starts itself")
        state_dir = workdir / "kafka"
        kafka = load_localkafka()
        own = await asyncio.to_thread(_start_secured, state_dir)
        run = Run(name, own.bootstrap, workdir / "lab", size, seed, broker=own)
        try:
            await _broker_restart(run, state_dir)
            report = await run.finish()
        finally:
            run.stop()
            await asyncio.to_thread(kafka.stop_local_kafka, state_dir)
    else:
        assert bootstrap is not None
        run = Run(name, bootstrap, workdir / "lab", size, seed, broker=broker)
        try:
            await SCENARIOS[name](run)
            report = await run.finish()
        finally:
            run.stop()
    report.seconds = time.monotonic() - started
    return report


SCENARIOS["broker-restart"] = broker_restart
NAMES = ("sigkill", "two-instances", "broker-restart", "axis-outage", "axis-flaky", "poison",
         "rebalance-mid-send", "store-inbound", "store-outbound-scratch",
         "store-outbound-archive")
