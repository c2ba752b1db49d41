#!/usr/bin/env python3
"""Read what edoc-gateway publishes for one agency: delivery outcomes, arrived documents,
arrived receipts — as an agency's software would.

    python consumer.py --bootstrap 127.0.0.1:9092 --agency 000.00.02.H55

Prints one line per event for the agency (JSON with --json). The offsets are committed after
each event is handled, and events are deduplicated on their id (ce_id): the gateway may publish
the same event again after a crash or a replay, always with the same id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer

import edoc_events as ev


async def events_for(bootstrap: str, agency: str, *, group: str,
                     topics: Iterable[str] | None = None, from_beginning: bool = True,
                     idle_timeout: float | None = None) -> AsyncIterator[ev.Received]:
    """Events for `agency` (on its own topics by default), each once; stops after
    `idle_timeout` seconds without a record."""
    consumer = AIOKafkaConsumer(*(topics or ev.read_topics(agency)),
                                bootstrap_servers=bootstrap, group_id=group, **ev.kafka_login(),
                                enable_auto_commit=False, isolation_level="read_committed",
                                auto_offset_reset="earliest" if from_beginning else "latest")
    await consumer.start()
    seen: set[str] = set()  # in a product: a table with a unique key on ce_id
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                if idle_timeout is not None:
                    idle_timeout -= 1
                    if idle_timeout <= 0:
                        return
                continue
            for records in batch.values():
                for record in records:
                    event = ev.decode(record)
                    if event is not None and event.agency == agency and event.id not in seen:
                        seen.add(event.id)
                        yield event
            await consumer.commit()  # after handling: a crash re-reads, never skips
    finally:
        await consumer.stop()


def describe(event: ev.Received) -> str:
    data = event.data or {}
    kind = event.type.removeprefix("vn.gov.edoc.").removesuffix(".v1")
    if kind == "delivery.accepted":
        return f"{kind}: {data['document_id']} accepted by the axis as {data['axis_doc_id']}"
    if kind == "delivery.failed":
        return f"{kind}: {data.get('document_id')} {data['reason']}: {data['message']}"
    if kind == "document.arrived":
        header = data["package"]["message_header"]
        files = ", ".join(a["uri"] for a in data["attachments"])
        return (f"{kind}: {header['document_id']} from {header['from']['organ_id']}: "
                f"{header['subject']} (signature {data['signature']['status']}; files {files})")
    if kind == "receipt.arrived":
        header = data["message_header"]
        return (f"{kind}: status {header['status_code']} from {header['from']['organ_id']} "
                f"about {header['response_for']['document_id']}")
    return f"{kind}: id {event.id}"


async def run(args: argparse.Namespace) -> None:
    async for event in events_for(args.bootstrap, args.agency, group=args.group,
                                  from_beginning=not args.latest,
                                  idle_timeout=args.idle_timeout):
        if args.json:
            print(json.dumps({"id": event.id, "type": event.type, "key": event.key,
                              "data": event.data}, ensure_ascii=False), flush=True)
        else:
            print(describe(event), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--agency", required=True, help="OrganId of this agency")
    parser.add_argument("--group", help="consumer group (default <agency>.qlvb: the ACLs let "
                        "an agency's user use groups starting with its name and a dot)")
    parser.add_argument("--latest", action="store_true", help="new events only")
    parser.add_argument("--idle-timeout", type=float, help="stop after this many idle seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.group = args.group or f"{args.agency}.qlvb"
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
