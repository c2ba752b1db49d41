"""How fast the trace index answers on a million facts (no Kafka: the query side only).

    .venv/bin/python bench/trace_index_bench.py [--facts 1000000] [--dir var/bench]

Fills an index with synthetic facts shaped like the gateway's (10 per document: send, signed,
delivered, accepted, arrived, published, marked-done and three receipts), then times lookups
by DocumentId, số/ký hiệu, event id and axis DocId, and prints the file size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from gateway.ops.index import Fact, TraceIndex
from gateway.ops.trace import trace


def facts_for(n: int) -> list[Fact]:
    doc = f"000.00.00.H55,2026/12/02,{n}/UBND-VP"
    ev, axis, inbound = f"ev-{n}", f"axis-{n}", f"in-{n}"
    t = f"2026-12-02T{n % 24:02d}:{n % 60:02d}:{n % 60:02d}.000Z"
    common = {"topic": "audit", "partition": n % 3, "source": "00.55.W00", "time": t}
    rows = [
        ("document.send", dict(document_id=doc, event_id=ev, notation=f"{n}/UBND-VP",
                               detail={"subject": "V/v thử nghiệm", "to": ["000.00.00.H41"]})),
        ("audit.record", dict(step="signed", flow="document", document_id=doc, event_id=ev)),
        ("audit.record", dict(step="delivered", flow="document", document_id=doc, event_id=ev,
                              axis_doc_id=axis)),
        ("delivery.accepted", dict(flow="document", document_id=doc, event_id=ev,
                                   axis_doc_id=axis)),
        ("document.arrived", dict(document_id=doc, event_id=f"a-{n}", axis_doc_id=inbound)),
        ("audit.record", dict(step="published", document_id=doc, axis_doc_id=inbound)),
        ("audit.record", dict(step="marked-done", axis_doc_id=inbound, event_id=f"a-{n}")),
    ] + [("receipt.arrived", dict(document_id=doc, status_code=c, event_id=f"r{c}-{n}"))
         for c in ("01", "03", "06")]
    return [Fact(**common, offset=n * 10 + i, kind=kind, **fields)
            for i, (kind, fields) in enumerate(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="trace-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "trace-index.sqlite"
    path.unlink(missing_ok=True)
    index = TraceIndex(path)
    documents = args.facts // 10
    started = time.perf_counter()
    for start in range(0, documents, 5000):
        batch = [f for n in range(start, min(start + 5000, documents)) for f in facts_for(n)]
        index.add(batch, {("audit", 0): start})
    fill = time.perf_counter() - started
    print(f"{index.count()} facts in {fill:.1f} s; file {path.stat().st_size / 1e6:.0f} MB")
    probe = documents // 2
    for label, query in (("DocumentId", f"000.00.00.H55,2026/12/02,{probe}/UBND-VP"),
                         ("số/ký hiệu", f"{probe}/UBND-VP"), ("event id", f"ev-{probe}"),
                         ("axis DocId", f"axis-{probe}")):
        begun = time.perf_counter()
        result = trace(index, query)
        took = time.perf_counter() - begun
        print(f"  by {label:<11} {took * 1000:7.1f} ms  {len(result.lines)} lines, "
              f"state {result.state.state}")
    index.close()


if __name__ == "__main__":
    main()
