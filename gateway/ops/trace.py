"""`edoc-gateway trace QUERY`: the whole history of a document and what it is waiting for.

The query is a DocumentId, a số/ký hiệu (`101/UBND-VP`), an event id or an axis DocId. The
answer comes from the trace index (`gateway.ops.index`), brought up to date from the topics of
every configuration given (one per province: the sender's and the recipient's gateway), so one
timeline shows the document leaving one province and its receipts coming back from the other:

    2026-12-02 09:14:03  00.55.W00  send asked by 000.00.00.H55 (101/UBND-VP, to 000.00.00.H41)
    2026-12-02 09:14:03  00.55.W00  signed and sent to the axis: DocId 4f1c…
    2026-12-02 09:14:04  00.41.W00  arrived for 000.00.00.H41, signature valid
    2026-12-02 09:20:11  00.41.W00  receipt 01 (Đã đến) sent by 000.00.00.H41
    state: received (01); awaiting 03/06

`--json` gives the same as data. Exit codes: 0 found, 1 nothing matches, 2 usage error or Kafka
unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from edxml.model import StatusCode
from gateway.ops.index import Fact, TopicSource, TraceIndex, parse_time

EXIT_FOUND, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2
DEFAULT_INDEX = Path("var/trace-index.sqlite")


def status_label(code: str | None) -> str:
    try:
        return StatusCode(code).label
    except ValueError:
        return "?"


def describe(fact: Fact, lang: str = "en") -> str | None:
    """One line for a fact (`lang` en or vi), or None for one not worth a line (ledger
    bookkeeping)."""
    if lang == "vi":
        return describe_vi(fact)
    d = fact.detail
    code = fact.status_code
    if fact.kind == "document.send":
        what = "revocation" if str(d.get("business_doc_type")) == "1" else \
            "update" if str(d.get("business_doc_type")) == "2" else \
            "replacement" if str(d.get("business_doc_type")) == "3" else "send"
        return (f"{what} asked by {fact.agency or d.get('from', '?')} ({fact.notation or '-'}"
                f", to {', '.join(d.get('to', [])) or '?'}): {d.get('subject', '')}").rstrip(": ")
    if fact.kind == "document.arrived":
        return f"arrived for {fact.agency or '?'} from {d.get('from', '?')}, axis DocId " \
               f"{fact.axis_doc_id or '?'}"
    if fact.kind == "receipt.send":
        return f"receipt {code} ({status_label(code)}) asked by {d.get('from') or fact.agency}"
    if fact.kind == "receipt.arrived":
        return f"receipt {code} ({status_label(code)}) from {d.get('from', '?')} arrived " \
               f"for {fact.agency or '?'}"
    if fact.kind == "delivery.accepted":
        return f"{fact.flow or 'message'} accepted by the axis: DocId {fact.axis_doc_id}"
    if fact.kind == "delivery.failed":
        return f"{fact.flow or 'message'} FAILED: {fact.reason}: {d.get('message', '')}"
    if fact.kind == "deadletter":
        return f"DEAD-LETTERED ({fact.reason}): {d.get('message', '')} [{d.get('deadletter_id')}]"
    if fact.kind == "deadletter.replayed":
        return f"dead letter replayed [{d.get('deadletter_id')}]"
    if fact.kind == "audit.record":
        step = fact.step or "?"
        text = {"signed": "built and signed",
                "delivered": f"sent: axis DocId {fact.axis_doc_id}",
                "published": f"verified (signature {d.get('signature', '?')}) and published",
                "marked-done": "marked done on the axis",
                "quarantined": f"QUARANTINED ({fact.reason})",
                "dead-lettered": f"dead-lettered ({fact.reason})",
                "replayed": f"replayed after {fact.reason}"}.get(step, step)
        return f"audit: {fact.flow} {text}"
    return None


_FLOW_VI = {"document": "văn bản", "receipt": "biên nhận", "inbound-document": "văn bản đến",
            "inbound-receipt": "biên nhận đến", "dlq": "thư chết", "message": "thông điệp"}


def describe_vi(fact: Fact) -> str | None:
    """`describe` in Vietnamese, for the console."""
    d = fact.detail
    code = fact.status_code
    flow = _FLOW_VI.get(fact.flow or "message", fact.flow or "")
    if fact.kind == "document.send":
        what = {"1": "thu hồi", "2": "cập nhật", "3": "thay thế"}.get(
            str(d.get("business_doc_type")), "gửi")
        return (f"{fact.agency or d.get('from', '?')} yêu cầu {what} văn bản "
                f"({fact.notation or '-'}, tới {', '.join(d.get('to', [])) or '?'}): "
                f"{d.get('subject', '')}").rstrip(": ")
    if fact.kind == "document.arrived":
        return f"văn bản từ {d.get('from', '?')} đã đến {fact.agency or '?'}, DocId trên trục " \
               f"{fact.axis_doc_id or '?'}"
    if fact.kind == "receipt.send":
        return f"{d.get('from') or fact.agency} gửi biên nhận {code} ({status_label(code)})"
    if fact.kind == "receipt.arrived":
        return f"biên nhận {code} ({status_label(code)}) của {d.get('from', '?')} đã đến " \
               f"{fact.agency or '?'}"
    if fact.kind == "delivery.accepted":
        return f"trục đã nhận {flow}: DocId {fact.axis_doc_id}"
    if fact.kind == "delivery.failed":
        return f"{flow} GỬI KHÔNG THÀNH CÔNG: {fact.reason}: {d.get('message', '')}"
    if fact.kind == "deadletter":
        return f"VÀO THƯ CHẾT ({fact.reason}): {d.get('message', '')} [{d.get('deadletter_id')}]"
    if fact.kind == "deadletter.replayed":
        return f"đã phát lại thư chết [{d.get('deadletter_id')}]"
    if fact.kind == "audit.record":
        step = fact.step or "?"
        text = {"signed": "đã đóng gói và ký số",
                "delivered": f"đã gửi lên trục: DocId {fact.axis_doc_id}",
                "published": f"đã kiểm tra (chữ ký {d.get('signature', '?')}) và chuyển cho "
                             "cơ quan nhận",
                "marked-done": "đã đánh dấu hoàn tất trên trục",
                "quarantined": f"BỊ CÁCH LY ({fact.reason})",
                "dead-lettered": f"vào thư chết ({fact.reason})",
                "replayed": f"đã phát lại sau lỗi {fact.reason}"}.get(step, step)
        return f"kiểm toán: {flow} {text}"
    return None


@dataclass(frozen=True)
class TraceState:
    """Where a document stands: a short `state` word and what is awaited."""

    state: str         # not-found, awaiting-send, dead-lettered, replayed, awaiting-01,
    #                    in-progress, completed, rejected, revocation-requested, revoked,
    #                    revocation-refused, arrived
    summary: str
    awaited: str | None = None
    sent_at: str | None = None
    receipts: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "summary": self.summary, "awaited": self.awaited,
                "sent_at": self.sent_at, "receipts": list(self.receipts)}


def _ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def state_of(facts: Sequence[Fact], now: datetime | None = None) -> TraceState:
    """The document's state from its facts (in time order)."""
    now = now or datetime.now(timezone.utc)
    if not facts:
        return TraceState("not-found", "nothing recorded")
    codes = [f.status_code for f in facts if f.status_code and
             f.kind in ("receipt.send", "receipt.arrived")]
    seen = list(dict.fromkeys(codes))
    sent = [f for f in facts if (f.kind == "delivery.accepted" and f.flow == "document")
            or (f.kind == "audit.record" and f.flow == "document" and f.step == "delivered")]
    arrived = [f for f in facts if f.kind == "document.arrived"]
    sent_at = sent[0].time if sent else None
    receipts = tuple(seen)
    letters = [f for f in facts if f.kind == "deadletter" and f.flow in ("document", None)]
    replays = [f for f in facts if f.kind == "deadletter.replayed"
               or (f.kind == "audit.record" and f.step == "replayed")]

    def make(state: str, summary: str, awaited: str | None = None) -> TraceState:
        return TraceState(state, summary, awaited, sent_at, receipts)

    if "15" in seen:
        return make("revoked", "revoked: the recipient agreed (15) to give the document back")
    # (Each summary starts with words of its state: `trace` prints "state: <summary>".)
    if "16" in seen:
        return make("revocation-refused", "revocation refused by the recipient (16)")
    if "13" in seen:
        return make("revocation-requested", "revocation requested (13)",
                    "15 or 16 from the recipient")
    if "02" in seen:
        return make("rejected", "rejected by the recipient (02)")
    if "06" in seen:
        return make("completed", "completed: the recipient finished handling it (06)")
    if seen:
        last = max(seen, key=lambda c: c)
        return make("in-progress", f"in progress: latest receipt {last} ({status_label(last)})",
                    "06 (Hoàn thành)")
    if sent or arrived:
        moment = parse_time(sent_at or arrived[0].time) or now
        return make("awaiting-01", f"sent {_ago(moment, now)} ago, no 01 yet", "01 (Đã đến)")
    if letters:
        last_letter = letters[-1]
        if any(r.time >= last_letter.time for r in replays):
            return make("replayed", f"replayed after a dead letter ({last_letter.reason}); "
                        "not sent yet", "the gateway to send it")
        return make("dead-lettered", f"dead-lettered: {last_letter.reason}",
                    "a fix, then `edoc-gateway dlq replay`")
    if any(f.kind == "delivery.failed" for f in facts):
        failed = [f for f in facts if f.kind == "delivery.failed"][-1]
        return make("failed", f"failed: {failed.reason}")
    return make("awaiting-send", "awaiting send: taken in, not sent yet",
                "the axis to accept it")


@dataclass(frozen=True)
class Trace:
    query: str
    documents: tuple[str, ...]
    facts: tuple[Fact, ...]
    state: TraceState
    lines: tuple[tuple[Fact, str], ...] = field(default=())

    @classmethod
    def build(cls, query: str, documents: Sequence[str], facts: Sequence[Fact],
              now: datetime | None = None, lang: str = "en") -> Trace:
        lines = tuple((f, text) for f in facts if (text := describe(f, lang)) is not None)
        return cls(query, tuple(documents), tuple(facts), state_of(facts, now), lines)

    @property
    def found(self) -> bool:
        return bool(self.documents)

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.query, "found": self.found, "documents": list(self.documents),
                **self.state.as_dict(),
                "timeline": [{"time": f.time, "source": f.source, "kind": f.kind,
                              "text": text, **{k: v for k, v in f.as_dict().items()
                                               if k not in ("time", "source", "kind")}}
                             for f, text in self.lines]}

    def text(self) -> str:
        if not self.found:
            return f"no document matches {self.query!r}"
        out = [f"document {', '.join(self.documents)}"]
        for fact, text in self.lines:
            moment = fact.moment.strftime("%Y-%m-%d %H:%M:%S")
            out.append(f"  {moment}  {fact.source:<12} {text}")
        out.append(f"state: {self.state.summary}"
                   + (f"; awaiting {self.state.awaited}" if self.state.awaited else ""))
        return "\n".join(out)


def trace(index: TraceIndex, query: str, now: datetime | None = None,
          lang: str = "en") -> Trace:
    documents, facts = index.lookup(query)
    return Trace.build(query, documents, facts, now, lang)


def summary_vi(state: TraceState, now: datetime | None = None) -> str:
    """The state's summary in Vietnamese (reason codes stay as they are)."""
    now = now or datetime.now(timezone.utc)
    if state.state == "awaiting-01":
        sent = parse_time(state.sent_at) if state.sent_at else None
        ago = _ago(sent, now) if sent else "?"
        return f"đã gửi {ago} trước, chưa có biên nhận 01"
    reason = state.summary.split(": ", 1)[1] if state.state in (
        "dead-lettered", "failed") and ": " in state.summary else None
    text = {"revoked": "đã thu hồi: bên nhận đồng ý trả lại văn bản (15)",
            "revocation-refused": "bên nhận từ chối thu hồi (16)",
            "revocation-requested": "đã đề nghị thu hồi (13)",
            "rejected": "bên nhận từ chối văn bản (02)",
            "completed": "hoàn thành: bên nhận đã xử lý xong (06)",
            "replayed": "đã phát lại sau thư chết; chưa gửi",
            "awaiting-send": "đã tiếp nhận, chưa gửi",
            "dead-lettered": f"vào thư chết: {reason}",
            "failed": f"gửi không thành công: {reason}"}.get(state.state)
    if state.state == "in-progress" and state.receipts:
        last = max(state.receipts)
        text = f"đang xử lý: biên nhận mới nhất {last} ({status_label(last)})"
    return text or state.summary


def awaiting_receipt(index: TraceIndex, older_than: timedelta, *, window: timedelta =
                     timedelta(days=30), now: datetime | None = None) -> list[tuple[Fact, str]]:
    """Documents sent within `window` more than `older_than` ago with no receipt at all (01 or
    a later code) yet: (the delivery fact, how long ago)."""
    now = now or datetime.now(timezone.utc)
    from gateway.ops.index import format_time

    out = []
    for fact in index.sent_documents_since(format_time(now - window)):
        moment = fact.moment
        if now - moment < older_than or not fact.document_id:
            continue
        if index.has_receipt(fact.document_id, [c.value for c in StatusCode]):
            continue
        out.append((fact, _ago(moment, now)))
    return out


# ---------------------------------------------------------------------------------------------
# Command line

def _sources(args: argparse.Namespace) -> tuple[Any, list[TopicSource]]:
    from gateway.audit import CliUsageError, kafka_target
    from gateway.config import ConfigError, load_config

    if not args.config:
        raise CliUsageError("give --config (once per gateway whose topics to read)")
    sources, settings = [], None
    for path in args.config:
        try:
            config = load_config(path, os.environ)
        except ConfigError as exc:
            raise CliUsageError(f"configuration {path}: {exc.reason}: {exc.message}") from None
        except OSError as exc:
            raise CliUsageError(f"cannot read {path}: {exc.strerror}") from None
        sources.append(TopicSource.from_config(config))
        if settings is None:
            if args.bootstrap:
                ns = argparse.Namespace(bootstrap=args.bootstrap, config=None)
                settings, _ = kafka_target(ns, client_id="edoc-gateway-trace", topics={})
            else:
                settings = config.kafka.settings()
    return settings, sources


def cmd_trace(args: argparse.Namespace) -> int:
    from edxml.errors import GatewayError  # Kafka errors and the index file
    from gateway.audit import CliUsageError

    try:
        settings, sources = _sources(args)
        index = TraceIndex(args.index)
    except CliUsageError as exc:
        print(f"edoc-gateway trace: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GatewayError as exc:
        print(f"edoc-gateway trace: {exc.reason}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if not args.no_update:
            asyncio.run(index.update(settings, sources, idle_timeout_s=args.timeout))
        result = trace(index, args.query)
    except GatewayError as exc:
        print(f"edoc-gateway trace: cannot read the topics: {exc.reason}: {exc.message}",
              file=sys.stderr)
        return EXIT_USAGE
    finally:
        index.close()
    if args.json:
        json.dump(result.as_dict(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(result.text())
    return EXIT_FOUND if result.found else EXIT_NOT_FOUND


def register_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace", help="where is document X? its whole history across provinces",
        description="Show the history of a document (by DocumentId, số/ký hiệu, event id or "
                    "axis DocId) from the audit, ledger, delivery, dead-letter and event topics "
                    "of every --config given, and what it is waiting for. A local index file "
                    "is brought up to date first (only new records are read). Exit 0 found, "
                    "1 nothing matches, 2 bad options or Kafka unreachable.")
    parser.add_argument("query", help="DocumentId, số/ký hiệu (101/UBND-VP), event id or "
                                      "axis DocId")
    parser.add_argument("--config", action="append", type=Path, metavar="FILE",
                        help="a gateway's TOML configuration (repeatable: one per province)")
    parser.add_argument("--bootstrap", metavar="HOST:PORT[,...]",
                        help="Kafka bootstrap servers (default: from the first --config)")
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX,
                        help=f"the index file (default {DEFAULT_INDEX}; created if missing)")
    parser.add_argument("--no-update", action="store_true",
                        help="answer from the index as it is, without reading the topics")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds without progress before giving up on Kafka")
    parser.add_argument("--json", action="store_true", help="machine-readable answer")
    parser.set_defaults(func=cmd_trace)


__all__ = ["Trace", "TraceState", "awaiting_receipt", "describe", "register_cli", "state_of",
           "status_label", "trace"]
