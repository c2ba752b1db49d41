#!/usr/bin/env python3
"""Send a document (or a receipt) through edoc-gateway, as an agency's software would.

    python producer.py document --bootstrap 127.0.0.1:9092 --sender 000.00.00.H55 \
        --recipient 000.00.02.H55 --file /srv/edoc/inbox/000.00.00.H55/1234-UBND-VP.pdf \
        --number 1234 --notation UBND-VP --subject "V/v thử nghiệm"
    python producer.py document ... --jsonl events.jsonl     # write instead of publishing
    python producer.py receipt --bootstrap ... --sender 000.00.02.H55 \
        --document-header arrived-header.json --status 03 --description "Đã tiếp nhận"

The attachment must be beneath the sending agency's own directory on the volume the gateway
reads (<[store] allowed_roots>/<OrganId>/, or the agency's attachment_roots). Topic
names are the defaults; --topic overrides. Prints the event id (keep it: the delivery outcome
names it) and the DocumentId. `--jsonl` appends the event in the JSON form that
`edoc-gateway conformance` checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from aiokafka import AIOKafkaProducer

import edoc_events as ev


def build(args: argparse.Namespace) -> ev.Event:
    if args.kind == "document":
        attachments = [ev.attachment(Path(path), content_id=str(index + 1))
                       for index, path in enumerate(args.file)]
        return ev.document_send(sender=(args.sender, args.sender_name or args.sender),
                                recipients=[(r, r) for r in args.recipient],
                                number=args.number, notation=args.notation,
                                subject=args.subject, place=args.place,
                                attachments=attachments)
    header = json.loads(Path(args.document_header).read_text(encoding="utf-8"))
    return ev.receipt_send(sender=args.sender, document=header, status_code=args.status,
                           description=args.description, staff=args.staff)


async def send(bootstrap: str, event: ev.Event, topic: str | None) -> None:
    # Idempotent producer, acks from every in-sync replica: a retry never duplicates a record,
    # and the gateway deduplicates on ce_id anyway.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                **ev.kafka_login())
    await producer.start()
    try:
        await ev.publish(producer, event, topic)
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("document", "receipt"):
        p = sub.add_parser(kind)
        p.add_argument("--bootstrap", help="Kafka bootstrap servers (host:port)")
        p.add_argument("--topic", help=f"default {ev.TOPICS[ev.DOCUMENT_SEND if kind == 'document' else ev.RECEIPT_SEND]}")
        p.add_argument("--jsonl", type=Path, help="append the event to this file, do not publish")
        p.add_argument("--sender", required=True, help="OrganId of the sending agency")
    d = sub.choices["document"]
    d.add_argument("--sender-name")
    d.add_argument("--recipient", action="append", required=True, help="OrganId (repeatable)")
    d.add_argument("--file", action="append", required=True, help="attachment (repeatable)")
    d.add_argument("--number", required=True, help="số, e.g. 1234")
    d.add_argument("--notation", required=True, help="ký hiệu, e.g. UBND-VP")
    d.add_argument("--subject", required=True, help="trích yếu")
    d.add_argument("--place", default="Thái Nguyên")
    r = sub.choices["receipt"]
    r.add_argument("--document-header", required=True,
                   help="JSON file: the arrived document's package.message_header")
    r.add_argument("--status", required=True, help="01, 02, 03, 04, 05, 06, 15, 16")
    r.add_argument("--description", required=True)
    r.add_argument("--staff")
    args = parser.parse_args(argv)
    event = build(args)
    problems = ev.validate(event.type, event.data)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if args.jsonl:
        with args.jsonl.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event.structured(), ensure_ascii=False) + "\n")
    elif args.bootstrap:
        asyncio.run(send(args.bootstrap, event, args.topic))
    else:
        parser.error("give --bootstrap (publish) or --jsonl (write to a file)")
    print(f"id={event.id} document_id={event.key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
