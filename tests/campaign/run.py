"""Run the hostile-input campaign against running gateways: `python -m tests.campaign.run`.

Starts a lab (axis simulator + the Thái Nguyên and Nghệ An gateways, as processes) on the broker
named by KAFKA_BOOTSTRAP_SERVERS (or a local one), injects every inbound case into the simulator
as Thái Nguyên sending to Nghệ An, publishes every outbound case to Thái Nguyên's outbound
topics, and compares what happened with what each case expects. Prints the outcome table
(JSON with --json) and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.axis.client import AxisClient, AxisClientConfig
from connectors.cloudevents import KafkaRecord
from connectors.kafka import EventProducer, KafkaSettings
from edxml.errors import GatewayError
from edxml.signature import Signer
from gateway import events
from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, Lab
from tests.campaign.make_campaign import (DELIVERED, ESCAPE_MARK, PUBLISHED, RECIPIENT, SENDER,
                                          Credentials, InboundCase, OutboundCase, OutboundEnv,
                                          good_document, inbound_cases, outbound_cases)

H41_OVERRIDES = {"inbound": {"allow_sha1": False}}


def start_lab(workdir: Path, bootstrap: str) -> Lab:
    lab = Lab(workdir, bootstrap, gateway_overrides={NGHE_AN.code: H41_OVERRIDES})
    lab.start()
    lab.start_gateway(THAI_NGUYEN)
    lab.start_gateway(NGHE_AN)
    return lab


def credentials(lab: Lab) -> Credentials:
    def signer(files: Any) -> Signer:
        return Signer.from_pem(files.key, files.cert, chain_path=files.chain)

    return Credentials(sender=signer(lab.pki.agencies[SENDER]),
                       other_agency=signer(lab.pki.agencies[RECIPIENT]),
                       expired=signer(lab.pki.expired), revoked=signer(lab.pki.revoked),
                       untrusted=signer(lab.pki.untrusted), pki_now=datetime.now(timezone.utc))


@dataclass
class Outcome:
    name: str
    family: str
    expect: str
    got: str
    known_bug: str | None = None

    @property
    def ok(self) -> bool:
        return self.got == self.expect


@dataclass
class Report:
    inbound: list[Outcome] = field(default_factory=list)
    outbound: list[Outcome] = field(default_factory=list)
    axis_refused: list[tuple[str, str]] = field(default_factory=list)   # (case, axis error)
    rejections_checked: int = 0
    escaped_files: list[str] = field(default_factory=list)
    unexpected_files: list[str] = field(default_factory=list)
    served_after: bool = False
    seconds: float = 0.0

    def mismatches(self) -> list[Outcome]:
        return [o for o in self.inbound + self.outbound if not o.ok and not o.known_bug]

    def fixed_bugs(self) -> list[Outcome]:
        return [o for o in self.inbound + self.outbound if o.ok and o.known_bug]

    def table(self) -> dict[str, Any]:
        def rows(items: list[Outcome]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = collections.defaultdict(collections.Counter)
            for o in items:
                out[o.family.split("/")[0]][o.got] += 1
            return {k: dict(v) for k, v in sorted(out.items())}

        return {"inbound_cases": len(self.inbound) + len(self.axis_refused),
                "inbound_at_gateway": len(self.inbound),
                "inbound_refused_at_axis": len(self.axis_refused),
                "outbound_cases": len(self.outbound),
                "inbound_outcomes": rows(self.inbound), "outbound_outcomes": rows(self.outbound),
                "axis_refusals": dict(collections.Counter(e for _, e in self.axis_refused)),
                "mismatches": [o.__dict__ for o in self.mismatches()],
                "known_bugs": [o.__dict__ for o in self.inbound + self.outbound if o.known_bug],
                "rejections_checked": self.rejections_checked,
                "escaped_files": self.escaped_files, "unexpected_files": self.unexpected_files,
                "served_after": self.served_after, "seconds": round(self.seconds, 1)}


# --- inbound ----------------------------------------------------------------------------------

async def _mailbox(lab: Lab) -> list[dict[str, Any]]:
    boxes = await lab.admin("GET", f"/admin/mailboxes?agency={RECIPIENT}")
    return boxes.get(RECIPIENT, []) if isinstance(boxes, dict) else []


async def run_inbound(lab: Lab, cases: list[InboundCase], report: Report, *,
                      timeout: float = 600) -> None:
    assert lab.simulator is not None
    axis = AxisClient(AxisClientConfig(endpoint=lab.simulator.url, systemid=THAI_NGUYEN.systemid,
                                       secret=lab.secrets_[THAI_NGUYEN.systemid]))
    sent: dict[str, InboundCase] = {}                   # sender DocId -> case
    scratch = Path(tempfile.mkdtemp(prefix="campaign-in-", dir=lab.workdir))
    try:
        for case in cases:
            path = scratch / "package.edxml"
            path.write_bytes(case.data)
            try:
                result = await axis.send_edoc(path, from_organ=SENDER,
                                              messagetype=case.messagetype, to=[RECIPIENT],
                                              sha256=case.send_sha256)
            except GatewayError as exc:
                error = getattr(exc, "error_desc", None) or exc.message
                if case.expect.startswith("axis:"):
                    report.inbound.append(Outcome(case.name, case.family, case.expect,
                                                  "axis:" + _axis_kind(error)))
                elif case.axis_may_refuse:
                    report.axis_refused.append((case.name, _axis_kind(error)))
                else:
                    report.inbound.append(Outcome(case.name, case.family, case.expect,
                                                  f"axis refused: {error[:120]}", case.known_bug))
                continue
            if case.expect.startswith("axis:"):
                report.inbound.append(Outcome(case.name, case.family, case.expect,
                                              "accepted by the axis"))
                continue
            sent[result.doc_id] = case
    finally:
        await axis.aclose()
    # Wait until the gateway has marked every delivery done.
    deadline = time.monotonic() + timeout
    receivers: dict[str, str] = {}
    while True:
        rows = [r for r in await _mailbox(lab) if r.get("doc_id") in sent]
        receivers = {r["receiver_doc_id"]: r["doc_id"] for r in rows}
        pending = [r for r in rows if r.get("status") != "done"]
        if len(rows) >= len(sent) and not pending:
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    nghe_an = AgencyClient(lab, NGHE_AN, RECIPIENT)
    seen: dict[str, str] = {}
    for letter in await nghe_an.read("deadletter"):
        data = letter.data or {}
        if data.get("flow") in ("inbound-document", "inbound-receipt"):
            seen[data["original"]["axis_doc_id"]] = data["reason"]
    for topic in ("inbound_documents", "inbound_receipts"):
        for event in await nghe_an.read(topic):
            doc = (event.data or {}).get("axis_doc_id")
            if doc:
                seen.setdefault(doc, PUBLISHED)
    got_by_sender = {receivers[r]: reason for r, reason in seen.items() if r in receivers}
    for doc_id, case in sent.items():
        got = got_by_sender.get(doc_id, "no outcome")
        report.inbound.append(Outcome(case.name, case.family, case.expect, got, case.known_bug))


def _axis_kind(error: str) -> str:
    lowered = error.lower()
    if "hash" in lowered:
        return "package.hash_mismatch"
    if "khac tham so from" in lowered:
        return "package.sender_mismatch"
    if "khong hop le" in lowered:
        return "package.unroutable"
    return error[:60]


async def check_rejections(lab: Lab, cases: list[InboundCase], report: Report, *,
                           timeout: float = 180) -> None:
    """Refused documents with a DocumentId of their own get a status 02 back at the sender."""
    by_name = {o.name: o for o in report.inbound}
    wanted = {c.document_id for c in cases
              if c.document_id and c.name in by_name and by_name[c.name].ok
              and c.expect not in (PUBLISHED,) and not c.expect.startswith("axis:")
              and c.expect.startswith(("edxml.signature", "inbound.", "edxml.attachment"))}
    thai = AgencyClient(lab, THAI_NGUYEN, SENDER)
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    while wanted - found and time.monotonic() < deadline:
        for event in await thai.read("inbound_receipts"):
            header = (event.data or {}).get("message_header") or {}
            if header.get("status_code") == "02":
                found.add((header.get("response_for") or {}).get("document_id"))
        if wanted - found:
            await asyncio.sleep(2)
    missing = wanted - found
    report.rejections_checked = len(wanted & found)
    for doc_id in sorted(missing):
        report.inbound.append(Outcome(f"rejection-02-for-{doc_id}", "rejection", "status 02 back",
                                      "no status 02 arrived"))


# --- outbound ----------------------------------------------------------------------------------

async def run_outbound(lab: Lab, cases: list[OutboundCase], report: Report, *,
                       timeout: float = 600) -> None:
    thai = AgencyClient(lab, THAI_NGUYEN, SENDER)
    keys = {}
    async with EventProducer(KafkaSettings(bootstrap_servers=lab.bootstrap)) as producer:
        for i, case in enumerate(cases):
            key = f"campaign-{i:04d}-{uuid.uuid4().hex[:6]}".encode()
            keys[key] = case
            await producer.send_record(thai.topics[case.topic],
                                       KafkaRecord(key, case.value, case.headers))
    deadline = time.monotonic() + timeout
    while True:
        letters: dict[bytes, str] = {}
        for letter in await thai.read("deadletter"):
            data = letter.data or {}
            original = data.get("original") or {}
            if original.get("key") is not None and "topic" in original:
                letters[base64.b64decode(original["key"])] = data["reason"]
        outcomes: dict[str, tuple[str, str]] = {}
        for event in await thai.read("delivery"):
            data = event.data or {}
            kind = "failed" if event.type == events.DELIVERY_FAILED else "accepted"
            outcomes[data.get("event_id")] = (kind, data.get("reason") or DELIVERED)
        done = sum(1 for k, c in keys.items()
                   if k in letters or (c.event_id in outcomes
                                       and outcomes[c.event_id][0] == "accepted"))
        if done >= len(keys) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    for key, case in keys.items():
        if key in letters:
            got = letters[key]
            if case.delivery_failed:
                outcome = outcomes.get(case.event_id)
                if outcome is None or outcome != ("failed", got):
                    got = f"{got} (no matching delivery.failed: {outcome})"
        elif case.event_id in outcomes:
            got = outcomes[case.event_id][1]
        else:
            got = "no outcome"
        report.outbound.append(Outcome(case.name, case.family, case.live_expect or case.expect,
                                       got, case.known_bug))


# --- the checks around -----------------------------------------------------------------------

def snapshot(*roots: Path) -> set[str]:
    out = set()
    for root in roots:
        for dirpath, _dirs, files in os.walk(root, followlinks=False):
            for name in files:
                out.add(os.path.join(dirpath, name))
    return out


def file_checks(lab: Lab, before: set[str], report: Report) -> None:
    tmp = Path(tempfile.gettempdir())
    after = snapshot(lab.workdir, tmp)
    report.escaped_files = sorted(p for p in after if ESCAPE_MARK in p)
    allowed = []
    for province in lab.provinces:
        base = lab.province_dir(province)
        # ops/: the status console's trace index, written by the gateway itself.
        allowed += [str(base / "store" / d) + os.sep
                    for d in ("objects", "archive", "tmp", "ops")]
        allowed += [str(lab.inbox(province)) + os.sep]
    unexpected = []
    for path in sorted(after - before):
        if not path.startswith(str(lab.workdir)):
            continue
        inside = any(lab.province_dir(p).as_posix() + os.sep in path for p in lab.provinces)
        if inside and not path.startswith(tuple(allowed)) and not path.endswith(".log"):
            unexpected.append(path)
    report.unexpected_files = unexpected


async def still_serving(lab: Lab) -> bool:
    thai = AgencyClient(lab, THAI_NGUYEN, SENDER)
    nghe_an = AgencyClient(lab, NGHE_AN, RECIPIENT)
    number = str(90000 + int(time.time()) % 9999)
    att = thai.attachment("after.pdf", b"%PDF-1.4\nafter the campaign\n%%EOF\n")
    doc = good_document(number, att)
    key = f"{SENDER},2026/01/05,{number}/UBND-VP"
    await thai.publish(events.DOCUMENT_SEND, doc, key=key)
    try:
        await nghe_an.wait_for("inbound_documents", lambda e: e.data["package"]["message_header"]
                               .get("document_id") == key, timeout=120)
    except TimeoutError:
        return False
    return all(gw.alive() for gw in lab.gateways)


async def campaign(lab: Lab, *, inbound: list[InboundCase] | None = None,
                   outbound: list[OutboundCase] | None = None) -> Report:
    started = time.monotonic()
    report = Report()
    before = snapshot(lab.workdir, Path(tempfile.gettempdir()))
    inbound = inbound if inbound is not None else inbound_cases(credentials(lab))
    env = OutboundEnv(lab.inbox(THAI_NGUYEN, SENDER), Path(tempfile.mkdtemp(prefix="campaign-outside-")),
                      uuid.uuid4().hex[:6])
    outbound = outbound if outbound is not None else [c for c in outbound_cases(env) if c.live]
    await asyncio.gather(run_inbound(lab, inbound, report), run_outbound(lab, outbound, report))
    await check_rejections(lab, inbound, report)
    report.served_after = await still_serving(lab)
    file_checks(lab, before, report)
    report.seconds = time.monotonic() - started
    return report


def _bootstrap(workdir: Path) -> tuple[str, Any]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"], None
    from gateway.lab import LAB_SUPER_USERS, lab_scram_users, load_localkafka

    broker = load_localkafka().start_local_kafka(workdir / "kafka", scram_users=lab_scram_users(),
                                                 super_users=LAB_SUPER_USERS)
    return broker.bootstrap, broker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.campaign.run", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="campaign-"))
    bootstrap, broker = _bootstrap(workdir)
    lab = start_lab(workdir / "lab", bootstrap)
    try:
        report = asyncio.run(campaign(lab))
    finally:
        lab.stop()
        if broker is not None:
            broker.stop()
    table = report.table()
    print(json.dumps(table, ensure_ascii=False, indent=1))
    bad = report.mismatches() or report.escaped_files or report.unexpected_files or \
        not report.served_after
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
