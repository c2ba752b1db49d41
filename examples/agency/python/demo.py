#!/usr/bin/env python3
"""One document round trip through a running gateway, seen from the agencies' side.

    python demo.py --bootstrap 127.0.0.1:9092 --inbox /srv/edoc/inbox \
        --sender 000.00.00.H55 --recipient 000.00.02.H55

Writes an attachment into the sender's own directory of the shared inbox (INBOX/<sender>/,
the only place the gateway reads that agency's attachments from), publishes `document.send` from the sender, waits
for the delivery outcome and for `document.arrived` at the recipient, answers with receipts 01
(đã đến) and 03 (tiếp nhận) and waits for them to arrive back at the sender. Exit 0 when the
whole round trip was seen, 1 on a delivery failure, 2 on a timeout. Used by the compose lab
(`docker compose --profile demo run --rm agency`) and as a smoke test after an install.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

import edoc_events as ev



def log(text: str) -> None:
    print(f"{datetime.now(ev.VN):%H:%M:%S} {text}", flush=True)


async def round_trip(args: argparse.Namespace) -> int:
    inbox = Path(args.inbox) / args.sender
    inbox.mkdir(exist_ok=True)
    number = datetime.now(ev.VN).strftime("%H%M%S")
    pdf = inbox / f"{number}-demo-{uuid.uuid4().hex[:6]}.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% edoc-gateway demo\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    document = ev.document_send(sender=(args.sender, args.sender), recipients=[(args.recipient,
                                args.recipient)], number=number, notation="DEMO",
                                subject="V/v thử nghiệm kết nối trục liên thông",
                                place="Thái Nguyên", attachments=[ev.attachment(pdf)])

    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, enable_idempotence=True,
                                acks="all", **ev.kafka_login())
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, **ev.kafka_login(),
                                group_id=f"demo-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        # The gateway creates its topics when it starts: wait for them rather than publish
        # into nothing (the broker does not create topics on demand).
        reads = sorted({*ev.read_topics(args.sender), *ev.read_topics(args.recipient)})
        needed = {*reads, ev.outbound_topic(ev.DOCUMENT_SEND, args.sender),
                  ev.outbound_topic(ev.RECEIPT_SEND, args.recipient)}
        deadline = time.monotonic() + args.timeout
        while not needed <= await consumer.topics():
            if time.monotonic() > deadline:
                log(f"TIMEOUT  the gateway's topics do not exist: {', '.join(sorted(needed))}")
                return 2
            await asyncio.sleep(1)
        consumer.subscribe(reads)
        await ev.publish(producer, document)
        log(f"sent     document.send {document.key} ({args.sender} -> {args.recipient}), "
            f"id {document.id}")
        wanted = {"accepted", "arrived", "receipt 01", "receipt 03"}
        deadline = time.monotonic() + args.timeout
        while wanted and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    event = ev.decode(record)
                    if event is None or event.key != document.key:
                        continue
                    data = event.data or {}
                    if event.type == "vn.gov.edoc.delivery.failed.v1" and \
                            data.get("event_id") == document.id:
                        log(f"FAILED   {data['reason']}: {data['message']}")
                        return 1
                    if event.type == "vn.gov.edoc.delivery.accepted.v1" and \
                            data.get("event_id") == document.id and "accepted" in wanted:
                        wanted.discard("accepted")
                        log(f"outcome  delivery.accepted, axis id {data['axis_doc_id']}")
                    elif event.type == "vn.gov.edoc.document.arrived.v1" and \
                            event.agency == args.recipient and "arrived" in wanted:
                        wanted.discard("arrived")
                        header = data["package"]["message_header"]
                        log(f"arrived  document.arrived at {args.recipient}, signature "
                            f"{data['signature']['status']}, file {data['attachments'][0]['uri']}")
                        for code, text in (("01", "Đã đến"), ("03", "Đã tiếp nhận vào sổ")):
                            receipt = ev.receipt_send(sender=args.recipient, document=header,
                                                      status_code=code, description=text)
                            await ev.publish(producer, receipt)
                            log(f"sent     receipt.send {code} ({args.recipient} -> {args.sender})")
                    elif event.type == "vn.gov.edoc.receipt.arrived.v1" and \
                            event.agency == args.sender:
                        code = data["message_header"]["status_code"]
                        if f"receipt {code}" in wanted:
                            wanted.discard(f"receipt {code}")
                            log(f"arrived  receipt.arrived {code} at {args.sender}")
        if wanted:
            log(f"TIMEOUT  after {args.timeout:.0f} s, still waiting for: "
                f"{', '.join(sorted(wanted))}")
            return 2
        log("done: document delivered, received, and receipts 01 and 03 returned")
        return 0
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--inbox", required=True,
                        help="the shared inbox: one directory per agency, named by its "
                             "OrganId, from which the gateway reads that agency's attachments")
    parser.add_argument("--sender", required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    return asyncio.run(round_trip(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
