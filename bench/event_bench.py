"""Per-event CPU of the gateway's main process, step by step, on the benchmark's own event.

    .venv/bin/python bench/event_bench.py            # CPU µs per call, median of 7 runs
    .venv/bin/python bench/event_bench.py --number 2000

The event is the one `bench/e2e_bench.py` publishes (a `document.send` from a Thái Nguyên agency
with one 30 KiB attachment reference), as the Kafka record the gateway reads. Each step is timed
with `timeit` on its own, then the chain the outbound pipeline runs per record before it builds
(decode, check, model, JSON form for the worker), and one log line as the pipeline writes it
(rendered to /dev/null). Nothing here touches Kafka.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog  # noqa: E402

from connectors.cloudevents import CloudEvent  # noqa: E402
from gateway import events  # noqa: E402
from gateway.logs import configure_logging  # noqa: E402

SENDER = ("000.00.00.H55", "UBND tỉnh Thái Nguyên")
RECIPIENT = ("000.00.00.H41", "UBND tỉnh Nghệ An")


def bench_event(i: int = 7) -> CloudEvent:
    """The e2e benchmark's event number `i` (gateway.lab's AgencyClient.document)."""
    organ, name = SENDER
    when = date.today()
    number, notation = str(100000 + i), "B1-UBND"
    header = {
        "from": {"organ_id": organ, "organ_name": name},
        "to": [{"organ_id": RECIPIENT[0], "organ_name": RECIPIENT[1]}],
        "document_id": f"{organ},{when:%Y/%m/%d},{number}/{notation}",
        "code": {"code_number": number, "code_notation": notation},
        "promulgation_info": {"place": "Thái Nguyên", "promulgation_date": when.isoformat()},
        "document_type": {"type": 1, "type_detail": 0, "type_name": "Công văn"},
        "subject": f"V/v đo hiệu năng liên thông, văn bản số {i}",
    }
    attachment = {"content_id": "1", "attachment_name": "bench-30720.pdf",
                  "content_type": "application/pdf",
                  "uri": "file:///srv/edoc/inbox/000.00.00.H55/bench-30720.pdf",
                  "sha256": "ab" * 32, "size": 30720}
    data = {"message_header": header, "attachments": [attachment], "secrecy": "none"}
    return CloudEvent(id=str(uuid.uuid4()), source=f"urn:qlvb:{organ}", type=events.DOCUMENT_SEND,
                      data=data, time=datetime.now(UTC), subject=header["document_id"],
                      extensions={"agency": organ})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=1000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the median is shown")
    args = parser.parse_args(argv)

    event = bench_event()
    record = event.to_record(event.subject)
    agencies = frozenset({SENDER[0], "000.00.02.H55"})
    item = events.parse_incoming(event, agencies=agencies, known_recipient=lambda _: True)
    paths = [Path("/srv/edoc/scratch/out-x/1-bench-30720.pdf")]
    now = datetime.now(UTC)
    events.validate_data(events.DOCUMENT_SEND, event.data)  # compile outside the timing

    configure_logging("json", "info", stream=open(os.devnull, "w"))  # noqa: SIM115
    log = structlog.get_logger("gateway.outbound")

    def log_line() -> None:
        # outbound.delivered as the pipeline writes it: bound twice, then one line.
        bound = log.bind(event_id=event.id, flow="document", offset=12345, partition=3)
        bound = bound.bind(agency=item.sender, document_id=item.document_id)
        bound.info("outbound.delivered", axis_doc_id="abc-123", attempts=1, seconds=0.021)

    def chain() -> None:
        ce = CloudEvent.from_record(record)
        work = events.parse_incoming(ce, agencies=agencies, known_recipient=lambda _: True)
        work.package_dict(paths, trace_organ_id=work.sender, now=now)

    steps = {
        "CloudEvent.from_record": lambda: CloudEvent.from_record(record),
        "events.validate_data": lambda: events.validate_data(events.DOCUMENT_SEND, event.data),
        "events.parse_incoming": lambda: events.parse_incoming(
            event, agencies=agencies, known_recipient=lambda _: True),
        "OutboundDocument.package_dict": lambda: item.package_dict(
            paths, trace_organ_id=item.sender, now=now),
        "chain (decode, check, model, JSON form)": chain,
        "log line (outbound.delivered, JSON)": log_line,
    }
    print(f"per-event CPU (process time), median of {args.repeat} runs x {args.number} calls "
          f"(Python {sys.version.split()[0]})")
    for name, fn in steps.items():
        runs = timeit.repeat(fn, number=args.number, repeat=args.repeat, timer=time.process_time)
        micro = statistics.median(runs) / args.number * 1e6
        print(f"    {name:42s} {micro:8.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
