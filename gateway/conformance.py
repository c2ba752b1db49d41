"""Check an agency's sample events against the event contract before go-live.

`edoc-gateway conformance EVENTS.jsonl` reads one CloudEvent per line, in the CloudEvents JSON
event format (the *structured* form: attributes and `data` in one object; Kafka headers are not
part of a file), and checks each one the way the gateway's consumer will:

1. the envelope (specversion, id, source, type, time; JSON data) — `event.envelope`,
   `event.json`, `event.content_type`;
2. the type (`document.send` or `receipt.send`) and the data against its JSON Schema —
   `event.type`, `event.schema`;
3. the business rules of `gateway.events.parse_incoming`: secrecy, sender and `agency`,
   recipients' OrganIds, attachment references, revoke/update/replace details, the direction of
   a receipt — `event.*`, `edxml.*` reasons.

Beyond what the gateway refuses, it reports what a vendor should fix anyway (warnings): a missing
`time` or `agency`, an `id` used again for other data, a `partitionkey` or `subject` that is not
the DocumentId the record will be keyed by. With `--files` it also checks that each `file://`
attachment exists on this machine with the stated size and SHA-256 (run it where the shared
volume is mounted).

    {"specversion": "1.0", "id": "9f0c…", "source": "urn:qlvb:000.00.00.H55",
     "type": "vn.gov.edoc.document.send.v1", "time": "2024-05-17T09:30:00+07:00",
     "agency": "000.00.00.H55", "datacontenttype": "application/json", "data": {…}}

Exit status: 0 every event passes, 1 at least one fails, 2 usage (unreadable file, no events,
bad option). Warnings do not change the exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.cloudevents import STRUCTURED_CONTENT_TYPE, CloudEvent, KafkaRecord
from edxml.errors import EdxmlError, GatewayError
from edxml.values import OrganId
from gateway import events

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Reasons this module adds to those of the gateway's checks (all of them are warnings, except
#: the store.* reasons of `--files`, which the gateway would refuse too).
REASONS: dict[str, str] = {
    "conformance.time_missing": "the event has no time attribute (recommended: the gateway "
                                "uses it as a receipt's status time and for latency metrics)",
    "conformance.agency_missing": "the event has no agency extension attribute (recommended: "
                                  "the sending agency's OrganId, checked against the data)",
    "conformance.duplicate_id": "an id already used on an earlier line with other data: the "
                                "gateway would handle only the first (ids are idempotency keys)",
    "conformance.key": "partitionkey or subject differs from the DocumentId the record should be "
                       "keyed by",
    "store.missing": "--files: an attachment's file does not exist or is not a regular file",
    "store.size_mismatch": "--files: the file's size differs from size",
    "store.hash_mismatch": "--files: the file's SHA-256 differs from sha256",
}

_MAX_LINE_BYTES = 64 * 1024 * 1024


class _AnySender(Collection[str]):
    """Senders when none are given: every agency counts as configured."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class Finding:
    reason: str
    message: str
    where: str | None = None


@dataclass(frozen=True)
class LineResult:
    """The verdict on one line: `error` is what the gateway would refuse it for (None: ok)."""

    line: int
    ok: bool
    id: str | None = None
    type: str | None = None
    document_id: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    error: Finding | None = None
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Report:
    results: tuple[LineResult, ...]
    senders_checked: bool

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(r.error.reason for r in self.results
                                   if r.error is not None).items()))

    def warning_reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(w.reason for r in self.results
                                   for w in r.warnings).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [_result_dict(r) for r in self.results],
            "summary": {"events": len(self.results), "ok": len(self.results) - self.failed,
                        "failed": self.failed, "reasons": self.reasons(),
                        "warnings": self.warning_reasons(),
                        "senders_checked": self.senders_checked},
        }


def _result_dict(result: LineResult) -> dict[str, Any]:
    out = asdict(result)
    out["recipients"] = list(result.recipients)
    out["warnings"] = [asdict(w) for w in result.warnings]
    return out


def _finding(exc: GatewayError) -> Finding:
    return Finding(exc.reason, exc.message, exc.where)


def check_line(raw: bytes, *, line: int, agencies: Collection[str] | None = None,
               check_files: bool = False,
               seen_ids: dict[tuple[str, str], bytes] | None = None) -> LineResult:
    """Check one line (a structured CloudEvent) as the gateway would; never raises.

    `agencies` are the senders the gateway is configured for (None: any sender).
    `seen_ids` maps (source, id) of earlier lines to their data, to find reused ids.
    """
    record = KafkaRecord(key=None, value=raw,
                         headers=(("content-type", STRUCTURED_CONTENT_TYPE.encode()),))
    try:
        ce = CloudEvent.from_record(record)
    except GatewayError as exc:
        return LineResult(line=line, ok=False, error=_finding(exc))

    warnings: list[Finding] = []
    if ce.time is None:
        warnings.append(Finding("conformance.time_missing", "no time attribute", "time"))
    if "agency" not in ce.extensions:
        warnings.append(Finding("conformance.agency_missing", "no agency attribute", "agency"))
    if seen_ids is not None:
        data_bytes = ce.data_bytes() or b""
        earlier = seen_ids.setdefault((ce.source, ce.id), data_bytes)
        if earlier != data_bytes:
            warnings.append(Finding("conformance.duplicate_id", f"id {ce.id[:64]!r} from this "
                                    "source is used on an earlier line with other data", "id"))

    base = LineResult(line=line, ok=False, id=ce.id, type=ce.type)
    facts = events.incoming_facts(ce) if ce.type in events.INCOMING_TYPES else {}
    try:
        item = events.parse_incoming(ce, agencies=_AnySender() if agencies is None
                                     else agencies)
    except GatewayError as exc:
        return dataclasses.replace(base, error=_finding(exc), warnings=tuple(warnings),
                        document_id=facts.get("document_id"), sender=facts.get("sender"),
                        recipients=tuple(facts.get("recipients") or ()))

    for name in ("partitionkey", "subject"):
        value = ce.extensions.get(name) if name == "partitionkey" else ce.subject
        if value is not None and value != item.document_id:
            warnings.append(Finding("conformance.key", f"{name} is {value[:120]!r}, the "
                                    f"DocumentId is {item.document_id[:120]!r}; key the Kafka "
                                    "record by the DocumentId", name))
    error = None
    if check_files:
        for index, ref in enumerate(item.attachments):
            error = _check_file(ref, f"$.attachments[{index}]")
            if error is not None:
                break
    return dataclasses.replace(base, ok=error is None, error=error, warnings=tuple(warnings),
                    document_id=item.document_id, sender=item.sender,
                    recipients=item.recipients)


def _check_file(ref: events.AttachmentRef, where: str) -> Finding | None:
    path = Path(unquote(urlsplit(ref.uri).path))
    if not path.is_file():
        return Finding("store.missing", f"no file at {path}", f"{where}.uri")
    size = path.stat().st_size
    if size != ref.size:
        return Finding("store.size_mismatch", f"{path} has {size} bytes, size says {ref.size}",
                       f"{where}.size")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    if digest.hexdigest() != ref.sha256:
        return Finding("store.hash_mismatch", f"{path} has SHA-256 {digest.hexdigest()}, "
                       f"sha256 says {ref.sha256}", f"{where}.sha256")
    return None


def check_lines(lines: Sequence[tuple[int, bytes]], *, agencies: Collection[str] | None = None,
                check_files: bool = False) -> Report:
    """Check numbered lines (blank ones already left out)."""
    seen: dict[tuple[str, str], bytes] = {}
    results = tuple(check_line(raw, line=number, agencies=agencies, check_files=check_files,
                               seen_ids=seen) for number, raw in lines)
    return Report(results=results, senders_checked=agencies is not None)


def read_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(line number from 1, bytes) of each non-blank line of a JSONL file."""
    out = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if raw.strip():
            out.append((number, raw))
    return out


# --- command line ---------------------------------------------------------------------------

def _format_text(report: Report, name: str) -> str:
    lines = []
    for r in report.results:
        what = (r.type or "?").removeprefix("vn.gov.edoc.")
        if r.ok:
            to = ", ".join(r.recipients)
            lines.append(f"line {r.line}: ok      {what} id={r.id} {r.sender} -> {to} "
                         f"document_id={r.document_id}")
        else:
            assert r.error is not None
            where = f" (at {r.error.where})" if r.error.where else ""
            ident = f" id={r.id}" if r.id else ""
            lines.append(f"line {r.line}: FAILED  {what}{ident} {r.error.reason}: "
                         f"{r.error.message}{where}")
        for w in r.warnings:
            lines.append(f"          warning {w.reason}: {w.message}")
    total, failed = len(report.results), report.failed
    lines.append("")
    lines.append(f"{name}: {total} event(s), {total - failed} ok, {failed} failed"
                 + (", warnings: " + ", ".join(f"{k} x{v}" for k, v in
                                               report.warning_reasons().items())
                    if report.warning_reasons() else ""))
    for reason, count in report.reasons().items():
        lines.append(f"  {reason} x{count}: {_meaning(reason)}")
    if not report.senders_checked:
        lines.append("  note: senders were not checked (give --agency ORGANID for each agency "
                     "the gateway sends for)")
    lines.append("  note: recipients are checked for form only; the gateway also checks that "
                 "the axis knows them (event.unknown_recipient)")
    return "\n".join(lines)


def _meaning(reason: str) -> str:
    """The one-line meaning of a reason, from the table of the module that raises it."""
    from connectors import cloudevents, store
    from edxml import jsonform, values

    for table in (events.REASONS, cloudevents.REASONS, store.REASONS, jsonform.REASONS,
                  values.REASONS, REASONS):
        if isinstance(table, dict) and reason in table:
            return str(table[reason]).split(";")[0]
    return "see docs/reasons.md"


def cmd_conformance(args: argparse.Namespace) -> int:
    agencies: list[str] | None = None
    if args.agency:
        agencies = []
        for organ_id in args.agency:
            try:
                OrganId.parse(organ_id, strict=True)
            except EdxmlError as exc:
                print(f"edoc-gateway conformance: --agency {organ_id!r}: {exc.message}",
                      file=sys.stderr)
                return EXIT_USAGE
            agencies.append(organ_id)
    name = args.file
    try:
        if name == "-":
            data = sys.stdin.buffer.read(_MAX_LINE_BYTES * 4)
        else:
            data = Path(name).read_bytes()
    except OSError as exc:
        print(f"edoc-gateway conformance: cannot read {name}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_USAGE
    lines = read_lines(data)
    if not lines:
        print(f"edoc-gateway conformance: {name} holds no events (one JSON CloudEvent per line)",
              file=sys.stderr)
        return EXIT_USAGE
    report = check_lines(lines, agencies=agencies, check_files=args.files)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(_format_text(report, name))
    return EXIT_OK if report.ok else EXIT_FAILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="EVENTS.jsonl",
                        help="one CloudEvent per line in JSON (structured) form; - for stdin")
    parser.add_argument("--agency", action="append", metavar="ORGANID",
                        help="an agency the gateway sends for (repeatable); without it the "
                             "sender is not checked")
    parser.add_argument("--files", action="store_true",
                        help="also check that file:// attachments exist here with the stated "
                             "size and SHA-256")
    parser.add_argument("--json", action="store_true", help="machine-readable report")


def register_cli(subparsers: Any) -> None:
    """Add `conformance` to the `edoc-gateway` command's subparsers."""
    parser = subparsers.add_parser(
        "conformance", help="check an agency's sample events (JSONL) against the contract",
        description="Check sample events, one CloudEvent per line in JSON form, as the gateway "
                    "would: envelope, type, JSON Schema and business rules. Exit 0 all pass, "
                    "1 some fail, 2 usage error. See docs/integration.md.")
    add_arguments(parser)
    parser.set_defaults(func=cmd_conformance)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edoc-gateway conformance")
    add_arguments(parser)
    return cmd_conformance(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "Finding", "LineResult", "REASONS", "Report",
           "add_arguments", "check_line", "check_lines", "cmd_conformance", "main",
           "read_lines", "register_cli"]
